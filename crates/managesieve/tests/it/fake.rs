//! A scripted fake server, for what a real Dovecot cannot be made to do: referrals,
//! injected bytes after STARTTLS, malformed and oversized answers. Each step waits for
//! the exact bytes the client must send (so the encoding is checked too), then answers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use managesieve::proto::Limits;
use managesieve::{Client, ConnectOptions, Credentials, Error, ScriptName, Security};

const GREETING: &[u8] = b"\"IMPLEMENTATION\" \"fake\"\r\n\"SASL\" \"PLAIN\"\r\n\"STARTTLS\"\r\n\"VERSION\" \"1.0\"\r\nOK \"ready\"\r\n";
const AUTH: &[u8] = b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHB3\"\r\n";
const CAPABILITY: &[u8] = b"CAPABILITY\r\n";
const CAPS_AFTER: &[u8] = b"\"IMPLEMENTATION\" \"fake\"\r\n\"VERSION\" \"1.0\"\r\nOK \"caps\"\r\n";

/// Serves one connection: `greeting`, then for each step waits for `expect` and answers.
fn serve(
    greeting: &'static [u8],
    steps: Vec<(&'static [u8], &'static [u8])>,
) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        socket.write_all(greeting).expect("greet");
        for (expect, reply) in steps {
            let mut received = Vec::new();
            while received.len() < expect.len() {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).expect("read");
                if n == 0 {
                    return;
                }
                received.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8_lossy(&received), String::from_utf8_lossy(expect));
            socket.write_all(reply).expect("reply");
        }
    });
    (port, handle)
}

fn options(port: u16) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port, Security::Plain)
}

#[test]
fn referral_at_the_greeting() {
    let (port, server) =
        serve(b"BYE (REFERRAL \"sieve://other.example.com\") \"Try there\"\r\n", vec![]);
    let error = Client::connect(&options(port)).expect_err("referral");
    let Error::Referral { url, text } = &error else { panic!("{error:?}") };
    assert_eq!((url.as_str(), text.as_str()), ("sieve://other.example.com", "Try there"));
    server.join().expect("server");
}

#[test]
fn referral_after_authentication() {
    let (port, server) =
        serve(GREETING, vec![(AUTH, b"NO (REFERRAL sieve://b.example.com:4190) \"Moved\"\r\n")]);
    let client = Client::connect(&options(port)).expect("connect");
    let (error, _) = client.login(&Credentials::new("alice", "pw")).expect_err("referral");
    assert!(
        matches!(&error, Error::Referral { url, .. } if url == "sieve://b.example.com:4190"),
        "{error:?}"
    );
    server.join().expect("server");
}

#[test]
fn putscript_is_sent_as_a_literal_and_a_literal_refusal_is_read_whole() {
    let (port, server) = serve(
        GREETING,
        vec![
            (AUTH, b"OK \"Logged in.\"\r\n"),
            (CAPABILITY, CAPS_AFTER),
            (
                b"PUTSCRIPT \"say \\\"hi\\\"\" {9+}\r\nkeep;\r\n\xc3\xa9\r\n",
                b"NO (QUOTA/MAXSIZE) {33}\r\nline 1: too big\r\nline 2: really\r\n\r\n",
            ),
            (b"LOGOUT\r\n", b"OK \"bye\"\r\n"),
        ],
    );
    let mut session = Client::connect(&options(port))
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .map_err(|(error, _)| error)
        .expect("login");
    let name = ScriptName::new("say \"hi\"").expect("name");
    let error = session.put_script(&name, "keep;\r\né".as_bytes()).expect_err("refused");
    let Error::Refused { code, text, .. } = &error else { panic!("{error:?}") };
    assert_eq!(code, &Some(managesieve::ResponseCode::QuotaMaxSize));
    assert_eq!(text, "line 1: too big\r\nline 2: really\r\n");
    session.logout().expect("logout");
    server.join().expect("server");
}

#[test]
fn bytes_injected_after_starttls_are_refused() {
    let (port, server) =
        serve(GREETING, vec![(b"STARTTLS\r\n", b"OK \"Begin TLS\"\r\nOK \"injected\"\r\n")]);
    let error = Client::connect(&ConnectOptions::new("127.0.0.1", port, Security::StartTls))
        .expect_err("injected bytes");
    assert!(
        matches!(&error, Error::Protocol(text) if text.contains("after the STARTTLS")),
        "{error:?}"
    );
    server.join().expect("server");
}

#[test]
fn another_protocol_or_garbage_is_an_error_not_a_panic() {
    for greeting in [
        &b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"[..],
        b"+OK POP3 ready\r\n",
        b"\"SIEVE\" {99999999999999}\r\n",
        b"\"unterminated\r\nOK\r\n",
        b"OK (((((((((((((((((\"deep\")))))))))))))))))\r\n",
    ] {
        let (port, server) = serve(greeting, vec![]);
        let error = Client::connect(&options(port)).expect_err("not ManageSieve");
        assert!(matches!(error, Error::Protocol(_) | Error::Decode(_)), "{error:?}");
        server.join().expect("server");
    }
}

#[test]
fn an_endless_line_stops_at_the_limit() {
    static LONG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| vec![b'a'; 10_000]);
    let (port, server) = serve(&LONG, vec![]);
    let limits = Limits { max_line_len: 1024, ..Limits::default() };
    let error = Client::connect(&options(port).limits(limits)).expect_err("too long");
    assert!(
        matches!(error, Error::Decode(managesieve::proto::DecodeError::LineTooLong { .. })),
        "{error:?}"
    );
    server.join().expect("server");
}

#[test]
fn oauthbearer_sends_the_token_and_answers_an_error_challenge() {
    // base64("n,a=alice,\x01host=127.0.0.1\x01port=P\x01auth=Bearer tok\x01\x01") depends on
    // the port, so the server checks the decoded message instead of fixed bytes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        socket
            .write_all(b"\"SASL\" \"OAUTHBEARER\"\r\n\"VERSION\" \"1.0\"\r\nOK \"ready\"\r\n")
            .expect("greet");
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !received.ends_with(b"\r\n") {
            let n = socket.read(&mut buf).expect("read");
            received.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8(received).expect("utf-8");
        let encoded = line.trim_end().strip_prefix("AUTHENTICATE \"OAUTHBEARER\" \"").expect(&line);
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_end_matches('"'))
            .expect("base64");
        let expected =
            format!("n,a=alice,\x01host=127.0.0.1\x01port={port}\x01auth=Bearer tok\x01\x01");
        assert_eq!(decoded, expected.as_bytes());
        // An error challenge; the client must answer with %x01 ("AQ==").
        socket.write_all(b"\"eyJzdGF0dXMiOiI0MDEifQ==\"\r\n").expect("challenge");
        let mut answer = [0u8; 64];
        let n = socket.read(&mut answer).expect("read");
        assert_eq!(&answer[..n], b"\"AQ==\"\r\n");
        socket.write_all(b"NO \"Authentication failed\"\r\n").expect("no");
    });
    let client = Client::connect(&options(port)).expect("connect");
    let credentials =
        Credentials::new("alice", "tok").mechanism(managesieve::AuthMechanism::OAuthBearer);
    let (error, _) = client.login(&credentials).expect_err("refused");
    assert!(matches!(error, Error::AuthenticationFailed { .. }), "{error:?}");
    server.join().expect("server");
}

/// Pigeonhole never lists a name its own rules refuse; another server may (here one with a
/// control character and one with `/`): the lenient listing keeps them apart, the strict
/// one refuses the answer.
#[test]
fn a_listed_name_pigeonhole_refuses_is_kept_apart() {
    const LIST: &[u8] = b"LISTSCRIPTS\r\n";
    const ANSWER: &[u8] =
        b"\"good\"\r\n\"bad\\x01\" ACTIVE\r\n{7}\r\nbad\x07one\r\n\"a/b\"\r\nOK \"Listed\"\r\n";
    let (port, server) = serve(
        GREETING,
        vec![
            (AUTH, b"OK \"Logged in.\"\r\n"),
            (CAPABILITY, CAPS_AFTER),
            (LIST, ANSWER),
            (LIST, ANSWER),
        ],
    );
    let mut session = Client::connect(&options(port))
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .map_err(|(error, _)| error)
        .expect("login");
    let listing = session.list_scripts_leniently().expect("lenient");
    // A quoted `\x01` is four plain characters: a valid name.
    let valid: Vec<(&str, bool)> =
        listing.scripts.iter().map(|s| (s.name.as_str(), s.active)).collect();
    assert_eq!(valid, [("good", false), ("bad\\x01", true)]);
    let unusable: Vec<&str> = listing.unusable.iter().map(|s| s.name.name.as_str()).collect();
    assert_eq!(unusable, ["bad\\u{7}one", "a/b"]);
    assert!(listing.unusable[0].name.to_string().contains("control character"), "{listing:?}");
    let error = session.list_scripts().expect_err("strict");
    assert!(matches!(error, Error::Protocol(_)), "{error:?}");
    drop(session);
    server.join().expect("server");
}
