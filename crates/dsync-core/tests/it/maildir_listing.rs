//! A `maildir:` source's re-run from its kept listings
//! ([`MaildirStorage::keep_listings_in`]): after flag changes, deliveries and expunges in
//! `cur/` and `new/`, the destination holds what a run without them gives.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::state::SyncState;
use dsync_core::{MailboxName, Mode, NoObserver, SyncOptions};
use mailstore::{Durability, Location, Maildir};

/// Puts `cur/` and `new/` of `root` `seconds` in the past (as a second after a change).
fn settle(root: &Path, seconds: u64) {
    let then = SystemTime::now() - Duration::from_secs(seconds);
    for sub in ["cur", "new"] {
        fs::File::open(root.join(sub)).expect("dir").set_modified(then).expect("mtime");
    }
}

fn source(root: &Path, state: &Path, listings: bool) -> MaildirStorage {
    let maildir = Maildir::with_options(
        Location::maildir(root),
        mailstore::Options::default().with_read_only(true),
    );
    let private = mailstore::Permissions::private();
    maildir.keep_uids_in(state.join("uids"), private.clone(), true);
    let mut storage = MaildirStorage::from_maildir(maildir);
    if listings {
        storage.keep_listings_in(state.join("listing"), private, true, true);
    }
    storage
}

fn backup(
    root: &Path,
    state_dir: &Path,
    destination: &Path,
    state: Option<SyncState>,
) -> SyncState {
    let mut source = source(root, state_dir, true);
    let mut destination = MaildirStorage::open_path(destination, Durability::Deferred);
    let options = SyncOptions::new(Mode::Backup).state(state);
    let report = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver)
        .unwrap_or_else(|failed| panic!("backup failed: {failed}"));
    report.state.expect("a state")
}

/// GUID, flags and received date of each message, by UID.
fn messages(
    storage: &mut dyn dsync_core::Storage,
) -> Vec<(u32, Option<String>, String, Option<i64>)> {
    let contents = storage.contents(&MailboxName::inbox()).expect("contents");
    contents
        .messages
        .into_iter()
        .map(|m| (m.uid.get(), m.guid.clone(), format!("{:?}", m.flags), m.received))
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_rerun_from_kept_listings_leaves_the_destination_as_a_full_run_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root: PathBuf = dir.path().join("source");
    let state_dir = dir.path().join("state");
    fs::create_dir_all(&state_dir).expect("state dir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).expect("maildir");
    }
    for n in 0..40 {
        let flags = if n % 3 == 0 { "" } else { "S" };
        fs::write(
            root.join(format!("cur/{}.M{n}P1.mta:2,{flags}", 1_600_000_000 + n)),
            format!("Subject: {n}\n\n{n}\n"),
        )
        .expect("mail");
    }
    for n in 40..43 {
        fs::write(
            root.join(format!("new/{}.M{n}P1.mta", 1_600_000_000 + n)),
            format!("Subject: {n}\n\n{n}\n"),
        )
        .expect("mail");
    }
    settle(&root, 60);
    let destination = dir.path().join("destination");
    let state = backup(&root, &state_dir, &destination, None);

    // Flag changes, expunges from cur/ and new/, deliveries.
    let cur = names(&root.join("cur"));
    for name in &cur[5..15] {
        let (base, flags) = name.split_once(":2,").expect("cur name");
        fs::rename(
            root.join("cur").join(name),
            root.join("cur").join(format!("{base}:2,F{flags}")),
        )
        .expect("flag");
    }
    for name in &cur[20..23] {
        fs::remove_file(root.join("cur").join(name)).expect("expunge");
    }
    fs::remove_file(root.join("new").join(&names(&root.join("new"))[0])).expect("expunge new/");
    for n in 50..55 {
        fs::write(
            root.join(format!("new/{}.M{n}P1.mta", 1_600_000_000 + n)),
            format!("Subject: {n}\n\n{n}\n"),
        )
        .expect("mail");
    }
    settle(&root, 30);
    let state = backup(&root, &state_dir, &destination, Some(state));
    let mut ours = MaildirStorage::open_path(&destination, Durability::Deferred);
    let expected = messages(&mut source(&root, &state_dir, false));
    assert_eq!(expected.len(), 40 + 3 - 3 - 1 + 5);
    assert_eq!(messages(&mut ours), expected);

    // And once more with nothing changed but one flag.
    let cur = names(&root.join("cur"));
    fs::rename(root.join("cur").join(&cur[0]), root.join("cur").join(format!("{}T", cur[0])))
        .expect("flag");
    settle(&root, 20);
    backup(&root, &state_dir, &destination, Some(state));
    let expected = messages(&mut source(&root, &state_dir, false));
    assert_eq!(
        messages(&mut MaildirStorage::open_path(&destination, Durability::Deferred)),
        expected
    );
}

/// A source Dovecot numbered (its `dovecot-uidlist`), read-only to us, after deliveries
/// into `new/` it has not numbered yet, flag changes and an expunge: the re-run numbers
/// the deliveries in memory (only they are matched against the uidlist again), and the
/// destination holds what a full read gives, under the UIDs Dovecot itself gives the
/// deliveries when it next reads the folder. (Fails when the numbered deliveries are not
/// made the files of their new records: the re-run would miss them.)
#[test]
fn a_dovecot_numbered_source_with_deliveries_is_numbered_as_dovecot_numbers_it() {
    use testkit::{Dovecot, RawImap, chown_to_mail_user, fixtures};
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = Dovecot::builder().user("alice", "pw").start();
    let mut imap = RawImap::login(seed.imap_port(), "alice", "pw");
    for index in 0..30 {
        let flags: &[&str] = if index % 3 == 0 { &[] } else { &["\\Seen"] };
        imap.append("INBOX", flags, None, &fixtures::message(index, "numbered", "body"));
    }
    imap.logout();
    let root = dir.path().join("source");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(seed.home("alice").join("Maildir"))
        .arg(&root)
        .status()
        .expect("cp");
    assert!(status.success());
    drop(seed);
    assert!(root.join("dovecot-uidlist").exists(), "Dovecot numbered it");
    let state_dir = dir.path().join("state");
    fs::create_dir_all(&state_dir).expect("state dir");
    settle(&root, 60);
    let destination = dir.path().join("destination");
    let state = backup(&root, &state_dir, &destination, None);

    let cur = names(&root.join("cur"));
    for name in &cur[3..5] {
        fs::rename(root.join("cur").join(name), root.join("cur").join(format!("{name}F")))
            .expect("flag");
    }
    fs::remove_file(root.join("cur").join(&cur[10])).expect("expunge");
    for n in [7, 3, 9, 5] {
        fs::write(
            root.join(format!("new/{}.M{n}P1.mta", 1_900_000_000 + n)),
            format!("Subject: delivered {n}\n\n{n}\n"),
        )
        .expect("deliver");
    }
    settle(&root, 30);
    backup(&root, &state_dir, &destination, Some(state));
    let expected = messages(&mut source(&root, &state_dir, false));
    assert_eq!(expected.len(), 30 - 1 + 4);
    let ours = messages(&mut MaildirStorage::open_path(&destination, Durability::Deferred));
    assert_eq!(ours, expected);

    // Dovecot reading the folder now numbers the deliveries as we did.
    chown_to_mail_user(&root);
    let dovecot = Dovecot::builder()
        .user_with_mail("source", "pw", &format!("maildir:{}", root.display()))
        .start();
    let fetched = dovecot.doveadm_ok(&["fetch", "-u", "source", "uid guid", "all"]);
    let theirs: Vec<(u32, String)> = fetched
        .split('\u{c}')
        .filter_map(|block| {
            let uid = block.lines().find_map(|l| l.strip_prefix("uid: "))?.trim().parse().ok()?;
            let guid = block.lines().find_map(|l| l.strip_prefix("guid: "))?.trim().to_string();
            Some((uid, guid))
        })
        .collect();
    let ours: Vec<(u32, String)> =
        ours.into_iter().map(|(uid, guid, _, _)| (uid, guid.unwrap_or_default())).collect();
    assert_eq!(theirs, ours);
}

/// A source Dovecot numbered, copied out of a private Dovecot (30 messages: a third
/// without flags, in `new/`), and everything a re-run of it needs.
struct Numbered {
    dir: tempfile::TempDir,
    root: PathBuf,
    state_dir: PathBuf,
    destination: PathBuf,
    state: Option<SyncState>,
    /// Deliveries so far.
    delivered: u32,
}

impl Numbered {
    /// Numbered by Dovecot, then copied whole once (its directories a minute old, so that
    /// the listing vouches for `cur/`).
    fn new() -> Numbered {
        use testkit::{Dovecot, RawImap, fixtures};
        let dir = tempfile::tempdir().expect("temp dir");
        let seed = Dovecot::builder().user("alice", "pw").start();
        let mut imap = RawImap::login(seed.imap_port(), "alice", "pw");
        for index in 0..30 {
            let flags: &[&str] = if index % 3 == 0 { &[] } else { &["\\Seen"] };
            imap.append("INBOX", flags, None, &fixtures::message(index, "numbered", "body"));
        }
        imap.logout();
        let root = dir.path().join("source");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(seed.home("alice").join("Maildir"))
            .arg(&root)
            .status()
            .expect("cp");
        assert!(status.success());
        drop(seed);
        assert!(root.join("dovecot-uidlist").exists(), "Dovecot numbered it");
        assert!(!names(&root.join("new")).is_empty(), "numbered files in new/");
        let state_dir = dir.path().join("state");
        fs::create_dir_all(&state_dir).expect("state dir");
        settle(&root, 60);
        let destination = dir.path().join("destination");
        let mut numbered =
            Numbered { dir, root, state_dir, destination, state: None, delivered: 0 };
        assert_eq!(numbered.rerun(), 0, "a first run reads cur/");
        numbered
    }

    /// A backup re-run from the state of the last; how many folder reads took `cur/` from
    /// the kept listing.
    fn rerun(&mut self) -> usize {
        let mut source = source(&self.root, &self.state_dir, true);
        let mut destination = MaildirStorage::open_path(&self.destination, Durability::Deferred);
        let options = SyncOptions::new(Mode::Backup).state(self.state.take());
        let report = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver)
            .unwrap_or_else(|failed| panic!("backup failed: {failed}"));
        self.state = Some(report.state.expect("a state"));
        source.unchanged_cur_reads_spared()
    }

    /// `count` new files put into `new/` by an MTA (no uidlist record).
    fn deliver(&mut self, count: u32) {
        for _ in 0..count {
            self.delivered += 1;
            let n = self.delivered;
            fs::write(
                self.root.join(format!("new/{}.M{n}P7.mta", 1_900_000_000 + n)),
                format!("Subject: delivered {n}\n\n{n}\n"),
            )
            .expect("deliver");
        }
    }

    /// `new/`'s mtime put `seconds` in the past, `cur/`'s left as it is.
    fn settle_new(&self, seconds: u64) {
        let then = SystemTime::now() - Duration::from_secs(seconds);
        let new = fs::File::open(self.root.join("new")).expect("dir");
        new.set_modified(then).expect("mtime");
    }

    /// UID, GUID and flags of every message, as Dovecot serves the source and as it serves
    /// the destination (one Dovecot, a user on each).
    fn served(&self) -> (String, String) {
        use testkit::{Dovecot, chown_to_mail_user};
        chown_to_mail_user(self.dir.path());
        let dovecot = Dovecot::builder()
            .user_with_mail("source", "pw", &format!("maildir:{}", self.root.display()))
            .user_with_mail("destination", "pw", &format!("maildir:{}", self.destination.display()))
            .start();
        // `\Recent` is the session's (the first to see a message), not the message's.
        let fetch = |user: &str| {
            let fetched = dovecot.doveadm_ok(&["fetch", "-u", user, "uid guid flags", "all"]);
            let fetched = fetched.replace("\\Recent", "");
            fetched.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
        };
        (fetch("source"), fetch("destination"))
    }
}

/// The deliveries-only re-run of a source Dovecot numbered reads no `cur/` (its stamp is
/// the one the last listing recorded, so its files are the ones kept), twice in a row,
/// and the destination is what Dovecot serves from the source: UIDs, GUIDs and flags.
/// (Fails without the kept `cur/`: every re-run reads it.)
#[test]
fn a_deliveries_only_rerun_of_a_dovecot_numbered_source_reads_no_cur() {
    let mut source = Numbered::new();
    source.deliver(5);
    source.settle_new(30);
    assert_eq!(source.rerun(), 1, "cur/ taken from the kept listing");
    source.deliver(2);
    source.settle_new(20);
    assert_eq!(source.rerun(), 1, "and again from the listing that run kept");
    let (theirs, ours) = source.served();
    assert_eq!(theirs.lines().filter(|l| l.starts_with("uid: ")).count(), 30 + 7);
    assert_eq!(ours, theirs);
}

/// A flag change in `cur/` (a rename) moves its stamp: `cur/` is read, and the
/// destination has the new flag. (Fails when the kept `cur/` is used whatever its stamp:
/// the rename would be missed.)
#[test]
fn a_flag_change_in_cur_reads_cur() {
    let mut source = Numbered::new();
    let cur = names(&source.root.join("cur"));
    let flagged = &cur[2];
    fs::rename(
        source.root.join("cur").join(flagged),
        source.root.join("cur").join(format!("{flagged}F")),
    )
    .expect("flag");
    source.deliver(1);
    settle(&source.root, 30);
    assert_eq!(source.rerun(), 0, "cur/ changed");
    let (theirs, ours) = source.served();
    assert!(theirs.contains("\\Flagged"), "{theirs}");
    assert_eq!(ours, theirs);
}

/// A change in `cur/` within the second its stamp was taken in, on a file system that
/// stamps times by the second, leaves its mtime as it was: modelled by putting the mtime
/// back after a rename and an expunge. Its change time still moved, so `cur/` is read.
/// (Fails when the stamp is the mtime alone.)
#[test]
fn a_change_in_cur_that_keeps_its_mtime_reads_cur() {
    let mut source = Numbered::new();
    let cur_dir = source.root.join("cur");
    let mtime = fs::metadata(&cur_dir).expect("cur").modified().expect("mtime");
    let cur = names(&cur_dir);
    fs::rename(cur_dir.join(&cur[4]), cur_dir.join(format!("{}T", cur[4]))).expect("flag");
    fs::remove_file(cur_dir.join(&cur[7])).expect("expunge");
    fs::File::open(&cur_dir).expect("dir").set_modified(mtime).expect("mtime back");
    source.deliver(1);
    source.settle_new(30);
    assert_eq!(source.rerun(), 0, "cur/ changed");
    let (theirs, ours) = source.served();
    assert_eq!(theirs.lines().filter(|l| l.starts_with("uid: ")).count(), 30 - 1 + 1);
    assert_eq!(ours, theirs);
}

/// A client moving a numbered message from `new/` to `cur/` (as an IMAP server marks it
/// seen) changes both directories: `cur/` is read, and the message keeps its UID with its
/// new flag. (Fails when the kept `cur/` is used: the message would have no file.)
#[test]
fn a_client_moving_new_to_cur_reads_cur() {
    let mut source = Numbered::new();
    let moved = names(&source.root.join("new"))[0].clone();
    fs::rename(
        source.root.join("new").join(&moved),
        source.root.join("cur").join(format!("{moved}:2,S")),
    )
    .expect("move");
    source.deliver(2);
    settle(&source.root, 30);
    assert_eq!(source.rerun(), 0, "cur/ changed");
    let (theirs, ours) = source.served();
    assert_eq!(theirs.lines().filter(|l| l.starts_with("uid: ")).count(), 30 + 2);
    assert_eq!(ours, theirs);
}
