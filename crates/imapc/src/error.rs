//! The crate's one error type.

use std::io;
use std::time::Duration;

use mailnet::Service;

use crate::proto::{Code, DecodeError, Status};

/// Everything that can go wrong talking to an IMAP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, TLS, reading or writing failed; includes [`mailnet::Error::Timeout`]
    /// for a stalled server.
    #[error(transparent)]
    Net(#[from] mailnet::Error),
    /// The server sent bytes we refuse to decode (limits, malformed tagged lines).
    #[error("protocol error from server: {0}")]
    Decode(#[from] DecodeError),
    /// The server answered `NO`.
    #[error("server refused {command}: {}{text}", code_prefix(code.as_ref()))]
    No {
        /// The command (never its arguments).
        command: &'static str,
        /// Response code, e.g. `TRYCREATE`, `OVERQUOTA`, `THROTTLED`.
        code: Option<Code>,
        /// The server's text.
        text: String,
    },
    /// The server answered `BAD`: it did not understand the command.
    #[error("server rejected {command} as BAD: {}{text}", code_prefix(code.as_ref()))]
    Bad {
        /// The command.
        command: &'static str,
        /// Response code.
        code: Option<Code>,
        /// The server's text.
        text: String,
    },
    /// Login or authentication was refused (wrong password, unknown user, disabled
    /// account). The `Client` is handed back with this error.
    #[error("authentication failed: {}{text}", code_prefix(code.as_ref()))]
    AuthenticationFailed {
        /// Response code, e.g. `AUTHENTICATIONFAILED`, `UNAVAILABLE`.
        code: Option<Code>,
        /// The server's text.
        text: String,
    },
    /// The server said `BYE` and closed the connection (greeting refusal, shutdown,
    /// autologout, too many connections).
    #[error("server closed the connection: {}{text}", code_prefix(code.as_ref()))]
    Bye {
        /// Response code.
        code: Option<Code>,
        /// The server's text.
        text: String,
    },
    /// STARTTLS was requested but the server does not offer it. We never fall back to
    /// plaintext.
    #[error("STARTTLS requested but the server does not offer it")]
    StartTlsUnavailable,
    /// STARTTLS was requested and the server refused it (`NO`/`BAD`). We never fall back to
    /// plaintext.
    #[error("the server refused STARTTLS: {}{text}", code_prefix(code.as_ref()))]
    StartTlsRefused {
        /// Response code.
        code: Option<Code>,
        /// The server's text.
        text: String,
    },
    /// STARTTLS was requested but the server greeted with `PREAUTH` (already logged in),
    /// after which STARTTLS is not allowed (RFC 3501 §6.2.1): the session would stay in
    /// clear text, so it is not used.
    #[error(
        "the server greeted with PREAUTH, so STARTTLS is impossible and the session would stay in clear text"
    )]
    PreauthWithoutTls,
    /// The server is not an IMAP server: its greeting is another protocol's (a POP3
    /// `+OK`, an SMTP `220`, …). Nothing was sent.
    #[error("the server greeted in {found}, not IMAP: {greeting:?}")]
    WrongService {
        /// What the greeting looks like.
        found: Service,
        /// The greeting, escaped and cut short.
        greeting: String,
        /// True when the connection used TLS.
        tls: bool,
    },
    /// No greeting came on a plain connection, but the same port answers a TLS handshake:
    /// it speaks TLS from the first byte (implicit TLS, as port 993 does). Nothing was
    /// sent on the plain connection.
    #[error(
        "no IMAP greeting within {waited:?}, but the port answers a TLS handshake: it expects TLS from the first byte (implicit TLS, as port 993)"
    )]
    ImplicitTlsPort {
        /// How long the greeting was waited for.
        waited: Duration,
    },
    /// The server announces LOGINDISABLED: on a connection without TLS (it refuses
    /// credentials in clear text), or with TLS when it offers no SASL mechanism we can use.
    /// No credentials were sent.
    #[error(
        "the server refuses this login (LOGINDISABLED): it wants TLS; no credentials were sent"
    )]
    LoginDisabled,
    /// The server lacks a capability the requested operation needs.
    #[error("the server does not support {capability}")]
    Unsupported {
        /// The missing capability.
        capability: &'static str,
    },
    /// The server broke the protocol in a way the decoder cannot see (an unknown tag, a
    /// continuation nobody asked for, data after STARTTLS, a missing UIDVALIDITY).
    #[error("protocol violation by server: {0}")]
    Protocol(String),
    /// A [`FetchHandler`](crate::FetchHandler) callback failed; the fetch was aborted and
    /// the connection drained, so the session is still usable.
    #[error("fetch handler failed: {0}")]
    Handler(#[source] io::Error),
    /// An argument cannot be sent (for example a keyword that is not an atom).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn code_prefix(code: Option<&Code>) -> String {
    code.map(|c| format!("[{}] ", c.name())).unwrap_or_default()
}

impl Error {
    /// True when the server asked to slow down (`[THROTTLED]`, Gmail's trailing
    /// `[THROTTLED]`, Exchange's "Request is throttled"): retry later.
    pub fn is_throttled(&self) -> bool {
        match self {
            Error::No { code, text, .. }
            | Error::Bad { code, text, .. }
            | Error::Bye { code, text } => Status {
                kind: crate::proto::StatusKind::No,
                code: code.clone(),
                text: text.clone(),
            }
            .is_throttled(),
            _ => false,
        }
    }

    /// True for a timeout of a stalled server.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Net(e) if e.is_timeout())
    }

    /// The response code of a `NO`/`BAD`/`BYE`/authentication failure.
    pub fn code(&self) -> Option<&Code> {
        match self {
            Error::No { code, .. }
            | Error::Bad { code, .. }
            | Error::Bye { code, .. }
            | Error::AuthenticationFailed { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// True when the connection is no longer usable after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Net(_) | Error::Decode(_) | Error::Bye { .. } | Error::Protocol(_))
    }

    /// True when the location is wrong rather than the server unwell: the port speaks
    /// another protocol, or TLS where plain text was expected (or the reverse), or STARTTLS
    /// cannot be had. Retrying the same way cannot help.
    pub fn is_wrong_endpoint(&self) -> bool {
        matches!(
            self,
            Error::WrongService { .. }
                | Error::ImplicitTlsPort { .. }
                | Error::StartTlsUnavailable
                | Error::StartTlsRefused { .. }
                | Error::PreauthWithoutTls
                | Error::Net(mailnet::Error::NotTls { .. })
        )
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
