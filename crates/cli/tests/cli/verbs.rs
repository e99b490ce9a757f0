//! Every verb through the binary against a real Dovecot.

use std::path::Path;

use testkit::{Dovecot, RawImap, fixtures};

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

#[test]
fn check_list_backup_verify_sync_import_and_two_way_sync() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let imap = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));

    // check: a preflight table with every folder, counts and the total.
    let check = dsync(&["check", &imap], Some(PASSWORD));
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let table = stdout(&check);
    assert!(table.contains("Archive/2023") && table.contains("Entwürfe"), "{table}");
    assert!(table.contains(&format!("{} messages", expected.message_count())), "{table}");

    // mailbox list, all and subscribed only, with a pattern.
    let list = dsync(&["mailbox", "list", &imap], Some(PASSWORD));
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    let names: Vec<&str> = std::str::from_utf8(&list.stdout).expect("utf-8").lines().collect();
    for name in ["INBOX", "Archive", "Archive/2023", "Entwürfe", "R&D", "Hidden"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let subscribed = dsync(&["mailbox", "list", "-s", &imap, "Arch*"], Some(PASSWORD));
    assert_eq!(
        stdout(&subscribed).lines().collect::<Vec<_>>(),
        ["Archive"],
        "{}",
        text(&subscribed)
    );

    // backup with plain progress lines (stderr is not a terminal here).
    let backup =
        dsync(&["backup", "--progress-interval", "0", &imap, &maildir(&a)], Some(PASSWORD));
    assert_eq!(backup.status.code(), Some(0), "{}", text(&backup));
    assert!(stderr(&backup).contains("dsync: alice: INBOX ("), "{}", text(&backup));
    expected.assert_same(&served(&a));

    // verify: identical, then every change on the source is a difference (exit 1).
    let same = dsync(&["verify", &imap, &maildir(&a)], Some(PASSWORD));
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(stderr(&same).contains(" 0 differences"), "{}", text(&same));
    let mut session = RawImap::login(source.imap_port(), "alice", PASSWORD);
    session.store("INBOX", "1", "+FLAGS (\\Flagged $Work)");
    let new_uid =
        session.append("Archive", &["\\Seen"], None, &fixtures::message(500, "New", "arrived"));
    session.create("Brand New");
    let changed = dsync(&["verify", &imap, &maildir(&a)], Some(PASSWORD));
    assert_eq!(changed.status.code(), Some(1), "{}", text(&changed));
    let differences = stdout(&changed);
    assert!(differences.contains("INBOX: UID 1: flags differ"), "{differences}");
    assert!(
        differences.contains(&format!("Archive: UID {new_uid}: only in the source")),
        "{differences}"
    );
    assert!(differences.contains("mailbox Brand New is only in the source"), "{differences}");

    // sync -1 brings the changes over; Dovecot then serves what the source has.
    let one_way = dsync(&["sync", "-1", &imap, &maildir(&a)], Some(PASSWORD));
    assert_eq!(one_way.status.code(), Some(0), "{}", text(&one_way));
    let now = session.snapshot();
    now.assert_same(&served(&a));
    let again = dsync(&["verify", "--json", &imap, &maildir(&a)], Some(PASSWORD));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(json["differences"], serde_json::json!([]));

    // backup -R reads the second location: b becomes a copy of a, bodies included.
    let reverse = dsync(&["backup", "-R", &maildir(&b), &maildir(&a)], None);
    assert_eq!(reverse.status.code(), Some(0), "{}", text(&reverse));
    let bodies = dsync(&["verify", "--bodies", &maildir(&a), &maildir(&b)], None);
    assert_eq!(bodies.status.code(), Some(0), "{}", text(&bodies));

    // import into c under "Restored" (new UIDs, no duplicates on a re-run), then a
    // two-way sync makes b and c agree.
    let import = dsync(&["import", "-s", &maildir(&a), &maildir(&c), "Restored"], None);
    assert_eq!(import.status.code(), Some(0), "{}", text(&import));
    let reimport = dsync(&["import", "-s", &maildir(&a), &maildir(&c), "Restored"], None);
    assert!(stdout(&reimport).contains(" 0 messages saved"), "{}", text(&reimport));
    let imported = dsync(&["mailbox", "list", "-s", &maildir(&c)], None);
    assert!(stdout(&imported).lines().any(|l| l == "Restored/Archive/2023"), "{}", text(&imported));
    let two_way = dsync(&["sync", &maildir(&b), &maildir(&c)], None);
    assert_eq!(two_way.status.code(), Some(0), "{}", text(&two_way));
    let agree = dsync(&["verify", &maildir(&b), &maildir(&c)], None);
    assert_eq!(agree.status.code(), Some(0), "{}", text(&agree));
    // Two-way with an IMAP server: messages paired through the state, a re-run is empty.
    let two_way_imap = dsync(&["sync", &imap, &maildir(&c)], Some(PASSWORD));
    assert_eq!(two_way_imap.status.code(), Some(0), "{}", text(&two_way_imap));
    let again = dsync(&["sync", &imap, &maildir(&c)], Some(PASSWORD));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(stdout(&again).contains(" 0 messages saved"), "{}", text(&again));
}

#[test]
fn filters_state_strings_json_and_config_accounts() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let imap = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let only_inbox = dir.path().join("inbox");

    // -m INBOX -x '\Trash' -I 100k: only INBOX; --json reports it.
    let filtered = dsync(
        &[
            "backup",
            "--json",
            "-m",
            "INBOX",
            "-x",
            "\\Trash",
            "-I",
            "100k",
            &imap,
            &maildir(&only_inbox),
        ],
        Some(PASSWORD),
    );
    assert_eq!(filtered.status.code(), Some(0), "{}", text(&filtered));
    let json: serde_json::Value = serde_json::from_slice(&filtered.stdout).expect("JSON");
    let user = &json["users"][0];
    assert_eq!(user["status"], "ok");
    assert_eq!(user["mailboxes"], 1);
    assert_eq!(user["messages"].as_u64(), Some(expected.mailboxes["INBOX"].messages.len() as u64));
    let listed = dsync(&["mailbox", "list", &maildir(&only_inbox)], None);
    assert_eq!(stdout(&listed).trim(), "INBOX", "{}", text(&listed));

    // -s '': stateful from nothing; the new state (Dovecot's format) is the only stdout.
    let stateful = dir.path().join("stateful");
    let first = dsync(&["backup", "-s", "", &imap, &maildir(&stateful)], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let state = stdout(&first).trim().to_owned();
    assert!(
        !state.is_empty() && !state.contains(' ') && state != "AQAAAHm4+Jk=",
        "{}",
        text(&first)
    );
    assert!(
        stderr(&first).contains("messages saved"),
        "the summary moves to stderr: {}",
        text(&first)
    );
    let second = dsync(&["backup", "-s", &state, &imap, &maildir(&stateful)], Some(PASSWORD));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(stderr(&second).contains(" 0 messages saved"), "{}", text(&second));
    assert_eq!(stdout(&second).trim(), state, "nothing changed, so the same state");
    let invalid =
        dsync(&["backup", "-s", "bm90IGEgc3RhdGU=", &imap, &maildir(&stateful)], Some(PASSWORD));
    assert_eq!(invalid.status.code(), Some(0), "{}", text(&invalid));
    assert!(stderr(&invalid).contains("falling back to full sync"), "{}", text(&invalid));

    // A config file: defaults plus an account, so the job is `-c FILE backup -u alice`.
    let password_file = dir.path().join("alice.pw");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write");
    let config = dir.path().join("dsync.toml");
    let from_config = dir.path().join("from-config");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nno_fsync = true\nsettings = {{ mail_prefetch_count = \"5\" }}\n\n\
             [accounts.alice]\nsource = \"imap://%u@127.0.0.1:{}?tls=none\"\ndestination = \"maildir:{}\"\n\
             password_file = \"{}\"\n",
            source.imap_port(),
            from_config.display(),
            password_file.display()
        ),
    )
    .expect("write config");
    let configured = dsync(&["-c", config.to_str().expect("utf-8"), "backup", "-u", "alice"], None);
    assert_eq!(configured.status.code(), Some(0), "{}", text(&configured));
    expected.assert_same(&served(&from_config));
    let all = dsync(
        &[
            "-c",
            config.to_str().expect("utf-8"),
            "backup",
            "-A",
            "--log-dir",
            dir.path().join("logs").to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    assert!(stdout(&all).contains("1 users: 1 ok"), "{}", text(&all));
    // A user list whose template gives two users one destination: refused before any work.
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice\nalice\n").expect("write");
    let shared = dir.path().join("shared");
    let twice = dsync(
        &[
            "backup",
            "-F",
            users.to_str().expect("utf-8"),
            "--log-dir",
            dir.path().join("logs").to_str().expect("utf-8"),
            &imap,
            &maildir(&shared),
        ],
        Some(PASSWORD),
    );
    assert_eq!(twice.status.code(), Some(64), "{}", text(&twice));
    assert!(stderr(&twice).contains("alice is listed twice"), "{}", text(&twice));
    assert!(!shared.exists(), "{}", text(&twice));
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[defaults]\npasword_file = \"typo\"\n").expect("write");
    let rejected =
        dsync(&["-c", bad_config.to_str().expect("utf-8"), "backup", "-u", "alice"], None);
    assert_eq!(rejected.status.code(), Some(78), "{}", text(&rejected));
    assert!(stderr(&rejected).contains("pasword_file"), "{}", text(&rejected));
}

#[test]
fn help_completions_and_man_page() {
    for verb in
        [&["backup"][..], &["sync"], &["import"], &["verify"], &["check"], &["mailbox", "list"]]
    {
        let mut args = verb.to_vec();
        args.push("--help");
        let help = dsync(&args, None);
        assert_eq!(help.status.code(), Some(0), "{}", text(&help));
        assert!(stdout(&help).contains("Examples:"), "{verb:?}: {}", text(&help));
    }
    let top = dsync(&["--help"], None);
    assert!(stdout(&top).contains("75  temporary failure"), "{}", text(&top));
    let completions = dsync(&["completions", "bash"], None);
    assert_eq!(completions.status.code(), Some(0), "{}", text(&completions));
    assert!(stdout(&completions).contains("_dsync()"), "{}", text(&completions));
    let man = dsync(&["man"], None);
    assert!(
        stdout(&man).starts_with(".ie") || stdout(&man).contains(".TH dsync"),
        "{}",
        text(&man)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let pages = dsync(&["man", dir.path().to_str().expect("utf-8")], None);
    assert_eq!(pages.status.code(), Some(0), "{}", text(&pages));
    for page in ["dsync.1", "dsync-backup.1", "dsync-mailbox-list.1", "dsync-verify.1"] {
        assert!(dir.path().join(page).is_file(), "{page} missing");
    }
}

#[test]
fn not_yet_supported_locations_and_options_say_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = maildir(&dir.path().join("Maildir"));
    let cases: [(&[&str], &str); 5] = [
        (&["backup", "-a", "\\Nonsense", "maildir:/x", &target], "unknown special-use flag"),
        (&["backup", "maildir:/x", "pop3://alice@127.0.0.1"], "must be maildir:PATH, sdbox:PATH"),
        (&["backup", "-P", "maildir:/x", &target], "mdbox"),
        (&["backup", "-n", "shared/", "maildir:/x", &target], "only the personal namespace"),
        (&["backup", "imapc:", &target], "-o imapc_host=HOST"),
    ];
    for (args, message) in cases {
        let run = dsync(args, Some(PASSWORD));
        assert_eq!(run.status.code(), Some(64), "{args:?}: {}", text(&run));
        assert!(stderr(&run).contains(message), "{args:?}: {}", text(&run));
    }
    assert!(!dir.path().join("Maildir").exists());
}

#[test]
fn uidvalidity_clash_rebuilds_but_a_filtered_run_refuses() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut session = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    session.create("Work");
    for index in 0..3 {
        session.append("Work", &[], None, &fixtures::message(index, "work", "w"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let imap = format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port());
    let target = maildir(&dir.path().join("Maildir"));
    let first = dsync(&["backup", &imap, &target], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));

    // The folder is deleted and created again: a new UIDVALIDITY on the source.
    session.command_ok("DELETE Work");
    session.create("Work");
    session.append("Work", &["\\Seen"], None, &fixtures::message(9, "again", "w"));
    let filtered = dsync(&["backup", "-t", "2000-01-01", &imap, &target], Some(PASSWORD));
    assert_eq!(filtered.status.code(), Some(65), "{}", text(&filtered));
    assert!(stderr(&filtered).contains("needs a full rebuild"), "{}", text(&filtered));
    let full = dsync(&["backup", &imap, &target], Some(PASSWORD));
    assert_eq!(full.status.code(), Some(0), "{}", text(&full));
    let verified = dsync(&["verify", &imap, &target], Some(PASSWORD));
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    session.snapshot().assert_same(&served(&dir.path().join("Maildir")));
}
