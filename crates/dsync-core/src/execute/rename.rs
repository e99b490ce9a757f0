//! Mailbox renames in the merge modes, found by mailbox GUID: a mailbox the saved state
//! knows under an old name that one side now has under a new name (and no longer under
//! the old one) was renamed there; the other side renames its copy too, children along,
//! instead of deleting it and copying every message again under the new name. Needs
//! persistent mailbox GUIDs on both sides ([`crate::Capabilities::mailbox_guids`]: Maildir
//! has them; the GUIDs an IMAP source derives from names change with the name, so there a
//! rename still arrives, as a delete and a copy).

use std::collections::{BTreeMap, BTreeSet};

use super::merge::MergeSource;
use super::{Observer, SyncOptions};
use crate::error::Side;
use crate::model::{MailboxGuid, MailboxName};
use crate::plan::ComparableGuids;
use crate::plan::merge::MergeMode;
use crate::report::{MailboxRename, Report};
use crate::state::{MailboxState, SyncState};
use crate::storage::{Storage, StorageMut};

/// The mailbox sets of both sides (destination-side names), as the merge walks them.
pub(super) struct ListedMailboxes<'s> {
    pub(super) in_a: &'s mut BTreeSet<MailboxName>,
    pub(super) in_b: &'s mut BTreeSet<MailboxName>,
    /// A's own spelling of names where it differs.
    pub(super) a_names: &'s BTreeMap<MailboxName, MailboxName>,
}

/// What a rename needs: which side had renamed, which side follows.
enum Found {
    /// A renamed `old` to `new`: rename B's copy.
    OnB { old: MailboxName, new: MailboxName },
    /// B renamed (two-way): rename A's copy.
    OnA { old: MailboxName, new: MailboxName },
    /// Both sides have the new name already (both renamed, or a run died after renaming):
    /// only the saved state moves.
    StateOnly { old: MailboxName, new: MailboxName },
}

/// Applies every rename it finds, updating the sides' name sets and the state. A rename
/// the storage refuses becomes a warning and the merge copies instead. Dry runs rename
/// nothing (they show the delete and the copy).
pub(super) fn follow_renames(
    options: &SyncOptions,
    a: &mut MergeSource<'_>,
    b: &mut dyn StorageMut,
    listed: &mut ListedMailboxes<'_>,
    state: &mut SyncState,
    report: &mut Report,
    observer: &mut dyn Observer,
) {
    if options.dry_run
        || !ComparableGuids::between(a.storage().capabilities(), b.capabilities()).mailboxes
    {
        return;
    }
    let mut refused: BTreeSet<MailboxName> = BTreeSet::new();
    while let Some(found) = find(a, b, listed, state, &refused) {
        let (side, old, new) = match found {
            Found::StateOnly { old, new } => {
                move_state(state, &old, &new);
                observer.checkpoint(state);
                continue;
            }
            Found::OnB { old, new } => (Side::Destination, old, new),
            Found::OnA { old, new } => (Side::Source, old, new),
        };
        let result = match (side, &mut *a) {
            (Side::Destination, _) => b.rename_mailbox(&old, &new),
            (Side::Source, MergeSource::Writable(a)) => {
                let from = listed.a_names.get(&old).cloned().unwrap_or_else(|| a.local_name(&old));
                a.rename_mailbox(&from, &a.local_name(&new))
            }
            (Side::Source, MergeSource::ReadOnly(_)) => continue,
        };
        if let Err(error) = result {
            report.warnings.push(format!(
                "{old} was renamed to {new}, but renaming it on the {side} failed ({error}): \
                 its mail is copied under the new name instead"
            ));
            refused.insert(new);
            continue;
        }
        let moved = match side {
            Side::Destination => &mut *listed.in_b,
            Side::Source => &mut *listed.in_a,
        };
        let names: Vec<MailboxName> = moved.iter().filter(|n| n.is_within(&old)).cloned().collect();
        for name in names {
            moved.remove(&name);
            if let Some(target) = renamed(&name, &old, &new) {
                moved.insert(target);
            }
        }
        move_state(state, &old, &new);
        observer.checkpoint(state);
        report.renamed_mailboxes.push(MailboxRename { side, from: old, to: new });
    }
}

/// The next rename to follow, if any.
fn find(
    a: &mut MergeSource<'_>,
    b: &mut dyn StorageMut,
    listed: &ListedMailboxes<'_>,
    state: &SyncState,
    refused: &BTreeSet<MailboxName>,
) -> Option<Found> {
    let fresh = |name: &&MailboxName| {
        !state.mailboxes.contains_key(*name) && !name.is_inbox() && !refused.contains(*name)
    };
    let a_spelling = |a: &MergeSource<'_>, name: &MailboxName| -> MailboxName {
        match (listed.a_names.get(name), a) {
            (Some(original), _) => original.clone(),
            (None, MergeSource::Writable(a)) => a.local_name(name),
            (None, MergeSource::ReadOnly(_)) => name.clone(),
        }
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
    let candidates: Vec<MailboxName> = listed.in_a.iter().filter(fresh).cloned().collect();
    for new in candidates {
        let in_b = listed.in_b.contains(&new);
        let spelled = a_spelling(a, &new);
        let Some(a_guid) = guid(a.storage(), &spelled) else { continue };
        let b_guid = if in_b { guid(b, &new) } else { None };
        for &(old, seen) in by_source_guid.get(&a_guid).map_or(&[][..], Vec::as_slice) {
            if old.is_inbox() || listed.in_a.contains(old) {
                continue;
            }
            if in_b {
                if b_guid.is_some() && seen.destination_guid == b_guid && !listed.in_b.contains(old)
                {
                    return Some(Found::StateOnly { old: old.clone(), new });
                }
            } else if listed.in_b.contains(old)
                && !new.is_within(old)
                && same_incarnation(b, old, seen.destination_guid)
            {
                return Some(Found::OnB { old: old.clone(), new });
            }
        }
    }
    if a.mode() != MergeMode::TwoWay {
        return None; // one-way: B's own renames stay B's
    }
    let candidates: Vec<MailboxName> =
        listed.in_b.iter().filter(fresh).filter(|n| !listed.in_a.contains(*n)).cloned().collect();
    for new in candidates {
        let Some(b_guid) = guid(b, &new) else { continue };
        for &(old, seen) in by_destination_guid.get(&b_guid).map_or(&[][..], Vec::as_slice) {
            if old.is_inbox()
                || listed.in_b.contains(old)
                || !listed.in_a.contains(old)
                || new.is_within(old)
            {
                continue;
            }
            let a_old = a_spelling(a, old);
            if same_incarnation(a.storage(), &a_old, seen.source_guid) {
                return Some(Found::OnA { old: old.clone(), new });
            }
        }
    }
    None
}

fn guid(storage: &mut dyn Storage, name: &MailboxName) -> Option<MailboxGuid> {
    storage.stamp(name).ok()?.guid
}

/// The mailbox still is the one the state recorded (not deleted and created again).
fn same_incarnation(
    storage: &mut dyn Storage,
    name: &MailboxName,
    recorded: Option<MailboxGuid>,
) -> bool {
    recorded.is_some() && guid(storage, name) == recorded
}

fn renamed(name: &MailboxName, old: &MailboxName, new: &MailboxName) -> Option<MailboxName> {
    let tail = &name.components()[old.components().len()..];
    MailboxName::new(new.components().iter().chain(tail).cloned()).ok()
}

/// Moves the state of `old` and its descendants to the new names (unless something is
/// already recorded there).
fn move_state(state: &mut SyncState, old: &MailboxName, new: &MailboxName) {
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
