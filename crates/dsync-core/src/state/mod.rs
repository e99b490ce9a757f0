//! What a run remembers for the next one: per mailbox, the messages both sides held (with
//! the flags they had), so a later `sync` knows what was expunged and which side changed
//! which flag; and each side's change token, so a mailbox that changed on neither side is
//! skipped without listing it.
//!
//! The text format is line based and versioned:
//!
//! ```text
//! dsync-rs state 1
//! source imap%3A%2F%2Falice%40mail.example.com%3A993
//! written-by backup
//! subscribed S Archive/2023
//! subscribed D Archive/2023
//! mailbox Archive/2023 1700000000 42 <source token> <destination token> <source GUID> <destination GUID> <rebuild: - S D>
//! 7 S $Label1
//! 9 RS
//! ```
//!
//! `written-by backup|merge` names the kind of run that wrote the state (absent in files
//! older versions wrote): a backup trusts only a state a backup wrote ([`WrittenBy`]).
//! `subscribed S|D` lines list what each side (source, destination) had subscribed after
//! the last merge, so an unsubscribe on one side travels instead of being undone.
//! `forget NAME` drops what the lines before it recorded for mailbox `NAME`: a run appends
//! one ([`SyncState::forget_record`]) before it creates or rebuilds a mailbox, instead of
//! writing the whole state again for each of thousands of mailboxes.
//! Names, keywords and tokens are percent-encoded (`*` marks "no token"); flag letters are
//! Maildir's (`D` draft, `F` flagged, `R` answered, `S` seen, `T` deleted; `-` for none).
//! [`StateFile`] keeps a state in a file between runs; [`dovecot`] has Dovecot's own `-s`
//! state string. A state [`StateFile::load`] read keeps each mailbox's message lines in the
//! file until a run needs them ([`BaseFlags`]), so a re-run that finds mailboxes unchanged
//! holds nothing per message from its state.

mod decode;
pub mod dovecot;
mod file;
#[cfg(test)]
mod legacy;
pub(crate) mod listing;
mod packed_base;
pub mod pairs;
mod patched;
mod stored;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;

use crate::error::Side;
use crate::model::{Flags, MailboxGuid, MailboxName, SystemFlags};

pub use file::{StateFile, StateFileError};
pub use packed_base::BaseFlagsBuilder;
pub use patched::BaseView;
pub use stored::{BaseFlags, BaseRecords};

const HEADER: &str = "dsync-rs state 1";

/// What the last successful sync of this mailbox left in common.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeBase {
    /// The UIDVALIDITY both sides had.
    pub uid_validity: u32,
    /// The highest UID either side had used (Dovecot's `last_common_uid`).
    pub last_common_uid: u32,
    /// The messages both sides held under the same UID, with side A's flags at that time
    /// (after a two-way sync both sides have the same flags; after a one-way sync A's tell
    /// which flags A changes later). A one-way sync also keeps here the messages B
    /// expunged, so that they are not copied back. In a state [`StateFile::load`] read,
    /// still in the file until [`BaseFlags::read`].
    pub flags: BaseFlags,
}

impl MergeBase {
    /// This base with its records in memory: itself when they are, else a copy with the
    /// records read from the state file ([`BaseFlags::read`]; an error when the file no
    /// longer holds them: the caller then does without this base).
    pub fn read(&self) -> Result<Cow<'_, MergeBase>, StateError> {
        if self.flags.decoded().is_some() {
            return Ok(Cow::Borrowed(self));
        }
        Ok(Cow::Owned(MergeBase {
            uid_validity: self.uid_validity,
            last_common_uid: self.last_common_uid,
            flags: BaseFlags::from(self.flags.read()?.into_owned()),
        }))
    }
}

/// What the last run left behind for one mailbox (keyed by its destination-side name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxState {
    /// UIDVALIDITY, common UIDs and their flags.
    pub base: MergeBase,
    /// The source's change token after the run.
    pub source_token: Option<String>,
    /// The destination's change token after the run.
    pub destination_token: Option<String>,
    /// The source mailbox's GUID, where it has one: a new GUID is a new incarnation of
    /// the mailbox (deleted and created again), whatever its UIDVALIDITY.
    pub source_guid: Option<MailboxGuid>,
    /// The destination mailbox's GUID, likewise.
    pub destination_guid: Option<MailboxGuid>,
    /// A rebuild of this side (to [`MergeBase::uid_validity`]) was started and may not have
    /// finished: the next run completes it instead of reading the half-rebuilt mailbox.
    pub rebuild: Option<Side>,
}

/// The kind of run that wrote a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrittenBy {
    /// `backup` (and `-R`): the destination was made equal to the source.
    Backup,
    /// `sync` or `sync -1`: the destination may keep changes of its own, which a later
    /// backup's change tokens would take for "nothing changed".
    Merge,
}

/// Everything a run remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Which source the state belongs to (callers compare it before reusing a state, so a
    /// state made for one source is never applied to another; [`StateFile`] does). A run
    /// keeps the one it was given, else fills in the source's
    /// [`Storage::describe`](crate::Storage::describe).
    pub source: Option<String>,
    /// The kind of run that wrote it; `None` in a state an older version wrote.
    pub written_by: Option<WrittenBy>,
    /// Per mailbox.
    pub mailboxes: BTreeMap<MailboxName, MailboxState>,
    /// The source's subscriptions after the last merge (destination-side names).
    pub subscribed_source: BTreeSet<MailboxName>,
    /// The destination's subscriptions after the last merge.
    pub subscribed_destination: BTreeSet<MailboxName>,
    /// Per mailbox (destination-side name), which source message is which destination
    /// message, for storages that cannot share UIDs ([`pairs`]).
    pub pairs: BTreeMap<MailboxName, pairs::MailboxPairs>,
}

/// A state text that cannot be used (the run then starts from scratch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync state line {line}: {reason}")]
pub struct StateError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

const FLAG_LETTERS: [(SystemFlags, char); 5] = [
    (SystemFlags::DRAFT, 'D'),
    (SystemFlags::FLAGGED, 'F'),
    (SystemFlags::ANSWERED, 'R'),
    (SystemFlags::SEEN, 'S'),
    (SystemFlags::DELETED, 'T'),
];

impl SyncState {
    /// Encodes the state as text. A mailbox whose records were left in a state file that
    /// no longer holds them ([`BaseFlags`]) is left out, as if it had no entry.
    pub fn encode(&self) -> String {
        // About 8 bytes a message line: one allocation for a big folder's state.
        let records: usize = self.mailboxes.values().map(|m| m.base.flags.len()).sum::<usize>()
            + self.pairs.values().map(|p| p.pairs.len()).sum::<usize>();
        let mut out = Vec::with_capacity(4096 + records * 10);
        // Writing to memory fails only where stored records cannot be read: left out.
        let _ = self.write_to(self.source.as_deref(), &mut out);
        String::from_utf8(out)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }

    /// Writes the state as [`encode`](Self::encode) does, with `source` as the source it
    /// names, to `out` as it goes: stored records are copied from their file in bounded
    /// chunks, decoded ones encoded a chunk at a time. A mailbox whose stored records
    /// cannot be read as they were loaded is taken back out of `out` and left out.
    pub(crate) fn write_to(&self, source: Option<&str>, out: &mut dyn Sink) -> io::Result<()> {
        /// Decoded records are handed to `out` in pieces of about this size.
        const PIECE: usize = 64 * 1024;
        let mut text = String::with_capacity(PIECE + 1024);
        text.push_str(HEADER);
        text.push('\n');
        if let Some(source) = source {
            let _ = writeln!(text, "source {}", escape(source));
        }
        if let Some(written_by) = self.written_by {
            let kind = match written_by {
                WrittenBy::Backup => "backup",
                WrittenBy::Merge => "merge",
            };
            let _ = writeln!(text, "written-by {kind}");
        }
        for (side, names) in [("S", &self.subscribed_source), ("D", &self.subscribed_destination)] {
            for name in names {
                let _ = writeln!(text, "subscribed {side} {}", encode_name(name));
            }
        }
        for (name, state) in &self.mailboxes {
            let mark = out.position() + text.len() as u64;
            let guid = |guid: Option<MailboxGuid>| {
                guid.map_or_else(|| String::from("*"), |g| g.to_string())
            };
            let _ = writeln!(
                text,
                "mailbox {} {} {} {} {} {} {} {}",
                encode_name(name),
                state.base.uid_validity,
                state.base.last_common_uid,
                token(state.source_token.as_deref()),
                token(state.destination_token.as_deref()),
                guid(state.source_guid),
                guid(state.destination_guid),
                match state.rebuild {
                    None => "-",
                    Some(Side::Source) => "S",
                    Some(Side::Destination) => "D",
                },
            );
            if let Some(stored) = state.base.flags.as_stored() {
                out.write_all(text.as_bytes())?;
                text.clear();
                match stored.copy_to(out) {
                    Ok(()) => {}
                    Err(stored::CopyError::Sink(error)) => return Err(error),
                    // Changed under the run: this mailbox gets a full run next time.
                    Err(stored::CopyError::Source(_)) => out.rollback(mark)?,
                }
                continue;
            }
            if let Some(patched) = state.base.flags.as_patched() {
                out.write_all(text.as_bytes())?;
                text.clear();
                match patched.write_to(out) {
                    Ok(()) => {}
                    Err(stored::CopyError::Sink(error)) => return Err(error),
                    Err(stored::CopyError::Source(_)) => out.rollback(mark)?,
                }
                continue;
            }
            // Records in memory (a map, or packed): reading them cannot fail.
            for (uid, flags) in state.base.flags.records().map_while(Result::ok) {
                push_number(&mut text, uid.get());
                text.push(' ');
                encode_flags(&mut text, &flags);
                text.push('\n');
                if text.len() >= PIECE {
                    out.write_all(text.as_bytes())?;
                    text.clear();
                }
            }
        }
        for (name, entry) in &self.pairs {
            pairs::encode(&mut text, name, entry);
            if text.len() >= PIECE {
                out.write_all(text.as_bytes())?;
                text.clear();
            }
        }
        out.write_all(text.as_bytes())
    }

    /// The line that, appended to an encoded state, drops `name`'s entry when decoded.
    pub fn forget_record(name: &MailboxName) -> String {
        format!("forget {}\n", encode_name(name))
    }

    /// Decodes text written by [`SyncState::encode`], with [`SyncState::forget_record`]
    /// lines appended.
    pub fn decode(text: &str) -> Result<SyncState, StateError> {
        decode::decode(text.as_bytes())
    }

    /// [`decode`](Self::decode) the way [`StateFile::load`] reads a file: each mailbox's
    /// message lines checked and left in (a copy of) `text` ([`BaseFlags`]).
    pub(crate) fn decode_stored(text: &[u8]) -> Result<SyncState, StateError> {
        let stored = std::sync::Arc::new(stored::StoredText::Bytes(text.to_vec()));
        let mut reader = text;
        decode::decode_stored(stored, &mut reader)
            .unwrap_or_else(|error| Err(StateError { line: 0, reason: error.to_string() }))
    }
}

/// Where [`SyncState::write_to`] writes: bytes, and a way to take back what a mailbox's
/// entry wrote.
pub(crate) trait Sink: io::Write {
    /// How many bytes were written so far.
    fn position(&self) -> u64;
    /// Drops what was written after `position`.
    fn rollback(&mut self, position: u64) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    fn position(&self) -> u64 {
        self.len() as u64
    }

    fn rollback(&mut self, position: u64) -> io::Result<()> {
        self.truncate(usize::try_from(position).unwrap_or(usize::MAX));
        Ok(())
    }
}

/// Writes `flags` as flag letters (`-` for none) and escaped keywords.
fn encode_flags(out: &mut String, flags: &Flags) {
    let start = out.len();
    for (flag, letter) in FLAG_LETTERS {
        if flags.system.contains(flag) {
            out.push(letter);
        }
    }
    if out.len() == start {
        out.push('-');
    }
    for keyword in &flags.keywords {
        out.push(' ');
        escape_into(out, keyword);
    }
}

/// Writes `number` in decimal (what `write!` does, without its formatting machinery: the
/// state has a line per message).
fn push_number(out: &mut String, number: u32) {
    out.push_str(itoa::Buffer::new().format(number));
}

/// A name as `/`-separated, percent-encoded components.
fn encode_name(name: &MailboxName) -> String {
    let components: Vec<String> = name.components().iter().map(|c| escape(c)).collect();
    components.join("/")
}

fn decode_name(text: &[u8]) -> Result<MailboxName, String> {
    let components: Vec<String> =
        text.split(|&byte| byte == b'/').map(unescape_bytes).collect::<Result<_, _>>()?;
    MailboxName::new(components).map_err(|e| e.to_string())
}

fn token(token: Option<&str>) -> String {
    token.map_or_else(|| String::from("*"), escape)
}

fn untoken(text: &[u8]) -> Result<Option<String>, String> {
    if text == b"*" { Ok(None) } else { unescape_bytes(text).map(Some) }
}

/// Percent-encodes everything but `A-Z a-z 0-9 . _ - ~ $ \`, so no field holds a space, a
/// `/`, a `*` or a line break.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// [`escape`] onto the end of `out`.
fn escape_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'~' | b'$' | b'\\')
        {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

pub(crate) fn unescape(text: &str) -> Result<String, String> {
    unescape_bytes(text.as_bytes())
}

/// [`unescape`] of a field read as bytes.
fn unescape_bytes(bytes: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3).ok_or("truncated %-escape")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape")?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| String::from("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Uid;
    use proptest::prelude::*;

    fn sample() -> SyncState {
        let mut flags = BTreeMap::new();
        flags.insert(Uid::MIN, Flags::from_imap_names(["\\Seen", "$Label1"]));
        flags.insert(Uid::new(9).expect("non-zero"), Flags::default());
        let base =
            MergeBase { uid_validity: 1_700_000_000, last_common_uid: 42, flags: flags.into() };
        let mut state = SyncState { source: Some("imap://a@b".into()), ..SyncState::default() };
        state.mailboxes.insert(
            MailboxName::new(["Archive", "2023 & more/less"]).expect("valid"),
            MailboxState {
                base,
                source_token: Some("1/2 3*".into()),
                destination_token: None,
                source_guid: None,
                destination_guid: MailboxGuid::from_hex("58049b2934ff036bb01c000083ecc375"),
                rebuild: Some(Side::Destination),
            },
        );
        state.mailboxes.insert(MailboxName::inbox(), MailboxState::default());
        state.subscribed_source.insert(MailboxName::new(["Lists", "a b"]).expect("valid"));
        state.subscribed_destination.insert(MailboxName::inbox());
        state
    }

    #[test]
    fn known_encoding() {
        assert_eq!(
            sample().encode(),
            "dsync-rs state 1\n\
             source imap%3A%2F%2Fa%40b\n\
             subscribed S Lists/a%20b\n\
             subscribed D INBOX\n\
             mailbox Archive/2023%20%26%20more%2Fless 1700000000 42 1%2F2%203%2A * * 58049b2934ff036bb01c000083ecc375 D\n\
             1 S $Label1\n\
             9 -\n\
             mailbox INBOX 0 0 * * * * -\n"
        );
    }

    /// The kind of run is kept; a state an older version wrote (no such line) still reads.
    #[test]
    fn the_kind_of_run_round_trips_and_old_states_still_read() {
        for written_by in [Some(WrittenBy::Backup), Some(WrittenBy::Merge), None] {
            let state = SyncState { written_by, ..sample() };
            assert_eq!(SyncState::decode(&state.encode()).expect("decodes"), state);
        }
        let old = "dsync-rs state 1\nsource x\nmailbox INBOX 7 1 * * * * -\n1 S\n";
        let state = SyncState::decode(old).expect("an old state reads");
        assert_eq!((state.written_by, state.mailboxes.len()), (None, 1));
        let bad = "dsync-rs state 1\nwritten-by nobody\n";
        assert!(SyncState::decode(bad).is_err());
    }

    #[test]
    fn appended_forget_records_drop_entries() {
        let state = sample();
        let archive = MailboxName::new(["Archive", "2023 & more/less"]).expect("valid");
        let mut text = state.encode();
        text.push_str(&SyncState::forget_record(&archive));
        assert_eq!(text.lines().last(), Some("forget Archive/2023%20%26%20more%2Fless"));
        let mut expected = state.clone();
        expected.mailboxes.remove(&archive);
        assert_eq!(SyncState::decode(&text), Ok(expected.clone()));
        // Forgetting what is not there, or twice, changes nothing more.
        text.push_str(&SyncState::forget_record(&archive));
        text.push_str(&SyncState::forget_record(&MailboxName::new(["Gone"]).expect("valid")));
        assert_eq!(SyncState::decode(&text), Ok(expected));
        let error = SyncState::decode(&format!("{text}3 S\n")).expect_err("no mailbox line");
        assert!(error.to_string().contains("before any mailbox"), "{error}");
    }

    #[test]
    fn rejects_damaged_text() {
        let cases = [
            ("", "expected"),
            ("dsync-rs state 2\n", "expected"),
            ("dsync-rs state 1\n7 S\n", "before any mailbox"),
            ("dsync-rs state 1\nmailbox INBOX 1 2 *\n", "9 fields"),
            ("dsync-rs state 1\nmailbox INBOX x 2 * * * * -\n", "UIDVALIDITY"),
            ("dsync-rs state 1\nmailbox INBOX 1 2 * * * * -\n0 S\n", "bad UID"),
            ("dsync-rs state 1\nmailbox INBOX 1 2 * * * * -\n3 Q\n", "flag letter"),
            ("dsync-rs state 1\nmailbox IN%ZZ 1 2 * * * * -\n", "escape"),
            ("dsync-rs state 1\nmailbox INBOX 1 2 * * xyz * -\n", "GUID"),
            ("dsync-rs state 1\nmailbox INBOX 1 2 * * * * X\n", "rebuild mark"),
            ("dsync-rs state 1\nsubscribed X INBOX\n", "subscription side"),
            ("dsync-rs state 1\nsubscribed S %\n", "escape"),
        ];
        for (text, reason) in cases {
            let error = SyncState::decode(text).expect_err(text);
            assert!(error.to_string().contains(reason), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            names in proptest::collection::vec(proptest::collection::vec("[^\u{0}]{1,8}", 1..3), 0..4),
            flags in proptest::collection::vec((1u32..500, 0u8..32, proptest::collection::btree_set("[!-~]{1,6}", 0..3)), 0..6),
            token in proptest::option::of(".{0,10}"),
            subscribed in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec("[^\u{0}]{1,8}", 1..3)), 0..4),
        ) {
            let mut state = SyncState::default();
            for (source, components) in subscribed {
                let name = MailboxName::new(components).expect("non-empty components");
                if source { state.subscribed_source.insert(name); } else { state.subscribed_destination.insert(name); }
            }
            for components in names {
                let mut records = BTreeMap::new();
                for (uid, bits, keywords) in &flags {
                    let system = SystemFlags::from_bits_truncate(*bits);
                    records.insert(Uid::new(*uid).expect("non-zero"), Flags { system, keywords: keywords.clone() });
                }
                let base = MergeBase { uid_validity: 7, last_common_uid: 500, flags: records.into() };
                let name = MailboxName::new(components).expect("non-empty components");
                let destination_guid = Some(MailboxGuid([7; 16]));
                state.mailboxes.insert(name, MailboxState { base, source_token: token.clone(), destination_token: None, source_guid: None, destination_guid, rebuild: None });
            }
            prop_assert_eq!(SyncState::decode(&state.encode()), Ok(state));
        }

        #[test]
        fn decode_never_panics(text in "dsync-rs state 1\n[ -~\n]{0,200}") {
            let _ = SyncState::decode(&text);
        }
    }

    /// The state the file `testdata/main-format.state` was written from (by the encoder
    /// before the byte-level decoder; its last four lines appended records).
    fn main_format() -> SyncState {
        let name =
            |components: &[&str]| MailboxName::new(components.iter().copied()).expect("valid");
        let uid = |uid: u32| Uid::new(uid).expect("non-zero");
        let mut state = SyncState {
            source: Some("imap://alice@mail.example.com:993".into()),
            written_by: Some(WrittenBy::Backup),
            ..SyncState::default()
        };
        state.subscribed_source.insert(name(&["Lists", "a b"]));
        state.subscribed_source.insert(MailboxName::inbox());
        state.subscribed_destination.insert(name(&["Ärger", "100%"]));
        let mut flags = BTreeMap::new();
        for number in 1..=1000u32 {
            let names: &[&str] = match number % 7 {
                0 => &[],
                1 => &["\\Seen", "\\Answered"],
                2 => &["\\Seen", "\\Flagged", "$Label1"],
                3 => &["\\Draft", "\\Deleted", "Junk", "a b%c", "Ünïcode"],
                _ => &["\\Seen"],
            };
            flags.insert(uid(number), Flags::from_imap_names(names.iter().copied()));
        }
        let base =
            MergeBase { uid_validity: 1_700_000_000, last_common_uid: 1005, flags: flags.into() };
        state.mailboxes.insert(
            name(&["Bulk"]),
            MailboxState {
                base,
                source_token: Some("1700000000/1006/1000/2044".into()),
                destination_token: Some("1700000000:1005:1000:77".into()),
                source_guid: MailboxGuid::from_hex("58049b2934ff036bb01c000083ecc375"),
                destination_guid: MailboxGuid::from_hex("68049b2934ff036bb01c000083ecc376"),
                rebuild: None,
            },
        );
        let small = MergeBase {
            uid_validity: 5,
            last_common_uid: 9,
            flags: [(uid(9), Flags::default())].into_iter().collect(),
        };
        state.mailboxes.insert(
            name(&["Archive", "2023 & more/less"]),
            MailboxState {
                base: small,
                source_token: Some("1/2 3*".into()),
                rebuild: Some(Side::Destination),
                ..MailboxState::default()
            },
        );
        state.mailboxes.insert(
            MailboxName::inbox(),
            MailboxState { rebuild: Some(Side::Source), ..MailboxState::default() },
        );
        let mut entry = pairs::MailboxPairs::new(1_700_000_000, 1_796_516_083);
        entry.source_token = Some("tok/1".into());
        entry.destination_token = Some(pairs::WRITING.into());
        for number in 1..=5u32 {
            let flags = Flags::from_imap_names(["\\Seen", "$Label2"]);
            entry.pairs.insert(uid(number), pairs::Pair { destination: uid(number + 10), flags });
        }
        state.pairs.insert(name(&["Archive", "2023"]), entry);
        // Appended: `forget Gone` (its entry was there), a pair for `Sent`, one for `Drafts`.
        let mut sent = pairs::MailboxPairs::new(3, 4);
        let seen = Flags::from_imap_names(["\\Seen"]);
        sent.pairs.insert(uid(7), pairs::Pair { destination: uid(1), flags: seen });
        state.pairs.insert(name(&["Sent"]), sent);
        let mut drafts = pairs::MailboxPairs::new(8, 9);
        drafts.pairs.insert(uid(2), pairs::Pair { destination: uid(3), flags: Flags::default() });
        state.pairs.insert(name(&["Drafts"]), drafts);
        state
    }

    /// A state file written before the byte-level decoder reads as it was meant, and what
    /// it was written from is written again byte for byte.
    #[test]
    fn a_state_written_by_the_previous_version_reads_and_writes_alike() {
        let text = include_str!("testdata/main-format.state");
        assert_eq!(SyncState::decode(text), Ok(main_format()));
        assert_eq!(legacy::decode(text), Ok(main_format()));
        let written = text.split("forget Gone\n").next().expect("a first part");
        let state = SyncState::decode(written).expect("decodes");
        assert_eq!(state.encode(), written);
        // Through the file too.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state");
        std::fs::write(&path, text).expect("write");
        let file = StateFile::new(&path, "imap://alice@mail.example.com:993");
        assert_eq!(file.load().expect("load"), main_format());
    }

    /// Lines of a state text, mostly valid, some damaged, in any order.
    fn state_line() -> impl Strategy<Value = String> {
        let message = (
            0u32..40,
            prop_oneof![8 => "[-DFRST]{1,2}", 1 => "[-DFRSTQ]{0,3}"],
            proptest::collection::vec(prop_oneof![4 => "[a-z]{1,3}", 1 => "[a-z%0-9]{0,3}"], 0..2),
        )
            .prop_map(|(uid, letters, keywords)| {
                let mut line = format!("{uid} {letters}");
                for keyword in keywords {
                    line.push(' ');
                    line.push_str(&keyword);
                }
                line
            });
        prop_oneof![
            12 => message.clone(),
            1 => message.prop_map(|line| format!("{line}\r")),
            2 => "mailbox [A-C]{1,2} [0-9]{1,2} [0-9]{1,2} [*a-z]{1,2} \\* \\* \\* -",
            1 => "mailbox [A-C%/]{1,3} [0-9x]{1,2} [0-9]{1,2} [*a-z]{1,2} [*a-z]{1,2} (\\*|58049b2934ff036bb01c000083ecc375|x) \\* [-SDX]( x)?",
            1 => "pairs [A-C]{1,2} [0-9]{1,2} [0-9]{1,2} [*a-z~]{1,8} \\*",
            1 => "pairs [A-C]{1,2} [0-9]{1,2} [0-9x]{1,2} [*a-z~]{1,8} \\*( x)?",
            1 => "pair [A-C]{1,2} [0-9]{1,2} [0-9]{1,2} [0-9]{1,2} [0-9]{1,2} [-S]{1,2}",
            2 => "[1-9]{1,2} [1-9]{1,2} [-RS]{1,2}( \\$L)?",
            1 => "[0-9]{1,2} [0-9]{0,2}( [-RSQ]{0,2})?",
            1 => "forget [A-C]{1,2}( x)?",
            1 => "source [a-z]{1,4}( x)?",
            1 => "source [a-z%]{0,4}",
            1 => "written-by (backup|merge|x)( x)?",
            1 => "subscribed [SDX] [A-C%]{1,3}( x)?",
            1 => "[ -~]{0,12}",
            1 => Just(String::new()),
        ]
    }

    /// A state text from [`state_line`]s, after an optional first line (then followed by
    /// a mailbox line, so that message lines have one to belong to).
    fn state_text(start: Option<String>, lines: &[String], newline_at_end: bool) -> String {
        let start = start.map(|line| format!("{line}\nmailbox A 1 2 * * * * -\n"));
        let mut text = format!("{HEADER}\n{}{}", start.unwrap_or_default(), lines.join("\n"));
        if newline_at_end {
            text.push('\n');
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The byte-level decoder and the one it replaced agree on every text: the same
        /// state, or an error on the same line.
        #[test]
        fn decodes_as_the_previous_decoder(
            start in proptest::option::weighted(0.5, "(source|written-by|subscribed S) [a-z]{1,3}"),
            lines in proptest::collection::vec(state_line(), 0..24),
            newline_at_end in proptest::bool::ANY,
        ) {
            let text = state_text(start, &lines, newline_at_end);
            match (SyncState::decode(&text), legacy::decode(&text)) {
                (Ok(new), Ok(old)) => prop_assert_eq!(new, old),
                (Err(new), Err(old)) => prop_assert_eq!(new.line, old.line, "{} / {}", new, old),
                (new, old) => prop_assert!(false, "{text:?}: {new:?} / {old:?}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Read the way a state file is read (message lines checked and left in the text),
        /// every text decodes as [`SyncState::decode`] decodes it, or fails on the same
        /// line, and encodes to the same bytes: stored lines are copied only when they are
        /// what the encoder writes.
        #[test]
        fn a_stored_decode_agrees_with_decode_and_encodes_alike(
            start in proptest::option::weighted(0.5, "(source|written-by|subscribed S) [a-z]{1,3}"),
            lines in proptest::collection::vec(state_line(), 0..24),
            newline_at_end in proptest::bool::ANY,
        ) {
            let text = state_text(start, &lines, newline_at_end);
            match (SyncState::decode(&text), SyncState::decode_stored(text.as_bytes())) {
                (Ok(decoded), Ok(stored)) => {
                    prop_assert_eq!(stored.encode(), decoded.encode());
                    prop_assert_eq!(stored, decoded);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.line, b.line, "{} / {}", a, b),
                (a, b) => prop_assert!(false, "{text:?}: {a:?} / {b:?}"),
            }
        }

        /// A state read back from its own encoding with its message lines left in the
        /// text, then changed by a run in some mailboxes (decoded records) and not in the
        /// others (still stored), is written byte for byte as the encoder writes the same
        /// state held wholly in memory.
        #[test]
        fn a_partly_stored_state_is_written_as_the_encoder_writes_it(
            mailboxes in proptest::collection::btree_map(
                "[A-E]{1,2}",
                proptest::collection::btree_map(
                    1u32..300,
                    (0u8..32, proptest::collection::btree_set("[!-~ ]{1,4}", 0..2)),
                    0..20,
                ),
                0..6,
            ),
            changed in proptest::collection::vec(proptest::bool::ANY, 6),
            replacement in proptest::collection::btree_map(1u32..300, 0u8..32, 0..10),
        ) {
            let records = |map: &BTreeMap<u32, (u8, BTreeSet<String>)>| -> BaseFlags {
                map.iter()
                    .map(|(uid, (bits, keywords))| {
                        let system = SystemFlags::from_bits_truncate(*bits);
                        (Uid::new(*uid).expect("non-zero"), Flags { system, keywords: keywords.clone() })
                    })
                    .collect()
            };
            let mut state = SyncState { source: Some("maildir:/x".into()), ..SyncState::default() };
            for (name, map) in &mailboxes {
                let base = MergeBase { uid_validity: 7, last_common_uid: 300, flags: records(map) };
                let entry = MailboxState { base, source_token: Some("t".into()), ..MailboxState::default() };
                state.mailboxes.insert(MailboxName::new([name.as_str()]).expect("valid"), entry);
            }
            let text = state.encode();
            let mut stored = SyncState::decode_stored(text.as_bytes()).expect("decodes");
            for ((name, map), changed) in mailboxes.iter().zip(&changed) {
                let name = MailboxName::new([name.as_str()]).expect("valid");
                let entry = stored.mailboxes.get_mut(&name).expect("entry");
                // Untouched records stay in the text.
                prop_assert_eq!(entry.base.flags.decoded().is_none(), !map.is_empty());
                if *changed {
                    let flags: BaseFlags = replacement
                        .iter()
                        .map(|(uid, bits)| (Uid::new(*uid).expect("non-zero"), Flags { system: SystemFlags::from_bits_truncate(*bits), keywords: BTreeSet::new() }))
                        .collect();
                    entry.base.flags = flags.clone();
                    entry.source_token = Some("u".into());
                    let entry = state.mailboxes.get_mut(&name).expect("entry");
                    entry.base.flags = flags;
                    entry.source_token = Some("u".into());
                }
            }
            prop_assert_eq!(stored.encode(), state.encode());
            prop_assert_eq!(stored, state);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// A mailbox's records left in the state text are read one at a time, whatever
        /// the size of the chunks read, as the records the state was written with.
        #[test]
        fn stored_records_stream_as_written(
            map in proptest::collection::btree_map(
                1u32..100_000,
                (0u8..32, proptest::collection::btree_set("[!-~]{1,4}", 0..3)),
                0..40,
            ),
            chunk in prop_oneof![1usize..8, 8usize..200, Just(64 * 1024)],
        ) {
            let flags: BaseFlags = map
                .iter()
                .map(|(uid, (bits, keywords))| {
                    let system = SystemFlags::from_bits_truncate(*bits);
                    (Uid::new(*uid).expect("non-zero"), Flags { system, keywords: keywords.clone() })
                })
                .collect();
            let base = MergeBase { uid_validity: 7, last_common_uid: 100_000, flags };
            let mut state = SyncState::default();
            let entry = MailboxState { base: base.clone(), ..MailboxState::default() };
            state.mailboxes.insert(MailboxName::inbox(), entry);
            state.mailboxes.insert(MailboxName::new(["Z"]).expect("valid"), MailboxState::default());
            let text = state.encode();
            let stored = SyncState::decode_stored(text.as_bytes()).expect("decodes");
            let stored = &stored.mailboxes[&MailboxName::inbox()].base.flags;
            prop_assert_eq!(stored.decoded().is_none(), !map.is_empty());
            let streamed: Result<Vec<(Uid, Flags)>, StateError> = stored
                .records_in_chunks(chunk)
                .map(|record| record.map(|(uid, flags)| (uid, flags.into_owned())))
                .collect();
            let expected: Vec<(Uid, Flags)> =
                base.flags.records().map(|r| r.map(|(u, f)| (u, f.into_owned()))).collect::<Result<_, _>>().expect("in memory");
            prop_assert_eq!(streamed.expect("reads"), expected);
        }
    }

    /// Records out of UID order (a state some other writer left) are not left in the
    /// file: loading decodes them, and they stream sorted, a later line of a UID winning.
    #[test]
    fn records_out_of_order_stream_sorted() {
        let text = format!("{HEADER}\nmailbox A 1 9 * * * * -\n5 S\n3 F\n7 -\n3 D\n");
        let state = SyncState::decode_stored(text.as_bytes()).expect("decodes");
        let flags = &state.mailboxes[&MailboxName::new(["A"]).expect("valid")].base.flags;
        assert!(flags.decoded().is_some());
        let records: Vec<(u32, bool)> = flags
            .records_in_chunks(4)
            .map(|record| {
                record.map(|(uid, flags)| (uid.get(), flags.system == SystemFlags::default()))
            })
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(records, [(3, false), (5, false), (7, true)]);
    }
}
