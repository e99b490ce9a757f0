//! [`BaseFlags`]: a mailbox's per-message records, decoded or still where the state file
//! holds them. A re-run that finds a mailbox unchanged on both sides never needs them, so
//! [`StateFile::load`](super::StateFile::load) checks each mailbox's records and keeps
//! only their place in the file (and a hash of their bytes); they are read again when a
//! run plans the mailbox, and copied as they are when the state is saved. A run over a
//! million unchanged messages then holds nothing per message from its state.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::{self, Write};
use std::sync::Arc;

use super::StateError;
use super::decode::{self, Records};
use super::packed_base::{PackedIter, PackedRecords};
use super::patched::Patched;
use crate::model::{Flags, Uid};

/// A mailbox's base records ([`MergeBase::flags`](super::MergeBase::flags)): UID → the
/// flags side A had. Either decoded, or (in a state [`StateFile::load`] read) still in the
/// state file, checked when it was loaded and read again when a run needs it
/// ([`read`](Self::read)). Saving copies stored records as they are.
///
/// Equality compares the records themselves; stored records that can no longer be read
/// (the file was changed under the run) are equal only to themselves.
///
/// ```
/// use dsync_core::state::{BaseFlags, MergeBase};
/// use dsync_core::{Flags, Uid};
///
/// let flags: BaseFlags = [(Uid::MIN, Flags::from_imap_names(["\\Seen"]))].into_iter().collect();
/// let base = MergeBase { uid_validity: 7, last_common_uid: 1, flags };
/// // Decoded records are borrowed; stored ones would be read from the state file here.
/// let records = base.flags.read()?;
/// assert_eq!(records.len(), 1);
/// # Ok::<(), dsync_core::state::StateError>(())
/// ```
///
/// [`StateFile::load`]: super::StateFile::load
#[derive(Clone, Default)]
pub struct BaseFlags {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Decoded(BTreeMap<Uid, Flags>),
    Stored(Stored),
    /// Built by a run, a few bytes a record ([`super::BaseFlagsBuilder`]).
    Packed(PackedRecords),
    /// Stored records with a few changed ([`BaseFlags::patched`]).
    Patched(Patched),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Decoded(BTreeMap::new())
    }
}

/// Where a mailbox's records are: bytes `start..end` of `text`, `count` lines from line
/// `first_line` on, written exactly as the encoder writes them (so they can be copied).
#[derive(Clone)]
pub(super) struct Stored {
    pub(super) text: Arc<StoredText>,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) count: usize,
    pub(super) first_line: usize,
    /// The hash ([`section_hasher`]) of the bytes when they were loaded: bytes that changed since are
    /// never used.
    pub(super) hash: u64,
}

/// The text a state was loaded from, kept open for its mailboxes' records. The state is
/// replaced by renaming a new file over it, so an open file keeps the bytes it was
/// loaded with; what is appended meanwhile (`forget`, `pair` lines) lies beyond them.
#[derive(Debug)]
pub(super) enum StoredText {
    /// The state file as it was opened.
    File(std::fs::File),
    /// A text in memory (tests and fuzzing take the file's path through this).
    Bytes(Vec<u8>),
}

impl StoredText {
    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            StoredText::File(file) => std::os::unix::fs::FileExt::read_at(file, buffer, offset),
            StoredText::Bytes(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let available = &bytes[start..];
                let length = available.len().min(buffer.len());
                buffer[..length].copy_from_slice(&available[..length]);
                Ok(length)
            }
        }
    }
}

/// The hash a stored section's bytes are checked against. `DefaultHasher::new` has fixed
/// keys, and its `write` gives the same hash however the bytes are split.
pub(super) fn section_hasher() -> DefaultHasher {
    DefaultHasher::new()
}

/// Why stored records could not be copied.
#[derive(Debug)]
pub(super) enum CopyError {
    /// The records cannot be read as they were loaded (the file changed, or cannot be
    /// read): the mailbox's entry is left out, which costs a full run of it.
    Source(io::Error),
    /// Writing failed.
    Sink(io::Error),
}

impl Stored {
    /// Streams the bytes through `each` in bounded chunks, checking them against the hash.
    fn stream(
        &self,
        each: &mut dyn FnMut(&[u8]) -> Result<(), CopyError>,
    ) -> Result<(), CopyError> {
        const CHUNK: usize = 64 * 1024;
        let mut buffer = vec![0u8; CHUNK];
        let mut hasher = section_hasher();
        let mut at = self.start;
        while at < self.end {
            let want = usize::try_from(self.end - at).unwrap_or(CHUNK).min(CHUNK);
            let read = self.text.read_at(at, &mut buffer[..want]).map_err(CopyError::Source)?;
            if read == 0 {
                return Err(CopyError::Source(changed("ends early")));
            }
            hasher.write(&buffer[..read]);
            each(&buffer[..read])?;
            at += read as u64;
        }
        if hasher.finish() == self.hash {
            Ok(())
        } else {
            Err(CopyError::Source(changed("was changed")))
        }
    }

    /// Writes the records' bytes, as loaded, to `out`.
    pub(super) fn copy_to(&self, out: &mut dyn Write) -> Result<(), CopyError> {
        self.stream(&mut |bytes| out.write_all(bytes).map_err(CopyError::Sink))
    }

    /// Reads the records' bytes, checked against the hash.
    pub(super) fn load(&self) -> Result<Vec<u8>, StateError> {
        let capacity = usize::try_from(self.end - self.start).unwrap_or_default();
        let mut bytes = Vec::with_capacity(capacity);
        self.stream(&mut |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })
        .map_err(|error| {
            let (CopyError::Source(error) | CopyError::Sink(error)) = error;
            StateError { line: self.first_line, reason: error.to_string() }
        })?;
        Ok(bytes)
    }

    /// Reads and decodes the records.
    pub(super) fn decode(&self) -> Result<BTreeMap<Uid, Flags>, StateError> {
        let bytes = self.load()?;
        let mut records = Records::default();
        for (index, line) in decode::lines(&bytes).enumerate() {
            let number = self.first_line + index;
            let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
            let (uid, flags) = decode::message(line, &error)?;
            records.push(uid, flags);
        }
        Ok(records.into_map())
    }
}

fn changed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("the state file {what} since it was loaded"))
}

impl BaseFlags {
    /// No records.
    pub fn new() -> BaseFlags {
        BaseFlags::default()
    }

    pub(super) fn stored(stored: Stored) -> BaseFlags {
        BaseFlags { repr: Repr::Stored(stored) }
    }

    pub(super) fn packed(records: PackedRecords) -> BaseFlags {
        BaseFlags { repr: Repr::Packed(records) }
    }

    pub(super) fn patched_stored(patched: Patched) -> BaseFlags {
        BaseFlags { repr: Repr::Patched(patched) }
    }

    pub(super) fn as_stored(&self) -> Option<&Stored> {
        match &self.repr {
            Repr::Stored(stored) => Some(stored),
            Repr::Decoded(_) | Repr::Packed(_) | Repr::Patched(_) => None,
        }
    }

    pub(super) fn as_patched(&self) -> Option<&Patched> {
        match &self.repr {
            Repr::Patched(patched) => Some(patched),
            Repr::Decoded(_) | Repr::Packed(_) | Repr::Stored(_) => None,
        }
    }

    /// True while the records are still in the state file (not read since it was loaded).
    pub fn in_state_file(&self) -> bool {
        matches!(self.repr, Repr::Stored(_))
    }

    /// How many records there are (known without reading stored ones).
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Decoded(map) => map.len(),
            Repr::Stored(stored) => stored.count,
            Repr::Packed(records) => records.len(),
            Repr::Patched(patched) => patched.count,
        }
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records when they are in memory as a map; `None` while they are still in the
    /// state file, or packed ([`read`](Self::read) them).
    pub fn decoded(&self) -> Option<&BTreeMap<Uid, Flags>> {
        match &self.repr {
            Repr::Decoded(map) => Some(map),
            Repr::Stored(_) | Repr::Packed(_) | Repr::Patched(_) => None,
        }
    }

    /// The records when they are in memory, to change.
    #[cfg(test)]
    pub(super) fn decoded_mut(&mut self) -> Option<&mut BTreeMap<Uid, Flags>> {
        match &mut self.repr {
            Repr::Decoded(map) => Some(map),
            Repr::Stored(_) | Repr::Packed(_) | Repr::Patched(_) => None,
        }
    }

    /// The records, read from the state file when they are still there. An error means
    /// the file no longer holds what was loaded (changed or unreadable since): the caller
    /// then does without this mailbox's base, as after a damaged state.
    pub fn read(&self) -> Result<Cow<'_, BTreeMap<Uid, Flags>>, StateError> {
        match &self.repr {
            Repr::Decoded(map) => Ok(Cow::Borrowed(map)),
            Repr::Stored(stored) => stored.decode().map(Cow::Owned),
            Repr::Packed(records) => Ok(Cow::Owned(records.to_map())),
            Repr::Patched(patched) => patched.decode().map(Cow::Owned),
        }
    }
}

/// A mailbox's base records one at a time, in ascending UID order
/// ([`BaseFlags::records`]): borrowed from the map when decoded, else read and decoded
/// from the state file in bounded chunks, so that planning a changed mailbox does not
/// hold its base whole.
///
/// An error item ends the records: a line that does not decode, records out of UID
/// order, or bytes that are no longer those that were loaded. The last is known only once
/// every record was read (the check is of the whole section): a caller that used the
/// records before must then discard what it made of them.
pub struct BaseRecords<'a> {
    inner: RecordsInner<'a>,
}

impl std::fmt::Debug for BaseRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stored = matches!(self.inner, RecordsInner::Stored(_));
        f.debug_struct("BaseRecords").field("stored", &stored).finish_non_exhaustive()
    }
}

enum RecordsInner<'a> {
    Decoded(std::collections::btree_map::Iter<'a, Uid, Flags>),
    /// Patched records, decoded whole (or the error doing so).
    Owned(std::collections::btree_map::IntoIter<Uid, Flags>, Option<StateError>),
    Stored(StoredRecords<'a>),
    Packed(PackedIter<'a>),
}

/// The reading state of [`BaseRecords`] over stored records.
struct StoredRecords<'a> {
    stored: &'a Stored,
    chunk: usize,
    /// Bytes read and not yet decoded start at `buffer[pos]`.
    buffer: Vec<u8>,
    pos: usize,
    /// The next offset of the file to read.
    at: u64,
    hasher: DefaultHasher,
    /// Records decoded so far.
    index: usize,
    last: Option<Uid>,
    done: bool,
}

impl StoredRecords<'_> {
    fn error(&mut self, line: usize, reason: &str) -> StateError {
        self.done = true;
        StateError { line, reason: reason.to_owned() }
    }

    /// Decodes one line (without its end).
    fn decode(&mut self, line_start: usize, line_end: usize) -> Result<(Uid, Flags), StateError> {
        let number = self.stored.first_line + self.index;
        self.index += 1;
        let line = self.buffer.get(line_start..line_end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
        let decoded = decode::message(line, &error);
        let (uid, flags) = decoded.inspect_err(|_| self.done = true)?;
        if self.last.is_some_and(|last| last >= uid) {
            return Err(self.error(number, "message records are not in ascending UID order"));
        }
        self.last = Some(uid);
        Ok((uid, flags))
    }

    fn next_record(&mut self) -> Option<Result<(Uid, Flags), StateError>> {
        loop {
            if self.done {
                return None;
            }
            let rest = self.buffer.get(self.pos..).unwrap_or_default();
            if let Some(length) = memchr::memchr(b'\n', rest) {
                let start = self.pos;
                self.pos += length + 1;
                return Some(self.decode(start, start + length));
            }
            if self.at >= self.stored.end {
                let (start, end) = (self.pos, self.buffer.len());
                self.pos = end;
                let last = (start < end).then(|| self.decode(start, end));
                if let Some(Err(error)) = last {
                    return Some(Err(error));
                }
                self.done = true;
                if self.hasher.finish() != self.stored.hash {
                    let line = self.stored.first_line;
                    return Some(Err(self.error(line, &changed("was changed").to_string())));
                }
                return last;
            }
            // More bytes: what is left of the buffer moves to its start.
            self.buffer.drain(..self.pos);
            self.pos = 0;
            let length = self.buffer.len();
            let want = usize::try_from(self.stored.end - self.at).unwrap_or(self.chunk);
            self.buffer.resize(length + want.min(self.chunk), 0);
            let read = self.stored.text.read_at(self.at, &mut self.buffer[length..]);
            let line = self.stored.first_line + self.index;
            match read {
                Ok(0) => return Some(Err(self.error(line, &changed("ends early").to_string()))),
                Ok(read) => {
                    self.buffer.truncate(length + read);
                    self.hasher.write(&self.buffer[length..]);
                    self.at += read as u64;
                }
                Err(error) => return Some(Err(self.error(line, &error.to_string()))),
            }
        }
    }
}

impl<'a> Iterator for BaseRecords<'a> {
    type Item = Result<(Uid, Cow<'a, Flags>), StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            RecordsInner::Decoded(records) => {
                records.next().map(|(uid, flags)| Ok((*uid, Cow::Borrowed(flags))))
            }
            RecordsInner::Stored(stored) => {
                stored.next_record().map(|record| record.map(|(uid, f)| (uid, Cow::Owned(f))))
            }
            RecordsInner::Packed(records) => {
                records.next().map(|(uid, flags)| Ok((uid, Cow::Borrowed(flags))))
            }
            RecordsInner::Owned(records, error) => match error.take() {
                Some(error) => Some(Err(error)),
                None => records.next().map(|(uid, flags)| Ok((uid, Cow::Owned(flags)))),
            },
        }
    }
}

impl BaseFlags {
    /// The records one at a time, in ascending UID order, read from the state file as
    /// they are needed when they are still there ([`BaseRecords`]).
    pub fn records(&self) -> BaseRecords<'_> {
        self.records_in_chunks(64 * 1024)
    }

    /// [`records`](Self::records), reading stored records `chunk` bytes at a time.
    pub(super) fn records_in_chunks(&self, chunk: usize) -> BaseRecords<'_> {
        let inner = match &self.repr {
            Repr::Decoded(map) => RecordsInner::Decoded(map.iter()),
            Repr::Packed(records) => RecordsInner::Packed(records.iter()),
            Repr::Patched(patched) => match patched.decode() {
                Ok(map) => RecordsInner::Owned(map.into_iter(), None),
                Err(error) => RecordsInner::Owned(BTreeMap::new().into_iter(), Some(error)),
            },
            Repr::Stored(stored) => RecordsInner::Stored(StoredRecords {
                stored,
                chunk: chunk.max(1),
                buffer: Vec::new(),
                pos: 0,
                at: stored.start,
                hasher: section_hasher(),
                index: 0,
                last: None,
                done: false,
            }),
        };
        BaseRecords { inner }
    }
}

impl BaseFlags {
    /// The records as a map ([`read`](Self::read) from the state file when they are still
    /// there).
    pub fn into_map(self) -> Result<BTreeMap<Uid, Flags>, StateError> {
        match self.repr {
            Repr::Decoded(map) => Ok(map),
            Repr::Stored(stored) => stored.decode(),
            Repr::Packed(records) => Ok(records.to_map()),
            Repr::Patched(patched) => patched.decode(),
        }
    }
}

impl From<BTreeMap<Uid, Flags>> for BaseFlags {
    fn from(map: BTreeMap<Uid, Flags>) -> BaseFlags {
        BaseFlags { repr: Repr::Decoded(map) }
    }
}

impl FromIterator<(Uid, Flags)> for BaseFlags {
    fn from_iter<I: IntoIterator<Item = (Uid, Flags)>>(records: I) -> BaseFlags {
        BaseFlags::from(records.into_iter().collect::<BTreeMap<_, _>>())
    }
}

impl PartialEq for BaseFlags {
    fn eq(&self, other: &BaseFlags) -> bool {
        if let (Repr::Stored(a), Repr::Stored(b)) = (&self.repr, &other.repr)
            && Arc::ptr_eq(&a.text, &b.text)
            && (a.start, a.end) == (b.start, b.end)
        {
            return true;
        }
        self.len() == other.len() && matches!((self.read(), other.read()), (Ok(a), Ok(b)) if a == b)
    }
}

impl Eq for BaseFlags {}

impl std::fmt::Debug for BaseFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.repr {
            Repr::Decoded(map) => map.fmt(f),
            Repr::Packed(records) => f.debug_map().entries(records.iter()).finish(),
            Repr::Patched(patched) => f
                .debug_struct("Patched")
                .field("records", &patched.count)
                .field("bytes", &(patched.stored.start..patched.stored.end))
                .field("changes", &patched.changes)
                .finish(),
            Repr::Stored(stored) => f
                .debug_struct("Stored")
                .field("records", &stored.count)
                .field("bytes", &(stored.start..stored.end))
                .field("first_line", &stored.first_line)
                .finish(),
        }
    }
}
