//! Folders renamed on a side since the last run, told apart from a delete plus a create:
//! pure, from both listings, the state's pairs and what the executor reads of the
//! candidates.
//!
//! IMAP has no folder identity, but a Dovecot `RENAME` keeps the folder's UIDVALIDITY and
//! UIDs, and the state remembers both per paired folder. A folder the state knows (`old`)
//! that one side (the renamed side) no longer lists, while that side lists a name the state
//! does not know and the other side does not have (`new`) under the same UIDVALIDITY, is
//! a rename candidate ([`candidates`], then [`match_renames`]): only a unique match counts,
//! in both directions, since some servers give every folder the same UIDVALIDITY. The
//! message evidence then decides ([`evidence`]): the pairs' UIDs on the renamed side must
//! be there in `new` with the sizes and received dates of their counterparts on the other
//! side, at least one of them, and none may disagree. A rename moves the children with it
//! (IMAP `RENAME` does), so the evidence of a subtree counts together. Anything unsure
//! falls back to a delete and a create, which copies the mail again but loses nothing.
//!
//! Both sides renamed the same folder to different names: Dovecot's dsync renames the side
//! with the older rename (by its mailbox log's timestamps); IMAP gives no such time, so
//! this is a tie, and the side named first (A, the source) wins, as in Dovecot's other
//! ties: B's folder is renamed to A's name.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Side;
use crate::model::{MailboxContents, MailboxName, Uid};
use crate::state::pairs::MailboxPairs;

/// A folder the state knows that a side no longer lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    /// Its name in the state (the destination's spelling).
    pub name: MailboxName,
    /// The sides that no longer list it (one, or both).
    pub sides: Vec<Side>,
}

/// What may be a rename: folders gone, and the new names each side lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Known folders gone from a side whose renames are followed.
    pub gone: Vec<Gone>,
    /// Per side, names it lists that the state does not know and the other side lacks
    /// (their UIDVALIDITY is to be read).
    pub appeared: Vec<(Side, MailboxName)>,
}

/// A rename found: `from` became `to` on `side`, and the other side follows with a
/// `RENAME` (unless it is `None`: both sides renamed it to the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The name the state knows.
    pub from: MailboxName,
    /// The new name (on both sides once applied).
    pub to: MailboxName,
    /// The side that renamed it, whose evidence is checked.
    pub renamed_on: Vec<(Side, MailboxName)>,
    /// The side to rename `follow.1` → `to` on, if any.
    pub follow: Option<(Side, MailboxName)>,
}

/// Sides as map keys (`Side` has no order).
fn is_source(side: Side) -> bool {
    side == Side::Source
}

/// Both known and different.
fn disagree<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x != y)
}

/// The side that is not `side`.
fn other(side: Side) -> Side {
    if side == Side::Source { Side::Destination } else { Side::Source }
}

/// Which sides' renames a run follows: both in a two-way run, else the source's.
fn followed(two_way: bool) -> &'static [Side] {
    if two_way { &[Side::Source, Side::Destination] } else { &[Side::Source] }
}

/// Known folders gone from a followed side, and the names each followed side gained.
/// `a` and `b`: every name each side lists (`\Noselect` ones too).
pub fn candidates(
    known: &BTreeMap<MailboxName, MailboxPairs>,
    a: &BTreeSet<MailboxName>,
    b: &BTreeSet<MailboxName>,
    two_way: bool,
) -> Candidates {
    let sides = followed(two_way);
    let lists = |side: Side| if side == Side::Source { a } else { b };
    let mut out = Candidates::default();
    for name in known.keys().filter(|name| !name.is_inbox()) {
        let gone: Vec<Side> =
            sides.iter().copied().filter(|side| !lists(*side).contains(name)).collect();
        // In a one-way run the destination must still have it (to rename).
        if !gone.is_empty() && (two_way || b.contains(name)) {
            out.gone.push(Gone { name: name.clone(), sides: gone });
        }
    }
    if out.gone.is_empty() {
        return out;
    }
    for &side in sides {
        let other = lists(other(side));
        for name in lists(side) {
            if !known.contains_key(name) && !other.contains(name) && !name.is_inbox() {
                out.appeared.push((side, name.clone()));
            }
        }
    }
    out
}

/// The renames the UIDVALIDITYs make unique: `appeared` with each name's UIDVALIDITY on its
/// side (names whose status could not be read left out). A subtree's children come with
/// their parent's rename and are not listed apart.
pub fn match_renames(
    known: &BTreeMap<MailboxName, MailboxPairs>,
    gone: &[Gone],
    appeared: &[(Side, MailboxName, u32)],
) -> Vec<Rename> {
    let validity = |entry: &MailboxPairs, side: Side| {
        if side == Side::Source {
            entry.source_uid_validity
        } else {
            entry.destination_uid_validity
        }
    };
    // For each (gone name, side): the appeared names on that side with its UIDVALIDITY.
    let mut found: BTreeMap<(MailboxName, bool), Vec<&MailboxName>> = BTreeMap::new();
    // For each appeared name: how many gone names claim it.
    let mut claims: BTreeMap<(bool, &MailboxName), usize> = BTreeMap::new();
    for item in gone {
        let Some(entry) = known.get(&item.name) else { continue };
        for &side in &item.sides {
            let matches: Vec<&MailboxName> = appeared
                .iter()
                .filter(|(s, _, v)| *s == side && *v == validity(entry, side))
                .map(|(_, name, _)| name)
                .collect();
            for name in &matches {
                *claims.entry((is_source(side), *name)).or_default() += 1;
            }
            found.insert((item.name.clone(), is_source(side)), matches);
        }
    }
    let unique = |from: &MailboxName, side: Side| -> Option<MailboxName> {
        match found.get(&(from.clone(), is_source(side))).map(Vec::as_slice) {
            Some([to]) if claims.get(&(is_source(side), *to)) == Some(&1) => Some((*to).clone()),
            _ => None,
        }
    };
    let mut renames: Vec<Rename> = Vec::new();
    for item in gone {
        let targets: Vec<(Side, MailboxName)> = item
            .sides
            .iter()
            .filter_map(|&side| unique(&item.name, side).map(|to| (side, to)))
            .collect();
        if targets.len() != item.sides.len() {
            continue;
        }
        let rename = match targets.as_slice() {
            [(side, to)] => Rename {
                from: item.name.clone(),
                to: to.clone(),
                renamed_on: targets.clone(),
                follow: Some((other(*side), item.name.clone())),
            },
            [(_, a), (_, b)] if a == b => Rename {
                from: item.name.clone(),
                to: a.clone(),
                renamed_on: targets.clone(),
                follow: None,
            },
            [(Side::Source, a), (Side::Destination, b)] => Rename {
                from: item.name.clone(),
                to: a.clone(),
                renamed_on: targets.clone(),
                follow: Some((Side::Destination, b.clone())),
            },
            _ => continue,
        };
        renames.push(rename);
    }
    // Children move with their parent: a rename implied by an ancestor's is not one of
    // its own; one that disagrees with its ancestor's makes both unsure.
    let mut implied = BTreeSet::new();
    let mut unsure = BTreeSet::new();
    for parent in &renames {
        for child in &renames {
            if child.from != parent.from && child.from.is_within(&parent.from) {
                if moved(&child.from, &parent.from, &parent.to) == child.to
                    && same_sides(child, parent)
                {
                    implied.insert(child.from.clone());
                } else {
                    unsure.insert(parent.from.clone());
                    unsure.insert(child.from.clone());
                }
            }
        }
    }
    renames.retain(|r| !implied.contains(&r.from) && !unsure.contains(&r.from));
    renames
}

fn same_sides(child: &Rename, parent: &Rename) -> bool {
    let sides = |r: &Rename| r.renamed_on.iter().map(|(side, _)| *side).collect::<Vec<_>>();
    sides(child) == sides(parent)
}

/// `name`, within `from`, moved below `to`.
pub fn moved(name: &MailboxName, from: &MailboxName, to: &MailboxName) -> MailboxName {
    let rest = &name.components()[from.components().len()..];
    MailboxName::new(to.components().iter().chain(rest).cloned()).unwrap_or_else(|_| to.clone())
}

/// What a folder's messages say about a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// At least one pair's messages are there on both sides and agree; none disagrees.
    For,
    /// Nothing to compare (no pairs, or none left on both sides).
    Nothing,
    /// A pair's message is missing where it must be, or differs in size or date.
    Against,
}

impl Evidence {
    /// The evidence of a subtree: against if any part is, else for if any part is.
    #[must_use]
    pub fn and(self, other: Evidence) -> Evidence {
        match (self, other) {
            (Evidence::Against, _) | (_, Evidence::Against) => Evidence::Against,
            (Evidence::For, _) | (_, Evidence::For) => Evidence::For,
            _ => Evidence::Nothing,
        }
    }
}

/// Whether `renamed` (the folder's contents under its new name on `side`) is the folder
/// `entry` paired with `other` (its contents under the old name on the other side):
/// same UIDVALIDITY as the pairs were made under on both sides, and each pair whose
/// message the other side still has finds its counterpart in `renamed` with the same size
/// and received date where both are known. A message the renamed side expunged since is
/// not evidence against (its expunge travels later); a missing counterpart of a pair both
/// UIDs of which are below the renamed side's UIDNEXT is.
pub fn evidence(
    entry: &MailboxPairs,
    side: Side,
    renamed: &MailboxContents,
    other: &MailboxContents,
) -> Evidence {
    let (own_validity, other_validity) = if side == Side::Source {
        (entry.source_uid_validity, entry.destination_uid_validity)
    } else {
        (entry.destination_uid_validity, entry.source_uid_validity)
    };
    if renamed.status.uid_validity.get() != own_validity
        || other.status.uid_validity.get() != other_validity
    {
        return Evidence::Against;
    }
    let by_uid = |contents: &MailboxContents| -> BTreeMap<Uid, (Option<u64>, Option<i64>)> {
        contents.messages.iter().map(|m| (m.uid, (m.virtual_size, m.received))).collect()
    };
    let (mine, theirs) = (by_uid(renamed), by_uid(other));
    let mut agreeing = 0_usize;
    for (source, pair) in &entry.pairs {
        let (own, counterpart) = if side == Side::Source {
            (*source, pair.destination)
        } else {
            (pair.destination, *source)
        };
        if own >= renamed.status.uid_next {
            // A UID the renamed folder never gave out: not the same folder.
            return Evidence::Against;
        }
        let (Some(here), Some(there)) = (mine.get(&own), theirs.get(&counterpart)) else {
            continue;
        };
        if disagree(here.0, there.0) || disagree(here.1, there.1) {
            return Evidence::Against;
        }
        if here.0.is_some() && there.0.is_some() {
            agreeing += 1;
        }
    }
    if agreeing > 0 { Evidence::For } else { Evidence::Nothing }
}

#[cfg(test)]
#[path = "renames_tests.rs"]
mod tests;
