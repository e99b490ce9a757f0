//! `--sieve-from`/`--sieve-to` against real Dovecot + Pigeonhole: scripts (several, one
//! active, CRLF and non-ASCII, a name with spaces) moved ManageSieve → file store → and
//! back to ManageSieve, proved by managesieved serving the result byte for byte; re-runs
//! converge after changes on the source; a script the destination refuses is reported
//! with its reason (exit 65) while the mail and the other scripts migrate.

use managesieve::{Client, ConnectOptions, Credentials, ScriptName, Security, Session};
use testkit::{Dovecot, RawImap, fixtures};

use super::{PASSWORD, dsync, text};

fn name(text: &str) -> ScriptName {
    ScriptName::new(text).expect("valid name")
}

fn session(dovecot: &Dovecot, user: &str, password: &str) -> Session {
    Client::connect(&ConnectOptions::new("127.0.0.1", dovecot.managesieve_port(), Security::Plain))
        .expect("connect")
        .login(&Credentials::new(user, password))
        .map_err(|(error, _)| error)
        .expect("login")
}

/// Every script with its bytes, sorted, and the active one, as managesieved serves them.
fn served(
    dovecot: &Dovecot,
    user: &str,
    password: &str,
) -> (Vec<(String, Vec<u8>)>, Option<String>) {
    let mut session = session(dovecot, user, password);
    let mut scripts = Vec::new();
    let mut active = None;
    for script in session.list_scripts().expect("list") {
        if script.active {
            active = Some(script.name.to_string());
        }
        let bytes = session.get_script(&script.name).expect("get");
        scripts.push((script.name.to_string(), bytes));
    }
    scripts.sort();
    (scripts, active)
}

const SPAM: &str = "require [\"fileinto\"];\r\n# Spam → Müll\r\nif header :contains \"X-Spam\" \"yes\" {\r\n  fileinto \"Müll\";\r\n}\r\n";
const AWAY: &str = "require \"vacation\";\nvacation :days 3 \"Away — back soon.\";\n";

fn sieve_dovecot() -> Dovecot {
    Dovecot::builder().user("alice", PASSWORD).user("bob", PASSWORD).managesieve().start()
}

fn file_location(home: &std::path::Path) -> String {
    format!("file:{0}/sieve;active={0}/.dovecot.sieve", home.display())
}

fn run_backup(
    source: &Dovecot,
    maildir: &str,
    sieve_from: &str,
    sieve_to: &str,
) -> std::process::Output {
    let mail = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    dsync(
        &["-v", "backup", &mail, maildir, "--sieve-from", sieve_from, "--sieve-to", sieve_to],
        Some(PASSWORD),
    )
}

#[test]
fn scripts_go_managesieve_to_files_and_back_and_reruns_converge() {
    let source = sieve_dovecot();
    fixtures::populate_standard(&mut RawImap::login(source.imap_port(), "alice", PASSWORD));
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("Spam filter (Müll)"), SPAM.as_bytes()).expect("put");
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.put_script(&name("keep"), b"keep;\r\n").expect("put");
    writer.set_active(Some(&name("away"))).expect("activate");
    let expected = served(&source, "alice", PASSWORD);
    assert_eq!(expected.1.as_deref(), Some("away"));

    // ManageSieve → Pigeonhole's file store in the home of a user of another Dovecot.
    let destination = sieve_dovecot();
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = format!("maildir:{}", dir.path().join("Maildir").display());
    let from = format!("sieve://alice@127.0.0.1:{}?tls=none", source.managesieve_port());
    let files = file_location(&destination.home("alice"));
    let first = dsync(
        &[
            "-D",
            "backup",
            &format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port()),
            &maildir,
            "--sieve-from",
            &from,
            "--sieve-to",
            &files,
        ],
        Some(PASSWORD),
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // The protocol trace (-D) shows the ManageSieve login without the credentials (dsync()
    // checks that the password appears nowhere) and scripts only as their length.
    let trace = String::from_utf8_lossy(&first.stderr);
    assert!(trace.contains("AUTHENTICATE \"PLAIN\" <redacted>"), "{}", text(&first));
    assert!(!trace.contains("X-Spam"), "script bytes in the trace: {}", text(&first));
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(
        summary.contains("sieve: 3 scripts; 3 stored, 0 deleted, active script set, 0 refused"),
        "{}",
        text(&first)
    );
    assert_eq!(served(&destination, "alice", PASSWORD), expected, "managesieved serves our files");
    let link = std::fs::read_link(destination.home("alice").join(".dovecot.sieve")).expect("link");
    assert_eq!(link, std::path::Path::new("sieve/away.sieve"));

    // File store → ManageSieve (bob of the same Dovecot).
    let to_bob = format!("sieve://bob@127.0.0.1:{}?tls=none", destination.managesieve_port());
    let back = run_backup(&source, &maildir, &files, &to_bob);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert_eq!(served(&destination, "bob", PASSWORD), expected);

    // Changes on the source: add, change, rename, delete, activation.
    writer.put_script(&name("new one"), b"discard;\r\n").expect("add");
    writer.put_script(&name("keep"), b"keep;\r\nstop;\r\n").expect("change");
    writer.rename_script(&name("Spam filter (Müll)"), &name("spam")).expect("rename");
    writer.set_active(Some(&name("keep"))).expect("activate keep");
    writer.delete_script(&name("away")).expect("delete");
    let changed = served(&source, "alice", PASSWORD);
    // verify names every Sieve difference (exit 1) …
    let mail = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let verify = |expected: i32| {
        let output = dsync(
            &["verify", &mail, &maildir, "--sieve-from", &from, "--sieve-to", &files],
            Some(PASSWORD),
        );
        assert_eq!(output.status.code(), Some(expected), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let differences = verify(1);
    for expected in [
        "sieve: script \"new one\" is missing on the destination",
        "sieve: script \"keep\" differs (14 bytes, 7 on the destination)",
        "sieve: script \"away\" is only on the destination",
        "sieve: active script \"keep\", on the destination \"away\"",
    ] {
        assert!(differences.contains(expected), "{expected}: {differences}");
    }
    let again = run_backup(&source, &maildir, &from, &files);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(served(&destination, "alice", PASSWORD), changed);
    assert!(!destination.home("alice").join("sieve/away.sieve").exists(), "backup removes extras");
    // … and none after the run.
    assert_eq!(verify(0), "");
    // A run with nothing new changes nothing.
    let quiet = run_backup(&source, &maildir, &from, &files);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet));
    assert!(
        String::from_utf8_lossy(&quiet.stdout)
            .contains("sieve: 3 scripts; 0 stored, 0 deleted, 0 refused"),
        "{}",
        text(&quiet)
    );
}

#[test]
fn managesieve_to_managesieve_through_a_master_user_and_sync_one_way_keeps_extras() {
    let source = sieve_dovecot();
    let destination = sieve_dovecot();
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.set_active(Some(&name("away"))).expect("activate");
    session(&destination, "bob", PASSWORD).put_script(&name("bob's own"), b"keep;\n").expect("put");

    let (master, master_password) = source.master_credentials();
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = format!("maildir:{}", dir.path().join("Maildir").display());
    let mail = format!("imap://alice*{master}@127.0.0.1:{}?tls=none", source.imap_port());
    let from = format!("sieve://alice*{master}@127.0.0.1:{}?tls=none", source.managesieve_port());
    let to = format!("sieve://bob*{master}@127.0.0.1:{}?tls=none", destination.managesieve_port());
    let output = dsync(
        &["sync", "-1", &mail, &maildir, "--sieve-from", &from, "--sieve-to", &to],
        Some(master_password),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let (scripts, active) = served(&destination, "bob", PASSWORD);
    let names: Vec<&str> = scripts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["away", "bob's own"], "sync -1 adds and keeps the destination's own");
    assert_eq!(active.as_deref(), Some("away"));
    assert_eq!(scripts[0].1, AWAY.as_bytes());
}

#[test]
fn a_script_the_destination_refuses_is_reported_and_the_rest_migrates() {
    let source = sieve_dovecot();
    fixtures::populate_standard(&mut RawImap::login(source.imap_port(), "alice", PASSWORD));
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.put_script(&name("keep"), b"keep;\r\n").expect("put");
    writer.set_active(Some(&name("keep"))).expect("activate");
    // The destination's Pigeonhole lacks the vacation extension.
    let destination = Dovecot::builder()
        .user("alice", PASSWORD)
        .sieve_setting("sieve_extensions", "-vacation")
        .start();
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir_path = dir.path().join("Maildir");
    let maildir = format!("maildir:{}", maildir_path.display());
    let from = format!("sieve://alice@127.0.0.1:{}?tls=none", source.managesieve_port());
    let to = format!("sieve://alice@127.0.0.1:{}?tls=none", destination.managesieve_port());
    let output = run_backup(&source, &maildir, &from, &to);
    assert_eq!(output.status.code(), Some(65), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"away\"") && stderr.contains("vacation"), "{}", text(&output));
    let (scripts, active) = served(&destination, "alice", PASSWORD);
    assert_eq!(scripts, [("keep".to_owned(), b"keep;\r\n".to_vec())]);
    assert_eq!(active.as_deref(), Some("keep"));
    // The mail is all there.
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("messages saved"), "{}", text(&output));
    assert!(maildir_path.join("cur").exists());
    // --json names the refused script and the reason, run after run.
    let mail = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let json = dsync(
        &["backup", "--json", &mail, &maildir, "--sieve-from", &from, "--sieve-to", &to],
        Some(PASSWORD),
    );
    assert_eq!(json.status.code(), Some(65), "{}", text(&json));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let sieve = &json["users"][0]["sieve"];
    assert_eq!(
        (sieve["status"].as_str(), sieve["scripts"].as_u64()),
        (Some("refused"), Some(2)),
        "{json}"
    );
    let refused = &sieve["refused"][0];
    assert_eq!(
        (refused["script"].as_str(), refused["action"].as_str()),
        (Some("away"), Some("store"))
    );
    let reason = refused["reason"].as_str().expect("reason");
    assert!(
        reason.contains("unknown Sieve capability `vacation'") && !reason.ends_with('\n'),
        "{reason}"
    );
}

#[test]
fn a_dry_run_says_what_it_would_do_and_writes_nothing() {
    let source = sieve_dovecot();
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.set_active(Some(&name("away"))).expect("activate");
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = format!("maildir:{}", dir.path().join("Maildir").display());
    let from = format!("sieve://alice@127.0.0.1:{}?tls=none", source.managesieve_port());
    let files = file_location(&dir.path().join("home"));
    let mail = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let output = dsync(
        &["backup", "--dry-run", &mail, &maildir, "--sieve-from", &from, "--sieve-to", &files],
        Some(PASSWORD),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(
            "sieve: 1 scripts; would store 1, delete 0, would activate \"away\" (dry run)"
        ),
        "{}",
        text(&output)
    );
    assert!(!dir.path().join("home").exists(), "a dry run writes no script");
}

#[test]
fn sieve_over_starttls_checks_the_certificate() {
    let source = sieve_dovecot();
    session(&source, "alice", PASSWORD).put_script(&name("keep"), b"keep;\r\n").expect("put");
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = format!("maildir:{}", dir.path().join("Maildir").display());
    let mail = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let from = format!("sieve://alice@localhost:{}", source.managesieve_port());
    let files = file_location(&dir.path().join("home"));
    let ca = source.ca_file();
    let ca = ca.to_str().expect("utf-8");
    // Without the private CA: refused as a configuration error (78), like imap://; the
    // mail is synced all the same.
    let untrusted = dsync(
        &["backup", &mail, &maildir, "--sieve-from", &from, "--sieve-to", &files],
        Some(PASSWORD),
    );
    assert_eq!(untrusted.status.code(), Some(78), "{}", text(&untrusted));
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("certificate"),
        "{}",
        text(&untrusted)
    );
    assert!(!dir.path().join("home/sieve").exists());
    let trusted = dsync(
        &["backup", "--ca-file", ca, &mail, &maildir, "--sieve-from", &from, "--sieve-to", &files],
        Some(PASSWORD),
    );
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted));
    assert_eq!(
        std::fs::read(dir.path().join("home/sieve/keep.sieve")).expect("script"),
        b"keep;\r\n"
    );
}

#[test]
fn import_and_a_wrong_sieve_location_are_usage_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (
        format!("maildir:{}", dir.path().join("a").display()),
        format!("maildir:{}", dir.path().join("b").display()),
    );
    let files = format!("file:{}", dir.path().join("s").display());
    let output =
        dsync(&["import", &a, &b, "Restored", "--sieve-from", &files, "--sieve-to", &files], None);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("import copies messages only"),
        "{}",
        text(&output)
    );
    let output =
        dsync(&["backup", &a, &b, "--sieve-from", "imap://alice@host", "--sieve-to", &files], None);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("sieve://USER@HOST"),
        "{}",
        text(&output)
    );
}

/// The scripts of a file store, sorted, and its active one (as `served` gives them).
fn stored(home: &std::path::Path) -> (Vec<(String, Vec<u8>)>, Option<String>) {
    let store = managesieve::FileStore::new(home.join("sieve"), Some(home.join(".dovecot.sieve")));
    let mut scripts: Vec<(String, Vec<u8>)> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|s| (s.name.to_string(), store.read(&s.name).expect("read")))
        .collect();
    scripts.sort();
    let active = match store.active().expect("active") {
        managesieve::ActiveScript::Script(name) => Some(name.to_string()),
        _ => None,
    };
    (scripts, active)
}

#[test]
fn two_way_sync_of_scripts_converges_after_changes_on_each_side() {
    let server = sieve_dovecot();
    let mut writer = session(&server, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.put_script(&name("keep"), b"keep;\r\n").expect("put");
    writer.set_active(Some(&name("away"))).expect("activate");
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("sieve")).expect("mkdir");
    std::fs::write(home.join("sieve/files only.sieve"), "discard;\n").expect("script");
    let (a, b) = (
        format!("maildir:{}", dir.path().join("a").display()),
        format!("maildir:{}", dir.path().join("b").display()),
    );
    let from = format!("sieve://alice@127.0.0.1:{}?tls=none", server.managesieve_port());
    let files = file_location(&home);
    let sync = || {
        let output = dsync(
            &[
                "sync",
                "--progress-interval",
                "0",
                &a,
                &b,
                "--sieve-from",
                &from,
                "--sieve-to",
                &files,
            ],
            Some(PASSWORD),
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        output
    };
    let converged = |scripts: &[(&str, &[u8])], active: &str| {
        let expected = (
            scripts.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())).collect::<Vec<_>>(),
            Some(active.to_owned()),
        );
        assert_eq!(served(&server, "alice", PASSWORD), expected, "ManageSieve side");
        assert_eq!(stored(&home), expected, "file side");
    };

    // No saved state: the sides are united, the source's active script kept.
    let first = sync();
    converged(
        &[("away", AWAY.as_bytes()), ("files only", b"discard;\n"), ("keep", b"keep;\r\n")],
        "away",
    );
    assert!(
        String::from_utf8_lossy(&first.stdout).contains(
            "sieve: 2 scripts; 2 stored, 0 deleted, active script set, 0 refused; on the source 1 stored, 0 deleted"
        ),
        "{}",
        text(&first)
    );
    // The progress lines count the scripts too.
    assert!(
        String::from_utf8_lossy(&first.stderr).contains(": sieve: 2 scripts; 2 stored"),
        "{}",
        text(&first)
    );
    let base = std::fs::read_to_string(dir.path().join("b/dsync-rs-state.sieve")).expect("base");
    assert!(base.starts_with("dsync-rs sieve state 1\n"), "{base}");

    // On the server: a change and a deletion; in the files: an addition and an activation.
    writer.put_script(&name("keep"), b"keep;\r\nstop;\r\n").expect("change");
    writer.delete_script(&name("files only")).expect("delete");
    std::fs::write(home.join("sieve/new.sieve"), "stop;\n").expect("add");
    std::fs::remove_file(home.join(".dovecot.sieve")).expect("unlink");
    std::os::unix::fs::symlink("sieve/new.sieve", home.join(".dovecot.sieve")).expect("link");
    let second = sync();
    converged(
        &[("away", AWAY.as_bytes()), ("keep", b"keep;\r\nstop;\r\n"), ("new", b"stop;\n")],
        "new",
    );
    assert!(
        !String::from_utf8_lossy(&second.stderr).contains("changed on both"),
        "{}",
        text(&second)
    );

    // The same script changed on both sides: the file store's change is dated (after the
    // last sync), the server's is not; the file wins and the warning names the script.
    writer.put_script(&name("away"), b"keep; # server\n").expect("change");
    std::fs::write(home.join("sieve/away.sieve"), "keep; # file\n").expect("change");
    let conflict = sync();
    let log = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        log.contains("script \"away\" changed on both sides; the destination's version wins"),
        "{log}"
    );
    converged(
        &[("away", b"keep; # file\n"), ("keep", b"keep;\r\nstop;\r\n"), ("new", b"stop;\n")],
        "new",
    );

    // Converged: nothing more to do on either side.
    let quiet = sync();
    assert!(
        String::from_utf8_lossy(&quiet.stdout).contains(
            "sieve: 3 scripts; 0 stored, 0 deleted, 0 refused; on the source 0 stored, 0 deleted"
        ),
        "{}",
        text(&quiet)
    );
}

#[test]
fn a_batch_takes_the_sieve_locations_from_the_config_file_with_templates() {
    let source = sieve_dovecot();
    for (user, script) in [("alice", &b"keep;\r\n"[..]), ("bob", b"discard;\r\n")] {
        let mut writer = session(&source, user, PASSWORD);
        writer.put_script(&name(&format!("{user}'s")), script).expect("put");
        writer.set_active(Some(&name(&format!("{user}'s")))).expect("activate");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().display();
    let config = dir.path().join("dsync.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsieve_from = \"sieve://%u@127.0.0.1:{}?tls=none\"\n\
             sieve_to = \"file:{root}/%u/sieve;active={root}/%u/.dovecot.sieve\"\n\
             log_dir = \"{root}/logs\"\n",
            source.managesieve_port()
        ),
    )
    .expect("config");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice\nbob\n").expect("users");
    let mail = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let maildir = format!("maildir:{root}/%u/Maildir");
    let config = config.to_str().expect("utf-8");
    let users = users.to_str().expect("utf-8");
    let output = dsync(&["-c", config, "backup", "-F", users, &mail, &maildir], Some(PASSWORD));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // The batch table counts each user's scripts.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let header = stdout.lines().find(|l| l.starts_with("USER")).expect("table");
    let at = header.find("SCRIPTS").expect("SCRIPTS column");
    for user in ["alice", "bob"] {
        let row = stdout.lines().find(|l| l.starts_with(user)).expect("row");
        assert_eq!(row[at..].split_whitespace().next(), Some("1"), "{stdout}");
    }
    for (user, script) in [("alice", &b"keep;\r\n"[..]), ("bob", b"discard;\r\n")] {
        let home = dir.path().join(user);
        assert_eq!(
            std::fs::read(home.join(format!("sieve/{user}'s.sieve"))).expect("script"),
            script
        );
        let link = std::fs::read_link(home.join(".dovecot.sieve")).expect("link");
        assert_eq!(link, std::path::Path::new("sieve").join(format!("{user}'s.sieve")));
    }
}

#[test]
fn check_lists_the_scripts() {
    let source = sieve_dovecot();
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.put_script(&name("Spam filter (Müll)"), SPAM.as_bytes()).expect("put");
    writer.set_active(Some(&name("away"))).expect("activate");
    let mail = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let sieve = format!("sieve://alice@127.0.0.1:{}?tls=none", source.managesieve_port());
    let output = dsync(&["check", &mail, "--sieve", &sieve], Some(PASSWORD));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("sieve {sieve}: 2 scripts")), "{stdout}");
    assert!(
        stdout.contains(&format!("  away                {} bytes  active", AWAY.len())),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("  Spam filter (Müll)  {} bytes\n", SPAM.len())), "{stdout}");
}

#[test]
fn dovecots_sieve_setting_names_the_local_sides_scripts() {
    let source = sieve_dovecot();
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.set_active(Some(&name("away"))).expect("activate");
    let dir = tempfile::tempdir().expect("temp dir");
    let home_setting = format!("home={}/%u", dir.path().display());
    let mail = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let from = format!("sieve://%u@127.0.0.1:{}?tls=none", source.managesieve_port());
    let sieve = "sieve=file:~/sieve;active=~/.dovecot.sieve";
    // The destination is the Maildir: -o sieve= is its Sieve side, ~ alice's home.
    let output = dsync(
        &[
            "-o",
            &home_setting,
            "-o",
            sieve,
            "backup",
            "-u",
            "alice",
            &mail,
            "maildir:~/Maildir",
            "--sieve-from",
            &from,
        ],
        Some(PASSWORD),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let home = dir.path().join("alice");
    assert_eq!(
        stored(&home),
        (vec![("away".to_owned(), AWAY.as_bytes().to_vec())], Some("away".to_owned()))
    );
    // Without the other side it is a usage error that says which one is missing.
    let output = dsync(
        &["-o", &home_setting, "-o", sieve, "backup", "-u", "alice", &mail, "maildir:~/Maildir"],
        Some(PASSWORD),
    );
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("-o sieve= names the destination's Sieve scripts: give --sieve-from"),
        "{}",
        text(&output)
    );
}

/// A ManageSieve server that lists a name Pigeonhole's rules refuse (`a/b`): Dovecot never
/// lists one, other servers may, so this one is faked. It answers by command, serves
/// `good` and counts the commands it got.
fn fake_server_listing_an_unusable_name() -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (socket, _) = listener.accept().expect("accept");
        let mut writer = socket.try_clone().expect("clone");
        let mut reader = BufReader::new(socket);
        let caps = "\"IMPLEMENTATION\" \"fake\"\r\n\"SASL\" \"PLAIN\"\r\n\"VERSION\" \"1.0\"\r\n";
        writer.write_all(format!("{caps}OK \"ready\"\r\n").as_bytes()).expect("greet");
        let mut commands = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).expect("read") > 0 {
            let command = line.split(' ').next().unwrap_or("").trim().to_owned();
            let reply = match command.as_str() {
                "AUTHENTICATE" => "OK \"Logged in.\"\r\n".to_owned(),
                "CAPABILITY" => format!("{caps}OK \"caps\"\r\n"),
                "LISTSCRIPTS" => "\"good\" ACTIVE\r\n\"a/b\"\r\nOK \"Listed\"\r\n".to_owned(),
                "GETSCRIPT" => "{7}\r\nkeep;\r\n\r\nOK \"Got\"\r\n".to_owned(),
                "LOGOUT" => "OK \"Bye\"\r\n".to_owned(),
                _ => "NO \"unexpected\"\r\n".to_owned(),
            };
            commands.push(command.clone());
            writer.write_all(reply.as_bytes()).expect("reply");
            if command == "LOGOUT" {
                break;
            }
            line.clear();
        }
        commands
    });
    (port, handle)
}

#[test]
fn a_listed_name_pigeonhole_refuses_is_skipped_with_a_report() {
    let (port, server) = fake_server_listing_an_unusable_name();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (
        format!("maildir:{}", dir.path().join("a").display()),
        format!("maildir:{}", dir.path().join("b").display()),
    );
    std::fs::create_dir_all(dir.path().join("a/cur")).expect("maildir");
    let from = format!("sieve://alice@127.0.0.1:{port}?tls=none");
    let home = dir.path().join("home");
    let output = dsync(
        &["backup", &a, &b, "--sieve-from", &from, "--sieve-to", &file_location(&home)],
        Some(PASSWORD),
    );
    assert_eq!(output.status.code(), Some(65), "{}", text(&output));
    let all = text(&output);
    assert!(all.contains("sieve: script \"a/b\" on the source skipped: contains '/'"), "{all}");
    assert!(all.contains("0 refused, 1 skipped"), "{all}");
    // The usable script and the active one came over.
    assert_eq!(
        stored(&home),
        (vec![("good".to_owned(), b"keep;\r\n".to_vec())], Some("good".to_owned()))
    );
    let commands = server.join().expect("server");
    assert_eq!(commands.iter().filter(|c| *c == "GETSCRIPT").count(), 1, "{commands:?}");
}

#[test]
fn check_of_a_batch_counts_each_users_scripts() {
    let source = sieve_dovecot();
    let mut writer = session(&source, "alice", PASSWORD);
    writer.put_script(&name("away"), AWAY.as_bytes()).expect("put");
    writer.put_script(&name("keep"), b"keep;\r\n").expect("put");
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice\nbob\n").expect("users");
    let mail = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let sieve = format!("sieve://%u@127.0.0.1:{}?tls=none", source.managesieve_port());
    let logs = dir.path().join("logs");
    let output = dsync(
        &[
            "check",
            "-F",
            users.to_str().expect("utf-8"),
            "--log-dir",
            logs.to_str().expect("utf-8"),
            &mail,
            "--sieve",
            &sieve,
        ],
        Some(PASSWORD),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let column = |user: &str| {
        let header = stdout.lines().find(|l| l.starts_with("USER")).expect("header");
        let at = header.find("SCRIPTS").expect("SCRIPTS column");
        let row = stdout.lines().find(|l| l.starts_with(user)).expect("row");
        row[at..].split_whitespace().next().unwrap_or("").to_owned()
    };
    assert_eq!((column("alice"), column("bob")), ("2".to_owned(), "0".to_owned()), "{stdout}");
    // Each user's log lists the scripts.
    let log = std::fs::read_to_string(logs.join("alice.log")).expect("alice's log");
    assert!(log.contains(&format!("away  {} bytes", AWAY.len())), "{log}");
}
