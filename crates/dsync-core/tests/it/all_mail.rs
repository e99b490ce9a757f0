//! `-a` (copy by GUID from the all-mail folder) on a Maildir source, next to doveadm's own
//! `backup -R -a` on the same input. A Dovecot-made source where label folders hold COPYs
//! (same GUIDs) of the all-mail folder's messages; both results are checked through Dovecot.
//! Ours syncs the all-mail folder first and so links every label copy; doveadm links those
//! of the folders it happens to sync after it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::filter::MailboxPattern;
use dsync_core::{Mode, NoObserver, SyncOptions};
use mailstore::Durability;
use testkit::{Dovecot, RawImap, chown_to_mail_user, fixtures};

const PASSWORD: &str = "pw";
const ALL_MAIL: &str = "Gmail/All Mail";

/// Message files of `folder` (`cur/` and `new/`) with more than one link, and all of them.
fn links(folder: &Path) -> (usize, usize) {
    let entries: Vec<_> = ["cur", "new"]
        .into_iter()
        .flat_map(|sub| {
            std::fs::read_dir(folder.join(sub))
                .map(|dir| {
                    dir.map(|e| e.expect("entry").metadata().expect("stat")).collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    (entries.iter().filter(|m| m.nlink() >= 2).count(), entries.len())
}

/// (mailbox, UID) → (GUID, flags without `\\Recent`) of every message of `user`, from
/// `doveadm fetch`.
fn fetched(dovecot: &Dovecot, user: &str) -> BTreeMap<(String, u32), (String, String)> {
    let out = dovecot.doveadm_ok(&["fetch", "-u", user, "mailbox uid guid flags", "all"]);
    let mut found = BTreeMap::new();
    for record in out.split('\u{c}') {
        let field = |name: &str| {
            record.lines().find_map(|line| line.strip_prefix(name)).unwrap_or("").trim().to_owned()
        };
        let flags = field("flags:");
        let flags: Vec<&str> =
            flags.split(' ').filter(|f| !f.is_empty() && *f != "\\Recent").collect();
        if let Ok(uid) = field("uid:").parse() {
            found.insert((field("mailbox:"), uid), (field("guid:"), flags.join(" ")));
        }
    }
    found
}

#[test]
fn all_mail_backup_of_a_maildir_agrees_with_doveadm_and_links_every_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let seed = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(seed.imap_port(), "alice", PASSWORD);
    for folder in [ALL_MAIL, "Work", "Family"] {
        imap.create(folder);
    }
    for index in 0..6 {
        imap.append(ALL_MAIL, &["\\Seen"], None, &fixtures::message(index, "all", "body"));
    }
    imap.select(ALL_MAIL);
    imap.command_ok("UID COPY 1:4 Work");
    imap.command_ok("UID COPY 3:6 Family");
    imap.store("Work", "2", "+FLAGS (\\Flagged)");
    imap.append("Work", &[], None, &fixtures::message(10, "only in work", "w"));
    imap.logout();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(seed.home("alice").join("Maildir"))
        .arg(path("source"))
        .status()
        .expect("cp");
    assert!(status.success());
    for name in ["ours", "theirs"] {
        std::fs::create_dir_all(path(name)).expect("mkdir");
    }

    let source = MaildirStorage::open_read_only(&format!("maildir:{}", path("source").display()))
        .expect("source");
    let destination =
        MaildirStorage::open(&format!("maildir:{}", path("ours").display()), Durability::Fsync);
    let options = SyncOptions::new(Mode::Backup)
        .all_mail(Some(MailboxPattern::parse(ALL_MAIL).expect("pattern")));
    let report = dsync_core::run(
        &options,
        &mut source.clone(),
        &mut destination.expect("destination"),
        &mut NoObserver,
    )
    .expect("our backup");
    assert_eq!(report.totals().copied_locally, 8, "{report:?}");

    let mut builder = Dovecot::builder();
    for name in ["source", "ours", "theirs"] {
        chown_to_mail_user(&path(name));
        builder =
            builder.user_with_mail(name, PASSWORD, &format!("maildir:{}", path(name).display()));
    }
    let dovecot = builder.start();
    let args = ["backup", "-R", "-u", "theirs", "-a", ALL_MAIL];
    let source_location = format!("maildir:{}", path("source").display());
    let mut all_args: Vec<&str> = args.to_vec();
    all_args.push(&source_location);
    let output = dovecot.doveadm(&all_args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Dovecot serves the same messages, UIDs, GUIDs and flags from all three.
    let expected = fetched(&dovecot, "source");
    assert_eq!(fetched(&dovecot, "ours"), expected);
    assert_eq!(fetched(&dovecot, "theirs"), expected);
    let snapshot = |user: &str| RawImap::login(dovecot.imap_port(), user, PASSWORD).snapshot();
    let reference = snapshot("source");
    reference.assert_same(&snapshot("ours"));
    reference.assert_same(&snapshot("theirs"));

    // Every label copy shares the all-mail folder's file in ours.
    assert_eq!(links(&path("ours").join(".Work")), (4, 5));
    assert_eq!(links(&path("ours").join(".Family")), (4, 4));
    // doveadm links only the folders it happens to sync after the all-mail folder (its
    // order follows mailbox GUIDs; one run here linked Work's 4 copies and none of Family's).
    let label_links = |root: &Path| links(&root.join(".Work")).0 + links(&root.join(".Family")).0;
    assert!(label_links(&path("theirs")) <= label_links(&path("ours")));
}
