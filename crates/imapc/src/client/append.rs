//! Streaming, pipelined APPEND ([`Session::append_streamed`]): each message goes from a
//! reader straight to the socket, and the answers are collected later, so neither a
//! message's size nor the round trip bounds the speed.
//!
//! The APPENDs in flight live in the connection ([`AppendQueue`]): any other command first
//! reads their answers, so pipelined APPENDs and other commands mix safely.
//!
//! [`Session::append_streamed`]: crate::Session::append_streamed

use std::collections::VecDeque;
use std::io::Read;

use chrono::{DateTime, FixedOffset};

use crate::error::{Error, Result};
use crate::proto::{AppendMessage, Code, Response, encode_append_next, encode_append_start};
use crate::types::{Flag, MailboxName, Uid, UidValidity};

use super::TraceDirection;
use super::conn::{Conn, check};

/// APPENDs sent and not yet answered, at most: their answers (a line each, and an
/// `EXISTS` when the mailbox is selected) stay far below what a socket buffers, so the
/// server never blocks writing them while we block writing to it.
pub const MAX_APPENDS_IN_FLIGHT: usize = 128;

/// Largest piece of a message written at once, and the most of it held in memory.
const CHUNK: usize = 64 * 1024;

/// What became of one message given to [`Session::append_streamed`].
///
/// [`Session::append_streamed`]: crate::Session::append_streamed
#[derive(Debug)]
pub struct AppendOutcome {
    /// The number `append_streamed` returned for it.
    pub index: u64,
    /// The server's answer: the new UID (and the mailbox's UIDVALIDITY) when it has
    /// UIDPLUS, `None` without; an error for this message alone (a `NO` such as
    /// `[OVERQUOTA]` or `[TOOBIG]`, [`Error::TooBig`] for a message over APPENDLIMIT,
    /// which was not sent).
    pub result: Result<Option<(UidValidity, Uid)>>,
    /// The message went in a MULTIAPPEND ([`Session::append_batch`]) that the server
    /// refused as a whole: nothing of that batch was stored (RFC 3502), and this message
    /// may well be fine on its own — send it again alone to learn its own answer.
    ///
    /// [`Session::append_batch`]: crate::Session::append_batch
    pub batch_refused: bool,
}

/// The APPENDs of a connection that are in flight, and the outcomes not yet taken.
#[derive(Debug, Default)]
pub(crate) struct AppendQueue {
    /// Sent and not yet answered: tag, first index and number of messages (more than one
    /// for a MULTIAPPEND), in the order sent.
    in_flight: VecDeque<(String, u64, u64)>,
    /// Answers collected and not yet handed out.
    outcomes: Vec<AppendOutcome>,
    next_index: u64,
    /// Reused for writing messages (up to [`CHUNK`]).
    buffer: Vec<u8>,
}

impl AppendQueue {
    /// APPENDs sent and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// Appends the `len` bytes `body` yields to `mailbox` (see `Session::append_streamed`).
pub(crate) fn append(
    conn: &mut Conn,
    mailbox: &MailboxName,
    flags: &[Flag],
    internal_date: Option<&DateTime<FixedOffset>>,
    len: u64,
    body: &mut dyn Read,
) -> Result<u64> {
    // Answers still due for earlier commands come first.
    conn.drain_unread()?;
    let index = conn.appends.next_index;
    conn.appends.next_index += 1;
    if let Some(limit) = conn.capabilities.append_limit().filter(|&limit| len > limit) {
        let result = Err(Error::TooBig { size: len, limit });
        conn.appends.outcomes.push(AppendOutcome { index, result, batch_refused: false });
        return Ok(index);
    }
    while conn.appends.in_flight.len() >= MAX_APPENDS_IN_FLIGHT {
        read_answer(conn, None)?;
    }
    let tag = conn.next_tag();
    let Some(start) =
        encode_append_start(&tag, mailbox, flags, internal_date, len, conn.encode_options())
    else {
        let result = Err(Error::InvalidArgument(format!(
            "mailbox name {mailbox} needs a literal, which a streamed APPEND cannot send"
        )));
        conn.appends.outcomes.push(AppendOutcome { index, result, batch_refused: false });
        return Ok(index);
    };
    if let Some(trace) = &conn.options.trace {
        let line = String::from_utf8_lossy(&start.line);
        trace.emit(TraceDirection::Sent, &format!("{}\r\n<{len} bytes>", line.trim_end()));
    }
    conn.appends.in_flight.push_back((tag.clone(), index, 1));
    let result = send_message(conn, &tag, &start.line, start.synchronising, len, body);
    conn.guard(result)?;
    Ok(index)
}

fn send_message(
    conn: &mut Conn,
    tag: &str,
    line: &[u8],
    synchronising: bool,
    len: u64,
    body: &mut dyn Read,
) -> Result<()> {
    let mut buffer = std::mem::take(&mut conn.appends.buffer);
    buffer.clear();
    buffer.extend_from_slice(line);
    let result = stream_message(conn, &mut buffer, tag, synchronising, len, body);
    buffer.clear();
    conn.appends.buffer = buffer;
    result
}

fn stream_message(
    conn: &mut Conn,
    buffer: &mut Vec<u8>,
    tag: &str,
    synchronising: bool,
    len: u64,
    body: &mut dyn Read,
) -> Result<()> {
    if synchronising {
        conn.stream.send(buffer)?;
        buffer.clear();
        if !read_answer(conn, Some(tag))? {
            // Answered before the literal (a NO such as TRYCREATE): nothing to send.
            return Ok(());
        }
    }
    let mut remaining = len;
    loop {
        let room = CHUNK.saturating_sub(buffer.len()).max(1);
        let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(room);
        let start = buffer.len();
        buffer.resize(start + want, 0);
        let n = match body.read(&mut buffer[start..]) {
            Ok(0) if want > 0 => {
                return Err(Error::AppendSource(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the message ended {remaining} bytes before its announced {len}"),
                )));
            }
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(error) => return Err(Error::AppendSource(error)),
        };
        buffer.truncate(start + n);
        remaining -= n as u64;
        if remaining == 0 {
            buffer.extend_from_slice(b"\r\n");
            conn.stream.send(buffer)?;
            return Ok(());
        }
        if buffer.len() >= CHUNK {
            conn.stream.send(buffer)?;
            buffer.clear();
        }
    }
}

/// Reads responses until one APPEND is answered. With `waiting_for` (a command waiting to
/// send its literal), a `+` returns true and that command's own tagged answer false;
/// answers of the others are recorded meanwhile.
fn read_answer(conn: &mut Conn, waiting_for: Option<&str>) -> Result<bool> {
    loop {
        match conn.next_response()? {
            Response::Continuation { .. } if waiting_for.is_some() => return Ok(true),
            Response::Continuation { .. } => {
                return conn
                    .guard(Err(Error::Protocol("unexpected continuation during APPEND".into())));
            }
            Response::Untagged(_) => {}
            Response::Tagged { tag, status } => {
                let position = conn.appends.in_flight.iter().position(|(t, ..)| *t == tag);
                let Some((_, first, count)) =
                    position.and_then(|at| conn.appends.in_flight.remove(at))
                else {
                    return conn
                        .guard(Err(Error::Protocol(format!("answer for unknown tag {tag:?}"))));
                };
                record_answer(conn, first, count, check("APPEND", status));
                if waiting_for.is_none() || waiting_for == Some(tag.as_str()) {
                    return Ok(false);
                }
            }
        }
    }
}

/// Records the outcomes of the `count` messages from index `first` that one APPEND
/// command carried, from its answer.
fn record_answer(conn: &mut Conn, first: u64, count: u64, answer: Result<crate::proto::Status>) {
    let indexes = first..first + count;
    let status = match answer {
        Ok(status) => status,
        Err(error) if count == 1 => {
            conn.appends.outcomes.push(AppendOutcome {
                index: first,
                result: Err(error),
                batch_refused: false,
            });
            return;
        }
        Err(error) => {
            let text = error.to_string();
            for index in indexes {
                let result = Err(Error::Protocol(format!("MULTIAPPEND refused: {text}")));
                conn.appends.outcomes.push(AppendOutcome { index, result, batch_refused: true });
            }
            return;
        }
    };
    let uids = match status.code {
        // One UID per message, in the order given: a set of another size is a lie.
        Some(Code::AppendUid { uid_validity, uids }) => match uids.to_uids() {
            Some(list) if list.len() as u64 == count => {
                Ok(list.into_iter().map(|uid| Some((uid_validity, uid))).collect::<Vec<_>>())
            }
            _ => Err(format!("APPENDUID {uids} for {count} message(s)")),
        },
        _ => Ok(vec![None; usize::try_from(count).unwrap_or(0)]),
    };
    match uids {
        Ok(uids) => {
            for (index, uid) in indexes.zip(uids) {
                conn.appends.outcomes.push(AppendOutcome {
                    index,
                    result: Ok(uid),
                    batch_refused: false,
                });
            }
        }
        Err(lie) => {
            // Stored, but where is unknown: the caller pairs them by content later.
            for index in indexes {
                let result = Err(Error::Protocol(lie.clone()));
                conn.appends.outcomes.push(AppendOutcome { index, result, batch_refused: false });
            }
        }
    }
}

/// Appends `messages` to `mailbox` with one MULTIAPPEND command (RFC 3502) whose literals
/// are all non-synchronising, pipelined like [`append`]; returns the index of the first,
/// the others following in order. A server stores such a batch in one transaction, all or
/// nothing: Dovecot spends about a tenth of the CPU per message that separate APPENDs cost
/// it. Needs MULTIAPPEND and LITERAL+ (else each message goes as its own [`append`]).
pub(crate) fn append_batch(
    conn: &mut Conn,
    mailbox: &MailboxName,
    messages: &[AppendMessage<'_>],
) -> Result<u64> {
    let first = conn.appends.next_index;
    let batchable = messages.len() > 1
        && conn.capabilities.has("MULTIAPPEND")
        && conn.capabilities.has("LITERAL+")
        && conn
            .capabilities
            .append_limit()
            .is_none_or(|limit| messages.iter().all(|message| message.data.len() as u64 <= limit));
    if !batchable {
        return append_each(conn, mailbox, messages);
    }
    let Some((head, rest)) = messages.split_first() else { return Ok(first) };
    conn.drain_unread()?;
    let len = head.data.len() as u64;
    let options = conn.encode_options();
    let tag = conn.next_tag();
    let Some(start) =
        encode_append_start(&tag, mailbox, head.flags, head.internal_date.as_ref(), len, options)
    else {
        // A name that needs a literal: each message fails alone, as `append` says.
        return append_each(conn, mailbox, messages);
    };
    while conn.appends.in_flight.len() >= MAX_APPENDS_IN_FLIGHT {
        read_answer(conn, None)?;
    }
    let count = messages.len() as u64;
    conn.appends.next_index += count;
    if let Some(trace) = &conn.options.trace {
        let line = String::from_utf8_lossy(&start.line);
        let total: usize = messages.iter().map(|message| message.data.len()).sum();
        trace.emit(
            TraceDirection::Sent,
            &format!(
                "{}\r\n<{len} bytes> and {} more message(s), {total} bytes in all",
                line.trim_end(),
                rest.len()
            ),
        );
    }
    conn.appends.in_flight.push_back((tag, first, count));
    let result = send_batch(conn, &start.line, head, rest);
    conn.guard(result)?;
    Ok(first)
}

/// Each of `messages` as its own streamed [`append`]; the index of the first.
fn append_each(
    conn: &mut Conn,
    mailbox: &MailboxName,
    messages: &[AppendMessage<'_>],
) -> Result<u64> {
    let first = conn.appends.next_index;
    for message in messages {
        let len = message.data.len() as u64;
        let date = message.internal_date.as_ref();
        append(conn, mailbox, message.flags, date, len, &mut &message.data[..])?;
    }
    Ok(first)
}

fn send_batch(
    conn: &mut Conn,
    start: &[u8],
    head: &AppendMessage<'_>,
    rest: &[AppendMessage<'_>],
) -> Result<()> {
    let mut buffer = std::mem::take(&mut conn.appends.buffer);
    buffer.clear();
    buffer.extend_from_slice(start);
    let result = (|| {
        send_bytes(conn, &mut buffer, head.data)?;
        for message in rest {
            let len = message.data.len() as u64;
            let next = encode_append_next(message.flags, message.internal_date.as_ref(), len);
            buffer.extend_from_slice(&next);
            send_bytes(conn, &mut buffer, message.data)?;
        }
        buffer.extend_from_slice(b"\r\n");
        conn.stream.send(&buffer)?;
        Ok::<(), Error>(())
    })();
    buffer.clear();
    conn.appends.buffer = buffer;
    result
}

/// Adds `data` to `buffer`, sending whenever the buffer reaches [`CHUNK`].
fn send_bytes(conn: &mut Conn, buffer: &mut Vec<u8>, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        let room = CHUNK.saturating_sub(buffer.len()).max(1);
        let (now, later) = data.split_at(room.min(data.len()));
        buffer.extend_from_slice(now);
        data = later;
        if buffer.len() >= CHUNK {
            conn.stream.send(buffer)?;
            buffer.clear();
        }
    }
    Ok(())
}

/// Reads the answers of every APPEND in flight (before another command is sent).
pub(crate) fn drain(conn: &mut Conn) -> Result<()> {
    while !conn.appends.in_flight.is_empty() {
        read_answer(conn, None)?;
    }
    Ok(())
}

/// Reads answers until at most `keep_in_flight` APPENDs are unanswered; the outcomes not
/// taken yet, in the order the messages were given. The APPENDs left in flight keep the
/// server busy while the caller records these outcomes.
pub(crate) fn collect(conn: &mut Conn, keep_in_flight: usize) -> Result<Vec<AppendOutcome>> {
    while conn.appends.in_flight.len() > keep_in_flight {
        read_answer(conn, None)?;
    }
    let mut outcomes = std::mem::take(&mut conn.appends.outcomes);
    outcomes.sort_by_key(|outcome| outcome.index);
    Ok(outcomes)
}

/// Waits for every answer; the outcomes not taken yet, in the order the messages were
/// given.
pub(crate) fn finish(conn: &mut Conn) -> Result<Vec<AppendOutcome>> {
    collect(conn, 0)
}
