//! A hostile Maildir as the source of `dsync backup`: no byte from outside the source tree
//! reaches the destination, nothing hangs, nothing is left behind in silence. Every entry
//! that is not copied is named on stderr and the run exits 65, again on every re-run; the
//! rest is copied, and what Dovecot lists under a non-canonical name is copied under that
//! name (the destination's Dovecot then even opens it).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mailstore::{Flags, Location, MailboxName, Maildir, SaveOptions};
use testkit::{MAIL_GID, MAIL_UID};

use super::{output_within_a_minute, served, text};

const SECRET: &str = "TOP-SECRET-5b0c77";

/// Runs `dsync ARGS` (as `uid` when given), killed after 60 s: a hang fails the test
/// instead of blocking it.
fn dsync_with_deadline(args: &[&str], uid: Option<u32>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
    command.args(args);
    if let Some(uid) = uid {
        command.uid(uid).gid(MAIL_GID);
    }
    output_within_a_minute(&mut command)
}

/// Saves `body` into `name` of `maildir` (created when missing), \Seen, one commit.
pub(super) fn save(maildir: &Maildir, name: &str, body: &str) {
    let name: MailboxName = name.parse().expect("name");
    let mut mailbox = match maildir.mailbox(&name) {
        Ok(mailbox) => mailbox,
        Err(_) => maildir.create_mailbox(&name, None, None).expect("create"),
    };
    let mut pending = mailbox.begin_save().expect("begin");
    std::io::Write::write_all(&mut pending, body.as_bytes()).expect("write");
    let options = SaveOptions::default().with_flags(Flags::SEEN).with_received(1_700_000_000);
    mailbox.save(pending, options).expect("save");
    mailbox.commit().expect("commit");
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Every file below `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let kind = fs::symlink_metadata(&path).expect("lstat").file_type();
        if kind.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if kind.is_file()
            && String::from_utf8_lossy(&fs::read(&path).expect("read")).contains(needle)
        {
            found.push(path);
        }
    }
    found
}

/// The `dsync: skipped: …` lines of a run, sorted.
fn skipped(output: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| line.strip_prefix("dsync: skipped: "))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_hostile_maildir_source_leaks_nothing_hangs_nowhere_and_reports_each_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path();
    let root = base.join("source");
    let maildir = Maildir::open(Location::maildir(&root));
    for (folder, body) in [("INBOX", "inbox"), ("Archive", "archive"), ("Odd", "odd")] {
        save(&maildir, folder, &format!("Subject: {body}\n\n{body}\n"));
    }
    // What Dovecot lists as `&AGE` (not modified UTF-7), with its mail.
    fs::rename(root.join(".Odd"), root.join(".&AGE")).expect("rename");
    // What Dovecot lists as `a//b` and as `a<TAB>b`: it cannot open either.
    for folder in [".a..b", ".a\tb"] {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(folder).join(sub)).expect("odd folder");
        }
    }
    fs::write(base.join("secret"), format!("Subject: {SECRET}\n\n{SECRET}\n")).expect("secret");
    let outside = base.join("outside");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(outside.join(sub)).expect("outside");
    }
    fs::write(outside.join("cur/1700000001.M1P1.evil:2,S"), SECRET).expect("outside mail");
    // A message file that is a symlink to the secret, a folder that is a symlink to a folder
    // outside, a folder whose cur/ is a symlink to one outside.
    symlink(base.join("secret"), root.join("cur/1700000002.M2P2.evil:2,S")).expect("symlink");
    symlink(&outside, root.join(".Linked")).expect("folder symlink");
    for sub in ["new", "tmp"] {
        fs::create_dir_all(root.join(".Curlink").join(sub)).expect("curlink");
    }
    symlink(outside.join("cur"), root.join(".Curlink/cur")).expect("cur symlink");
    // A FIFO in new/ (reading it blocks forever) and a socket in Archive's cur/.
    mkfifo(&root.join("new/1700000003.M3P3.fifo"));
    let _socket =
        std::os::unix::net::UnixListener::bind(root.join(".Archive/cur/1700000004.M4P4.sock"))
            .expect("socket");

    let destination = base.join("destination");
    let source_location = format!("maildir:{}", root.display());
    let target = format!("maildir:{}", destination.display());
    let first = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(first.status.code(), Some(65), "{}", text(&first));
    let expected = [
        format!(
            "source mailbox Curlink: .Curlink/cur: a symlink to {}, outside the Maildir: not \
             followed",
            outside.join("cur").display()
        ),
        format!(
            "source mailbox INBOX: cur/1700000002.M2P2.evil:2,S: a symlink to {}, outside the \
             Maildir: not followed",
            base.join("secret").display()
        ),
        "source mailbox INBOX: new/1700000003.M3P3.fifo: a FIFO (named pipe), not a regular file"
            .to_string(),
        "source mailbox Archive: .Archive/cur/1700000004.M4P4.sock: a socket, not a regular file"
            .to_string(),
        format!(
            "source mailbox Linked: .Linked: a symlink to {}, outside the Maildir: not followed",
            outside.display()
        ),
        "source: .a\\x09b: folder name \"a\\x09b\" cannot be used: component contains a control \
         character"
            .to_string(),
        "source: .a..b: folder name \"a//b\" cannot be used: empty component".to_string(),
    ];
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(skipped(&first), expected, "{}", text(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("7 entries skipped"),
        "{}",
        text(&first)
    );

    assert_eq!(files_holding(&destination, SECRET), Vec::<PathBuf>::new());
    // Everything else is there, as a mail client sees it through Dovecot; `&AGE`, which the
    // source's Dovecot lists but cannot open, now has a canonical name and opens.
    let snapshot = served(&destination);
    let mut names: Vec<&str> = snapshot.mailboxes.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["&-AGE", "Archive", "Curlink", "INBOX"]);
    let bodies = |name: &str| -> Vec<String> {
        snapshot.mailboxes[name]
            .messages
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .collect()
    };
    assert_eq!(bodies("INBOX"), ["Subject: inbox\r\n\r\ninbox\r\n"]);
    assert_eq!(bodies("Archive"), ["Subject: archive\r\n\r\narchive\r\n"]);
    assert_eq!(bodies("&-AGE"), ["Subject: odd\r\n\r\nodd\r\n"]);
    assert!(bodies("Curlink").is_empty());

    // Nothing changed: the same entries are reported again, not passed over as synced.
    let again = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(again.status.code(), Some(65), "{}", text(&again));
    assert_eq!(skipped(&again), expected, "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 messages saved"),
        "{}",
        text(&again)
    );

    // --json lists them too.
    let json = dsync_with_deadline(&["backup", "--json", &source_location, &target], None);
    assert_eq!(json.status.code(), Some(65), "{}", text(&json));
    let stdout = String::from_utf8_lossy(&json.stdout);
    assert!(stdout.contains("new/1700000003.M3P3.fifo"), "{stdout}");
    assert!(!stdout.contains(SECRET), "{stdout}");

    // A verification cannot pass over what it could not read either.
    let verify = dsync_with_deadline(&["verify", &source_location, &target], None);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(said.contains("new/1700000003.M3P3.fifo was not read"), "{}", text(&verify));
}

#[test]
fn a_message_file_the_running_user_cannot_read_is_reported_not_fatal() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = dir.path().join("source");
    let maildir = Maildir::open(Location::maildir(&root));
    save(&maildir, "INBOX", "Subject: readable\n\nreadable\n");
    save(&maildir, "Private", "Subject: private\n\nprivate\n");
    testkit::chown_to_mail_user(&root);
    // One file stays root's, mode 0600: the mail user cannot read it (Dovecot fails the
    // whole FETCH and disconnects).
    let private = fs::read_dir(root.join(".Private/cur"))
        .expect("cur")
        .next()
        .expect("one message")
        .expect("entry")
        .path();
    std::os::unix::fs::chown(&private, Some(0), Some(0)).expect("chown");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).expect("chmod");
    let destination = dir.path().join("destination");
    fs::create_dir(&destination).expect("destination");
    std::os::unix::fs::chown(&destination, Some(MAIL_UID), Some(MAIL_GID)).expect("chown");

    let source_location = format!("maildir:{}", root.display());
    let target = format!("maildir:{}", destination.display());
    let run = dsync_with_deadline(&["backup", &source_location, &target], Some(MAIL_UID));
    assert_eq!(run.status.code(), Some(65), "{}", text(&run));
    let file_name = private.file_name().expect("name").to_string_lossy().into_owned();
    assert_eq!(
        skipped(&run),
        [format!(
            "source mailbox Private: .Private/cur/{file_name}: cannot be read: Permission denied \
             (os error 13)"
        )],
        "{}",
        text(&run)
    );
    let copied = Maildir::open(Location::maildir(&destination));
    assert_eq!(
        copied.mailbox(&MailboxName::inbox()).expect("INBOX").messages().expect("list").len(),
        1
    );
    assert!(copied.mailbox(&"Private".parse().expect("name")).is_ok(), "the folder is created");
}

/// A Maildir another program writes (procmail, Courier): `cur/ new/ tmp/` and mail files,
/// no `dovecot-uidlist`. Each message is `Subject: NAME`, its file named after `time`.
fn drop_message(root: &Path, sub: &str, time: u64, name: &str) -> PathBuf {
    for dir in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(dir)).expect("maildir");
    }
    let file = root
        .join(sub)
        .join(format!("{time}.M{time}P1.mta{}", if sub == "cur" { ":2,S" } else { "" }));
    fs::write(&file, format!("Subject: {name}\n\n{name}\n")).expect("drop message");
    file
}

/// A mailbox as Dovecot serves it: name, UIDVALIDITY, (UID, subject line) of each message.
type ServedUids = (String, u32, Vec<(u32, String)>);

/// [`ServedUids`] of each mailbox of the backup.
fn uids_served(destination: &Path) -> Vec<ServedUids> {
    served(destination)
        .mailboxes
        .into_iter()
        .map(|(name, mailbox)| {
            let messages = mailbox
                .messages
                .iter()
                .map(|m| {
                    let body = String::from_utf8_lossy(&m.body);
                    (m.uid, body.lines().next().unwrap_or_default().to_string())
                })
                .collect();
            (name, mailbox.uid_validity, messages)
        })
        .collect()
}

fn saved_count(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.split_once(" messages saved").map(|(head, _)| head))
        .and_then(|head| head.rsplit([' ', ',']).next())
        .map_or_else(|| panic!("no summary: {}", text(output)), str::to_string)
}

#[test]
fn a_maildir_without_dovecot_uidlist_keeps_its_uids_across_stateful_reruns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("source");
    drop_message(&root, "cur", 1_700_000_001, "one");
    drop_message(&root, "cur", 1_700_000_002, "two");
    let three = drop_message(&root, "new", 1_700_000_003, "three");
    drop_message(&root.join(".Archive"), "cur", 1_700_000_004, "archived");
    fs::write(root.join(".Archive/maildirfolder"), "").expect("maildirfolder");
    let before = fs::read_dir(&root).expect("root").count();

    let destination = dir.path().join("destination");
    let source_location = format!("maildir:{}", root.display());
    let target = format!("maildir:{}", destination.display());
    let first = dsync_with_deadline(&["backup", &source_location, &target], None);
    let first_done = Instant::now();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(saved_count(&first), "4");
    let copied = uids_served(&destination);
    let subject = |s: &str| format!("Subject: {s}");
    assert_eq!(copied[0].0, "Archive");
    assert_eq!(copied[0].2, [(1, subject("archived"))]);
    assert_eq!(copied[1].0, "INBOX");
    assert_eq!(copied[1].2, [(1, subject("one")), (2, subject("two")), (3, subject("three"))]);

    // Another program delivers one message and deletes one between the runs.
    fs::remove_file(&three).expect("expunge");
    drop_message(&root, "new", 1_700_000_005, "four");
    let second = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(saved_count(&second), "1", "only the new message is copied");
    let after = uids_served(&destination);
    assert_eq!(after[0], copied[0], "Archive: same UIDVALIDITY and UIDs");
    assert_eq!(after[1].1, copied[1].1, "INBOX keeps its UIDVALIDITY");
    assert_eq!(
        after[1].2,
        [(1, subject("one")), (2, subject("two")), (4, subject("four"))],
        "old UIDs kept, the new message gets the next UID, not the deleted one's"
    );

    let third = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert_eq!(saved_count(&third), "0");
    assert_eq!(uids_served(&destination), after);
    // `verify` (and `backup --verify`) compare the source under the UIDs the runs kept,
    // also in another second than the one that made up its UIDVALIDITY.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(first_done.elapsed()));
    let verify = dsync_with_deadline(&["verify", &source_location, &target], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    let checked =
        dsync_with_deadline(&["backup", "--verify=metadata", &source_location, &target], None);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains("0 differences"),
        "{}",
        text(&checked)
    );
    // Nothing was written into the source.
    assert_eq!(fs::read_dir(&root).expect("root").count(), before);
    assert!(
        !root.join("dovecot-uidlist").exists() && !root.join(".Archive/dovecot-uidlist").exists()
    );
}

/// A Courier-IMAP Maildir (`courierimapuiddb`, no `dovecot-uidlist`): the backup keeps the
/// UIDVALIDITY and UIDs Courier gave, so the clients of the Courier server keep their
/// caches; a file Courier has not numbered gets its next UID, and later runs go on from
/// there.
#[test]
fn a_courier_maildir_keeps_the_uids_courier_gave() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("source");
    let one = drop_message(&root, "cur", 1_700_000_001, "one");
    let two = drop_message(&root, "new", 1_700_000_002, "two");
    drop_message(&root, "cur", 1_700_000_003, "unnumbered");
    let name = |path: &Path| path.file_name().expect("name").to_string_lossy().into_owned();
    // Courier lists names as they were when it numbered them, also a file since gone.
    let uiddb = format!(
        "1 1234567 10\n3 {}\n5 1600000000.M1P1.gone:2,S\n7 {}\n",
        name(&one).replace(":2,S", ":2,"),
        name(&two)
    );
    fs::write(root.join("courierimapuiddb"), uiddb).expect("courierimapuiddb");
    let destination = dir.path().join("destination");
    let source_location = format!("maildir:{}", root.display());
    let target = format!("maildir:{}", destination.display());
    let first = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let subject = |s: &str| format!("Subject: {s}");
    let copied = uids_served(&destination);
    assert_eq!(
        copied,
        [(
            "INBOX".to_string(),
            1_234_567,
            vec![(3, subject("one")), (7, subject("two")), (10, subject("unnumbered"))]
        )]
    );
    drop_message(&root, "new", 1_700_000_004, "later");
    let second = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(saved_count(&second), "1");
    let mut expected = copied[0].2.clone();
    expected.push((11, subject("later")));
    assert_eq!(uids_served(&destination), [("INBOX".to_string(), 1_234_567, expected)]);
}

/// Puts `cur/` and `new/` of `root` half a minute in the past: a run trusts their stamps
/// (as a second after the change), so a re-run answers from its kept listing.
fn settle(root: &Path) {
    let then = std::time::SystemTime::now() - Duration::from_secs(30);
    for sub in ["cur", "new"] {
        fs::File::open(root.join(sub)).expect("dir").set_modified(then).expect("mtime");
    }
}

/// What Dovecot serves of INBOX at `root`, UIDs aside (it numbers a copy of a source
/// without `dovecot-uidlist` itself): flags, date and body of each message, by body.
fn served_messages(root: &Path) -> Vec<(Vec<u8>, Vec<String>, i64)> {
    let mut messages: Vec<_> = served(root).mailboxes["INBOX"]
        .messages
        .iter()
        .map(|m| (m.body.clone(), m.flags.clone(), m.internal_date))
        .collect();
    messages.sort();
    messages
}

/// A re-run from a `maildir:` source after flag changes, deliveries, expunges from `cur/`
/// and `new/` and a move to `cur/` reads the folder's names against the listing kept beside
/// the state (`dsync-rs-state.listing.*`) and copies only what changed: the destination
/// Dovecot serves is the source Dovecot serves.
#[test]
fn a_maildir_source_rerun_from_its_kept_listing_is_what_dovecot_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("source");
    let mut cur = Vec::new();
    for n in 0..12 {
        cur.push(drop_message(&root, "cur", 1_700_000_000 + n, &format!("m{n}")));
    }
    let new: Vec<PathBuf> =
        (20..23).map(|n| drop_message(&root, "new", 1_700_000_000 + n, &format!("n{n}"))).collect();
    settle(&root);
    let destination = dir.path().join("destination");
    let source_location = format!("maildir:{}", root.display());
    let target = format!("maildir:{}", destination.display());
    let first = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let kept = fs::read_dir(&destination)
        .expect("destination")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains("state.listing"))
        })
        .count();
    assert_eq!(kept, 1, "one listing kept for INBOX");

    for file in &cur[2..5] {
        let name = file.to_string_lossy().replace(":2,S", ":2,FS");
        fs::rename(file, name).expect("flag change");
    }
    fs::remove_file(&cur[7]).expect("expunge from cur/");
    fs::remove_file(&new[0]).expect("expunge from new/");
    let moved = new[1].file_name().expect("name").to_string_lossy().into_owned();
    fs::rename(&new[1], root.join("cur").join(format!("{moved}:2,RS"))).expect("read, answered");
    drop_message(&root, "new", 1_700_000_030, "delivered");
    settle(&root);
    let second = dsync_with_deadline(&["backup", &source_location, &target], None);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(saved_count(&second), "1", "only the new message is copied: {}", text(&second));
    assert_eq!(served_messages(&destination), served_messages(&root));
}
