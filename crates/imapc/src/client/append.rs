//! Streaming, pipelined APPEND ([`Appender`]): each message goes from a reader straight to
//! the socket, and the answers are collected later, so neither a message's size nor the
//! round trip bounds the speed.

use std::collections::VecDeque;
use std::io::Read;

use chrono::{DateTime, FixedOffset};

use crate::error::{Error, Result};
use crate::proto::{Code, Response, encode_append_start};
use crate::types::{Flag, MailboxName, Uid, UidValidity};

use super::TraceDirection;
use super::conn::{Conn, check};

/// APPENDs sent and not yet answered, at most: their answers (a line each, and an
/// `EXISTS` when the mailbox is selected) stay far below what a socket buffers, so the
/// server never blocks writing them while we block writing to it.
pub const MAX_APPENDS_IN_FLIGHT: usize = 128;

/// Largest piece of a message written at once, and the most of it held in memory.
const CHUNK: usize = 64 * 1024;

/// What became of one message given to [`Appender::append`].
#[derive(Debug)]
pub struct AppendOutcome {
    /// The value [`Appender::append`] returned for it (0 for the first of the appender).
    pub index: usize,
    /// The server's answer: the new UID (and the mailbox's UIDVALIDITY) when it has
    /// UIDPLUS, `None` without; an error for this message alone (a `NO` such as
    /// `[OVERQUOTA]` or `[TOOBIG]`, [`Error::TooBig`] for a message over APPENDLIMIT,
    /// which was not sent).
    pub result: Result<Option<(UidValidity, Uid)>>,
}

/// Appends messages to one mailbox, streamed and pipelined ([`Session::appender`]).
///
/// Each [`append`](Self::append) writes its command and the message at once when the
/// server takes non-synchronising literals (`LITERAL+`; `LITERAL-` for messages up to
/// 4096 bytes) and waits only for the server's `+` otherwise; answers are read as they
/// come and handed out by [`finish`](Self::finish), in order. A message the server refuses
/// fails alone ([`AppendOutcome::result`]), which is why MULTIAPPEND (all or nothing, and
/// no fewer round trips once literals stream) is not used here.
///
/// Memory stays bounded whatever the size of a message: at most 64 KiB of it is held at
/// once. Dropping an appender reads the answers still outstanding (results are lost; call
/// `finish` to have them).
///
/// [`Session::appender`]: crate::Session::appender
#[derive(Debug)]
pub struct Appender<'s> {
    conn: &'s mut Conn,
    mailbox: MailboxName,
    /// Sent and not yet answered: tag and index, in the order sent.
    in_flight: VecDeque<(String, usize)>,
    /// Answers collected and not yet handed out.
    outcomes: Vec<AppendOutcome>,
    next_index: usize,
    /// APPENDLIMIT: larger messages are refused without being sent.
    limit: Option<u64>,
    /// Reused for writing messages (up to [`CHUNK`]).
    buffer: Vec<u8>,
}

impl<'s> Appender<'s> {
    pub(crate) fn new(conn: &'s mut Conn, mailbox: MailboxName) -> Appender<'s> {
        let limit = conn.capabilities.append_limit();
        Appender {
            conn,
            mailbox,
            in_flight: VecDeque::new(),
            outcomes: Vec::new(),
            next_index: 0,
            limit,
            buffer: Vec::new(),
        }
    }

    /// The mailbox appended to.
    pub fn mailbox(&self) -> &MailboxName {
        &self.mailbox
    }

    /// Messages sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Appends the `len` bytes `body` yields (exactly that many: the literal announces the
    /// length before the bytes follow) with `flags` (`\Recent` is left out) and
    /// `internal_date`. Returns the message's index for its [`AppendOutcome`].
    ///
    /// An error here concerns the connection (lost, or the body could not be read:
    /// [`Error::AppendSource`]), which is then unusable; what the server says about the
    /// message itself comes with [`finish`](Self::finish).
    pub fn append(
        &mut self,
        flags: &[Flag],
        internal_date: Option<&DateTime<FixedOffset>>,
        len: u64,
        body: &mut dyn Read,
    ) -> Result<usize> {
        let index = self.next_index;
        self.next_index += 1;
        if let Some(limit) = self.limit.filter(|&limit| len > limit) {
            self.outcomes
                .push(AppendOutcome { index, result: Err(Error::TooBig { size: len, limit }) });
            return Ok(index);
        }
        while self.in_flight.len() >= MAX_APPENDS_IN_FLIGHT {
            self.read_answer(None)?;
        }
        let tag = self.conn.next_tag();
        let Some(start) = encode_append_start(
            &tag,
            &self.mailbox,
            flags,
            internal_date,
            len,
            self.conn.encode_options(),
        ) else {
            self.outcomes.push(AppendOutcome {
                index,
                result: Err(Error::InvalidArgument(format!(
                    "mailbox name {} needs a literal, which a streamed APPEND cannot send",
                    self.mailbox
                ))),
            });
            return Ok(index);
        };
        if let Some(trace) = &self.conn.options.trace {
            let line = String::from_utf8_lossy(&start.line);
            trace.emit(TraceDirection::Sent, &format!("{}\r\n<{len} bytes>", line.trim_end()));
        }
        self.in_flight.push_back((tag.clone(), index));
        let result = self.send_message(&tag, &start.line, start.synchronising, len, body);
        self.conn.guard(result)?;
        Ok(index)
    }

    fn send_message(
        &mut self,
        tag: &str,
        line: &[u8],
        synchronising: bool,
        len: u64,
        body: &mut dyn Read,
    ) -> Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        buffer.extend_from_slice(line);
        if synchronising {
            self.conn.stream.send(&buffer)?;
            buffer.clear();
            if !self.read_answer(Some(tag))? {
                // Answered before the literal (a NO such as TRYCREATE): nothing to send.
                self.buffer = buffer;
                return Ok(());
            }
        }
        let mut remaining = len;
        loop {
            let room = CHUNK.saturating_sub(buffer.len()).max(1);
            let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(room);
            let start = buffer.len();
            buffer.resize(start + want, 0);
            let read = body.read(&mut buffer[start..]).map_err(Error::AppendSource);
            let read = match read {
                Ok(0) if want > 0 => Err(Error::AppendSource(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the message ended {remaining} bytes before its announced {len}"),
                ))),
                other => other,
            };
            let n = match read {
                Ok(n) => n,
                Err(error) => {
                    buffer.clear();
                    self.buffer = buffer;
                    return Err(error);
                }
            };
            buffer.truncate(start + n);
            remaining -= n as u64;
            if remaining == 0 {
                buffer.extend_from_slice(b"\r\n");
                self.conn.stream.send(&buffer)?;
                buffer.clear();
                self.buffer = buffer;
                return Ok(());
            }
            if buffer.len() >= CHUNK {
                self.conn.stream.send(&buffer)?;
                buffer.clear();
            }
        }
    }

    /// Reads one response. With `waiting_for`, a `+` (the go-ahead for that command's
    /// literal) returns true and that command's own tagged answer false; other answers are
    /// recorded. Without, returns after one tagged answer.
    fn read_answer(&mut self, waiting_for: Option<&str>) -> Result<bool> {
        loop {
            let response = self.conn.next_response()?;
            match response {
                Response::Continuation { .. } if waiting_for.is_some() => return Ok(true),
                Response::Continuation { .. } => {
                    return self.conn.guard(Err(Error::Protocol(
                        "unexpected continuation during APPEND".into(),
                    )));
                }
                Response::Untagged(_) => {}
                Response::Tagged { tag, status } => {
                    let Some(position) = self.in_flight.iter().position(|(t, _)| *t == tag) else {
                        return self.conn.guard(Err(Error::Protocol(format!(
                            "answer for unknown tag {tag:?}"
                        ))));
                    };
                    let Some((_, index)) = self.in_flight.remove(position) else {
                        continue;
                    };
                    let result = check("APPEND", status).and_then(|status| {
                        match status.code {
                            Some(Code::AppendUid { uid_validity, uids }) => {
                                // One message per APPEND: a set of several is a lie.
                                match uids.to_uids().as_deref() {
                                    Some([uid]) => Ok(Some((uid_validity, *uid))),
                                    _ => Err(Error::Protocol(format!(
                                        "APPENDUID {uids} for one message"
                                    ))),
                                }
                            }
                            _ => Ok(None),
                        }
                    });
                    self.outcomes.push(AppendOutcome { index, result });
                    if waiting_for == Some(tag.as_str()) {
                        return Ok(false);
                    }
                    if waiting_for.is_none() {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Waits for every answer and hands out the outcomes collected since the last call,
    /// in the order the messages were given.
    pub fn finish(&mut self) -> Result<Vec<AppendOutcome>> {
        while !self.in_flight.is_empty() {
            self.read_answer(None)?;
        }
        let mut outcomes = std::mem::take(&mut self.outcomes);
        outcomes.sort_by_key(|outcome| outcome.index);
        Ok(outcomes)
    }

    /// The outcomes that are in already, without waiting (in order).
    pub fn take_ready(&mut self) -> Vec<AppendOutcome> {
        let mut outcomes = std::mem::take(&mut self.outcomes);
        outcomes.sort_by_key(|outcome| outcome.index);
        outcomes
    }
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        // The answers must not surprise the next command.
        while !self.in_flight.is_empty() {
            if self.read_answer(None).is_err() {
                break;
            }
        }
    }
}
