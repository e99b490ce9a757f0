//! The framer: splits the server's byte stream into status lines and multi-line answers
//! before anything is parsed, removes the dot-stuffing, enforces the limits, and hands
//! message bodies out in chunks so that no message is ever held whole.

use std::collections::VecDeque;

use mailnet::ReceiveBuffer;

use crate::proto::parse::{ParseError, Reply, Status, StatusKind, parse_reply, parse_status};
use crate::types::escape;

/// Caps on what a server may make us buffer or read. Exceeding one is a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest status line, line end included. RFC 2449 §4 allows 512 octets; 4 KiB leaves
    /// room for servers that pad their error texts while cutting off a server that never
    /// sends a line end.
    pub max_status_len: usize,
    /// Longest line of a `CAPA`, `LIST` or `UIDL` listing. A UIDL line is at most
    /// ~530 octets even with [`Uidl::MAX_LEN`](crate::Uidl::MAX_LEN); 4 KiB.
    pub max_line_len: usize,
    /// Largest whole `CAPA`/`LIST`/`UIDL` answer, which the client keeps in memory.
    /// 64 MiB holds the listings of a mailbox with over two million messages.
    pub max_listing_len: u64,
    /// Largest `RETR`/`TOP` answer. Bodies stream through a small buffer, so this only
    /// stops a server that never sends the terminating `.`; 1 GiB is above the message
    /// size limit of every server we know.
    pub max_body_len: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_status_len: 4096,
            max_line_len: 4096,
            max_listing_len: 64 << 20,
            max_body_len: 1 << 30,
        }
    }
}

/// How the answer to a command is framed. The client tells the decoder what it expects,
/// in the order the commands were sent (POP3 answers carry no tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// One status line (`USER`, `STAT`, `LIST n`, `DELE` …, and the greeting).
    SingleLine,
    /// `+OK` followed by lines that the client parses one by one (`CAPA`, `LIST`, `UIDL`);
    /// each line is handed out whole, so each is capped at [`Limits::max_line_len`].
    Listing,
    /// `+OK` followed by a message (`RETR`, `TOP`): handed out in chunks of any size.
    Body,
    /// `AUTH`: `+ challenge` lines until a final status line (RFC 5034).
    Sasl,
}

/// The server sent something we refuse to decode. The connection cannot be trusted to be
/// in sync afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A status line without line end grew beyond [`Limits::max_status_len`].
    #[error("status line longer than {limit} bytes")]
    StatusTooLong {
        /// The limit.
        limit: usize,
    },
    /// A listing line grew beyond [`Limits::max_line_len`].
    #[error("listing line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A multi-line answer grew beyond [`Limits::max_listing_len`] or
    /// [`Limits::max_body_len`] without its terminating `.`.
    #[error("multi-line answer larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit that applied.
        limit: u64,
    },
    /// A line where a status line was expected that is not `+OK`/`-ERR` (or `+ ` during
    /// `AUTH`).
    #[error("malformed status line: {line}")]
    Malformed {
        /// The start of the offending line, escaped.
        line: String,
    },
    /// The server sent a line although no command was waiting for an answer.
    #[error("unsolicited data from server: {line}")]
    Unsolicited {
        /// The start of the line, escaped.
        line: String,
    },
}

/// What the decoder found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A status line that completes an answer: the answer to a single-line command, or a
    /// `-ERR` to a multi-line one.
    Status(Status),
    /// The `+OK` that opens a multi-line answer; [`Event::Line`]s or [`Event::Data`]
    /// follow, then [`Event::End`].
    MultiLineStart(Status),
    /// One listing line, dot-stuffing and line end removed.
    Line(&'a [u8]),
    /// The next bytes of a body, dot-stuffing removed, line ends as the server sent them.
    Data(&'a [u8]),
    /// The terminating `.` line of a multi-line answer.
    End,
    /// A SASL challenge during `AUTH` (the base64 text after `"+ "`, not decoded).
    Continuation(Vec<u8>),
}

impl Event<'_> {
    /// A short description for error messages: a body chunk or a listing line is named by
    /// its size and first bytes, never printed whole (a chunk can be megabytes), and a SASL
    /// challenge is not printed at all.
    pub fn summary(&self) -> String {
        const SHOWN: usize = 40;
        let start = |bytes: &[u8]| {
            let cut = bytes.len().min(SHOWN);
            let more = if bytes.len() > SHOWN { "…" } else { "" };
            format!("{}{more}", escape(&bytes[..cut]))
        };
        match self {
            Event::Status(status) => format!("status line {status:?}"),
            Event::MultiLineStart(status) => format!("multi-line start {status:?}"),
            Event::Line(line) => format!("listing line ({} bytes) \"{}\"", line.len(), start(line)),
            Event::Data(data) => format!("body data ({} bytes) \"{}\"", data.len(), start(data)),
            Event::End => "end of a multi-line answer".to_owned(),
            Event::Continuation(_) => "SASL continuation".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a status line.
    Status,
    /// Inside a listing; `total` bytes so far.
    Lines { total: u64 },
    /// Inside a body; `at_line_start` when the next byte begins a line.
    Body { total: u64, at_line_start: bool },
}

/// Sans-IO response decoder: say what you expect ([`expect`](Self::expect)), put bytes in
/// ([`feed`](Self::feed), or [`spare_mut`](Self::spare_mut) + [`filled`](Self::filled)),
/// take [`Event`]s out. `Ok(None)` means "need more bytes", never an error.
///
/// ```
/// use pop3c::proto::{Decoder, Event, ResponseKind};
/// let mut decoder = Decoder::new(Default::default());
/// decoder.expect(ResponseKind::Body);
/// decoder.feed(b"+OK 20 octets\r\nSubject: x\r\n\r\n..dot\r");
/// assert!(matches!(decoder.next_event()?, Some(Event::MultiLineStart(_))));
/// assert_eq!(decoder.next_event()?, Some(Event::Data(b"Subject: x\r\n\r\n")));
/// assert_eq!(decoder.next_event()?, Some(Event::Data(b".dot\r"))); // one dot removed
/// assert_eq!(decoder.next_event()?, None); // need more bytes
/// decoder.feed(b"\n.\r\n");
/// assert_eq!(decoder.next_event()?, Some(Event::Data(b"\n")));
/// assert_eq!(decoder.next_event()?, Some(Event::End));
/// # Ok::<(), pop3c::proto::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    input: ReceiveBuffer,
    state: State,
    expected: VecDeque<ResponseKind>,
    limits: Limits,
}

impl Decoder {
    /// A decoder with these limits, expecting nothing yet (call
    /// [`expect`](Self::expect)`(SingleLine)` for the greeting).
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            input: ReceiveBuffer::new(),
            state: State::Status,
            expected: VecDeque::new(),
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues the framing of the next answer (one call per command sent).
    pub fn expect(&mut self, kind: ResponseKind) {
        self.expected.push_back(kind);
    }

    /// Answers expected and not yet complete.
    pub fn expected(&self) -> usize {
        self.expected.len()
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
    /// is before decoding it as POP3).
    pub fn undecoded(&self) -> &[u8] {
        self.input.bytes()
    }

    /// True while inside a multi-line answer.
    pub fn in_multi_line(&self) -> bool {
        self.state != State::Status
    }

    /// Drops everything buffered and expected (after STLS, where leftovers would be an
    /// injection, or after an error).
    pub fn clear(&mut self) {
        self.input.clear();
        self.state = State::Status;
        self.expected.clear();
    }

    /// The next event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, DecodeError> {
        self.next_event_max(usize::MAX)
    }

    /// Like [`next_event`](Self::next_event), but an [`Event::Data`] carries at most
    /// `max_data` bytes (at least 1), so a caller can fill a fixed buffer.
    pub fn next_event_max(&mut self, max_data: usize) -> Result<Option<Event<'_>>, DecodeError> {
        match self.state {
            State::Status => self.status(),
            State::Lines { total } => self.listing_line(total),
            State::Body { total, at_line_start } => self.body(total, at_line_start, max_data),
        }
    }

    fn status(&mut self) -> Result<Option<Event<'_>>, DecodeError> {
        let limit = self.limits.max_status_len;
        let len = match self.input.find_line(limit) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(too_long) => return Err(DecodeError::StatusTooLong { limit: too_long.limit }),
        };
        let line = &self.input.bytes()[..len];
        let Some(&kind) = self.expected.front() else {
            return Err(DecodeError::Unsolicited { line: shown(line) });
        };
        let parsed = if kind == ResponseKind::Sasl {
            parse_reply(line)
        } else {
            parse_status(line).map(|(status, used)| (Reply::Status(status), used))
        };
        let reply = match parsed {
            Ok((reply, used)) if used == len => reply,
            Ok(_) | Err(ParseError::Malformed | ParseError::Incomplete) => {
                return Err(DecodeError::Malformed { line: shown(line) });
            }
        };
        self.input.consume(len);
        let status = match reply {
            Reply::Continuation(text) => return Ok(Some(Event::Continuation(text))),
            Reply::Status(status) => status,
        };
        self.expected.pop_front();
        let multi_line = status.kind == StatusKind::Ok;
        Ok(Some(match kind {
            ResponseKind::Listing if multi_line => {
                self.state = State::Lines { total: 0 };
                Event::MultiLineStart(status)
            }
            ResponseKind::Body if multi_line => {
                self.state = State::Body { total: 0, at_line_start: true };
                Event::MultiLineStart(status)
            }
            _ => Event::Status(status),
        }))
    }

    fn listing_line(&mut self, total: u64) -> Result<Option<Event<'_>>, DecodeError> {
        let len = match self.input.find_line(self.limits.max_line_len) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(too_long) => return Err(DecodeError::LineTooLong { limit: too_long.limit }),
        };
        let total = total + len as u64;
        if total > self.limits.max_listing_len {
            return Err(DecodeError::ResponseTooLarge { limit: self.limits.max_listing_len });
        }
        let line = self.input.take(len);
        let line = &line[..len - 1];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"." {
            self.state = State::Status;
            return Ok(Some(Event::End));
        }
        self.state = State::Lines { total };
        // RFC 1939 §3: a line starting with the termination octet lost one to stuffing.
        Ok(Some(Event::Line(line.strip_prefix(b".").unwrap_or(line))))
    }

    fn body(
        &mut self,
        total: u64,
        at_line_start: bool,
        max_data: usize,
    ) -> Result<Option<Event<'_>>, DecodeError> {
        if at_line_start {
            let ahead = self.input.bytes();
            match ahead {
                [] | [b'.'] | [b'.', b'\r'] => return Ok(None),
                // The terminator: "." CRLF, or "." LF from servers that send bare LFs.
                [b'.', b'\n', ..] | [b'.', b'\r', b'\n', ..] => {
                    let terminator = if ahead[1] == b'\n' { 2 } else { 3 };
                    self.input.consume(terminator);
                    self.state = State::Status;
                    return Ok(Some(Event::End));
                }
                // A stuffed line: drop the first dot (RFC 1939 §3).
                [b'.', ..] => self.input.consume(1),
                _ => {}
            }
        }
        let ahead = self.input.bytes();
        let limit = ahead.len().min(max_data.max(1));
        // Hand out as many whole lines at once as possible: stop before a line that starts
        // with a dot (it needs unstuffing) or where the next line's start is not known.
        let mut cut = limit;
        let mut line_start = false;
        let mut from = 0;
        while let Some(offset) = memchr::memchr(b'\n', &ahead[from..limit]) {
            let next = from + offset + 1;
            if next == limit || ahead[next] == b'.' {
                cut = next;
                line_start = true;
                break;
            }
            from = next;
        }
        if cut == 0 {
            return Ok(None);
        }
        let total = total + cut as u64;
        if total > self.limits.max_body_len {
            return Err(DecodeError::ResponseTooLarge { limit: self.limits.max_body_len });
        }
        self.state = State::Body { total, at_line_start: line_start };
        Ok(Some(Event::Data(self.input.take(cut))))
    }
}

fn shown(line: &[u8]) -> String {
    escape(&line[..line.len().min(200)])
}
