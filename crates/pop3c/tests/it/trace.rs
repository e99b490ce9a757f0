//! The protocol trace: every command and status line, credentials never — neither the
//! password nor its base64 in a SASL exchange — and bodies and long listings only counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use pop3c::{
    AuthMechanism, Client, ConnectOptions, Credentials, MessageNumber, Security, Timeouts, Trace,
    TraceDirection,
};
use testkit::{Dovecot, FakeServer, RawImap, Step, fixtures};

use crate::plain;

/// A trace that records `C: …` / `S: …` lines.
fn recording() -> (Trace, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let trace = Trace::new(move |direction, line| {
        let arrow = match direction {
            TraceDirection::Sent => "C:",
            TraceDirection::Received => "S:",
        };
        sink.lock().expect("trace lines").push(format!("{arrow} {line}"));
    });
    (trace, lines)
}

fn recorded(lines: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    lines.lock().expect("trace lines").clone()
}

fn fake_options(server: &FakeServer, trace: Trace) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", server.port(), Security::Plain)
        .timeouts(Timeouts {
            connect: Duration::from_secs(2),
            read: Some(Duration::from_secs(2)),
            write: Some(Duration::from_secs(2)),
        })
        .trace(trace)
}

fn assert_no_secret(lines: &[String], secrets: &[&str]) {
    for line in lines {
        for secret in secrets {
            assert!(!line.contains(secret), "{secret:?} in trace line {line:?}");
        }
    }
}

#[test]
fn traced_user_pass_session_redacts_the_password_and_counts_bodies_and_listings() {
    let capa = "+OK\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n";
    let listing = (1..=40).map(|n| format!("{n} uid-{n}\r\n")).collect::<Vec<_>>().concat();
    let uidl = format!("+OK\r\n{listing}.\r\n");
    let server = FakeServer::start(vec![
        Step::send("+OK fake ready\r\n"),
        Step::Read,
        Step::send(capa),
        Step::Read,
        Step::send("+OK\r\n"),
        Step::Read,
        Step::send("+OK logged in\r\n"),
        Step::Read,
        Step::send(capa),
        Step::Read,
        Step::send(&uidl),
        Step::Read,
        Step::send("+OK 31 octets\r\nSubject: body-secret\r\n\r\n..x\r\n.\r\n"),
        Step::Read,
        Step::send("-ERR [SYS/TEMP] no such message\r\n"),
        Step::Read,
        Step::send("+OK bye\r\n"),
    ]);
    let (trace, lines) = recording();
    let credentials = Credentials::new("alice", "s3cret-pw").mechanism(AuthMechanism::UserPass);
    let mut session = Client::connect(&fake_options(&server, trace))
        .expect("connect")
        .login(&credentials)
        .map_err(|(e, _)| e)
        .expect("login");
    assert_eq!(session.uidl().expect("UIDL").len(), 40);
    let mut body = Vec::new();
    session.retr(MessageNumber::new(1).expect("1"), &mut body).expect("RETR");
    assert!(session.retr(MessageNumber::new(2).expect("2"), &mut Vec::new()).is_err());
    session.quit().expect("QUIT");
    assert_eq!(server.finish()[2], "PASS s3cret-pw", "the server got the password");

    let lines = recorded(&lines);
    let mut expected: Vec<String> = [
        "S: +OK fake ready",
        "C: CAPA",
        "S: +OK",
        "S: TOP",
        "S: UIDL",
        "S: USER",
        "S: . (3 lines)",
        "C: USER alice",
        "S: +OK",
        "C: PASS <redacted>",
        "S: +OK logged in",
        "C: CAPA",
        "S: +OK",
        "S: TOP",
        "S: UIDL",
        "S: USER",
        "S: . (3 lines)",
        "C: UIDL",
        "S: +OK",
    ]
    .map(String::from)
    .to_vec();
    // A listing shows its first 16 lines, then only how long it was.
    expected.extend((1..=16).map(|n| format!("S: {n} uid-{n}")));
    expected.extend(
        [
            "S: . (40 lines)",
            "C: RETR 1",
            "S: +OK 31 octets",
            &format!("S: . ({} octets)", body.len()),
            "C: RETR 2",
            "S: -ERR [SYS/TEMP] no such message",
            "C: QUIT",
            "S: +OK bye",
        ]
        .map(String::from),
    );
    assert_eq!(lines, expected);
    assert_no_secret(&lines, &["s3cret-pw", "body-secret", "uid-17"]);
}

#[test]
fn traced_sasl_plain_after_a_challenge_redacts_both_ways() {
    // Credentials too long for a 255-octet AUTH line: the response follows the challenge.
    let password = format!("long-{}", "p".repeat(200));
    let capa = "+OK\r\nUIDL\r\nSASL PLAIN\r\n.\r\n";
    let server = FakeServer::start(vec![
        Step::send("+OK ready\r\n"),
        Step::Read,
        Step::send(capa),
        Step::Read,
        Step::send("+ \r\n"),
        Step::Read,
        Step::send("+ bW9yZT8=\r\n"),
        Step::Read,
        Step::send("-ERR [AUTH] cancelled\r\n"),
    ]);
    let (trace, lines) = recording();
    let credentials = Credentials::new("alice", &password).mechanism(AuthMechanism::Plain);
    let (error, _client) = Client::connect(&fake_options(&server, trace))
        .expect("connect")
        .login(&credentials)
        .expect_err("cancelled");
    assert!(matches!(error, pop3c::Error::AuthenticationFailed { .. }), "{error}");
    let sent = server.finish();
    let lines = recorded(&lines);
    assert_eq!(
        lines[6..],
        [
            "C: AUTH PLAIN",
            "S: +",
            "C: <redacted>",
            "S: + <redacted>",
            "C: *",
            "S: -ERR [AUTH] cancelled"
        ]
    );
    let response = &sent[2];
    assert!(response.len() > 255, "the server got the SASL response: {response:?}");
    assert_no_secret(&lines, &[&password, response, "bW9yZT8="]);
}

#[test]
fn traced_dovecot_logins_never_show_the_password() {
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .extra_config("auth_mechanisms = plain login apop")
        .start();
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    raw.append("INBOX", &[], None, &fixtures::message(1, "traced", "hello"));
    raw.logout();
    let base64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let plain_response = base64("\0alice\0alicepw");
    let (master, master_password) = dovecot.master_credentials();
    let master_response = base64(&format!("alice\0{master}\0{master_password}"));
    let cases = [
        (Credentials::new("alice", "alicepw"), "C: AUTH PLAIN <redacted>"),
        (
            Credentials::new("alice", "alicepw").mechanism(AuthMechanism::UserPass),
            "C: PASS <redacted>",
        ),
        (
            Credentials::new("alice", "alicepw").mechanism(AuthMechanism::Apop),
            "C: APOP alice <redacted>",
        ),
        (
            Credentials::master("alice", master, master_password).mechanism(AuthMechanism::Plain),
            "C: AUTH PLAIN <redacted>",
        ),
    ];
    for (credentials, redacted) in cases {
        let (trace, lines) = recording();
        let mut session = Client::connect(&plain(&dovecot).trace(trace))
            .expect("connect")
            .login(&credentials)
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("{:?}: {e}", credentials.mechanism));
        let messages = session.messages().expect("LIST + UIDL");
        let mut body = Vec::new();
        session.retr(messages[0].number, &mut body).expect("RETR");
        session.quit().expect("QUIT");

        let lines = recorded(&lines);
        let has = |wanted: &str| lines.iter().any(|line| line == wanted);
        assert!(has(redacted), "{redacted:?} missing from {lines:#?}");
        assert!(lines[0].starts_with("S: +OK") && has("C: CAPA") && has("C: QUIT"), "{lines:#?}");
        assert!(has("C: UIDL") && has("C: RETR 1") && has("C: LIST"), "{lines:#?}");
        assert!(has(&format!("S: . ({} octets)", body.len())), "{lines:#?}");
        assert_no_secret(
            &lines,
            &["alicepw", master_password, &plain_response, &master_response, "hello"],
        );
    }
}
