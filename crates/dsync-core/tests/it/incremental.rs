//! Re-runs of `backup` from an IMAP source with QRESYNC against the real Dovecot: the
//! second run asks only for what changed (`CHANGEDSINCE … VANISHED`), and ends where a
//! full run would (judged by Dovecot serving the destination); with CONDSTORE alone it
//! asks `CHANGEDSINCE` and searches for expunges; a server that forgot its mod-sequences
//! and one without CONDSTORE are listed whole.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dsync_core::state::SyncState;
use dsync_core::{Mode, NoObserver, Report, SyncOptions};
use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

use crate::maildir;
use crate::traced_imap_source as imap_source;

/// A backup with `state`; returns the report and the commands sent to the source.
fn backup(
    dovecot: &Dovecot,
    destination: &Path,
    state: Option<SyncState>,
) -> (Report, Vec<String>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let options = SyncOptions::new(Mode::Backup).state(state);
    let report = dsync_core::run(
        &options,
        &mut imap_source(dovecot, &sent),
        &mut maildir(destination),
        &mut NoObserver,
    )
    .unwrap_or_else(|failed| panic!("backup failed: {failed}"));
    assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
    let sent = sent.lock().expect("trace log").clone();
    (report, sent)
}

/// What Dovecot serves from (a copy of) the Maildir at `path`.
fn served(path: &Path) -> AccountSnapshot {
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start();
    RawImap::login(dovecot.imap_port(), "reader", "readerpw").snapshot()
}

/// Full listings (`UID FETCH 1:*` without `CHANGEDSINCE`) among `sent`.
fn full_listings(sent: &[String]) -> usize {
    sent.iter().filter(|c| c.contains("UID FETCH 1:*") && !c.contains("CHANGEDSINCE")).count()
}

fn changed_since(sent: &[String]) -> usize {
    sent.iter().filter(|c| c.contains("(CHANGEDSINCE ") && c.contains(" VANISHED)")).count()
}

/// Flag changes, new mail and expunges on the source between two runs.
fn change_source(imap: &mut RawImap) {
    imap.store("INBOX", "1,5", "+FLAGS (\\Flagged $Label2)");
    imap.store("INBOX", "2", "-FLAGS (\\Seen)");
    imap.append(
        "INBOX",
        &["\\Seen"],
        Some("20-Jul-2024 10:00:00 +0000"),
        &fixtures::message(200, "new", "x"),
    );
    imap.append("INBOX", &[], None, &fixtures::message(201, "new", "y"));
    imap.expunge_uids("INBOX", "4");
    imap.expunge_uids("Archive", "1");
}

#[test]
fn qresync_rerun_asks_only_for_changes_and_ends_as_a_full_run() {
    let source = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let (first, _) = backup(&source, &destination, None);

    change_source(&mut imap);
    let expected = imap.snapshot();
    let (second, sent) = backup(&source, &destination, first.state.clone());
    assert_eq!(full_listings(&sent), 0, "listed whole: {sent:#?}");
    assert_eq!(changed_since(&sent), 2, "INBOX and Archive changed: {sent:#?}");
    let totals = second.totals();
    assert_eq!((totals.saved, totals.expunged, totals.flags_changed), (2, 2, 3), "{totals}");
    expected.assert_same(&served(&destination));

    // The same change set from scratch (no state: both sides listed) ends alike.
    let other = dir.path().join("Full");
    let (_, _) = backup(&source, &other, None);
    expected.assert_same(&served(&other));

    // And the run after that has nothing to do.
    let (third, sent) = backup(&source, &destination, second.state.clone());
    assert!(third.is_noop(), "{:?}", third.totals());
    assert_eq!(full_listings(&sent) + changed_since(&sent), 0, "{sent:#?}");
}

#[test]
fn a_server_that_forgot_its_modseqs_is_listed_whole() {
    let source = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    imap.logout();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let (first, _) = backup(&source, &destination, None);

    // Dovecot's index and its log go (a rebuilt server, a restored backup): it rebuilds
    // them from the Maildir and starts its mod-sequences again.
    remove_indexes(&source.home("alice").join("Maildir"));
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    change_source(&mut imap);
    let expected = imap.snapshot();
    let (_, sent) = backup(&source, &destination, first.state.clone());
    assert!(full_listings(&sent) >= 2, "INBOX and Archive listed whole: {sent:#?}");
    expected.assert_same(&served(&destination));
}

#[test]
fn a_server_without_condstore_is_listed_whole_every_run() {
    let source = Dovecot::builder()
        .user("alice", "alicepw")
        .extra_config(
            "imap_capability = IMAP4rev1 SASL-IR ID ENABLE LITERAL+ UIDPLUS SPECIAL-USE\n",
        )
        .start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let (first, sent) = backup(&source, &destination, None);
    assert!(sent.iter().all(|c| !c.contains("CONDSTORE") && !c.contains("QRESYNC")), "{sent:#?}");

    change_source(&mut imap);
    let expected = imap.snapshot();
    let (_, sent) = backup(&source, &destination, first.state.clone());
    assert_eq!(changed_since(&sent), 0, "{sent:#?}");
    assert!(full_listings(&sent) >= 2, "{sent:#?}");
    expected.assert_same(&served(&destination));
}

/// Dovecot 2.3's capabilities less QRESYNC (and, with `esearch` false, less ESEARCH).
fn condstore_only(esearch: bool) -> String {
    let mut capabilities = String::from(
        "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT UNSELECT CHILDREN NAMESPACE \
         UIDPLUS LIST-EXTENDED CONDSTORE LIST-STATUS MOVE LITERAL+ SPECIAL-USE",
    );
    if esearch {
        capabilities.push_str(" ESEARCH");
    }
    format!("imap_capability = {capabilities}\n")
}

/// `UID FETCH … (CHANGEDSINCE m)` without VANISHED among `sent`.
fn changed_since_without_vanished(sent: &[String]) -> usize {
    sent.iter().filter(|c| c.contains("(CHANGEDSINCE ") && !c.contains("VANISHED")).count()
}

fn searches(sent: &[String]) -> usize {
    sent.iter().filter(|c| c.contains("UID SEARCH")).count()
}

#[test]
fn condstore_without_qresync_asks_for_changes_and_searches_for_expunges() {
    for esearch in [true, false] {
        let source = Dovecot::builder()
            .user("alice", "alicepw")
            .extra_config(&condstore_only(esearch))
            .start();
        let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
        fixtures::populate_standard(&mut imap);
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("Maildir");
        let (first, sent) = backup(&source, &destination, None);
        assert!(sent.iter().all(|c| !c.contains("QRESYNC")), "{sent:#?}");

        change_source(&mut imap);
        let expected = imap.snapshot();
        let (second, sent) = backup(&source, &destination, first.state.clone());
        assert_eq!(full_listings(&sent), 0, "listed whole: {sent:#?}");
        assert_eq!(changed_since_without_vanished(&sent), 2, "INBOX and Archive: {sent:#?}");
        assert_eq!(searches(&sent), 2, "both lost a message: {sent:#?}");
        let totals = second.totals();
        assert_eq!((totals.saved, totals.expunged, totals.flags_changed), (2, 2, 3), "{totals}");
        expected.assert_same(&served(&destination));

        // The same change set from scratch (no state: both sides listed) ends alike.
        let other = dir.path().join("Full");
        let (_, _) = backup(&source, &other, None);
        expected.assert_same(&served(&other));

        // Flags changed and mail came, nothing went: the count says so, no search.
        imap.store("INBOX", "2", "+FLAGS ($Third)");
        imap.append("INBOX", &[], None, &fixtures::message(202, "newer", "z"));
        let expected = imap.snapshot();
        let (third, sent) = backup(&source, &destination, second.state.clone());
        assert_eq!(full_listings(&sent), 0, "listed whole: {sent:#?}");
        assert_eq!((changed_since_without_vanished(&sent), searches(&sent)), (1, 0), "{sent:#?}");
        let totals = third.totals();
        assert_eq!((totals.saved, totals.expunged, totals.flags_changed), (1, 0, 1), "{totals}");
        expected.assert_same(&served(&destination));
    }
}

/// Removes every `dovecot.index*` file below `dir`.
fn remove_indexes(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if entry.file_type().expect("type").is_dir() {
            remove_indexes(&path);
        } else if entry.file_name().to_string_lossy().starts_with("dovecot.index") {
            std::fs::remove_file(&path).expect("remove index");
        }
    }
}
