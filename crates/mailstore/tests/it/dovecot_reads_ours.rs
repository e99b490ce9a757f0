//! We write a Maildir; a second Dovecot serves a copy and must show exactly what we wrote.

use mailstore::{FileBeliefs, Flags, Keyword, Location, Maildir, SaveOptions};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::{name, our_snapshot, save};

/// A private Dovecot serving a copy of the Maildir at `root` to user `bob`, logged in.
fn serve_a_copy(root: &std::path::Path) -> (Dovecot, RawImap) {
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("bob", "bobpw", root, "maildir")
        .start();
    let imap = RawImap::login(dovecot.imap_port(), "bob", "bobpw");
    (dovecot, imap)
}

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

#[test]
fn dovecot_serves_what_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));

    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(1_000_001), None).unwrap();
    save(&mut inbox, 3, Flags::SEEN, &[], 1_720_339_200, &fixtures::message(1, "Hello", "First."));
    save(
        &mut inbox,
        7,
        Flags::ANSWERED | Flags::FLAGGED,
        &["$Label1"],
        1_720_400_000,
        &fixtures::message(2, "Re", "x"),
    );
    assert_eq!(inbox.commit().unwrap(), [3, 7]);
    // LF-only input and a body without final newline, in a second batch.
    save(&mut inbox, 8, Flags::EMPTY, &[], 1_720_500_000, b"Subject: lf only\n\nline 1\nline 2\n");
    save(
        &mut inbox,
        10,
        Flags::DRAFT | Flags::DELETED,
        &["Junk", "NonJunk"],
        0,
        b"Subject: x\r\n\r\nno final newline",
    );
    assert_eq!(inbox.commit().unwrap(), [8, 10]);
    inbox.set_next_uid(15).unwrap();

    let mut archive = maildir.create_mailbox(&name("Archive"), Some(2_000_000), None).unwrap();
    save(
        &mut archive,
        1,
        Flags::SEEN,
        &["$Forwarded"],
        1_672_531_200,
        &fixtures::message(20, "Old", "archived"),
    );
    archive.commit().unwrap();
    let mut year = maildir.create_mailbox(&name("Archive/2023"), Some(2_000_001), None).unwrap();
    for uid in [1, 2, 5] {
        save(&mut year, uid, Flags::SEEN, &[], 1_677_812_583, &fixtures::sized_message(uid, 5000));
    }
    year.commit().unwrap();
    let mut drafts = maildir.create_mailbox(&name("Entwürfe"), Some(3_000_000), None).unwrap();
    save(
        &mut drafts,
        4,
        Flags::DRAFT,
        &["$Label1"],
        1_714_885_505,
        &fixtures::message(40, "Entwurf", "Grüße aus Köln"),
    );
    drafts.commit().unwrap();
    let mut rd = maildir.create_mailbox(&name("R&D/Ünïcode"), Some(3_000_001), None).unwrap();
    save(&mut rd, 9, Flags::EMPTY, &[], 1_717_653_966, &fixtures::message(50, "R&D", "research"));
    rd.commit().unwrap();
    maildir.create_mailbox(&name("Empty"), Some(4_000_000), None).unwrap().set_next_uid(7).unwrap();
    let mut hidden = maildir.create_mailbox(&name("Hidden"), None, None).unwrap();
    save(
        &mut hidden,
        1,
        Flags::EMPTY,
        &[],
        1_717_923_949,
        &fixtures::message(80, "Hidden", "unsubscribed"),
    );
    hidden.commit().unwrap();
    maildir
        .set_subscriptions(&[
            name("INBOX"),
            name("Archive"),
            name("Archive/2023"),
            name("Entwürfe"),
            name("Gone"),
        ])
        .unwrap();

    let ours = our_snapshot(&maildir);
    let inbox_view = &ours.mailboxes["INBOX"];
    assert_eq!((inbox_view.uid_validity, inbox_view.uid_next), (1_000_001, 15));
    assert_eq!(inbox_view.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [3, 7, 8, 10]);
    assert_eq!(inbox_view.messages[2].body, crlf("Subject: lf only\n\nline 1\nline 2\n"));
    assert!(inbox_view.messages[3].body.ends_with(b"no final newline"));
    assert_eq!(ours.mailboxes["Empty"].uid_next, 7);

    let (dovecot, mut imap) = serve_a_copy(&root);
    let theirs = imap.snapshot();
    // Dovecot lists "R&D" as a \Noselect parent of "R&D/Ünïcode"; we have no such folder.
    let mut expected = ours.clone();
    expected.mailboxes.insert("R&-D".into(), testkit::MailboxSnapshot::default());
    expected.subscriptions.insert("Gone".into());
    expected.assert_same(&theirs);

    // doveadm agrees on mailbox and message GUIDs.
    let guid = maildir.mailbox(&name("Archive/2023")).unwrap().status().unwrap().guid.unwrap();
    let status =
        dovecot.doveadm_ok(&["mailbox", "status", "-u", "bob", "guid uidvalidity", "Archive/2023"]);
    assert!(status.contains(&format!("guid={guid}")), "{status}");
    let messages = maildir.mailbox(&name("INBOX")).unwrap().messages().unwrap();
    let fetched =
        dovecot.doveadm_ok(&["fetch", "-u", "bob", "uid guid", "mailbox", "INBOX", "all"]);
    for message in &messages {
        assert!(fetched.contains(&format!("guid: {}", message.guid)), "{fetched}");
    }
    let log = dovecot.log();
    assert!(!log.contains("Error") && !log.contains("Panic"), "Dovecot complained:\n{log}");
}

/// A long save on one handle, committed every few messages (the handle keeps only the
/// uidlist's tail between its commits), with file names taken from callers' GUIDs (one
/// asked for twice, far apart), a flag change and an expunge of early messages and a
/// raised next UID on that handle afterwards: Dovecot serves exactly what we list, and its
/// GUIDs are ours.
#[test]
fn dovecot_serves_a_long_save_committed_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(1_000_003), None).unwrap();
    // A name as Dovecot gives a file holding `body`: its sizes stored (LF) and served (CRLF).
    let guid_for = |n: u32, body: &[u8]| {
        let stored = body.iter().filter(|&&b| b != b'\r').count();
        format!("1795424863.M{n}P7.vm,S={stored},W={}", body.len())
    };
    let mut guids = Vec::new();
    for uid in 1..=400u32 {
        // UID 302 is UID 2 again, and asks for the name UID 2 has.
        let n = if uid == 302 { 2 } else { uid };
        let body = fixtures::sized_message(n, 200 + (n as usize * 13) % 900);
        let mut pending = inbox.begin_save().unwrap();
        std::io::Write::write_all(&mut pending, &body).unwrap();
        let guid = match uid % 4 {
            0 => None,
            1 => Some(format!("guid-{uid}")),
            _ => Some(guid_for(n, &body)),
        };
        let mut options = SaveOptions::default()
            .with_uid(uid)
            .with_flags(if uid % 3 == 0 { Flags::SEEN } else { Flags::EMPTY })
            .with_received(1_700_000_000 + i64::from(uid));
        if let Some(guid) = &guid {
            options = options.with_guid(guid.clone());
        }
        inbox.save(pending, options).unwrap();
        guids.push(guid);
        if uid % 7 == 0 {
            inbox.commit().unwrap();
        }
    }
    inbox.commit().unwrap();
    inbox.set_flags(2, Flags::FLAGGED, &[]).unwrap();
    inbox.expunge(&[3]).unwrap();
    inbox.set_next_uid(500).unwrap();

    let messages = inbox.messages().unwrap();
    assert_eq!(messages.len(), 399);
    for message in &messages {
        let asked = guids[message.uid as usize - 1].as_deref();
        match asked {
            Some(guid) if guid.starts_with("1795424863.") && message.uid != 302 => {
                assert!(message.file_name.starts_with(guid), "{}", message.file_name);
                assert_eq!(message.guid, guid);
            }
            Some(guid) => {
                assert!(!message.file_name.starts_with(guid), "{}", message.file_name);
                assert_eq!(message.guid, guid, "UID {}", message.uid);
            }
            None => assert!(!message.file_name.starts_with("1795424863.")),
        }
    }
    let ours = our_snapshot(&maildir);
    assert_eq!(ours.mailboxes["INBOX"].uid_next, 500);

    let (dovecot, mut imap) = serve_a_copy(&root);
    ours.assert_same(&imap.snapshot());
    let fetched =
        dovecot.doveadm_ok(&["fetch", "-u", "bob", "uid guid", "mailbox", "INBOX", "all"]);
    for message in &messages {
        let line = format!("uid: {}\nguid: {}\n", message.uid, message.guid);
        assert!(fetched.contains(&line), "{line}{fetched}");
    }
    let log = dovecot.log();
    assert!(!log.contains("Error") && !log.contains("Panic"), "Dovecot complained:\n{log}");
}

/// A catch-up run as a backup re-run makes it, on a handle of its own (a new process): the
/// uidlist is taken from what the last run recorded of it (`dsync-rs-uidlist-known`) and
/// the changed messages' records looked up in it, not parsed whole; the new messages are
/// appended. Dovecot serves exactly what we list, with the record file beside the uidlist.
#[test]
fn dovecot_serves_a_catch_up_run_from_the_known_uidlist() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let maildir = Maildir::open(Location::maildir(&root));
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(1_000_005), None).unwrap();
    let flags_of = |uid: u32| if uid.is_multiple_of(3) { Flags::SEEN } else { Flags::EMPTY };
    for uid in 1..=300u32 {
        let body = fixtures::sized_message(uid, 200 + (uid as usize * 17) % 700);
        save(&mut inbox, uid, flags_of(uid), &[], 1_700_000_000 + i64::from(uid), &body);
        if uid % 50 == 0 {
            inbox.commit().unwrap();
        }
    }
    drop(inbox);
    assert!(root.join("dsync-rs-uidlist-known").exists());

    let again = Maildir::open(Location::maildir(&root));
    let mut inbox = again.mailbox(&name("INBOX")).unwrap();
    let mut beliefs = FileBeliefs::new();
    for uid in 1..=300u32 {
        beliefs.insert(uid, flags_of(uid), Vec::new());
    }
    let changes: Vec<(u32, Flags, Vec<Keyword>)> = [3u32, 100, 250, 299]
        .iter()
        .map(|&uid| (uid, Flags::FLAGGED | Flags::SEEN, vec![Keyword::new("$Round1").unwrap()]))
        .collect();
    inbox.set_flags_many_believed(&changes, &beliefs).unwrap();
    inbox.expunge_believed(&[1, 150, 298], &beliefs).unwrap();
    for uid in 301..=305u32 {
        save(
            &mut inbox,
            uid,
            Flags::EMPTY,
            &[],
            1_800_000_000,
            &fixtures::message(uid, "new", "x"),
        );
    }
    assert_eq!(inbox.commit().unwrap(), [301, 302, 303, 304, 305]);

    let ours = our_snapshot(&again);
    let listed = &ours.mailboxes["INBOX"];
    assert_eq!(listed.messages.len(), 302);
    assert!(listed.messages.iter().all(|m| ![1, 150, 298].contains(&m.uid)));
    let (dovecot, mut imap) = serve_a_copy(&root);
    ours.assert_same(&imap.snapshot());
    let log = dovecot.log();
    assert!(!log.contains("Error") && !log.contains("Panic"), "Dovecot complained:\n{log}");
}
