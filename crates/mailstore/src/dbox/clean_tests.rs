//! What a killed save leaves is still removed, and a re-run lists no mail directory when
//! nothing but our own writes changed it ([`super::clean_stamp`], saves staged in the
//! root: [`super::Store::save_staging`]).

use std::path::{Path, PathBuf};

use super::clean_stamp;
use super::write::SCANS;
use crate::{Flags, MailboxName, SaveOptions, Sdbox, SdboxLocation, SdboxMailbox};

fn scans() -> usize {
    SCANS.get()
}

fn records() -> usize {
    clean_stamp::RECORDS.get()
}

fn name() -> MailboxName {
    MailboxName::new(["Big"]).unwrap()
}

fn save(mailbox: &mut SdboxMailbox, count: usize) -> Vec<u32> {
    for _ in 0..count {
        mailbox.save_from(&mut &b"Subject: x\n\nbody\n"[..], SaveOptions::default()).unwrap();
    }
    mailbox.commit().unwrap()
}

/// A run of ours: a store of its own (it lists each mail directory at most once).
fn run(root: &Path) -> (Sdbox, SdboxMailbox) {
    let store = Sdbox::open(SdboxLocation::new(root));
    let mailbox = store.mailbox(&name()).unwrap();
    (store, mailbox)
}

/// A name our writer of a process that no longer runs would give (`writer_is_gone`).
fn dead_writers_name(prefix: &str) -> String {
    let pid = (4_000_000..4_194_000).find(|&pid| !crate::fs::process_alive(pid)).unwrap();
    format!("{prefix}1700000000.M1P{pid}.{}", crate::fs::filename_host())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sdbox");
    let store = Sdbox::open(SdboxLocation::new(&root));
    let mut mailbox = store.create_mailbox(&name(), Some(7), None).unwrap();
    assert_eq!(save(&mut mailbox, 3), [1, 2, 3]);
    let mail = mailbox.path().to_path_buf();
    (dir, root, mail)
}

/// Each re-run (a store of its own) saves, changes flags and expunges without listing
/// the mail directory: only the first write into the new mailbox did. Fails when the
/// first write ignores the stamp, when an expunge unlinks after the lock (its change
/// breaks the chain: the next run lists), or when saves stage their files in
/// `dbox-Mails` (outside the lock).
#[test]
fn a_rerun_lists_no_directory_when_nothing_foreign_happened() {
    let before = scans();
    let (_dir, root, mail) = setup();
    assert_eq!(scans(), before + 1, "the first write into the new mailbox lists it");
    for round in 0..3u32 {
        let (_store, mut mailbox) = run(&root);
        let uids = save(&mut mailbox, 2);
        mailbox.set_flags(uids[0], Flags::SEEN, &[]).unwrap();
        mailbox.expunge(&[uids[1]]).unwrap();
        assert_eq!(scans(), before + 1, "round {round} listed the mail directory");
    }
    let (_store, mailbox) = run(&root);
    // The listing of a writable store removes leftovers too: not listed either.
    let listing = mailbox.list_messages().unwrap();
    assert_eq!(listing.entries.len(), 6);
    assert!(listing.left_out.is_empty(), "{:?}", listing.left_out);
    assert_eq!(scans(), before + 1);
    assert!(!names_in(&mail).iter().any(|n| n.starts_with(".temp.")), "{:?}", names_in(&mail));
}

/// What a killed save of ours left in its staging directory, a stray `u.<uid>` another
/// writer left above the next UID, and a temp file an earlier version of ours left in
/// `dbox-Mails` are removed by the next run's first write. Fails when the stale staging
/// is not removed, or when the first write trusts a stamp the stray file changed.
#[test]
fn a_killed_saves_leftovers_are_still_removed() {
    let (_dir, root, mail) = setup();
    let staging = root.join(dead_writers_name(".dsync-rs-save."));
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join(dead_writers_name(".temp.dsync-rs.")), b"half").unwrap();
    let old_temp = mail.join(dead_writers_name(".temp.dsync-rs."));
    std::fs::write(&old_temp, b"half").unwrap();
    std::fs::write(mail.join("u.9"), b"never logged").unwrap();
    let before = scans();
    let (store, mut mailbox) = run(&root);
    assert_eq!(save(&mut mailbox, 1), [4]);
    assert_eq!(scans(), before + 1, "the changed directory is listed");
    assert!(!staging.exists(), "the dead writer's staging stays");
    assert!(!old_temp.exists() && !mail.join("u.9").exists(), "{:?}", names_in(&mail));
    // Ours is in the root while the store lives, and goes with it.
    let ours: Vec<String> =
        names_in(&root).into_iter().filter(|n| n.starts_with(".dsync-rs-save.")).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    drop((mailbox, store));
    assert!(!names_in(&root).iter().any(|n| n.starts_with(".dsync-rs-")), "{:?}", names_in(&root));
}

/// The chain: leftovers that appear after our first write's listing (another writer
/// killed meanwhile) make the directory not known clean, so our later commits, flag
/// changes and expunges in the same run record nothing, and the next run lists it and
/// removes them. Fails when a commit records the directory's stamp without knowing it
/// clean when it began (the unsafe "record after any commit").
#[test]
fn no_stamp_is_recorded_for_a_directory_not_known_clean() {
    let (_dir, root, mail) = setup();
    let (store, mut mailbox) = run(&root);
    assert_eq!(save(&mut mailbox, 1), [4]);
    // Another writer, killed after renaming its file, before logging it.
    std::fs::write(mail.join("u.20"), b"never logged").unwrap();
    let recorded = records();
    assert_eq!(save(&mut mailbox, 1), [5]);
    mailbox.set_flags(5, Flags::FLAGGED, &[]).unwrap();
    mailbox.expunge(&[4]).unwrap();
    assert_eq!(records(), recorded, "a stamp was recorded for a directory not known clean");
    assert!(mail.join("u.20").exists());
    drop((mailbox, store));
    let before = scans();
    let (_store, mut mailbox) = run(&root);
    assert_eq!(save(&mut mailbox, 1), [6]);
    assert_eq!(scans(), before + 1);
    assert!(!mail.join("u.20").exists(), "the leftover survived: {:?}", names_in(&mail));
    // Listed and clean again: the run after that lists nothing.
    let (_store, mut mailbox) = run(&root);
    assert_eq!(save(&mut mailbox, 1), [7]);
    assert_eq!(scans(), before + 1);
}

/// A flag change and an expunge read only the records of the messages they change, and
/// do what a reading of every record would (Dovecot's reading of the result is checked in
/// `tests/it/sdbox.rs`).
#[test]
fn flag_changes_and_expunges_read_only_their_messages() {
    let (_dir, root, _mail) = setup();
    let (_store, mut mailbox) = run(&root);
    save(&mut mailbox, 5);
    mailbox
        .set_flags(2, Flags::SEEN | Flags::ANSWERED, &[crate::Keyword::new("k").unwrap()])
        .unwrap();
    let cached = || {
        mailbox.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner).cached_messages()
    };
    assert_eq!(cached(), Some((false, 1)));
    mailbox.expunge(&[3, 4, 99]).unwrap();
    assert_eq!(cached(), Some((false, 0)));
    assert!(mailbox.set_flags(3, Flags::SEEN, &[]).is_err(), "expunged");
    let listed = mailbox.messages().unwrap();
    let uids: Vec<u32> = listed.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 5, 6, 7, 8]);
    assert_eq!(listed[1].flags, Flags::SEEN | Flags::ANSWERED);
    assert_eq!(listed[1].keywords, [crate::Keyword::new("k").unwrap()]);
}

/// A bulk commit records no stamp (its wait would add up over a large copy): the next
/// run lists the directory once, and the runs after it do not. Fails when the limit is
/// taken out.
#[test]
fn a_bulk_commit_records_nothing_and_the_next_run_lists_once() {
    let (_dir, root, _mail) = setup();
    let (store, mut mailbox) = run(&root);
    let recorded = records();
    assert_eq!(save(&mut mailbox, 64).len(), 64);
    assert_eq!(records(), recorded);
    drop((mailbox, store));
    let before = scans();
    for _ in 0..2 {
        let (_store, mut mailbox) = run(&root);
        save(&mut mailbox, 1);
    }
    assert_eq!(scans(), before + 1);
}

/// Flag changes made together under one lock ([`SdboxMailbox::set_flags_each`]) leave
/// what one call per message leaves: flags, keywords and every modseq. Fails when they
/// go into one transaction (Dovecot then counts one modseq for all of them).
#[test]
fn flag_changes_made_together_count_the_modseqs_one_call_each_does() {
    let keyword = |name: &str| crate::Keyword::new(name).unwrap();
    let changes = vec![
        (1, Flags::SEEN, vec![keyword("a")]),
        (3, Flags::FLAGGED, vec![]),
        (2, Flags::SEEN | Flags::DRAFT, vec![keyword("a"), keyword("b")]),
    ];
    let mut results = Vec::new();
    for together in [false, true] {
        let (_dir, root, _mail) = setup();
        let (_store, mailbox) = run(&root);
        if together {
            mailbox.set_flags_each(&changes).unwrap();
        } else {
            for (uid, flags, keywords) in &changes {
                mailbox.set_flags(*uid, *flags, keywords).unwrap();
            }
        }
        let listed: Vec<_> = mailbox
            .messages()
            .unwrap()
            .into_iter()
            .map(|m| (m.uid, m.flags, m.keywords, m.modseq))
            .collect();
        results.push((listed, mailbox.status().unwrap().highest_modseq));
    }
    assert_eq!(results[0], results[1]);
}
