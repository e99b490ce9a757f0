//! `dovecot.index.log`, Dovecot's transaction log (`mail-transaction-log.h`, format 1.3):
//! the file header, the record framing, the records this crate reads and writes, and a
//! builder for one transaction.
//!
//! All integers are little-endian except a record's size, which is stored by
//! `mail_index_uint32_to_offset`: the size in 4-byte units as four 7-bit groups, each with
//! its high bit set, most significant first (36 bytes → `80 80 80 89`). A size field
//! without all four high bits set reads as 0: an unfinished or corrupt record.
//!
//! A transaction of two or more records starts with a `BOUNDARY` record holding the byte
//! size of the whole transaction. A reader stops in front of a transaction that runs past
//! the end of the file (it is still being written, or a writer died mid-write), so a torn
//! append is never half applied.

use std::fmt;

/// The file header's size we write (`sizeof(struct mail_transaction_log_header)`).
pub(crate) const HEADER_SIZE: usize = 40;
/// Smallest header size a reader accepts (`MAIL_TRANSACTION_LOG_HEADER_MIN_SIZE`).
const HEADER_MIN_SIZE: usize = 24;
/// Size of a record's header (`struct mail_transaction_header`).
pub(crate) const RECORD_HEADER_SIZE: usize = 8;
/// The largest record size the size encoding can hold.
const MAX_RECORD_SIZE: usize = 0x3fff_ffff;

/// Record types (`enum mail_transaction_type`), without the flag bits.
pub(crate) mod kind {
    /// Expunge UID ranges (requests unless EXTERNAL).
    pub(crate) const EXPUNGE: u32 = 0x0000_0001;
    /// New messages: `{uid, flags, 3 × 0}` each.
    pub(crate) const APPEND: u32 = 0x0000_0002;
    /// Flag changes of UID ranges.
    pub(crate) const FLAG_UPDATE: u32 = 0x0000_0004;
    /// Writes into the 120-byte base header.
    pub(crate) const HEADER_UPDATE: u32 = 0x0000_0020;
    /// Introduces (creates or resizes) an extension; later `EXT_*` records apply to it.
    pub(crate) const EXT_INTRO: u32 = 0x0000_0040;
    /// Resets the current extension.
    pub(crate) const EXT_RESET: u32 = 0x0000_0080;
    /// Writes into the current extension's header (16-bit offsets).
    pub(crate) const EXT_HDR_UPDATE: u32 = 0x0000_0100;
    /// Writes per-message data of the current extension.
    pub(crate) const EXT_REC_UPDATE: u32 = 0x0000_0200;
    /// Adds or removes one keyword for UID ranges.
    pub(crate) const KEYWORD_UPDATE: u32 = 0x0000_0400;
    /// Clears every keyword of UID ranges.
    pub(crate) const KEYWORD_RESET: u32 = 0x0000_0800;
    /// Adds to the current extension's per-message data.
    pub(crate) const EXT_ATOMIC_INC: u32 = 0x0000_1000;
    /// Expunges UIDs, checking their GUIDs.
    pub(crate) const EXPUNGE_GUID: u32 = 0x0000_2000;
    /// Raises per-message modseqs (UID 0: the highest modseq).
    pub(crate) const MODSEQ_UPDATE: u32 = 0x0000_8000;
    /// Writes into the current extension's header (32-bit offsets).
    pub(crate) const EXT_HDR_UPDATE32: u32 = 0x0001_0000;
    /// The index was marked deleted.
    pub(crate) const INDEX_DELETED: u32 = 0x0002_0000;
    /// The index was marked undeleted.
    pub(crate) const INDEX_UNDELETED: u32 = 0x0004_0000;
    /// The size of the transaction it starts.
    pub(crate) const BOUNDARY: u32 = 0x0008_0000;
    /// A mailbox attribute changed (only a change stamp; values live elsewhere).
    pub(crate) const ATTRIBUTE_UPDATE: u32 = 0x0010_0000;
    /// Bits of the type proper.
    pub(crate) const TYPE_MASK: u32 = 0x0fff_ffff;
    /// Must accompany `EXPUNGE` and `EXPUNGE_GUID`, against expunges from a corrupt log.
    pub(crate) const EXPUNGE_PROT: u32 = 0x0000_cd90;
    /// The change already happened in the storage (an expunge is done, not requested).
    pub(crate) const EXTERNAL: u32 = 0x1000_0000;
    /// The change comes from synchronising with another store (dsync).
    pub(crate) const SYNC: u32 = 0x2000_0000;
}

/// `MAIL_INDEX_COMPAT_LITTLE_ENDIAN`.
const COMPAT_LITTLE_ENDIAN: u8 = 0x01;

/// A log file's header (`struct mail_transaction_log_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogHeader {
    /// Header size in the file (records start here).
    pub(crate) hdr_size: u16,
    /// Must equal `dovecot.index`'s when one exists.
    pub(crate) indexid: u32,
    /// This file's sequence number.
    pub(crate) file_seq: u32,
    /// The file before this one (0 with offset 0: the index was reset here).
    pub(crate) prev_file_seq: u32,
    /// Where the previous file ended.
    pub(crate) prev_file_offset: u32,
    /// When the file was created (UNIX seconds).
    pub(crate) create_stamp: u32,
    /// Modseq at the beginning of the file.
    pub(crate) initial_modseq: u64,
}

impl LogHeader {
    /// A header for a new file: format 1.3, little-endian, 40 bytes.
    pub(crate) fn new(indexid: u32, file_seq: u32, create_stamp: u32, initial_modseq: u64) -> Self {
        LogHeader {
            hdr_size: 40,
            indexid,
            file_seq,
            prev_file_seq: 0,
            prev_file_offset: 0,
            create_stamp,
            initial_modseq: initial_modseq.max(1),
        }
    }

    /// Parses the header at the start of `data`.
    pub(crate) fn parse(data: &[u8]) -> Result<LogHeader, String> {
        if data.len() < HEADER_MIN_SIZE {
            return Err(format!("file of {} bytes is shorter than a log header", data.len()));
        }
        let (major, minor) = (data[0], data[1]);
        if major != 1 {
            return Err(format!("log format {major}.{minor} (only 1.x is known)"));
        }
        let hdr_size = u16::from_le_bytes([data[2], data[3]]);
        let size = usize::from(hdr_size);
        if size < HEADER_MIN_SIZE || size > data.len() {
            return Err(format!("header size {hdr_size} in a file of {} bytes", data.len()));
        }
        // Fields past the stored header size read as 0 (an older, shorter header).
        let mut full = [0u8; HEADER_SIZE];
        let stored = size.min(HEADER_SIZE);
        full[..stored].copy_from_slice(&data[..stored]);
        if minor >= 2 && stored > 32 && full[32] & COMPAT_LITTLE_ENDIAN == 0 {
            return Err(String::from("written on a big-endian machine"));
        }
        let header = LogHeader {
            hdr_size,
            indexid: le32(&full, 4),
            file_seq: le32(&full, 8),
            prev_file_seq: le32(&full, 12),
            prev_file_offset: le32(&full, 16),
            create_stamp: le32(&full, 20),
            initial_modseq: le64(&full, 24),
        };
        if header.indexid == 0 {
            return Err(String::from("indexid 0: Dovecot marked the log corrupt"));
        }
        Ok(header)
    }

    /// The 40 bytes of the header.
    pub(crate) fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0] = 1;
        out[1] = 3;
        out[2..4].copy_from_slice(&40u16.to_le_bytes());
        out[4..8].copy_from_slice(&self.indexid.to_le_bytes());
        out[8..12].copy_from_slice(&self.file_seq.to_le_bytes());
        out[12..16].copy_from_slice(&self.prev_file_seq.to_le_bytes());
        out[16..20].copy_from_slice(&self.prev_file_offset.to_le_bytes());
        out[20..24].copy_from_slice(&self.create_stamp.to_le_bytes());
        out[24..32].copy_from_slice(&self.initial_modseq.to_le_bytes());
        out[32] = COMPAT_LITTLE_ENDIAN;
        out
    }
}

/// `mail_index_uint32_to_offset`: a record size (a multiple of 4) as stored.
pub(crate) fn size_to_bytes(size: usize) -> [u8; 4] {
    debug_assert!(size.is_multiple_of(4) && size <= MAX_RECORD_SIZE);
    let units = u32::try_from(size / 4).unwrap_or(0);
    [
        0x80 | ((units >> 21) & 0x7f) as u8,
        0x80 | ((units >> 14) & 0x7f) as u8,
        0x80 | ((units >> 7) & 0x7f) as u8,
        0x80 | (units & 0x7f) as u8,
    ]
}

/// `mail_index_offset_to_uint32`: a stored record size; 0 when not all high bits are set.
pub(crate) fn size_from_bytes(bytes: [u8; 4]) -> usize {
    if bytes.iter().any(|b| b & 0x80 == 0) {
        return 0;
    }
    let units = (usize::from(bytes[0] & 0x7f) << 21)
        | (usize::from(bytes[1] & 0x7f) << 14)
        | (usize::from(bytes[2] & 0x7f) << 7)
        | usize::from(bytes[3] & 0x7f);
    units * 4
}

/// One record as framed in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    /// The full type word, flags included.
    pub(crate) kind: u32,
    /// The payload (without the 8-byte header), padding included.
    pub(crate) payload: &'a [u8],
    /// Offset of the record in the file.
    pub(crate) offset: usize,
    /// Offset just past it.
    pub(crate) end: usize,
}

impl RawRecord<'_> {
    /// The type without flag bits (and without the expunge protection bits).
    pub(crate) fn base_kind(&self) -> u32 {
        let base = self.kind & kind::TYPE_MASK;
        if base & kind::EXPUNGE_PROT == kind::EXPUNGE_PROT
            && matches!(base & !kind::EXPUNGE_PROT, kind::EXPUNGE | kind::EXPUNGE_GUID)
        {
            base & !kind::EXPUNGE_PROT
        } else {
            base
        }
    }

    /// True when the record says the change already happened (`EXTERNAL`).
    pub(crate) fn external(&self) -> bool {
        self.kind & kind::EXTERNAL != 0
    }
}

/// Why the records of a log file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt {
    /// Where (byte offset in the file).
    pub(crate) offset: usize,
    /// What is wrong.
    pub(crate) reason: String,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.reason)
    }
}

/// The complete records of `data` from `start` on, and where the complete part ends: a
/// record or a transaction (announced by its `BOUNDARY`) that runs past the end of `data`
/// ends the list, as Dovecot stops reading there; what follows `end` is a transaction still
/// being written or one a writer left torn.
pub(crate) fn records(data: &[u8], start: usize) -> Result<(Vec<RawRecord<'_>>, usize), Corrupt> {
    let mut out = Vec::new();
    let mut offset = start;
    while offset + RECORD_HEADER_SIZE <= data.len() {
        let size =
            size_from_bytes([data[offset], data[offset + 1], data[offset + 2], data[offset + 3]]);
        if size == 0 {
            // Unfinished (the size is written last by some writers) or garbage.
            break;
        }
        if size < RECORD_HEADER_SIZE {
            return Err(Corrupt { offset, reason: format!("record size {size} too small") });
        }
        if offset + size > data.len() {
            break;
        }
        let kind = le32(data, offset + 4);
        let record = RawRecord {
            kind,
            payload: &data[offset + RECORD_HEADER_SIZE..offset + size],
            offset,
            end: offset + size,
        };
        if record.base_kind() == kind::BOUNDARY {
            let Some(transaction) = record.payload.get(..4).map(|b| le32(b, 0)) else {
                return Err(Corrupt { offset, reason: String::from("boundary without a size") });
            };
            let transaction = usize::try_from(transaction).unwrap_or(usize::MAX);
            if transaction < size {
                return Err(Corrupt {
                    offset,
                    reason: format!("transaction size {transaction} below its boundary record"),
                });
            }
            if offset.saturating_add(transaction) > data.len() {
                break;
            }
        }
        out.push(record);
        offset += size;
    }
    Ok((out, offset))
}

/// The records of one log file read piece by piece, as [`records`] reads them from the
/// whole file: a window of the file is held (one record at least), never the file.
pub(crate) struct Stream<'f> {
    file: &'f std::fs::File,
    /// The file's length when it was locked: nothing past it is read.
    len: usize,
    /// The window: the file's bytes from `window_start`.
    window: Vec<u8>,
    window_start: usize,
    /// Where the next record starts.
    offset: usize,
    /// How much is read at once (at least a whole record).
    chunk: usize,
}

impl<'f> Stream<'f> {
    /// The records of `file` (`len` bytes) from `start` on.
    pub(crate) fn new(file: &'f std::fs::File, len: usize, start: usize) -> Stream<'f> {
        Stream::with_chunk(file, len, start, 64 * 1024)
    }

    /// [`Stream::new`] reading `chunk` bytes at a time (tests use tiny ones).
    pub(crate) fn with_chunk(
        file: &'f std::fs::File,
        len: usize,
        start: usize,
        chunk: usize,
    ) -> Stream<'f> {
        Stream { file, len, window: Vec::new(), window_start: start, offset: start, chunk }
    }

    /// Where the complete records read so far end (after `next` gave `None`: where the
    /// file's complete part ends, as [`records`] returns it).
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Makes the window hold `size` bytes at `at` (within `len`).
    fn fill(&mut self, at: usize, size: usize) -> std::io::Result<()> {
        let end = self.window_start + self.window.len();
        if at >= self.window_start && at + size <= end {
            return Ok(());
        }
        let want = size.max(self.chunk).min(self.len - at);
        self.window.clear();
        self.window.resize(want, 0);
        self.window_start = at;
        std::os::unix::fs::FileExt::read_exact_at(self.file, &mut self.window, at as u64)
    }

    fn bytes(&self, at: usize, size: usize) -> &[u8] {
        &self.window[at - self.window_start..at - self.window_start + size]
    }

    /// The next complete record; `None` where [`records`] stops.
    pub(crate) fn next(&mut self) -> std::io::Result<Result<Option<RawRecord<'_>>, Corrupt>> {
        let offset = self.offset;
        if offset + RECORD_HEADER_SIZE > self.len {
            return Ok(Ok(None));
        }
        self.fill(offset, RECORD_HEADER_SIZE)?;
        let head = self.bytes(offset, RECORD_HEADER_SIZE);
        let size = size_from_bytes([head[0], head[1], head[2], head[3]]);
        if size == 0 {
            return Ok(Ok(None));
        }
        if size < RECORD_HEADER_SIZE {
            return Ok(Err(Corrupt { offset, reason: format!("record size {size} too small") }));
        }
        if offset + size > self.len {
            return Ok(Ok(None));
        }
        self.fill(offset, size)?;
        let data = self.bytes(offset, size);
        let kind = le32(data, 4);
        let payload = &data[RECORD_HEADER_SIZE..];
        let record = RawRecord { kind, payload, offset, end: offset + size };
        if record.base_kind() == kind::BOUNDARY {
            let Some(transaction) = payload.get(..4).map(|b| le32(b, 0)) else {
                return Ok(Err(Corrupt {
                    offset,
                    reason: String::from("boundary without a size"),
                }));
            };
            let transaction = usize::try_from(transaction).unwrap_or(usize::MAX);
            if transaction < size {
                return Ok(Err(Corrupt {
                    offset,
                    reason: format!("transaction size {transaction} below its boundary record"),
                }));
            }
            if offset.saturating_add(transaction) > self.len {
                return Ok(Ok(None));
            }
        }
        self.offset = offset + size;
        let data = self.bytes(offset, size);
        Ok(Ok(Some(RawRecord {
            kind,
            payload: &data[RECORD_HEADER_SIZE..],
            offset,
            end: offset + size,
        })))
    }
}

/// One transaction being built: records in order, written at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transaction {
    records: Vec<(u32, Vec<u8>)>,
}

impl Transaction {
    /// An empty transaction.
    pub(crate) fn new() -> Transaction {
        Transaction::default()
    }

    /// True when nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds a record of `kind` (flags included) with `payload` (padded here).
    pub(crate) fn push(&mut self, kind: u32, mut payload: Vec<u8>) {
        pad4(&mut payload);
        self.records.push((kind, payload));
    }

    /// The transaction's bytes: a `BOUNDARY` first when it holds two records or more (as
    /// `mail_transaction_log_append_locked` writes it), so a torn write is never applied.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let body_size: usize =
            self.records.iter().map(|(_, payload)| RECORD_HEADER_SIZE + payload.len()).sum();
        let boundary = self.records.len() >= 2;
        let total = body_size + if boundary { RECORD_HEADER_SIZE + 4 } else { 0 };
        let mut out = Vec::with_capacity(total);
        if boundary {
            let size = u32::try_from(total).unwrap_or(u32::MAX);
            encode_record(&mut out, kind::BOUNDARY | kind::EXTERNAL, &size.to_le_bytes());
        }
        for (kind, payload) in &self.records {
            encode_record(&mut out, *kind, payload);
        }
        out
    }
}

fn encode_record(out: &mut Vec<u8>, kind: u32, payload: &[u8]) {
    out.extend_from_slice(&size_to_bytes(RECORD_HEADER_SIZE + payload.len()));
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Pads `bytes` with zeros to a multiple of 4.
pub(crate) fn pad4(bytes: &mut Vec<u8>) {
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
}

/// Payload builders for the records this crate writes.
pub(crate) mod payload {
    use super::pad4;

    /// `EXT_INTRO` of the extension `name` by name (`ext_id` −1, which Dovecot resolves to
    /// the existing extension of that name or creates it).
    pub(crate) fn ext_intro(
        name: &str,
        reset_id: u32,
        hdr_size: u32,
        record_size: u16,
        record_align: u16,
        no_shrink: bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + name.len() + 3);
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&reset_id.to_le_bytes());
        out.extend_from_slice(&hdr_size.to_le_bytes());
        out.extend_from_slice(&record_size.to_le_bytes());
        out.extend_from_slice(&record_align.to_le_bytes());
        out.extend_from_slice(&u16::from(no_shrink).to_le_bytes());
        out.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out
    }

    /// `EXT_HDR_UPDATE` (16-bit offset and size) or `HEADER_UPDATE`: `data` at `offset`.
    pub(crate) fn header_update(offset: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + data.len() + 3);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Several updates of the base header in one `HEADER_UPDATE` record, each padded.
    pub(crate) fn header_updates(updates: &[(u16, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (offset, data) in updates {
            out.extend(header_update(*offset, data));
            pad4(&mut out);
        }
        out
    }

    /// `APPEND` of `(uid, flags)` records.
    pub(crate) fn append(messages: &[(u32, u8)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(messages.len() * 8);
        for (uid, flags) in messages {
            out.extend_from_slice(&uid.to_le_bytes());
            out.extend_from_slice(&[*flags, 0, 0, 0]);
        }
        out
    }

    /// `FLAG_UPDATE` entries `(uid1, uid2, add, remove)`.
    pub(crate) fn flag_update(updates: &[(u32, u32, u8, u8)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(updates.len() * 12);
        for (uid1, uid2, add, remove) in updates {
            out.extend_from_slice(&uid1.to_le_bytes());
            out.extend_from_slice(&uid2.to_le_bytes());
            out.extend_from_slice(&[*add, *remove, 0, 0]);
        }
        out
    }

    /// `KEYWORD_UPDATE`: add (or remove) `name` for UID ranges.
    pub(crate) fn keyword_update(add: bool, name: &str, ranges: &[(u32, u32)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + name.len() + 3 + ranges.len() * 8);
        out.push(u8::from(!add));
        out.push(0);
        out.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        pad4(&mut out);
        for (uid1, uid2) in ranges {
            out.extend_from_slice(&uid1.to_le_bytes());
            out.extend_from_slice(&uid2.to_le_bytes());
        }
        out
    }

    /// `EXPUNGE_GUID` entries `(uid, guid_128)`.
    pub(crate) fn expunge_guid(entries: &[(u32, [u8; 16])]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * 20);
        for (uid, guid) in entries {
            out.extend_from_slice(&uid.to_le_bytes());
            out.extend_from_slice(guid);
        }
        out
    }

    /// `MODSEQ_UPDATE` entries `(uid, modseq)`; UID 0 raises the highest modseq.
    pub(crate) fn modseq_update(entries: &[(u32, u64)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * 12);
        for (uid, modseq) in entries {
            out.extend_from_slice(&uid.to_le_bytes());
            out.extend_from_slice(&((modseq & 0xffff_ffff) as u32).to_le_bytes());
            out.extend_from_slice(&((modseq >> 32) as u32).to_le_bytes());
        }
        out
    }
}

/// Little-endian u32 at `offset` (the caller checked the length).
pub(crate) fn le32(data: &[u8], offset: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&data[offset..offset + 4]);
    u32::from_le_bytes(bytes)
}

/// Little-endian u16 at `offset` (the caller checked the length).
pub(crate) fn le16(data: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([data[offset], data[offset + 1]])
}

/// Little-endian u64 at `offset` (the caller checked the length).
pub(crate) fn le64(data: &[u8], offset: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&data[offset..offset + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_through_dovecots_encoding() {
        assert_eq!(size_to_bytes(36), [0x80, 0x80, 0x80, 0x89]);
        assert_eq!(size_to_bytes(12), [0x80, 0x80, 0x80, 0x83]);
        assert_eq!(size_from_bytes([0x80, 0x80, 0x80, 0x89]), 36);
        for size in [8, 12, 508, 512, 65_536, 1 << 20, MAX_RECORD_SIZE & !3] {
            assert_eq!(size_from_bytes(size_to_bytes(size)), size, "{size}");
        }
        assert_eq!(size_from_bytes([0x00, 0x80, 0x80, 0x89]), 0);
    }

    #[test]
    fn header_round_trips_and_refuses_what_dovecot_refuses() {
        let header = LogHeader::new(0x6b14_a9bf, 1, 0x6b14_a9bf, 1);
        let bytes = header.encode();
        assert_eq!(
            bytes[..12],
            [0x01, 0x03, 0x28, 0x00, 0xbf, 0xa9, 0x14, 0x6b, 0x01, 0x00, 0x00, 0x00]
        );
        assert_eq!(LogHeader::parse(&bytes), Ok(header));
        let mut zero_id = bytes;
        zero_id[4..8].fill(0);
        assert!(LogHeader::parse(&zero_id).is_err());
        let mut v2 = bytes;
        v2[0] = 2;
        assert!(LogHeader::parse(&v2).is_err());
        assert!(LogHeader::parse(&bytes[..20]).is_err());
    }

    /// Records as `(kind, payload, offset)`, and where the complete part ends.
    type Read = Result<(Vec<(u32, Vec<u8>, usize)>, usize), Corrupt>;

    /// The records of `data` read by a [`Stream`] from a file, `chunk` bytes at a time.
    fn streamed(data: &[u8], chunk: usize) -> Read {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, data).unwrap();
        let mut stream = Stream::with_chunk(&file, data.len(), HEADER_SIZE, chunk);
        let mut out = Vec::new();
        while let Some(record) = stream.next().unwrap()? {
            out.push((record.kind, record.payload.to_vec(), record.offset));
        }
        Ok((out, stream.offset()))
    }

    /// A log read piece by piece gives the records and end of the whole file's read, at
    /// every cut (torn transactions, half records) and window size.
    #[test]
    fn a_stream_reads_what_the_whole_file_gives() {
        let mut one = Transaction::new();
        one.push(kind::APPEND | kind::EXTERNAL, payload::append(&[(3, 0x08), (4, 0)]));
        one.push(
            kind::KEYWORD_UPDATE | kind::EXTERNAL,
            payload::keyword_update(true, "Junk", &[(3, 4)]),
        );
        let mut single = Transaction::new();
        single.push(kind::FLAG_UPDATE | kind::EXTERNAL, payload::flag_update(&[(3, 3, 1, 0)]));
        let mut data = vec![0u8; HEADER_SIZE];
        data.extend_from_slice(&one.encode());
        data.extend_from_slice(&single.encode());
        data.extend_from_slice(&one.encode());
        let mut broken = data.clone();
        broken.extend_from_slice(&[0x80, 0x80, 0x80, 0x81, 0, 0, 0, 0]);
        for whole in [&data, &broken] {
            for cut in HEADER_SIZE..=whole.len() {
                let piece = &whole[..cut];
                let expected = records(piece, HEADER_SIZE).map(|(all, end)| {
                    let all = all.iter().map(|r| (r.kind, r.payload.to_vec(), r.offset)).collect();
                    (all, end)
                });
                for chunk in [1, 5, 13, 64 * 1024] {
                    assert_eq!(streamed(piece, chunk), expected, "cut {cut}, chunk {chunk}");
                }
            }
        }
    }

    #[test]
    fn a_torn_transaction_is_not_read() {
        let mut transaction = Transaction::new();
        transaction.push(kind::APPEND | kind::EXTERNAL, payload::append(&[(3, 0x08)]));
        transaction.push(
            kind::HEADER_UPDATE | kind::EXTERNAL,
            payload::header_updates(&[(28, &4u32.to_le_bytes())]),
        );
        let one = transaction.encode();
        // BOUNDARY (12) + APPEND (16) + HEADER_UPDATE (16).
        assert_eq!(one.len(), 44);
        assert_eq!(le32(&one, 8), 44);
        let mut data = vec![0u8; HEADER_SIZE];
        data.extend_from_slice(&one);
        data.extend_from_slice(&one);
        let (all, end) = records(&data, HEADER_SIZE).unwrap();
        assert_eq!((all.len(), end), (6, data.len()));
        for cut in HEADER_SIZE + 44 + 1..data.len() {
            let (complete, end) = records(&data[..cut], HEADER_SIZE).unwrap();
            assert_eq!((complete.len(), end), (3, HEADER_SIZE + 44), "cut at {cut}");
        }
    }
}
