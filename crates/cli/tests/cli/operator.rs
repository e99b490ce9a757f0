//! The `dsync` binary as a tool in an operator's hands: usage errors, closed pipes, the man
//! page, doveadm letters it does not implement, the config file's refusals, and what it
//! checks before any work (the destination, the batch template, nesting).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{dsync, text};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

/// The bundled example Maildir (a small source that needs no server).
fn example() -> String {
    maildir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/Maildir"))
}

/// Runs dsync with a stdout pipe whose reader is already gone (`dsync … | head -1` once
/// head has exited).
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run dsync")
}

#[test]
fn a_closed_stdout_is_a_normal_end_for_every_verb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = maildir(&dir.path().join("Maildir"));
    let source = example();
    let cases: [&[&str]; 5] = [
        &["completions", "bash"],
        &["man"],
        &["mailbox", "list", &source],
        &["check", &source],
        &["backup", &source, &target],
    ];
    for args in cases {
        let run = with_closed_stdout(args);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {}", text(&run));
        assert_eq!(stderr(&run), "", "{args:?}: nothing to say about a reader that left");
    }
    // The backup itself was done, only its summary had nobody to read it.
    let verify = dsync(&["verify", &source, &target], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_missing_verb_is_a_usage_error() {
    for args in [&[][..], &["mailbox"][..]] {
        let run = dsync(args, None);
        assert_eq!(run.status.code(), Some(64), "{args:?}: {}", text(&run));
        assert!(stderr(&run).contains("Usage:"), "{args:?}: {}", text(&run));
    }
    // Help asked for is not an error.
    for args in [&["--help"][..], &["mailbox", "--help"][..], &["help"][..]] {
        let run = dsync(args, None);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {}", text(&run));
    }
}

#[test]
fn man_pages_name_only_pages_that_exist_and_keep_the_tables() {
    let page = dsync(&["man"], None);
    assert_eq!(page.status.code(), Some(0), "{}", text(&page));
    let roff = String::from_utf8_lossy(&page.stdout);
    assert!(!roff.contains("dsync\\-help") && !roff.contains("dsync-help"), "{roff}");
    for section in ["LOCATIONS", "CERTIFICATES", "DOVECOT SETTINGS", "EXIT STATUS"] {
        assert!(roff.contains(&format!(".SH \"{section}\"\n.nf\n")), "{section}: {roff}");
    }
    // Each location keeps its own line (roff would otherwise run them into a paragraph).
    assert!(roff.lines().any(|l| l.starts_with("  imap://USER@HOST[:PORT]?tls=none")), "{roff}");

    let dir = tempfile::tempdir().expect("temp dir");
    let pages = dir.path().join("man1");
    let written = dsync(&["man", pages.to_str().expect("utf-8")], None);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .expect("pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    // Every page another page refers to was written.
    for name in &names {
        let roff = std::fs::read_to_string(pages.join(name)).expect("page");
        for reference in page_references(&roff) {
            let file = format!("{reference}.1");
            assert!(names.contains(&file), "{name} refers to {file}, not written: {names:?}");
        }
    }
    let backup = std::fs::read_to_string(pages.join("dsync-backup.1")).expect("backup page");
    assert!(backup.contains(".SH \"EXAMPLES\"\n.nf\n"), "{backup}");
}

/// The `dsync…(1)` pages a roff page names.
fn page_references(roff: &str) -> Vec<String> {
    let plain = roff.replace("\\-", "-");
    plain
        .match_indices("(1)")
        .filter_map(|(at, _)| {
            let before = &plain[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            name.starts_with("dsync").then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn doveadm_letters_dsync_does_not_implement_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 7] = [
        (&["backup", "-N", "a", "b"], "-N (every namespace)"),
        (&["backup", "-g", "0123456789abcdef0123456789abcdef", "a", "b"], "-m NAME"),
        (&["sync", "-d", "a"], "mail_replica"),
        (&["backup", "-E", "a", "b"], "-E"),
        (&["backup", "-S", "/run/dovecot/doveadm-server", "a", "b"], "doveadm server"),
        (&["backup", "-U", "a", "b"], "replicator"),
        (&["import", "-N", "a", "b"], "-N"),
    ];
    for (args, reason) in cases {
        let run = dsync(args, None);
        assert_eq!(run.status.code(), Some(64), "{args:?}: {}", text(&run));
        let said = stderr(&run);
        assert!(said.starts_with("dsync: not supported: "), "{args:?}: {said}");
        assert!(said.contains(reason) && !said.contains("-- -"), "{args:?}: {said}");
    }
    // import -U is import's own option (the source user), still accepted.
    let dir = tempfile::tempdir().expect("temp dir");
    let import = dsync(
        &["import", "-U", "nobody", &example(), &maildir(&dir.path().join("Maildir")), "Old"],
        None,
    );
    assert_eq!(import.status.code(), Some(0), "{}", text(&import));
}

#[test]
fn a_password_in_the_config_file_is_refused_with_the_way_and_never_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("dsync.toml");
    for content in [
        "[defaults]\npassword = \"hunter2-secret\"\n",
        "[accounts.alice]\nsettings = { imapc_password = \"hunter2-secret\" }\n",
        // Not even valid TOML: the error must not quote the line either.
        "[defaults]\npassword = hunter2-secret\n",
    ] {
        std::fs::write(&config, content).expect("write config");
        let run = dsync(&["-c", config.to_str().expect("utf-8"), "backup", "a", "b"], None);
        assert_eq!(run.status.code(), Some(78), "{content}: {}", text(&run));
        let said = stderr(&run);
        assert!(!said.contains("hunter2"), "{content}: the password was printed: {said}");
        assert!(said.contains("line 2") || said.contains("password_file"), "{said}");
    }
    std::fs::write(&config, "[defaults]\npassword = \"hunter2-secret\"\n").expect("write");
    let run = dsync(&["-c", config.to_str().expect("utf-8"), "backup", "a", "b"], None);
    let said = stderr(&run);
    assert!(said.contains("passwords are not accepted"), "{said}");
    assert!(said.contains("password_file") && said.contains("password_env"), "{said}");
}

/// A Maildir with 20 messages in INBOX and in `.Archive`, and `messages` messages of about
/// `size` bytes in `.Big` (written directly: quick to make, and as Dovecot would find
/// them). The small folders come first.
pub(super) fn big_maildir(root: &Path, messages: u32, size: usize) {
    let folders = [
        (root.to_path_buf(), 20, 1_700_000_001, "a1"),
        (root.join(".Archive"), 20, 1_700_000_002, "a2"),
        (root.join(".Big"), messages, 1_700_000_003, "b3"),
    ];
    for (folder, count, uid_validity, guid) in folders {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(folder.join(sub)).expect("mkdir");
        }
        let mut uidlist = format!("3 V{uid_validity} N{} G{}\n", count + 1, guid.repeat(16));
        for index in 0..count {
            let base = format!("{}.M{index}P1.test", 1_700_000_000 + index);
            std::fs::write(
                folder.join("cur").join(format!("{base}:2,S")),
                testkit::fixtures::sized_message(index, size),
            )
            .expect("write message");
            let _ = writeln!(uidlist, "{} :{base}", index + 1);
        }
        std::fs::write(folder.join("dovecot-uidlist"), uidlist).expect("uidlist");
    }
    for folder in [".Archive", ".Big"] {
        std::fs::write(root.join(folder).join("maildirfolder"), b"").expect("maildirfolder");
    }
    std::fs::write(root.join("subscriptions"), b"Archive\nBig\n").expect("subscriptions");
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

#[test]
fn the_destination_is_checked_once_before_the_source_is_asked_anything() {
    let source = testkit::Dovecot::builder().user("alice", super::PASSWORD).start();
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a Maildir").expect("write");
    let cases = [
        (maildir(&file), 73),
        (maildir(&file.join("Maildir")), 73),
        ("maildir:/proc/dsync-test/Maildir".to_owned(), 73),
        ("maildir:/proc/self/dsync-test".to_owned(), 73),
    ];
    // The harness logged in once to see that Dovecot is up; nobody else may. Its login line
    // can reach the log after the harness has gone, so wait for that session to end first.
    let logins = || source.settled_log(0).matches("Login: user=<alice>").count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while logins() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = logins();
    assert_eq!(before, 1, "the harness's own login:\n{}", source.log());
    for (target, code) in cases {
        let run = dsync(&["backup", &location, &target], Some(super::PASSWORD));
        assert_eq!(run.status.code(), Some(code), "{target}: {}", text(&run));
        let said = stderr(&run);
        assert_eq!(said.lines().count(), 1, "{target}: reported once: {said}");
        assert!(said.starts_with("dsync: destination: "), "{target}: {said}");
    }
    // Not writable for the user dsync runs as (here nobody, in a directory of root's).
    let as_nobody = Command::new("runuser")
        .args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_dsync"), "backup", &location])
        .arg(maildir(&dir.path().join("Maildir")))
        .env("DSYNC_PASSWORD", super::PASSWORD)
        .output();
    if let Ok(run) = as_nobody {
        assert_eq!(run.status.code(), Some(77), "as nobody: {}", text(&run));
        let said = stderr(&run);
        assert_eq!(said.lines().count(), 1, "reported once: {said}");
        assert!(said.contains("Permission denied"), "{said}");
    }
    assert_eq!(logins(), before, "the source was asked:\n{}", source.log());
    assert_eq!(std::fs::read(&file).expect("read"), b"not a Maildir");
    // A failed login leaves no destination behind (its root is created only after it).
    let fresh = dir.path().join("fresh/Maildir");
    let run = dsync(&["backup", &location, &maildir(&fresh)], Some("wrong password"));
    assert_eq!(run.status.code(), Some(77), "{}", text(&run));
    assert!(!dir.path().join("fresh").exists(), "{}", text(&run));
}

#[test]
fn deferred_fsync_runs_no_command_and_has_nothing_to_say_without_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = example();
    // No `sync` (or anything) on the PATH: the file system is synced by a system call.
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_dsync"))
            .args(args)
            .env("PATH", "")
            .env_remove("DSYNC_PASSWORD")
            .output()
            .expect("run dsync");
        (output.status.code(), stderr(&output))
    };
    let fresh = maildir(&dir.path().join("dry"));
    assert_eq!(
        run(&["backup", "--no-fsync", "--dry-run", &source, &fresh]),
        (Some(0), String::new())
    );
    let none = maildir(&dir.path().join("none"));
    let (code, said) = run(&["backup", "--no-fsync", "-m", "NoSuchFolder", &source, &none]);
    assert_eq!(code, Some(0), "{said}");
    // Only the filter's warnings: no word from a `sync` command.
    assert!(said.lines().all(|line| line.starts_with("dsync: warning: ")), "{said}");
    let target = maildir(&dir.path().join("Maildir"));
    let (code, said) = run(&["backup", "--no-fsync", &source, &target]);
    assert_eq!((code, said.as_str()), (Some(0), ""));
    let verify = dsync(&["verify", &source, &target], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_second_run_on_one_destination_is_turned_away_with_75_or_waits_with_l() {
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big");
    big_maildir(&big, 3000, 4000);
    let target = dir.path().join("Maildir");
    let mut first = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(["backup", "--commit-interval", "10", &maildir(&big), &maildir(&target)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first run");
    let started = std::time::Instant::now();
    while files_in(&target.join(".Big/cur")) + files_in(&target.join(".Big/new")) < 20 {
        assert!(started.elapsed().as_secs() < 60, "the first run copies nothing");
        assert!(first.try_wait().expect("wait").is_none(), "the first run ended too soon");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = dsync(&["backup", &maildir(&big), &maildir(&target)], None);
    assert_eq!(second.status.code(), Some(75), "{}", text(&second));
    let said = stderr(&second);
    assert!(said.contains("being written by another dsync"), "{said}");
    assert!(said.contains(&format!("process {}", first.id())), "{said}");
    assert!(said.contains("-l SECONDS"), "{said}");
    assert_eq!(said.lines().count(), 1, "no retry, one line: {said}");
    // With -l the second one waits for the first and then finds nothing left to do.
    let waiting = dsync(&["backup", "-l", "120", &maildir(&big), &maildir(&target)], None);
    assert_eq!(waiting.status.code(), Some(0), "{}", text(&waiting));
    let first = first.wait_with_output().expect("first run");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(files_in(&target.join(".Big/cur")) + files_in(&target.join(".Big/new")), 3000);
    let verify = dsync(&["verify", &maildir(&big), &maildir(&target)], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_batch_that_would_share_a_destination_or_has_no_user_does_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice\nbob\n").expect("write users");
    let users = users.to_str().expect("utf-8");
    let logs = dir.path().join("logs");
    let logs = logs.to_str().expect("utf-8");
    let source = example();
    let shared = dir.path().join("shared");
    let run = dsync(&["backup", "-F", users, "--log-dir", logs, &source, &maildir(&shared)], None);
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    let said = stderr(&run);
    assert!(said.contains("both alice and bob") && said.contains("%u"), "{said}");
    assert!(!shared.exists(), "a user was written into the shared path: {said}");
    // The same for a state file every user would share.
    let template = format!("{}/%u", dir.path().display());
    let state = dir.path().join("one.state");
    let run = dsync(
        &[
            "backup",
            "-F",
            users,
            "--state-file",
            state.to_str().expect("utf-8"),
            &source,
            &format!("maildir:{template}"),
        ],
        None,
    );
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    assert!(stderr(&run).contains("--state-file"), "{}", text(&run));
    assert!(!dir.path().join("alice").exists() && !state.exists(), "{}", text(&run));

    // A list with nobody in it is a mistake, not a success.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# to do\n\n").expect("write");
    let run =
        dsync(&["backup", "-F", empty.to_str().expect("utf-8"), &source, "maildir:/tmp/%u"], None);
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    assert!(stderr(&run).contains("names no user"), "{}", text(&run));
    // A shard that gets no user of a real list has nothing to do, and says so.
    let run = dsync(
        &["backup", "-F", users, "--shard", "3/4", &source, &format!("maildir:{template}")],
        None,
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(stderr(&run).contains("takes none of them"), "{}", text(&run));
}

#[test]
fn a_source_and_destination_inside_each_other_are_refused_before_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outer = dir.path().join("Maildir");
    big_maildir(&outer, 3, 100);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&outer, &link).expect("symlink");
    let cases = [
        (maildir(&outer.join(".Big")), maildir(&outer), "source"),
        (maildir(&link.join(".Big")), maildir(&outer), "source"),
        (maildir(&outer), maildir(&outer.join(".Copy")), "destination"),
        (
            maildir(&outer),
            format!("{}:LAYOUT=fs", maildir(&link.join("sub/deeper"))),
            "destination",
        ),
    ];
    for (source, destination, inside) in cases {
        let run = dsync(&["backup", &source, &destination], None);
        assert_eq!(run.status.code(), Some(64), "{source} {destination}: {}", text(&run));
        let said = stderr(&run);
        assert!(said.contains(&format!("the {inside} ")) && said.contains("is inside"), "{said}");
        assert!(said.contains(&source) && said.contains(&destination), "{said}");
    }
    assert_eq!(files_in(&outer.join(".Big/cur")), 3, "the source was touched");
    assert!(!outer.join(".Copy").exists() && !outer.join("sub").exists());
}

#[test]
fn debug_and_raw_logs_show_the_server_as_text_and_every_file_of_ours_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (source, _) = super::source_with_fixture();
    let imap = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = dir.path().join("raw");
    let target = dir.path().join("Maildir");
    let run = dsync(
        &["backup", "-D", "-r", raw.to_str().expect("utf-8"), &imap, &maildir(&target)],
        Some(super::PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let rawlog = std::fs::read_to_string(raw.join("alice.rawlog")).expect("raw log");
    for log in [stderr(&run), rawlog] {
        let server: Vec<&str> =
            log.lines().filter_map(|line| line.split_once(" S: ").map(|(_, s)| s)).collect();
        assert!(server.iter().any(|l| l.starts_with("* OK [CAPABILITY IMAP4rev1 ")), "{log}");
        assert!(server.iter().any(|l| l.contains(" OK ") && l.starts_with('A')), "{log}");
        assert!(server.iter().any(|l| l.starts_with('<') && l.contains(" bytes>")), "{log}");
        for debug in ["Tagged {", "Untagged(", "Status {", "Some(", "BodySection"] {
            assert!(!log.contains(debug), "Rust structures in the protocol log: {debug}\n{log}");
        }
    }
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&raw.join("alice.rawlog")), 0o600);
    for ours in ["dsync-rs-state", "dsync-rs.lock"] {
        assert_eq!(mode(&target.join(ours)), 0o600, "{ours}");
    }
}
