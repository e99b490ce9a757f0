//! The `dsync` binary against the real Dovecot: results checked through Dovecot, exit
//! codes for the failures an operator meets, and no password in any output.

mod all_mail;
mod batch;
mod dovecot_files;
mod dovecot_history;
mod fs_layout;
mod gmail;
mod hostile_source;
mod imap_destination;
mod imap_parallel;
mod imap_throttling;
mod imap_two_way;
mod import_query;
mod interrupt;
mod maildir_source;
mod many_folders;
mod network;
mod no_uidplus;
mod operator;
mod ownership;
mod parallel_listing;
mod pop3;
mod real_corpus;
mod remote;
mod report;
mod sdbox;
mod secrets;
mod seeds;
mod shards;
mod sieve;
mod tls;
mod uid_rule;
mod verbs;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

const PASSWORD: &str = "alice-secret-pw";

fn dsync(args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
    command.args(args).env_remove("DSYNC_PASSWORD");
    if let Some(password) = password {
        command.env("DSYNC_PASSWORD", password);
    }
    let output = command.output().expect("run dsync");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains(PASSWORD), "the password appeared in the output:\n{all}");
    output
}

/// Runs `command` (a dsync) and kills it if it has not ended within 60 s: a hang fails the
/// test instead of blocking it. The output goes to files, not pipes, which a chatty run
/// could fill while the test waits without reading them.
fn output_within_a_minute(command: &mut Command) -> Output {
    let stdout = tempfile::tempfile().expect("stdout file");
    let stderr = tempfile::tempfile().expect("stderr file");
    let mut child = command
        .stdout(stdout.try_clone().expect("stdout"))
        .stderr(stderr.try_clone().expect("stderr"))
        .spawn()
        .expect("run dsync");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, hung) = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().expect("reaped"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut file: std::fs::File| {
        use std::io::{Read, Seek};
        let mut bytes = Vec::new();
        file.rewind().and_then(|()| file.read_to_end(&mut bytes)).expect("read output");
        bytes
    };
    let output = Output { status, stdout: read(stdout), stderr: read(stderr) };
    assert!(!hung, "dsync hung and was killed after 60 s:\n{}", text(&output));
    output
}

fn text(output: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn served(path: &Path) -> AccountSnapshot {
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start();
    RawImap::login(dovecot.imap_port(), "reader", "readerpw").snapshot()
}

fn source_with_fixture() -> (Dovecot, AccountSnapshot) {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    fixtures::populate_standard(&mut imap);
    let snapshot = imap.snapshot();
    (dovecot, snapshot)
}

#[test]
fn backup_through_the_binary_is_what_dovecot_serves_and_reruns_change_nothing() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let target = format!("maildir:{}", destination.display());

    let first = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains(&format!("{} messages saved", expected.message_count())), "{summary}");
    expected.assert_same(&served(&destination));

    let second = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in")
    );
    expected.assert_same(&served(&destination));
}

#[test]
fn imaps_with_private_ca_password_file_and_master_user() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("password");
    let (master, master_password) = source.master_credentials();
    std::fs::write(&password_file, format!("{master_password}\n")).expect("write password file");
    let destination = dir.path().join("Maildir");
    let target = format!("maildir:{}", destination.display());
    let location = format!("imaps://alice@localhost:{}", source.imaps_port());
    let ca = source.ca_file();
    let args = [
        "backup",
        "--ca-file",
        ca.to_str().expect("utf-8"),
        "--password-file",
        password_file.to_str().expect("utf-8"),
        "--master-user",
        master,
        &location,
        &target,
    ];
    let run = dsync(&args, None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    expected.assert_same(&served(&destination));

    // Four folders at once: four more logins, each as the master user over TLS, the same
    // result, and the master password in no debug line.
    // Counted once every session has ended: Dovecot logs asynchronously.
    let logins = || source.settled_log(0).matches("Login: user=<alice>").count();
    let before = logins();
    let parallel_destination = dir.path().join("Parallel");
    let parallel_target = format!("maildir:{}", parallel_destination.display());
    let mut parallel_args = args.to_vec();
    parallel_args.splice(1..1, ["-D", "--parallel-folders", "4"]);
    *parallel_args.last_mut().expect("target") = &parallel_target;
    let parallel = dsync(&parallel_args, None);
    assert_eq!(parallel.status.code(), Some(0), "{}", text(&parallel));
    assert!(!text(&parallel).contains(master_password), "{}", text(&parallel));
    assert_eq!(logins() - before, 5, "{}", source.log());
    expected.assert_same(&served(&parallel_destination));

    // Without the private CA the certificate is refused: never a silent plaintext login.
    let untrusted = dsync(
        &[
            "backup",
            "--password-file",
            password_file.to_str().expect("utf-8"),
            "--master-user",
            master,
            &location,
            &target,
        ],
        None,
    );
    assert_eq!(untrusted.status.code(), Some(78), "{}", text(&untrusted));
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains("TLS"), "{}", text(&untrusted));
}

#[test]
fn exit_codes_for_what_goes_wrong() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = format!("maildir:{}", dir.path().join("Maildir").display());
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let refused_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").expect("write file");
    let under_a_file = format!("maildir:{}", not_a_dir.join("Maildir").display());
    let missing_source = format!("maildir:{}", dir.path().join("nope").display());

    let cases: [(&[&str], Option<&str>, i32, &str); 8] = [
        (&["backup", &location, &target], Some("wrong password"), 77, "authentication failed"),
        (
            &["backup", &format!("imap://alice@127.0.0.1:{refused_port}?tls=none"), &target],
            Some(PASSWORD),
            75,
            "Connection refused",
        ),
        (&["backup", &location, &target], None, 64, "no password"),
        (&["backup", "imap:/alice@host", &target], Some(PASSWORD), 64, "invalid location"),
        (&["sync", "pop3://bob@host", &target], Some(PASSWORD), 64, "read-only here"),
        (&["backup", &missing_source, &target], None, 68, "does not exist"),
        (&["backup", &location, &under_a_file], Some(PASSWORD), 73, "Not a directory"),
        (&["backup", "--bogus", &location, &target], Some(PASSWORD), 64, "unexpected argument"),
    ];
    for (args, password, code, message) in cases {
        let run = dsync(args, password);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {}", text(&run));
        assert!(String::from_utf8_lossy(&run.stderr).contains(message), "{args:?}: {}", text(&run));
    }
    // Nothing was created by the failed runs.
    assert!(!dir.path().join("Maildir").exists(), "a failed run created the destination");
}
