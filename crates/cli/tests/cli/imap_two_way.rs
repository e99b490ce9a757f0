//! Two-way `sync` between two Dovecots over IMAP: each server gives its own UIDs, so
//! which message is which comes from the pairs in our state. Both sides diverge through
//! IMAP (new mail, flags, keywords, expunges, folders created, renamed and deleted,
//! subscriptions); one run makes both serve the same account, a second changes nothing,
//! and a run killed with SIGKILL and run again leaves no duplicate and loses nothing.

use testkit::{AccountSnapshot, MessageSnapshot, RawImap, fixtures};

use super::imap_destination::{Servers, assert_carried, pairs_hold, uid_nexts};
use super::{PASSWORD, source_with_fixture, text};

/// The message of `mailbox` whose body contains `needle`.
fn find<'a>(snapshot: &'a AccountSnapshot, mailbox: &str, needle: &str) -> &'a MessageSnapshot {
    let messages = &snapshot.mailboxes.get(mailbox).expect(mailbox).messages;
    messages
        .iter()
        .find(|m| m.body.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or_else(|| panic!("{mailbox}: no message with {needle:?}"))
}

fn holds(snapshot: &AccountSnapshot, mailbox: &str, needle: &str) -> bool {
    snapshot.mailboxes.get(mailbox).is_some_and(|m| {
        m.messages.iter().any(|m| m.body.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

#[test]
fn two_way_sync_between_two_dovecots_merges_both_sides_and_reruns_change_nothing() {
    let (source, _) = source_with_fixture();
    let servers = Servers::new(source);
    let sync = || servers.run(&["sync"], &[]);

    // First run: the empty side gets everything.
    let first = sync();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);
    assert_eq!(pairs_hold(&servers.state(), &a, &b), a.message_count());

    // Both sides diverge. The INBOX message "First message." (\Seen) is changed on both:
    // A takes \Seen away and sets \Flagged, B adds \Answered and the keyword Work.
    let first_on_b = find(&b, "INBOX", "First message.").uid.to_string();
    let gap_on_b = find(&b, "INBOX", "UID 9").uid.to_string();
    let old_on_a = find(&a, "Archive", "archived").uid.to_string();
    let mut imap = servers.source_imap();
    imap.append(
        "INBOX",
        &["$NewA"],
        Some("03-Feb-2024 10:00:00 +0100"),
        &fixtures::message(80, "New on A", "written on A"),
    );
    imap.store("INBOX", &find(&a, "INBOX", "First message.").uid.to_string(), "-FLAGS (\\Seen)");
    imap.store("INBOX", &find(&a, "INBOX", "First message.").uid.to_string(), "+FLAGS (\\Flagged)");
    imap.expunge_uids("Archive", &old_on_a);
    imap.create("FromA");
    imap.append("FromA", &["\\Seen"], None, &fixtures::message(81, "Folder A", "in FromA"));
    imap.subscribe("FromA");
    imap.unsubscribe("Sent");
    imap.command_ok("RENAME \"Project Notes\" \"Notes\"");
    imap.command_ok("RENAME \"Trash\" \"Bin\"");
    drop(imap);
    let mut imap = servers.destination_imap();
    imap.append(
        "Archive/2023",
        &["\\Answered"],
        Some("04-Feb-2024 11:00:00 -0300"),
        &fixtures::message(82, "New on B", "written on B"),
    );
    imap.store("INBOX", &first_on_b, "+FLAGS (\\Answered Work)");
    imap.expunge_uids("INBOX", &gap_on_b);
    imap.create("FromB");
    imap.append("FromB", &[], None, &fixtures::message(83, "Folder B", "in FromB"));
    imap.unsubscribe("Empty");
    imap.command_ok("DELETE \"Empty\"");
    imap.command_ok("DELETE \"R&-D\"");
    imap.subscribe("Hidden");
    drop(imap);

    // A dry run changes neither side nor the state.
    let (a_diverged, b_diverged) =
        (servers.source_imap().snapshot(), servers.destination_imap().snapshot());
    let state_before = std::fs::read(servers.state()).expect("state");
    let dry = servers.run(&["sync"], &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert_eq!(servers.source_imap().snapshot(), a_diverged, "a dry run wrote A");
    assert_eq!(servers.destination_imap().snapshot(), b_diverged, "a dry run wrote B");
    assert_eq!(std::fs::read(servers.state()).expect("state"), state_before);

    let run = sync();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);
    assert_eq!(pairs_hold(&servers.state(), &a, &b), a.message_count(), "every message paired");
    // Each change travelled, both ways.
    for (side, snapshot) in [("A", &a), ("B", &b)] {
        assert_eq!(
            find(snapshot, "INBOX", "First message.").flags,
            ["Work", "\\Answered", "\\Flagged"],
            "{side}: changes to different flags on both sides merge"
        );
        assert!(holds(snapshot, "INBOX", "written on A"), "{side}");
        assert_eq!(find(snapshot, "INBOX", "written on A").flags, ["$NewA"], "{side}");
        assert!(holds(snapshot, "Archive/2023", "written on B"), "{side}");
        assert!(!holds(snapshot, "INBOX", "UID 9"), "{side}: B's expunge travelled");
        assert_eq!(snapshot.mailboxes["Archive"].messages.len(), 1, "{side}: A's expunge");
        assert!(holds(snapshot, "FromA", "in FromA") && holds(snapshot, "FromB", "in FromB"));
        assert!(snapshot.mailboxes.contains_key("Notes"), "{side}: renamed");
        assert!(!snapshot.mailboxes.contains_key("Project Notes"), "{side}: renamed");
        assert!(!snapshot.mailboxes.contains_key("Empty"), "{side}: B's delete travelled");
        assert!(!snapshot.mailboxes.contains_key("R&-D"), "{side}: B's delete travelled");
        assert!(!snapshot.mailboxes.contains_key("Trash"), "{side}: renamed");
        assert!(holds(snapshot, "Bin", "trash"), "{side}: renamed with its mail");
        let subscribed = |name: &str| snapshot.subscriptions.iter().any(|s| s == name);
        assert!(
            subscribed("FromA") && subscribed("Hidden"),
            "{side}: {:?}",
            snapshot.subscriptions
        );
        assert!(!subscribed("Sent"), "{side}: A's unsubscribe travelled");
    }

    // A second run finds nothing to do: no message stored, no flag changed on either side.
    let again = sync();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in"),
        "{}",
        text(&again)
    );
    assert_eq!(servers.source_imap().snapshot(), a, "A unchanged");
    assert_eq!(servers.destination_imap().snapshot(), b, "B unchanged");

    // A conflict on one flag: A sets \Seen, B removes \Flagged from the same message. Each
    // side's change to a flag wins over the other's silence on it (the base is what both
    // had after the last run).
    let (on_a, on_b) =
        (find(&a, "INBOX", "First message.").uid, find(&b, "INBOX", "First message.").uid);
    servers.source_imap().store("INBOX", &on_a.to_string(), "+FLAGS (\\Seen)");
    servers.destination_imap().store("INBOX", &on_b.to_string(), "-FLAGS (\\Flagged Work)");
    let run = sync();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    for imap in [&mut servers.source_imap(), &mut servers.destination_imap()] {
        let snapshot = imap.snapshot();
        assert_eq!(find(&snapshot, "INBOX", "First message.").flags, ["\\Answered", "\\Seen"]);
    }

    // The state lost: everything is found again by content, nothing stored twice.
    std::fs::remove_file(servers.state()).expect("remove state");
    let (a_before, b_before) =
        (servers.source_imap().snapshot(), servers.destination_imap().snapshot());
    let stateless = sync();
    assert_eq!(stateless.status.code(), Some(0), "{}", text(&stateless));
    assert_eq!(uid_nexts(&servers.source_imap().snapshot()), uid_nexts(&a_before));
    assert_eq!(uid_nexts(&servers.destination_imap().snapshot()), uid_nexts(&b_before));
}

#[test]
fn kill_9_during_a_two_way_sync_then_a_rerun_leaves_no_duplicate_and_nothing_missing() {
    // 300 messages of 8 KiB on each side, in different folders and in INBOX.
    let source = testkit::Dovecot::builder().user("alice", PASSWORD).start();
    let servers = Servers::new(source);
    let fill = |imap: &mut RawImap, folder: &str, first: u32| {
        if folder != "INBOX" {
            imap.create(folder);
        }
        for index in first..first + 150 {
            imap.append(folder, &["\\Seen"], None, &fixtures::sized_message(index, 8 << 10));
        }
    };
    let mut imap = servers.source_imap();
    fill(&mut imap, "INBOX", 1_000);
    fill(&mut imap, "OnA", 2_000);
    drop(imap);
    let mut imap = servers.destination_imap();
    fill(&mut imap, "INBOX", 3_000);
    fill(&mut imap, "OnB", 4_000);
    drop(imap);

    let mut killed = 0;
    for delay in [200, 400, 700, 1_000, 1_500] {
        let source = format!("imap://alice@127.0.0.1:{}?tls=none", servers.source.imap_port());
        let destination =
            format!("imap://bob@127.0.0.1:{}?tls=none", servers.destination.imap_port());
        let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"))
            .arg("sync")
            .arg("--state-file")
            .arg(servers.state())
            .arg("--destination-password-file")
            .arg(servers.dir.path().join("bob.pw"))
            .args([&source, &destination])
            .env("DSYNC_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn dsync");
        std::thread::sleep(std::time::Duration::from_millis(delay));
        if run.try_wait().expect("wait").is_none() {
            run.kill().expect("SIGKILL");
            killed += 1;
        }
        run.wait().expect("reaped");
    }
    assert!(killed >= 2, "dsync was killed mid-run only {killed} times");
    let last = servers.run(&["sync"], &[]);
    assert_eq!(last.status.code(), Some(0), "{}", text(&last));
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);
    assert_eq!(a.mailboxes["INBOX"].messages.len(), 300, "no duplicate, nothing missing");
    assert_eq!(a.mailboxes["OnA"].messages.len(), 150);
    assert_eq!(a.mailboxes["OnB"].messages.len(), 150);
    assert_eq!(pairs_hold(&servers.state(), &a, &b), 600);
}

#[test]
fn two_way_sync_between_an_imap_server_and_a_maildir() {
    // B is bob's own Maildir on a second Dovecot: written by dsync directly, changed and
    // read by a mail client through that Dovecot.
    let (source, _) = source_with_fixture();
    let servers = Servers::new(source);
    let _ = servers.destination_imap().snapshot();
    let maildir = servers.destination.home("bob").join("Maildir");
    let sync = || {
        let source = format!("imap://alice@127.0.0.1:{}?tls=none", servers.source.imap_port());
        let target = format!("maildir:{}", maildir.display());
        super::dsync(&["sync", &source, &target], Some(PASSWORD))
    };
    let first = sync();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);

    let mut imap = servers.source_imap();
    imap.append("INBOX", &["$NewA"], None, &fixtures::message(80, "New on A", "written on A"));
    imap.store("INBOX", &find(&a, "INBOX", "First message.").uid.to_string(), "+FLAGS (\\Flagged)");
    drop(imap);
    let mut imap = servers.destination_imap();
    imap.append("Archive", &[], None, &fixtures::message(82, "New on B", "written on B"));
    imap.expunge_uids("INBOX", &find(&b, "INBOX", "UID 9").uid.to_string());
    imap.store("INBOX", &find(&b, "INBOX", "First message.").uid.to_string(), "+FLAGS (Work)");
    drop(imap);

    let run = sync();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);
    for snapshot in [&a, &b] {
        assert!(
            holds(snapshot, "INBOX", "written on A") && holds(snapshot, "Archive", "written on B")
        );
        assert!(!holds(snapshot, "INBOX", "UID 9"));
        assert_eq!(
            find(snapshot, "INBOX", "First message.").flags,
            ["Work", "\\Flagged", "\\Seen"]
        );
    }
    let again = sync();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(servers.source_imap().snapshot(), a, "A unchanged");
    assert_eq!(servers.destination_imap().snapshot(), b, "B unchanged");
}

/// Two-way `sync` between two Dovecots (CONDSTORE on both): 6 000 messages of 5 KiB in
/// 3 folders on A, an empty B; then the runs after it: the first lists again the
/// mailboxes the full run wrote (their tokens are the listing's), the next ones skip
/// every mailbox by its HIGHESTMODSEQ. `cargo test -p dsync-cli --release --test cli
/// imap_two_way_timing -- --ignored --nocapture`.
#[test]
#[ignore = "a timing run, not a check"]
fn imap_two_way_timing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("Maildir");
    super::operator::big_maildir(&maildir, 6000, 5 << 10);
    let source = testkit::Dovecot::builder()
        .user_serving_copy("alice", PASSWORD, &maildir, "maildir")
        .extra_config("mail_fsync = never")
        .start();
    let servers = Servers::new(source);
    let run = || {
        let a = format!("imap://alice@127.0.0.1:{}?tls=none", servers.source.imap_port());
        let b = format!("imap://bob@127.0.0.1:{}?tls=none", servers.destination.imap_port());
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"));
        command
            .args(["sync", "-q", "--state-file"])
            .arg(servers.state())
            .arg("--destination-password-file")
            .arg(servers.dir.path().join("bob.pw"))
            .args([&a, &b])
            .env("DSYNC_PASSWORD", PASSWORD);
        command
    };
    let mut rows = Vec::new();
    for label in ["full", "re-run 1", "re-run 2", "re-run 3"] {
        let (seconds, peak, output) = super::imap_destination::timed(&mut run());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        rows.push((label, seconds, peak));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let a = servers.source_imap().snapshot();
    assert_carried(&a, &servers.destination_imap().snapshot());
    println!(
        "\n{} messages, {} folders\n| run | s | peak RSS MiB |",
        a.message_count(),
        a.mailboxes.len()
    );
    println!("|---|--:|--:|");
    for (label, seconds, peak) in rows {
        #[allow(clippy::cast_precision_loss)]
        let peak = peak as f64 / 1024.0;
        println!("| {label} | {seconds:.2} | {peak:.1} |");
    }
}

#[test]
fn a_folder_renamed_on_one_side_is_renamed_on_the_other_without_copying_its_mail() {
    let (source, _) = source_with_fixture();
    let servers = Servers::new(source);
    let sync = || servers.run(&["sync"], &[]);
    let first = sync();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let b_before = servers.destination_imap().snapshot();
    let a_before = servers.source_imap().snapshot();
    assert!(!b_before.mailboxes["Archive/2023"].messages.is_empty(), "the child holds mail");

    // A renames Archive (and with it Archive/2023) and moves the subscriptions as a mail
    // client does; B renames Project Notes.
    let mut imap = servers.source_imap();
    imap.command_ok("RENAME \"Archive\" \"Old\"");
    imap.command_ok("SUBSCRIBE \"Old\"");
    imap.command_ok("SUBSCRIBE \"Old/2023\"");
    drop(imap);
    let mut imap = servers.destination_imap();
    imap.command_ok("RENAME \"Project Notes\" \"Notes\"");
    drop(imap);

    let run = sync();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("0 messages saved (0 B)"),
        "no body travelled: {}",
        text(&run)
    );
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);
    assert_eq!(pairs_hold(&servers.state(), &a, &b), a.message_count(), "every message paired");
    for (side, snapshot) in [("A", &a), ("B", &b)] {
        for gone in ["Archive", "Archive/2023", "Project Notes"] {
            assert!(!snapshot.mailboxes.contains_key(gone), "{side}: {gone} renamed");
        }
        let subscribed = |name: &str| snapshot.subscriptions.iter().any(|s| s == name);
        assert!(
            subscribed("Old") && subscribed("Old/2023"),
            "{side}: {:?}",
            snapshot.subscriptions
        );
    }
    // The side that followed kept its UIDVALIDITY and UIDs: it was renamed, not copied.
    let same = |before: &AccountSnapshot, old: &str, after: &AccountSnapshot, new: &str| {
        let (x, y) = (&before.mailboxes[old], &after.mailboxes[new]);
        let uids =
            |m: &testkit::MailboxSnapshot| m.messages.iter().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!((x.uid_validity, uids(x)), (y.uid_validity, uids(y)), "{old} → {new}");
    };
    same(&b_before, "Archive", &b, "Old");
    same(&b_before, "Archive/2023", &b, "Old/2023");
    same(&a_before, "Project Notes", &a, "Notes");

    let again = sync();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("0 messages saved (0 B), 0 expunged, 0 flag changes in"),
        "{}",
        text(&again)
    );
    assert_eq!(servers.destination_imap().snapshot(), b, "B unchanged");
}

#[test]
fn a_backup_follows_a_folder_renamed_on_the_source() {
    let (source, _) = source_with_fixture();
    let servers = Servers::new(source);
    let first = servers.run(&["backup"], &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let before = servers.destination_imap().snapshot();

    servers.source_imap().command_ok("RENAME \"Archive\" \"Old\"");
    let run = servers.run(&["backup"], &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("0 messages saved (0 B)"),
        "no body travelled: {}",
        text(&run)
    );
    let a = servers.source_imap().snapshot();
    let b = servers.destination_imap().snapshot();
    assert_carried(&a, &b);
    assert_eq!(pairs_hold(&servers.state(), &a, &b), a.message_count(), "every message paired");
    for (old, new) in [("Archive", "Old"), ("Archive/2023", "Old/2023")] {
        assert!(!b.mailboxes.contains_key(old), "{old} renamed");
        let (x, y) = (&before.mailboxes[old], &b.mailboxes[new]);
        assert_eq!(x.uid_validity, y.uid_validity, "{old} → {new}: renamed, not copied");
        assert_eq!(x.messages, y.messages, "{old} → {new}: same UIDs, flags and bytes");
    }
}
