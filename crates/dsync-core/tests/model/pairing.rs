//! Syncs into a destination that assigns its own UIDs (an IMAP server, modelled by
//! [`MemoryStorage::assigning_uids`]): the engine pairs source and destination messages
//! through its state, finds messages again by content when the state is lost or a
//! UIDVALIDITY changed, and never stores a message twice, also after a failure mid-copy.
//! A backup removes only what it put there unless `delete_extra` consents.

use std::collections::BTreeMap;

use dsync_core::memory::MemoryStorage;
use dsync_core::state::SyncState;
use dsync_core::{Flags, MailboxName, Mode, Observer, SyncOptions, UidValidity};

use super::support::name;

fn flags(names: &[&str]) -> Flags {
    Flags::from_imap_names(names.iter().copied())
}

fn source() -> MemoryStorage {
    let mut source = MemoryStorage::new();
    for (folder, count) in [("INBOX", 12), ("Archive", 20), ("Archive/2023", 3)] {
        let mailbox = source.add_mailbox(&name(folder), UidValidity::new(7).expect("nonzero"));
        for id in 0..count {
            let body =
                format!("Message-ID: <{folder}-{id}@x>\r\nSubject: {id}\r\n\r\nbody {id}\r\n");
            let names: &[&str] = if id % 3 == 0 { &["\\Seen", "$Label1"] } else { &[] };
            mailbox.append(body.as_bytes(), flags(names), Some(1_700_000_000 + i64::from(id)));
        }
    }
    source.subscribe(&name("Archive"));
    source
}

fn imap_like() -> MemoryStorage {
    MemoryStorage::new().assigning_uids(true)
}

/// Keeps the state text as the cli does: rewritten at checkpoints, one line appended
/// per confirmed save.
#[derive(Default)]
struct StateFile {
    text: String,
    appended: usize,
}

impl Observer for StateFile {
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), dsync_core::StorageError> {
        self.text = state.encode();
        Ok(())
    }
    fn paired(&mut self, record: &str, state: &SyncState) {
        if self.text.is_empty() {
            // Nothing saved yet to append to.
            self.text = state.encode();
        } else {
            self.text.push_str(record);
            self.appended += 1;
        }
    }
}

/// Each mailbox's messages as (body, flags, received), sorted: what both sides must agree on.
fn contents(storage: &MemoryStorage) -> BTreeMap<MailboxName, Vec<(String, Flags, Option<i64>)>> {
    storage
        .all_mailboxes()
        .iter()
        .filter(|(_, mailbox)| mailbox.selectable)
        .map(|(name, mailbox)| {
            let mut list: Vec<_> = mailbox
                .messages
                .values()
                .map(|m| {
                    let body = String::from_utf8_lossy(&m.body).into_owned();
                    (body, m.meta.flags.clone(), m.meta.received)
                })
                .collect();
            list.sort_by(|a, b| a.0.cmp(&b.0));
            (name.clone(), list)
        })
        .collect()
}

fn backup(
    source: &mut MemoryStorage,
    destination: &mut MemoryStorage,
    state: Option<SyncState>,
) -> dsync_core::Report {
    let options = SyncOptions::new(Mode::Backup).commit_interval(4).state(state);
    match dsync_core::run(&options, source, destination, &mut dsync_core::NoObserver) {
        Ok(report) => report,
        Err(failed) => panic!("backup failed: {:?} {:?}", failed.error, failed.report),
    }
}

#[test]
fn a_backup_copies_everything_once_and_a_rerun_changes_nothing() {
    let mut source = source();
    let mut destination = imap_like();
    let report = backup(&mut source, &mut destination, None);
    assert_eq!(report.totals().saved, 35);
    assert_eq!(contents(&destination), contents(&source));
    assert!(destination.subscribed().contains(&name("Archive")));
    // The destination chose its own UIDVALIDITYs.
    let copied = destination.mailbox(&name("Archive")).expect("created");
    assert_ne!(copied.uid_validity.get(), 7);

    let again = backup(&mut source, &mut destination, report.state.clone());
    assert_eq!(again.totals().saved, 0);
    assert!(again.is_noop(), "{again:?}");
    assert_eq!(contents(&destination), contents(&source));
}

#[test]
fn source_changes_converge_through_the_pairs() {
    let mut source = source();
    let mut destination = imap_like();
    let state = backup(&mut source, &mut destination, None).state;
    let inbox = source.mailbox_mut(&name("INBOX")).expect("inbox");
    let uids: Vec<_> = inbox.messages.keys().copied().collect();
    inbox.expunge(uids[1]);
    inbox.set_flags(uids[2], flags(&["\\Flagged", "Work"]));
    inbox.append(b"Message-ID: <new@x>\r\n\r\nnew\r\n", flags(&["\\Answered"]), Some(1));
    source.remove_mailbox(&name("Archive/2023"));
    source.unsubscribe(&name("Archive"));
    let report = backup(&mut source, &mut destination, state);
    let totals = report.totals();
    assert_eq!((totals.saved, totals.expunged, totals.flags_changed), (1, 1, 1), "{report:?}");
    assert_eq!(report.deleted_mailboxes, [name("Archive/2023")]);
    assert_eq!(contents(&destination), contents(&source));
    assert!(!destination.subscribed().contains(&name("Archive")));
}

#[test]
fn a_lost_state_or_a_new_uidvalidity_finds_every_message_again() {
    let mut source = source();
    let mut destination = imap_like();
    backup(&mut source, &mut destination, None);
    // State lost.
    let report = backup(&mut source, &mut destination, None);
    assert_eq!(report.totals().saved, 0, "{report:?}");
    assert_eq!(contents(&destination), contents(&source));
    // The source's UIDVALIDITY changed (rebuilt): its messages are found by content too.
    let state = report.state.clone();
    source.mailbox_mut(&name("Archive")).expect("archive").uid_validity =
        UidValidity::new(8).expect("nonzero");
    let report = backup(&mut source, &mut destination, state);
    assert_eq!(report.totals().saved, 0, "{report:?}");
    assert_eq!(contents(&destination), contents(&source));
}

#[test]
fn a_failure_mid_copy_leaves_no_duplicate_with_or_without_the_pair_records() {
    for writes in [0, 1, 3, 5] {
        for keep_records in [true, false] {
            let mut source = source();
            let mut destination = imap_like();
            destination.fail_after(Some(writes));
            let mut file = StateFile::default();
            let options = SyncOptions::new(Mode::Backup).commit_interval(4);
            let failed = dsync_core::run(&options, &mut source, &mut destination, &mut file)
                .expect_err("the destination fails");
            assert_eq!(failed.exit_code(), 75, "after {writes} writes");
            destination.fail_after(None);
            // The saved state (checkpoints plus one record per confirmed save), as a
            // killed process leaves it, or none at all.
            let state = if keep_records && !file.text.is_empty() {
                let state = SyncState::decode(&file.text).expect("readable state");
                // The mailbox being written is marked, so the next run lets it settle.
                let marked = state.pairs.values().any(|entry| {
                    entry.destination_token.as_deref() == Some(dsync_core::state::pairs::WRITING)
                });
                assert!(marked, "after {writes} writes: {}", file.text);
                Some(state)
            } else {
                None
            };
            let report = backup(&mut source, &mut destination, state);
            assert_eq!(contents(&destination), contents(&source), "after {writes} writes");
            let again = backup(&mut source, &mut destination, report.state);
            assert_eq!(again.totals().saved, 0);
        }
    }
}

#[test]
fn a_backup_keeps_what_it_did_not_put_there_unless_told() {
    let mut source = source();
    let mut destination = imap_like();
    let state = backup(&mut source, &mut destination, None).state;
    let theirs = destination.add_mailbox(&name("Theirs"), UidValidity::new(99).expect("nonzero"));
    theirs.append(b"Message-ID: <theirs@x>\r\n\r\nx\r\n", Flags::default(), None);
    let inbox = destination.mailbox_mut(&name("INBOX")).expect("inbox");
    inbox.append(b"Message-ID: <delivered@x>\r\n\r\ny\r\n", Flags::default(), None);

    let report = backup(&mut source, &mut destination, state.clone());
    assert_eq!(report.totals().expunged, 0);
    assert!(destination.mailbox(&name("Theirs")).is_some());
    assert_eq!(destination.mailbox(&name("INBOX")).expect("inbox").messages.len(), 13);
    assert!(report.warnings.iter().any(|w| w.contains("Theirs")), "{:?}", report.warnings);

    let options = SyncOptions::new(Mode::Backup).state(report.state).delete_extra(true);
    dsync_core::run(&options, &mut source, &mut destination, &mut dsync_core::NoObserver)
        .expect("backup with consent");
    assert_eq!(contents(&destination), contents(&source));
}

#[test]
fn one_way_keeps_the_destinations_own_changes() {
    let mut source = source();
    let mut destination = imap_like();
    let options = SyncOptions::new(Mode::OneWay);
    let report =
        dsync_core::run(&options, &mut source, &mut destination, &mut dsync_core::NoObserver)
            .expect("sync -1");
    let inbox = destination.mailbox_mut(&name("INBOX")).expect("inbox");
    let first = *inbox.messages.keys().next().expect("a message");
    inbox.expunge(first);
    inbox.append(b"Message-ID: <local@x>\r\n\r\nz\r\n", Flags::default(), None);
    let options = SyncOptions::new(Mode::OneWay).state(report.state);
    let report =
        dsync_core::run(&options, &mut source, &mut destination, &mut dsync_core::NoObserver)
            .expect("sync -1 again");
    assert_eq!(report.totals().saved, 0, "the expunged message is not copied again");
    assert_eq!(destination.mailbox(&name("INBOX")).expect("inbox").messages.len(), 12);
}

/// A source keeping some messages in several folders: 6 messages, 11 folder entries.
fn source_with_duplicates() -> MemoryStorage {
    let mut source = MemoryStorage::new();
    let placed: [(u32, &[&str]); 6] = [
        (1, &["INBOX", "Work", "Family"]),
        (2, &["Work", "Family"]),
        (3, &["INBOX"]),
        (4, &["Archive", "Family"]),
        (5, &["Archive", "INBOX"]),
        (6, &["Work"]),
    ];
    for folder in ["INBOX", "Work", "Family", "Archive"] {
        source.add_mailbox(&name(folder), UidValidity::new(7).expect("nonzero"));
    }
    for (id, folders) in placed {
        let body = format!("Message-ID: <dup-{id}@x>\r\nSubject: {id}\r\n\r\nbody {id}\r\n");
        for (n, folder) in folders.iter().enumerate() {
            // The first copy of 1 is read, the others not: a copy's flags can differ.
            let names: &[&str] = if id == 1 && n == 0 { &["\\Seen"] } else { &[] };
            let mailbox = source.mailbox_mut(&name(folder)).expect("added");
            mailbox.append(body.as_bytes(), flags(names), Some(1_700_000_000 + i64::from(id)));
        }
    }
    source
}

#[test]
fn a_message_in_several_folders_is_sent_once_and_copied_within_the_destination() {
    let mut source = source_with_duplicates();
    let mut destination = imap_like();
    let report = backup(&mut source, &mut destination, None);
    let totals = report.totals();
    assert_eq!((totals.saved, totals.copied_locally), (11, 5), "{report:?}");
    assert_eq!(contents(&destination), contents(&source));
    let again = backup(&mut source, &mut destination, report.state);
    assert!(again.is_noop(), "{again:?}");
}

#[test]
fn a_failure_while_copying_within_the_destination_leaves_no_duplicate() {
    for writes in 0..16 {
        for keep_records in [true, false] {
            let mut source = source_with_duplicates();
            let mut destination = imap_like();
            destination.fail_after(Some(writes));
            let mut file = StateFile::default();
            let options = SyncOptions::new(Mode::Backup).commit_interval(2);
            if dsync_core::run(&options, &mut source, &mut destination, &mut file).is_ok() {
                continue;
            }
            destination.fail_after(None);
            let state = (keep_records && !file.text.is_empty())
                .then(|| SyncState::decode(&file.text).expect("readable state"));
            let report = backup(&mut source, &mut destination, state);
            assert_eq!(contents(&destination), contents(&source), "after {writes} writes");
            let again = backup(&mut source, &mut destination, report.state);
            assert_eq!(again.totals().saved, 0, "after {writes} writes");
        }
    }
}
