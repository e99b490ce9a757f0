//! TLS through the binary against real Dovecots: `imap://` and `pop3://` mean STARTTLS/STLS
//! with the certificate checked and no credentials before it (Dovecot's log and the `-D`
//! trace prove it), clear text only with `?tls=none` / `-o imapc_ssl=no`, LOGINDISABLED
//! honoured; and a self-signed `CA:TRUE` server certificate trusted exactly by `--ca-file`,
//! a CA directory or `--fingerprint`, while other certificates, names and fingerprints are
//! still refused with advice that names those options.

use std::path::Path;
use std::process::Output;

use testkit::{Dovecot, RawImap, UNSECURED_ADDRESS, fixtures};

use super::{PASSWORD, dsync, served, text};

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A source with two messages in INBOX and one in a folder.
fn source(builder: testkit::DovecotBuilder) -> Dovecot {
    let dovecot = builder.user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    imap.append("INBOX", &["\\Seen"], None, &fixtures::message(1, "one", "first"));
    imap.append("INBOX", &[], None, &fixtures::message(2, "two", "second"));
    imap.create("Archive");
    imap.append("Archive", &["\\Flagged"], None, &fixtures::message(3, "three", "third"));
    imap.logout();
    dovecot
}

/// The protocol lines a `-D` run sent, in order.
fn sent(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter_map(|line| line.split_once("C: ").map(|(_, command)| command.to_owned()))
        .collect()
}

/// Dovecot's log lines for logins since `before` (a length of [`Dovecot::log`]).
fn logins_since(dovecot: &Dovecot, before: usize) -> Vec<String> {
    dovecot.log()[before..].lines().filter(|l| l.contains("Login: ")).map(str::to_owned).collect()
}

/// The length of Dovecot's log once it holds `logins` login lines in all; panics after
/// ten seconds.
fn log_len_once_logins_are(dovecot: &Dovecot, logins: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = dovecot.log();
        if log.lines().filter(|l| l.contains("Login: ")).count() >= logins {
            return log.len();
        }
        assert!(std::time::Instant::now() < deadline, "{logins} logins never logged: {log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Dovecot's log since `before` once it holds `wanted` (the login process logs a
/// disconnect a moment after the client is gone); panics after ten seconds.
fn log_once_it_says(dovecot: &Dovecot, before: usize, wanted: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = dovecot.log()[before..].to_owned();
        if log.contains(wanted) {
            return log;
        }
        assert!(std::time::Instant::now() < deadline, "{wanted:?} never logged: {log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn position(lines: &[String], wanted: &str) -> Option<usize> {
    lines.iter().position(|line| line.contains(wanted))
}

#[test]
fn imap_and_pop3_urls_log_in_over_starttls_with_the_certificate_checked() {
    let dovecot = source(Dovecot::builder());
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dovecot.ca_file();
    let ca = ca.to_str().expect("utf-8");
    let imap = format!("imap://alice@127.0.0.1:{}", dovecot.imap_port());
    let pop3 = format!("pop3://alice@127.0.0.1:{}", dovecot.pop3_port());
    let expected = RawImap::login(dovecot.imap_port(), "alice", PASSWORD).snapshot();

    // imap://: STARTTLS first, the login after it, and Dovecot logs the login as TLS.
    // Dovecot logs a login a moment after it: the clear-text ones so far (testkit's
    // readiness probe, the filling and the snapshot) must be in the log before the run's
    // are looked for.
    let before = log_len_once_logins_are(&dovecot, 3);
    let destination = dir.path().join("imap");
    let run =
        dsync(&["-D", "backup", "--ca-file", ca, &imap, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let lines = sent(&run);
    let starttls = position(&lines, "STARTTLS").expect("STARTTLS sent");
    let login = position(&lines, "AUTHENTICATE").expect("AUTHENTICATE sent");
    assert!(starttls < login, "{lines:?}");
    let _ = log_once_it_says(&dovecot, before, "Login: ");
    let logins = logins_since(&dovecot, before);
    assert!(!logins.is_empty() && logins.iter().all(|l| l.contains(", TLS")), "{logins:?}");
    expected.assert_same(&served(&destination));

    // pop3://: STLS before AUTH, logged as TLS.
    let before = dovecot.log().len();
    let run = dsync(
        &["-D", "backup", "--ca-file", ca, &pop3, &maildir(&dir.path().join("pop3"))],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let lines = sent(&run);
    let stls = position(&lines, "STLS").expect("STLS sent");
    let login = position(&lines, "AUTH PLAIN").expect("AUTH sent");
    assert!(stls < login, "{lines:?}");
    let _ = log_once_it_says(&dovecot, before, "pop3-login: Info: Login: ");
    let logins = logins_since(&dovecot, before);
    assert!(logins.iter().any(|l| l.contains("pop3-login")), "{logins:?}");
    assert!(logins.iter().all(|l| l.contains(", TLS")), "{logins:?}");

    // imapc: and pop3c: without imapc_ssl/pop3c_ssl do the same.
    for (protocol, port) in [("imapc", dovecot.imap_port()), ("pop3c", dovecot.pop3_port())] {
        let before = dovecot.log().len();
        let settings = [format!("{protocol}_host=127.0.0.1"), format!("{protocol}_port={port}")];
        let run = dsync(
            &[
                "-o",
                &settings[0],
                "-o",
                &settings[1],
                "-o",
                &format!("ssl_client_ca_file={ca}"),
                "backup",
                "-u",
                "alice",
                &format!("{protocol}:"),
                &maildir(&dir.path().join(protocol)),
            ],
            Some(PASSWORD),
        );
        assert_eq!(run.status.code(), Some(0), "{protocol}: {}", text(&run));
        let logins = logins_since(&dovecot, before);
        assert!(!logins.is_empty() && logins.iter().all(|l| l.contains(", TLS")), "{logins:?}");
    }

    // The certificate is checked: without the CA nothing is sent after STARTTLS.
    let before = dovecot.log().len();
    let run =
        dsync(&["-D", "backup", &imap, &maildir(&dir.path().join("untrusted"))], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(78), "{}", text(&run));
    assert!(stderr(&run).contains("--ca-file"), "{}", text(&run));
    let lines = sent(&run);
    assert!(position(&lines, "STARTTLS").is_some(), "{lines:?}");
    assert!(position(&lines, "AUTHENTICATE").is_none() && position(&lines, "LOGIN").is_none());
    let log = log_once_it_says(&dovecot, before, "no auth attempts");
    assert!(!log.contains("Login: "), "{log}");
}

#[test]
fn a_server_without_starttls_gets_no_password_unless_clear_text_is_asked_for() {
    let dovecot = source(Dovecot::builder().without_tls());
    let dir = tempfile::tempdir().expect("temp dir");
    for (scheme, port, commands) in [
        ("imap", dovecot.imap_port(), &["AUTHENTICATE", "LOGIN"][..]),
        ("pop3", dovecot.pop3_port(), &["AUTH", "USER", "PASS"][..]),
    ] {
        let location = format!("{scheme}://alice@127.0.0.1:{port}");
        let before = dovecot.log().len();
        let refused = dsync(
            &["-D", "backup", &location, &maildir(&dir.path().join(format!("{scheme}-refused")))],
            Some(PASSWORD),
        );
        assert_eq!(refused.status.code(), Some(78), "{scheme}: {}", text(&refused));
        let said = stderr(&refused);
        assert!(said.contains("?tls=none") && said.contains(&format!("{scheme}s://")), "{said}");
        let lines = sent(&refused);
        for command in commands {
            assert!(
                lines.iter().all(
                    |line| !line.starts_with(command) && !line.contains(&format!(" {command}"))
                ),
                "{scheme}: {command} was sent: {lines:?}"
            );
        }
        // Dovecot saw the connection end without any login attempt.
        let log = log_once_it_says(&dovecot, before, "no auth attempts");
        assert!(!log.contains("Login: "), "{log}");

        // Asked for by name: clear text works.
        let plain = format!("{location}?tls=none");
        let run = dsync(&["backup", &plain, &maildir(&dir.path().join(scheme))], Some(PASSWORD));
        assert_eq!(run.status.code(), Some(0), "{scheme}: {}", text(&run));
    }

    // imapc: likewise: refused by default, clear text with -o imapc_ssl=no.
    let host = "imapc_host=127.0.0.1".to_owned();
    let port = format!("imapc_port={}", dovecot.imap_port());
    let target = maildir(&dir.path().join("imapc"));
    let args = |extra: &'static [&'static str]| {
        let mut args = vec!["-o", host.as_str(), "-o", port.as_str()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["backup", "-u", "alice", "imapc:", target.as_str()]);
        args
    };
    let refused = dsync(&args(&[]), Some(PASSWORD));
    assert_eq!(refused.status.code(), Some(78), "{}", text(&refused));
    assert!(stderr(&refused).contains("-o imapc_ssl=no"), "{}", text(&refused));
    let plain = dsync(&args(&["-o", "imapc_ssl=no"]), Some(PASSWORD));
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));
}

#[test]
fn logindisabled_and_its_pop3_counterpart_keep_the_password_off_the_wire() {
    // Dovecot treats 127.0.0.1 -> 127.0.0.1 as secured; on 127.0.0.2 it says LOGINDISABLED
    // and its CAPA drops USER and SASL PLAIN.
    let dovecot = source(
        Dovecot::builder()
            .without_tls()
            .unsecured_listeners()
            .extra_config("disable_plaintext_auth = yes\nauth_verbose = yes"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for (scheme, port, commands) in [
        ("imap", dovecot.unsecured_imap_port(), &["AUTHENTICATE", "LOGIN"][..]),
        ("pop3", dovecot.unsecured_pop3_port(), &["AUTH", "USER", "PASS"][..]),
    ] {
        let location = format!("{scheme}://alice@{UNSECURED_ADDRESS}:{port}?tls=none");
        let before = dovecot.log().len();
        let run =
            dsync(&["-D", "backup", &location, &maildir(&dir.path().join(scheme))], Some(PASSWORD));
        assert_eq!(run.status.code(), Some(78), "{scheme}: {}", text(&run));
        let said = stderr(&run);
        assert!(said.contains("no credentials were sent"), "{said}");
        assert!(said.contains("instead of ?tls=none"), "{said}");
        if scheme == "imap" {
            assert!(said.contains("LOGINDISABLED"), "{said}");
        }
        let lines = sent(&run);
        for command in commands {
            assert!(
                lines.iter().all(
                    |line| !line.starts_with(command) && !line.contains(&format!(" {command}"))
                ),
                "{scheme}: {command} was sent: {lines:?}"
            );
        }
        // Dovecot saw no login attempt at all (auth_verbose would log a refused one).
        let log = log_once_it_says(&dovecot, before, "no auth attempts");
        assert!(!log.contains("Login: ") && !log.contains("Plaintext authentication"), "{log}");
    }
}

#[test]
fn a_self_signed_ca_certificate_is_trusted_exactly() {
    let dovecot = source(Dovecot::builder().self_signed_certificate());
    let dir = tempfile::tempdir().expect("temp dir");
    let certificate = dovecot.server_certificate();
    let cert = certificate.to_str().expect("utf-8");
    let fingerprint = testkit::sha256_fingerprint(&certificate);
    let expected = RawImap::login(dovecot.imap_port(), "alice", PASSWORD).snapshot();
    let url = |scheme: &str, host: &str, port: u16| format!("{scheme}://alice@{host}:{port}");
    let imaps = url("imaps", "localhost", dovecot.imaps_port());

    // The certificate itself as --ca-file (and as ssl_client_ca_file): imaps, STARTTLS, POP3.
    let destination = dir.path().join("imaps");
    let run = dsync(&["backup", "--ca-file", cert, &imaps, &maildir(&destination)], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    expected.assert_same(&served(&destination));
    let ca_setting = format!("ssl_client_ca_file={cert}");
    for (name, location) in [
        ("starttls", url("imap", "localhost", dovecot.imap_port())),
        ("pop3s", url("pop3s", "localhost", dovecot.pop3s_port())),
        ("stls", url("pop3", "localhost", dovecot.pop3_port())),
    ] {
        let run = dsync(
            &["-o", &ca_setting, "backup", &location, &maildir(&dir.path().join(name))],
            Some(PASSWORD),
        );
        assert_eq!(run.status.code(), Some(0), "{name}: {}", text(&run));
    }

    // A CA directory, c_rehash'd by openssl, and one of plain PEM files.
    let hashed = dir.path().join("hashed");
    std::fs::create_dir(&hashed).expect("mkdir");
    std::fs::copy(&certificate, hashed.join("old-server.pem")).expect("copy");
    let rehash = std::process::Command::new("openssl").arg("rehash").arg(&hashed).status();
    assert!(rehash.expect("run openssl rehash").success());
    let links = std::fs::read_dir(&hashed).expect("read dir").count();
    assert_eq!(links, 2, "openssl rehash made a hash link");
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    std::fs::copy(&certificate, plain.join("server.crt")).expect("copy");
    for (name, setting) in [
        ("dir-hashed", format!("ssl_client_ca_dir={}", hashed.display())),
        ("dir-plain", format!("imapc_ssl_ca_dir={}", plain.display())),
    ] {
        let run = dsync(
            &["-o", &setting, "backup", &imaps, &maildir(&dir.path().join(name))],
            Some(PASSWORD),
        );
        assert_eq!(run.status.code(), Some(0), "{name}: {}", text(&run));
    }

    // By fingerprint, as openssl prints it: under any name (here the IP the certificate
    // does not carry), also from the config file for POP3.
    let by_ip = url("imaps", "127.0.0.1", dovecot.imaps_port());
    let run = dsync(
        &["backup", "--fingerprint", &fingerprint, &by_ip, &maildir(&dir.path().join("pinned"))],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let config = dir.path().join("dsync.toml");
    std::fs::write(&config, format!("[defaults]\nfingerprint = [\"{fingerprint}\"]\n"))
        .expect("write");
    let run = dsync(
        &[
            "-c",
            config.to_str().expect("utf-8"),
            "backup",
            &url("pop3s", "127.0.0.1", dovecot.pop3s_port()),
            &maildir(&dir.path().join("pinned-pop3")),
        ],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));

    // Still refused, exit 78, with advice naming the options and the fingerprint:
    let other_dir = tempfile::tempdir().expect("temp dir");
    let (other, _) = testkit::self_signed_certificate(other_dir.path(), "other", "localhost");
    let other_fingerprint = testkit::sha256_fingerprint(&other);
    let refusals: [(&str, Vec<String>, &[&str]); 4] = [
        // nothing given: the server's fingerprint and both options are named;
        (
            "untrusted",
            vec![imaps.clone()],
            &["self-signed", "--ca-file", "--fingerprint", fingerprint.as_str()],
        ),
        // a different self-signed certificate for the same name;
        (
            "other certificate",
            vec!["--ca-file".into(), other.display().to_string(), imaps.clone()],
            &["self-signed", "--ca-file", fingerprint.as_str()],
        ),
        // the right certificate, the wrong host name (no IP in it);
        (
            "wrong name",
            vec!["--ca-file".into(), cert.into(), by_ip.clone()],
            &[
                "not valid for 127.0.0.1, only for localhost (common name)",
                "--fingerprint",
                fingerprint.as_str(),
            ],
        ),
        // the wrong fingerprint.
        (
            "wrong fingerprint",
            vec!["--fingerprint".into(), other_fingerprint.clone(), imaps.clone()],
            &["not the pinned one", "someone may be in the way", fingerprint.as_str()],
        ),
    ];
    for (name, args, wanted) in refusals {
        let mut all = vec!["backup"];
        all.extend(args.iter().map(String::as_str));
        let target = maildir(&dir.path().join(name.replace(' ', "-")));
        all.push(&target);
        let run = dsync(&all, Some(PASSWORD));
        assert_eq!(run.status.code(), Some(78), "{name}: {}", text(&run));
        let said = stderr(&run);
        for wanted in wanted {
            assert!(said.contains(wanted), "{name}: {wanted:?} missing: {said}");
        }
    }
    // A fingerprint that is not one is a usage error.
    let run = dsync(&["backup", "--fingerprint", "sha1:00", &imaps, "maildir:/nonexistent"], None);
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    assert!(stderr(&run).contains("sha256:HEX"), "{}", text(&run));
}
