//! Transport against Dovecot: POP3S and STLS with the harness's private CA, refusal
//! without it, the dangerous mode only when asked for by name.

use pop3c::{Client, ConnectOptions, Credentials, Error, Security, TlsOptions};
use testkit::Dovecot;

use crate::pop3s;

#[test]
fn pop3s_and_stls_verify_certificates() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();

    // Implicit TLS, verified against the private CA.
    let client = Client::connect(&pop3s(&dovecot)).expect("pop3s");
    assert!(client.is_tls());
    assert!(!client.capabilities().has("STLS"), "{:?}", client.capabilities());
    let mut session =
        client.login(&Credentials::new("alice", "alicepw")).map_err(|(e, _)| e).expect("login");
    assert!(session.is_tls());
    session.stat().expect("STAT");
    session.quit().expect("QUIT");

    // Without the CA the certificate is refused …
    let untrusted = ConnectOptions::new("localhost", dovecot.pop3s_port(), Security::Tls);
    let error = Client::connect(&untrusted).expect_err("untrusted certificate");
    assert!(matches!(error, Error::Net(mailnet::Error::Certificate { .. })), "{error}");
    // … and a name the certificate does not carry too.
    let wrong_name = ConnectOptions::new("127.0.0.1", dovecot.pop3s_port(), Security::Tls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()).server_name("pop.example.com"));
    assert!(matches!(
        Client::connect(&wrong_name),
        Err(Error::Net(mailnet::Error::Certificate { .. }))
    ));
    // Accepting anything only when asked for by name.
    let dangerous = untrusted.clone().tls(TlsOptions::new().dangerous_accept_invalid_certs(true));
    Client::connect(&dangerous).expect("dangerous_accept_invalid_certs").quit().expect("QUIT");

    // STLS on the plain port; capabilities are re-read after the upgrade.
    let options = ConnectOptions::new("localhost", dovecot.pop3_port(), Security::StartTls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()));
    let client = Client::connect(&options).expect("stls");
    assert!(client.is_tls());
    assert!(!client.capabilities().has("STLS"), "{:?}", client.capabilities());
    let session =
        client.login(&Credentials::new("alice", "alicepw")).map_err(|(e, _)| e).expect("login");
    assert!(session.is_tls());
    session.quit().expect("QUIT");
    let untrusted = ConnectOptions::new("localhost", dovecot.pop3_port(), Security::StartTls);
    let error = Client::connect(&untrusted).expect_err("untrusted STLS");
    assert!(matches!(error, Error::Net(mailnet::Error::Certificate { .. })), "{error}");
}
