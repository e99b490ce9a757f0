//! A Maildir read as a source never reads outside its tree and never leaves anything behind
//! in silence: symlinks leaving the store, FIFOs and other non-files, names that cannot be
//! read are left out with a reason ([`mailstore::LeftOut`]); what Dovecot lists under a
//! non-canonical name is read under the name Dovecot gives it.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use mailstore::{
    Error, FileKind, Flags, LeftOut, LeftOutReason, Location, MailboxName, Maildir, Options,
};
use testkit::{Dovecot, RawImap};

use crate::support::{name, save};

/// What no message read from the store may contain.
const SECRET: &str = "TOP-SECRET-0f8a2c";

/// A store with INBOX and `Real` (one message each, with uidlists, as Dovecot leaves them)
/// in `<dir>/Maildir`, and `<dir>/secret` and `<dir>/outside/` (a Maildir folder holding the
/// secret) beside it.
fn store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(7), None).unwrap();
    save(&mut inbox, 1, Flags::SEEN, &[], 1_700_000_000, b"Subject: inbox\n\nINBOX\n");
    inbox.commit().unwrap();
    let mut real = maildir.create_mailbox(&name("Real"), Some(8), None).unwrap();
    save(&mut real, 1, Flags::SEEN, &[], 1_700_000_000, b"Subject: real\n\nREAL\n");
    real.commit().unwrap();
    let secret = format!("Subject: {SECRET}\n\n{SECRET}\n");
    fs::write(dir.path().join("secret"), &secret).unwrap();
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.path().join("outside").join(sub)).unwrap();
    }
    fs::write(dir.path().join("outside/cur/1700000000.M1P1.evil:2,S"), &secret).unwrap();
    (dir, root)
}

fn source(root: &Path) -> Maildir {
    Maildir::with_options(Location::maildir(root), Options::default().with_read_only(true))
}

/// Runs `f` on another thread and fails the test if it does not finish in time (a FIFO that
/// is opened blocks forever).
fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver.recv_timeout(Duration::from_secs(30)).expect("reading the Maildir hung")
}

/// Every message of every listed mailbox, read to the end, and everything left out.
fn read_everything(maildir: &Maildir) -> (Vec<(String, String)>, Vec<LeftOut>) {
    let listing = maildir.list_mailboxes().unwrap();
    let mut left_out = listing.left_out;
    let mut bodies = Vec::new();
    for entry in listing.entries.iter().filter(|e| e.selectable) {
        let mailbox = maildir.mailbox(&entry.name).unwrap();
        let messages = mailbox.list_messages().unwrap();
        left_out.extend(messages.left_out);
        for info in messages.entries {
            let mut body = String::new();
            mailbox.open_message(info.uid).unwrap().read_to_string(&mut body).unwrap();
            bodies.push((entry.name.to_string(), body));
        }
    }
    (bodies, left_out)
}

/// The paths of what was left out, sorted.
fn paths(left_out: &[LeftOut]) -> Vec<String> {
    let mut paths: Vec<String> = left_out.iter().map(LeftOut::display_path).collect();
    paths.sort();
    paths
}

#[test]
fn symlinks_leaving_the_store_are_never_read() {
    let (dir, root) = store();
    let outside = dir.path().join("outside");
    // A message file pointing at the secret, absolute and relative.
    symlink(dir.path().join("secret"), root.join("cur/1700000001.M2P2.evil:2,S")).unwrap();
    symlink("../../secret", root.join("new/1700000002.M3P3.evil")).unwrap();
    // A folder that is a symlink to a Maildir folder outside.
    symlink(&outside, root.join(".Linked")).unwrap();
    // A folder whose cur/ is a symlink to one outside.
    fs::create_dir_all(root.join(".Curlink/new")).unwrap();
    symlink(outside.join("cur"), root.join(".Curlink/cur")).unwrap();

    let (bodies, left_out) = within_timeout({
        let root = root.clone();
        move || read_everything(&source(&root))
    });
    assert!(bodies.iter().all(|(_, body)| !body.contains(SECRET)), "{bodies:?}");
    let names: BTreeSet<&str> = bodies.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["INBOX", "Real"]), "everything else is read");
    assert_eq!(
        paths(&left_out),
        [".Curlink/cur", ".Linked", "cur/1700000001.M2P2.evil:2,S", "new/1700000002.M3P3.evil"]
    );
    for entry in &left_out {
        assert!(
            matches!(&entry.reason, LeftOutReason::SymlinkLeavesStore { via: None, .. }),
            "{entry}"
        );
    }
    let linked = left_out.iter().find(|e| e.display_path() == ".Linked").unwrap();
    assert_eq!(linked.mailbox, Some(name("Linked")));
    assert_eq!(
        linked.to_string(),
        format!(".Linked: a symlink to {}, outside the Maildir: not followed", outside.display())
    );

    // The symlinks keep the UIDs Dovecot gives them (2 and 3), so that the next message
    // delivered gets the same UID from both; reading them by UID is refused too.
    let inbox = source(&root).mailbox(&MailboxName::inbox()).unwrap();
    assert_eq!(inbox.status().unwrap().next_uid, 4);
    for uid in [2, 3] {
        let error = inbox.open_message(uid).unwrap_err();
        assert!(matches!(error, Error::UidNotFound { .. }), "{error}");
    }
}

#[test]
fn a_file_or_directory_swapped_for_a_symlink_after_the_listing_is_not_followed() {
    let (dir, root) = store();
    let maildir = source(&root);
    let inbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
    let [message] = inbox.list_messages().unwrap().entries.try_into().unwrap();
    // Between listing and reading, the file becomes a symlink to the secret.
    let file = root.join("cur").join(&message.file_name);
    fs::remove_file(&file).unwrap();
    symlink(dir.path().join("secret"), &file).unwrap();
    let error = inbox.open_message(message.uid).unwrap_err();
    let Error::LeftOut(left_out) = &error else { panic!("{error}") };
    assert_eq!(left_out.mailbox, Some(MailboxName::inbox()));
    assert!(matches!(left_out.reason, LeftOutReason::SymlinkLeavesStore { via: None, .. }));

    // Or the folder's cur/ becomes a symlink to a directory outside holding a file of the
    // same name.
    let real = maildir.mailbox(&name("Real")).unwrap();
    let [message] = real.list_messages().unwrap().entries.try_into().unwrap();
    let outside = dir.path().join("outside/cur");
    fs::copy(dir.path().join("secret"), outside.join(&message.file_name)).unwrap();
    fs::rename(root.join(".Real/cur"), root.join(".Real/old-cur")).unwrap();
    symlink(&outside, root.join(".Real/cur")).unwrap();
    let error = real.open_message(message.uid).unwrap_err();
    let Error::LeftOut(left_out) = &error else { panic!("{error}") };
    assert_eq!(left_out.display_path(), format!(".Real/cur/{}", message.file_name));
    assert_eq!(
        left_out.reason,
        LeftOutReason::SymlinkLeavesStore {
            via: Some(PathBuf::from(".Real/cur")),
            target: outside.clone()
        }
    );
}

#[test]
fn symlinks_inside_the_store_are_followed_and_folder_aliases_left_out() {
    let (dir, root) = store();
    let real = fs::read_dir(root.join(".Real/cur")).unwrap().next().unwrap().unwrap().file_name();
    // A message file that is a symlink to another folder's message (Dovecot serves it).
    let mut target = PathBuf::from("../.Real/cur");
    target.push(&real);
    symlink(&target, root.join("cur/1700000001.M2P2.link:2,S")).unwrap();
    // An alias of a folder (`.Sent -> .Sent Messages` setups): its mail is Real's.
    symlink(".Real", root.join(".Alias")).unwrap();
    // A folder symlink to a directory of the store that is no folder.
    symlink(".Real/cur", root.join(".Odd")).unwrap();
    // The root itself may be a symlink.
    let link = dir.path().join("link-to-Maildir");
    symlink(&root, &link).unwrap();

    let (bodies, left_out) = read_everything(&source(&link));
    let mut bodies: Vec<(&str, &str)> =
        bodies.iter().map(|(n, b)| (n.as_str(), b.as_str())).collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        [
            ("INBOX", "Subject: inbox\n\nINBOX\n"),
            ("INBOX", "Subject: real\n\nREAL\n"),
            ("Real", "Subject: real\n\nREAL\n")
        ]
    );
    let [odd] = left_out.as_slice() else { panic!("{left_out:?}") };
    assert_eq!(odd.display_path(), ".Odd");
    assert_eq!(odd.reason, LeftOutReason::SymlinkedFolder { target: PathBuf::from(".Real/cur") });
}

#[test]
fn fifos_sockets_and_directories_are_left_out_without_blocking() {
    let (_dir, root) = store();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&root.join("cur/1700000001.M2P2.fifo:2,S"), mode).unwrap();
    nix::unistd::mkfifo(&root.join(".Real/new/1700000002.M3P3.fifo"), mode).unwrap();
    let _socket =
        std::os::unix::net::UnixListener::bind(root.join("cur/1700000003.M4P4.sock")).unwrap();
    fs::create_dir(root.join("cur/1700000004.M5P5.dir:2,S")).unwrap();
    // A symlink to a FIFO inside the store is no better.
    symlink("1700000001.M2P2.fifo:2,S", root.join("cur/1700000005.M6P6.link:2,S")).unwrap();

    let (bodies, left_out) = within_timeout(move || read_everything(&source(&root)));
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let mut kinds: Vec<(String, LeftOutReason)> =
        left_out.iter().map(|e| (e.display_path(), e.reason.clone())).collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let wrong = |kind| LeftOutReason::WrongKind { kind, expected: FileKind::File };
    assert_eq!(
        kinds,
        [
            (".Real/new/1700000002.M3P3.fifo".to_string(), wrong(FileKind::Fifo)),
            ("cur/1700000001.M2P2.fifo:2,S".to_string(), wrong(FileKind::Fifo)),
            ("cur/1700000003.M4P4.sock".to_string(), wrong(FileKind::Socket)),
            ("cur/1700000004.M5P5.dir:2,S".to_string(), wrong(FileKind::Directory)),
            ("cur/1700000005.M6P6.link:2,S".to_string(), wrong(FileKind::Fifo)),
        ]
    );
    let fifo = left_out.iter().find(|e| e.display_path().starts_with("cur/1700000001")).unwrap();
    assert_eq!(
        fifo.to_string(),
        "cur/1700000001.M2P2.fifo:2,S: a FIFO (named pipe), not a regular file"
    );
}

#[test]
fn message_files_that_cannot_be_told_apart_are_reported() {
    let (_dir, root) = store();
    fs::write(root.join(std::ffi::OsStr::from_bytes(b"cur/1700000001.M2P2.caf\xe9:2,S")), "x")
        .unwrap();
    fs::write(root.join("cur/:2,S"), "Subject: no base\n\n").unwrap();
    // The same base name twice: two different files, and two links of one file.
    fs::write(root.join("new/1700000003.M4P4.dup"), "Subject: dup new\n\n").unwrap();
    fs::write(root.join("cur/1700000003.M4P4.dup:2,S"), "Subject: dup cur\n\n").unwrap();
    fs::write(root.join(".Real/new/1700000005.M6P6.linked"), "Subject: linked\n\n").unwrap();
    fs::hard_link(
        root.join(".Real/new/1700000005.M6P6.linked"),
        root.join(".Real/cur/1700000005.M6P6.linked:2,S"),
    )
    .unwrap();

    let (bodies, left_out) = read_everything(&source(&root));
    let bodies: BTreeSet<&str> = bodies.iter().map(|(_, b)| b.as_str()).collect();
    assert!(bodies.contains("Subject: dup cur\n\n") && bodies.contains("Subject: linked\n\n"));
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    let reasons: Vec<String> = left_out.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        [
            "cur/1700000001.M2P2.caf\\xe9:2,S: message file name is not UTF-8",
            "cur/:2,S: message file name has an empty base name (Dovecot renames it at its next sync)",
            "new/1700000003.M4P4.dup: same base name as 1700000003.M4P4.dup:2,S, a different file \
             (Dovecot gives it a new name and UID at its next sync)",
        ]
    );
}

#[test]
fn a_control_file_that_is_a_symlink_out_of_the_store_is_an_error_not_data() {
    let (dir, root) = store();
    fs::remove_file(root.join(".Real/dovecot-keywords")).ok();
    symlink(dir.path().join("secret"), root.join(".Real/dovecot-keywords")).unwrap();
    fs::remove_file(root.join("subscriptions")).ok();
    symlink(dir.path().join("secret"), root.join("subscriptions")).unwrap();
    let maildir = source(&root);
    let error = maildir.mailbox(&name("Real")).unwrap().list_messages().unwrap_err();
    assert!(matches!(error, Error::LeftOut(_)), "{error}");
    assert!(!error.to_string().contains(SECRET));
    let error = maildir.subscriptions().unwrap_err();
    assert!(matches!(error, Error::LeftOut(_)), "{error}");
}

/// Folder directories Dovecot 2.3 names without decoding them, each with one message.
const ODD_FOLDERS: [&[u8]; 9] = [
    b".Entw&APw-rfe",
    ".café".as_bytes(),
    b".&AGE",
    b".&AGE-&AGI-",
    b".x&AGE-y",
    b".caf\xe9",
    b".a..b",
    b".a\tb",
    b".Sub.&Jjo",
];

#[test]
fn noncanonical_folder_names_are_those_dovecot_lists() {
    let (_dir, root) = store();
    for (n, folder) in ODD_FOLDERS.iter().enumerate() {
        let folder = root.join(std::ffi::OsStr::from_bytes(folder));
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(folder.join(sub)).unwrap();
        }
        let body = format!("Subject: odd {n}\n\nODD {n}\n");
        fs::write(folder.join(format!("cur/17000000{n:02}.M{n}P{n}.host:2,S")), body).unwrap();
    }
    let maildir = source(&root);
    let (bodies, left_out) = read_everything(&maildir);
    let ours: BTreeSet<String> = bodies.iter().map(|(name, _)| name.clone()).collect();
    let expected = [
        "INBOX",
        "Real",
        "Entwürfe",
        "café",
        "&AGE",
        "&AGE-&AGI-",
        "x&AGE-y",
        "caf\u{FFFD}",
        "Sub/&Jjo",
    ];
    assert_eq!(ours, expected.iter().map(ToString::to_string).collect());
    // Read in place, under the name Dovecot shows: nothing was renamed.
    assert!(root.join(std::ffi::OsStr::from_bytes(b".caf\xe9")).is_dir());
    assert_eq!(
        left_out.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            ".a\\x09b: folder name \"a\\x09b\" cannot be used: component contains a control character",
            ".a..b: folder name \"a//b\" cannot be used: empty component",
        ]
    );

    // Dovecot's own LIST of the same tree: every name we read is one it lists; what it lists
    // beyond them are the two we leave out (it cannot SELECT them either) and `\Noselect`
    // parents.
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", &root, "maildir").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "reader", "readerpw");
    // The first listing renames the directory whose name is not UTF-8; the second shows it.
    imap.list();
    let theirs: BTreeSet<String> = imap
        .list()
        .into_iter()
        .map(|(name, _)| mutf7::decode(&name).unwrap_or_else(|_| panic!("LIST gave {name:?}")))
        .collect();
    let beyond: BTreeSet<&str> =
        theirs.iter().map(String::as_str).filter(|n| !ours.contains(*n)).collect();
    assert_eq!(beyond, BTreeSet::from(["Sub", "a", "a/", "a//b", "a\tb"]), "{theirs:?}");
    for unselectable in ["a//b", "a\tb"] {
        let response = imap.command(&format!("SELECT \"{}\"", mutf7::encode(unselectable)));
        assert!(!response.is_ok(), "Dovecot selected {unselectable:?}");
    }
}

#[test]
fn two_spellings_of_one_name_read_the_canonical_one() {
    let (_dir, root) = store();
    for (folder, body) in [(".café", "raw"), (".caf&AOk-", "canonical")] {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(folder).join(sub)).unwrap();
        }
        fs::write(root.join(folder).join("cur/1700000000.M9P9.h:2,S"), body).unwrap();
    }
    let (bodies, left_out) = read_everything(&source(&root));
    assert!(bodies.contains(&("café".to_string(), "canonical".to_string())), "{bodies:?}");
    assert_eq!(
        left_out.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [".café: its folder name is also that of .caf&AOk-, which is read under that name"]
    );
}

#[test]
fn layout_fs_reads_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let location = Location::maildir(&root).with_layout(mailstore::Layout::Fs);
    let maildir = Maildir::open(location.clone());
    let mut archive = maildir.create_mailbox(&name("Archive/2023"), Some(5), None).unwrap();
    save(&mut archive, 1, Flags::SEEN, &[], 1_700_000_000, b"Subject: archived\n\n");
    archive.commit().unwrap();
    fs::create_dir_all(dir.path().join("outside/cur")).unwrap();
    fs::write(dir.path().join("outside/cur/1700000000.M1P1.h:2,S"), SECRET).unwrap();
    symlink(dir.path().join("outside"), root.join("Archive/Linked")).unwrap();
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join("Archive/café").join(sub)).unwrap();
    }
    fs::write(root.join("Archive/café/cur/1700000000.M1P1.h:2,S"), "Subject: cafe\n\n").unwrap();
    let source = Maildir::with_options(location, Options::default().with_read_only(true));
    let (bodies, left_out) = read_everything(&source);
    let mut names: Vec<&str> = bodies.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Archive/2023", "Archive/café"]);
    assert!(bodies.iter().all(|(_, body)| !body.contains(SECRET)));
    assert_eq!(paths(&left_out), ["Archive/Linked"]);
}

/// Message files are opened relative to `cur/` once a first message was read from it (the
/// directory is kept, not walked to from the root for every message): a file swapped for a
/// symlink after that is still refused, a FIFO still never read (nor waited on), and a `cur/` swapped
/// for a symlink to a directory outside is never read through (the kept directory is the
/// one checked when it was opened).
#[test]
fn a_swap_after_the_first_read_is_refused_as_before() {
    let (dir, root) = store();
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.mailbox(&name("INBOX")).unwrap();
    for uid in 2..=4 {
        save(&mut inbox, uid, Flags::SEEN, &[], 1_700_000_000, b"Subject: more\n\nMORE\n");
    }
    inbox.commit().unwrap();
    let inbox = source(&root).mailbox(&name("INBOX")).unwrap();
    let messages = inbox.list_messages().unwrap().entries;
    assert_eq!(messages.len(), 4);
    let mut first = String::new();
    inbox.open_message(messages[0].uid).unwrap().read_to_string(&mut first).unwrap();
    assert!(first.contains("INBOX"), "{first}");

    let file = |index: usize| root.join("cur").join(&messages[index].file_name);
    fs::remove_file(file(1)).unwrap();
    symlink(dir.path().join("secret"), file(1)).unwrap();
    let error = inbox.open_message(messages[1].uid).unwrap_err();
    assert!(matches!(&error, Error::LeftOut(_)), "{error}");

    fs::remove_file(file(2)).unwrap();
    nix::unistd::mkfifo(&file(2), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let uid = messages[2].uid;
    let (inbox, opened) = within_timeout(move || {
        let opened = inbox.open_message(uid).map(|_| ());
        (inbox, opened)
    });
    let error = opened.unwrap_err();
    assert!(matches!(&error, Error::LeftOut(_)), "{error}");

    // cur/ itself swapped for a symlink to a folder outside holding the same names.
    let outside = dir.path().join("outside/cur");
    for message in &messages {
        fs::write(outside.join(&message.file_name), format!("Subject: {SECRET}\n\n")).unwrap();
    }
    fs::rename(root.join("cur"), root.join("old-cur")).unwrap();
    symlink(&outside, root.join("cur")).unwrap();
    let mut text = String::new();
    if let Ok(mut reader) = inbox.open_message(messages[3].uid) {
        reader.read_to_string(&mut text).unwrap();
    }
    assert!(!text.contains(SECRET), "read through the swapped cur/: {text}");
}
