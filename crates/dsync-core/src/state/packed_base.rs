//! A base a run builds, kept in memory a few bytes a record: [`BaseFlagsBuilder`].
//!
//! A backup records every source message's flags as the base a later `sync -1` starts
//! from, and holds it until the state file is written. As a `BTreeMap<Uid, Flags>` that is
//! ~36 bytes a message (38 MB at a million); as the UIDs' differences and an index into
//! the distinct flag sets it is 2–4 bytes.

use std::collections::BTreeMap;

use super::BaseFlags;
use crate::model::{Flags, Uid};
use crate::packed::{FlagSets, get_unsigned, put_unsigned};

/// Records in ascending UID order, each as the difference from the UID before and the
/// index of its flag set.
#[derive(Debug, Clone, Default)]
pub(super) struct PackedRecords {
    bytes: Vec<u8>,
    flag_sets: FlagSets,
    count: usize,
    last: u32,
}

impl PackedRecords {
    /// How many records there are.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// The records in ascending UID order, the flags borrowed from the table.
    pub(super) fn iter(&self) -> PackedIter<'_> {
        PackedIter { records: self, at: 0, left: self.count, uid: 0 }
    }

    /// The records as a map.
    pub(super) fn to_map(&self) -> BTreeMap<Uid, Flags> {
        self.iter().map(|(uid, flags)| (uid, flags.clone())).collect()
    }
}

/// Reads [`PackedRecords`] in order.
#[derive(Debug, Clone)]
pub(super) struct PackedIter<'a> {
    records: &'a PackedRecords,
    at: usize,
    left: usize,
    uid: u32,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (Uid, &'a Flags);

    fn next(&mut self) -> Option<(Uid, &'a Flags)> {
        if self.left == 0 {
            return None;
        }
        let bytes = &self.records.bytes;
        let step = get_unsigned(bytes, &mut self.at).and_then(|step| u32::try_from(step).ok());
        let index = get_unsigned(bytes, &mut self.at).and_then(|i| usize::try_from(i).ok());
        let uid = step.and_then(|step| self.uid.checked_add(step));
        let record = uid.and_then(Uid::new).zip(index.and_then(|i| self.records.flag_sets.get(i)));
        // Only what the builder wrote is read: a failure is a bug here, and the records
        // then end rather than give something else.
        debug_assert!(record.is_some(), "packed base records that do not decode");
        if let (Some(record), Some(uid)) = (record, uid) {
            self.uid = uid;
            self.left -= 1;
            Some(record)
        } else {
            self.left = 0;
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Builds [`BaseFlags`] record by record, a few bytes each when they come in ascending
/// UID order (as listings give them); out of order it falls back to a map, where a later
/// record of a UID replaces the earlier one.
#[derive(Debug, Clone, Default)]
pub struct BaseFlagsBuilder {
    packed: PackedRecords,
    /// Once a record came out of order: every record so far.
    map: Option<BTreeMap<Uid, Flags>>,
}

impl BaseFlagsBuilder {
    /// No records yet.
    pub fn new() -> BaseFlagsBuilder {
        BaseFlagsBuilder::default()
    }

    /// Adds the record of `uid`.
    pub fn push(&mut self, uid: Uid, flags: &Flags) {
        if let Some(map) = &mut self.map {
            map.insert(uid, flags.clone());
            return;
        }
        let packed = &mut self.packed;
        if packed.count > 0 && uid.get() <= packed.last {
            let mut map = packed.to_map();
            map.insert(uid, flags.clone());
            self.map = Some(map);
            self.packed = PackedRecords::default();
            return;
        }
        put_unsigned(&mut packed.bytes, u64::from(uid.get() - packed.last));
        let index = packed.flag_sets.index_of(flags);
        put_unsigned(&mut packed.bytes, index as u64);
        packed.last = uid.get();
        packed.count += 1;
    }

    /// The records.
    pub fn finish(self) -> BaseFlags {
        match self.map {
            Some(map) => BaseFlags::from(map),
            None => BaseFlags::packed(self.packed),
        }
    }
}

/// Builders are equal when they hold the same records.
impl PartialEq for BaseFlagsBuilder {
    fn eq(&self, other: &BaseFlagsBuilder) -> bool {
        self.clone().finish() == other.clone().finish()
    }
}

impl Eq for BaseFlagsBuilder {}

impl BaseFlags {
    /// `records` (ascending or not), kept as [`BaseFlagsBuilder`] keeps them.
    pub fn packed_from<'a>(records: impl IntoIterator<Item = (Uid, &'a Flags)>) -> BaseFlags {
        let mut builder = BaseFlagsBuilder::new();
        for (uid, flags) in records {
            builder.push(uid, flags);
        }
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    proptest! {
        /// Whatever the order, the records read back as a map built from them would hold.
        #[test]
        fn records_read_back_as_a_map_holds_them(
            records in proptest::collection::vec((1u32..5000, 0u8..4), 0..200),
            order in 0..3,
        ) {
            // As listed, ascending, or ascending with a UID repeated (a later record wins).
            let mut records = records;
            if order > 0 {
                records.sort_by_key(|(n, _)| *n);
            }
            if order == 1 {
                records.dedup_by_key(|(n, _)| *n);
            }
            let sets = [
                Flags::default(),
                Flags::from_imap_names(["\\Seen"]),
                Flags::from_imap_names(["\\Seen", "$Label1"]),
                Flags::from_imap_names(["\\Flagged", "Junk"]),
            ];
            let records: Vec<(Uid, &Flags)> =
                records.iter().map(|&(n, set)| (uid(n), &sets[usize::from(set)])).collect();
            let map: BTreeMap<Uid, Flags> =
                records.iter().map(|&(uid, flags)| (uid, flags.clone())).collect();
            let built = BaseFlags::packed_from(records.iter().copied());
            prop_assert_eq!(built.len(), map.len());
            let read = built.read().expect("in memory");
            prop_assert_eq!(read.as_ref(), &map);
            let listed: Vec<(Uid, Flags)> = built
                .records()
                .map(|record| record.map(|(uid, flags)| (uid, flags.into_owned())))
                .collect::<Result<_, _>>()
                .expect("in memory");
            prop_assert_eq!(listed, map.clone().into_iter().collect::<Vec<_>>());
            prop_assert_eq!(built.clone().into_map().expect("in memory"), map.clone());
            prop_assert_eq!(built, BaseFlags::from(map));
        }
    }

    proptest! {
        /// A state holding a packed base is written as the same bytes as one holding the
        /// same records as a map, and reads back as equal.
        #[test]
        fn a_packed_base_is_written_as_the_map_is(
            records in proptest::collection::vec((1u32..100_000, 0u8..32, 0u8..3), 0..100),
        ) {
            use crate::model::{MailboxName, SystemFlags};
            use crate::state::{MailboxState, MergeBase, SyncState};
            let keywords = ["$Label1", "Junk", "$Forwarded"];
            let records: Vec<(Uid, Flags)> = records
                .iter()
                .map(|&(n, bits, keyword)| {
                    let mut flags = Flags { system: SystemFlags::from_bits_truncate(bits), ..Flags::default() };
                    flags.keywords.extend(keywords.iter().take(usize::from(keyword)).map(|k| (*k).to_owned()));
                    (uid(n), flags)
                })
                .collect();
            let state = |flags: BaseFlags| {
                let base = MergeBase { uid_validity: 7, last_common_uid: 100_000, flags };
                let entry = MailboxState { base, source_token: Some("t".into()), ..MailboxState::default() };
                let mut state = SyncState::default();
                state.mailboxes.insert(MailboxName::inbox(), entry);
                state
            };
            let packed = state(BaseFlags::packed_from(records.iter().map(|(u, f)| (*u, f))));
            let map = state(records.iter().cloned().collect());
            let text = map.encode();
            prop_assert_eq!(packed.encode(), text.clone());
            prop_assert_eq!(SyncState::decode(&text).expect("decodes"), packed);
        }
    }

    #[test]
    fn ascending_records_take_a_few_bytes() {
        let seen = Flags::from_imap_names(["\\Seen"]);
        let mut builder = BaseFlagsBuilder::new();
        for n in 1..=1000 {
            builder.push(uid(n * 2), &seen);
        }
        assert!(builder.map.is_none());
        assert_eq!(builder.packed.bytes.len(), 2000, "a UID step and an index, a byte each");
        assert_eq!(builder.packed.flag_sets.len(), 1);
    }
}
