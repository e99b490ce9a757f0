//! mailnet against a real Dovecot: implicit TLS with the harness's private CA, refusal
//! without it, the `dangerous_accept_invalid_certs` escape hatch, and a STARTTLS upgrade.

use mailnet::{CertificateProblem, Error, Fingerprint, Stream, Timeouts, TlsConnector, TlsOptions};
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
    assert!(matches!(error, Error::Certificate { .. }), "{error}");

    // Wrong name: the certificate is for localhost/127.0.0.1 only.
    let wrong_name = TlsConnector::new(
        &TlsOptions::new().ca_file(dovecot.ca_file()).server_name("imap.example.com"),
    )
    .expect("connector");
    let error = Stream::connect_tls("127.0.0.1", dovecot.imaps_port(), &timeouts, &wrong_name)
        .expect_err("name mismatch must be refused");
    assert!(matches!(error, Error::Certificate { .. }), "{error}");

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

/// The server certificate is self-signed with `CA:TRUE` and names only `CN=localhost`, as
/// `openssl req -x509` makes them: trusted exactly by the CA file/directory (by name) or
/// by fingerprint (under any name); anything else is still refused.
#[test]
fn self_signed_ca_certificates_are_pinned_exactly() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").self_signed_certificate().start();
    let timeouts = Timeouts::default();
    let certificate = dovecot.server_certificate();
    let connect = |host: &str, options: TlsOptions| {
        let tls = TlsConnector::new(&options).expect("connector");
        Stream::connect_tls(host, dovecot.imaps_port(), &timeouts, &tls)
    };
    let refused = |host: &str, options: TlsOptions| match connect(host, options) {
        Err(Error::Certificate { rejection, .. }) => rejection,
        other => panic!("{host}: expected a certificate refusal, got {other:?}"),
    };

    // The certificate itself as the CA file, by its common name.
    let mut stream =
        connect("localhost", TlsOptions::new().ca_file(&certificate)).expect("pinned by CA file");
    assert!(greeting(&mut stream).starts_with("* OK"));
    // …but not under a name it does not carry (no subjectAltName, so no IP address).
    let wrong_name = refused("127.0.0.1", TlsOptions::new().ca_file(&certificate));
    assert_eq!(wrong_name.problem(), CertificateProblem::WrongName);
    assert!(wrong_name.is_in_ca_file());

    // Without it: untrusted, self-signed, and the message names its fingerprint as openssl
    // prints it.
    let expected = testkit::sha256_fingerprint(&certificate);
    let untrusted = refused("localhost", TlsOptions::new());
    assert_eq!(untrusted.problem(), CertificateProblem::Untrusted);
    assert!(untrusted.is_self_signed());
    assert_eq!(untrusted.fingerprint().to_string(), expected);
    assert!(untrusted.to_string().contains(&expected), "{untrusted}");

    // Another self-signed certificate for the same name in the CA file does not help.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let (other, _) = testkit::self_signed_certificate(other_dir.path(), "other", "localhost");
    let impostor = refused("localhost", TlsOptions::new().ca_file(&other));
    assert_eq!(impostor.problem(), CertificateProblem::Untrusted);

    // By fingerprint: under any name, also through STARTTLS; a wrong one is refused.
    let pinned: Fingerprint = expected.parse().expect("openssl's fingerprint parses");
    for host in ["localhost", "127.0.0.1"] {
        let mut stream = connect(host, TlsOptions::new().pin_fingerprint(pinned)).expect(host);
        assert!(greeting(&mut stream).starts_with("* OK"));
    }
    let wrong: Fingerprint =
        testkit::sha256_fingerprint(&other).parse().expect("openssl's fingerprint parses");
    let mismatch = refused("localhost", TlsOptions::new().pin_fingerprint(wrong));
    assert_eq!(mismatch.fingerprints_given(), 1);
    assert!(mismatch.to_string().contains("not the pinned one"), "{mismatch}");
    let tls = TlsConnector::new(&TlsOptions::new().pin_fingerprint(pinned)).expect("connector");
    let mut plain = Stream::connect("127.0.0.1", dovecot.imap_port(), &timeouts).expect("plain");
    assert!(greeting(&mut plain).contains("STARTTLS"));
    plain.send(b"s1 STARTTLS\r\n").expect("send");
    assert!(read_line(&mut plain).starts_with("s1 OK"));
    plain.start_tls(&tls).expect("STARTTLS with the pinned fingerprint");

    // A CA directory: c_rehash names (links) and plain PEM files alike.
    let hashed = tempfile::tempdir().expect("temp dir");
    std::fs::copy(&certificate, hashed.path().join("server.pem")).expect("copy");
    std::os::unix::fs::symlink("server.pem", hashed.path().join("5ed36f99.0")).expect("link");
    std::fs::copy(&other, hashed.path().join("other.pem")).expect("copy");
    let mut stream =
        connect("localhost", TlsOptions::new().ca_dir(hashed.path())).expect("pinned by CA dir");
    assert!(greeting(&mut stream).starts_with("* OK"));
    let without = tempfile::tempdir().expect("temp dir");
    std::fs::copy(&other, without.path().join("other.pem")).expect("copy");
    let impostor = refused("localhost", TlsOptions::new().ca_dir(without.path()));
    assert_eq!(impostor.problem(), CertificateProblem::Untrusted);
}

#[test]
fn which_ports_speak_tls_from_the_first_byte() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let within = std::time::Duration::from_secs(5);
    // Dovecot's imaps and pop3s answer a handshake; its plain ports greet in plain text.
    assert!(Stream::answers_tls("127.0.0.1", dovecot.imaps_port(), within));
    assert!(Stream::answers_tls("127.0.0.1", dovecot.pop3s_port(), within));
    assert!(!Stream::answers_tls("127.0.0.1", dovecot.imap_port(), within));
    assert!(!Stream::answers_tls("127.0.0.1", dovecot.pop3_port(), within));

    // imaps at the plain port: Dovecot's greeting is the answer to our ClientHello.
    let tls = TlsConnector::new(&TlsOptions::new().ca_file(dovecot.ca_file())).expect("ca");
    for (port, service) in [
        (dovecot.imap_port(), mailnet::Service::Imap),
        (dovecot.pop3_port(), mailnet::Service::Pop3),
    ] {
        let error = Stream::connect_tls("localhost", port, &Timeouts::default(), &tls)
            .expect_err("a plain port does not speak TLS");
        assert!(
            matches!(&error, Error::NotTls { service: Some(found), .. } if *found == service),
            "{error:?}"
        );
        assert!(error.is_configuration());
    }
}

/// One shared connector resumes the session of its earlier connection (the ticket arrives
/// with the first read after the handshake) when the server can: Dovecot in
/// high-performance mode, where one login process serves many connections. In its default
/// high-security mode every connection gets a new login process with its own ticket key,
/// so nothing resumes there. With resumption off, or connectors made apart, every
/// handshake is a full one.
#[test]
fn a_shared_connector_resumes_sessions_where_the_server_can() {
    let connect = |port: u16, tls: &TlsConnector| {
        let mut stream =
            Stream::connect_tls("localhost", port, &Timeouts::default(), tls).expect("imaps");
        let mut greeting = [0u8; 512];
        let n = stream.read_some(&mut greeting).expect("greeting");
        assert!(greeting[..n].starts_with(b"* OK"), "{:?}", &greeting[..n]);
        stream.is_resumed()
    };
    let reused = Dovecot::builder()
        .user("alice", "alicepw")
        .extra_config("service imap-login {\n  service_count = 0\n  process_min_avail = 1\n  process_limit = 1\n}")
        .start();
    let port = reused.imaps_port();
    let options = TlsOptions::new().ca_file(reused.ca_file());
    let shared = TlsConnector::shared(&options).expect("shared");
    assert!(!connect(port, &shared), "the first handshake is a full one");
    assert!(
        connect(port, &TlsConnector::shared(&options).expect("shared")),
        "the same store resumes"
    );
    assert!(connect(port, &shared), "and again, with the ticket of the resumed session");
    assert!(
        !connect(port, &TlsConnector::new(&options).expect("new")),
        "a new store has no ticket"
    );
    let off = options.clone().session_resumption(false);
    let without = TlsConnector::shared(&off).expect("shared");
    assert!(!connect(port, &without));
    assert!(!connect(port, &without), "resumption off: full handshakes only");

    let default_mode = Dovecot::builder().user("alice", "alicepw").start();
    let options = TlsOptions::new().ca_file(default_mode.ca_file());
    let shared = TlsConnector::shared(&options).expect("shared");
    assert!(!connect(default_mode.imaps_port(), &shared));
    assert!(
        !connect(default_mode.imaps_port(), &shared),
        "a new login process per connection cannot resume: has Dovecot changed?"
    );
}
