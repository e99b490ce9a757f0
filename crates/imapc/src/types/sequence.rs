//! UIDs, UIDVALIDITY, mod-sequences and sequence sets (RFC 3501 §9 `sequence-set`).

use std::fmt;
use std::num::NonZeroU32;

/// A message UID: a non-zero 32-bit number, unique within one UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(NonZeroU32);

impl Uid {
    /// `None` for 0, which is never a UID.
    pub const fn new(value: u32) -> Option<Uid> {
        match NonZeroU32::new(value) {
            Some(v) => Some(Uid(v)),
            None => None,
        }
    }
    /// The number.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl From<NonZeroU32> for Uid {
    fn from(value: NonZeroU32) -> Uid {
        Uid(value)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A mailbox's UIDVALIDITY: non-zero; UIDs are only comparable under the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidValidity(NonZeroU32);

impl UidValidity {
    /// `None` for 0.
    pub const fn new(value: u32) -> Option<UidValidity> {
        match NonZeroU32::new(value) {
            Some(v) => Some(UidValidity(v)),
            None => None,
        }
    }
    /// The number.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl From<NonZeroU32> for UidValidity {
    fn from(value: NonZeroU32) -> UidValidity {
        UidValidity(value)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One end of a range in a sequence set: a number or `*` (the largest in the mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqBound {
    /// A UID or sequence number.
    Value(NonZeroU32),
    /// `*`.
    Largest,
}

impl SeqBound {
    fn value_or_max(self) -> u32 {
        match self {
            SeqBound::Value(v) => v.get(),
            SeqBound::Largest => u32::MAX,
        }
    }
}

/// `seq-range` (`a:b`, or a single number when both ends are equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqRange {
    /// First end as written.
    pub start: SeqBound,
    /// Second end as written.
    pub end: SeqBound,
}

/// A `sequence-set` of UIDs or sequence numbers, e.g. `1:4,7,9:*`.
///
/// Sets built from numbers ([`SequenceSet::from_uids`]) are sorted ascending with
/// adjacent numbers merged into ranges — some servers (QQ) answer `BAD` to descending
/// sets, and the shortest form keeps command lines small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SequenceSet {
    ranges: Vec<SeqRange>,
}

impl SequenceSet {
    /// `1:*`: every message.
    pub fn all() -> SequenceSet {
        SequenceSet {
            ranges: vec![SeqRange {
                start: SeqBound::Value(NonZeroU32::MIN),
                end: SeqBound::Largest,
            }],
        }
    }

    /// A single number.
    pub fn single(value: Uid) -> SequenceSet {
        let bound = SeqBound::Value(value.0);
        SequenceSet { ranges: vec![SeqRange { start: bound, end: bound }] }
    }

    /// `first:last` (order normalised).
    pub fn range(first: Uid, last: Uid) -> SequenceSet {
        let (a, b) = if first <= last { (first, last) } else { (last, first) };
        SequenceSet {
            ranges: vec![SeqRange { start: SeqBound::Value(a.0), end: SeqBound::Value(b.0) }],
        }
    }

    /// `first:*`.
    pub fn from_onwards(first: Uid) -> SequenceSet {
        SequenceSet {
            ranges: vec![SeqRange { start: SeqBound::Value(first.0), end: SeqBound::Largest }],
        }
    }

    /// The numbers, sorted ascending, duplicates dropped, runs merged into ranges.
    pub fn from_uids(uids: impl IntoIterator<Item = Uid>) -> SequenceSet {
        let mut values: Vec<u32> = uids.into_iter().map(Uid::get).collect();
        values.sort_unstable();
        values.dedup();
        let mut set = SequenceSet::default();
        for value in values {
            set.push_ascending(value);
        }
        set
    }

    /// Builds from ranges as parsed (kept as the server wrote them).
    pub fn from_ranges(ranges: Vec<SeqRange>) -> SequenceSet {
        SequenceSet { ranges }
    }

    /// Appends a number larger than every number already in the set.
    fn push_ascending(&mut self, value: u32) {
        let Some(new) = NonZeroU32::new(value) else { return };
        if let Some(last) = self.ranges.last_mut()
            && let SeqBound::Value(end) = last.end
            && end.get().checked_add(1) == Some(value)
        {
            last.end = SeqBound::Value(new);
            return;
        }
        self.ranges.push(SeqRange { start: SeqBound::Value(new), end: SeqBound::Value(new) });
    }

    /// The ranges as written.
    pub fn ranges(&self) -> &[SeqRange] {
        &self.ranges
    }

    /// True when the set has no range.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// True when some range ends in `*`, so the set's members depend on the mailbox.
    pub fn has_largest(&self) -> bool {
        self.ranges.iter().any(|r| r.start == SeqBound::Largest || r.end == SeqBound::Largest)
    }

    /// Whether `value` is in the set; `*` is taken as "no upper limit".
    pub fn contains(&self, value: u32) -> bool {
        self.ranges.iter().any(|r| {
            let (a, b) = (r.start.value_or_max(), r.end.value_or_max());
            (a.min(b)..=a.max(b)).contains(&value)
        })
    }

    /// Number of members when the set has no `*`; `None` otherwise.
    pub fn len(&self) -> Option<u64> {
        if self.has_largest() {
            return None;
        }
        Some(
            self.ranges
                .iter()
                .map(|r| u64::from(r.start.value_or_max().abs_diff(r.end.value_or_max())) + 1)
                .sum(),
        )
    }

    /// Every member in ascending order, duplicates dropped; `None` when the set has `*`.
    /// This allocates one `Uid` per member: check [`len`](Self::len) first for sets that
    /// come from a server.
    pub fn to_uids(&self) -> Option<Vec<Uid>> {
        if self.has_largest() {
            return None;
        }
        let mut values: Vec<u32> = Vec::new();
        for r in &self.ranges {
            let (a, b) = (r.start.value_or_max(), r.end.value_or_max());
            values.extend(a.min(b)..=a.max(b));
        }
        values.sort_unstable();
        values.dedup();
        Some(values.into_iter().filter_map(Uid::new).collect())
    }

    /// Splits into consecutive ascending sets of at most `max_members` numbers each and at
    /// most `max_len` bytes when written (a single range is always allowed). Works on
    /// ranges, so `1:4000000000` costs nothing. A set containing `*` is returned whole.
    pub fn split(&self, max_members: usize, max_len: usize) -> Vec<SequenceSet> {
        if self.has_largest() {
            return vec![self.clone()];
        }
        let mut ranges: Vec<(u32, u32)> = self
            .ranges
            .iter()
            .map(|r| {
                let (a, b) = (r.start.value_or_max(), r.end.value_or_max());
                (a.min(b), a.max(b))
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let max_members = u64::try_from(max_members.max(1)).unwrap_or(u64::MAX);
        // Worst case for one more range: ",4294967295:4294967295".
        const WORST_RANGE: usize = 22;
        let mut out = Vec::new();
        let mut current = SequenceSet::default();
        let (mut members, mut len) = (0u64, 0usize);
        for (mut a, b) in merged {
            loop {
                if members == max_members || (!current.is_empty() && len + WORST_RANGE > max_len) {
                    out.push(std::mem::take(&mut current));
                    (members, len) = (0, 0);
                }
                let take = (u64::from(b - a) + 1).min(max_members - members);
                // `take` ≤ b - a + 1, so this stays within a..=b.
                let end = a + u32::try_from(take - 1).unwrap_or(b - a);
                len += current.push_range(a, end);
                members += take;
                if end == b {
                    break;
                }
                a = end + 1;
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    /// Appends `a:b` (ascending, above everything in the set); returns the bytes added.
    fn push_range(&mut self, a: u32, b: u32) -> usize {
        let (Some(start), Some(end)) = (NonZeroU32::new(a), NonZeroU32::new(b)) else { return 0 };
        let comma = usize::from(!self.ranges.is_empty());
        let range = SeqRange { start: SeqBound::Value(start), end: SeqBound::Value(end) };
        self.ranges.push(range);
        comma + range_len(range)
    }

    /// Length of the written form.
    pub fn encoded_len(&self) -> usize {
        let digits = |b: SeqBound| match b {
            SeqBound::Largest => 1,
            SeqBound::Value(v) => v.get().checked_ilog10().unwrap_or(0) as usize + 1,
        };
        self.ranges
            .iter()
            .map(|r| {
                if r.start == r.end { digits(r.start) } else { digits(r.start) + 1 + digits(r.end) }
            })
            .sum::<usize>()
            + self.ranges.len().saturating_sub(1)
    }
}

fn range_len(range: SeqRange) -> usize {
    let digits = |b: SeqBound| match b {
        SeqBound::Largest => 1,
        SeqBound::Value(v) => v.get().checked_ilog10().unwrap_or(0) as usize + 1,
    };
    if range.start == range.end {
        digits(range.start)
    } else {
        digits(range.start) + 1 + digits(range.end)
    }
}

impl fmt::Display for SeqBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqBound::Value(v) => v.fmt(f),
            SeqBound::Largest => f.write_str("*"),
        }
    }
}

impl fmt::Display for SequenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, r) in self.ranges.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if r.start == r.end {
                write!(f, "{}", r.start)?;
            } else {
                write!(f, "{}:{}", r.start, r.end)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uids(values: &[u32]) -> Vec<Uid> {
        values.iter().filter_map(|&v| Uid::new(v)).collect()
    }

    #[test]
    fn from_uids_sorts_dedups_and_merges() {
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[5], "5"),
            (&[3, 1, 2], "1:3"),
            (&[9, 1, 2, 3, 7, 7, 10, 4_294_967_295], "1:3,7,9:10,4294967295"),
        ];
        for (input, written) in cases {
            let set = SequenceSet::from_uids(uids(input));
            assert_eq!(set.to_string(), *written);
            assert_eq!(set.encoded_len(), written.len(), "{written}");
        }
        assert_eq!(SequenceSet::all().to_string(), "1:*");
        assert_eq!(SequenceSet::all().len(), None);
        assert!(SequenceSet::all().contains(4_000_000_000));
    }

    #[test]
    fn split_respects_member_and_length_caps() {
        let set = SequenceSet::from_uids(uids(&(1..=45).map(|i| i * 2).collect::<Vec<_>>()));
        let parts = set.split(20, 8192);
        assert_eq!(parts.iter().map(|p| p.len().unwrap_or(0)).collect::<Vec<_>>(), [20, 20, 5]);
        let sparse =
            SequenceSet::from_uids(uids(&(1..=5000).map(|i| i * 1000).collect::<Vec<_>>()));
        for part in sparse.split(usize::MAX, 8000) {
            assert!(part.to_string().len() <= 8000);
        }
    }

    proptest! {
        #[test]
        fn split_keeps_every_member_in_order(values in proptest::collection::vec(1u32..5000, 0..300), max in 1usize..50, len in 20usize..200) {
            let set = SequenceSet::from_uids(uids(&values));
            let parts = set.split(max, len);
            let mut joined = Vec::new();
            for part in &parts {
                prop_assert!(part.len().unwrap_or(0) <= max as u64);
                prop_assert!(part.encoded_len() <= len.max(11));
                joined.extend(part.to_uids().unwrap_or_default());
            }
            prop_assert_eq!(Some(joined), set.to_uids());
        }
    }
}
