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
//! state string.

pub mod dovecot;
mod file;
pub mod pairs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::error::Side;
use crate::model::{Flags, MailboxGuid, MailboxName, SystemFlags, Uid};

pub use file::{StateFile, StateFileError};

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
    /// expunged, so that they are not copied back.
    pub flags: BTreeMap<Uid, Flags>,
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
    /// Encodes the state as text.
    pub fn encode(&self) -> String {
        let mut out = String::from(HEADER);
        out.push('\n');
        if let Some(source) = &self.source {
            let _ = writeln!(out, "source {}", escape(source));
        }
        if let Some(written_by) = self.written_by {
            let kind = match written_by {
                WrittenBy::Backup => "backup",
                WrittenBy::Merge => "merge",
            };
            let _ = writeln!(out, "written-by {kind}");
        }
        for (side, names) in [("S", &self.subscribed_source), ("D", &self.subscribed_destination)] {
            for name in names {
                let _ = writeln!(out, "subscribed {side} {}", encode_name(name));
            }
        }
        for (name, state) in &self.mailboxes {
            let guid = |guid: Option<MailboxGuid>| {
                guid.map_or_else(|| String::from("*"), |g| g.to_string())
            };
            let _ = writeln!(
                out,
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
            for (uid, flags) in &state.base.flags {
                let _ = write!(out, "{uid} ");
                encode_flags(&mut out, flags);
                out.push('\n');
            }
        }
        for (name, entry) in &self.pairs {
            pairs::encode(&mut out, name, entry);
        }
        out
    }

    /// The line that, appended to an encoded state, drops `name`'s entry when decoded.
    pub fn forget_record(name: &MailboxName) -> String {
        format!("forget {}\n", encode_name(name))
    }

    /// Decodes text written by [`SyncState::encode`], with [`SyncState::forget_record`]
    /// lines appended.
    pub fn decode(text: &str) -> Result<SyncState, StateError> {
        let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line));
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(StateError { line: 1, reason: format!("expected {HEADER:?}") }),
        }
        let mut state = SyncState::default();
        let mut current: Option<(MailboxName, MailboxState)> = None;
        let mut current_pairs: Option<(MailboxName, pairs::MailboxPairs)> = None;
        for (number, line) in lines {
            let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
            let fields: Vec<&str> = line.split(' ').collect();
            let keyword = fields.first().copied();
            if matches!(keyword, Some("pairs" | "pair" | "forget" | "mailbox"))
                && let Some((name, entry)) = current_pairs.take()
            {
                state.pairs.insert(name, entry);
            }
            if keyword == Some("pairs") || keyword == Some("pair") {
                if let Some((name, mailbox)) = current.take() {
                    state.mailboxes.insert(name, mailbox);
                }
                if keyword == Some("pairs") {
                    current_pairs = Some(pairs::decode_header(&fields[1..], &error)?);
                } else {
                    pairs::apply_record(&fields[1..], &mut state.pairs, &error)?;
                }
                continue;
            }
            if let Some((_, entry)) = current_pairs.as_mut() {
                pairs::decode_pair(&fields, entry, &error)?;
                continue;
            }
            if let ["source", source] = fields[..]
                && current.is_none()
            {
                state.source = Some(unescape(source).map_err(|e| error(&e))?);
                continue;
            }
            if let ["written-by", kind] = fields[..]
                && current.is_none()
            {
                state.written_by = match kind {
                    "backup" => Some(WrittenBy::Backup),
                    "merge" => Some(WrittenBy::Merge),
                    _ => return Err(error("unknown kind of run")),
                };
                continue;
            }
            if let ["subscribed", side, name] = fields[..]
                && current.is_none()
            {
                let name = decode_name(name).map_err(|e| error(&e))?;
                match side {
                    "S" => state.subscribed_source.insert(name),
                    "D" => state.subscribed_destination.insert(name),
                    _ => return Err(error("bad subscription side")),
                };
                continue;
            }
            if let ["forget", name] = fields[..] {
                if let Some((name, mailbox)) = current.take() {
                    state.mailboxes.insert(name, mailbox);
                }
                let name = decode_name(name).map_err(|e| error(&e))?;
                state.mailboxes.remove(&name);
                state.pairs.remove(&name);
                continue;
            }
            if fields.first() == Some(&"mailbox") {
                if let Some((name, mailbox)) = current.take() {
                    state.mailboxes.insert(name, mailbox);
                }
                let [
                    _,
                    name,
                    uid_validity,
                    last_common,
                    source,
                    destination,
                    source_guid,
                    destination_guid,
                    rebuild,
                ] = fields[..]
                else {
                    return Err(error("a mailbox line has 9 fields"));
                };
                let rebuild = match rebuild {
                    "-" => None,
                    "S" => Some(Side::Source),
                    "D" => Some(Side::Destination),
                    _ => return Err(error("bad rebuild mark")),
                };
                let guid = |text: &str| -> Result<Option<MailboxGuid>, StateError> {
                    if text == "*" {
                        Ok(None)
                    } else {
                        MailboxGuid::from_hex(text)
                            .map(Some)
                            .ok_or_else(|| error("bad mailbox GUID"))
                    }
                };
                let name = decode_name(name).map_err(|e| error(&e))?;
                let mailbox = MailboxState {
                    base: MergeBase {
                        uid_validity: uid_validity.parse().map_err(|_| error("bad UIDVALIDITY"))?,
                        last_common_uid: last_common
                            .parse()
                            .map_err(|_| error("bad last common UID"))?,
                        flags: BTreeMap::new(),
                    },
                    source_token: untoken(source).map_err(|e| error(&e))?,
                    destination_token: untoken(destination).map_err(|e| error(&e))?,
                    source_guid: guid(source_guid)?,
                    destination_guid: guid(destination_guid)?,
                    rebuild,
                };
                current = Some((name, mailbox));
                continue;
            }
            let Some((_, mailbox)) = current.as_mut() else {
                return Err(error("a message line before any mailbox line"));
            };
            let (Some(uid), Some(_)) = (fields.first(), fields.get(1)) else {
                return Err(error("a message line has a UID and flags"));
            };
            let uid = uid.parse().ok().and_then(Uid::new).ok_or_else(|| error("bad UID"))?;
            let flags = decode_flags(&fields[1..], &error)?;
            mailbox.base.flags.insert(uid, flags);
        }
        if let Some((name, mailbox)) = current {
            state.mailboxes.insert(name, mailbox);
        }
        if let Some((name, entry)) = current_pairs {
            state.pairs.insert(name, entry);
        }
        Ok(state)
    }
}

/// Writes `flags` as flag letters (`-` for none) and escaped keywords.
fn encode_flags(out: &mut String, flags: &Flags) {
    let letters: String =
        FLAG_LETTERS.iter().filter(|(f, _)| flags.system.contains(*f)).map(|(_, l)| *l).collect();
    out.push_str(if letters.is_empty() { "-" } else { &letters });
    for keyword in &flags.keywords {
        out.push(' ');
        out.push_str(&escape(keyword));
    }
}

/// Reads `LETTERS keyword…` written by [`encode_flags`].
fn decode_flags(fields: &[&str], error: &dyn Fn(&str) -> StateError) -> Result<Flags, StateError> {
    let Some((letters, keywords)) = fields.split_first() else {
        return Err(error("flags are missing"));
    };
    let mut flags = Flags::default();
    if *letters != "-" {
        for letter in letters.chars() {
            let (flag, _) = FLAG_LETTERS
                .iter()
                .find(|(_, l)| *l == letter)
                .ok_or_else(|| error("unknown flag letter"))?;
            flags.system = flags.system.union(*flag);
        }
    }
    for keyword in keywords {
        flags.keywords.insert(unescape(keyword).map_err(|e| error(&e))?);
    }
    Ok(flags)
}

/// A name as `/`-separated, percent-encoded components.
fn encode_name(name: &MailboxName) -> String {
    let components: Vec<String> = name.components().iter().map(|c| escape(c)).collect();
    components.join("/")
}

fn decode_name(text: &str) -> Result<MailboxName, String> {
    let components: Vec<String> = text.split('/').map(unescape).collect::<Result<_, _>>()?;
    MailboxName::new(components).map_err(|e| e.to_string())
}

fn token(token: Option<&str>) -> String {
    token.map_or_else(|| String::from("*"), escape)
}

fn untoken(text: &str) -> Result<Option<String>, String> {
    if text == "*" { Ok(None) } else { unescape(text).map(Some) }
}

/// Percent-encodes everything but `A-Z a-z 0-9 . _ - ~ $ \`, so no field holds a space, a
/// `/`, a `*` or a line break.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'~' | b'$' | b'\\')
        {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

pub(crate) fn unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3).ok_or("truncated %-escape")?;
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
    use proptest::prelude::*;

    fn sample() -> SyncState {
        let mut base =
            MergeBase { uid_validity: 1_700_000_000, last_common_uid: 42, flags: BTreeMap::new() };
        base.flags.insert(Uid::MIN, Flags::from_imap_names(["\\Seen", "$Label1"]));
        base.flags.insert(Uid::new(9).expect("non-zero"), Flags::default());
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
                let mut base = MergeBase { uid_validity: 7, last_common_uid: 500, flags: BTreeMap::new() };
                for (uid, bits, keywords) in &flags {
                    let system = SystemFlags::from_bits_truncate(*bits);
                    base.flags.insert(Uid::new(*uid).expect("non-zero"), Flags { system, keywords: keywords.clone() });
                }
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
}
