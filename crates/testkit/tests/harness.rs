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
