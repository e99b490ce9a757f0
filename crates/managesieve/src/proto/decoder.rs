//! The framer: finds where a server line ends — after any literals it carries — within
//! limits, then hands it to the parser.

use mailnet::ReceiveBuffer;

use super::parse::{Line, ParseError, literal_len, parse_line};

/// Caps on what a server may make us buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one line outside its literals (default 64 KiB: a capability line listing
    /// every Sieve extension is under 1 KiB).
    pub max_line_len: usize,
    /// Bytes of all literals of one line together (default 64 MiB: a script, or a long
    /// error text).
    pub max_literal_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_line_len: 64 * 1024, max_literal_len: 64 * 1024 * 1024 }
    }
}

/// Bytes the server sent that we refuse to decode. The connection is unusable after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A line longer than [`Limits::max_line_len`] (its literals not counted).
    #[error("server line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// Literals larger than [`Limits::max_literal_len`].
    #[error("server literal of {len} bytes exceeds the limit of {limit}")]
    LiteralTooLong {
        /// The announced length (all literals of the line so far).
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// A line that does not parse.
    #[error(transparent)]
    Malformed(#[from] ParseError),
}

/// Where framing the current line stands, so that more bytes resume it.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Offset where the search for the next line end resumes (past a literal, possibly
    /// beyond what is buffered yet).
    pos: usize,
    /// Bytes of the line outside literals so far.
    text_len: usize,
    /// Bytes of its literals so far.
    literal_len: u64,
}

/// The sans-IO decoder: bytes in ([`feed`](Self::feed) or
/// [`spare_mut`](Self::spare_mut) + [`filled`](Self::filled)), [`Line`]s out.
///
/// ```
/// use managesieve::proto::{Decoder, Limits, Line, Status};
/// let mut decoder = Decoder::new(Limits::default());
/// decoder.feed(b"{5}\r\nkeep;\r\nOK \"Getscript completed.\"\r\n");
/// let Some(Line::Data(tokens)) = decoder.next_line()? else { panic!() };
/// assert_eq!(tokens[0].string(), Some(&b"keep;"[..]));
/// let Some(Line::Response(done)) = decoder.next_line()? else { panic!() };
/// assert_eq!((done.status, done.text.as_str()), (Status::Ok, "Getscript completed."));
/// assert_eq!(decoder.next_line()?, None);
/// # Ok::<(), managesieve::proto::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    buffer: ReceiveBuffer,
    limits: Limits,
    scan: Scan,
}

impl Decoder {
    /// An empty decoder.
    pub fn new(limits: Limits) -> Decoder {
        Decoder { buffer: ReceiveBuffer::new(), limits, scan: Scan::default() }
    }

    /// Copies received bytes in.
    pub fn feed(&mut self, data: &[u8]) {
        self.buffer.feed(data);
    }

    /// Room to read into; then call [`filled`](Self::filled).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        self.buffer.spare_mut()
    }

    /// Marks `n` bytes of [`spare_mut`](Self::spare_mut) as received.
    pub fn filled(&mut self, n: usize) {
        self.buffer.filled(n);
    }

    /// Bytes received and not yet decoded.
    pub fn undecoded(&self) -> &[u8] {
        self.buffer.bytes()
    }

    /// Drops everything buffered (after STARTTLS: nothing sent in plain text may be used).
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.scan = Scan::default();
    }

    /// The next complete line, `Ok(None)` until one is buffered.
    pub fn next_line(&mut self) -> Result<Option<Line>, DecodeError> {
        let Some(len) = self.frame()? else { return Ok(None) };
        self.scan = Scan::default();
        let line = parse_line(self.buffer.take(len))?;
        Ok(Some(line))
    }

    /// The length of the first complete line, literals included.
    fn frame(&mut self) -> Result<Option<usize>, DecodeError> {
        let limits = self.limits;
        loop {
            let bytes = self.buffer.bytes();
            let Some(rest) = bytes.get(self.scan.pos..) else { return Ok(None) };
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                if self.scan.text_len + rest.len() > limits.max_line_len {
                    return Err(DecodeError::LineTooLong { limit: limits.max_line_len });
                }
                return Ok(None);
            };
            let end = self.scan.pos + newline + 1;
            self.scan.text_len += newline + 1;
            if self.scan.text_len > limits.max_line_len {
                return Err(DecodeError::LineTooLong { limit: limits.max_line_len });
            }
            let Some(literal) = trailing_literal(&bytes[self.scan.pos..end]) else {
                return Ok(Some(end));
            };
            self.scan.literal_len = self.scan.literal_len.saturating_add(literal);
            let too_long = usize::try_from(self.scan.literal_len)
                .map_or(true, |len| len > limits.max_literal_len);
            if too_long {
                return Err(DecodeError::LiteralTooLong {
                    len: self.scan.literal_len,
                    limit: limits.max_literal_len,
                });
            }
            // Fits in usize: checked against the limit just above.
            self.scan.pos = end + usize::try_from(literal).unwrap_or(usize::MAX);
        }
    }
}

/// The length of the literal a line segment announces at its end (`{n}` or `{n+}` right
/// before the line end).
fn trailing_literal(segment: &[u8]) -> Option<u64> {
    let body = segment.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let inner = body.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', inner)?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    literal_len(digits).and_then(|n| u64::try_from(n).ok())
}
