//! The connection core shared by `Client` and `Session`: tags, sending commands (with
//! synchronising literals), reading responses through the sans-IO decoder.

use std::fmt::Write as _;
use std::io::{self, Read};

use mailnet::{SecretMask, Stream};

use crate::error::{Error, Result};
use crate::proto::{
    BodyStart, Code, Command, EncodeOptions, Encoded, Event, Part, Response, ResponseDecoder,
    Status, StatusKind, Untagged, encode,
};
use crate::types::{Capabilities, MailboxName};

use super::{ConnectOptions, TraceDirection};

/// The traced form of a command: credentials redacted, literal data shown by length.
fn trace_text(tag: &str, command: &Command<'_>, encoded: &Encoded<'_>) -> String {
    if encoded.sensitive {
        return match command {
            Command::Authenticate { mechanism, .. } => {
                format!("{tag} AUTHENTICATE {mechanism} <redacted>")
            }
            _ => format!("{tag} {} <redacted>", command.name()),
        };
    }
    let mut text = String::new();
    let mut after_literal_header = false;
    for part in &encoded.parts {
        if let Part::Data(data) = part {
            if after_literal_header {
                let _ = write!(text, "<{} bytes>", data.len());
                after_literal_header = false;
            } else {
                text.push_str(&String::from_utf8_lossy(data));
                after_literal_header = data.ends_with(b"}\r\n");
            }
        }
    }
    text.trim_end().to_owned()
}

/// Traces a response as IMAP text (written again from what was parsed: the items of a
/// FETCH in our writer's order), line by line as on the wire (a literal starts
/// a new line), a streamed body as `<N bytes>`; bytes that are not printable text are
/// shown as `\xNN`.
fn trace_response(trace: &mailnet::Trace, response: &Response) {
    let mut wire = Vec::new();
    crate::proto::write_response_for_trace(response, &mut wire);
    let wire = wire.strip_suffix(b"\r\n").unwrap_or(&wire);
    for line in wire.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        trace.emit(TraceDirection::Received, &printable(line));
    }
}

/// `bytes` as text: UTF-8 kept, control characters and invalid bytes as `\xNN`.
fn printable(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() && c != '\t' {
                let mut buffer = [0; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    let _ = write!(text, "\\x{byte:02x}");
                }
            } else {
                text.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

/// An event with the body bytes already consumed (or pending for a reader).
#[derive(Debug)]
pub(crate) enum Owned {
    Response(Response),
    BodyStart(BodyStart),
    BodyEnd,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) decoder: ResponseDecoder,
    pub(crate) options: ConnectOptions,
    pub(crate) capabilities: Capabilities,
    pub(crate) utf8: bool,
    /// Counts capability announcements, to know whether a command's answer carried one.
    pub(crate) capability_updates: u64,
    next_tag: u32,
    /// The last `BYE`, reported when the server then closes.
    bye: Option<Status>,
    /// Set after an error that leaves the stream out of sync.
    broken: bool,
    /// A metadata listing sent and not read yet (its tag and the mailbox's EXISTS):
    /// `Session::listing` reads it; otherwise the next command reads and drops it first.
    pub(crate) unread_listing: Option<(String, u32)>,
    /// An EXAMINE and its metadata listing sent ahead and not read yet
    /// (`Session::send_examine_then_list`): `Session::finish_examine_then_list` reads
    /// them; otherwise the next command reads and drops them first.
    pub(crate) unread_examine: Option<UnreadExamine>,
    /// `[ALERT]` texts the server sent, for the caller to show: the first
    /// [`MAX_ALERTS`] different ones of the session.
    pub(crate) alerts: Vec<String>,
    /// Alerts not kept (beyond [`MAX_ALERTS`], or repeated), not yet reported.
    pub(crate) alerts_dropped: u64,
    /// Alerts kept in this session, taken or not.
    alerts_kept: usize,
    /// The highest EXISTS since the last SELECT/EXAMINE: no listing of the mailbox may
    /// hold more messages.
    pub(crate) exists: Option<u32>,
    /// The credentials sent, masked in everything the server says before anyone sees it.
    pub(crate) secrets: SecretMask,
    /// Streamed APPENDs in flight: their answers are read before any other command.
    pub(crate) appends: super::append::AppendQueue,
}

/// An EXAMINE and the metadata listing behind it, both sent, neither answer read.
#[derive(Debug)]
pub(crate) struct UnreadExamine {
    /// The mailbox examined.
    pub(crate) mailbox: MailboxName,
    /// The tags of the EXAMINE and the `UID FETCH`; the error when they could not be
    /// sent, for whoever asks for their answers.
    pub(crate) sent: Result<(String, String)>,
}

/// `[ALERT]`s kept per session for the operator; the rest are only counted.
pub(crate) const MAX_ALERTS: usize = 10;

/// Longest alert text kept (characters); a longer one is cut.
const MAX_ALERT_LEN: usize = 500;

impl Conn {
    pub(crate) fn new(mut stream: Stream, options: ConnectOptions) -> Conn {
        let decoder = ResponseDecoder::new(options.limits);
        // A server that trickles a byte every few seconds must not keep a command alive
        // forever: no complete response for the read timeout ends it.
        stream.set_stall_limit(options.timeouts.read);
        Conn {
            stream,
            decoder,
            options,
            capabilities: Capabilities::default(),
            utf8: false,
            capability_updates: 0,
            next_tag: 1,
            bye: None,
            broken: false,
            unread_listing: None,
            unread_examine: None,
            alerts: Vec::new(),
            alerts_dropped: 0,
            alerts_kept: 0,
            exists: None,
            secrets: SecretMask::default(),
            appends: super::append::AppendQueue::default(),
        }
    }

    pub(crate) fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            literal_plus: self.capabilities.has("LITERAL+"),
            literal_minus: self.capabilities.has("LITERAL-") || self.capabilities.has("IMAP4rev2"),
            utf8: self.utf8,
        }
    }

    /// Marks the connection unusable: what it reads next cannot be trusted to belong to
    /// the next command.
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    pub(crate) fn guard<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result
            && error.is_fatal()
        {
            self.broken = true;
        }
        result
    }

    /// Reads more bytes into the decoder.
    fn fill(&mut self) -> Result<()> {
        let spare = self.decoder.spare_mut();
        let n = self.stream.read_some(spare)?;
        if n == 0 {
            return Err(match self.bye.take() {
                Some(status) => Error::Bye { code: status.code, text: status.text },
                None => Error::Net(mailnet::Error::Closed { operation: "read" }),
            });
        }
        self.decoder.filled(n);
        Ok(())
    }

    /// Reads until a whole line is buffered (or 1 KiB without a line end), without
    /// decoding anything: to look at a greeting before it is taken for IMAP.
    pub(crate) fn fill_first_line(&mut self) -> Result<()> {
        while self.decoder.undecoded().len() < 1024
            && memchr::memchr(b'\n', self.decoder.undecoded()).is_none()
        {
            let filled = self.fill();
            self.guard(filled)?;
        }
        Ok(())
    }

    /// The next decoder event, reading as needed. Body bytes of a literal nobody reads are
    /// skipped here.
    pub(crate) fn next_owned(&mut self) -> Result<Owned> {
        if self.broken {
            return Err(Error::Protocol("connection unusable after an earlier error".into()));
        }
        loop {
            let event = self.decoder.next_event();
            let event = match event {
                Err(error) => {
                    let error = self.scrub_decode_error(error);
                    return self.guard(Err(error.into()));
                }
                Ok(event) => event,
            };
            match event {
                Some(Event::Response(mut response)) => {
                    self.stream.progress();
                    scrub_response(&self.secrets, &mut response);
                    if let Some(trace) = &self.options.trace {
                        trace_response(trace, &response);
                    }
                    self.observe(&response);
                    return Ok(Owned::Response(response));
                }
                // Traced with the whole response, once it is complete.
                Some(Event::BodyStart(start)) => {
                    self.stream.progress();
                    return Ok(Owned::BodyStart(start));
                }
                Some(Event::BodyEnd) => {
                    self.stream.progress();
                    return Ok(Owned::BodyEnd);
                }
                Some(Event::BodyData(_)) => {}
                None => {
                    let filled = self.fill();
                    self.guard(filled)?;
                }
            }
        }
    }

    /// The next complete response; body literals are read and dropped.
    pub(crate) fn next_response(&mut self) -> Result<Response> {
        loop {
            match self.next_owned()? {
                Owned::Response(response) => return Ok(response),
                Owned::BodyStart(start) => {
                    let mut reader = BodyReader::new(self, start.len);
                    reader.drain()?;
                }
                Owned::BodyEnd => {}
            }
        }
    }

    /// A decode error's text (the start of an offending line) without the credentials.
    fn scrub_decode_error(&self, error: crate::proto::DecodeError) -> crate::proto::DecodeError {
        match error {
            crate::proto::DecodeError::Malformed { line } => {
                crate::proto::DecodeError::Malformed { line: self.secrets.mask(&line).into_owned() }
            }
            other => other,
        }
    }

    /// Keeps an alert for the caller: the first [`MAX_ALERTS`] different ones, cut to a
    /// sane length with control characters escaped (they go to a terminal); the rest are
    /// counted. A server repeating alerts forever costs no memory.
    fn keep_alert(&mut self, text: &str) {
        if self.alerts_kept >= MAX_ALERTS {
            self.alerts_dropped += 1;
            return;
        }
        let mut shown: String = text
            .chars()
            .take(MAX_ALERT_LEN)
            .flat_map(|c| {
                let escaped: Vec<char> =
                    if c.is_control() { c.escape_default().collect() } else { vec![c] };
                escaped
            })
            .collect();
        if text.chars().nth(MAX_ALERT_LEN).is_some() {
            shown.push('…');
        }
        if self.alerts.contains(&shown) {
            self.alerts_dropped += 1;
            return;
        }
        self.alerts_kept += 1;
        self.alerts.push(shown);
    }

    /// Keeps capabilities, BYE, alerts and EXISTS up to date from any response.
    fn observe(&mut self, response: &Response) {
        let status = match response {
            Response::Untagged(Untagged::Capability(caps)) => {
                self.capabilities = caps.clone();
                self.capability_updates += 1;
                return;
            }
            Response::Untagged(Untagged::Exists(n)) => {
                self.exists = Some(self.exists.map_or(*n, |seen| seen.max(*n)));
                return;
            }
            Response::Untagged(Untagged::Status(status)) | Response::Tagged { status, .. } => {
                status
            }
            _ => return,
        };
        match &status.code {
            Some(Code::Capability(caps)) => {
                self.capabilities = caps.clone();
                self.capability_updates += 1;
            }
            Some(Code::Alert) => self.keep_alert(&status.text),
            _ => {}
        }
        if status.kind == StatusKind::Bye {
            self.bye = Some(status.clone());
        }
    }

    pub(crate) fn next_tag(&mut self) -> String {
        let tag = format!("A{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends a command; for synchronising literals waits for `+`. Returns its tag. A tagged
    /// answer instead of `+` ends the command early and is returned as an error.
    pub(crate) fn send(&mut self, command: &Command<'_>) -> Result<String> {
        let result = self.send_inner(command);
        self.guard(result)
    }

    fn send_inner(&mut self, command: &Command<'_>) -> Result<String> {
        if self.broken {
            return Err(Error::Protocol("connection unusable after an earlier error".into()));
        }
        if self.appends.in_flight() > 0 {
            super::append::drain(self)?;
        }
        self.drain_unread()?;
        let tag = self.next_tag();
        let encoded = encode(&tag, command, self.encode_options());
        if let Some(trace) = &self.options.trace {
            trace.emit(TraceDirection::Sent, &trace_text(&tag, command, &encoded));
        }
        let mut out: Vec<u8> = Vec::new();
        for part in &encoded.parts {
            match part {
                Part::Data(data) => {
                    // Coalesce small pieces; write big literals straight from the caller.
                    if data.len() > 64 * 1024 {
                        self.write_out(&mut out)?;
                        self.stream.send(data)?;
                    } else {
                        out.extend_from_slice(data);
                    }
                }
                Part::AwaitContinuation => {
                    self.write_out(&mut out)?;
                    self.await_continuation(&tag, command.name())?;
                }
            }
        }
        self.write_out(&mut out)?;
        Ok(tag)
    }

    /// Reads and drops the answers of an EXAMINE sent ahead and of a metadata listing
    /// nobody read ([`Conn::unread_examine`], [`Conn::unread_listing`]): they come before
    /// the next command's. Only an error that leaves the connection unusable is returned.
    pub(crate) fn drain_unread(&mut self) -> Result<()> {
        let drop_answers = |conn: &mut Conn, tag: &str, command: &'static str| match conn.finish(
            tag,
            command,
            &mut |_| Ok(()),
        ) {
            Err(error) if error.is_fatal() => Err(error),
            _ => Ok(()),
        };
        if let Some(UnreadExamine { sent: Ok((examine_tag, fetch_tag)), .. }) =
            self.unread_examine.take()
        {
            drop_answers(self, &examine_tag, "EXAMINE")?;
            drop_answers(self, &fetch_tag, "UID FETCH")?;
        }
        if let Some((tag, _)) = self.unread_listing.take() {
            drop_answers(self, &tag, "UID FETCH")?;
        }
        Ok(())
    }

    fn write_out(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if !out.is_empty() {
            self.stream.send(out)?;
            out.clear();
        }
        Ok(())
    }

    fn await_continuation(&mut self, tag: &str, command: &'static str) -> Result<()> {
        loop {
            match self.next_response()? {
                Response::Continuation { .. } => return Ok(()),
                Response::Tagged { tag: t, status } if t == tag => {
                    check(command, status)?;
                    return Err(Error::Protocol(format!(
                        "{command} completed before its literal was sent"
                    )));
                }
                Response::Tagged { tag: t, .. } => {
                    return Err(Error::Protocol(format!("answer for unknown tag {t:?}")));
                }
                Response::Untagged(_) => {}
            }
        }
    }

    /// Runs a command to completion, giving every untagged response to `each`.
    pub(crate) fn run(
        &mut self,
        command: &Command<'_>,
        each: &mut dyn FnMut(Untagged) -> Result<()>,
    ) -> Result<Status> {
        let tag = self.send(command)?;
        self.finish(&tag, command.name(), each)
    }

    /// Reads until the tagged answer for `tag`.
    pub(crate) fn finish(
        &mut self,
        tag: &str,
        command: &'static str,
        each: &mut dyn FnMut(Untagged) -> Result<()>,
    ) -> Result<Status> {
        let mut deferred: Option<Error> = None;
        loop {
            match self.next_response()? {
                Response::Untagged(untagged) => {
                    if deferred.is_none()
                        && let Err(error) = each(untagged)
                    {
                        deferred = Some(error);
                    }
                }
                Response::Tagged { tag: t, status } if t == tag => {
                    let status = check(command, status)?;
                    return match deferred {
                        Some(error) => Err(error),
                        None => Ok(status),
                    };
                }
                Response::Tagged { tag: t, .. } => {
                    return self
                        .guard(Err(Error::Protocol(format!("answer for unknown tag {t:?}"))));
                }
                Response::Continuation { .. } => {
                    return self.guard(Err(Error::Protocol(format!(
                        "unexpected continuation during {command}"
                    ))));
                }
            }
        }
    }

    /// Reads until each of `tags` (commands sent back to back, in that order) is answered,
    /// giving every untagged response to `each`, whichever command it belongs to: a server
    /// may run commands that touch no mailbox concurrently (Dovecot does), so their untagged
    /// answers can interleave. The first failure is returned once all answers are in.
    pub(crate) fn finish_all(
        &mut self,
        tags: &[(String, &'static str)],
        each: &mut dyn FnMut(Untagged) -> Result<()>,
    ) -> Result<()> {
        let mut open: Vec<&(String, &'static str)> = tags.iter().collect();
        let mut deferred: Option<Error> = None;
        while !open.is_empty() {
            match self.next_response()? {
                Response::Untagged(untagged) => {
                    if deferred.is_none()
                        && let Err(error) = each(untagged)
                    {
                        deferred = Some(error);
                    }
                }
                Response::Tagged { tag, status } => {
                    let Some(index) = open.iter().position(|(t, _)| *t == tag) else {
                        return self.guard(Err(Error::Protocol(format!(
                            "answer for unknown tag {tag:?}"
                        ))));
                    };
                    let (_, command) = open.remove(index);
                    if let Err(error) = check(command, status) {
                        deferred.get_or_insert(error);
                    }
                }
                Response::Continuation { .. } => {
                    return self.guard(Err(Error::Protocol(
                        "unexpected continuation during pipelined commands".into(),
                    )));
                }
            }
        }
        deferred.map_or(Ok(()), Err)
    }

    /// Runs a command, ignoring untagged data.
    pub(crate) fn simple(&mut self, command: &Command<'_>) -> Result<Status> {
        self.run(command, &mut |_| Ok(()))
    }
}

/// Masks the credentials in the text parts of a response: status texts (the server may
/// echo a password in a `NO`), response code data, continuation texts and lines kept as
/// malformed. Message data (FETCH) is left alone.
fn scrub_response(secrets: &SecretMask, response: &mut Response) {
    if secrets.is_empty() {
        return;
    }
    let scrub_code = |code: &mut Option<Code>| {
        if let Some(Code::Other { data: Some(data), .. }) = code {
            secrets.mask_in_place(data);
        }
    };
    match response {
        Response::Tagged { status, .. } | Response::Untagged(Untagged::Status(status)) => {
            secrets.mask_in_place(&mut status.text);
            scrub_code(&mut status.code);
        }
        Response::Continuation { code, text } => {
            secrets.mask_in_place(text);
            scrub_code(code);
        }
        Response::Untagged(Untagged::Malformed { raw }) => {
            if let std::borrow::Cow::Owned(masked) = secrets.mask_bytes(raw) {
                *raw = masked;
            }
        }
        Response::Untagged(_) => {}
    }
}

/// Maps a tagged status to `Ok` or the matching error.
pub(crate) fn check(command: &'static str, status: Status) -> Result<Status> {
    match status.kind {
        StatusKind::Ok => Ok(status),
        StatusKind::No => Err(Error::No { command, code: status.code, text: status.text }),
        StatusKind::Bad | StatusKind::PreAuth => {
            Err(Error::Bad { command, code: status.code, text: status.text })
        }
        StatusKind::Bye => Err(Error::Bye { code: status.code, text: status.text }),
    }
}

/// A body literal as a `Read` of exactly its length: buffered bytes first, then straight
/// from the socket into the caller's buffer.
pub(crate) struct BodyReader<'c> {
    conn: &'c mut Conn,
    remaining: u64,
    /// The typed transport error behind an `io::Error` we returned.
    pub(crate) error: Option<Error>,
}

impl std::fmt::Debug for BodyReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyReader").field("remaining", &self.remaining).finish_non_exhaustive()
    }
}

impl<'c> BodyReader<'c> {
    pub(crate) fn new(conn: &'c mut Conn, len: u64) -> BodyReader<'c> {
        BodyReader { conn, remaining: len, error: None }
    }

    /// Reads and drops whatever the handler left unread.
    pub(crate) fn drain(&mut self) -> Result<()> {
        match mailnet::drain(self) {
            Ok(_) => Ok(()),
            Err(error) => Err(self.error.take().unwrap_or(Error::Net(mailnet::Error::Io {
                operation: "read body",
                source: error,
            }))),
        }
    }
}

impl BodyReader<'_> {
    /// Marks the connection unusable after a failed or cut read and keeps the typed error.
    fn read_failed(&mut self, error: mailnet::Error) -> io::Error {
        self.conn.broken = true;
        let kind = if error.is_timeout() { io::ErrorKind::TimedOut } else { io::ErrorKind::Other };
        self.error = Some(Error::Net(error));
        kind.into()
    }

    /// The server closed the connection inside the body.
    fn cut_short(&mut self) -> io::Error {
        self.conn.broken = true;
        self.error = Some(Error::Net(mailnet::Error::Closed { operation: "read body" }));
        io::ErrorKind::UnexpectedEof.into()
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let mut n = self.conn.decoder.read_body(&mut buf[..max]);
        if n == 0 {
            match self.conn.stream.read_some(&mut buf[..max]) {
                Ok(0) => return Err(self.cut_short()),
                Ok(read) => {
                    self.conn.decoder.body_read_directly(read);
                    n = read;
                }
                Err(error) => return Err(self.read_failed(error)),
            }
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The body straight from the connection's receive buffer: a reader that converts or
/// writes the bytes in place saves the copy into a buffer of its own. Reads from the
/// socket go into the receive buffer (up to its free space, 16 KiB at least), so what
/// follows the body comes with the same read.
impl io::BufRead for BodyReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.remaining > 0 && self.conn.decoder.body_bytes().is_empty() {
            let spare = self.conn.decoder.spare_mut();
            match self.conn.stream.read_some(spare) {
                Ok(0) => return Err(self.cut_short()),
                Ok(read) => self.conn.decoder.filled(read),
                Err(error) => return Err(self.read_failed(error)),
            }
        }
        let bytes = self.conn.decoder.body_bytes();
        Ok(&bytes[..bytes.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX))])
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.conn.decoder.body_bytes().len());
        let amount = amount.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.conn.decoder.consume_body(amount);
        self.remaining -= amount as u64;
    }
}
