//! [`Credentials`]: who logs in, on whose behalf, with which secret and mechanism. Every
//! protocol client uses the same type with a mechanism enum of its own.

use std::fmt;

use crate::Secret;

/// Login credentials of a protocol client; `M` is that client's choice of mechanism
/// (`imapc::AuthMechanism`, `pop3c::AuthMechanism`). `Debug` and `Display` print
/// `<redacted>`.
#[derive(Clone)]
pub struct Credentials<M> {
    /// The user whose mail we want.
    pub user: String,
    /// The password (of the master user, when `master_user` is set), or the access token
    /// of a bearer-token mechanism.
    pub password: Secret<String>,
    /// A Dovecot-style master user that logs in on behalf of `user`.
    pub master_user: Option<String>,
    /// How to authenticate.
    pub mechanism: M,
}

impl<M: Default> Credentials<M> {
    /// User and password, the mechanism the client's default (chosen automatically).
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Credentials<M> {
        Credentials {
            user: user.into(),
            password: Secret::new(password.into()),
            master_user: None,
            mechanism: M::default(),
        }
    }

    /// Logs in as `master` (with the master's password) to reach `user`'s mail: with SASL
    /// `PLAIN` the user is the authorization identity, with a mechanism that has no room
    /// for one the name is `user*master` ([`login_name`](Self::login_name)).
    pub fn master(
        user: impl Into<String>,
        master: impl Into<String>,
        password: impl Into<String>,
    ) -> Credentials<M> {
        Credentials { master_user: Some(master.into()), ..Credentials::new(user, password) }
    }
}

impl<M> Credentials<M> {
    /// Sets the mechanism.
    pub fn mechanism(mut self, mechanism: M) -> Credentials<M> {
        self.mechanism = mechanism;
        self
    }

    /// The name for a login that carries one name only (IMAP `LOGIN`, POP3 `USER` and
    /// `APOP`): `user`, or `user*master` for a master user (Dovecot's
    /// `auth_master_user_separator`).
    ///
    /// ```
    /// use mailnet::Credentials;
    /// let credentials: Credentials<()> = Credentials::master("alice", "admin", "pw");
    /// assert_eq!(credentials.login_name(), "alice*admin");
    /// ```
    pub fn login_name(&self) -> String {
        match &self.master_user {
            Some(master) => format!("{}*{master}", self.user),
            None => self.user.clone(),
        }
    }

    /// The SASL `PLAIN` message (RFC 4616): authorization identity, NUL, authentication
    /// identity, NUL, password. A master user authenticates as itself with `user` as the
    /// authorization identity; otherwise the authorization identity is empty.
    ///
    /// ```
    /// use mailnet::Credentials;
    /// let credentials: Credentials<()> = Credentials::master("alice", "admin", "pw");
    /// assert_eq!(credentials.sasl_plain().expose(), b"alice\0admin\0pw");
    /// ```
    pub fn sasl_plain(&self) -> Secret<Vec<u8>> {
        let (authzid, authcid) = match &self.master_user {
            Some(master) => (self.user.as_str(), master.as_str()),
            None => ("", self.user.as_str()),
        };
        let mut message = Vec::new();
        message.extend_from_slice(authzid.as_bytes());
        message.push(0);
        message.extend_from_slice(authcid.as_bytes());
        message.push(0);
        message.extend_from_slice(self.password.expose().as_bytes());
        Secret::new(message)
    }
}

impl<M> fmt::Debug for Credentials<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<M> fmt::Display for Credentials<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_and_login_name() {
        let own: Credentials<()> = Credentials::new("alice", "pw");
        assert_eq!(own.sasl_plain().expose(), b"\0alice\0pw");
        assert_eq!(own.login_name(), "alice");
        let master: Credentials<()> = Credentials::master("alice", "admin", "secret");
        assert_eq!(master.sasl_plain().expose(), b"alice\0admin\0secret");
        assert_eq!(master.login_name(), "alice*admin");
    }

    #[test]
    fn never_printed() {
        let credentials: Credentials<()> = Credentials::master("alice", "admin", "s3cret");
        for shown in [format!("{credentials:?}"), credentials.to_string()] {
            assert_eq!(shown, "<redacted>");
        }
    }
}
