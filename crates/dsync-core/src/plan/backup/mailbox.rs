//! Per-mailbox planning: messages to save, expunge and re-flag, and when to rebuild.

use std::collections::{BTreeMap, BTreeSet};

use crate::filter::MessageFilter;
use crate::model::{MailboxContents, MailboxName, MailboxStatus, MessageMeta, Uid};
use crate::plan::{
    ComparableGuids, MailboxAction, MailboxPlan, RecreateReason, SaveList, effective_uid_next,
};

/// Plans one mailbox for `backup`. `destination` is `None` when the mailbox does not exist
/// there yet.
///
/// Backup rules (Dovecot's `dsync-mailbox-import.c` for a backup receiver, flags as in its
/// `merge_flags`): UIDVALIDITY and UIDs are the source's. Within one UIDVALIDITY a
/// UID never names two messages (RFC 3501 §2.3.1.1), so equal UIDs are the same message
/// unless both sides have persistent GUIDs that differ. Message GUIDs are compared only
/// with `guids.messages` (both storages'
/// [`Capabilities::message_guids`](crate::Capabilities::message_guids)): an IMAP source's
/// GUIDs travel with its messages but mean nothing next to the GUIDs a destination written
/// before gave them. Mailbox GUIDs likewise only with `guids.mailboxes`; a source GUID
/// derived from the name (IMAP, POP3: [`crate::derived_guid`]) that differs from the
/// destination's is adopted instead ([`MailboxPlan::set_guid`]), so that Dovecot reading
/// the same source agrees with the destination. The destination is rebuilt when its
/// UIDVALIDITY or (comparable) GUID differs, when it is ahead of the source (UIDNEXT), or
/// when a source message would need a UID below the destination's UIDNEXT. Otherwise:
/// destination-only UIDs are expunged, differing flags are replaced, source-only UIDs are
/// saved. `RFC822.SIZE` is never used to judge identity: servers report it wrongly.
///
/// A UID never names two messages under one UIDVALIDITY, also across rebuilds: a rebuild
/// that would put the source's UIDs back under the UIDVALIDITY the destination mailbox
/// already has (it was ahead, a UID is missing, a UID conflicts) takes a new UIDVALIDITY of
/// the destination's instead ([`MailboxPlan::new_uid_validity`]); the rebuilt mailbox
/// remembers the source's ([`MailboxStatus::source_uid_validity`]), and from then on the
/// two are taken as one. Dovecot's backup recreates such a mailbox under the same
/// UIDVALIDITY (and fails for ever on INBOX); `docs/design.md` has both rules.
///
/// [`MailboxStatus::source_uid_validity`]: crate::MailboxStatus::source_uid_validity
///
/// With a message `filter`, only source messages inside it are copied or re-flagged, and
/// only destination messages inside it (judged by their own metadata) may be expunged; a
/// mailbox that would need rebuilding is [`MailboxAction::Blocked`] instead, and a message
/// that would need a UID below the destination's UIDNEXT is listed in
/// [`MailboxPlan::skipped`].
///
/// `differing` lists UIDs the caller found to name different messages on the two sides by
/// other means (Dovecot's header hash, for UIDs the destination may have given out itself
/// since the last run): each is a [`RecreateReason::UidConflict`] like a GUID mismatch.
pub fn plan_mailbox(
    mailbox: &MailboxName,
    source: &MailboxContents,
    destination: Option<&MailboxContents>,
    filter: &MessageFilter,
    guids: ComparableGuids,
    differing: &BTreeSet<Uid>,
) -> MailboxPlan {
    backup(mailbox, source, destination, filter, guids, differing)
}

fn backup(
    mailbox: &MailboxName,
    source: &MailboxContents,
    destination: Option<&MailboxContents>,
    filter: &MessageFilter,
    guids: ComparableGuids,
    differing: &BTreeSet<Uid>,
) -> MailboxPlan {
    let filtered = !filter.is_everything();
    let source_uid_next = effective_uid_next(source);
    // A filtered run never rebuilds: that would delete mail outside the filter.
    // A rebuild under the UIDVALIDITY the destination holds the source's UIDs under would
    // give out again the UIDs it gave its own messages: it takes a new one instead.
    let holds_source_uids = destination.is_some_and(|d| holds_uids_of(&d.status, &source.status));
    let rebuild = |action: MailboxAction| -> MailboxPlan {
        match action {
            MailboxAction::Recreate(reason) if filtered => {
                MailboxPlan { action: MailboxAction::Blocked(reason), ..empty_plan(mailbox) }
            }
            action => MailboxPlan {
                new_uid_validity: holds_source_uids && action != MailboxAction::Create,
                ..rebuild(mailbox, source, source_uid_next, action, filter)
            },
        }
    };
    let Some(destination) = destination else {
        return rebuild(MailboxAction::Create);
    };
    let destination_uid_next = effective_uid_next(destination);
    let (source_status, destination_status) = (&source.status, &destination.status);

    if !holds_source_uids {
        return rebuild(MailboxAction::Recreate(RecreateReason::UidValidityChanged {
            source: source_status.uid_validity,
            destination: destination_status.uid_validity,
        }));
    }
    // A GUID derived from the source's name is no identity (it changes with a rename on
    // the server, as Dovecot's does): a destination that holds another one keeps its mail
    // and takes the source's GUID.
    let mut set_guid = None;
    if let (Some(a), Some(b)) = (source_status.guid, destination_status.guid)
        && a != b
    {
        if guids.mailboxes {
            return rebuild(MailboxAction::Recreate(RecreateReason::GuidChanged));
        }
        set_guid = Some(a);
    }
    if destination_uid_next > source_uid_next {
        return rebuild(MailboxAction::Recreate(RecreateReason::DestinationAhead {
            source: source_uid_next,
            destination: destination_uid_next,
        }));
    }

    let destination_by_uid: BTreeMap<Uid, &MessageMeta> =
        destination.messages.iter().map(|m| (m.uid, m)).collect();
    let source_by_uid: BTreeMap<Uid, &MessageMeta> =
        source.messages.iter().map(|m| (m.uid, m)).collect();

    let mut plan = MailboxPlan { set_guid, ..empty_plan(mailbox) };
    // A destination message goes when the source no longer has its UID at all; with a
    // filter, only when the destination's own copy is inside the filter.
    plan.expunge = destination_by_uid
        .iter()
        .filter(|(uid, existing)| !source_by_uid.contains_key(*uid) && filter.wants(existing))
        .map(|(uid, _)| *uid)
        .collect();
    for (uid, wanted) in source_by_uid.iter().filter(|(_, m)| filter.wants(m)) {
        match destination_by_uid.get(uid) {
            Some(existing) => {
                let guids_differ = matches!(
                    (guids.messages, &wanted.guid, &existing.guid),
                    (true, Some(a), Some(b)) if a != b
                );
                if guids_differ || differing.contains(uid) {
                    return rebuild(MailboxAction::Recreate(RecreateReason::UidConflict(*uid)));
                }
                if existing.flags != wanted.flags {
                    plan.set_flags.push((*uid, wanted.flags.clone()));
                }
            }
            None if *uid < destination_uid_next => {
                if filtered {
                    plan.skipped.push(*uid);
                } else {
                    return rebuild(MailboxAction::Recreate(RecreateReason::UidNotAssignable(
                        *uid,
                    )));
                }
            }
            None => plan.save.push((*wanted).clone()),
        }
    }
    if source_uid_next > destination_uid_next {
        plan.uid_next = Some(source_uid_next);
    }
    plan
}

/// True when `destination` holds its messages under the source's UIDs: it has the
/// source's UIDVALIDITY, or one of its own that stands for it (a backup rebuilt it).
pub(crate) fn holds_uids_of(destination: &MailboxStatus, source: &MailboxStatus) -> bool {
    destination.uid_validity == source.uid_validity
        || destination.source_uid_validity == Some(source.uid_validity)
}

pub(super) fn empty_plan(mailbox: &MailboxName) -> MailboxPlan {
    MailboxPlan {
        mailbox: mailbox.clone(),
        action: MailboxAction::Update,
        expunge: Vec::new(),
        set_flags: Vec::new(),
        save: SaveList::new(),
        uid_next: None,
        skipped: Vec::new(),
        set_guid: None,
        new_uid_validity: false,
    }
}

/// Copies every (wanted) source message into a new or emptied mailbox.
fn rebuild(
    mailbox: &MailboxName,
    source: &MailboxContents,
    uid_next: Uid,
    action: MailboxAction,
    filter: &MessageFilter,
) -> MailboxPlan {
    let mut save: Vec<MessageMeta> =
        source.messages.iter().filter(|m| filter.wants(m)).cloned().collect();
    save.sort_by_key(|m| m.uid);
    let save = save.into_iter().collect();
    MailboxPlan { action, save, uid_next: Some(uid_next), ..empty_plan(mailbox) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, MailboxGuid, MailboxStatus, SystemFlags, UidValidity};

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    fn contents(
        uid_validity: u32,
        uid_next: u32,
        messages: &[(u32, SystemFlags)],
    ) -> MailboxContents {
        MailboxContents {
            status: MailboxStatus {
                uid_validity: UidValidity::new(uid_validity).expect("non-zero"),
                uid_next: uid(uid_next),
                messages: u32::try_from(messages.len()).expect("small"),
                highest_modseq: None,
                guid: None,
                change_token: None,
                source_uid_validity: None,
            },
            messages: messages
                .iter()
                .map(|&(n, system)| {
                    MessageMeta::new(uid(n), Flags { system, keywords: BTreeSet::default() })
                })
                .collect(),
        }
    }

    fn plan(source: &MailboxContents, destination: Option<&MailboxContents>) -> MailboxPlan {
        let guids = ComparableGuids { messages: true, mailboxes: true };
        let none = BTreeSet::new();
        plan_mailbox(
            &MailboxName::inbox(),
            source,
            destination,
            &MessageFilter::default(),
            guids,
            &none,
        )
    }

    const SEEN: SystemFlags = SystemFlags::SEEN;
    const NONE: SystemFlags = SystemFlags::empty();

    #[test]
    fn missing_mailbox_is_created_with_everything() {
        let source = contents(7, 10, &[(2, SEEN), (5, NONE)]);
        let plan = plan(&source, None);
        assert_eq!(plan.action, MailboxAction::Create);
        assert_eq!(plan.save.iter().map(|m| m.uid.get()).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(plan.uid_next, Some(uid(10)));
    }

    #[test]
    fn update_expunges_reflags_and_appends() {
        let source = contents(7, 12, &[(1, SEEN), (2, SEEN), (10, NONE), (11, NONE)]);
        let destination = contents(7, 10, &[(1, SEEN), (2, NONE), (3, NONE)]);
        let plan = plan(&source, Some(&destination));
        assert_eq!(plan.action, MailboxAction::Update);
        assert_eq!(plan.expunge, [uid(3)]);
        assert_eq!(
            plan.set_flags.iter().map(|(u, f)| (u.get(), f.system)).collect::<Vec<_>>(),
            [(2, SEEN)]
        );
        assert_eq!(plan.save.iter().map(|m| m.uid.get()).collect::<Vec<_>>(), [10, 11]);
        assert_eq!(plan.uid_next, Some(uid(12)));
    }

    #[test]
    fn identical_mailboxes_need_nothing() {
        let source = contents(7, 12, &[(1, SEEN), (4, NONE)]);
        assert!(plan(&source, Some(&source.clone())).is_empty());
    }

    #[test]
    fn rebuild_reasons() {
        let source = contents(7, 12, &[(1, SEEN), (4, NONE)]);
        let cases = [
            (contents(8, 12, &[(1, SEEN)]), "UIDVALIDITY"),
            (contents(7, 13, &[(1, SEEN)]), "beyond"),
            (contents(7, 5, &[(1, SEEN)]), "UID 4 is missing"),
        ];
        for (destination, why) in cases {
            let plan = plan(&source, Some(&destination));
            let MailboxAction::Recreate(reason) = &plan.action else {
                panic!("expected recreate for {why}")
            };
            assert!(reason.to_string().contains(why), "{reason}");
            assert_eq!(plan.save.len(), 2);
            assert_eq!(plan.uid_next, Some(uid(12)));
        }
    }

    #[test]
    fn guid_mismatches_rebuild_but_missing_guids_do_not() {
        let mut source = contents(7, 3, &[(1, SEEN)]);
        let mut destination = source.clone();
        destination.status.guid = Some(MailboxGuid([1; 16]));
        assert!(plan(&source, Some(&destination)).is_empty(), "one side without GUID: no opinion");
        source.status.guid = Some(MailboxGuid([2; 16]));
        assert_eq!(
            plan(&source, Some(&destination)).action,
            MailboxAction::Recreate(RecreateReason::GuidChanged)
        );

        let mut source = contents(7, 3, &[(1, SEEN)]);
        let mut destination = source.clone();
        source.messages[0].guid = Some("a".into());
        destination.messages[0].guid = Some("b".into());
        assert_eq!(
            plan(&source, Some(&destination)).action,
            MailboxAction::Recreate(RecreateReason::UidConflict(uid(1)))
        );
    }

    #[test]
    fn a_derived_source_guid_is_adopted_not_rebuilt() {
        // An IMAP source (GUIDs derived from names) and a Maildir written by an older
        // version with a random GUID: same mail, so only the GUID changes.
        let mut source = contents(7, 3, &[(1, SEEN)]);
        let mut destination = source.clone();
        source.status.guid = Some(MailboxGuid([2; 16]));
        destination.status.guid = Some(MailboxGuid([1; 16]));
        let derived = ComparableGuids { messages: false, mailboxes: false };
        let inbox = MailboxName::inbox();
        let everything = MessageFilter::default();
        let plan = plan_mailbox(
            &inbox,
            &source,
            Some(&destination),
            &everything,
            derived,
            &BTreeSet::new(),
        );
        assert_eq!(plan.action, MailboxAction::Update);
        assert_eq!(plan.set_guid, Some(MailboxGuid([2; 16])));
        assert!(!plan.is_empty());
        assert_eq!(MailboxPlan { set_guid: None, ..plan }, empty_plan(&inbox));

        // Alongside other changes; and nothing once the GUIDs agree.
        source.messages.push(MessageMeta::new(uid(3), Flags::default()));
        source.status.uid_next = uid(4);
        let plan = plan_mailbox(
            &inbox,
            &source,
            Some(&destination),
            &everything,
            derived,
            &BTreeSet::new(),
        );
        assert_eq!((plan.set_guid, plan.save.len()), (Some(MailboxGuid([2; 16])), 1));
        destination.status.guid = source.status.guid;
        let plan = plan_mailbox(
            &inbox,
            &source,
            Some(&destination),
            &everything,
            derived,
            &BTreeSet::new(),
        );
        assert_eq!(plan.set_guid, None);
        // A destination without GUIDs is not given one.
        destination.status.guid = None;
        let plan = plan_mailbox(
            &inbox,
            &source,
            Some(&destination),
            &everything,
            derived,
            &BTreeSet::new(),
        );
        assert_eq!(plan.set_guid, None);
    }

    #[test]
    fn uid_next_below_existing_uid_is_corrected() {
        // A server reporting UIDNEXT 3 while UID 5 exists: plan as if UIDNEXT were 6.
        let source = contents(7, 3, &[(5, NONE)]);
        assert_eq!(plan(&source, None).uid_next, Some(uid(6)));
    }
}
