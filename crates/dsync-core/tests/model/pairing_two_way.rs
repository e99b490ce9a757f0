//! Two-way `sync` between two sides that both assign their own UIDs (two IMAP servers,
//! modelled by [`MemoryStorage::assigning_uids`]): both start as synced copies of a
//! random ancestor, each evolves on its own (new mail, expunges, flag changes, mailboxes
//! created and deleted, subscriptions), and one sync, possibly interrupted at any write
//! on either side and resumed (from the state the failed run returned, or after a kill
//! from the last checkpoint or the state from before the run), must leave:
//! * both sides holding the same mailboxes, messages and flags, none twice;
//! * every message either side had that neither side expunged;
//! * each expunge of a message the state knew carried out on the other side;
//! * flags merged per flag against the last run (whichever side changed a flag wins);
//! * subscriptions merged as in any two-way sync;
//! * a second run that changes nothing.
//!
//! Where this differs from the merge of Maildirs ([`super::merge`]): a mailbox deleted on
//! one side is deleted on the other when every message in it is paired (flag changes
//! there do not keep it), and a mailbox re-created (a new UIDVALIDITY) gets the other
//! side's messages back instead of replacing them: without persistent mailbox GUIDs the
//! pairs are what tells, and on doubt nothing is lost.

use std::collections::BTreeSet;

use dsync_core::memory::MemoryStorage;
use dsync_core::{MailboxName, Mode};
use proptest::prelude::*;

use super::merge::{
    Checkpoints, History, View, ancestor, build, evolve, expected_subscriptions, op, sync,
    sync_observed, three_way, view,
};

fn imap_like(storage: MemoryStorage) -> MemoryStorage {
    storage.assigning_uids(true)
}

/// Message ids of `mailbox` in `view`.
fn ids(view: &View, mailbox: &MailboxName) -> BTreeSet<u32> {
    view.get(mailbox).map(|m| m.keys().copied().collect()).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn two_way_sync_through_pairs_merges_both_histories(
        ancestor_spec in ancestor(),
        a_ops in proptest::collection::vec(op(), 0..8),
        b_ops in proptest::collection::vec(op(), 0..8),
        interrupt in proptest::option::of((any::<bool>(), 0u64..30, any::<bool>())),
    ) {
        let mut a = imap_like(build(&ancestor_spec, false));
        let mut b = a.clone();
        let base = sync(Mode::TwoWay, &mut a, &mut b, None).expect("initial sync").state.expect("state");
        let ancestor = view(&a);
        prop_assert_eq!(&ancestor, &view(&b), "the initial sync pairs by content");
        let ancestor_subscriptions = a.subscribed().clone();
        let a_history = evolve(&mut a, &a_ops, 10_000);
        let b_history = evolve(&mut b, &b_ops, 20_000);
        let (a_before, b_before) = (view(&a), view(&b));
        let subscriptions =
            expected_subscriptions(&ancestor_subscriptions, a.subscribed(), b.subscribed());

        let mut state = base;
        if let Some((on_a, writes, killed)) = interrupt {
            if on_a { a.fail_after(Some(writes)); } else { b.fail_after(Some(writes)); }
            let mut checkpoints = Checkpoints(None);
            let result = sync_observed(Mode::TwoWay, &mut a, &mut b, Some(state.clone()), &mut checkpoints);
            a.fail_after(None);
            b.fail_after(None);
            state = match (result, killed) {
                (Ok(report), _) => report.state.expect("state"),
                (Err(_), true) => checkpoints.0.unwrap_or(state),
                (Err(failed), false) => failed.report.state.clone().expect("state survives"),
            };
        }
        let report = sync(Mode::TwoWay, &mut a, &mut b, Some(state)).expect("sync succeeds");
        prop_assert!(report.failures.is_empty(), "{:?}", report.failures);
        let (a_after, b_after) = (view(&a), view(&b));
        prop_assert_eq!(&a_after, &b_after, "sides differ");
        prop_assert_eq!(a.subscribed(), &subscriptions, "subscriptions on A");
        prop_assert_eq!(b.subscribed(), &subscriptions, "subscriptions on B");

        let expunged = |id: &u32| a_history.expunged.contains(id) || b_history.expunged.contains(id);
        let mailboxes: BTreeSet<&MailboxName> = a_before.keys().chain(b_before.keys()).collect();
        for mailbox in mailboxes {
            let after = ids(&a_after, mailbox);
            // Nothing lost.
            for id in ids(&a_before, mailbox).union(&ids(&b_before, mailbox)) {
                prop_assert!(expunged(id) || after.contains(id), "{}: message {} lost", mailbox, id);
            }
            let renewed = |h: &History| h.recreated.contains(mailbox);
            if renewed(&a_history) || renewed(&b_history) {
                continue;
            }
            let deleted = a_history.deleted.contains(mailbox) || b_history.deleted.contains(mailbox);
            for id in ids(&ancestor, mailbox) {
                // Expunges (and deletes) of known messages travel.
                if expunged(&id) {
                    prop_assert!(!after.contains(&id), "{}: expunged message {} is back", mailbox, id);
                    continue;
                }
                if deleted {
                    continue;
                }
                // Flags merge per flag against the last run.
                let base = &ancestor[mailbox][&id];
                let (x, y) = (&a_before[mailbox][&id], &b_before[mailbox][&id]);
                prop_assert_eq!(&a_after[mailbox][&id], &three_way(base, x, y), "{} message {} flags", mailbox, id);
            }
        }
        let again = sync(Mode::TwoWay, &mut a, &mut b, report.state).expect("second sync");
        prop_assert!(again.is_noop(), "second sync did something: {:?}", again.mailboxes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn two_way_sync_through_pairs_without_state_loses_and_duplicates_nothing(
        ancestor_spec in ancestor(),
        a_ops in proptest::collection::vec(op(), 0..8),
        b_ops in proptest::collection::vec(op(), 0..8),
    ) {
        let mut a = imap_like(build(&ancestor_spec, false));
        let mut b = a.clone();
        sync(Mode::TwoWay, &mut a, &mut b, None).expect("initial sync");
        evolve(&mut a, &a_ops, 10_000);
        evolve(&mut b, &b_ops, 20_000);
        let (a_before, b_before) = (view(&a), view(&b));
        // The state is lost: every message is found again by content.
        let report = sync(Mode::TwoWay, &mut a, &mut b, None).expect("stateless sync");
        let (a_after, b_after) = (view(&a), view(&b));
        prop_assert_eq!(&a_after, &b_after);
        for (mailbox, messages) in a_before.iter().chain(&b_before) {
            for id in messages.keys() {
                prop_assert!(a_after.get(mailbox).is_some_and(|m| m.contains_key(id)), "{}: message {} lost", mailbox, id);
            }
        }
        let again = sync(Mode::TwoWay, &mut a, &mut b, report.state).expect("second sync");
        prop_assert!(again.is_noop(), "second sync did something: {:?}", again.mailboxes);
    }
}
