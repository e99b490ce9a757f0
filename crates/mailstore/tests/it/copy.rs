//! `Mailbox::save_copy`: copies within one store are hard links (one body on disk) when the
//! received date allows it, byte copies otherwise, and Dovecot reads either as its own.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mailstore::{
    CopyOutcome, Flags, Keyword, Location, Mailbox, Maildir, MessageInfo, SaveOptions,
};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::{name, our_snapshot, save};

const RECEIVED: i64 = 1_700_000_000;

/// A store with INBOX holding UID 5 (and UID 6, LF-only without final newline).
fn store(dir: &Path) -> (Maildir, Mailbox) {
    let maildir = Maildir::open(Location::maildir(dir.join("Maildir")));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(100), None).unwrap();
    save(&mut inbox, 5, Flags::SEEN, &["$Label1"], RECEIVED, &fixtures::message(1, "one", "x"));
    save(&mut inbox, 6, Flags::EMPTY, &[], RECEIVED + 60, b"Subject: lf\n\nno final newline");
    assert_eq!(inbox.commit().unwrap(), [5, 6]);
    (maildir, inbox)
}

fn message(mailbox: &Mailbox, uid: u32) -> MessageInfo {
    mailbox.messages().unwrap().into_iter().find(|m| m.uid == uid).unwrap()
}

fn file(mailbox: &Mailbox, info: &MessageInfo) -> PathBuf {
    let cur = mailbox.path().join("cur").join(&info.file_name);
    if cur.exists() { cur } else { mailbox.path().join("new").join(&info.file_name) }
}

fn bytes(mailbox: &Mailbox, uid: u32) -> Vec<u8> {
    let mut body = Vec::new();
    mailbox.open_message(uid).unwrap().read_to_end(&mut body).unwrap();
    body
}

fn tmp_is_empty(mailbox: &Mailbox) -> bool {
    fs::read_dir(mailbox.path().join("tmp")).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn a_copy_keeping_the_received_date_is_a_hard_link() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, inbox) = store(dir.path());
    let source = message(&inbox, 5);
    let mut archive = maildir.create_mailbox(&name("Archive"), Some(200), None).unwrap();
    let options = SaveOptions::default()
        .with_uid(42)
        .with_flags(Flags::FLAGGED | Flags::ANSWERED)
        .with_keywords(vec![Keyword::new("Work").unwrap()])
        .with_received(source.received)
        .with_guid(source.guid.clone())
        .with_pop3(Some("uidl-42".into()), Some(3));
    let outcome = archive.save_copy(&inbox, 5, Some(&source.guid), options).unwrap();
    assert_eq!(outcome, CopyOutcome::Linked);
    assert_eq!(archive.staged(), 1);
    assert!(archive.messages().unwrap().is_empty(), "invisible before commit");
    assert_eq!(archive.commit().unwrap(), [42]);
    assert!(tmp_is_empty(&archive));

    let copy = message(&archive, 42);
    assert_eq!(copy.guid, source.guid);
    assert_eq!(
        (copy.flags, copy.keywords.clone()),
        (Flags::FLAGGED | Flags::ANSWERED, vec![Keyword::new("Work").unwrap()])
    );
    assert_eq!(
        (copy.received, copy.size, copy.virtual_size),
        (source.received, source.size, source.virtual_size)
    );
    assert_eq!((copy.pop3_uidl.as_deref(), copy.pop3_order), (Some("uidl-42"), Some(3)));
    // The GUID is the file name, as in Dovecot's copy: no uidlist G field needed.
    assert_eq!(copy.file_name.split(':').next(), Some(source.guid.as_str()));
    assert_eq!(bytes(&archive, 42), bytes(&inbox, 5));
    let (original, linked) = (
        fs::metadata(file(&inbox, &source)).unwrap(),
        fs::metadata(file(&archive, &copy)).unwrap(),
    );
    assert_eq!((original.nlink(), linked.nlink()), (2, 2));
    assert_eq!((original.dev(), original.ino()), (linked.dev(), linked.ino()));
    assert_eq!(archive.status().unwrap().next_uid, 43);

    // No received date given: the link keeps the source's; no GUID given: the copy's
    // name is a new one, so the copy has a GUID of its own.
    let outcome = archive.save_copy(&inbox, 6, None, SaveOptions::default()).unwrap();
    assert_eq!(outcome, CopyOutcome::Linked);
    assert_eq!(archive.commit().unwrap(), [43]);
    let (source, copy) = (message(&inbox, 6), message(&archive, 43));
    assert_eq!(copy.received, RECEIVED + 60);
    assert_ne!(copy.guid, source.guid);
    assert_eq!((copy.size, copy.virtual_size), (source.size, source.virtual_size));
    assert_eq!(bytes(&archive, 43), b"Subject: lf\n\nno final newline");
    assert_eq!(fs::metadata(file(&archive, &copy)).unwrap().nlink(), 2);
}

#[test]
fn another_received_date_makes_a_byte_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, inbox) = store(dir.path());
    let source = message(&inbox, 5);
    let mut archive = maildir.create_mailbox(&name("Archive"), None, None).unwrap();
    let options = SaveOptions::default()
        .with_uid(7)
        .with_received(RECEIVED - 3600)
        .with_guid(source.guid.clone());
    assert_eq!(archive.save_copy(&inbox, 5, None, options).unwrap(), CopyOutcome::Copied);
    assert_eq!(archive.commit().unwrap(), [7]);
    let copy = message(&archive, 7);
    assert_eq!(copy.received, RECEIVED - 3600);
    assert_eq!(message(&inbox, 5).received, RECEIVED, "the original's date is untouched");
    assert_eq!(copy.guid, source.guid);
    assert_eq!(bytes(&archive, 7), bytes(&inbox, 5));
    let (original, copied) = (
        fs::metadata(file(&inbox, &source)).unwrap(),
        fs::metadata(file(&archive, &copy)).unwrap(),
    );
    assert_eq!((original.nlink(), copied.nlink()), (1, 1));
    assert_eq!(copied.mtime(), RECEIVED - 3600);
}

#[test]
fn a_missing_message_or_another_guid_stages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, inbox) = store(dir.path());
    let mut archive = maildir.create_mailbox(&name("Archive"), None, None).unwrap();
    let wrong = archive
        .save_copy(&inbox, 5, Some("not-its-guid"), SaveOptions::default().with_uid(1))
        .unwrap();
    assert_eq!(wrong, CopyOutcome::NotFound);
    let missing = archive.save_copy(&inbox, 99, None, SaveOptions::default()).unwrap();
    assert_eq!(missing, CopyOutcome::NotFound);
    inbox.expunge(&[6]).unwrap();
    let expunged = archive.save_copy(&inbox, 6, None, SaveOptions::default()).unwrap();
    assert_eq!(expunged, CopyOutcome::NotFound, "expunged after the view was cached");
    assert_eq!(archive.staged(), 0);
    assert_eq!(archive.commit().unwrap(), Vec::<u32>::new());
    assert!(tmp_is_empty(&archive));
    let source = message(&inbox, 5);
    assert_eq!(fs::metadata(file(&inbox, &source)).unwrap().nlink(), 1);
    // Invalid options are refused before anything is looked at.
    assert!(archive.save_copy(&inbox, 5, None, SaveOptions::default().with_uid(0)).is_err());
}

#[test]
fn a_rolled_back_or_dropped_copy_leaves_only_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, inbox) = store(dir.path());
    let original = file(&inbox, &message(&inbox, 5));
    let mut archive = maildir.create_mailbox(&name("Archive"), None, None).unwrap();
    assert_eq!(
        archive.save_copy(&inbox, 5, None, SaveOptions::default()).unwrap(),
        CopyOutcome::Linked
    );
    assert_eq!(fs::metadata(&original).unwrap().nlink(), 2);
    archive.rollback();
    assert_eq!(fs::metadata(&original).unwrap().nlink(), 1);
    assert!(tmp_is_empty(&archive));
    assert_eq!(
        archive.save_copy(&inbox, 5, None, SaveOptions::default()).unwrap(),
        CopyOutcome::Linked
    );
    drop(archive);
    assert_eq!(fs::metadata(&original).unwrap().nlink(), 1);
    let archive = maildir.mailbox(&name("Archive")).unwrap();
    assert!(tmp_is_empty(&archive) && archive.messages().unwrap().is_empty());
}

#[test]
fn a_copy_within_the_same_mailbox_gets_a_new_name_and_keeps_the_guid() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, mut inbox) = store(dir.path());
    let source = message(&inbox, 5);
    // The same mailbox through a second handle.
    let same = maildir.mailbox(&name("INBOX")).unwrap();
    let options = SaveOptions::default().with_guid(source.guid.clone()).with_flags(Flags::DRAFT);
    let outcome = inbox.save_copy(&same, 5, Some(&source.guid), options).unwrap();
    assert_eq!(outcome, CopyOutcome::Linked);
    assert_eq!(inbox.commit().unwrap(), [7]);
    let copy = message(&inbox, 7);
    assert_eq!(copy.guid, source.guid, "kept in the uidlist G field");
    assert_ne!(copy.file_name.split(':').next(), source.file_name.split(':').next());
    assert_eq!(copy.flags, Flags::DRAFT);
    assert_eq!(message(&inbox, 5).flags, Flags::SEEN, "the original keeps its flags");
    assert_eq!(bytes(&inbox, 7), bytes(&inbox, 5));
    let (a, b) =
        (fs::metadata(file(&inbox, &source)).unwrap(), fs::metadata(file(&inbox, &copy)).unwrap());
    assert_eq!((a.ino(), a.nlink(), b.nlink()), (b.ino(), 2, 2));
    let uidlist = fs::read_to_string(inbox.path().join("dovecot-uidlist")).unwrap();
    assert!(uidlist.contains(&format!("7 G{} :", source.guid)), "{uidlist}");
    assert_eq!(inbox.status().unwrap().messages, 3);
}

#[test]
fn mail_delivered_without_sizes_is_linked_with_sizes_in_the_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, inbox) = store(dir.path());
    // An MTA's file: CRLF, no S=/W=, flags changed meanwhile (renamed since our view).
    fs::write(inbox.path().join("new/1700000100.M3P7.mta"), b"Subject: m\r\n\r\nbody\r\n").unwrap();
    let source = message(&inbox, 7);
    inbox.set_flags(7, Flags::SEEN, &[]).unwrap();
    let mut archive = maildir.create_mailbox(&name("Archive"), None, None).unwrap();
    let options = SaveOptions::default().with_guid(source.guid.clone());
    let outcome = archive.save_copy(&inbox, 7, Some(&source.guid), options).unwrap();
    assert_eq!(outcome, CopyOutcome::Linked);
    assert_eq!(archive.commit().unwrap(), [1]);
    let copy = message(&archive, 1);
    assert_eq!(copy.guid, "1700000100.M3P7.mta");
    assert_eq!((copy.size, copy.virtual_size), (20, 20));
    assert!(copy.file_name.contains(",S=20,W=20"), "{}", copy.file_name);
    assert_eq!(bytes(&archive, 1), b"Subject: m\r\n\r\nbody\r\n");
}

/// `EXDEV`: a source on another file system (here a store on tmpfs) is copied byte for
/// byte, keeping its received date. Skipped where `/dev/shm` is missing or not separate.
#[test]
fn a_copy_across_file_systems_falls_back_to_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    let device = |path: &Path| fs::metadata(path).unwrap().dev();
    if device(dir.path()) == device(other.path()) {
        eprintln!("skipped: /dev/shm is on the same file system as the temp dir");
        return;
    }
    let (_, inbox) = store(other.path());
    let source = message(&inbox, 6);
    let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
    let mut archive = maildir.create_mailbox(&name("Archive"), None, None).unwrap();
    let options = SaveOptions::default().with_guid(source.guid.clone());
    assert_eq!(archive.save_copy(&inbox, 6, None, options).unwrap(), CopyOutcome::Copied);
    assert_eq!(archive.commit().unwrap(), [1]);
    let copy = message(&archive, 1);
    assert_eq!((copy.guid.as_str(), copy.received), (source.guid.as_str(), source.received));
    assert_eq!(bytes(&archive, 1), bytes(&inbox, 6));
    assert_eq!(fs::metadata(file(&inbox, &source)).unwrap().nlink(), 1);
}

#[test]
fn a_read_only_store_refuses_copies() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, inbox) = store(dir.path());
    maildir.create_mailbox(&name("Archive"), None, None).unwrap();
    let read_only = Maildir::with_options(
        Location::maildir(dir.path().join("Maildir")),
        mailstore::Options::default().with_read_only(true),
    );
    let mut archive = read_only.mailbox(&name("Archive")).unwrap();
    let result = archive.save_copy(&inbox, 5, None, SaveOptions::default());
    assert!(matches!(result, Err(mailstore::Error::ReadOnly { .. })), "{result:?}");
}

/// Dovecot serves both copies as its own (same bytes, dates, flags, UIDs), with one GUID.
#[test]
fn dovecot_sees_both_copies_with_one_guid() {
    let dir = tempfile::tempdir().unwrap();
    let (maildir, mut inbox) = store(dir.path());
    let root = dir.path().join("Maildir");
    let source = message(&inbox, 5);
    let mut archive = maildir.create_mailbox(&name("Archive"), Some(300), None).unwrap();
    let options = SaveOptions::default()
        .with_uid(10)
        .with_flags(Flags::FLAGGED)
        .with_keywords(vec![Keyword::new("$Label2").unwrap()])
        .with_guid(source.guid.clone());
    assert_eq!(archive.save_copy(&inbox, 5, None, options).unwrap(), CopyOutcome::Linked);
    let options =
        SaveOptions::default().with_uid(11).with_received(RECEIVED + 1).with_guid(&source.guid);
    assert_eq!(archive.save_copy(&inbox, 5, None, options).unwrap(), CopyOutcome::Copied);
    assert_eq!(archive.commit().unwrap(), [10, 11]);
    let same = maildir.mailbox(&name("INBOX")).unwrap();
    let options = SaveOptions::default().with_guid(source.guid.clone());
    assert_eq!(inbox.save_copy(&same, 5, None, options).unwrap(), CopyOutcome::Linked);
    assert_eq!(inbox.commit().unwrap(), [7]);

    let ours = our_snapshot(&maildir);
    let dovecot = Dovecot::builder().user_serving_copy("bob", "bobpw", &root, "maildir").start();
    ours.assert_same(&RawImap::login(dovecot.imap_port(), "bob", "bobpw").snapshot());
    let fetched = dovecot.doveadm_ok(&["fetch", "-u", "bob", "mailbox uid guid", "all"]);
    let mut seen = Vec::new();
    let mut mailbox = String::new();
    let mut uid = String::new();
    for line in fetched.lines() {
        if let Some(value) = line.strip_prefix("mailbox: ") {
            mailbox = value.to_string();
        } else if let Some(value) = line.strip_prefix("uid: ") {
            uid = value.to_string();
        } else if let Some(value) = line.strip_prefix("guid: ") {
            seen.push((mailbox.clone(), uid.clone(), value.to_string()));
        }
    }
    for (mailbox, uid) in [("INBOX", "5"), ("INBOX", "7"), ("Archive", "10"), ("Archive", "11")] {
        let found = (mailbox.to_string(), uid.to_string(), source.guid.clone());
        assert!(seen.contains(&found), "{mailbox} {uid} not with GUID {}:\n{fetched}", source.guid);
    }
    let log = dovecot.log();
    assert!(!log.contains("Error") && !log.contains("Panic"), "Dovecot complained:\n{log}");
}
