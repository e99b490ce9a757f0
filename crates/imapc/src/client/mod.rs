//! The blocking client: [`Client`] (not authenticated) → [`Session`] (authenticated).

mod append;
mod auth;
mod conn;
mod fetch;
mod mailbox;
mod session;

use std::fmt;
use std::time::{Duration, Instant};

use mailnet::{Secret, Service, Stream, Timeouts, TlsConnector, TlsOptions};

use crate::error::{Error, Result};
use crate::proto::{Code, Command, Limits, Response, Status, StatusKind, Untagged};
use crate::types::Capabilities;
use conn::Conn;

pub use append::{AppendOutcome, MAX_APPENDS_IN_FLIGHT};
pub use auth::AuthMechanism;
pub use fetch::{FetchHandler, GuidItem, MessageMeta};
pub use mailbox::{ListOptions, ListResult, MailboxInfo, SelectOptions};
pub use mailnet::{Trace, TraceDirection};
pub use session::{AppendUid, Expunged, IdFields, Session};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The greeting timeout in force: [`greeting_timeout`](Self::greeting_timeout), but
    /// never longer than the read timeout.
    fn greeting_wait(&self) -> Duration {
        self.timeouts.read.map_or(self.greeting_timeout, |read| read.min(self.greeting_timeout))
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

/// How long a server may take to greet, by default.
pub const DEFAULT_GREETING_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the TLS probe of a silent port may take, at most (and no longer than the
/// greeting was waited for: a TLS server answers a ClientHello at once). The probe comes
/// after the connect budget is given up, to tell why.
const TLS_PROBE_TIME: Duration = Duration::from_secs(5);

/// Login credentials. `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct Credentials {
    /// The user whose mail we want.
    pub user: String,
    /// The password (of the master user, when `master_user` is set), or an OAuth2 token.
    pub password: Secret<String>,
    /// A Dovecot-style master user that logs in on behalf of `user`.
    pub master_user: Option<String>,
    /// How to authenticate.
    pub mechanism: AuthMechanism,
}

impl Credentials {
    /// User and password, mechanism chosen automatically.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            user: user.into(),
            password: Secret::new(password.into()),
            master_user: None,
            mechanism: AuthMechanism::Auto,
        }
    }

    /// Logs in as `master` (with the master's password) to reach `user`'s mail.
    pub fn master(
        user: impl Into<String>,
        master: impl Into<String>,
        password: impl Into<String>,
    ) -> Credentials {
        Credentials { master_user: Some(master.into()), ..Credentials::new(user, password) }
    }

    /// Sets the mechanism.
    pub fn mechanism(mut self, mechanism: AuthMechanism) -> Credentials {
        self.mechanism = mechanism;
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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
        let started = Instant::now();
        let tls = match options.security {
            Security::Plain => None,
            Security::Tls | Security::StartTls => Some(TlsConnector::new(&options.tls)?),
        };
        // What is left of the connect budget, in whole milliseconds (for the message).
        let budget_left = || {
            let left = options.timeouts.connect.saturating_sub(started.elapsed());
            Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
        };
        let mut stream = Stream::connect(&options.host, options.port, &options.timeouts)?;
        // Shown in tenths of a second: what is left of the budget is no round number.
        let greeting_wait = tenths(options.greeting_wait().min(budget_left()));
        stream.set_deadline(Some(greeting_wait), "waiting for the server's greeting");
        if let (Some(tls), Security::Tls) = (&tls, options.security) {
            stream.start_tls(tls)?;
        }
        let mut conn = Conn::new(stream, options.clone());
        let greeting = match read_greeting(&mut conn) {
            Ok(greeting) => greeting,
            Err(error) => {
                return Err(diagnose_greeting(&conn, error, options, greeting_wait));
            }
        };
        conn.stream.set_deadline(Some(budget_left()), "connecting");
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

/// `duration` to the nearest tenth of a second (at least one tenth).
fn tenths(duration: Duration) -> Duration {
    let tenths = (duration.as_millis() + 50) / 100;
    Duration::from_millis(u64::try_from(tenths.max(1) * 100).unwrap_or(u64::MAX))
}

fn wrong_service(conn: &Conn, found: Service) -> Error {
    let line = conn.decoder.undecoded().split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let greeting = mutf7::escape_for_display(&line[..line.len().min(200)]);
    Error::WrongService { found, greeting, tls: conn.stream.is_tls() }
}

/// The greeting did not come: when the bytes that did, or a TLS probe of the same port,
/// say the port speaks something else, that is the error.
fn diagnose_greeting(
    conn: &Conn,
    error: Error,
    options: &ConnectOptions,
    waited: Duration,
) -> Error {
    let received = conn.decoder.undecoded();
    let tls = conn.stream.is_tls();
    match Service::recognise(received) {
        Some(Service::Tls) if !tls => return Error::ImplicitTlsPort { waited },
        Some(Service::Imap) | None => {}
        Some(found) => return wrong_service(conn, found),
    }
    let silent = received.is_empty()
        && matches!(&error, Error::Net(net)
            if net.is_timeout() || matches!(net, mailnet::Error::Closed { .. }));
    if silent
        && !tls
        && Stream::answers_tls(&options.host, options.port, waited.min(TLS_PROBE_TIME))
    {
        return Error::ImplicitTlsPort { waited };
    }
    error
}
