//! A batch of 20 users with `-j 4`, killed part-way and run again: the second run
//! finishes every user, users done before are no-ops, and Dovecot serves every
//! destination exactly as the source.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

use super::text;

const USERS: usize = 20;

fn user(index: usize) -> String {
    format!("user{index:02}")
}

fn password(index: usize) -> String {
    format!("pw-{index}-batch-secret")
}

fn finished_logs(dir: &Path) -> usize {
    (0..USERS)
        .filter(|&i| {
            std::fs::read_to_string(dir.join(format!("{}.log", user(i))))
                .is_ok_and(|log| log.contains("finished: ok"))
        })
        .count()
}

#[test]
fn batch_of_twenty_users_interrupted_and_resumed() {
    let mut builder = Dovecot::builder();
    for index in 0..USERS {
        builder = builder.user(&user(index), &password(index));
    }
    let source = builder.start();
    let dir = tempfile::tempdir().expect("temp dir");
    let passwords = dir.path().join("pw");
    std::fs::create_dir_all(&passwords).expect("mkdir");
    let mut expected = Vec::new();
    for index in 0..USERS {
        let mut imap = RawImap::login(source.imap_port(), &user(index), &password(index));
        imap.create("Archive");
        imap.subscribe("Archive");
        for message in 0..12 {
            let number = u32::try_from(index * 100 + message).expect("small");
            imap.append("INBOX", &["\\Seen"], None, &fixtures::sized_message(number, 8 * 1024));
            imap.append("Archive", &[], None, &fixtures::message(number, "old", "archived"));
        }
        expected.push(imap.snapshot());
        std::fs::write(passwords.join(user(index)), format!("{}\n", password(index)))
            .expect("write password");
    }
    // The list shows every form: plain users, a per-user source ('-' keeps the template),
    // a per-user credential reference, comments.
    let mut list = String::from("# users to migrate\n");
    for index in 0..USERS {
        match index {
            3 => writeln!(
                list,
                "{}  imap://{}@127.0.0.1:{}?tls=none",
                user(index),
                user(index),
                source.imap_port()
            ),
            5 => {
                writeln!(list, "{}  -  file:{}", user(index), passwords.join(user(index)).display())
            }
            _ => writeln!(list, "{}", user(index)),
        }
        .expect("write to a String");
    }
    let users_file = dir.path().join("users.txt");
    std::fs::write(&users_file, list).expect("write users");
    let logs = dir.path().join("logs");
    let destination = dir.path().join("dest");
    let source_template = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let destination_template = format!("maildir:{}/%u/Maildir", destination.display());
    // Each login waits a little, so the batch is still running when it is killed.
    let password_command = format!("sleep 0.25; cat {}/%u", passwords.display());
    let args = [
        "backup",
        "-F",
        users_file.to_str().expect("utf-8"),
        "-j",
        "4",
        "--log-dir",
        logs.to_str().expect("utf-8"),
        "--password-command",
        &password_command,
        &source_template,
        &destination_template,
    ];

    let mut first = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .env_remove("DSYNC_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsync");
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished_logs(&logs) < 3 {
        assert!(Instant::now() < deadline, "no user finished in time");
        assert!(first.try_wait().expect("poll").is_none(), "the batch ended before the kill");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().expect("kill dsync");
    let killed = first.wait_with_output().expect("wait");
    assert!(killed.status.code().is_none(), "killed by a signal: {}", text(&killed));
    let done_before: Vec<usize> = (0..USERS)
        .filter(|&i| {
            std::fs::read_to_string(logs.join(format!("{}.log", user(i))))
                .is_ok_and(|log| log.contains("finished: ok"))
        })
        .collect();
    assert!(done_before.len() < USERS, "every user finished before the kill");

    let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
    command.args(args).arg("--json").env_remove("DSYNC_PASSWORD");
    let second = command.output().expect("run dsync");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).expect("JSON report");
    let users = report["users"].as_array().expect("users");
    assert_eq!(users.len(), USERS);
    for (index, entry) in users.iter().enumerate() {
        assert_eq!(entry["user"], user(index).as_str());
        assert_eq!(entry["status"], "ok", "{entry}");
        assert!(entry["duration_secs"].as_f64().is_some(), "{entry}");
        if done_before.contains(&index) {
            assert_eq!(entry["messages"], 0, "{} was done before the kill: {entry}", user(index));
        }
    }
    let total: u64 = users.iter().filter_map(|u| u["messages"].as_u64()).sum();
    assert!(total > 0, "the second run finished the interrupted users");
    // One Dovecot serves a copy of every destination.
    let mut reader = Dovecot::builder();
    for index in 0..USERS {
        let path = destination.join(user(index)).join("Maildir");
        reader = reader.user_serving_copy(&user(index), &password(index), &path, "maildir");
    }
    let reader = reader.start();
    for (index, expected) in expected.iter().enumerate() {
        let log = std::fs::read_to_string(logs.join(format!("{}.log", user(index)))).expect("log");
        assert!(log.contains("finished: ok"), "{log}");
        let served: AccountSnapshot =
            RawImap::login(reader.imap_port(), &user(index), &password(index)).snapshot();
        expected.assert_same(&served);
    }
    let all = String::from_utf8_lossy(&second.stdout).into_owned()
        + &String::from_utf8_lossy(&second.stderr)
        + &String::from_utf8_lossy(&killed.stdout)
        + &String::from_utf8_lossy(&killed.stderr);
    for index in 0..USERS {
        assert!(!all.contains(&password(index)), "a password appeared in the output");
    }

    // --shard takes every N-th user: a preflight of one quarter of the list.
    let shard = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args([
            "check",
            "-F",
            users_file.to_str().expect("utf-8"),
            "--shard",
            "1/4",
            "-j",
            "2",
            "--json",
            "--password-command",
            &format!("cat {}/%u", passwords.display()),
            &source_template,
        ])
        .env_remove("DSYNC_PASSWORD")
        .output()
        .expect("run dsync");
    assert_eq!(shard.status.code(), Some(0), "{}", text(&shard));
    let report: serde_json::Value = serde_json::from_slice(&shard.stdout).expect("JSON report");
    let names: Vec<&str> = report["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["user"].as_str())
        .collect();
    assert_eq!(names, ["user01", "user05", "user09", "user13", "user17"]);
    assert!(report["users"].as_array().expect("users").iter().all(|u| u["messages"] == 24));
}
