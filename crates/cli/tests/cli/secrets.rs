//! No password or token in any output: stdout, stderr, `-D` protocol debug, per-user logs
//! and raw protocol logs, for every way a secret can be given and for failed logins.

use std::path::Path;
use std::process::{Command, Output};

use testkit::{Dovecot, RawImap, fixtures};

use super::text;

const PASSWORD: &str = "pw-Never-Printed-7";
const TOKEN: &str = "ya29.token-Never-Printed-8";
const MASTER_FILE_SECRET: &str = "master-secret";

fn everything_written(output: &Output, dirs: &[&Path]) -> String {
    let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&output.stderr));
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry.path()).unwrap_or_default(),
            ));
        }
    }
    all
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
    command.args(args).env_remove("DSYNC_PASSWORD");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run dsync")
}

#[test]
fn no_password_or_token_in_any_output_or_log() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    imap.append("INBOX", &["\\Seen"], None, &fixtures::message(1, "hello", "body"));
    let dir = tempfile::tempdir().expect("temp dir");
    let (logs, rawlogs) = (dir.path().join("logs"), dir.path().join("raw"));
    let imap_url = format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port());
    let starttls = format!("imap://alice@localhost:{}?tls=starttls", dovecot.imap_port());
    let ca = dovecot.ca_file();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write");
    let master_file = dir.path().join("master");
    let (master, master_password) = dovecot.master_credentials();
    std::fs::write(&master_file, master_password).expect("write");
    let target = |name: &str| format!("maildir:{}", dir.path().join(name).display());
    let common = [
        "-D",
        "-v",
        "--log-dir",
        logs.to_str().expect("utf-8"),
        "-r",
        rawlogs.to_str().expect("utf-8"),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["backup".into()];
        args.extend(common.iter().map(|s| (*s).to_owned()));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let password_command = format!("cat {}", password_file.display());
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, i32);
    let cases: Vec<Case<'_>> = vec![
        (with(&[&imap_url, &target("env")]), vec![("DSYNC_PASSWORD", PASSWORD)], 0),
        (
            with(&[
                "--password-file",
                password_file.to_str().expect("utf-8"),
                &imap_url,
                &target("file"),
            ]),
            vec![],
            0,
        ),
        (
            with(&["--password-command", &password_command, &imap_url, &target("command")]),
            vec![],
            0,
        ),
        (
            with(&["--ca-file", ca.to_str().expect("utf-8"), &starttls, &target("starttls")]),
            vec![("DSYNC_PASSWORD", PASSWORD)],
            0,
        ),
        (
            with(&[
                "--master-user",
                master,
                "--password-file",
                master_file.to_str().expect("utf-8"),
                &imap_url,
                &target("via-master"),
            ]),
            vec![],
            0,
        ),
        // Dovecot here has no OAuth2: the login fails, and the token is still never shown.
        (
            with(&[
                "--oauth2-token-file",
                token_file.to_str().expect("utf-8"),
                &imap_url,
                &target("oauth"),
            ]),
            vec![],
            77,
        ),
        (
            with(&[
                "--sasl-mechanism",
                "oauthbearer",
                "--oauth2-token-file",
                token_file.to_str().expect("utf-8"),
                &imap_url,
                &target("bearer"),
            ]),
            vec![],
            77,
        ),
        // A wrong password: the attempt is logged, the password is not.
        (
            with(&["--retries", "0", &imap_url, &target("wrong")]),
            vec![("DSYNC_PASSWORD", "Wrong-Never-Printed-9")],
            77,
        ),
    ];
    for (args, env, code) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&args, env);
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {}", text(&output));
        let all = everything_written(&output, &[&logs, &rawlogs]);
        for secret in [PASSWORD, TOKEN, MASTER_FILE_SECRET, "Wrong-Never-Printed-9"] {
            assert!(!all.contains(secret), "{secret} appeared for {args:?}:\n{all}");
        }
    }
    // The logs are there and do show the protocol, with the credentials masked.
    let debug_log = std::fs::read_to_string(logs.join("alice.log")).expect("user log");
    assert!(debug_log.contains("LOGIN") || debug_log.contains("AUTHENTICATE"), "{debug_log}");
    assert!(debug_log.contains("<redacted>"), "{debug_log}");
    let raw = std::fs::read_to_string(rawlogs.join("alice.rawlog")).expect("raw log");
    assert!(raw.contains("C: ") && raw.contains("S: "), "{raw}");

    // A password in the location is refused without being echoed back.
    let in_url = format!("imap://alice:{PASSWORD}@127.0.0.1:{}", dovecot.imap_port());
    let refused = run(&["backup", &in_url, &target("url")], &[]);
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    let shown = String::from_utf8_lossy(&refused.stderr);
    assert!(shown.contains("passwords are not accepted in the location"), "{shown}");
}
