//! Folder-level planning for the merge modes: one step per mailbox either side lists.
//!
//! A mailbox on both sides is merged. One that only A has is created on B, unless the saved
//! state shows B had it and deleted it (one-way: B's delete stays; two-way: the delete
//! travels to A, but only if A did not change the mailbox since, else it is recreated on B
//! so no mail is lost). One that only B has: if the saved state shows A had it, A deleted
//! it and the delete travels to B under the same condition (both modes); otherwise it is
//! B's own, kept in one-way mode and created on A in two-way mode. A side whose rebuild was
//! interrupted gets the mailbox created again. INBOX is never deleted, and a mailbox a
//! side's listing left out is not taken for deleted there.
//!
//! Renames are followed before this plan is made ([`super::next_rename`]); whether a
//! merged mailbox's copy on one side is rebuilt is decided once both are read
//! ([`plan_rebuild`]).

use std::collections::{BTreeMap, BTreeSet};

use super::MergeMode;
use crate::error::Side;
use crate::model::{MailboxGuid, MailboxName, UidValidity};
use crate::state::MailboxState;

/// What a merge knows of both trees when it plans them (destination-side names).
#[derive(Debug, Clone, Copy)]
pub struct FolderInput<'a> {
    /// `sync` or `sync -1`.
    pub mode: MergeMode,
    /// Selectable mailboxes on A that the filters want, renames already followed.
    pub on_a: &'a BTreeSet<MailboxName>,
    /// The same for B.
    pub on_b: &'a BTreeSet<MailboxName>,
    /// Mailboxes A's listing left out (not deleted there: nothing is done about them).
    pub left_out_a: &'a BTreeSet<MailboxName>,
    /// The same for B.
    pub left_out_b: &'a BTreeSet<MailboxName>,
    /// What the last run recorded per mailbox.
    pub state: &'a BTreeMap<MailboxName, MailboxState>,
    /// The current change token of each mailbox [`token_needed`] names, on that side
    /// (absent: the side reported none).
    pub tokens: &'a BTreeMap<MailboxName, String>,
    /// Mailboxes one side has and the state does not know, whose persistent GUID the
    /// other side's own history records as deleted (Dovecot's `dovecot.mailbox.log`): the
    /// delete travels as if the state had recorded the mailbox unchanged since.
    pub deleted_elsewhere: &'a BTreeSet<MailboxName>,
    /// The mailbox that goes first (the all-mail mailbox: the others then find their
    /// messages in it).
    pub first: Option<&'a MailboxName>,
}

/// What happens to one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderStep {
    /// On both sides: merge the two copies.
    Merge,
    /// Missing on this side: create it there, then merge.
    Create(Side),
    /// Deleted on the other side since the last run, unchanged here: delete it here.
    Delete(Side),
    /// Nothing is done.
    Keep(KeepReason),
}

/// Why a mailbox is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// A side's listing left it out.
    LeftOut,
    /// One-way: B deleted it since the last run, and B's delete stays.
    DeletedOnB,
    /// One-way: only B has it, and it is B's own.
    OnlyOnB,
}

/// The side whose current change token [`plan_folders`] needs for `name`: the side that
/// still has a mailbox the other one deleted since the last run.
pub fn token_needed(
    mode: MergeMode,
    name: &MailboxName,
    on_a: &BTreeSet<MailboxName>,
    on_b: &BTreeSet<MailboxName>,
    previous: Option<&MailboxState>,
) -> Option<Side> {
    let previous = previous?;
    if name.is_inbox() || previous.rebuild.is_some() && mode == MergeMode::TwoWay {
        return None;
    }
    match (on_a.contains(name), on_b.contains(name)) {
        (true, false) if mode == MergeMode::TwoWay && previous.rebuild.is_none() => {
            Some(Side::Source)
        }
        (false, true) => Some(Side::Destination),
        _ => None,
    }
}

/// One step per mailbox that either side has, in name order ([`FolderInput::first`]
/// first).
pub fn plan_folders(input: &FolderInput<'_>) -> Vec<(MailboxName, FolderStep)> {
    let mut names: Vec<&MailboxName> = input.on_a.union(input.on_b).collect();
    if let Some(index) = input.first.and_then(|first| names.iter().position(|n| *n == first)) {
        let first = names.remove(index);
        names.insert(0, first);
    }
    names.into_iter().map(|name| (name.clone(), step(input, name))).collect()
}

fn step(input: &FolderInput<'_>, name: &MailboxName) -> FolderStep {
    use FolderStep::{Create, Delete, Keep, Merge};
    if input.left_out_a.contains(name) || input.left_out_b.contains(name) {
        return Keep(KeepReason::LeftOut);
    }
    let previous = input.state.get(name);
    let two_way = input.mode == MergeMode::TwoWay;
    let unchanged_since = |recorded: Option<&String>| {
        token_needed(input.mode, name, input.on_a, input.on_b, previous).is_some()
            && recorded.is_some()
            && input.tokens.get(name) == recorded
    };
    let rebuilding = previous.is_some_and(|seen| seen.rebuild.is_some());
    let deleted_elsewhere =
        previous.is_none() && !name.is_inbox() && input.deleted_elsewhere.contains(name);
    match (input.on_a.contains(name), input.on_b.contains(name)) {
        (true, true) => Merge,
        // An interrupted rebuild of B left it missing: create it.
        (true, false) if rebuilding => Create(Side::Destination),
        (true, false) if deleted_elsewhere && two_way => Delete(Side::Source),
        (true, false) if deleted_elsewhere => Keep(KeepReason::DeletedOnB),
        (false, true) if deleted_elsewhere => Delete(Side::Destination),
        (true, false) => match previous {
            Some(_) if !two_way => Keep(KeepReason::DeletedOnB),
            Some(seen) if unchanged_since(seen.source_token.as_ref()) => Delete(Side::Source),
            // New on A, or A changed it since B deleted it: nothing of A's is lost.
            _ => Create(Side::Destination),
        },
        // An interrupted rebuild of A left it missing: create it.
        (false, true) if rebuilding && two_way => Create(Side::Source),
        (false, true) => match previous {
            // Synced before and gone from A since: A deleted it. The delete travels if B
            // did not change the mailbox meanwhile (else nothing of B's is lost).
            Some(seen) if unchanged_since(seen.destination_token.as_ref()) => {
                Delete(Side::Destination)
            }
            _ if !two_way => Keep(KeepReason::OnlyOnB),
            _ => Create(Side::Source),
        },
        (false, false) => Keep(KeepReason::LeftOut),
    }
}

/// One side's copy of a merged mailbox, as [`plan_rebuild`] compares it with the state.
#[derive(Debug, Clone, Copy)]
pub struct Incarnation<'a> {
    /// Its UIDVALIDITY (the other side's where it stands in for it).
    pub uid_validity: UidValidity,
    /// Its mailbox GUID, only where the side keeps persistent ones: a derived GUID stays
    /// the same when the mailbox is deleted and created again.
    pub guid: Option<MailboxGuid>,
    /// Its change token.
    pub change_token: Option<&'a str>,
}

/// Which side's copy of a mailbox on both sides is rebuilt from the other's, if any.
///
/// An interrupted rebuild is finished while its origin is still the incarnation it was
/// started from. Otherwise a new incarnation on one side (deleted and created again since
/// the last run: its UIDVALIDITY or GUID changed) replaces the other side's copy if that
/// side did not change since; when both changed they are merged, so nothing is lost. In
/// one-way mode A is never rebuilt.
pub fn plan_rebuild(
    mode: MergeMode,
    previous: &MailboxState,
    a: Incarnation<'_>,
    b: Incarnation<'_>,
) -> Option<Side> {
    let old = previous.base.uid_validity;
    if let Some(side) = previous.rebuild {
        let (from, to) = match side {
            Side::Destination => (a.uid_validity, b.uid_validity),
            Side::Source => (b.uid_validity, a.uid_validity),
        };
        return (from.get() == old && to.get() != old).then_some(side);
    }
    let a_new = a.uid_validity.get() != old || changed_guid(previous.source_guid, a.guid);
    let b_new = b.uid_validity.get() != old || changed_guid(previous.destination_guid, b.guid);
    let untouched = |token: Option<&str>, recorded: Option<&String>| {
        token.is_some() && token == recorded.map(String::as_str)
    };
    let a_untouched = untouched(a.change_token, previous.source_token.as_ref());
    let b_untouched = untouched(b.change_token, previous.destination_token.as_ref());
    if a_new && !b_new && b_untouched {
        Some(Side::Destination)
    } else if mode == MergeMode::TwoWay && b_new && !a_new && a_untouched {
        Some(Side::Source)
    } else {
        None
    }
}

/// True when both GUIDs are known and differ.
pub(crate) fn changed_guid(recorded: Option<MailboxGuid>, now: Option<MailboxGuid>) -> bool {
    matches!((recorded, now), (Some(recorded), Some(now)) if recorded != now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::merge::test_names::{name, names};
    use crate::state::MergeBase;
    use FolderStep::{Create, Delete, Keep, Merge};
    use MergeMode::{OneWay, TwoWay};
    use Side::{Destination, Source};

    /// A recorded mailbox with tokens "a1" (A) and "b1" (B), or a rebuild mark.
    fn seen(rebuild: Option<Side>) -> MailboxState {
        MailboxState {
            source_token: Some("a1".into()),
            destination_token: Some("b1".into()),
            rebuild,
            ..MailboxState::default()
        }
    }

    /// Plans one mailbox `X` (or INBOX): on A?, on B?, recorded?, its current token.
    fn plan_one(
        mode: MergeMode,
        on: (bool, bool),
        recorded: Option<MailboxState>,
        token: Option<&str>,
        mailbox: &str,
    ) -> FolderStep {
        plan_with_history(mode, on, recorded, token, mailbox, false)
    }

    /// [`plan_one`], the other side's history deleting the mailbox's GUID or not.
    fn plan_with_history(
        mode: MergeMode,
        on: (bool, bool),
        recorded: Option<MailboxState>,
        token: Option<&str>,
        mailbox: &str,
        deleted_elsewhere: bool,
    ) -> FolderStep {
        let mailbox = name(mailbox);
        let deleted: BTreeSet<_> = deleted_elsewhere.then(|| mailbox.clone()).into_iter().collect();
        let one = BTreeSet::from([mailbox.clone()]);
        let none = BTreeSet::new();
        let on_a = if on.0 { &one } else { &none };
        let on_b = if on.1 { &one } else { &none };
        let state: BTreeMap<_, _> = recorded.into_iter().map(|s| (mailbox.clone(), s)).collect();
        let needed = token_needed(mode, &mailbox, on_a, on_b, state.get(&mailbox));
        let tokens: BTreeMap<_, _> = token
            .filter(|_| needed.is_some())
            .map(|token| (mailbox.clone(), token.to_owned()))
            .into_iter()
            .collect();
        let input = FolderInput {
            mode,
            on_a,
            on_b,
            left_out_a: &none,
            left_out_b: &none,
            state: &state,
            tokens: &tokens,
            deleted_elsewhere: &deleted,
            first: None,
        };
        let steps = plan_folders(&input);
        assert_eq!(steps.len(), 1, "{steps:?}");
        steps[0].1
    }

    /// (mode, on A, on B, recorded, current token of the side that has it) → step.
    #[test]
    fn each_mailbox_gets_its_step() {
        let cases = [
            // On both sides: merged, whatever the state says.
            (TwoWay, (true, true), None, None, Merge),
            (OneWay, (true, true), Some(seen(None)), None, Merge),
            // New on A: created on B.
            (TwoWay, (true, false), None, None, Create(Destination)),
            (OneWay, (true, false), None, None, Create(Destination)),
            // B deleted it: one-way keeps B's delete; two-way deletes A's copy if A did not
            // change it, else creates it on B again.
            (OneWay, (true, false), Some(seen(None)), Some("a1"), Keep(KeepReason::DeletedOnB)),
            (TwoWay, (true, false), Some(seen(None)), Some("a1"), Delete(Source)),
            (TwoWay, (true, false), Some(seen(None)), Some("a2"), Create(Destination)),
            (TwoWay, (true, false), Some(seen(None)), None, Create(Destination)),
            // B's rebuild was interrupted after it deleted B's copy: created again.
            (OneWay, (true, false), Some(seen(Some(Destination))), Some("a1"), Create(Destination)),
            (TwoWay, (true, false), Some(seen(Some(Destination))), Some("a1"), Create(Destination)),
            // New on B: B's own in one-way mode, created on A in two-way mode.
            (OneWay, (false, true), None, None, Keep(KeepReason::OnlyOnB)),
            (TwoWay, (false, true), None, None, Create(Source)),
            // A deleted it: the delete travels (both modes) if B did not change it.
            (OneWay, (false, true), Some(seen(None)), Some("b1"), Delete(Destination)),
            (TwoWay, (false, true), Some(seen(None)), Some("b1"), Delete(Destination)),
            (OneWay, (false, true), Some(seen(None)), Some("b2"), Keep(KeepReason::OnlyOnB)),
            (TwoWay, (false, true), Some(seen(None)), Some("b2"), Create(Source)),
            // A's rebuild was interrupted: created on A again (two-way; one-way never
            // rebuilds A, and the mark alone does not keep the delete from travelling).
            (TwoWay, (false, true), Some(seen(Some(Source))), Some("b1"), Create(Source)),
            (OneWay, (false, true), Some(seen(Some(Source))), Some("b1"), Delete(Destination)),
        ];
        for (mode, on, recorded, token, expected) in cases {
            let case = format!("{mode:?} on {on:?} recorded {recorded:?} token {token:?}");
            assert_eq!(plan_one(mode, on, recorded, token, "X"), expected, "{case}");
        }
    }

    /// Without state, the other side's history deleting the mailbox's GUID makes the
    /// delete travel: (mode, on A, on B, recorded, deleted in the other's history) → step.
    #[test]
    fn a_delete_in_the_other_sides_history_travels_without_state() {
        let cases = [
            // A's log deleted the mailbox B still has: deleted on B (both modes).
            (TwoWay, (false, true), None, true, Delete(Destination)),
            (OneWay, (false, true), None, true, Delete(Destination)),
            // B's log deleted what A has: two-way deletes A's; one-way keeps B's delete.
            (TwoWay, (true, false), None, true, Delete(Source)),
            (OneWay, (true, false), None, true, Keep(KeepReason::DeletedOnB)),
            // No history: created on the other side (two-way), B's own (one-way).
            (TwoWay, (false, true), None, false, Create(Source)),
            (OneWay, (false, true), None, false, Keep(KeepReason::OnlyOnB)),
            (TwoWay, (true, false), None, false, Create(Destination)),
            // The saved state decides when there is one (A changed it: created again).
            (TwoWay, (true, false), Some(seen(None)), true, Create(Destination)),
        ];
        for (mode, on, recorded, deleted, expected) in cases {
            let case = format!("{mode:?} on {on:?} recorded {recorded:?} deleted {deleted}");
            let step = plan_with_history(mode, on, recorded, Some("a2"), "X", deleted);
            assert_eq!(step, expected, "{case}");
        }
        let step = plan_with_history(TwoWay, (false, true), None, None, "INBOX", true);
        assert_eq!(step, Create(Source), "INBOX is never deleted");
    }

    #[test]
    fn inbox_is_never_deleted() {
        for mode in [OneWay, TwoWay] {
            let step = plan_one(mode, (false, true), Some(seen(None)), Some("b1"), "INBOX");
            assert_ne!(step, Delete(Destination), "{mode:?}");
        }
        let step = plan_one(TwoWay, (true, false), Some(seen(None)), Some("a1"), "INBOX");
        assert_eq!(step, Create(Destination));
    }

    #[test]
    fn a_mailbox_a_listing_left_out_is_left_alone_and_the_first_goes_first() {
        let (on_a, on_b) = (names("All Gone Kept"), names("Kept Other"));
        let (left_out_a, left_out_b) = (names("Other"), BTreeSet::new());
        let state: BTreeMap<_, _> =
            names("Gone Other").into_iter().map(|name| (name, seen(None))).collect();
        let tokens = BTreeMap::from([(name("Gone"), "a1".to_owned())]);
        let all = name("All");
        let input = FolderInput {
            mode: TwoWay,
            on_a: &on_a,
            on_b: &on_b,
            left_out_a: &left_out_a,
            left_out_b: &left_out_b,
            state: &state,
            tokens: &tokens,
            deleted_elsewhere: &BTreeSet::new(),
            first: Some(&all),
        };
        assert_eq!(
            plan_folders(&input),
            [
                (name("All"), Create(Destination)),
                (name("Gone"), Delete(Source)),
                (name("Kept"), Merge),
                (name("Other"), Keep(KeepReason::LeftOut)),
            ]
        );
    }

    fn guid(byte: u8) -> MailboxGuid {
        MailboxGuid([byte; 16])
    }

    /// (mode, recorded rebuild mark, A's UIDVALIDITY, GUID and token, B's likewise) →
    /// the side rebuilt. The state recorded UIDVALIDITY 7, GUIDs 1 (A) and 2 (B), tokens
    /// "a1" and "b1".
    #[test]
    fn a_new_incarnation_replaces_an_untouched_copy() {
        type Now = (u32, Option<MailboxGuid>, Option<&'static str>);
        type Case = (MergeMode, Option<Side>, Now, Now, Option<Side>);
        let same_a: Now = (7, Some(guid(1)), Some("a1"));
        let same_b: Now = (7, Some(guid(2)), Some("b1"));
        let cases: [Case; 12] = [
            (TwoWay, None, same_a, same_b, None),
            // A new on A (UIDVALIDITY or GUID), B untouched: B is rebuilt.
            (TwoWay, None, (8, Some(guid(1)), Some("a9")), same_b, Some(Destination)),
            (OneWay, None, (7, Some(guid(3)), Some("a9")), same_b, Some(Destination)),
            // ... but not when B changed too: they are merged.
            (TwoWay, None, (8, Some(guid(1)), Some("a9")), (7, Some(guid(2)), Some("b2")), None),
            // New on B, A untouched: A is rebuilt in two-way mode only.
            (TwoWay, None, same_a, (9, Some(guid(2)), Some("b9")), Some(Source)),
            (OneWay, None, same_a, (9, Some(guid(2)), Some("b9")), None),
            // New on both: merged, even where one of them has not changed since.
            (TwoWay, None, (8, Some(guid(1)), None), (9, Some(guid(2)), None), None),
            (TwoWay, None, (8, Some(guid(1)), Some("a9")), (9, Some(guid(2)), Some("b1")), None),
            // A GUID that is not kept (None) tells nothing.
            (TwoWay, None, (7, None, Some("a9")), same_b, None),
            // An interrupted rebuild of B (started to 7) goes on while A is still at 7.
            (TwoWay, Some(Destination), same_a, (5, Some(guid(2)), Some("b5")), Some(Destination)),
            (
                TwoWay,
                Some(Destination),
                (8, Some(guid(1)), Some("a1")),
                (5, Some(guid(2)), None),
                None,
            ),
            (TwoWay, Some(Source), (5, Some(guid(1)), None), same_b, Some(Source)),
        ];
        for (mode, mark, a, b, expected) in cases {
            let previous = MailboxState {
                base: MergeBase { uid_validity: 7, ..MergeBase::default() },
                rebuild: mark,
                source_guid: Some(guid(1)),
                destination_guid: Some(guid(2)),
                ..seen(mark)
            };
            let incarnation = |(validity, guid, token): Now| Incarnation {
                uid_validity: UidValidity::new(validity).expect("nonzero"),
                guid,
                change_token: token,
            };
            let case = format!("{mode:?} mark {mark:?} A {a:?} B {b:?}");
            assert_eq!(
                plan_rebuild(mode, &previous, incarnation(a), incarnation(b)),
                expected,
                "{case}"
            );
        }
    }
}
