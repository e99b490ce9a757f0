//! Dot-stuffed streams (mail bodies and long attribute values).
//!
//! The sender writes the bytes with a `.` doubled at the start of every line and ends
//! them with `\r\n.\r\n`. The receiver is Dovecot's `i_stream_create_dot(input, FALSE)`
//! (`istream-dot.c`), reproduced here state for state: it treats the first byte of the
//! stream as a line start, drops one leading `.` of every line, and drops the line end
//! before the final `.` line. Dovecot's own sender does not double a `.` at offset 0, so a
//! stream it sends that starts with `.` loses that dot; [`DotEncoder`] doubles it too.

/// Removes the dot-stuffing incrementally; `decode` may be fed any split of the input.
#[derive(Debug, Clone)]
pub struct DotDecoder {
    /// How far into `[CR]LF.[CR]` we are: 0 none, 1 CR, 2 [CR]LF, 3 [CR]LF., 4 [CR]LF.CR.
    state: u8,
    /// The state did not start with CR.
    no_cr: bool,
    /// The state did not start with LF either (the stream's start).
    no_lf: bool,
    /// The final `.` line was seen.
    done: bool,
}

impl Default for DotDecoder {
    fn default() -> DotDecoder {
        DotDecoder::new()
    }
}

impl DotDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> DotDecoder {
        DotDecoder { state: 2, no_cr: true, no_lf: true, done: false }
    }

    /// True once the terminating `.` line was consumed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes from `input` into `out`; returns how many bytes of `input` were used (all
    /// of them, unless the stream ended inside it).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        for (index, &byte) in input.iter().enumerate() {
            if self.done {
                return index;
            }
            match self.state {
                1 => {
                    if byte == b'\n' {
                        self.state = 2;
                    } else {
                        self.flush(out);
                    }
                }
                2 => {
                    if byte == b'.' {
                        self.state = 3;
                    } else {
                        self.flush(out);
                    }
                }
                3 => match byte {
                    b'\r' => self.state = 4,
                    b'\n' => {
                        self.done = true;
                        return index + 1;
                    }
                    // The first dot of the line is dropped.
                    _ => self.flush(out),
                },
                4 => {
                    if byte == b'\n' {
                        self.done = true;
                        return index + 1;
                    }
                    // Back to "CR seen"; this byte is consumed without output, as
                    // Dovecot's reader does.
                    self.flush(out);
                }
                _ => {}
            }
            if self.state == 0 {
                match byte {
                    b'\r' => {
                        self.state = 1;
                        self.no_cr = false;
                    }
                    b'\n' => {
                        self.state = 2;
                        self.no_cr = true;
                    }
                    _ => out.push(byte),
                }
            }
        }
        input.len()
    }

    /// Emits the line end a partial `[CR]LF.[CR]` match held back (`flush_dot_state`).
    fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.no_cr {
            out.push(b'\r');
        }
        if self.no_lf {
            self.no_lf = false;
        } else if self.state > 1 {
            out.push(b'\n');
        }
        self.state = u8::from(self.state == 4);
    }
}

/// Adds the dot-stuffing incrementally: a `.` at the start of every line (the first byte
/// of the stream included) is doubled.
#[derive(Debug, Clone)]
pub struct DotEncoder {
    at_line_start: bool,
}

impl Default for DotEncoder {
    fn default() -> DotEncoder {
        DotEncoder::new()
    }
}

impl DotEncoder {
    /// An encoder at the start of a stream.
    pub fn new() -> DotEncoder {
        DotEncoder { at_line_start: true }
    }

    /// Appends `chunk`, stuffed.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (index, &byte) in chunk.iter().enumerate() {
            if byte == b'.' && self.at_line_start {
                out.extend_from_slice(&chunk[start..=index]);
                out.push(b'.');
                start = index + 1;
            }
            self.at_line_start = byte == b'\n';
        }
        out.extend_from_slice(&chunk[start..]);
    }

    /// Appends the terminator `\r\n.\r\n` (CRLF first, so that a stream ending in CR
    /// keeps it).
    pub fn finish(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n.\r\n");
    }
}

/// Stuffs a whole stream and its terminator (convenience for tests and small values).
pub fn encode_stream(body: &[u8], out: &mut Vec<u8>) {
    let mut encoder = DotEncoder::new();
    encoder.encode(body, out);
    encoder.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> (Vec<u8>, usize, bool) {
        let mut decoder = DotDecoder::new();
        let mut out = Vec::new();
        let used = decoder.decode(input, &mut out);
        (out, used, decoder.is_done())
    }

    #[test]
    fn known_answers() {
        assert_eq!(decode_all(b"a\n..b\nc\r\n.\r\nrest"), (b"a\n.b\nc".to_vec(), 12, true));
        assert_eq!(decode_all(b"\r\n.\r\n"), (Vec::new(), 5, true));
        assert_eq!(decode_all(b".\n"), (Vec::new(), 2, true));
        assert_eq!(decode_all(b"abc\r\r\n.\r\n"), (b"abc\r".to_vec(), 9, true));
        // Dovecot's reader: a leading dot is dropped; ".\rX" after a line start loses X.
        assert_eq!(decode_all(b".x\r\n.\r\n").0, b"x");
        assert_eq!(decode_all(b"a\r\n.\rXY\r\n.\r\n").0, b"a\r\n\rY");
        assert_eq!(decode_all(b"a\n.\rXY\r\n.\r\n").0, b"a\nY");
        assert!(!decode_all(b"no end").2);
    }

    #[test]
    fn our_stuffing_survives_dovecots_reader() {
        let mut out = Vec::new();
        encode_stream(b".leading\n.\n..two\r\n.\rx", &mut out);
        assert_eq!(out, b"..leading\n..\n...two\r\n..\rx\r\n.\r\n");
        assert_eq!(decode_all(&out).0, b".leading\n.\n..two\r\n.\rx");
    }

    proptest::proptest! {
        #[test]
        fn any_body_round_trips_in_any_split(
            body in proptest::collection::vec(proptest::sample::select(b"ab.\r\n".to_vec()), 0..64),
            cut in 0usize..80,
        ) {
            let mut wire = Vec::new();
            let mut encoder = DotEncoder::new();
            let cut_body = cut.min(body.len());
            encoder.encode(&body[..cut_body], &mut wire);
            encoder.encode(&body[cut_body..], &mut wire);
            encoder.finish(&mut wire);
            wire.extend_from_slice(b"after");
            let cut_wire = cut.min(wire.len());
            let mut decoder = DotDecoder::new();
            let mut out = Vec::new();
            let first = decoder.decode(&wire[..cut_wire], &mut out);
            let used = if decoder.is_done() { first } else { first + decoder.decode(&wire[cut_wire..], &mut out) };
            proptest::prop_assert!(decoder.is_done());
            proptest::prop_assert_eq!(&wire[used..], b"after");
            proptest::prop_assert_eq!(out, body);
        }
    }
}
