//! `LAYOUT=fs` destinations (issue 16 item 5): a source folder named like a file the
//! Maildir keeps (`subscriptions`, our `dsync-rs-state`, `dovecot-uidlist`, `cur`) is
//! stored as `_name`, as Dovecot's dsync stores a name its destination refuses, and a
//! destination where an older version put such folders works again. Judged by Dovecot.

use std::fs;
use std::path::Path;

use mailstore::{Flags, Location, MailboxName, Maildir, SaveOptions};
use testkit::{Dovecot, RawImap, fixtures};

use super::{dsync, text};

/// A Maildir++ source (where these names are ordinary `.`-folders), one message each.
fn source(root: &Path) {
    let maildir = Maildir::open(Location::maildir(root));
    let names = ["INBOX", "Normal", "subscriptions", "dsync-rs-state", "dovecot-uidlist", "a/cur"];
    for (index, text) in (1u32..).zip(names) {
        let name: MailboxName = text.parse().expect("name");
        let mut mailbox = maildir.create_mailbox(&name, Some(1_000 + index), None).expect("create");
        let mut body = &fixtures::message(index, text, "x")[..];
        mailbox
            .save_from(&mut body, SaveOptions::default().with_uid(index).with_flags(Flags::SEEN))
            .expect("save");
        mailbox.commit().expect("commit");
    }
    let subscribed: Vec<MailboxName> =
        ["INBOX", "Normal", "subscriptions"].iter().map(|n| n.parse().expect("name")).collect();
    maildir.set_subscriptions(&subscribed).expect("subscribe");
}

/// Folders, subscriptions and Dovecot's log for a copy of `root` served with `LAYOUT=fs`.
fn served_fs(root: &Path) -> (Vec<String>, Vec<String>, String) {
    let copy = root.with_extension("served");
    let _ = fs::remove_dir_all(&copy);
    let copied = std::process::Command::new("cp").arg("-a").arg(root).arg(&copy).status();
    assert!(copied.expect("cp").success());
    testkit::chown_to_mail_user(&copy);
    let dovecot = Dovecot::builder()
        .user_with_mail("fs", "pw", &format!("maildir:{}:LAYOUT=fs", copy.display()))
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "fs", "pw");
    let mut list: Vec<String> = imap.list().into_iter().map(|(name, _)| name).collect();
    list.sort();
    let mut subscriptions = imap.subscriptions();
    subscriptions.sort();
    for name in &list {
        if name != "a" {
            assert_eq!(imap.status(name).0, 1, "{name}: one message");
        }
    }
    (list, subscriptions, dovecot.log())
}

#[test]
fn reserved_folder_names_are_escaped_and_a_destination_wedged_by_them_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source_root = dir.path().join("source");
    source(&source_root);
    let source_location = format!("maildir:{}", source_root.display());
    let destination = dir.path().join("fs");
    let target = format!("maildir:{}:LAYOUT=fs", destination.display());

    let first = dsync(&["backup", &source_location, &target], None);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(text(&first).contains("mailbox subscriptions is stored as _subscriptions"));
    let expected_list: Vec<&str> = vec![
        "INBOX",
        "Normal",
        "_dovecot-uidlist",
        "_dsync-rs-state",
        "_subscriptions",
        "a",
        "a/_cur",
    ];
    let (list, subscriptions, log) = served_fs(&destination);
    assert_eq!(list, expected_list);
    assert_eq!(subscriptions, ["INBOX", "Normal", "_subscriptions"]);
    assert!(!log.contains("Error"), "{log}");
    let again = dsync(&["backup", &source_location, &target], None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains(" 0 messages saved"), "{}", text(&again));

    // What an older version left: the folders under the very names, in place of the
    // subscriptions file, the state and (with -l) the lock. Every run then failed with 73.
    for name in ["subscriptions", "dsync-rs-state"] {
        fs::remove_file(destination.join(name)).expect("remove file");
        fs::rename(destination.join(format!("_{name}")), destination.join(name)).expect("rename");
    }
    // (The lock file every run now takes is replaced by the folder an older version made.)
    fs::remove_file(destination.join("dsync-rs.lock")).expect("remove the lock file");
    fs::create_dir_all(destination.join("dsync-rs.lock/cur")).expect("lock folder");
    let recovered = dsync(&["backup", "-l", "5", &source_location, &target], None);
    assert_eq!(recovered.status.code(), Some(0), "{}", text(&recovered));
    for moved in ["_subscriptions", "_dsync-rs-state", "_dsync-rs.lock"] {
        assert!(text(&recovered).contains(&format!("moved to {moved}")), "{}", text(&recovered));
    }
    // The old copies are the escaped folders now: nothing copied again; the stray
    // directory without mail goes like any folder the source lacks.
    assert!(text(&recovered).contains(" 0 messages saved"), "{}", text(&recovered));
    let (list, subscriptions, log) = served_fs(&destination);
    assert_eq!(list, expected_list);
    assert_eq!(subscriptions, ["INBOX", "Normal", "_subscriptions"]);
    assert!(!log.contains("Error"), "{log}");
    let last = dsync(&["backup", "-l", "5", &source_location, &target], None);
    assert_eq!(last.status.code(), Some(0), "{}", text(&last));
}
