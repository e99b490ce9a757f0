//! Planning for sources without stable UIDs (POP3): messages are matched by their POP3 UIDL,
//! not by UID. A POP3 message number changes whenever an earlier message is deleted, so
//! the source's "UIDs" are positions; the destination gives new messages its own next UIDs
//! and records each one's UIDL and POP3 order (Dovecot's uidlist `P` and `O`), which is
//! what the destination's POP3 server will then show.

use std::collections::BTreeMap;

use super::{MailboxAction, MailboxPlan};
use crate::filter::MessageFilter;
use crate::model::{MailboxContents, MailboxName, MessageMeta, Uid};

/// Plans one mailbox of a UIDL-identified source.
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
pub fn plan_by_uidl(
    mailbox: &MailboxName,
    source: &MailboxContents,
    destination: Option<&MailboxContents>,
    filter: &MessageFilter,
    expunge_missing: bool,
) -> MailboxPlan {
    let mut plan = MailboxPlan {
        mailbox: mailbox.clone(),
        action: if destination.is_some() { MailboxAction::Update } else { MailboxAction::Create },
        expunge: Vec::new(),
        set_flags: Vec::new(),
        save: Vec::new(),
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
    let present: BTreeMap<&str, Uid> = destination
        .map(|d| d.messages.iter().filter_map(|m| Some((m.pop3_uidl.as_deref()?, m.uid))).collect())
        .unwrap_or_default();
    let wanted: BTreeMap<&str, &MessageMeta> =
        source.messages.iter().filter_map(|m| Some((m.pop3_uidl.as_deref()?, m))).collect();
    if let Some(destination) = destination
        && expunge_missing
    {
        plan.expunge = destination
            .messages
            .iter()
            .filter(|m| filter.wants(m))
            .filter(|m| m.pop3_uidl.as_deref().is_none_or(|uidl| !wanted.contains_key(uidl)))
            .map(|m| m.uid)
            .collect();
    }
    let mut next = destination.map_or(Uid::MIN, next_uid);
    // In the source's order (a POP3 message's "UID" is its position), so the fetch of the
    // saves returns them in the order they are saved.
    let mut ordered: Vec<&MessageMeta> = source.messages.iter().collect();
    ordered.sort_by_key(|m| m.uid);
    for meta in ordered {
        let Some(uidl) = meta.pop3_uidl.as_deref() else { continue };
        if present.contains_key(uidl) || !filter.wants(meta) {
            continue;
        }
        let mut save = meta.clone();
        // The source's number is only its position: remember it as `origin`, and save
        // under the destination's next UID. The copy keeps no GUID: the source has none.
        save.guid = None;
        plan.save.push(MessageMeta { uid: next, ..save });
        next = next.next().unwrap_or(next);
    }
    plan
}

/// The source positions of a plan's saves, in the plan's order (the executor fetches by
/// them): each save's UIDL looked up in the source.
pub fn origins(plan: &MailboxPlan, source: &MailboxContents) -> Vec<Uid> {
    let by_uidl: BTreeMap<&str, Uid> =
        source.messages.iter().filter_map(|m| Some((m.pop3_uidl.as_deref()?, m.uid))).collect();
    plan.save
        .iter()
        .filter_map(|save| save.pop3_uidl.as_deref().and_then(|uidl| by_uidl.get(uidl).copied()))
        .collect()
}

fn next_uid(contents: &MailboxContents) -> Uid {
    let after_last = contents.messages.iter().map(|m| m.uid).max().and_then(Uid::next);
    after_last.map_or(contents.status.uid_next, |after| contents.status.uid_next.max(after))
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
        let plan =
            plan_by_uidl(&inbox, &source, Some(&destination), &MessageFilter::default(), true);
        let saves: Vec<(u32, &str)> =
            plan.save.iter().map(|m| (m.uid.get(), m.pop3_uidl.as_deref().unwrap_or(""))).collect();
        assert_eq!(saves, [(8, "a"), (9, "c")]);
        assert_eq!(origins(&plan, &source), [uid(1), uid(3)]);
        assert_eq!(plan.expunge, [uid(5), uid(6)], "UIDL gone, and no UIDL at all");

        let merge =
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
        let backup = plan_by_uidl(&inbox, &source, Some(&destination), &everything, true);
        assert_eq!(backup.set_guid, Some(MailboxGuid([7; 16])));
        assert!(backup.save.is_empty() && backup.expunge.is_empty());
        let merge = plan_by_uidl(&inbox, &source, Some(&destination), &everything, false);
        assert_eq!(merge.set_guid, None);
        destination.status.guid = source.status.guid;
        assert!(plan_by_uidl(&inbox, &source, Some(&destination), &everything, true).is_empty());
    }

    #[test]
    fn a_missing_mailbox_is_created_and_filled() {
        let source = contents(3, &[(1, Some("x"), 1), (2, Some("y"), 2)]);
        let plan =
            plan_by_uidl(&MailboxName::inbox(), &source, None, &MessageFilter::default(), true);
        assert_eq!(plan.action, MailboxAction::Create);
        assert_eq!(plan.save.iter().map(|m| m.uid.get()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(plan.save[1].pop3_order, Some(2));
    }
}
