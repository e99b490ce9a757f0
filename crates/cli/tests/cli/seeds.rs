//! The settings of Dovecot's migration docs, as operators paste them: `-o
//! imapc_master_user` / `-o pop3c_master_user`, `imapc_list_prefix=INBOX` against a server
//! whose folders all live below `INBOX.` (compared with doveadm's own imapc backup), `~` of
//! the `-u` user, and settings dsync does not implement refused by name.

use std::path::Path;
use std::process::{Command, Output};

use testkit::{Dovecot, RawImap, chown_to_mail_user, fixtures};

use super::{PASSWORD, dsync, served, text};

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A source with the standard fixture and a file with the master user's password.
fn source_and_master_password(dir: &Path) -> (Dovecot, std::path::PathBuf) {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    fixtures::populate_standard(&mut imap);
    imap.logout();
    let file = dir.join("master.pw");
    std::fs::write(&file, format!("{}\n", source.master_credentials().1)).expect("write");
    (source, file)
}

#[test]
fn seed_master_user_settings_log_in_as_the_master_over_imap_and_pop3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (source, master_password) = source_and_master_password(dir.path());
    let expected = RawImap::login(source.imap_port(), "alice", PASSWORD).snapshot();
    let (master, _) = source.master_credentials();
    let imap = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let pop3 = format!("pop3://alice@127.0.0.1:{}?tls=none", source.pop3_port());
    let imap_master = format!("imapc_master_user={master}");
    let pop3_master = format!("pop3c_master_user={master}");
    let port = format!("imapc_port={}", source.imap_port());
    let password = ["--password-file", path_str(&master_password)];

    // Seed 001: imapc: with imapc_host/user/master_user and the features it lists.
    let seed = dir.path().join("seed");
    let seed_location = maildir(&seed);
    let mut args = vec!["-o", "imapc_host=127.0.0.1", "-o", &port, "-o", "imapc_ssl=no"];
    args.extend(["-o", "imapc_user=alice", "-o", &imap_master, "-o", "imapc_features=rfc822.size"]);
    args.extend(["-o", "imapc_features=$imapc_features fetch-headers", "backup"]);
    args.extend(password);
    args.extend(["imapc:", &seed_location]);
    let run = dsync(&args, None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    expected.assert_same(&served(&seed));

    // The same for a URL location; without the setting the master's password is tried as
    // alice's own, and the server refuses it.
    let cases: [(&[&str], &str, i32); 6] = [
        (&["-o", &imap_master], &imap, 0),
        (&[], &imap, 77),
        // --master-user wins over -o imapc_master_user.
        (&["-o", &imap_master, "--master-user", "nosuchmaster"], &imap, 77),
        (&["-o", &pop3_master], &pop3, 0),
        // pop3c_master_user is POP3's own, as in Dovecot.
        (&["-o", &imap_master], &pop3, 77),
        (&["-o", &imap_master, "-o", &pop3_master], &format!("{imap},{pop3}"), 0),
    ];
    for (index, (options, location, code)) in cases.into_iter().enumerate() {
        let target = dir.path().join(format!("case{index}"));
        let mut args = vec!["backup"];
        args.extend_from_slice(options);
        args.extend_from_slice(&password);
        let target_location = maildir(&target);
        args.extend([location, target_location.as_str()]);
        let run = dsync(&args, None);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {}", text(&run));
        if code == 77 {
            assert!(!target.exists(), "{args:?}: a failed login created the destination");
        }
    }
    // What POP3 and the pair wrote is what the source serves over POP3 and IMAP.
    let mut pop3_source = testkit::RawPop3::login(source.pop3_port(), "alice", PASSWORD);
    let expected_uidls = pop3_source.uidl();
    pop3_source.quit();
    for case in ["case3", "case5"] {
        let copy = Dovecot::builder()
            .user_serving_copy("reader", "readerpw", &dir.path().join(case), "maildir")
            .start();
        let mut pop3 = testkit::RawPop3::login(copy.pop3_port(), "reader", "readerpw");
        assert_eq!(pop3.uidl(), expected_uidls, "{case}");
        pop3.quit();
    }
    // (POP3's RETR in case 3 made the source's INBOX \Seen, as any POP3 client does.)
    let now = RawImap::login(source.imap_port(), "alice", PASSWORD).snapshot();
    now.assert_same(&served(&dir.path().join("case5")));
}

#[test]
fn settings_dsync_does_not_implement_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = maildir(&dir.path().join("Maildir"));
    let location = "imap://alice@127.0.0.1:9?tls=none";
    for (setting, named) in [
        ("imapc_max_idle_time=60", "imapc_max_idle_time"),
        ("imapc_features=rfc822.size gmail-migration", "imapc_features=gmail-migration"),
        ("imapc_features=no-examine", "imapc_features=no-examine"),
        ("imapc_features=throttle:50:16000:500", "imapc_features=throttle:50:16000:500"),
        ("imapc_features=turbo", "imapc_features=turbo: unknown feature"),
        ("pop3c_features=fast", "pop3c_features=fast"),
        ("pop3c_quick_received_date=yes", "pop3c_quick_received_date"),
        ("pop3c_cmd_timeout=5", "pop3c_cmd_timeout"),
        ("imapc_max_line_length=lots", "imapc_max_line_length=lots"),
    ] {
        let run = dsync(&["backup", "-o", setting, location, &target], Some(PASSWORD));
        assert_eq!(run.status.code(), Some(64), "{setting}: {}", text(&run));
        assert!(String::from_utf8_lossy(&run.stderr).contains(named), "{setting}: {}", text(&run));
    }
    assert!(!dir.path().join("Maildir").exists());
}

/// Dovecot's namespace as Courier and Cyrus have it: every folder below `INBOX.`.
const INBOX_NAMESPACE: &str = "namespace inbox {
  prefix = INBOX.
  separator = .
}";

#[test]
fn imapc_list_prefix_inbox_gives_what_doveadm_gives() {
    let source = Dovecot::builder().user("alice", PASSWORD).extra_config(INBOX_NAMESPACE).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    for folder in
        ["INBOX.Sent", "INBOX.Archive", "INBOX.Archive.2023", "INBOX.Entw&APw-rfe", "INBOX.Unsub"]
    {
        imap.create(folder);
    }
    for folder in ["INBOX", "INBOX.Sent", "INBOX.Archive.2023", "INBOX.Entw&APw-rfe"] {
        imap.subscribe(folder);
    }
    let messages: [(&str, &[&str]); 6] = [
        ("INBOX", &["\\Seen"]),
        ("INBOX", &[]),
        ("INBOX.Sent", &["\\Seen", "$Label1"]),
        ("INBOX.Archive.2023", &["\\Flagged"]),
        ("INBOX.Archive.2023", &["\\Answered", "\\Seen"]),
        ("INBOX.Entw&APw-rfe", &["\\Draft"]),
    ];
    for (index, (folder, flags)) in (0u32..).zip(messages) {
        let date = format!("0{}-Jul-2024 10:00:00 +0200", index + 1);
        imap.append(folder, flags, Some(&date), &fixtures::message(index, folder, "body"));
    }
    let remote = imap.snapshot();
    imap.logout();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());

    let run = dsync(
        &["backup", "-o", "imapc_list_prefix=INBOX", &location, &maildir(&ours)],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("6 messages saved"), "{}", text(&run));

    // doveadm backup -R with imapc and the same prefix, into a Dovecot with the usual
    // namespace (separator /).
    std::fs::create_dir_all(&theirs).expect("mkdir");
    chown_to_mail_user(&theirs);
    let target = Dovecot::builder().user("alice", "target-pw").start();
    let port = format!("imapc_port={}", source.imap_port());
    let password = format!("imapc_password={PASSWORD}");
    let mail_location = format!("mail_location={}", maildir(&theirs));
    target.doveadm_ok(&[
        "-o",
        "imapc_host=127.0.0.1",
        "-o",
        &port,
        "-o",
        "imapc_user=alice",
        "-o",
        &password,
        "-o",
        "imapc_list_prefix=INBOX",
        "-o",
        &mail_location,
        "backup",
        "-R",
        "-u",
        "alice",
        "imapc:",
    ]);

    let ours_served = served(&ours);
    served(&theirs).assert_same(&ours_served);
    // The mailbox GUIDs are imapc's too (what it hashes keeps the prefix: `INBOX.Sent`), so
    // doveadm can take over our destination without recreating anything.
    let guids = |root: &Path| {
        let location = format!("mail_location={}", maildir(root));
        let listing =
            target.doveadm_ok(&["-o", &location, "mailbox", "status", "-u", "alice", "guid", "*"]);
        let mut lines: Vec<String> = listing.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    chown_to_mail_user(&ours);
    let (our_guids, their_guids) = (guids(&ours), guids(&theirs));
    assert_eq!(our_guids.len(), 6, "{our_guids:?}");
    assert_eq!(our_guids, their_guids);
    let names: Vec<&str> = ours_served.mailboxes.keys().map(String::as_str).collect();
    assert_eq!(names, ["Archive", "Archive/2023", "Entw&APw-rfe", "INBOX", "Sent", "Unsub"]);
    let subscribed: Vec<&str> = ours_served.subscriptions.iter().map(String::as_str).collect();
    assert_eq!(subscribed, ["Archive/2023", "Entw&APw-rfe", "INBOX", "Sent"]);
    // Each folder holds its remote folder's messages, UIDs and UIDVALIDITY.
    for (local, remote_name) in
        [("INBOX", "INBOX"), ("Sent", "INBOX.Sent"), ("Archive/2023", "INBOX.Archive.2023")]
    {
        assert_eq!(ours_served.mailboxes[local], remote.mailboxes[remote_name], "{local}");
    }

    // The same account on a server that, like Courier, offers neither LIST-EXTENDED nor
    // SPECIAL-USE nor CONDSTORE: plain LIST and LSUB, the same result.
    let courier = Dovecot::builder()
        .user_serving_copy("alice", PASSWORD, &source.home("alice").join("Maildir"), "maildir")
        .extra_config(INBOX_NAMESPACE)
        .extra_config("imap_capability = IMAP4rev1 LITERAL+ NAMESPACE UIDPLUS CHILDREN IDLE")
        .start();
    let plain = dir.path().join("plain");
    let courier_location = format!("imap://alice@127.0.0.1:{}?tls=none", courier.imap_port());
    let run = dsync(
        &["backup", "-D", "-o", "imapc_list_prefix=INBOX", &courier_location, &maildir(&plain)],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let log = text(&run);
    assert!(log.contains("LIST \"\" \"INBOX*\"") && log.contains("LSUB"), "{log}");
    ours_served.assert_same(&served(&plain));

    // A re-run finds nothing to do: every name maps back to the server's.
    let again = dsync(
        &["backup", "-o", "imapc_list_prefix=INBOX", &location, &maildir(&ours)],
        Some(PASSWORD),
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(" 0 messages saved"),
        "{}",
        text(&again)
    );

    // As in Dovecot, the prefix must not end with the separator; the error says the fix.
    let trailing = dsync(
        &["backup", "-o", "imapc_list_prefix=INBOX.", &location, &maildir(&dir.path().join("t"))],
        Some(PASSWORD),
    );
    assert_eq!(trailing.status.code(), Some(64), "{}", text(&trailing));
    assert!(String::from_utf8_lossy(&trailing.stderr).contains("use INBOX"), "{}", text(&trailing));

    // Another prefix: only what is below it, plus INBOX; the prefix folder itself is left
    // out with a warning, as doveadm leaves it out.
    let archive = dir.path().join("archive");
    let run = dsync(
        &["backup", "-o", "imapc_list_prefix=INBOX.Archive", &location, &maildir(&archive)],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("\"INBOX.Archive\" itself is not copied"),
        "{}",
        text(&run)
    );
    let names: Vec<String> = served(&archive).mailboxes.into_keys().collect();
    assert_eq!(names, ["2023", "INBOX"]);
}

/// The binary with `HOME` pointing elsewhere (the invoking user's home must not be used).
fn dsync_with_home(args: &[&str], home: &Path, password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dsync"));
    command.args(args).env("HOME", home).env_remove("DSYNC_PASSWORD").env_remove("DSYNC_CONFIG");
    if let Some(password) = password {
        command.env("DSYNC_PASSWORD", password);
    }
    command.output().expect("run dsync")
}

#[test]
fn tilde_is_the_home_of_the_user_of_u_and_of_each_batch_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (source, master_password) = source_and_master_password(dir.path());
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    let expected = imap.snapshot();
    imap.logout();
    let invoker = dir.path().join("invoker");
    std::fs::create_dir_all(&invoker).expect("mkdir");
    let location = format!("imap://%u@127.0.0.1:{}?tls=none", source.imap_port());
    let homes = dir.path().join("homes");
    let home_setting = format!("home={}/%d/%n", homes.display());
    let login = ["--master-user", "master", "--password-file", path_str(&master_password)];

    // -u with -o home=TEMPLATE.
    let mut args = vec!["backup", "-u", "alice@example.com", "-o", &home_setting];
    args.extend(login);
    let alice = location.replace("%u", "alice");
    args.extend([alice.as_str(), "maildir:~/Maildir"]);
    let run = dsync_with_home(&args, &invoker, None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    expected.assert_same(&served(&homes.join("example.com/alice/Maildir")));

    // The config's home template, per user of a batch.
    let config = dir.path().join("dsync.toml");
    std::fs::write(
        &config,
        format!("[defaults]\nhome = \"{}/%n\"\n", dir.path().join("cfg").display()),
    )
    .expect("write config");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, format!("alice {alice}\n")).expect("write");
    let mut args = vec!["-c", path_str(&config), "backup", "-F", path_str(&users)];
    args.extend(login);
    let logs = dir.path().join("logs");
    args.extend(["--log-dir", path_str(&logs), "-", "maildir:~/Mail"]);
    let run = dsync_with_home(&args, &invoker, None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    expected.assert_same(&served(&dir.path().join("cfg/alice/Mail")));
    assert_eq!(
        std::fs::read_dir(&invoker).expect("read").count(),
        0,
        "the invoker's home was used"
    );

    // A system user: its passwd entry (root's home; the Maildir does not exist, so the
    // check names the path it looked at and writes nothing).
    let run = dsync_with_home(
        &["check", "-u", "root", "maildir:~/dsync-test-no-such-maildir"],
        &invoker,
        None,
    );
    assert_eq!(run.status.code(), Some(68), "{}", text(&run));
    let root_home = std::fs::read_to_string("/etc/passwd")
        .expect("passwd")
        .lines()
        .find_map(|line| {
            line.strip_prefix("root:").map(|rest| rest.split(':').nth(4).unwrap_or("").to_owned())
        })
        .expect("root in /etc/passwd");
    let wanted = format!("{}/dsync-test-no-such-maildir", root_home.trim_end_matches('/'));
    assert!(String::from_utf8_lossy(&run.stderr).contains(&wanted), "{}", text(&run));

    // Unknown users are refused, not guessed.
    let mut args = vec!["backup", "-u", "nosuchuser-dsync"];
    args.extend(login);
    args.extend([location.as_str(), "maildir:~/Maildir"]);
    let run = dsync_with_home(&args, &invoker, None);
    assert_eq!(run.status.code(), Some(67), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("-o home="), "{}", text(&run));
    assert_eq!(
        std::fs::read_dir(&invoker).expect("read").count(),
        0,
        "the invoker's home was used"
    );
}
