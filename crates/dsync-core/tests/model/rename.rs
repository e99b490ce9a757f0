//! Mailbox renames in `sync -1` and two-way `sync` (in-memory storages with mailbox GUIDs).
//!
//! Both sides start as synced copies; one side renames folder `Work` (which has a child
//! `Work/Sub`) to `Projects/Work`; both sides add and expunge mail in their copy. The sync
//! must follow the rename instead of deleting and copying: afterwards the renamed folder
//! keeps its UIDVALIDITY and UIDs on the side that followed, holds the merged mail, and the
//! old name is gone. One-way, a rename on the destination stays the destination's own.
//! A run killed halfway and resumed ends the same way, and a second run does nothing.

use std::collections::BTreeSet;

use dsync_core::memory::MemoryStorage;
use dsync_core::state::SyncState;
use dsync_core::{
    Failed, Flags, MailboxName, Mode, NoObserver, Report, Side, StorageMut, SyncOptions,
    UidValidity,
};
use proptest::prelude::*;

use super::support::{append, expunge_nth, id_of, name};

fn ids(storage: &MemoryStorage, mailbox: &MailboxName) -> Option<BTreeSet<u32>> {
    storage.mailbox(mailbox).map(|m| m.messages.values().map(id_of).collect())
}

/// Changes to one side's copy of the renamed folder: (append?, which message to expunge).
fn changes() -> impl Strategy<Value = Vec<(bool, usize)>> {
    proptest::collection::vec((any::<bool>(), 0usize..6), 0..4)
}

fn evolve(
    storage: &mut MemoryStorage,
    mailbox: &MailboxName,
    changes: &[(bool, usize)],
    first_id: u32,
) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let (mut added, mut expunged) = (BTreeSet::new(), BTreeSet::new());
    for (index, &(appends, pick)) in changes.iter().enumerate() {
        if appends {
            let id = first_id + u32::try_from(index).expect("small");
            append(storage, mailbox, id, "rename", Flags::default());
            added.insert(id);
        } else {
            let stored = storage.mailbox_mut(mailbox).expect("exists");
            let Some(id) = expunge_nth(stored, pick) else { continue };
            if !added.remove(&id) {
                expunged.insert(id);
            }
        }
    }
    (added, expunged)
}

fn sync(
    mode: Mode,
    a: &mut MemoryStorage,
    b: &mut MemoryStorage,
    state: Option<SyncState>,
) -> Result<Report, Failed> {
    let options = SyncOptions::new(mode).commit_interval(1).state(state);
    match mode {
        Mode::TwoWay => dsync_core::run_two_way(&options, a, b, &mut NoObserver),
        _ => dsync_core::run(&options, a, b, &mut NoObserver),
    }
}

struct Checkpoints(Option<SyncState>);

impl dsync_core::Observer for Checkpoints {
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), dsync_core::StorageError> {
        self.0 = Some(state.clone());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_rename_is_followed_not_copied(
        two_way in any::<bool>(),
        renamed_on_a in any::<bool>(),
        a_changes in changes(),
        b_changes in changes(),
        kill_after in proptest::option::of(0u64..12),
    ) {
        let mode = if two_way { Mode::TwoWay } else { Mode::OneWay };
        let (work, sub, target) = (name("Work"), name("Work/Sub"), name("Projects/Work"));
        let target_sub = name("Projects/Work/Sub");
        let mut a = MemoryStorage::with_guids().comparable_message_guids(true);
        a.add_mailbox(&MailboxName::inbox(), UidValidity::new(1).expect("non-zero"));
        a.add_mailbox(&work, UidValidity::new(77).expect("non-zero"));
        a.add_mailbox(&sub, UidValidity::new(78).expect("non-zero"));
        for id in 1..=4 {
            append(&mut a, &work, id, "rename", Flags::default());
        }
        append(&mut a, &sub, 9, "rename", Flags::default());
        let mut b = MemoryStorage::with_guids().comparable_message_guids(true);
        let state = sync(mode, &mut a, &mut b, None).expect("first sync").state.expect("state");
        let ancestor = ids(&a, &work).expect("work");

        // One side renames (children move along), then both sides change their copy.
        let (renamer, other) = if renamed_on_a { (&mut a, &mut b) } else { (&mut b, &mut a) };
        renamer.rename_mailbox(&work, &target).expect("rename");
        let (renamer_added, renamer_expunged) = evolve(renamer, &target, &a_changes, 100);
        let (other_added, other_expunged) = evolve(other, &work, &b_changes, 200);
        let (a_before, b_before) = (a.clone(), b.clone());

        // Optionally killed after some writes on the following side, then resumed from the
        // last checkpoint (or the state from before the run).
        let mut state = Some(state);
        if let Some(writes) = kill_after {
            let follower = if renamed_on_a { &mut b } else { &mut a };
            follower.fail_after(Some(writes));
            let mut checkpoints = Checkpoints(None);
            let options = SyncOptions::new(mode).commit_interval(1).state(state.clone());
            let result = match mode {
                Mode::TwoWay => dsync_core::run_two_way(&options, &mut a, &mut b, &mut checkpoints),
                _ => dsync_core::run(&options, &mut a, &mut b, &mut checkpoints),
            };
            a.fail_after(None);
            b.fail_after(None);
            if result.is_err() {
                state = checkpoints.0.or(state);
            } else {
                state = result.ok().and_then(|r| r.state);
            }
        }
        let report = sync(mode, &mut a, &mut b, state).expect("sync");
        prop_assert!(report.failures.is_empty(), "{:?}", report.failures);

        let merged: BTreeSet<u32> = ancestor
            .iter()
            .copied()
            .filter(|id| !renamer_expunged.contains(id) && !other_expunged.contains(id))
            .chain(renamer_added.iter().copied())
            .chain(other_added.iter().copied())
            .collect();
        if two_way || renamed_on_a {
            // Followed: both sides have the new names only, with the merged mail (one-way:
            // B holds the merge, A is untouched).
            for side in [&a, &b] {
                prop_assert!(side.mailbox(&work).is_none() && side.mailbox(&sub).is_none(), "old name left");
                prop_assert!(side.mailbox(&target_sub).is_some(), "the child moved");
            }
            prop_assert_eq!(ids(&b, &target).expect("renamed on B"), merged.clone());
            if two_way {
                prop_assert_eq!(ids(&a, &target).expect("renamed on A"), merged);
            } else {
                prop_assert_eq!(ids(&a, &target), ids(&a_before, &target), "the source was written");
            }
            // The follower renamed, kept its UIDVALIDITY (no re-creation) and copied no
            // message it already had.
            let follower = if renamed_on_a { &b } else { &a };
            prop_assert_eq!(follower.mailbox(&target).expect("target").uid_validity.get(), 77);
            prop_assert_eq!(follower.mailbox(&target_sub).expect("sub").uid_validity.get(), 78);
            if kill_after.is_none() {
                let follower_side = if renamed_on_a { Side::Destination } else { Side::Source };
                prop_assert_eq!(report.renamed_mailboxes.len(), 1, "{:?}", report.renamed_mailboxes);
                prop_assert_eq!(report.renamed_mailboxes[0].side, follower_side);
                // Saved on B: only what A added (a copy would save the whole folder).
                let copied: u64 = report.mailboxes.iter().map(|m| m.saved).sum();
                let added_on_a = if renamed_on_a { &renamer_added } else { &other_added };
                prop_assert_eq!(copied, added_on_a.len() as u64, "only new mail is copied");
            }
        } else {
            // One-way and B renamed: B's rename stays, A's folder is not brought back.
            prop_assert_eq!(ids(&b, &target), ids(&b_before, &target));
            prop_assert!(b.mailbox(&work).is_none(), "B's rename was undone");
            prop_assert_eq!(ids(&a, &work), ids(&a_before, &work), "the source was written");
        }
        let again = sync(mode, &mut a, &mut b, report.state).expect("second sync");
        prop_assert!(again.is_noop(), "second sync did something: {:?} {:?}", again.mailboxes, again.renamed_mailboxes);
    }
}
