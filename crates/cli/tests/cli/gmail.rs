//! Gmail as the source (`X-GM-EXT-1`). No Gmail is reachable from the tests and Dovecot
//! does not speak Gmail's extension, so this runs against testkit's [`FakeStore`] in Gmail
//! mode, a fake server that says it is Gmail: labels are folders, every message is also
//! in `[Gmail]/All Mail` (`\All`) under one `X-GM-MSGID`. What it proves is our side of
//! the exchange (which items we ask for and what we do with the answers), not Gmail's.

use std::os::unix::fs::MetadataExt;

use testkit::{FakeStore, GMAIL_ALL_MAIL, fixtures};

use super::{dsync, text};

/// Message files of a Maildir folder, and how many of them share their inode.
fn files(folder: &std::path::Path) -> (usize, usize) {
    let entries: Vec<_> = ["cur", "new"]
        .into_iter()
        .flat_map(|sub| std::fs::read_dir(folder.join(sub)).expect("cur/ and new/"))
        .map(|entry| entry.expect("entry").metadata().expect("stat"))
        .collect();
    (entries.len(), entries.iter().filter(|m| m.nlink() >= 2).count())
}

#[test]
fn gmail_labels_become_folders_and_all_mail_bodies_are_downloaded_once() {
    // Message 1 has the labels INBOX and Work, 2 only Work, 3 only INBOX, 4 none (All
    // Mail only, an archived message).
    let gmail = FakeStore::builder()
        .gmail()
        .message("INBOX", 1, &["\\Seen"], &fixtures::message(1, "one", "a"))
        .message("Work", 1, &["\\Seen"], &fixtures::message(1, "one", "a"))
        .message("Work", 2, &[], &fixtures::message(2, "two", "b"))
        .message("INBOX", 3, &["$Important"], &fixtures::message(3, "three", "c"))
        .message(GMAIL_ALL_MAIL, 4, &[], &fixtures::message(4, "four", "d"))
        .start();
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("Maildir");
    let source = format!("imap://alice@127.0.0.1:{}?tls=none", gmail.port());
    let target = format!("maildir:{}", maildir.display());

    let run = dsync(&["backup", "-a", "\\All", &source, &target], Some("app-password"));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // Four messages, four bodies over the wire, though eight folder entries were saved:
    // the label copies came from All Mail, found by X-GM-MSGID.
    assert_eq!(gmail.bodies_sent(), 4, "{:#?}", gmail.commands());
    assert!(gmail.commands().iter().any(|c| c.contains("X-GM-MSGID")), "{:#?}", gmail.commands());
    let summary = String::from_utf8_lossy(&run.stdout);
    assert!(summary.contains("8 messages saved"), "{}", text(&run));
    assert!(summary.contains("4 saved from copies already held"), "{}", text(&run));
    assert_eq!(files(&maildir.join(".[Gmail].All Mail")), (4, 3));
    assert_eq!(files(&maildir.join(".Work")), (2, 2));
    assert_eq!(files(&maildir), (2, 2), "INBOX");

    // Without -a every label copy is downloaded again.
    let plain = dir.path().join("Plain");
    let before = gmail.bodies_sent();
    let target = format!("maildir:{}", plain.display());
    let run = dsync(&["backup", &source, &target], Some("app-password"));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(gmail.bodies_sent() - before, 8);
}
