//! The harness itself against the real Dovecot: it starts, serves IMAP, the fixture builds
//! what it promises, and the snapshot sees it.

use testkit::{Dovecot, RawImap, fixtures};

#[test]
fn standard_fixture_through_real_dovecot() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let snapshot = imap.snapshot();

    let inbox = &snapshot.mailboxes["INBOX"];
    let uids: Vec<u32> = inbox.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 4, 5, 6, 7, 8, 9], "UID gap after expunge");
    assert_eq!(inbox.uid_next, 10);
    assert_eq!(inbox.messages[1].flags, ["$Label1", "\\Answered", "\\Seen"]);
    assert_eq!(inbox.messages[0].internal_date, 1_720_339_200);
    assert!(inbox.messages.iter().any(|m| m.body.ends_with(b"without CRLF")));
    assert!(snapshot.mailboxes.contains_key(fixtures::NON_ASCII_FOLDER));
    assert!(!snapshot.mailboxes["Parent"].selectable, "Parent is \\Noselect");
    assert!(
        snapshot.subscriptions.contains("Archive") && !snapshot.subscriptions.contains("Hidden")
    );
    assert!(snapshot.mailboxes["Project Notes"].messages[0].body.len() >= 300 * 1024);

    // Master-user login works as Dovecot documents it.
    let (master, password) = dovecot.master_credentials();
    RawImap::login(dovecot.imap_port(), &format!("alice*{master}"), password).logout();

    // doveadm talks to the instance.
    let status =
        dovecot.doveadm_ok(&["mailbox", "status", "-u", "alice", "messages uidnext", "INBOX"]);
    assert!(status.contains("messages=8") && status.contains("uidnext=10"), "{status}");
}

#[test]
fn serves_a_copy_of_a_maildir() {
    let source = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    imap.create("Folder");
    imap.append(
        "Folder",
        &["\\Seen"],
        Some("01-Feb-2024 00:00:00 +0000"),
        &fixtures::message(1, "x", "y"),
    );
    let before = imap.snapshot();
    imap.logout();

    let copy = Dovecot::builder()
        .user_serving_copy("bob", "bobpw", &source.home("alice").join("Maildir"), "maildir")
        .start();
    let after = RawImap::login(copy.imap_port(), "bob", "bobpw").snapshot();
    before.assert_same(&after);
}

#[test]
fn serves_managesieve_with_the_sieve_plugin() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").managesieve().start();
    // The greeting lists the capabilities and ends with OK.
    let stream = std::net::TcpStream::connect(("127.0.0.1", dovecot.managesieve_port()))
        .expect("connect to managesieve");
    let mut reader = std::io::BufReader::new(stream);
    let mut greeting = String::new();
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).expect("read") > 0);
        greeting.push_str(&line);
        if line.starts_with("OK") {
            break;
        }
    }
    assert!(greeting.contains("\"SIEVE\"") && greeting.contains("\"STARTTLS\""), "{greeting}");

    // doveadm's Sieve commands see the file store of the user's home.
    let script = b"require [\"fileinto\"];\r\nfileinto \"Junk\";\r\n";
    let put = dovecot.doveadm_with_input(&["sieve", "put", "-u", "alice", "-a", "spam"], script);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let list = dovecot.doveadm_ok(&["sieve", "list", "-u", "alice"]);
    assert_eq!(list.trim(), "spam ACTIVE");
    let home = dovecot.home("alice");
    assert_eq!(std::fs::read(home.join("sieve/spam.sieve")).expect("script file"), script);
    let link = std::fs::read_link(home.join(".dovecot.sieve")).expect("active link");
    assert_eq!(link, std::path::Path::new("sieve/spam.sieve"));
}
