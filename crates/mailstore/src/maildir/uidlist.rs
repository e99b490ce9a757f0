//! `dovecot-uidlist` (`maildir-uidlist.c`): version 3 read and written, version 1 read.
//!
//! ```text
//! 3 V<uidvalidity> N<nextuid> G<mailbox guid>[ <key><value>]...
//! <uid>[ <key><value>]... :<base file name>
//! ```
//!
//! The reader enforces Dovecot's rules: a violation makes the whole file "broken"
//! ([`Broken`]), which Dovecot answers by deleting and rebuilding it. Two defects Dovecot
//! repairs instead, and so do we: an extension field whose key is not `A`–`Z` is dropped,
//! and a file name listed twice keeps only its later UID. A last line without `\n` (a torn
//! append) is ignored, as Dovecot's line reader ignores it.
//!
//! A parsed list keeps the file's text (the bytes as read when they are UTF-8 as a whole, the
//! usual case: no copy) and each record as a span of it (24 bytes: no `String` per record);
//! extension fields are split when asked for. Base names are indexed by a keyed
//! hash (the parse needs the index to find a name listed twice, and keeps it for
//! [`Uidlist::contains_base`]): a re-run that opens a 100 000-message folder to change a few
//! messages pays one pass over the file.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::OnceLock;

use crate::guid::Guid;
use crate::maildir::filename;

/// Record extension keys Dovecot defines.
pub(crate) mod ext {
    /// Physical size, when not in the file name.
    pub(crate) const SIZE: u8 = b'S';
    /// Virtual (CRLF) size, when not in the file name.
    pub(crate) const VSIZE: u8 = b'W';
    /// POP3 UIDL overriding `pop3_uidl_format`.
    pub(crate) const POP3_UIDL: u8 = b'P';
    /// POP3 order (lower first).
    pub(crate) const POP3_ORDER: u8 = b'O';
    /// Message GUID, when it differs from the base name.
    pub(crate) const GUID: u8 = b'G';
}

/// The uidlist header field (`X…`, which Dovecot keeps through its own rewrites as it keeps
/// every header field it does not know) that records a mailbox rebuilt under a UIDVALIDITY
/// of its own in place of another one whose UIDs it holds: `Xdsync-origin=<own>:<other>`.
/// It counts only while `<own>` is the mailbox's UIDVALIDITY.
pub(crate) const ORIGIN_FIELD: &str = "Xdsync-origin=";

/// A message line to add to a list (or read from our journal), owning its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordBuf {
    /// The UID.
    pub(crate) uid: u32,
    /// Extension fields (`key`, value) in file order; values without white space.
    pub(crate) extensions: Vec<(u8, String)>,
    /// The base file name (no `:2,` info).
    pub(crate) filename: String,
}

/// One message line of a [`Uidlist`], borrowed from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// The UID.
    pub(crate) uid: u32,
    /// The file name as listed: a base name (a file another program wrote may list a whole
    /// name, with `:2,` info).
    pub(crate) filename: &'a str,
    /// Length of the base name (up to the first `:`).
    base_len: usize,
    /// The extension fields as the line has them (` G… P… :`), split when asked for.
    fields: &'a str,
}

impl<'a> Record<'a> {
    /// The base file name: up to the first `:` of [`Self::filename`].
    pub(crate) fn base(self) -> &'a str {
        self.filename.get(..self.base_len).unwrap_or(self.filename)
    }

    /// The value of extension `key`.
    pub(crate) fn ext(self, key: u8) -> Option<&'a str> {
        self.extensions().find(|&(k, _)| k == key).map(|(_, value)| value)
    }

    /// Extension fields (`key`, value) in file order; fields whose key is not `A`–`Z` are
    /// left out (Dovecot drops them).
    pub(crate) fn extensions(self) -> impl Iterator<Item = (u8, &'a str)> + Clone + use<'a> {
        self.fields.split(' ').filter_map(|field| match field.as_bytes().first() {
            Some(&key @ b'A'..=b'Z') => Some((key, field.get(1..).unwrap_or(""))),
            _ => None,
        })
    }

    /// An owned copy.
    pub(crate) fn to_buf(self) -> RecordBuf {
        RecordBuf {
            uid: self.uid,
            extensions: self.extensions().map(|(k, v)| (k, v.to_string())).collect(),
            filename: self.filename.to_string(),
        }
    }

    /// True when both say the same (UID, extension fields, file name).
    pub(crate) fn same_as(self, other: Record<'_>) -> bool {
        self.uid == other.uid
            && self.filename == other.filename
            && self.extensions().eq(other.extensions())
    }
}

/// Where a record's parts are in [`Uidlist::text`]: its fields from `start`, then its
/// file name, of which the first `base_len` bytes are the base name.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    uid: u32,
    fields_len: u32,
    base_len: u32,
    name_len: u32,
}

/// Lengths within one record line: the parse refuses lines of 4 GiB; a pushed record's
/// parts come from file names and extension values, far shorter.
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn view<'t>(text: &'t str, span: &Span) -> Record<'t> {
    let fields_end = span.start + span.fields_len as usize;
    let name_end = fields_end + span.name_len as usize;
    Record {
        uid: span.uid,
        filename: text.get(fields_end..name_end).unwrap_or(""),
        base_len: span.base_len as usize,
        fields: text.get(span.start..fields_end).unwrap_or(""),
    }
}

fn base_at<'t>(text: &'t str, spans: &[Span], position: usize) -> Option<&'t str> {
    spans.get(position).map(|span| view(text, span).base())
}

/// A parsed uidlist.
#[derive(Clone)]
pub(crate) struct Uidlist {
    /// 1 or 3.
    pub(crate) version: u8,
    /// UIDVALIDITY (non-zero).
    pub(crate) uid_validity: u32,
    /// `N` of the header (lags behind appended records).
    pub(crate) header_next_uid: u32,
    /// Mailbox GUID (`G`), absent in version 1.
    pub(crate) guid: Option<Guid>,
    /// Unknown header fields (key and value as one token), preserved on rewrite.
    pub(crate) header_extra: Vec<String>,
    /// Length of the complete lines read (a torn last line starts here).
    pub(crate) complete_len: usize,
    /// Dovecot would rewrite the file (dropped fields, duplicates, old version, no GUID).
    pub(crate) wants_rewrite: bool,
    /// Records in UID order.
    records: Vec<Span>,
    /// The records' fields and file names, as read or pushed (removed ones stay).
    text: String,
    /// Base name → position of the record, built by the parse and kept up to date by
    /// [`Self::push`]; a removal drops it and the next question builds it again.
    bases: OnceLock<BaseIndex>,
    /// `Some(next UID then)` once the records were let go ([`Self::forget_records`]):
    /// the list then holds only those pushed since, and is no longer the whole file.
    forgotten: Option<u32>,
}

impl std::fmt::Debug for Uidlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uidlist")
            .field("version", &self.version)
            .field("uid_validity", &self.uid_validity)
            .field("header_next_uid", &self.header_next_uid)
            .field("guid", &self.guid)
            .field("header_extra", &self.header_extra)
            .field("complete_len", &self.complete_len)
            .field("wants_rewrite", &self.wants_rewrite)
            .field("forgotten", &self.forgotten)
            .field("records", &self.records().map(Record::to_buf).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Equal when the header and every record say the same (however the text is laid out).
impl PartialEq for Uidlist {
    fn eq(&self, other: &Uidlist) -> bool {
        self.version == other.version
            && self.uid_validity == other.uid_validity
            && self.header_next_uid == other.header_next_uid
            && self.guid == other.guid
            && self.header_extra == other.header_extra
            && self.complete_len == other.complete_len
            && self.wants_rewrite == other.wants_rewrite
            && self.forgotten == other.forgotten
            && self.len() == other.len()
            && self.records().zip(other.records()).all(|(a, b)| a.same_as(b))
    }
}

impl Eq for Uidlist {}

/// Why Dovecot would consider a uidlist broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    /// 1-based line.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) reason: String,
}

impl Uidlist {
    /// A new, empty version-3 uidlist.
    pub(crate) fn new(uid_validity: u32, next_uid: u32, guid: Guid) -> Uidlist {
        Uidlist::empty(3, uid_validity, next_uid.max(1), Some(guid), Vec::new())
    }

    fn empty(
        version: u8,
        uid_validity: u32,
        header_next_uid: u32,
        guid: Option<Guid>,
        header_extra: Vec<String>,
    ) -> Uidlist {
        Uidlist {
            version,
            uid_validity,
            header_next_uid,
            guid,
            header_extra,
            complete_len: 0,
            wants_rewrite: false,
            records: Vec::new(),
            text: String::new(),
            bases: OnceLock::new(),
            forgotten: None,
        }
    }

    /// The UIDVALIDITY whose UIDs this mailbox holds under its own (see
    /// [`ORIGIN_FIELD`]), when the field names the current UIDVALIDITY.
    pub(crate) fn origin(&self) -> Option<u32> {
        self.header_extra.iter().find_map(|field| {
            let (own, origin) = field.strip_prefix(ORIGIN_FIELD)?.split_once(':')?;
            (parse_u32(own)? == self.uid_validity).then_some(parse_u32(origin)?)
        })
    }

    /// Records (or with `None` forgets) the UIDVALIDITY whose UIDs this mailbox holds under
    /// its current one.
    pub(crate) fn set_origin(&mut self, origin: Option<u32>) {
        self.header_extra.retain(|field| !field.starts_with(ORIGIN_FIELD));
        if let Some(origin) = origin.filter(|&o| o != 0 && o != self.uid_validity) {
            self.header_extra.push(format!("{ORIGIN_FIELD}{}:{origin}", self.uid_validity));
        }
    }

    /// The next UID: the larger of the header's `N` and the last record's UID + 1 (of
    /// the records let go, when no record was pushed since).
    pub(crate) fn next_uid(&self) -> u32 {
        let after_last =
            self.records.last().map_or(self.forgotten.unwrap_or(1), |r| r.uid.saturating_add(1));
        self.header_next_uid.max(after_last)
    }

    /// True while the list holds every record of the file (none let go by
    /// [`Self::forget_records`]).
    pub(crate) fn is_whole(&self) -> bool {
        self.forgotten.is_none()
    }

    /// Lets go of every record, their text and the index of their base names, keeping what
    /// an append needs: the header, where the complete lines end and the next UID. Only
    /// [`Self::next_uid`], [`Self::push`] and the header fields are of use afterwards (the
    /// lookups answer for the records pushed since, no others; see
    /// [`super::state::Locked::make_whole`]): a writer keeps this between its commits
    /// instead of every record it ever appended.
    pub(crate) fn forget_records(&mut self) {
        self.forgotten = Some(self.next_uid());
        self.records = Vec::new();
        self.text = String::new();
        self.bases = OnceLock::new();
    }

    /// Makes a list parsed from the header line alone the list of a file known to be
    /// valid, whose complete lines end at `complete_len` and whose next UID is `next_uid`:
    /// as [`Self::forget_records`] leaves a list (see [`super::known`]).
    pub(crate) fn assume_checked_tail(&mut self, complete_len: usize, next_uid: u32) {
        self.complete_len = complete_len;
        self.records = Vec::new();
        self.text = String::new();
        self.bases = OnceLock::new();
        self.forgotten = Some(next_uid.max(1));
    }

    /// How many records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The bytes the records take on the heap: text and spans (tests).
    #[cfg(test)]
    pub(crate) fn records_bytes(&self) -> usize {
        self.text.capacity() + self.records.capacity() * size_of::<Span>()
    }

    /// The record at `position` (0-based, in file order).
    pub(crate) fn get(&self, position: usize) -> Option<Record<'_>> {
        self.records.get(position).map(|span| view(&self.text, span))
    }

    /// The records in file order (UID order for a parsed file).
    pub(crate) fn records(
        &self,
    ) -> impl DoubleEndedIterator<Item = Record<'_>> + ExactSizeIterator + Clone + '_ {
        self.records.iter().map(|span| view(&self.text, span))
    }

    /// The position of the record of `uid`. A uidlist is in UID order, so a binary search
    /// finds it; a list out of order is still searched in full before `uid` counts as
    /// missing.
    pub(crate) fn position_of_uid(&self, uid: u32) -> Option<usize> {
        let index = self.records.partition_point(|r| r.uid < uid);
        match self.records.get(index) {
            Some(span) if span.uid == uid => Some(index),
            _ => self.records.iter().position(|r| r.uid == uid),
        }
    }

    /// [`Self::position_of_uid`] for UIDs asked in ascending order: the records from
    /// `from` on are stepped through (a few, when the UIDs asked are most of the list's),
    /// not searched from the start; `None` when no record has `uid`.
    pub(crate) fn position_of_uid_from(&self, from: usize, uid: u32) -> Option<usize> {
        let rest = self.records.get(from..)?;
        let step = rest.iter().take(8).position(|r| r.uid >= uid);
        let index = match step {
            Some(step) => from + step,
            None => from + rest.partition_point(|r| r.uid < uid),
        };
        (self.records.get(index)?.uid == uid).then_some(index)
    }

    /// Lets go of the index of base names ([`Self::position_of_base`] builds it again when
    /// asked): a view that finds files by position keeps no 22 bytes a record for it.
    pub(crate) fn drop_base_index(&mut self) {
        self.bases = OnceLock::new();
    }

    /// The position of the (last) record whose base name is `base`.
    pub(crate) fn position_of_base(&self, base: &str) -> Option<usize> {
        self.bases.get_or_init(|| BaseIndex::build(&self.text, &self.records, u64::MAX)).find(
            &self.text,
            &self.records,
            base,
        )
    }

    /// True when a record has base name `base`.
    pub(crate) fn contains_base(&self, base: &str) -> bool {
        self.position_of_base(base).is_some()
    }

    /// Writes `record`'s fields and file name at the end of the text (as a line holds
    /// them after its UID): where they start, and the length of the fields with the `:`.
    fn write_text(&mut self, record: &RecordBuf) -> (usize, usize) {
        let start = self.text.len();
        for (key, value) in &record.extensions {
            self.text.push(' ');
            self.text.push(char::from(*key));
            self.text.push_str(value);
        }
        self.text.push_str(" :");
        let fields_len = self.text.len() - start;
        self.text.push_str(&record.filename);
        (start, fields_len)
    }

    /// Appends a record (as Dovecot's appends do, a base name listed already is not looked
    /// for: the callers add only names the list does not know).
    pub(crate) fn push(&mut self, record: &RecordBuf) {
        let (start, fields_len) = self.write_text(record);
        self.records.push(Span {
            start,
            uid: record.uid,
            fields_len: len32(fields_len),
            base_len: len32(filename::base(&record.filename).len()),
            name_len: len32(record.filename.len()),
        });
        let position = self.records.len() - 1;
        if let Some(index) = self.bases.get_mut() {
            index.insert(&self.text, &self.records, position);
        }
    }

    /// Keeps the records `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Record<'_>) -> bool) {
        let text = &self.text;
        let before = self.records.len();
        self.records.retain(|span| keep(view(text, span)));
        if self.records.len() != before {
            self.bases = OnceLock::new();
        }
    }

    /// Removes and returns the record at `position`.
    pub(crate) fn remove(&mut self, position: usize) -> Option<RecordBuf> {
        let record = self.get(position)?.to_buf();
        self.records.remove(position);
        self.bases = OnceLock::new();
        Some(record)
    }

    /// Removes and returns the last record.
    pub(crate) fn pop(&mut self) -> Option<RecordBuf> {
        self.remove(self.records.len().checked_sub(1)?)
    }

    /// Gives the record at `position` extension `key` with `value` (no white space), after
    /// the fields it has.
    pub(crate) fn add_extension(&mut self, position: usize, key: u8, value: &str) {
        let Some(mut record) = self.get(position).map(Record::to_buf) else { return };
        record.extensions.push((key, value.to_string()));
        let (start, fields_len) = self.write_text(&record);
        if let Some(span) = self.records.get_mut(position) {
            span.start = start;
            span.fields_len = len32(fields_len);
        }
    }

    /// Parses a whole file. `Ok(None)` for an empty file (Dovecot treats it as missing).
    pub(crate) fn parse(data: &[u8]) -> Result<Option<Uidlist>, Broken> {
        Uidlist::parse_hashing(data.to_vec(), u64::MAX)
    }

    /// [`Self::parse`] of a file read into `data`, which the list keeps as its text when it
    /// is UTF-8 as a whole (the usual case): no copy of the records.
    pub(crate) fn parse_owned(data: Vec<u8>) -> Result<Option<Uidlist>, Broken> {
        Uidlist::parse_hashing(data, u64::MAX)
    }

    /// [`Self::parse_owned`] with the base names' hashes masked by `mask` (tests make them
    /// collide).
    fn parse_hashing(data: Vec<u8>, mask: u64) -> Result<Option<Uidlist>, Broken> {
        // UTF-8 as a whole: each line is a slice of the text. Otherwise each line is checked
        // (the first that is not makes the file broken; bytes after a NUL, or in a torn last
        // line, do not count) and copied.
        let (whole, invalid) = match String::from_utf8(data) {
            Ok(whole) => (Some(whole), Vec::new()),
            Err(error) => (None, error.into_bytes()),
        };
        let data = whole.as_ref().map_or(invalid.as_slice(), String::as_bytes);
        let whole_text = whole.as_deref();
        let mut lines = complete_lines(data);
        let Some((_, header, header_end)) = lines.next() else {
            // Dovecot treats a file without a complete first line as broken too; only an
            // empty file means "no uidlist yet" without anything to lose.
            return if data.is_empty() {
                Ok(None)
            } else {
                Err(broken(1, "no complete header line".into()))
            };
        };
        let header = line_of(whole_text, 0, header, 1)?;
        let mut list = parse_header(header)?;
        let mut previous_uid = 0u32;
        // Sized for the file up front (one record per line): no rehashing or regrowing.
        let lines_hint = memchr::memchr_iter(b'\n', data).count();
        list.records.reserve_exact(lines_hint);
        let mut copied = String::new();
        if whole.is_none() {
            copied.reserve_exact(data.len().saturating_sub(header.len()));
        }
        let mut bases = BaseIndex::with_capacity(lines_hint, mask);
        let mut duplicates = false;
        // After the header line's `\n` (not its content's length: a CR or a NUL may end
        // that before the `\n`, and an append there would join the header line).
        let mut complete_len = header_end;
        for (index, (start, line, consumed)) in lines.enumerate() {
            let line_number = index + 2;
            let line = line_of(whole_text, start, line, line_number)?;
            let parsed = parse_record(line, list.version, line_number, &mut list.wants_rewrite)?;
            if parsed.uid <= previous_uid {
                return Err(broken(
                    line_number,
                    format!("UIDs not ordered ({} <= {previous_uid})", parsed.uid),
                ));
            }
            if list.version == 1 && parsed.uid >= list.header_next_uid {
                return Err(broken(line_number, "UID larger than next_uid".into()));
            }
            previous_uid = parsed.uid;
            let (text, fields) = if let Some(whole) = whole_text {
                (whole, start + parsed.fields)
            } else {
                let at = copied.len();
                copied.push_str(&line[parsed.fields..]);
                (copied.as_str(), at)
            };
            list.records.push(Span {
                start: fields,
                uid: parsed.uid,
                fields_len: len32(parsed.name - parsed.fields),
                base_len: len32(parsed.base_len),
                name_len: len32(line.len() - parsed.name),
            });
            // Dovecot's file table hashes and compares base names (up to `:`).
            let position = list.records.len() - 1;
            if let Some(earlier) = bases.insert(text, &list.records, position) {
                // Dovecot: "Duplicate file entry", the later UID replaces the earlier one.
                // UID 0 marks it (no record has it) until all are read.
                if let Some(span) = list.records.get_mut(earlier) {
                    span.uid = 0;
                }
                duplicates = true;
                list.wants_rewrite = true;
            }
            complete_len = consumed;
        }
        list.complete_len = complete_len;
        list.text = whole.unwrap_or(copied);
        if list.version != 3 || list.guid.is_none() {
            list.wants_rewrite = true;
        }
        if duplicates {
            // Positions move: the index is built again when asked for.
            list.records.retain(|span| span.uid != 0);
        } else {
            list.bases = OnceLock::from(bases);
        }
        Ok(Some(list))
    }

    /// The header line, with `\n`.
    pub(crate) fn header_line(&self) -> String {
        let mut line = format!("3 V{} N{}", self.uid_validity, self.header_next_uid);
        if let Some(guid) = self.guid {
            let _ = write!(line, " G{guid}");
        }
        for field in &self.header_extra {
            let _ = write!(line, " {field}");
        }
        line.push('\n');
        line
    }

    /// The whole file as version 3.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header_line();
        out.reserve(self.text.len() + 12 * self.records.len());
        for record in self.records() {
            push_line(&mut out, record.uid, record.extensions(), record.base());
        }
        out.into_bytes()
    }
}

/// Appends a record's line (`<uid> <extensions> :<base name>\n`) to `out`, growing it
/// once (a commit writes two lines per message: the journal's and the uidlist's). Extension
/// values must not contain white space (checked by the callers that accept them from
/// outside).
pub(crate) fn push_record_line(out: &mut String, record: &RecordBuf) {
    let extensions = record.extensions.iter().map(|(key, value)| (*key, value.as_str()));
    push_line(out, record.uid, extensions, filename::base(&record.filename));
}

fn push_line<'a>(
    out: &mut String,
    uid: u32,
    extensions: impl Iterator<Item = (u8, &'a str)> + Clone,
    base: &str,
) {
    let length: usize = extensions.clone().map(|(_, value)| value.len() + 2).sum();
    out.reserve(10 + length + 2 + base.len() + 1);
    // Once a saved message: without the formatting machinery.
    out.push_str(itoa::Buffer::new().format(uid));
    for (key, value) in extensions {
        out.push(' ');
        out.push(char::from(key));
        out.push_str(value);
    }
    out.push_str(" :");
    out.push_str(base);
    out.push('\n');
}

/// Base name → position of its record, by a keyed hash of the name: 32 bits of it and a
/// 32-bit position per record (8 bytes a bucket, no copy of the name), names compared only
/// when their hashes meet. (A `u64` and a `usize` took 16; a view being read holds its
/// index, benches/RESULTS-memory.md, Round 9 r9-names.)
#[derive(Debug, Clone)]
struct BaseIndex {
    /// Random per index: which names collide cannot be known in advance.
    seed: u64,
    /// All ones; tests clear bits to make names collide.
    mask: u64,
    /// The hash's low 32 bits → position of the first record indexed with them.
    first: HashMap<u32, u32, BuildHasherDefault<Prehashed>>,
    /// Whole hash → position of records whose 32 bits another base name had first (a few
    /// in a million names: exactness, not speed), or whose position is past `u32::MAX`.
    more: Vec<(u64, usize)>,
    /// A position past `u32::MAX` went to `more` without a `first` (never in practice):
    /// a name missing from `first` must still be looked for there.
    overflowed: bool,
}

/// The bits of a key [`BaseIndex::first`] is keyed by.
#[allow(clippy::cast_possible_truncation)] // The low half, on purpose.
fn short_key(key: u64) -> u32 {
    key as u32
}

impl BaseIndex {
    fn with_capacity(capacity: usize, mask: u64) -> BaseIndex {
        BaseIndex {
            seed: RandomState::new().hash_one(0x75_6964_6c69_7374_u64),
            mask,
            first: HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default()),
            more: Vec::new(),
            overflowed: false,
        }
    }

    fn build(text: &str, spans: &[Span], mask: u64) -> BaseIndex {
        let mut index = BaseIndex::with_capacity(spans.len(), mask);
        for position in 0..spans.len() {
            index.insert(text, spans, position);
        }
        index
    }

    fn key(&self, base: &str) -> u64 {
        hash_bytes(self.seed, base.as_bytes()) & self.mask
    }

    fn find(&self, text: &str, spans: &[Span], base: &str) -> Option<usize> {
        let key = self.key(base);
        match self.first.get(&short_key(key)) {
            Some(&first) if base_at(text, spans, first as usize) == Some(base) => {
                return Some(first as usize);
            }
            None if !self.overflowed => return None,
            // Another name has these bits first, or a position was past `u32::MAX`.
            _ => {}
        }
        let mut more = self.more.iter();
        more.find(|&&(k, p)| k == key && base_at(text, spans, p) == Some(base)).map(|&(_, p)| p)
    }

    /// Indexes the record at `position`; returns the position of the record indexed under
    /// its base name before (which it replaces).
    fn insert(&mut self, text: &str, spans: &[Span], position: usize) -> Option<usize> {
        let base = base_at(text, spans, position)?;
        let key = self.key(base);
        match (self.first.entry(short_key(key)), u32::try_from(position)) {
            (Entry::Vacant(entry), Ok(short)) => {
                entry.insert(short);
                return None;
            }
            (Entry::Occupied(mut entry), Ok(short)) => {
                if base_at(text, spans, *entry.get() as usize) == Some(base) {
                    return Some(entry.insert(short) as usize);
                }
            }
            (Entry::Occupied(entry), Err(_)) => {
                if base_at(text, spans, *entry.get() as usize) == Some(base) {
                    // Replaced by a record that `first` cannot hold: it moves to `more`.
                    let earlier = entry.remove() as usize;
                    self.overflowed = true;
                    self.more.push((key, position));
                    return Some(earlier);
                }
            }
            (Entry::Vacant(_), Err(_)) => self.overflowed = true,
        }
        // Another name has this hash first: this one is among the rest, or joins them.
        let same =
            self.more.iter_mut().find(|(k, p)| *k == key && base_at(text, spans, *p) == Some(base));
        if let Some((_, earlier)) = same {
            return Some(std::mem::replace(earlier, position));
        }
        self.more.push((key, position));
        None
    }
}

/// The hasher of a map whose keys are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used; this keeps the hasher correct for anything else.
        self.0 = hash_bytes(self.0, bytes);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn write_u32(&mut self, value: u32) {
        // Spread over all 64 bits: the table takes its buckets from the low bits and its
        // tags from the top 7.
        self.0 = u64::from(value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A fast keyed hash of a short string (the multiply-and-fold of foldhash and wyhash):
/// 8 bytes a step, the length and a random `seed` mixed in.
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;
    let mut hash = seed ^ (bytes.len() as u64).wrapping_mul(K0);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = fold(hash ^ u64::from_le_bytes(word), K1);
    }
    let rest = chunks.remainder();
    let mut word = [0u8; 8];
    word[..rest.len()].copy_from_slice(rest);
    hash = fold(hash ^ u64::from_le_bytes(word), K0);
    fold(hash, K1 ^ seed)
}

/// The 128-bit product's halves xor-ed.
#[allow(clippy::cast_possible_truncation)] // The halves, on purpose.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Complete `\n`-terminated lines (a trailing `\r` removed), each with the offset where it
/// starts and the offset after it.
fn complete_lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8], usize)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let end = start + memchr::memchr(b'\n', data.get(start..)?)?;
        let line = &data[start..end];
        let line_start = start;
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Dovecot parses C strings: a NUL ends the line's content.
        let line = memchr::memchr(0, line).map_or(line, |nul| &line[..nul]);
        Some((line_start, line, start))
    })
}

/// Line `number`, which starts at `start`: a slice of `whole` when the file is UTF-8 as a
/// whole, else checked on its own.
fn line_of<'t>(
    whole: Option<&'t str>,
    start: usize,
    line: &'t [u8],
    number: usize,
) -> Result<&'t str, Broken> {
    match whole {
        Some(whole) => {
            whole.get(start..start + line.len()).ok_or_else(|| broken(number, "not UTF-8".into()))
        }
        None => utf8(line, number),
    }
}

fn utf8(line: &[u8], number: usize) -> Result<&str, Broken> {
    std::str::from_utf8(line).map_err(|_| broken(number, "not UTF-8".into()))
}

fn broken(line: usize, reason: String) -> Broken {
    Broken { line, reason }
}

/// Decimal u32 as Dovecot's `str_to_uint`: digits only, no overflow.
fn parse_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_header(line: &str) -> Result<Uidlist, Broken> {
    // A CR left before a NUL (the NUL cut the line) would end the last unknown field, and be
    // taken for the line end once the field is written back: it is not part of the field.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let bytes = line.as_bytes();
    if bytes.len() < 2 || !bytes[0].is_ascii_digit() || bytes[1] != b' ' {
        return Err(broken(1, "invalid version number".into()));
    }
    let version = bytes[0] - b'0';
    let rest = &line[2..];
    let (mut uid_validity, mut next_uid, mut guid, mut extra) = (0, 0, None, Vec::new());
    match version {
        1 => {
            let mut fields = rest.split_whitespace();
            let mut field = || fields.next().and_then(parse_u32);
            match (field(), field()) {
                (Some(v), Some(n)) => (uid_validity, next_uid) = (v, n),
                _ => return Err(broken(1, "corrupted version 1 header".into())),
            }
        }
        3 => {
            for field in rest.split(' ').filter(|f| !f.is_empty()) {
                // V, N and G are ASCII; anything else is kept whole (it may not even be).
                let key = field.as_bytes()[0];
                let value = if key.is_ascii() { &field[1..] } else { "" };
                match key {
                    b'V' => {
                        uid_validity = parse_u32(value)
                            .ok_or_else(|| broken(1, format!("invalid UIDVALIDITY {value:?}")))?;
                    }
                    b'N' => {
                        next_uid = parse_u32(value)
                            .ok_or_else(|| broken(1, format!("invalid next UID {value:?}")))?;
                    }
                    b'G' => {
                        let parsed = value.parse::<Guid>();
                        guid =
                            Some(parsed.map_err(|_| {
                                broken(1, format!("invalid mailbox GUID {value:?}"))
                            })?);
                    }
                    _ => extra.push(field.to_string()),
                }
            }
        }
        _ => return Err(broken(1, format!("unsupported version {version}"))),
    }
    if uid_validity == 0 || next_uid == 0 {
        return Err(broken(
            1,
            format!("broken header (uidvalidity {uid_validity}, next uid {next_uid})"),
        ));
    }
    Ok(Uidlist::empty(version, uid_validity, next_uid, guid, extra))
}

/// Where a record line's parts are (byte offsets in the line).
struct ParsedRecord {
    uid: u32,
    /// Start of the fields (right after the UID).
    fields: usize,
    /// Start of the file name.
    name: usize,
    /// Length of the base name.
    base_len: usize,
}

fn parse_record(
    line: &str,
    version: u8,
    number: usize,
    wants_rewrite: &mut bool,
) -> Result<ParsedRecord, Broken> {
    let bytes = line.as_bytes();
    if bytes.len() > u32::MAX as usize {
        return Err(broken(number, "line too long".into()));
    }
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    // Saturating: any number too big for a u64 is "too high" as well.
    let uid = bytes[..digits]
        .iter()
        .fold(0u64, |uid, digit| uid.saturating_mul(10).saturating_add(u64::from(digit - b'0')));
    if digits == 0 || uid == 0 || bytes.get(digits) != Some(&b' ') {
        return Err(broken(number, "invalid data".into()));
    }
    let uid = u32::try_from(uid)
        .ok()
        .filter(|&u| u != u32::MAX)
        .ok_or_else(|| broken(number, "UID too high".into()))?;
    let skip_spaces = |mut at: usize| {
        while bytes.get(at) == Some(&b' ') {
            at += 1;
        }
        at
    };
    let mut at = skip_spaces(digits);
    if version == 3 {
        while let Some(&key) = bytes.get(at).filter(|&&b| b != b':') {
            if !key.is_ascii_uppercase() {
                *wants_rewrite = true; // "Invalid extension record, removing"
            }
            let end = memchr::memchr(b' ', &bytes[at..]).map_or(bytes.len(), |end| at + end);
            at = skip_spaces(end);
        }
        if bytes.get(at) == Some(&b':') {
            at += 1;
        }
        if at == bytes.len() {
            return Err(broken(number, "invalid extended fields".into()));
        }
    }
    // `at` follows an ASCII byte (a digit, a space or `:`): a char boundary.
    let name = line.get(at..).unwrap_or("");
    let base_len = memchr::memchr(b':', name.as_bytes()).unwrap_or(name.len());
    // A name whose base (before `:`) is empty could only be written back as an empty name,
    // which Dovecot would reject; no file can be matched by it either.
    // Control characters (a CR that would be taken for a line end when written back) are
    // refused too: no Maildir writer produces them.
    // (Control characters are ASCII or start with 0xC2: only then look at the chars. One
    // pass without early exit over every byte, which the compiler vectorizes.)
    let suspect = |b: u8| b < 0x20 || b == 0x7f || b == 0xc2 || b == b'/';
    if name.is_empty()
        || base_len == 0
        || (name.bytes().fold(false, |seen, b| seen | suspect(b))
            && (name.contains('/') || name.chars().any(char::is_control)))
    {
        return Err(broken(number, format!("broken file name {name:?}")));
    }
    Ok(ParsedRecord { uid, fields: digits, name: at, base_len })
}

pub(crate) mod lookup;
#[cfg(test)]
mod reference;
pub(crate) mod streamed;

#[cfg(test)]
mod tests {
    use super::*;

    /// The records as owned values.
    fn bufs(list: &Uidlist) -> Vec<RecordBuf> {
        list.records().map(Record::to_buf).collect()
    }

    /// The parse says what the round-7 parser said (kept in `reference`), whatever the
    /// input, and so does a parse whose base-name hashes collide; the index finds every
    /// record's base name at its position.
    fn agrees_with_reference(data: &[u8]) {
        let old = reference::Uidlist::parse(data);
        for mask in [u64::MAX, 1, 0] {
            let new = Uidlist::parse_hashing(data.to_vec(), mask);
            match (&old, &new) {
                (Err(old), Err(new)) => {
                    assert_eq!((old.line, &old.reason), (new.line, &new.reason), "{data:?}");
                }
                (Ok(None), Ok(None)) => {}
                (Ok(Some(old)), Ok(Some(new))) => {
                    let header = |l: &reference::Uidlist| {
                        (l.version, l.uid_validity, l.header_next_uid, l.guid, l.complete_len)
                    };
                    assert_eq!(
                        header(old),
                        (
                            new.version,
                            new.uid_validity,
                            new.header_next_uid,
                            new.guid,
                            new.complete_len
                        ),
                        "{data:?}"
                    );
                    assert_eq!(old.header_extra, new.header_extra, "{data:?}");
                    assert_eq!(old.wants_rewrite, new.wants_rewrite, "{data:?}");
                    let old_records: Vec<RecordBuf> = old
                        .records
                        .iter()
                        .map(|r| RecordBuf {
                            uid: r.uid,
                            extensions: r.extensions.clone(),
                            filename: r.filename.clone(),
                        })
                        .collect();
                    assert_eq!(old_records, bufs(new), "{data:?}");
                    for (position, record) in new.records().enumerate() {
                        assert_eq!(new.position_of_base(record.base()), Some(position));
                        for key in b'A'..=b'Z' {
                            assert_eq!(record.ext(key), old.records[position].ext(key));
                        }
                    }
                    assert_eq!(old.to_bytes_reference(), new.to_bytes(), "{data:?}");
                }
                _ => panic!("{data:?}: reference {old:?}, new {new:?}"),
            }
        }
    }

    #[test]
    fn agrees_with_the_reference_on_the_fuzz_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/maildir_uidlist");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            agrees_with_reference(&std::fs::read(entry.unwrap().path()).unwrap());
            files += 1;
        }
        assert!(files > 100, "{files} files in {}", dir.display());
    }

    /// A file that is not UTF-8 as a whole is read line by line: bytes after a NUL and a
    /// torn last line do not count.
    #[test]
    fn bytes_that_are_not_utf8_where_they_do_not_count() {
        let text = b"3 V1 N1\n1 G\xc3\xa9 :a\n2 :b\x00\xff\n3 :c:2,S\n4 :\xff";
        agrees_with_reference(text);
        let list = Uidlist::parse(text).unwrap().unwrap();
        let records: Vec<_> = list.records().map(|r| (r.uid, r.filename, r.base())).collect();
        assert_eq!(records, [(1, "a", "a"), (2, "b", "b"), (3, "c:2,S", "c")]);
        assert_eq!(list.get(0).unwrap().ext(ext::GUID), Some("é"));
        assert_eq!(list.complete_len, text.len() - b"4 :\xff".len());
    }

    #[test]
    fn colliding_hashes_still_find_each_name() {
        let text = "3 V1 N1\n1 :a\n2 :b\n3 :c\n4 :b:2,S\n5 :d\n";
        for mask in [0, 1, 3] {
            let list = Uidlist::parse_hashing(text.as_bytes().to_vec(), mask).unwrap().unwrap();
            let uids: Vec<u32> = list.records().map(|r| r.uid).collect();
            assert_eq!(uids, [1, 3, 4, 5], "mask {mask}");
            let index = BaseIndex::build(&list.text, &list.records, mask);
            for (base, position) in [("a", Some(0)), ("b", Some(2)), ("c", Some(1))] {
                assert_eq!(index.find(&list.text, &list.records, base), position, "{base}");
            }
            assert_eq!(index.find(&list.text, &list.records, "e"), None);
            assert_eq!(index.find(&list.text, &list.records, "b:2,S"), None);
        }
    }

    #[test]
    fn the_index_follows_pushes_and_removals() {
        let text = "3 V1 N1\n1 G1 :a\n2 :b\n3 P7 :c\n";
        let mut list = Uidlist::parse(text.as_bytes()).unwrap().unwrap();
        assert!(list.bases.get().is_some(), "the parse keeps its index");
        list.push(&RecordBuf {
            uid: 9,
            extensions: vec![(b'G', "x".into())],
            filename: "d".into(),
        });
        assert!(list.bases.get().is_some(), "a push keeps it");
        assert_eq!(list.position_of_base("d"), Some(3));
        assert_eq!(list.records().last().unwrap().ext(ext::GUID), Some("x"));
        assert_eq!(list.next_uid(), 10);
        assert_eq!(
            list.remove(1),
            Some(RecordBuf { uid: 2, extensions: vec![], filename: "b".into() })
        );
        assert!(!list.contains_base("b"));
        assert_eq!(list.position_of_base("d"), Some(2));
        list.retain(|r| r.base() != "a");
        assert_eq!(list.position_of_base("c"), Some(0));
        assert_eq!(list.position_of_base("a"), None);
        list.add_extension(0, ext::VSIZE, "42");
        let c = list.get(0).unwrap();
        assert_eq!(
            (c.ext(ext::POP3_UIDL), c.ext(ext::VSIZE), c.filename),
            (Some("7"), Some("42"), "c")
        );
        assert_eq!(list.position_of_base("c"), Some(0));
        let popped = list.pop().unwrap();
        assert_eq!((popped.uid, popped.filename.as_str()), (9, "d"));
        assert_eq!(String::from_utf8(list.to_bytes()).unwrap(), "3 V1 N1\n3 P7 W42 :c\n");
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn origin_counts_only_for_the_uid_validity_it_names() {
        let list = Uidlist::parse(b"3 V900 N1 Pfoo Xdsync-origin=900:500\n").unwrap().unwrap();
        assert_eq!(list.origin(), Some(500));
        // Written for an earlier UIDVALIDITY (someone changed it since), or damaged: none.
        for header in ["3 V901 N1 Xdsync-origin=900:500", "3 V900 N1 Xdsync-origin=900:x"] {
            let list = Uidlist::parse(format!("{header}\n").as_bytes()).unwrap().unwrap();
            assert_eq!(list.origin(), None, "{header}");
        }
        let mut list = list;
        list.set_origin(Some(7));
        assert_eq!(list.header_line(), "3 V900 N1 Pfoo Xdsync-origin=900:7\n");
        list.set_origin(Some(900));
        assert_eq!(list.header_line(), "3 V900 N1 Pfoo\n", "its own value is no origin");
        list.set_origin(Some(7));
        list.set_origin(None);
        assert_eq!((list.origin(), list.header_extra.as_slice()), (None, &["Pfoo".to_owned()][..]));
    }

    /// Fuzz finding: a CR before a NUL ended the origin field, which then read back
    /// differently once written (the CR taken for the line end). And the complete length
    /// is the header line's, not its content's: an append there would have joined it.
    #[test]
    fn a_cr_before_a_nul_is_not_part_of_the_header() {
        let crlf = Uidlist::parse(b"3 V1 N1\r\n").unwrap().unwrap();
        assert_eq!(crlf.complete_len, 9);
        let text = b"3 V7 N10 Xdsync-origin=7:66666\r\0\0\x006orN=\n";
        let list = Uidlist::parse(text).unwrap().unwrap();
        assert_eq!(list.origin(), Some(66666));
        assert_eq!(list.header_line(), "3 V7 N10 Xdsync-origin=7:66666\n");
        assert_eq!(list.complete_len, text.len());
        crate::fuzzing::uidlist(text);
    }

    const DOVECOT: &str = "3 V1795424865 N9 G11c75a325f02046bff3d000083ecc375\n\
        1 :1795424863.M887367P15871.vm,S=216,W=225\n\
        2 G1234 P00ab O3 :1795424863.M889967P15871.vm,S=228,W=237\n\
        9 :1795424863.M911307P15871.vm,S=215,W=224\n";

    #[test]
    fn parses_what_dovecot_writes_and_writes_it_back() {
        let list = Uidlist::parse(DOVECOT.as_bytes()).unwrap().unwrap();
        assert_eq!((list.version, list.uid_validity, list.header_next_uid), (3, 1_795_424_865, 9));
        assert_eq!(list.next_uid(), 10);
        assert_eq!(list.guid.unwrap().to_string(), "11c75a325f02046bff3d000083ecc375");
        assert_eq!(list.len(), 3);
        let second = list.get(1).unwrap();
        assert_eq!(second.ext(ext::GUID), Some("1234"));
        assert_eq!(second.ext(ext::POP3_ORDER), Some("3"));
        assert_eq!(second.ext(ext::SIZE), None);
        assert_eq!(list.get(2).unwrap().filename, "1795424863.M911307P15871.vm,S=215,W=224");
        assert_eq!(
            list.get(list.position_of_uid(9).unwrap()).unwrap().base(),
            "1795424863.M911307P15871.vm,S=215,W=224"
        );
        assert!(list.position_of_uid(3).is_none());
        assert_eq!(list.position_of_base("1795424863.M887367P15871.vm,S=216,W=225"), Some(0));
        assert!(!list.wants_rewrite);
        assert_eq!(String::from_utf8(list.to_bytes()).unwrap(), DOVECOT);
        assert_eq!(list.complete_len, DOVECOT.len());
    }

    #[test]
    fn duplicates_keep_the_later_uid_wherever_they_are() {
        let text = "3 V1 N1 G11c75a325f02046bff3d000083ecc375\n\
            1 :a\n2 :b\n3 :c\n4 :a:2,S\n5 :d\n6 :c\n7 :b\n";
        let list = Uidlist::parse(text.as_bytes()).unwrap().unwrap();
        let records: Vec<(u32, &str)> = list.records().map(|r| (r.uid, r.filename)).collect();
        assert_eq!(records, [(4, "a:2,S"), (5, "d"), (6, "c"), (7, "b")]);
        // The index, built again after the duplicates went, finds each at its new place.
        let positions: Vec<_> = ["a", "d", "c", "b", "e"].map(|b| list.position_of_base(b)).into();
        assert_eq!(positions, [Some(0), Some(1), Some(2), Some(3), None]);
        assert!(list.wants_rewrite);
    }

    #[test]
    fn broken_files() {
        let cases: &[(&str, usize)] = &[
            ("x V1 N1\n", 1),
            ("3 V0 N1\n", 1),
            ("3 V1 N0\n", 1),
            ("3 V1 N1 Gxyz\n", 1),
            ("3 Vabc N1\n", 1),
            ("4 V1 N1\n", 1),
            ("3 V1 N1\n0 :a\n", 2),
            ("3 V1 N1\n2 :a\n2 :b\n", 3),
            ("3 V1 N1\n1 :a\n1x :b\n", 3),
            ("3 V1 N1\n1 S12\n", 2),
            ("3 V1 N1\n1 :a/b\n", 2),
            ("3 V1 N1\n1 ::b\n", 2),
            ("1 5 9\n1 a\n8 :b2\x11,S\n", 3),
            ("3 V1 N1\n4294967295 :a\n", 2),
            ("3 V1 N1\n99999999999 :a\n", 2),
            ("1 5 3\n1 a\n3 b\n", 3),
        ];
        assert_eq!(Uidlist::parse(b"3 V1 N1\n1 :\xff\n").unwrap_err().line, 2);
        for (text, line) in cases {
            let err = Uidlist::parse(text.as_bytes()).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err:?}");
        }
    }

    #[test]
    fn recoveries() {
        assert_eq!(Uidlist::parse(b"").unwrap(), None);
        assert_eq!(Uidlist::parse(b"3 V1 N1").unwrap_err().line, 1);
        // Lowercase extension key: dropped; duplicate file: later UID wins; torn last line ignored.
        let text = "3 V7 N1 G11c75a325f02046bff3d000083ecc375\n1 xjunk S5 :a\n2 :b\n3 :a\n4 :c";
        let list = Uidlist::parse(text.as_bytes()).unwrap().unwrap();
        assert!(list.wants_rewrite);
        let uids: Vec<(u32, &str)> = list.records().map(|r| (r.uid, r.filename)).collect();
        assert_eq!(uids, [(2, "b"), (3, "a")]);
        assert_eq!(list.complete_len, text.len() - "4 :c".len());
        assert_eq!(list.next_uid(), 4);
        // Version 1 (Courier).
        let list = Uidlist::parse(b"1 5 9\n1 a\n8 b:2,S\n").unwrap().unwrap();
        assert_eq!((list.uid_validity, list.next_uid(), list.guid), (5, 9, None));
        assert!(list.wants_rewrite);
        assert_eq!(list.get(1).unwrap().filename, "b:2,S");
        assert_eq!(list.get(1).unwrap().base(), "b");
        // Unknown header fields are kept; CRLF tolerated.
        let list = Uidlist::parse(b"3 V1 N1 Pfoo\r\n").unwrap().unwrap();
        assert_eq!(list.header_extra, ["Pfoo"]);
        assert_eq!(list.header_line(), "3 V1 N1 Pfoo\n");
    }

    mod properties {
        use std::fmt::Write as _;

        use super::super::*;
        use proptest::prelude::*;

        fn record() -> impl Strategy<Value = (Vec<(u8, String)>, String)> {
            (
                proptest::collection::vec(
                    (prop::sample::select(b"SWPOGAZ".to_vec()), "[!-~&&[^:]][!-~]{0,12}"),
                    0..4,
                ),
                "[0-9]{1,10}\\.M[0-9]{1,6}P[0-9]{1,5}\\.[a-z]{1,8}(,S=[0-9]{1,6})?(,W=[0-9]{1,6})?",
            )
        }

        proptest! {
            #[test]
            fn write_then_parse_is_identity(
                uid_validity in 1u32..,
                header_next in 1u32..1000,
                gaps in proptest::collection::vec(1u32..1000, 0..20),
                records in proptest::collection::vec(record(), 0..20),
                guid in any::<[u8; 16]>(),
            ) {
                let mut list = Uidlist::new(uid_validity, header_next, Guid::from_bytes(guid));
                let mut uid = 0u32;
                let mut expected = Vec::new();
                for ((extensions, filename), gap) in records.into_iter().zip(gaps) {
                    uid += gap;
                    if expected.iter().any(|r: &RecordBuf| r.filename == filename) {
                        continue;
                    }
                    let record = RecordBuf { uid, extensions, filename };
                    list.push(&record);
                    expected.push(record);
                }
                let bytes = list.to_bytes();
                let parsed = Uidlist::parse(&bytes).unwrap().unwrap();
                prop_assert_eq!(&super::bufs(&parsed), &expected);
                prop_assert_eq!(parsed.next_uid(), list.next_uid());
                prop_assert_eq!(parsed.guid, list.guid);
                prop_assert_eq!(parsed.complete_len, bytes.len());
                prop_assert!(!parsed.wants_rewrite);
                // A torn append never changes what the complete lines say.
                for cut in 0..bytes.len() {
                    if let Ok(Some(prefix)) = Uidlist::parse(&bytes[..cut]) {
                        prop_assert_eq!(&super::bufs(&prefix)[..], &expected[..prefix.len()]);
                    }
                }
            }

            #[test]
            fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
                crate::fuzzing::uidlist(&data);
                super::agrees_with_reference(&data);
            }

            /// Files close to valid ones (few names, so duplicates; odd fields and spaces,
            /// version 1 headers, torn and NUL-cut lines) agree with the reference.
            #[test]
            fn near_valid_files_agree_with_the_reference(
                header in prop::sample::select(vec![
                    "3 V1 N1",
                    "3 V5 N9 Pfoo",
                    "1 5 40",
                    "3 V1 N1 G11c75a325f02046bff3d000083ecc375",
                ]),
                lines in proptest::collection::vec(
                    (
                        prop_oneof![9 => 1u32..4, 1 => Just(0)],
                        prop_oneof![
                            3 => Just(String::new()),
                            1 => "( {1,2}[A-Za-z:][a-z0-9:é]{0,3}){1,3}",
                        ],
                        prop_oneof![9 => Just(" :".to_owned()), 1 => " {1,2}:?"],
                        "[abc](:2,[SR]?)?",
                        // `~` becomes a byte that is not UTF-8.
                        prop_oneof![9 => Just(String::new()), 1 => "[\\x00é/\\x01~]"],
                        prop_oneof![
                            9 => Just("\n"),
                            1 => Just("\r\n"),
                            1 => Just(""),
                            // Not UTF-8 after a NUL: the line counts up to the NUL.
                            1 => Just("\0~\n"),
                        ],
                    ),
                    0..12,
                ),
            ) {
                let mut text = format!("{header}\n");
                let mut uid = 0;
                for (gap, fields, colon, name, odd, end) in lines {
                    uid += gap;
                    let _ = write!(text, "{uid}{fields}{colon}{name}{odd}{end}");
                }
                let bytes: Vec<u8> =
                    text.bytes().map(|b| if b == b'~' { 0xff } else { b }).collect();
                super::agrees_with_reference(&bytes);
            }
        }
    }
}
