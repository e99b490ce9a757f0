//! The summary must be true: what a run prints counts what it committed (across
//! reconnects, up to a full disk), ends with how it ended, says what the filters left out,
//! and `backup --verify` ends with a verdict of its own.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use testkit::{AccountSnapshot, CuttingProxy, Dovecot, RawImap, fixtures};

use super::{PASSWORD, dsync, served, source_with_fixture, text};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

fn imap(port: u16) -> String {
    format!("imap://alice@127.0.0.1:{port}?tls=none")
}

fn selectable(snapshot: &AccountSnapshot) -> usize {
    snapshot.mailboxes.values().filter(|m| m.selectable).count()
}

/// Runs dsync with stdout and stderr into one file, so the order of the lines is the order
/// an operator sees them in; returns the exit code and the lines.
fn dsync_merged(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let path = dir.join("merged-output");
    let file = File::create(&path).expect("create output file");
    let status = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .env("DSYNC_PASSWORD", PASSWORD)
        .stdout(Stdio::from(file.try_clone().expect("clone")))
        .stderr(Stdio::from(file))
        .status()
        .expect("run dsync");
    let output = std::fs::read_to_string(&path).expect("read output");
    assert!(!output.contains(PASSWORD), "the password appeared in the output:\n{output}");
    (status.code(), output)
}

/// A source account: the standard fixture and a `Bulk` folder of `count` messages of
/// `size` bytes each.
fn source_with_bulk(count: u32, size: usize) -> (Dovecot, AccountSnapshot) {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut session = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    fixtures::populate_standard(&mut session);
    session.create("Bulk");
    for index in 0..count {
        session.append("Bulk", &["\\Seen"], None, &fixtures::sized_message(1000 + index, size));
    }
    let snapshot = session.snapshot();
    (dovecot, snapshot)
}

/// The connection is cut in the middle of the copy (by a proxy in front of the real
/// Dovecot: Dovecot does not drop a session at a chosen byte) and dsync reconnects: the
/// summary counts what both attempts committed, not only the second's.
#[test]
fn a_reconnected_run_counts_what_every_attempt_committed() {
    let (source, expected) = source_with_bulk(120, 4 * 1024);
    let proxy = CuttingProxy::start(source.imap_port(), 600_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let location = imap(proxy.port());
    let target = maildir(&destination);
    let args = [
        "backup",
        "--retries",
        "1",
        "--commit-interval",
        "10",
        "-o",
        "imapc_connection_retry_interval=50",
        &location,
        &target,
    ];
    let run = dsync(&args, Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(proxy.was_cut() && proxy.connections() >= 2, "the connection was never cut");
    expected.assert_same(&served(&destination));
    let (mailboxes, messages) = (selectable(&expected), expected.message_count());
    let summary = stdout(&run);
    assert!(
        summary.contains(&format!(
            "{mailboxes} mailboxes ({mailboxes} created), {messages} messages saved"
        )),
        "{}",
        text(&run)
    );
    assert!(summary.contains("(1 reconnect)"), "{}", text(&run));
}

/// Unmounts a tmpfs when dropped, also when the test fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`) at `path`; the tests run as root.
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(mounted.success(), "mounting a tmpfs needs root (the tests run as root)");
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A destination that fills up: the run fails with 73, its summary line says so first and
/// counts exactly the messages that were committed (Dovecot serves that many), and the
/// error that stopped it comes after the summary.
#[test]
fn a_full_disk_reports_what_was_committed_after_the_status() {
    let (source, _) = source_with_bulk(200, 8 * 1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Tmpfs::mount(&dir.path().join("disk"), "1m");
    let destination = disk.0.join("Maildir");
    let location = imap(source.imap_port());
    let target = maildir(&destination);
    let (code, output) = dsync_merged(
        &["backup", "--commit-interval", "10", "--retries", "0", &location, &target],
        dir.path(),
    );
    assert_eq!(code, Some(73), "{output}");
    let held = served(&destination).message_count();
    assert!(held > 0, "nothing was committed before the disk was full:\n{output}");
    let lines: Vec<&str> = output.lines().collect();
    let summary = lines
        .iter()
        .position(|line| line.starts_with("backup "))
        .unwrap_or_else(|| panic!("no summary line:\n{output}"));
    assert!(lines[summary].contains(": FAILED (exit 73): "), "{output}");
    assert!(lines[summary].contains(&format!(" {held} messages saved")), "{output}");
    let error = lines
        .iter()
        .position(|line| line.contains("No space left on device"))
        .unwrap_or_else(|| panic!("the error is not shown:\n{output}"));
    assert!(error > summary, "the error must follow the summary:\n{output}");
}

/// Filters that select nothing are said so (and write nothing); what `-I` left out is
/// counted with its reason, in the summary and in `--json`.
#[test]
fn filters_say_what_they_left_out() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let location = imap(source.imap_port());

    for filter in [["-m", "NoSuchFolder"], ["-x", "*"]] {
        let destination = dir.path().join(format!("nothing{}", filter[0]));
        let run = dsync(
            &["backup", filter[0], filter[1], &location, &maildir(&destination)],
            Some(PASSWORD),
        );
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
        let mailboxes = selectable(&expected);
        assert!(
            stderr(&run).contains(&format!(
                "the mailbox filters (-m, -x) leave none of the source's {mailboxes} mailboxes: nothing to sync"
            )),
            "{}",
            text(&run)
        );
        assert!(
            stdout(&run).contains(&format!("not copied (filters): {mailboxes} mailboxes (-m/-x)")),
            "{}",
            text(&run)
        );
        assert!(!destination.exists(), "a directory that is no Maildir was left behind");
    }
    let typo = dsync(
        &["backup", "-m", "INBOX", "-m", "Snet", &location, &maildir(&dir.path().join("typo"))],
        Some(PASSWORD),
    );
    assert_eq!(typo.status.code(), Some(0), "{}", text(&typo));
    assert!(stderr(&typo).contains("-m Snet matches no mailbox of the source"), "{}", text(&typo));

    let larger: usize = expected
        .mailboxes
        .values()
        .flat_map(|m| &m.messages)
        .filter(|m| m.body.len() > 10 * 1024)
        .count();
    assert!(larger > 0, "the fixture has a large message");
    let destination = dir.path().join("small");
    let run = dsync(&["backup", "-I", "10k", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        stdout(&run).contains(&format!(
            "not copied (filters): {larger} messages larger than 10.0 KiB (-I)"
        )),
        "{}",
        text(&run)
    );
    let json = dsync(
        &["backup", "--json", "-f", "-I", "10k", &location, &maildir(&destination)],
        Some(PASSWORD),
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["users"][0]["filtered"]["larger"], larger, "{}", text(&json));
    assert_eq!(report["users"][0]["filtered"]["mailboxes"], 0, "{}", text(&json));
}

/// A message inside `-O` that a filtered run cannot save any more (its UID is below the
/// destination's UIDNEXT) gets a warning that says why and what to do; an unfiltered
/// two-way sync never warns about filters.
#[test]
fn the_filter_warning_says_what_it_means_and_only_with_filters() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut session = RawImap::login(source.imap_port(), "alice", PASSWORD);
    for index in 0..3 {
        let flags: &[&str] = if index == 2 { &["\\Flagged"] } else { &[] };
        session.append("INBOX", flags, None, &fixtures::message(index, "m", "body"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("flagged");
    let location = imap(source.imap_port());
    let first =
        dsync(&["backup", "-O", "\\Flagged", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    session.store("INBOX", "1", "+FLAGS (\\Flagged)");
    let second =
        dsync(&["backup", "-O", "\\Flagged", &location, &maildir(&destination)], Some(PASSWORD));
    assert!(
        stderr(&second).contains(
            "1 messages inside the message filters (-t/-e/-I/-O) were not saved: their UIDs are below the destination's UIDNEXT"
        ),
        "{}",
        text(&second)
    );

    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let backup = dsync(&["backup", &location, &maildir(&a)], Some(PASSWORD));
    assert_eq!(backup.status.code(), Some(0), "{}", text(&backup));
    let two_way = dsync(&["sync", &maildir(&a), &maildir(&b)], None);
    assert_eq!(two_way.status.code(), Some(0), "{}", text(&two_way));
    assert!(!text(&two_way).contains("filters"), "{}", text(&two_way));
}

/// `dsync verify` with a `-m` that matches nothing, or filters that leave nothing, has
/// compared nothing: that is no pass (exit 68), where it said "0 differences" and 0.
#[test]
fn a_verification_that_compared_nothing_fails() {
    let (source, _) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let location = imap(source.imap_port());
    let backup = dsync(&["backup", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(backup.status.code(), Some(0), "{}", text(&backup));

    let typo =
        dsync(&["verify", "-m", "NoSuchFolder", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(typo.status.code(), Some(68), "{}", text(&typo));
    assert!(
        stderr(&typo).contains("-m NoSuchFolder matches no mailbox on either side"),
        "{}",
        text(&typo)
    );
    let partly = dsync(
        &["verify", "-m", "INBOX", "-m", "Snet", &location, &maildir(&destination)],
        Some(PASSWORD),
    );
    assert_eq!(partly.status.code(), Some(68), "{}", text(&partly));
    let nothing = dsync(&["verify", "-x", "*", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(nothing.status.code(), Some(68), "{}", text(&nothing));
    let inbox =
        dsync(&["verify", "-m", "INBOX", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(inbox.status.code(), Some(0), "{}", text(&inbox));
}

/// `check -F` copies nothing, and its table says so.
#[test]
fn check_batch_finds_messages_it_does_not_copy() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users");
    std::fs::write(&users, "alice\n").expect("write users");
    let check = dsync(
        &[
            "check",
            "-F",
            users.to_str().expect("utf-8"),
            "--log-dir",
            dir.path().join("logs").to_str().expect("utf-8"),
            &format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port()),
        ],
        Some(PASSWORD),
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let table = stdout(&check);
    assert!(table.contains(&format!("{} messages (", expected.message_count())), "{table}");
    assert!(table.trim_end().ends_with("found"), "{table}");
    assert!(!table.contains("copied"), "{table}");
}

/// `backup --verify` ends with the verdict of a comparison: identical after a clean run
/// (also with `=bodies`); a folder whose name the destination cannot keep (a `.` in a
/// Maildir++ name becomes `_`) is a difference, and the run exits 1, as `dsync verify`.
#[test]
fn backup_verify_ends_with_a_verdict() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let location = imap(source.imap_port());
    let destination = dir.path().join("Maildir");
    let run = dsync(&["backup", "--verify", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let (mailboxes, messages) = (selectable(&expected), expected.message_count());
    let verdict = format!(
        "verify {location} <-> {}: {mailboxes} mailboxes and {messages} messages compared (metadata), 0 differences",
        maildir(&destination)
    );
    assert!(stdout(&run).lines().last() == Some(verdict.as_str()), "{}", text(&run));
    let bodies =
        dsync(&["backup", "--verify=bodies", &location, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(bodies.status.code(), Some(0), "{}", text(&bodies));
    assert!(
        stdout(&bodies).contains("compared (metadata and contents), 0 differences"),
        "{}",
        text(&bodies)
    );

    // A source whose folder names may contain dots (LAYOUT=fs).
    let dotted =
        Dovecot::builder().user_with_mail("alice", PASSWORD, "maildir:~/Maildir:LAYOUT=fs").start();
    let mut session = RawImap::login(dotted.imap_port(), "alice", PASSWORD);
    session.create("Reports.2023");
    session.append("Reports.2023", &[], None, &fixtures::message(1, "report", "numbers"));
    let location = imap(dotted.imap_port());
    let renamed = dir.path().join("Renamed");
    let run = dsync(&["backup", "--verify", &location, &maildir(&renamed)], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(stdout(&run).contains(" differences (exit 1)"), "{}", text(&run));
    assert!(
        stderr(&run).contains("dsync: differs: mailbox Reports.2023 is only in the source"),
        "{}",
        text(&run)
    );
    let json =
        dsync(&["backup", "--json", "--verify", &location, &maildir(&renamed)], Some(PASSWORD));
    assert_eq!(json.status.code(), Some(1), "{}", text(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["users"][0]["verify"]["status"], "different", "{}", text(&json));
    assert_eq!(report["users"][0]["status"], "differs", "{}", text(&json));

    let refused =
        dsync(&["backup", "--verify", "--dry-run", &location, &maildir(&renamed)], Some(PASSWORD));
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
}

/// In a batch each user's verdict is a column of the table and an object of the JSON.
#[test]
fn backup_verify_in_a_batch() {
    let source = Dovecot::builder().user("alice", PASSWORD).user("bob", PASSWORD).start();
    for user in ["alice", "bob"] {
        let mut session = RawImap::login(source.imap_port(), user, PASSWORD);
        session.append("INBOX", &["\\Seen"], None, &fixtures::message(1, user, "hello"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users");
    std::fs::write(&users, "alice\nbob\n").expect("write users");
    let template = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let destination = format!("maildir:{}/%u", dir.path().display());
    let logs = dir.path().join("logs");
    let args = [
        "backup",
        "--verify",
        "-F",
        users.to_str().expect("utf-8"),
        "--log-dir",
        logs.to_str().expect("utf-8"),
        &template,
        &destination,
    ];
    let run = dsync(&args, Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let table = stdout(&run);
    assert!(table.lines().next().is_some_and(|h| h.contains("VERIFY")), "{table}");
    assert_eq!(table.lines().filter(|line| line.contains(" identical")).count(), 2, "{table}");
    let mut json_args = args.to_vec();
    json_args.insert(1, "--json");
    let json = dsync(&json_args, Some(PASSWORD));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    for user in 0..2 {
        assert_eq!(report["users"][user]["verify"]["status"], "identical", "{}", text(&json));
        assert_eq!(report["users"][user]["verify"]["messages"], 1, "{}", text(&json));
    }
    let log = std::fs::read_to_string(logs.join("alice.log")).expect("alice's log");
    assert!(
        log.contains("verify: 1 mailboxes and 1 messages compared (metadata), 0 differences"),
        "{log}"
    );
}
