//! Mailbox renames in the merge modes, found by mailbox GUID: a mailbox the saved state
//! knows under an old name that one side now has under a new name (and no longer under
//! the old one) was renamed there; the other side renames its copy too, children along,
//! instead of deleting it and copying every message again under the new name. Needs
//! persistent mailbox GUIDs on both sides ([`crate::Capabilities::mailbox_guids`]: Maildir
//! has them; the GUIDs an IMAP source derives from names change with the name, so there a
//! rename still arrives, as a delete and a copy).

use std::collections::{BTreeMap, BTreeSet};

use super::MergeMode;
use crate::error::Side;
use crate::model::{MailboxGuid, MailboxName};
use crate::state::{MailboxState, SyncState};

/// A rename to follow (destination-side names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// One side renamed `old` to `new`: rename the other side's copy (`side`).
    Follow {
        /// The side whose copy is renamed now.
        side: Side,
        /// The name both sides had.
        old: MailboxName,
        /// The name the renaming side gave it.
        new: MailboxName,
    },
    /// One-way: B renamed `old` to `new` (B's own history says so) and A, which a one-way
    /// merge does not write, still has `old`: A's `old` is merged into B's `new`, and B's
    /// rename stays (Dovecot's dsync matches the two by GUID the same way).
    Alias {
        /// A's name.
        old: MailboxName,
        /// B's name.
        new: MailboxName,
    },
    /// Both sides have the new name already (both renamed, or a run died after renaming):
    /// only the saved state moves.
    StateOnly {
        /// The recorded name.
        old: MailboxName,
        /// The name both sides have now.
        new: MailboxName,
    },
}

/// The mailboxes both sides list now, as renames change them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    /// On A.
    pub on_a: BTreeSet<MailboxName>,
    /// On B.
    pub on_b: BTreeSet<MailboxName>,
}

impl Listed {
    /// Moves `old` and the mailboxes below it to `new` on `side` (a rename done there).
    pub fn rename(&mut self, side: Side, old: &MailboxName, new: &MailboxName) {
        let moved = match side {
            Side::Source => &mut self.on_a,
            Side::Destination => &mut self.on_b,
        };
        let names: Vec<MailboxName> = moved.iter().filter(|n| n.is_within(old)).cloned().collect();
        for name in names {
            moved.remove(&name);
            if let Some(target) = renamed(&name, old, new) {
                moved.insert(target);
            }
        }
    }
}

/// The next rename to follow, if any, from the names both sides list, the state and each
/// mailbox's persistent GUID (`guid`, asked only for the few names that may have been
/// renamed; `None`: the side has no such mailbox or no GUID). Names in `refused` (renames
/// a storage refused) are not proposed again. One-way: only A's renames travel.
pub fn next_rename(
    mode: MergeMode,
    listed: &Listed,
    state: &SyncState,
    refused: &BTreeSet<MailboxName>,
    guid: &mut dyn FnMut(Side, &MailboxName) -> Option<MailboxGuid>,
) -> Option<Rename> {
    let fresh = |name: &&MailboxName| {
        !state.mailboxes.contains_key(*name) && !name.is_inbox() && !refused.contains(*name)
    };
    // The recorded mailboxes by GUID, so that each candidate looks up its own instead of
    // going through all of them (quadratic with thousands of mailboxes).
    let mut by_source_guid: BTreeMap<MailboxGuid, Vec<(&MailboxName, &MailboxState)>> =
        BTreeMap::new();
    let mut by_destination_guid: BTreeMap<MailboxGuid, Vec<(&MailboxName, &MailboxState)>> =
        BTreeMap::new();
    for (name, seen) in &state.mailboxes {
        if let Some(guid) = seen.source_guid {
            by_source_guid.entry(guid).or_default().push((name, seen));
        }
        if let Some(guid) = seen.destination_guid {
            by_destination_guid.entry(guid).or_default().push((name, seen));
        }
    }
    let (on_a, on_b) = (&listed.on_a, &listed.on_b);
    for new in on_a.iter().filter(fresh) {
        let in_b = on_b.contains(new);
        let Some(a_guid) = guid(Side::Source, new) else { continue };
        let b_guid = if in_b { guid(Side::Destination, new) } else { None };
        for &(old, seen) in by_source_guid.get(&a_guid).map_or(&[][..], Vec::as_slice) {
            if old.is_inbox() || on_a.contains(old) {
                continue;
            }
            if in_b {
                if b_guid.is_some() && seen.destination_guid == b_guid && !on_b.contains(old) {
                    return Some(Rename::StateOnly { old: old.clone(), new: new.clone() });
                }
            } else if on_b.contains(old)
                && !new.is_within(old)
                && seen.destination_guid.is_some()
                && guid(Side::Destination, old) == seen.destination_guid
            {
                let (old, new) = (old.clone(), new.clone());
                return Some(Rename::Follow { side: Side::Destination, old, new });
            }
        }
    }
    if mode != MergeMode::TwoWay {
        return None; // one-way: B's own renames stay B's
    }
    for new in on_b.iter().filter(fresh).filter(|n| !on_a.contains(*n)) {
        let Some(b_guid) = guid(Side::Destination, new) else { continue };
        for &(old, seen) in by_destination_guid.get(&b_guid).map_or(&[][..], Vec::as_slice) {
            if old.is_inbox() || on_b.contains(old) || !on_a.contains(old) || new.is_within(old) {
                continue;
            }
            // The same incarnation the state recorded (not deleted and created again).
            if seen.source_guid.is_some() && guid(Side::Source, old) == seen.source_guid {
                let (old, new) = (old.clone(), new.clone());
                return Some(Rename::Follow { side: Side::Source, old, new });
            }
        }
    }
    None
}

/// The next rename a side's own history shows (Dovecot's `dovecot.mailbox.log` records
/// a rename under a hash of the new name, [`crate::history::FolderHistory::renamed_to`]),
/// for mailboxes the saved state does not know: `renamed_to(side, new)` says the side's
/// history records a rename to `new`; if `new` is only on that side and the other side has,
/// only there, a mailbox with the same persistent GUID under another name, that copy is
/// renamed too. One-way: A's renames travel; B's make A's copy an alias of B's.
pub fn next_history_rename(
    mode: MergeMode,
    listed: &Listed,
    state: &SyncState,
    refused: &BTreeSet<MailboxName>,
    renamed_to: &dyn Fn(Side, &MailboxName) -> bool,
    guid: &mut dyn FnMut(Side, &MailboxName) -> Option<MailboxGuid>,
) -> Option<Rename> {
    let unknown = |name: &MailboxName| {
        !state.mailboxes.contains_key(name) && !name.is_inbox() && !refused.contains(name)
    };
    for renaming in [Side::Source, Side::Destination] {
        let (here, there, other) = match renaming {
            Side::Source => (&listed.on_a, &listed.on_b, Side::Destination),
            Side::Destination => (&listed.on_b, &listed.on_a, Side::Source),
        };
        let candidates =
            here.iter().filter(|n| unknown(n) && !there.contains(*n) && renamed_to(renaming, n));
        for new in candidates {
            let Some(new_guid) = guid(renaming, new) else { continue };
            for old in there.iter().filter(|o| unknown(o) && !here.contains(*o)) {
                if new.is_within(old) || old.is_within(new) {
                    continue;
                }
                if guid(other, old) == Some(new_guid) {
                    let (old, new) = (old.clone(), new.clone());
                    if mode == MergeMode::OneWay && other == Side::Source {
                        return Some(Rename::Alias { old, new });
                    }
                    return Some(Rename::Follow { side: other, old, new });
                }
            }
        }
    }
    None
}

/// `name` (`old` or below it) after `old` became `new`.
fn renamed(name: &MailboxName, old: &MailboxName, new: &MailboxName) -> Option<MailboxName> {
    let tail = &name.components()[old.components().len()..];
    MailboxName::new(new.components().iter().chain(tail).cloned()).ok()
}

/// Moves the state of `old` and its descendants to the new names (unless something is
/// already recorded there).
pub fn move_state(state: &mut SyncState, old: &MailboxName, new: &MailboxName) {
    let moving: Vec<MailboxName> =
        state.mailboxes.keys().filter(|name| name.is_within(old)).cloned().collect();
    for name in moving {
        let Some(target) = renamed(&name, old, new) else { continue };
        if state.mailboxes.contains_key(&target) {
            continue;
        }
        if let Some(entry) = state.mailboxes.remove(&name) {
            state.mailboxes.insert(target, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::merge::test_names::{name, names};
    use MergeMode::{OneWay, TwoWay};
    use Side::{Destination, Source};

    fn guid(byte: u8) -> MailboxGuid {
        MailboxGuid([byte; 16])
    }

    /// A state that recorded `Old` with GUID 1 on A and 2 on B.
    fn recorded() -> SyncState {
        let mut state = SyncState::default();
        let seen = MailboxState {
            source_guid: Some(guid(1)),
            destination_guid: Some(guid(2)),
            ..MailboxState::default()
        };
        state.mailboxes.insert(name("Old"), seen);
        state
    }

    /// (mode, on A with GUIDs, on B with GUIDs) → the rename found.
    #[test]
    fn a_rename_on_one_side_is_followed_on_the_other() {
        let follow = |side, old: &str, new: &str| {
            Some(Rename::Follow { side, old: name(old), new: name(new) })
        };
        let state_only = Some(Rename::StateOnly { old: name("Old"), new: name("New") });
        type Listing = &'static [(&'static str, u8)];
        let cases: [(MergeMode, Listing, Listing, Option<Rename>); 8] = [
            // A renamed Old to New: B follows (both modes).
            (TwoWay, &[("New", 1)], &[("Old", 2)], follow(Destination, "Old", "New")),
            (OneWay, &[("New", 1)], &[("Old", 2)], follow(Destination, "Old", "New")),
            // B renamed: A follows in two-way mode only.
            (TwoWay, &[("Old", 1)], &[("New", 2)], follow(Source, "Old", "New")),
            (OneWay, &[("Old", 1)], &[("New", 2)], None),
            // Both have the new name: only the state moves.
            (TwoWay, &[("New", 1)], &[("New", 2)], state_only),
            // B's Old is another incarnation (GUID 9): a delete and a copy, no rename.
            (TwoWay, &[("New", 1)], &[("Old", 9)], None),
            // A's New is not the recorded mailbox.
            (TwoWay, &[("New", 7)], &[("Old", 2)], None),
            // Into itself: Old/New inside Old is no rename.
            (TwoWay, &[("Old/New", 1)], &[("Old", 2)], None),
        ];
        for (mode, a, b, expected) in cases {
            let listed = Listed {
                on_a: a.iter().map(|(n, _)| name(n)).collect(),
                on_b: b.iter().map(|(n, _)| name(n)).collect(),
            };
            let mut lookup = |side: Side, mailbox: &MailboxName| {
                let list = if side == Source { a } else { b };
                list.iter().find(|(n, _)| name(n) == *mailbox).map(|(_, byte)| guid(*byte))
            };
            let found = next_rename(mode, &listed, &recorded(), &BTreeSet::new(), &mut lookup);
            assert_eq!(found, expected, "{mode:?} A {a:?} B {b:?}");
        }
    }

    /// Without state, a side's history (a rename record for the new name) and equal GUIDs
    /// make a rename: (mode, on A, on B, history of A, history of B) → the rename.
    #[test]
    fn a_rename_in_a_sides_history_is_followed_without_state() {
        let follow = |side, old: &str, new: &str| {
            Some(Rename::Follow { side, old: name(old), new: name(new) })
        };
        type Listing = &'static [(&'static str, u8)];
        type Case = (MergeMode, Listing, Listing, &'static str, &'static str, Option<Rename>);
        let cases: [Case; 8] = [
            // A renamed Old to New (its log says so): B follows, in both modes.
            (TwoWay, &[("New", 1)], &[("Old", 1)], "New", "", follow(Destination, "Old", "New")),
            (OneWay, &[("New", 1)], &[("Old", 1)], "New", "", follow(Destination, "Old", "New")),
            // B renamed: A follows in two-way mode; one-way, A's Old merges into B's New.
            (TwoWay, &[("Old", 1)], &[("New", 1)], "", "New", follow(Source, "Old", "New")),
            (
                OneWay,
                &[("Old", 1)],
                &[("New", 1)],
                "",
                "New",
                Some(Rename::Alias { old: name("Old"), new: name("New") }),
            ),
            // No history: two mailboxes, not a rename.
            (TwoWay, &[("New", 1)], &[("Old", 1)], "", "", None),
            // Another mailbox (another GUID): not a rename.
            (TwoWay, &[("New", 1)], &[("Old", 2)], "New", "", None),
            // The new name is on both sides already: nothing to follow.
            (TwoWay, &[("New", 1)], &[("New", 1), ("Old", 1)], "New", "", None),
            // A mailbox moved inside itself is no rename.
            (TwoWay, &[("Old/New", 1)], &[("Old", 1)], "Old/New", "", None),
        ];
        for (mode, a, b, a_log, b_log, expected) in cases {
            let listed = Listed {
                on_a: a.iter().map(|(n, _)| name(n)).collect(),
                on_b: b.iter().map(|(n, _)| name(n)).collect(),
            };
            let mut lookup = |side: Side, mailbox: &MailboxName| {
                let list = if side == Source { a } else { b };
                list.iter().find(|(n, _)| name(n) == *mailbox).map(|(_, byte)| guid(*byte))
            };
            let renamed_to = |side: Side, mailbox: &MailboxName| {
                let log = if side == Source { a_log } else { b_log };
                !log.is_empty() && name(log) == *mailbox
            };
            let state = SyncState::default();
            let none = BTreeSet::new();
            let found = next_history_rename(mode, &listed, &state, &none, &renamed_to, &mut lookup);
            assert_eq!(found, expected, "{mode:?} A {a:?} B {b:?} logs {a_log:?} {b_log:?}");
        }
    }

    #[test]
    fn a_refused_name_is_not_proposed_again() {
        let listed = Listed { on_a: names("New"), on_b: names("Old") };
        let mut lookup =
            |side: Side, _: &MailboxName| Some(guid(if side == Source { 1 } else { 2 }));
        let found = next_rename(TwoWay, &listed, &recorded(), &names("New"), &mut lookup);
        assert_eq!(found, None);
    }

    #[test]
    fn children_and_their_state_move_along() {
        let mut listed = Listed { on_a: names("New"), on_b: names("Old Old/c Other") };
        listed.rename(Destination, &name("Old"), &name("New"));
        assert_eq!(listed.on_b, names("New New/c Other"));
        let mut state = recorded();
        state.mailboxes.insert(name("Old/c"), MailboxState::default());
        move_state(&mut state, &name("Old"), &name("New"));
        assert_eq!(state.mailboxes.keys().cloned().collect::<BTreeSet<_>>(), names("New New/c"));
    }
}
