//! `kill -9` at random points of a large save: after every kill Dovecot opens the Maildir
//! consistently (no half message, no duplicate), and re-running the save completes it with
//! exactly the intended UIDs, flags, keywords, dates and bytes.
//!
//! The writer is this test binary itself, re-executed on the ignored test `kill_helper`
//! with the Maildir path in an environment variable.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailstore::{Durability, Flags, Keyword, Location, Maildir, Options, SaveOptions};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::name;

const ENV_DIR: &str = "MAILSTORE_KILL_HELPER_DIR";
const ENV_FSYNC: &str = "MAILSTORE_KILL_HELPER_FSYNC";
const MESSAGES: u32 = 1000;
const UID_VALIDITY: u32 = 424_242;

/// UIDs with gaps: 1, 3, 5, …
fn uid_of(index: u32) -> u32 {
    index * 2 + 1
}

fn body_of(uid: u32) -> Vec<u8> {
    fixtures::sized_message(uid, 300 + (uid as usize * 7919) % 6000)
}

fn options_of(uid: u32) -> SaveOptions {
    let mut keywords = Vec::new();
    if uid.is_multiple_of(3) {
        keywords.push(Keyword::new("$Label1").unwrap());
    }
    if uid.is_multiple_of(5) {
        keywords.push(Keyword::new("Junk").unwrap());
    }
    let flags = if uid.is_multiple_of(2) { Flags::EMPTY } else { Flags::SEEN }
        | if uid.is_multiple_of(7) { Flags::FLAGGED } else { Flags::EMPTY };
    SaveOptions::default()
        .with_uid(uid)
        .with_flags(flags)
        .with_keywords(keywords)
        .with_received(1_600_000_000 + i64::from(uid))
}

/// The writer: resumes from the mailbox's next UID, commits every 10 messages.
#[test]
#[ignore = "run by kill9::killed_saves_resume_without_duplicates as a child process"]
fn kill_helper() {
    let Ok(dir) = std::env::var(ENV_DIR) else { return };
    let durability = if std::env::var_os(ENV_FSYNC).is_some() {
        Durability::Fsync
    } else {
        Durability::Deferred
    };
    let maildir = Maildir::with_options(
        Location::maildir(dir),
        Options::default().with_durability(durability),
    );
    let big = name("Big");
    let mut mailbox = match maildir.mailbox(&big) {
        Ok(mailbox) => mailbox,
        Err(_) => maildir.create_mailbox(&big, Some(UID_VALIDITY), None).unwrap(),
    };
    let next = mailbox.status().unwrap().next_uid;
    for index in 0..MESSAGES {
        let uid = uid_of(index);
        if uid < next {
            continue;
        }
        let mut pending = mailbox.begin_save().unwrap();
        std::io::Write::write_all(&mut pending, &body_of(uid)).unwrap();
        mailbox.save(pending, options_of(uid)).unwrap();
        if mailbox.staged() == 10 {
            mailbox.commit().unwrap();
        }
    }
    mailbox.commit().unwrap();
    mailbox.set_next_uid(uid_of(MESSAGES) + 10).unwrap();
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// Runs the writer; with `kill`, SIGKILLs it `delay` after `extra` more files reached
/// `.Big/cur/` while a message is being written, or (`extra == usize::MAX`) after a commit
/// started, so kills land mid-save whatever the machine's speed. Returns true if the writer
/// finished.
fn run_helper(root: &std::path::Path, fsync: bool, kill: Option<(usize, Duration)>) -> bool {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "kill9::kill_helper", "--ignored", "--test-threads=1"])
        .env(ENV_DIR, root)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if fsync {
        command.env(ENV_FSYNC, "1");
    }
    let cur = root.join(".Big/cur");
    let start = files_in(&cur);
    let mut child = command.spawn().unwrap();
    let mut triggered: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "helper failed: {status}");
            return true;
        }
        if let Some((extra, delay)) = kill {
            let ready = if extra == usize::MAX {
                // Mid-commit: the journal exists from before the renames until after the
                // uidlist append.
                root.join(".Big").join("dsync-rs-journal").exists()
            } else {
                files_in(&cur) >= start + extra && files_in(&root.join(".Big/tmp")) > 0
            };
            if triggered.is_none() && ready {
                triggered = Some(Instant::now());
            }
            if triggered.is_some_and(|at| at.elapsed() >= delay) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                return false;
            }
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Checks a (copied) Maildir as Dovecot serves it: every message is whole and one of ours,
/// none twice; messages that kept our UID have our flags and date.
/// Returns (messages, of which numbered by Dovecot).
fn check_consistent(snapshot: &testkit::AccountSnapshot, label: &str) -> (usize, usize) {
    let Some(big) = snapshot.mailboxes.get("Big") else { return (0, 0) };
    let mut renumbered = 0;
    let bodies: BTreeMap<Vec<u8>, u32> =
        (0..MESSAGES).map(|i| (crlf(&body_of(uid_of(i))), uid_of(i))).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut highest_kept = 0;
    for message in &big.messages {
        let uid = *bodies.get(&message.body).unwrap_or_else(|| {
            panic!("{label}: uid {} is not a whole message of ours", message.uid)
        });
        assert!(seen.insert(uid), "{label}: message {uid} twice");
        if message.uid == uid {
            assert_eq!(message.internal_date, 1_600_000_000 + i64::from(uid), "{label}");
            highest_kept = highest_kept.max(uid);
        } else {
            // An orphan of a kill between rename and uidlist append, which Dovecot numbered
            // itself (from the uidlist's next UID) because it opened the copy before any
            // re-run of ours could complete the commit from the journal.
            assert!(
                message.uid > highest_kept,
                "{label}: orphan {uid} numbered {} below kept UIDs",
                message.uid
            );
            renumbered += 1;
        }
    }
    (big.messages.len(), renumbered)
}

fn crlf(body: &[u8]) -> Vec<u8> {
    body.to_vec() // fixtures produce CRLF already
}

#[test]
fn killed_saves_resume_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let mut copies = Vec::new();
    let mut seed: u64 = 0x5eed_1234;
    let mut finished = false;
    // Messages a kill left half-written in tmp/, most after one kill.
    let mut left_in_tmp = 0;
    for round in 0..12 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let (extra, delay) = if round % 2 == 0 {
            (usize::MAX, Duration::from_micros((seed >> 20) % 400))
        } else {
            (
                usize::try_from((seed >> 33) % 60).unwrap(),
                Duration::from_micros((seed >> 20) % 3000),
            )
        };
        finished = run_helper(&root, round % 4 == 1, Some((extra, delay)));
        if finished {
            break;
        }
        left_in_tmp = left_in_tmp.max(files_in(&root.join(".Big/tmp")));
        // A copy as the kill left it, for Dovecot to open later.
        let copy = dir.path().join(format!("after-kill-{round}"));
        std::fs::create_dir(&copy).unwrap();
        assert!(Command::new("cp").arg("-a").arg(&root).arg(&copy).status().unwrap().success());
        copies.push(copy.join("Maildir"));
    }
    if !finished {
        assert!(run_helper(&root, false, None));
    }
    assert!(copies.len() >= 8, "too few kills landed mid-run ({})", copies.len());

    // What the kills left in tmp/ went at the next run (the writers are gone), instead of
    // piling up until Dovecot's 36 hours pass.
    assert!(left_in_tmp > 0, "no kill left a message in tmp/");
    assert_eq!(files_in(&root.join(".Big/tmp")), 0, "leftovers in tmp/ after the last run");

    // Our reader: exactly the intended messages.
    let maildir = Maildir::open(Location::maildir(&root));
    let mailbox = maildir.mailbox(&name("Big")).unwrap();
    let status = mailbox.status().unwrap();
    assert_eq!(
        (status.uid_validity, status.next_uid, status.messages),
        (UID_VALIDITY, uid_of(MESSAGES) + 10, MESSAGES)
    );
    let messages = mailbox.messages().unwrap();
    for (index, message) in messages.iter().enumerate() {
        let uid = uid_of(u32::try_from(index).unwrap());
        assert_eq!(message.uid, uid);
        let options = options_of(uid);
        assert_eq!(
            (message.flags, &message.keywords, message.received),
            (options.flags, &options.keywords, options.received.unwrap())
        );
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut mailbox.open_message(uid).unwrap().crlf(), &mut body)
            .unwrap();
        assert_eq!(body, body_of(uid), "uid {uid}");
    }

    // Dovecot: every post-kill copy opens consistently; the final one is exact.
    let mut builder = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("final", "pw", &root, "maildir");
    for (index, copy) in copies.iter().enumerate() {
        builder = builder.user_serving_copy(&format!("kill{index}"), "pw", copy, "maildir");
    }
    let dovecot = builder.start();
    let final_view = RawImap::login(dovecot.imap_port(), "final", "pw").snapshot();
    assert_eq!(check_consistent(&final_view, "final"), (MESSAGES as usize, 0));
    assert!(
        final_view.mailboxes["Big"]
            .messages
            .iter()
            .enumerate()
            .all(|(i, m)| m.uid == uid_of(u32::try_from(i).unwrap()))
    );
    let mut partial = Vec::new();
    for index in 0..copies.len() {
        let view = RawImap::login(dovecot.imap_port(), &format!("kill{index}"), "pw").snapshot();
        partial.push(check_consistent(&view, &format!("copy after kill {index}")));
    }
    eprintln!("(messages, of which orphans Dovecot numbered) after each kill: {partial:?}");
    let log = dovecot.log();
    assert!(!log.contains("Panic") && !log.contains("Broken"), "Dovecot complained:\n{log}");
}
