//! A catch-up run's base without decoding the last one: stored records looked up by UID
//! ([`BaseView`]) and the next base as those records with a few changed
//! ([`BaseFlags::patched`]), written by copying the old lines around the changed ones.
//!
//! A backup re-run planned from the source's changes ([`crate::plan::plan_delta`]) needs
//! the flags of the few UIDs that changed, the UIDs in the vanished ranges and the highest
//! UID; decoding every record into a map, building the next base from it and encoding it
//! again cost a third of such a run's own CPU at 100 000 messages. The stored lines are
//! as the encoder writes them (ascending UIDs, checked when the state was loaded), so a
//! binary search over them answers, and the next state copies them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use super::decode;
use super::stored::{BaseFlags, CopyError, Stored};
use super::{StateError, encode_flags, push_number};
use crate::model::{Flags, Uid};

/// A mailbox's base records to look up by UID ([`BaseFlags::view`]).
#[derive(Debug)]
pub struct BaseView<'a> {
    inner: View<'a>,
}

#[derive(Debug)]
enum View<'a> {
    Map(Cow<'a, BTreeMap<Uid, Flags>>),
    Lines(Lines),
}

/// Stored lines read into memory (checked against their hash), one record each, in
/// ascending UID order, each ending with `\n`.
#[derive(Debug)]
pub(super) struct Lines {
    bytes: Vec<u8>,
    count: usize,
    first_line: usize,
}

impl Lines {
    pub(super) fn read(stored: &Stored) -> Result<Lines, StateError> {
        Ok(Lines { bytes: stored.load()?, count: stored.count, first_line: stored.first_line })
    }

    /// The UID of the line starting at `at`.
    fn uid_at(&self, at: usize) -> Option<u32> {
        let rest = self.bytes.get(at..)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(rest.get(..digits)?).ok()?.parse().ok()
    }

    /// Where the line starting at `at` ends (after its `\n`).
    fn line_end(&self, at: usize) -> usize {
        let rest = self.bytes.get(at..).unwrap_or_default();
        memchr::memchr(b'\n', rest).map_or(self.bytes.len(), |end| at + end + 1)
    }

    /// Where the first line at or after byte `at` starts.
    fn line_start_from(&self, at: usize) -> usize {
        if at == 0 || self.bytes.get(at - 1) == Some(&b'\n') { at } else { self.line_end(at) }
    }

    /// Where the first line whose UID is at least `uid` starts (the end when none).
    fn lower_bound(&self, uid: u32) -> usize {
        // Invariant: every line before `lo` has a smaller UID, the line at `hi` (a line
        // start or the end) a larger or equal one.
        let (mut lo, mut hi) = (0, self.bytes.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let line = self.line_start_from(mid).min(hi);
            // No line starts in `mid..hi`: decide on the line at `lo`.
            let line = if line == hi { lo } else { line };
            if self.uid_at(line).is_some_and(|found| found < uid) {
                lo = self.line_end(line);
            } else {
                hi = line;
            }
        }
        lo
    }

    /// The record of the line starting at `at`.
    fn decode_at(&self, at: usize) -> Result<(Uid, Flags), StateError> {
        let end = self.line_end(at);
        let line = self.bytes.get(at..end).unwrap_or_default();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        // The line's number only for an error (it counts the lines before).
        let error = |reason: &str| StateError {
            line: self.first_line + memchr::memchr_iter(b'\n', &self.bytes[..at]).count(),
            reason: reason.into(),
        };
        decode::message(line, &error)
    }

    fn get(&self, uid: Uid) -> Result<Option<Flags>, StateError> {
        let at = self.lower_bound(uid.get());
        if self.uid_at(at) != Some(uid.get()) {
            return Ok(None);
        }
        Ok(Some(self.decode_at(at)?.1))
    }

    fn last_below(&self, bound: u32) -> Option<Uid> {
        let at = self.lower_bound(bound);
        let before = at.checked_sub(1)?;
        let start = memchr::memrchr(b'\n', &self.bytes[..before]).map_or(0, |end| end + 1);
        self.uid_at(start).and_then(Uid::new)
    }

    fn range(&self, first: Uid, last: Uid) -> Vec<Uid> {
        let mut at = self.lower_bound(first.get());
        let mut uids = Vec::new();
        while let Some(uid) = self.uid_at(at).filter(|&uid| uid <= last.get()) {
            uids.extend(Uid::new(uid));
            at = self.line_end(at);
        }
        uids
    }
}

impl<'a> BaseView<'a> {
    /// A view of records in memory.
    pub fn from_map(map: &'a BTreeMap<Uid, Flags>) -> BaseView<'a> {
        BaseView { inner: View::Map(Cow::Borrowed(map)) }
    }
}

impl BaseView<'_> {
    /// How many records.
    pub fn len(&self) -> usize {
        match &self.inner {
            View::Map(map) => map.len(),
            View::Lines(lines) => lines.count,
        }
    }

    /// True without records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flags recorded for `uid`.
    pub fn get(&self, uid: Uid) -> Result<Option<Flags>, StateError> {
        match &self.inner {
            View::Map(map) => Ok(map.get(&uid).cloned()),
            View::Lines(lines) => lines.get(uid),
        }
    }

    /// True when `uid` has a record.
    pub fn contains(&self, uid: Uid) -> bool {
        match &self.inner {
            View::Map(map) => map.contains_key(&uid),
            View::Lines(lines) => lines.uid_at(lines.lower_bound(uid.get())) == Some(uid.get()),
        }
    }

    /// The highest UID with a record below `bound` (`None`: the highest of all).
    pub fn last_below(&self, bound: Option<Uid>) -> Option<Uid> {
        match (&self.inner, bound) {
            (View::Map(map), None) => map.keys().next_back().copied(),
            (View::Map(map), Some(bound)) => map.range(..bound).next_back().map(|(uid, _)| *uid),
            (View::Lines(lines), bound) => {
                lines.last_below(bound.map_or(u32::MAX, Uid::get)).or_else(|| {
                    // Only UID `u32::MAX` itself is not below `u32::MAX`.
                    let at = lines.lower_bound(u32::MAX);
                    let last = bound.is_none() && lines.uid_at(at) == Some(u32::MAX);
                    last.then(|| Uid::new(u32::MAX)).flatten()
                })
            }
        }
    }

    /// The UIDs with a record from `first` to `last`, ascending.
    pub fn range(&self, first: Uid, last: Uid) -> Vec<Uid> {
        if first > last {
            return Vec::new();
        }
        match &self.inner {
            View::Map(map) => map.range(first..=last).map(|(uid, _)| *uid).collect(),
            View::Lines(lines) => lines.range(first, last),
        }
    }
}

/// Stored records with some changed: `changes` maps a UID to its flags now (`Some`, a new
/// record or a changed one) or to its removal (`None`).
#[derive(Clone)]
pub(super) struct Patched {
    pub(super) stored: Stored,
    pub(super) changes: BTreeMap<Uid, Option<Flags>>,
    pub(super) count: usize,
}

impl Patched {
    /// The records as a map.
    pub(super) fn decode(&self) -> Result<BTreeMap<Uid, Flags>, StateError> {
        let mut map = self.stored.decode()?;
        apply(&mut map, &self.changes);
        Ok(map)
    }

    /// Writes the records as the encoder would: the stored lines copied, the changed ones
    /// replaced, removed or added in their place.
    pub(super) fn write_to(&self, out: &mut dyn Write) -> Result<(), CopyError> {
        let (source, sink) = (CopyError::Source, CopyError::Sink);
        let lines = Lines::read(&self.stored).map_err(|e| source(std::io::Error::other(e)))?;
        let bytes = &lines.bytes;
        let mut copied = 0;
        let mut line = String::new();
        for (uid, change) in &self.changes {
            let at = lines.lower_bound(uid.get()).max(copied);
            out.write_all(&bytes[copied..at]).map_err(sink)?;
            copied = at;
            if lines.uid_at(at) == Some(uid.get()) {
                copied = lines.line_end(at);
            }
            if let Some(flags) = change {
                line.clear();
                push_number(&mut line, uid.get());
                line.push(' ');
                encode_flags(&mut line, flags);
                line.push('\n');
                out.write_all(line.as_bytes()).map_err(sink)?;
            }
        }
        out.write_all(&bytes[copied..]).map_err(sink)
    }
}

fn apply(map: &mut BTreeMap<Uid, Flags>, changes: &BTreeMap<Uid, Option<Flags>>) {
    for (uid, change) in changes {
        match change {
            Some(flags) => map.insert(*uid, flags.clone()),
            None => map.remove(uid),
        };
    }
}

impl BaseFlags {
    /// The records to look up by UID: borrowed when in memory as a map; when still in the
    /// state file, its lines read into memory (checked, not decoded: a few bytes a
    /// record, searched by UID). An error as for [`read`](Self::read).
    pub fn view(&self) -> Result<BaseView<'_>, StateError> {
        let inner = match self.as_stored() {
            Some(stored) => View::Lines(Lines::read(stored)?),
            None => View::Map(self.read()?),
        };
        Ok(BaseView { inner })
    }

    /// These records with `changes` applied (`Some(flags)`: the UID's record is now
    /// that; `None`: it has none). Records still in the state file stay there, and the
    /// changes are kept beside them: saving copies the old lines around the changed
    /// ones. `view` is [`view`](Self::view) of these records.
    pub fn patched(
        &self,
        changes: BTreeMap<Uid, Option<Flags>>,
        view: &BaseView<'_>,
    ) -> Result<BaseFlags, StateError> {
        let Some(stored) = self.as_stored() else {
            let mut map = self.read()?.into_owned();
            apply(&mut map, &changes);
            return Ok(BaseFlags::packed_from(map.iter().map(|(uid, flags)| (*uid, flags))));
        };
        let mut count = view.len();
        for (uid, change) in &changes {
            match (view.contains(*uid), change.is_some()) {
                (true, false) => count -= 1,
                (false, true) => count += 1,
                _ => {}
            }
        }
        Ok(BaseFlags::patched_stored(Patched { stored: stored.clone(), changes, count }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::{BaseView, apply};
    use crate::model::{Flags, MailboxName, SystemFlags, Uid};
    use crate::state::{BaseFlags, MailboxState, MergeBase, SyncState};

    fn flags((bits, keywords): &(u8, BTreeSet<String>)) -> Flags {
        Flags { system: SystemFlags::from_bits_truncate(*bits), keywords: keywords.clone() }
    }

    fn uid(uid: u32) -> Uid {
        Uid::new(uid).expect("non-zero")
    }

    /// A state with `records` as INBOX's base (and a mailbox after it), encoded.
    fn state_with(records: BaseFlags) -> SyncState {
        let mut state = SyncState::default();
        let base = MergeBase { uid_validity: 7, last_common_uid: 9, flags: records };
        let entry = MailboxState { base, source_token: Some("t".into()), ..Default::default() };
        state.mailboxes.insert(MailboxName::inbox(), entry);
        let other = MergeBase { uid_validity: 8, last_common_uid: 1, flags: BaseFlags::new() };
        let other = MailboxState { base: other, ..Default::default() };
        state.mailboxes.insert(MailboxName::new(["Z"]).expect("valid"), other);
        state
    }

    /// What a view of `flags` answers, for the probes.
    fn answers(view: &BaseView<'_>, probes: &[u32]) -> Vec<String> {
        let mut said = vec![format!("{} {:?}", view.len(), view.last_below(None))];
        for &probe in probes {
            let Some(probe) = Uid::new(probe) else { continue };
            said.push(format!(
                "{probe:?}: {:?} {} {:?} {:?}",
                view.get(probe).expect("reads"),
                view.contains(probe),
                view.last_below(Some(probe)),
                view.range(probe, uid(probe.get().saturating_add(37).max(1))),
            ));
        }
        said
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Records left in the state text answer lookups as the map they were written
        /// from; patched, they are what the map with the changes applied is, and the state
        /// written with them is the one written with that map.
        #[test]
        fn stored_records_look_up_and_patch_like_the_map(
            map in proptest::collection::btree_map(
                1u32..400,
                (0u8..32, proptest::collection::btree_set("[!-~]{1,4}", 0..3)),
                0..60,
            ),
            changes in proptest::collection::btree_map(
                1u32..450,
                proptest::option::of(
                    (0u8..32, proptest::collection::btree_set("[a-z]{1,3}", 0..2)),
                ),
                0..25,
            ),
            probes in proptest::collection::vec(0u32..460, 0..40),
        ) {
            let map: BTreeMap<Uid, Flags> = map.iter().map(|(u, f)| (uid(*u), flags(f))).collect();
            let changes: BTreeMap<Uid, Option<Flags>> =
                changes.iter().map(|(u, f)| (uid(*u), f.as_ref().map(flags))).collect();
            let text = state_with(BaseFlags::from(map.clone())).encode();
            let loaded = SyncState::decode_stored(text.as_bytes()).expect("decodes");
            let stored = &loaded.mailboxes[&MailboxName::inbox()].base.flags;
            prop_assert_eq!(stored.decoded().is_none(), !map.is_empty());
            let view = stored.view().expect("reads");
            prop_assert_eq!(answers(&view, &probes), answers(&BaseView::from_map(&map), &probes));

            let patched = stored.patched(changes.clone(), &view).expect("reads");
            let mut expected = map.clone();
            apply(&mut expected, &changes);
            prop_assert_eq!(patched.len(), expected.len());
            prop_assert_eq!(patched.read().expect("reads").into_owned(), expected.clone());
            let records: Vec<(Uid, Flags)> = patched
                .records()
                .map(|r| r.map(|(u, f)| (u, f.into_owned())))
                .collect::<Result<_, _>>()
                .expect("reads");
            prop_assert_eq!(records, expected.clone().into_iter().collect::<Vec<_>>());
            let mut with_patch = loaded.clone();
            let entry = with_patch.mailboxes.get_mut(&MailboxName::inbox()).expect("entry");
            entry.base.flags = patched;
            prop_assert_eq!(with_patch.encode(), state_with(BaseFlags::from(expected)).encode());
        }
    }

    /// Records that can no longer be read as loaded (the file changed under the run) are
    /// not patched into the next state: its entry is left out, as a stored one's is.
    #[test]
    fn a_changed_file_leaves_the_entry_out() {
        let map: BaseFlags = (1..=5u32).map(|u| (uid(u), Flags::default())).collect();
        let dir = tempfile::tempdir().expect("dir");
        let file = crate::state::StateFile::new(dir.path().join("state"), "src");
        let mut state = state_with(map);
        state.source = Some("src".into());
        file.save(&state).expect("save");
        let loaded = file.load().expect("load");
        let stored = &loaded.mailboxes[&MailboxName::inbox()].base.flags;
        let view = stored.view().expect("reads");
        let patched = stored.patched(BTreeMap::from([(uid(9), Some(Flags::default()))]), &view);
        let mut next = loaded.clone();
        next.mailboxes.get_mut(&MailboxName::inbox()).expect("entry").base.flags =
            patched.expect("reads");
        // Rewritten in place (not by our rename): the loaded bytes are gone.
        let text = std::fs::read_to_string(file.path()).expect("read");
        std::fs::OpenOptions::new()
            .write(true)
            .open(file.path())
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, text.replace(" -\n1 ", " -\n2 ").as_bytes())
            })
            .expect("write");
        file.save(&next).expect("save");
        let saved = file.load().expect("load");
        assert!(!saved.mailboxes.contains_key(&MailboxName::inbox()), "{saved:?}");
        assert!(saved.mailboxes.contains_key(&MailboxName::new(["Z"]).expect("valid")));
    }
}
