//! mailnet against a real Dovecot: implicit TLS with the harness's private CA, refusal
//! without it, the `dangerous_accept_invalid_certs` escape hatch, and a STARTTLS upgrade.

use mailnet::{Error, Stream, Timeouts, TlsConnector, TlsOptions};
use testkit::Dovecot;

fn read_line(stream: &mut Stream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert_eq!(stream.read_some(&mut byte).expect("read"), 1, "unexpected end of stream");
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn greeting(stream: &mut Stream) -> String {
    loop {
        let line = read_line(stream);
        if line.contains("[CAPABILITY") || !line.starts_with("* OK Waiting") {
            return line;
        }
    }
}

#[test]
fn tls_implicit_and_starttls_against_dovecot() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let timeouts = Timeouts::default();

    // Verified with the private CA, by host name and by IP (the certificate has both).
    let trusted = TlsConnector::new(&TlsOptions::new().ca_file(dovecot.ca_file())).expect("ca");
    for host in ["localhost", "127.0.0.1"] {
        let mut stream =
            Stream::connect_tls(host, dovecot.imaps_port(), &timeouts, &trusted).expect(host);
        assert!(stream.is_tls());
        assert!(greeting(&mut stream).starts_with("* OK"), "{host}");
        stream.shutdown();
    }

    // Without the CA: refused, with a TLS error (unknown issuer).
    let default = TlsConnector::new(&TlsOptions::new()).expect("roots");
    let error = Stream::connect_tls("localhost", dovecot.imaps_port(), &timeouts, &default)
        .expect_err("untrusted certificate must be refused");
    assert!(matches!(error, Error::Tls { .. }), "{error}");

    // Wrong name: the certificate is for localhost/127.0.0.1 only.
    let wrong_name = TlsConnector::new(
        &TlsOptions::new().ca_file(dovecot.ca_file()).server_name("imap.example.com"),
    )
    .expect("connector");
    let error = Stream::connect_tls("127.0.0.1", dovecot.imaps_port(), &timeouts, &wrong_name)
        .expect_err("name mismatch must be refused");
    assert!(matches!(error, Error::Tls { .. }), "{error}");

    // Asked for by name: accepted without the CA.
    let dangerous =
        TlsConnector::new(&TlsOptions::new().dangerous_accept_invalid_certs(true)).expect("tls");
    let mut stream = Stream::connect_tls("localhost", dovecot.imaps_port(), &timeouts, &dangerous)
        .expect("dangerous mode accepts the self-signed chain");
    assert!(greeting(&mut stream).starts_with("* OK"));

    // STARTTLS upgrade of a live plain stream.
    let mut plain = Stream::connect("localhost", dovecot.imap_port(), &timeouts).expect("plain");
    assert!(greeting(&mut plain).contains("STARTTLS"));
    plain.send(b"s1 STARTTLS\r\n").expect("send");
    assert!(read_line(&mut plain).starts_with("s1 OK"));
    plain.start_tls(&trusted).expect("upgrade");
    assert!(plain.is_tls());
    plain.send(b"c1 CAPABILITY\r\n").expect("send over TLS");
    assert!(read_line(&mut plain).starts_with("* CAPABILITY"));
    assert!(matches!(plain.start_tls(&trusted), Err(Error::AlreadyTls)));
}
