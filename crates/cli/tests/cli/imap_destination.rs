//! `backup` and `sync -1` into a second Dovecot over IMAP: what the destination serves is
//! the source's mail (folders, subscriptions, bytes, flags, keywords, INTERNALDATE; UIDs
//! are the destination's own and compared through the pairs in our state), re-runs
//! converge, a run without its state appends no duplicate, and a 50 MiB message goes
//! through in bounded memory.

use std::collections::BTreeMap;
use std::path::Path;

use testkit::{AccountSnapshot, Dovecot, MessageSnapshot, RawImap, fixtures};

use super::{PASSWORD, dsync, source_with_fixture, text};

pub(super) const DESTINATION_PASSWORD: &str = "bob-other-pw";

/// A mailbox's name, whether it is selectable, and its messages.
pub(super) type Carried = (String, bool, Vec<MessageSnapshot>);

/// What must be equal through both servers: per mailbox, the messages (flags,
/// INTERNALDATE, bytes) in body order, without UIDs and UIDVALIDITYs.
pub(super) fn carried(snapshot: &AccountSnapshot) -> (Vec<Carried>, Vec<String>) {
    let mailboxes = snapshot
        .mailboxes
        .iter()
        .map(|(name, mailbox)| {
            let mut messages: Vec<MessageSnapshot> =
                mailbox.messages.iter().map(|m| MessageSnapshot { uid: 0, ..m.clone() }).collect();
            messages.sort_by(|a, b| a.body.cmp(&b.body));
            (name.clone(), mailbox.selectable, messages)
        })
        .collect();
    (mailboxes, snapshot.subscriptions.iter().cloned().collect())
}

pub(super) fn assert_carried(expected: &AccountSnapshot, actual: &AccountSnapshot) {
    let (want, got) = (carried(expected), carried(actual));
    assert_eq!(want.1, got.1, "subscriptions");
    let names = |list: &[Carried]| {
        list.iter().map(|(name, selectable, _)| (name.clone(), *selectable)).collect::<Vec<_>>()
    };
    assert_eq!(names(&want.0), names(&got.0), "mailboxes");
    for ((name, _, a), (_, _, b)) in want.0.iter().zip(&got.0) {
        assert_eq!(a.len(), b.len(), "mailbox {name}: message count");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "mailbox {name}");
        }
    }
}

pub(super) struct Servers {
    pub(super) source: Dovecot,
    pub(super) destination: Dovecot,
    pub(super) dir: tempfile::TempDir,
}

impl Servers {
    pub(super) fn new(source: Dovecot) -> Servers {
        let destination = Dovecot::builder().user("bob", DESTINATION_PASSWORD).start();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("bob.pw"), format!("{DESTINATION_PASSWORD}\n"))
            .expect("password file");
        Servers { source, destination, dir }
    }

    pub(super) fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    pub(super) fn run(&self, verb: &[&str], extra: &[&str]) -> std::process::Output {
        let source = format!("imap://alice@127.0.0.1:{}?tls=none", self.source.imap_port());
        let destination = format!("imap://bob@127.0.0.1:{}?tls=none", self.destination.imap_port());
        run_into_bob(self.dir.path(), verb, extra, [&source, &destination], Some(PASSWORD))
    }

    /// `dsync verify --bodies` of the two servers.
    fn verify(&self) -> std::process::Output {
        let source = format!("imap://alice@127.0.0.1:{}?tls=none", self.source.imap_port());
        let destination = format!("imap://bob@127.0.0.1:{}?tls=none", self.destination.imap_port());
        let password_file = self.dir.path().join("bob.pw");
        let password_file = password_file.to_str().expect("utf-8");
        let args = ["verify", "--bodies", "--destination-password-file", password_file];
        let mut args: Vec<&str> = args.to_vec();
        args.extend([source.as_str(), destination.as_str()]);
        dsync(&args, Some(PASSWORD))
    }

    pub(super) fn source_imap(&self) -> RawImap {
        RawImap::login(self.source.imap_port(), "alice", PASSWORD)
    }

    pub(super) fn destination_imap(&self) -> RawImap {
        RawImap::login(self.destination.imap_port(), "bob", DESTINATION_PASSWORD)
    }
}

/// Runs `dsync VERB --state-file STATE --destination-password-file PW EXTRA SOURCE
/// DESTINATION`, the destination being bob's account: `dir` holds the state (`state`) and
/// bob's password file (`bob.pw`, written by the caller).
pub(super) fn run_into_bob(
    dir: &Path,
    verb: &[&str],
    extra: &[&str],
    [source, destination]: [&str; 2],
    password: Option<&str>,
) -> std::process::Output {
    let state = dir.join("state");
    let password_file = dir.join("bob.pw");
    let mut args: Vec<&str> = verb.to_vec();
    args.extend([
        "--state-file",
        state.to_str().expect("utf-8"),
        "--destination-password-file",
        password_file.to_str().expect("utf-8"),
    ]);
    args.extend(extra);
    args.extend([source, destination]);
    dsync(&args, password)
}

/// Every pair in the state file names a destination message with its source message's
/// bytes; returns how many pairs there are.
pub(super) fn pairs_hold(
    state: &Path,
    source: &AccountSnapshot,
    destination: &AccountSnapshot,
) -> usize {
    let text = std::fs::read_to_string(state).expect("state file");
    let state = dsync_core::state::SyncState::decode(&text).expect("readable state");
    let body = |snapshot: &AccountSnapshot, name: &str, uid: u32| {
        let mailbox = snapshot.mailboxes.get(name)?;
        mailbox.messages.iter().find(|m| m.uid == uid).map(|m| m.body.clone())
    };
    let mut pairs = 0;
    for (name, entry) in &state.pairs {
        // Both servers here use '/'; snapshots name mailboxes in modified UTF-7.
        let wire = imapc::MailboxName::from_utf8(&name.join('/'));
        let wire = String::from_utf8_lossy(wire.as_raw()).into_owned();
        for (a, pair) in &entry.pairs {
            let (a, b) = (a.get(), pair.destination.get());
            let (x, y) = (body(source, &wire, a), body(destination, &wire, b));
            assert!(x.is_some() && x == y, "{wire}: source UID {a} is not destination UID {b}");
            pairs += 1;
        }
    }
    pairs
}

pub(super) fn uid_nexts(snapshot: &AccountSnapshot) -> BTreeMap<String, u32> {
    snapshot.mailboxes.iter().map(|(name, m)| (name.clone(), m.uid_next)).collect()
}

#[test]
fn backup_into_a_second_dovecot_carries_everything_and_reruns_converge() {
    let (source, expected) = source_with_fixture();
    let servers = Servers::new(source);

    let first = servers.run(&["backup"], &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let copied = servers.destination_imap().snapshot();
    assert_carried(&expected, &copied);
    let pairs = pairs_hold(&servers.state(), &expected, &copied);
    assert_eq!(pairs, expected.message_count(), "every message is paired");
    // verify between the two servers pairs messages by content, UIDs aside.
    let verified = servers.verify();
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    assert!(text(&verified).contains(" 0 differences"), "{}", text(&verified));

    // A re-run appends nothing.
    let again = servers.run(&["backup"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let unchanged = servers.destination_imap().snapshot();
    assert_eq!(uid_nexts(&unchanged), uid_nexts(&copied), "nothing appended again");

    // Source changes travel: new mail, flags, an expunge, a folder gone, a subscription.
    let mut imap = servers.source_imap();
    imap.append(
        "Archive",
        &["$Label2"],
        Some("02-Feb-2024 10:00:00 +0000"),
        &fixtures::message(90, "New", "after the first run"),
    );
    imap.store("INBOX", "1", "+FLAGS (\\Flagged Work)");
    imap.expunge_uids("INBOX", "2");
    imap.unsubscribe("Archive");
    imap.subscribe("Hidden");
    drop(imap);
    let mut raw = servers.source_imap();
    raw.command_ok("DELETE \"Parent/Child\"");
    drop(raw);
    let changed = servers.source_imap().snapshot();
    let run = servers.run(&["backup"], &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let after = servers.destination_imap().snapshot();
    assert_carried(&changed, &after);
    pairs_hold(&servers.state(), &changed, &after);

    // The state lost: every message is found again on the destination, none appended.
    std::fs::remove_file(servers.state()).expect("remove state");
    let run = servers.run(&["backup"], &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stateless = servers.destination_imap().snapshot();
    assert_eq!(uid_nexts(&stateless), uid_nexts(&after), "no duplicate appended");
    assert_carried(&changed, &stateless);
    assert_eq!(pairs_hold(&servers.state(), &changed, &stateless), changed.message_count());
}

#[test]
fn a_backup_keeps_the_destinations_own_mail_unless_told_and_sync_one_way_too() {
    let (source, expected) = source_with_fixture();
    let servers = Servers::new(source);
    let mut theirs = servers.destination_imap();
    theirs.create("Theirs");
    theirs.append("Theirs", &[], None, &fixtures::message(70, "Theirs", "not ours"));
    theirs.append("INBOX", &[], None, &fixtures::message(71, "Delivered", "to the new server"));
    drop(theirs);

    for verb in [&["sync", "-1"][..], &["backup"][..]] {
        let run = servers.run(verb, &[]);
        assert_eq!(run.status.code(), Some(0), "{verb:?}: {}", text(&run));
        let now = servers.destination_imap().snapshot();
        assert!(now.mailboxes.contains_key("Theirs"), "{verb:?}");
        let inbox = &now.mailboxes["INBOX"].messages;
        assert_eq!(inbox.len(), expected.mailboxes["INBOX"].messages.len() + 1, "{verb:?}");
    }
    let verified = servers.verify();
    assert_eq!(verified.status.code(), Some(1), "{}", text(&verified));
    let said = text(&verified);
    assert!(said.contains("mailbox Theirs is only in the destination"), "{said}");
    assert!(said.contains("INBOX: UID") && said.contains("only in the destination"), "{said}");
    let run = servers.run(&["backup"], &["--delete-extra"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_carried(&expected, &servers.destination_imap().snapshot());
}

#[test]
fn a_50_mib_message_goes_imap_to_imap_in_bounded_memory() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    let big = fixtures::sized_message(1, 50 << 20);
    imap.append("INBOX", &["\\Seen"], Some("01-Mar-2024 12:00:00 +0000"), &big);
    drop(big);
    let expected = imap.snapshot();
    drop(imap);
    let servers = Servers::new(source);

    let source = format!("imap://alice@127.0.0.1:{}?tls=none", servers.source.imap_port());
    let destination = format!("imap://bob@127.0.0.1:{}?tls=none", servers.destination.imap_port());
    let state = servers.state();
    let password_file = servers.dir.path().join("bob.pw");
    let output = std::process::Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M", env!("CARGO_BIN_EXE_dsync"), "backup", "--state-file"])
        .arg(&state)
        .arg("--destination-password-file")
        .arg(&password_file)
        .args([&source, &destination])
        .env("DSYNC_PASSWORD", PASSWORD)
        .output()
        .expect("run dsync under /usr/bin/time");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak_kib: u64 = stderr
        .lines()
        .find_map(|line| line.strip_prefix("maxrss_kib="))
        .and_then(|value| value.trim().parse().ok())
        .expect("peak RSS");
    assert_carried(&expected, &servers.destination_imap().snapshot());
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB for a 50 MiB message");
}

#[test]
fn a_full_quota_on_the_destination_stops_the_run_naming_folder_and_message() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.create("Big");
    imap.append("Big", &[], None, &fixtures::message(1, "Small", "fits"));
    imap.append("Big", &[], None, &fixtures::sized_message(2, 200 << 10));
    drop(imap);
    let destination = Dovecot::builder()
        .user("bob", DESTINATION_PASSWORD)
        .extra_config(
            "mail_plugins = $mail_plugins quota\n\
             plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=100K\n}\n",
        )
        .start();
    let dir = tempfile::tempdir().expect("temp dir");
    let servers = Servers { source, destination, dir };
    std::fs::write(servers.dir.path().join("bob.pw"), format!("{DESTINATION_PASSWORD}\n"))
        .expect("password file");

    // Both messages go in one MULTIAPPEND, which the full quota refuses whole: each is
    // then sent again alone, so the one that fits is stored and the other named.
    let run = servers.run(&["backup"], &[]);
    assert_eq!(run.status.code(), Some(73), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("Big") && stderr.contains("source UID 2"), "{}", text(&run));
    assert!(stderr.contains("OVERQUOTA") || stderr.contains("Quota"), "{}", text(&run));
    // What fitted is there, once, and a re-run (still full) adds no duplicate of it.
    let before = servers.destination_imap().snapshot();
    assert_eq!(before.mailboxes["Big"].messages.len(), 1);
    let again = servers.run(&["backup"], &[]);
    assert_eq!(again.status.code(), Some(73), "{}", text(&again));
    assert_eq!(uid_nexts(&servers.destination_imap().snapshot()), uid_nexts(&before));
}

#[test]
fn kill_9_at_any_point_then_a_rerun_leaves_no_duplicate_and_nothing_missing() {
    // A Maildir source (every source kind goes to IMAP the same way): 20 + 20 + 400
    // messages of 8 KiB.
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("Maildir");
    super::operator::big_maildir(&maildir, 400, 8 << 10);
    let expected = super::served(&maildir);
    let destination = Dovecot::builder().user("bob", DESTINATION_PASSWORD).start();
    let password_file = dir.path().join("bob.pw");
    std::fs::write(&password_file, format!("{DESTINATION_PASSWORD}\n")).expect("password");
    let state = dir.path().join("state");
    let target = format!("imap://bob@127.0.0.1:{}?tls=none", destination.imap_port());
    let source = format!("maildir:{}", maildir.display());
    let command = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"));
        command
            .args(["backup", "--state-file"])
            .arg(&state)
            .arg("--destination-password-file")
            .arg(&password_file)
            .args([&source, &target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    let mut killed = 0;
    for delay in [150, 300, 450, 700, 1000] {
        let mut run = command().spawn().expect("spawn dsync");
        std::thread::sleep(std::time::Duration::from_millis(delay));
        if run.try_wait().expect("wait").is_none() {
            run.kill().expect("SIGKILL");
            killed += 1;
        }
        // Run again at once: the killed client's server session may still be saving the
        // APPENDs already in its socket (up to 128 pipelined).
        run.wait().expect("reaped");
    }
    assert!(killed >= 2, "dsync was killed mid-run only {killed} times");
    let last = command().status().expect("run dsync");
    assert_eq!(last.code(), Some(0));
    let copied = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot();
    assert_carried(&expected, &copied);
    // The state is whole again: every message paired.
    assert_eq!(pairs_hold(&state, &expected, &copied), expected.message_count());
}

/// Wall-clock seconds and peak RSS (KiB) of a command, run under `/usr/bin/time`.
pub(super) fn timed(command: &mut std::process::Command) -> (f64, u64, std::process::Output) {
    let program = command.get_program().to_owned();
    let args: Vec<std::ffi::OsString> = command.get_args().map(ToOwned::to_owned).collect();
    let mut wrapped = std::process::Command::new("/usr/bin/time");
    wrapped.args(["-f", "maxrss_kib=%M\ncpu=%U+%S"]).arg(program).args(args);
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    let started = std::time::Instant::now();
    let output = wrapped.output().expect("run under /usr/bin/time");
    let seconds = started.elapsed().as_secs_f64();
    if let Some(cpu) =
        String::from_utf8_lossy(&output.stderr).lines().find(|l| l.starts_with("cpu="))
    {
        println!("{} {cpu} wall={seconds:.2}", command.get_program().to_string_lossy());
    }
    let peak = String::from_utf8_lossy(&output.stderr)
        .lines()
        .find_map(|line| line.strip_prefix("maxrss_kib="))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    (seconds, peak, output)
}

/// Not a check: times `dsync backup` IMAP → IMAP against mbsync's IMAP → IMAP channel on
/// 6 040 messages of 5 KiB in 3 folders (full copy and no-op re-run, each into a fresh
/// second Dovecot with `mail_fsync = never`, so that the server's fsyncs do not hide the
/// clients' costs) and prints a table. `cargo test -p dsync-cli --release --test cli
/// imap_to_imap_timing -- --ignored --nocapture`.
#[test]
#[ignore = "a timing run, not a check"]
fn imap_to_imap_timing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("Maildir");
    super::operator::big_maildir(&maildir, 6000, 5 << 10);
    let source =
        Dovecot::builder().user_serving_copy("reader", "readerpw", &maildir, "maildir").start();
    let expected = RawImap::login(source.imap_port(), "reader", "readerpw").snapshot();
    let source_url = format!("imap://reader@127.0.0.1:{}?tls=none", source.imap_port());
    let mut rows = Vec::new();

    // dsync.
    let destination = Dovecot::builder()
        .user("bob", DESTINATION_PASSWORD)
        .extra_config("mail_fsync = never")
        .start();
    let password_file = dir.path().join("bob.pw");
    std::fs::write(&password_file, format!("{DESTINATION_PASSWORD}\n")).expect("password");
    let state = dir.path().join("state");
    let target = format!("imap://bob@127.0.0.1:{}?tls=none", destination.imap_port());
    let dsync_run = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"));
        command
            .args(["backup", "-q", "--state-file"])
            .arg(&state)
            .arg("--destination-password-file")
            .arg(&password_file)
            .args([&source_url, &target])
            .env("DSYNC_PASSWORD", "readerpw");
        command
    };
    let (full, peak, output) = timed(&mut dsync_run());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let copied = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot();
    assert_carried(&expected, &copied);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (noop, noop_peak, _) = timed(&mut dsync_run());
    rows.push(("dsync backup", full, peak, noop, noop_peak, "✓ all carried"));

    // mbsync, IMAP → IMAP channel.
    let destination = Dovecot::builder()
        .user("bob", DESTINATION_PASSWORD)
        .extra_config("mail_fsync = never")
        .start();
    let config = dir.path().join("mbsync.conf");
    let sync_state = dir.path().join("mbsync-state/");
    std::fs::create_dir_all(&sync_state).expect("mbsync state dir");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount source\nHost 127.0.0.1\nPort {}\nUser reader\nPass readerpw\n\
             SSLType None\nAuthMechs LOGIN\n\nIMAPStore source\nAccount source\n\n\
             IMAPAccount dest\nHost 127.0.0.1\nPort {}\nUser bob\nPass {DESTINATION_PASSWORD}\n\
             SSLType None\nAuthMechs LOGIN\n\nIMAPStore dest\nAccount dest\n\n\
             Channel migrate\nFar :source:\nNear :dest:\nPatterns *\nCreate Near\n\
             Sync Pull\nSyncState {}\n",
            source.imap_port(),
            destination.imap_port(),
            sync_state.display()
        ),
    )
    .expect("mbsync config");
    let mbsync = || {
        let mut command = std::process::Command::new("/usr/bin/mbsync");
        command.arg("-q").arg("-c").arg(&config).arg("-a");
        command
    };
    let (full, peak, output) = timed(&mut mbsync());
    let copied = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD).snapshot();
    let counts = copied.message_count() == expected.message_count();
    let keywords_and_subscriptions = carried(&copied) == carried(&expected);
    let check = match (output.status.success(), counts, keywords_and_subscriptions) {
        (false, _, _) => "✗ failed",
        (true, true, true) => "✓ all carried",
        (true, true, false) => "counts ✓, not all else",
        (true, false, _) => "✗ message counts",
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (noop, noop_peak, _) = timed(&mut mbsync());
    rows.push(("mbsync IMAP → IMAP", full, peak, noop, noop_peak, check));

    println!(
        "\n{} messages, {} folders\n| tool | full s | peak RSS MiB | no-op s | no-op RSS MiB | check |",
        expected.message_count(),
        expected.mailboxes.len()
    );
    println!("|---|--:|--:|--:|--:|---|");
    for (tool, full, peak, noop, noop_peak, check) in rows {
        #[allow(clippy::cast_precision_loss)]
        let (peak, noop_peak) = (peak as f64 / 1024.0, noop_peak as f64 / 1024.0);
        println!("| {tool} | {full:.2} | {peak:.1} | {noop:.2} | {noop_peak:.1} | {check} |");
    }
}
