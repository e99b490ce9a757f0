//! The base a backup records is kept packed in memory (a few bytes a message) until the
//! state is written. A `sync -1` run in the same process after the backup plans from that
//! packed base: it must end as a run from the state file does, and the state file must be
//! the same bytes whichever way the base was held.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::mailstore::Durability;
use dsync_core::state::{StateFile, SyncState};
use dsync_core::{Flags, MailboxName, Mode, NoObserver, Report, StorageMut, SyncOptions, Uid};

use super::kept_view::{gen_uid, generated, generated_maildir};

fn run(mode: Mode, source: &Path, target: &Path, state: Option<SyncState>) -> Report {
    let mut from = MaildirStorage::open_path(source, Durability::Deferred);
    let mut to = MaildirStorage::open_path(target, Durability::Deferred);
    let options = SyncOptions::new(mode).state(state);
    let report = dsync_core::run(&options, &mut from, &mut to, &mut NoObserver)
        .unwrap_or_else(|failed| panic!("{mode:?} failed: {failed}"));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

/// What one Dovecot serves of each Maildir's INBOX: by UID, the message's flags, received
/// date, GUID and body as `doveadm` prints them; and the status line.
fn served(dir: &Path, roots: &[&Path]) -> Vec<(String, BTreeMap<u32, String>)> {
    let mut builder = testkit::Dovecot::builder().temp_root(dir);
    for (n, root) in roots.iter().enumerate() {
        builder = builder.user_serving_copy(&format!("u{n}"), "pw", root, "maildir");
    }
    let dovecot = builder.start();
    (0..roots.len())
        .map(|n| {
            let user = format!("u{n}");
            let status =
                ["mailbox", "status", "-u", &user, "messages uidvalidity uidnext", "INBOX"];
            let fields = "uid flags date.received.unixtime guid body";
            let fetch = ["-f", "pager", "fetch", "-u", &user, fields, "mailbox", "INBOX", "all"];
            let status = dovecot.doveadm_ok(&status).replace(&format!("u{n}"), "");
            let fetched = dovecot.doveadm_ok(&fetch);
            let mut messages = BTreeMap::new();
            for block in fetched.split("\u{c}\n").filter(|b| !b.trim().is_empty()) {
                let (first, rest) = block.split_once('\n').expect("a message");
                let uid = first.strip_prefix("uid: ").expect("uid first").parse().expect("UID");
                // Saved without flags, a message is in `new/`: `\Recent` for one session.
                let rest = rest.replace("flags: \\Recent", "flags: ").replace(" \\Recent", "");
                messages.insert(uid, rest);
            }
            (status, messages)
        })
        .collect()
}

/// A file of the source's `cur/` whose base is message `n`'s.
fn file_of(root: &Path, n: u32) -> std::path::PathBuf {
    let (base, _) = generated(n);
    fs::read_dir(root.join("cur"))
        .expect("cur")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(&base)))
        .expect("message file")
}

#[test]
fn a_sync_after_a_backup_in_one_process_plans_from_the_packed_base_as_from_the_file() {
    let dir = tempfile::tempdir().expect("temp");
    let path = |name: &str| dir.path().join(name);
    let (source, packed, stored) = (path("source"), path("packed"), path("stored"));
    generated_maildir(&source, 400);
    let backup = run(Mode::Backup, &source, &packed, None);
    let state = backup.state.expect("state");

    // Every source message's flags, as generated, in the recorded base.
    let lines: Vec<String> = state.encode().lines().skip(4).map(String::from).collect();
    let expected: Vec<String> = (1..=400)
        .map(|n| format!("{} {}", gen_uid(n), if n % 3 == 0 { "-" } else { "S" }))
        .collect();
    assert_eq!(lines, expected);
    // The state file is the same bytes from the packed base, from the records read back,
    // and from the records left in the loaded file.
    let file = StateFile::new(path("state"), format!("maildir:{}", source.display()));
    file.save(&state).expect("save");
    let written = fs::read(file.path()).expect("state file");
    let loaded = file.load().expect("load");
    assert_eq!(loaded, state);
    file.save(&loaded).expect("save again");
    assert_eq!(fs::read(file.path()).expect("state file"), written);
    let decoded = SyncState::decode(&state.encode()).expect("decodes");
    assert_eq!(decoded.encode(), state.encode());
    assert_eq!(decoded, state);

    // The source changes (flags either way, an expunge, a delivery); the copy changes one
    // message's flags of its own, which a `sync -1` keeps: only the base says that it was
    // the copy that changed them.
    let cur = source.join("cur");
    let (seen, unseen) = (file_of(&source, 5), file_of(&source, 6));
    let renamed = |file: &Path, info: &str| {
        let name = file.file_name().expect("name").to_string_lossy().into_owned();
        cur.join(format!("{}:2,{info}", name.split(':').next().expect("base")))
    };
    fs::rename(&seen, renamed(&seen, "")).expect("unseen");
    fs::rename(&unseen, renamed(&unseen, "FS")).expect("flagged");
    fs::remove_file(file_of(&source, 7)).expect("expunge");
    fs::write(source.join("new/1800000000.M1P1.mta"), "Subject: late\n\nlate\n").expect("mail");
    let mut copy = MaildirStorage::open_path(&packed, Durability::Deferred);
    let mut writer = copy.writer(&MailboxName::inbox()).expect("writer");
    let own = Flags::from_imap_names(["\\Answered", "\\Seen"]);
    writer.set_flags(Uid::new(gen_uid(10)).expect("UID"), &own).expect("flags");
    writer.commit().expect("commit");
    drop(writer);
    drop(copy);
    let copied = std::process::Command::new("cp").arg("-a").arg(&packed).arg(&stored).status();
    assert!(copied.expect("cp").success());

    let from_memory = run(Mode::OneWay, &source, &packed, Some(state));
    let from_file = run(Mode::OneWay, &source, &stored, Some(file.load().expect("load")));
    let (a, b) = (from_memory.state.expect("state"), from_file.state.expect("state"));
    // The same records (the change tokens are the copies' own).
    let records = |state: &SyncState| -> Vec<String> {
        state.encode().lines().filter(|l| !l.starts_with("mailbox ")).map(String::from).collect()
    };
    assert_eq!(records(&a), records(&b), "the next state differs");
    assert_eq!(a.mailboxes[&MailboxName::inbox()].base, b.mailboxes[&MailboxName::inbox()].base);

    let served = served(dir.path(), &[&source, &packed, &stored]);
    let [(theirs_status, theirs), (packed_status, ours), (stored_status, other)] =
        <[_; 3]>::try_from(served).expect("three");
    assert_eq!((&packed_status, &ours), (&stored_status, &other), "the two copies differ");
    assert_eq!(packed_status, theirs_status);
    assert_eq!(ours.len(), 400, "one expunged, one delivered");
    for (uid, message) in &theirs {
        let kept = ours.get(uid).expect("every source message");
        if *uid == gen_uid(10) {
            assert!(
                kept.starts_with("flags: \\Answered \\Seen\n"),
                "the copy's own change: {kept}"
            );
        } else {
            assert_eq!(kept, message, "UID {uid}");
        }
    }
}
