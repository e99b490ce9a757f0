//! A client pointed at the wrong port, a server that trickles or floods, a server that
//! echoes credentials: each is named, bounded and masked. Dovecot is used where it can
//! show the case (its imaps, POP3 and plain ports); a scripted fake server where it cannot
//! (SMTP greetings, PREAUTH, refused STARTTLS, trickles, floods, echoes), and each test
//! says so.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imapc::proto::FetchItem;
use imapc::{
    AuthMechanism, Client, ConnectOptions, Credentials, Error, MailboxName, Security, SequenceSet,
    Session, Timeouts, TlsOptions,
};
use mailnet::Service;
use testkit::{Dovecot, FakeServer, Step};

use crate::Collect;

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+] fake ready\r\n";

fn fast(port: u16, security: Security) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port, security).timeouts(Timeouts {
        connect: Duration::from_secs(5),
        read: Some(Duration::from_secs(2)),
        write: Some(Duration::from_secs(2)),
    })
}

fn logged_in(_server: &FakeServer, options: &ConnectOptions) -> Session {
    Client::connect(options)
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .map_err(|(error, _)| error)
        .expect("login")
}

/// Greeting, login, EXAMINE INBOX with `exists` messages; then `rest`.
fn examined(exists: u32, rest: Vec<Step>) -> Vec<Step> {
    let mut script = vec![
        Step::send(GREETING),
        Step::Read,
        Step::send("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n"),
        Step::Read,
        Step::Send(
            format!(
                "* {exists} EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n{{tag}} OK [READ-ONLY] ok\r\n"
            )
            .into_bytes(),
        ),
    ];
    script.extend(rest);
    script
}

#[test]
fn dovecot_ports_of_the_wrong_kind_are_named_at_once() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let greeting_wait = Duration::from_secs(2);

    // Plain IMAP at the imaps port: Dovecot waits for a ClientHello and says nothing. The
    // greeting's own timeout ends the wait, and a TLS probe names the port.
    let started = Instant::now();
    let options = fast(dovecot.imaps_port(), Security::Plain).greeting_timeout(greeting_wait);
    let error = Client::connect(&options).expect_err("no greeting on the imaps port");
    assert!(
        matches!(error, Error::ImplicitTlsPort { waited } if waited == greeting_wait),
        "{error}"
    );
    assert!(error.is_wrong_endpoint());
    assert!(started.elapsed() < greeting_wait * 2, "{:?}", started.elapsed());
    // STARTTLS there too (the greeting never comes to offer it).
    let options = fast(dovecot.imaps_port(), Security::StartTls).greeting_timeout(greeting_wait);
    let error = Client::connect(&options).expect_err("no greeting on the imaps port");
    assert!(matches!(error, Error::ImplicitTlsPort { .. }), "{error}");

    // Implicit TLS at the plain port: Dovecot's greeting answers the ClientHello.
    let options =
        fast(dovecot.imap_port(), Security::Tls).tls(TlsOptions::new().ca_file(dovecot.ca_file()));
    let error = Client::connect(&options).expect_err("plain port");
    assert!(
        matches!(&error, Error::Net(mailnet::Error::NotTls { service: Some(Service::Imap), .. })),
        "{error:?}"
    );
    assert!(error.is_wrong_endpoint());

    // IMAP at the POP3 ports, plain and TLS: a POP3 greeting.
    let error = Client::connect(&fast(dovecot.pop3_port(), Security::Plain)).expect_err("POP3");
    assert!(
        matches!(&error, Error::WrongService { found: Service::Pop3, tls: false, greeting }
            if greeting.starts_with("+OK")),
        "{error:?}"
    );
    let options = fast(dovecot.pop3s_port(), Security::Tls)
        .tls(TlsOptions::new().ca_file(dovecot.ca_file()))
        .greeting_timeout(greeting_wait);
    let error = Client::connect(&options).expect_err("POP3 over TLS");
    assert!(
        matches!(&error, Error::WrongService { found: Service::Pop3, tls: true, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("greeted in POP3, not IMAP"), "{error}");
}

/// A fake server, since Dovecot greets in IMAP on every IMAP port: other protocols' greetings
/// and a TLS alert where a greeting belongs. Nothing is sent to such a server.
#[test]
fn other_greetings_and_tls_records_are_named_without_sending_anything() {
    for (greeting, found) in [
        (&b"220 mail.example.com ESMTP Postfix\r\n"[..], Some(Service::Smtp)),
        (b"SSH-2.0-OpenSSH_9.2p1\r\n", Some(Service::Ssh)),
        // A TLS alert record (handshake_failure), as an implicit-TLS port may send on junk.
        (&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28], None),
    ] {
        let server = FakeServer::start(vec![Step::Send(greeting.to_vec()), Step::Read]);
        let options =
            fast(server.port(), Security::Plain).greeting_timeout(Duration::from_millis(500));
        let error = Client::connect(&options).expect_err("not IMAP");
        match found {
            Some(found) => {
                assert!(
                    matches!(&error, Error::WrongService { found: f, .. } if *f == found),
                    "{error:?}"
                );
            }
            None => assert!(matches!(error, Error::ImplicitTlsPort { .. }), "{error:?}"),
        }
        assert!(server.finish().is_empty(), "nothing was sent");
    }
}

/// A fake implicit-TLS server that stays silent on the first connection and answers the
/// probe's ClientHello with a TLS alert: shown without Dovecot's certificates, and the
/// wait is the greeting timeout, not the read timeout.
#[test]
fn a_silent_port_that_answers_tls_is_an_implicit_tls_port() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (silent, _) = listener.accept().expect("first connection");
        let (mut probe, _) = listener.accept().expect("the probe");
        let mut hello = [0u8; 1024];
        let n = probe.read(&mut hello).expect("ClientHello");
        probe.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]).expect("alert");
        drop(silent);
        hello[0] == 0x16 && n > 5
    });
    let options = ConnectOptions::new("127.0.0.1", port, Security::Plain)
        .greeting_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let error = Client::connect(&options).expect_err("silent");
    assert!(matches!(error, Error::ImplicitTlsPort { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(server.join().expect("server"), "the probe sent a TLS ClientHello");

    // The same silence without TLS behind it stays a timeout of the greeting.
    let quiet = FakeServer::start(vec![Step::Sleep(Duration::from_secs(3))]);
    let options = fast(quiet.port(), Security::Plain).greeting_timeout(Duration::from_millis(300));
    let error = Client::connect(&options).expect_err("silent");
    assert!(error.is_timeout(), "{error}");
    assert!(error.to_string().contains("greeting"), "{error}");
}

/// A fake server (Dovecot neither PREAUTHs nor refuses STARTTLS it offers): both mean no
/// TLS, so they are configuration errors, never a plain-text session.
#[test]
fn preauth_and_a_refused_starttls_are_configuration_errors() {
    let server = FakeServer::start(vec![
        Step::send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in already\r\n"),
        Step::Read,
    ]);
    let error = Client::connect(&fast(server.port(), Security::StartTls)).expect_err("PREAUTH");
    assert!(matches!(error, Error::PreauthWithoutTls), "{error}");
    assert!(error.is_wrong_endpoint());
    assert!(server.finish().is_empty(), "nothing was sent");

    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
        Step::Read,
        Step::send("{tag} NO TLS is broken today\r\n"),
        Step::Read,
    ]);
    let error = Client::connect(&fast(server.port(), Security::StartTls)).expect_err("refused");
    assert!(
        matches!(&error, Error::StartTlsRefused { text, .. } if text == "TLS is broken today"),
        "{error}"
    );
    assert!(error.is_wrong_endpoint());
}

/// A fake server: Dovecot never trickles. One byte every 150 ms never trips a 1 s read
/// timeout, but no complete response for 1 s ends the command.
#[test]
fn a_trickling_server_ends_the_command_after_the_timeout_without_progress() {
    let server = FakeServer::start(examined(
        3,
        vec![
            Step::Read,
            Step::Trickle(b"* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" RFC822.SIZE 5)\r\n".to_vec(), Duration::from_millis(150)),
        ],
    ));
    let mut options = fast(server.port(), Security::Plain);
    options.timeouts.read = Some(Duration::from_secs(1));
    let mut session = logged_in(&server, &options);
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let started = Instant::now();
    let error = session.fetch_metadata_all().expect_err("trickle");
    let waited = started.elapsed();
    assert!(
        matches!(error, Error::Net(mailnet::Error::Stalled { timeout }) if timeout == Duration::from_secs(1)),
        "{error}"
    );
    assert!(error.is_timeout());
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

/// A fake server (Dovecot sends an alert or two, never a flood): 20 000 `[ALERT]`s keep ten,
/// the rest are counted; control characters are escaped.
#[test]
fn a_flood_of_alerts_keeps_ten() {
    let server = FakeServer::start(vec![
        Step::send(GREETING),
        Step::Read,
        Step::send("* OK [ALERT] Maintenance at \x1b[31mnoon\r\n"),
        Step::Repeat(b"* OK [ALERT] again and again\r\n".to_vec(), 10_000),
        Step::Repeat(b"* OK [ALERT] and once more\r\n".to_vec(), 10_000),
        Step::send("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n"),
        Step::Read,
        Step::send("* OK [ALERT] one\r\n* OK [ALERT] two\r\n* OK [ALERT] three\r\n"),
        Step::send("* OK [ALERT] four\r\n* OK [ALERT] five\r\n* OK [ALERT] six\r\n"),
        Step::send("* OK [ALERT] seven\r\n* OK [ALERT] eight\r\n* OK [ALERT] nine\r\n"),
        Step::send("{tag} OK noop\r\n"),
    ]);
    let mut session = logged_in(&server, &fast(server.port(), Security::Plain));
    session.noop().expect("NOOP");
    let alerts = session.take_alerts();
    assert_eq!(alerts.len(), 10, "{alerts:?}");
    assert_eq!(alerts[0], "Maintenance at \\u{1b}[31mnoon");
    assert_eq!(alerts[1], "again and again");
    assert_eq!(alerts[2], "and once more");
    assert_eq!(alerts[9], "seven");
    assert_eq!(session.take_dropped_alerts(), 19_998 + 2);
    assert_eq!(session.take_dropped_alerts(), 0);
}

/// A complete metadata answer for `uid`.
fn listed(uid: u32) -> String {
    format!(
        "* {uid} FETCH (UID {uid} FLAGS () INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" RFC822.SIZE 5)\r\n"
    )
}

/// A fake server that answers the listing of a mailbox of 4 messages (EXAMINE and
/// `UID FETCH 1:*` pipelined) with 20 000, then a NOOP.
fn flooding_server() -> FakeServer {
    let flood: String = (1..=20_000).map(listed).collect();
    FakeServer::start(vec![
        Step::send(GREETING),
        Step::Read,
        Step::send("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n"),
        Step::Read, // EXAMINE
        Step::Read, // UID FETCH 1:*, pipelined behind it
        Step::send("* 4 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\nA2 OK [READ-ONLY] ok\r\n"),
        Step::Send(flood.into_bytes()),
        Step::send("A3 OK done\r\n"),
        Step::Read,
        Step::send("{tag} OK still in sync\r\n"),
    ])
}

/// A fake server (Dovecot lists what it has): a metadata listing beyond the mailbox's
/// EXISTS is refused once it passes it, and what was kept stays bounded.
#[test]
fn a_listing_beyond_exists_is_a_protocol_error() {
    let server = flooding_server();
    let mut session = logged_in(&server, &fast(server.port(), Security::Plain));
    let error = session
        .examine_with_metadata(&MailboxName::from_utf8("INBOX"), false)
        .expect_err("20 000 answers for 4 messages");
    assert!(
        matches!(&error, Error::Protocol(text) if text.contains("more messages than the 4")),
        "{error}"
    );
    session.noop().expect("the rest was read: still in sync");

    // New mail announced during the listing raises the bound.
    let server = FakeServer::start(examined(
        2,
        vec![
            Step::Read,
            Step::Send(
                [
                    listed(1),
                    "* 3 EXISTS\r\n".into(),
                    listed(2),
                    listed(3),
                    "{tag} OK done\r\n".into(),
                ]
                .concat()
                .into_bytes(),
            ),
        ],
    ));
    let mut session = logged_in(&server, &fast(server.port(), Security::Plain));
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    assert_eq!(session.fetch_metadata_all().expect("3 of 3").len(), 3);
}

/// A fake server (Dovecot answers in UID order and never stops early): a streamed listing
/// gives the answers as the server sent them — out of order too, for the caller to
/// notice — passes over an unsolicited FETCH without every item, and, dropped before its
/// end, reads the rest so that the next command's answer is its own.
#[test]
fn a_streamed_listing_comes_as_sent_and_can_stop_early() {
    let line = |uid: u32| {
        format!(
            "* {uid} FETCH (UID {uid} FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" RFC822.SIZE {uid}0)\r\n"
        )
    };
    let listing = [line(3), "* 1 FETCH (UID 1 FLAGS ())\r\n".into(), line(1), line(2)].concat();
    let server = FakeServer::start(vec![
        Step::send(GREETING),
        Step::Read,
        Step::send("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n"),
        Step::Read, // EXAMINE
        Step::Read, // UID FETCH 1:*, pipelined behind it
        Step::send("* 3 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\nA2 OK [READ-ONLY] ok\r\n"),
        Step::Send([listing.clone(), "A3 OK done\r\n".into()].concat().into_bytes()),
        Step::Read, // EXAMINE again
        Step::Read,
        Step::send("* 3 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\nA4 OK [READ-ONLY] ok\r\n"),
        Step::Send([listing, "A5 OK done\r\n".into()].concat().into_bytes()),
        Step::Read,
        Step::send("{tag} OK still in sync\r\n"),
    ]);
    let mut session = logged_in(&server, &fast(server.port(), Security::Plain));
    let inbox = MailboxName::from_utf8("INBOX");
    let (info, listing) = session.examine_listing(&inbox, false).expect("EXAMINE");
    assert_eq!(info.exists, 3);
    let listed: Vec<(u32, u64)> = listing
        .map(|meta| meta.map(|m| (m.uid, m.rfc822_size)))
        .collect::<Result<_, _>>()
        .expect("listing");
    assert_eq!(listed, [(3, 30), (1, 10), (2, 20)], "as sent, the partial answer passed over");

    let (_, mut listing) = session.examine_listing(&inbox, false).expect("EXAMINE");
    assert_eq!(listing.next().expect("one").expect("answer").uid, 3);
    drop(listing);
    session.noop().expect("the rest was read: still in sync");
}

/// The same bound as the whole listing's, streamed: more answers than EXISTS end the
/// listing with the error after what was within it, and the session stays in sync.
#[test]
fn a_streamed_listing_beyond_exists_ends_with_a_protocol_error() {
    let server = flooding_server();
    let mut session = logged_in(&server, &fast(server.port(), Security::Plain));
    let (_, listing) =
        session.examine_listing(&MailboxName::from_utf8("INBOX"), false).expect("EXAMINE");
    let results: Vec<_> = listing.collect();
    assert_eq!(results.len(), 5, "four messages, then the error, then nothing");
    assert!(results[..4].iter().all(Result::is_ok));
    assert!(
        matches!(&results[4], Err(Error::Protocol(text)) if text.contains("more messages than the 4")),
        "{:?}",
        results[4]
    );
    session.noop().expect("the rest was read: still in sync");
}

/// A fake server that echoes what it was sent (Dovecot never does): the password and its
/// SASL encoding are masked in errors, in the trace, and in alerts.
#[test]
fn credentials_echoed_by_the_server_are_masked_everywhere() {
    use base64::Engine as _;
    let password = "Echo-Me-9x";
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{password}"));
    for (mechanism, echo) in [
        (AuthMechanism::Login, format!("wrong password {password} for alice")),
        (AuthMechanism::Plain, format!("cannot decode {plain} ({password})")),
    ] {
        let server = FakeServer::start(vec![
            Step::send(GREETING),
            Step::Read,
            Step::Send(format!("* OK [ALERT] you sent {password}\r\n{{tag}} NO [AUTHENTICATIONFAILED] {echo}\r\n").into_bytes()),
            Step::Read,
            Step::send("* BYE ok\r\n{tag} OK bye\r\n"),
        ]);
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let trace = imapc::Trace::new(move |direction, text| {
            sink.lock().expect("trace").push(format!("{direction:?} {text}"));
        });
        let options = fast(server.port(), Security::Plain).trace(trace);
        let credentials = Credentials::new("alice", password).mechanism(mechanism);
        let (error, client) =
            Client::connect(&options).expect("connect").login(&credentials).expect_err("refused");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(password) && !shown.contains(&plain), "{mechanism:?}: {shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        client.logout().expect("logout");
        let trace = lines.lock().expect("trace").join("\n");
        assert!(!trace.contains(password) && !trace.contains(&plain), "{mechanism:?}:\n{trace}");
        assert!(trace.contains("you sent <redacted>"), "{trace}");
    }
}

/// Fetch of bodies still works with the stall limit on (it is reset by every response).
#[test]
fn slow_but_steady_servers_are_not_stalled() {
    let mut steps = vec![Step::Read];
    for uid in 1..=6 {
        steps.push(Step::Sleep(Duration::from_millis(250)));
        steps.push(Step::Send(
            format!("* {uid} FETCH (UID {uid} BODY[] {{5}}\r\nhello)\r\n").into_bytes(),
        ));
    }
    steps.push(Step::send("{tag} OK done\r\n"));
    let server = FakeServer::start(examined(6, steps));
    let mut options = fast(server.port(), Security::Plain);
    options.timeouts.read = Some(Duration::from_millis(600));
    let mut session = logged_in(&server, &options);
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let mut collect = Collect::default();
    session
        .uid_fetch(&SequenceSet::all(), &[FetchItem::Uid, FetchItem::whole_message()], &mut collect)
        .expect("1.5 s in all, but a message every 250 ms");
    assert_eq!(collect.messages.len(), 6);
}
