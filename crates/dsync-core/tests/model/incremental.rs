//! Re-runs planned from the source's changes alone (`Storage::changes_since`, an IMAP
//! server's QRESYNC) end exactly as a run that lists both sides: same destination, same
//! saved state, for random change sets between two runs (flag changes, new mail,
//! expunges, a new UIDVALIDITY, a destination changed behind our back, a source that
//! forgot its history).

use std::collections::BTreeSet;

use dsync_core::memory::MemoryStorage;
use dsync_core::{
    Flags, MailboxName, Mode, NoObserver, SyncOptions, SystemFlags, Uid, UidValidity,
};
use proptest::prelude::*;

use super::support::name;

const NAMES: &[&str] = &["INBOX", "A", "A/B"];

/// One change between the runs: what, in which mailbox, to which message / with what.
#[derive(Debug, Clone, Copy)]
struct Change {
    kind: u8,
    mailbox: u8,
    arg: u8,
}

fn change() -> impl Strategy<Value = Change> {
    // Mostly message changes; sometimes a new UIDVALIDITY or a destination change.
    (prop_oneof![8 => 0u8..3, 1 => 3u8..5], any::<u8>(), any::<u8>())
        .prop_map(|(kind, mailbox, arg)| Change { kind, mailbox, arg })
}

fn flags(bits: u8) -> Flags {
    let mut keywords = BTreeSet::new();
    if bits & 0x40 != 0 {
        keywords.insert(String::from("$Label1"));
    }
    Flags { system: SystemFlags::from_bits_truncate(bits & 0x1f), keywords }
}

/// A source of `sizes[i]` messages in mailbox `i` (flags from `bits`), like an IMAP server
/// with QRESYNC; UIDs with gaps.
fn source(sizes: &[u8], bits: &[u8]) -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    storage.keep_change_history(true);
    let mut next_bits = bits.iter().copied().cycle();
    for (index, &size) in sizes.iter().enumerate() {
        let mailbox = storage.add_mailbox(&name(NAMES[index]), UidValidity::new(7).expect("7"));
        for n in 0..size {
            let body = format!("Message-ID: <{index}.{n}@model>\r\n\r\nbody {n}\r\n");
            let uid =
                mailbox.append(body.as_bytes(), flags(next_bits.next().unwrap_or(0)), Some(1));
            if n % 3 == 1 {
                mailbox.expunge(uid); // a gap
            }
        }
    }
    storage
}

fn apply(source: &mut MemoryStorage, destination: &mut MemoryStorage, changes: &[Change]) {
    for (step, change) in changes.iter().enumerate() {
        let target: MailboxName = name(NAMES[usize::from(change.mailbox) % NAMES.len()]);
        let side = if change.kind == 4 { &mut *destination } else { &mut *source };
        let Some(mailbox) = side.mailbox_mut(&target) else { continue };
        let uids: Vec<Uid> = mailbox.messages.keys().copied().collect();
        let pick = uids.get(usize::from(change.arg) % uids.len().max(1)).copied();
        match (change.kind, pick) {
            (0 | 4, Some(uid)) => mailbox.set_flags(uid, flags(change.arg.rotate_left(3))),
            (1, _) => {
                let body = format!("Message-ID: <new.{step}@model>\r\n\r\nnew\r\n");
                mailbox.append(body.as_bytes(), flags(change.arg), Some(2));
            }
            (2, Some(uid)) => mailbox.expunge(uid),
            (3, _) => {
                mailbox.uid_validity =
                    UidValidity::new(mailbox.uid_validity.get() + 1).expect("non-zero");
            }
            _ => {}
        }
    }
}

fn backup(
    source: &mut MemoryStorage,
    destination: &mut MemoryStorage,
    state: Option<dsync_core::state::SyncState>,
) -> dsync_core::Report {
    let options = SyncOptions::new(Mode::Backup).commit_interval(2).state(state);
    let report = dsync_core::run(&options, source, destination, &mut NoObserver).expect("backup");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

/// One mailbox as a client sees it: name, UIDVALIDITY, UIDNEXT, messages.
type MailboxView = (MailboxName, u32, u32, Vec<(Uid, Flags, Vec<u8>)>);

/// What a client sees of a storage's mailboxes.
fn view(storage: &MemoryStorage) -> Vec<MailboxView> {
    storage
        .all_mailboxes()
        .iter()
        .map(|(name, m)| {
            let messages =
                m.messages.values().map(|x| (x.meta.uid, x.meta.flags.clone(), x.body.clone()));
            let uid_validity = m.source_uid_validity.unwrap_or(m.uid_validity).get();
            (name.clone(), uid_validity, m.uid_next.get(), messages.collect())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn a_rerun_from_changes_ends_as_a_full_one(
        sizes in proptest::collection::vec(0u8..12, 1..=NAMES.len()),
        bits in proptest::collection::vec(any::<u8>(), 1..8),
        changes in proptest::collection::vec(change(), 0..10),
        forgot in any::<bool>(),
        via_file in any::<bool>(),
    ) {
        let mut source = source(&sizes, &bits);
        let mut destination = MemoryStorage::with_guids();
        let first = backup(&mut source, &mut destination, None);
        // Through a state file, the bases stay in it: the re-run looks them up there and
        // patches them into the next state.
        let dir = tempfile::tempdir().expect("dir");
        let file = dsync_core::state::StateFile::new(dir.path().join("state"), "source");
        let state = match &first.state {
            Some(state) if via_file => {
                file.save(state).expect("save");
                Some(file.load().expect("load"))
            }
            state => state.clone(),
        };
        apply(&mut source, &mut destination, &changes);
        if forgot {
            source.keep_change_history(false);
        }
        let expected_view = view(&source);

        // The same re-run planned from full listings (no history on the source).
        let mut full_source = source.clone();
        full_source.keep_change_history(false);
        let mut full_destination = destination.clone();
        let full = backup(&mut full_source, &mut full_destination, state.clone());

        let (source_listings, destination_listings) = (source.listings(), destination.listings());
        let delta = backup(&mut source, &mut destination, state);
        prop_assert_eq!(view(&destination), expected_view.clone());
        prop_assert_eq!(view(&full_destination), expected_view);
        prop_assert_eq!(&delta.state, &full.state, "the saved states differ");
        if let (true, Some(written), Some(listed)) = (via_file, &delta.state, &full.state) {
            // Written and read back, the patched bases are the listed run's.
            file.save(written).expect("save");
            prop_assert_eq!(&file.load().expect("load"), listed, "the saved files differ");
        }

        // Message changes alone on a source that remembers: nothing listed whole.
        if !forgot && changes.iter().all(|c| c.kind < 3) {
            prop_assert_eq!(source.listings(), source_listings, "the source was listed");
            prop_assert_eq!(destination.listings(), destination_listings, "the destination was listed");
        }
        // And the next run finds nothing to do.
        let again = backup(&mut source, &mut destination, delta.state.clone());
        prop_assert!(again.is_noop(), "{:?}", again);
    }
}
