//! Everything a migration reads over POP3, against Dovecot 2.3: UIDL, LIST, STAT, TOP and
//! RETR byte for byte equal to Dovecot's IMAP view and to the raw POP3 oracle; logins of
//! every kind, their failures as typed errors; nothing deleted unless asked by name.

use std::io::Read;

use pop3c::{
    AuthMechanism, Client, Credentials, Error, ErrorKind, MessageNumber, ResponseCode, Session,
};
use testkit::{Dovecot, LeaveUnread, RawImap, RawPop3, fixtures};

use crate::{login, plain};

/// Messages whose bytes are awkward for POP3: dot-stuffed lines, a lone dot line, bare LF
/// line ends, no final line end, 8-bit data, a big one.
fn awkward_messages() -> Vec<Vec<u8>> {
    vec![
        fixtures::message(1, "plain", "hello"),
        b"Subject: dots\r\nMessage-ID: <dots@x>\r\n\r\n.\r\n..\r\n.leading dot\r\n...\r\nend.\r\n"
            .to_vec(),
        b"Subject: bare LF\nMessage-ID: <lf@x>\n\nline one\n.dot after LF\n".to_vec(),
        b"Subject: no final newline\r\n\r\nlast line without CRLF".to_vec(),
        "Subject: 8-bit \u{e9}\r\n\r\nGr\u{fc}\u{df}e \u{65e5}\u{672c}\r\n".as_bytes().to_vec(),
        fixtures::sized_message(6, 300 * 1024),
        fixtures::message(7, "to be expunged", "gone"),
        fixtures::message(8, "after the gap", "x"),
    ]
}

fn number(n: u32) -> MessageNumber {
    MessageNumber::new(n).expect("non-zero")
}

fn retr(session: &mut Session, n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let written = session.retr(number(n), &mut out).expect("RETR");
    assert_eq!(written, out.len() as u64);
    out
}

#[test]
fn pop3_serves_the_imap_bytes_with_dovecots_uidls() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    for message in awkward_messages() {
        imap.append("INBOX", &[], None, &message);
    }
    imap.expunge_uids("INBOX", "7");
    let (_, _, uid_validity) = imap.status("INBOX");
    let imap_view = imap.messages("INBOX");
    let headers: Vec<Vec<u8>> = imap_view
        .iter()
        .map(|m| {
            let response = imap.command_ok(&format!("UID FETCH {} (BODY.PEEK[HEADER])", m.uid));
            let fetch = &response.untagged[0][2];
            let testkit::Token::List(items) = fetch else { panic!("FETCH list") };
            let position = items
                .iter()
                .position(|t| t.text().eq_ignore_ascii_case("BODY[HEADER]"))
                .expect("BODY[HEADER]");
            match &items[position + 1] {
                testkit::Token::String(bytes) => bytes.clone(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    imap.logout();

    let mut session = login(&dovecot);
    assert!(session.capabilities().has("UIDL") && session.capabilities().has("TOP"));
    assert!(session.is_pipelining(), "Dovecot announces PIPELINING: {:?}", session.capabilities());
    let messages = session.messages().expect("LIST + UIDL");
    assert_eq!(messages.len(), imap_view.len());
    let stat = session.stat().expect("STAT");
    assert_eq!(stat.count as usize, imap_view.len());
    assert_eq!(stat.octets, imap_view.iter().map(|m| m.body.len() as u64).sum::<u64>());

    let mut oracle = RawPop3::login(dovecot.pop3_port(), "alice", "alicepw");
    let oracle_uidls = oracle.uidl();
    let oracle_sizes = oracle.list();
    for (index, (message, imap_message)) in messages.iter().zip(&imap_view).enumerate() {
        let n = message.number.get();
        assert_eq!(n as usize, index + 1, "POP3 numbers are 1..n in UID order");
        // Dovecot's default pop3_uidl_format is %08Xu%08Xv, and its X prints lower-case hex.
        assert_eq!(message.uidl.as_str(), format!("{:08x}{uid_validity:08x}", imap_message.uid));
        assert_eq!(oracle_uidls[index], (n, message.uidl.to_string()));
        assert_eq!(oracle_sizes[index], (n, message.size));
        assert_eq!(message.size, imap_message.body.len() as u64, "LIST size = RFC822.SIZE");

        let body = retr(&mut session, n);
        // POP3 cannot send a message without a final line end: Dovecot adds CRLF (LIST
        // still counts the stored size).
        let mut expected = imap_message.body.clone();
        if !expected.ends_with(b"\n") {
            expected.extend_from_slice(b"\r\n");
        }
        assert!(body == expected, "RETR {n} differs from IMAP BODY[]");
        assert_eq!(body, oracle.retr(n), "RETR {n} differs from the raw oracle");
        let mut header = Vec::new();
        session.top(message.number, 0, &mut header).expect("TOP n 0");
        assert_eq!(header, headers[index], "TOP {n} 0 = IMAP BODY[HEADER]");
        assert_eq!(header, oracle.top(n, 0));
        let mut top2 = Vec::new();
        session.top(message.number, 2, &mut top2).expect("TOP n 2");
        assert!(body.starts_with(&top2), "TOP {n} 2 is a prefix of the message");
        assert_eq!(session.list_one(message.number).expect("LIST n").size, message.size);
        assert_eq!(session.uidl_one(message.number).expect("UIDL n").uidl, message.uidl);
    }
    // The dot-stuffed message came back with its dots.
    assert!(imap_view[1].body.windows(6).any(|w| w == b"\r\n..\r\n"));

    // All bodies again in one pipelined batch, in order.
    let numbers: Vec<MessageNumber> = messages.iter().map(|m| m.number).collect();
    let mut seen = Vec::new();
    session
        .retr_many(&numbers, &mut |n: MessageNumber, body: &mut dyn Read| {
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes)?;
            seen.push((n.get(), bytes));
            Ok(())
        })
        .expect("pipelined RETR");
    assert_eq!(seen.len(), imap_view.len());
    for ((n, bytes), imap_message) in seen.iter().zip(&imap_view) {
        assert!(bytes.starts_with(&imap_message.body), "pipelined RETR {n}");
        assert!(bytes.len() - imap_message.body.len() <= 2, "pipelined RETR {n}");
    }

    // A message number that does not exist: a typed refusal, the session goes on.
    let error = session.retr(number(99), &mut Vec::new()).expect_err("no message 99");
    assert!(
        matches!(&error, Error::Refused { command: "RETR", message: Some(m), .. } if m.get() == 99),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Permanent);
    session.noop().expect("NOOP");
    session.quit().expect("QUIT");
    oracle.quit();
}

#[test]
fn logins_failures_and_retries() {
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        // APOP needs the mechanism enabled (plaintext passwords in the passdb: {PLAIN}).
        .extra_config("auth_mechanisms = plain login apop")
        .start();
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    raw.append("INBOX", &[], None, &fixtures::message(1, "x", "y"));
    raw.logout();

    let client = Client::connect(&plain(&dovecot)).expect("connect");
    assert!(client.apop_timestamp().is_some(), "greeting {:?}", client.greeting());
    assert!(client.capabilities().has_sasl("PLAIN") && client.capabilities().has("USER"));
    for mechanism in
        [AuthMechanism::Auto, AuthMechanism::UserPass, AuthMechanism::Plain, AuthMechanism::Apop]
    {
        let wrong = Credentials::new("alice", "wrong").mechanism(mechanism);
        let client = Client::connect(&plain(&dovecot)).expect("connect");
        let (error, client) = client.login(&wrong).expect_err("wrong password");
        assert!(matches!(error, Error::AuthenticationFailed { .. }), "{mechanism:?}: {error}");
        assert_eq!(error.kind(), ErrorKind::Credentials, "{mechanism:?}: {error}");
        // The client came back: the right password works on the same connection.
        let right = Credentials::new("alice", "alicepw").mechanism(mechanism);
        let mut session = client.login(&right).map_err(|(e, _)| e).unwrap_or_else(|e| {
            panic!("{mechanism:?} retry: {e}");
        });
        assert_eq!(session.stat().expect("STAT").count, 1, "{mechanism:?}");
        session.quit().expect("QUIT");
    }

    // Master users, both ways Dovecot accepts them.
    let (master, master_password) = dovecot.master_credentials();
    let alice_uidls = login(&dovecot).uidl().expect("UIDL");
    for mechanism in [AuthMechanism::Plain, AuthMechanism::UserPass, AuthMechanism::Auto] {
        let credentials =
            Credentials::master("alice", master, master_password).mechanism(mechanism);
        assert_eq!(format!("{credentials:?}|{credentials}"), "<redacted>|<redacted>");
        let mut session = Client::connect(&plain(&dovecot))
            .expect("connect")
            .login(&credentials)
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}"));
        assert_eq!(session.uidl().expect("UIDL"), alice_uidls, "{mechanism:?} sees alice's mail");
        session.quit().expect("QUIT");
        let wrong = Credentials::master("alice", master, "nope").mechanism(mechanism);
        let (error, _) =
            Client::connect(&plain(&dovecot)).expect("connect").login(&wrong).expect_err("wrong");
        assert_eq!(error.kind(), ErrorKind::Credentials, "{mechanism:?}: {error}");
    }
}

#[test]
fn locked_maildrop_is_a_retryable_in_use_error() {
    let dovecot =
        Dovecot::builder().user("alice", "alicepw").extra_config("pop3_lock_session = yes").start();
    let first = login(&dovecot);
    let client = Client::connect(&plain(&dovecot)).expect("connect");
    let (error, _) = client.login(&Credentials::new("alice", "alicepw")).expect_err("locked");
    assert_eq!(error.code(), Some(&ResponseCode::InUse), "{error}");
    assert_eq!(error.kind(), ErrorKind::Retryable);
    first.quit().expect("QUIT");
    login(&dovecot).quit().expect("unlocked after QUIT");
}

#[test]
fn nothing_is_deleted_unless_asked_by_name() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    for i in 1..=3 {
        raw.append("INBOX", &[], None, &fixtures::message(i, "m", "b"));
    }
    raw.logout();

    // Reading everything and quitting deletes nothing.
    let mut session = login(&dovecot);
    let numbers: Vec<MessageNumber> =
        session.list().expect("LIST").iter().map(|m| m.number).collect();
    session.retr_many(&numbers, &mut |_: MessageNumber, _: &mut dyn Read| Ok(())).expect("RETR");
    session.quit().expect("QUIT");
    // A deletion undone with RSET, and one abandoned by dropping the session, delete nothing.
    let mut session = login(&dovecot);
    session.delete_message_dangerously(number(1)).expect("DELE");
    session.rset().expect("RSET");
    session.quit().expect("QUIT");
    let mut session = login(&dovecot);
    session.delete_message_dangerously(number(2)).expect("DELE");
    drop(session);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(login(&dovecot).stat().expect("STAT").count, 3);
    // Asked by name and committed with QUIT, it is gone.
    let mut session = login(&dovecot);
    session.delete_message_dangerously(number(2)).expect("DELE");
    session.quit().expect("QUIT");
    assert_eq!(login(&dovecot).stat().expect("STAT").count, 2);
}

/// A handler may stop reading a body: the client reads the rest and drops it, and the
/// messages after it arrive whole.
#[test]
fn a_body_left_unread_is_skipped_and_the_next_arrive_whole() {
    // Larger than the decoder's buffer, so most of message 2 is still on the socket.
    let (dovecot, messages) = fixtures::alice_with_sized(3, 300 << 10);
    let mut session = login(&dovecot);
    let numbers: Vec<MessageNumber> = (1..=3).map(number).collect();
    let mut reader = LeaveUnread::new(2, 10);
    session
        .retr_many(&numbers, &mut |n: MessageNumber, body: &mut dyn Read| {
            reader.read(n.get(), body)
        })
        .expect("RETR");
    reader.assert_read(&messages);
    assert_eq!(session.stat().expect("the connection is still in step").count, 3);
}
