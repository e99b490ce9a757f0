//! Per-mailbox planning of a re-run from the source's changes alone
//! ([`Storage::changes_since`](crate::Storage::changes_since)), without listing either side.

use std::collections::BTreeMap;

use crate::model::{Flags, MailboxGuid, MailboxName, Uid};
use crate::plan::{MailboxAction, MailboxPlan};
use crate::state::{BaseView, MergeBase};
use crate::storage::MailboxChanges;

/// Plans one mailbox for `backup` from what changed on the source since the last run, when
/// the destination is known to hold exactly `base` (the last backup's messages and flags:
/// it ran without message filters, nothing vanished during its copy, and the destination's
/// change token has not moved since). The plan is the one [`plan_mailbox`] makes from both
/// sides' full listings; `None` when the change set alone cannot decide it (another
/// UIDVALIDITY, a differing mailbox GUID, a source UIDNEXT below the destination's, a
/// message the source now lists below the destination's UIDNEXT that the destination
/// lacks, a message count that the changes do not explain, a base whose records are still
/// in the state file: [`MergeBase::read`] them first): the caller then lists both sides.
///
/// [`plan_mailbox`]: crate::plan::plan_mailbox
pub fn plan_delta(
    mailbox: &MailboxName,
    base: &MergeBase,
    changes: &MailboxChanges,
    destination_guid: Option<MailboxGuid>,
) -> Option<MailboxPlan> {
    let view = BaseView::from_map(base.flags.decoded()?);
    let base_numbers = (base.uid_validity, base.last_common_uid);
    plan_delta_in(mailbox, base_numbers, &view, changes, destination_guid)
}

/// [`plan_delta`] from a base's UIDVALIDITY and last common UID and its records to look up
/// ([`BaseFlags::view`](crate::state::BaseFlags::view): also records still in the state
/// file, not decoded). `None` also when a record cannot be read.
pub fn plan_delta_in(
    mailbox: &MailboxName,
    (uid_validity, last_common_uid): (u32, u32),
    flags: &BaseView<'_>,
    changes: &MailboxChanges,
    destination_guid: Option<MailboxGuid>,
) -> Option<MailboxPlan> {
    let status = &changes.status;
    if status.uid_validity.get() != uid_validity {
        return None;
    }
    if matches!((status.guid, destination_guid), (Some(a), Some(b)) if a != b) {
        return None;
    }
    // The destination's UIDNEXT after the last run, and the source's now, each as the
    // full planner takes it (`effective_uid_next`): above every UID listed.
    let destination_uid_next = flags
        .last_below(None)
        .and_then(Uid::next)
        .map_or(last_common_uid.saturating_add(1), |after| {
            after.get().max(last_common_uid.saturating_add(1))
        });
    let mut source_uid_next = status.uid_next.get();
    for meta in &changes.changed {
        source_uid_next = source_uid_next.max(meta.uid.get().saturating_add(1));
    }
    // The highest UID of the base that did not vanish.
    let mut highest = flags.last_below(None);
    while let Some(uid) = highest {
        match changes.vanished.iter().find(|&&(first, last)| first <= uid && uid <= last) {
            Some(&(first, _)) => highest = flags.last_below(Some(first)),
            None => break,
        }
    }
    if let Some(highest) = highest {
        source_uid_next = source_uid_next.max(highest.get().saturating_add(1));
    }
    if destination_uid_next > source_uid_next {
        return None;
    }
    let mut plan = MailboxPlan::unchanged(mailbox.clone());
    let changed: BTreeMap<Uid, &crate::model::MessageMeta> =
        changes.changed.iter().map(|meta| (meta.uid, meta)).collect();
    for &(first, last) in &changes.vanished {
        plan.expunge.extend(flags.range(first, last).into_iter().filter(|uid| {
            // Listed as changed too: the server holds it after all.
            !changed.contains_key(uid)
        }));
    }
    plan.expunge.sort_unstable();
    plan.expunge.dedup();
    for (uid, meta) in changed {
        match flags.get(uid).ok()? {
            Some(flags) if flags != meta.flags => plan.set_flags.push((uid, meta.flags.clone())),
            Some(_) => {}
            None if uid.get() < destination_uid_next => return None,
            None => plan.save.push(meta.clone()),
        }
    }
    // A server that lost its history without saying so (mod-sequences started again
    // above ours) shows here when its count of messages disagrees with the changes.
    let count = (flags.len() - plan.expunge.len() + plan.save.len()) as u64;
    if count != u64::from(status.messages) {
        return None;
    }
    if source_uid_next > destination_uid_next {
        plan.uid_next = Uid::new(source_uid_next);
    }
    debug_assert_eq!(plan.action, MailboxAction::Update);
    Some(plan)
}

/// The messages and flags the source holds after `changes`, given that it held `flags`
/// (the base's): the base the run records once the plan is applied.
pub fn base_after(
    mut flags: BTreeMap<Uid, Flags>,
    changes: &MailboxChanges,
) -> BTreeMap<Uid, Flags> {
    for &(first, last) in &changes.vanished {
        let gone: Vec<Uid> = flags.range(first..=last).map(|(uid, _)| *uid).collect();
        for uid in gone {
            flags.remove(&uid);
        }
    }
    for meta in &changes.changed {
        flags.insert(meta.uid, meta.flags.clone());
    }
    flags
}
