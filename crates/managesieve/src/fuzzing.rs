//! Entry point for the fuzz target in `fuzz/` and the corpus replay in `cargo test`.

use crate::proto::{Decoder, Limits, parse_line};

/// Decodes `data` as a server's byte stream, whole and in 7-byte pieces: nothing may
/// panic, and both must give the same lines. Every line also goes through the standalone
/// parser.
pub fn decode(data: &[u8]) {
    let limits = Limits { max_line_len: 512, max_literal_len: 4096 };
    let whole = lines(data, data.len().max(1), limits);
    let split = lines(data, 7, limits);
    assert_eq!(whole, split, "decoding depends on how the input was split");
    for line in data.split_inclusive(|&b| b == b'\n') {
        let _ = parse_line(line);
    }
}

/// The lines (or the error) decoded from `data` fed in `chunk`-byte pieces.
pub fn lines(data: &[u8], chunk: usize, limits: Limits) -> Vec<String> {
    let mut decoder = Decoder::new(limits);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        decoder.feed(piece);
        loop {
            match decoder.next_line() {
                Ok(Some(line)) => out.push(format!("{line:?}")),
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
