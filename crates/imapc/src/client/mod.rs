//! The blocking client: [`Client`] (not authenticated) → [`Session`] (authenticated).

mod append;
mod auth;
mod conn;
mod fetch;
mod listing;
mod mailbox;
mod session;

use std::time::Duration;

use mailnet::{Opening, Service, Timeouts, TlsConnector, TlsOptions, WrongPort};

use crate::error::{Error, Result};
use crate::proto::{Code, Command, Limits, Response, Status, StatusKind, Untagged};
use crate::types::Capabilities;
use conn::Conn;

pub use append::{AppendOutcome, MAX_APPENDS_IN_FLIGHT};
pub use auth::AuthMechanism;
pub use fetch::{FetchHandler, GuidItem, MessageMeta};
pub use listing::MetadataListing;
pub use mailbox::{ListOptions, ListResult, MailboxInfo, SelectOptions};
pub use mailnet::{Trace, TraceDirection};
pub use session::{AppendUid, CopyUids, Expunged, IdFields, Session};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// Plain TCP: for loopback and tests only.
    Plain,
    /// Implicit TLS from the first byte (imaps, port 993).
    Tls,
    /// Plain TCP upgraded with STARTTLS before login; an error when not offered.
    StartTls,
}

/// Everything needed to connect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Host name or IP address (also the TLS name unless [`TlsOptions::server_name`]).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Plain, TLS or STARTTLS.
    pub security: Security,
    /// TLS roots, extra CA, SNI, verification.
    pub tls: TlsOptions,
    /// Connect and per-read/write timeouts. Connecting (TCP, TLS handshake, greeting,
    /// STARTTLS, capabilities) takes at most [`Timeouts::connect`] in all; afterwards a
    /// command whose answer makes no progress (no complete response line, not 16 KiB of
    /// a body) for [`Timeouts::read`] fails with [`mailnet::Error::Stalled`].
    pub timeouts: Timeouts,
    /// How long the server may take to greet (with implicit TLS, the handshake included),
    /// at most the read timeout. Default 15 s: an IMAP server greets at once, and a port
    /// that stays silent is usually an implicit-TLS port reached without TLS, which is then
    /// told ([`Error::ImplicitTlsPort`]) instead of waited for.
    pub greeting_timeout: Duration,
    /// Caps on what the server may make us buffer.
    pub limits: Limits,
    /// Messages per `UID FETCH` command when bodies are fetched. Default 1 000: one command
    /// streams that many messages back to back (a failed handler drains at most the rest
    /// of one command), and with the default depth of 1 a round trip is lost only once per
    /// 1 000 messages.
    pub prefetch_count: usize,
    /// `UID FETCH` commands kept in flight at once (never more than 32 KiB of command
    /// text unanswered, so a blocking write can never wait on a server that waits for us).
    /// Default 1: Dovecot runs pipelined FETCH commands concurrently and interleaves their
    /// answers (seen with 2.3.19 under CPU load: UIDs arrived out of ascending order), so
    /// only one command at a time keeps bodies in UID order. Raise it only when the order
    /// does not matter.
    pub pipeline_depth: usize,
    /// Longest command line we send. RFC 7162 §4 asks servers to accept 8192 octets;
    /// default 8000.
    pub max_command_len: usize,
    /// Protocol trace, credentials masked. Off by default.
    pub trace: Option<Trace>,
}

impl ConnectOptions {
    /// Options with defaults for everything but the address.
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> ConnectOptions {
        ConnectOptions {
            host: host.into(),
            port,
            security,
            tls: TlsOptions::new(),
            timeouts: Timeouts::default(),
            greeting_timeout: DEFAULT_GREETING_TIMEOUT,
            limits: Limits::default(),
            prefetch_count: 1000,
            pipeline_depth: 1,
            max_command_len: 8000,
            trace: None,
        }
    }

    /// Sets the TLS options.
    pub fn tls(mut self, tls: TlsOptions) -> ConnectOptions {
        self.tls = tls;
        self
    }

    /// Sets the timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> ConnectOptions {
        self.timeouts = timeouts;
        self
    }

    /// Sets the greeting timeout.
    pub fn greeting_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.greeting_timeout = timeout;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> ConnectOptions {
        self.limits = limits;
        self
    }

    /// Sets a protocol trace callback.
    pub fn trace(mut self, trace: Trace) -> ConnectOptions {
        self.trace = Some(trace);
        self
    }

    /// Sets the prefetch count (at least 1).
    pub fn prefetch_count(mut self, count: usize) -> ConnectOptions {
        self.prefetch_count = count.max(1);
        self
    }

    /// Sets how many fetch commands may be in flight (at least 1).
    pub fn pipeline_depth(mut self, depth: usize) -> ConnectOptions {
        self.pipeline_depth = depth.max(1);
        self
    }
}

pub use mailnet::DEFAULT_GREETING_TIMEOUT;

/// Login credentials ([`mailnet::Credentials`] with IMAP's [`AuthMechanism`]). `Debug` and
/// `Display` print `<redacted>`.
pub type Credentials = mailnet::Credentials<AuthMechanism>;

/// A connection that is not yet authenticated.
#[derive(Debug)]
pub struct Client {
    conn: Box<Conn>,
    greeting: Box<Status>,
}

impl Client {
    /// Connects, reads the greeting, does STARTTLS when asked (an error when the server does
    /// not offer it) and learns the capabilities, all within [`Timeouts::connect`]; the
    /// greeting within [`ConnectOptions::greeting_timeout`].
    ///
    /// A wrong port is named rather than waited for: when no greeting comes, the port is
    /// probed for TLS (for as long as the greeting was waited for, 5 s at most) to tell
    /// why. A greeting of another protocol is
    /// [`Error::WrongService`], a silent port that answers a TLS handshake is
    /// [`Error::ImplicitTlsPort`], a plain-text answer to implicit TLS is
    /// [`mailnet::Error::NotTls`].
    pub fn connect(options: &ConnectOptions) -> Result<Client> {
        let tls = match options.security {
            Security::Plain => None,
            Security::Tls | Security::StartTls => Some(TlsConnector::shared(&options.tls)?),
        };
        let implicit_tls = tls.as_ref().filter(|_| options.security == Security::Tls);
        let (stream, opening) = Opening::connect(
            &options.host,
            options.port,
            &options.timeouts,
            options.greeting_timeout,
            implicit_tls,
        )?;
        let mut conn = Conn::new(stream, options.clone());
        let greeting = match read_greeting(&mut conn) {
            Ok(greeting) => greeting,
            Err(error) => return Err(diagnose_greeting(&conn, error, &opening)),
        };
        opening.greeted(&mut conn.stream);
        if let (Some(tls), Security::StartTls) = (&tls, options.security) {
            // STARTTLS is only allowed before authentication (RFC 3501 §6.2.1).
            if greeting.kind == StatusKind::PreAuth {
                return Err(Error::PreauthWithoutTls);
            }
            if conn.capabilities.is_empty() {
                conn.simple(&Command::Capability)?;
            }
            if !conn.capabilities.has("STARTTLS") {
                return Err(Error::StartTlsUnavailable);
            }
            match conn.simple(&Command::StartTls) {
                Ok(_) => {}
                Err(Error::No { code, text, .. } | Error::Bad { code, text, .. }) => {
                    return Err(Error::StartTlsRefused { code, text });
                }
                Err(other) => return Err(other),
            }
            // Anything the server sent after its OK arrived in plaintext and could have
            // been injected (CVE-2011-0411 style): refuse rather than use it.
            if conn.decoder.buffered() > 0 {
                return Err(Error::Protocol("data received after the STARTTLS answer".into()));
            }
            conn.decoder.clear();
            conn.stream.start_tls(tls)?;
            conn.capabilities = Capabilities::default();
        }
        if conn.capabilities.is_empty() {
            conn.simple(&Command::Capability)?;
        }
        conn.stream.set_deadline(None, "");
        Ok(Client { conn: Box::new(conn), greeting: Box::new(greeting) })
    }

    /// Capabilities announced before login.
    pub fn capabilities(&self) -> &Capabilities {
        &self.conn.capabilities
    }

    /// The greeting's status (`OK` or `PREAUTH`) and text.
    pub fn greeting(&self) -> &Status {
        &self.greeting
    }

    /// True when the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.stream.is_tls()
    }

    /// Authenticates. On failure the client comes back with the error, so the caller can
    /// retry with other credentials.
    pub fn login(
        mut self,
        credentials: &Credentials,
    ) -> std::result::Result<Session, (Error, Client)> {
        if self.greeting.kind == StatusKind::PreAuth {
            return Ok(Session::new(self.conn));
        }
        match auth::authenticate(&mut self.conn, credentials) {
            Ok(()) => Ok(Session::new(self.conn)),
            Err(error) => Err((error, self)),
        }
    }

    /// Sends LOGOUT and closes.
    pub fn logout(mut self) -> Result<()> {
        session::logout(&mut self.conn)
    }
}

fn read_greeting(conn: &mut Conn) -> Result<Status> {
    // Look at the first line before decoding it: another protocol's greeting is named,
    // not reported as a malformed response.
    conn.fill_first_line()?;
    if let Some(found) = Service::recognise(conn.decoder.undecoded())
        && found != Service::Imap
    {
        return Err(wrong_service(conn, found));
    }
    loop {
        match conn.next_response()? {
            Response::Untagged(Untagged::Status(status)) => match status.kind {
                StatusKind::Bye => return Err(Error::Bye { code: status.code, text: status.text }),
                // Dovecot may say "* OK Waiting for authentication process to respond.."
                // before its real greeting, which carries the capabilities.
                StatusKind::Ok
                    if status.code.is_none() && status.text.starts_with("Waiting for") => {}
                StatusKind::Ok | StatusKind::PreAuth => {
                    if let Some(Code::Capability(caps)) = &status.code {
                        conn.capabilities = caps.clone();
                    }
                    return Ok(status);
                }
                StatusKind::No | StatusKind::Bad => {
                    return Err(Error::Protocol(format!(
                        "greeting was {:?}: {}",
                        status.kind, status.text
                    )));
                }
            },
            Response::Untagged(_) => {}
            other => return Err(Error::Protocol(format!("unexpected greeting {other:?}"))),
        }
    }
}

fn wrong_service(conn: &Conn, found: Service) -> Error {
    let line = mailnet::greeting_line(conn.decoder.undecoded());
    let greeting = mutf7::escape_for_display(line);
    Error::WrongService { found, greeting, tls: conn.stream.is_tls() }
}

/// The greeting did not come: when the bytes that did, or a TLS probe of the same port,
/// say the port speaks something else, that is the error.
fn diagnose_greeting(conn: &Conn, error: Error, opening: &Opening) -> Error {
    let net = match &error {
        Error::Net(net) => Some(net),
        _ => None,
    };
    let received = conn.decoder.undecoded();
    match opening.wrong_port(Service::Imap, &conn.stream, conn.options.port, received, net) {
        Some(WrongPort::ImplicitTls) => Error::ImplicitTlsPort { waited: opening.greeting_wait() },
        Some(WrongPort::Service(found)) => wrong_service(conn, found),
        None => error,
    }
}
