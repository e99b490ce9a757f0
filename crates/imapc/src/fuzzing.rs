//! Entry points for the fuzz targets in `fuzz/` and the corpus replay in `cargo test`.

use crate::proto::parse::{Ctx, body_literal_start, plain_body_literal_start, plain_fetch_line};
use crate::proto::{
    Event, Limits, ParseOptions, Response, ResponseDecoder, Untagged, parse_response,
};

/// Feeds `data` to the decoder in two different splits and to the standalone parser:
/// nothing may panic, and both splits must decode to the same events. The greeting check
/// of a connect sees the same bytes.
pub fn decode(data: &[u8]) {
    greeting_check(data);
    let limits = Limits { max_literal_len: 1 << 16, max_body_len: 1 << 20, ..Limits::default() };
    let whole = events(data, data.len().max(1), limits);
    let split = events(data, 7, limits);
    assert_eq!(whole, split, "decoding depends on how the input was split");
    plain_fetch_lines_parse_alike(data);
    let mut rest = data;
    while let Ok((_, used)) = parse_response(rest, ParseOptions::default()) {
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
}

/// Every line of `data` that the decoder's fast readers of FETCH answers accept is read
/// alike by the general parser: as a whole line, and as the start of an answer before a
/// literal (`… BODY[] {n}`).
fn plain_fetch_lines_parse_alike(data: &[u8]) {
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some(fetch) = plain_fetch_line(line) {
            let general = parse_response(line, ParseOptions::default());
            let expected = Response::Untagged(Untagged::Fetch(Box::new(fetch)));
            assert_eq!(general, Ok((expected, line.len())), "the fast reader disagrees");
        }
        if let Some(brace) = memchr::memrchr(b'{', line)
            && let Some(start) = plain_body_literal_start(&line[..brace])
        {
            let general = body_literal_start(Ctx::default(), &line[..brace]);
            assert_eq!(Some(start), general, "the fast reader of a body's start disagrees");
        }
    }
}

fn events(data: &[u8], chunk: usize, limits: Limits) -> Vec<String> {
    let mut decoder = ResponseDecoder::new(limits);
    let mut out = Vec::new();
    let mut body = Vec::new();
    for piece in data.chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(Event::BodyData(bytes))) => body.extend_from_slice(bytes),
                Ok(Some(Event::BodyEnd)) => out.push(format!(
                    "body {}",
                    mutf7::escape_for_display(&std::mem::take(&mut body))
                )),
                Ok(Some(event)) => out.push(format!("{event:?}")),
                Ok(None) => break,
                Err(error) => {
                    out.push(format!("error {error}"));
                    return out;
                }
            }
        }
    }
    out
}

/// What a connect makes of a server's first bytes ([`mailnet::Service::recognise`]): never
/// a panic, and a service recognised from a few bytes stays recognised when more follow.
pub fn greeting_check(data: &[u8]) {
    let service = mailnet::Service::recognise(data);
    for len in 0..data.len().min(12) {
        if let Some(early) = mailnet::Service::recognise(&data[..len]) {
            assert_eq!(Some(early), service, "more bytes changed the verdict");
        }
    }
}
