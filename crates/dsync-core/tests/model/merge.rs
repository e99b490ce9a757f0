//! Model-based properties of `sync -1` (one-way) and two-way `sync` (in-memory storages).
//!
//! Both sides start as synced copies of a random ancestor; then each side evolves on its
//! own (new mail, expunges, flag changes, new and deleted mailboxes) while the test records
//! what happened. After the sync, expectations follow from those histories:
//! * no message is lost except by a deliberate expunge, none is duplicated;
//! * flags merge three-way (whichever side changed a flag wins);
//! * two-way: both sides end identical; one-way: the source is never written and the
//!   destination keeps its own changes;
//! * a second run changes nothing; an interrupted run, resumed, ends the same way.

use std::collections::{BTreeMap, BTreeSet};

use dsync_core::memory::MemoryStorage;
use dsync_core::state::SyncState;
use dsync_core::{
    Failed, Flags, MailboxName, Mode, NoObserver, Report, SyncOptions, SystemFlags, Uid,
    UidValidity,
};
use proptest::prelude::*;

use super::support::{append, expunge_nth, id_of, name};

const NAMES: &[&str] = &["INBOX", "A", "A/B", "C", "Ünï"];

fn mailbox_at(index: usize) -> MailboxName {
    name(NAMES[index])
}

fn flags(bits: u8, keyword: Option<u8>) -> Flags {
    let mut flags =
        Flags { system: SystemFlags::from_bits_truncate(bits), keywords: BTreeSet::new() };
    if let Some(k) = keyword {
        flags.keywords.insert(format!("$K{k}"));
    }
    flags
}

/// The ancestor: mailboxes with messages (ids unique), some gaps in UIDs.
#[derive(Debug, Clone)]
pub(super) struct Ancestor {
    mailboxes: BTreeMap<usize, Vec<(u8, Option<u8>, bool)>>, // (flags, keyword, leave a gap before)
}

pub(super) fn ancestor() -> impl Strategy<Value = Ancestor> {
    let messages =
        proptest::collection::vec((0u8..32, proptest::option::of(0u8..3), any::<bool>()), 0..5);
    (proptest::collection::btree_map(1..NAMES.len(), messages.clone(), 0..3), messages).prop_map(
        |(mut mailboxes, inbox)| {
            mailboxes.insert(0, inbox);
            Ancestor { mailboxes }
        },
    )
}

pub(super) fn build(ancestor: &Ancestor, comparable_guids: bool) -> MemoryStorage {
    let mut storage = MemoryStorage::with_guids().comparable_message_guids(comparable_guids);
    let mut id = 0;
    for (&index, messages) in &ancestor.mailboxes {
        let mailbox = mailbox_at(index);
        storage.add_mailbox(
            &mailbox,
            UidValidity::new(100 + u32::try_from(index).expect("small")).expect("non-zero"),
        );
        for &(bits, keyword, gap) in messages {
            if gap {
                let stored = storage.mailbox_mut(&mailbox).expect("exists");
                stored.uid_next = stored.uid_next.next().expect("room");
            }
            id += 1;
            append(&mut storage, &mailbox, id, "model", flags(bits, keyword));
        }
        storage.subscribe(&mailbox);
    }
    storage
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
    Append { mailbox: usize, bits: u8 },
    Expunge { mailbox: usize, pick: usize },
    SetFlags { mailbox: usize, pick: usize, bits: u8, keyword: Option<u8> },
    Create { mailbox: usize },
    Delete { mailbox: usize },
    Subscribe { mailbox: usize, subscribed: bool },
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    let m = 0..NAMES.len();
    prop_oneof![
        3 => (m.clone(), 0u8..32).prop_map(|(mailbox, bits)| Op::Append { mailbox, bits }),
        2 => (m.clone(), 0usize..8).prop_map(|(mailbox, pick)| Op::Expunge { mailbox, pick }),
        3 => (m.clone(), 0usize..8, 0u8..32, proptest::option::of(0u8..3))
            .prop_map(|(mailbox, pick, bits, keyword)| Op::SetFlags { mailbox, pick, bits, keyword }),
        1 => m.clone().prop_map(|mailbox| Op::Create { mailbox }),
        1 => m.clone().prop_map(|mailbox| Op::Delete { mailbox }),
        2 => (m, any::<bool>()).prop_map(|(mailbox, subscribed)| Op::Subscribe { mailbox, subscribed }),
    ]
}

/// What one side did to itself after the ancestor.
#[derive(Debug, Default, Clone)]
pub(super) struct History {
    pub(super) expunged: BTreeSet<u32>,
    new: BTreeMap<MailboxName, BTreeSet<u32>>,
    touched: BTreeSet<MailboxName>,
    pub(super) deleted: BTreeSet<MailboxName>,
    created: BTreeSet<MailboxName>,
    /// Deleted and then created again: a new incarnation (new UIDVALIDITY).
    pub(super) recreated: BTreeSet<MailboxName>,
}

pub(super) fn evolve(storage: &mut MemoryStorage, ops: &[Op], first_id: u32) -> History {
    let mut history = History::default();
    let mut next_id = first_id;
    for op in ops {
        match *op {
            Op::Append { mailbox, bits } => {
                let mailbox = mailbox_at(mailbox);
                if storage.mailbox(&mailbox).is_some() {
                    append(storage, &mailbox, next_id, "model", flags(bits, None));
                    history.new.entry(mailbox.clone()).or_default().insert(next_id);
                    history.touched.insert(mailbox);
                    next_id += 1;
                }
            }
            Op::Expunge { mailbox, pick } => {
                let mailbox = mailbox_at(mailbox);
                let Some(stored) = storage.mailbox_mut(&mailbox) else { continue };
                let Some(id) = expunge_nth(stored, pick) else { continue };
                history.expunged.insert(id);
                if let Some(new) = history.new.get_mut(&mailbox) {
                    new.remove(&id);
                }
                history.touched.insert(mailbox);
            }
            Op::SetFlags { mailbox, pick, bits, keyword } => {
                let mailbox = mailbox_at(mailbox);
                let Some(stored) = storage.mailbox_mut(&mailbox) else { continue };
                let Some(uid) =
                    stored.messages.keys().nth(pick % stored.messages.len().max(1)).copied()
                else {
                    continue;
                };
                let new_flags = flags(bits, keyword);
                if stored.messages[&uid].meta.flags != new_flags {
                    stored.set_flags(uid, new_flags);
                    history.touched.insert(mailbox);
                }
            }
            Op::Create { mailbox } => {
                let mailbox = mailbox_at(mailbox);
                if storage.mailbox(&mailbox).is_none() {
                    storage
                        .add_mailbox(&mailbox, UidValidity::new(900 + first_id).expect("non-zero"));
                    if history.deleted.remove(&mailbox) {
                        history.recreated.insert(mailbox.clone());
                    }
                    history.created.insert(mailbox.clone());
                    history.touched.insert(mailbox);
                }
            }
            Op::Subscribe { mailbox, subscribed } => {
                // Subscriptions are names, independent of the mailboxes (as in IMAP).
                if subscribed {
                    storage.subscribe(&mailbox_at(mailbox));
                } else {
                    storage.unsubscribe(&mailbox_at(mailbox));
                }
            }
            Op::Delete { mailbox } => {
                let mailbox = mailbox_at(mailbox);
                if !mailbox.is_inbox() && storage.mailbox(&mailbox).is_some() {
                    if let Some(stored) = storage.mailbox(&mailbox) {
                        history.expunged.extend(stored.messages.values().map(id_of));
                    }
                    storage.remove_mailbox(&mailbox);
                    // Deleting a mailbox this side created itself undoes the creation; a
                    // recreated one is, from the ancestor's view, simply deleted.
                    let own = history.created.remove(&mailbox);
                    if !own || history.recreated.remove(&mailbox) {
                        history.deleted.insert(mailbox.clone());
                    }
                    history.new.remove(&mailbox);
                    history.touched.remove(&mailbox);
                }
            }
        }
    }
    history
}

/// The subscriptions the sync must leave on B (and, two-way, on A): per name, a side's
/// change since the ancestor travels; when both sides changed it differently, subscribed
/// wins. (One-way: A's changes travel and B keeps its own, which is the same rule for B.)
pub(super) fn expected_subscriptions(
    ancestor: &BTreeSet<MailboxName>,
    a: &BTreeSet<MailboxName>,
    b: &BTreeSet<MailboxName>,
) -> BTreeSet<MailboxName> {
    ancestor
        .iter()
        .chain(a)
        .chain(b)
        .filter(|name| {
            let (in_a, in_b) = (a.contains(*name), b.contains(*name));
            let was = ancestor.contains(*name);
            match (in_a != was, in_b != was) {
                (true, false) => in_a,
                (false, true) => in_b,
                (true, true) => in_a || in_b,
                (false, false) => was,
            }
        })
        .cloned()
        .collect()
}

/// Per mailbox: id → flags.
pub(super) type View = BTreeMap<MailboxName, BTreeMap<u32, Flags>>;

pub(super) fn view(storage: &MemoryStorage) -> View {
    storage
        .all_mailboxes()
        .iter()
        .filter(|(_, m)| m.selectable)
        .map(|(mailbox, stored)| {
            let mut ids = BTreeMap::new();
            for message in stored.messages.values() {
                let previous = ids.insert(id_of(message), message.meta.flags.clone());
                assert!(previous.is_none(), "{mailbox}: message {} is duplicated", id_of(message));
            }
            (mailbox.clone(), ids)
        })
        .collect()
}

/// UIDs per id, to compare two sides' UIDs.
fn uids(storage: &MemoryStorage) -> BTreeMap<MailboxName, BTreeMap<u32, Uid>> {
    storage
        .all_mailboxes()
        .iter()
        .map(|(mailbox, stored)| {
            (mailbox.clone(), stored.messages.values().map(|m| (id_of(m), m.meta.uid)).collect())
        })
        .collect()
}

pub(super) fn three_way(base: &Flags, changing: &Flags, other: &Flags) -> Flags {
    dsync_core::plan::merge::merge_flags(
        dsync_core::plan::merge::MergeMode::TwoWay,
        Some(base),
        changing,
        other,
    )
}

fn options(mode: Mode, state: Option<SyncState>) -> SyncOptions {
    SyncOptions::new(mode).commit_interval(2).state(state)
}

pub(super) fn sync(
    mode: Mode,
    a: &mut MemoryStorage,
    b: &mut MemoryStorage,
    state: Option<SyncState>,
) -> Result<Report, Failed> {
    sync_observed(mode, a, b, state, &mut NoObserver)
}

pub(super) fn sync_observed(
    mode: Mode,
    a: &mut MemoryStorage,
    b: &mut MemoryStorage,
    state: Option<SyncState>,
    observer: &mut dyn dsync_core::Observer,
) -> Result<Report, Failed> {
    let options = options(mode, state);
    match mode {
        Mode::TwoWay => dsync_core::run_two_way(&options, a, b, observer),
        _ => dsync_core::run(&options, a, b, observer),
    }
}

/// Keeps what a CLI would have written to its state file at each checkpoint.
pub(super) struct Checkpoints(pub(super) Option<SyncState>);

impl dsync_core::Observer for Checkpoints {
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), dsync_core::StorageError> {
        self.0 = Some(state.clone());
        Ok(())
    }
}

/// Runs a sync, optionally interrupted at a write on either side and then resumed: after
/// a reported failure from the state the run returned; after a kill (`killed`) from the
/// last checkpoint, or the state from before the run if there was none.
fn sync_maybe_interrupted(
    mode: Mode,
    a: &mut MemoryStorage,
    b: &mut MemoryStorage,
    state: SyncState,
    interrupt: Option<(bool, u64, bool)>,
) -> SyncState {
    let mut state = state;
    if let Some((on_a, writes, killed)) = interrupt {
        if on_a {
            a.fail_after(Some(writes));
        } else {
            b.fail_after(Some(writes));
        }
        let mut checkpoints = Checkpoints(None);
        let result = sync_observed(mode, a, b, Some(state.clone()), &mut checkpoints);
        a.fail_after(None);
        b.fail_after(None);
        state = match (result, killed) {
            (Ok(report), _) => report.state.expect("state"),
            (Err(_), true) => checkpoints.0.unwrap_or(state),
            (Err(failed), false) => failed.report.state.clone().expect("state survives a failure"),
        };
    }
    let report = sync(mode, a, b, Some(state)).expect("sync succeeds");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report.state.expect("state")
}

/// Expected messages of a mailbox that exists on both sides after the sync.
fn expected_ids(
    mailbox: &MailboxName,
    ancestor: &View,
    a_history: &History,
    b_history: &History,
) -> BTreeSet<u32> {
    let mut ids: BTreeSet<u32> =
        ancestor.get(mailbox).map(|m| m.keys().copied().collect()).unwrap_or_default();
    ids.retain(|id| !a_history.expunged.contains(id) && !b_history.expunged.contains(id));
    for history in [a_history, b_history] {
        ids.extend(history.new.get(mailbox).into_iter().flatten());
    }
    ids
}

/// A side that changed a message's flags and changed them back still changed the mailbox
/// (its change token moved, as a server's HIGHESTMODSEQ does): the other side's delete of
/// that mailbox does not travel to it — nothing a side touched since is deleted.
#[test]
fn flags_changed_and_changed_back_keep_a_mailbox_the_other_side_deleted() {
    let ancestor =
        Ancestor { mailboxes: BTreeMap::from([(0, vec![]), (4, vec![(8, None, false)])]) };
    let mut a = build(&ancestor, false);
    let mut b = a.clone();
    let base =
        sync(Mode::TwoWay, &mut a, &mut b, None).expect("initial sync").state.expect("state");
    let set = |bits| Op::SetFlags { mailbox: 4, pick: 0, bits, keyword: None };
    evolve(&mut a, &[set(0), set(8)], 10_000);
    evolve(&mut b, &[Op::Delete { mailbox: 4 }], 20_000);

    let report = sync(Mode::TwoWay, &mut a, &mut b, Some(base)).expect("sync");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let mailbox = mailbox_at(4);
    assert_eq!(view(&a).get(&mailbox).map(BTreeMap::len), Some(1), "kept on A");
    assert_eq!(view(&b).get(&mailbox).map(BTreeMap::len), Some(1), "created again on B");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 250, ..ProptestConfig::default() })]

    #[test]
    fn two_way_sync_merges_both_histories(
        ancestor_spec in ancestor(),
        a_ops in proptest::collection::vec(op(), 0..8),
        b_ops in proptest::collection::vec(op(), 0..8),
        comparable_guids in any::<bool>(),
        interrupt in proptest::option::of((any::<bool>(), 0u64..30, any::<bool>())),
    ) {
        let mut a = build(&ancestor_spec, comparable_guids);
        let mut b = a.clone();
        let base = sync(Mode::TwoWay, &mut a, &mut b, None).expect("initial sync").state.expect("state");
        let ancestor = view(&a);
        let ancestor_subscriptions = a.subscribed().clone();
        let a_history = evolve(&mut a, &a_ops, 10_000);
        let b_history = evolve(&mut b, &b_ops, 20_000);
        let (a_before, b_before) = (view(&a), view(&b));
        let subscriptions = expected_subscriptions(&ancestor_subscriptions, a.subscribed(), b.subscribed());

        let state = sync_maybe_interrupted(Mode::TwoWay, &mut a, &mut b, base, interrupt);
        let (a_after, b_after) = (view(&a), view(&b));
        prop_assert_eq!(a.subscribed(), &subscriptions, "subscriptions on A");
        prop_assert_eq!(b.subscribed(), &subscriptions, "subscriptions on B");
        prop_assert_eq!(&a_after, &b_after, "sides differ");
        prop_assert_eq!(uids(&a), uids(&b), "UIDs differ");

        let mailboxes: BTreeSet<&MailboxName> = a_before.keys().chain(b_before.keys()).collect();
        for mailbox in mailboxes {
            let deleted_by = |h: &History, other: &History| h.deleted.contains(mailbox) && !other.touched.contains(mailbox) && !other.created.contains(mailbox);
            let gone = deleted_by(&a_history, &b_history) || deleted_by(&b_history, &a_history)
                || (a_history.deleted.contains(mailbox) && b_history.deleted.contains(mailbox));
            prop_assert_eq!(a_after.contains_key(mailbox), !gone, "{} existence", mailbox);
            if gone {
                continue;
            }
            let got = &a_after[mailbox];
            let current = |view: &View| -> BTreeSet<u32> { view.get(mailbox).map(|m| m.keys().copied().collect()).unwrap_or_default() };
            let (a_new_incarnation, b_new_incarnation) = (a_history.recreated.contains(mailbox), b_history.recreated.contains(mailbox));
            let incarnations = a_new_incarnation || b_new_incarnation;
            let expected: BTreeSet<u32> = if a_new_incarnation && !b_history.touched.contains(mailbox) {
                current(&a_before) // B's unchanged copy is replaced by A's new incarnation
            } else if b_new_incarnation && !a_history.touched.contains(mailbox) {
                current(&b_before)
            } else if incarnations {
                current(&a_before).union(&current(&b_before)).copied().collect() // both changed: merged
            } else if a_history.deleted.contains(mailbox) {
                current(&b_before) // a side that deleted the mailbox contributes nothing to it
            } else if b_history.deleted.contains(mailbox) {
                current(&a_before)
            } else {
                expected_ids(mailbox, &ancestor, &a_history, &b_history)
            };
            prop_assert_eq!(got.keys().copied().collect::<BTreeSet<_>>(), expected, "{} messages", mailbox);
            for (id, flags) in got {
                let base_flags = ancestor.get(mailbox).and_then(|m| m.get(id)).filter(|_| !incarnations);
                let (a_flags, b_flags) = (a_before.get(mailbox).and_then(|m| m.get(id)), b_before.get(mailbox).and_then(|m| m.get(id)));
                let want = match (base_flags, a_flags, b_flags) {
                    (Some(base), Some(x), Some(y)) => three_way(base, x, y),
                    (_, Some(x), None) => x.clone(),
                    (_, None, Some(y)) => y.clone(),
                    (None, Some(x), Some(y)) => three_way(&Flags::default(), x, y),
                    (_, None, None) => unreachable!("message {id} came from nowhere"),
                };
                prop_assert_eq!(flags, &want, "{} message {} flags", mailbox, id);
            }
        }
        let again = sync(Mode::TwoWay, &mut a, &mut b, Some(state)).expect("second sync");
        prop_assert!(again.is_noop(), "second sync did something: {:?}", again.mailboxes);
    }

    #[test]
    fn one_way_sync_brings_the_source_and_keeps_the_destination(
        ancestor_spec in ancestor(),
        a_ops in proptest::collection::vec(op(), 0..8),
        b_ops in proptest::collection::vec(op(), 0..8),
        comparable_guids in any::<bool>(),
        interrupt in proptest::option::of((0u64..30, any::<bool>())),
    ) {
        let mut a = build(&ancestor_spec, comparable_guids);
        let mut b = a.clone();
        let base = sync(Mode::OneWay, &mut a, &mut b, None).expect("initial sync").state.expect("state");
        let ancestor = view(&a);
        let ancestor_subscriptions = a.subscribed().clone();
        let a_history = evolve(&mut a, &a_ops, 10_000);
        let b_history = evolve(&mut b, &b_ops, 20_000);
        let (a_before, b_before) = (view(&a), view(&b));
        let a_uids_before = uids(&a);
        let a_subscriptions = a.subscribed().clone();
        let subscriptions = expected_subscriptions(&ancestor_subscriptions, &a_subscriptions, b.subscribed());

        let state = sync_maybe_interrupted(Mode::OneWay, &mut a, &mut b, base, interrupt.map(|(w, killed)| (false, w, killed)));
        prop_assert_eq!(view(&a), a_before.clone(), "the source was written");
        prop_assert_eq!(uids(&a), a_uids_before, "the source was written");
        prop_assert_eq!(a.subscribed(), &a_subscriptions, "the source's subscriptions were written");
        prop_assert_eq!(b.subscribed(), &subscriptions, "subscriptions on B");
        let b_after = view(&b);

        let mailboxes: BTreeSet<&MailboxName> = a_before.keys().chain(b_before.keys()).collect();
        for mailbox in mailboxes {
            let exists = if b_history.deleted.contains(mailbox) {
                false // B's delete stays
            } else if a_history.recreated.contains(mailbox) || b_history.recreated.contains(mailbox) {
                true
            } else if a_history.deleted.contains(mailbox) {
                b_history.touched.contains(mailbox) || b_history.created.contains(mailbox)
            } else {
                true
            };
            prop_assert_eq!(b_after.contains_key(mailbox), exists, "{} existence on B", mailbox);
            if !exists {
                continue;
            }
            let got = &b_after[mailbox];
            let current = |view: &View| -> BTreeSet<u32> { view.get(mailbox).map(|m| m.keys().copied().collect()).unwrap_or_default() };
            let incarnations = a_history.recreated.contains(mailbox) || b_history.recreated.contains(mailbox);
            let expected: BTreeSet<u32> = if a_history.recreated.contains(mailbox) && !b_history.touched.contains(mailbox) {
                current(&a_before) // B's unchanged copy is replaced by A's new incarnation
            } else if incarnations {
                current(&a_before).union(&current(&b_before)).copied().collect()
            } else if a_history.deleted.contains(mailbox) {
                current(&b_before)
            } else {
                expected_ids(mailbox, &ancestor, &a_history, &b_history)
            };
            prop_assert_eq!(got.keys().copied().collect::<BTreeSet<_>>(), expected, "{} messages on B", mailbox);
            for (id, flags) in got {
                let base_flags = ancestor.get(mailbox).and_then(|m| m.get(id)).filter(|_| !incarnations);
                let (a_flags, b_flags) = (a_before.get(mailbox).and_then(|m| m.get(id)), b_before.get(mailbox).and_then(|m| m.get(id)));
                let want = match (base_flags, a_flags, b_flags) {
                    // A's changes win, B keeps the rest.
                    (Some(base), Some(x), Some(y)) => three_way(base, x, y),
                    (_, Some(x), None) | (None, Some(x), Some(_)) => x.clone(),
                    (_, None, Some(y)) => y.clone(),
                    (_, None, None) => unreachable!("message {id} came from nowhere"),
                };
                prop_assert_eq!(flags, &want, "{} message {} flags on B", mailbox, id);
            }
        }
        let again = sync(Mode::OneWay, &mut a, &mut b, Some(state)).expect("second sync");
        prop_assert!(again.is_noop(), "second sync did something: {:?}", again.mailboxes);
    }

    #[test]
    fn two_way_sync_without_state_loses_nothing(
        ancestor_spec in ancestor(),
        a_ops in proptest::collection::vec(op(), 0..8),
        b_ops in proptest::collection::vec(op(), 0..8),
        comparable_guids in any::<bool>(),
    ) {
        let mut a = build(&ancestor_spec, comparable_guids);
        let mut b = a.clone();
        evolve(&mut a, &a_ops, 10_000);
        evolve(&mut b, &b_ops, 20_000);
        let (a_before, b_before) = (view(&a), view(&b));
        let report = sync(Mode::TwoWay, &mut a, &mut b, None).expect("stateless sync");
        let (a_after, b_after) = (view(&a), view(&b));
        prop_assert_eq!(&a_after, &b_after);
        for (mailbox, messages) in a_before.iter().chain(&b_before) {
            for id in messages.keys() {
                prop_assert!(a_after.get(mailbox).is_some_and(|m| m.contains_key(id)), "{mailbox}: message {id} lost");
            }
        }
        let again = sync(Mode::TwoWay, &mut a, &mut b, report.state).expect("second sync");
        prop_assert!(again.is_noop(), "second sync did something: {:?}", again.mailboxes);
    }
}
