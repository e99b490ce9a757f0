//! `dovecot.index`, the snapshot Dovecot writes of a mailbox index now and then (format
//! 7.3, `mail-index.h`, `mail-index-map-hdr.c`): the base header, the extension headers,
//! then one fixed-size record per message. It is only valid up to the log position it
//! names (`log_file_seq`, `log_file_head_offset`); the log is replayed from there.
//!
//! Extension headers follow the base header at 8-byte aligned offsets: `hdr_size u32,
//! reset_id u32, record_offset u16, record_size u16, record_align u16, name_size u16,
//! name`, the data at the next 8-byte aligned offset. Each record starts with `uid u32,
//! flags u8`; an extension's per-message data sits at its `record_offset`.

use super::log::{le16, le32, le64};
use super::state::{BASE_HEADER_SIZE, Coverage, Ext, IndexState, Message, ext};

/// `MAIL_INDEX_HDR_FLAG_CORRUPTED`: Dovecot found the file broken and will rebuild it.
const HDR_FLAG_CORRUPTED: u32 = 0x01;

/// A parsed `dovecot.index`: the state it holds and where in the log it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The index as of the log position below.
    pub(crate) state: IndexState,
    /// The index's id, which the log files must carry.
    pub(crate) indexid: u32,
    /// The log file the snapshot is up to date with.
    pub(crate) log_file_seq: u32,
    /// How far into that file.
    pub(crate) log_file_head_offset: u32,
}

/// Rounds up to a multiple of 8.
fn align8(value: usize) -> usize {
    (value + 7) & !7
}

/// Parses a whole `dovecot.index` file. `Ok(None)` for a file Dovecot itself marked
/// corrupt (it is ignored, as Dovecot ignores it).
pub(crate) fn parse(data: &[u8]) -> Result<Option<Snapshot>, String> {
    let mut reader = data;
    parse_from(&mut reader, data.len(), Coverage::All).map_err(|error| match error {
        Failed::Broken(reason) => reason,
        Failed::Io(error) => error.to_string(),
    })
}

/// Why [`parse_from`] failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The file is not a valid index (what [`parse`] returns as its error).
    Broken(String),
    /// Reading it failed.
    Io(std::io::Error),
}

impl From<String> for Failed {
    fn from(reason: String) -> Failed {
        Failed::Broken(reason)
    }
}

/// Reads exactly `buffer.len()` bytes; a short file is broken, not an I/O error.
fn read_exact(
    reader: &mut impl std::io::Read,
    buffer: &mut [u8],
    len: usize,
) -> Result<(), Failed> {
    reader.read_exact(buffer).map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            Failed::Broken(format!("{len} bytes: the file ends early"))
        } else {
            Failed::Io(error)
        }
    })
}

/// Parses a `dovecot.index` of `len` bytes read from `reader`, its records in pieces. The
/// records are checked as [`parse`] checks them and kept as `coverage` says (with
/// [`Coverage::Headers`] none: the state is [`IndexState::without_messages`]): what the
/// file says is the same, and the memory does not grow with the mailbox.
pub(crate) fn parse_from(
    reader: &mut impl std::io::Read,
    len: usize,
    coverage: Coverage<'_>,
) -> Result<Option<Snapshot>, Failed> {
    if len < BASE_HEADER_SIZE {
        return Err(format!("{len} bytes, shorter than the base header").into());
    }
    let mut data = vec![0u8; BASE_HEADER_SIZE];
    read_exact(reader, &mut data, len)?;
    let (major, minor) = (data[0], data[1]);
    if major != 7 {
        return Err(format!("index format {major}.{minor} (only 7.x is known)").into());
    }
    let base_header_size = usize::from(le16(&data, 2));
    let header_size = le32(&data, 4) as usize;
    let record_size = le32(&data, 8) as usize;
    if data[12] & 0x01 == 0 {
        return Err(String::from("written on a big-endian machine").into());
    }
    if le32(&data, 20) & HDR_FLAG_CORRUPTED != 0 {
        return Ok(None);
    }
    if base_header_size < BASE_HEADER_SIZE
        || header_size < base_header_size
        || header_size > len
        || record_size < 8
    {
        return Err(format!(
            "sizes: base header {base_header_size}, header {header_size}, record {record_size}"
        )
        .into());
    }
    let messages = le32(&data, 32) as usize;
    messages
        .checked_mul(record_size)
        .and_then(|size| size.checked_add(header_size))
        .filter(|&end| end <= len)
        .ok_or_else(|| format!("{messages} records do not fit in {len} bytes"))?;
    data.resize(header_size, 0);
    read_exact(reader, &mut data[BASE_HEADER_SIZE..], len)?;

    let mut state = IndexState::default().covering(coverage);
    state.header.copy_from_slice(&data[..BASE_HEADER_SIZE]);
    // (extension, record offset) of every extension.
    let mut offsets = Vec::new();
    let mut at = align8(base_header_size);
    while at < header_size {
        if at + 16 > header_size {
            return Err(format!("extension header at {at} runs past the header").into());
        }
        let hdr_size = le32(&data, at) as usize;
        let reset_id = le32(&data, at + 4);
        let record_offset = usize::from(le16(&data, at + 8));
        let ext_record_size = le16(&data, at + 10);
        let record_align = le16(&data, at + 12);
        let name_size = usize::from(le16(&data, at + 14));
        let name = data
            .get(at + 16..at + 16 + name_size)
            .and_then(|name| std::str::from_utf8(name).ok())
            .filter(|name| !name.is_empty())
            .ok_or_else(|| format!("extension at {at}: broken name"))?;
        let data_at = align8(at + 16 + name_size);
        let header = data
            .get(data_at..data_at + hdr_size)
            .filter(|_| data_at + hdr_size <= header_size)
            .ok_or_else(|| format!("extension {name} goes outside the header"))?;
        if record_offset + usize::from(ext_record_size) > record_size {
            return Err(format!("extension {name}: record data outside the record").into());
        }
        if state.ext(name).is_some() {
            return Err(format!("duplicate header extension {name}").into());
        }
        state.exts.push(Ext {
            name: name.to_string(),
            reset_id,
            header: header.to_vec(),
            record_size: ext_record_size,
            record_align,
        });
        offsets.push(record_offset);
        at = align8(data_at + hdr_size);
    }
    let keywords = state.ext(ext::KEYWORDS).map(|(index, ext)| (index, ext.header.clone()));
    if let Some((_, header)) = &keywords {
        state.keywords = keyword_names(header)?;
    }
    let field = |name: &str| {
        state.ext(name).map(|(index, ext)| (offsets[index], usize::from(ext.record_size)))
    };
    let keyword_field = field(ext::KEYWORDS);
    let modseq_field = field(ext::MODSEQ).filter(|&(_, size)| size == 8);
    let mut previous = 0;
    // The records, a few thousand at a time.
    let per_chunk = (64 * 1024 / record_size).max(1);
    let mut chunk = Vec::new();
    let mut left = messages;
    while left > 0 {
        let count = left.min(per_chunk);
        left -= count;
        chunk.resize(count * record_size, 0);
        read_exact(reader, &mut chunk, len)?;
        for record in chunk.chunks_exact(record_size) {
            let uid = le32(record, 0);
            if uid <= previous {
                return Err(format!("record UID {uid} after {previous}").into());
            }
            previous = uid;
            let mut keywords = Vec::new();
            if let Some((offset, size)) = keyword_field {
                for (byte_index, &byte) in record[offset..offset + size].iter().enumerate() {
                    for bit in 0..8 {
                        if byte & (1 << bit) != 0 {
                            let index = u32::try_from(byte_index * 8 + bit).unwrap_or(u32::MAX);
                            if index as usize >= state.keywords.len() {
                                return Err(format!("UID {uid} has keyword {index} of none").into());
                            }
                            keywords.push(index);
                        }
                    }
                }
            }
            if !state.keeps(uid) {
                continue;
            }
            let modseq = modseq_field.map_or(0, |(offset, _)| le64(record, offset));
            std::sync::Arc::make_mut(&mut state.messages).push(Message {
                uid,
                flags: record[4],
                keywords,
                modseq,
            });
        }
    }
    if state.next_uid() <= previous {
        return Err(format!("next UID {} not above UID {previous}", state.next_uid()).into());
    }
    Ok(Some(Snapshot {
        indexid: le32(&data, 16),
        log_file_seq: le32(&data, 60),
        log_file_head_offset: le32(&data, 68),
        state,
    }))
}

/// The keyword names of a `keywords` extension header: `count u32`, `count × {unused u32,
/// name_offset u32}`, then NUL-terminated names (offsets relative to the first name).
fn keyword_names(header: &[u8]) -> Result<Vec<String>, String> {
    if header.len() < 4 {
        return Ok(Vec::new());
    }
    let count = le32(header, 0) as usize;
    let names_at = count
        .checked_mul(8)
        .and_then(|size| size.checked_add(4))
        .filter(|&at| at <= header.len())
        .ok_or_else(|| format!("{count} keywords do not fit the keywords header"))?;
    let names = &header[names_at..];
    (0..count)
        .map(|index| {
            let offset = le32(header, 4 + index * 8 + 4) as usize;
            let rest = names.get(offset..).ok_or_else(|| format!("keyword {index} outside"))?;
            let end = memchr::memchr(0, rest).ok_or_else(|| format!("keyword {index} unended"))?;
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small index as Dovecot 2.3.19.1 lays it out: two extensions, two records.
    fn sample() -> Vec<u8> {
        let mut data = vec![0u8; 120];
        data[0] = 7;
        data[1] = 3;
        data[2..4].copy_from_slice(&120u16.to_le_bytes());
        data[8..12].copy_from_slice(&24u32.to_le_bytes()); // record size
        data[12] = 1;
        data[16..20].copy_from_slice(&0x6b14_a58bu32.to_le_bytes());
        data[24..28].copy_from_slice(&5u32.to_le_bytes());
        data[28..32].copy_from_slice(&50u32.to_le_bytes());
        data[32..36].copy_from_slice(&2u32.to_le_bytes());
        data[60..64].copy_from_slice(&1u32.to_le_bytes());
        data[68..72].copy_from_slice(&4096u32.to_le_bytes());
        // modseq: header 16, records 8 at offset 8.
        data.extend_from_slice(&16u32.to_le_bytes());
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&8u16.to_le_bytes());
        data.extend_from_slice(&8u16.to_le_bytes());
        data.extend_from_slice(&8u16.to_le_bytes());
        data.extend_from_slice(&6u16.to_le_bytes());
        data.extend_from_slice(b"modseq\0\0");
        data.extend_from_slice(&300u64.to_le_bytes());
        data.extend_from_slice(&[0; 8]);
        // keywords: 2 names, bitmap of 2 bytes at offset 5.
        let mut kw = Vec::new();
        kw.extend_from_slice(&2u32.to_le_bytes());
        kw.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
        kw.extend_from_slice(b"Junk\0$Label1\0\0\0\0");
        data.extend_from_slice(&u32::try_from(kw.len()).unwrap().to_le_bytes());
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&5u16.to_le_bytes());
        data.extend_from_slice(&2u16.to_le_bytes());
        data.extend_from_slice(&1u16.to_le_bytes());
        data.extend_from_slice(&8u16.to_le_bytes());
        data.extend_from_slice(b"keywords");
        data.extend_from_slice(&kw);
        while !data.len().is_multiple_of(8) {
            data.push(0);
        }
        let header_size = u32::try_from(data.len()).unwrap();
        data[4..8].copy_from_slice(&header_size.to_le_bytes());
        for (uid, flags, keywords, modseq) in [(3u32, 8u8, 0b10u8, 7u64), (9, 2, 0b11, 250)] {
            let mut record = vec![0u8; 24];
            record[..4].copy_from_slice(&uid.to_le_bytes());
            record[4] = flags;
            record[5] = keywords;
            record[8..16].copy_from_slice(&modseq.to_le_bytes());
            data.extend_from_slice(&record);
        }
        data
    }

    #[test]
    fn reads_header_extensions_and_records() {
        let snapshot = parse(&sample()).unwrap().unwrap();
        let state = &snapshot.state;
        assert_eq!(
            (snapshot.indexid, snapshot.log_file_seq, snapshot.log_file_head_offset),
            (0x6b14_a58b, 1, 4096)
        );
        assert_eq!((state.uid_validity(), state.next_uid()), (5, 50));
        assert_eq!(state.keywords, ["Junk", "$Label1"]);
        assert_eq!(state.messages.len(), 2);
        assert_eq!((state.messages[0].uid, state.messages[0].flags), (3, 8));
        assert_eq!(state.messages[0].keywords, [1]);
        assert_eq!(state.messages[1].keywords, [0, 1]);
        assert_eq!(state.messages[1].modseq, 250);
        assert_eq!(state.highest_modseq(), 300);
    }

    /// Read without its records, a snapshot says what the full read says of everything
    /// else, and refuses what the full read refuses.
    #[test]
    fn without_records_the_rest_is_the_same() {
        let good = sample();
        let headers = |data: &[u8]| {
            let mut reader = data;
            parse_from(&mut reader, data.len(), Coverage::Headers).map_err(|e| format!("{e:?}"))
        };
        let full = parse(&good).unwrap().unwrap();
        let only = headers(&good).unwrap().unwrap();
        assert!(only.state.messages.is_empty());
        assert_eq!(only.state, full.state.clone().without_messages());
        assert_eq!(
            (only.indexid, only.log_file_seq, only.log_file_head_offset),
            (full.indexid, full.log_file_seq, full.log_file_head_offset)
        );
        let mut descending = good.clone();
        let last = descending.len() - 24;
        descending[last..last + 4].copy_from_slice(&2u32.to_le_bytes());
        let mut unknown_keyword = good.clone();
        unknown_keyword[last + 5] = 0b100;
        let mut low_next_uid = good.clone();
        low_next_uid[28..32].copy_from_slice(&9u32.to_le_bytes());
        for broken in [descending, unknown_keyword, low_next_uid, good[..good.len() - 1].to_vec()] {
            assert!(parse(&broken).is_err());
            assert!(headers(&broken).is_err());
        }
    }

    #[test]
    fn broken_files_are_refused_and_a_corrupt_mark_is_honoured() {
        let good = sample();
        for cut in [0, 119, good.len() - 1] {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut corrupt = good.clone();
        corrupt[20] = 1;
        assert_eq!(parse(&corrupt), Ok(None));
        let mut descending = good;
        let last = descending.len() - 24;
        descending[last..last + 4].copy_from_slice(&2u32.to_le_bytes());
        assert!(parse(&descending).is_err());
    }
}
