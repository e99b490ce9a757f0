//! The blocking client: [`Client`] (AUTHORIZATION state) → [`Client::login`] →
//! [`Session`] (TRANSACTION state).

mod auth;
mod conn;
mod session;

use std::fmt;

use mailnet::{Secret, Stream, Timeouts, TlsConnector, TlsOptions, Trace};

use crate::error::{Error, Result};
use crate::proto::{Command, Limits, Status, apop_timestamp};
use crate::types::Capabilities;
use conn::{Conn, Head};

pub use auth::AuthMechanism;
pub use session::{MessageHandler, MessageInfo, Session, Stat};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub struct ConnectOptions {
    /// Host name or IP address (also the TLS name unless [`TlsOptions::server_name`]).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Plain, TLS or STLS.
    pub security: Security,
    /// TLS roots, extra CA, SNI, verification.
    pub tls: TlsOptions,
    /// Connect and per-read/write timeouts.
    pub timeouts: Timeouts,
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

/// Login credentials. `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct Credentials {
    /// The user whose mail we want.
    pub user: String,
    /// The password (of the master user, when `master_user` is set).
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

    /// Logs in as `master` (with the master's password) to reach `user`'s mail: with
    /// `AUTH PLAIN` the user is the authorization identity, with `USER`/`PASS` and `APOP`
    /// the name is `user*master` (Dovecot's `auth_master_user_separator`).
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

    /// The name for `USER` and `APOP`: `user`, or `user*master` for a master user.
    pub(crate) fn login_name(&self) -> String {
        match &self.master_user {
            Some(master) => format!("{}*{master}", self.user),
            None => self.user.clone(),
        }
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

/// A connection in the AUTHORIZATION state. Only [`login`](Self::login) leads on.
#[derive(Debug)]
pub struct Client {
    conn: Box<Conn>,
    greeting: Box<Status>,
}

impl Client {
    /// Connects, reads the greeting, does `STLS` when asked (an error when the server does
    /// not offer it) and learns the capabilities (`CAPA`; none for a server that refuses it).
    pub fn connect(options: &ConnectOptions) -> Result<Client> {
        let tls = match options.security {
            Security::Plain => None,
            Security::Tls | Security::StartTls => Some(TlsConnector::new(&options.tls)?),
        };
        let stream = match (&tls, options.security) {
            (Some(tls), Security::Tls) => {
                Stream::connect_tls(&options.host, options.port, &options.timeouts, tls)?
            }
            _ => Stream::connect(&options.host, options.port, &options.timeouts)?,
        };
        let mut conn = Conn::new(stream, options.clone());
        conn.decoder.expect(crate::proto::ResponseKind::SingleLine);
        let greeting = match conn.next_head()? {
            Head::Status(status) if status.is_ok() => status,
            Head::Status(status) => {
                return Err(Error::Greeting { code: status.code, text: status.text });
            }
            other => return Err(Error::Protocol(format!("unexpected greeting {other:?}"))),
        };
        conn.refresh_capabilities()?;
        if let (Some(tls), Security::StartTls) = (&tls, options.security) {
            if !conn.capabilities.has("STLS") {
                return Err(Error::StlsUnavailable);
            }
            conn.simple(&Command::Stls, None)?;
            // Anything the server sent after its +OK arrived in plaintext and could have
            // been injected (CVE-2011-0411 style): refuse rather than use it.
            if conn.decoder.buffered() > 0 {
                return Err(Error::Protocol("data received after the STLS answer".into()));
            }
            conn.decoder.clear();
            conn.stream.start_tls(tls)?;
            conn.refresh_capabilities()?;
        }
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
