//! The framer: splits the byte stream into responses and body literals before anything is
//! parsed, enforcing the size limits, and hands body literals out in chunks so that no
//! message is ever held whole.

use mailnet::ReceiveBuffer;

use crate::proto::parse::core::write_streamed_marker;
use crate::proto::parse::response::announced_literal;
use crate::proto::parse::{
    Ctx, ParseError, ParseOptions, body_literal_start, msg_att_rest, parse_response,
    plain_body_literal_start, plain_fetch_line, plain_streamed_body_rest,
};
use crate::proto::response::{BodySection, Fetch, Response, Untagged};

/// Caps on what a server may make us buffer. Exceeding one is a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line outside literals. 4 MiB: a plain `SEARCH` answer on a mailbox with half a
    /// million messages still fits, while a server that never sends CRLF is cut off early.
    pub max_line_len: usize,
    /// Largest literal that is not a message body (mailbox names, header fields inside
    /// ENVELOPE, ID values). 1 MiB is far above any legitimate one.
    pub max_literal_len: u64,
    /// Largest body literal. Bodies stream through a small buffer, so this only guards the
    /// handler against absurd announcements such as `{4294967295}`; 1 GiB is above the
    /// message size limit of every server we know (Exchange Online 150 MB, Gmail 35 MB).
    pub max_body_len: u64,
    /// Largest whole response kept in memory (lines plus inline literals). 16 MiB.
    pub max_response_len: usize,
    /// Deepest nesting of parenthesised lists (BODYSTRUCTURE of nested multiparts).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line_len: 4 << 20,
            max_literal_len: 1 << 20,
            max_body_len: 1 << 30,
            max_response_len: 16 << 20,
            max_depth: 64,
        }
    }
}

/// The server sent something we refuse to decode. The connection cannot be trusted to be
/// in sync afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A line without CRLF grew beyond [`Limits::max_line_len`].
    #[error("response line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A literal announcement above [`Limits::max_literal_len`] / [`Limits::max_body_len`].
    #[error("literal of {len} bytes announced, limit {limit}")]
    LiteralTooLarge {
        /// The announced length.
        len: u64,
        /// The limit that applied.
        limit: u64,
    },
    /// A response grew beyond [`Limits::max_response_len`].
    #[error("response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Lists nested beyond [`Limits::max_depth`].
    #[error("response nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A tagged or continuation response that does not parse.
    #[error("malformed response: {line}")]
    Malformed {
        /// The start of the offending line, escaped.
        line: String,
    },
}

/// A body literal starts: which message and item it belongs to, and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyStart {
    /// The FETCH response's items parsed before the literal (sequence number, and the UID
    /// when the server sent it first).
    pub fetch: Fetch,
    /// Which body item.
    pub section: BodySection,
    /// Exact length of the literal.
    pub len: u64,
}

/// What the decoder found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete response. In FETCH responses, body items that were streamed carry
    /// [`BodyData::Streamed`](crate::proto::BodyData::Streamed).
    Response(Response),
    /// A body literal begins; [`Event::BodyData`] chunks follow, then [`Event::BodyEnd`].
    BodyStart(BodyStart),
    /// The next bytes of the current body literal (borrowed from the decoder's buffer).
    BodyData(&'a [u8]),
    /// The current body literal is complete; the response continues.
    BodyEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Lines,
    Body { remaining: u64 },
}

/// Sans-IO response decoder: bytes in ([`feed`](Self::feed) or
/// [`spare_mut`](Self::spare_mut) + [`filled`](Self::filled)), [`Event`]s out.
///
/// ```
/// use imapc::proto::{Event, ResponseDecoder};
/// let mut decoder = ResponseDecoder::new(Default::default());
/// decoder.feed(b"* 1 FETCH (UID 7 BODY[] {5}\r\nhel");
/// assert!(matches!(decoder.next_event()?, Some(Event::BodyStart(start)) if start.len == 5));
/// assert_eq!(decoder.next_event()?, Some(Event::BodyData(b"hel")));
/// assert_eq!(decoder.next_event()?, None); // need more bytes
/// decoder.feed(b"lo)\r\n");
/// assert_eq!(decoder.next_event()?, Some(Event::BodyData(b"lo")));
/// assert_eq!(decoder.next_event()?, Some(Event::BodyEnd));
/// assert!(matches!(decoder.next_event()?, Some(Event::Response(_))));
/// # Ok::<(), imapc::proto::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct ResponseDecoder {
    input: ReceiveBuffer,
    /// How many buffered bytes the inline literal being read needs.
    literal_need: Option<usize>,
    /// The response so far, once it had a literal.
    pending: Vec<u8>,
    /// The current response contained a NUL outside literals: never stream from it.
    poisoned: bool,
    /// The current response is a FETCH whose body literal was streamed: the items parsed
    /// before it, and where in `pending` the body item starts. The response is then
    /// parsed from there when it is complete, not again from its start (a one-pass copy
    /// sends FLAGS, INTERNALDATE, RFC822.SIZE and MODSEQ before each body).
    resume: Option<(Fetch, usize)>,
    state: State,
    limits: Limits,
    ctx: Ctx,
}

impl ResponseDecoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> ResponseDecoder {
        ResponseDecoder {
            input: ReceiveBuffer::new(),
            literal_need: None,
            pending: Vec::new(),
            poisoned: false,
            resume: None,
            state: State::Lines,
            limits,
            ctx: Ctx { max_depth: limits.max_depth, utf8_names: false },
        }
    }

    /// Mailbox names are UTF-8 from now on (after `ENABLE UTF8=ACCEPT`).
    pub fn set_utf8_names(&mut self, utf8: bool) {
        self.ctx.utf8_names = utf8;
    }

    /// The parser options in force.
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions { max_depth: self.ctx.max_depth, utf8_names: self.ctx.utf8_names }
    }

    /// Copies bytes in.
    pub fn feed(&mut self, data: &[u8]) {
        self.input.feed(data);
    }

    /// Free space to read into (at least 16 KiB); call [`filled`](Self::filled) after.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        self.input.spare_mut()
    }

    /// Marks `n` bytes of [`spare_mut`](Self::spare_mut) as received.
    pub fn filled(&mut self, n: usize) {
        self.input.filled(n);
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// The bytes received but not yet decoded (e.g. a greeting, to tell which protocol it
    /// is before decoding it as IMAP).
    pub fn undecoded(&self) -> &[u8] {
        self.input.bytes()
    }

    /// Drops everything buffered (after STARTTLS, where leftovers would be an injection).
    pub fn clear(&mut self) {
        self.input.clear();
        self.literal_need = None;
        self.pending.clear();
        self.poisoned = false;
        self.resume = None;
        self.state = State::Lines;
    }

    /// Bytes of the current body literal not yet handed out; `None` outside a body.
    pub fn body_remaining(&self) -> Option<u64> {
        match self.state {
            State::Body { remaining } => Some(remaining),
            State::Lines => None,
        }
    }

    /// Copies buffered body bytes into `dst`; returns how many (0 when none are buffered).
    pub fn read_body(&mut self, dst: &mut [u8]) -> usize {
        let State::Body { remaining } = self.state else { return 0 };
        let n =
            dst.len().min(self.buffered()).min(usize::try_from(remaining).unwrap_or(usize::MAX));
        dst[..n].copy_from_slice(&self.input.bytes()[..n]);
        self.input.consume(n);
        self.state = State::Body { remaining: remaining - n as u64 };
        n
    }

    /// The buffered bytes of the current body literal (none outside a body), to be read in
    /// place and then dropped with [`consume_body`](Self::consume_body): no copy.
    pub fn body_bytes(&self) -> &[u8] {
        let State::Body { remaining } = self.state else { return &[] };
        let n = self.buffered().min(usize::try_from(remaining).unwrap_or(usize::MAX));
        &self.input.bytes()[..n]
    }

    /// Drops the first `n` bytes of [`body_bytes`](Self::body_bytes) (at most all of them).
    pub fn consume_body(&mut self, n: usize) {
        let State::Body { remaining } = self.state else { return };
        let n = n.min(self.body_bytes().len());
        self.input.consume(n);
        self.state = State::Body { remaining: remaining - n as u64 };
    }

    /// Records that `n` body bytes were read straight from the socket, bypassing the buffer
    /// (allowed only while nothing is buffered).
    pub fn body_read_directly(&mut self, n: usize) {
        debug_assert_eq!(self.buffered(), 0);
        if let State::Body { remaining } = self.state {
            self.state = State::Body { remaining: remaining.saturating_sub(n as u64) };
        }
    }

    /// The next event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, DecodeError> {
        if let State::Body { remaining } = self.state {
            if remaining == 0 {
                self.state = State::Lines;
                return Ok(Some(Event::BodyEnd));
            }
            let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(self.buffered());
            if n == 0 {
                return Ok(None);
            }
            self.state = State::Body { remaining: remaining - n as u64 };
            return Ok(Some(Event::BodyData(self.input.take(n))));
        }
        loop {
            if let Some(need) = self.literal_need {
                if self.buffered() < need {
                    return Ok(None);
                }
                self.take_into_pending(need)?;
                self.literal_need = None;
            }
            let line_len = match self.input.find_line(self.limits.max_line_len) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(None),
                Err(too_long) => return Err(DecodeError::LineTooLong { limit: too_long.limit }),
            };
            let line = &self.input.bytes()[..line_len];
            if memchr::memchr(0, line).is_some() {
                self.poisoned = true;
            }
            let content_end = line_len - if line.ends_with(b"\r\n") { 2 } else { 1 };
            if let Some(len) = announced_literal(&line[..content_end]) {
                if let Some(start) = self.literal(line_len, content_end, len)? {
                    return Ok(Some(Event::BodyStart(start)));
                }
                continue;
            }
            return self.complete(line_len).map(|r| Some(Event::Response(r)));
        }
    }

    /// A literal of `len` bytes is announced at the end of the current line.
    fn literal(
        &mut self,
        line_len: usize,
        content_end: usize,
        len: u64,
    ) -> Result<Option<BodyStart>, DecodeError> {
        let line = &self.input.bytes()[..content_end];
        let brace = memchr::memrchr(b'{', line).unwrap_or(0);
        let announce = if brace > 0 && line[brace - 1] == b'~' { brace - 1 } else { brace };
        self.take_into_pending(announce)?;
        // A body FETCH's answer in its plain shape (`UID u BODY[] `) is read without the
        // general parser; it reads anything else.
        if !self.poisoned
            && let Some((fetch, section, start)) = plain_body_literal_start(&self.pending)
                .or_else(|| body_literal_start(self.ctx, &self.pending))
        {
            if len > self.limits.max_body_len {
                return Err(DecodeError::LiteralTooLarge { len, limit: self.limits.max_body_len });
            }
            self.resume = Some((fetch.clone(), start));
            write_streamed_marker(&mut self.pending, len);
            self.input.consume(line_len - announce);
            self.state = State::Body { remaining: len };
            return Ok(Some(BodyStart { fetch, section, len }));
        }
        if len > self.limits.max_literal_len {
            return Err(DecodeError::LiteralTooLarge { len, limit: self.limits.max_literal_len });
        }
        self.take_into_pending(line_len - announce)?;
        // Checked against max_literal_len above, which is far below usize::MAX.
        self.literal_need = Some(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(None)
    }

    /// Moves `n` buffered bytes to the pending response.
    fn take_into_pending(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.pending.len() + n > self.limits.max_response_len {
            return Err(DecodeError::ResponseTooLarge { limit: self.limits.max_response_len });
        }
        self.pending.extend_from_slice(self.input.take(n));
        Ok(())
    }

    /// The current line (of `line_len` bytes) ends the response: parse it.
    fn complete(&mut self, line_len: usize) -> Result<Response, DecodeError> {
        let options = self.parse_options();
        let from_pending = !self.pending.is_empty();
        if from_pending {
            self.take_into_pending(line_len)?;
        }
        let resume = self.resume.take();
        let poisoned = std::mem::take(&mut self.poisoned);
        // A metadata listing's answers, one line each, are read without the general
        // parser when they have its plain shape (which the general parser would parse
        // alike); anything else goes on below.
        if !from_pending
            && !poisoned
            && let Some(fetch) = plain_fetch_line(&self.input.bytes()[..line_len])
        {
            self.input.consume(line_len);
            return Ok(Response::Untagged(Untagged::Fetch(Box::new(fetch))));
        }
        if from_pending
            && !poisoned
            && let Some((mut fetch, start)) = resume
        {
            let rest = &self.pending[start..];
            let read = plain_streamed_body_rest(rest, &mut fetch).is_some()
                || msg_att_rest(self.ctx, rest, &mut fetch)
                    .is_ok_and(|(rest, ())| matches!(rest, b"\r\n" | b"\n"));
            if read {
                self.pending.clear();
                return Ok(Response::Untagged(Untagged::Fetch(Box::new(fetch))));
            }
        }
        let frame: &[u8] = if from_pending { &self.pending } else { self.input.take(line_len) };
        let parsed =
            if poisoned { Err(ParseError::Malformed) } else { parse_response(frame, options) };
        let result = match parsed {
            Ok((response, used)) if used == frame.len() => Ok(response),
            Err(ParseError::TooDeep { limit }) => Err(DecodeError::TooDeep { limit }),
            _ => match frame.strip_prefix(b"* ") {
                Some(raw) => {
                    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
                    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                    Ok(Response::Untagged(Untagged::Malformed { raw: raw.to_vec() }))
                }
                None => Err(DecodeError::Malformed { line: escape_start(frame) }),
            },
        };
        self.pending.clear();
        result
    }
}

fn escape_start(frame: &[u8]) -> String {
    let shown = &frame[..frame.len().min(200)];
    mutf7::escape_for_display(shown)
}
