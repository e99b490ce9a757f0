//! Which message on one side is which on the other, for storages that cannot share UIDs
//! (an IMAP server as destination gives each APPEND a UID of its own): the pairing
//! engine's memory ([`crate::pairing`]).
//!
//! In the state text, after the mailbox entries:
//!
//! ```text
//! pairs Archive/2023 1700000000 1796516083 <source token> <destination token>
//! 7 1 S $Label1
//! 9 2 RS
//! pair Archive/2023 1700000000 1796516083 12 5 -
//! ```
//!
//! A `pairs` line starts a mailbox's entry (its UIDVALIDITY on each side, then each
//! side's change token), and each line below it pairs a source UID with a destination UID
//! and the flags both had after the run (the source's, in a one-way run). A `pair` line
//! is one pair on its own, appended to a saved state as soon as a destination confirms a
//! save ([`pair_record`]): applied to its mailbox's entry (started afresh when the
//! UIDVALIDITYs differ), it also drops the entry's change tokens, so the next run looks
//! at the mailbox again.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::decode::{self, Fields, LineError, number, uid};
use super::{StateError, decode_name, encode_flags, encode_name, push_number, token, untoken};
use crate::model::{Flags, MailboxName, Uid};

/// The destination "change token" of a mailbox a run was copying into when it stopped
/// (killed, connection lost): the next run lets the server settle before it lists the
/// mailbox, since the stopped run's server session may still be saving the APPENDs it had
/// been sent ([`crate::pairing`]).
pub const WRITING: &str = "~writing";

/// One mailbox's pairs ([`SyncState::pairs`](super::SyncState::pairs)), keyed by the
/// mailbox's destination-side name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxPairs {
    /// The source mailbox's UIDVALIDITY the source UIDs belong to.
    pub source_uid_validity: u32,
    /// The destination mailbox's UIDVALIDITY the destination UIDs belong to.
    pub destination_uid_validity: u32,
    /// The source's change token after the last complete run of the mailbox.
    pub source_token: Option<String>,
    /// The destination's change token after the last complete run of the mailbox.
    pub destination_token: Option<String>,
    /// By source UID.
    pub pairs: BTreeMap<Uid, Pair>,
}

/// A source message's counterpart on the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Its UID on the destination.
    pub destination: Uid,
    /// The flags both sides had after the last run (a one-way run: the source's), the
    /// base a later merge compares each side with.
    pub flags: Flags,
}

impl MailboxPairs {
    /// An empty entry for these two UIDVALIDITYs.
    pub fn new(source_uid_validity: u32, destination_uid_validity: u32) -> MailboxPairs {
        MailboxPairs { source_uid_validity, destination_uid_validity, ..MailboxPairs::default() }
    }
}

/// Appends `name`'s entry to the encoded state.
pub(super) fn encode(out: &mut String, name: &MailboxName, entry: &MailboxPairs) {
    let _ = writeln!(
        out,
        "pairs {} {} {} {} {}",
        encode_name(name),
        entry.source_uid_validity,
        entry.destination_uid_validity,
        token(entry.source_token.as_deref()),
        token(entry.destination_token.as_deref()),
    );
    for (source, pair) in &entry.pairs {
        push_number(out, source.get());
        out.push(' ');
        push_number(out, pair.destination.get());
        out.push(' ');
        encode_flags(out, &pair.flags);
        out.push('\n');
    }
}

/// The line that, appended to an encoded state, pairs `source` with `pair` in `name`'s
/// entry for these UIDVALIDITYs.
pub fn pair_record(
    name: &MailboxName,
    source_uid_validity: u32,
    destination_uid_validity: u32,
    source: Uid,
    pair: &Pair,
) -> String {
    let mut out = format!(
        "pair {} {source_uid_validity} {destination_uid_validity} {source} {} ",
        encode_name(name),
        pair.destination
    );
    encode_flags(&mut out, &pair.flags);
    out.push('\n');
    out
}

/// The lines that, appended to an encoded state, replace `name`'s entry by `entry`.
pub fn entry_record(name: &MailboxName, entry: &MailboxPairs) -> String {
    let mut out = String::new();
    encode(&mut out, name, entry);
    out
}

/// Decodes a `pairs` line's fields (after the keyword).
pub(super) fn decode_header(
    fields: Fields<'_>,
    error: LineError<'_>,
) -> Result<(MailboxName, MailboxPairs), StateError> {
    let Some([name, source_validity, destination_validity, source_token, destination_token]) =
        fields.exactly()
    else {
        return Err(error("a pairs line has 6 fields"));
    };
    let name = decode_name(name).map_err(|e| error(&e))?;
    let entry = MailboxPairs {
        source_uid_validity: number(source_validity).ok_or_else(|| error("bad UIDVALIDITY"))?,
        destination_uid_validity: number(destination_validity)
            .ok_or_else(|| error("bad UIDVALIDITY"))?,
        source_token: untoken(source_token).map_err(|e| error(&e))?,
        destination_token: untoken(destination_token).map_err(|e| error(&e))?,
        pairs: BTreeMap::new(),
    };
    Ok((name, entry))
}

/// Decodes `SOURCE DESTINATION FLAGS…`.
pub(super) fn decode_pair(
    mut fields: Fields<'_>,
    error: LineError<'_>,
) -> Result<(Uid, Pair), StateError> {
    let (Some(source), Some(destination)) = (fields.next(), fields.next()) else {
        return Err(error("a pair has two UIDs and flags"));
    };
    let flags = decode::flags(fields, error)?;
    Ok((uid(source, error)?, Pair { destination: uid(destination, error)?, flags }))
}

/// Applies a `pair` record's fields (after the keyword) to `pairs`.
pub(super) fn apply_record(
    mut fields: Fields<'_>,
    pairs: &mut BTreeMap<MailboxName, MailboxPairs>,
    error: LineError<'_>,
) -> Result<(), StateError> {
    let (Some(name), Some(source_validity), Some(destination_validity)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(error("a pair record names its mailbox and UIDVALIDITYs"));
    };
    let name = decode_name(name).map_err(|e| error(&e))?;
    let source_validity: u32 = number(source_validity).ok_or_else(|| error("bad UIDVALIDITY"))?;
    let destination_validity: u32 =
        number(destination_validity).ok_or_else(|| error("bad UIDVALIDITY"))?;
    let entry = pairs
        .entry(name)
        .or_insert_with(|| MailboxPairs::new(source_validity, destination_validity));
    if (entry.source_uid_validity, entry.destination_uid_validity)
        != (source_validity, destination_validity)
    {
        *entry = MailboxPairs::new(source_validity, destination_validity);
    }
    if entry.source_token.as_deref() != Some(WRITING) {
        entry.source_token = None;
    }
    if entry.destination_token.as_deref() != Some(WRITING) {
        entry.destination_token = None;
    }
    let (uid, pair) = decode_pair(fields, error)?;
    entry.pairs.insert(uid, pair);
    Ok(())
}
