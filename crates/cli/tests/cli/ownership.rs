//! Run as root, as operators run migrations, `dsync` gives everything it writes the owner,
//! group and modes Dovecot derives from the mail root, so a Dovecot running as the mail
//! user serves the destination directory itself: every folder selects, every message
//! fetches, its log stays clean, and `find ! -user` finds nothing. The Dovecots here serve
//! the destination in place (`user_with_mail`), never a copy given to the mail user.

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{AccountSnapshot, Dovecot, MAIL_GID, MAIL_UID, RawImap, fixtures};

use super::{PASSWORD, dsync, source_with_fixture, text};

/// Another uid and gid that exist on every Debian system (`daemon`).
const OTHER_ID: u32 = 1;

/// Every entry under `root` (the root included) with its metadata.
fn walk(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut found = vec![(root.to_path_buf(), std::fs::symlink_metadata(root).expect("stat"))];
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let metadata = std::fs::symlink_metadata(&path).expect("stat");
            if metadata.is_dir() {
                pending.push(path.clone());
            }
            found.push((path, metadata));
        }
    }
    found
}

/// What `find ROOT ! -user UID -o ! -group GID` would print.
fn strangers(root: &Path, uid: u32, gid: u32) -> Vec<String> {
    walk(root)
        .into_iter()
        .filter(|(_, m)| (m.uid(), m.gid()) != (uid, gid))
        .map(|(path, m)| format!("{} {}:{}", path.display(), m.uid(), m.gid()))
        .collect()
}

/// Entries under `root` whose mode is not `dir_mode` (directories) or `file_mode` (files;
/// Dovecot's empty `dovecot-uidvalidity.<hex>` markers are always 0444). Only what we
/// wrote: Dovecot's own index files are not ours to judge.
fn odd_modes(root: &Path, dir_mode: u32, file_mode: u32) -> Vec<String> {
    walk(root)
        .into_iter()
        .skip(1)
        .filter(|(path, _)| !path.to_string_lossy().contains("dovecot.index"))
        .filter(|(path, _)| !path.to_string_lossy().contains("dovecot.list.index"))
        .filter(|(path, metadata)| {
            let wanted = if metadata.is_dir() {
                dir_mode
            } else if path.to_string_lossy().contains("dovecot-uidvalidity.") {
                0o444
            } else {
                file_mode
            };
            metadata.mode() & 0o7777 != wanted
        })
        .map(|(path, m)| format!("{} {:o}", path.display(), m.mode() & 0o7777))
        .collect()
}

/// A test directory the mail user may traverse.
fn traversable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn make_dir(path: &Path, uid: u32, gid: u32, mode: u32) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A Dovecot whose user `bob` (the mail user) is served `root` itself.
fn serving_in_place(root: &Path) -> Dovecot {
    Dovecot::builder()
        .user_with_mail("bob", "bobpw", &format!("maildir:{}", root.display()))
        .start()
}

/// Everything bob's client sees, and that Dovecot complained about nothing meanwhile.
fn served_cleanly(dovecot: &Dovecot) -> AccountSnapshot {
    let snapshot = RawImap::login(dovecot.imap_port(), "bob", "bobpw").snapshot();
    let log = dovecot.log();
    for word in ["Error", "Panic", "Fatal", "SERVERBUG", "Internal error"] {
        assert!(!log.contains(word), "Dovecot complained ({word}):\n{log}");
    }
    snapshot
}

fn imap_location(dovecot: &Dovecot) -> String {
    format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port())
}

#[test]
fn backup_as_root_into_the_mail_users_root_is_served_in_place_and_stays_theirs() {
    let (source, expected) = source_with_fixture();
    let dir = traversable_tempdir();
    let root = dir.path().join("Maildir");
    make_dir(&root, MAIL_UID, MAIL_GID, 0o770);
    let target = format!("maildir:{}", root.display());
    let location = imap_location(&source);

    let first = dsync(&["backup", "-l", "10", &location, &target], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(strangers(&root, MAIL_UID, MAIL_GID), Vec::<String>::new());
    assert_eq!(odd_modes(&root, 0o770, 0o660), Vec::<String>::new());
    for ours in ["dsync-rs-state", "dsync-rs.lock"] {
        assert!(root.join(ours).is_file(), "{ours} is missing");
    }
    let dovecot = serving_in_place(&root);
    expected.assert_same(&served_cleanly(&dovecot));

    // A catch-up run into the live root, where Dovecot keeps its index files now: new
    // mail, a new folder, changed flags.
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.create("Later/Deeper");
    imap.append("Later/Deeper", &["\\Seen"], None, &fixtures::message(60, "later", "deeper"));
    imap.append("INBOX", &[], None, &fixtures::message(61, "new", "unseen"));
    imap.append("Archive", &["$Label1"], None, &fixtures::message(62, "new", "keyword"));
    imap.store("INBOX", "1", "+FLAGS (\\Flagged)");
    let expected = imap.snapshot();
    let second = dsync(&["backup", "-l", "10", &location, &target], Some(PASSWORD));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    expected.assert_same(&served_cleanly(&dovecot));
    // Dovecot's own files are the mail user's too, as are ours.
    assert_eq!(strangers(&root, MAIL_UID, MAIL_GID), Vec::<String>::new());
    assert_eq!(odd_modes(&root, 0o770, 0o660), Vec::<String>::new());
}

#[test]
fn modes_come_from_the_root_or_a_missing_roots_parent() {
    let (source, expected) = source_with_fixture();
    let location = imap_location(&source);
    // (what exists, its owner, its mode, where the root is) -> modes of what is created
    let dir = traversable_tempdir();
    let cases = [
        ("private", MAIL_UID, 0o700, "", 0o700, 0o600),
        // A missing root: Dovecot's defaults, the parent's owner for every level created.
        ("parent", MAIL_UID, 0o770, "example.com/alice/Maildir", 0o700, 0o600),
        // A setgid parent (a tree shared by group): its mode and group are passed on.
        ("shared", OTHER_ID, 0o2770, "alice", 0o2770, 0o660),
    ];
    for (name, gid, mode, below, dir_mode, file_mode) in cases {
        let top = dir.path().join(name);
        make_dir(&top, MAIL_UID, gid, mode);
        let root = if below.is_empty() { top.clone() } else { top.join(below) };
        let run =
            dsync(&["backup", &location, &format!("maildir:{}", root.display())], Some(PASSWORD));
        assert_eq!(run.status.code(), Some(0), "{name}: {}", text(&run));
        assert_eq!(strangers(&top, MAIL_UID, gid), Vec::<String>::new(), "{name}");
        assert_eq!(odd_modes(&top, dir_mode, file_mode), Vec::<String>::new(), "{name}");
    }
    // The mail user's Dovecot serves the tree it did not see being made.
    let dovecot = serving_in_place(&dir.path().join("parent/example.com/alice/Maildir"));
    expected.assert_same(&served_cleanly(&dovecot));
}

#[test]
fn an_explicit_owner_from_the_command_line_settings_or_config() {
    let (source, expected) = source_with_fixture();
    let location = imap_location(&source);
    // The destination's parent is root's: without an explicit owner all would be root's.
    let dir = traversable_tempdir();
    let config = dir.path().join("dsync.toml");
    std::fs::write(&config, "[defaults]\nowner = \"nobody:nogroup\"\n").expect("write config");
    let config = config.display().to_string();
    let ways: [(&str, &[&str]); 4] = [
        ("owner", &["--owner", "nobody:nogroup"]),
        ("numbers", &["--owner", "65534:65534"]),
        ("settings", &["-o", "mail_uid=nobody", "-o", "mail_gid=65534"]),
        ("config", &["-c", &config]),
    ];
    for (name, options) in ways {
        let root = dir.path().join(name).join("Maildir");
        let target = format!("maildir:{}", root.display());
        let mut args = vec!["backup"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["-l", "5", &location, &target]);
        let run = dsync(&args, Some(PASSWORD));
        assert_eq!(run.status.code(), Some(0), "{name}: {}", text(&run));
        // Everything from the first directory created down is the mail user's.
        assert_eq!(
            strangers(&dir.path().join(name), MAIL_UID, MAIL_GID),
            Vec::<String>::new(),
            "{name}"
        );
    }
    let dovecot = serving_in_place(&dir.path().join("owner/Maildir"));
    expected.assert_same(&served_cleanly(&dovecot));

    let unknown =
        dsync(&["backup", "--owner", "no-such-user-dsync", &location, "maildir:/x"], None);
    assert_eq!(unknown.status.code(), Some(64), "{}", text(&unknown));
    assert!(text(&unknown).contains("no user \"no-such-user-dsync\""), "{}", text(&unknown));
}

#[test]
fn a_batch_derives_each_users_owner_from_their_own_root() {
    let source = Dovecot::builder().user("alice", PASSWORD).user("bob", PASSWORD).start();
    for user in ["alice", "bob"] {
        let mut imap = RawImap::login(source.imap_port(), user, PASSWORD);
        imap.create("Archive");
        imap.append("INBOX", &[], None, &fixtures::message(1, user, "to be owned"));
        imap.append("Archive", &["\\Seen"], None, &fixtures::message(2, user, "archived"));
    }
    let dir = traversable_tempdir();
    let mail = dir.path().join("mail");
    make_dir(&mail, 0, 0, 0o755);
    // Each user's directory belongs to that user's system account: alice's Maildir is yet
    // to be made (Dovecot's default modes), bob's exists (its modes).
    make_dir(&mail.join("alice"), MAIL_UID, MAIL_GID, 0o770);
    make_dir(&mail.join("bob/Maildir"), OTHER_ID, OTHER_ID, 0o750);
    std::os::unix::fs::chown(mail.join("bob"), Some(OTHER_ID), Some(OTHER_ID)).expect("chown");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice\nbob\n").expect("write users");
    let logs = dir.path().join("logs");
    let source_template = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let destination_template = format!("maildir:{}/%u/Maildir", mail.display());
    let run = dsync(
        &[
            "backup",
            "-F",
            users.to_str().expect("utf-8"),
            "-j",
            "2",
            "--log-dir",
            logs.to_str().expect("utf-8"),
            "-r",
            logs.to_str().expect("utf-8"),
            &source_template,
            &destination_template,
        ],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(strangers(&mail.join("alice"), MAIL_UID, MAIL_GID), Vec::<String>::new());
    assert_eq!(strangers(&mail.join("bob"), OTHER_ID, OTHER_ID), Vec::<String>::new());
    assert_eq!(odd_modes(&mail.join("alice"), 0o700, 0o600), Vec::<String>::new());
    assert_eq!(odd_modes(&mail.join("bob/Maildir"), 0o750, 0o640), Vec::<String>::new());
    // Logs and raw logs tell what is in the mail: ours alone.
    let mut report = String::new();
    for (path, metadata) in walk(&logs) {
        let wanted = if metadata.is_dir() { 0o700 } else { 0o600 };
        if metadata.mode() & 0o777 != wanted {
            let _ = writeln!(report, "{} {:o}", path.display(), metadata.mode() & 0o777);
        }
    }
    assert_eq!(report, "");
    assert!(logs.join("alice.rawlog").is_file() && logs.join("bob.log").is_file());
}

#[test]
fn without_root_an_explicit_owner_is_refused_clearly() {
    let (source, _) = source_with_fixture();
    let dir = traversable_tempdir();
    let writable = dir.path().join("nobodys");
    make_dir(&writable, MAIL_UID, MAIL_GID, 0o700);
    let root = writable.join("Maildir");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_dsync"))
        .args(["backup", "--owner", "0:0", &imap_location(&source)])
        .arg(format!("maildir:{}", root.display()))
        .env("DSYNC_PASSWORD", PASSWORD)
        .output()
        .expect("run setpriv");
    assert_eq!(output.status.code(), Some(77), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only root can give files to another user"), "{stderr}");
    assert!(stderr.contains("uid 0 gid 0 (as configured)"), "{stderr}");
    // The directory that could not be given away was not left behind.
    assert!(!root.exists(), "{}", root.display());
}
