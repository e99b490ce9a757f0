//! Crash leftovers, bad on-disk input and hostile names: typed errors or Dovecot's own
//! recovery, never a panic, never anything outside the root.

use std::fs;
use std::io::Write;
use std::time::Duration;

use mailstore::{Error, Flags, Keyword, Location, MailboxName, Maildir, Options, SaveOptions};

use crate::support::{name, save};

fn fresh() -> (tempfile::TempDir, Maildir) {
    let dir = tempfile::tempdir().unwrap();
    let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
    (dir, maildir)
}

#[test]
fn journal_completes_a_commit_interrupted_between_rename_and_append() {
    let (dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(9), None).unwrap();
    save(&mut inbox, 1, Flags::SEEN, &[], 1_700_000_000, b"Subject: one\n\n1\n");
    inbox.commit().unwrap();
    // What a kill after the journal and one of two renames leaves behind.
    let root = dir.path().join("Maildir");
    fs::write(root.join("tmp/1700000001.M1P1.h"), b"Subject: two\n\n2\n").unwrap();
    fs::write(root.join("tmp/1700000003.M1P1.h"), b"Subject: 4\n\n4\n").unwrap();
    fs::write(root.join("cur/1700000002.M1P1.h,S=16,W=19:2,F"), b"Subject: 3!\n\n3\n").unwrap();
    fs::write(
        root.join("dsync-rs-journal"),
        "dsync-rs journal 1\n\
         1700000001.M1P1.h/1700000001.M1P1.h,S=16,W=19:2,S/10 :1700000001.M1P1.h,S=16,W=19\n\
         1700000002.M1P1.h/1700000002.M1P1.h,S=16,W=19:2,F/12 Gsource-guid :1700000002.M1P1.h,S=16,W=19\n\
         1700000003.M1P1.h/1700000003.M1P1.h,S=14,W=17/13 :1700000003.M1P1.h,S=14,W=17\n",
    )
    .unwrap();
    fs::write(root.join("dovecot-uidlist.lock"), "2147483632:some-dead-process-elsewhere").unwrap();
    fs::remove_file(root.join("dovecot-uidlist.lock")).unwrap();
    let messages = inbox.messages().unwrap();
    let summary: Vec<(u32, Flags, &str)> =
        messages.iter().map(|m| (m.uid, m.flags, m.guid.as_str())).collect();
    assert_eq!(
        summary[1..],
        [
            (10, Flags::SEEN, "1700000001.M1P1.h,S=16,W=19"),
            (12, Flags::FLAGGED, "source-guid"),
            (13, Flags::EMPTY, "1700000003.M1P1.h,S=14,W=17")
        ]
    );
    // A name without flags goes to new/, as the interrupted commit would have put it.
    assert!(root.join("new/1700000003.M1P1.h,S=14,W=17").is_file());
    assert!(!root.join("dsync-rs-journal").exists());
    assert_eq!(inbox.status().unwrap().next_uid, 14);
}

#[test]
fn uncommitted_saves_leave_nothing() {
    let (dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), None, None).unwrap();
    let mut pending = inbox.begin_save().unwrap();
    pending.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
    drop(pending);
    save(&mut inbox, 5, Flags::EMPTY, &[], 0, b"Subject: y\n\n");
    assert_eq!(inbox.staged(), 1);
    drop(inbox);
    let root = dir.path().join("Maildir");
    for sub in ["tmp", "cur", "new"] {
        assert_eq!(fs::read_dir(root.join(sub)).unwrap().count(), 0, "{sub}");
    }
    assert_eq!(maildir.mailbox(&name("INBOX")).unwrap().status().unwrap().messages, 0);
}

#[test]
fn forced_uid_below_next_uid_is_refused_and_the_batch_discarded() {
    let (_dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), None, None).unwrap();
    save(&mut inbox, 5, Flags::EMPTY, &[], 0, b"a\n");
    inbox.commit().unwrap();
    save(&mut inbox, 7, Flags::EMPTY, &[], 0, b"b\n");
    save(&mut inbox, 6, Flags::EMPTY, &[], 0, b"c\n");
    let error = inbox.commit().unwrap_err();
    assert!(matches!(error, Error::UidTooLow { uid: 6, next_uid: 8, .. }), "{error}");
    assert_eq!(inbox.staged(), 0);
    let status = inbox.status().unwrap();
    assert_eq!((status.messages, status.next_uid), (1, 6));
    let mut pending = inbox.begin_save().unwrap();
    pending.write_all(b"next\n").unwrap();
    inbox.save(pending, SaveOptions::default()).unwrap();
    assert_eq!(inbox.commit().unwrap(), [6]);
}

/// A 27th keyword has no letter: the message is saved (changed) with the others, and the
/// keyword left out is reported, as a Dovecot destination keeps it only in its index
/// (checked with 2.3.19.1: an APPEND with 27 keywords leaves a file with `a`–`z`).
#[test]
fn twenty_seven_keywords_do_not_fit_and_the_extra_one_is_reported() {
    let (_dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), None, None).unwrap();
    let names: Vec<String> = (0..26).map(|i| format!("kw{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    save(&mut inbox, 1, Flags::EMPTY, &refs, 0, b"a\n");
    inbox.commit().unwrap();
    assert_eq!(inbox.messages().unwrap()[0].keywords.len(), 26);
    assert_eq!(inbox.take_dropped_keywords(), []);
    save(&mut inbox, 2, Flags::EMPTY, &["KW3", "one-more"], 0, b"b\n");
    assert_eq!(inbox.commit().unwrap(), [2]);
    let dropped = inbox.take_dropped_keywords();
    assert_eq!(
        dropped.iter().map(|d| (d.uid, d.keyword.as_str())).collect::<Vec<_>>(),
        [(2, "one-more")]
    );
    let saved = &inbox.messages().unwrap()[1];
    assert_eq!((saved.uid, saved.keywords.len()), (2, 1));
    inbox.set_flags(1, Flags::SEEN, &[Keyword::new("another").unwrap()]).unwrap();
    let dropped = inbox.take_dropped_keywords();
    assert_eq!(
        dropped.iter().map(|d| (d.uid, d.keyword.as_str())).collect::<Vec<_>>(),
        [(1, "another")]
    );
    assert_eq!(inbox.messages().unwrap()[0].flags, Flags::SEEN);
}

#[test]
fn bad_files_on_disk() {
    let (dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(3), None).unwrap();
    save(&mut inbox, 1, Flags::SEEN, &["$Label1"], 0, b"a\n");
    inbox.commit().unwrap();
    let root = dir.path().join("Maildir");
    // A keyword letter without dovecot-keywords entry reads as Dovecot names it.
    fs::remove_file(root.join("dovecot-keywords")).unwrap();
    assert_eq!(inbox.messages().unwrap()[0].keywords, [Keyword::new("unknown-0").unwrap()]);
    // A file name without info in cur/ has no flags; one in new/ neither.
    fs::write(root.join("cur/1700000000.M1P1.x"), b"b\n").unwrap();
    fs::write(root.join("new/1700000000.M2P1.x:2,S"), b"c\n").unwrap();
    let messages = inbox.messages().unwrap();
    assert_eq!(
        messages.iter().map(|m| (m.uid, m.flags)).collect::<Vec<_>>()[1..],
        [(2, Flags::EMPTY), (3, Flags::SEEN)]
    );
    assert_eq!(messages[1].virtual_size, 3);
    // A torn last uidlist line is ignored and cut off by the next append.
    let uidlist = root.join("dovecot-uidlist");
    let mut file = fs::OpenOptions::new().append(true).open(&uidlist).unwrap();
    file.write_all(b"9 :torn-wri").unwrap();
    drop(file);
    assert_eq!(inbox.status().unwrap().next_uid, 4);
    save(&mut inbox, 4, Flags::EMPTY, &[], 0, b"d\n");
    inbox.commit().unwrap();
    let text = fs::read_to_string(&uidlist).unwrap();
    assert!(!text.contains("torn") && text.ends_with('\n'), "{text}");
    // A broken uidlist is a typed error naming the file and line.
    fs::write(&uidlist, "3 V3 N5\n2 :a\n1 :b\n").unwrap();
    match inbox.status().unwrap_err() {
        Error::Corrupt { path, line, .. } => assert_eq!((path, line), (uidlist.clone(), 3)),
        other => panic!("{other}"),
    }
    fs::write(&uidlist, b"\xff\xfe garbage").unwrap();
    assert!(matches!(inbox.messages().unwrap_err(), Error::Corrupt { line: 1, .. }));
}

#[test]
fn hostile_names_never_escape_the_root() {
    let (dir, maildir) = fresh();
    maildir.create_mailbox(&name("INBOX"), None, None).unwrap();
    for components in [&["..", "x"][..], &["a/b"], &["a\0b"], &["x\u{7}"], &[""], &["."]] {
        let error = MailboxName::new(components.iter().copied()).unwrap_err();
        assert!(matches!(error, Error::InvalidName { .. }), "{components:?}");
    }
    let error = maildir.create_mailbox(&name("a.b"), None, None).unwrap_err();
    assert!(error.to_string().contains("a.b"), "{error}");
    let fs_layout =
        Maildir::open(Location::maildir(dir.path().join("fs")).with_layout(mailstore::Layout::Fs));
    for hostile in ["cur", "x/new", "tmp"] {
        assert!(matches!(
            fs_layout.create_mailbox(&name(hostile), None, None),
            Err(Error::InvalidName { .. })
        ));
    }
    let mut outside: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    outside.sort();
    assert_eq!(outside, ["Maildir"], "refused names create nothing, not even the root");
    // Directories whose names are not valid modified UTF-7 are listed under their bytes, as
    // Dovecot lists them (see `left_out::noncanonical_folder_names_are_those_dovecot_lists`),
    // and stay where they are.
    let root = dir.path().join("Maildir");
    for bad in [".&Jjo", ".bad&", ".x&AGE-y"] {
        fs::create_dir_all(root.join(bad).join("cur")).unwrap();
    }
    let names: Vec<String> =
        maildir.mailboxes().unwrap().iter().map(|e| e.name.to_string()).collect();
    assert_eq!(names, ["INBOX", "&Jjo", "bad&", "x&AGE-y"]);
    assert_eq!(maildir.mailbox(&name("bad&")).unwrap().path(), root.join(".bad&"));
    assert!(matches!(maildir.delete_mailbox(&name("inbox")), Err(Error::InboxOperation { .. })));
}

#[test]
fn locks_held_by_live_processes_are_waited_for() {
    let (dir, maildir) = fresh();
    maildir.create_mailbox(&name("INBOX"), None, None).unwrap();
    let root = dir.path().join("Maildir");
    // Our own (live) pid on our host: a real lock holder, never overridden.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    fs::write(root.join("dovecot-uidlist.lock"), format!("{}:{}", std::process::id(), host.trim()))
        .unwrap();
    let impatient = Maildir::with_options(
        Location::maildir(&root),
        Options::default().with_lock_timeout(Duration::from_millis(100)),
    );
    let inbox = impatient.mailbox(&name("INBOX")).unwrap();
    assert!(matches!(inbox.set_next_uid(10), Err(Error::LockTimeout { .. })));
    // A dead process's lock is overridden at once.
    fs::write(root.join("dovecot-uidlist.lock"), format!("2147483632:{}", host.trim())).unwrap();
    inbox.set_next_uid(10).unwrap();
    assert_eq!(inbox.status().unwrap().next_uid, 10);
    assert!(!root.join("dovecot-uidlist.lock").exists());
}

#[test]
fn caller_guids_become_file_names_when_dovecot_would_keep_them() {
    let (_dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), None, None).unwrap();
    let body = b"Subject: hi\r\n\r\nHello\r\n"; // 19 bytes stored, 22 served
    let kept = "1795424863.M887367P15871.vm,S=19,W=22";
    for (guid, uid) in
        [(kept, 1), (kept, 2), ("1795424863.M1P1.vm,S=5,W=6", 3), ("e4c0d2b7a1f3", 4)]
    {
        let mut pending = inbox.begin_save().unwrap();
        pending.write_all(body).unwrap();
        inbox.save(pending, SaveOptions::default().with_uid(uid).with_guid(guid)).unwrap();
    }
    inbox.commit().unwrap();
    let messages = inbox.messages().unwrap();
    // Right sizes, unused: the GUID is the file name (Maildir → Maildir keeps names); no
    // flags: a bare name in new/.
    assert_eq!(messages[0].file_name, kept);
    // Already taken, wrong sizes, or not a file name: a new name, the GUID in the uidlist.
    for message in &messages[1..] {
        assert!(!message.file_name.starts_with("1795424863."), "{}", message.file_name);
    }
    let guids: Vec<&str> = messages.iter().map(|m| m.guid.as_str()).collect();
    assert_eq!(guids, [kept, kept, "1795424863.M1P1.vm,S=5,W=6", "e4c0d2b7a1f3"]);
    let mut pending = inbox.begin_save().unwrap();
    pending.write_all(body).unwrap();
    let error = inbox.save(pending, SaveOptions::default().with_guid("two words")).unwrap_err();
    assert!(matches!(error, Error::InvalidValue { field: "message GUID", .. }));
}

fn tree(root: &std::path::Path) -> Vec<String> {
    let output = std::process::Command::new("find")
        .arg(root)
        .arg("-printf")
        .arg("%P %s %T@\n")
        .output()
        .unwrap();
    let mut lines: Vec<String> =
        String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn read_only_stores_are_never_written_and_read_the_same() {
    let (dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(77), None).unwrap();
    save(&mut inbox, 3, Flags::SEEN, &["$Label1"], 1_700_000_000, b"a\n");
    inbox.commit().unwrap();
    let root = dir.path().join("Maildir");
    // Mail nobody numbered yet, an interrupted commit, and a folder without uidlist.
    fs::write(root.join("new/1700000009.M2P1.x"), b"b\n").unwrap();
    fs::write(root.join("cur/1700000001.M1P1.h,S=2,W=3:2,S"), b"c\n").unwrap();
    fs::write(
        root.join("dsync-rs-journal"),
        "dsync-rs journal 1\n1700000001.M1P1.h/1700000001.M1P1.h,S=2,W=3:2,S/10 :1700000001.M1P1.h,S=2,W=3\n",
    )
    .unwrap();
    fs::create_dir_all(root.join(".Bare/cur")).unwrap();
    fs::write(root.join(".Bare/cur/1.M1P1.x:2,F"), b"d\n").unwrap();
    let before = tree(&root);

    let source =
        Maildir::with_options(Location::maildir(&root), Options::default().with_read_only(true));
    let read = |maildir: &Maildir, folder: &str| -> Vec<(u32, Flags)> {
        maildir
            .mailbox(&name(folder))
            .unwrap()
            .messages()
            .unwrap()
            .iter()
            .map(|m| (m.uid, m.flags))
            .collect()
    };
    let inbox_view = read(&source, "INBOX");
    assert_eq!(inbox_view, [(3, Flags::SEEN), (10, Flags::SEEN), (11, Flags::EMPTY)]);
    assert_eq!(read(&source, "Bare"), [(1, Flags::FLAGGED)]);
    assert!(matches!(source.create_mailbox(&name("X"), None, None), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        source.mailbox(&name("INBOX")).unwrap().begin_save(),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        source.mailbox(&name("INBOX")).unwrap().set_next_uid(50),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(source.set_subscriptions(&[]), Err(Error::ReadOnly { .. })));
    assert_eq!(tree(&root), before, "a read-only store must not change");
    // A writable open records the very same UIDs.
    assert_eq!(read(&maildir, "INBOX"), inbox_view);
    assert_ne!(tree(&root), before);
}

/// A read-only folder without `dovecot-uidlist` keeps its UIDVALIDITY, GUID and UIDs across
/// openings in the uidlist kept outside ([`Maildir::keep_uids_in`]); a file removed never
/// lends its UID to another; with `write` false the outside file is only read.
#[test]
fn a_folder_without_uidlist_keeps_its_uids_in_the_file_kept_outside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    for n in 1..=3 {
        fs::write(root.join(format!("cur/170000000{n}.M{n}P1.x:2,S")), b"m\n").unwrap();
    }
    let state = dir.path().join("state/dsync-rs-state.uidlist");
    let open = |write: bool| {
        let maildir = Maildir::with_options(
            Location::maildir(&root),
            Options::default().with_read_only(true),
        );
        maildir.keep_uids_in(state.clone(), mailstore::Permissions::private(), write);
        maildir.mailbox(&name("INBOX")).unwrap()
    };
    let uids = |mailbox: &mailstore::Mailbox| -> Vec<(u32, String)> {
        mailbox.messages().unwrap().into_iter().map(|m| (m.uid, m.guid)).collect()
    };
    // A dry run writes nothing, not even outside.
    assert_eq!(uids(&open(false)).len(), 3);
    assert!(!state.parent().unwrap().exists());

    let first = open(true);
    let status = first.status().unwrap();
    let guid = first.guid().unwrap();
    assert!(guid.is_some());
    assert_eq!(
        uids(&first),
        [
            (1, "1700000001.M1P1.x".into()),
            (2, "1700000002.M2P1.x".into()),
            (3, "1700000003.M3P1.x".into())
        ]
    );
    // Each file's size with CRLF is recorded, so later listings need not read the files.
    let kept = fs::read_to_string(first.uids_file()).unwrap();
    assert_eq!(kept.matches(" W3 :").count(), 3, "{kept}");
    assert!(first.messages().unwrap().iter().all(|m| m.virtual_size == 3));
    fs::remove_file(root.join("cur/1700000003.M3P1.x:2,S")).unwrap();
    fs::write(root.join("new/1700000005.M5P1.x"), b"m\n").unwrap();
    fs::write(root.join("new/1700000004.M4P1.x"), b"m\n").unwrap();
    // Read without writing: the same UIDs a writing open gives next.
    let dry = uids(&open(false));
    let again = open(true);
    assert_eq!(uids(&again), dry);
    assert_eq!(
        dry,
        [
            (1, "1700000001.M1P1.x".into()),
            (2, "1700000002.M2P1.x".into()),
            (4, "1700000004.M4P1.x".into()),
            (5, "1700000005.M5P1.x".into())
        ]
    );
    let status_again = again.status().unwrap();
    assert_eq!(status_again.uid_validity, status.uid_validity);
    assert_eq!(status_again.next_uid, 6);
    assert_eq!(again.guid().unwrap(), guid);
    // The file holding them is the one outside; nothing was added to the Maildir.
    assert!(again.uids_file().starts_with(state.parent().unwrap()));
    let names = |root: &std::path::Path| {
        let mut names: Vec<_> =
            fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&root), ["cur", "new", "tmp"]);
}

/// A root that holds only other files (a lock, a state file left by a failed first run) has
/// no INBOX yet: listing it must not offer a mailbox that cannot be opened.
#[test]
fn a_root_without_cur_lists_no_inbox_until_created() {
    let (dir, maildir) = fresh();
    let root = dir.path().join("Maildir");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("dsync-rs-state"), b"state").unwrap();
    assert!(maildir.mailboxes().unwrap().is_empty());
    assert!(matches!(maildir.mailbox(&name("INBOX")), Err(Error::MailboxNotFound { .. })));
    maildir.create_mailbox(&name("INBOX"), Some(4), None).unwrap();
    let listed: Vec<String> =
        maildir.mailboxes().unwrap().iter().map(|m| m.name.to_string()).collect();
    assert_eq!(listed, ["INBOX"]);
}

/// `guid()` reads the uidlist's header line only, and agrees with the full status.
#[test]
fn guid_from_the_header_line_agrees_with_status() {
    let (dir, maildir) = fresh();
    let mut inbox = maildir.create_mailbox(&name("INBOX"), Some(11), None).unwrap();
    save(&mut inbox, 1, Flags::SEEN, &[], 1_700_000_000, b"Subject: one\n\n1\n");
    inbox.commit().unwrap();
    let guid = inbox.guid().unwrap();
    assert!(guid.is_some());
    assert_eq!(guid, inbox.status().unwrap().guid);
    // A broken header is an error, not a guess.
    fs::write(dir.path().join("Maildir/dovecot-uidlist"), b"x broken\n").unwrap();
    assert!(matches!(inbox.guid(), Err(Error::Corrupt { .. })));
}
