//! What the last listing of a Maildir source folder learned of each message file, kept
//! beside the state (`STATE.listing.<hash>`, one file a folder): a re-run neither `stat`s
//! nor opens a file it has seen, and answers [`Storage::changes_since`] from `cur/` and
//! `new/`'s names and the uidlist alone (see `adapters/maildir/listing.rs`).
//!
//! Per message: its UID, received date (the file's mtime), size and CRLF size, and a hash
//! of its base name (the message's identity: a UID whose base name differs is another
//! message) and of its whole name (the flags: a name that differs is a flag change or a
//! move from `new/` to `cur/`). About 27 bytes a message on disk.
//!
//! The file is ours and a cache: it is used only when every check passes (magic line,
//! CRC-32 of the whole, the folder it names, then the caller's UIDVALIDITY and change
//! token), and anything else costs a full listing, never wrong data.
//!
//! [`Storage::changes_since`]: crate::Storage::changes_since

/// The first bytes of the file (the version is part of it: another version is no cache).
const MAGIC: &[u8] = b"dsync-rs listing 1\n";

/// The longest change token or keywords stamp kept (ours are well under 200 bytes).
const MAX_TEXT: usize = 4096;

/// One message file as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListedFile {
    pub(crate) uid: u32,
    /// Received date (the file's mtime), UNIX seconds.
    pub(crate) received: i64,
    /// Bytes on disk.
    pub(crate) size: u64,
    /// Size with CRLF line ends.
    pub(crate) virtual_size: u64,
    /// [`name_hash`] of the base name.
    pub(crate) base: u64,
    /// [`name_hash`] of the whole file name.
    pub(crate) name: u64,
}

/// A folder's last listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FolderListing {
    /// [`name_hash`] of the store's root and the folder's directory: a file copied beside
    /// another folder's name is no cache of that folder.
    pub(crate) folder: u64,
    pub(crate) uid_validity: u32,
    /// The change token the listing was given (its status's).
    pub(crate) token: String,
    /// The stamp of `dovecot-keywords` then (its letters name the keywords).
    pub(crate) keywords: String,
    /// Ascending UID.
    pub(crate) files: Vec<ListedFile>,
}

/// FNV-1a, 64 bits: stable across builds and platforms (the file outlives the process).
#[cfg_attr(not(feature = "maildir"), allow(dead_code))]
pub(crate) fn name_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (n, part) in parts.iter().enumerate() {
        let separator: &[u8] = if n == 0 { &[] } else { &[0] };
        for &byte in separator.iter().chain(part.iter()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

impl FolderListing {
    /// The file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 64 + self.files.len() * 28);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.folder.to_le_bytes());
        out.extend_from_slice(&self.uid_validity.to_le_bytes());
        for text in [&self.token, &self.keywords] {
            put(&mut out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        put(&mut out, self.files.len() as u64);
        let mut last = 0u32;
        for file in &self.files {
            put(&mut out, u64::from(file.uid.wrapping_sub(last)));
            last = file.uid;
            put(&mut out, zigzag(file.received));
            put(&mut out, file.size);
            put(&mut out, file.virtual_size);
            out.extend_from_slice(&file.base.to_le_bytes());
            out.extend_from_slice(&file.name.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The listing in `bytes`; `None` for anything that is not a whole, intact file of
    /// ours (UIDs ascending, from 1).
    pub(crate) fn decode(bytes: &[u8]) -> Option<FolderListing> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let mut reader = Reader { bytes: body.strip_prefix(MAGIC)? };
        let folder = u64::from_le_bytes(reader.array()?);
        let uid_validity = u32::from_le_bytes(reader.array()?);
        let token = reader.text()?;
        let keywords = reader.text()?;
        let count = usize::try_from(reader.number()?).ok()?;
        // Each file takes at least 20 bytes: a count beyond that is damage, not a size
        // to allocate.
        if count > reader.bytes.len() / 20 {
            return None;
        }
        let mut files = Vec::with_capacity(count);
        let mut last = 0u32;
        for _ in 0..count {
            let step = u32::try_from(reader.number()?).ok().filter(|&step| step > 0)?;
            let uid = last.checked_add(step)?;
            last = uid;
            let received = unzigzag(reader.number()?);
            let size = reader.number()?;
            let virtual_size = reader.number()?;
            let base = u64::from_le_bytes(reader.array()?);
            let name = u64::from_le_bytes(reader.array()?);
            files.push(ListedFile { uid, received, size, virtual_size, base, name });
        }
        if !reader.bytes.is_empty() {
            return None;
        }
        Some(FolderListing { folder, uid_validity, token, keywords, files })
    }
}

/// LEB128.
fn put(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = u8::try_from(value & 0x7f).unwrap_or(0);
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)).cast_unsigned()
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1).cast_signed() ^ -(value & 1).cast_signed()
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*head)
    }

    /// A LEB128 number of at most 10 bytes that fits in 64 bits.
    fn number(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        for (n, &byte) in self.bytes.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                self.bytes = self.bytes.get(n + 1..)?;
                return Some(value);
            }
            shift += 7;
        }
        None
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.number()?).ok().filter(|&len| len <= MAX_TEXT)?;
        let (text, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        String::from_utf8(text.to_vec()).ok()
    }
}

/// The fuzz target's check: whatever decodes encodes to bytes that decode the same.
pub(crate) fn fuzz(data: &[u8]) {
    if let Some(listing) = FolderListing::decode(data) {
        let again = FolderListing::decode(&listing.encode());
        assert_eq!(again.as_ref(), Some(&listing), "our own encoding decodes");
    }
    // The same bytes with a valid checksum: what the parser proper sees.
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    if let Some(listing) = FolderListing::decode(&sealed) {
        let again = FolderListing::decode(&listing.encode());
        assert_eq!(again.as_ref(), Some(&listing), "our own encoding decodes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FolderListing {
        let files = [(1, -5), (2, 1_700_000_000), (900_000, i64::MAX), (u32::MAX, i64::MIN)]
            .into_iter()
            .map(|(uid, received)| ListedFile {
                uid,
                received,
                size: u64::from(uid) * 3,
                virtual_size: u64::MAX - u64::from(uid),
                base: name_hash(&[b"1700000000.M1P1.host"]),
                name: u64::from(uid),
            })
            .collect();
        FolderListing {
            folder: 7,
            uid_validity: 1_700_000_123,
            token: "1.2:3/4.5:6/7.8:9/".into(),
            keywords: String::new(),
            files,
        }
    }

    #[test]
    fn a_listing_reads_back_and_any_damage_is_no_listing() {
        let listing = sample();
        let bytes = listing.encode();
        assert_eq!(FolderListing::decode(&bytes), Some(listing));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert_eq!(FolderListing::decode(&damaged), None, "byte {at}");
            assert_eq!(FolderListing::decode(&bytes[..at]), None, "cut at {at}");
        }
        assert_eq!(FolderListing::decode(b""), None);
    }

    #[test]
    fn descending_or_repeated_uids_are_no_listing() {
        let mut listing = sample();
        listing.files.swap(0, 1);
        assert_eq!(FolderListing::decode(&listing.encode()), None);
        let mut listing = sample();
        listing.files[1].uid = 1;
        assert_eq!(FolderListing::decode(&listing.encode()), None);
    }

    #[test]
    fn the_hash_is_fnv_1a_and_parts_are_separated() {
        assert_eq!(name_hash(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(name_hash(&[b"ab", b"c"]), name_hash(&[b"a", b"bc"]));
    }

    proptest! {
        /// The fuzz target's check on stable: arbitrary bytes, and our own encoding with
        /// bytes changed (the fuzz entry also reads them with a valid checksum, so the
        /// parser proper sees them), never panic.
        #[test]
        fn no_bytes_make_the_reader_panic(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            fuzz(&data);
            let mut bytes = sample().encode();
            bytes.truncate(bytes.len() - 4);
            for (at, byte) in changes {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            fuzz(&bytes);
        }

        #[test]
        fn any_listing_reads_back(
            folder: u64,
            uid_validity: u32,
            token in "[0-9./:]{0,60}",
            steps in proptest::collection::vec((1u32..1000, any::<i64>(), any::<u64>(), any::<u64>(), any::<u64>()), 0..50),
        ) {
            let mut uid = 0u32;
            let files = steps.into_iter().map(|(step, received, size, virtual_size, base)| {
                uid += step;
                ListedFile { uid, received, size, virtual_size, base, name: base.rotate_left(3) }
            }).collect();
            let listing = FolderListing { folder, uid_validity, token, keywords: "k".into(), files };
            prop_assert_eq!(FolderListing::decode(&listing.encode()), Some(listing));
        }
    }
}
