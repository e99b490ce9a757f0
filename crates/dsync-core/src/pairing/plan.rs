//! What to do with one mailbox whose two sides cannot share UIDs: pure, from both listings,
//! the pairs the state remembers and (for messages no pair covers) their identities.
//!
//! 1. **Pairs that still hold.** The state's pairs count only for the UIDVALIDITYs they
//!    were made under: a destination with another UIDVALIDITY is unknown ground (nothing
//!    there is ours), a source with another UIDVALIDITY leaves the destination messages
//!    ours but unpaired.
//! 2. **Found again by content.** Messages no pair covers, on both sides, are matched by
//!    Dovecot's header hash, and their size and received date where both sides know them,
//!    in UID order, one for one (two copies need two). This is what keeps a run after a
//!    kill, a lost connection or a lost state from storing a message twice: whatever
//!    reached the destination is found there.
//! 3. **Per mode.** [`PairMode::Backup`]: the destination follows the source; its own
//!    messages (foreign: never copied by us) stay unless `delete_extra`.
//!    [`PairMode::OneWay`]: the source's changes merge into the destination, whose own
//!    changes (flags, expunges, new mail) stay. [`PairMode::TwoWay`]: both merge.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Flags, MailboxContents, MessageMeta, SystemFlags, Uid};
use crate::plan::merge::{MergeMode, merge_flags};
use crate::state::pairs::{MailboxPairs, Pair};

/// How the two sides relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairMode {
    /// The destination becomes the source's copy (`backup`).
    Backup {
        /// Also expunge the destination's own messages (not copied there by us).
        delete_extra: bool,
    },
    /// The source's changes merge into the destination (`sync -1`).
    OneWay,
    /// Both sides merge (`sync`).
    TwoWay,
}

/// What the planner needs to know about messages no pair covers: which UIDs of each side
/// want an identity (header hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpaired {
    /// Source UIDs.
    pub source: Vec<Uid>,
    /// Destination UIDs.
    pub destination: Vec<Uid>,
}

impl Unpaired {
    /// True when matching by content can find something: both sides have unpaired mail.
    pub fn needs_identities(&self) -> bool {
        !self.source.is_empty() && !self.destination.is_empty()
    }
}

/// The plan for one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairPlan {
    /// Source messages to copy to the destination, ascending, with the flags they get.
    pub to_destination: Vec<(Uid, Flags)>,
    /// Destination messages to copy to the source (two-way), ascending, with flags.
    pub to_source: Vec<(Uid, Flags)>,
    /// Destination messages whose flags change.
    pub destination_flags: Vec<(Uid, Flags)>,
    /// Source messages whose flags change (two-way).
    pub source_flags: Vec<(Uid, Flags)>,
    /// Destination messages to expunge.
    pub destination_expunge: Vec<Uid>,
    /// Source messages to expunge (two-way).
    pub source_expunge: Vec<Uid>,
    /// The pairs that hold once the plan is applied, before the copies add theirs.
    pub pairs: BTreeMap<Uid, Pair>,
    /// Of those, pairs found again by content this time.
    pub rematched: u64,
    /// Destination messages that are neither paired nor expunged (foreign mail a backup
    /// keeps).
    pub kept_foreign: u64,
}

impl PairPlan {
    /// True when neither side changes.
    pub fn is_noop(&self) -> bool {
        self.to_destination.is_empty()
            && self.to_source.is_empty()
            && self.destination_flags.is_empty()
            && self.source_flags.is_empty()
            && self.destination_expunge.is_empty()
            && self.source_expunge.is_empty()
    }
}

/// Changes of a [`PairPlan`] that did not (or not yet) happen, each by the UIDs of the
/// side it concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undone {
    /// Source messages whose flag change is undone.
    pub source_flags: BTreeSet<Uid>,
    /// Destination messages whose flag change is undone.
    pub destination_flags: BTreeSet<Uid>,
    /// Source messages not expunged.
    pub source_expunge: BTreeSet<Uid>,
    /// Destination messages not expunged.
    pub destination_expunge: BTreeSet<Uid>,
}

impl Undone {
    /// Every flag change and expunge of `plan` (none applied yet).
    pub fn all(plan: &PairPlan) -> Undone {
        let uids = |list: &[(Uid, Flags)]| list.iter().map(|(uid, _)| *uid).collect();
        Undone {
            source_flags: uids(&plan.source_flags),
            destination_flags: uids(&plan.destination_flags),
            source_expunge: plan.source_expunge.iter().copied().collect(),
            destination_expunge: plan.destination_expunge.iter().copied().collect(),
        }
    }

    /// True when everything was applied.
    pub fn is_empty(&self) -> bool {
        self.source_flags.is_empty()
            && self.destination_flags.is_empty()
            && self.source_expunge.is_empty()
            && self.destination_expunge.is_empty()
    }
}

/// The pairs to remember when the changes in `undone` did not happen: the plan's pairs,
/// except that a pair whose flag change is undone on either side keeps the flags `last`
/// (the state's pairs for the same UIDVALIDITYs) had for it, the flags both sides agreed
/// on, so that the next run sees each side's change again (a pair found by content this
/// run, which has no such flags, is left out: the next run finds it again), and a pair of
/// `last` whose expunge is undone stays, so the next run expunges it again instead of
/// taking the message for new mail.
pub fn pairs_unless_applied(
    plan: &PairPlan,
    last: &BTreeMap<Uid, Pair>,
    undone: &Undone,
) -> BTreeMap<Uid, Pair> {
    let mut pairs = BTreeMap::new();
    for (source, pair) in &plan.pairs {
        let flags_undone = undone.source_flags.contains(source)
            || undone.destination_flags.contains(&pair.destination);
        if !flags_undone {
            pairs.insert(*source, pair.clone());
        } else if let Some(before) = last.get(source).filter(|p| p.destination == pair.destination)
        {
            pairs.insert(
                *source,
                Pair { destination: pair.destination, flags: before.flags.clone() },
            );
        }
    }
    for (source, pair) in last {
        if undone.source_expunge.contains(source)
            || undone.destination_expunge.contains(&pair.destination)
        {
            pairs.insert(*source, pair.clone());
        }
    }
    pairs
}

/// Takes `not_kept` (what a side's mailbox does not keep, PERMANENTFLAGS) out of every
/// pair's flags: it is not part of what both sides had, so the next run does not read its
/// absence on that side as a removal, which would remove it from the side that keeps it.
pub fn forget_not_kept(pairs: &mut BTreeMap<Uid, Pair>, not_kept: &Flags) {
    if not_kept.system == SystemFlags::empty() && not_kept.keywords.is_empty() {
        return;
    }
    for pair in pairs.values_mut() {
        pair.flags.system = pair.flags.system.difference(not_kept.system);
        pair.flags.keywords.retain(|keyword| !not_kept.keywords.contains(keyword));
    }
}

/// A side's messages by UID.
fn by_uid(contents: &MailboxContents) -> BTreeMap<Uid, &MessageMeta> {
    contents.messages.iter().map(|meta| (meta.uid, meta)).collect()
}

/// The state's pairs as far as they hold for the two sides' UIDVALIDITYs: (pairs with
/// both UIDs meaningful, destination UIDs that are ours without a known source).
fn valid_pairs(
    pairs: Option<&MailboxPairs>,
    source: &MailboxContents,
    destination: &MailboxContents,
) -> (BTreeMap<Uid, Pair>, BTreeSet<Uid>) {
    let Some(pairs) = pairs else { return (BTreeMap::new(), BTreeSet::new()) };
    if pairs.destination_uid_validity != destination.status.uid_validity.get() {
        return (BTreeMap::new(), BTreeSet::new());
    }
    if pairs.source_uid_validity != source.status.uid_validity.get() {
        let ours = pairs.pairs.values().map(|pair| pair.destination).collect();
        return (BTreeMap::new(), ours);
    }
    (pairs.pairs.clone(), BTreeSet::new())
}

/// Which messages no valid pair covers (see [`Unpaired`]). `wanted` says which source
/// messages the run is about (message filters, backup only).
pub fn unpaired(
    mode: PairMode,
    source: &MailboxContents,
    destination: &MailboxContents,
    pairs: Option<&MailboxPairs>,
    wanted: &dyn Fn(&MessageMeta) -> bool,
) -> Unpaired {
    let (pairs, _) = valid_pairs(pairs, source, destination);
    let paired_destinations: BTreeSet<Uid> = pairs.values().map(|p| p.destination).collect();
    let source_uids = source
        .messages
        .iter()
        .filter(|m| !pairs.contains_key(&m.uid) && wanted(m))
        .map(|m| m.uid)
        .collect();
    let destination_uids = destination
        .messages
        .iter()
        .filter(|m| !paired_destinations.contains(&m.uid))
        .filter(|m| !matches!(mode, PairMode::Backup { .. }) || wanted(m))
        .map(|m| m.uid)
        .collect();
    Unpaired { source: source_uids, destination: destination_uids }
}

/// Plans one mailbox. `source_ids` and `destination_ids` are the identities (header
/// hashes) of the messages [`unpaired`] named, or empty when it said none are needed.
/// `wanted` is the message filter (a backup's; everything otherwise).
pub fn plan(
    mode: PairMode,
    source: &MailboxContents,
    destination: &MailboxContents,
    pairs: Option<&MailboxPairs>,
    source_ids: &BTreeMap<Uid, String>,
    destination_ids: &BTreeMap<Uid, String>,
    wanted: &dyn Fn(&MessageMeta) -> bool,
) -> PairPlan {
    let (valid, ours_unpaired) = valid_pairs(pairs, source, destination);
    let in_source = by_uid(source);
    let in_destination = by_uid(destination);
    let mut plan = PairPlan::default();
    let mut paired_destinations: BTreeSet<Uid> = BTreeSet::new();
    let mut unpaired_source: Vec<&MessageMeta> = Vec::new();

    // 1. Pairs from the state.
    for (source_uid, pair) in &valid {
        paired_destinations.insert(pair.destination);
        let (a, b) = (in_source.get(source_uid), in_destination.get(&pair.destination));
        match (a, b) {
            (Some(a), Some(b)) => {
                if let PairMode::Backup { .. } = mode
                    && !wanted(a)
                {
                    // Outside the filters: left as it is.
                    plan.pairs.insert(*source_uid, pair.clone());
                    continue;
                }
                let flags = pair_flags(mode, Some(&pair.flags), a, b, &mut plan);
                plan.pairs.insert(*source_uid, Pair { destination: pair.destination, flags });
            }
            (None, Some(b)) => {
                // The source expunged it: so does the destination (within the filters).
                let within = !matches!(mode, PairMode::Backup { .. }) || wanted(b);
                if within {
                    plan.destination_expunge.push(pair.destination);
                } else {
                    plan.pairs.insert(*source_uid, pair.clone());
                }
            }
            (Some(a), None) => match mode {
                // Gone from the destination: a backup puts it back (unpaired: it is
                // copied, unless the destination has it elsewhere under a new UID).
                PairMode::Backup { .. } => {
                    if wanted(a) {
                        unpaired_source.push(a);
                    } else {
                        plan.pairs.insert(*source_uid, pair.clone());
                    }
                }
                // The destination expunged it: that stays, and is remembered so that the
                // message is not copied again.
                PairMode::OneWay => {
                    plan.pairs.insert(*source_uid, pair.clone());
                }
                PairMode::TwoWay => plan.source_expunge.push(*source_uid),
            },
            (None, None) => {}
        }
    }

    // 2. Messages no pair covers, matched by content.
    for meta in &source.messages {
        if valid.contains_key(&meta.uid) {
            continue;
        }
        if let PairMode::Backup { .. } = mode
            && !wanted(meta)
        {
            continue;
        }
        unpaired_source.push(meta);
    }
    unpaired_source.sort_by_key(|meta| meta.uid);
    let mut candidates: BTreeMap<&str, Vec<&MessageMeta>> = BTreeMap::new();
    for meta in &destination.messages {
        if paired_destinations.contains(&meta.uid) {
            continue;
        }
        if let Some(identity) = destination_ids.get(&meta.uid) {
            candidates.entry(identity.as_str()).or_default().push(meta);
        }
    }
    let mut matched_destinations: BTreeSet<Uid> = BTreeSet::new();
    for a in unpaired_source {
        let found = source_ids.get(&a.uid).and_then(|identity| {
            let list = candidates.get_mut(identity.as_str())?;
            let at = list.iter().position(|b| same_message(a, b))?;
            Some(list.remove(at))
        });
        match found {
            Some(b) => {
                matched_destinations.insert(b.uid);
                plan.rematched += 1;
                let flags = pair_flags(mode, None, a, b, &mut plan);
                plan.pairs.insert(a.uid, Pair { destination: b.uid, flags });
            }
            None => plan.to_destination.push((a.uid, a.flags.clone())),
        }
    }

    // 3. The destination's messages nobody paired.
    for meta in &destination.messages {
        if paired_destinations.contains(&meta.uid) || matched_destinations.contains(&meta.uid) {
            continue;
        }
        let ours = ours_unpaired.contains(&meta.uid);
        match mode {
            PairMode::Backup { delete_extra } => {
                if !wanted(meta) {
                    continue;
                }
                if ours || delete_extra {
                    plan.destination_expunge.push(meta.uid);
                } else {
                    plan.kept_foreign += 1;
                }
            }
            PairMode::OneWay => plan.kept_foreign += 1,
            PairMode::TwoWay => plan.to_source.push((meta.uid, meta.flags.clone())),
        }
    }
    plan.destination_expunge.sort_unstable();
    plan.source_expunge.sort_unstable();
    plan
}

/// The flags a pair ends with, and the changes that takes on each side.
fn pair_flags(
    mode: PairMode,
    base: Option<&Flags>,
    a: &MessageMeta,
    b: &MessageMeta,
    plan: &mut PairPlan,
) -> Flags {
    let merged = match mode {
        PairMode::Backup { .. } => a.flags.clone(),
        PairMode::OneWay => merge_flags(MergeMode::OneWay, base, &a.flags, &b.flags),
        PairMode::TwoWay => merge_flags(MergeMode::TwoWay, base, &a.flags, &b.flags),
    };
    if merged != b.flags {
        plan.destination_flags.push((b.uid, merged.clone()));
    }
    if mode == PairMode::TwoWay && merged != a.flags {
        plan.source_flags.push((a.uid, merged.clone()));
    }
    match mode {
        // What A's later changes are measured against.
        PairMode::OneWay => a.flags.clone(),
        _ => merged,
    }
}

/// Two messages with the same identity are the same message when their sizes and their
/// received dates agree wherever both sides know them (a server that rewrites messages
/// on APPEND, or ignores the date it is given, defeats this: the pairs in the state are
/// then what prevents copies).
fn same_message(a: &MessageMeta, b: &MessageMeta) -> bool {
    let agree = |x: Option<i64>, y: Option<i64>| x.zip(y).is_none_or(|(x, y)| x == y);
    let sizes = a.virtual_size.zip(b.virtual_size).is_none_or(|(x, y)| x == y);
    sizes && agree(a.received, b.received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MailboxStatus, UidValidity};

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    fn flags(names: &[&str]) -> Flags {
        Flags::from_imap_names(names.iter().copied())
    }

    fn contents(uid_validity: u32, messages: &[(u32, &[&str], u64)]) -> MailboxContents {
        let messages: Vec<MessageMeta> = messages
            .iter()
            .map(|(n, names, size)| {
                let mut meta = MessageMeta::new(uid(*n), flags(names));
                meta.virtual_size = Some(*size);
                meta.received = Some(1_700_000_000);
                meta
            })
            .collect();
        let uid_next = messages.iter().map(|m| m.uid.get() + 1).max().unwrap_or(1);
        MailboxContents {
            status: MailboxStatus {
                uid_validity: UidValidity::new(uid_validity).expect("non-zero"),
                uid_next: uid(uid_next),
                messages: u32::try_from(messages.len()).expect("few"),
                highest_modseq: None,
                guid: None,
                change_token: None,
                source_uid_validity: None,
            },
            messages,
        }
    }

    fn pairs(validities: (u32, u32), list: &[(u32, u32, &[&str])]) -> MailboxPairs {
        let mut entry = MailboxPairs::new(validities.0, validities.1);
        for (a, b, names) in list {
            entry.pairs.insert(uid(*a), Pair { destination: uid(*b), flags: flags(names) });
        }
        entry
    }

    fn ids(list: &[(u32, &str)]) -> BTreeMap<Uid, String> {
        list.iter().map(|(n, id)| (uid(*n), (*id).to_owned())).collect()
    }

    const BACKUP: PairMode = PairMode::Backup { delete_extra: false };

    #[test]
    fn a_backup_copies_new_mail_follows_flags_and_expunges_only_its_own() {
        let source = contents(7, &[(1, &["\\Seen"], 10), (3, &["\\Flagged"], 30), (4, &[], 40)]);
        // B: 11 pairs with 1, 12 paired with source 2 (expunged there), 13 foreign.
        let destination = contents(90, &[(11, &[], 10), (12, &[], 20), (13, &[], 99)]);
        let state = pairs((7, 90), &[(1, 11, &[]), (2, 12, &[])]);
        let all = |_: &MessageMeta| true;
        let needed = unpaired(BACKUP, &source, &destination, Some(&state), &all);
        assert_eq!(needed.source, [uid(3), uid(4)]);
        assert_eq!(needed.destination, [uid(13)]);
        let plan = plan(
            BACKUP,
            &source,
            &destination,
            Some(&state),
            &ids(&[(3, "h3"), (4, "h4")]),
            &ids(&[(13, "hx")]),
            &all,
        );
        assert_eq!(plan.to_destination, [(uid(3), flags(&["\\Flagged"])), (uid(4), flags(&[]))]);
        assert_eq!(plan.destination_flags, [(uid(11), flags(&["\\Seen"]))]);
        assert_eq!(plan.destination_expunge, [uid(12)], "ours, expunged on the source");
        assert_eq!(plan.kept_foreign, 1, "13 is not ours: kept");
        let with_consent = super::plan(
            PairMode::Backup { delete_extra: true },
            &source,
            &destination,
            Some(&state),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &all,
        );
        assert_eq!(with_consent.destination_expunge, [uid(12), uid(13)]);
    }

    #[test]
    fn without_state_every_message_is_found_again_by_content_once() {
        // Two copies of one message in the source; the destination holds one of them
        // (a run was killed after it) and a different message with the same header hash
        // but another size.
        let source = contents(7, &[(1, &["\\Seen"], 10), (2, &[], 10), (3, &[], 30)]);
        let destination = contents(90, &[(5, &[], 10), (6, &[], 31)]);
        let all = |_: &MessageMeta| true;
        let needed = unpaired(BACKUP, &source, &destination, None, &all);
        assert!(needed.needs_identities());
        let plan = plan(
            BACKUP,
            &source,
            &destination,
            None,
            &ids(&[(1, "same"), (2, "same"), (3, "other")]),
            &ids(&[(5, "same"), (6, "other")]),
            &all,
        );
        assert_eq!(plan.rematched, 1);
        assert_eq!(plan.pairs.get(&uid(1)).map(|p| p.destination), Some(uid(5)));
        assert_eq!(plan.destination_flags, [(uid(5), flags(&["\\Seen"]))]);
        let copied: Vec<Uid> = plan.to_destination.iter().map(|(u, _)| *u).collect();
        assert_eq!(copied, [uid(2), uid(3)], "the second copy and the resized one are copied");
        assert_eq!(plan.kept_foreign, 1, "6 differs in size: not the source's message 3");
    }

    #[test]
    fn changed_uidvalidities_void_the_pairs_as_far_as_they_go() {
        let source = contents(8, &[(1, &[], 10)]);
        let destination = contents(90, &[(11, &[], 10), (12, &[], 20)]);
        let state = pairs((7, 90), &[(1, 11, &[]), (2, 12, &[])]);
        let all = |_: &MessageMeta| true;
        // A new source incarnation: 11 and 12 are still ours; 11 is found again, 12 goes.
        let plan = plan(
            BACKUP,
            &source,
            &destination,
            Some(&state),
            &ids(&[(1, "h1")]),
            &ids(&[(11, "h1"), (12, "h2")]),
            &all,
        );
        assert_eq!(plan.pairs.get(&uid(1)).map(|p| p.destination), Some(uid(11)));
        assert_eq!(plan.destination_expunge, [uid(12)]);
        // A new destination incarnation: nothing there is ours any more.
        let fresh = contents(91, &[(1, &[], 20)]);
        let plan = super::plan(
            BACKUP,
            &source,
            &fresh,
            Some(&state),
            &ids(&[(1, "h1")]),
            &ids(&[(1, "h2")]),
            &all,
        );
        assert!(plan.destination_expunge.is_empty());
        assert_eq!(plan.kept_foreign, 1);
        assert_eq!(plan.to_destination.len(), 1);
    }

    #[test]
    fn one_way_keeps_the_destinations_changes_and_two_way_merges_both() {
        let source = contents(7, &[(1, &["\\Seen"], 10), (2, &[], 20), (4, &[], 40)]);
        let destination = contents(90, &[(11, &["\\Flagged"], 10), (13, &[], 30)]);
        // 2 ↔ 12 was expunged on the destination; 3 ↔ 13 expunged on the source.
        let state = pairs((7, 90), &[(1, 11, &[]), (2, 12, &[]), (3, 13, &[])]);
        let all = |_: &MessageMeta| true;
        let none = BTreeMap::new();
        let one_way =
            plan(PairMode::OneWay, &source, &destination, Some(&state), &none, &none, &all);
        assert_eq!(one_way.destination_flags, [(uid(11), flags(&["\\Seen", "\\Flagged"]))]);
        assert_eq!(one_way.destination_expunge, [uid(13)]);
        assert!(one_way.pairs.contains_key(&uid(2)), "the destination's expunge is remembered");
        assert_eq!(one_way.to_destination, [(uid(4), flags(&[]))]);
        assert!(one_way.source_flags.is_empty() && one_way.source_expunge.is_empty());

        let two_way =
            plan(PairMode::TwoWay, &source, &destination, Some(&state), &none, &none, &all);
        assert_eq!(two_way.source_flags, [(uid(1), flags(&["\\Seen", "\\Flagged"]))]);
        assert_eq!(two_way.source_expunge, [uid(2)]);
        assert_eq!(two_way.destination_expunge, [uid(13)]);
        assert_eq!(two_way.to_destination, [(uid(4), flags(&[]))]);
        let new_on_destination = contents(90, &[(11, &[], 10), (14, &["\\Seen"], 5)]);
        let two_way =
            plan(PairMode::TwoWay, &source, &new_on_destination, Some(&state), &none, &none, &all);
        assert_eq!(two_way.to_source, [(uid(14), flags(&["\\Seen"]))]);
    }

    #[test]
    fn changes_left_undone_keep_the_last_runs_flags_and_pending_expunges() {
        // 1 ↔ 11: A set \Seen, B set \Flagged; 2 ↔ 12: B expunged it; 3 ↔ 13: A expunged
        // it; 4 and 14 found by content with different flags.
        let source = contents(7, &[(1, &["\\Seen"], 10), (2, &[], 20), (4, &["\\Seen"], 40)]);
        let destination = contents(90, &[(11, &["\\Flagged"], 10), (13, &[], 30), (14, &[], 40)]);
        let state = pairs((7, 90), &[(1, 11, &[]), (2, 12, &[]), (3, 13, &[])]);
        let all = |_: &MessageMeta| true;
        let plan = plan(
            PairMode::TwoWay,
            &source,
            &destination,
            Some(&state),
            &ids(&[(4, "h4")]),
            &ids(&[(14, "h4")]),
            &all,
        );
        let both = flags(&["\\Seen", "\\Flagged"]);
        assert_eq!(
            plan.destination_flags,
            [(uid(11), both.clone()), (uid(14), flags(&["\\Seen"]))]
        );
        // Nothing applied yet: the last run's flags, the pending expunges, no new match.
        let before = pairs_unless_applied(&plan, &state.pairs, &Undone::all(&plan));
        assert_eq!(before, state.pairs, "exactly the last run's pairs");
        // All applied.
        let done = pairs_unless_applied(&plan, &state.pairs, &Undone::default());
        assert_eq!(done, plan.pairs);
        assert_eq!(done[&uid(1)].flags, both);
        assert!(!done.contains_key(&uid(2)) && !done.contains_key(&uid(3)));
        // A client changed 11 meanwhile, and 13's expunge was withheld.
        let undone = Undone {
            destination_flags: [uid(11)].into(),
            destination_expunge: [uid(13)].into(),
            ..Undone::default()
        };
        let left = pairs_unless_applied(&plan, &state.pairs, &undone);
        assert_eq!(left[&uid(1)].flags, flags(&[]), "the base both sides agreed on");
        assert_eq!(left[&uid(3)].destination, uid(13), "expunged again next time");
        assert_eq!(left[&uid(4)].destination, uid(14));
        assert!(!left.contains_key(&uid(2)));
    }

    #[test]
    fn what_a_side_does_not_keep_never_reads_as_a_removal() {
        // B keeps no keywords: $Label1 went to B as nothing. Remembered as part of both
        // sides' flags, B's lack of it would remove it from A at the next run.
        let mut remembered = pairs((7, 90), &[(1, 11, &["\\Seen", "$Label1"])]).pairs;
        forget_not_kept(&mut remembered, &flags(&["$Label1"]));
        let source = contents(7, &[(1, &["\\Seen", "$Label1"], 10)]);
        let destination = contents(90, &[(11, &["\\Seen"], 10)]);
        let mut state = MailboxPairs::new(7, 90);
        state.pairs = remembered;
        let none = BTreeMap::new();
        let all = |_: &MessageMeta| true;
        let plan = plan(PairMode::TwoWay, &source, &destination, Some(&state), &none, &none, &all);
        assert!(plan.source_flags.is_empty(), "A keeps $Label1: {plan:?}");
    }

    #[test]
    fn a_filtered_backup_leaves_what_is_outside_alone() {
        let source = contents(7, &[(1, &[], 10), (2, &[], 500)]);
        let destination = contents(90, &[(11, &["\\Seen"], 10), (12, &[], 500), (13, &[], 600)]);
        let state = pairs((7, 90), &[(1, 11, &[]), (2, 12, &[]), (3, 13, &[])]);
        let small = |meta: &MessageMeta| meta.virtual_size.is_some_and(|size| size < 100);
        let plan = plan(
            PairMode::Backup { delete_extra: true },
            &source,
            &destination,
            Some(&state),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &small,
        );
        assert_eq!(plan.destination_flags, [(uid(11), flags(&[]))]);
        assert!(plan.destination_expunge.is_empty(), "{plan:?}");
        assert!(plan.to_destination.is_empty());
        assert_eq!(plan.pairs.len(), 3);
    }
}
