//! The crate's one error type, and how to react to it ([`ErrorKind`]).

use std::io;
use std::time::Duration;

use mailnet::Service;

use crate::proto::{DecodeError, EncodeError};
use crate::types::{MessageNumber, ResponseCode};

/// Everything that can go wrong talking to a POP3 server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, TLS, reading or writing failed; includes [`mailnet::Error::Timeout`]
    /// for a stalled server and [`mailnet::Error::Closed`] for a cut connection (also in
    /// the middle of a multi-line answer, before its terminating `.`).
    #[error(transparent)]
    Net(#[from] mailnet::Error),
    /// The server sent bytes we refuse to decode (limits, malformed status lines).
    #[error("protocol error from server: {0}")]
    Decode(#[from] DecodeError),
    /// The server answered `-ERR`.
    #[error("server refused {command}{}: {}{text}", message_suffix(*message), code_prefix(code.as_ref()))]
    Refused {
        /// The command (never its arguments).
        command: &'static str,
        /// The message the command was about, if any.
        message: Option<MessageNumber>,
        /// `[IN-USE]`, `[SYS/TEMP]` … when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// Login was refused: wrong password, unknown user, locked maildrop, login delay… The
    /// [`Client`](crate::Client) is handed back with this error; [`Error::kind`] says
    /// whether to retry (`[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`) or not.
    #[error("login failed: {}{text}", code_prefix(code.as_ref()))]
    AuthenticationFailed {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// The server greeted with `-ERR` (too many connections, maintenance …).
    #[error("server refused the connection: {}{text}", code_prefix(code.as_ref()))]
    Greeting {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// STLS was requested but the server does not offer it. We never fall back to
    /// plaintext.
    #[error("STLS requested but the server does not offer it")]
    StlsUnavailable,
    /// STLS was requested and the server refused it (`-ERR`). We never fall back to
    /// plaintext.
    #[error("the server refused STLS: {}{text}", code_prefix(code.as_ref()))]
    StlsRefused {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// The server is not a POP3 server: its greeting is another protocol's (an IMAP
    /// `* OK`, an SMTP `220`, …). Nothing was sent.
    #[error("the server greeted in {found}, not POP3: {greeting:?}")]
    WrongService {
        /// What the greeting looks like.
        found: Service,
        /// The greeting, escaped and cut short.
        greeting: String,
        /// True when the connection used TLS.
        tls: bool,
    },
    /// No greeting came on a plain connection, but the same port answers a TLS handshake:
    /// it speaks TLS from the first byte (implicit TLS, as port 995 does). Nothing was
    /// sent on the plain connection.
    #[error(
        "no POP3 greeting within {waited:?}, but the port answers a TLS handshake: it expects TLS from the first byte (implicit TLS, as port 995)"
    )]
    ImplicitTlsPort {
        /// How long the greeting was waited for.
        waited: Duration,
    },
    /// The connection has no TLS and the server's CAPA offers no way to log in without it
    /// (neither `USER` nor SASL `PLAIN`, as Dovecot does with `disable_plaintext_auth`).
    /// No credentials were sent.
    #[error(
        "the server takes no password without TLS (its CAPA offers neither USER nor SASL PLAIN); no credentials were sent"
    )]
    LoginDisabled,
    /// The server lacks what the operation needs (e.g. APOP without a greeting timestamp,
    /// `UIDL` refused by an RFC 1939-only server).
    #[error("the server does not support {capability}")]
    Unsupported {
        /// The missing capability or command.
        capability: &'static str,
    },
    /// The server broke the protocol in a way the decoder cannot see (a listing line that
    /// does not parse, data after the STLS answer, an impossible answer).
    #[error("protocol violation by server: {0}")]
    Protocol(String),
    /// A body handler failed; the transfer was aborted and the rest of the answers read
    /// and dropped, so the session is still usable.
    #[error("message handler failed: {0}")]
    Handler(#[source] io::Error),
    /// An argument cannot be sent (CR/LF in a user name, an overlong command).
    #[error("invalid argument: {0}")]
    InvalidArgument(#[from] EncodeError),
}

fn code_prefix(code: Option<&ResponseCode>) -> String {
    code.map(|c| format!("[{c}] ")).unwrap_or_default()
}

fn message_suffix(message: Option<MessageNumber>) -> String {
    message.map(|m| format!(" {m}")).unwrap_or_default()
}

/// How a caller should react to an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Try again later, possibly after a delay: `[IN-USE]` (another session has the
    /// maildrop), `[LOGIN-DELAY]`, `[SYS/TEMP]`, timeouts, cut connections.
    Retryable,
    /// The credentials are wrong (`[AUTH]`, or a login refused without a code): retrying
    /// with the same ones will not help, and may lock the account.
    Credentials,
    /// Retrying will not help: `[SYS/PERM]`, certificate errors, protocol violations,
    /// missing capabilities, other refusals.
    Permanent,
}

impl Error {
    /// Classifies the error: retry, fix the credentials, or give up.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Net(
                mailnet::Error::Timeout { .. }
                | mailnet::Error::Stalled { .. }
                | mailnet::Error::Closed { .. }
                | mailnet::Error::Connect { .. }
                | mailnet::Error::Io { .. },
            ) => ErrorKind::Retryable,
            // A resolver that could not answer for now; an unknown name is permanent.
            Error::Net(net @ mailnet::Error::Resolve { .. }) if !net.is_unknown_host() => {
                ErrorKind::Retryable
            }
            Error::Refused { code, .. }
            | Error::Greeting { code, .. }
            | Error::StlsRefused { code, .. } => match code {
                Some(ResponseCode::Auth) => ErrorKind::Credentials,
                Some(c) if is_temporary(c) => ErrorKind::Retryable,
                _ => ErrorKind::Permanent,
            },
            Error::AuthenticationFailed { code, .. } => match code {
                Some(c) if is_temporary(c) => ErrorKind::Retryable,
                Some(ResponseCode::SysPerm) => ErrorKind::Permanent,
                _ => ErrorKind::Credentials,
            },
            _ => ErrorKind::Permanent,
        }
    }

    /// True when [`kind`](Self::kind) is [`ErrorKind::Retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }

    /// True for a timeout of a stalled server.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Net(e) if e.is_timeout())
    }

    /// The response code of a refusal.
    pub fn code(&self) -> Option<&ResponseCode> {
        match self {
            Error::Refused { code, .. }
            | Error::AuthenticationFailed { code, .. }
            | Error::Greeting { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// True when the connection is no longer usable after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Net(_) | Error::Decode(_) | Error::Protocol(_) | Error::Greeting { .. }
        )
    }

    /// True when the location is wrong rather than the server unwell: the port speaks
    /// another protocol, or TLS where plain text was expected (or the reverse), or STLS
    /// cannot be had. Retrying the same way cannot help.
    pub fn is_wrong_endpoint(&self) -> bool {
        matches!(
            self,
            Error::WrongService { .. }
                | Error::ImplicitTlsPort { .. }
                | Error::StlsUnavailable
                | Error::StlsRefused { .. }
                | Error::Net(mailnet::Error::NotTls { .. })
        )
    }
}

fn is_temporary(code: &ResponseCode) -> bool {
    matches!(code, ResponseCode::InUse | ResponseCode::LoginDelay | ResponseCode::SysTemp)
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_map_to_kinds() {
        let login = |code| Error::AuthenticationFailed { code, text: "no".into() };
        assert_eq!(login(Some(ResponseCode::InUse)).kind(), ErrorKind::Retryable);
        assert_eq!(login(Some(ResponseCode::LoginDelay)).kind(), ErrorKind::Retryable);
        assert_eq!(login(Some(ResponseCode::SysTemp)).kind(), ErrorKind::Retryable);
        assert_eq!(login(Some(ResponseCode::SysPerm)).kind(), ErrorKind::Permanent);
        assert_eq!(login(Some(ResponseCode::Auth)).kind(), ErrorKind::Credentials);
        assert_eq!(login(None).kind(), ErrorKind::Credentials);
        let refused =
            |code| Error::Refused { command: "RETR", message: None, code, text: String::new() };
        assert_eq!(refused(None).kind(), ErrorKind::Permanent);
        assert_eq!(refused(Some(ResponseCode::SysTemp)).kind(), ErrorKind::Retryable);
        let timeout =
            Error::Net(mailnet::Error::Timeout { operation: "read", timeout: Duration::ZERO });
        assert!(timeout.is_retryable() && timeout.is_timeout() && timeout.is_fatal());
        assert_eq!(login(Some(ResponseCode::Auth)).to_string(), "login failed: [AUTH] no");
        let retr = Error::Refused {
            command: "RETR",
            message: MessageNumber::new(3),
            code: Some(ResponseCode::SysPerm),
            text: "gone".into(),
        };
        assert_eq!(retr.to_string(), "server refused RETR 3: [SYS/PERM] gone");
    }
}
