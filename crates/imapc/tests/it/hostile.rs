//! A scripted fake server for what Dovecot cannot do: every hostile or broken answer gives a
//! typed error — never a panic, a hang, or an allocation the size of a lie.

use std::io::Read;
use std::time::{Duration, Instant};

use imapc::proto::{BodyData, BodyStart, DecodeError, Fetch, FetchItem, Limits};
use imapc::{
    AuthMechanism, Client, ConnectOptions, Credentials, Error, FetchHandler, MailboxName, Security,
    SequenceSet, Session, Timeouts, Uid,
};
use testkit::{FakeServer, Step};

use crate::Collect;

const GREETING: &str =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+ UIDPLUS] fake ready\r\n";

fn options(server: &FakeServer) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", server.port(), Security::Plain).timeouts(Timeouts {
        connect: Duration::from_secs(2),
        read: Some(Duration::from_secs(2)),
        write: Some(Duration::from_secs(2)),
    })
}

/// Greeting, AUTHENTICATE PLAIN accepted, EXAMINE INBOX answered; then `rest`.
fn logged_in_script(rest: Vec<Step>) -> Vec<Step> {
    let mut script = vec![
        Step::send(GREETING),
        Step::Read,
        Step::send("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] Logged in\r\n"),
        Step::Read,
        Step::send(
            "* 3 EXISTS\r\n* OK [UIDVALIDITY 42] UIDs valid\r\n{tag} OK [READ-ONLY] Examined\r\n",
        ),
    ];
    script.extend(rest);
    script
}

fn open(server: &FakeServer, options: &ConnectOptions) -> Session {
    let mut session = Client::connect(options)
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .map_err(|(e, _)| e)
        .expect("login");
    let info = session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    assert_eq!(info.uid_validity.get(), 42);
    let _ = server;
    session
}

fn fetch_all(session: &mut Session, handler: &mut dyn FetchHandler) -> Result<(), Error> {
    session.uid_fetch(&SequenceSet::all(), &[FetchItem::Uid, FetchItem::whole_message()], handler)
}

#[test]
fn huge_literal_announcements_are_refused_without_allocating() {
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send("* 1 FETCH (UID 1 BODY[] {4294967295}\r\n"),
        Step::Sleep(Duration::from_millis(200)),
    ]));
    let mut session = open(&server, &options(&server));
    let error = fetch_all(&mut session, &mut Collect::default()).expect_err("must refuse");
    assert!(
        matches!(error, Error::Decode(DecodeError::LiteralTooLarge { len: 4_294_967_295, .. })),
        "{error}"
    );
    assert!(session.noop().is_err(), "the connection is out of sync and refuses further use");

    // A non-body literal has a much smaller cap.
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send("* LIST () \"/\" {2000000}\r\n"),
        Step::Sleep(Duration::from_millis(200)),
    ]));
    let mut session = open(&server, &options(&server));
    let error = session.list("", "*").expect_err("must refuse");
    assert!(
        matches!(error, Error::Decode(DecodeError::LiteralTooLarge { len: 2_000_000, .. })),
        "{error}"
    );
}

#[test]
fn throttling_is_a_typed_error_both_ways_servers_send_it() {
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send("{tag} NO [THROTTLED] Slow down\r\n"),
        Step::Read,
        Step::send("{tag} NO Too many commands [THROTTLED]\r\n"),
        Step::Read,
        Step::send("{tag} OK done\r\n"),
    ]));
    let mut session = open(&server, &options(&server));
    for _ in 0..2 {
        let error = fetch_all(&mut session, &mut Collect::default()).expect_err("throttled");
        assert!(error.is_throttled(), "{error}");
        assert!(matches!(error, Error::No { command: "UID FETCH", .. }));
    }
    session.noop().expect("the session goes on after a NO");
}

#[test]
fn cut_connection_mid_body_and_stalls_are_typed() {
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send("* 1 FETCH (UID 1 BODY[] {100}\r\nonly part of it"),
        Step::Close,
    ]));
    let mut session = open(&server, &options(&server));
    let error = fetch_all(&mut session, &mut Collect::default()).expect_err("cut");
    assert!(matches!(error, Error::Net(mailnet::Error::Closed { .. })), "{error}");

    // A server that stops mid-literal: the read timeout fires.
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send("* 1 FETCH (UID 1 BODY[] {100}\r\nonly part"),
        Step::Sleep(Duration::from_secs(3)),
    ]));
    let mut fast = options(&server);
    fast.timeouts.read = Some(Duration::from_millis(300));
    let mut session = open(&server, &fast);
    let started = Instant::now();
    let error = fetch_all(&mut session, &mut Collect::default()).expect_err("stall");
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A server that never greets.
    let server = FakeServer::start(vec![Step::Sleep(Duration::from_secs(3))]);
    let mut fast = options(&server);
    fast.timeouts.read = Some(Duration::from_millis(300));
    assert!(Client::connect(&fast).expect_err("no greeting").is_timeout());
}

#[test]
fn oversized_lines_deep_nesting_and_garbage() {
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::Send([b"* OK ".to_vec(), vec![b'x'; 10_000]].concat()),
        Step::Sleep(Duration::from_millis(200)),
    ]));
    let limits = Limits { max_line_len: 4096, ..Limits::default() };
    let mut session = open(&server, &options(&server).limits(limits));
    let error = session.noop().expect_err("line too long");
    assert!(matches!(error, Error::Decode(DecodeError::LineTooLong { limit: 4096 })), "{error}");

    let deep =
        format!("* 1 FETCH (UID 1 BODYSTRUCTURE {}\"x\"{})\r\n", "(".repeat(200), ")".repeat(200));
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send(&deep),
        Step::send("{tag} OK\r\n"),
    ]));
    let mut session = open(&server, &options(&server));
    let error = fetch_all(&mut session, &mut Collect::default()).expect_err("too deep");
    assert!(matches!(error, Error::Decode(DecodeError::TooDeep { limit: 64 })), "{error}");

    // A garbled untagged FETCH fails the fetch, but the session is still in sync.
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send(
            "* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE many)\r\n* 2 FETCH (UID 2 FLAGS ())\r\n* WHAT is this\r\n{tag} OK done\r\n",
        ),
        Step::Read,
        Step::send("{tag} OK still fine\r\n"),
    ]));
    let mut session = open(&server, &options(&server));
    let mut collect = Collect::default();
    let error = fetch_all(&mut session, &mut collect).expect_err("malformed");
    assert!(matches!(error, Error::Decode(DecodeError::Malformed { .. })), "{error}");
    assert!(collect.messages.contains_key(&2), "the good response was still delivered");
    session.noop().expect("still in sync");

    // A tagged line for a command we never sent.
    let server =
        FakeServer::start(logged_in_script(vec![Step::Read, Step::send("Z99 OK who are you\r\n")]));
    let mut session = open(&server, &options(&server));
    assert!(matches!(session.noop(), Err(Error::Protocol(_))));
}

#[test]
fn greeting_starttls_and_login_refusals() {
    let server =
        FakeServer::start(vec![Step::send("* BYE [UNAVAILABLE] Too many connections\r\n")]);
    let error = Client::connect(&options(&server)).expect_err("BYE greeting");
    assert!(matches!(&error, Error::Bye { text, .. } if text == "Too many connections"), "{error}");

    // STARTTLS requested, not offered: an error, never plaintext.
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no tls\r\n"),
        Step::Read,
    ]);
    let mut starttls = options(&server);
    starttls.security = Security::StartTls;
    assert!(matches!(Client::connect(&starttls), Err(Error::StartTlsUnavailable)));
    assert!(server.finish().is_empty(), "nothing was sent");

    // Plaintext injected after the STARTTLS answer is refused.
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] tls please\r\n"),
        Step::Read,
        Step::send("{tag} OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
        Step::Sleep(Duration::from_millis(300)),
    ]);
    let mut starttls = options(&server);
    starttls.security = Security::StartTls;
    assert!(Client::connect(&starttls).is_err());

    // LOGINDISABLED and no usable SASL mechanism: the password is never sent.
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hello\r\n"),
        Step::Read,
        Step::send("{tag} OK bye\r\n"),
    ]);
    let client = Client::connect(&options(&server)).expect("connect");
    let (error, client) =
        client.login(&Credentials::new("alice", "secret-pw")).expect_err("refused");
    assert!(matches!(error, Error::LoginDisabled), "{error}");
    client.logout().expect("logout");
    let lines = server.finish();
    assert!(lines.iter().all(|l| !l.contains("secret-pw")), "{lines:?}");

    // LOGINDISABLED without TLS refuses every mechanism, even a PLAIN the server offers
    // (Dovecot never offers it then, so only a fake server can show this): no AUTHENTICATE
    // and no LOGIN leaves the client, for passwords and bearer tokens alike.
    for mechanism in [AuthMechanism::Auto, AuthMechanism::Plain, AuthMechanism::XOAuth2] {
        let server = FakeServer::start(vec![
            Step::send(
                "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2 LOGINDISABLED] hi\r\n",
            ),
            Step::Read,
            Step::send("{tag} OK bye\r\n"),
        ]);
        let client = Client::connect(&options(&server)).expect("connect");
        let credentials = Credentials::new("alice", "secret-pw").mechanism(mechanism);
        let (error, client) = client.login(&credentials).expect_err("refused");
        assert!(matches!(error, Error::LoginDisabled), "{mechanism:?}: {error}");
        client.logout().expect("logout");
        let lines = server.finish();
        assert_eq!(lines.len(), 1, "{mechanism:?}: only LOGOUT is sent: {lines:?}");
        assert!(lines[0].ends_with("LOGOUT"), "{lines:?}");
    }
}

#[test]
fn oauth_mechanisms_and_sasl_without_initial_response() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // XOAUTH2 with SASL-IR; a failure challenge is answered with an empty line.
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n"),
        Step::Read,
        Step::send("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"),
        Step::Read,
        Step::send("A1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"),
        Step::Read,
        Step::send("{tag} OK [CAPABILITY IMAP4rev1] Authenticated\r\n"),
    ]);
    let port = server.port();
    let client = Client::connect(&options(&server)).expect("connect");
    let token =
        Credentials::new("alice@example.com", "ya29.token").mechanism(AuthMechanism::XOAuth2);
    let (error, client) = client.login(&token).expect_err("first attempt fails");
    assert!(matches!(error, Error::AuthenticationFailed { .. }), "{error}");
    let bearer =
        Credentials::new("alice@example.com", "ya29.token").mechanism(AuthMechanism::OAuthBearer);
    client.login(&bearer).map_err(|(e, _)| e).expect("second attempt");
    let lines = server.finish();
    assert_eq!(
        lines[0],
        format!(
            "A1 AUTHENTICATE XOAUTH2 {}",
            b64("user=alice@example.com\x01auth=Bearer ya29.token\x01\x01")
        )
    );
    assert_eq!(lines[1], "=", "empty response to the error challenge");
    let expected = format!(
        "n,a=alice@example.com,\x01host=127.0.0.1\x01port={port}\x01auth=Bearer ya29.token\x01\x01"
    );
    assert_eq!(lines[2], format!("A2 AUTHENTICATE OAUTHBEARER {}", b64(&expected)));

    // Without SASL-IR the PLAIN message follows the server's empty challenge.
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
        Step::Read,
        Step::send("+ \r\n"),
        Step::Read,
        Step::send("A1 OK done\r\n"),
        Step::Read,
        Step::send("* CAPABILITY IMAP4rev1 UIDPLUS\r\n{tag} OK\r\n"),
    ]);
    let session = Client::connect(&options(&server))
        .expect("connect")
        .login(&Credentials::master("alice", "admin", "pw"))
        .map_err(|(e, _)| e)
        .expect("PLAIN");
    assert!(session.has_capability("UIDPLUS"));
    let lines = server.finish();
    assert_eq!(lines[0], "A1 AUTHENTICATE PLAIN");
    assert_eq!(lines[1], b64("alice\0admin\0pw"));
}

/// Body before UID, FLAGS last; a handler that stops early; pipelined batches.
#[test]
fn any_item_order_early_handler_exit_and_pipelining() {
    struct FailFirst(u32);
    impl FetchHandler for FailFirst {
        fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
            self.0 += 1;
            let mut first = [0u8; 2];
            body.read_exact(&mut first)?; // leaves the rest for the client to drain
            assert_eq!(start.len, 5);
            Err(std::io::Error::other("disk full"))
        }
        fn fetch(&mut self, _fetch: Fetch) -> std::io::Result<()> {
            Ok(())
        }
    }
    let server = FakeServer::start(logged_in_script(vec![
        // Three commands arrive before any answer: prefetch 2, depth 3, six UIDs.
        Step::Read,
        Step::Read,
        Step::Read,
        Step::send(
            "* 1 FETCH (BODY[] {5}\r\nhello FLAGS (\\Seen \\Recent) UID 1)\r\n* 2 FETCH (UID 2 BODY[] {5}\r\nworld)\r\nA3 OK\r\n",
        ),
        Step::send(
            "* 3 FETCH (UID 3 BODY[] {5}\r\nthree)\r\nA4 OK\r\n* 5 FETCH (UID 5 BODY[] NIL)\r\nA5 OK\r\n",
        ),
        // A handler error: the rest is drained and the session stays usable.
        Step::Read,
        Step::send(
            "* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n* 2 FETCH (UID 2 BODY[] {5}\r\nworld)\r\n{tag} OK\r\n",
        ),
        Step::Read,
        Step::send("{tag} OK noop\r\n"),
    ]));
    let mut session = open(&server, &options(&server).prefetch_count(2).pipeline_depth(3));
    let uids = SequenceSet::from_uids((1..=6).filter_map(Uid::new));
    let mut collect = Collect::default();
    session
        .uid_fetch(&uids, &[FetchItem::Uid, FetchItem::whole_message()], &mut collect)
        .expect("fetch");
    let (first, bodies) = &collect.messages[&1];
    assert_eq!(bodies[0].1, b"hello");
    assert_eq!(first.flags_without_recent(), [imapc::Flag::Seen]);
    assert_eq!(collect.messages[&2].1[0].1, b"world");
    assert_eq!(collect.messages[&5].0.bodies[0].data, BodyData::Nil);

    let mut fail = FailFirst(0);
    let error = session
        .uid_fetch(&SequenceSet::all(), &[FetchItem::whole_message()], &mut fail)
        .expect_err("handler");
    assert!(matches!(&error, Error::Handler(e) if e.to_string() == "disk full"), "{error}");
    assert_eq!(fail.0, 1, "no callbacks after the error");
    session.noop().expect("session usable after a handler error");
    let lines = server.finish();
    assert_eq!(
        &lines[2..5],
        [
            "A3 UID FETCH 1:2 (UID BODY.PEEK[])",
            "A4 UID FETCH 3:4 (UID BODY.PEEK[])",
            "A5 UID FETCH 5:6 (UID BODY.PEEK[])"
        ]
    );
}

/// Synchronising literals wait for `+`; a tagged NO instead ends the command cleanly; the
/// protocol trace never shows credentials.
#[test]
fn synchronising_literals_and_a_trace_without_secrets() {
    use std::sync::{Arc, Mutex};
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 UIDPLUS] no literal+\r\n"),
        Step::Read, // A1 LOGIN alice {10}
        Step::send("+ go ahead\r\n"),
        Step::Read, // the password literal up to its CRLF…
        Step::Read, // …and the rest of it with the end of the line
        Step::send("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n"),
        Step::Read, // A2 APPEND INBOX () {5}
        Step::send("A2 NO [OVERQUOTA] Quota exceeded\r\n"),
        Step::Read,
        Step::send("{tag} OK noop\r\n"),
    ]);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let trace = imapc::Trace::new(move |direction, text| {
        sink.lock().expect("trace lock").push(format!("{direction:?} {text}"));
    });
    let options = options(&server).trace(trace);
    let password = "s3cr\u{e9}t\r\nx"; // 8-bit and CRLF: must go as a literal
    let mut session = Client::connect(&options)
        .expect("connect")
        .login(&Credentials::new("alice", password).mechanism(AuthMechanism::Login))
        .map_err(|(e, _)| e)
        .expect("login with a literal password");
    let message = imapc::proto::AppendMessage { flags: &[], internal_date: None, data: b"hello" };
    let error = session.append(&MailboxName::from_utf8("INBOX"), &message).expect_err("refused");
    assert!(
        matches!(&error, Error::No { code: Some(code), .. } if code.name() == "OVERQUOTA"),
        "{error}"
    );
    session.noop().expect("still in sync");
    let received = server.finish();
    assert_eq!(received[0], format!("A1 LOGIN alice {{{}}}", password.len()));
    assert_eq!(received[3], "A2 APPEND INBOX () {5}");
    let trace = lines.lock().expect("trace lock").join("\n");
    assert!(trace.contains("Sent A1 LOGIN <redacted>"), "{trace}");
    assert!(!trace.contains("s3cr"), "password leaked into the trace:\n{trace}");
    // The server's side as its text, not as Rust structures.
    assert!(trace.contains("Received * OK [CAPABILITY IMAP4rev1 UIDPLUS] no literal+"), "{trace}");
    assert!(trace.contains("Received A2 NO [OVERQUOTA] Quota exceeded"), "{trace}");
    assert!(!trace.contains("Tagged") && !trace.contains("Status {"), "{trace}");
}

/// Sets from the server are never expanded blindly.
#[test]
fn huge_uid_sets_from_the_server_are_refused() {
    let server = FakeServer::start(logged_in_script(vec![
        Step::Read,
        Step::send("* ESEARCH (TAG \"A3\") UID ALL 1:4294967295\r\n{tag} OK done\r\n"),
        Step::Read,
        Step::send("{tag} OK [APPENDUID 7 1:4294967295] stored\r\n"),
    ]));
    let mut session = open(&server, &options(&server));
    let error = session.uid_search(&[imapc::proto::SearchKey::All]).expect_err("ESEARCH lie");
    assert!(matches!(error, Error::Protocol(_)), "{error}");
    let message = imapc::proto::AppendMessage { flags: &[], internal_date: None, data: b"x" };
    let error =
        session.append(&MailboxName::from_utf8("INBOX"), &message).expect_err("APPENDUID lie");
    assert!(matches!(error, Error::Protocol(_)), "{error}");
}
