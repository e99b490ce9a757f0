//! pop3c integration tests: real Dovecot instances from `testkit`, checked against Dovecot's
//! IMAP view (`testkit::RawImap`) and the independent `testkit::RawPop3` oracle; a scripted
//! fake server only for what Dovecot cannot do.

mod big;
mod dovecot;
mod fuzz_corpus;
mod hostile;
mod tls;
mod trace;
mod wrong_server;

use pop3c::{Client, ConnectOptions, Credentials, Security, Session, TlsOptions};
use testkit::Dovecot;

/// Plain-text connection options for a test instance.
pub fn plain(dovecot: &Dovecot) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", dovecot.pop3_port(), Security::Plain)
}

/// Implicit-TLS options trusting the instance's private CA.
pub fn pop3s(dovecot: &Dovecot) -> ConnectOptions {
    ConnectOptions::new("localhost", dovecot.pop3s_port(), Security::Tls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()))
}

/// A logged-in session for alice over plain TCP.
pub fn login(dovecot: &Dovecot) -> Session {
    Client::connect(&plain(dovecot))
        .expect("connect")
        .login(&Credentials::new("alice", "alicepw"))
        .map_err(|(error, _)| error)
        .expect("login")
}
