//! Ctrl-C (SIGINT) and SIGTERM: the run stops after the message being saved, commits it,
//! saves the state, says "interrupted; run again to resume" and exits 75; the next run
//! completes the copy with no difference and no duplicate. A batch starts no more users.
//! What a `kill -9` leaves in `tmp/` goes at the next run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::Dovecot;

use super::operator::big_maildir;
use super::{PASSWORD, dsync, text};

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

fn messages_in(folder: &Path) -> usize {
    ["cur", "new"]
        .iter()
        .map(|sub| std::fs::read_dir(folder.join(sub)).map_or(0, Iterator::count))
        .sum()
}

fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .env("DSYNC_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsync")
}

/// Waits until `folder` holds at least `count` messages, then sends `signal`.
fn signal_when(child: &mut Child, folder: &Path, count: usize, signal: &str) {
    let started = Instant::now();
    while messages_in(folder) < count {
        assert!(child.try_wait().expect("wait").is_none(), "dsync ended before the signal");
        assert!(started.elapsed() < Duration::from_secs(120), "dsync copies nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = Command::new("kill").args([signal, &child.id().to_string()]).status();
    assert!(sent.expect("kill").success());
}

#[test]
fn ctrl_c_commits_saves_the_state_and_the_next_run_completes_without_duplicates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source_dir = dir.path().join("source");
    big_maildir(&source_dir, 4000, 6000);
    let server =
        Dovecot::builder().user_serving_copy("alice", PASSWORD, &source_dir, "maildir").start();
    let imap = format!("imap://alice@127.0.0.1:{}?tls=none", server.imap_port());
    let target = dir.path().join("Maildir");
    let state = target.join("dsync-rs-state");

    let mut run = start(&["backup", "--commit-interval", "50", &imap, &maildir(&target)]);
    signal_when(&mut run, &target.join(".Big"), 100, "-INT");
    let output = run.wait_with_output().expect("interrupted run");
    assert_eq!(output.status.code(), Some(75), "{}", text(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("dsync: interrupted; run again to resume"), "{said}");
    assert!(!said.contains("reconnecting"), "an interrupt is not retried: {said}");
    let copied = messages_in(&target.join(".Big"));
    assert!(copied < 4000, "the run was not interrupted ({copied} copied)");
    // Nothing half-saved is left, and the state knows the mailboxes that were finished.
    assert_eq!(std::fs::read_dir(target.join(".Big/tmp")).map_or(0, Iterator::count), 0);
    let saved = std::fs::read_to_string(&state).expect("state saved");
    assert!(saved.lines().any(|l| l.starts_with("mailbox Archive ")), "{saved}");

    // The next run copies exactly what is missing (INBOX may come last and not be there).
    let all = |root: &Path| [root.to_path_buf(), root.join(".Archive"), root.join(".Big")];
    let present: usize = all(&target).iter().map(|folder| messages_in(folder)).sum();
    let resumed = dsync(&["backup", &imap, &maildir(&target)], Some(PASSWORD));
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let summary = String::from_utf8_lossy(&resumed.stdout);
    assert!(summary.contains(&format!(" {} messages saved", 4040 - present)), "{summary}");
    assert_eq!(all(&target).iter().map(|folder| messages_in(folder)).sum::<usize>(), 4040);
    let verify = dsync(&["verify", &imap, &maildir(&target)], Some(PASSWORD));
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(String::from_utf8_lossy(&verify.stderr).contains(" 0 differences"));
}

#[test]
fn sigterm_in_a_batch_starts_no_more_users() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source");
    big_maildir(&source, 3000, 2000);
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice\nbob\ncarol\n").expect("users");
    let template = format!("maildir:{}/%u", dir.path().display());
    let logs = dir.path().join("logs");
    let args = [
        "backup",
        "-F",
        users.to_str().expect("utf-8"),
        "-j",
        "1",
        "--log-dir",
        logs.to_str().expect("utf-8"),
        "--commit-interval",
        "20",
        "--no-fsync",
        &maildir(&source),
        &template,
    ];
    let mut run = start(&args);
    signal_when(&mut run, &dir.path().join("alice/.Big"), 50, "-TERM");
    let output = run.wait_with_output().expect("interrupted batch");
    assert_eq!(output.status.code(), Some(75), "{}", text(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert_eq!(table.matches("interrupted").count(), 3, "{table}");
    assert!(!dir.path().join("bob").exists() && !dir.path().join("carol").exists(), "{table}");
    assert!(messages_in(&dir.path().join("alice/.Big")) < 3000);

    let again = dsync(&args, None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    for user in ["alice", "bob", "carol"] {
        let target = dir.path().join(user);
        assert_eq!(messages_in(&target.join(".Big")), 3000, "{user}");
        let verify = dsync(&["verify", &maildir(&source), &maildir(&target)], None);
        assert_eq!(verify.status.code(), Some(0), "{user}: {}", text(&verify));
    }
}

#[test]
fn what_a_killed_run_left_in_tmp_is_gone_after_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source");
    big_maildir(&source, 2000, 3000);
    let target = dir.path().join("Maildir");
    let tmp = target.join(".Big/tmp");
    let args = ["backup", "--commit-interval", "500", &maildir(&source), &maildir(&target)];
    let mut run = start(&args);
    let started = Instant::now();
    while std::fs::read_dir(&tmp).map_or(0, Iterator::count) < 20 {
        assert!(run.try_wait().expect("wait").is_none(), "dsync ended before the kill");
        assert!(started.elapsed() < Duration::from_secs(120), "nothing staged");
        std::thread::sleep(Duration::from_millis(5));
    }
    run.kill().expect("SIGKILL");
    run.wait().expect("killed");
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .expect("tmp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.len() >= 20 && left.iter().all(|n| n.starts_with("dsync-rs-tmp.")), "{left:?}");

    let again = dsync(&args, None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(std::fs::read_dir(&tmp).map_or(0, Iterator::count), 0, "leftovers stayed");
    let verify = dsync(&["verify", &maildir(&source), &maildir(&target)], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

/// `kill -9` at several points of a backup into sdbox, each followed by a run that is
/// killed again later, then one that finishes: Dovecot serves exactly the source, with no
/// duplicate, no warning and no index rebuild (a killed run never leaves Dovecot a
/// half-written mail, and the next run resumes from what was committed).
#[test]
fn backups_into_sdbox_killed_at_any_point_converge_without_duplicates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source");
    big_maildir(&source, 1500, 2000);
    let target = dir.path().join("sdbox");
    let mails = target.join("mailboxes/Big/dbox-Mails");
    let sdbox = format!("sdbox:{}", target.display());
    let args = ["backup", "--commit-interval", "100", &maildir(&source), &sdbox];
    let files = || {
        std::fs::read_dir(&mails).map_or(0, |entries| {
            entries
                .filter(|e| {
                    e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("u."))
                })
                .count()
        })
    };
    // Kill points in the Big folder's message files: inside the first commit, between
    // commits, and late.
    for kill_at in [37, 420, 1111] {
        let mut run = start(&args);
        let started = Instant::now();
        while files() < kill_at {
            if run.try_wait().expect("wait").is_some() {
                break; // finished before this point: the next kill point comes later
            }
            assert!(started.elapsed() < Duration::from_secs(180), "dsync copies nothing");
            std::thread::sleep(Duration::from_millis(2));
        }
        run.kill().ok();
        run.wait().expect("killed");
    }
    let last = dsync(&args, None);
    assert_eq!(last.status.code(), Some(0), "{}", text(&last));
    let again = dsync(&args, None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    let theirs = super::served(&source);
    let ours = super::sdbox::served_sdbox(&target);
    let differences = theirs.differences(&ours);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(ours.mailboxes["Big"].messages.len(), 1500, "a duplicate or a loss");
}

/// A Maildir `.Big` folder of `count` small distinct messages under `root`, numbered with
/// gaps (UID `n + n / 97`), each with its own received date and one of a few flag sets
/// (keywords too), and a UIDNEXT above the last UID: what a backup must carry over
/// exactly, whichever copy batch and commit a message falls in.
fn varied_maildir(root: &Path, count: u32) {
    use std::fmt::Write as _;
    let folder = root.join(".Big");
    for dir in [root.to_path_buf(), folder.clone()] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
    }
    std::fs::write(folder.join("maildirfolder"), b"").expect("maildirfolder");
    std::fs::write(folder.join("dovecot-keywords"), "0 $Label1\n1 Work\n").expect("keywords");
    let infos = ["", "S", "FS", "RS", "Sa", "FSab", "b", "DS"];
    let uid = |n: u32| n + n / 97;
    let mut uidlist = format!("3 V1700000003 N{} G{}\n", uid(count) + 7, "b3".repeat(16));
    for n in 1..=count {
        let body = format!(
            "From: a@example.org\nSubject: message {n}\nMessage-ID: <{n}@gen.example.org>\n\nbody {n}\n"
        );
        let (size, vsize) = (body.len(), body.len() + body.matches('\n').count());
        let base = format!("{}.M{n}P1.gen,S={size},W={vsize}", 1_700_000_000 + n);
        let info = infos[(n % 8) as usize];
        let path = folder.join("cur").join(format!("{base}:2,{info}"));
        std::fs::write(&path, body).expect("write message");
        let date = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + u64::from(n) * 61);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(date))
            .expect("received date");
        let _ = writeln!(uidlist, "{} :{base}", uid(n));
    }
    std::fs::write(folder.join("dovecot-uidlist"), uidlist).expect("uidlist");
    let inbox = format!("3 V1700000001 N1 G{}\n", "a1".repeat(16));
    std::fs::write(root.join("dovecot-uidlist"), inbox).expect("uidlist");
    std::fs::write(root.join("subscriptions"), b"Big\n").expect("subscriptions");
}

/// What one Dovecot serves from copies of `theirs` and `ours`, for each: the folder's
/// status and every message's UID, flags, received date, GUID and body, as `doveadm` prints
/// them.
fn served_big(dir: &Path, theirs: &Path, ours: &Path) -> [String; 2] {
    let dovecot = Dovecot::builder()
        .temp_root(dir)
        .user_serving_copy("theirs", "pw", theirs, "maildir")
        .user_serving_copy("ours", "pw", ours, "maildir")
        .start();
    ["theirs", "ours"].map(|user| {
        let status = ["mailbox", "status", "-u", user, "messages uidvalidity uidnext", "Big"];
        let fields = "uid flags date.received.unixtime guid body";
        let fetch = ["-f", "pager", "fetch", "-u", user, fields, "mailbox", "Big", "all"];
        let served = dovecot.doveadm_ok(&status) + &dovecot.doveadm_ok(&fetch);
        // A message saved without flags goes to `new/`, as Dovecot delivers it: `\Recent`
        // for the first session, which is not part of the message.
        let lines = served.lines().map(|line| match line.strip_prefix("flags:") {
            Some(flags) => {
                let kept: Vec<&str> =
                    flags.split_whitespace().filter(|f| *f != "\\Recent").collect();
                format!("flags: {}", kept.join(" "))
            }
            None => line.to_owned(),
        });
        lines.collect::<Vec<_>>().join("\n")
    })
}

/// A first backup saves a folder's messages in batches (2 000 here, `--save-batch`; one
/// source read each),
/// its commits counted across them. Killed (`kill -9`) after the second batch began and
/// a commit inside it, then run again: Dovecot serves exactly the source (UIDs, flags,
/// keywords, dates, bodies, UIDVALIDITY, UIDNEXT), with no message lost or doubled at the
/// batch boundary.
#[test]
fn a_backup_killed_after_its_first_save_batch_resumes_exactly() {
    const MESSAGES: u32 = 2_000 + 4_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source");
    varied_maildir(&source, MESSAGES);
    let target = dir.path().join("Maildir");
    let big = target.join(".Big");
    // 2 100 is the first commit after the batch boundary (2 000).
    let (source_location, target_location) = (maildir(&source), maildir(&target));
    let args = [
        "backup",
        "--commit-interval",
        "300",
        "--save-batch",
        "2000",
        "--no-fsync",
        &source_location,
        &target_location,
    ];
    let mut run = start(&args);
    let started = Instant::now();
    while messages_in(&big) < 2_100 {
        assert!(run.try_wait().expect("wait").is_none(), "dsync ended before the kill");
        assert!(started.elapsed() < Duration::from_secs(120), "dsync copies nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    run.kill().expect("SIGKILL");
    run.wait().expect("killed");
    let present = messages_in(&big);
    assert!((2_100..MESSAGES as usize).contains(&present), "{present} saved before the kill");

    let resumed = dsync(&args, None);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let summary = String::from_utf8_lossy(&resumed.stdout);
    let missing = MESSAGES as usize - present;
    assert!(summary.contains(&format!(" {missing} messages saved")), "{summary}");
    let again = dsync(&args, None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(summary.contains(" 0 messages saved"), "{summary}");

    let [theirs, ours] = served_big(dir.path(), &source, &target);
    assert!(theirs.contains(&format!("messages={MESSAGES} ")), "{}", &theirs[..200]);
    let last = format!("body:\nbody {MESSAGES}");
    assert!(theirs.ends_with(&last), "{}", &theirs[theirs.len() - 300..]);
    let differing = theirs.lines().zip(ours.lines()).find(|(a, b)| a != b);
    assert_eq!(differing, None, "the first line Dovecot serves differently");
    assert_eq!(theirs.lines().count(), ours.lines().count());
}
