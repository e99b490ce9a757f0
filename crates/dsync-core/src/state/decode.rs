//! Reading the state text ([`SyncState::decode`]) from bytes, line by line, without
//! allocating per line: a re-run of a 100 000-message folder reads 100 000 message lines
//! before it can plan, so each costs a UID parse and a few flag letters, and each
//! mailbox's lines (written in UID order) become its map in one bulk build.
//!
//! [`decode_stored`] reads a state file the same way but keeps no message line: each
//! mailbox's lines are checked (exactly what [`decode`] checks, so the same texts are
//! refused at the same lines) and, when they are as the encoder writes them, left in the
//! file ([`BaseFlags`]) for the run to read if it needs them.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::{self, BufRead};
use std::sync::Arc;

use super::pairs::{self, MailboxPairs, Pair};
use super::stored::{BaseFlags, Stored, StoredText, section_hasher};
use super::{
    FLAG_LETTERS, HEADER, MailboxState, MergeBase, StateError, SyncState, WrittenBy, decode_name,
    encode_flags, push_number, unescape_bytes, untoken,
};
use crate::error::Side;
use crate::model::{Flags, MailboxGuid, MailboxName, Uid};

/// What makes a [`StateError`] for the line being read.
pub(super) type LineError<'a> = &'a dyn Fn(&str) -> StateError;

/// Decodes a whole state text ([`SyncState::decode`]).
pub(super) fn decode(text: &[u8]) -> Result<SyncState, StateError> {
    let mut lines = lines(text).enumerate().map(|(index, line)| (index + 1, line));
    match lines.next() {
        Some((_, line)) if line == HEADER.as_bytes() => {}
        _ => return Err(header_error()),
    }
    let mut decoder = Decoder::default();
    for (number, line) in lines {
        let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
        decoder.line(line, &error)?;
    }
    decoder.finish()
}

fn header_error() -> StateError {
    StateError { line: 1, reason: format!("expected {HEADER:?}") }
}

/// Decodes the state `reader` reads from `text`, which holds the same bytes, keeping each
/// mailbox's message lines in `text` ([`BaseFlags`]) rather than in memory. The outer
/// error is a failed read; the inner one what [`decode`] says of the same bytes.
pub(super) fn decode_stored(
    text: Arc<StoredText>,
    reader: &mut dyn BufRead,
) -> io::Result<Result<SyncState, StateError>> {
    let mut decoder = Decoder { text: Some(text), ..Decoder::default() };
    let mut buffer = Vec::new();
    let mut number = 0;
    let mut offset = 0u64;
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer)?;
        if read == 0 {
            break;
        }
        number += 1;
        offset += read as u64;
        // As `lines` splits: at `\n` or `\r\n`, the last line ending optional.
        let (line, ending): (_, &'static [u8]) = match buffer.strip_suffix(b"\n") {
            Some(line) => match line.strip_suffix(b"\r") {
                Some(line) => (line, b"\r\n"),
                None => (line, b"\n"),
            },
            None => (&buffer[..], b""),
        };
        if number == 1 {
            if line != HEADER.as_bytes() {
                return Ok(Err(header_error()));
            }
            continue;
        }
        decoder.at = Position { number, end: offset, ending };
        let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
        if let Err(error) = decoder.line(line, &error) {
            return Ok(Err(error));
        }
    }
    if number == 0 {
        return Ok(Err(header_error()));
    }
    Ok(decoder.finish())
}

/// The lines of `text` as [`str::lines`] splits them: at `\n` or `\r\n`, the last line
/// ending optional.
pub(super) fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        Some(match memchr::memchr(b'\n', rest) {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                line.strip_suffix(b"\r").unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        })
    })
}

/// A line's fields, split at each space as [`str::split`] does (empty fields included).
#[derive(Clone)]
pub(super) struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(line: &'a [u8]) -> Fields<'a> {
        Fields { rest: Some(line) }
    }

    /// The next `N` fields, when exactly `N` remain.
    pub(super) fn exactly<const N: usize>(mut self) -> Option<[&'a [u8]; N]> {
        let mut fields = [&[][..]; N];
        for field in &mut fields {
            *field = self.next()?;
        }
        self.next().is_none().then_some(fields)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        if let Some(space) = memchr::memchr(b' ', rest) {
            self.rest = Some(&rest[space + 1..]);
            Some(&rest[..space])
        } else {
            self.rest = None;
            Some(rest)
        }
    }
}

/// A decimal number as `str::parse` reads it.
pub(super) fn number<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// A UID field: digits only is the common case, parsed without going through `str`.
pub(super) fn uid(field: &[u8], error: LineError<'_>) -> Result<Uid, StateError> {
    let digits = (1..=9).contains(&field.len()) && field.iter().all(u8::is_ascii_digit);
    let value = if digits {
        Some(field.iter().fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0')))
    } else {
        number(field)
    };
    value.and_then(Uid::new).ok_or_else(|| error("bad UID"))
}

/// Reads `LETTERS keyword…` written by [`encode_flags`](super::encode_flags).
pub(super) fn flags(mut fields: Fields<'_>, error: LineError<'_>) -> Result<Flags, StateError> {
    let Some(letters) = fields.next() else {
        return Err(error("flags are missing"));
    };
    let mut flags = Flags::default();
    if letters != b"-" {
        for letter in letters {
            let (flag, _) = FLAG_LETTERS
                .iter()
                .find(|(_, l)| u32::from(*letter) == u32::from(*l))
                .ok_or_else(|| error("unknown flag letter"))?;
            flags.system = flags.system.union(*flag);
        }
    }
    for keyword in fields {
        flags.keywords.insert(unescape_bytes(keyword).map_err(|e| error(&e))?);
    }
    Ok(flags)
}

/// The UID of a message line of system flags alone, as the encoder writes it (`<uid>
/// <letters>` with the letters in `FLAG_LETTERS` order, or `<uid> -`): such a line
/// decodes ([`message`]) to that UID and those flags and encodes back to itself. `None`
/// for any other line, which is decoded instead. (Nearly every line of a big state: a
/// load checks it without building its flags.)
pub(super) fn plain_line_uid(line: &[u8]) -> Option<Uid> {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=9).contains(&digits) || line.first() == Some(&b'0') {
        return None;
    }
    let letters = line.get(digits..)?.strip_prefix(b" ")?;
    let ordered = |letters: &[u8]| {
        // The letters are in alphabetical order (`D F R S T`): ordered is ascending.
        let known = |l: &u8| FLAG_LETTERS.iter().any(|(_, c)| u32::from(*l) == u32::from(*c));
        letters.iter().all(known) && letters.windows(2).all(|pair| pair[0] < pair[1])
    };
    if letters != b"-" && (letters.is_empty() || !ordered(letters)) {
        return None;
    }
    Uid::new(line[..digits].iter().fold(0u32, |uid, digit| uid * 10 + u32::from(digit - b'0')))
}

/// A message line: its UID and flags.
pub(super) fn message(line: &[u8], error: LineError<'_>) -> Result<(Uid, Flags), StateError> {
    let mut fields = Fields::new(line);
    let (Some(uid_field), Some(_)) = (fields.next(), fields.clone().next()) else {
        return Err(error("a message line has a UID and flags"));
    };
    let uid = uid(uid_field, error)?;
    Ok((uid, flags(fields, error)?))
}

/// Per-UID records as they are read, made a map once their entry ends: lines in ascending
/// UID order (as [`SyncState::encode`] writes them) are built into it in bulk.
#[derive(Debug)]
pub(super) struct Records<V> {
    records: Vec<(Uid, V)>,
    ascending: bool,
}

impl<V> Default for Records<V> {
    fn default() -> Records<V> {
        Records { records: Vec::new(), ascending: true }
    }
}

impl<V> Records<V> {
    pub(super) fn push(&mut self, uid: Uid, value: V) {
        if self.records.last().is_some_and(|(last, _)| *last >= uid) {
            self.ascending = false;
        }
        self.records.push((uid, value));
    }

    /// The map, a later record of a UID replacing an earlier one.
    pub(super) fn into_map(self) -> BTreeMap<Uid, V> {
        if self.ascending {
            // Sorted without repeats: one bulk build instead of an insert per record.
            self.records.into_iter().collect()
        } else {
            let mut map = BTreeMap::new();
            for (uid, value) in self.records {
                map.insert(uid, value);
            }
            map
        }
    }
}

impl Default for Position {
    fn default() -> Position {
        Position { number: 0, end: 0, ending: b"\n" }
    }
}

/// Where the line being read ends in the text ([`decode_stored`]).
#[derive(Debug, Clone, Copy)]
struct Position {
    /// Its 1-based number.
    number: usize,
    /// The offset just past its line ending.
    end: u64,
    /// How it ends: `\n` (as the encoder ends lines), `\r\n`, or not at all (the last).
    ending: &'static [u8],
}

/// A mailbox's message lines as they are read: decoded, or checked and left in the text.
enum Section {
    Records(Records<Flags>),
    Stored(StoredSection),
}

/// Message lines checked and left in the text: where they are, and whether they are as
/// the encoder writes them (ascending UIDs, canonical spelling), so that they can be
/// copied into a new state as they are.
struct StoredSection {
    text: Arc<StoredText>,
    start: u64,
    end: u64,
    count: usize,
    first_line: usize,
    hasher: DefaultHasher,
    canonical: bool,
    last: Option<Uid>,
    /// The line as the encoder would write it.
    scratch: String,
}

impl StoredSection {
    fn push(&mut self, uid: Uid, flags: &Flags, line: &[u8], at: Position) {
        if self.canonical {
            self.scratch.clear();
            push_number(&mut self.scratch, uid.get());
            self.scratch.push(' ');
            encode_flags(&mut self.scratch, flags);
            self.canonical = at.ending == b"\n"
                && self.last.is_none_or(|last| last < uid)
                && self.scratch.as_bytes() == line;
        }
        self.hasher.write(line);
        self.hasher.write(at.ending);
        self.last = Some(uid);
        self.count += 1;
        self.end = at.end;
    }

    /// [`Self::push`] of a line [`plain_line_uid`] vouches for: it decodes, and is spelled
    /// as the encoder spells it.
    fn push_plain(&mut self, uid: Uid, line: &[u8], at: Position) {
        self.canonical =
            self.canonical && at.ending == b"\n" && self.last.is_none_or(|last| last < uid);
        self.hasher.write(line);
        self.hasher.write(at.ending);
        self.last = Some(uid);
        self.count += 1;
        self.end = at.end;
    }

    fn finish(self) -> Result<BaseFlags, StateError> {
        if self.count == 0 {
            return Ok(BaseFlags::new());
        }
        let stored = Stored {
            text: self.text,
            start: self.start,
            end: self.end,
            count: self.count,
            first_line: self.first_line,
            hash: self.hasher.finish(),
        };
        if self.canonical {
            Ok(BaseFlags::stored(stored))
        } else {
            // Written otherwise (by hand, or with `\r\n`): decoded now, so that a save
            // writes it as the encoder does.
            stored.decode().map(BaseFlags::from)
        }
    }
}

/// What has been read so far: the entry being read (a mailbox's or a pairs entry) is kept
/// apart until its last line.
#[derive(Default)]
struct Decoder {
    state: SyncState,
    mailbox: Option<(MailboxName, MailboxState, Section)>,
    pairs: Option<(MailboxName, MailboxPairs, Records<Pair>)>,
    /// The text being read, when message lines stay in it ([`decode_stored`]).
    text: Option<Arc<StoredText>>,
    /// Where the line being read is in `text`.
    at: Position,
}

impl Decoder {
    fn line(&mut self, line: &[u8], error: LineError<'_>) -> Result<(), StateError> {
        // Message lines are nearly all of a big state; no keyword starts with a digit.
        if line.first().is_some_and(u8::is_ascii_digit) {
            return self.record(line, error);
        }
        let mut fields = Fields::new(line);
        let keyword = fields.next().unwrap_or_default();
        if matches!(keyword, b"pairs" | b"pair" | b"forget" | b"mailbox") {
            self.end_pairs();
        }
        match keyword {
            b"pairs" => {
                self.end_mailbox()?;
                let (name, entry) = pairs::decode_header(fields, error)?;
                self.pairs = Some((name, entry, Records::default()));
            }
            b"pair" => {
                self.end_mailbox()?;
                pairs::apply_record(fields, &mut self.state.pairs, error)?;
            }
            _ if self.pairs.is_some() => return self.record(line, error),
            b"source" if self.mailbox.is_none() => {
                let Some([source]) = fields.exactly() else { return self.record(line, error) };
                self.state.source = Some(unescape_bytes(source).map_err(|e| error(&e))?);
            }
            b"written-by" if self.mailbox.is_none() => {
                let Some([kind]) = fields.exactly() else { return self.record(line, error) };
                self.state.written_by = match kind {
                    b"backup" => Some(WrittenBy::Backup),
                    b"merge" => Some(WrittenBy::Merge),
                    _ => return Err(error("unknown kind of run")),
                };
            }
            b"subscribed" if self.mailbox.is_none() => {
                let Some([side, name]) = fields.exactly() else { return self.record(line, error) };
                let name = decode_name(name).map_err(|e| error(&e))?;
                match side {
                    b"S" => self.state.subscribed_source.insert(name),
                    b"D" => self.state.subscribed_destination.insert(name),
                    _ => return Err(error("bad subscription side")),
                };
            }
            b"forget" => {
                let Some([name]) = fields.exactly() else { return self.record(line, error) };
                self.end_mailbox()?;
                let name = decode_name(name).map_err(|e| error(&e))?;
                self.state.mailboxes.remove(&name);
                self.state.pairs.remove(&name);
            }
            b"mailbox" => {
                self.end_mailbox()?;
                let (name, mailbox) = decode_mailbox(fields, error)?;
                self.mailbox = Some((name, mailbox, self.section()));
            }
            _ => return self.record(line, error),
        }
        Ok(())
    }

    /// A line of the entry being read: a pair, or a message's UID and flags.
    fn record(&mut self, line: &[u8], error: LineError<'_>) -> Result<(), StateError> {
        if let Some((_, _, records)) = self.pairs.as_mut() {
            let (uid, pair) = pairs::decode_pair(Fields::new(line), error)?;
            records.push(uid, pair);
            return Ok(());
        }
        let Some((_, _, section)) = self.mailbox.as_mut() else {
            return Err(error("a message line before any mailbox line"));
        };
        if let Section::Stored(stored) = section
            && let Some(uid) = plain_line_uid(line)
        {
            // As the encoder writes it: nothing to decode or spell again.
            stored.push_plain(uid, line, self.at);
            return Ok(());
        }
        let (uid, flags) = message(line, error)?;
        match section {
            Section::Records(records) => records.push(uid, flags),
            Section::Stored(stored) => stored.push(uid, &flags, line, self.at),
        }
        Ok(())
    }

    /// The message lines of a mailbox whose `mailbox` line was just read.
    fn section(&self) -> Section {
        match &self.text {
            None => Section::Records(Records::default()),
            Some(text) => Section::Stored(StoredSection {
                text: Arc::clone(text),
                start: self.at.end,
                end: self.at.end,
                count: 0,
                first_line: self.at.number + 1,
                hasher: section_hasher(),
                canonical: true,
                last: None,
                scratch: String::new(),
            }),
        }
    }

    fn end_mailbox(&mut self) -> Result<(), StateError> {
        if let Some((name, mut mailbox, section)) = self.mailbox.take() {
            mailbox.base.flags = match section {
                Section::Records(records) => BaseFlags::from(records.into_map()),
                Section::Stored(stored) => stored.finish()?,
            };
            self.state.mailboxes.insert(name, mailbox);
        }
        Ok(())
    }

    fn end_pairs(&mut self) {
        if let Some((name, mut entry, records)) = self.pairs.take() {
            entry.pairs = records.into_map();
            self.state.pairs.insert(name, entry);
        }
    }

    fn finish(mut self) -> Result<SyncState, StateError> {
        self.end_mailbox()?;
        self.end_pairs();
        Ok(self.state)
    }
}

/// A `mailbox` line's fields after the keyword.
fn decode_mailbox(
    fields: Fields<'_>,
    error: LineError<'_>,
) -> Result<(MailboxName, MailboxState), StateError> {
    let Some(
        [
            name,
            uid_validity,
            last_common,
            source,
            destination,
            source_guid,
            destination_guid,
            rebuild,
        ],
    ) = fields.exactly()
    else {
        return Err(error("a mailbox line has 9 fields"));
    };
    let rebuild = match rebuild {
        b"-" => None,
        b"S" => Some(Side::Source),
        b"D" => Some(Side::Destination),
        _ => return Err(error("bad rebuild mark")),
    };
    let guid = |field: &[u8]| -> Result<Option<MailboxGuid>, StateError> {
        if field == b"*" {
            Ok(None)
        } else {
            std::str::from_utf8(field)
                .ok()
                .and_then(MailboxGuid::from_hex)
                .map(Some)
                .ok_or_else(|| error("bad mailbox GUID"))
        }
    };
    let name = decode_name(name).map_err(|e| error(&e))?;
    let mailbox = MailboxState {
        base: MergeBase {
            uid_validity: number(uid_validity).ok_or_else(|| error("bad UIDVALIDITY"))?,
            last_common_uid: number(last_common).ok_or_else(|| error("bad last common UID"))?,
            flags: BaseFlags::new(),
        },
        source_token: untoken(source).map_err(|e| error(&e))?,
        destination_token: untoken(destination).map_err(|e| error(&e))?,
        source_guid: guid(source_guid)?,
        destination_guid: guid(destination_guid)?,
        rebuild,
    };
    Ok((name, mailbox))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{message, plain_line_uid};
    use crate::state::{FLAG_LETTERS, StateError, encode_flags, push_number};

    #[test]
    fn flag_letters_are_in_alphabetical_order() {
        assert!(FLAG_LETTERS.windows(2).all(|pair| pair[0].1 < pair[1].1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        /// A line the load takes without decoding decodes to that UID, and the encoder
        /// writes it back byte for byte; a plain line the encoder writes is taken so.
        #[test]
        fn plain_lines_are_what_the_decoder_and_encoder_say(
            line in "(0|[1-9][0-9]{0,10}|[0-9]{1,3})( |  |)(-|[DFRST]{0,6}|[A-Za-z$ -]{0,6})",
            uid in 1u32..1_000_000_000,
            bits in 0u8..32,
        ) {
            let error = |reason: &str| StateError { line: 1, reason: reason.into() };
            if let Some(plain) = plain_line_uid(line.as_bytes()) {
                let (decoded, flags) = message(line.as_bytes(), &error).expect("decodes");
                prop_assert_eq!(decoded, plain);
                let mut encoded = String::new();
                push_number(&mut encoded, decoded.get());
                encoded.push(' ');
                encode_flags(&mut encoded, &flags);
                prop_assert_eq!(encoded, line);
            }
            let flags = crate::model::Flags {
                system: crate::model::SystemFlags::from_bits_truncate(bits),
                keywords: std::collections::BTreeSet::new(),
            };
            let mut written = String::new();
            push_number(&mut written, uid);
            written.push(' ');
            encode_flags(&mut written, &flags);
            prop_assert_eq!(plain_line_uid(written.as_bytes()).map(crate::model::Uid::get), Some(uid));
        }
    }
}
