//! sdbox judged by Dovecot: a Dovecot serving an sdbox we wrote shows exactly what we wrote
//! (IMAP, POP3, doveadm), with nothing in its log; and an sdbox Dovecot wrote (APPEND,
//! STORE, EXPUNGE, rotated logs) reads exactly as Dovecot's IMAP shows it.

use std::io::{Read, Write};

use mailstore::{Flags, Keyword, SaveOptions, Sdbox, SdboxLocation, SdboxMailbox};
use testkit::{
    AccountSnapshot, Dovecot, MailboxSnapshot, MessageSnapshot, RawImap, RawPop3, fixtures,
};

use crate::support::{imap_name, name};

/// Everything a client would see, read with our sdbox reader (bodies as IMAP serves them).
pub(crate) fn our_sdbox_snapshot(store: &Sdbox) -> AccountSnapshot {
    let mut snapshot = AccountSnapshot::default();
    for name in store.subscriptions().unwrap() {
        snapshot.subscriptions.insert(imap_name(&name));
    }
    for entry in store.mailboxes().unwrap() {
        if !entry.selectable {
            snapshot.mailboxes.insert(imap_name(&entry.name), MailboxSnapshot::default());
            continue;
        }
        let mailbox = store.mailbox(&entry.name).unwrap();
        let status = mailbox.status().unwrap();
        let listing = mailbox.list_messages().unwrap();
        assert!(listing.left_out.is_empty(), "{}: left out {:?}", entry.name, listing.left_out);
        let mut messages = Vec::new();
        for info in listing.entries {
            let mut flags: Vec<String> = info.flags.imap_names().map(str::to_string).collect();
            flags.extend(info.keywords.iter().map(ToString::to_string));
            flags.sort();
            let mut body = Vec::new();
            mailbox.open_message(info.uid).unwrap().crlf().read_to_end(&mut body).unwrap();
            assert_eq!(body.len() as u64, info.virtual_size, "{} uid {}: V", entry.name, info.uid);
            messages.push(MessageSnapshot {
                uid: info.uid,
                flags,
                internal_date: info.received,
                body,
            });
        }
        assert_eq!(status.messages as usize, messages.len());
        snapshot.mailboxes.insert(
            imap_name(&entry.name),
            MailboxSnapshot {
                selectable: true,
                uid_validity: status.uid_validity,
                uid_next: status.next_uid,
                messages,
            },
        );
    }
    snapshot
}

/// Every selectable mailbox's index read without its messages says what the full read says
/// (GUID, UIDVALIDITY, next UID, extensions, keyword names, modseqs): the read a stamp
/// and a save use. Returns each mailbox's GUID and highest modseq by name (as doveadm names it).
fn check_header_reads(store: &Sdbox) -> std::collections::BTreeMap<String, (String, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for entry in store.mailboxes().unwrap().into_iter().filter(|e| e.selectable) {
        let mailbox = store.mailbox(&entry.name).unwrap();
        let (guid, highest) = mailbox.check_header_read().unwrap();
        assert_eq!(guid, mailbox.guid().unwrap());
        let status = mailbox.status().unwrap();
        assert_eq!((guid, Some(highest)), (status.guid, status.highest_modseq));
        out.insert(
            entry.name.to_string(),
            (guid.map(|g| g.to_string()).unwrap_or_default(), highest),
        );
    }
    out
}

/// Saves one message (body written in small pieces: conversion must not depend on them).
fn save(mailbox: &mut SdboxMailbox, body: &[u8], options: SaveOptions) {
    let mut pending = mailbox.begin_save().unwrap();
    for chunk in body.chunks(7) {
        pending.write_all(chunk).unwrap();
    }
    mailbox.save(pending, options).unwrap();
}

fn options(uid: u32, flags: Flags, keywords: &[&str], received: i64) -> SaveOptions {
    SaveOptions::default()
        .with_uid(uid)
        .with_flags(flags)
        .with_keywords(keywords.iter().map(|k| Keyword::new(*k).unwrap()).collect())
        .with_received(received)
}

/// `(number, UIDL)` lines of POP3's UIDL for `user`.
fn pop3_uidls(dovecot: &Dovecot, user: &str, password: &str) -> Vec<String> {
    let mut pop3 = RawPop3::login(dovecot.pop3_port(), user, password);
    let uidls = pop3.uidl().into_iter().map(|(_, uidl)| uidl).collect();
    pop3.quit();
    uidls
}

/// Dovecot's log holds nothing but the usual start and login lines.
fn assert_quiet(dovecot: &Dovecot) {
    let log = dovecot.log();
    for word in ["Warning", "Error", "rebuild", "Panic", "Fatal", "corrupt"] {
        assert!(!log.contains(word), "Dovecot's log says {word}:\n{log}");
    }
}

#[test]
fn dovecot_serves_the_sdbox_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sdbox");
    let store = Sdbox::open(SdboxLocation::new(&root));

    let mut inbox = store.create_mailbox(&name("INBOX"), Some(1_000_001), None).unwrap();
    // IMAP order 3, 7, 8; POP3 order 8, 3, 7 with the source's UIDLs.
    let pop3 = |uidl: &str, order| (Some(uidl.to_string()), Some(order));
    let (uidl, order) = pop3("UID-a3", 2);
    save(
        &mut inbox,
        &fixtures::message(1, "Hello", "First."),
        options(3, Flags::SEEN, &[], 1_720_339_200).with_pop3(uidl, order).with_modseq(100),
    );
    let (uidl, order) = pop3("00000b7", 3);
    save(
        &mut inbox,
        &fixtures::message(2, "Re", "x"),
        options(7, Flags::ANSWERED | Flags::FLAGGED, &["$Label1", "Junk"], 1_720_400_000)
            .with_pop3(uidl, order)
            .with_modseq(200),
    );
    assert_eq!(inbox.commit().unwrap(), [3, 7]);
    // LF-only input, a body without final newline and a line starting with a dot, in a
    // second batch (a second transaction appended to the log).
    let (uidl, order) = pop3("zz8", 1);
    save(
        &mut inbox,
        b"Subject: lf only\n\nline 1\n.dot\nline 2\n",
        options(8, Flags::EMPTY, &["Junk"], 1_720_500_000).with_pop3(uidl, order),
    );
    assert_eq!(inbox.commit().unwrap(), [8]);
    inbox.set_next_uid(15).unwrap();
    inbox.raise_highest_modseq(500).unwrap();

    let mut archive = store.create_mailbox(&name("Archive"), Some(2_000_000), None).unwrap();
    save(
        &mut archive,
        b"Subject: x\r\n\r\nno final newline",
        options(1, Flags::DRAFT | Flags::DELETED, &["$Forwarded"], 1_672_531_200),
    );
    archive.commit().unwrap();
    let mut year = store.create_mailbox(&name("Archive/2023"), Some(2_000_001), None).unwrap();
    for uid in [1, 2, 5] {
        save(
            &mut year,
            &fixtures::sized_message(uid, 5000),
            options(uid, Flags::SEEN, &[], 1_677_812_583),
        );
    }
    year.commit().unwrap();
    // Expunged tail UIDs: UIDNEXT stays above them.
    year.expunge(&[5]).unwrap();
    let mut drafts = store.create_mailbox(&name("Entwürfe"), Some(3_000_000), None).unwrap();
    save(
        &mut drafts,
        &fixtures::message(40, "Entwurf", "Grüße aus Köln"),
        options(4, Flags::DRAFT, &["$Label1"], 1_714_885_505),
    );
    drafts.commit().unwrap();
    drafts.set_flags(4, Flags::DRAFT | Flags::SEEN, &[Keyword::new("Later").unwrap()]).unwrap();
    // "R&D" exists only as the \Noselect parent of its child.
    let mut rd = store.create_mailbox(&name("R&D/Ünïcode"), Some(3_000_001), None).unwrap();
    save(
        &mut rd,
        &fixtures::message(50, "R&D", "research"),
        options(9, Flags::EMPTY, &[], 1_717_653_966),
    );
    rd.commit().unwrap();
    store.create_mailbox(&name("Empty"), Some(4_000_000), None).unwrap().set_next_uid(7).unwrap();
    store
        .set_subscriptions(&[
            name("INBOX"),
            name("Archive"),
            name("Archive/2023"),
            name("Entwürfe"),
            name("Gone"),
        ])
        .unwrap();

    let ours = our_sdbox_snapshot(&store);
    let header_reads = check_header_reads(&store);
    assert_eq!(header_reads["INBOX"].1, 500);
    let inbox_view = &ours.mailboxes["INBOX"];
    assert_eq!((inbox_view.uid_validity, inbox_view.uid_next), (1_000_001, 15));
    assert_eq!(inbox_view.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [3, 7, 8]);
    assert_eq!(
        inbox_view.messages[2].body,
        b"Subject: lf only\r\n\r\nline 1\r\n.dot\r\nline 2\r\n".to_vec()
    );
    assert_eq!(ours.mailboxes["Archive/2023"].uid_next, 6);
    assert_eq!(ours.mailboxes["Empty"].uid_next, 7);
    assert!(!ours.mailboxes["R&-D"].selectable);
    let drafts_view = &ours.mailboxes["Entw&APw-rfe"];
    assert_eq!(drafts_view.messages[0].flags, ["Later", "\\Draft", "\\Seen"]);
    let inbox = store.mailbox(&name("INBOX")).unwrap();
    let our_modseqs: Vec<(u32, u64)> =
        inbox.messages().unwrap().iter().map(|m| (m.uid, m.modseq.unwrap())).collect();
    let our_highest = inbox.status().unwrap().highest_modseq.unwrap();
    assert_eq!(our_highest, 500);
    assert_eq!(&our_modseqs[..2], [(3, 100), (7, 200)]);

    // Dovecot serves the copy with what a run of ours has while it saves: our staging
    // directory in the root with a message being written, and the clean record in each
    // mail directory.
    let mut pending = store.mailbox(&name("INBOX")).unwrap().begin_save().unwrap();
    pending.write_all(b"Subject: being written\n\n").unwrap();
    let in_root = |prefix: &str| {
        std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect::<Vec<_>>()
    };
    let staging = in_root(".dsync-rs-save.");
    assert_eq!(staging.len(), 1, "{staging:?}");
    assert_eq!(std::fs::read_dir(root.join(&staging[0])).unwrap().count(), 1);
    assert!(root.join("mailboxes/INBOX/dbox-Mails/dsync-rs-clean").is_file());
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .user_serving_copy("bob", "bobpw", &root, "sdbox")
        .pop3_uidl_format("%08Xu%08Xv")
        .start();
    drop(pending);
    let mut imap = RawImap::login(dovecot.imap_port(), "bob", "bobpw");
    let theirs = imap.snapshot();
    let mut expected = ours.clone();
    expected.subscriptions.insert("Gone".into());
    expected.assert_same(&theirs);
    assert_eq!(imap.modseqs("INBOX"), (our_modseqs, our_highest));

    // POP3: the UIDLs we stored, in the POP3 order we stored.
    assert_eq!(pop3_uidls(&dovecot, "bob", "bobpw"), ["zz8", "UID-a3", "00000b7"]);

    // doveadm agrees on mailbox and message GUIDs.
    let guid = store.mailbox(&name("Archive/2023")).unwrap().status().unwrap().guid.unwrap();
    let status =
        dovecot.doveadm_ok(&["mailbox", "status", "-u", "bob", "guid uidvalidity", "Archive/2023"]);
    assert!(status.contains(&format!("guid={guid}")), "{status}");
    let fetched =
        dovecot.doveadm_ok(&["fetch", "-u", "bob", "uid guid", "mailbox", "INBOX", "all"]);
    for message in store.mailbox(&name("INBOX")).unwrap().messages().unwrap() {
        assert!(message.guid.len() == 32, "{}", message.guid);
        assert!(fetched.contains(&format!("guid: {}", message.guid)), "{fetched}");
    }
    // Dovecot appends after what we wrote: the next UID is ours, modseqs continue.
    let uid = imap.append("INBOX", &["\\Seen"], None, &fixtures::message(60, "new", "y"));
    assert_eq!(uid, 15);
    let (modseqs, highest) = imap.modseqs("INBOX");
    assert!(highest > 500 && modseqs.last().unwrap().1 > 500, "{modseqs:?} {highest}");
    // Every mailbox's status, no mailbox of our staging or records listed.
    let listed = dovecot.doveadm_ok(&["mailbox", "list", "-u", "bob"]);
    assert!(!listed.contains("dsync-rs"), "{listed}");
    let statuses = dovecot.doveadm_ok(&["mailbox", "status", "-u", "bob", "messages uidnext", "*"]);
    assert!(statuses.contains("INBOX messages=4 uidnext=16"), "{statuses}");
    assert_quiet(&dovecot);
    // A forced resync (an index rebuild from the u.* files) keeps every message and
    // leaves our staging alone.
    dovecot.doveadm_ok(&["force-resync", "-u", "bob", "*"]);
    let rebuilt = RawImap::login(dovecot.imap_port(), "bob", "bobpw").snapshot();
    let mut after_append = theirs.clone();
    after_append.mailboxes.get_mut("INBOX").unwrap().messages =
        rebuilt.mailboxes["INBOX"].messages.clone();
    after_append.mailboxes.get_mut("INBOX").unwrap().uid_next = 16;
    after_append.assert_same(&rebuilt);
    assert_eq!(rebuilt.mailboxes["INBOX"].messages.len(), 4);
    let served = dovecot.dir().join("serve/bob");
    assert!(served.join(&staging[0]).is_dir(), "the rebuild removed our staging");
    let log = dovecot.log();
    for word in ["Panic", "Fatal", "Error"] {
        assert!(!log.contains(word), "Dovecot's log says {word}:\n{log}");
    }
}

#[test]
fn we_read_the_sdbox_dovecot_wrote() {
    // Small rotation and rewrite thresholds: Dovecot rotates the log
    // (dovecot.index.log.2) and rewrites dovecot.index many times below.
    let dovecot = Dovecot::builder()
        .user_with_mail("alice", "alicepw", "sdbox:~/sdbox")
        .extra_config(
            "mail_index_log_rotate_min_size = 1k\nmail_index_log_rotate_max_size = 4k\n\
             mail_index_log_rotate_min_age = 0\nmail_index_rewrite_min_log_bytes = 1k\n\
             mail_index_rewrite_max_log_bytes = 2k",
        )
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    imap.store("INBOX", "2", "-FLAGS ($Label1)");
    imap.store("INBOX", "4", "+FLAGS (\\Flagged $Label1 Custom)");
    imap.expunge_uids("INBOX", "1,3");
    // Many small transactions.
    imap.create("Busy");
    for index in 0..120 {
        imap.append("Busy", &[], None, &fixtures::sized_message(index, 3000));
    }
    for round in 0..40 {
        imap.store("Busy", &format!("{}:*", round + 1), "+FLAGS (\\Seen)");
        imap.store("Busy", &format!("{}", round * 2 + 1), &format!("+FLAGS (kw{})", round % 7));
        imap.store("Busy", &format!("{}", round * 2 + 1), "-FLAGS (\\Seen)");
    }
    imap.expunge_uids("Busy", "2:30,100:120");
    let theirs = imap.snapshot();
    assert!(theirs.message_count() > 60);
    let mail = dovecot.home("alice").join("sdbox");
    let busy = mail.join("mailboxes/Busy/dbox-Mails");
    assert!(busy.join("dovecot.index").exists(), "Dovecot wrote no dovecot.index");
    assert!(busy.join("dovecot.index.log.2").exists(), "Dovecot did not rotate the log");

    let store = Sdbox::open(SdboxLocation::new(&mail));
    let ours = our_sdbox_snapshot(&store);
    theirs.assert_same(&ours);
    // Read without the messages (a snapshot, a rotated log, keywords, expunges): the GUID
    // and highest modseq Dovecot reports.
    for (mailbox, (guid, highest)) in check_header_reads(&store) {
        let status = dovecot.doveadm_ok(&[
            "mailbox",
            "status",
            "-u",
            "alice",
            "guid highestmodseq",
            &mailbox,
        ]);
        assert!(
            status.contains(&format!("guid={guid}"))
                && status.contains(&format!("highestmodseq={highest}")),
            "{mailbox}: {status}"
        );
    }
    // Modseqs as Dovecot reports them.
    for mailbox in ["INBOX", "Busy"] {
        let opened = store.mailbox(&name(mailbox)).unwrap();
        let ours: Vec<(u32, u64)> =
            opened.messages().unwrap().iter().map(|m| (m.uid, m.modseq.unwrap())).collect();
        let highest = opened.status().unwrap().highest_modseq.unwrap();
        assert_eq!(imap.modseqs(mailbox), (ours, highest), "{mailbox}");
    }
    // GUIDs as doveadm shows them.
    let fetched =
        dovecot.doveadm_ok(&["fetch", "-u", "alice", "uid guid", "mailbox", "Busy", "all"]);
    for message in store.mailbox(&name("Busy")).unwrap().messages().unwrap() {
        assert!(
            fetched.contains(&format!("uid: {}\nguid: {}", message.uid, message.guid)),
            "{fetched}"
        );
    }
    assert_quiet(&dovecot);
}

const ENV_DIR: &str = "MAILSTORE_SDBOX_CONCURRENT_DIR";
const OURS: u32 = 120;
const THEIRS: u32 = 120;

fn our_body(index: u32) -> Vec<u8> {
    fixtures::message(10_000 + index, "ours", "written by mailstore")
}

fn their_body(index: u32) -> Vec<u8> {
    fixtures::message(20_000 + index, "theirs", "delivered by Dovecot")
}

#[test]
#[ignore = "run by sdbox::dovecot_and_we_change_the_same_sdbox as a child process"]
fn sdbox_concurrent_helper() {
    let Ok(dir) = std::env::var(ENV_DIR) else { return };
    let options = mailstore::Options::default().with_durability(mailstore::Durability::Deferred);
    let store = Sdbox::with_options(SdboxLocation::new(dir), options);
    let mut inbox = store.mailbox(&name("INBOX")).unwrap();
    let mut committed = Vec::new();
    let mut expunged = Vec::new();
    for index in 0..OURS {
        let mut pending = inbox.begin_save().unwrap();
        pending.write_all(&our_body(index)).unwrap();
        inbox.save(pending, SaveOptions::default().with_received(1_600_000_000)).unwrap();
        if inbox.staged() == 5 {
            committed.extend(inbox.commit().unwrap());
            // Flag one of ours and expunge another while Dovecot is busy too.
            let uid = committed[committed.len() - 3];
            inbox.set_flags(uid, Flags::SEEN, &[Keyword::new("Ours").unwrap()]).unwrap();
            let gone = committed[committed.len() - 1];
            inbox.expunge(&[gone]).unwrap();
            expunged.push(gone);
        }
    }
    committed.extend(inbox.commit().unwrap());
    println!("UIDS {committed:?}");
    println!("EXPUNGED {expunged:?}");
}

/// The numbers after `label` in the helper's output.
fn numbers(stdout: &str, label: &str) -> Vec<u32> {
    stdout
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, uids)| uids))
        .map(|l| l.trim_matches(['[', ']']).split(", ").filter_map(|u| u.parse().ok()).collect())
        .unwrap_or_default()
}

#[test]
fn dovecot_and_we_change_the_same_sdbox() {
    use std::collections::BTreeSet;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    let dovecot = Dovecot::builder().user_with_mail("alice", "alicepw", "sdbox:~/sdbox").start();
    let root = dovecot.home("alice").join("sdbox");
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    imap.append("INBOX", &[], None, &their_body(9999));
    imap.select("INBOX");

    let helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sdbox::sdbox_concurrent_helper",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(ENV_DIR, &root)
        .uid(testkit::MAIL_UID)
        .gid(testkit::MAIL_GID)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut their_expunged = BTreeSet::new();
    for index in 0..THEIRS {
        let uid = imap.append(
            "INBOX",
            &["$Theirs"],
            Some("01-Jan-2024 00:00:00 +0000"),
            &their_body(index),
        );
        if index % 10 == 9 {
            imap.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Flagged)"));
        }
        if index % 10 == 5 {
            imap.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
            imap.command_ok(&format!("UID EXPUNGE {uid}"));
            their_expunged.insert(index);
        }
    }
    let output = helper.wait_with_output().unwrap();
    assert!(output.status.success(), "writer failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let our_uids = numbers(&stdout, "UIDS ");
    let our_expunged = numbers(&stdout, "EXPUNGED ");
    assert_eq!(our_uids.len(), OURS as usize, "{stdout}");
    assert_eq!(our_expunged.len(), (OURS / 5) as usize, "{stdout}");

    // A new session sees every message that was not expunged exactly once and whole.
    let theirs = RawImap::login(dovecot.imap_port(), "alice", "alicepw").snapshot();
    let inbox = &theirs.mailboxes["INBOX"];
    let mut expected: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (index, uid) in our_uids.iter().enumerate() {
        if !our_expunged.contains(uid) {
            expected.insert(our_body(u32::try_from(index).unwrap()));
        }
    }
    expected.extend((0..THEIRS).filter(|i| !their_expunged.contains(i)).map(their_body));
    expected.insert(their_body(9999));
    let bodies: BTreeSet<Vec<u8>> = inbox.messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(inbox.messages.len(), expected.len());
    assert_eq!(bodies, expected, "every message exactly once and whole");
    let ours_seen = inbox.messages.iter().filter(|m| m.flags == ["Ours", "\\Seen"]).count();
    assert_eq!(ours_seen, (OURS / 5) as usize);
    // The session that was open all along agrees.
    assert_eq!(imap.snapshot(), theirs);

    let (first, last) = (our_uids[0], our_uids[our_uids.len() - 1]);
    let interleaved = inbox
        .messages
        .iter()
        .filter(|m| (first..=last).contains(&m.uid) && !our_uids.contains(&m.uid))
        .count();
    eprintln!("our UIDs {first}..={last}; Dovecot delivered {interleaved} messages in between");

    theirs.assert_same(&our_sdbox_snapshot(&Sdbox::open(SdboxLocation::new(&root))));
    assert_quiet(&dovecot);
}

#[test]
fn we_read_an_sdbox_with_index_and_alternate_storage_elsewhere() {
    let dovecot = Dovecot::builder()
        .user_with_mail("alice", "alicepw", "sdbox:~/sdbox:INDEX=~/index:ALT=~/alt")
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    // Some of INBOX goes to alternate storage; then new mail arrives in primary storage.
    dovecot.doveadm_ok(&["altmove", "-u", "alice", "mailbox", "INBOX", "uid", "1:5"]);
    imap.append("INBOX", &["\\Seen"], None, &fixtures::message(90, "primary", "after altmove"));
    let home = dovecot.home("alice");
    let alt_files =
        std::fs::read_dir(home.join("alt/mailboxes/INBOX/dbox-Mails")).map_or(0, Iterator::count);
    assert!(alt_files > 0, "altmove moved nothing");
    assert!(home.join("index/mailboxes/INBOX/dovecot.index.log").exists());
    assert!(!home.join("sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index.log").exists());
    let theirs = imap.snapshot();

    let location = SdboxLocation::new(home.join("sdbox"))
        .with_index(home.join("index"))
        .with_alt(home.join("alt"));
    theirs.assert_same(&our_sdbox_snapshot(&Sdbox::open(location)));
    assert_quiet(&dovecot);
}

/// `doveadm dump` of a `dovecot.mailbox.log`, one `rename <hash>` line per rename record
/// (the time left out).
fn dumped_renames(dovecot: &Dovecot, log: &std::path::Path) -> Vec<String> {
    let dump = dovecot.doveadm_ok(&["dump", "-t", "mailboxlog", &log.display().to_string()]);
    dump.lines()
        .filter_map(|line| line.split_once(": rename ")?.1.split(' ').next().map(str::to_string))
        .collect()
}

#[test]
fn our_renames_are_logged_as_dovecot_logs_its_own() {
    use mailstore::MailboxChangeKind;
    let dir = tempfile::tempdir().unwrap();
    // Dovecot renames a mailbox with a non-ASCII name into another hierarchy.
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    testkit::chown_to_mail_user(&served);
    let dovecot = Dovecot::builder()
        .user_with_mail("bob", "bobpw", &format!("sdbox:{}", served.display()))
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "bob", "bobpw");
    imap.create("Alt/Tr&AOQ-ume");
    imap.command_ok("RENAME \"Alt/Tr&AOQ-ume\" \"Neu/Tr&AOQ-ume\"");
    imap.logout();
    let theirs = dumped_renames(&dovecot, &served.join("dovecot.mailbox.log"));
    assert_eq!(theirs.len(), 1, "{theirs:?}");

    // We rename the same way, in an sdbox and (the same record) in a Maildir.
    let sdbox = Sdbox::open(SdboxLocation::new(dir.path().join("sdbox")));
    sdbox.create_mailbox(&name("Alt/Träume"), Some(1_000), None).unwrap();
    sdbox.rename_mailbox(&name("Alt/Träume"), &name("Neu/Träume")).unwrap();
    let maildir_root = dir.path().join("Maildir");
    let maildir = mailstore::Maildir::open(mailstore::Location::maildir(&maildir_root));
    maildir.create_mailbox(&name("Alt/Träume"), Some(1_000), None).unwrap();
    maildir.rename_mailbox(&name("Alt/Träume"), &name("Neu/Träume")).unwrap();
    for log in
        [dir.path().join("sdbox/dovecot.mailbox.log"), maildir_root.join("dovecot.mailbox.log")]
    {
        assert_eq!(dumped_renames(&dovecot, &log), theirs, "{}", log.display());
    }
    let changes = sdbox.dovecot_mailbox_changes().unwrap();
    assert!(
        changes.iter().any(|c| c.kind == MailboxChangeKind::Rename && c.names("Neu/Träume")),
        "{changes:?}"
    );
}

/// The folders holding mail in the sdbox at `root` (`dbox-Mails` parents), sorted.
fn mail_folders(root: &std::path::Path) -> Vec<String> {
    let mailboxes = root.join("mailboxes");
    let mut found = Vec::new();
    let mut pending = vec![mailboxes.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name() == "dbox-Mails" {
                found.push(dir.strip_prefix(&mailboxes).unwrap().display().to_string());
            } else if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn dovecots_dsync_follows_a_rename_we_made() {
    // One store, two copies (same mailbox GUIDs); we rename a mailbox in the first.
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    let store = Sdbox::open(SdboxLocation::new(&ours));
    let mut junk = store.create_mailbox(&name("Junk"), Some(1_000), None).unwrap();
    save(
        &mut junk,
        &fixtures::message(1, "spam", "x"),
        options(1, Flags::SEEN, &[], 1_700_000_000),
    );
    junk.commit().unwrap();
    drop(junk);
    let copied = std::process::Command::new("cp").arg("-a").arg(&ours).arg(&theirs).status();
    assert!(copied.unwrap().success());
    store.rename_mailbox(&name("Junk"), &name("Spam/Junk")).unwrap();
    testkit::chown_to_mail_user(dir.path());

    // Dovecot's two-way dsync between them renames the other copy too: the RENAME record
    // we logged tells it which name is newer (without it, it renamed ours back to Junk).
    let dovecot = Dovecot::builder()
        .user_with_mail("bob", "bobpw", &format!("sdbox:{}", ours.display()))
        .start();
    let sync = dovecot.doveadm(&["sync", "-u", "bob", &format!("sdbox:{}", theirs.display())]);
    // Exit 2 ("run again": Dovecot's own rename into a new parent gives the same).
    assert!(matches!(sync.status.code(), Some(0 | 2)), "{sync:?}");
    let folders = mail_folders(&ours);
    assert!(folders.contains(&"Spam/Junk".to_string()) && !folders.contains(&"Junk".to_string()));
    assert_eq!(mail_folders(&theirs), folders);
}
