//! `backup` end to end against the real Dovecot, judged by Dovecot: the source is a private
//! Dovecot filled through IMAP APPEND; the destination Maildir is served by a second
//! Dovecot, and what a client sees there must equal what it sees on the source.

use std::path::Path;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::{Mode, NoObserver, Report, SyncOptions};
use imapc::{ConnectOptions, Credentials, Security};
use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

use crate::maildir;

fn imap_source(dovecot: &Dovecot) -> ImapStorage {
    let options = ConnectOptions::new("127.0.0.1", dovecot.imap_port(), Security::Plain);
    ImapStorage::connect(&options, &Credentials::new("alice", "alicepw"))
        .expect("log in to the source")
}

fn backup(
    source: &mut dyn dsync_core::Storage,
    destination: &mut dyn dsync_core::StorageMut,
) -> Report {
    let report =
        dsync_core::run(&SyncOptions::new(Mode::Backup), source, destination, &mut NoObserver)
            .unwrap_or_else(|failed| panic!("backup failed: {failed}"));
    assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
    report
}

/// What Dovecot serves from (a copy of) the Maildir at `path`.
fn served(path: &Path) -> AccountSnapshot {
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start();
    RawImap::login(dovecot.imap_port(), "reader", "readerpw").snapshot()
}

#[test]
fn imap_to_maildir_backup_is_what_dovecot_serves() {
    let source = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let expected = imap.snapshot();

    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let report = backup(&mut imap_source(&source), &mut maildir(&destination));
    assert_eq!(report.totals().saved, expected.message_count() as u64);
    expected.assert_same(&served(&destination));

    // A second run finds nothing to do and creates no duplicate.
    let again = backup(&mut imap_source(&source), &mut maildir(&destination));
    assert!(again.is_noop(), "second run changed something: {:?}", again.totals());
    expected.assert_same(&served(&destination));

    // Changes on the source (new mail, flag changes, an expunge, a new and a removed
    // folder, subscriptions) arrive incrementally.
    imap.append(
        "INBOX",
        &["\\Flagged"],
        Some("20-Jul-2024 10:00:00 +0000"),
        &fixtures::message(200, "new", "x"),
    );
    imap.store("INBOX", "1", "+FLAGS (\\Answered $Label2)");
    imap.expunge_uids("Archive", "1");
    imap.create("Fresh/Folder");
    imap.command_ok("DELETE \"Hidden\"");
    imap.unsubscribe("Archive");
    let changed = imap.snapshot();
    let third = backup(&mut imap_source(&source), &mut maildir(&destination));
    let totals = third.totals();
    assert_eq!((totals.saved, totals.expunged, totals.flags_changed), (1, 1, 1), "{totals}");
    assert_eq!(third.deleted_mailboxes.len(), 1);
    changed.assert_same(&served(&destination));
}

#[test]
fn maildir_to_maildir_backup_keeps_everything_dovecot_shows() {
    let source = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let expected = imap.snapshot();
    imap.logout();

    // Read Dovecot's own Maildir (a copy, so Dovecot and we never share it here).
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("source");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(source.home("alice").join("Maildir"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let destination = dir.path().join("destination");
    backup(&mut maildir(&copy), &mut maildir(&destination));
    expected.assert_same(&served(&destination));
    assert!(backup(&mut maildir(&copy), &mut maildir(&destination)).is_noop());
}
