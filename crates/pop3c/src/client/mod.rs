//! The blocking client: [`Client`] (AUTHORIZATION state) → [`Client::login`] →
//! [`Session`] (TRANSACTION state).

mod auth;
mod conn;
mod session;

use std::time::Duration;

use mailnet::{Opening, Service, Timeouts, TlsConnector, TlsOptions, Trace, WrongPort};

use crate::error::{Error, Result};
use crate::proto::{Command, Limits, Status, apop_timestamp};
use crate::types::Capabilities;
use conn::{Conn, Head};

pub use auth::AuthMechanism;
pub use session::{MessageHandler, MessageInfo, Session, Stat};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// Plain TCP: for loopback and tests only.
    Plain,
    /// Implicit TLS from the first byte (pop3s, port 995).
    Tls,
    /// Plain TCP upgraded with `STLS` (RFC 2595) before login; an error when not offered.
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
    /// Plain, TLS or STLS.
    pub security: Security,
    /// TLS roots, extra CA, SNI, verification.
    pub tls: TlsOptions,
    /// Connect and per-read/write timeouts. Connecting (TCP, TLS handshake, greeting, STLS,
    /// capabilities) takes at most [`Timeouts::connect`] in all; afterwards an answer that
    /// makes no progress (no complete line, not 16 KiB of a body) for [`Timeouts::read`]
    /// fails with [`mailnet::Error::Stalled`].
    pub timeouts: Timeouts,
    /// How long the server may take to greet (with implicit TLS, the handshake included),
    /// at most the read timeout. Default 15 s: a POP3 server greets at once, and a port
    /// that stays silent is usually an implicit-TLS port reached without TLS, which is then
    /// told ([`Error::ImplicitTlsPort`]) instead of waited for.
    pub greeting_timeout: Duration,
    /// Caps on what the server may make us buffer.
    pub limits: Limits,
    /// Commands kept in flight when the server announces `PIPELINING` (RFC 2449 §6.6).
    /// Default 32: `RETR`/`TOP`/`LIST n` lines are short, so 32 of them stay far below any
    /// socket buffer and the server never blocks on us.
    pub pipeline_depth: usize,
    /// Use `PIPELINING` when the server announces it (default). Dovecot's
    /// `pop3c_features = no-pipelining` is the same switch.
    pub pipelining: bool,
    /// Protocol trace, off by default: every command line and every status line. `PASS`,
    /// the `APOP` digest and SASL payloads (both ways) show as `<redacted>`; a listing
    /// shows its first lines and its length, a body only its length.
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
            pipeline_depth: 32,
            pipelining: true,
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

    /// Sets how many commands may be in flight with `PIPELINING` (at least 1).
    pub fn pipeline_depth(mut self, depth: usize) -> ConnectOptions {
        self.pipeline_depth = depth.max(1);
        self
    }

    /// Sets a protocol trace callback.
    pub fn trace(mut self, trace: Trace) -> ConnectOptions {
        self.trace = Some(trace);
        self
    }

    /// Turns the use of `PIPELINING` on or off.
    pub fn pipelining(mut self, enabled: bool) -> ConnectOptions {
        self.pipelining = enabled;
        self
    }
}

pub use mailnet::DEFAULT_GREETING_TIMEOUT;

/// Login credentials ([`mailnet::Credentials`] with POP3's [`AuthMechanism`]). `Debug` and
/// `Display` print `<redacted>`.
pub type Credentials = mailnet::Credentials<AuthMechanism>;

/// A connection in the AUTHORIZATION state. Only [`login`](Self::login) leads on.
#[derive(Debug)]
pub struct Client {
    conn: Box<Conn>,
    greeting: Box<Status>,
}

impl Client {
    /// Connects, reads the greeting, does `STLS` when asked (an error when the server does
    /// not offer it) and learns the capabilities (`CAPA`; none for a server that refuses it),
    /// all within [`Timeouts::connect`]; the greeting within
    /// [`ConnectOptions::greeting_timeout`].
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
        conn.refresh_capabilities()?;
        if let (Some(tls), Security::StartTls) = (&tls, options.security) {
            if !conn.capabilities.has("STLS") {
                return Err(Error::StlsUnavailable);
            }
            match conn.simple(&Command::Stls, None) {
                Ok(_) => {}
                Err(Error::Refused { code, text, .. }) => {
                    return Err(Error::StlsRefused { code, text });
                }
                Err(other) => return Err(other),
            }
            // Anything the server sent after its +OK arrived in plaintext and could have
            // been injected (CVE-2011-0411 style): refuse rather than use it.
            if conn.decoder.buffered() > 0 {
                return Err(Error::Protocol("data received after the STLS answer".into()));
            }
            conn.decoder.clear();
            conn.stream.start_tls(tls)?;
            conn.refresh_capabilities()?;
        }
        conn.stream.set_deadline(None, "");
        Ok(Client { conn: Box::new(conn), greeting: Box::new(greeting) })
    }

    /// Capabilities announced before login (empty when the server refused `CAPA`).
    pub fn capabilities(&self) -> &Capabilities {
        &self.conn.capabilities
    }

    /// The greeting (`+OK` and its text).
    pub fn greeting(&self) -> &Status {
        &self.greeting
    }

    /// The APOP timestamp (`<…@…>`) of the greeting, when the server offers APOP.
    pub fn apop_timestamp(&self) -> Option<&str> {
        apop_timestamp(&self.greeting.text)
    }

    /// True when the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.stream.is_tls()
    }

    /// Authenticates and enters the TRANSACTION state. On failure the client comes back
    /// with the error, so the caller can retry (after a delay for
    /// [`ErrorKind::Retryable`](crate::ErrorKind::Retryable) ones) or try other
    /// credentials.
    pub fn login(
        mut self,
        credentials: &Credentials,
    ) -> std::result::Result<Session, (Error, Client)> {
        let timestamp = self.apop_timestamp().map(str::to_owned);
        match auth::authenticate(&mut self.conn, credentials, timestamp.as_deref()) {
            Ok(()) => Ok(Session::new(self.conn)),
            Err(error) => Err((error, self)),
        }
    }

    /// Sends `QUIT` and closes.
    pub fn quit(mut self) -> Result<()> {
        session::quit(&mut self.conn)
    }
}

/// The greeting: `+OK`, or [`Error::Greeting`] for `-ERR`. Another protocol's greeting
/// is named before it is decoded as POP3.
fn read_greeting(conn: &mut Conn) -> Result<Status> {
    conn.decoder.expect(crate::proto::ResponseKind::SingleLine);
    conn.fill_first_line()?;
    if let Some(found) = Service::recognise(conn.decoder.undecoded())
        && found != Service::Pop3
    {
        return Err(wrong_service(conn, found));
    }
    match conn.next_head()? {
        Head::Status(status) if status.is_ok() => Ok(status),
        Head::Status(status) => Err(Error::Greeting { code: status.code, text: status.text }),
        other => Err(Error::Protocol(format!("unexpected greeting {other:?}"))),
    }
}

fn wrong_service(conn: &Conn, found: Service) -> Error {
    let line = mailnet::greeting_line(conn.decoder.undecoded());
    let greeting = crate::types::escape(line);
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
    match opening.wrong_port(Service::Pop3, &conn.stream, conn.options.port, received, net) {
        Some(WrongPort::ImplicitTls) => Error::ImplicitTlsPort { waited: opening.greeting_wait() },
        Some(WrongPort::Service(found)) => wrong_service(conn, found),
        None => error,
    }
}
