//! `USER`/`PASS`, `APOP` and `AUTH PLAIN` (master users by authzid or `user*master`).

use mailnet::Secret;
use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::proto::{Command, MAX_COMMAND_LEN, sasl_base64};

use super::Credentials;
use super::conn::{Conn, Head};

/// How to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMechanism {
    /// `AUTH PLAIN` when the server offers SASL PLAIN, else `USER`/`PASS`.
    #[default]
    Auto,
    /// `USER name` + `PASS password` (RFC 1939 §7); a master user logs in as
    /// `user*master`.
    UserPass,
    /// `APOP name digest` (RFC 1939 §7): MD5 over the greeting's timestamp and the
    /// password, so the password does not cross the wire — but MD5 and a server that must
    /// store the plaintext password: use it only when nothing better is offered. A master
    /// user logs in as `user*master`.
    Apop,
    /// `AUTH PLAIN` (RFC 5034, RFC 4616) with the initial response on the command line; a
    /// master user goes in as authcid with the user as authzid.
    Plain,
}

pub(crate) fn authenticate(
    conn: &mut Conn,
    credentials: &Credentials,
    apop_timestamp: Option<&str>,
) -> Result<()> {
    // Whatever the server says from now on may echo what we send: mask it (the password;
    // AUTH PLAIN adds its encoding below).
    conn.secrets.add(credentials.password.expose());
    let mechanism = match credentials.mechanism {
        AuthMechanism::Auto if conn.capabilities.has_sasl("PLAIN") => AuthMechanism::Plain,
        AuthMechanism::Auto => AuthMechanism::UserPass,
        other => other,
    };
    // The POP3 counterpart of IMAP's LOGINDISABLED: a server that answers CAPA on a
    // connection without TLS but lists neither USER nor SASL PLAIN (Dovecot with
    // `disable_plaintext_auth`) takes no password in clear text, so send none — not even
    // the user name. APOP sends only a digest.
    if !conn.stream.is_tls() && !conn.capabilities.is_empty() {
        let offered = match mechanism {
            AuthMechanism::UserPass | AuthMechanism::Auto => conn.capabilities.has("USER"),
            AuthMechanism::Plain => conn.capabilities.has_sasl("PLAIN"),
            AuthMechanism::Apop => true,
        };
        if !offered {
            return Err(Error::LoginDisabled);
        }
    }
    let result = match mechanism {
        AuthMechanism::UserPass | AuthMechanism::Auto => user_pass(conn, credentials),
        AuthMechanism::Apop => apop(conn, credentials, apop_timestamp),
        AuthMechanism::Plain => plain(conn, credentials),
    };
    match result {
        Ok(()) => {
            // RFC 2449 §5: capabilities may change after authentication (Dovecot drops
            // STLS/USER/SASL and keeps PIPELINING). Keep the old list if CAPA now fails.
            let before = conn.capabilities.clone();
            conn.refresh_capabilities()?;
            if conn.capabilities.is_empty() {
                conn.capabilities = before;
            }
            Ok(())
        }
        Err(Error::Refused { code, text, .. }) => Err(Error::AuthenticationFailed { code, text }),
        Err(other) => Err(other),
    }
}

fn user_pass(conn: &mut Conn, credentials: &Credentials) -> Result<()> {
    let name = credentials.login_name();
    conn.simple(&Command::User(&name), None)?;
    conn.simple(&Command::Pass(&credentials.password), None)?;
    Ok(())
}

fn apop(conn: &mut Conn, credentials: &Credentials, timestamp: Option<&str>) -> Result<()> {
    let Some(timestamp) = timestamp else {
        return Err(Error::Unsupported { capability: "APOP (no timestamp in the greeting)" });
    };
    let mut md5 = Md5::new();
    md5.update(timestamp.as_bytes());
    md5.update(credentials.password.expose().as_bytes());
    let digest = Secret::new(hex(&md5.finalize()));
    conn.secrets.add(digest.expose());
    let name = credentials.login_name();
    conn.simple(&Command::Apop { name: &name, digest: &digest }, None)?;
    Ok(())
}

/// `AUTH PLAIN`: the initial response goes on the command line unless that would make the
/// line longer than 255 octets (RFC 5034 §4), then it follows the server's empty
/// challenge. A second challenge is answered with `*` (cancel).
fn plain(conn: &mut Conn, credentials: &Credentials) -> Result<()> {
    let message = credentials.sasl_plain();
    conn.secrets.add(&sasl_base64(message.expose()));
    let fits = "AUTH PLAIN \r\n".len() + sasl_base64(message.expose()).len() <= MAX_COMMAND_LEN;
    let initial_response = if fits { Some(&message) } else { None };
    conn.send(&[Command::Auth { mechanism: "PLAIN", initial_response }])?;
    let mut response_sent = fits;
    loop {
        match conn.next_head()? {
            Head::Continuation if !response_sent => {
                conn.send(&[Command::SaslResponse(&message)])?;
                response_sent = true;
            }
            Head::Continuation => conn.send(&[Command::SaslCancel])?,
            Head::Status(status) if status.is_ok() => return Ok(()),
            Head::Status(status) => {
                return Err(Error::AuthenticationFailed { code: status.code, text: status.text });
            }
            Head::MultiLine => {
                return Err(Error::Protocol("AUTH answered with a multi-line response".into()));
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    /// RFC 1939 §7's APOP example.
    #[test]
    fn apop_digest_of_rfc_1939() {
        use md5::{Digest, Md5};
        let mut md5 = Md5::new();
        md5.update(b"<1896.697170952@dbc.mtview.ca.us>tanstaaf");
        assert_eq!(super::hex(&md5.finalize()), "c4c9334bac560ecc979e58001b3e22fb");
    }
}
