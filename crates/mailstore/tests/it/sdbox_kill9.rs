//! `kill -9` at random points of a large sdbox save: after every kill a Dovecot serving a
//! copy (our staging directories with `.temp.*` files in its root) shows a consistent
//! mailbox (only whole messages of ours, each once, under our UID, with our flags and
//! dates) and logs no error or rebuild; re-running the save completes it exactly, and
//! removes what the kills left (staging directories, `u.<uid>` files the index never
//! listed).
//!
//! The writer is this test binary itself, re-executed on the ignored test
//! `sdbox_kill_helper` with the store's path in an environment variable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailstore::{Durability, Flags, Keyword, Options, SaveOptions, Sdbox, SdboxLocation};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::name;

const ENV_DIR: &str = "MAILSTORE_SDBOX_KILL_HELPER_DIR";
const ENV_FSYNC: &str = "MAILSTORE_SDBOX_KILL_HELPER_FSYNC";
const MESSAGES: u32 = 600;
const UID_VALIDITY: u32 = 434_343;

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
#[ignore = "run by sdbox_kill9::killed_sdbox_saves_resume_without_duplicates as a child"]
fn sdbox_kill_helper() {
    let Ok(dir) = std::env::var(ENV_DIR) else { return };
    let durability = if std::env::var_os(ENV_FSYNC).is_some() {
        Durability::Fsync
    } else {
        Durability::Deferred
    };
    let store = Sdbox::with_options(
        SdboxLocation::new(dir),
        Options::default().with_durability(durability),
    );
    let big = name("Big");
    let mut mailbox = match store.mailbox(&big) {
        Ok(mailbox) => mailbox,
        Err(_) => store.create_mailbox(&big, Some(UID_VALIDITY), None).unwrap(),
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

/// Names in the mail directory and our staging directories in the root (`root`, the
/// mail directory's grandparent's parent): (`u.*` files, `.temp.*` files).
fn files_in(mail: &Path) -> (usize, usize) {
    let names = |dir: &Path| -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
    };
    let mut temps = names(mail);
    let root = mail.ancestors().nth(3).unwrap();
    for staging in names(root).iter().filter(|n| n.starts_with(".dsync-rs-save.")) {
        temps.extend(names(&root.join(staging)));
    }
    (
        names(mail).iter().filter(|n| n.starts_with("u.")).count(),
        temps.iter().filter(|n| n.starts_with(".temp.")).count(),
    )
}

/// Our staging directories left in the root.
fn staging_in(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".dsync-rs-"))
        .collect()
}

/// Runs the writer; with `kill`, SIGKILLs it `delay` after `extra` more message files
/// appeared while one is being written. Returns true if the writer finished.
fn run_helper(root: &Path, fsync: bool, kill: Option<(usize, Duration)>) -> bool {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "sdbox_kill9::sdbox_kill_helper", "--ignored", "--test-threads=1"])
        .env(ENV_DIR, root)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if fsync {
        command.env(ENV_FSYNC, "1");
    }
    let mail = root.join("mailboxes/Big/dbox-Mails");
    let (start, _) = files_in(&mail);
    let mut child = command.spawn().unwrap();
    let mut triggered: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "helper failed: {status}");
            return true;
        }
        if let Some((extra, delay)) = kill {
            let (messages, temps) = files_in(&mail);
            if triggered.is_none() && messages >= start + extra && temps > 0 {
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

/// Checks a copy as Dovecot serves it: every message is whole, one of ours, once, under
/// its own UID with our flags, keywords and date. Returns the number of messages.
fn check_consistent(snapshot: &testkit::AccountSnapshot, label: &str) -> usize {
    let Some(big) = snapshot.mailboxes.get("Big") else { return 0 };
    let bodies: BTreeMap<Vec<u8>, u32> =
        (0..MESSAGES).map(|i| (body_of(uid_of(i)), uid_of(i))).collect();
    let mut seen = BTreeSet::new();
    for message in &big.messages {
        let uid = *bodies.get(&message.body).unwrap_or_else(|| {
            panic!("{label}: uid {} is not a whole message of ours", message.uid)
        });
        assert!(seen.insert(uid), "{label}: message {uid} twice");
        assert_eq!(message.uid, uid, "{label}");
        assert_eq!(message.internal_date, 1_600_000_000 + i64::from(uid), "{label}");
        let options = options_of(uid);
        let mut flags: Vec<String> = options.flags.imap_names().map(str::to_string).collect();
        flags.extend(options.keywords.iter().map(ToString::to_string));
        flags.sort();
        assert_eq!(message.flags, flags, "{label} uid {uid}");
    }
    big.messages.len()
}

/// Prints Dovecot's log when the test fails while reading through it (a copy it cannot
/// open answers `NO [SERVERBUG]`; the reason is only in its log).
struct LogOnPanic<'a>(&'a Dovecot);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Dovecot's log:\n{}", self.0.log());
        }
    }
}

#[test]
fn killed_sdbox_saves_resume_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sdbox");
    let mail = root.join("mailboxes/Big/dbox-Mails");
    let mut copies = Vec::new();
    let mut seed: u64 = 0x5eed_4321;
    let mut finished = false;
    let (mut left_temp, mut left_orphans) = (0, 0);
    for round in 0..12 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let extra = usize::try_from((seed >> 33) % 40).unwrap();
        let delay = Duration::from_micros((seed >> 20) % 3000);
        finished = run_helper(&root, round % 4 == 1, Some((extra, delay)));
        if finished {
            break;
        }
        // Read-only: a writable store's listing removes what the kill left.
        let options = Options::default().with_read_only(true);
        let store = Sdbox::with_options(SdboxLocation::new(&root), options);
        if let Ok(mailbox) = store.mailbox(&name("Big")) {
            let listing = mailbox.list_messages().unwrap();
            left_orphans += listing.left_out.len();
        }
        left_temp += files_in(&mail).1;
        let copy = dir.path().join(format!("after-kill-{round}"));
        std::fs::create_dir(&copy).unwrap();
        assert!(Command::new("cp").arg("-a").arg(&root).arg(&copy).status().unwrap().success());
        copies.push(copy.join("sdbox"));
    }
    if !finished {
        assert!(run_helper(&root, false, None));
    }
    assert!(copies.len() >= 8, "too few kills landed mid-run ({})", copies.len());
    assert!(left_temp > 0, "no kill left a message being written");
    eprintln!("after the kills: {left_temp} .temp files, {left_orphans} unindexed u.* files");
    // What the kills left went at the next commit, their staging directories with it.
    assert_eq!(files_in(&mail), (MESSAGES as usize, 0), "leftovers after the last run");
    assert_eq!(staging_in(&root), Vec::<String>::new(), "staging left after the last run");

    // Our reader: exactly the intended messages.
    let store = Sdbox::open(SdboxLocation::new(&root));
    let mailbox = store.mailbox(&name("Big")).unwrap();
    let status = mailbox.status().unwrap();
    assert_eq!(
        (status.uid_validity, status.next_uid, status.messages),
        (UID_VALIDITY, uid_of(MESSAGES) + 10, MESSAGES)
    );
    let listing = mailbox.list_messages().unwrap();
    assert!(listing.left_out.is_empty(), "{:?}", listing.left_out);

    // Dovecot: every post-kill copy opens consistently and quietly; the final one is exact.
    let mut builder = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("final", "pw", &root, "sdbox");
    for (index, copy) in copies.iter().enumerate() {
        builder = builder.user_serving_copy(&format!("kill{index}"), "pw", copy, "sdbox");
    }
    let dovecot = builder.start();
    let _log = LogOnPanic(&dovecot);
    let final_view = RawImap::login(dovecot.imap_port(), "final", "pw").snapshot();
    assert_eq!(check_consistent(&final_view, "final"), MESSAGES as usize);
    assert_eq!(final_view.mailboxes["Big"].uid_next, uid_of(MESSAGES) + 10);
    let mut partial = Vec::new();
    for (index, copy) in copies.iter().enumerate() {
        eprintln!("reading the copy after kill {index}: {}", copy.display());
        let view = RawImap::login(dovecot.imap_port(), &format!("kill{index}"), "pw").snapshot();
        partial.push(check_consistent(&view, &format!("copy after kill {index}")));
    }
    eprintln!("messages Dovecot shows after each kill: {partial:?}");
    let log = dovecot.log();
    for word in ["Warning", "Error", "rebuild", "Panic", "corrupt"] {
        assert!(!log.contains(word), "Dovecot's log says {word}:\n{log}");
    }
}
