//! managesieve integration tests: real Dovecot + Pigeonhole instances from `testkit`,
//! checked against Pigeonhole's own view (`doveadm sieve`, the files it wrote); a scripted
//! fake server only for what Dovecot cannot do (referrals, hostile bytes).

mod dovecot;
mod fake;
mod file_store;
mod fuzz_corpus;

use managesieve::{Client, ConnectOptions, Credentials, Security, Session, TlsOptions};
use testkit::Dovecot;

/// A Dovecot with ManageSieve and users alice and bob.
pub fn start() -> Dovecot {
    Dovecot::builder().user("alice", "alicepw").user("bob", "bobpw").managesieve().start()
}

/// Plain-text options for a test instance.
pub fn plain(dovecot: &Dovecot) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", dovecot.managesieve_port(), Security::Plain)
}

/// STARTTLS options trusting the instance's private CA.
pub fn starttls(dovecot: &Dovecot) -> ConnectOptions {
    ConnectOptions::new("localhost", dovecot.managesieve_port(), Security::StartTls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()))
}

/// A logged-in session for `user` over plain TCP.
pub fn login(dovecot: &Dovecot, user: &str, password: &str) -> Session {
    Client::connect(&plain(dovecot))
        .expect("connect")
        .login(&Credentials::new(user, password))
        .map_err(|(error, _)| error)
        .expect("login")
}
