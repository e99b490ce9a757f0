//! The connection core shared by `Client` and `Session`: sending commands (several at
//! once when pipelining), reading answers through the sans-IO decoder, and reading bodies.

use std::io::{self, Read};

use mailnet::{SecretMask, Stream, Trace, TraceDirection};

use crate::error::{Error, Result};
use crate::proto::{Command, Decoder, Event, Status, parse_capability};
use crate::types::{Capabilities, MessageNumber, escape};

use super::ConnectOptions;

/// The first line of an answer.
#[derive(Debug)]
pub(crate) enum Head {
    /// A complete single-line answer, or `-ERR` to a multi-line command.
    Status(Status),
    /// `+OK` opening a multi-line answer.
    MultiLine,
    /// A SASL challenge.
    Continuation,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) decoder: Decoder,
    pub(crate) options: ConnectOptions,
    pub(crate) capabilities: Capabilities,
    /// Set after an error that leaves the stream out of sync.
    broken: bool,
    /// Lines (listing) or octets (body) of the multi-line answer being read, for the trace.
    multi_line_len: u64,
    /// The credentials sent, masked in everything the server says before anyone sees it.
    pub(crate) secrets: SecretMask,
}

/// Lines of a `CAPA` answer kept: a real server sends a dozen; the rest are ignored.
const MAX_CAPABILITIES: usize = 256;

/// Lines of a listing (`CAPA`, `LIST`, `UIDL`) a trace shows; the rest are only counted.
const TRACE_LISTING_LINES: u64 = 16;

/// Hands a line to the trace, if any; `text` is only built when there is one.
fn emit(trace: Option<&Trace>, direction: TraceDirection, text: impl FnOnce() -> String) {
    if let Some(trace) = trace {
        trace.emit(direction, &text());
    }
}

/// A status line as the trace shows it: `+OK [CODE] text`, control characters escaped.
fn status_line(status: &Status) -> String {
    let mut line = String::from(if status.is_ok() { "+OK" } else { "-ERR" });
    if let Some(code) = &status.code {
        line.push_str(" [");
        line.push_str(code.as_str());
        line.push(']');
    }
    if !status.text.is_empty() {
        line.push(' ');
        for c in status.text.chars() {
            if c.is_control() {
                line.extend(c.escape_default());
            } else {
                line.push(c);
            }
        }
    }
    line
}

impl Conn {
    pub(crate) fn new(mut stream: Stream, options: ConnectOptions) -> Conn {
        let decoder = Decoder::new(options.limits);
        // A server that trickles a byte every few seconds must not keep a command alive
        // forever: no complete line for the read timeout ends it.
        stream.set_stall_limit(options.timeouts.read);
        Conn {
            stream,
            decoder,
            options,
            capabilities: Capabilities::default(),
            broken: false,
            multi_line_len: 0,
            secrets: SecretMask::default(),
        }
    }

    /// A status from the server with the credentials masked in its text.
    fn scrubbed(&self, mut status: Status) -> Status {
        self.secrets.mask_in_place(&mut status.text);
        status
    }

    /// A decode error with the credentials masked in the line it quotes.
    fn scrub_error(&self, error: crate::proto::DecodeError) -> Error {
        use crate::proto::DecodeError;
        let error = match error {
            DecodeError::Malformed { line } => {
                DecodeError::Malformed { line: self.secrets.mask(&line).into_owned() }
            }
            DecodeError::Unsolicited { line } => {
                DecodeError::Unsolicited { line: self.secrets.mask(&line).into_owned() }
            }
            other => other,
        };
        Error::Decode(error)
    }

    /// Reads until a whole line is buffered (or 1 KiB without a line end), without
    /// decoding anything: to look at a greeting before it is taken for POP3.
    pub(crate) fn fill_first_line(&mut self) -> Result<()> {
        while self.decoder.undecoded().len() < 1024 && !self.decoder.undecoded().contains(&b'\n') {
            self.fill()?;
        }
        Ok(())
    }

    /// Commands that may be in flight at once: 1 without `PIPELINING`.
    pub(crate) fn window(&self) -> usize {
        if self.options.pipelining && self.capabilities.pipelining() {
            self.options.pipeline_depth.max(1)
        } else {
            1
        }
    }

    fn guard<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result
            && error.is_fatal()
        {
            self.broken = true;
        }
        result
    }

    fn check_usable(&self) -> Result<()> {
        if self.broken {
            return Err(Error::Protocol("connection unusable after an earlier error".into()));
        }
        Ok(())
    }

    /// Encodes `commands`, queues their framing in the decoder and writes them at once.
    pub(crate) fn send(&mut self, commands: &[Command<'_>]) -> Result<()> {
        self.check_usable()?;
        // A whole line that arrived while no answer was pending (an "autologout" notice, a
        // server answering twice) would be taken for the next command's answer: refuse it.
        if self.decoder.expected() == 0
            && !self.decoder.in_multi_line()
            && let Err(error) = self.decoder.next_event()
        {
            let error = self.scrub_error(error);
            return self.guard(Err(error));
        }
        let mut out = Vec::with_capacity(commands.len() * 16);
        for command in commands {
            command.encode(&mut out)?;
        }
        for command in commands {
            self.decoder.expect(command.response_kind());
            emit(self.options.trace.as_ref(), TraceDirection::Sent, || command.redacted());
        }
        let sent = self.stream.send(&out).map_err(Error::from);
        self.guard(sent)
    }

    /// Reads more bytes into the decoder; end of stream is [`mailnet::Error::Closed`].
    fn fill(&mut self) -> Result<()> {
        let spare = self.decoder.spare_mut();
        let read = self.stream.read_some(spare);
        let n = self.guard(read.map_err(Error::from))?;
        if n == 0 {
            self.broken = true;
            return Err(Error::Net(mailnet::Error::Closed { operation: "read" }));
        }
        self.decoder.filled(n);
        Ok(())
    }

    /// The first line of the next answer.
    pub(crate) fn next_head(&mut self) -> Result<Head> {
        self.check_usable()?;
        loop {
            let head = match self.decoder.next_event() {
                Ok(Some(Event::Status(status))) => {
                    let status = self.scrubbed(status);
                    self.stream.progress();
                    emit(self.options.trace.as_ref(), TraceDirection::Received, || {
                        status_line(&status)
                    });
                    Head::Status(status)
                }
                Ok(Some(Event::MultiLineStart(status))) => {
                    let status = self.scrubbed(status);
                    self.stream.progress();
                    emit(self.options.trace.as_ref(), TraceDirection::Received, || {
                        status_line(&status)
                    });
                    self.multi_line_len = 0;
                    Head::MultiLine
                }
                Ok(Some(Event::Continuation(challenge))) => {
                    self.stream.progress();
                    // A SASL challenge is redacted like our responses: some mechanisms
                    // carry secrets in both directions.
                    let text = if challenge.is_empty() { "+" } else { "+ <redacted>" };
                    emit(self.options.trace.as_ref(), TraceDirection::Received, || text.to_owned());
                    Head::Continuation
                }
                Ok(Some(other)) => {
                    let error =
                        Error::Protocol(format!("unexpected {} before a status", other.summary()));
                    return self.guard(Err(error));
                }
                Ok(None) => {
                    self.fill()?;
                    continue;
                }
                Err(error) => {
                    let error = self.scrub_error(error);
                    return self.guard(Err(error));
                }
            };
            return Ok(head);
        }
    }

    /// The next listing line given to `each`, or `None` at the terminating `.`.
    pub(crate) fn next_line<T>(&mut self, each: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        self.check_usable()?;
        loop {
            match self.decoder.next_event() {
                Ok(Some(Event::Line(line))) => {
                    self.stream.progress();
                    self.multi_line_len += 1;
                    if self.multi_line_len <= TRACE_LISTING_LINES {
                        let secrets = &self.secrets;
                        emit(self.options.trace.as_ref(), TraceDirection::Received, || {
                            secrets.mask(&escape(line)).into_owned()
                        });
                    }
                    return Ok(Some(each(line)));
                }
                Ok(Some(Event::End)) => {
                    self.stream.progress();
                    let lines = self.multi_line_len;
                    emit(self.options.trace.as_ref(), TraceDirection::Received, || {
                        format!(". ({lines} line{})", if lines == 1 { "" } else { "s" })
                    });
                    return Ok(None);
                }
                Ok(Some(other)) => {
                    let error =
                        Error::Protocol(format!("unexpected {} in a listing", other.summary()));
                    return self.guard(Err(error));
                }
                Ok(None) => self.fill()?,
                Err(error) => {
                    let error = self.scrub_error(error);
                    return self.guard(Err(error));
                }
            }
        }
    }

    /// Copies the next body bytes into `dst`, as many as are buffered (reading only when
    /// none are); also says whether the terminating `.` was reached.
    pub(crate) fn read_body(&mut self, dst: &mut [u8]) -> Result<(usize, bool)> {
        self.check_usable()?;
        let mut filled = 0;
        loop {
            if filled == dst.len() {
                return Ok((filled, false));
            }
            match self.decoder.next_event_max(dst.len() - filled) {
                Ok(Some(Event::Data(data))) => {
                    dst[filled..filled + data.len()].copy_from_slice(data);
                    filled += data.len();
                    self.multi_line_len += data.len() as u64;
                }
                Ok(Some(Event::End)) => {
                    self.stream.progress();
                    let octets = self.multi_line_len;
                    emit(self.options.trace.as_ref(), TraceDirection::Received, || {
                        format!(". ({octets} octets)")
                    });
                    return Ok((filled, true));
                }
                Ok(Some(other)) => {
                    let error =
                        Error::Protocol(format!("unexpected {} in a body", other.summary()));
                    return self.guard(Err(error));
                }
                Ok(None) if filled > 0 => return Ok((filled, false)),
                Ok(None) => self.fill()?,
                Err(error) => {
                    let error = self.scrub_error(error);
                    return self.guard(Err(error));
                }
            }
        }
    }

    /// Runs a single-line command; `-ERR` becomes [`Error::Refused`].
    pub(crate) fn simple(
        &mut self,
        command: &Command<'_>,
        message: Option<MessageNumber>,
    ) -> Result<Status> {
        self.send(std::slice::from_ref(command))?;
        self.expect_ok(command.name(), message)
    }

    /// Reads a single-line answer; `-ERR` becomes [`Error::Refused`].
    pub(crate) fn expect_ok(
        &mut self,
        command: &'static str,
        message: Option<MessageNumber>,
    ) -> Result<Status> {
        match self.next_head()? {
            Head::Status(status) if status.is_ok() => Ok(status),
            Head::Status(status) => {
                Err(Error::Refused { command, message, code: status.code, text: status.text })
            }
            other => self.guard(Err(Error::Protocol(format!("{command} answered with {other:?}")))),
        }
    }

    /// `CAPA`; a server that refuses it has no capabilities (RFC 1939 only).
    pub(crate) fn refresh_capabilities(&mut self) -> Result<()> {
        self.send(&[Command::Capa])?;
        match self.next_head()? {
            Head::MultiLine => {
                let mut entries = Vec::new();
                // Lines that do not parse (empty ones, control characters) are skipped:
                // CAPA is advisory and an odd line must not stop a migration. So are lines
                // beyond any real server's list, which would only cost memory.
                while let Some(entry) = self.next_line(|line| parse_capability(line).ok())? {
                    if entries.len() < MAX_CAPABILITIES {
                        entries.extend(entry);
                    }
                }
                self.capabilities = Capabilities::new(entries);
            }
            Head::Status(_) => self.capabilities = Capabilities::default(),
            Head::Continuation => {
                return self.guard(Err(Error::Protocol("CAPA answered with `+ `".into())));
            }
        }
        Ok(())
    }
}

/// A body as a `Read`: exactly the message bytes (unstuffed), then end of file.
pub(crate) struct BodyReader<'c> {
    conn: &'c mut Conn,
    done: bool,
    /// The typed transport error behind an `io::Error` we returned.
    pub(crate) error: Option<Error>,
}

impl std::fmt::Debug for BodyReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyReader").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<'c> BodyReader<'c> {
    pub(crate) fn new(conn: &'c mut Conn) -> BodyReader<'c> {
        BodyReader { conn, done: false, error: None }
    }

    /// Reads and drops whatever the handler left unread.
    pub(crate) fn drain(&mut self) -> Result<()> {
        match mailnet::drain(self) {
            Ok(_) => Ok(()),
            Err(error) => Err(self.error.take().unwrap_or(Error::Handler(error))),
        }
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        match self.conn.read_body(buf) {
            Ok((n, ended)) => {
                self.done = ended;
                Ok(n)
            }
            Err(error) => {
                let kind = if error.is_timeout() {
                    io::ErrorKind::TimedOut
                } else if matches!(error, Error::Net(mailnet::Error::Closed { .. })) {
                    io::ErrorKind::UnexpectedEof
                } else {
                    io::ErrorKind::InvalidData
                };
                let message = error.to_string();
                self.error = Some(error);
                Err(io::Error::new(kind, message))
            }
        }
    }
}
