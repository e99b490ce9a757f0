//! Owners and modes of what we create, as Dovecot gives them (`mailbox_list_get_permissions`),
//! with this test process as root, as operators run migrations: everything belongs to the
//! root's owner and group, and a Dovecot running as that user serves the directory itself
//! (not a copy that the harness would give to the mail user).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mailstore::{Flags, Keyword, Location, Maildir, Options, SaveOptions};
use testkit::{Dovecot, MAIL_GID, MAIL_UID, RawImap, fixtures};

use crate::support::{name, our_snapshot, save, selectable_only};

/// A group other than the mail user's (Debian's `users`), for the setgid case.
const OTHER_GID: u32 = 100;

/// One entry under a root.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    dir: bool,
}

/// Every entry under `root` (not the root itself), like `find root -mindepth 1`.
fn walk(root: &Path) -> Vec<Entry> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let metadata = fs::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                pending.push(path.clone());
            }
            found.push(Entry {
                path,
                uid: metadata.uid(),
                gid: metadata.gid(),
                mode: metadata.mode() & 0o7777,
                dir: metadata.is_dir(),
            });
        }
    }
    found
}

/// A directory for the test that the mail user may traverse.
fn traversable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn make_dir(path: &Path, uid: u32, gid: u32, mode: u32) {
    fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Goes through every way the store creates a directory or file: the root's `cur/ new/
/// tmp/`, folders (staged and renamed in, nested), messages with and without flags,
/// keywords, subscriptions, an allocated and raised `dovecot-uidvalidity`, the mailbox
/// log of a deletion, a rename, a hard-linked copy, a rewritten uidlist.
fn exercise(maildir: &Maildir) {
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(1_000_001), None).unwrap();
    save(&mut inbox, 1, Flags::SEEN, &["$Label1"], 1_720_339_200, &fixtures::message(1, "a", "b"));
    save(&mut inbox, 2, Flags::EMPTY, &[], 1_720_339_300, &fixtures::message(2, "c", "d"));
    inbox.commit().unwrap();
    let keyword = Keyword::new("$Forwarded").unwrap();
    inbox.set_flags(2, Flags::ANSWERED, &[keyword]).unwrap();
    let mut archive = maildir.create_mailbox(&name("Archive/2023"), Some(2_000_000), None).unwrap();
    save(&mut archive, 5, Flags::EMPTY, &[], 1_677_812_583, &fixtures::sized_message(5, 3000));
    let copied = archive.save_copy(&inbox, 1, None, SaveOptions::default().with_uid(6)).unwrap();
    assert_eq!(copied, mailstore::CopyOutcome::Linked);
    archive.commit().unwrap();
    archive.set_uid_validity(2_000_002).unwrap();
    let mut allocated = maildir.create_mailbox(&name("Allocated"), None, None).unwrap();
    save(&mut allocated, 1, Flags::FLAGGED, &[], 1_700_000_000, b"Subject: x\n\ny\n");
    allocated.commit().unwrap();
    maildir.create_mailbox(&name("Gone"), Some(3_000_000), None).unwrap();
    maildir.delete_mailbox(&name("Gone")).unwrap();
    maildir.create_mailbox(&name("Old"), Some(3_000_001), None).unwrap();
    maildir.rename_mailbox(&name("Old"), &name("New")).unwrap();
    maildir.set_subscriptions(&[name("INBOX"), name("Archive/2023")]).unwrap();
}

/// Asserts that every entry under `root` is `uid:gid` with `dir_mode`/`file_mode`
/// (Dovecot's `dovecot-uidvalidity.<hex>` markers are 0444 whatever the store's modes).
fn assert_owned(root: &Path, uid: u32, gid: u32, dir_mode: u32, file_mode: u32) {
    let entries = walk(root);
    assert!(entries.len() > 20, "{entries:#?}");
    for entry in entries {
        let marker = entry.path.to_string_lossy().contains("dovecot-uidvalidity.");
        let mode = match (entry.dir, marker) {
            (true, _) => dir_mode,
            (false, true) => 0o444,
            (false, false) => file_mode,
        };
        assert_eq!(
            (entry.uid, entry.gid, entry.mode),
            (uid, gid, mode),
            "{}",
            entry.path.display()
        );
    }
}

#[test]
fn a_root_of_the_mail_user_stays_theirs_and_dovecot_serves_it_in_place() {
    let dir = traversable_tempdir();
    let root = dir.path().join("Maildir");
    make_dir(&root, MAIL_UID, MAIL_GID, 0o770);
    let maildir = Maildir::open(Location::maildir(&root));
    let permissions = maildir.permissions().unwrap();
    assert_eq!((permissions.dir_mode(), permissions.file_mode()), (0o770, 0o660));
    assert_eq!((permissions.owner(), permissions.group()), (Some(MAIL_UID), Some(MAIL_GID)));
    exercise(&maildir);
    assert_owned(&root, MAIL_UID, MAIL_GID, 0o770, 0o660);

    // The mail user's Dovecot serves this very directory: every folder selects, every
    // message fetches, and its log has no complaint.
    let dovecot = Dovecot::builder()
        .user_with_mail("bob", "bobpw", &format!("maildir:{}", root.display()))
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "bob", "bobpw");
    selectable_only(imap.snapshot()).assert_same(&our_snapshot(&maildir));
    // And writes to it: a flag change and a new folder.
    imap.store("INBOX", "1", "+FLAGS (\\Flagged)");
    imap.create("ByDovecot");
    imap.logout();
    let log = dovecot.log();
    for word in ["Error", "Panic", "Fatal", "SERVERBUG"] {
        assert!(!log.contains(word), "Dovecot complained:\n{log}");
    }
}

#[test]
fn modes_and_group_follow_the_root() {
    // (root mode, root group) -> directories, files.
    for (mode, gid, dir_mode, file_mode) in [
        (0o700, MAIL_GID, 0o700, 0o600),
        (0o750, MAIL_GID, 0o750, 0o640),
        // A setgid root: the kernel passes its group and the bit on.
        (0o2770, OTHER_GID, 0o2770, 0o660),
    ] {
        let dir = traversable_tempdir();
        let root = dir.path().join("Maildir");
        make_dir(&root, MAIL_UID, gid, mode);
        let maildir = Maildir::open(Location::maildir(&root));
        exercise(&maildir);
        assert_owned(&root, MAIL_UID, gid, dir_mode, file_mode);
    }
    // LAYOUT=fs: nested folders are directories in directories.
    let dir = traversable_tempdir();
    let root = dir.path().join("mail");
    make_dir(&root, MAIL_UID, MAIL_GID, 0o750);
    let maildir = Maildir::open(format!("maildir:{}:LAYOUT=fs", root.display()).parse().unwrap());
    exercise(&maildir);
    assert_owned(&root, MAIL_UID, MAIL_GID, 0o750, 0o640);
}

#[test]
fn a_missing_root_takes_its_owner_from_the_parent() {
    // A plain parent: Dovecot's default modes, the parent's owner for the new directories
    // up to and under the root.
    let dir = traversable_tempdir();
    let parent = dir.path().join("example.com");
    make_dir(&parent, MAIL_UID, MAIL_GID, 0o770);
    let root = parent.join("alice/Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    exercise(&maildir);
    assert_owned(&parent, MAIL_UID, MAIL_GID, 0o700, 0o600);
    // A setgid parent (a tree shared by group): its mode and group.
    let dir = traversable_tempdir();
    let parent = dir.path().join("shared");
    make_dir(&parent, MAIL_UID, OTHER_GID, 0o2750);
    let root = parent.join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    exercise(&maildir);
    assert_owned(&parent, MAIL_UID, OTHER_GID, 0o2750, 0o640);
}

#[test]
fn an_explicit_owner_wins_over_the_root() {
    // The root is root's (as a tempdir is); mail_uid/mail_gid say whose the mail is.
    let dir = traversable_tempdir();
    let root = dir.path().join("Maildir");
    make_dir(&root, 0, 0, 0o770);
    let options = Options::default().with_owner(Some(MAIL_UID), Some(MAIL_GID));
    let maildir = Maildir::with_options(Location::maildir(&root), options);
    exercise(&maildir);
    assert_owned(&root, MAIL_UID, MAIL_GID, 0o770, 0o660);
    // Only the group.
    let root = dir.path().join("Group");
    make_dir(&root, MAIL_UID, MAIL_GID, 0o700);
    let options = Options::default().with_owner(None, Some(OTHER_GID));
    let maildir = Maildir::with_options(Location::maildir(&root), options);
    exercise(&maildir);
    assert_owned(&root, MAIL_UID, OTHER_GID, 0o700, 0o600);
}
