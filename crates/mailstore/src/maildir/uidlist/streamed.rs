//! A `dovecot-uidlist` read line by line for a mailbox's view, its text left in the file.
//!
//! [`super::Uidlist`] keeps the file's text and a 24-byte span a record: ~67 bytes a
//! message a view held for as long as it was kept (benches/RESULTS-memory.md, Round 11).
//! A view needs a record's text only when it reads that message, in UID order or by one
//! UID: this read keeps of each record its UID, where its line starts and a 32-bit check
//! of the line (12 bytes), and reads a line again from the file, which the view keeps
//! open, a block at a time, when the record is asked for.
//!
//! The open file is the one read: a rewrite (a new file renamed over it, as Dovecot and we
//! rewrite) leaves it as it was, and appends come after its last line. A line changed in
//! place (no Maildir writer does that) no longer has its UID or check: the view says so
//! ([`Changed`]) instead of serving another message under the UID.
//!
//! The parse is [`super::Uidlist::parse`]'s, line by line: the same header, records,
//! `wants_rewrite` and [`Broken`] reasons and lines (tested against it, and a fuzz target).
//! Base names are hashed as they are read, keyed per read ([`Bases`]): the directories are
//! read against the hashes. Two records whose hashes meet (a name listed twice, which the
//! parse repairs, or a collision) make the read give up ([`Read::Whole`]): the whole parse
//! decides, as it did before.

use std::io;
use std::sync::Mutex;

use super::lookup::ReadAt;
use super::{Broken, Record, Uidlist, broken, hash_bytes, parse_header, parse_record, utf8};

/// Bytes read at once, when the file is read and when a record's line is read again.
pub(crate) const CHUNK: usize = 64 * 1024;

/// What [`Streamed::read`] found.
#[derive(Debug)]
pub(crate) enum Read<R> {
    /// Every record, with the keyed hashes of their base names.
    Streamed(Box<Streamed<R>>, Bases),
    /// Two base names' hashes meet, or the file is 4 GiB or more: only the whole parse
    /// ([`super::Uidlist::parse`]) may answer.
    Whole,
}

/// Why a read of a uidlist gave no list.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Reading the file failed.
    Io(io::Error),
    /// Dovecot would consider the file broken.
    Broken(Broken),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> ReadError {
        ReadError::Io(error)
    }
}

impl From<Broken> for ReadError {
    fn from(broken: Broken) -> ReadError {
        ReadError::Broken(broken)
    }
}

/// A record's line is no longer what was read: the file was changed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Changed;

/// A uidlist as [`Streamed::read`] keeps it: the header, and of each record its UID, where
/// its line starts and a check of the line.
#[derive(Debug)]
pub(crate) struct Streamed<R> {
    /// The header's fields, where the complete lines end and `wants_rewrite`; no records.
    header: Uidlist,
    next_uid: u32,
    uids: Vec<u32>,
    /// Where each record's line starts in the file (the file is < 4 GiB).
    starts: Vec<u32>,
    /// The low 32 bits of a keyed hash of each line as read.
    checks: Vec<u32>,
    seed: u64,
    source: R,
    /// The bytes last read from the file for a record: the next record's line is usually
    /// among them (a listing reads in UID order, a copy asks UIDs in order).
    block: Mutex<Block>,
}

#[derive(Debug, Default)]
struct Block {
    start: u64,
    data: Vec<u8>,
}

/// Keyed hashes of a uidlist's base names, by record position, and a table that finds a
/// record by its hash: 8 bytes and one or two 4-byte slots a record, while a directory is
/// read against them.
#[derive(Debug)]
pub(crate) struct Bases {
    seed: u64,
    hashes: Vec<u64>,
    /// 0 for a free slot, else 1 + the record's position; linear probing.
    slots: Vec<u32>,
}

impl Bases {
    fn with_capacity(records: usize, seed: u64) -> Bases {
        let slots = (records.saturating_mul(4) / 3 + 1).next_power_of_two().max(16);
        Bases { seed, hashes: Vec::with_capacity(records), slots: vec![0; slots] }
    }

    /// The hash of base name `base`.
    pub(crate) fn hash(&self, base: &str) -> u64 {
        hash_bytes(self.seed, base.as_bytes())
    }

    #[allow(clippy::cast_possible_truncation)] // The table's size is a `usize`.
    fn slot_of(&self, hash: u64) -> usize {
        (hash as usize) & (self.slots.len() - 1)
    }

    /// Adds the next record's hash; false when a record has it already.
    fn push(&mut self, hash: u64) -> bool {
        if self.find(hash).is_some() {
            return false;
        }
        if (self.hashes.len() + 1) * 4 > self.slots.len() * 3 {
            let mut bigger =
                Bases { seed: self.seed, hashes: Vec::new(), slots: vec![0; self.slots.len() * 2] };
            for (position, &hash) in self.hashes.iter().enumerate() {
                bigger.place(hash, position);
            }
            self.slots = bigger.slots;
        }
        self.hashes.push(hash);
        self.place(hash, self.hashes.len() - 1);
        true
    }

    fn place(&mut self, hash: u64, position: usize) {
        let Ok(id) = u32::try_from(position + 1) else { return };
        let mut slot = self.slot_of(hash);
        while self.slots[slot] != 0 {
            slot = (slot + 1) & (self.slots.len() - 1);
        }
        self.slots[slot] = id;
    }

    /// The position of the record whose base name has hash `hash`.
    pub(crate) fn find(&self, hash: u64) -> Option<usize> {
        let mut slot = self.slot_of(hash);
        loop {
            let id = *self.slots.get(slot)?;
            let position = usize::try_from(id).ok()?.checked_sub(1)?;
            if self.hashes.get(position) == Some(&hash) {
                return Some(position);
            }
            slot = (slot + 1) & (self.slots.len() - 1);
        }
    }
}

/// A complete line as the whole parse takes it: a CR before the `\n` removed, and a NUL
/// ends it.
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    memchr::memchr(0, line).map_or(line, |nul| &line[..nul])
}

#[allow(clippy::cast_possible_truncation)] // The low half, on purpose.
fn check(seed: u64, line: &[u8]) -> u32 {
    hash_bytes(seed ^ 0x0063_6865_636b, line) as u32
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buffer, offset)
    }
}

/// Reads `buffer.len()` bytes at `offset` (fewer only at the end of the file).
fn read_full<R: ReadAt + ?Sized>(source: &R, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl<R: ReadAt> Streamed<R> {
    /// Reads the uidlist in `source` from its start, `chunk` bytes at a time (tests make it
    /// small); `Ok(None)` for an empty file. `seed` keys the hashes (random per read).
    pub(crate) fn read(source: R, chunk: usize, seed: u64) -> Result<Option<Read<R>>, ReadError> {
        Streamed::read_with(source, chunk, seed, &mut |_, _, _| {})
    }

    /// [`Self::read`], each record's position, UID and base name given to `each` as its
    /// line is read (in file order: ascending UIDs).
    pub(crate) fn read_with(
        source: R,
        chunk: usize,
        seed: u64,
        each: &mut dyn FnMut(usize, u32, &str),
    ) -> Result<Option<Read<R>>, ReadError> {
        let chunk = chunk.max(1);
        // The lines counted first (the file is read twice, from the page cache): the
        // lists are made their size at once, without the slack of doubling.
        let mut buffer = vec![0u8; chunk];
        let (mut lines, mut at) = (0usize, 0u64);
        loop {
            let read = read_full(&source, &mut buffer, at)?;
            lines += memchr::memchr_iter(b'\n', &buffer[..read]).count();
            at += read as u64;
            if read < chunk {
                break;
            }
        }
        // (A record line has at least 5 bytes, `1 :a\n`: a file of empty lines, which is
        // broken, gets no table of a record a byte.)
        let records = lines.saturating_sub(1).min(usize::try_from(at / 5).unwrap_or(usize::MAX));
        let mut bases = Bases::with_capacity(records, seed);
        let mut uids = Vec::with_capacity(records);
        let mut starts = Vec::with_capacity(records);
        let mut checks = Vec::with_capacity(records);
        let mut header: Option<Uidlist> = None;
        let mut previous_uid = 0u32;
        // `pending` holds the bytes from `pending_start` not yet split into lines.
        let (mut pending, mut pending_start, mut at) = (Vec::new(), 0u64, 0u64);
        let mut line_number = 0usize;
        loop {
            let old = pending.len();
            pending.resize(old + chunk, 0);
            let read = read_full(&source, &mut pending[old..], at)?;
            pending.truncate(old + read);
            at += read as u64;
            let mut consumed = 0;
            while let Some(newline) = memchr::memchr(b'\n', &pending[consumed..]) {
                let line_start = pending_start + consumed as u64;
                let raw = &pending[consumed..consumed + newline];
                consumed += newline + 1;
                line_number += 1;
                let line = content(raw);
                let Some(list) = header.as_mut() else {
                    let mut list = parse_header(utf8(line, 1)?)?;
                    list.complete_len = usize::try_from(pending_start)
                        .unwrap_or(usize::MAX)
                        .saturating_add(consumed);
                    header = Some(list);
                    continue;
                };
                let text = utf8(line, line_number)?;
                let parsed =
                    parse_record(text, list.version, line_number, &mut list.wants_rewrite)?;
                if parsed.uid <= previous_uid {
                    return Err(broken(
                        line_number,
                        format!("UIDs not ordered ({} <= {previous_uid})", parsed.uid),
                    )
                    .into());
                }
                if list.version == 1 && parsed.uid >= list.header_next_uid {
                    return Err(broken(line_number, "UID larger than next_uid".into()).into());
                }
                previous_uid = parsed.uid;
                let base = text.get(parsed.name..parsed.name + parsed.base_len).unwrap_or("");
                let Ok(start) = u32::try_from(line_start) else { return Ok(Some(Read::Whole)) };
                if !bases.push(bases.hash(base)) {
                    // A name listed twice (the whole parse keeps its later UID) or a
                    // collision: the whole parse decides. (A later line may still make
                    // the file broken; that parse finds it too.)
                    return Ok(Some(Read::Whole));
                }
                each(uids.len(), parsed.uid, base);
                uids.push(parsed.uid);
                starts.push(start);
                checks.push(check(seed, line));
                list.complete_len =
                    usize::try_from(pending_start).unwrap_or(usize::MAX).saturating_add(consumed);
            }
            pending.drain(..consumed);
            pending_start += consumed as u64;
            if read == 0 {
                break;
            }
        }
        let Some(mut header) = header else {
            // Dovecot treats a file without a complete first line as broken too.
            return if pending_start == 0 && pending.is_empty() {
                Ok(None)
            } else {
                Err(broken(1, "no complete header line".into()).into())
            };
        };
        if u32::try_from(header.complete_len).is_err() {
            return Ok(Some(Read::Whole));
        }
        if header.version != 3 || header.guid.is_none() {
            header.wants_rewrite = true;
        }
        let after_last = uids.last().map_or(1, |&uid: &u32| uid.saturating_add(1));
        let next_uid = header.header_next_uid.max(after_last);
        let streamed = Streamed {
            header,
            next_uid,
            uids,
            starts,
            checks,
            seed,
            source,
            block: Mutex::new(Block::default()),
        };
        Ok(Some(Read::Streamed(Box::new(streamed), bases)))
    }

    /// The header (UIDVALIDITY, next UID of the header, GUID, other fields, where the
    /// complete lines end); it holds no records.
    pub(crate) fn header(&self) -> &Uidlist {
        &self.header
    }

    /// The next UID: the larger of the header's `N` and the last record's UID + 1.
    pub(crate) fn next_uid(&self) -> u32 {
        self.next_uid
    }

    /// How many records.
    pub(crate) fn len(&self) -> usize {
        self.uids.len()
    }

    /// The bytes the records take on the heap, the block read last included (tests).
    #[cfg(test)]
    pub(crate) fn records_bytes(&self) -> usize {
        let block = self.block.lock().map_or(0, |block| block.data.capacity());
        4 * (self.uids.capacity() + self.starts.capacity() + self.checks.capacity()) + block
    }

    /// The position of the record of `uid` (the UIDs ascend: the parse checked).
    pub(crate) fn position_of_uid(&self, uid: u32) -> Option<usize> {
        let index = self.uids.partition_point(|&u| u < uid);
        (self.uids.get(index) == Some(&uid)).then_some(index)
    }

    /// Calls `f` with the record at `position`, its line read again from the file.
    /// `Ok(None)` past the last record; `Err` when the line is no longer the one read
    /// (the file changed in place) or cannot be read.
    pub(crate) fn with_record<T>(
        &self,
        position: usize,
        f: impl FnOnce(Record<'_>) -> T,
    ) -> Result<Option<T>, Changed> {
        let (Some(&uid), Some(&start), Some(&expected)) =
            (self.uids.get(position), self.starts.get(position), self.checks.get(position))
        else {
            return Ok(None);
        };
        let start = u64::from(start);
        // The line ends where the next begins, or where the complete lines end.
        let end = match self.starts.get(position + 1) {
            Some(&next) => u64::from(next),
            None => self.header.complete_len as u64,
        };
        let length =
            usize::try_from(end.checked_sub(start + 1).ok_or(Changed)?).map_err(|_| Changed)?;
        let mut block = self.block.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let covered = start >= block.start && end - block.start <= block.data.len() as u64;
        if !covered {
            let mut data = std::mem::take(&mut block.data);
            data.resize(CHUNK.max(length + 1), 0);
            let read = read_full(&self.source, &mut data, start).map_err(|_| Changed)?;
            data.truncate(read);
            *block = Block { start, data };
        }
        let from = usize::try_from(start - block.start).map_err(|_| Changed)?;
        let raw = block.data.get(from..from + length + 1).ok_or(Changed)?;
        let (raw, newline) = raw.split_at(length);
        let line = content(raw);
        if newline != b"\n" || check(self.seed, line) != expected {
            return Err(Changed);
        }
        let text = std::str::from_utf8(line).map_err(|_| Changed)?;
        let mut wants_rewrite = false;
        let parsed = parse_record(text, self.header.version, position + 2, &mut wants_rewrite)
            .map_err(|_| Changed)?;
        if parsed.uid != uid {
            return Err(Changed);
        }
        let record = Record {
            uid,
            filename: text.get(parsed.name..).unwrap_or(""),
            base_len: parsed.base_len,
            fields: text.get(parsed.fields..parsed.name).unwrap_or(""),
        };
        Ok(Some(f(record)))
    }
}

/// Reads `data` through [`Streamed::read`] `chunk` bytes at a time and checks it against
/// the whole parse: the same header and records, or the same [`Broken`], or
/// [`Read::Whole`] where the parse found a name listed twice (or hashes met). Panics on
/// a disagreement (the uidlist fuzz target and the tests). Returns how many records.
#[doc(hidden)]
pub(crate) fn agrees_with_the_parse(data: &[u8], chunk: usize, seed: u64) -> usize {
    let parsed = Uidlist::parse(data);
    let streamed = Streamed::read(data, chunk, seed);
    let (list, streamed) = match (parsed, streamed) {
        (Err(old), Err(ReadError::Broken(new))) => {
            assert_eq!(old, new, "{data:?}");
            return 0;
        }
        // Nothing, or the parse repaired a name listed twice, or the hashes met.
        (Ok(None), Ok(None)) | (Ok(_) | Err(_), Ok(Some(Read::Whole))) => return 0,
        (Ok(Some(list)), Ok(Some(Read::Streamed(streamed, bases)))) => {
            assert_eq!(bases.hashes.len(), streamed.len());
            for position in 0..streamed.len() {
                let base = list.get(position).map(Record::base).unwrap_or_default();
                assert_eq!(bases.find(bases.hash(base)), Some(position), "{data:?}");
            }
            (list, streamed)
        }
        (old, new) => panic!("{data:?}: parse {old:?}, streamed {new:?}"),
    };
    let header = streamed.header();
    assert_eq!(
        (list.version, list.uid_validity, list.header_next_uid, list.guid),
        (header.version, header.uid_validity, header.header_next_uid, header.guid),
        "{data:?}"
    );
    assert_eq!(
        (&list.header_extra, list.complete_len, list.wants_rewrite),
        (&header.header_extra, header.complete_len, header.wants_rewrite),
        "{data:?}"
    );
    assert_eq!(list.next_uid(), streamed.next_uid(), "{data:?}");
    assert_eq!(list.len(), streamed.len(), "{data:?}");
    // Backwards and forwards: the block is read again where it does not hold the line.
    for position in (0..list.len()).rev().chain(0..=list.len()) {
        let expected = list.get(position).map(Record::to_buf);
        #[allow(clippy::redundant_closure_for_method_calls)] // `Record::to_buf` is not general.
        let found = streamed.with_record(position, |record| record.to_buf());
        assert_eq!(found, Ok(expected), "{data:?} position {position}");
        if let Some(record) = list.get(position) {
            assert_eq!(streamed.position_of_uid(record.uid), Some(position));
            assert_eq!(
                streamed.position_of_uid(record.uid + 1),
                list.position_of_uid(record.uid + 1)
            );
        }
    }
    list.len()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_like_the_parse_on_the_fuzz_corpus() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/maildir_uidlist");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            for chunk in [1, 7, 64, CHUNK] {
                agrees_with_the_parse(&data, chunk, 7);
            }
            read += 1;
        }
        assert!(read > 0);
    }

    #[test]
    fn gives_up_on_a_name_listed_twice_and_on_met_hashes() {
        let twice = b"3 V1 N4 G00000000000000000000000000000001\n1 :a\n2 :b\n3 :a:2,S\n";
        assert!(matches!(Streamed::read(&twice[..], 5, 1), Ok(Some(Read::Whole))));
        let mut bases = Bases::with_capacity(2, 0);
        assert!(bases.push(5));
        assert!(!bases.push(5));
        assert!(bases.push(5 + 16));
        assert_eq!((bases.find(5), bases.find(21), bases.find(37)), (Some(0), Some(1), None));
    }

    #[test]
    fn a_line_changed_in_place_is_not_served() {
        let data = b"3 V1 N4 G00000000000000000000000000000001\n1 :aa\n2 :bb\n".to_vec();
        let Ok(Some(Read::Streamed(list, _))) = Streamed::read(data.as_slice(), CHUNK, 3) else {
            panic!("not read")
        };
        assert_eq!(list.with_record(1, |r| r.base().to_string()), Ok(Some("bb".to_string())));
        let mut changed = data.clone();
        let at = changed.len() - 2;
        changed[at] = b'c';
        let moved = Streamed { source: changed.as_slice(), ..list_parts(&list) };
        assert_eq!(moved.with_record(1, |r| r.base().to_string()), Err(Changed));
        let mut renumbered = data.clone();
        let at = renumbered.len() - 5;
        renumbered[at] = b'3';
        let moved = Streamed { source: renumbered.as_slice(), ..list_parts(&list) };
        assert_eq!(moved.with_record(1, |r| r.uid), Err(Changed));
        let cut = &data[..data.len() - 3];
        let moved = Streamed { source: cut, ..list_parts(&list) };
        assert_eq!(moved.with_record(1, |r| r.uid), Err(Changed));
    }

    /// `list`'s fields with an empty source and block, to read another source as it.
    fn list_parts<'a>(list: &Streamed<&[u8]>) -> Streamed<&'a [u8]> {
        Streamed {
            header: list.header.clone(),
            next_uid: list.next_uid,
            uids: list.uids.clone(),
            starts: list.starts.clone(),
            checks: list.checks.clone(),
            seed: list.seed,
            source: &[],
            block: Mutex::new(Block::default()),
        }
    }

    fn uidlist() -> impl Strategy<Value = Vec<u8>> {
        let name = "[a-c]{1,3}(:2,[RS]{0,2})?";
        let line = (1u32..6, proptest::option::of("[A-Z][a-z0-9]{0,3}"), name, any::<u8>());
        (any::<bool>(), proptest::collection::vec(line, 0..24), any::<u8>()).prop_map(
            |(crlf, lines, tail)| {
                let mut out = String::from("3 V7 N3 G00000000000000000000000000000009");
                out.push_str(if crlf { "\r\n" } else { "\n" });
                let mut uid = 0;
                for (step, field, name, noise) in lines {
                    uid += step;
                    match noise % 23 {
                        0 => writeln!(out, "{uid} :{name}\0junk").unwrap(),
                        1 => writeln!(out, "{} :{name}", uid - 1).unwrap(),
                        2 => out.push_str("x :y\n"),
                        _ => match field {
                            Some(field) => writeln!(out, "{uid} {field} :{name}").unwrap(),
                            None => writeln!(out, "{uid} :{name}").unwrap(),
                        },
                    }
                }
                if tail % 3 == 0 {
                    out.push_str("99 :torn");
                }
                out.into_bytes()
            },
        )
    }

    proptest! {
        #[test]
        fn reads_like_the_parse(data in uidlist(), chunk in 1usize..200, seed in any::<u64>()) {
            agrees_with_the_parse(&data, chunk, seed);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            chunk in 1usize..64,
        ) {
            agrees_with_the_parse(&data, chunk, 0);
        }
    }
}
