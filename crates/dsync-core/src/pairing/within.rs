//! Saves of one mailbox that the destination already holds elsewhere ([`super::held`])
//! become copies within the destination: one `UID COPY` per mailbox that holds them, the
//! flags set afterwards where the copy must differ, and each copy's UID (`COPYUID`)
//! recorded as a pair exactly as an APPEND's APPENDUID is. A copy whose UID the server
//! did not say is found by content at the next run, as an APPEND without APPENDUID is.

use std::collections::{BTreeMap, HashSet};

use super::copy::Stored;
use super::held::{self, Copy, Held, Split};
use crate::error::StorageError;
use crate::execute::Observer;
use crate::model::{Flags, MailboxName, MessageMeta, Uid};
use crate::storage::{Storage, StorageMut};

/// Where a mailbox's saves go, and what the destination holds.
pub(super) struct Mailbox<'a> {
    /// Its name on the destination.
    pub(super) name: &'a MailboxName,
    /// Its name on the source.
    pub(super) source_name: &'a MailboxName,
    /// Source and destination UIDVALIDITY.
    pub(super) validities: (u32, u32),
}

/// Splits `saves` into copies of what `held` says the destination holds in another
/// mailbox, and saves that send the body. Asks the source for the header hashes of the
/// saves that need one to be recognised (no GUID, or any on a label destination) and may
/// be held (a message of the same size and received date is); on a label destination
/// reads the all-mail mailbox first, the first time.
#[allow(clippy::too_many_arguments)]
pub(super) fn split(
    held: &mut Held,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    mailbox: &Mailbox<'_>,
    saves: &[(Uid, Flags)],
    metas: &BTreeMap<Uid, &MessageMeta>,
    known_hashes: &BTreeMap<Uid, String>,
    warnings: &mut Vec<String>,
) -> Result<Split, StorageError> {
    let mut out = Split::default();
    if !held.enabled() || saves.is_empty() || held.excluded(mailbox.name) {
        out.sends = saves.to_vec();
        return Ok(out);
    }
    if let Some(all) = held.all_mail_to_read().cloned() {
        if let Err(error) = read_all_mail(held, destination, &all) {
            warnings.push(format!(
                "{all} could not be read to find messages already stored ({error}): they \
                 may be stored again"
            ));
        }
        held.all_mail_read();
    }
    let labels = held.labels();
    let wanted: Vec<Uid> = saves
        .iter()
        .filter(|(uid, _)| !known_hashes.contains_key(uid))
        .filter_map(|(uid, _)| metas.get(uid).map(|meta| (uid, meta)))
        .filter(|(_, meta)| (labels || meta.guid.is_none()) && held.may_hold(meta))
        .map(|(uid, _)| *uid)
        .collect();
    let fetched = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        source.header_hashes(mailbox.source_name, &wanted)?
    };
    let mut copied_here = HashSet::new();
    for (uid, flags) in saves {
        let Some(meta) = metas.get(uid) else {
            out.sends.push((*uid, flags.clone()));
            continue;
        };
        let hash = known_hashes.get(uid).or_else(|| fetched.get(uid));
        let ids = held::identities(meta, hash.map(String::as_str));
        let place = held.find(&ids, mailbox.name);
        // One copy of a held message per mailbox: a second source message with the same
        // identity here is sent (on labels a second COPY would only name the first).
        match place.filter(|p| copied_here.insert((held.mailbox(p).cloned(), p.uid))) {
            Some(place) => {
                let from = held.mailbox(&place).cloned().unwrap_or_else(|| mailbox.name.clone());
                let differ = Held::flags_differ(&place, flags);
                let copy = Copy {
                    held: place.uid,
                    origin: *uid,
                    flags: flags.clone(),
                    differ,
                    hash: hash.cloned(),
                };
                out.copies.entry(from).or_default().push(copy);
            }
            None => out.sends.push((*uid, flags.clone())),
        }
    }
    Ok(out)
}

/// Remembers every message of the label destination's all-mail mailbox by content.
fn read_all_mail(
    held: &mut Held,
    destination: &mut dyn StorageMut,
    all: &MailboxName,
) -> Result<(), StorageError> {
    let contents = destination.contents(all)?;
    let uids: Vec<Uid> = contents.messages.iter().map(|m| m.uid).collect();
    let hashes = destination.header_hashes(all, &uids)?;
    for meta in &contents.messages {
        // Gmail's GUIDs are its own, never the source's: by content only.
        let content = MessageMeta { guid: None, ..meta.clone() };
        let hash = hashes.get(&meta.uid).map(String::as_str);
        held.insert(&content, hash, all, meta.uid, Some(&meta.flags));
    }
    Ok(())
}

/// What [`copy`] did.
#[derive(Debug, Default)]
pub(super) struct CopiedHere {
    /// Copies made.
    pub(super) copied: u64,
    /// Of those, copies whose UID the server did not say.
    pub(super) unknown: u64,
    /// Saves to send after all: the destination cannot copy.
    pub(super) sends: Vec<(Uid, Flags)>,
}

/// Makes the copies of `split` into `mailbox`, sets the flags the copies must have, then
/// records each copy as a pair (`record`: origin UID, its UID here) and in `held`.
pub(super) fn copy(
    held: &mut Held,
    destination: &mut dyn StorageMut,
    mailbox: &Mailbox<'_>,
    split: &Split,
    metas: &BTreeMap<Uid, &MessageMeta>,
    observer: &mut dyn Observer,
    record: &mut Stored<'_>,
) -> Result<CopiedHere, StorageError> {
    let mut done = CopiedHere::default();
    let mut made: Vec<(&Copy, Option<Uid>)> = Vec::new();
    let mut fixes: Vec<(Uid, Flags)> = Vec::new();
    for (from, copies) in &split.copies {
        let uids: Vec<Uid> = copies.iter().map(|copy| copy.held).collect();
        let Some(answer) = destination.copy_within(from, &uids, mailbox.name)? else {
            held.disable();
            done.sends.extend(copies.iter().map(|copy| (copy.origin, copy.flags.clone())));
            continue;
        };
        let valid = answer.uid_validity.is_none_or(|v| v == mailbox.validities.1);
        let by_held: BTreeMap<Uid, Uid> = answer.uids.into_iter().collect();
        for copy in copies {
            let new = by_held.get(&copy.held).copied().filter(|_| valid);
            if let (Some(new), true) = (new, copy.differ) {
                fixes.push((new, copy.flags.clone()));
            }
            made.push((copy, new));
        }
    }
    if !fixes.is_empty() {
        // The copy came with the held message's flags; these must have the source's.
        // Before the pairs are recorded: a kill in between leaves copies found again by
        // content, never pairs that remember flags the copies do not have.
        let left = super::apply_changes(destination, mailbox.name, &fixes, &[], None)?;
        if !left.flags.is_empty() {
            made.retain(|(_, new)| new.is_none_or(|uid| !left.flags.contains(&uid)));
        }
    }
    let excluded = held.excluded(mailbox.name);
    for (copy, new) in made {
        done.copied += 1;
        done.unknown += u64::from(new.is_none());
        observer.message_saved(mailbox.name, copy.origin, 0);
        let hash = copy.hash.as_deref();
        record(observer, copy.origin, new, hash);
        if let (Some(new), false, Some(meta)) = (new, excluded, metas.get(&copy.origin)) {
            held.insert(meta, hash, mailbox.name, new, Some(&copy.flags));
        }
    }
    Ok(done)
}
