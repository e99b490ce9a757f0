//! Merge planning for `sync` (two-way) and `sync -1` (one-way): the rules of Dovecot's
//! `dsync-mailbox-import.c`, computed once for both sides.
//!
//! 1. **UIDVALIDITY.** If the sides differ, the one with more messages keeps its value
//!    (equal counts: the higher value); the other side adopts it. In one-way mode the
//!    destination adopts the source's. Saved state for the mailbox is then void.
//! 2. **What was in common.** With valid saved state, the UIDs both sides held after the last
//!    sync; otherwise the prefix where both sides hold the same UIDs with the same identity
//!    (GUID, else header hash). A common message that one side now lacks was expunged there,
//!    and is expunged on the other side. Without state nothing is treated as expunged: a
//!    message is never lost, at worst it comes back. (Dovecot keeps only a
//!    `last_common_uid`; a set is needed because after a one-way run the destination holds
//!    mail of its own below that point.)
//! 3. **New mail** (above the common point) is linked across sides by identity. Each keeps
//!    its UID where the other side can still take it (UID ≥ that side's UIDNEXT); a linked
//!    pair uses whichever of its UIDs is usable; everything else gets a fresh UID from
//!    max(UIDNEXT of both sides) upward, and the side holding it at the old UID moves it.
//!    So both sides end with the same UIDs for the same messages.
//! 4. **Flags** of a message on both sides are merged three-way against the flags saved at
//!    the last sync (per flag: whichever side changed it wins; both sides changing a flag
//!    always agree). Without saved flags: the union in two-way mode, the source's flags in
//!    one-way mode.
//! 5. **UIDNEXT** ends at max(both UIDNEXTs, highest final UID + 1).
//!
//! In one-way mode only side B (the destination) is written and nothing B did is reverted:
//! B's own messages stay at their UIDs, B's expunges are not undone.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::MessageHistory;
use crate::model::{Flags, MailboxContents, MessageMeta, SystemFlags, Uid, UidValidity};
use crate::plan::effective_uid_next;
use crate::state::MergeBase;

/// Which sides a merge may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Both sides are written (`sync`).
    TwoWay,
    /// Only side B is written (`sync -1`).
    OneWay,
}

/// One side of a mailbox as the merge sees it.
#[derive(Debug, Clone, Copy)]
pub struct MergeView<'a> {
    /// Status and messages.
    pub contents: &'a MailboxContents,
    /// Identity per UID: a GUID or a header hash, the same kind on both sides. Empty when
    /// no identity is known; then equal UIDs are trusted to be the same message.
    pub identities: &'a BTreeMap<Uid, String>,
    /// This side's own history of the mailbox (Dovecot's index log,
    /// [`crate::Storage::message_history`]); `None` when the side keeps none. Used only
    /// without a saved base and while it belongs to the side's current UIDVALIDITY: a
    /// message the other side still has at a UID expunged here was expunged here, not
    /// never delivered; of a message whose flags differ, the side whose history changed
    /// them later wins (Dovecot's dsync decides by modseqs).
    pub history: Option<&'a MessageHistory>,
}

/// Where the body of a message to save comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The other side, at this UID.
    OtherSide(Uid),
    /// This side itself, at this (old) UID: a move to a new UID.
    SameSide(Uid),
}

/// A message to save on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSave {
    /// Its metadata, with the final UID and the merged flags.
    pub meta: MessageMeta,
    /// Where its body is read from.
    pub origin: Origin,
}

/// Changes for one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidePlan {
    /// A new UIDVALIDITY for this side (it loses the conflict).
    pub set_uid_validity: Option<UidValidity>,
    /// UIDs to expunge (expunged on the other side, or moved away), after the saves.
    pub expunge: Vec<Uid>,
    /// New flags for messages that stay where they are.
    pub set_flags: Vec<(Uid, Flags)>,
    /// Messages to save, ascending by UID.
    pub save: Vec<MergeSave>,
    /// UIDNEXT to reach.
    pub uid_next: Option<Uid>,
}

impl SidePlan {
    /// True when this side needs no change.
    pub fn is_empty(&self) -> bool {
        *self == SidePlan::default()
    }
}

/// The plan for both sides of one mailbox, and the state to remember afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// Changes for side A (always empty in one-way mode).
    pub a: SidePlan,
    /// Changes for side B.
    pub b: SidePlan,
    /// What both sides will hold in common once the plan is applied.
    pub next_base: MergeBase,
    /// Messages copied to a side whose UIDNEXT is above their UID although neither a saved
    /// base nor that side's history tells whether it expunged them: if it did, they come
    /// back. The run warns about them.
    pub unproven: usize,
}

/// One message instance on one side.
#[derive(Debug, Clone, Copy)]
struct Instance<'a> {
    meta: &'a MessageMeta,
    identity: Option<&'a str>,
}

/// Plans the merge of one mailbox.
pub fn plan_merge(
    mode: MergeMode,
    a: MergeView<'_>,
    b: MergeView<'_>,
    base: Option<&MergeBase>,
) -> MergePlan {
    let mut plan = MergePlan {
        a: SidePlan::default(),
        b: SidePlan::default(),
        next_base: MergeBase::default(),
        unproven: 0,
    };
    let (a_validity, b_validity) = (a.contents.status.uid_validity, b.contents.status.uid_validity);
    let winner = if a_validity == b_validity {
        a_validity
    } else {
        let (a_count, b_count) = (a.contents.messages.len(), b.contents.messages.len());
        let a_wins = mode == MergeMode::OneWay
            || a_count > b_count
            || (a_count == b_count && a_validity > b_validity);
        if a_wins {
            plan.b.set_uid_validity = Some(a_validity);
            a_validity
        } else {
            plan.a.set_uid_validity = Some(b_validity);
            b_validity
        }
    };
    // Saved state only counts while both sides still have the UIDVALIDITY it was made with
    // (and once its records are read: [`MergeBase::read`]).
    let base = base
        .filter(|base| a_validity == b_validity && base.uid_validity == a_validity.get())
        .and_then(|base| base.flags.decoded());
    plan.next_base.uid_validity = winner.get();

    let a_side = instances(a);
    let b_side = instances(b);
    let trust_uids = a.identities.is_empty() && b.identities.is_empty() && a_validity == b_validity;
    let same = |x: &Instance<'_>, y: &Instance<'_>| match (x.identity, y.identity) {
        (Some(p), Some(q)) => p == q,
        _ => trust_uids,
    };
    let was_common: BTreeSet<Uid> = match base {
        Some(base) => base.keys().copied().collect(),
        None if a_validity != b_validity => BTreeSet::new(),
        None => identical_prefix(&a_side, &b_side, &same),
    };

    // Messages that were common stay where both sides still have them; one that a side
    // lacks was expunged there.
    let mut kept: Vec<(Uid, Instance<'_>, Instance<'_>)> = Vec::new();
    let mut common: BTreeMap<Uid, Flags> = BTreeMap::new();
    for uid in &was_common {
        match (a_side.get(uid), b_side.get(uid)) {
            (Some(a_message), Some(b_message)) => kept.push((*uid, *a_message, *b_message)),
            (Some(_), None) if mode == MergeMode::TwoWay => plan.a.expunge.push(*uid),
            (Some(a_message), None) => {
                // One-way: B's own expunge stays; remember it so it is not copied back.
                common.insert(*uid, a_message.meta.flags.clone());
            }
            (None, Some(_)) => plan.b.expunge.push(*uid),
            (None, None) => {}
        }
    }

    // Everything else is new mail: link by identity, then assign UIDs.
    let a_new: Vec<Instance<'_>> =
        a_side.iter().filter(|(uid, _)| !was_common.contains(*uid)).map(|(_, i)| *i).collect();
    let b_new: Vec<Instance<'_>> =
        b_side.iter().filter(|(uid, _)| !was_common.contains(*uid)).map(|(_, i)| *i).collect();
    let groups = link(&a_new, &b_new, trust_uids);
    // Without a base, a side's own history tells its expunges from mail it never had.
    let history_applies = base.is_none() && a_validity == b_validity;
    let expunged_on = |view: &MergeView<'_>, uid: Uid| {
        history_of(view, history_applies).is_some_and(|h| h.expunged.contains(&uid))
    };
    let unproven = |view: &MergeView<'_>, uid: Uid| {
        base.is_none() && history_of(view, true).is_none() && uid < view.contents.status.uid_next
    };
    let flags_of = |uid: Uid, a_flags: &Flags, b_flags: &Flags, base_flags: Option<&Flags>| {
        match later_flag_change(a, b, uid, history_applies) {
            Some(true) => a_flags.clone(),
            Some(false) => b_flags.clone(),
            None => merge_flags(mode, base_flags, a_flags, b_flags),
        }
    };
    let a_uid_next = effective_uid_next(a.contents);
    let b_uid_next = effective_uid_next(b.contents);
    let mut next_free = a_uid_next.max(b_uid_next).get();
    // What to remember as A's flags: the merged ones when A is written, else A's own.
    let remembered = |merged: &Flags, a_flags: &Flags| match mode {
        MergeMode::TwoWay => merged.clone(),
        MergeMode::OneWay => a_flags.clone(),
    };

    for (uid, a_message, b_message) in kept {
        let base_flags = base.and_then(|base| base.get(&uid));
        let flags = flags_of(uid, &a_message.meta.flags, &b_message.meta.flags, base_flags);
        update_flags(&mut plan, mode, uid, a_message, b_message, &flags);
        common.insert(uid, remembered(&flags, &a_message.meta.flags));
    }
    for group in groups {
        match group {
            Group::Both(a_message, b_message) => {
                let (ua, ub) = (a_message.meta.uid, b_message.meta.uid);
                let flags = if ua == ub {
                    flags_of(ua, &a_message.meta.flags, &b_message.meta.flags, None)
                } else {
                    merge_flags(mode, None, &a_message.meta.flags, &b_message.meta.flags)
                };
                if ua == ub {
                    update_flags(&mut plan, mode, ua, a_message, b_message, &flags);
                    common.insert(ua, remembered(&flags, &a_message.meta.flags));
                    continue;
                }
                if mode == MergeMode::OneWay {
                    // B keeps its copy where it is; A is not written.
                    if b_message.meta.flags != flags {
                        plan.b.set_flags.push((ub, flags.clone()));
                    }
                    continue;
                }
                let final_uid = if ua >= b_uid_next {
                    ua
                } else if ub >= a_uid_next {
                    ub
                } else {
                    take(&mut next_free)
                };
                if final_uid != ua {
                    plan.a.save.push(save(a_message, final_uid, &flags, Origin::SameSide(ua)));
                    plan.a.expunge.push(ua);
                } else if a_message.meta.flags != flags {
                    plan.a.set_flags.push((ua, flags.clone()));
                }
                if final_uid != ub {
                    plan.b.save.push(save(b_message, final_uid, &flags, Origin::SameSide(ub)));
                    plan.b.expunge.push(ub);
                } else if b_message.meta.flags != flags {
                    plan.b.set_flags.push((ub, flags.clone()));
                }
                common.insert(final_uid, flags);
            }
            Group::OnlyA(a_message) => {
                let ua = a_message.meta.uid;
                if history_applies && expunged_on(&b, ua) {
                    // B expunged it: two-way, the expunge travels; one-way, it stays B's.
                    if mode == MergeMode::TwoWay {
                        plan.a.expunge.push(ua);
                    } else {
                        common.insert(ua, a_message.meta.flags.clone()); // not copied back later
                    }
                    continue;
                }
                plan.unproven += usize::from(unproven(&b, ua));
                let flags = a_message.meta.flags.clone();
                let final_uid = if ua >= b_uid_next { ua } else { take(&mut next_free) };
                plan.b.save.push(save(a_message, final_uid, &flags, Origin::OtherSide(ua)));
                if final_uid != ua && mode == MergeMode::TwoWay {
                    plan.a.save.push(save(a_message, final_uid, &flags, Origin::SameSide(ua)));
                    plan.a.expunge.push(ua);
                }
                if mode == MergeMode::TwoWay || final_uid == ua {
                    common.insert(final_uid, flags);
                }
            }
            Group::OnlyB(b_message) => {
                let ub = b_message.meta.uid;
                if history_applies && expunged_on(&a, ub) {
                    plan.b.expunge.push(ub); // A expunged it: the expunge travels
                    continue;
                }
                if mode == MergeMode::OneWay {
                    continue; // a destination-only message: kept, not copied back
                }
                plan.unproven += usize::from(unproven(&a, ub));
                let flags = b_message.meta.flags.clone();
                let final_uid = if ub >= a_uid_next { ub } else { take(&mut next_free) };
                plan.a.save.push(save(b_message, final_uid, &flags, Origin::OtherSide(ub)));
                if final_uid != ub {
                    plan.b.save.push(save(b_message, final_uid, &flags, Origin::SameSide(ub)));
                    plan.b.expunge.push(ub);
                }
                common.insert(final_uid, flags);
            }
        }
    }

    let highest = common.keys().next_back().map_or(0, |uid| uid.get());
    let highest = highest.max(b_uid_next.get() - 1).max(a_uid_next.get() - 1);
    let target = a_uid_next.max(b_uid_next).get().max(next_free).max(highest.saturating_add(1));
    let target = uid(target);
    if mode == MergeMode::TwoWay && target > a_uid_next {
        plan.a.uid_next = Some(target);
    }
    if target > b_uid_next {
        plan.b.uid_next = Some(target);
    }
    for side in [&mut plan.a, &mut plan.b] {
        side.save.sort_by_key(|s| s.meta.uid);
        side.expunge.sort();
        side.expunge.dedup();
    }
    plan.next_base.last_common_uid = target.get() - 1;
    plan.next_base.flags = common.into();
    plan
}

/// A side's history, when `applies` and it belongs to the side's UIDVALIDITY.
fn history_of<'a>(view: &MergeView<'a>, applies: bool) -> Option<&'a MessageHistory> {
    let current = Some(view.contents.status.uid_validity);
    view.history.filter(|history| applies && history.uid_validity == current)
}

/// Which side changed the flags of `uid` later by both sides' histories: `Some(true)` A,
/// `Some(false)` B, `None` when a side has no history or neither is later.
fn later_flag_change(a: MergeView<'_>, b: MergeView<'_>, uid: Uid, applies: bool) -> Option<bool> {
    let (a_history, b_history) = (history_of(&a, applies)?, history_of(&b, applies)?);
    let (a_change, b_change) = (a_history.flag_changes.get(&uid), b_history.flag_changes.get(&uid));
    match a_change.cmp(&b_change) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    }
}

fn instances(side: MergeView<'_>) -> BTreeMap<Uid, Instance<'_>> {
    side.contents
        .messages
        .iter()
        .map(|meta| {
            (
                meta.uid,
                Instance { meta, identity: side.identities.get(&meta.uid).map(String::as_str) },
            )
        })
        .collect()
}

/// The UIDs of the prefix in which both sides hold the same messages under the same UIDs.
fn identical_prefix(
    a: &BTreeMap<Uid, Instance<'_>>,
    b: &BTreeMap<Uid, Instance<'_>>,
    same: &dyn Fn(&Instance<'_>, &Instance<'_>) -> bool,
) -> BTreeSet<Uid> {
    let mut common = BTreeSet::new();
    for ((ua, x), (ub, y)) in a.iter().zip(b) {
        if ua != ub || !same(x, y) {
            break;
        }
        common.insert(*ua);
    }
    common
}

enum Group<'a> {
    Both(Instance<'a>, Instance<'a>),
    OnlyA(Instance<'a>),
    OnlyB(Instance<'a>),
}

/// Pairs new messages across sides: equal identities in UID order; without identities,
/// equal UIDs (when UIDs are trusted). Groups come out ordered by their lowest UID.
fn link<'a>(a: &[Instance<'a>], b: &[Instance<'a>], trust_uids: bool) -> Vec<Group<'a>> {
    let mut b_by_identity: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, instance) in b.iter().enumerate().rev() {
        if let Some(identity) = instance.identity {
            b_by_identity.entry(identity).or_default().push(index);
        }
    }
    let b_by_uid: BTreeMap<Uid, usize> =
        b.iter().enumerate().map(|(i, m)| (m.meta.uid, i)).collect();
    let mut b_taken = BTreeSet::new();
    let mut groups = Vec::new();
    for instance in a {
        let partner = match instance.identity {
            Some(identity) => b_by_identity.get_mut(identity).and_then(Vec::pop),
            None if trust_uids => b_by_uid.get(&instance.meta.uid).copied(),
            None => None,
        };
        match partner {
            Some(index) => {
                b_taken.insert(index);
                groups.push(Group::Both(*instance, b[index]));
            }
            None => groups.push(Group::OnlyA(*instance)),
        }
    }
    groups.extend(
        b.iter().enumerate().filter(|(i, _)| !b_taken.contains(i)).map(|(_, m)| Group::OnlyB(*m)),
    );
    groups.sort_by_key(|group| match group {
        Group::Both(x, y) => x.meta.uid.min(y.meta.uid),
        Group::OnlyA(x) | Group::OnlyB(x) => x.meta.uid,
    });
    groups
}

/// Three-way flag merge against `base`, A's flags at the last sync: a flag A changed since
/// takes A's value, any other flag B's. (B cannot have changed it differently: in two-way
/// mode both sides had the base flags; in one-way mode A's change is meant to win.)
/// Without a base: the union (two-way) or A's flags (one-way).
pub fn merge_flags(mode: MergeMode, base: Option<&Flags>, a: &Flags, b: &Flags) -> Flags {
    let Some(base) = base else {
        return match mode {
            MergeMode::TwoWay => Flags {
                system: a.system.union(b.system),
                keywords: a.keywords.union(&b.keywords).cloned().collect(),
            },
            MergeMode::OneWay => a.clone(),
        };
    };
    // Per flag: if A changed it relative to the base, A's value; else B's.
    let changed_by_a = SystemFlags::from_bits_truncate(a.system.bits() ^ base.system.bits());
    let system = SystemFlags::from_bits_truncate(
        (a.system.bits() & changed_by_a.bits()) | (b.system.bits() & !changed_by_a.bits()),
    );
    let all: BTreeSet<&String> =
        a.keywords.iter().chain(&b.keywords).chain(&base.keywords).collect();
    let keywords = all
        .into_iter()
        .filter(|k| {
            let (in_a, in_b, in_base) =
                (a.keywords.contains(*k), b.keywords.contains(*k), base.keywords.contains(*k));
            if in_a == in_base { in_b } else { in_a }
        })
        .cloned()
        .collect();
    Flags { system, keywords }
}

fn update_flags(
    plan: &mut MergePlan,
    mode: MergeMode,
    uid: Uid,
    a: Instance<'_>,
    b: Instance<'_>,
    flags: &Flags,
) {
    if mode == MergeMode::TwoWay && a.meta.flags != *flags {
        plan.a.set_flags.push((uid, flags.clone()));
    }
    if b.meta.flags != *flags {
        plan.b.set_flags.push((uid, flags.clone()));
    }
}

fn save(instance: Instance<'_>, final_uid: Uid, flags: &Flags, origin: Origin) -> MergeSave {
    let mut meta = instance.meta.clone();
    meta.uid = final_uid;
    meta.flags = flags.clone();
    MergeSave { meta, origin }
}

fn take(next_free: &mut u32) -> Uid {
    let taken = uid(*next_free);
    *next_free = next_free.saturating_add(1);
    taken
}

fn uid(value: u32) -> Uid {
    Uid::new(value.max(1)).unwrap_or(Uid::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MailboxStatus;

    const SEEN: SystemFlags = SystemFlags::SEEN;
    const FLAGGED: SystemFlags = SystemFlags::FLAGGED;
    const NONE: SystemFlags = SystemFlags::empty();

    struct TestMailbox {
        contents: MailboxContents,
        identities: BTreeMap<Uid, String>,
    }

    fn side(
        uid_validity: u32,
        uid_next: u32,
        messages: &[(u32, &str, SystemFlags)],
    ) -> TestMailbox {
        let metas = messages
            .iter()
            .map(|&(n, _, system)| {
                MessageMeta::new(uid(n), Flags { system, keywords: BTreeSet::new() })
            })
            .collect();
        TestMailbox {
            contents: MailboxContents {
                status: MailboxStatus {
                    uid_validity: UidValidity::new(uid_validity).expect("non-zero"),
                    uid_next: uid(uid_next),
                    messages: u32::try_from(messages.len()).expect("small"),
                    highest_modseq: None,
                    guid: None,
                    change_token: None,
                    source_uid_validity: None,
                },
                messages: metas,
            },
            identities: messages.iter().map(|&(n, id, _)| (uid(n), id.to_owned())).collect(),
        }
    }

    fn view(side: &TestMailbox) -> MergeView<'_> {
        MergeView { contents: &side.contents, identities: &side.identities, history: None }
    }

    fn merge(
        mode: MergeMode,
        a: &TestMailbox,
        b: &TestMailbox,
        base: Option<&MergeBase>,
    ) -> MergePlan {
        plan_merge(mode, view(a), view(b), base)
    }

    fn saves(plan: &SidePlan) -> Vec<(u32, Origin)> {
        plan.save.iter().map(|s| (s.meta.uid.get(), s.origin)).collect()
    }

    fn uids(list: &[Uid]) -> Vec<u32> {
        list.iter().map(|u| u.get()).collect()
    }

    #[test]
    fn identical_sides_need_nothing() {
        let a = side(7, 4, &[(1, "x", SEEN), (3, "y", NONE)]);
        let plan = merge(MergeMode::TwoWay, &a, &a, None);
        assert!(plan.a.is_empty() && plan.b.is_empty(), "{plan:?}");
        assert_eq!(
            plan.next_base
                .flags
                .decoded()
                .expect("decoded")
                .keys()
                .copied()
                .map(Uid::get)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(plan.next_base.last_common_uid, 3);
    }

    #[test]
    fn new_mail_on_both_sides_at_the_same_uid_gets_fresh_uids_on_both() {
        // Dovecot (run): remote UID 6 != local UID 6 -> both get new UIDs >= max(UIDNEXT).
        let a = side(7, 5, &[(1, "x", NONE), (4, "from-a", SEEN)]);
        let b = side(7, 5, &[(1, "x", NONE), (4, "from-b", NONE)]);
        let plan = merge(MergeMode::TwoWay, &a, &b, None);
        assert_eq!(saves(&plan.a), [(5, Origin::SameSide(uid(4))), (6, Origin::OtherSide(uid(4)))]);
        assert_eq!(saves(&plan.b), [(5, Origin::OtherSide(uid(4))), (6, Origin::SameSide(uid(4)))]);
        assert_eq!((uids(&plan.a.expunge), uids(&plan.b.expunge)), (vec![4], vec![4]));
        assert_eq!((plan.a.uid_next, plan.b.uid_next), (Some(uid(7)), Some(uid(7))));
    }

    #[test]
    fn usable_uids_are_kept_and_linked_copies_are_not_duplicated() {
        let a = side(7, 10, &[(1, "x", NONE), (9, "new-a", NONE)]);
        let b = side(7, 3, &[(1, "x", NONE), (2, "new-b", NONE)]);
        let plan = merge(MergeMode::TwoWay, &a, &b, None);
        // A's 9 is usable on B (>= 3); B's 2 is not usable on A (< 10): it moves to 10.
        assert_eq!(
            saves(&plan.b),
            [(9, Origin::OtherSide(uid(9))), (10, Origin::SameSide(uid(2)))]
        );
        assert_eq!(saves(&plan.a), [(10, Origin::OtherSide(uid(2)))]);
        // The same message at different UIDs on the two sides is linked, not copied twice.
        let a = side(7, 10, &[(9, "same", NONE)]);
        let b = side(7, 3, &[(2, "same", SEEN)]);
        let plan = merge(MergeMode::TwoWay, &a, &b, None);
        assert_eq!(saves(&plan.b), [(9, Origin::SameSide(uid(2)))]);
        assert_eq!(uids(&plan.b.expunge), [2]);
        assert!(plan.a.save.is_empty());
        assert_eq!(plan.a.set_flags, [(uid(9), Flags { system: SEEN, keywords: BTreeSet::new() })]);
    }

    #[test]
    fn with_a_base_expunges_and_flag_changes_travel_both_ways() {
        let base = MergeBase {
            uid_validity: 7,
            last_common_uid: 4,
            flags: [1, 2, 3, 4].into_iter().map(|n| (uid(n), Flags::default())).collect(),
        };
        // A expunged 2 and flagged 3; B expunged 4 and marked 3 seen.
        let a = side(7, 5, &[(1, "w", NONE), (3, "y", FLAGGED), (4, "z", NONE)]);
        let b = side(7, 5, &[(1, "w", NONE), (2, "x", NONE), (3, "y", SEEN)]);
        let plan = merge(MergeMode::TwoWay, &a, &b, Some(&base));
        assert_eq!((uids(&plan.a.expunge), uids(&plan.b.expunge)), (vec![4], vec![2]));
        let both = Flags { system: SEEN.union(FLAGGED), keywords: BTreeSet::new() };
        assert_eq!(plan.a.set_flags, [(uid(3), both.clone())]);
        assert_eq!(plan.b.set_flags, [(uid(3), both)]);
        assert!(plan.a.save.is_empty() && plan.b.save.is_empty());
    }

    #[test]
    fn without_a_base_nothing_is_lost() {
        let a = side(7, 5, &[(1, "w", NONE), (3, "y", NONE)]);
        let b = side(7, 5, &[(1, "w", NONE), (2, "x", NONE), (3, "y", NONE)]);
        let plan = merge(MergeMode::TwoWay, &a, &b, None);
        // Without state A's lack of 2 could be an expunge or B's new mail: it is kept, under a
        // UID both sides can use (B moves it from 2 to 5).
        assert!(plan.a.expunge.is_empty());
        assert_eq!(saves(&plan.a), [(5, Origin::OtherSide(uid(2)))]);
        assert_eq!(saves(&plan.b), [(5, Origin::SameSide(uid(2)))]);
        assert_eq!(uids(&plan.b.expunge), [2], "only the moved original");
    }

    #[test]
    fn one_way_keeps_destination_changes_and_its_own_mail_across_runs() {
        // After a backup both had 1..3; then A got 4 and B (already in use) got 4 and 5.
        let base = MergeBase {
            uid_validity: 7,
            last_common_uid: 3,
            flags: [1, 2, 3].into_iter().map(|n| (uid(n), Flags::default())).collect(),
        };
        let a = side(7, 5, &[(1, "a", NONE), (2, "b", NONE), (3, "c", NONE), (4, "a-new", NONE)]);
        // B expunged 2 and flagged 1.
        let b = side(
            7,
            6,
            &[(1, "a", FLAGGED), (3, "c", NONE), (4, "b-own", NONE), (5, "b-own2", NONE)],
        );
        let plan = merge(MergeMode::OneWay, &a, &b, Some(&base));
        assert!(plan.a.is_empty(), "A is never written in one-way mode");
        assert_eq!(saves(&plan.b), [(6, Origin::OtherSide(uid(4)))]);
        assert!(plan.b.expunge.is_empty() && plan.b.set_flags.is_empty(), "{:?}", plan.b);

        // The next run, after applying: B's own mail stays and nothing is copied again.
        let b_after = side(
            7,
            7,
            &[
                (1, "a", FLAGGED),
                (3, "c", NONE),
                (4, "b-own", NONE),
                (5, "b-own2", NONE),
                (6, "a-new", NONE),
            ],
        );
        let again = merge(MergeMode::OneWay, &a, &b_after, Some(&plan.next_base));
        assert!(again.b.is_empty(), "{:?}", again.b);
    }

    #[test]
    fn uidvalidity_conflict_goes_to_the_side_with_more_messages() {
        let a = side(7, 3, &[(1, "x", NONE), (2, "y", NONE)]);
        let b = side(9, 2, &[(1, "x", NONE)]);
        let plan = merge(MergeMode::TwoWay, &a, &b, None);
        assert_eq!(plan.b.set_uid_validity, UidValidity::new(7));
        assert_eq!(plan.a.set_uid_validity, None);
        assert_eq!(saves(&plan.b), [(2, Origin::OtherSide(uid(2)))]);
        // Equal counts: the higher value wins.
        let b = side(9, 3, &[(1, "x", NONE), (2, "y", NONE)]);
        assert_eq!(merge(MergeMode::TwoWay, &a, &b, None).a.set_uid_validity, UidValidity::new(9));
    }

    #[test]
    fn three_way_flags() {
        let flags = |system: SystemFlags, keywords: &[&str]| Flags {
            system,
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        };
        let base = flags(SEEN, &["$A", "$B"]);
        let a = flags(SEEN.union(FLAGGED), &["$B", "$C"]);
        let b = flags(NONE, &["$A", "$B", "$D"]);
        let merged = merge_flags(MergeMode::TwoWay, Some(&base), &a, &b);
        assert_eq!(merged, flags(FLAGGED, &["$B", "$C", "$D"]));
        assert_eq!(
            merge_flags(MergeMode::TwoWay, None, &a, &b),
            flags(SEEN.union(FLAGGED), &["$A", "$B", "$C", "$D"])
        );
        assert_eq!(merge_flags(MergeMode::OneWay, None, &a, &b), a);
    }

    /// Without a saved base, a side's own history (Dovecot's expunge records) tells its
    /// expunges from mail it never had. (mode, A's history, B's history) → A's expunges,
    /// B's expunges, saves on A, saves on B, messages copied without proof.
    #[test]
    fn history_tells_an_expunge_from_mail_never_delivered() {
        // Both sides held 1..=4 (UIDNEXT 5); A expunged 2, B expunged 3.
        let a = side(7, 5, &[(1, "w", NONE), (3, "y", NONE), (4, "z", NONE)]);
        let b = side(7, 5, &[(1, "w", NONE), (2, "x", NONE), (4, "z", NONE)]);
        let history = |expunged: u32| {
            let validity = UidValidity::new(7);
            MessageHistory::new(validity, BTreeSet::from([uid(expunged)]), BTreeMap::new())
        };
        let (a_expunged, b_expunged) = (history(2), history(3));
        type Case<'h> = (
            MergeMode,
            Option<&'h MessageHistory>,
            Option<&'h MessageHistory>,
            (Vec<u32>, Vec<u32>, Vec<u32>, Vec<u32>, usize),
        );
        let cases: [Case<'_>; 5] = [
            // No history: both messages come back (at fresh UIDs, below the other side's
            // UIDNEXT as they are), and the plan says they are unproven.
            (MergeMode::TwoWay, None, None, (vec![3], vec![2], vec![5, 6], vec![5, 6], 2)),
            // Both histories: each expunge travels.
            (
                MergeMode::TwoWay,
                Some(&a_expunged),
                Some(&b_expunged),
                (vec![3], vec![2], vec![], vec![], 0),
            ),
            // Only A's history: A's expunge travels, B's expunged message comes back.
            (MergeMode::TwoWay, Some(&a_expunged), None, (vec![3], vec![2], vec![5], vec![5], 1)),
            // One-way: A's expunge travels to B; B's own expunge stays (not copied back).
            (
                MergeMode::OneWay,
                Some(&a_expunged),
                Some(&b_expunged),
                (vec![], vec![2], vec![], vec![], 0),
            ),
            (MergeMode::OneWay, None, None, (vec![], vec![], vec![], vec![5], 1)),
        ];
        for (mode, a_history, b_history, expected) in cases {
            let plan = plan_merge(
                mode,
                MergeView { history: a_history, ..view(&a) },
                MergeView { history: b_history, ..view(&b) },
                None,
            );
            let saved = |side: &SidePlan| side.save.iter().map(|s| s.meta.uid.get()).collect();
            let got = (
                uids(&plan.a.expunge),
                uids(&plan.b.expunge),
                saved(&plan.a),
                saved(&plan.b),
                plan.unproven,
            );
            assert_eq!(got, expected, "{mode:?} A {a_history:?} B {b_history:?}");
        }
        // A history of another UIDVALIDITY (an earlier incarnation) says nothing.
        let old =
            MessageHistory::new(UidValidity::new(6), BTreeSet::from([uid(2)]), BTreeMap::new());
        let plan = plan_merge(
            MergeMode::TwoWay,
            MergeView { history: Some(&old), ..view(&a) },
            MergeView { history: Some(&b_expunged), ..view(&b) },
            None,
        );
        assert_eq!((uids(&plan.a.expunge), uids(&plan.b.expunge)), (vec![3], vec![2]), "{plan:?}");
        assert_eq!(plan.unproven, 1);
        // A saved base wins over the history.
        let base = MergeBase {
            uid_validity: 7,
            last_common_uid: 4,
            flags: [1, 2, 4].into_iter().map(|n| (uid(n), Flags::default())).collect(),
        };
        let plan = plan_merge(
            MergeMode::TwoWay,
            MergeView { history: Some(&a_expunged), ..view(&a) },
            MergeView { history: Some(&b_expunged), ..view(&b) },
            Some(&base),
        );
        // (3 is new to the base: copied, at a fresh UID as B's UIDNEXT is above it.)
        assert_eq!(uids(&plan.b.expunge), [2]);
        assert_eq!(plan.b.save.iter().map(|s| s.meta.uid.get()).collect::<Vec<_>>(), [5]);
        assert_eq!(plan.unproven, 0);
    }

    /// Without a base, the side whose history changed a message's flags later wins (as
    /// Dovecot's modseqs decide): a removed \Seen is not brought back by a union.
    #[test]
    fn history_tells_which_side_changed_the_flags() {
        // UID 1: A removed \Seen after the split (position 50 > B's 10); UID 2: B added
        // \Flagged (B's 60 > A's none); UID 3: no history of it: union.
        let a = side(7, 4, &[(1, "x", NONE), (2, "y", SEEN), (3, "z", SEEN)]);
        let b = side(7, 4, &[(1, "x", SEEN), (2, "y", SEEN.union(FLAGGED)), (3, "z", FLAGGED)]);
        let changes = |list: &[(u32, u64)]| list.iter().map(|&(n, p)| (uid(n), p)).collect();
        let a_history =
            MessageHistory::new(UidValidity::new(7), BTreeSet::new(), changes(&[(1, 50)]));
        let b_history =
            MessageHistory::new(UidValidity::new(7), BTreeSet::new(), changes(&[(1, 10), (2, 60)]));
        let flags_set = |side: &SidePlan| -> Vec<(u32, SystemFlags)> {
            side.set_flags.iter().map(|(u, f)| (u.get(), f.system)).collect()
        };
        for mode in [MergeMode::TwoWay, MergeMode::OneWay] {
            let plan = plan_merge(
                mode,
                MergeView { history: Some(&a_history), ..view(&a) },
                MergeView { history: Some(&b_history), ..view(&b) },
                None,
            );
            let b_expected = match mode {
                MergeMode::TwoWay => vec![(1, NONE), (3, SEEN.union(FLAGGED))],
                MergeMode::OneWay => vec![(1, NONE), (3, SEEN)],
            };
            assert_eq!(flags_set(&plan.b), b_expected, "{mode:?}");
            if mode == MergeMode::TwoWay {
                assert_eq!(
                    flags_set(&plan.a),
                    [(2, SEEN.union(FLAGGED)), (3, SEEN.union(FLAGGED))]
                );
            }
        }
        // Without both histories: the union (two-way), \Seen comes back.
        let plan = plan_merge(
            MergeMode::TwoWay,
            MergeView { history: Some(&a_history), ..view(&a) },
            view(&b),
            None,
        );
        assert_eq!(flags_set(&plan.a)[0], (1, SEEN));
    }
}
