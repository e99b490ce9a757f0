//! Following a folder rename on one side with a `RENAME` on the other ([`renames`] decides
//! what is a rename; this reads what it needs and applies it), so that the folder's mail
//! is not copied again.

use std::collections::{BTreeMap, BTreeSet};

use super::Origin;
use super::renames::{self, Evidence, Rename};
use crate::error::Side;
use crate::execute::Observer;
use crate::model::{MailboxContents, MailboxInfo, MailboxName};
use crate::report::{MailboxRename, Report};
use crate::state::SyncState;
use crate::state::pairs::entry_record;
use crate::storage::StorageMut;

/// Both sides' listings (destination spelling), changed as renames are followed, and
/// how the run treats renames.
pub(super) struct Listings<'a> {
    /// Renames are followed both ways (else only the source's).
    pub(super) two_way: bool,
    /// Nothing is renamed: the renamed subtrees are left out of the plan instead.
    pub(super) dry_run: bool,
    pub(super) source: &'a mut Vec<MailboxInfo>,
    pub(super) destination: &'a mut Vec<MailboxInfo>,
    /// Source spelling by destination spelling.
    pub(super) source_names: &'a BTreeMap<MailboxName, MailboxName>,
}

impl Listings<'_> {
    fn of(&self, side: Side) -> &[MailboxInfo] {
        if side == Side::Source { self.source } else { self.destination }
    }

    fn names(&self, side: Side) -> BTreeSet<MailboxName> {
        self.of(side).iter().map(|info| info.name.clone()).collect()
    }

    fn source_name(&self, name: &MailboxName) -> MailboxName {
        self.source_names.get(name).cloned().unwrap_or_else(|| name.clone())
    }
}

/// Finds the folders renamed on a side whose renames this run follows and renames them on
/// the other side, moving their pairs (children's too) to the new names. Whatever is
/// unsure is left as it was: a delete and a create.
pub(super) fn follow_renames(
    source: &mut Origin<'_>,
    destination: &mut dyn StorageMut,
    state: &mut SyncState,
    report: &mut Report,
    listings: &mut Listings<'_>,
    observer: &mut dyn Observer,
) {
    let (a_names, b_names) = (listings.names(Side::Source), listings.names(Side::Destination));
    let candidates = renames::candidates(&state.pairs, &a_names, &b_names, listings.two_way);
    if candidates.gone.is_empty() || candidates.appeared.is_empty() {
        return;
    }
    let mut appeared = Vec::new();
    for (side, name) in &candidates.appeared {
        let status = match side {
            Side::Source => source.storage().status(&listings.source_name(name)),
            Side::Destination => destination.status(name),
        };
        if let Ok(status) = status {
            appeared.push((*side, name.clone(), status.uid_validity.get()));
        }
    }
    for rename in renames::match_renames(&state.pairs, &candidates.gone, &appeared) {
        let Some(evidence) = subtree_evidence(source, destination, state, listings, &rename) else {
            continue;
        };
        if evidence != Evidence::For {
            continue;
        }
        apply(source, destination, state, report, listings, observer, &rename);
    }
}

/// The name `known` (a name the state knows, within `rename.from`) has on `side` now.
fn current(rename: &Rename, side: Side, known: &MailboxName) -> MailboxName {
    match rename.renamed_on.iter().find(|(s, _)| *s == side) {
        Some((_, to)) => renames::moved(known, &rename.from, to),
        None => known.clone(),
    }
}

/// The evidence of every folder of the subtree the state knows; `None` when the
/// listings make the rename unsure (a name left under the old one on the renamed side, or
/// the new name taken on the side to rename).
fn subtree_evidence(
    source: &mut Origin<'_>,
    destination: &mut dyn StorageMut,
    state: &SyncState,
    listings: &Listings<'_>,
    rename: &Rename,
) -> Option<Evidence> {
    let (x, _) = rename.renamed_on.first()?;
    let x = *x;
    let y = if x == Side::Source { Side::Destination } else { Side::Source };
    for (side, _) in &rename.renamed_on {
        if listings.of(*side).iter().any(|info| info.name.is_within(&rename.from)) {
            return None;
        }
    }
    if let Some((follow, _)) = &rename.follow
        && listings.of(*follow).iter().any(|info| info.name.is_within(&rename.to))
    {
        return None;
    }
    if let Some((Side::Source, old)) = &rename.follow
        && (listings.source_name(old) != *old
            || destination.local_name(&rename.to) != rename.to
            || source.writable().is_none())
    {
        // Its spelling on the source is not known for sure.
        return None;
    }
    let mut evidence = Evidence::Nothing;
    for (known, entry) in state.pairs.range(rename.from.clone()..) {
        if !known.is_within(&rename.from) {
            break;
        }
        let (on_x, on_y) = (current(rename, x, known), current(rename, y, known));
        let listed = |side: Side, name: &MailboxName| {
            listings.of(side).iter().any(|info| info.name == *name && info.selectable)
        };
        if !listed(x, &on_x) || !listed(y, &on_y) {
            continue;
        }
        let read = |side: Side,
                    name: &MailboxName,
                    source: &mut Origin<'_>,
                    destination: &mut dyn StorageMut|
         -> Option<MailboxContents> {
            match side {
                Side::Source => source.storage().contents(&listings.source_name(name)).ok(),
                Side::Destination => destination.contents(name).ok(),
            }
        };
        let renamed = read(x, &on_x, source, destination)?;
        let other = read(y, &on_y, source, destination)?;
        evidence = evidence.and(renames::evidence(entry, x, &renamed, &other));
    }
    Some(evidence)
}

/// Renames the folder on the side that follows, then moves the pairs and the listing.
fn apply(
    source: &mut Origin<'_>,
    destination: &mut dyn StorageMut,
    state: &mut SyncState,
    report: &mut Report,
    listings: &mut Listings<'_>,
    observer: &mut dyn Observer,
    rename: &Rename,
) {
    if let Some((side, old)) = &rename.follow {
        if !listings.dry_run {
            let result = match side {
                Side::Source => match source.writable() {
                    Some(writable) => {
                        writable.rename_mailbox(&listings.source_name(old), &rename.to)
                    }
                    None => return,
                },
                Side::Destination => destination.rename_mailbox(old, &rename.to),
            };
            if let Err(error) = result {
                report.warnings.push(format!(
                    "{} was renamed to {}, but renaming it on the {} failed ({error}): its mail \
                     is copied again instead",
                    rename.from,
                    rename.to,
                    if *side == Side::Source { "source" } else { "destination" },
                ));
                return;
            }
        }
        let list =
            if *side == Side::Source { &mut *listings.source } else { &mut *listings.destination };
        if listings.dry_run {
            // Nothing renamed: the subtree is left out of the dry run's plan on both
            // sides rather than shown as copied.
            list.retain(|info| !info.name.is_within(old));
        } else {
            for info in list.iter_mut() {
                if info.name.is_within(old) {
                    info.name = renames::moved(&info.name, old, &rename.to);
                }
            }
        }
        report.renamed_mailboxes.push(MailboxRename {
            side: *side,
            from: old.clone(),
            to: rename.to.clone(),
        });
    }
    if listings.dry_run {
        for (side, _) in &rename.renamed_on {
            let list = if *side == Side::Source {
                &mut *listings.source
            } else {
                &mut *listings.destination
            };
            list.retain(|info| !info.name.is_within(&rename.to));
        }
        return;
    }
    // The pairs under the new names, in the saved state too (a run stopped later must
    // not take the folder for a new one). Subscriptions are left to the subscription
    // sync: what the renamed side subscribed and unsubscribed travels as any change.
    let moved: Vec<MailboxName> =
        state.pairs.keys().filter(|name| name.is_within(&rename.from)).cloned().collect();
    for name in moved {
        if let Some(entry) = state.pairs.remove(&name) {
            let to = renames::moved(&name, &rename.from, &rename.to);
            observer.paired(&SyncState::forget_record(&name), state);
            observer.paired(&entry_record(&to, &entry), state);
            state.pairs.insert(to, entry);
        }
    }
}
