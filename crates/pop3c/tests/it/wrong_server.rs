//! A client pointed at the wrong port, a server that trickles or lists more than it has, a
//! server that echoes credentials: each is named, bounded and masked. Dovecot where it can
//! show the case (its IMAP and pop3s ports); a scripted fake server where it cannot, and
//! each test says so.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailnet::Service;
use pop3c::{
    AuthMechanism, Client, ConnectOptions, Credentials, Error, Security, Timeouts, TlsOptions,
};
use testkit::{Dovecot, FakeServer, Step};

const CAPA: &str = "+OK\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\n.\r\n";

fn fast(port: u16, security: Security) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port, security).timeouts(Timeouts {
        connect: Duration::from_secs(5),
        read: Some(Duration::from_secs(2)),
        write: Some(Duration::from_secs(2)),
    })
}

/// Greeting, CAPA, USER/PASS accepted, CAPA again; then `rest`.
fn logged_in(rest: Vec<Step>) -> Vec<Step> {
    let mut script = vec![
        Step::send("+OK fake ready\r\n"),
        Step::Read,
        Step::send(CAPA),
        Step::Read,
        Step::send("+OK\r\n"),
        Step::Read,
        Step::send("+OK logged in\r\n"),
        Step::Read,
        Step::send(CAPA),
    ];
    script.extend(rest);
    script
}

fn login(options: &ConnectOptions) -> pop3c::Session {
    let credentials = Credentials::new("alice", "pw").mechanism(AuthMechanism::UserPass);
    Client::connect(options)
        .expect("connect")
        .login(&credentials)
        .map_err(|(e, _)| e)
        .expect("login")
}

#[test]
fn dovecot_ports_of_the_wrong_kind_are_named_at_once() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let greeting_wait = Duration::from_secs(2);

    // POP3 at Dovecot's IMAP ports, plain and TLS.
    let error = Client::connect(&fast(dovecot.imap_port(), Security::Plain)).expect_err("IMAP");
    assert!(
        matches!(&error, Error::WrongService { found: Service::Imap, tls: false, greeting }
            if greeting.starts_with("* OK")),
        "{error:?}"
    );
    assert!(error.is_wrong_endpoint() && !error.is_retryable());
    let options =
        fast(dovecot.imaps_port(), Security::Tls).tls(TlsOptions::new().ca_file(dovecot.ca_file()));
    let error = Client::connect(&options).expect_err("IMAP over TLS");
    assert!(
        matches!(&error, Error::WrongService { found: Service::Imap, tls: true, .. }),
        "{error:?}"
    );

    // Plain POP3 at the pop3s port: silent, then a TLS probe names it.
    let started = Instant::now();
    let options = fast(dovecot.pop3s_port(), Security::StartTls).greeting_timeout(greeting_wait);
    let error = Client::connect(&options).expect_err("pop3s port");
    assert!(
        matches!(error, Error::ImplicitTlsPort { waited } if waited == greeting_wait),
        "{error}"
    );
    assert!(started.elapsed() < greeting_wait * 2, "{:?}", started.elapsed());

    // pop3s at the plain port: the greeting answers the ClientHello.
    let options =
        fast(dovecot.pop3_port(), Security::Tls).tls(TlsOptions::new().ca_file(dovecot.ca_file()));
    let error = Client::connect(&options).expect_err("plain port");
    assert!(
        matches!(&error, Error::Net(mailnet::Error::NotTls { service: Some(Service::Pop3), .. })),
        "{error:?}"
    );
    assert!(error.is_wrong_endpoint());
}

/// A fake server (Dovecot's STAT and listings agree): a listing longer than STAT's count is
/// refused, the rest is read without being kept, and the session stays in sync.
#[test]
fn a_listing_beyond_stat_is_a_protocol_error() {
    let listing = (1..=50_000).map(|n| format!("{n} 100\r\n")).collect::<Vec<_>>().concat();
    let uidls = (1..=50_000).map(|n| format!("{n} uidl-{n}\r\n")).collect::<Vec<_>>().concat();
    let server = FakeServer::start(logged_in(vec![
        Step::Read,
        Step::Read,
        Step::Read,
        Step::send("+OK 4 400\r\n+OK\r\n"),
        Step::Send(listing.into_bytes()),
        Step::send(".\r\n+OK\r\n"),
        Step::Send(uidls.into_bytes()),
        Step::send(".\r\n"),
        Step::Read,
        Step::send("+OK still here\r\n"),
    ]));
    let mut session = login(&fast(server.port(), Security::Plain));
    let error = session.messages().expect_err("50 000 listed, 4 announced");
    assert!(
        matches!(&error, Error::Protocol(text) if text == "LIST lists more than the 4 messages STAT announced"),
        "{error}"
    );
    session.noop().expect("both listings were read: in sync");
    let lines = server.finish();
    assert_eq!(&lines[4..7], ["STAT", "LIST", "UIDL"]);
}

/// A fake server: Dovecot never trickles. One byte every 150 ms never trips a 1 s read
/// timeout, but no complete line for 1 s ends the command.
#[test]
fn a_trickling_server_ends_the_command_after_the_timeout_without_progress() {
    let server = FakeServer::start(logged_in(vec![
        Step::Read,
        Step::Trickle(
            b"+OK 1 octets follow and follow and follow\r\n".to_vec(),
            Duration::from_millis(150),
        ),
    ]));
    let mut options = fast(server.port(), Security::Plain);
    options.timeouts.read = Some(Duration::from_secs(1));
    let mut session = login(&options);
    let started = Instant::now();
    let error = session.noop().expect_err("trickle");
    assert!(
        matches!(error, Error::Net(mailnet::Error::Stalled { timeout }) if timeout == Duration::from_secs(1)),
        "{error}"
    );
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// A fake server that echoes what it was sent (Dovecot never does): the password and its
/// AUTH PLAIN encoding are masked in errors and in the trace.
#[test]
fn credentials_echoed_by_the_server_are_masked_everywhere() {
    use base64::Engine as _;
    let password = "Echo-Me-9x";
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{password}"));
    for (mechanism, capa, steps) in [
        (
            AuthMechanism::UserPass,
            "+OK\r\nUSER\r\n.\r\n",
            vec![
                Step::Read,
                Step::send("+OK\r\n"),
                Step::Read,
                Step::Send(format!("-ERR [AUTH] wrong password {password}\r\n").into_bytes()),
            ],
        ),
        (
            AuthMechanism::Plain,
            "+OK\r\nSASL PLAIN\r\n.\r\n",
            vec![
                Step::Read,
                Step::Send(format!("-ERR [AUTH] cannot decode {plain}\r\n").into_bytes()),
            ],
        ),
    ] {
        let mut script = vec![Step::send("+OK ready\r\n"), Step::Read, Step::send(capa)];
        script.extend(steps);
        script.push(Step::Read);
        script.push(Step::send("+OK bye\r\n"));
        let server = FakeServer::start(script);
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let trace = mailnet::Trace::new(move |direction, text| {
            sink.lock().expect("trace").push(format!("{direction:?} {text}"));
        });
        let options = fast(server.port(), Security::Plain).trace(trace);
        let credentials = Credentials::new("alice", password).mechanism(mechanism);
        let (error, client) =
            Client::connect(&options).expect("connect").login(&credentials).expect_err("refused");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(password) && !shown.contains(&plain), "{mechanism:?}: {shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        client.quit().expect("QUIT");
        let trace = lines.lock().expect("trace").join("\n");
        assert!(!trace.contains(password) && !trace.contains(&plain), "{mechanism:?}:\n{trace}");
    }
}
