//! The blocking client: [`Client`] (before login) → [`Client::login`] → [`Session`].

mod auth;
mod conn;
mod session;

use std::time::{Duration, Instant};

use mailnet::{Stream, Timeouts, TlsConnector, TlsOptions, Trace};

use crate::error::{Error, Result};
use crate::proto::{Capabilities, Command, Limits, Response, Status};
use conn::Conn;

pub use auth::AuthMechanism;
pub use session::{ScriptInfo, ScriptListing, Session, UnusableScript};

/// Login credentials: user, password, optional Dovecot master user (sent as the SASL
/// `PLAIN` authentication identity, the user as authorization identity), mechanism.
pub type Credentials = mailnet::Credentials<AuthMechanism>;

/// The ManageSieve port (RFC 5804 §1.8).
pub const DEFAULT_PORT: u16 = 4190;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP: for loopback and tests only.
    Plain,
    /// Plain TCP upgraded with `STARTTLS` before login (the ManageSieve way); an error
    /// when not offered.
    StartTls,
    /// TLS from the first byte (not standard for ManageSieve, but some set-ups front it
    /// with a TLS proxy).
    Tls,
}

/// Everything needed to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or IP address (also the TLS name unless [`TlsOptions::server_name`]).
    pub host: String,
    /// TCP port ([`DEFAULT_PORT`]).
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    pub security: Security,
    /// TLS roots, extra CA, SNI, verification (always on unless asked by name).
    pub tls: TlsOptions,
    /// Connect and per-read/write timeouts. Connecting (TCP, greeting, STARTTLS and the
    /// capabilities after it) takes at most [`Timeouts::connect`] in all.
    pub timeouts: Timeouts,
    /// Caps on what the server may make us buffer.
    pub limits: Limits,
    /// Protocol trace, off by default; SASL data shows as `<redacted>`, scripts as their
    /// length.
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

    /// Sets a protocol trace callback.
    pub fn trace(mut self, trace: Trace) -> ConnectOptions {
        self.trace = Some(trace);
        self
    }
}

/// A connection before login. Only [`login`](Self::login) leads on.
#[derive(Debug)]
pub struct Client {
    conn: Box<Conn>,
    greeting: Box<Response>,
}

impl Client {
    /// Connects, reads the greeting (capabilities, then `OK`), and with
    /// [`Security::StartTls`] negotiates TLS — the certificate checked — and takes the
    /// capabilities the server re-sends over TLS, dropping the plain-text ones; all within
    /// [`Timeouts::connect`].
    pub fn connect(options: &ConnectOptions) -> Result<Client> {
        let started = Instant::now();
        let tls = match options.security {
            Security::Plain => None,
            Security::Tls | Security::StartTls => Some(TlsConnector::shared(&options.tls)?),
        };
        let mut stream = Stream::connect(&options.host, options.port, &options.timeouts)?;
        let left = options.timeouts.connect.saturating_sub(started.elapsed());
        stream.set_deadline(Some(left.max(Duration::from_millis(1))), "connecting");
        if let (Some(tls), Security::Tls) = (&tls, options.security) {
            stream.start_tls(tls)?;
        }
        let mut conn = Conn::new(stream, options.clone());
        let greeting = match conn.read_capabilities("greeting") {
            Ok(greeting) => greeting,
            Err(Error::Refused { code, text, .. } | Error::Bye { code, text }) => {
                return Err(Error::Greeting { code, text });
            }
            Err(other) => return Err(other),
        };
        if let (Some(tls), Security::StartTls) = (&tls, options.security) {
            start_tls(&mut conn, tls)?;
        }
        conn.stream.set_deadline(None, "");
        Ok(Client { conn: Box::new(conn), greeting: Box::new(greeting) })
    }

    /// The capabilities: the greeting's, or those re-sent after STARTTLS.
    pub fn capabilities(&self) -> &Capabilities {
        &self.conn.capabilities
    }

    /// The greeting's `OK` and its text.
    pub fn greeting(&self) -> &Response {
        &self.greeting
    }

    /// True when the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.stream.is_tls()
    }

    /// Authenticates; then the capabilities are read again (`CAPABILITY`: a server lists
    /// more after login, e.g. Dovecot's `MAXREDIRECTS`). On failure the client comes back
    /// with the error, for another try.
    // Called once per connection, and failing rarely: the size of the error is no cost.
    #[allow(clippy::result_large_err)]
    pub fn login(
        mut self,
        credentials: &Credentials,
    ) -> std::result::Result<Session, (Error, Client)> {
        match auth::authenticate(&mut self.conn, credentials) {
            Ok(()) => Ok(Session::new(self.conn)),
            Err(error) => Err((error, self)),
        }
    }

    /// Sends `LOGOUT` and closes.
    pub fn logout(mut self) -> Result<()> {
        session::logout(&mut self.conn)
    }
}

/// `STARTTLS`, the handshake, and the capabilities the server re-sends (RFC 5804 §2.2).
fn start_tls(conn: &mut Conn, tls: &TlsConnector) -> Result<()> {
    if !conn.capabilities.starttls() {
        return Err(Error::StartTlsUnavailable);
    }
    match conn.run(&Command::StartTls, None) {
        Ok(_) => {}
        Err(Error::Refused { code, text, .. }) => {
            return Err(Error::StartTlsRefused { code, text });
        }
        Err(other) => return Err(other),
    }
    // Bytes after the OK came in plain text and could have been injected (CVE-2011-0411
    // style): refuse them rather than read them as if they came over TLS.
    if !conn.decoder.undecoded().is_empty() {
        return Err(Error::Protocol("data received after the STARTTLS answer".into()));
    }
    conn.decoder.clear();
    conn.capabilities = Capabilities::default();
    conn.stream.start_tls(tls)?;
    let response = conn.read_capabilities("STARTTLS")?;
    debug_assert_eq!(response.status, Status::Ok);
    Ok(())
}
