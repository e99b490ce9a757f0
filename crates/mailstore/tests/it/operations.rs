//! Flag changes, expunges, folder renames and deletes, UIDVALIDITY changes, and mail that
//! arrived behind our back (MTA-style files, a Maildir without uidlist): Dovecot must agree
//! with us on all of it, including the UIDs it would have given the new files itself.

use std::fs;

use mailstore::{Flags, Keyword, Location, MailboxChangeKind, Maildir};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::{name, our_snapshot, save};

#[test]
fn changes_and_foreign_mail_agree_with_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));

    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(500), None).unwrap();
    for uid in 1..=5 {
        save(
            &mut inbox,
            uid,
            Flags::SEEN,
            &["$Label1"],
            1_700_000_000 + i64::from(uid),
            &fixtures::message(uid, "m", "b"),
        );
    }
    inbox.commit().unwrap();
    for folder in ["Old", "Old/Sub", "Trash", "Keep"] {
        let mut mailbox = maildir.create_mailbox(&name(folder), None, None).unwrap();
        save(&mut mailbox, 1, Flags::EMPTY, &[], 1_700_000_000, &fixtures::message(9, folder, "x"));
        mailbox.commit().unwrap();
    }
    inbox
        .set_flags_many(&[
            (2, Flags::SEEN | Flags::FLAGGED, vec![Keyword::new("Junk").unwrap()]),
            (3, Flags::EMPTY, vec![]),
        ])
        .unwrap();
    inbox.set_flags(1, Flags::ANSWERED, &[Keyword::new("$Label1").unwrap()]).unwrap();
    let streamed = fixtures::message(6, "streamed", "from a reader");
    inbox.save_from(&mut &streamed[..], mailstore::SaveOptions::default().with_uid(5_000)).unwrap();
    inbox.commit().unwrap();
    inbox.expunge(&[5_000]).unwrap();
    inbox.expunge(&[4, 99]).unwrap();
    maildir.rename_mailbox(&name("Old"), &name("New")).unwrap();
    maildir.delete_mailbox(&name("Trash")).unwrap();
    maildir.mailbox(&name("Keep")).unwrap().set_uid_validity(777).unwrap();
    maildir.subscribe(&name("New/Sub"), true).unwrap();
    maildir.subscribe(&name("Keep"), true).unwrap();
    maildir.subscribe(&name("Keep"), false).unwrap();
    assert!(maildir.mailbox(&name("Old")).is_err() && maildir.mailbox(&name("Trash")).is_err());

    // Mail delivered behind our back: MTA files in new/ (no sizes, CRLF), one in cur/ with
    // flags and an unknown letter, and a folder without any dovecot-uidlist.
    fs::write(root.join("new/1700000100.M20P7.mta"), b"Subject: b\r\n\r\nsecond\r\n").unwrap();
    fs::write(root.join("new/1700000100.M3P7.mta"), b"Subject: a\n\nfirst\n").unwrap();
    fs::write(root.join("cur/1700000050.M9P7.mta:2,PS"), b"Subject: c\n\nzeroth\n").unwrap();
    let imported = root.join(".Imported");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(imported.join(sub)).unwrap();
    }
    fs::write(imported.join("cur/1600000000.M1P1.x:2,FS"), b"Subject: i\n\nimported\n").unwrap();
    fs::write(imported.join("new/1500000000.M1P1.x"), b"Subject: j\n\nolder\n").unwrap();

    // Dovecot numbers the foreign files on its own copy; we number them on ours.
    let untouched = dir.path().join("untouched");
    fs::create_dir(&untouched).unwrap();
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&root)
            .arg(&untouched)
            .status()
            .unwrap()
            .success()
    );
    let ours = our_snapshot(&maildir);
    let inbox_uids: Vec<u32> = ours.mailboxes["INBOX"].messages.iter().map(|m| m.uid).collect();
    assert_eq!(inbox_uids, [1, 2, 3, 5, 5001, 5002, 5003]);
    assert_eq!(ours.mailboxes["INBOX"].messages[4].body, b"Subject: c\r\n\r\nzeroth\r\n");
    assert_eq!(ours.mailboxes["Keep"].uid_validity, 777);
    assert!(ours.mailboxes.contains_key("New/Sub") && !ours.mailboxes.contains_key("Old"));

    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("bob", "bobpw", &root, "maildir")
        .user_serving_copy("carol", "carolpw", &untouched.join("Maildir"), "maildir")
        .start();
    let ours_via_dovecot = RawImap::login(dovecot.imap_port(), "bob", "bobpw").snapshot();
    ours.assert_same(&ours_via_dovecot);
    let dovecot_numbered = RawImap::login(dovecot.imap_port(), "carol", "carolpw").snapshot();
    ours.assert_same(&dovecot_numbered);
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}

#[test]
fn dovecot_changes_are_seen_by_us() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let maildir = Maildir::open(Location::maildir(dovecot.home("alice").join("Maildir")));
    crate::support::selectable_only(imap.snapshot()).assert_same(&our_snapshot(&maildir));
    // Dovecot changes things while we keep the same handle.
    imap.store("INBOX", "1:2", "+FLAGS (\\Deleted NewKeyword)");
    imap.expunge_uids("Archive", "1");
    imap.append(
        "Archive",
        &["$Label1"],
        Some("01-Feb-2023 00:00:00 +0000"),
        &fixtures::message(99, "new", "n"),
    );
    imap.command_ok("RENAME \"Hidden\" \"Shown\"");
    imap.command_ok("DELETE \"Empty\"");
    imap.unsubscribe("Sent");
    crate::support::selectable_only(imap.snapshot()).assert_same(&our_snapshot(&maildir));
    // We change UIDVALIDITY and next UID of a mailbox Dovecot has indexed.
    let archive = maildir.mailbox(&name("Archive")).unwrap();
    archive.set_uid_validity(4242).unwrap();
    archive.set_next_uid(100).unwrap();
    testkit::chown_to_mail_user(&dovecot.home("alice").join("Maildir"));
    let mut fresh = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let (_, uid_next, uid_validity) = fresh.status("Archive");
    assert_eq!((uid_validity, uid_next), (4242, 100));
    crate::support::selectable_only(fresh.snapshot()).assert_same(&our_snapshot(&maildir));
    let log = dovecot.log();
    eprintln!("Dovecot's log:\n{log}");
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}

/// Folders created, filled and deleted behind a running Dovecot's back: what does a new
/// IMAP session see? (Dovecot keeps `dovecot.list.index` as a cache of the folder tree.)
#[test]
fn folders_changed_behind_dovecots_back() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    imap.logout();
    let root = dovecot.home("alice").join("Maildir");
    assert!(root.join("dovecot.list.index.log").exists());
    let maildir = Maildir::open(Location::maildir(&root));
    let mut behind = maildir.create_mailbox(&name("Behind/Deep"), Some(31), None).unwrap();
    save(&mut behind, 4, Flags::SEEN, &[], 1_700_000_000, &fixtures::message(5, "b", "c"));
    behind.commit().unwrap();
    let hidden_guid = maildir.mailbox(&name("Hidden")).unwrap().status().unwrap().guid.unwrap();
    maildir.delete_mailbox(&name("Hidden")).unwrap();
    maildir.rename_mailbox(&name("Project Notes"), &name("Notes")).unwrap();
    // The deletion and the rename are in Dovecot's change log, as Dovecot itself records
    // them (the rename under a hash of the new name).
    let changes = maildir.dovecot_mailbox_changes().unwrap();
    let [.., deleted, renamed] = &changes[..] else { panic!("{changes:?}") };
    assert_eq!(
        (deleted.kind, deleted.guid),
        (MailboxChangeKind::DeleteMailbox, *hidden_guid.as_bytes())
    );
    assert!(renamed.kind == MailboxChangeKind::Rename && renamed.names("Notes"), "{renamed:?}");
    testkit::chown_to_mail_user(&root);
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let names: Vec<String> = imap.list().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"Behind/Deep".to_string()), "{names:?}");
    assert!(
        !names.contains(&"Hidden".to_string()) && names.contains(&"Notes".to_string()),
        "{names:?}"
    );
    crate::support::selectable_only(imap.snapshot()).assert_same(&our_snapshot(&maildir));
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}

/// Rebuilding INBOX (which cannot be deleted): `reset` empties it and restarts UIDs under a
/// new UIDVALIDITY; Dovecot then serves exactly the new identity and the new messages.
#[test]
fn reset_gives_inbox_a_new_identity_dovecot_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(500), None).unwrap();
    for uid in 5..=7 {
        save(&mut inbox, uid, Flags::SEEN, &[], 1_700_000_000, &fixtures::message(uid, "old", "x"));
    }
    inbox.commit().unwrap();

    assert!(inbox.reset(500, None).is_err(), "the same UIDVALIDITY would reuse UIDs");
    inbox.reset(900, None).unwrap();
    let status = inbox.status().unwrap();
    assert_eq!((status.uid_validity, status.next_uid, status.messages), (900, 1, 0));
    save(&mut inbox, 2, Flags::EMPTY, &[], 1_700_000_500, &fixtures::message(2, "new", "y"));
    inbox.commit().unwrap();

    let dovecot = Dovecot::builder().user_serving_copy("alice", "pw", &root, "maildir").start();
    let snapshot = RawImap::login(dovecot.imap_port(), "alice", "pw").snapshot();
    let served = &snapshot.mailboxes["INBOX"];
    assert_eq!((served.uid_validity, served.uid_next), (900, 3));
    assert_eq!(served.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [2]);
}

/// A directory in `cur/` is no mail: emptying the mailbox leaves a non-empty one alone
/// and removes an empty one (as Dovecot's sync does) instead of failing on unlinking it.
#[test]
fn reset_steps_around_directories_in_cur() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(500), None).unwrap();
    save(&mut inbox, 1, Flags::SEEN, &[], 1_700_000_000, &fixtures::message(1, "old", "x"));
    inbox.commit().unwrap();
    fs::create_dir(root.join("cur/empty")).unwrap();
    fs::create_dir_all(root.join("cur/full/inside")).unwrap();

    inbox.reset(900, None).unwrap();
    assert_eq!(inbox.status().unwrap().messages, 0);
    assert!(!root.join("cur/empty").exists());
    assert!(root.join("cur/full/inside").exists());
}

/// A backup destination that gave out UIDs under the source's UIDVALIDITY is rebuilt under
/// a new one of its own that records the source's (`reset_with_origin`): Dovecot serves
/// the new identity, and keeps the record through its own uidlist rewrites (it keeps
/// every header field it does not know), so the next run still knows what it stands for.
#[test]
fn reset_with_origin_takes_a_new_uid_validity_that_dovecot_keeps_the_record_of() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut folder = maildir.create_mailbox(&name("Folder"), Some(500), None).unwrap();
    for uid in 1..=4 {
        save(
            &mut folder,
            uid,
            Flags::SEEN,
            &[],
            1_700_000_000,
            &fixtures::message(uid, "old", "x"),
        );
    }
    folder.commit().unwrap();
    assert_eq!(folder.status().unwrap().origin_uid_validity, None);

    let new = folder.reset_with_origin(None, 500).unwrap();
    assert!(new > 500, "a value above every one this store had: {new}");
    let status = folder.status().unwrap();
    assert_eq!((status.uid_validity, status.next_uid, status.messages), (new, 1, 0));
    assert_eq!(status.origin_uid_validity, Some(500));
    for uid in 1..=4 {
        let message = fixtures::message(uid, "new", "y");
        save(&mut folder, uid, Flags::EMPTY, &[], 1_700_000_500, &message);
    }
    folder.commit().unwrap();
    // A mailbox created in one step with such a record; a plain one has none.
    let created = maildir.create_mailbox_with_origin(&name("Other"), None, 7).unwrap();
    let other = created.status().unwrap();
    assert!(other.uid_validity > new && other.origin_uid_validity == Some(7), "{other:?}");
    assert_eq!(
        maildir
            .create_mailbox(&name("Plain"), None, None)
            .unwrap()
            .status()
            .unwrap()
            .origin_uid_validity,
        None
    );

    let dovecot = Dovecot::builder().user_serving_copy("alice", "pw", &root, "maildir").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "pw");
    let snapshot = imap.snapshot();
    let served = &snapshot.mailboxes["Folder"];
    assert_eq!((served.uid_validity, served.uid_next), (new, 5));
    // Dovecot rewrites the uidlist after expunging most of it (and appends to it).
    imap.expunge_uids("Folder", "1:3");
    imap.append("Folder", &[], None, &fixtures::message(9, "client", "z"));
    imap.logout();
    dovecot.doveadm_ok(&["force-resync", "-u", "alice", "Folder"]);
    let served_root = dovecot.dir().join("serve").join("alice");
    let uidlist = fs::read_to_string(served_root.join(".Folder/dovecot-uidlist")).unwrap();
    assert!(uidlist.lines().count() == 3, "Dovecot rewrote the uidlist:\n{uidlist}");
    let status = Maildir::open(Location::maildir(&served_root))
        .mailbox(&name("Folder"))
        .unwrap()
        .status()
        .unwrap();
    assert_eq!(
        (status.uid_validity, status.next_uid, status.origin_uid_validity),
        (new, 6, Some(500)),
        "{uidlist}"
    );
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}

/// Two-way syncs move a message to a new UID on its own side; `renumber` does that with one
/// uidlist rewrite (the file stays), and Dovecot serves the messages under the new UIDs.
#[test]
fn renumber_moves_messages_to_new_uids_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(600), None).unwrap();
    for uid in 1..=3 {
        save(
            &mut inbox,
            uid,
            Flags::SEEN,
            &["$Label1"],
            1_700_000_000,
            &fixtures::message(uid, "m", "b"),
        );
    }
    inbox.commit().unwrap();
    let before = inbox.messages().unwrap();

    assert!(matches!(inbox.renumber(&[(1, 3)]), Err(mailstore::Error::UidTooLow { .. })));
    assert_eq!(inbox.renumber(&[(1, 10), (7, 11), (3, 12)]).unwrap(), [7], "UID 7 does not exist");
    let after = inbox.messages().unwrap();
    assert_eq!(after.iter().map(|m| m.uid).collect::<Vec<_>>(), [2, 10, 12]);
    assert_eq!(after[1].file_name, before[0].file_name, "the file itself is untouched");
    assert_eq!(inbox.status().unwrap().next_uid, 13);

    let dovecot = Dovecot::builder().user_serving_copy("alice", "pw", &root, "maildir").start();
    let snapshot = RawImap::login(dovecot.imap_port(), "alice", "pw").snapshot();
    let served = &snapshot.mailboxes["INBOX"];
    assert_eq!(served.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [2, 10, 12]);
    assert_eq!(served.messages[1].body, fixtures::message(1, "m", "b"));
    assert_eq!(served.messages[2].flags, ["$Label1", "\\Seen"]);
    assert_eq!((served.uid_validity, served.uid_next), (600, 13));
}

/// A new mailbox GUID for a mailbox Dovecot has already listed: Dovecot's list index caches
/// GUIDs and would go on answering the old one (doveadm, and so dsync, read it from there),
/// so `set_guid` drops that cache. Messages, UIDs and UIDVALIDITY stay.
#[test]
fn set_guid_is_the_guid_dovecot_then_reports() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let before = imap.snapshot();
    imap.logout();
    let guids = || {
        let out = dovecot.doveadm_ok(&["mailbox", "status", "-u", "alice", "guid", "*"]);
        out.lines()
            .filter_map(|line| line.rsplit_once(" guid="))
            .map(|(name, guid)| (name.to_owned(), guid.to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let listed = guids();
    let root = dovecot.home("alice").join("Maildir");
    assert!(root.join("dovecot.list.index.log").exists());

    let maildir = Maildir::open(Location::maildir(&root));
    let archive = maildir.mailbox(&name("Archive")).unwrap();
    // The GUID it already has: nothing is rewritten, the cache stays.
    let same = mailstore::Guid::from_bytes(*archive.guid().unwrap().unwrap().as_bytes());
    archive.set_guid(same).unwrap();
    assert!(root.join("dovecot.list.index.log").exists());
    let new_guids = [("INBOX", [0xaa; 16]), ("Archive", [0xbb; 16]), ("Archive/2023", [0xcc; 16])];
    for (folder, bytes) in new_guids {
        maildir
            .mailbox(&name(folder))
            .unwrap()
            .set_guid(mailstore::Guid::from_bytes(bytes))
            .unwrap();
    }
    testkit::chown_to_mail_user(&root);

    let mut expected = listed.clone();
    for (folder, bytes) in new_guids {
        expected.insert(folder.to_owned(), mailstore::Guid::from_bytes(bytes).to_string());
    }
    assert_eq!(guids(), expected);
    RawImap::login(dovecot.imap_port(), "alice", "alicepw").snapshot().assert_same(&before);
    let log = dovecot.log();
    assert!(!log.contains("Error") && !log.contains("Warning"), "Dovecot complained:\n{log}");
}

/// A handle that listed a folder, asked for a UID after the folder became another
/// incarnation (its files and uidlist replaced in place under a new UIDVALIDITY, as when it
/// is deleted and re-created, or renumbered), gets "no such message", never the new
/// incarnation's message of that UID; a file merely renamed (a flag change) is still found.
#[test]
fn a_message_asked_for_after_the_folder_was_replaced_is_not_another_message() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(7), None).unwrap();
    let mut other = maildir.create_mailbox(&name("Other"), Some(8), None).unwrap();
    for uid in 1..=3 {
        let old = format!("Subject: old {uid}\n\nold {uid}\n");
        save(&mut inbox, uid, Flags::SEEN, &[], 1_700_000_000, old.as_bytes());
        let new = format!("Subject: new {uid}\n\nnew {uid}\n");
        save(&mut other, uid, Flags::SEEN, &[], 1_700_000_000, new.as_bytes());
    }
    inbox.commit().unwrap();
    other.commit().unwrap();
    let source = Maildir::with_options(
        Location::maildir(&root),
        mailstore::Options::default().with_read_only(true),
    );
    let listed = source.mailbox(&name("INBOX")).unwrap();
    let read = |uid: u32| {
        let mut text = String::new();
        listed.open_message(uid).map(|mut m| m.read_to_string(&mut text).map(|_| text))
    };
    assert!(read(1).unwrap().unwrap().contains("old 1"));

    // A flag change renames UID 2's file: still found, still the same message.
    let cur = root.join("cur");
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let second = names(&cur)[1].clone();
    fs::rename(cur.join(&second), cur.join(second.replace(":2,S", ":2,FS"))).unwrap();
    assert!(read(2).unwrap().unwrap().contains("old 2"));

    // INBOX becomes another incarnation in place: Other's files and uidlist.
    for name in names(&cur) {
        fs::remove_file(cur.join(name)).unwrap();
    }
    for name in names(&root.join(".Other/cur")) {
        fs::copy(root.join(".Other/cur").join(&name), cur.join(&name)).unwrap();
    }
    fs::copy(root.join(".Other/dovecot-uidlist"), root.join("dovecot-uidlist")).unwrap();
    let error = read(3).expect_err("UID 3 of the listed folder is gone");
    assert!(matches!(error, mailstore::Error::UidNotFound { .. }), "{error}");
    // And so is every other: the handle still answers for the folder it listed.
    let error = read(1).expect_err("UID 1 of the listed folder is gone");
    assert!(matches!(error, mailstore::Error::UidNotFound { .. }), "{error}");
}
