//! Gmail (`X-GM-EXT-1`) as the source and as the destination. No Gmail is reachable from
//! the tests and Dovecot does not speak Gmail's extension, so this runs against testkit's
//! [`FakeStore`] in Gmail mode, a fake server that says it is Gmail: labels are folders,
//! every message is also in `[Gmail]/All Mail` (`\All`) under one `X-GM-MSGID`, a COPY
//! adds a label, expunging from a label removes the label and from All Mail the message.
//! What it proves is our side of the exchange (which commands we send and what we do with
//! the answers), not Gmail's. The copy within a destination is also proved against a real
//! Dovecot (`duplicates_across_folders_are_copied_within_a_dovecot_destination`).

use std::os::unix::fs::MetadataExt;

use testkit::{Dovecot, FakeStore, GMAIL_ALL_MAIL, GMAIL_SPAM, GMAIL_TRASH, RawImap, fixtures};

use super::imap_destination::{
    DESTINATION_PASSWORD, Servers, assert_carried, pairs_hold, run_into_bob,
};
use super::{PASSWORD, dsync, output_within_a_minute, text};

/// Message files of a Maildir folder, and how many of them share their inode.
fn files(folder: &std::path::Path) -> (usize, usize) {
    let entries: Vec<_> = ["cur", "new"]
        .into_iter()
        .flat_map(|sub| std::fs::read_dir(folder.join(sub)).expect("cur/ and new/"))
        .map(|entry| entry.expect("entry").metadata().expect("stat"))
        .collect();
    (entries.len(), entries.iter().filter(|m| m.nlink() >= 2).count())
}

#[test]
fn gmail_labels_become_folders_and_all_mail_bodies_are_downloaded_once() {
    // Message 1 has the labels INBOX and Work, 2 only Work, 3 only INBOX, 4 none (All
    // Mail only, an archived message).
    let gmail = FakeStore::builder()
        .gmail()
        .message("INBOX", 1, &["\\Seen"], &fixtures::message(1, "one", "a"))
        .message("Work", 1, &["\\Seen"], &fixtures::message(1, "one", "a"))
        .message("Work", 2, &[], &fixtures::message(2, "two", "b"))
        .message("INBOX", 3, &["$Important"], &fixtures::message(3, "three", "c"))
        .message(GMAIL_ALL_MAIL, 4, &[], &fixtures::message(4, "four", "d"))
        .start();
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("Maildir");
    let source = format!("imap://alice@127.0.0.1:{}?tls=none", gmail.port());
    let target = format!("maildir:{}", maildir.display());

    let run = dsync(&["backup", "-a", "\\All", &source, &target], Some("app-password"));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // Four messages, four bodies over the wire, though eight folder entries were saved:
    // the label copies came from All Mail, found by X-GM-MSGID.
    assert_eq!(gmail.bodies_sent(), 4, "{:#?}", gmail.commands());
    assert!(gmail.commands().iter().any(|c| c.contains("X-GM-MSGID")), "{:#?}", gmail.commands());
    let summary = String::from_utf8_lossy(&run.stdout);
    assert!(summary.contains("8 messages saved"), "{}", text(&run));
    assert!(summary.contains("4 saved from copies already held"), "{}", text(&run));
    assert_eq!(files(&maildir.join(".[Gmail].All Mail")), (4, 3));
    assert_eq!(files(&maildir.join(".Work")), (2, 2));
    assert_eq!(files(&maildir), (2, 2), "INBOX");

    // Without -a every label copy is downloaded again.
    let plain = dir.path().join("Plain");
    let before = gmail.bodies_sent();
    let target = format!("maildir:{}", plain.display());
    let run = dsync(&["backup", &source, &target], Some("app-password"));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(gmail.bodies_sent() - before, 8);
}

/// A Dovecot source with 4 messages in 8 folder entries (the same bytes and INTERNALDATE
/// in each folder, so that the source's content identifies them: no GUIDs are fetched
/// from an IMAP source without `-a`): message 1 in INBOX, Work and Family, 2 in Work and
/// Family, 3 in INBOX, 4 in Archive and Family.
fn source_with_duplicates() -> Dovecot {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    for folder in ["Work", "Family", "Archive"] {
        imap.create(folder);
        imap.subscribe(folder);
    }
    let date = Some("02-Jan-2024 03:04:05 +0000");
    let placed: [(u32, &[&str]); 4] = [
        (1, &["INBOX", "Work", "Family"]),
        (2, &["Work", "Family"]),
        (3, &["INBOX"]),
        (4, &["Archive", "Family"]),
    ];
    for (index, folders) in placed {
        let body = fixtures::message(index, &format!("message {index}"), "body");
        for folder in folders {
            imap.append(folder, &["\\Seen", "$Label1"], date, &body);
        }
    }
    imap.logout();
    source
}

/// The subjects shown in each of the fake's folders.
fn subjects(gmail: &FakeStore, folder: &str) -> Vec<String> {
    let mut subjects: Vec<String> = gmail
        .messages(folder)
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(&m.body).into_owned();
            text.lines().find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect();
    subjects.sort();
    subjects
}

fn assert_labels(gmail: &FakeStore, expected: &[(&str, &[u32])]) {
    for (folder, indexes) in expected {
        let want: Vec<String> = indexes.iter().map(|i| format!("message {i}")).collect();
        assert_eq!(subjects(gmail, folder), want, "folder {folder}: {:#?}", gmail.commands());
    }
}

const LABELLED: [(&str, &[u32]); 5] = [
    ("INBOX", &[1, 3]),
    ("Work", &[1, 2]),
    ("Family", &[1, 2, 4]),
    ("Archive", &[4]),
    (GMAIL_ALL_MAIL, &[1, 2, 3, 4]),
];

struct GmailRun {
    source: Dovecot,
    gmail: FakeStore,
    dir: tempfile::TempDir,
}

impl GmailRun {
    fn new(gmail: FakeStore) -> GmailRun {
        GmailRun { source: source_with_duplicates(), gmail, dir: tempfile::tempdir().expect("dir") }
    }

    fn command(&self) -> std::process::Command {
        let state = self.dir.path().join("state");
        let password_file = self.dir.path().join("gmail.pw");
        std::fs::write(&password_file, "app-password\n").expect("password file");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"));
        command
            .args(["backup", "--state-file"])
            .arg(state)
            .arg("--destination-password-file")
            .arg(password_file)
            .arg(format!("imap://alice@127.0.0.1:{}?tls=none", self.source.imap_port()))
            .arg(format!("imap://me@127.0.0.1:{}?tls=none", self.gmail.port()))
            .env("DSYNC_PASSWORD", PASSWORD);
        command
    }

    /// Runs dsync, killed after 60 s: a hang fails the test instead of blocking it.
    fn run(&self) -> std::process::Output {
        output_within_a_minute(&mut self.command())
    }
}

#[test]
fn gmail_destination_stores_each_message_once_and_copies_it_into_its_other_labels() {
    let run = GmailRun::new(FakeStore::builder().gmail().start());
    let first = run.run();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // One APPEND per message, one copied UID per further folder entry.
    assert_eq!(run.gmail.appends_and_copies(), (4, 4), "{:#?}", run.gmail.commands());
    assert_eq!(run.gmail.stored_messages(), 4);
    assert_labels(&run.gmail, &LABELLED);
    // Flags are the message's own on Gmail: the copies kept the source's.
    for message in run.gmail.messages(GMAIL_ALL_MAIL) {
        assert_eq!(message.flags, ["\\Seen", "$Label1"], "{:#?}", run.gmail.commands());
    }
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains("8 messages saved"), "{}", text(&first));
    assert!(summary.contains("4 saved from copies already held"), "{}", text(&first));
    // Gmail's own folders are no source's to delete: no warning about All Mail.
    assert!(!String::from_utf8_lossy(&first.stderr).contains("All Mail"), "{}", text(&first));

    let again = run.run();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(run.gmail.appends_and_copies(), (4, 4), "the re-run stored something");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 messages saved"),
        "{}",
        text(&again)
    );
    assert_labels(&run.gmail, &LABELLED);
}

#[test]
fn gmail_destination_with_parallel_folders_still_stores_each_message_once() {
    // Workers would copy labels side by side, each storing what it has not seen: a label
    // destination takes its mailboxes one after another, all mail last.
    let run = GmailRun::new(FakeStore::builder().gmail().start());
    let first = output_within_a_minute(run.command().args(["--parallel-folders", "4"]));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(run.gmail.appends_and_copies(), (4, 4), "{:#?}", run.gmail.commands());
    assert_eq!(run.gmail.stored_messages(), 4);
    assert_labels(&run.gmail, &LABELLED);
}

#[test]
fn gmail_backup_of_a_removed_label_expunges_only_that_label() {
    let run = GmailRun::new(FakeStore::builder().gmail().start());
    let first = run.run();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // The source removes message 1 from Work (the label) and message 3 from INBOX, its
    // only folder.
    let mut imap = RawImap::login(run.source.imap_port(), "alice", PASSWORD);
    imap.expunge_uids("Work", "1");
    imap.expunge_uids("INBOX", "2");
    imap.logout();
    let backup = run.run();
    assert_eq!(backup.status.code(), Some(0), "{}", text(&backup));
    let expunges: Vec<String> = run
        .gmail
        .commands()
        .into_iter()
        .filter(|c| c.to_ascii_uppercase().contains("EXPUNGE"))
        .collect();
    assert_eq!(expunges.len(), 2, "{expunges:#?}");
    // The labels went; the messages stay in All Mail (3 now archived there), and nothing
    // was expunged from All Mail, which would have deleted message 1 from INBOX and
    // Family too.
    assert_labels(
        &run.gmail,
        &[
            ("INBOX", &[1]),
            ("Work", &[2]),
            ("Family", &[1, 2, 4]),
            ("Archive", &[4]),
            (GMAIL_ALL_MAIL, &[1, 2, 3, 4]),
        ],
    );
    assert_eq!(run.gmail.stored_messages(), 4);
}

/// Folders go in name order: Archive (4 appended), Family (4 copied; 1, 2 appended),
/// INBOX (1 copied; 3 appended), Work (1, 2 copied). The fake carries out the `n`-th UID
/// COPY and then answers nothing, as Gmail would after the client died: the copy is there,
/// its UID in nobody's state. The re-run must store nothing twice. (Each re-run waits a
/// second for each mailbox the killed run was writing, to let a server session finish:
/// one test per `n` keeps each of them short.)
fn killed_after_copy(n: usize) {
    let run = GmailRun::new(FakeStore::builder().gmail().hang_after_copy(n).start());
    let mut child = run
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn dsync");
    let started = std::time::Instant::now();
    while !run.gmail.hanging() {
        if started.elapsed().as_secs() > 30 || child.try_wait().expect("wait").is_some() {
            let _ = child.kill();
            panic!("no UID COPY number {n}: {:#?}", run.gmail.commands());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    run.gmail.release();
    let copy_commands = run
        .gmail
        .commands()
        .iter()
        .filter(|c| c.to_ascii_uppercase().contains(" UID COPY "))
        .count();
    assert_eq!(copy_commands, n, "{:#?}", run.gmail.commands());

    let rerun = run.run();
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    assert_eq!(run.gmail.stored_messages(), 4, "after COPY {n}: {:#?}", run.gmail.commands());
    assert_labels(&run.gmail, &LABELLED);
    let (appends, _) = run.gmail.appends_and_copies();
    assert_eq!(appends, 4, "after COPY {n}: {:#?}", run.gmail.commands());
    let last = run.run();
    let stdout = String::from_utf8_lossy(&last.stdout);
    assert!(stdout.contains("0 messages saved"), "after COPY {n}: {}", text(&last));
}

#[test]
fn gmail_destination_killed_after_the_first_copy_then_rerun_stores_no_duplicate() {
    killed_after_copy(1);
}

#[test]
fn gmail_destination_killed_after_the_second_copy_then_rerun_stores_no_duplicate() {
    // Work's 1 and 2 were stored in Family by the killed run and paired there, so the
    // re-run sends neither: it finds them in All Mail and copies them.
    killed_after_copy(2);
}

#[test]
fn gmail_destination_killed_after_the_third_copy_then_rerun_stores_no_duplicate() {
    killed_after_copy(3);
}

/// Maildir files of a folder of Dovecot's, and how many of them share their inode.
fn dovecot_files(home: &std::path::Path, folder: &str) -> (usize, usize) {
    let maildir = home.join("Maildir");
    let path = if folder == "INBOX" { maildir } else { maildir.join(format!(".{folder}")) };
    files(&path)
}

/// Checks a re-run's output, and through the destination Dovecot that it changed nothing,
/// UIDs included.
fn assert_rerun_changes_nothing(
    again: &std::process::Output,
    destination: &Dovecot,
    before: &testkit::AccountSnapshot,
) {
    assert_eq!(again.status.code(), Some(0), "{}", text(again));
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(summary.contains("0 messages saved"), "{}", text(again));
    assert!(summary.contains("0 expunged, 0 flag changes"), "{}", text(again));
    let after = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot();
    assert_eq!(&after, before, "the re-run changed the destination");
}

#[test]
fn duplicates_across_folders_are_copied_within_a_dovecot_destination() {
    // Dovecot supports UIDPLUS's COPYUID; its Maildir COPY hard-links the file, which shows
    // on disk that the copies were made there and not sent again.
    let source = source_with_duplicates();
    // Some copies' flags differ from the first stored (Family's, the first folder with
    // 1 and 2): each copy gets the source's, a flag and a keyword fewer or more.
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.store("Family", "1", "-FLAGS (\\Seen)");
    imap.store("Work", "2", "-FLAGS ($Label1)");
    imap.logout();
    let expected = RawImap::login(source.imap_port(), "alice", PASSWORD).snapshot();
    let servers = Servers::new(source);
    let destination = &servers.destination;
    let run = servers.run(&["backup"], &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("4 saved from copies already held"),
        "{}",
        text(&run)
    );
    // Read back through Dovecot: every folder as the source's, flags included.
    let copied = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot();
    assert_carried(&expected, &copied);
    assert_eq!(pairs_hold(&servers.state(), &expected, &copied), 8);
    // 8 files, of which the 4 copies share an inode with the message they were made from.
    let home = destination.home("bob");
    let linked: usize = ["INBOX", "Work", "Family", "Archive"]
        .iter()
        .map(|folder| dovecot_files(&home, folder).1)
        .sum();
    let all: usize =
        ["INBOX", "Work", "Family", "Archive"].iter().map(|f| dovecot_files(&home, f).0).sum();
    assert_eq!((all, linked), (8, 7), "hard links (message 1: 3, 2: 2, 4: 2)");
    assert_rerun_changes_nothing(&servers.run(&["backup"], &[]), destination, &copied);
}

#[test]
fn messages_without_date_or_message_id_are_never_taken_for_copies() {
    // Two different messages of the same size and INTERNALDATE, neither with a Date nor a
    // Message-ID: their header hashes are the same (the hash of no hashed header), so
    // only the GUID, not the content, could say they are one message.
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.create("Work");
    let date = Some("02-Jan-2024 03:04:05 +0000");
    imap.append("INBOX", &["\\Seen"], date, b"Subject: first\r\n\r\nbody one\r\n");
    imap.append("Work", &["\\Seen"], date, b"Subject: other\r\n\r\nbody two\r\n");
    let expected = imap.snapshot();
    imap.logout();
    let servers = Servers::new(source);
    let run = servers.run(&["backup"], &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        !String::from_utf8_lossy(&run.stdout).contains("saved from copies already held"),
        "{}",
        text(&run)
    );
    assert_carried(&expected, &servers.destination_imap().snapshot());
}

#[test]
fn gmail_to_gmail_backup_never_expunges_from_all_mail_what_a_label_keeps() {
    // Message 1 is in INBOX and Work, 2 in Work, 3 in INBOX, 4 in All Mail only.
    let source = FakeStore::builder()
        .gmail()
        .message("INBOX", 1, &["\\Seen"], &fixtures::message(1, "message 1", "a"))
        .message("Work", 1, &["\\Seen"], &fixtures::message(1, "message 1", "a"))
        .message("Work", 2, &[], &fixtures::message(2, "message 2", "b"))
        .message("INBOX", 3, &[], &fixtures::message(3, "message 3", "c"))
        .message(GMAIL_ALL_MAIL, 4, &[], &fixtures::message(4, "message 4", "d"))
        .start();
    let gmail = FakeStore::builder().gmail().start();
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state");
    let password_file = dir.path().join("gmail.pw");
    std::fs::write(&password_file, "app-password\n").expect("password file");
    let from = format!("imap://me@127.0.0.1:{}?tls=none", source.port());
    let to = format!("imap://me@127.0.0.1:{}?tls=none", gmail.port());
    let state = state.to_str().expect("utf-8");
    let password_file = password_file.to_str().expect("utf-8");
    let backup = |filter: &[&str]| {
        let mut args = vec!["backup", "--state-file", state];
        args.extend(["--destination-password-file", password_file]);
        args.extend(filter);
        args.extend([from.as_str(), to.as_str()]);
        dsync(&args, Some("app-password"))
    };
    // With -a the source's X-GM-MSGID identifies each message (later runs: its content).
    let first = backup(&["-a", "\\All"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(gmail.stored_messages(), 4, "{:#?}", gmail.commands());
    // Message 1 appended to INBOX, copied to Work; All Mail (synced last) found 1-3
    // there already and appended only 4.
    assert_eq!(gmail.appends_and_copies(), (4, 1), "{:#?}", gmail.commands());
    assert_labels(
        &gmail,
        &[("INBOX", &[1, 3]), ("Work", &[1, 2]), (GMAIL_ALL_MAIL, &[1, 2, 3, 4])],
    );

    // Message 1 is deleted on the source (from All Mail: from everywhere). A backup that
    // leaves Work out expunges it from INBOX, but not from All Mail: the destination's
    // Work still has it, and expunging it from All Mail would delete it there too.
    let mut imap = RawImap::login(source.port(), "me", "app-password");
    imap.expunge_uids(GMAIL_ALL_MAIL, "1");
    imap.logout();
    let filtered = backup(&["-m", "INBOX", "-m", GMAIL_ALL_MAIL]);
    assert_eq!(filtered.status.code(), Some(0), "{}", text(&filtered));
    assert_labels(&gmail, &[("INBOX", &[3]), ("Work", &[1, 2]), (GMAIL_ALL_MAIL, &[1, 2, 3, 4])]);
    assert!(
        String::from_utf8_lossy(&filtered.stderr).contains("left for the next run"),
        "{}",
        text(&filtered)
    );
    // The whole backup removes the label, then the message.
    let whole = backup(&[]);
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole));
    assert_labels(&gmail, &[("INBOX", &[3]), ("Work", &[2]), (GMAIL_ALL_MAIL, &[2, 3, 4])]);
    assert_eq!(gmail.stored_messages(), 3);
}

#[test]
fn copies_without_copyuid_are_paired_by_content_at_the_next_run() {
    // The fake answers UID COPY without COPYUID: the copies are made, their UIDs unknown.
    let run = GmailRun::new(FakeStore::builder().gmail().without_copyuid().start());
    let first = run.run();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(run.gmail.appends_and_copies(), (4, 4), "{:#?}", run.gmail.commands());
    // The next run finds the copies by content: nothing stored, nothing copied again.
    let again = run.run();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(run.gmail.appends_and_copies(), (4, 4), "{:#?}", run.gmail.commands());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(stderr.matches("recognised by content").count(), 3, "{}", text(&again));
    assert_eq!(run.gmail.stored_messages(), 4);
    assert_labels(&run.gmail, &LABELLED);
    // And the state is whole again: a third run has nothing to find.
    let third = run.run();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(!stderr.contains("recognised by content"), "{}", text(&third));
    assert!(
        String::from_utf8_lossy(&third.stdout).contains("0 messages saved"),
        "{}",
        text(&third)
    );
}

#[test]
fn gmail_trash_gets_its_own_message_never_a_copy() {
    // Message 3 is in INBOX; the trash holds another message with the same bytes (Gmail
    // keeps what is in the trash out of every other folder). A COPY into the trash would
    // move 3 out of INBOX: the trash's message is appended instead.
    let body = fixtures::message(3, "message 3", "c");
    let source = FakeStore::builder()
        .gmail()
        .message("INBOX", 3, &[], &body)
        .message(GMAIL_TRASH, 5, &[], &body)
        .start();
    let gmail = FakeStore::builder().gmail().start();
    let from = format!("imap://me@127.0.0.1:{}?tls=none", source.port());
    let to = format!("imap://me@127.0.0.1:{}?tls=none", gmail.port());
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state");
    let args = ["backup", "--state-file", state.to_str().expect("utf-8"), &from, &to];
    let run = dsync(&args, Some("app-password"));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_labels(
        &gmail,
        &[("INBOX", &[3]), (GMAIL_TRASH, &[3]), (GMAIL_ALL_MAIL, &[3]), (GMAIL_SPAM, &[])],
    );
    assert_eq!(gmail.stored_messages(), 2, "{:#?}", gmail.commands());
    assert_eq!(gmail.appends_and_copies(), (2, 0), "{:#?}", gmail.commands());
}

#[test]
fn one_guid_in_several_maildir_folders_is_copied_only_where_its_date_is_the_same() {
    // A Maildir source whose message file was put into Work and Family under the same
    // name (its GUID there): Work's with the same time as INBOX's but other flags,
    // Family's with another time (`cp` without `-p`). A COPY keeps the date of the
    // message it is made from, so Family's must be sent with its own.
    let dir = tempfile::tempdir().expect("dir");
    let maildir = dir.path().join("Maildir");
    let base = "1700000100.M1P1.test";
    let body = fixtures::message(1, "one name, three folders", "body");
    let same = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_704_164_645);
    let other = same + std::time::Duration::from_secs(86_400);
    let folders = [
        (maildir.clone(), "S", same, "a1"),
        (maildir.join(".Work"), "a", same, "b2"),
        (maildir.join(".Family"), "S", other, "c3"),
    ];
    for (index, (folder, info, time, guid)) in folders.into_iter().enumerate() {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(folder.join(sub)).expect("mkdir");
        }
        let file = folder.join("cur").join(format!("{base}:2,{info}"));
        std::fs::write(&file, &body).expect("message");
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(time))
            .expect("mtime");
        let uidlist = format!("3 V{} N2 G{}\n1 :{base}\n", 1_700_000_001 + index, guid.repeat(16));
        std::fs::write(folder.join("dovecot-uidlist"), uidlist).expect("uidlist");
        std::fs::write(folder.join("dovecot-keywords"), "0 $Label1\n").expect("keywords");
        if folder != maildir {
            std::fs::write(folder.join("maildirfolder"), b"").expect("maildirfolder");
        }
    }
    std::fs::write(maildir.join("subscriptions"), b"Work\nFamily\n").expect("subscriptions");
    let expected = super::served(&maildir);

    let destination = Dovecot::builder().user("bob", DESTINATION_PASSWORD).start();
    std::fs::write(dir.path().join("bob.pw"), format!("{DESTINATION_PASSWORD}\n")).expect("pw");
    let source = format!("maildir:{}", maildir.display());
    let target = format!("imap://bob@127.0.0.1:{}?tls=none", destination.imap_port());
    let backup = || run_into_bob(dir.path(), &["backup"], &[], [&source, &target], None);
    let run = backup();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("1 saved from copies already held"),
        "{}",
        text(&run)
    );
    // Read back through Dovecot: flags, keywords and INTERNALDATE as the source's.
    let copied = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot();
    assert_carried(&expected, &copied);
    assert_eq!(pairs_hold(&dir.path().join("state"), &expected, &copied), 3);
    let home = destination.home("bob");
    let linked: Vec<(usize, usize)> =
        ["INBOX", "Work", "Family"].iter().map(|folder| dovecot_files(&home, folder)).collect();
    assert_eq!(linked, [(1, 1), (1, 1), (1, 0)], "Work's is a hard link of INBOX's");
    assert_rerun_changes_nothing(&backup(), &destination, &copied);
}
