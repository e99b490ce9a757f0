//! `--parallel-folders N` into an IMAP server: N more sessions on each side copy N folders
//! at once, and what the destination Dovecot serves is still exactly the source's mail
//! (folders, subscriptions, bytes, flags, keywords, INTERNALDATE) with every message
//! paired once; a kill -9 mid-run and a re-run leave no duplicate and nothing missing;
//! and two runs on one state at once do not both write (the second stops with 75, or
//! waits with `-l`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Dovecot, RawImap, fixtures};

use super::imap_destination::{
    DESTINATION_PASSWORD, Servers, assert_carried, pairs_hold, uid_nexts,
};
use super::{source_with_fixture, text};

/// The destination Dovecot's logins of bob so far: one per session dsync opened.
fn logins(dovecot: &Dovecot) -> usize {
    dovecot.settled_log(0).matches("Login: user=<bob>").count()
}

/// A Maildir++ with `folders` folders (`F00`, `F01`, …, subscribed every other one) of
/// `messages` messages of `size` bytes each, with flags and keywords that vary.
fn many_folders_maildir(root: &Path, folders: u32, messages: u32, size: usize) {
    let flag_sets = ["S", "FS", "", "RSa", "Sb", "Tab"];
    let mut subscriptions = String::new();
    for folder in 0..=folders {
        let (dir, name) = if folder == 0 {
            (root.to_path_buf(), "INBOX".to_owned())
        } else {
            let name = format!("F{:02}", folder - 1);
            (root.join(format!(".{name}")), name)
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let uid_validity = 1_700_000_000 + folder;
        let mut uidlist = format!("3 V{uid_validity} N{} G{:032x}\n", messages + 1, folder + 1);
        for index in 0..messages {
            let flags = flag_sets[(index + folder) as usize % flag_sets.len()];
            let base = format!("{}.M{index}P{folder}.test", 1_600_000_000 + index * 3_600);
            let file = dir.join("cur").join(format!("{base}:2,{flags}"));
            std::fs::write(&file, fixtures::sized_message(index + folder * 1_000, size))
                .expect("write message");
            // The received date Dovecot serves as INTERNALDATE.
            let time = std::time::UNIX_EPOCH
                + Duration::from_secs(1_600_000_000 + u64::from(index) * 3_600);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_modified(time))
                .expect("set mtime");
            let _ = writeln!(uidlist, "{} :{base}", index + 1);
        }
        std::fs::write(dir.join("dovecot-uidlist"), uidlist).expect("uidlist");
        std::fs::write(dir.join("dovecot-keywords"), "0 $Label1\n1 Work\n").expect("keywords");
        if folder > 0 {
            std::fs::write(dir.join("maildirfolder"), b"").expect("maildirfolder");
            if folder % 2 == 1 {
                subscriptions.push_str(&name);
                subscriptions.push('\n');
            }
        }
    }
    std::fs::write(root.join("subscriptions"), subscriptions).expect("subscriptions");
}

/// A Maildir source of many folders, a destination Dovecot, and the command line of a
/// backup between them with its state file.
struct MaildirToImap {
    dir: tempfile::TempDir,
    maildir: PathBuf,
    destination: Dovecot,
}

impl MaildirToImap {
    fn new(folders: u32, messages: u32, size: usize) -> MaildirToImap {
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("Maildir");
        many_folders_maildir(&maildir, folders, messages, size);
        let destination = Dovecot::builder().user("bob", DESTINATION_PASSWORD).start();
        std::fs::write(dir.path().join("bob.pw"), format!("{DESTINATION_PASSWORD}\n"))
            .expect("password");
        MaildirToImap { dir, maildir, destination }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, extra: &[&str]) -> Command {
        let target = format!("imap://bob@127.0.0.1:{}?tls=none", self.destination.imap_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
        command
            .args(["backup", "--state-file"])
            .arg(self.state())
            .arg("--destination-password-file")
            .arg(self.dir.path().join("bob.pw"))
            .args(extra)
            .arg(format!("maildir:{}", self.maildir.display()))
            .arg(target)
            .env_remove("DSYNC_PASSWORD");
        command
    }

    fn served(&self) -> testkit::AccountSnapshot {
        RawImap::login(self.destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot()
    }
}

#[test]
fn a_parallel_backup_into_imap_carries_every_folder_once_and_a_rerun_saves_nothing() {
    let (source, _) = source_with_fixture();
    let mut imap = RawImap::login(source.imap_port(), "alice", super::PASSWORD);
    for folder in 0..8 {
        let name = format!("Projects/P{folder}");
        imap.create(&name);
        if folder % 2 == 0 {
            imap.subscribe(&name);
        }
        for index in 0..6 {
            let flags: &[&str] = match index % 3 {
                0 => &["\\Seen", "$Label1"],
                1 => &["\\Flagged", "Work"],
                _ => &[],
            };
            let date = format!("0{}-Mar-2023 1{index}:00:00 +0100", folder + 1);
            let body = fixtures::message(folder * 10 + index, "Parallel", "one of many folders");
            imap.append(&name, flags, Some(&date), &body);
        }
    }
    let expected = imap.snapshot();
    drop(imap);
    let servers = Servers::new(source);

    let first = servers.run(&["backup"], &["--parallel-folders", "4"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let sessions = logins(&servers.destination);
    // The run's own session and a worker's at least (4 when all could log in).
    assert!(sessions >= 3, "{sessions} sessions on the destination: no workers");
    let copied = servers.destination_imap().snapshot();
    assert_carried(&expected, &copied);
    assert_eq!(pairs_hold(&servers.state(), &expected, &copied), expected.message_count());

    // A re-run saves nothing and opens no worker: every folder is unchanged.
    let before = logins(&servers.destination);
    let again = servers.run(&["backup"], &["--parallel-folders", "4"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(summary.contains("0 messages saved"), "{}", text(&again));
    assert_eq!(logins(&servers.destination), before + 1, "the re-run opened workers");
    assert_eq!(uid_nexts(&servers.destination_imap().snapshot()), uid_nexts(&copied));

    // sync -1 with workers: new mail and flags in several folders travel.
    let mut imap = servers.source_imap();
    for folder in [1, 4, 6] {
        let name = format!("Projects/P{folder}");
        let body = fixtures::message(900 + folder, "Later", "after the first run");
        imap.append(&name, &["Work"], Some("01-Jan-2024 08:00:00 +0000"), &body);
        imap.store(&name, "1", "+FLAGS (\\Answered)");
    }
    let changed = imap.snapshot();
    drop(imap);
    let before = logins(&servers.destination);
    let merged = servers.run(&["sync", "-1"], &["--parallel-folders", "4"]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    assert!(logins(&servers.destination) >= before + 3, "sync -1 used no workers");
    let after = servers.destination_imap().snapshot();
    assert_carried(&changed, &after);
    assert_eq!(pairs_hold(&servers.state(), &changed, &after), changed.message_count());
}

#[test]
fn kill_9_during_a_parallel_backup_into_imap_then_a_rerun_leaves_no_duplicate() {
    let setup = MaildirToImap::new(10, 60, 8 << 10);
    let expected = super::served(&setup.maildir);
    let mut killed = 0;
    for delay in [200, 400, 600, 900, 1300] {
        let mut run = setup.command(&["--parallel-folders", "4"]);
        let mut run = run.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(delay));
        if run.try_wait().expect("wait").is_none() {
            run.kill().expect("SIGKILL");
            killed += 1;
        }
        run.wait().expect("reaped");
    }
    assert!(killed >= 2, "dsync was killed mid-run only {killed} times");
    let last = setup.command(&["--parallel-folders", "4"]).output().expect("run dsync");
    assert_eq!(last.status.code(), Some(0), "{}", text(&last));
    let copied = setup.served();
    assert_carried(&expected, &copied);
    assert_eq!(pairs_hold(&setup.state(), &expected, &copied), expected.message_count());
}

#[test]
fn a_second_run_on_the_same_state_stops_with_75_or_waits_and_nothing_is_doubled() {
    let setup = MaildirToImap::new(4, 150, 16 << 10);
    let expected = super::served(&setup.maildir);
    let mut first =
        setup.command(&[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    // The first run is copying once its first save is recorded in the state.
    let started = Instant::now();
    while !setup.state().exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the first run saved nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = setup.command(&[]).output().expect("run dsync");
    assert!(first.try_wait().expect("wait").is_none(), "the first run ended too soon to test");
    assert_eq!(second.status.code(), Some(75), "{}", text(&second));
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("is being written by another dsync"), "{message}");
    assert!(message.contains(&format!("(process {})", first.id())), "{message}");
    // A third one waits for the first, then finds nothing left to do.
    let third = setup.command(&["-l", "120"]).output().expect("run dsync");
    assert_eq!(first.wait().expect("first run").code(), Some(0));
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert!(
        String::from_utf8_lossy(&third.stdout).contains("0 messages saved"),
        "{}",
        text(&third)
    );
    let copied = setup.served();
    assert_carried(&expected, &copied);
    assert_eq!(pairs_hold(&setup.state(), &expected, &copied), expected.message_count());
}

/// The destination change token the state keeps for `mailbox` (`UIDVALIDITY/UIDNEXT/
/// MESSAGES/HIGHESTMODSEQ`).
fn destination_token(state: &Path, mailbox: &str) -> Option<String> {
    let text = std::fs::read_to_string(state).expect("state file");
    let state = dsync_core::state::SyncState::decode(&text).expect("readable state");
    let name = dsync_core::MailboxName::split(mailbox, Some('/')).expect("name");
    state.pairs.get(&name).and_then(|entry| entry.destination_token.clone())
}

#[test]
fn a_full_backup_into_imap_keeps_the_tokens_of_what_it_wrote_even_into_an_existing_inbox() {
    // INBOX exists on the destination before the run, so its listing answered for it (with
    // its status, empty): the token kept after the copy must be the status after it, or
    // the next run lists INBOX again for nothing.
    for parallel in ["1", "3"] {
        let (source, expected) = source_with_fixture();
        let servers = Servers::new(source);
        let run = servers.run(&["backup"], &["--parallel-folders", parallel]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
        let (messages, uid_next, uid_validity) = servers.destination_imap().status("INBOX");
        assert_eq!(messages as usize, expected.mailboxes["INBOX"].messages.len());
        let token = destination_token(&servers.state(), "INBOX").expect("INBOX has a token");
        assert!(
            token.starts_with(&format!("{uid_validity}/{uid_next}/{messages}/")),
            "--parallel-folders {parallel}: INBOX's token {token} is not UIDVALIDITY \
             {uid_validity}, UIDNEXT {uid_next}, {messages} messages"
        );
    }
}
