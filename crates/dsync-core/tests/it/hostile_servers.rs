//! Sources that misbehave in ways Dovecot cannot be made to (so fake servers, each saying
//! so): a connection lost in the middle of a message body fails the run on the source's
//! side with the source's error, not as a write error of the destination; a flood of
//! `[ALERT]`s reaches the operator as a few warnings.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::adapters::pop3::Pop3Storage;
use dsync_core::{ErrorKind, Mode, NoObserver, Side, Storage, SyncOptions};
use mailstore::Durability;
use testkit::{FakeServer, Step};

/// A fake POP3 server (Dovecot cannot be made to drop a connection mid-message): it
/// answers every command of a one-message maildrop, but sends only the first part of the
/// message and then closes.
fn cutting_pop3_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let _ = writer.write_all(b"+OK fake ready\r\n");
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let command = line.trim_end().to_ascii_uppercase();
            let answer: &[u8] = match command.split(' ').next().unwrap_or_default() {
                "CAPA" => b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n",
                "STAT" => b"+OK 1 5000\r\n",
                "LIST" => b"+OK\r\n1 5000\r\n.\r\n",
                "UIDL" => b"+OK\r\n1 uidl-1\r\n.\r\n",
                "RETR" => {
                    let _ = writer.write_all(b"+OK 5000 octets\r\nSubject: cut\r\n\r\nthe first");
                    return;
                }
                "QUIT" => b"+OK bye\r\n",
                _ => b"+OK\r\n",
            };
            if writer.write_all(answer).is_err() {
                return;
            }
            line.clear();
        }
    });
    port
}

#[test]
fn a_connection_lost_mid_body_is_the_sources_error() {
    let port = cutting_pop3_server();
    let options = pop3c::ConnectOptions::new("127.0.0.1", port, pop3c::Security::Plain);
    let mut source = Pop3Storage::connect(&options, &pop3c::Credentials::new("alice", "pw"))
        .expect("POP3 login");
    let dir = tempfile::tempdir().expect("temp dir");
    let location = format!("maildir:{}", dir.path().join("Maildir").display());
    let mut destination = MaildirStorage::open(&location, Durability::Fsync).expect("location");
    let failed = dsync_core::run(
        &SyncOptions::new(Mode::Backup),
        &mut source,
        &mut destination,
        &mut NoObserver,
    )
    .expect_err("the source went away");
    let text = failed.to_string();
    assert_eq!(failed.error.side, Side::Source, "{text}");
    assert_eq!(failed.error.kind(), ErrorKind::Temporary, "{text}");
    assert!(text.starts_with("source mailbox INBOX: POP3 RETR"), "{text}");
    assert!(text.contains("connection closed by the server"), "{text}");
    assert!(!text.contains("Maildir"), "{text}");
}

#[test]
fn server_alerts_become_a_few_warnings() {
    // A fake server: Dovecot sends an alert only when configured to, never thousands.
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] fake ready\r\n"),
        Step::Read,
        Step::send("* OK [ALERT] Mailbox moves to the new server tonight\r\n"),
        Step::Repeat(b"* OK [ALERT] Quota nearly full\r\n".to_vec(), 5_000),
        Step::send("{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n"),
        Step::Read,
        Step::send("* LIST (\\Noselect) \"/\" \"\"\r\n{tag} OK List completed\r\n"),
    ]);
    let options = imapc::ConnectOptions::new("127.0.0.1", server.port(), imapc::Security::Plain);
    let mut source =
        ImapStorage::connect(&options, &imapc::Credentials::new("alice", "pw")).expect("login");
    let warnings = source.take_warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].ends_with("the server says: Mailbox moves to the new server tonight"),
        "{warnings:?}"
    );
    assert!(warnings[1].ends_with("the server says: Quota nearly full"), "{warnings:?}");
    assert!(warnings[2].contains("4999 more server alerts not shown"), "{warnings:?}");
    assert!(source.take_warnings().is_empty(), "taken once");
}
