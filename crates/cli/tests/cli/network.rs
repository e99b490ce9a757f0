//! The wrong endpoint diagnosed fast and truthfully through the binary: Dovecot's imaps,
//! IMAP and POP3 ports reached with the wrong scheme, a host that does not exist, and a
//! scripted fake server for what Dovecot cannot do (a trickle, `NO [UNAVAILABLE]`, a
//! refused STARTTLS, PREAUTH, a server echoing the password). Exit codes are doveadm's;
//! what cannot mend itself is not retried.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::{Dovecot, FakeServer, Step};

use super::{PASSWORD, dsync, text};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn target(dir: &Path) -> String {
    format!("maildir:{}", dir.join("Maildir").display())
}

/// Runs `dsync backup ARGS… SOURCE DEST`, timed.
fn backup(args: &[&str], source: &str, dir: &Path) -> (Output, Duration) {
    let destination = target(dir);
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[source, &destination]);
    let started = Instant::now();
    let output = dsync(&all, Some(PASSWORD));
    (output, started.elapsed())
}

fn assert_not_retried(output: &Output) {
    assert!(!stderr(output).contains("reconnecting"), "retried: {}", text(output));
}

#[test]
fn wrong_schemes_at_dovecots_ports_are_named_not_retried() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dovecot.ca_file();
    let ca = ca.to_str().expect("utf-8");
    let (imap, imaps) = (dovecot.imap_port(), dovecot.imaps_port());
    let (pop3, pop3s) = (dovecot.pop3_port(), dovecot.pop3s_port());

    type Case<'a> = (String, Vec<&'a str>, &'static str);
    let cases: Vec<Case<'_>> = vec![
        // imap:// (STARTTLS) and ?tls=none at the imaps port: Dovecot stays silent until a
        // ClientHello; the greeting's timeout (here -T 3) and a TLS probe name the port.
        (format!("imap://alice@localhost:{imaps}"), vec![], "this port speaks TLS: use imaps://"),
        (
            format!("imap://alice@127.0.0.1:{imaps}?tls=none"),
            vec![],
            "this port speaks TLS: use imaps://",
        ),
        (format!("pop3://alice@localhost:{pop3s}"), vec![], "this port speaks TLS: use pop3s://"),
        // imaps:// at the plain port: its greeting answers our ClientHello.
        (
            format!("imaps://alice@localhost:{imap}"),
            vec!["--ca-file", ca],
            "this port speaks plain IMAP: use imap://",
        ),
        (
            format!("pop3s://alice@localhost:{pop3}"),
            vec!["--ca-file", ca],
            "this port speaks plain POP3: use pop3://",
        ),
        // The other protocol's port.
        (
            format!("pop3://alice@localhost:{imap}"),
            vec!["--ca-file", ca],
            "this is an IMAP server: use imap://",
        ),
        (
            format!("imap://alice@127.0.0.1:{pop3}?tls=none"),
            vec![],
            "this is a POP3 server: use pop3://",
        ),
        (
            format!("pop3s://alice@localhost:{imaps}"),
            vec!["--ca-file", ca],
            "this is an IMAP server: use imaps://",
        ),
    ];
    for (location, extra, advice) in cases {
        let mut args = vec!["-T", "3"];
        args.extend(extra);
        let (run, took) = backup(&args, &location, dir.path());
        assert_eq!(run.status.code(), Some(78), "{location}: {}", text(&run));
        assert!(stderr(&run).contains(advice), "{location}: {}", text(&run));
        assert!(!stderr(&run).contains("InvalidContentType"), "{location}: {}", text(&run));
        assert!(!stderr(&run).contains("--ca-file"), "{location}: {}", text(&run));
        assert_not_retried(&run);
        assert!(took < Duration::from_secs(10), "{location}: took {took:?}");
    }
    assert!(!dir.path().join("Maildir").exists(), "nothing was created");
}

#[test]
fn a_host_that_does_not_exist_is_not_found_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    // RFC 6761: .invalid never resolves, and needs no network to say so.
    let (run, _) = backup(&[], "imaps://alice@mail.no-such-host.invalid", dir.path());
    assert_eq!(run.status.code(), Some(68), "{}", text(&run));
    assert!(stderr(&run).contains("cannot resolve mail.no-such-host.invalid"), "{}", text(&run));
    assert!(stderr(&run).contains("check the host name"), "{}", text(&run));
    assert_not_retried(&run);
}

#[test]
fn configuration_errors_carry_no_tls_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let same = target(dir.path());
    std::fs::create_dir_all(dir.path().join("Maildir/cur")).expect("mkdir");
    let run = dsync(&["backup", &same, &same], None);
    // A usage mistake (64), and no TLS advice with it.
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    assert!(stderr(&run).contains("the same Maildir"), "{}", text(&run));
    assert!(!stderr(&run).contains("TLS"), "{}", text(&run));
    assert!(!stderr(&run).contains("--ca-file"), "{}", text(&run));
}

/// A fake server: Dovecot answers at once. After login it trickles one byte every 300 ms;
/// with -T 2 the command ends after 2 s without a complete line, temporary (75).
#[test]
fn a_trickling_server_times_out_after_t_seconds_without_progress() {
    let server = FakeServer::start(vec![
        Step::send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] fake ready\r\n"),
        Step::Read,
        Step::send("{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n"),
        Step::Read,
        Step::Trickle(b"* LIST (\\Noselect) \"/\" \"\"\r\n".repeat(4), Duration::from_millis(300)),
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", server.port());
    let (run, took) = backup(&["-T", "2", "--retries", "0"], &location, dir.path());
    assert_eq!(run.status.code(), Some(75), "{}", text(&run));
    assert!(stderr(&run).contains("made no progress for 2s"), "{}", text(&run));
    assert!(took < Duration::from_secs(8), "took {took:?}: {}", text(&run));
}

/// Fake servers: Dovecot says `NO [UNAVAILABLE]` only while its auth process starts, and
/// never refuses a STARTTLS it offers or greets with PREAUTH.
#[test]
fn login_and_starttls_refusals_get_their_exit_codes() {
    let greeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN STARTTLS] fake ready\r\n";
    let dir = tempfile::tempdir().expect("temp dir");

    // RFC 5530: UNAVAILABLE is temporary (75), not the credentials (77).
    let server = FakeServer::start(vec![
        Step::send(greeting),
        Step::Read,
        Step::send("{tag} NO [UNAVAILABLE] Temporary authentication failure\r\n"),
        Step::Read,
    ]);
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", server.port());
    let (run, _) = backup(&["--retries", "0"], &location, dir.path());
    assert_eq!(run.status.code(), Some(75), "{}", text(&run));
    assert!(stderr(&run).contains("temporary: run again later"), "{}", text(&run));
    assert!(!stderr(&run).contains("check the user name"), "{}", text(&run));

    // STARTTLS refused, PREAUTH where STARTTLS is needed: configuration (78), not retried.
    for script in [
        vec![Step::send(greeting), Step::Read, Step::send("{tag} NO not today\r\n"), Step::Read],
        vec![Step::send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome\r\n"), Step::Read],
    ] {
        let server = FakeServer::start(script);
        let location = format!("imap://alice@127.0.0.1:{}", server.port());
        let (run, _) = backup(&[], &location, dir.path());
        assert_eq!(run.status.code(), Some(78), "{}", text(&run));
        assert!(stderr(&run).contains("?tls=none"), "{}", text(&run));
        assert_not_retried(&run);
    }
}

/// A fake server that echoes the password in its refusal and an alert (Dovecot never
/// does): neither stderr, nor -D, nor the raw log shows it.
#[test]
fn a_password_echoed_by_the_server_is_masked_everywhere() {
    let echo = format!(
        "* OK [ALERT] you typed {PASSWORD}\r\n{{tag}} NO [AUTHENTICATIONFAILED] {PASSWORD} is wrong\r\n"
    );
    for mechanism in ["PLAIN", "LOGIN"] {
        let server = FakeServer::start(vec![
            Step::send(&format!("* OK [CAPABILITY IMAP4rev1 AUTH={mechanism}] fake\r\n")),
            Step::Read,
            Step::Send(echo.clone().into_bytes()),
            Step::Read,
        ]);
        let dir = tempfile::tempdir().expect("temp dir");
        let raw = dir.path().join("raw");
        let location = format!("imap://alice@127.0.0.1:{}?tls=none", server.port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
        command
            .args([
                "backup",
                "-D",
                "-r",
                raw.to_str().expect("utf-8"),
                &location,
                &target(dir.path()),
            ])
            .env("DSYNC_PASSWORD", PASSWORD);
        let run = command.output().expect("run dsync");
        let mut all = text(&run);
        for entry in std::fs::read_dir(&raw).into_iter().flatten().flatten() {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry.path()).unwrap_or_default(),
            ));
        }
        assert_eq!(run.status.code(), Some(77), "{all}");
        assert!(!all.contains(PASSWORD), "{mechanism}: the password was printed:\n{all}");
        assert!(all.contains("<redacted> is wrong"), "{mechanism}: {all}");
    }
}
