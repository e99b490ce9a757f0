//! A few records of a `dovecot-uidlist` found by UID without reading the whole file.
//!
//! The records of a valid uidlist are in ascending UID order, one a line: a binary search
//! over byte offsets finds the line of a UID in about `log2(size / block)` reads of a few
//! bytes, then reads one block and parses its lines as [`Uidlist::parse`] parses them. A
//! re-run that changes ten messages of a 100 000-message folder then reads a few KiB of a
//! 4 MiB file instead of parsing every line and indexing every base name.
//!
//! Only a file known to be valid may be searched so (UIDs strictly ascending, no base
//! name listed twice, nothing Dovecot would rewrite): one the caller parsed whole under
//! the lock and has not seen changed since ([`super::super::state::Stamp`]). On such a
//! file a lookup answers what the whole parse answers (tested against it); on anything
//! else it may answer wrongly but never panics, and what it cannot read as a record line
//! is [`LookupError::NotValid`], for which the caller parses the whole file instead.
//!
//! [`Uidlist::parse`]: super::Uidlist::parse

use std::io;

use super::{Record, RecordBuf, Uidlist, parse_record};

/// Bytes read at once: the binary search stops narrowing below this, and reads the rest.
pub(crate) const BLOCK: usize = 4096;

/// Why a lookup gave no answer.
#[derive(Debug)]
pub(crate) enum LookupError {
    /// Reading failed.
    Io(io::Error),
    /// The bytes are not what a valid uidlist holds there.
    NotValid,
}

impl From<io::Error> for LookupError {
    fn from(error: io::Error) -> LookupError {
        LookupError::Io(error)
    }
}

/// What the lines are read from: a file (`pread`) or bytes in memory (tests).
pub(crate) trait ReadAt {
    /// Reads into `buffer` from `offset`; fewer bytes (0 at the end) like `pread`.
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buffer, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let available = &self[start..];
        let length = available.len().min(buffer.len());
        buffer[..length].copy_from_slice(&available[..length]);
        Ok(length)
    }
}

/// The record lines of a uidlist: bytes `start..end` of `source` (after the header
/// line's `\n`, up to the end of the last complete line), each line a record of `version`.
pub(crate) struct Lines<'a, R: ReadAt + ?Sized> {
    pub(crate) source: &'a R,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) version: u8,
    /// Bytes read at once (tests make it small to exercise the search).
    pub(crate) block: usize,
}

impl<R: ReadAt + ?Sized> Lines<'_, R> {
    /// The record of `uid`, if the file lists it.
    pub(crate) fn find(&self, uid: u32) -> Result<Option<RecordBuf>, LookupError> {
        if uid == 0 || self.start >= self.end {
            return Ok(None);
        }
        let block = self.block.max(1) as u64;
        // Invariant: `lo` starts a line, and the line of `uid`, if any, starts in `lo..hi`.
        let (mut lo, mut hi) = (self.start, self.end);
        while hi - lo > block {
            let mid = lo + (hi - lo) / 2;
            let Some(line) = self.line_start_from(mid, hi)? else {
                // No line starts in `mid..hi`.
                hi = mid;
                continue;
            };
            let found = self.uid_at(line)?;
            if found == uid {
                return self.record_at(line, uid);
            }
            if found < uid {
                lo = line;
            } else {
                hi = line;
            }
        }
        self.scan(lo, hi, uid)
    }

    /// Where the first line after the one starting at byte 0 (the header) starts, when
    /// before the end.
    pub(crate) fn first_line_start(&self) -> Result<Option<u64>, LookupError> {
        self.line_start_from(1, self.end)
    }

    /// The first line start at or after `from` (at least 1) and before `before`.
    fn line_start_from(&self, from: u64, before: u64) -> Result<Option<u64>, LookupError> {
        // `from` starts a line when the byte before it ends one.
        let mut at = from - 1;
        let mut buffer = vec![0u8; self.block.clamp(16, BLOCK)];
        while at < before {
            let read = self.read(&mut buffer, at)?;
            if let Some(newline) = memchr::memchr(b'\n', read) {
                let start = at + newline as u64 + 1;
                return Ok((start < before).then_some(start));
            }
            at += read.len() as u64;
        }
        Ok(None)
    }

    /// The UID of the line starting at `start`.
    fn uid_at(&self, start: u64) -> Result<u32, LookupError> {
        let mut buffer = [0u8; 16];
        let read = self.read(&mut buffer, start)?;
        let digits = read.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 10 || read.get(digits) != Some(&b' ') {
            return Err(LookupError::NotValid);
        }
        let uid = read[..digits].iter().fold(0u64, |uid, d| uid * 10 + u64::from(d - b'0'));
        u32::try_from(uid).map_err(|_| LookupError::NotValid)
    }

    /// The record of the line starting at `start`, which has `uid`.
    fn record_at(&self, start: u64, uid: u32) -> Result<Option<RecordBuf>, LookupError> {
        let end = self.line_end(start)?;
        self.scan(start, end, uid)
    }

    /// The end of the line starting at `start` (after its `\n`).
    fn line_end(&self, start: u64) -> Result<u64, LookupError> {
        let mut buffer = vec![0u8; self.block.clamp(16, BLOCK)];
        let mut at = start;
        while at < self.end {
            let read = self.read(&mut buffer, at)?;
            if let Some(newline) = memchr::memchr(b'\n', read) {
                return Ok(at + newline as u64 + 1);
            }
            at += read.len() as u64;
        }
        Err(LookupError::NotValid)
    }

    /// Parses the lines starting in `lo..hi` (the last one read to its end) for `uid`.
    fn scan(&self, lo: u64, hi: u64, uid: u32) -> Result<Option<RecordBuf>, LookupError> {
        let end = if hi >= self.end { self.end } else { self.line_end(hi)? };
        let length = usize::try_from(end - lo).map_err(|_| LookupError::NotValid)?;
        let mut bytes = vec![0u8; length];
        let mut filled = 0;
        while filled < length {
            let read = self.source.read_at(&mut bytes[filled..], lo + filled as u64)?;
            if read == 0 {
                return Err(LookupError::NotValid);
            }
            filled += read;
        }
        let mut rest = bytes.as_slice();
        while let Some(newline) = memchr::memchr(b'\n', rest) {
            let (line, after) = rest.split_at(newline);
            rest = &after[1..];
            // As the whole parse takes a line: a CR before the `\n` removed, a NUL ends it.
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = memchr::memchr(0, line).map_or(line, |nul| &line[..nul]);
            let line = std::str::from_utf8(line).map_err(|_| LookupError::NotValid)?;
            let mut wants_rewrite = false;
            let parsed = parse_record(line, self.version, 0, &mut wants_rewrite)
                .map_err(|_| LookupError::NotValid)?;
            if wants_rewrite {
                return Err(LookupError::NotValid);
            }
            if parsed.uid > uid {
                return Ok(None);
            }
            if parsed.uid == uid {
                let fields = line.get(parsed.fields..parsed.name).unwrap_or("");
                let extensions = fields
                    .split(' ')
                    .filter_map(|field| match field.as_bytes().first() {
                        Some(&key @ b'A'..=b'Z') => {
                            Some((key, field.get(1..).unwrap_or("").to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                let filename = line.get(parsed.name..).unwrap_or("").to_string();
                return Ok(Some(RecordBuf { uid, extensions, filename }));
            }
        }
        Ok(None)
    }

    /// Reads up to `buffer.len()` bytes at `at`, not past the end of the lines.
    fn read<'b>(&self, buffer: &'b mut [u8], at: u64) -> Result<&'b [u8], LookupError> {
        let left = usize::try_from(self.end.saturating_sub(at)).unwrap_or(usize::MAX);
        let wanted = buffer.len().min(left);
        if wanted == 0 {
            return Err(LookupError::NotValid);
        }
        let read = self.source.read_at(&mut buffer[..wanted], at)?;
        if read == 0 {
            return Err(LookupError::NotValid);
        }
        Ok(&buffer[..read])
    }
}

/// Where the records of `data` start (after the header line), as the lookup's user
/// finds it.
fn lines(data: &[u8], block: usize, version: u8, end: usize) -> Lines<'_, [u8]> {
    let header = Lines { source: data, start: 1, end: end as u64, version, block };
    // In memory nothing fails to read.
    let start = header.first_line_start().ok().flatten().unwrap_or(end as u64);
    Lines { start, ..header }
}

/// On a file whose whole parse finds nothing to repair, every lookup answers what the
/// parse answers: the record of a listed UID, nothing for any other. On any other file
/// the lookup may say anything but must not panic. Panics on a disagreement: a check for
/// the uidlist fuzz target and the tests. Returns how many records were looked up.
#[doc(hidden)]
pub(crate) fn agrees_with_the_parse(data: &[u8], block: usize) -> usize {
    let parsed = Uidlist::parse(data);
    let Ok(Some(list)) = parsed.as_ref() else {
        let end = data.len();
        for uid in [0, 1, 2, 7, u32::MAX] {
            let _ = lines(data, block, 3, end).find(uid);
        }
        return 0;
    };
    let lines = lines(data, block, list.version, list.complete_len);
    if list.wants_rewrite {
        for record in list.records() {
            let _ = lines.find(record.uid);
        }
        return 0;
    }
    let mut uids: Vec<u32> = list.records().map(|r| r.uid).collect();
    let extra: Vec<u32> = uids.iter().flat_map(|&u| [u - 1, u.saturating_add(1)]).collect();
    uids.extend(extra);
    uids.extend([0, 1, u32::MAX - 1, u32::MAX]);
    for uid in uids {
        let expected = list.position_of_uid(uid).and_then(|p| list.get(p)).map(Record::to_buf);
        let found = match lines.find(uid) {
            Ok(found) => found,
            Err(LookupError::NotValid) => panic!("{data:?}: UID {uid} not valid"),
            Err(LookupError::Io(error)) => panic!("{error}"),
        };
        assert_eq!(found, expected, "{data:?} UID {uid} block {block}");
    }
    list.len()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::agrees_with_the_parse;

    #[test]
    fn answers_like_the_parse_on_the_fuzz_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/maildir_uidlist");
        let (mut files, mut records) = (0, 0);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            for block in [1, 7, 64, super::BLOCK] {
                records += agrees_with_the_parse(&data, block);
            }
            files += 1;
        }
        assert!(files > 100 && records > 100, "{files} files, {records} records compared");
    }

    /// A valid uidlist: UIDs ascending with gaps, extension fields, names with and without
    /// `:2,` info, CRLF lines, NULs ending a line, a torn last line.
    fn uidlist() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just(String::new()),
            "[A-Z][a-z0-9=]{0,12}".prop_map(|f| format!(" {f}")),
            Just(" G0123456789abcdef P".to_string()),
        ];
        let name = "[a-zA-Z0-9.,=_-]{1,40}(:2,[A-Z]{0,4})?";
        let record = (1u32..2000, field, name, 0u8..8);
        (proptest::collection::vec(record, 0..120), proptest::bool::ANY).prop_map(
            |(records, torn)| {
                let mut text = b"3 V1 N5 G0123456789abcdef0123456789abcdef\n".to_vec();
                let mut uid = 0u32;
                for (index, (step, field, name, shape)) in records.into_iter().enumerate() {
                    uid += step;
                    // Base names unique: the index starts them.
                    text.extend(format!("{uid}{field} :{index}x{name}").into_bytes());
                    match shape {
                        0 => text.extend(b"\r\n"),
                        1 => text.extend(b"\0junk\n"),
                        _ => text.push(b'\n'),
                    }
                }
                if torn {
                    text.extend(format!("{} :torn", uid + 1).into_bytes());
                }
                text
            },
        )
    }

    proptest! {
        #[test]
        fn answers_like_the_parse_on_valid_uidlists(data in uidlist(), block in 1usize..300) {
            agrees_with_the_parse(&data, block);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(
            data in proptest::collection::vec(prop_oneof![
                Just(b'\n'), Just(b' '), Just(b':'), Just(b'1'), Just(b'9'), Just(b'\r'),
                Just(0u8), any::<u8>(),
            ], 0..400),
            block in 1usize..64,
        ) {
            let mut data = data;
            data.splice(0..0, b"3 V1 N1\n".iter().copied());
            agrees_with_the_parse(&data, block);
        }
    }
}
