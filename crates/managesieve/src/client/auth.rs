//! `AUTHENTICATE` with SASL `PLAIN` (master users as authcid, the user as authzid) or
//! `LOGIN`.

use mailnet::Secret;

use crate::error::{Error, Result};
use crate::proto::{Command, Line, Status, Token};

use super::Credentials;
use super::conn::Conn;

/// How to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMechanism {
    /// `PLAIN` when offered (or over TLS when the server lists nothing), else `LOGIN`.
    #[default]
    Auto,
    /// SASL `PLAIN` (RFC 4616) with the initial response on the command line; a master
    /// user goes in as authcid with the user as authzid.
    Plain,
    /// SASL `LOGIN` (user name, then password, as answers to the server's prompts); a
    /// master user logs in as `user*master`.
    Login,
    /// Google/Microsoft `XOAUTH2`; the password is the access token.
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628); the password is the access token.
    OAuthBearer,
}

pub(crate) fn authenticate(conn: &mut Conn, credentials: &Credentials) -> Result<()> {
    conn.secrets.add(credentials.password.expose());
    let offered = |name| conn.capabilities.has_sasl(name);
    let mechanism = match credentials.mechanism {
        AuthMechanism::Auto if offered("PLAIN") => AuthMechanism::Plain,
        AuthMechanism::Auto if offered("LOGIN") => AuthMechanism::Login,
        AuthMechanism::Auto => AuthMechanism::Plain,
        other => other,
    };
    let name = match mechanism {
        AuthMechanism::Login => "LOGIN",
        AuthMechanism::Plain | AuthMechanism::Auto => "PLAIN",
        AuthMechanism::XOAuth2 => "XOAUTH2",
        AuthMechanism::OAuthBearer => "OAUTHBEARER",
    };
    // Dovecot without TLS and with `disable_plaintext_auth` lists `"SASL" ""`: it takes
    // no password in clear text, so send none — not even the user name.
    if !conn.stream.is_tls() && !offered(name) {
        return Err(Error::LoginDisabled);
    }
    let result = match mechanism {
        AuthMechanism::Login => {
            let user = Secret::new(credentials.login_name().into_bytes());
            let password = Secret::new(credentials.password.expose().as_bytes().to_vec());
            exchange(conn, "LOGIN", None, &[&user, &password])
        }
        AuthMechanism::Plain | AuthMechanism::Auto => {
            let message = credentials.sasl_plain();
            conn.secrets.add(&base64_of(message.expose()));
            exchange(conn, "PLAIN", Some(&message), &[])
        }
        AuthMechanism::XOAuth2 => {
            let message = Secret::new(
                format!(
                    "user={}\x01auth=Bearer {}\x01\x01",
                    credentials.user,
                    credentials.password.expose()
                )
                .into_bytes(),
            );
            conn.secrets.add(&base64_of(message.expose()));
            // On failure the server sends a JSON error as a challenge; an empty response
            // ends the exchange with NO.
            exchange(conn, "XOAUTH2", Some(&message), &[&Secret::new(Vec::new())])
        }
        AuthMechanism::OAuthBearer => {
            let message = Secret::new(
                format!(
                    "n,a={},\x01host={}\x01port={}\x01auth=Bearer {}\x01\x01",
                    credentials.user.replace('=', "=3D").replace(',', "=2C"),
                    conn.options.host,
                    conn.options.port,
                    credentials.password.expose()
                )
                .into_bytes(),
            );
            conn.secrets.add(&base64_of(message.expose()));
            // RFC 7628 §3.2.3: the client answers an error challenge with %x01.
            exchange(conn, "OAUTHBEARER", Some(&message), &[&Secret::new(vec![1])])
        }
    };
    result?;
    // Capabilities may change with login (Dovecot drops SASL and STARTTLS, adds
    // MAXREDIRECTS); keep the old list if the new one is empty.
    let before = conn.capabilities.clone();
    conn.send(&Command::Capability)?;
    conn.read_capabilities("CAPABILITY")?;
    if conn.capabilities.is_empty() {
        conn.capabilities = before;
    }
    Ok(())
}

/// One SASL exchange: the command with an optional initial response, then each server
/// challenge answered in turn from `responses` (any beyond them cancels).
fn exchange(
    conn: &mut Conn,
    mechanism: &str,
    initial_response: Option<&Secret<Vec<u8>>>,
    responses: &[&Secret<Vec<u8>>],
) -> Result<()> {
    conn.send(&Command::Authenticate { mechanism, initial_response })?;
    let mut responses = responses.iter();
    loop {
        match conn.next_line()? {
            Line::Data(tokens) => {
                let [Token::String(_)] = tokens.as_slice() else {
                    return Err(Error::Protocol(
                        "AUTHENTICATE: a challenge that is not a string".into(),
                    ));
                };
                match responses.next() {
                    Some(response) => conn.send(&Command::SaslResponse(response))?,
                    None => conn.send(&Command::SaslCancel)?,
                }
            }
            Line::Response(response) if response.status == Status::Ok => return Ok(()),
            Line::Response(response) => {
                return Err(match Error::from_response("AUTHENTICATE", None, response) {
                    Error::Refused { code, text, .. } => Error::AuthenticationFailed { code, text },
                    other => other,
                });
            }
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
