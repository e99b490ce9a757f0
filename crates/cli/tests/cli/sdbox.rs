//! sdbox on either side of the binary, judged by Dovecot: a Dovecot serving what
//! `dsync backup imap://… sdbox:DIR` wrote shows the source, also after the source changed
//! and the backup ran again; an sdbox is read as a source, verified, listed and synced
//! with a Maildir both ways.

use std::path::Path;

use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

use super::{PASSWORD, dsync, served, source_with_fixture, text};

/// What a fresh Dovecot serving a copy of the sdbox at `path` shows; its log must stay
/// free of warnings, errors and index rebuilds.
pub(super) fn served_sdbox(path: &Path) -> AccountSnapshot {
    let dovecot = Dovecot::builder().user_serving_copy("reader", "readerpw", path, "sdbox").start();
    let snapshot = RawImap::login(dovecot.imap_port(), "reader", "readerpw").snapshot();
    let log = dovecot.log();
    for word in ["Warning", "Error", "rebuild", "Panic", "corrupt"] {
        assert!(!log.contains(word), "Dovecot serving the sdbox says {word}:\n{log}");
    }
    snapshot
}

/// The GUID lines `doveadm fetch` shows for `mailbox` of the sdbox at `path`.
fn doveadm_guids(path: &Path, mailbox: &str) -> String {
    let dovecot = Dovecot::builder().user_serving_copy("reader", "readerpw", path, "sdbox").start();
    dovecot.doveadm_ok(&["fetch", "-u", "reader", "uid guid", "mailbox", mailbox, "all"])
}

#[test]
fn backup_into_sdbox_is_what_dovecot_serves_and_an_incremental_run_converges() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("sdbox");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let target = format!("sdbox:{}", destination.display());

    let first = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains(&format!("{} messages saved", expected.message_count())), "{summary}");
    expected.assert_same(&served_sdbox(&destination));
    // doveadm shows the message GUIDs we wrote (new ones: IMAP gave none without -a).
    let store = mailstore::Sdbox::open(mailstore::SdboxLocation::new(&destination));
    let inbox = store.mailbox(&"INBOX".parse().expect("name")).expect("INBOX");
    let ours: String = inbox
        .messages()
        .expect("list")
        .iter()
        .map(|m| format!("uid: {}\nguid: {}\n", m.uid, m.guid))
        .collect::<Vec<_>>()
        .join("\u{c}\n");
    assert_eq!(doveadm_guids(&destination, "INBOX"), ours);

    let second = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in"),
        "{}",
        text(&second)
    );

    // The source changes: new mail, flag and keyword changes, expunges, a new folder, a
    // deleted one, a subscription. The next backup brings the sdbox there.
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.append("INBOX", &["\\Flagged"], None, &fixtures::message(70, "new", "after"));
    imap.store("INBOX", "1", "+FLAGS (\\Answered NewKeyword)");
    imap.store("INBOX", "2", "-FLAGS (\\Seen $Label1)");
    imap.expunge_uids("INBOX", "4");
    imap.expunge_uids("Archive", "1:*");
    imap.create("Brand/New");
    imap.append("Brand/New", &["\\Seen"], None, &fixtures::message(71, "brand", "new"));
    imap.command_ok("DELETE \"Project Notes\"");
    imap.subscribe("Brand/New");
    let changed = imap.snapshot();
    assert_ne!(changed, expected);

    let third = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    changed.assert_same(&served_sdbox(&destination));
    let fourth = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert!(
        String::from_utf8_lossy(&fourth.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in"),
        "{}",
        text(&fourth)
    );
    changed.assert_same(&served_sdbox(&destination));
}

#[test]
fn an_sdbox_is_a_source_and_syncs_with_a_maildir() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let sdbox = dir.path().join("sdbox");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let sdbox_location = format!("sdbox:{}", sdbox.display());
    let run = dsync(&["backup", &location, &sdbox_location], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));

    // verify sees no difference between the server and the sdbox.
    let verify = dsync(&["verify", "--bodies", &location, &sdbox_location], Some(PASSWORD));
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains(" 0 differences"),
        "{}",
        text(&verify)
    );
    let list = dsync(&["mailbox", "list", &sdbox_location], None);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    for name in ["INBOX", "Archive/2023", "Entwürfe", "Parent"] {
        assert!(String::from_utf8_lossy(&list.stdout).contains(name), "{}", text(&list));
    }

    // sdbox -> Maildir: Dovecot serves the Maildir as the server.
    let maildir = dir.path().join("Maildir");
    let maildir_location = format!("maildir:{}", maildir.display());
    let copy = dsync(&["backup", &sdbox_location, &maildir_location], None);
    assert_eq!(copy.status.code(), Some(0), "{}", text(&copy));
    expected.assert_same(&served(&maildir));
    // The GUIDs travel with the mail.
    let maildir_guids = {
        let dovecot =
            Dovecot::builder().user_serving_copy("reader", "readerpw", &maildir, "maildir").start();
        dovecot.doveadm_ok(&["fetch", "-u", "reader", "uid guid", "mailbox", "Archive", "all"])
    };
    assert_eq!(doveadm_guids(&sdbox, "Archive"), maildir_guids);

    // The sdbox changes (a flag of INBOX's first message, with our writer as a client
    // would through Dovecot); a two-way sync brings it to the Maildir; sync -1 from the
    // Maildir afterwards changes nothing.
    let store = mailstore::Sdbox::open(mailstore::SdboxLocation::new(&sdbox));
    let inbox = store.mailbox(&"INBOX".parse().expect("name")).expect("INBOX");
    let first = inbox.messages().expect("list")[0].clone();
    inbox.set_flags(first.uid, mailstore::Flags::FLAGGED, &[]).expect("flags");
    let two_way = dsync(&["sync", &sdbox_location, &maildir_location], None);
    assert_eq!(two_way.status.code(), Some(0), "{}", text(&two_way));
    let merged = served_sdbox(&sdbox);
    assert_ne!(merged, expected);
    merged.assert_same(&served(&maildir));
    let one_way = dsync(&["sync", "-1", &maildir_location, &sdbox_location], None);
    assert_eq!(one_way.status.code(), Some(0), "{}", text(&one_way));
    merged.assert_same(&served_sdbox(&sdbox));

    // backup -R writes the first location (a new sdbox) from the second (the Maildir);
    // import puts the sdbox's mail under a folder of another sdbox; check reads it.
    let restored = dir.path().join("restored");
    let restored_location = format!("sdbox:{}", restored.display());
    let reverse = dsync(&["backup", "-R", &restored_location, &maildir_location], None);
    assert_eq!(reverse.status.code(), Some(0), "{}", text(&reverse));
    merged.assert_same(&served_sdbox(&restored));
    let import = dsync(&["import", &sdbox_location, &restored_location, "Imported"], None);
    assert_eq!(import.status.code(), Some(0), "{}", text(&import));
    let imported = served_sdbox(&restored);
    // (import creates only folders that receive mail, as doveadm import does)
    for (name, mailbox) in merged.mailboxes.iter().filter(|(_, m)| !m.messages.is_empty()) {
        let Some(copy) = imported.mailboxes.get(&format!("Imported/{name}")) else {
            panic!("Imported/{name} missing: {:?}", imported.mailboxes.keys());
        };
        assert_eq!(copy.messages.len(), mailbox.messages.len(), "{name}");
        let bodies = |m: &testkit::MailboxSnapshot| {
            let mut bodies: Vec<Vec<u8>> = m.messages.iter().map(|m| m.body.clone()).collect();
            bodies.sort();
            bodies
        };
        assert_eq!(bodies(copy), bodies(mailbox), "{name}");
    }
    let check = dsync(&["check", &sdbox_location], None);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
}

/// Every `u.<uid>` file below `root` with its inode: what a second writer replaced shows.
fn message_files(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, u64> {
    use std::os::unix::fs::MetadataExt;
    let mut found = std::collections::BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let metadata = entry.metadata().expect("stat");
            if metadata.is_dir() {
                pending.push(path);
            } else if entry.file_name().to_string_lossy().starts_with("u.") {
                found.insert(path.strip_prefix(root).expect("below").to_path_buf(), metadata.ino());
            }
        }
    }
    found
}

#[test]
fn doveadm_backup_onto_our_sdbox_and_ours_onto_doveadms_change_nothing() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("sdbox");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let target = format!("sdbox:{}", destination.display());
    let run = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    testkit::chown_to_mail_user(&destination);
    let before = message_files(&destination);

    // doveadm backup from the same source (imapc, as Dovecot's migration docs set it up)
    // onto what we wrote.
    let config = dir.path().join("doveadm.conf");
    std::fs::write(
        &config,
        format!(
            "!include {}\nimapc_host = 127.0.0.1\nimapc_port = {}\nimapc_user = %u\n\
             imapc_password = {PASSWORD}\nimapc_features = rfc822.size fetch-headers modseq\n\
             imapc_list_prefix =\n",
            source.config_file().display(),
            source.imap_port()
        ),
    )
    .expect("write config");
    let doveadm_backup = |into: &Path| {
        let doveadm = std::process::Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(&config)
            .arg("-o")
            .arg(format!("mail_location=sdbox:{}", into.display()))
            .args(["backup", "-R", "-u", "alice", "imapc:"])
            .output()
            .expect("run doveadm");
        assert!(
            doveadm.status.success(),
            "doveadm backup: {}{}",
            String::from_utf8_lossy(&doveadm.stdout),
            String::from_utf8_lossy(&doveadm.stderr)
        );
    };
    doveadm_backup(&destination);
    assert_eq!(message_files(&destination), before, "doveadm rewrote messages we wrote");
    expected.assert_same(&served_sdbox(&destination));

    // And the other way round: ours onto the sdbox doveadm wrote from the same source
    // saves, expunges and changes nothing.
    let theirs = dir.path().join("doveadm-sdbox");
    std::fs::create_dir(&theirs).expect("mkdir");
    testkit::chown_to_mail_user(&theirs);
    doveadm_backup(&theirs);
    let before = message_files(&theirs);
    let ours =
        dsync(&["backup", &location, &format!("sdbox:{}", theirs.display())], Some(PASSWORD));
    assert_eq!(ours.status.code(), Some(0), "{}", text(&ours));
    assert!(
        String::from_utf8_lossy(&ours.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in"),
        "{}",
        text(&ours)
    );
    assert_eq!(message_files(&theirs), before, "we rewrote messages doveadm wrote");
    expected.assert_same(&served_sdbox(&theirs));
}

#[test]
fn a_dovecot_maildir_through_sdbox_and_back_is_exact() {
    let (source, expected) = source_with_fixture();
    let maildir = source.home("alice").join("Maildir");
    let dir = tempfile::tempdir().expect("temp dir");
    let sdbox = dir.path().join("sdbox");
    let back = dir.path().join("Maildir");
    let (from, via, to) = (
        format!("maildir:{}", maildir.display()),
        format!("sdbox:{}", sdbox.display()),
        format!("maildir:{}", back.display()),
    );
    for (a, b) in [(&from, &via), (&via, &to)] {
        let run = dsync(&["backup", a, b], None);
        assert_eq!(run.status.code(), Some(0), "{a} -> {b}: {}", text(&run));
    }
    expected.assert_same(&served_sdbox(&sdbox));
    expected.assert_same(&served(&back));
    // Mailbox and message GUIDs survive both hops, as doveadm shows them.
    let guids = |path: &Path, driver: &str| {
        let dovecot = Dovecot::builder().user_serving_copy("r", "rpw", path, driver).start();
        let mut out = String::new();
        for mailbox in ["INBOX", "Archive/2023"] {
            out += &dovecot.doveadm_ok(&["mailbox", "status", "-u", "r", "guid", mailbox]);
            out +=
                &dovecot.doveadm_ok(&["fetch", "-u", "r", "uid guid", "mailbox", mailbox, "all"]);
        }
        out
    };
    let original = guids(&maildir, "maildir");
    assert_eq!(guids(&sdbox, "sdbox"), original);
    assert_eq!(guids(&back, "maildir"), original);
}

#[test]
fn runs_into_an_sdbox_a_dovecot_serves_meanwhile_converge() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let served_dir = dir.path().join("sdbox");
    std::fs::create_dir(&served_dir).expect("mkdir");
    testkit::chown_to_mail_user(&served_dir);
    // A Dovecot serving the destination itself (not a copy), with a client logged in.
    let destination = Dovecot::builder()
        .user_with_mail("bob", "bobpw", &format!("sdbox:{}", served_dir.display()))
        .start();
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let target = format!("sdbox:{}", served_dir.display());
    let first = dsync(&["backup", &location, &target], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let mut client = RawImap::login(destination.imap_port(), "bob", "bobpw");
    expected.assert_same(&client.snapshot());

    // The client works in the destination: a new message, a flag change, an expunge.
    let own = client.append("INBOX", &["\\Seen"], None, &fixtures::message(80, "own", "bob's"));
    client.store("Archive", "1", "+FLAGS (\\Flagged)");
    client.expunge_uids("Sent", "1:*");
    client.select("INBOX");

    // sync -1 brings the source's state over the client's changes and keeps the client's
    // new message; the client's open session sees it all.
    let merge = dsync(&["sync", "-1", &location, &target], Some(PASSWORD));
    assert_eq!(merge.status.code(), Some(0), "{}", text(&merge));
    let merged = client.snapshot();
    assert!(merged.mailboxes["INBOX"].messages.iter().any(|m| m.uid == own), "{merged:?}");

    // backup makes it the source again, while the session stays open (-f: the state the
    // sync -1 saved says both sides were in step, which they are not after a merge that
    // kept the destination's own changes).
    let backup = dsync(&["backup", "-f", &location, &target], Some(PASSWORD));
    assert_eq!(backup.status.code(), Some(0), "{}", text(&backup));
    // INBOX (which gave out UID 10 itself) and Sent (whose UIDs it expunged and the merge
    // brought back under new ones) hold the source's UIDs under new UIDVALIDITYs of their
    // own: backup's rule that no UID is handed out twice under one UIDVALIDITY.
    let after = RawImap::login(destination.imap_port(), "bob", "bobpw").snapshot();
    let mut wanted = expected.clone();
    for name in ["INBOX", "Sent"] {
        let (theirs, ours) = (&after.mailboxes[name], wanted.mailboxes.get_mut(name).expect(name));
        assert!(theirs.uid_validity > ours.uid_validity, "{name}");
        ours.uid_validity = theirs.uid_validity;
    }
    wanted.assert_same(&after);
    wanted.assert_same(&client.snapshot());
    let log = destination.log();
    for word in ["Warning", "Error", "rebuild", "Panic", "corrupt"] {
        assert!(!log.contains(word), "the destination's Dovecot says {word}:\n{log}");
    }
}

#[test]
fn parallel_folders_into_sdbox_use_more_connections_and_give_the_same_store() {
    let (source, expected) = source_with_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("sdbox");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let target = format!("sdbox:{}", destination.display());
    // Counted once every session has ended: Dovecot logs asynchronously.
    let logins = || source.settled_log(0).matches("Login: user=<alice>").count();
    let before = logins();
    let run = dsync(&["backup", "--parallel-folders", "4", &location, &target], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // The run's own connection and four workers'.
    assert_eq!(logins() - before, 5, "{}", source.log());
    expected.assert_same(&served_sdbox(&destination));
    let again = dsync(
        &["backup", "--no-state", "--parallel-folders", "4", &location, &target],
        Some(PASSWORD),
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in"),
        "{}",
        text(&again)
    );
}

/// Per mailbox: its name, `(uid, MODSEQ)` of every message and HIGHESTMODSEQ.
type Modseqs = Vec<(String, Vec<(u32, u64)>, u64)>;

/// [`Modseqs`] of every selectable mailbox of `snapshot`.
fn modseqs(imap: &mut RawImap, snapshot: &AccountSnapshot) -> Modseqs {
    snapshot
        .mailboxes
        .iter()
        .filter(|(_, m)| m.selectable)
        .map(|(name, _)| {
            let (messages, highest) = imap.modseqs(name);
            (name.clone(), messages, highest)
        })
        .collect()
}

#[test]
fn imap_to_sdbox_keeps_every_modseq_and_highestmodseq() {
    let (source, _) = source_with_fixture();
    // Modseqs that differ per message: flag changes after the fixture, an expunge (which
    // raises HIGHESTMODSEQ above every message's).
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.store("INBOX", "1", "+FLAGS (\\Answered)");
    imap.store("INBOX", "3", "+FLAGS ($Label2)");
    imap.store("INBOX", "1", "-FLAGS (\\Answered)");
    imap.expunge_uids("Archive", "1");
    let expected = imap.snapshot();
    let wanted = modseqs(&mut imap, &expected);
    assert!(wanted.iter().any(|(_, m, h)| m.iter().all(|(_, modseq)| modseq < h)), "{wanted:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("sdbox");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let run =
        dsync(&["backup", &location, &format!("sdbox:{}", destination.display())], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", &destination, "sdbox").start();
    let mut reader = RawImap::login(dovecot.imap_port(), "reader", "readerpw");
    expected.assert_same(&reader.snapshot());
    assert_eq!(modseqs(&mut reader, &expected), wanted);
}
