//! The connection core shared by `Client` and `Session`: sending a command, reading lines
//! through the sans-IO decoder, collecting an answer.

use mailnet::{SecretMask, Stream, TraceDirection};

use crate::error::{Error, Result};
use crate::proto::{Capabilities, Command, Decoder, Line, Response, Status, Token, escape};

use super::ConnectOptions;

/// Data lines kept for one answer: a listing of 100 000 scripts is far beyond any quota.
const MAX_DATA_LINES: usize = 100_000;

/// Capability lines kept: a real server sends fewer than a dozen.
const MAX_CAPABILITIES: usize = 256;

/// The data lines of an answer and the `OK` that ended it.
pub(crate) type Answer = (Vec<Vec<Token>>, Response);

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) decoder: Decoder,
    pub(crate) options: ConnectOptions,
    pub(crate) capabilities: Capabilities,
    /// Set after an error that leaves the stream out of sync, or a `BYE`.
    broken: bool,
    /// The credentials sent, masked in everything the server says.
    pub(crate) secrets: SecretMask,
}

impl Conn {
    pub(crate) fn new(mut stream: Stream, options: ConnectOptions) -> Conn {
        // A server that trickles a byte now and then must not keep a command alive
        // forever: no complete line (or 16 KiB of one) for the read timeout ends it.
        stream.set_stall_limit(options.timeouts.read);
        Conn {
            stream,
            decoder: Decoder::new(options.limits),
            options,
            capabilities: Capabilities::default(),
            broken: false,
            secrets: SecretMask::default(),
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

    fn trace(&self, direction: TraceDirection, text: impl FnOnce() -> String) {
        if let Some(trace) = &self.options.trace {
            trace.emit(direction, &text());
        }
    }

    /// Encodes and writes one command.
    pub(crate) fn send(&mut self, command: &Command<'_>) -> Result<()> {
        if self.broken {
            return Err(Error::Protocol("connection unusable after an earlier error".into()));
        }
        // Anything buffered now came unasked (a server answering twice): it would be taken
        // for this command's answer.
        if !self.decoder.undecoded().is_empty() {
            let unasked =
                escape(&self.decoder.undecoded()[..self.decoder.undecoded().len().min(80)]);
            let error = Error::Protocol(format!("unsolicited data from server: {unasked:?}"));
            return self.guard(Err(error));
        }
        let mut out = Vec::new();
        command.encode(&mut out);
        self.trace(TraceDirection::Sent, || command.redacted());
        let sent = self.stream.send(&out).map_err(Error::from);
        self.guard(sent)
    }

    /// Reads more bytes; end of stream is [`mailnet::Error::Closed`].
    fn fill(&mut self) -> Result<()> {
        let read = self.stream.read_some(self.decoder.spare_mut());
        let n = self.guard(read.map_err(Error::from))?;
        if n == 0 {
            self.broken = true;
            return Err(Error::Net(mailnet::Error::Closed { operation: "read" }));
        }
        self.decoder.filled(n);
        Ok(())
    }

    /// The next line, with the credentials masked in a response's text.
    pub(crate) fn next_line(&mut self) -> Result<Line> {
        if self.broken {
            return Err(Error::Protocol("connection unusable after an earlier error".into()));
        }
        loop {
            match self.decoder.next_line() {
                Ok(Some(Line::Response(mut response))) => {
                    self.stream.progress();
                    self.secrets.mask_in_place(&mut response.text);
                    if response.status == Status::Bye {
                        self.broken = true;
                    }
                    self.trace(TraceDirection::Received, || response_line(&response));
                    return Ok(Line::Response(response));
                }
                Ok(Some(Line::Data(tokens))) => {
                    self.stream.progress();
                    self.trace(TraceDirection::Received, || data_line(&tokens));
                    return Ok(Line::Data(tokens));
                }
                Ok(None) => self.fill()?,
                Err(error) => return self.guard(Err(Error::Decode(error))),
            }
        }
    }

    /// Reads data lines up to the response that ends the answer; `NO`/`BYE` become errors
    /// about `command` (and `script`).
    pub(crate) fn answer(&mut self, command: &'static str, script: Option<&str>) -> Result<Answer> {
        let mut data = Vec::new();
        loop {
            match self.next_line()? {
                Line::Data(tokens) => {
                    if data.len() >= MAX_DATA_LINES {
                        let error = Error::Protocol(format!(
                            "more than {MAX_DATA_LINES} lines in the answer to {command}"
                        ));
                        return self.guard(Err(error));
                    }
                    data.push(tokens);
                }
                Line::Response(response) if response.status == Status::Ok => {
                    return Ok((data, response));
                }
                Line::Response(response) => {
                    return Err(Error::from_response(command, script, response));
                }
            }
        }
    }

    /// Sends `command` and reads its answer.
    pub(crate) fn run(&mut self, command: &Command<'_>, script: Option<&str>) -> Result<Answer> {
        self.send(command)?;
        self.answer(command.name(), script)
    }

    /// Reads a capability listing (the greeting, after STARTTLS, or `CAPABILITY`'s answer)
    /// into [`Conn::capabilities`]. Each line is checked as it comes, so that another
    /// protocol's greeting (`* OK`, `+OK`) is refused at once rather than waited on.
    pub(crate) fn read_capabilities(&mut self, command: &'static str) -> Result<Response> {
        let mut capabilities = Capabilities::default();
        loop {
            let tokens = match self.next_line()? {
                Line::Data(tokens) => tokens,
                Line::Response(response) if response.status == Status::Ok => {
                    self.capabilities = capabilities;
                    return Ok(response);
                }
                Line::Response(response) => {
                    return Err(Error::from_response(command, None, response));
                }
            };
            let text = |token: &Token| {
                token.string().map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            };
            let parsed = match tokens.as_slice() {
                [name] => text(name).map(|name| (name, None)),
                [name, value] => text(name).zip(text(value)).map(|(n, v)| (n, Some(v))),
                _ => None,
            };
            let Some((name, value)) = parsed else {
                let error = Error::Protocol(format!(
                    "{command}: not a ManageSieve capability line: {}",
                    data_line(&tokens)
                ));
                return self.guard(Err(error));
            };
            if capabilities.iter().count() < MAX_CAPABILITIES {
                capabilities.push(name, value);
            }
        }
    }
}

/// A response as the trace shows it.
fn response_line(response: &Response) -> String {
    let mut line = response.status.to_string();
    if let Some(code) = &response.code {
        line.push_str(" (");
        line.push_str(&code.to_string());
        line.push(')');
    }
    if !response.text.is_empty() {
        line.push(' ');
        line.push_str(&escape(response.text.as_bytes()));
    }
    line
}

/// A data line as the trace and errors show it: long strings (scripts) as their length.
fn data_line(tokens: &[Token]) -> String {
    let shown: Vec<String> = tokens
        .iter()
        .map(|token| match token {
            // A script (GETSCRIPT) shows as its length: it may hold addresses and texts
            // that do not belong in logs. Capabilities and names are short one-liners.
            Token::String(bytes) if bytes.len() > 200 || bytes.contains(&b'\n') => {
                format!("{{{}}} <script>", bytes.len())
            }
            Token::String(bytes) => format!("\"{}\"", escape(bytes)),
            Token::Atom(bytes) => escape(bytes),
            Token::List(items) => format!("({})", data_line(items)),
        })
        .collect();
    shown.join(" ")
}
