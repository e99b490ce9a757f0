//! Entry points for the fuzz targets in `fuzz/` and the corpus replay in `cargo test`.

use crate::proto::{
    Decoder, Event, Limits, ResponseKind, parse_capability, parse_reply, parse_scan_listing,
    parse_status, parse_uidl_listing,
};

/// The first byte picks the framing of up to four answers (two bits each: single line,
/// listing, body, SASL); the rest is the server's byte stream. It is decoded in two
/// different splits: nothing may panic, and both must give the same events. Every line
/// also goes through the standalone parsers.
pub fn decode(data: &[u8]) {
    // What a connect makes of a server's first bytes: a verdict on a few bytes holds.
    let service = mailnet::Service::recognise(data);
    for len in 0..data.len().min(12) {
        if let Some(early) = mailnet::Service::recognise(&data[..len]) {
            assert_eq!(Some(early), service, "more bytes changed the verdict");
        }
    }
    let Some((&selector, stream)) = data.split_first() else { return };
    let kinds: Vec<ResponseKind> = (0..4)
        .map(|i| match (selector >> (2 * i)) & 3 {
            0 => ResponseKind::SingleLine,
            1 => ResponseKind::Listing,
            2 => ResponseKind::Body,
            _ => ResponseKind::Sasl,
        })
        .collect();
    let limits = Limits {
        max_status_len: 512,
        max_line_len: 256,
        max_listing_len: 1 << 16,
        max_body_len: 1 << 20,
    };
    let whole = events(stream, stream.len().max(1), &kinds, limits);
    let split = events(stream, 7, &kinds, limits);
    assert_eq!(whole, split, "decoding depends on how the input was split");
    for line in stream.split_inclusive(|&b| b == b'\n') {
        let _ = parse_status(line);
        let _ = parse_reply(line);
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let _ = parse_scan_listing(content);
        let _ = parse_uidl_listing(content);
        let _ = parse_capability(content);
    }
}

/// Decodes `data` fed in chunks of `chunk` bytes; bodies are joined so that the result
/// does not depend on how the decoder cut them.
pub fn events(data: &[u8], chunk: usize, kinds: &[ResponseKind], limits: Limits) -> Vec<String> {
    let mut decoder = Decoder::new(limits);
    for &kind in kinds {
        decoder.expect(kind);
    }
    let mut out = Vec::new();
    let mut body = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        decoder.feed(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(Event::Data(bytes))) => body.extend_from_slice(bytes),
                Ok(Some(Event::End)) => {
                    if !body.is_empty() {
                        out.push(format!("body {}", crate::types::escape(&body)));
                        body.clear();
                    }
                    out.push("end".to_owned());
                }
                Ok(Some(event)) => out.push(format!("{event:?}")),
                Ok(None) => break,
                Err(error) => {
                    out.push(format!("error {error}"));
                    return out;
                }
            }
        }
    }
    if !body.is_empty() {
        out.push(format!("partial body {}", crate::types::escape(&body)));
    }
    out
}
