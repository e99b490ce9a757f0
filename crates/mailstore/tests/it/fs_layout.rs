//! `LAYOUT=fs` trees as Dovecot lists them after we delete, rename and refuse folders:
//! no empty parent directories left to show up as `\Noselect` folders, and no folder whose
//! directory takes the place of a file the Maildir needs (`subscriptions`, a uidlist, our
//! state), with the directories older versions created there moved aside.

use std::fs;
use std::path::Path;

use mailstore::{Error, Flags, Layout, Location, MailboxName, Maildir};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::{name, our_snapshot, save, selectable_only};

fn fs_maildir(root: &Path) -> Maildir {
    Maildir::open(Location::maildir(root).with_layout(Layout::Fs))
}

/// A folder with one message.
fn folder(maildir: &Maildir, folder: &MailboxName) {
    let mut mailbox = maildir.create_mailbox(folder, None, None).unwrap();
    let subject = folder.to_string();
    save(&mut mailbox, 1, Flags::SEEN, &[], 1_700_000_000, &fixtures::message(1, &subject, "x"));
    mailbox.commit().unwrap();
}

/// Names and attributes as Dovecot serving `root` (`LAYOUT=fs`) lists them, and its log.
fn dovecot_list(root: &Path) -> (Vec<(String, Vec<String>)>, Dovecot) {
    let served = root.with_extension("served");
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(root)
            .arg(&served)
            .status()
            .unwrap()
            .success()
    );
    testkit::chown_to_mail_user(&served);
    let dovecot = Dovecot::builder()
        .user_with_mail("fs", "pw", &format!("maildir:{}:LAYOUT=fs", served.display()))
        .start();
    let mut list = RawImap::login(dovecot.imap_port(), "fs", "pw").list();
    list.sort();
    (list, dovecot)
}

fn names(list: &[(String, Vec<String>)]) -> Vec<&str> {
    list.iter().map(|(name, _)| name.as_str()).collect()
}

/// Issue 16 item 10: a 400-level folder deleted used to leave 399 empty directories, all
/// listed by Dovecot. Like Dovecot's `mailbox_list_delete_until_root`, the parents a
/// delete or rename empties go; a parent that is a mailbox or has another child stays.
#[test]
fn deleted_and_renamed_nested_folders_leave_no_empty_parents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = fs_maildir(&root);
    folder(&maildir, &MailboxName::inbox());
    let deep = MailboxName::new(vec!["d"; 400]).unwrap();
    for created in [&deep, &name("p/q/r"), &name("p/keep"), &name("m"), &name("m/x/y")] {
        folder(&maildir, created);
    }
    folder(&maildir, &name("r/s/t"));

    maildir.delete_mailbox(&deep).unwrap();
    maildir.delete_mailbox(&name("p/q/r")).unwrap();
    maildir.delete_mailbox(&name("m/x/y")).unwrap();
    maildir.rename_mailbox(&name("r/s/t"), &name("u")).unwrap();
    assert!(!root.join("d").exists() && !root.join("p/q").exists() && !root.join("r").exists());

    let (list, dovecot) = dovecot_list(&root);
    assert_eq!(names(&list), ["INBOX", "m", "p", "p/keep", "u"], "{list:?}");
    let p = list.iter().find(|(name, _)| name == "p").unwrap();
    assert!(p.1.iter().any(|a| a == "\\Noselect"), "{p:?}");
    let mut imap = RawImap::login(dovecot.imap_port(), "fs", "pw");
    selectable_only(imap.snapshot()).assert_same(&our_snapshot(&maildir));
}

/// Issue 16 item 5: Dovecot 2.3.19.1 creates a `LAYOUT=fs` folder named `subscriptions`
/// and then fails every SUBSCRIBE and LSUB ("Is a directory"); `dovecot.index` breaks
/// INBOX. We refuse such names for new folders (the engine stores them as `_name`, as
/// Dovecot's dsync does for names its destination refuses), and move the directories
/// older versions created aside, so that the store works again and nothing is lost.
#[test]
fn reserved_names_are_refused_and_folders_in_their_place_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = fs_maildir(&root);
    folder(&maildir, &MailboxName::inbox());
    for reserved in [
        "subscriptions",
        "dsync-rs-state",
        "dsync-rs.lock",
        "dovecot-uidvalidity",
        "dovecot.list.index.log",
        "dovecot-uidlist",
        "maildirfolder",
        "tmp",
        "Box/dovecot.index",
        "Box/dovecot-keywords",
        "Box/dsync-rs-journal",
        "Box/new",
    ] {
        let refused = maildir.create_mailbox(&name(reserved), None, None);
        assert!(matches!(refused, Err(Error::InvalidName { .. })), "{reserved}: {refused:?}");
        let location = maildir.location();
        let depth = reserved.matches('/').count();
        let last = reserved.rsplit('/').next().unwrap();
        assert!(location.reserves(depth, last), "{reserved}");
    }
    // Files of the root only are fine deeper down, and escaped names anywhere.
    for allowed in ["Box/subscriptions", "_subscriptions", "dovecot", "Box/_dovecot.index"] {
        folder(&maildir, &name(allowed));
    }
    assert!(matches!(
        maildir.rename_mailbox(&name("dovecot"), &name("subscriptions")),
        Err(Error::InvalidName { .. })
    ));

    // What an older version left: folders whose directories stand in the root's and a
    // parent's place of files; their mail must survive.
    for (made, wedged) in [
        ("w1", "subscriptions"),
        ("w2", "dsync-rs-state"),
        ("w3", "Parent/dovecot-uidlist"),
        ("w4", "Parent/dovecot-uidlist/dovecot.index"),
    ] {
        folder(&maildir, &name(made));
        fs::create_dir_all(root.join(wedged).parent().unwrap()).unwrap();
        fs::rename(root.join(made), root.join(wedged)).unwrap();
    }
    assert_eq!(maildir.subscriptions().unwrap(), [], "a directory is no subscriptions file");

    let mut moved: Vec<String> = maildir
        .repair_reserved_names()
        .unwrap()
        .iter()
        .map(|(from, to)| {
            let relative = |p: &Path| p.strip_prefix(&root).unwrap().display().to_string();
            format!("{} -> {}", relative(from), relative(to))
        })
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        [
            // `_subscriptions` was taken.
            "Parent/_dovecot-uidlist/dovecot.index -> Parent/_dovecot-uidlist/_dovecot.index",
            "Parent/dovecot-uidlist -> Parent/_dovecot-uidlist",
            "dsync-rs-state -> _dsync-rs-state",
            "subscriptions -> __subscriptions",
        ]
    );
    assert!(maildir.repair_reserved_names().unwrap().is_empty(), "nothing left to move");
    // The store works again: INBOX's uidlist, the subscriptions file, a mailbox at Parent.
    folder(&maildir, &name("Parent"));
    maildir.set_subscriptions(&[name("INBOX"), name("__subscriptions")]).unwrap();
    maildir.subscribe(&name("Parent/_dovecot-uidlist"), true).unwrap();
    let read_only = Maildir::with_options(
        maildir.location().clone(),
        mailstore::Options::default().with_read_only(true),
    );
    assert!(read_only.repair_reserved_names().unwrap().is_empty());

    let (list, dovecot) = dovecot_list(&root);
    assert_eq!(
        names(&list),
        [
            "Box",
            "Box/_dovecot.index",
            "Box/subscriptions",
            "INBOX",
            "Parent",
            "Parent/_dovecot-uidlist",
            "Parent/_dovecot-uidlist/_dovecot.index",
            "__subscriptions",
            "_dsync-rs-state",
            "_subscriptions",
            "dovecot",
        ]
    );
    let mut imap = RawImap::login(dovecot.imap_port(), "fs", "pw");
    let snapshot = imap.snapshot();
    let ours = our_snapshot(&maildir);
    assert_eq!(snapshot.mailboxes["__subscriptions"].messages.len(), 1);
    assert_eq!(snapshot.mailboxes["Parent/_dovecot-uidlist/_dovecot.index"].messages.len(), 1);
    selectable_only(snapshot).assert_same(&ours);
    imap.subscribe("Box");
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}
