//! A scripted fake server for what Dovecot cannot do: every hostile or broken answer gives a
//! typed error — never a panic, a hang, or an allocation the size of a lie.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use pop3c::proto::{DecodeError, Limits};
use pop3c::{
    AuthMechanism, Client, ConnectOptions, Credentials, Error, ErrorKind, MessageNumber,
    ResponseCode, Security, Session, Timeouts,
};
use testkit::{FakeServer, Step};

const CAPA_PIPELINING: &str = "+OK\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n";
const CAPA_PLAIN: &str = "+OK\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n";

fn options(server: &FakeServer) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", server.port(), Security::Plain).timeouts(Timeouts {
        connect: Duration::from_secs(2),
        read: Some(Duration::from_secs(2)),
        write: Some(Duration::from_secs(2)),
    })
}

/// Greeting, CAPA, USER/PASS accepted, CAPA again (both with `capa`); then `rest`.
fn logged_in_script(capa: &str, rest: Vec<Step>) -> Vec<Step> {
    let mut script = vec![
        Step::send("+OK fake ready\r\n"),
        Step::Read,
        Step::send(capa),
        Step::Read,
        Step::send("+OK\r\n"),
        Step::Read,
        Step::send("+OK logged in\r\n"),
        Step::Read,
        Step::send(capa),
    ];
    script.extend(rest);
    script
}

fn open(server: &FakeServer) -> Session {
    let credentials = Credentials::new("alice", "pw").mechanism(AuthMechanism::UserPass);
    Client::connect(&options(server))
        .expect("connect")
        .login(&credentials)
        .map_err(|(e, _)| e)
        .expect("login")
}

fn n(number: u32) -> MessageNumber {
    MessageNumber::new(number).expect("non-zero")
}

#[test]
fn broken_greetings_are_typed() {
    // An IMAP greeting is named (a fake server, as in the CLI's tests against Dovecot).
    let server = FakeServer::start(vec![Step::send("* OK IMAP4rev1 ready\r\n")]);
    let error = Client::connect(&options(&server)).expect_err("not POP3");
    assert!(
        matches!(&error, Error::WrongService { found: mailnet::Service::Imap, tls: false, greeting }
            if greeting == "* OK IMAP4rev1 ready"),
        "{error}"
    );
    assert!(error.is_wrong_endpoint() && !error.is_retryable());
    assert!(server.finish().is_empty(), "nothing was sent");

    // Neither POP3 nor another protocol: still a malformed status line.
    let server = FakeServer::start(vec![Step::send("hello there\r\n")]);
    let error = Client::connect(&options(&server)).expect_err("not POP3");
    assert!(matches!(error, Error::Decode(DecodeError::Malformed { .. })), "{error}");

    let server = FakeServer::start(vec![Step::send("-ERR [SYS/TEMP] maintenance\r\n")]);
    let error = Client::connect(&options(&server)).expect_err("refused");
    assert!(matches!(error, Error::Greeting { code: Some(ResponseCode::SysTemp), .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::Retryable);

    let server = FakeServer::start(vec![Step::Close]);
    let error = Client::connect(&options(&server)).expect_err("closed");
    assert!(matches!(error, Error::Net(mailnet::Error::Closed { .. })), "{error}");
    assert!(error.is_retryable());
}

#[test]
fn endless_lines_are_cut_off_at_the_limits() {
    // A greeting that never ends: refused after max_status_len, not buffered forever.
    let server = FakeServer::start(vec![Step::Send(vec![b'A'; 1 << 20])]);
    let error = Client::connect(&options(&server)).expect_err("endless greeting");
    assert!(matches!(error, Error::Decode(DecodeError::StatusTooLong { limit: 4096 })), "{error}");

    // A listing line that never ends.
    let mut huge = b"+OK\r\n1 ".to_vec();
    huge.extend(std::iter::repeat_n(b'9', 1 << 20));
    let server =
        FakeServer::start(logged_in_script(CAPA_PLAIN, vec![Step::Read, Step::Send(huge)]));
    let error = open(&server).list().expect_err("endless line");
    assert!(matches!(error, Error::Decode(DecodeError::LineTooLong { limit: 4096 })), "{error}");

    // A body that never terminates, past a small max_body_len.
    let mut body = b"+OK\r\n".to_vec();
    body.extend(b"x\r\n".repeat(40_000));
    let server =
        FakeServer::start(logged_in_script(CAPA_PLAIN, vec![Step::Read, Step::Send(body)]));
    let limits = Limits { max_body_len: 64 * 1024, ..Limits::default() };
    let mut session = Client::connect(&options(&server).limits(limits))
        .expect("connect")
        .login(&Credentials::new("alice", "pw").mechanism(AuthMechanism::UserPass))
        .map_err(|(e, _)| e)
        .expect("login");
    let error = session.retr(n(1), &mut io::sink()).expect_err("too large");
    assert!(
        matches!(error, Error::Decode(DecodeError::ResponseTooLarge { limit: 65536 })),
        "{error}"
    );
    assert!(session.noop().is_err(), "out of sync: the session refuses further use");
}

#[test]
fn cut_connections_and_stalls_are_typed() {
    // Missing terminator: the server closes inside the body.
    let server = FakeServer::start(logged_in_script(
        CAPA_PLAIN,
        vec![Step::Read, Step::send("+OK\r\nSubject: cut\r\n\r\npart of it"), Step::Close],
    ));
    let mut session = open(&server);
    let mut out = Vec::new();
    let error = session.retr(n(1), &mut out).expect_err("cut");
    assert!(matches!(error, Error::Net(mailnet::Error::Closed { .. })), "{error}");
    assert!(error.is_retryable());

    // A server that stops answering mid-body: the read timeout fires.
    let server = FakeServer::start(logged_in_script(
        CAPA_PLAIN,
        vec![
            Step::Read,
            Step::send("+OK\r\nSubject: stall\r\n"),
            Step::Sleep(Duration::from_secs(5)),
        ],
    ));
    let mut session = open(&server);
    let started = Instant::now();
    let error = session.retr(n(1), &mut io::sink()).expect_err("stall");
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Closed between commands.
    let server = FakeServer::start(logged_in_script(CAPA_PLAIN, vec![Step::Read, Step::Close]));
    let error = open(&server).stat().expect_err("closed");
    assert!(matches!(error, Error::Net(mailnet::Error::Closed { .. })), "{error}");
}

#[test]
fn bare_lf_servers_and_servers_without_capa_work() {
    let server = FakeServer::start(vec![
        Step::send("+OK old server\n"),
        Step::Read,
        Step::send("-ERR unknown command\n"),
        Step::Read,
        Step::send("+OK\n"),
        Step::Read,
        Step::send("+OK\n"),
        Step::Read,
        Step::send("-ERR what is CAPA\n"),
        // Without PIPELINING, one command at a time.
        Step::Read,
        Step::send("+OK 2 21\n"),
        Step::Read,
        Step::send("+OK\n1 12\n2 9\n.\n"),
        Step::Read,
        Step::send("+OK\n1 a1\n2 b2\n.\n"),
        Step::Read,
        Step::send("+OK\nSubject: a\n\n.dotted\nx\n.\n"),
        Step::Read,
        Step::send("+OK\nSubject: b\n\n.\n"),
        Step::Read,
        Step::send("+OK bye\n"),
    ]);
    let mut session = open(&server);
    assert!(session.capabilities().is_empty() && !session.is_pipelining());
    let messages = session.messages().expect("LIST + UIDL");
    assert_eq!(messages.len(), 2);
    assert_eq!((messages[1].size, messages[1].uidl.as_str()), (9, "b2"));
    let mut bodies = Vec::new();
    session
        .retr_many(&[n(1), n(2)], &mut |_: MessageNumber, body: &mut dyn Read| {
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes)?;
            bodies.push(bytes);
            Ok(())
        })
        .expect("RETR");
    assert_eq!(bodies, [&b"Subject: a\n\ndotted\nx\n"[..], b"Subject: b\n\n"]);
    session.quit().expect("QUIT");
    let lines = server.finish();
    assert_eq!(
        lines,
        [
            "CAPA",
            "USER alice",
            "PASS pw",
            "CAPA",
            "STAT",
            "LIST",
            "UIDL",
            "RETR 1",
            "RETR 2",
            "QUIT"
        ]
    );
}

#[test]
fn pipelining_sends_the_batch_before_reading_answers() {
    // The script reads all three commands before answering: a client that waited for
    // each answer would time out.
    let server = FakeServer::start(logged_in_script(
        CAPA_PIPELINING,
        vec![
            Step::Read,
            Step::Read,
            Step::Read,
            Step::send("+OK\r\none\r\n.\r\n-ERR [SYS/PERM] gone\r\n+OK\r\nthree\r\n.\r\n"),
            Step::Read,
            Step::Read,
            Step::Read,
            Step::send("+OK 1 10\r\n+OK\r\n1 10\r\n.\r\n+OK\r\n1 u1\r\n.\r\n"),
        ],
    ));
    let mut session = open(&server);
    assert!(session.is_pipelining());
    let mut got = Vec::new();
    let error = session
        .retr_many(&[n(1), n(2), n(3)], &mut |number: MessageNumber, body: &mut dyn Read| {
            let mut bytes = String::new();
            body.read_to_string(&mut bytes)?;
            got.push((number.get(), bytes));
            Ok(())
        })
        .expect_err("message 2 refused");
    // The refused message is reported after the others were delivered.
    assert_eq!(got, [(1, "one\r\n".to_owned()), (3, "three\r\n".to_owned())]);
    assert!(
        matches!(&error, Error::Refused { command: "RETR", message: Some(m), code: Some(ResponseCode::SysPerm), .. } if m.get() == 2),
        "{error}"
    );
    let messages = session.messages().expect("pipelined LIST + UIDL");
    assert_eq!(messages[0].uidl.as_str(), "u1");
    drop(session);
    let lines = server.finish();
    assert_eq!(&lines[4..], ["RETR 1", "RETR 2", "RETR 3", "STAT", "LIST", "UIDL"]);
}

#[test]
fn handler_errors_abort_the_batch_and_keep_the_session() {
    let server = FakeServer::start(logged_in_script(
        CAPA_PIPELINING,
        vec![
            Step::Read,
            Step::Read,
            Step::send("+OK\r\nfirst\r\n.\r\n+OK\r\nsecond\r\n.\r\n"),
            Step::Read,
            Step::send("+OK still here\r\n"),
        ],
    ));
    let mut session = open(&server);
    let mut calls = 0;
    let error = session
        .retr_many(&[n(1), n(2)], &mut |_: MessageNumber, _: &mut dyn Read| {
            calls += 1;
            Err(io::Error::other("disk full"))
        })
        .expect_err("handler failed");
    assert!(matches!(error, Error::Handler(_)), "{error}");
    assert_eq!(calls, 1, "no calls after the failure");
    session.noop().expect("the rest was drained; the session is in sync");
}

#[test]
fn malformed_listings_and_mismatches_are_protocol_errors() {
    let server = FakeServer::start(logged_in_script(
        CAPA_PLAIN,
        vec![
            Step::Read,
            Step::Send(b"+OK\r\n1 has space\r\n2 caf\xc3\xa9\r\n3 ok\r\n.\r\n".to_vec()),
            Step::Read,
            Step::send("+OK 2 30\r\n"),
            Step::Read,
            Step::send("+OK\r\n1 10\r\n2 20\r\n.\r\n"),
            Step::Read,
            Step::send("+OK\r\n1 a\r\n.\r\n"),
            Step::Read,
            Step::send("+OK\r\n"),
            Step::Read,
            Step::send("+OK not a number\r\n"),
        ],
    ));
    let mut session = open(&server);
    let error = session.uidl().expect_err("bad UIDL lines");
    assert!(matches!(&error, Error::Protocol(text) if text.contains("has space")), "{error}");
    let error = session.messages().expect_err("LIST and UIDL disagree");
    assert!(matches!(error, Error::Protocol(_)), "{error}");
    session.noop().expect("in sync after protocol errors in listings");
    let error = session.stat().expect_err("bad STAT");
    assert!(matches!(error, Error::Protocol(_)), "{error}");
}

#[test]
fn login_refusals_map_to_error_kinds() {
    for (answer, kind, code) in [
        ("-ERR [IN-USE] Mailbox locked\r\n", ErrorKind::Retryable, Some(ResponseCode::InUse)),
        (
            "-ERR [LOGIN-DELAY] Wait 15 min\r\n",
            ErrorKind::Retryable,
            Some(ResponseCode::LoginDelay),
        ),
        ("-ERR [SYS/TEMP] Try later\r\n", ErrorKind::Retryable, Some(ResponseCode::SysTemp)),
        ("-ERR [SYS/PERM] Account disabled\r\n", ErrorKind::Permanent, Some(ResponseCode::SysPerm)),
        ("-ERR [AUTH] Bad password\r\n", ErrorKind::Credentials, Some(ResponseCode::Auth)),
        ("-ERR Bad password\r\n", ErrorKind::Credentials, None),
    ] {
        let server = FakeServer::start(vec![
            Step::send("+OK ready\r\n"),
            Step::Read,
            Step::send(CAPA_PLAIN),
            Step::Read,
            Step::send("+OK\r\n"),
            Step::Read,
            Step::send(answer),
        ]);
        let credentials = Credentials::new("alice", "pw").mechanism(AuthMechanism::UserPass);
        let (error, _client) = Client::connect(&options(&server))
            .expect("connect")
            .login(&credentials)
            .expect_err(answer);
        assert!(matches!(error, Error::AuthenticationFailed { .. }), "{error}");
        assert_eq!((error.kind(), error.code().cloned()), (kind, code), "{answer}");
    }
}

#[test]
fn sasl_plain_without_initial_response_and_stray_challenges() {
    // Credentials too long for a 255-octet AUTH line: the response follows the challenge.
    let long_password = "p".repeat(200);
    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send(CAPA_PIPELINING),
        Step::Read,
        Step::send("+ \r\n"),
        Step::Read,
        Step::send("+OK Logged in\r\n"),
        Step::Read,
        Step::send(CAPA_PIPELINING),
    ]);
    let credentials = Credentials::new("alice", &long_password).mechanism(AuthMechanism::Plain);
    Client::connect(&options(&server))
        .expect("connect")
        .login(&credentials)
        .map_err(|(e, _)| e)
        .expect("login");
    let lines = server.finish();
    assert_eq!(lines[1], "AUTH PLAIN");
    assert!(lines[2].len() > 255, "response sent after the challenge");

    // A second challenge is cancelled with "*".
    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send(CAPA_PIPELINING),
        Step::Read,
        Step::send("+ bW9yZT8=\r\n"),
        Step::Read,
        Step::send("-ERR [AUTH] cancelled\r\n"),
    ]);
    let (error, _) = Client::connect(&options(&server))
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .expect_err("cancelled");
    assert_eq!(error.kind(), ErrorKind::Credentials, "{error}");
    let lines = server.finish();
    assert!(lines[1].starts_with("AUTH PLAIN ") && lines[2] == "*", "{lines:?}");
}

#[test]
fn stls_missing_or_with_injected_data_is_refused() {
    let options_stls = |server: &FakeServer| {
        let mut options = options(server);
        options.security = Security::StartTls;
        options
    };
    let server =
        FakeServer::start(vec![Step::send("+OK ready\r\n"), Step::Read, Step::send(CAPA_PLAIN)]);
    let error = Client::connect(&options_stls(&server)).expect_err("no STLS");
    assert!(matches!(error, Error::StlsUnavailable), "{error}");

    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send("+OK\r\nSTLS\r\n.\r\n"),
        Step::Read,
        Step::send("+OK Begin TLS\r\n+OK injected\r\n"),
    ]);
    let error = Client::connect(&options_stls(&server)).expect_err("injection");
    assert!(matches!(error, Error::Protocol(_)), "{error}");

    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send("+OK\r\nSTLS\r\n.\r\n"),
        Step::Read,
        Step::send("-ERR [SYS/TEMP] TLS not available now\r\n"),
    ]);
    let error = Client::connect(&options_stls(&server)).expect_err("refused STLS");
    assert!(
        matches!(error, Error::StlsRefused { code: Some(ResponseCode::SysTemp), .. })
            && error.is_retryable(),
        "{error}"
    );

    // Refused for good: a wrong endpoint, not something to retry.
    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send("+OK\r\nSTLS\r\n.\r\n"),
        Step::Read,
        Step::send("-ERR TLS is not configured\r\n"),
    ]);
    let error = Client::connect(&options_stls(&server)).expect_err("refused STLS");
    assert!(
        matches!(&error, Error::StlsRefused { code: None, text } if text == "TLS is not configured"),
        "{error}"
    );
    assert!(!error.is_retryable() && error.is_wrong_endpoint(), "{error}");
}

#[test]
fn unsolicited_lines_and_injection_attempts() {
    // An extra line arrives with the answer to the login's CAPA: the next command refuses
    // to take it for its own answer.
    let extra = format!("{CAPA_PLAIN}-ERR autologout\r\n");
    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send(CAPA_PLAIN),
        Step::Read,
        Step::send("+OK\r\n"),
        Step::Read,
        Step::send("+OK\r\n"),
        Step::Read,
        Step::send(&extra),
        Step::Sleep(Duration::from_millis(500)),
    ]);
    let mut session = open(&server);
    let error = session.noop().expect_err("unsolicited");
    assert!(matches!(error, Error::Decode(DecodeError::Unsolicited { .. })), "{error}");

    let server =
        FakeServer::start(vec![Step::send("+OK ready\r\n"), Step::Read, Step::send(CAPA_PLAIN)]);
    let client = Client::connect(&options(&server)).expect("connect");
    let (error, _) = client
        .login(&Credentials::new("alice\r\nDELE 1", "pw").mechanism(AuthMechanism::UserPass))
        .expect_err("injection");
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
}
