//! LOGIN and AUTHENTICATE (PLAIN with authzid for master users, XOAUTH2, OAUTHBEARER).

use mailnet::Secret;

use crate::error::{Error, Result};
use crate::proto::{Command, Response, sasl_response};

use super::Credentials;
use super::conn::{Conn, check};

/// How to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMechanism {
    /// `AUTHENTICATE PLAIN` when offered, else `LOGIN`.
    #[default]
    Auto,
    /// `LOGIN user pass`; a master user logs in as `user*master` (Dovecot's
    /// `auth_master_user_separator`).
    Login,
    /// `AUTHENTICATE PLAIN` (RFC 4616); a master user goes in as authcid with the user as
    /// authzid.
    Plain,
    /// Google/Microsoft `XOAUTH2`; the password is the access token.
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628); the password is the access token.
    OAuthBearer,
}

pub(crate) fn authenticate(conn: &mut Conn, credentials: &Credentials) -> Result<()> {
    // RFC 3501 §6.2.3: LOGINDISABLED on a connection without TLS means the server wants
    // no credentials in clear text. Every mechanism we have (PLAIN, LOGIN, bearer tokens)
    // would send a usable secret, so send nothing at all.
    if !conn.stream.is_tls() && conn.capabilities.has("LOGINDISABLED") {
        return Err(Error::LoginDisabled);
    }
    // Whatever the server says from now on may echo what we send: mask it (the password
    // or token; the SASL messages below add their encodings).
    conn.secrets.add(credentials.password.expose());
    let mechanism = match credentials.mechanism {
        AuthMechanism::Auto if conn.capabilities.has_auth("PLAIN") => AuthMechanism::Plain,
        AuthMechanism::Auto => AuthMechanism::Login,
        other => other,
    };
    let before = conn.capability_updates;
    let result = match mechanism {
        AuthMechanism::Login | AuthMechanism::Auto => login(conn, credentials),
        AuthMechanism::Plain => sasl(conn, "PLAIN", &credentials.sasl_plain(), b""),
        AuthMechanism::XOAuth2 => {
            let message = format!(
                "user={}\x01auth=Bearer {}\x01\x01",
                credentials.user,
                credentials.password.expose()
            );
            // On failure the server sends a JSON error as a challenge; an empty response
            // ends the exchange with a tagged NO.
            sasl(conn, "XOAUTH2", &Secret::new(message.into_bytes()), b"")
        }
        AuthMechanism::OAuthBearer => {
            let message = format!(
                "n,a={},\x01host={}\x01port={}\x01auth=Bearer {}\x01\x01",
                credentials.user.replace('=', "=3D").replace(',', "=2C"),
                conn.options.host,
                conn.options.port,
                credentials.password.expose()
            );
            // RFC 7628 §3.2.3: the client answers an error challenge with %x01.
            sasl(conn, "OAUTHBEARER", &Secret::new(message.into_bytes()), b"\x01")
        }
    };
    match result {
        Ok(()) => {
            // Servers announce more after login; ask unless the tagged OK carried the new
            // list in a CAPABILITY code (already stored then).
            if conn.capability_updates == before {
                conn.simple(&Command::Capability)?;
            }
            Ok(())
        }
        Err(Error::No { code, text, .. } | Error::Bad { code, text, .. }) => {
            Err(Error::AuthenticationFailed { code, text })
        }
        Err(other) => Err(other),
    }
}

fn login(conn: &mut Conn, credentials: &Credentials) -> Result<()> {
    if conn.capabilities.has("LOGINDISABLED") {
        return Err(Error::LoginDisabled);
    }
    let username = credentials.login_name();
    // As a quoted string on the wire, a password with `"` or `\` is escaped.
    let password = credentials.password.expose();
    if password.contains(['"', '\\']) {
        conn.secrets.add(&password.replace('\\', "\\\\").replace('"', "\\\""));
    }
    conn.simple(&Command::Login { username: &username, password: &credentials.password })?;
    Ok(())
}

/// `AUTHENTICATE mechanism` with SASL-IR when offered, else with the first response after
/// the server's empty challenge. Further challenges get `error_reply` (a failure report).
fn sasl(
    conn: &mut Conn,
    mechanism: &'static str,
    initial: &Secret<Vec<u8>>,
    error_reply: &[u8],
) -> Result<()> {
    let sasl_ir = conn.capabilities.has("SASL-IR");
    conn.secrets.add(&sasl_response(initial.expose()));
    let tag = conn.send(&Command::Authenticate {
        mechanism,
        initial_response: if sasl_ir { Some(initial) } else { None },
    })?;
    let mut initial_sent = sasl_ir;
    loop {
        match conn.next_response()? {
            Response::Continuation { .. } => {
                let reply = if initial_sent {
                    sasl_response(error_reply)
                } else {
                    sasl_response(initial.expose())
                };
                initial_sent = true;
                let mut line = reply.into_bytes();
                line.extend_from_slice(b"\r\n");
                if let Some(trace) = &conn.options.trace {
                    trace.emit(super::TraceDirection::Sent, "<redacted>");
                }
                conn.stream.send(&line)?;
            }
            Response::Tagged { tag: t, status } if t == tag => {
                check("AUTHENTICATE", status)?;
                return Ok(());
            }
            Response::Tagged { tag: t, .. } => {
                return Err(Error::Protocol(format!("answer for unknown tag {t:?}")));
            }
            Response::Untagged(_) => {}
        }
    }
}
