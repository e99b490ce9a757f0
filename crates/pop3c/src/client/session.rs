//! [`Session`]: the TRANSACTION state.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::proto::{
    Command, ScanListing, UidlListing, parse_scan_listing, parse_stat, parse_uidl_listing,
};
use crate::types::{Capabilities, MessageNumber, Uidl, escape};

use super::conn::{BodyReader, Conn, Head};

/// Receives message bodies from [`Session::retr_many`] and [`Session::top_many`].
///
/// Errors are `std::io::Error` so that handlers can use `?` on file writes. An error
/// aborts the batch: no further calls, the answers still in flight are read and dropped,
/// and [`Error::Handler`] is returned with the session still usable.
///
/// Closures `FnMut(MessageNumber, &mut dyn Read) -> io::Result<()>` are handlers.
pub trait MessageHandler {
    /// Message `number`: `body` yields its bytes exactly as the server stores them
    /// (dot-stuffing removed) and then end of file. Bytes left unread are drained.
    fn message(&mut self, number: MessageNumber, body: &mut dyn Read) -> io::Result<()>;
}

impl<F> MessageHandler for F
where
    F: FnMut(MessageNumber, &mut dyn Read) -> io::Result<()>,
{
    fn message(&mut self, number: MessageNumber, body: &mut dyn Read) -> io::Result<()> {
        self(number, body)
    }
}

/// `STAT`: the maildrop's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Messages (not counting those marked deleted).
    pub count: u32,
    /// Their size in octets.
    pub octets: u64,
}

/// A message's number, size and unique id: what [`Session::messages`] lists, and what a
/// migration matches against the IMAP view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Number in this session; also the message's position in the POP3 order.
    pub number: MessageNumber,
    /// `LIST` size in octets.
    pub size: u64,
    /// `UIDL` unique id.
    pub uidl: Uidl,
}

/// An authenticated connection (TRANSACTION state). Nothing here deletes mail except
/// [`delete_message_dangerously`](Self::delete_message_dangerously); dropping a session
/// without [`quit`](Self::quit) closes the connection without entering the UPDATE state,
/// so even marked messages stay.
#[derive(Debug)]
pub struct Session {
    conn: Box<Conn>,
}

impl Session {
    pub(crate) fn new(conn: Box<Conn>) -> Session {
        Session { conn }
    }

    /// Capabilities after login.
    pub fn capabilities(&self) -> &Capabilities {
        &self.conn.capabilities
    }

    /// True when the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.stream.is_tls()
    }

    /// True when batches are pipelined (the server announced `PIPELINING` and the options
    /// allow it).
    pub fn is_pipelining(&self) -> bool {
        self.conn.window() > 1
    }

    /// `CAPA` again.
    pub fn refresh_capabilities(&mut self) -> Result<&Capabilities> {
        self.conn.refresh_capabilities()?;
        Ok(&self.conn.capabilities)
    }

    /// `STAT`.
    pub fn stat(&mut self) -> Result<Stat> {
        self.conn.send(&[Command::Stat])?;
        self.stat_answer()
    }

    /// Reads the answer to a `STAT` already sent.
    fn stat_answer(&mut self) -> Result<Stat> {
        let status = self.conn.expect_ok("STAT", None)?;
        let (count, octets) = parse_stat(&status.text)
            .map_err(|_| Error::Protocol(format!("STAT answer {:?}", status.text)))?;
        Ok(Stat { count, octets })
    }

    /// `LIST`: every message's number and size, in the server's order.
    pub fn list(&mut self) -> Result<Vec<ScanListing>> {
        self.conn.send(&[Command::List(None)])?;
        self.listing("LIST", parse_scan_listing, None)
    }

    /// `LIST n`.
    pub fn list_one(&mut self, number: MessageNumber) -> Result<ScanListing> {
        let status = self.conn.simple(&Command::List(Some(number)), Some(number))?;
        parse_scan_listing(status.text.as_bytes())
            .map_err(|_| Error::Protocol(format!("LIST {number} answer {:?}", status.text)))
    }

    /// `UIDL`: every message's number and unique id. A server without UIDL answers
    /// `-ERR`, returned as [`Error::Refused`].
    pub fn uidl(&mut self) -> Result<Vec<UidlListing>> {
        self.conn.send(&[Command::Uidl(None)])?;
        self.listing("UIDL", parse_uidl_listing, None)
    }

    /// `UIDL n`.
    pub fn uidl_one(&mut self, number: MessageNumber) -> Result<UidlListing> {
        let status = self.conn.simple(&Command::Uidl(Some(number)), Some(number))?;
        parse_uidl_listing(status.text.as_bytes())
            .map_err(|_| Error::Protocol(format!("UIDL {number} answer {:?}", status.text)))
    }

    /// `STAT`, `LIST` and `UIDL` (pipelined when possible), the listings joined by message
    /// number, in POP3 order: the POP3 view a migration needs. A message missing from
    /// either listing, or a listing longer than the message count `STAT` announced, is an
    /// [`Error::Protocol`] (the rest of the listing is read but not kept: a server that
    /// lists forever costs no memory).
    pub fn messages(&mut self) -> Result<Vec<MessageInfo>> {
        let (sizes, uidls) = if self.is_pipelining() {
            self.conn.send(&[Command::Stat, Command::List(None), Command::Uidl(None)])?;
            let stat = self.stat_answer();
            // Read both listings even when one failed, to stay in sync.
            let count = stat.as_ref().map_or(0, |stat| stat.count);
            let sizes = self.listing("LIST", parse_scan_listing, Some(count));
            let uidls = self.listing("UIDL", parse_uidl_listing, Some(count));
            stat?;
            (sizes?, uidls?)
        } else {
            let count = self.stat()?.count;
            self.conn.send(&[Command::List(None)])?;
            let sizes = self.listing("LIST", parse_scan_listing, Some(count))?;
            self.conn.send(&[Command::Uidl(None)])?;
            (sizes, self.listing("UIDL", parse_uidl_listing, Some(count))?)
        };
        if sizes.len() != uidls.len() {
            return Err(Error::Protocol(format!(
                "LIST has {} messages but UIDL {}",
                sizes.len(),
                uidls.len()
            )));
        }
        let mut uidls = uidls;
        uidls.sort_by_key(|u| u.number);
        let mut messages = Vec::with_capacity(sizes.len());
        for size in sizes {
            let Ok(index) = uidls.binary_search_by_key(&size.number, |u| u.number) else {
                return Err(Error::Protocol(format!("message {} has no UIDL", size.number)));
            };
            let uidl = uidls[index].uidl.clone();
            messages.push(MessageInfo { number: size.number, size: size.size, uidl });
        }
        Ok(messages)
    }

    /// Reads a listing answer: `-ERR` → [`Error::Refused`], a line that does not parse or
    /// one beyond `limit` entries → [`Error::Protocol`] (after reading the rest, so the
    /// session stays usable).
    fn listing<T>(
        &mut self,
        command: &'static str,
        parse: fn(&[u8]) -> std::result::Result<T, crate::proto::ParseError>,
        limit: Option<u32>,
    ) -> Result<Vec<T>> {
        match self.conn.next_head()? {
            Head::MultiLine => {}
            Head::Status(status) => {
                return Err(Error::Refused {
                    command,
                    message: None,
                    code: status.code,
                    text: status.text,
                });
            }
            Head::Continuation => {
                return Err(Error::Protocol(format!("{command} answered with a continuation")));
            }
        }
        // The announced count is only trusted for a first allocation.
        let mut entries = Vec::with_capacity(limit.map_or(0, |n| n.min(1 << 16) as usize));
        let mut bad: Option<String> = None;
        let mut beyond = false;
        while let Some(parsed) = self
            .conn
            .next_line(|line| parse(line).map_err(|_| escape(&line[..line.len().min(200)])))?
        {
            if limit.is_some_and(|limit| entries.len() >= limit as usize) {
                beyond = true;
                continue;
            }
            match parsed {
                Ok(entry) => entries.push(entry),
                Err(line) => {
                    bad.get_or_insert(line);
                }
            }
        }
        if beyond {
            return Err(Error::Protocol(format!(
                "{command} lists more than the {} messages STAT announced",
                limit.unwrap_or_default()
            )));
        }
        match bad {
            Some(line) => Err(Error::Protocol(format!("{command} line {line:?}"))),
            None => Ok(entries),
        }
    }

    /// `RETR n` into `out`; returns the number of bytes written.
    pub fn retr(&mut self, number: MessageNumber, out: &mut dyn Write) -> Result<u64> {
        let mut written = 0;
        self.retr_many(&[number], &mut |_, body: &mut dyn Read| {
            written = io::copy(body, out)?;
            Ok(())
        })?;
        Ok(written)
    }

    /// `TOP n lines` into `out` (`lines = 0`: the header and the blank line after it).
    pub fn top(&mut self, number: MessageNumber, lines: u32, out: &mut dyn Write) -> Result<u64> {
        let mut written = 0;
        self.top_many(&[number], lines, &mut |_, body: &mut dyn Read| {
            written = io::copy(body, out)?;
            Ok(())
        })?;
        Ok(written)
    }

    /// `RETR` of each message, pipelined when the server allows it, bodies streamed to
    /// `handler` in order. A message the server refuses (`-ERR`, e.g. deleted by another
    /// session) is skipped; after all answers the first refusal is returned as
    /// [`Error::Refused`] with its message number.
    pub fn retr_many(
        &mut self,
        numbers: &[MessageNumber],
        handler: &mut dyn MessageHandler,
    ) -> Result<()> {
        self.bodies(numbers, Command::Retr, handler)
    }

    /// `TOP n lines` of each message, like [`retr_many`](Self::retr_many).
    pub fn top_many(
        &mut self,
        numbers: &[MessageNumber],
        lines: u32,
        handler: &mut dyn MessageHandler,
    ) -> Result<()> {
        self.bodies(numbers, |message| Command::Top { message, lines }, handler)
    }

    /// Sends the commands in a sliding window of [`ConnectOptions::pipeline_depth`]
    /// (refilled when half empty, so writes stay few), reading answers in order.
    ///
    /// [`ConnectOptions::pipeline_depth`]: crate::ConnectOptions::pipeline_depth
    fn bodies(
        &mut self,
        numbers: &[MessageNumber],
        command: impl Fn(MessageNumber) -> Command<'static>,
        handler: &mut dyn MessageHandler,
    ) -> Result<()> {
        let window = self.conn.window();
        let mut in_flight: VecDeque<MessageNumber> = VecDeque::new();
        let mut next = 0;
        let mut handler_error: Option<io::Error> = None;
        let mut refused: Option<Error> = None;
        loop {
            if handler_error.is_none() && next < numbers.len() && in_flight.len() <= window / 2 {
                let take = (window - in_flight.len()).min(numbers.len() - next);
                let batch: Vec<Command<'static>> =
                    numbers[next..next + take].iter().map(|&n| command(n)).collect();
                self.conn.send(&batch)?;
                in_flight.extend(&numbers[next..next + take]);
                next += take;
            }
            let Some(number) = in_flight.pop_front() else { break };
            let name = command(number).name();
            match self.conn.next_head()? {
                Head::MultiLine => {
                    let mut reader = BodyReader::new(&mut self.conn);
                    if handler_error.is_none()
                        && let Err(error) = handler.message(number, &mut reader)
                    {
                        if let Some(transport) = reader.error.take() {
                            return Err(transport);
                        }
                        handler_error = Some(error);
                    }
                    reader.drain()?;
                }
                Head::Status(status) => {
                    refused.get_or_insert(Error::Refused {
                        command: name,
                        message: Some(number),
                        code: status.code,
                        text: status.text,
                    });
                }
                Head::Continuation => {
                    return Err(Error::Protocol(format!("{name} answered with a continuation")));
                }
            }
        }
        if let Some(error) = handler_error {
            return Err(Error::Handler(error));
        }
        refused.map_or(Ok(()), Err)
    }

    /// `NOOP`: keeps the connection alive.
    pub fn noop(&mut self) -> Result<()> {
        self.conn.simple(&Command::Noop, None).map(drop)
    }

    /// `RSET`: unmarks every message marked by
    /// [`delete_message_dangerously`](Self::delete_message_dangerously).
    pub fn rset(&mut self) -> Result<()> {
        self.conn.simple(&Command::Rset, None).map(drop)
    }

    /// `DELE n`: marks the message deleted; the server removes it **for good** at
    /// [`quit`](Self::quit). A migration never needs this; it exists for callers that
    /// move mail on purpose. [`rset`](Self::rset) undoes it before `quit`, and dropping the
    /// session without `quit` deletes nothing.
    pub fn delete_message_dangerously(&mut self, number: MessageNumber) -> Result<()> {
        self.conn.simple(&Command::Dele(number), Some(number)).map(drop)
    }

    /// `QUIT` and close. The server removes messages marked with
    /// [`delete_message_dangerously`](Self::delete_message_dangerously), if any.
    pub fn quit(mut self) -> Result<()> {
        quit(&mut self.conn)
    }
}

pub(crate) fn quit(conn: &mut Conn) -> Result<()> {
    let result = match conn.simple(&Command::Quit, None) {
        // The server may close right after its answer.
        Ok(_) | Err(Error::Net(mailnet::Error::Closed { .. })) => Ok(()),
        Err(other) => Err(other),
    };
    conn.stream.shutdown();
    result
}
