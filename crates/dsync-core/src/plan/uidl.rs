//! Planning for sources without stable UIDs (POP3): messages are matched by their POP3 UIDL,
//! not by UID. A POP3 message number changes whenever an earlier message is deleted, so
//! the source's "UIDs" are positions; the destination gives new messages its own next UIDs
//! and records each one's UIDL and POP3 order (Dovecot's uidlist `P` and `O`), which is
//! what the destination's POP3 server will then show.

use std::collections::{BTreeMap, BTreeSet};

use crate::filter::MessageFilter;
use crate::model::{MailboxContents, MailboxName, MessageMeta, Uid};
use crate::plan::{MailboxAction, MailboxPlan, SaveList, effective_uid_next};

/// Plans one mailbox of a UIDL-identified source; returns the plan and, for each of its
/// saves (in order), the source position it is copied from.
///
/// * New (by UIDL) source messages are saved under the destination's next UIDs, in the
///   source's order, with their UIDL and POP3 order and no flags;
/// * destination messages whose UIDL the source still has stay as they are (their flags
///   were set on the destination: POP3 has none);
/// * with `expunge_missing` (backup), destination messages whose UIDL the source no longer
///   lists, or that have no UIDL, are expunged; otherwise (`sync -1`) they stay;
/// * a backup (`expunge_missing`) destination whose mailbox GUID differs from the source's
///   (derived from the name, as Dovecot's pop3c does: [`crate::derived_guid`]) adopts the
///   source's ([`MailboxPlan::set_guid`]); a `sync -1` destination keeps its own.
///
/// A UIDL should name one message, but servers list some twice: such messages are all
/// kept, the n-th one with a UIDL on the source matched with the n-th one on the
/// destination (in UID order), as Dovecot keeps both. [`duplicate_uidls`] names them for a
/// warning.
pub fn plan_by_uidl(
    mailbox: &MailboxName,
    source: &MailboxContents,
    destination: Option<&MailboxContents>,
    filter: &MessageFilter,
    expunge_missing: bool,
) -> (MailboxPlan, Vec<Uid>) {
    let mut plan = MailboxPlan {
        mailbox: mailbox.clone(),
        action: if destination.is_some() { MailboxAction::Update } else { MailboxAction::Create },
        expunge: Vec::new(),
        set_flags: Vec::new(),
        save: SaveList::new(),
        uid_next: None,
        skipped: Vec::new(),
        set_guid: None,
        new_uid_validity: false,
    };
    if let Some(destination) = destination
        && expunge_missing
        && let (Some(wanted), Some(have)) = (source.status.guid, destination.status.guid)
        && wanted != have
    {
        plan.set_guid = Some(wanted);
    }
    let present: BTreeMap<(&str, usize), Uid> = destination
        .map(|d| by_occurrence(&d.messages).map(|(key, m)| (key, m.uid)).collect())
        .unwrap_or_default();
    let wanted: BTreeMap<(&str, usize), &MessageMeta> = by_occurrence(&source.messages).collect();
    if let Some(destination) = destination
        && expunge_missing
    {
        let kept: BTreeSet<Uid> = by_occurrence(&destination.messages)
            .filter(|(key, _)| wanted.contains_key(key))
            .map(|(_, m)| m.uid)
            .collect();
        plan.expunge = destination
            .messages
            .iter()
            .filter(|m| filter.wants(m) && !kept.contains(&m.uid))
            .map(|m| m.uid)
            .collect();
    }
    let mut next = destination.map_or(Uid::MIN, effective_uid_next);
    let mut origins = Vec::new();
    // In the source's order (a POP3 message's "UID" is its position), so the fetch of the
    // saves returns them in the order they are saved.
    for (key, meta) in by_occurrence(&source.messages) {
        if present.contains_key(&key) || !filter.wants(meta) {
            continue;
        }
        let mut save = meta.clone();
        // The source's number is only its position: remember it as the origin, and save
        // under the destination's next UID. The copy keeps no GUID: the source has none.
        save.guid = None;
        origins.push(meta.uid);
        plan.save.push(MessageMeta { uid: next, ..save });
        next = next.next().unwrap_or(next);
    }
    (plan, origins)
}

/// UIDLs that `contents` lists for more than one message, with how many.
pub fn duplicate_uidls(contents: &MailboxContents) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for uidl in contents.messages.iter().filter_map(|m| m.pop3_uidl.as_deref()) {
        *counts.entry(uidl).or_default() += 1;
    }
    counts.into_iter().filter(|(_, n)| *n > 1).map(|(uidl, n)| (uidl.to_owned(), n)).collect()
}

/// Messages with a UIDL in UID order, each keyed by its UIDL and how many messages with
/// the same UIDL come before it.
fn by_occurrence(messages: &[MessageMeta]) -> impl Iterator<Item = ((&str, usize), &MessageMeta)> {
    let mut ordered: Vec<&MessageMeta> =
        messages.iter().filter(|m| m.pop3_uidl.is_some()).collect();
    ordered.sort_by_key(|m| m.uid);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    ordered.into_iter().filter_map(move |meta| {
        let uidl = meta.pop3_uidl.as_deref()?;
        let count = seen.entry(uidl).or_default();
        let key = (uidl, *count);
        *count += 1;
        Some((key, meta))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, MailboxGuid, MailboxStatus, UidValidity};

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    fn contents(uid_next: u32, messages: &[(u32, Option<&str>, u32)]) -> MailboxContents {
        MailboxContents {
            status: MailboxStatus {
                uid_validity: UidValidity::MIN,
                uid_next: uid(uid_next),
                messages: 0,
                highest_modseq: None,
                guid: None,
                change_token: None,
                source_uid_validity: None,
            },
            messages: messages
                .iter()
                .map(|&(n, uidl, order)| {
                    let mut meta = MessageMeta::new(uid(n), Flags::default());
                    meta.pop3_uidl = uidl.map(String::from);
                    meta.pop3_order = Some(order);
                    meta
                })
                .collect(),
        }
    }

    #[test]
    fn new_mail_gets_destination_uids_in_pop3_order() {
        // POP3 numbers 1..3; the destination already has "b" (from an earlier run).
        let source = contents(4, &[(1, Some("a"), 1), (2, Some("b"), 2), (3, Some("c"), 3)]);
        let destination = contents(8, &[(7, Some("b"), 2), (5, Some("gone"), 1), (6, None, 0)]);
        let inbox = MailboxName::inbox();
        let (plan, origins) =
            plan_by_uidl(&inbox, &source, Some(&destination), &MessageFilter::default(), true);
        let saves: Vec<(u32, String)> =
            plan.save.iter().map(|m| (m.uid.get(), m.pop3_uidl.unwrap_or_default())).collect();
        assert_eq!(saves, [(8, "a".to_owned()), (9, "c".to_owned())]);
        assert_eq!(origins, [uid(1), uid(3)]);
        assert_eq!(plan.expunge, [uid(5), uid(6)], "UIDL gone, and no UIDL at all");

        let (merge, _) =
            plan_by_uidl(&inbox, &source, Some(&destination), &MessageFilter::default(), false);
        assert!(merge.expunge.is_empty(), "sync -1 keeps destination-only mail");
        assert_eq!(merge.save.len(), 2);
    }

    #[test]
    fn a_backup_destination_adopts_the_source_guid() {
        let mut source = contents(2, &[(1, Some("x"), 1)]);
        let mut destination = contents(2, &[(1, Some("x"), 1)]);
        source.status.guid = Some(MailboxGuid([7; 16]));
        destination.status.guid = Some(MailboxGuid([1; 16]));
        let inbox = MailboxName::inbox();
        let everything = MessageFilter::default();
        let (backup, _) = plan_by_uidl(&inbox, &source, Some(&destination), &everything, true);
        assert_eq!(backup.set_guid, Some(MailboxGuid([7; 16])));
        assert!(backup.save.is_empty() && backup.expunge.is_empty());
        let (merge, _) = plan_by_uidl(&inbox, &source, Some(&destination), &everything, false);
        assert_eq!(merge.set_guid, None);
        destination.status.guid = source.status.guid;
        assert!(plan_by_uidl(&inbox, &source, Some(&destination), &everything, true).0.is_empty());
    }

    #[test]
    fn duplicate_uidls_are_all_kept_matched_in_order() {
        // The server lists "x" twice; the destination has the first copy (an earlier run
        // saw only one).
        let source = contents(4, &[(1, Some("x"), 1), (2, Some("y"), 2), (3, Some("x"), 3)]);
        let destination = contents(6, &[(5, Some("x"), 1)]);
        let inbox = MailboxName::inbox();
        let everything = MessageFilter::default();
        let (plan, origins) = plan_by_uidl(&inbox, &source, Some(&destination), &everything, true);
        assert!(plan.expunge.is_empty());
        let saves: Vec<(u32, String)> =
            plan.save.iter().map(|m| (m.uid.get(), m.pop3_uidl.unwrap_or_default())).collect();
        assert_eq!(saves, [(6, "y".to_owned()), (7, "x".to_owned())]);
        assert_eq!(origins, [uid(2), uid(3)]);
        assert_eq!(duplicate_uidls(&source), [("x".to_owned(), 2)]);
        // Both copies there: nothing to do; one gone from the server: one copy goes.
        let both = contents(8, &[(5, Some("x"), 1), (6, Some("y"), 2), (7, Some("x"), 3)]);
        assert!(plan_by_uidl(&inbox, &source, Some(&both), &everything, true).0.is_empty());
        let one = contents(3, &[(1, Some("x"), 1), (2, Some("y"), 2)]);
        let (plan, _) = plan_by_uidl(&inbox, &one, Some(&both), &everything, true);
        assert_eq!((plan.expunge, plan.save.len()), (vec![uid(7)], 0));
    }

    #[test]
    fn a_missing_mailbox_is_created_and_filled() {
        let source = contents(3, &[(1, Some("x"), 1), (2, Some("y"), 2)]);
        let (plan, _) =
            plan_by_uidl(&MailboxName::inbox(), &source, None, &MessageFilter::default(), true);
        assert_eq!(plan.action, MailboxAction::Create);
        assert_eq!(plan.save.iter().map(|m| m.uid.get()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(plan.save.iter().nth(1).and_then(|m| m.pop3_order), Some(2));
    }
}
