//! Saves of one mailbox that the destination already holds elsewhere ([`super::held`])
//! become copies within the destination: one `UID COPY` per mailbox that holds them, the
//! flags set afterwards where the copy must differ, and each copy's UID (`COPYUID`)
//! recorded as a pair exactly as an APPEND's APPENDUID is. A copy whose UID the server
//! did not say is found by content at the next run, as an APPEND without APPENDUID is.

use std::collections::BTreeMap;

use super::copy::Stored;
use super::held::{self, Held, Identity, Split};
use crate::error::StorageError;
use crate::execute::Observer;
use crate::model::{Flags, MailboxName, MessageMeta, SpecialUse, Uid};
use crate::storage::{Storage, StorageMut};

/// Where a mailbox's saves go, and what the destination holds.
pub(super) struct Mailbox<'a> {
    /// Its name on the destination.
    pub(super) name: &'a MailboxName,
    /// Its name on the source.
    pub(super) source_name: &'a MailboxName,
    /// Its special-use roles.
    pub(super) roles: &'a [SpecialUse],
    /// Source and destination UIDVALIDITY.
    pub(super) validities: (u32, u32),
}

/// The identities of the saves, by origin UID, for [`Held::insert`] after they are stored.
pub(super) type SaveIdentities = BTreeMap<Uid, Vec<Identity>>;

/// Splits `saves` into copies of what `held` says the destination holds in another
/// mailbox, and saves that send the body. Reads the source's header hashes of the saves
/// it needs them for (no GUID; on a label destination every save, whose content is then
/// looked up in the all-mail mailbox, read here the first time).
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
) -> Result<(Split, SaveIdentities), StorageError> {
    let mut out = Split::default();
    if !held.enabled() || saves.is_empty() || held.excluded(mailbox.roles) {
        out.sends = saves.to_vec();
        return Ok((out, SaveIdentities::new()));
    }
    let labels = held.labels();
    let wanted: Vec<Uid> = saves
        .iter()
        .filter(|(uid, _)| !known_hashes.contains_key(uid))
        .filter(|(uid, _)| labels || metas.get(uid).is_some_and(|m| m.guid.is_none()))
        .map(|(uid, _)| *uid)
        .collect();
    let fetched = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        source.header_hashes(mailbox.source_name, &wanted)?
    };
    if let Some(all) = held.all_mail_to_read().cloned() {
        if let Err(error) = read_all_mail(held, destination, &all) {
            warnings.push(format!(
                "{all} could not be read to find messages already stored ({error}): they \
                 may be stored again"
            ));
        }
        held.all_mail_read();
    }
    let mut identities = SaveIdentities::new();
    let mut copied_here = std::collections::HashSet::new();
    for (uid, flags) in saves {
        let Some(meta) = metas.get(uid) else {
            out.sends.push((*uid, flags.clone()));
            continue;
        };
        let hash = known_hashes.get(uid).or_else(|| fetched.get(uid)).map(String::as_str);
        let ids = held::identities(meta, hash);
        let place = held.find(&ids, mailbox.name);
        // One copy of a held message per mailbox: a second source message with the same
        // identity here is sent (on labels a second COPY would only name the first).
        match place.filter(|p| copied_here.insert((held.mailbox(p).cloned(), p.uid))) {
            Some(place) => {
                let from = held.mailbox(&place).cloned().unwrap_or_else(|| mailbox.name.clone());
                let differ = Held::flags_differ(&place, flags);
                out.copies.entry(from).or_default().push((place.uid, *uid, flags.clone(), differ));
            }
            None => out.sends.push((*uid, flags.clone())),
        }
        identities.insert(*uid, ids);
    }
    Ok((out, identities))
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
        let hash = hashes.get(&meta.uid).map(String::as_str);
        if let Some(identity) = held::content_identity(meta, hash) {
            held.insert(identity, all, meta.uid, Some(&meta.flags));
        }
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
    identities: &SaveIdentities,
    observer: &mut dyn Observer,
    record: &mut Stored<'_>,
) -> Result<CopiedHere, StorageError> {
    let mut done = CopiedHere::default();
    let mut made: Vec<(Uid, Option<Uid>, Flags)> = Vec::new();
    let mut fixes: Vec<(Uid, Flags)> = Vec::new();
    for (from, copies) in &split.copies {
        let uids: Vec<Uid> = copies.iter().map(|(held_uid, ..)| *held_uid).collect();
        let Some(answer) = destination.copy_within(from, &uids, mailbox.name)? else {
            held.disable();
            done.sends.extend(copies.iter().map(|(_, origin, flags, _)| (*origin, flags.clone())));
            continue;
        };
        let valid = answer.uid_validity.is_none_or(|v| v == mailbox.validities.1);
        let by_held: BTreeMap<Uid, Uid> = answer.uids.into_iter().collect();
        for (held_uid, origin, flags, differ) in copies {
            let new = by_held.get(held_uid).copied().filter(|_| valid);
            if let (Some(new), true) = (new, *differ) {
                fixes.push((new, flags.clone()));
            }
            made.push((*origin, new, flags.clone()));
        }
    }
    if !fixes.is_empty() {
        // The copy came with the held message's flags; these must have the source's.
        // Before the pairs are recorded: a kill in between leaves copies found again by
        // content, never pairs that remember flags the copies do not have.
        let left = super::apply_changes(destination, mailbox.name, &fixes, &[], None)?;
        if !left.flags.is_empty() {
            made.retain(|(_, new, _)| new.is_none_or(|uid| !left.flags.contains(&uid)));
        }
    }
    let excluded = held.excluded(mailbox.roles);
    for (origin, new, flags) in made {
        done.copied += 1;
        done.unknown += u64::from(new.is_none());
        observer.message_saved(mailbox.name, origin, 0);
        record(observer, origin, new);
        if let (Some(new), false) = (new, excluded) {
            for identity in identities.get(&origin).into_iter().flatten() {
                held.insert(*identity, mailbox.name, new, Some(&flags));
            }
        }
    }
    Ok(done)
}
