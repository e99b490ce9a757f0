//! Commands as data, and their encoding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mailnet::Secret;

use crate::proto::ResponseKind;
use crate::types::MessageNumber;

/// Longest command line, CRLF included (RFC 2449 §4). SASL responses after a challenge are
/// not commands and may be longer (RFC 5034 §4).
pub const MAX_COMMAND_LEN: usize = 255;

/// A POP3 command. Secrets are [`Secret`]s, so `Debug` never shows them.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `STLS` (RFC 2595 §4).
    Stls,
    /// `USER name`.
    User(&'a str),
    /// `PASS password`.
    Pass(&'a Secret<String>),
    /// `APOP name digest` (RFC 1939 §7); the digest is MD5(timestamp + password) in hex.
    Apop {
        /// The mailbox name.
        name: &'a str,
        /// Lower-case hex MD5.
        digest: &'a Secret<String>,
    },
    /// `AUTH mechanism [initial-response]` (RFC 5034), the response base64-encoded here;
    /// an empty initial response is sent as `=`.
    Auth {
        /// SASL mechanism name, e.g. `PLAIN`.
        mechanism: &'a str,
        /// The initial response, unencoded.
        initial_response: Option<&'a Secret<Vec<u8>>>,
    },
    /// A SASL response line (base64 of the bytes) after a `+ ` challenge.
    SaslResponse(&'a Secret<Vec<u8>>),
    /// `*`: cancels a SASL exchange.
    SaslCancel,
    /// `STAT`.
    Stat,
    /// `LIST` (all messages) or `LIST n`.
    List(Option<MessageNumber>),
    /// `UIDL` (all messages) or `UIDL n`.
    Uidl(Option<MessageNumber>),
    /// `RETR n`.
    Retr(MessageNumber),
    /// `TOP n lines`: the header, the blank line, and `lines` lines of the body.
    Top {
        /// The message.
        message: MessageNumber,
        /// Body lines wanted (0: the header only).
        lines: u32,
    },
    /// `DELE n`: marks a message deleted; `QUIT` then removes it for good.
    Dele(MessageNumber),
    /// `NOOP`.
    Noop,
    /// `RSET`: unmarks every message marked deleted.
    Rset,
    /// `QUIT`.
    Quit,
}

/// A command argument that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The argument contains CR, LF or NUL (or a space where the grammar forbids it).
    #[error("{command} argument contains a forbidden character")]
    ForbiddenCharacter {
        /// The command.
        command: &'static str,
    },
    /// The command line would exceed [`MAX_COMMAND_LEN`].
    #[error("{command} command longer than {MAX_COMMAND_LEN} octets")]
    TooLong {
        /// The command.
        command: &'static str,
    },
}

impl Command<'_> {
    /// The command's keyword (never its arguments), for errors and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth { .. } | Command::SaslResponse(_) | Command::SaslCancel => "AUTH",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top { .. } => "TOP",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
        }
    }

    /// How the server frames its answer.
    pub fn response_kind(&self) -> ResponseKind {
        match self {
            Command::Capa | Command::List(None) | Command::Uidl(None) => ResponseKind::Listing,
            Command::Retr(_) | Command::Top { .. } => ResponseKind::Body,
            Command::Auth { .. } | Command::SaslResponse(_) | Command::SaslCancel => {
                ResponseKind::Sasl
            }
            _ => ResponseKind::SingleLine,
        }
    }

    /// The command line as a trace may show it: arguments of `PASS`, `APOP` and `AUTH`
    /// replaced by `<redacted>`, and a SASL response line (no keyword) by just that.
    pub fn redacted(&self) -> String {
        match self {
            Command::Pass(_) => "PASS <redacted>".to_owned(),
            Command::SaslResponse(_) => "<redacted>".to_owned(),
            Command::Apop { name, .. } => format!("APOP {name} <redacted>"),
            Command::Auth { mechanism, initial_response: Some(_) } => {
                format!("AUTH {mechanism} <redacted>")
            }
            _ => {
                let mut out = Vec::new();
                match self.encode(&mut out) {
                    Ok(()) => String::from_utf8_lossy(out.trim_ascii_end()).into_owned(),
                    Err(_) => self.name().to_owned(),
                }
            }
        }
    }

    /// Appends the command line (CRLF included) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let before = out.len();
        let command = self.name();
        let mut push = |parts: &[&[u8]]| {
            for part in parts {
                out.extend_from_slice(part);
            }
            out.extend_from_slice(b"\r\n");
        };
        match self {
            Command::Capa
            | Command::Stls
            | Command::Stat
            | Command::Noop
            | Command::Rset
            | Command::Quit => push(&[command.as_bytes()]),
            Command::User(name) => push(&[b"USER ", text(name, command, true)?]),
            Command::Pass(password) => {
                push(&[b"PASS ", text(password.expose(), command, true)?]);
            }
            Command::Apop { name, digest } => push(&[
                b"APOP ",
                text(name, command, false)?,
                b" ",
                text(digest.expose(), command, false)?,
            ]),
            Command::Auth { mechanism, initial_response } => {
                let mechanism = text(mechanism, command, false)?;
                match initial_response {
                    None => push(&[b"AUTH ", mechanism]),
                    Some(response) => {
                        let encoded = sasl_base64(response.expose());
                        push(&[b"AUTH ", mechanism, b" ", encoded.as_bytes()]);
                    }
                }
            }
            Command::SaslResponse(response) => {
                let encoded = BASE64.encode(response.expose());
                push(&[encoded.as_bytes()]);
                return Ok(());
            }
            Command::SaslCancel => push(&[b"*"]),
            Command::List(n) | Command::Uidl(n) => match n {
                None => push(&[command.as_bytes()]),
                Some(n) => push(&[command.as_bytes(), b" ", n.to_string().as_bytes()]),
            },
            Command::Retr(n) | Command::Dele(n) => {
                push(&[command.as_bytes(), b" ", n.to_string().as_bytes()]);
            }
            Command::Top { message, lines } => {
                push(&[
                    b"TOP ",
                    message.to_string().as_bytes(),
                    b" ",
                    lines.to_string().as_bytes(),
                ]);
            }
        }
        if out.len() - before > MAX_COMMAND_LEN {
            out.truncate(before);
            return Err(EncodeError::TooLong { command });
        }
        Ok(())
    }
}

/// Base64 of a SASL initial response; `=` for an empty one (RFC 5034 §4).
pub(crate) fn sasl_base64(response: &[u8]) -> String {
    if response.is_empty() { "=".to_owned() } else { BASE64.encode(response) }
}

fn text<'t>(
    value: &'t str,
    command: &'static str,
    spaces_allowed: bool,
) -> Result<&'t [u8], EncodeError> {
    let forbidden = |b: &u8| matches!(b, b'\r' | b'\n' | 0) || (!spaces_allowed && *b == b' ');
    if value.is_empty() || value.as_bytes().iter().any(forbidden) {
        return Err(EncodeError::ForbiddenCharacter { command });
    }
    Ok(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(command: Command<'_>) -> String {
        let mut out = Vec::new();
        command.encode(&mut out).expect("encodes");
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn known_encodings() {
        let n = |v| MessageNumber::new(v).expect("non-zero");
        let password = Secret::new("pw with space".to_owned());
        let digest = Secret::new("c4c9334bac560ecc979e58001b3e22fb".to_owned());
        let plain = Secret::new(b"alice\0master\0pw".to_vec());
        let empty = Secret::new(Vec::new());
        let cases: Vec<(Command<'_>, &str)> = vec![
            (Command::Capa, "CAPA\r\n"),
            (Command::Stls, "STLS\r\n"),
            (Command::User("alice*master"), "USER alice*master\r\n"),
            (Command::Pass(&password), "PASS pw with space\r\n"),
            (
                Command::Apop { name: "mrose", digest: &digest },
                "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
            ),
            (Command::Auth { mechanism: "PLAIN", initial_response: None }, "AUTH PLAIN\r\n"),
            (
                Command::Auth { mechanism: "PLAIN", initial_response: Some(&plain) },
                "AUTH PLAIN YWxpY2UAbWFzdGVyAHB3\r\n",
            ),
            (
                Command::Auth { mechanism: "EXTERNAL", initial_response: Some(&empty) },
                "AUTH EXTERNAL =\r\n",
            ),
            (Command::SaslResponse(&plain), "YWxpY2UAbWFzdGVyAHB3\r\n"),
            (Command::SaslCancel, "*\r\n"),
            (Command::Stat, "STAT\r\n"),
            (Command::List(None), "LIST\r\n"),
            (Command::List(Some(n(3))), "LIST 3\r\n"),
            (Command::Uidl(None), "UIDL\r\n"),
            (Command::Uidl(Some(n(4_294_967_295))), "UIDL 4294967295\r\n"),
            (Command::Retr(n(1)), "RETR 1\r\n"),
            (Command::Top { message: n(2), lines: 0 }, "TOP 2 0\r\n"),
            (Command::Dele(n(9)), "DELE 9\r\n"),
            (Command::Noop, "NOOP\r\n"),
            (Command::Rset, "RSET\r\n"),
            (Command::Quit, "QUIT\r\n"),
        ];
        for (command, expected) in cases {
            assert_eq!(encoded(command), expected, "{command:?}");
            let trace = command.redacted();
            assert!(!trace.contains("pw") && !trace.contains("YWxp") && !trace.contains("c4c9"));
        }
        assert_eq!(Command::Pass(&password).redacted(), "PASS <redacted>");
        assert_eq!(Command::Retr(n(7)).redacted(), "RETR 7");
        assert_eq!(Command::SaslResponse(&plain).redacted(), "<redacted>");
        assert_eq!(Command::SaslCancel.redacted(), "*");
        assert!(!format!("{:?}", Command::Pass(&password)).contains("space"));
    }

    #[test]
    fn refuses_injection_and_overlong_commands() {
        let mut out = Vec::new();
        for command in [
            Command::User("alice\r\nDELE 1"),
            Command::User(""),
            Command::User("nul\0"),
            Command::Auth { mechanism: "PLAIN X", initial_response: None },
        ] {
            assert!(
                matches!(command.encode(&mut out), Err(EncodeError::ForbiddenCharacter { .. })),
                "{command:?}"
            );
        }
        let long = "x".repeat(300);
        assert_eq!(
            Command::User(&long).encode(&mut out),
            Err(EncodeError::TooLong { command: "USER" })
        );
        assert!(out.is_empty(), "nothing half-written");
        // A SASL response after a challenge may be long.
        let big = Secret::new(vec![b'a'; 1000]);
        assert!(Command::SaslResponse(&big).encode(&mut out).is_ok());
    }
}
