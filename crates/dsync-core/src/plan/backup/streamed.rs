//! Per-mailbox planning of a backup from both sides' listings as they are read
//! ([`Storage::listing`](crate::Storage::listing)): both come in ascending UID order, so
//! they are compared like two sorted lists being merged and neither is held whole. What
//! the comparison keeps per message is only what the plan and the run's record need: the
//! messages to save, the UIDs to expunge and re-flag, and (without message filters) each
//! source message's flags, the base a later run starts from.
//!
//! The plan is [`plan_mailbox`]'s on the same listings (a property test holds them to
//! it). A rebuild that is decided before any message is compared (no destination mailbox,
//! another UIDVALIDITY or mailbox GUID) collects its saves in the same pass; one found
//! while comparing (a UID conflict, a UID the destination can no longer assign, a
//! destination ahead of the source) needs every source message, which the comparison did
//! not keep: [`Compared::relist`] then asks for the source to be listed again, and
//! [`rebuild_listed`] plans the rebuild from that listing.
//!
//! [`plan_mailbox`]: super::plan_mailbox

use std::collections::BTreeSet;
use std::iter::Peekable;

use super::mailbox::{empty_plan, holds_uids_of};
use crate::filter::MessageFilter;
use crate::model::{Flags, MailboxName, MailboxStatus, MessageMeta, Uid};
use crate::plan::{ComparableGuids, MailboxAction, MailboxPlan, RecreateReason};
use crate::report::FilteredMessages;
use crate::state::{BaseFlags, BaseFlagsBuilder, MergeBase};

/// One side's listing as it is read: its status, then its messages.
#[derive(Debug)]
pub struct Listed<I> {
    /// The status, consistent with the messages.
    pub status: MailboxStatus,
    /// The messages, in ascending UID order.
    pub messages: I,
}

#[cfg(test)]
impl Listed<std::vec::IntoIter<Result<MessageMeta, std::convert::Infallible>>> {
    /// A whole listing read as a stream (tests of the streamed planners).
    pub(crate) fn of(contents: &crate::model::MailboxContents) -> Self {
        let messages: Vec<_> = contents.messages.iter().cloned().map(Ok).collect();
        Listed { status: contents.status.clone(), messages: messages.into_iter() }
    }
}

/// What comparing the listings decided, and what the run records of the source's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The plan. With [`Compared::relist`] a rebuild whose saves are still to be collected.
    pub plan: MailboxPlan,
    /// The source's status as listed.
    pub source_status: MailboxStatus,
    /// Every listed source message's flags, when the filter is everything (else empty).
    pub flags: BaseFlags,
    /// The source messages the filter left out.
    pub filtered: FilteredMessages,
    /// UIDs both sides hold that no earlier run confirmed to be the same message, to be
    /// compared by header hash when GUIDs cannot tell ([`settle`]).
    pub suspects: Vec<Uid>,
    /// The plan is a rebuild found while comparing: list the source again and plan it with
    /// [`rebuild_listed`].
    pub relist: bool,
    /// The destination's flags of the messages the plan expunges or re-flags, as listed
    /// (for [`MailboxWriter::believe_flags`](crate::MailboxWriter::believe_flags)).
    pub believed: Vec<(Uid, Flags)>,
}

/// How the comparison treats UIDs both sides hold.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// Which GUIDs tell messages and mailboxes apart.
    pub guids: ComparableGuids,
    /// Collect [`Compared::suspects`] (message GUIDs cannot tell): common UIDs above the
    /// last UID `previous` left in common, when it is of the source's UIDVALIDITY.
    pub check_hashes: bool,
    /// The base the last run recorded.
    pub previous: Option<&'a MergeBase>,
}

/// Compares the source's and the destination's listings (`None`: the mailbox does not
/// exist there) as they are read. `Ok(None)` when a listing was not in strictly ascending
/// UID order: the caller plans from whole listings instead.
pub fn compare_listed<E>(
    mailbox: &MailboxName,
    source: Listed<impl Iterator<Item = Result<MessageMeta, E>>>,
    destination: Option<Listed<impl Iterator<Item = Result<MessageMeta, E>>>>,
    filter: &MessageFilter,
    identity: Identity<'_>,
) -> Result<Option<Compared>, E> {
    let filtered = !filter.is_everything();
    let Some(destination) = destination else {
        return rebuild_listed(mailbox, source, MailboxAction::Create, false, filter);
    };
    let (source_status, destination_status) = (&source.status, &destination.status);
    let holds_source_uids = holds_uids_of(destination_status, source_status);
    // A filtered run never rebuilds: that would delete mail outside the filter.
    let early = |reason: RecreateReason| {
        if filtered {
            (MailboxAction::Blocked(reason), false)
        } else {
            (MailboxAction::Recreate(reason), holds_source_uids)
        }
    };
    if !holds_source_uids {
        let (action, new_uid_validity) = early(RecreateReason::UidValidityChanged {
            source: source_status.uid_validity,
            destination: destination_status.uid_validity,
        });
        return rebuild_listed(mailbox, source, action, new_uid_validity, filter);
    }
    let mut set_guid = None;
    if let (Some(a), Some(b)) = (source_status.guid, destination_status.guid)
        && a != b
    {
        if identity.guids.mailboxes {
            let (action, new_uid_validity) = early(RecreateReason::GuidChanged);
            return rebuild_listed(mailbox, source, action, new_uid_validity, filter);
        }
        set_guid = Some(a);
    }
    let confirmed = identity
        .previous
        .filter(|base| base.uid_validity == source_status.uid_validity.get())
        .map_or(0, |base| base.last_common_uid);
    let check_hashes = identity.check_hashes;

    let mut out = Compared {
        plan: MailboxPlan { set_guid, ..empty_plan(mailbox) },
        source_status: source.status.clone(),
        flags: BaseFlags::new(),
        filtered: FilteredMessages::default(),
        suspects: Vec::new(),
        relist: false,
        believed: Vec::new(),
    };
    let destination_uid_next_listed = destination.status.uid_next;
    let mut theirs = Ascending::new(destination.messages.peekable());
    let mut ours = Ascending::new(source.messages.peekable());
    let mut flags = BaseFlagsBuilder::new();
    // The first message that makes the mailbox need a rebuild, and why: from then on the
    // comparison only reads on, for the highest UIDs.
    let mut reason: Option<RecreateReason> = None;
    while let Some(wanted) = ours.next()? {
        count_source(&mut out, &mut flags, filter, &wanted);
        // Destination messages below it: the source no longer has them.
        while let Some(existing) = theirs.next_below(wanted.uid)? {
            if filter.wants(&existing) {
                out.plan.expunge.push(existing.uid);
                out.believed.push((existing.uid, existing.flags));
            }
        }
        let existing = theirs.next_if_uid(wanted.uid)?;
        if reason.is_some() || !filter.wants(&wanted) {
            continue;
        }
        match existing {
            Some(existing) => {
                let guids_differ = matches!(
                    (identity.guids.messages, &wanted.guid, &existing.guid),
                    (true, Some(a), Some(b)) if a != b
                );
                if guids_differ {
                    reason = Some(RecreateReason::UidConflict(wanted.uid));
                    continue;
                }
                if check_hashes && wanted.uid.get() > confirmed {
                    out.suspects.push(wanted.uid);
                }
                if existing.flags != wanted.flags {
                    out.plan.set_flags.push((wanted.uid, wanted.flags));
                    out.believed.push((existing.uid, existing.flags));
                }
            }
            // Below the destination's UIDNEXT: it lists a higher UID, or says so.
            None if theirs.peek_uid()?.is_some() || wanted.uid < destination_uid_next_listed => {
                if filtered {
                    out.plan.skipped.push(wanted.uid);
                } else {
                    reason = Some(RecreateReason::UidNotAssignable(wanted.uid));
                }
            }
            None => out.plan.save.push(wanted),
        }
    }
    while let Some(existing) = theirs.next()? {
        if filter.wants(&existing) {
            out.plan.expunge.push(existing.uid);
            out.believed.push((existing.uid, existing.flags));
        }
    }
    if ours.unordered || theirs.unordered {
        return Ok(None);
    }
    let source_uid_next = effective(source_status.uid_next, ours.last);
    let destination_uid_next = effective(destination_uid_next_listed, theirs.last);
    // The listings (a Maildir's view of its folder) go before the base is built.
    drop((ours, theirs));
    out.flags = flags.finish();
    if destination_uid_next > source_uid_next {
        out.suspects.clear();
        reason = Some(RecreateReason::DestinationAhead {
            source: source_uid_next,
            destination: destination_uid_next,
        });
    }
    if let Some(reason) = reason {
        late_rebuild(&mut out, reason, filtered);
        return Ok(Some(out));
    }
    if source_uid_next > destination_uid_next {
        out.plan.uid_next = Some(source_uid_next);
    }
    Ok(Some(out))
}

/// Applies what the header hashes found: `differing` (of [`Compared::suspects`]) name
/// different messages on the two sides, a UID conflict like a GUID mismatch. The first in
/// UID order decides, unless the comparison already found a reason at a lower UID.
pub fn settle(compared: &mut Compared, differing: &BTreeSet<Uid>, filter: &MessageFilter) {
    let Some(&first) = compared.suspects.iter().find(|uid| differing.contains(uid)) else {
        return;
    };
    let earlier = match &compared.plan.action {
        MailboxAction::Recreate(reason) | MailboxAction::Blocked(reason) => match reason {
            RecreateReason::UidConflict(uid) | RecreateReason::UidNotAssignable(uid) => {
                *uid < first
            }
            _ => true,
        },
        MailboxAction::Update | MailboxAction::Create => false,
    };
    if !earlier {
        late_rebuild(compared, RecreateReason::UidConflict(first), !filter.is_everything());
    }
    compared.suspects.clear();
}

/// The plan of a rebuild (`action`) from the source's listing: every message the filter
/// wants is saved. `Ok(None)` when the listing was not in ascending UID order.
pub fn rebuild_listed<E>(
    mailbox: &MailboxName,
    source: Listed<impl Iterator<Item = Result<MessageMeta, E>>>,
    action: MailboxAction,
    new_uid_validity: bool,
    filter: &MessageFilter,
) -> Result<Option<Compared>, E> {
    let blocked = matches!(action, MailboxAction::Blocked(_));
    let mut out = Compared {
        plan: MailboxPlan { action, new_uid_validity, ..empty_plan(mailbox) },
        source_status: source.status,
        flags: BaseFlags::new(),
        filtered: FilteredMessages::default(),
        suspects: Vec::new(),
        relist: false,
        believed: Vec::new(),
    };
    let mut ours = Ascending::new(source.messages.peekable());
    let mut flags = BaseFlagsBuilder::new();
    while let Some(message) = ours.next()? {
        count_source(&mut out, &mut flags, filter, &message);
        if !blocked && filter.wants(&message) {
            out.plan.save.push(message);
        }
    }
    if ours.unordered {
        return Ok(None);
    }
    if !blocked {
        out.plan.uid_next = Some(effective(out.source_status.uid_next, ours.last));
    }
    drop(ours);
    out.flags = flags.finish();
    Ok(Some(out))
}

/// Turns `out` into the rebuild `reason` calls for: blocked with message filters, else a
/// rebuild whose saves the source's second listing gives ([`Compared::relist`]).
fn late_rebuild(out: &mut Compared, reason: RecreateReason, filtered: bool) {
    let mailbox = out.plan.mailbox.clone();
    if filtered {
        out.plan = MailboxPlan { action: MailboxAction::Blocked(reason), ..empty_plan(&mailbox) };
        out.relist = false;
    } else {
        out.plan = MailboxPlan {
            action: MailboxAction::Recreate(reason),
            new_uid_validity: true,
            ..empty_plan(&mailbox)
        };
        out.relist = true;
    }
}

/// Counts a listed source message into what the run records: its flags into `flags`
/// (the base, in UID order), or what the filter left out.
fn count_source(
    out: &mut Compared,
    flags: &mut BaseFlagsBuilder,
    filter: &MessageFilter,
    message: &MessageMeta,
) {
    if filter.is_everything() {
        flags.push(message.uid, &message.flags);
    } else {
        out.filtered.add(FilteredMessages::of(filter, [message]));
    }
}

/// UIDNEXT as listed, but above the highest UID listed (`plan::effective_uid_next`).
pub(crate) fn effective(uid_next: Uid, last: Option<Uid>) -> Uid {
    last.and_then(Uid::next).map_or(uid_next, |after| uid_next.max(after))
}

/// A listing read in order, noting a UID at or below the one before it.
pub(crate) struct Ascending<I: Iterator> {
    messages: Peekable<I>,
    /// The highest UID read so far.
    pub(crate) last: Option<Uid>,
    /// A UID came at or below the one before it.
    pub(crate) unordered: bool,
}

impl<E, I: Iterator<Item = Result<MessageMeta, E>>> Ascending<I> {
    pub(crate) fn new(messages: Peekable<I>) -> Self {
        Ascending { messages, last: None, unordered: false }
    }

    pub(crate) fn next(&mut self) -> Result<Option<MessageMeta>, E> {
        let Some(message) = self.messages.next().transpose()? else { return Ok(None) };
        if self.last.is_some_and(|last| message.uid <= last) {
            self.unordered = true;
        }
        self.last = Some(self.last.map_or(message.uid, |last| last.max(message.uid)));
        Ok(Some(message))
    }

    /// The next message's UID (an error stays for [`Self::next`] to return).
    pub(crate) fn peek_uid(&mut self) -> Result<Option<Uid>, E> {
        match self.messages.peek() {
            Some(Ok(message)) => Ok(Some(message.uid)),
            Some(Err(_)) => self.next().map(|message| message.map(|m| m.uid)),
            None => Ok(None),
        }
    }

    /// The next message, when its UID is below `uid`.
    fn next_below(&mut self, uid: Uid) -> Result<Option<MessageMeta>, E> {
        match self.peek_uid()? {
            Some(next) if next < uid => self.next(),
            _ => Ok(None),
        }
    }

    /// The next message, when its UID is `uid`.
    pub(crate) fn next_if_uid(&mut self, uid: Uid) -> Result<Option<MessageMeta>, E> {
        match self.peek_uid()? {
            Some(next) if next == uid => self.next(),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use proptest::prelude::*;

    use super::*;
    use crate::filter::FlagCondition;
    use crate::model::{MailboxContents, MailboxGuid, SystemFlags, UidValidity};
    use crate::plan::backup::plan_mailbox;

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    fn message() -> impl Strategy<Value = (u8, Option<u8>, Option<u8>, i64)> {
        (0u8..4, proptest::option::of(0u8..2), proptest::option::of(0u8..3), 0i64..3)
    }

    /// A listing: UIDs below 12 with flags, a keyword, a GUID and a date; UIDVALIDITY
    /// 1 or 2; a UIDNEXT that may be below a listed UID (servers get it wrong).
    fn contents() -> impl Strategy<Value = MailboxContents> {
        (
            1u32..3,
            proptest::option::of(1u32..3),
            1u32..14,
            proptest::option::of(0u8..2),
            proptest::collection::btree_map(1u32..12, message(), 0..8),
        )
            .prop_map(|(validity, source_validity, uid_next, guid, messages)| {
                let mut status = MailboxStatus::new(
                    UidValidity::new(validity).expect("non-zero"),
                    uid(uid_next),
                    u32::try_from(messages.len()).expect("small"),
                );
                status.guid = guid.map(|g| MailboxGuid([g; 16]));
                status.source_uid_validity = source_validity.and_then(UidValidity::new);
                let messages = messages
                    .into_iter()
                    .map(|(n, (bits, keyword, guid, received))| {
                        let mut flags = Flags {
                            system: SystemFlags::from_bits_truncate(bits),
                            ..Flags::default()
                        };
                        flags.keywords.extend(keyword.map(|k| format!("k{k}")));
                        let mut meta = MessageMeta::new(uid(n), flags);
                        meta.guid = guid.map(|g| format!("g{g}"));
                        meta.received = Some(received);
                        meta
                    })
                    .collect();
                MailboxContents { status, messages }
            })
    }

    fn filter() -> impl Strategy<Value = MessageFilter> {
        prop_oneof![
            Just(MessageFilter::default()),
            (proptest::option::of(0i64..3), proptest::option::of(0u8..2)).prop_map(
                |(received_since, flag)| MessageFilter {
                    received_since,
                    flag: flag.map(|f| FlagCondition::With(format!("k{f}"))),
                    ..MessageFilter::default()
                }
            ),
        ]
    }

    /// The streamed plan as the executor makes it: compare, settle the header hashes,
    /// list the source again for a rebuild found while comparing.
    fn streamed(
        source: &MailboxContents,
        destination: Option<&MailboxContents>,
        filter: &MessageFilter,
        guids: ComparableGuids,
        differing: &BTreeSet<Uid>,
    ) -> Compared {
        let inbox = MailboxName::inbox();
        let identity = Identity { guids, check_hashes: !guids.messages, previous: None };
        let Ok(compared) = compare_listed(
            &inbox,
            Listed::of(source),
            destination.map(Listed::of),
            filter,
            identity,
        );
        let mut compared = compared.expect("ascending");
        settle(&mut compared, differing, filter);
        if compared.relist {
            let action = compared.plan.action.clone();
            let Ok(rebuilt) = rebuild_listed(&inbox, Listed::of(source), action, true, filter);
            compared = rebuilt.expect("ascending");
        }
        compared
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Comparing the listings as they stream plans exactly what [`plan_mailbox`] plans
        /// from the whole listings, and records the same source flags and filter counts.
        #[test]
        fn streamed_comparison_plans_like_the_whole_listings(
            source in contents(),
            destination in proptest::option::of(contents()),
            filter in filter(),
            messages in any::<bool>(),
            mailboxes in any::<bool>(),
            differing in proptest::collection::btree_set(1u32..12, 0..3),
        ) {
            let guids = ComparableGuids { messages, mailboxes };
            let differing: BTreeSet<Uid> = differing.into_iter().map(uid).collect();
            // The old planner was handed only the differing UIDs the executor looked for.
            let suspected: BTreeSet<Uid> = match &destination {
                Some(destination) if !messages => {
                    let held: BTreeSet<Uid> = destination.messages.iter().map(|m| m.uid).collect();
                    source.messages.iter()
                        .filter(|m| held.contains(&m.uid) && filter.wants(m))
                        .map(|m| m.uid)
                        .filter(|u| differing.contains(u))
                        .collect()
                }
                _ => BTreeSet::new(),
            };
            let whole = plan_mailbox(
                &MailboxName::inbox(), &source, destination.as_ref(), &filter, guids, &suspected,
            );
            let streamed = streamed(&source, destination.as_ref(), &filter, guids, &differing);
            prop_assert_eq!(&streamed.plan, &whole);
            prop_assert!(!streamed.relist);
            prop_assert_eq!(&streamed.source_status, &source.status);
            let flags: BTreeMap<Uid, Flags> = if filter.is_everything() {
                source.messages.iter().map(|m| (m.uid, m.flags.clone())).collect()
            } else {
                BTreeMap::new()
            };
            prop_assert_eq!(streamed.flags, BaseFlags::from(flags));
            prop_assert_eq!(streamed.filtered, FilteredMessages::of(&filter, &source.messages));
        }
    }

    #[test]
    fn a_listing_out_of_order_is_refused() {
        let mut source = MailboxContents {
            status: MailboxStatus::new(UidValidity::MIN, uid(5), 2),
            messages: vec![
                MessageMeta::new(uid(3), Flags::default()),
                MessageMeta::new(uid(2), Flags::default()),
            ],
        };
        let identity =
            Identity { guids: ComparableGuids::default(), check_hashes: false, previous: None };
        let inbox = MailboxName::inbox();
        let everything = MessageFilter::default();
        let Ok(compared) = compare_listed(
            &inbox,
            Listed::of(&source),
            Some(Listed::of(&source)),
            &everything,
            identity,
        );
        assert_eq!(compared, None);
        let Ok(compared) = compare_listed(
            &inbox,
            Listed::of(&source),
            None::<Listed<std::vec::IntoIter<Result<MessageMeta, Infallible>>>>,
            &everything,
            identity,
        );
        assert_eq!(compared, None);
        source.messages.swap(0, 1);
        let Ok(compared) = compare_listed(
            &inbox,
            Listed::of(&source),
            Some(Listed::of(&source)),
            &everything,
            identity,
        );
        assert!(compared.expect("ascending").plan.is_empty());
    }
}
