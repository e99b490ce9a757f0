//! Per-mailbox merge planning (`sync -1`, `sync`) from both sides' listings as they are
//! read ([`Storage::listing`](crate::Storage::listing)), with the saved base as a third
//! input in UID order, so that neither listing is held whole.
//!
//! With a saved base that applies (both sides at the UIDVALIDITY it was made with),
//! [`plan_merge`] decides each UID the base holds from that UID alone: kept where both
//! sides have it (flags merged three-way against the base), expunged on a side where the
//! other lacks it, remembered in one-way mode where B expunged it. Only the messages the
//! base does not hold, the new mail, are linked across sides by identity and given UIDs,
//! which needs all of them and both sides' UIDNEXT. So [`compare_listed`] walks the three
//! inputs like sorted lists being merged, decides the base's UIDs as it goes and keeps the
//! new mail alone; [`finish`] hands that to [`plan_merge`] with an empty base of the same
//! UIDVALIDITY and joins the two plans. What is held per message of the mailbox is then
//! the base the state records (in, and out), not the listings.
//!
//! The plan is [`plan_merge`]'s on the whole listings (a property test holds them to it).
//! Without a base that applies (the first merge, another UIDVALIDITY on a side, a rebuild)
//! or with a listing not in ascending UID order, the caller plans from the whole listings.

use std::collections::BTreeMap;

use super::mailbox::{MergeMode, MergePlan, MergeView, SidePlan, merge_flags, plan_merge};
use crate::model::{Flags, MailboxContents, MailboxStatus, MessageMeta, Uid};
use crate::plan::backup::streamed::{Ascending, Listed, effective};
use crate::state::{BaseFlags, BaseFlagsBuilder, MergeBase};

/// What comparing both listings with the base decided, and the new mail still to plan
/// ([`finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    mode: MergeMode,
    /// Side A's status as listed.
    pub a_status: MailboxStatus,
    /// Side B's status as listed.
    pub b_status: MailboxStatus,
    /// A's UIDNEXT, above every UID A listed (`plan::effective_uid_next`).
    a_uid_next: Uid,
    /// B's UIDNEXT, likewise.
    b_uid_next: Uid,
    /// The base's UIDVALIDITY and last common UID.
    base: (u32, u32),
    /// A's changes for the UIDs the base holds: flags, expunges.
    a_kept: SidePlan,
    /// B's changes for the UIDs the base holds.
    b_kept: SidePlan,
    /// The base's UIDs that stay common, with the flags to remember, ascending: packed
    /// while the listings are read (a few bytes an entry, where a list took 40 and a
    /// B-tree filled in UID order ~70); [`finish`] makes it the new base.
    common: BaseFlagsBuilder,
    /// A's messages the base does not hold, ascending by UID: their identities are
    /// [`finish`]'s input.
    pub a_new: Vec<MessageMeta>,
    /// B's messages the base does not hold, ascending by UID.
    pub b_new: Vec<MessageMeta>,
    /// With message GUIDs as identities: one message the base holds that has a GUID, per
    /// side. [`plan_merge`] trusts equal UIDs only when neither side has any identity.
    a_identified: Option<(Uid, String)>,
    /// B's, likewise.
    b_identified: Option<(Uid, String)>,
}

/// Compares A's and B's listings with `base` as they are read. `guids`: message GUIDs are
/// the identities (else Dovecot header hashes of the new mail). The base's records are
/// read as the walk goes ([`BaseFlags::records`]: from the state file when still there),
/// not held whole. `Ok(None)` when the base does not apply (a side at another UIDVALIDITY
/// than the base's), its records cannot be read as loaded, or a listing was not in
/// strictly ascending UID order: the caller plans from the whole listings.
pub fn compare_listed<E>(
    mode: MergeMode,
    a: Listed<impl Iterator<Item = Result<MessageMeta, E>>>,
    b: Listed<impl Iterator<Item = Result<MessageMeta, E>>>,
    base: &MergeBase,
    guids: bool,
) -> Result<Option<Compared>, E> {
    let validity = a.status.uid_validity;
    if b.status.uid_validity != validity || base.uid_validity != validity.get() {
        return Ok(None);
    }
    let mut out = Compared {
        mode,
        a_uid_next: a.status.uid_next,
        b_uid_next: b.status.uid_next,
        a_status: a.status,
        b_status: b.status,
        base: (base.uid_validity, base.last_common_uid),
        a_kept: SidePlan::default(),
        b_kept: SidePlan::default(),
        common: BaseFlagsBuilder::new(),
        a_new: Vec::new(),
        b_new: Vec::new(),
        a_identified: None,
        b_identified: None,
    };
    let mut a_messages = Ascending::new(a.messages.peekable());
    let mut b_messages = Ascending::new(b.messages.peekable());
    // Records still in the state file are read as the walk needs them: the base is not
    // held whole. One that cannot be read (or bytes changed since the state was loaded,
    // known at the end) makes the walk void: the caller plans from the whole listings,
    // which read the base again and do without it.
    let mut recorded = base.flags.records().peekable();
    loop {
        let next_recorded = match recorded.peek() {
            Some(Ok((uid, _))) => Some(*uid),
            Some(Err(_)) => return Ok(None),
            None => None,
        };
        let heads = [a_messages.peek_uid()?, b_messages.peek_uid()?, next_recorded];
        let Some(uid) = heads.into_iter().flatten().min() else { break };
        let a_message = a_messages.next_if_uid(uid)?;
        let b_message = b_messages.next_if_uid(uid)?;
        if a_messages.unordered || b_messages.unordered {
            return Ok(None);
        }
        if next_recorded == Some(uid) {
            let Some(Ok((_, base_flags))) = recorded.next() else { return Ok(None) };
            out.common_uid(uid, a_message, b_message, &base_flags, guids);
        } else {
            out.a_new.extend(a_message);
            out.b_new.extend(b_message);
        }
    }
    out.a_uid_next = effective(out.a_uid_next, a_messages.last);
    out.b_uid_next = effective(out.b_uid_next, b_messages.last);
    Ok(Some(out))
}

impl Compared {
    /// A UID the base holds, as [`plan_merge`] decides it.
    fn common_uid(
        &mut self,
        uid: Uid,
        a: Option<MessageMeta>,
        b: Option<MessageMeta>,
        base_flags: &Flags,
        guids: bool,
    ) {
        if guids {
            let first = |identified: &mut Option<(Uid, String)>, message: &Option<MessageMeta>| {
                if identified.is_none() {
                    *identified = message.as_ref().and_then(|m| Some((m.uid, m.guid.clone()?)));
                }
            };
            first(&mut self.a_identified, &a);
            first(&mut self.b_identified, &b);
        }
        let two_way = self.mode == MergeMode::TwoWay;
        match (a, b) {
            (Some(a), Some(b)) => {
                let flags = merge_flags(self.mode, Some(base_flags), &a.flags, &b.flags);
                if two_way && a.flags != flags {
                    self.a_kept.set_flags.push((uid, flags.clone()));
                }
                if b.flags != flags {
                    self.b_kept.set_flags.push((uid, flags.clone()));
                }
                // What to remember as A's flags: the merged ones when A is written.
                self.common.push(uid, if two_way { &flags } else { &a.flags });
            }
            (Some(_), None) if two_way => self.a_kept.expunge.push(uid),
            (Some(a), None) => {
                // One-way: B's own expunge stays; remember it so it is not copied back.
                self.common.push(uid, &a.flags);
            }
            (None, Some(_)) => self.b_kept.expunge.push(uid),
            (None, None) => {}
        }
    }
}

/// The merge plan: the new mail of `compared` planned by [`plan_merge`] (with the
/// identities of [`Compared::a_new`] and [`Compared::b_new`], as
/// `execute::message_identities` gives them), joined with what the comparison decided.
pub fn finish(
    compared: Compared,
    mut a_identities: BTreeMap<Uid, String>,
    mut b_identities: BTreeMap<Uid, String>,
) -> MergePlan {
    let Compared {
        mode,
        a_status,
        b_status,
        a_uid_next,
        b_uid_next,
        base: (uid_validity, last_common_uid),
        a_kept,
        b_kept,
        common,
        a_new,
        b_new,
        a_identified,
        b_identified,
    } = compared;
    // A message the new mail does not list has no effect but to make the map non-empty,
    // as the whole side's map is.
    for (identities, identified) in
        [(&mut a_identities, a_identified), (&mut b_identities, b_identified)]
    {
        if let Some((uid, identity)) = identified {
            identities.entry(uid).or_insert(identity);
        }
    }
    let a = MailboxContents {
        status: MailboxStatus { uid_next: a_uid_next, ..a_status },
        messages: a_new,
    };
    let b = MailboxContents {
        status: MailboxStatus { uid_next: b_uid_next, ..b_status },
        messages: b_new,
    };
    // A base of the same UIDVALIDITY that holds none of the new mail: every message is new,
    // and no side's history is asked, as with the whole base.
    let empty = MergeBase { uid_validity, last_common_uid, flags: BaseFlags::default() };
    let mut plan = plan_merge(
        mode,
        MergeView { contents: &a, identities: &a_identities, history: None },
        MergeView { contents: &b, identities: &b_identities, history: None },
        Some(&empty),
    );
    for (kept, side) in [(a_kept, &mut plan.a), (b_kept, &mut plan.b)] {
        // The base's UIDs come first, as in `plan_merge`; expunges are sorted.
        let mut set_flags = kept.set_flags;
        set_flags.append(&mut side.set_flags);
        side.set_flags = set_flags;
        side.expunge.extend(kept.expunge);
        side.expunge.sort();
        side.expunge.dedup();
    }
    // The new mail's UIDs are not the base's (nothing is overwritten) and come above
    // them: the records stay packed.
    let mut flags = common;
    // `plan_merge` builds its base in memory: there is nothing to read back.
    let new_mail = std::mem::take(&mut plan.next_base.flags).into_map().unwrap_or_default();
    for (uid, new) in &new_mail {
        flags.push(*uid, new);
    }
    plan.next_base.flags = flags.finish();
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::model::{SystemFlags, UidValidity};

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    /// A message: flags, a keyword, a GUID, a header hash (none: the message vanished
    /// before it was hashed).
    fn message() -> impl Strategy<Value = (u8, Option<u8>, Option<u8>, Option<u8>)> {
        (
            0u8..4,
            proptest::option::of(0u8..2),
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..3),
        )
    }

    fn flags(bits: u8, keyword: Option<u8>) -> Flags {
        let mut flags = Flags { system: SystemFlags::from_bits_truncate(bits), ..Flags::default() };
        flags.keywords.extend(keyword.map(|k| format!("k{k}")));
        flags
    }

    /// One side: its listing and its header hashes. UIDs below 12, UIDVALIDITY 7 (rarely
    /// 8), a UIDNEXT that may be below a listed UID (servers get it wrong).
    fn side() -> impl Strategy<Value = (MailboxContents, BTreeMap<Uid, String>)> {
        (
            prop_oneof![9 => Just(7u32), 1 => Just(8u32)],
            1u32..14,
            proptest::collection::btree_map(1u32..12, message(), 0..9),
        )
            .prop_map(|(validity, uid_next, messages)| {
                let status = MailboxStatus::new(
                    UidValidity::new(validity).expect("non-zero"),
                    uid(uid_next),
                    u32::try_from(messages.len()).expect("small"),
                );
                let hashes = messages
                    .iter()
                    .filter_map(|(&n, &(_, _, _, hash))| Some((uid(n), format!("h{}", hash?))))
                    .collect();
                let messages = messages
                    .into_iter()
                    .map(|(n, (bits, keyword, guid, _))| {
                        let mut meta = MessageMeta::new(uid(n), flags(bits, keyword));
                        meta.guid = guid.map(|g| format!("g{g}"));
                        meta.modseq = Some(u64::from(n) * 3);
                        meta
                    })
                    .collect();
                (MailboxContents { status, messages }, hashes)
            })
    }

    /// A base: UIDVALIDITY 7 (rarely 6), UIDs below 12 with flags.
    fn base() -> impl Strategy<Value = MergeBase> {
        (
            prop_oneof![9 => Just(7u32), 1 => Just(6u32)],
            0u32..13,
            proptest::collection::btree_map(1u32..12, (0u8..4, proptest::option::of(0u8..2)), 0..9),
        )
            .prop_map(|(uid_validity, last_common_uid, flags_by_uid)| MergeBase {
                uid_validity,
                last_common_uid,
                flags: flags_by_uid
                    .into_iter()
                    .map(|(n, (bits, keyword))| (uid(n), flags(bits, keyword)))
                    .collect(),
            })
    }

    /// Identities as the executor gives them: every message's GUID, or the header hashes of
    /// the messages in `wanted`.
    fn identities<'m>(
        messages: impl IntoIterator<Item = &'m MessageMeta>,
        hashes: &BTreeMap<Uid, String>,
        guids: bool,
    ) -> BTreeMap<Uid, String> {
        messages
            .into_iter()
            .filter_map(|m| {
                let identity = if guids { m.guid.clone() } else { hashes.get(&m.uid).cloned() };
                Some((m.uid, identity?))
            })
            .collect()
    }

    /// The whole-listing plan as the executor makes it: identities of every message (GUIDs)
    /// or of those the base does not hold (header hashes).
    fn whole(
        mode: MergeMode,
        (a, a_hashes): &(MailboxContents, BTreeMap<Uid, String>),
        (b, b_hashes): &(MailboxContents, BTreeMap<Uid, String>),
        base: &MergeBase,
        guids: bool,
    ) -> MergePlan {
        let known = base.flags.decoded().expect("built in memory");
        let wanted = |m: &&MessageMeta| guids || !known.contains_key(&m.uid);
        let a_identities = identities(a.messages.iter().filter(wanted), a_hashes, guids);
        let b_identities = identities(b.messages.iter().filter(wanted), b_hashes, guids);
        plan_merge(
            mode,
            MergeView { contents: a, identities: &a_identities, history: None },
            MergeView { contents: b, identities: &b_identities, history: None },
            Some(base),
        )
    }

    /// `base` written into a state and read back as a state file is loaded: its records
    /// left in the text ([`BaseFlags`] stored).
    fn stored_copy(base: &MergeBase) -> MergeBase {
        let mut state = crate::state::SyncState::default();
        let entry = crate::state::MailboxState { base: base.clone(), ..Default::default() };
        state.mailboxes.insert(crate::model::MailboxName::inbox(), entry);
        let text = state.encode();
        let mut loaded = crate::state::SyncState::decode_stored(text.as_bytes()).expect("decodes");
        let entry = loaded.mailboxes.remove(&crate::model::MailboxName::inbox()).expect("entry");
        entry.base
    }

    fn streamed(
        mode: MergeMode,
        (a, a_hashes): &(MailboxContents, BTreeMap<Uid, String>),
        (b, b_hashes): &(MailboxContents, BTreeMap<Uid, String>),
        base: &MergeBase,
        guids: bool,
    ) -> Option<MergePlan> {
        let Ok(compared) = compare_listed(mode, Listed::of(a), Listed::of(b), base, guids);
        // The base as a run finds it: records still in the state file, read as it goes.
        let stored = stored_copy(base);
        assert!(stored.flags.decoded().is_none() || base.flags.is_empty());
        let Ok(from_file) = compare_listed(mode, Listed::of(a), Listed::of(b), &stored, guids);
        assert_eq!(from_file, compared);
        let compared = compared?;
        assert_eq!((&compared.a_status, &compared.b_status), (&a.status, &b.status));
        let a_identities = identities(&compared.a_new, a_hashes, guids);
        let b_identities = identities(&compared.b_new, b_hashes, guids);
        Some(finish(compared, a_identities, b_identities))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Comparing the listings with the base as they stream plans exactly what
        /// [`plan_merge`] plans from the whole listings and the base, in both modes and
        /// with the sides either way round; it declines only a base that does not apply.
        #[test]
        fn streamed_merge_plans_like_the_whole_listings(
            a in side(),
            b in side(),
            base in base(),
            guids in any::<bool>(),
        ) {
            for (a, b) in [(&a, &b), (&b, &a)] {
                for mode in [MergeMode::OneWay, MergeMode::TwoWay] {
                    let applies = a.0.status.uid_validity == b.0.status.uid_validity
                        && base.uid_validity == a.0.status.uid_validity.get();
                    let streamed = streamed(mode, a, b, &base, guids);
                    prop_assert_eq!(streamed.is_some(), applies);
                    if let Some(streamed) = streamed {
                        let whole = whole(mode, a, b, &base, guids);
                        prop_assert_eq!(&streamed, &whole, "{:?} guids {}", mode, guids);
                    }
                }
            }
        }
    }

    #[test]
    fn only_the_new_mail_is_kept_and_a_listing_out_of_order_is_refused() {
        let status = MailboxStatus::new(UidValidity::new(7).expect("non-zero"), uid(9), 3);
        let metas = |uids: &[u32]| -> Vec<MessageMeta> {
            uids.iter().map(|&n| MessageMeta::new(uid(n), Flags::default())).collect()
        };
        let a = MailboxContents { status: status.clone(), messages: metas(&[1, 2, 5]) };
        let b = MailboxContents { status, messages: metas(&[1, 3, 6]) };
        let base = MergeBase {
            uid_validity: 7,
            last_common_uid: 4,
            flags: [1, 2, 3].into_iter().map(|n| (uid(n), Flags::default())).collect(),
        };
        let Ok(compared) =
            compare_listed(MergeMode::TwoWay, Listed::of(&a), Listed::of(&b), &base, true);
        let compared = compared.expect("applies");
        let uids = |list: &[MessageMeta]| list.iter().map(|m| m.uid.get()).collect::<Vec<_>>();
        assert_eq!((uids(&compared.a_new), uids(&compared.b_new)), (vec![5], vec![6]));
        let plan = finish(compared, BTreeMap::new(), BTreeMap::new());
        // Both new messages are below the other side's UIDNEXT: they move to 9 and 10.
        assert_eq!(plan.a.expunge, [uid(2), uid(5)]);
        assert_eq!(plan.b.expunge, [uid(3), uid(6)]);
        let flags = plan.next_base.flags.read().expect("built in memory");
        let common: BTreeSet<u32> = flags.keys().map(|u| u.get()).collect();
        assert_eq!(common, BTreeSet::from([1, 9, 10]));

        let mut unordered = b.clone();
        unordered.messages.swap(1, 2);
        let Ok(compared) =
            compare_listed(MergeMode::TwoWay, Listed::of(&a), Listed::of(&unordered), &base, true);
        assert_eq!(compared, None);
        let mut twice = b;
        twice.messages[2].uid = uid(3);
        let Ok(compared) =
            compare_listed(MergeMode::OneWay, Listed::of(&twice), Listed::of(&a), &base, true);
        assert_eq!(compared, None);
    }
}
