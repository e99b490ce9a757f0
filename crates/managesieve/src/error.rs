//! The crate's one error type, and how to react to it ([`ErrorKind`]).

use std::io;
use std::path::PathBuf;

use crate::proto::{DecodeError, InvalidScriptName, Response, ResponseCode, Status};

/// Everything that can go wrong talking to a ManageSieve server or a file store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, TLS, reading or writing failed; includes [`mailnet::Error::Timeout`]
    /// for a stalled server and [`mailnet::Error::Closed`] for a cut connection.
    #[error(transparent)]
    Net(#[from] mailnet::Error),
    /// The server sent bytes we refuse to decode (limits, malformed lines).
    #[error("protocol error from server: {0}")]
    Decode(#[from] DecodeError),
    /// The server answered `NO`: the script's compile errors, a quota, a missing or
    /// active script … The connection stays usable.
    #[error("server refused {command}{}: {}{text}", script_suffix(script.as_deref()), code_prefix(code.as_ref()))]
    Refused {
        /// The command (never its arguments).
        command: &'static str,
        /// The script the command was about, if any.
        script: Option<String>,
        /// `QUOTA/MAXSIZE`, `NONEXISTENT`, `ACTIVE` … when sent.
        code: Option<ResponseCode>,
        /// The server's text (for a refused script, the validator's messages).
        text: String,
    },
    /// The server sends us elsewhere (`REFERRAL sieve://…`): the user's scripts live on
    /// another server. Nothing was changed.
    #[error("server refers to {url}: {text}")]
    Referral {
        /// The `sieve://` URL to use instead.
        url: String,
        /// The server's text.
        text: String,
    },
    /// The server closed the connection (`BYE`).
    #[error("server closed the connection: {}{text}", code_prefix(code.as_ref()))]
    Bye {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// Login was refused (wrong password, unknown user, master user not allowed …).
    #[error("login failed: {}{text}", code_prefix(code.as_ref()))]
    AuthenticationFailed {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// The greeting ended with `NO` (or the server said `BYE` at once).
    #[error("server refused the connection: {}{text}", code_prefix(code.as_ref()))]
    Greeting {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// STARTTLS was requested but the server does not offer it; we never fall back to
    /// plain text.
    #[error("STARTTLS requested but the server does not offer it")]
    StartTlsUnavailable,
    /// STARTTLS was requested and refused; we never fall back to plain text.
    #[error("the server refused STARTTLS: {}{text}", code_prefix(code.as_ref()))]
    StartTlsRefused {
        /// The response code, when sent.
        code: Option<ResponseCode>,
        /// The server's text.
        text: String,
    },
    /// Without TLS the server offers no SASL mechanism we could use (Dovecot with
    /// `disable_plaintext_auth` lists none): no credentials were sent.
    #[error(
        "the server takes no password without TLS (its SASL capability offers no usable mechanism); no credentials were sent"
    )]
    LoginDisabled,
    /// The server lacks what the operation needs.
    #[error("the server does not support {capability}")]
    Unsupported {
        /// The missing capability.
        capability: &'static str,
    },
    /// The server broke the protocol in a way the decoder cannot see (an unexpected data
    /// line, data after the STARTTLS answer …).
    #[error("protocol violation by server: {0}")]
    Protocol(String),
    /// A script name that cannot be sent or stored.
    #[error(transparent)]
    InvalidScriptName(#[from] InvalidScriptName),
    /// A file store could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file store holds something Pigeonhole would not have written (an active link
    /// pointing outside the script directory, a regular file where the link belongs …);
    /// nothing was changed.
    #[error("Sieve file store {}: {problem}", path.display())]
    Store {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl Error {
    /// The error for a `NO`/`BYE` answer to `command` (about `script`).
    pub(crate) fn from_response(
        command: &'static str,
        script: Option<&str>,
        response: Response,
    ) -> Error {
        let Response { status, code, text } = response;
        if let Some(ResponseCode::Referral(url)) = code {
            return Error::Referral { url, text };
        }
        match status {
            Status::Bye => Error::Bye { code, text },
            Status::Ok | Status::No => {
                Error::Refused { command, script: script.map(str::to_owned), code, text }
            }
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { action, path: path.into(), source }
    }

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
            Error::Net(net @ mailnet::Error::Resolve { .. }) if !net.is_unknown_host() => {
                ErrorKind::Retryable
            }
            Error::AuthenticationFailed { code: Some(ResponseCode::TryLater), .. } => {
                ErrorKind::Retryable
            }
            Error::AuthenticationFailed { .. } | Error::LoginDisabled => ErrorKind::Credentials,
            _ if self.code() == Some(&ResponseCode::TryLater) => ErrorKind::Retryable,
            _ => ErrorKind::Permanent,
        }
    }

    /// The response code of a refusal.
    pub fn code(&self) -> Option<&ResponseCode> {
        match self {
            Error::Refused { code, .. }
            | Error::Bye { code, .. }
            | Error::AuthenticationFailed { code, .. }
            | Error::Greeting { code, .. }
            | Error::StartTlsRefused { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// True when the connection cannot be used after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Net(_)
                | Error::Decode(_)
                | Error::Protocol(_)
                | Error::Bye { .. }
                | Error::Greeting { .. }
        )
    }
}

fn code_prefix(code: Option<&ResponseCode>) -> String {
    code.map(|c| format!("({c}) ")).unwrap_or_default()
}

fn script_suffix(script: Option<&str>) -> String {
    script.map(|s| format!(" {s:?}")).unwrap_or_default()
}

/// How a caller should react to an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Try again later: `TRYLATER`, timeouts, cut connections.
    Retryable,
    /// The credentials are wrong: retrying with the same ones will not help.
    Credentials,
    /// Retrying will not help: refused scripts, quotas, referrals, protocol violations.
    Permanent,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_become_typed_errors() {
        let response = |status, code| Response { status, code, text: "why".into() };
        let referral = Error::from_response(
            "AUTHENTICATE",
            None,
            response(Status::No, Some(ResponseCode::Referral("sieve://other".into()))),
        );
        assert!(matches!(&referral, Error::Referral { url, .. } if url == "sieve://other"));
        let quota = Error::from_response(
            "PUTSCRIPT",
            Some("big"),
            response(Status::No, Some(ResponseCode::QuotaMaxSize)),
        );
        assert_eq!(quota.to_string(), "server refused PUTSCRIPT \"big\": (QUOTA/MAXSIZE) why");
        assert_eq!(quota.kind(), ErrorKind::Permanent);
        assert!(!quota.is_fatal());
        let later = Error::from_response(
            "GETSCRIPT",
            None,
            response(Status::No, Some(ResponseCode::TryLater)),
        );
        assert_eq!(later.kind(), ErrorKind::Retryable);
        let bye = Error::from_response("NOOP", None, response(Status::Bye, None));
        assert!(matches!(bye, Error::Bye { .. }) && bye.is_fatal());
    }
}
