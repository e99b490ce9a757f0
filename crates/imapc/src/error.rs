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
    /// A message is larger than the server accepts (`APPENDLIMIT`, RFC 7889): it was not
    /// sent.
    #[error("the message ({size} bytes) is larger than the server accepts (APPENDLIMIT {limit})")]
    TooBig {
        /// The message's size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// Reading a message to APPEND failed after its literal was announced: the command
    /// cannot be completed, so the connection is unusable (the server never stores a
    /// partial message: the connection ends before the literal does).
    #[error("reading the message to APPEND failed: {0}")]
    AppendSource(#[source] io::Error),
}

/// Why a server refused or postponed a command, when it said so in a way a program can
/// act on ([`Error::refusal`]): RFC 5530's codes, RFC 7889's `TOOBIG`, and the throttling
/// forms of Gmail and Exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Slow down, then retry (`[THROTTLED]`, Gmail's trailing `[THROTTLED]`, Exchange's
    /// "Request is throttled"); `backoff` when the server said how long (Exchange's
    /// "Suggested Backoff Time: N milliseconds").
    Throttled {
        /// The wait the server asked for.
        backoff: Option<Duration>,
    },
    /// `[LIMIT]`: an administrative limit was reached (too many connections, messages or
    /// mailboxes); retrying at once does not help.
    Limit,
    /// `[UNAVAILABLE]`: a passing failure (a backend is down); retry later.
    Unavailable,
    /// `[INUSE]`: the mailbox is locked by someone else; retry later.
    InUse,
    /// `[OVERQUOTA]`: the account or mailbox is full; nothing more can be stored.
    OverQuota,
    /// The message is larger than the server accepts (`[TOOBIG]`, or over its
    /// `APPENDLIMIT`, [`Error::TooBig`]); it alone cannot be stored.
    TooBig,
}

impl Refusal {
    /// True when waiting and trying again may succeed (throttling, unavailable, in use).
    pub fn is_temporary(self) -> bool {
        matches!(self, Refusal::Throttled { .. } | Refusal::Unavailable | Refusal::InUse)
    }
}

/// Exchange's "Suggested Backoff Time: 299609 milliseconds" (imapsync#198), as a duration.
fn suggested_backoff(text: &str) -> Option<Duration> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("backoff time:")? + "backoff time:".len();
    let rest = lower[start..].trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let value: u64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].trim_start();
    if unit.starts_with("ms") || unit.starts_with("milli") {
        Some(Duration::from_millis(value))
    } else if unit.starts_with('s') {
        Some(Duration::from_secs(value))
    } else {
        // Exchange says milliseconds; a bare number is taken as such.
        Some(Duration::from_millis(value))
    }
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

    /// Why the server refused, when it said so in a way a program can act on: a code of
    /// RFC 5530 (`LIMIT`, `UNAVAILABLE`, `INUSE`, `OVERQUOTA`), `TOOBIG` (RFC 7889), an
    /// APPENDLIMIT we kept to ([`Error::TooBig`]) or throttling ([`is_throttled`](Self::is_throttled)).
    /// `None` for every other error.
    pub fn refusal(&self) -> Option<Refusal> {
        if let Error::TooBig { .. } = self {
            return Some(Refusal::TooBig);
        }
        let (Error::No { code, text, .. }
        | Error::Bad { code, text, .. }
        | Error::Bye { code, text }) = self
        else {
            return None;
        };
        if self.is_throttled() {
            return Some(Refusal::Throttled { backoff: suggested_backoff(text) });
        }
        match code.as_ref().map(Code::name).as_deref() {
            Some("LIMIT") => Some(Refusal::Limit),
            Some("UNAVAILABLE") => Some(Refusal::Unavailable),
            Some("INUSE") => Some(Refusal::InUse),
            Some("OVERQUOTA") => Some(Refusal::OverQuota),
            Some("TOOBIG") => Some(Refusal::TooBig),
            _ => None,
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
        matches!(
            self,
            Error::Net(_)
                | Error::Decode(_)
                | Error::Bye { .. }
                | Error::Protocol(_)
                | Error::AppendSource(_)
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn no(code: Option<&str>, text: &str) -> Error {
        let code = code.map(|name| Code::Other { name: name.into(), data: None });
        Error::No { command: "APPEND", code, text: text.into() }
    }

    #[test]
    fn refusals_are_typed() {
        let table = [
            (no(Some("THROTTLED"), "slow down"), Some(Refusal::Throttled { backoff: None })),
            (no(None, "Too many commands [THROTTLED]"), Some(Refusal::Throttled { backoff: None })),
            (
                no(None, "Request is throttled. Suggested Backoff Time: 299609 milliseconds"),
                Some(Refusal::Throttled { backoff: Some(Duration::from_millis(299_609)) }),
            ),
            (no(Some("LIMIT"), "too many mailboxes"), Some(Refusal::Limit)),
            (no(Some("unavailable"), "backend down"), Some(Refusal::Unavailable)),
            (no(Some("INUSE"), "locked"), Some(Refusal::InUse)),
            (
                no(Some("OVERQUOTA"), "Quota exceeded (mailbox for user is full)"),
                Some(Refusal::OverQuota),
            ),
            (no(Some("TOOBIG"), "Message too large"), Some(Refusal::TooBig)),
            (Error::TooBig { size: 10, limit: 5 }, Some(Refusal::TooBig)),
            (no(Some("TRYCREATE"), "no mailbox"), None),
            (no(None, "whatever"), None),
            (Error::Protocol("x".into()), None),
        ];
        for (error, expected) in table {
            let text = error.to_string();
            assert_eq!(error.refusal(), expected, "{text}");
        }
        assert!(Refusal::Throttled { backoff: None }.is_temporary());
        assert!(!Refusal::OverQuota.is_temporary() && !Refusal::TooBig.is_temporary());
        assert_eq!(
            suggested_backoff("Suggested Backoff Time: 12 s"),
            Some(Duration::from_secs(12))
        );
        assert_eq!(suggested_backoff("no number here"), None);
    }
}
