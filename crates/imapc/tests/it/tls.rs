//! Transport and authentication against Dovecot: IMAPS and STARTTLS with the harness's
//! private CA, refusal without it, master-user logins in both forms.

use imapc::{AuthMechanism, Client, ConnectOptions, Credentials, Error, Security, TlsOptions};
use testkit::Dovecot;

use crate::{imaps, plain};

#[test]
fn imaps_starttls_and_master_users() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();

    // Implicit TLS, verified against the private CA.
    let client = Client::connect(&imaps(&dovecot)).expect("imaps");
    assert!(client.is_tls());
    let session =
        client.login(&Credentials::new("alice", "alicepw")).map_err(|(e, _)| e).expect("login");
    session.logout().expect("logout");

    // Without the CA the certificate is refused.
    let untrusted = ConnectOptions::new("localhost", dovecot.imaps_port(), Security::Tls);
    let error = Client::connect(&untrusted).expect_err("untrusted certificate");
    assert!(matches!(error, Error::Net(mailnet::Error::Certificate { .. })), "{error}");
    // …unless asked for by name.
    let dangerous = untrusted.clone().tls(TlsOptions::new().dangerous_accept_invalid_certs(true));
    Client::connect(&dangerous).expect("dangerous_accept_invalid_certs").logout().expect("logout");

    // STARTTLS on the plain port; capabilities are re-read after the upgrade.
    let options = ConnectOptions::new("localhost", dovecot.imap_port(), Security::StartTls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()));
    let client = Client::connect(&options).expect("starttls");
    assert!(client.is_tls());
    assert!(!client.capabilities().has("STARTTLS"), "{:?}", client.capabilities());
    let session =
        client.login(&Credentials::new("alice", "alicepw")).map_err(|(e, _)| e).expect("login");
    session.logout().expect("logout");
    let untrusted = ConnectOptions::new("localhost", dovecot.imap_port(), Security::StartTls);
    assert!(matches!(
        Client::connect(&untrusted),
        Err(Error::Net(mailnet::Error::Certificate { .. }))
    ));

    // Master user, both ways Dovecot accepts: LOGIN user*master, AUTHENTICATE PLAIN authzid.
    let (master, master_password) = dovecot.master_credentials();
    for mechanism in [AuthMechanism::Login, AuthMechanism::Plain, AuthMechanism::Auto] {
        let credentials =
            Credentials::master("alice", master, master_password).mechanism(mechanism);
        assert_eq!(format!("{credentials:?}|{credentials}"), "<redacted>|<redacted>");
        let mut session = Client::connect(&plain(&dovecot))
            .expect("connect")
            .login(&credentials)
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}"));
        // Logged in as alice: her INBOX exists and the server says who we are.
        assert!(session.list("", "INBOX").expect("LIST").len() == 1);
        session.logout().expect("logout");
        let wrong = Credentials::master("alice", master, "nope").mechanism(mechanism);
        let (error, _) =
            Client::connect(&plain(&dovecot)).expect("connect").login(&wrong).expect_err("wrong");
        assert!(matches!(error, Error::AuthenticationFailed { .. }), "{mechanism:?}: {error}");
    }
}
