//! Dovecot delivers (IMAP APPEND, flag changes) into a Maildir while we save into the same
//! mailbox: both honour `dovecot-uidlist.lock`, so every message ends up exactly once, with
//! a unique UID, whole, and both sides agree on the result.
//!
//! Our writer runs as a child process under the mail user's uid (the test binary re-executed
//! on the ignored test `concurrent_helper`), because Dovecot serves the Maildir as that user
//! and must be able to read what we write.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use mailstore::{Durability, Flags, Location, Maildir, Options, SaveOptions};
use testkit::{Dovecot, MAIL_GID, MAIL_UID, RawImap, fixtures};

use crate::support::{name, our_snapshot};

const ENV_DIR: &str = "MAILSTORE_CONCURRENT_DIR";
const OURS: u32 = 150;
const THEIRS: u32 = 150;

fn our_body(index: u32) -> Vec<u8> {
    fixtures::message(10_000 + index, "ours", "written by mailstore")
}

fn their_body(index: u32) -> Vec<u8> {
    fixtures::message(20_000 + index, "theirs", "delivered by Dovecot")
}

#[test]
#[ignore = "run by concurrent::dovecot_and_we_write_the_same_mailbox as a child process"]
fn concurrent_helper() {
    let Ok(dir) = std::env::var(ENV_DIR) else { return };
    let options = Options::default().with_durability(Durability::Deferred);
    let maildir = Maildir::with_options(Location::maildir(dir), options);
    let mut inbox = maildir.mailbox(&name("INBOX")).unwrap();
    let mut committed = Vec::new();
    for index in 0..OURS {
        let mut pending = inbox.begin_save().unwrap();
        pending.write_all(&our_body(index)).unwrap();
        inbox.save(pending, SaveOptions::default().with_received(1_600_000_000)).unwrap();
        if inbox.staged() == 5 {
            committed.extend(inbox.commit().unwrap());
            // Flag one of ours while Dovecot is busy too.
            let uid = committed[committed.len() - 3];
            inbox.set_flags(uid, Flags::SEEN, &[]).unwrap();
        }
    }
    committed.extend(inbox.commit().unwrap());
    println!("UIDS {committed:?}");
}

#[test]
fn dovecot_and_we_write_the_same_mailbox() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let root = dovecot.home("alice").join("Maildir");
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    imap.append("INBOX", &[], None, &their_body(9999));
    imap.select("INBOX");

    let helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "concurrent::concurrent_helper",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(ENV_DIR, &root)
        .uid(MAIL_UID)
        .gid(MAIL_GID)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for index in 0..THEIRS {
        let uid = imap.append(
            "INBOX",
            &["$Theirs"],
            Some("01-Jan-2024 00:00:00 +0000"),
            &their_body(index),
        );
        if index % 10 == 9 {
            imap.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Flagged)"));
        }
    }
    let output = helper.wait_with_output().unwrap();
    assert!(output.status.success(), "writer failed:\n{}", String::from_utf8_lossy(&output.stderr));

    let stdout = String::from_utf8_lossy(&output.stdout);
    let our_uids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.split_once("UIDS ").map(|(_, uids)| uids))
        .map(|l| l.trim_matches(['[', ']']).split(", ").filter_map(|u| u.parse().ok()).collect())
        .unwrap_or_default();
    assert_eq!(our_uids.len(), OURS as usize, "{stdout}");

    let theirs = imap.snapshot();
    let inbox = &theirs.mailboxes["INBOX"];
    assert_eq!(inbox.messages.len(), (OURS + THEIRS + 1) as usize);
    let mut expected: BTreeSet<Vec<u8>> = (0..OURS).map(our_body).collect();
    expected.extend((0..THEIRS).map(their_body));
    expected.insert(their_body(9999));
    let bodies: BTreeSet<Vec<u8>> = inbox.messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, expected, "every message exactly once and whole");
    let uids: BTreeSet<u32> = inbox.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), inbox.messages.len());
    let ours_seen = inbox.messages.iter().filter(|m| m.flags == ["\\Seen"]).count();
    assert_eq!(ours_seen, (OURS / 5) as usize);

    // How much the two writers interleaved (timing-dependent, reported only).
    let (first, last) = (our_uids[0], our_uids[our_uids.len() - 1]);
    let interleaved =
        uids.iter().filter(|u| (first..=last).contains(*u) && !our_uids.contains(u)).count();
    eprintln!("our UIDs {first}..={last}; Dovecot delivered {interleaved} messages in between");

    let maildir = Maildir::open(Location::maildir(&root));
    theirs.assert_same(&our_snapshot(&maildir));
    let log = dovecot.log();
    eprintln!("Dovecot log lines mentioning the uidlist or locks:");
    for line in
        log.lines().filter(|l| l.contains("uidlist") || l.contains("lock") || l.contains("Warning"))
    {
        eprintln!("  {line}");
    }
    assert!(!log.contains("Error") && !log.contains("Panic"), "Dovecot complained:\n{log}");
}
