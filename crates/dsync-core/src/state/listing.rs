//! What the last listing of a Maildir source folder learned of each message file, kept
//! beside the state (`STATE.listing.<hash>`, one file a folder): a re-run neither `stat`s
//! nor opens a file it has seen, and answers [`Storage::changes_since`] from `cur/` and
//! `new/`'s names and the uidlist alone (see `adapters/maildir/listing.rs`).
//!
//! Per message: its UID, received date (the file's mtime), size and CRLF size, and a hash
//! of its base name (the message's identity: a UID whose base name differs is another
//! message) and of its whole name (the flags: a name that differs is a flag change or a
//! move from `new/` to `cur/`); since version 2 also its directory and the rest of its
//! name after the base name (`:2,S`; one byte when they are the file before's), and in
//! the header `cur/`'s stamp when the read vouched for it: with the uidlist's base names
//! they are `cur/`'s files, so that a re-run after deliveries alone does not read an
//! unchanged `cur/` (mailstore's `Mailbox::into_messages_knowing_cur`). About 27 bytes a
//! message on disk. A version 1 file still reads, its files' directories unknown (`cur/`
//! is then read).
//!
//! The file is ours and a cache: it is used only when every check passes (magic line,
//! CRC-32 of the whole, the folder it names, then the caller's UIDVALIDITY and change
//! token), and anything else costs a full listing, never wrong data.
//!
//! Neither end holds a listing: it is written as it is made ([`Writer`], spilled to an
//! unnamed file) and read back a chunk at a time ([`FolderListing`], [`Walk`]), checked
//! whole once before it is used and again as it is walked, so a folder of any size costs
//! a chunk in memory, not 27 bytes a message (benches/RESULTS-memory.md, Round 12).
//!
//! [`Storage::changes_since`]: crate::Storage::changes_since

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The first bytes of the file (the version is part of it: another version is no cache).
const MAGIC: &[u8] = b"dsync-rs listing 2\n";

/// The version written ([`MAGIC`]).
pub(crate) const VERSION: u8 = 2;

/// The first bytes of a version 1 file (before round 13): no directories, rests or stamp
/// of `cur/`. Read, never written.
const MAGIC_V1: &[u8] = b"dsync-rs listing 1\n";

/// The longest rest of a name kept ([`Rest`]); a longer one is not kept, and its file's
/// directory counts as unknown (`cur/` is then read). Dovecot's info part is `:2,` and at
/// most 6 flag letters and 26 keyword letters (35 bytes); the smaller a [`ListedFile`],
/// the cheaper a walk moves it.
pub(crate) const MAX_REST: usize = 40;

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
    /// Where the file was.
    pub(crate) place: Place,
    /// Its name after the base name (empty when [`Place::Unknown`]).
    pub(crate) rest: Rest,
}

/// The directory of a [`ListedFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    New,
    Cur,
    /// Not kept (a version 1 file, or a rest longer than [`MAX_REST`]).
    Unknown,
}

/// A file's directory and rest as written: most files share them with the file before.
type Shape = (Place, Rest);

/// The place byte of a file whose directory and rest are those of an earlier file: the
/// index of that shape in the listing's table of shapes (in the order they first came,
/// [`MAX_SHAPES`] of them) plus this. A folder's files have a few shapes (`cur/` and
/// `:2,`, `:2,S`, `:2,FS`...), so a record costs one byte more than in version 1, not
/// six. Written whenever it applies (one listing, one byte string): a file that spells
/// out a shape of the table is no listing of ours.
const FIRST_SHAPE: u8 = 3;

/// The shapes a listing's table holds; later new ones are spelled out each time.
const MAX_SHAPES: usize = 32;

/// A listing's table of shapes, as it is written or read.
type Shapes = Vec<Shape>;

impl Place {
    fn byte(self) -> u8 {
        match self {
            Place::New => 0,
            Place::Cur => 1,
            Place::Unknown => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Place> {
        match byte {
            0 => Some(Place::New),
            1 => Some(Place::Cur),
            2 => Some(Place::Unknown),
            _ => None,
        }
    }
}

/// The rest of a file's name after its base name (`:2,S`), held inline so that a
/// [`ListedFile`] stays a plain value: at most [`MAX_REST`] bytes of UTF-8.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rest {
    len: u8,
    bytes: [u8; MAX_REST],
}

impl Default for Rest {
    fn default() -> Rest {
        Rest { len: 0, bytes: [0; MAX_REST] }
    }
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Rest {
    /// `rest`, when it is at most [`MAX_REST`] bytes.
    pub(crate) fn new(rest: &str) -> Option<Rest> {
        let len = u8::try_from(rest.len()).ok().filter(|&len| usize::from(len) <= MAX_REST)?;
        let mut bytes = [0; MAX_REST];
        bytes.get_mut(..rest.len())?.copy_from_slice(rest.as_bytes());
        Some(Rest { len, bytes })
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Its bytes (UTF-8: it was made from a `&str`).
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// What a kept listing says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Header {
    /// [`name_hash`] of the store's root and the folder's directory: a file copied beside
    /// another folder's name is no cache of that folder.
    pub(crate) folder: u64,
    pub(crate) uid_validity: u32,
    /// The change token the listing was given (its status's).
    pub(crate) token: String,
    /// The stamp of `dovecot-keywords` then (its letters name the keywords).
    pub(crate) keywords: String,
    /// `cur/`'s stamp before the read, when the read vouched for `cur/` (mailstore's
    /// `MessageStream::cur_stamp`, as text) and every file of the listing has its
    /// directory and rest; else empty.
    pub(crate) cur: String,
    /// The file's version: 1 (read only) or 2.
    pub(crate) version: u8,
}

/// A folder's last listing, read from its file ([`FolderListing::read`]) and checked whole
/// (checksum, header, every file in order) without being held: its files are decoded again
/// as they are walked ([`Walk`]), a chunk of the file at a time ([`CHUNK`]), so that a
/// listing costs one chunk of memory, not its file's bytes (about 26 a message).
#[derive(Debug)]
pub(crate) struct FolderListing {
    pub(crate) header: Header,
    source: Source,
    /// Bytes before the checksum.
    body: u64,
    /// The checksum the file ends with.
    crc: u32,
    /// The size of the reads (tests and the fuzz target make it small).
    chunk: usize,
}

/// Where a kept listing's bytes are read from.
#[derive(Debug)]
enum Source {
    File(File),
    /// Tests and the fuzz target.
    Memory(io::Cursor<Vec<u8>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(file) => file.read(buf),
            Source::Memory(cursor) => cursor.read(buf),
        }
    }
}

impl Seek for Source {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Source::File(file) => file.seek(to),
            Source::Memory(cursor) => cursor.seek(to),
        }
    }
}

/// The bytes a walk reads at a time (in unit tests a few records' worth, so that every
/// test that reads a kept listing has its records straddle reads).
pub(crate) const CHUNK: usize = if cfg!(test) { 97 } else { 64 * 1024 };

/// The longest file record: four LEB128 numbers, two hashes, the place and the rest with
/// its length.
const MAX_RECORD: usize = 4 * 10 + 16 + 1 + 1 + MAX_REST;

/// The longest header: the magic line, folder, UIDVALIDITY and three texts with their
/// lengths.
const MAX_HEAD: usize = MAGIC.len() + 8 + 4 + 3 * (10 + MAX_TEXT);

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
    /// The listing in `file`; `None` for anything that is not a whole, intact file of
    /// ours (UIDs ascending, from 1), or that cannot be read. The file is read through
    /// once here, a chunk at a time, and every file record checked: a walk of an intact
    /// file cannot fail, and one that does (the file changed in place since) says so
    /// ([`Walk::intact`]).
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn read(file: File) -> Option<FolderListing> {
        FolderListing::from_source(Source::File(file), CHUNK)
    }

    /// The listing in `bytes` (as [`FolderListing::read`]), read in small chunks so that
    /// records straddle them.
    #[cfg(test)]
    pub(crate) fn decode(bytes: Vec<u8>) -> Option<FolderListing> {
        FolderListing::decode_in_chunks(bytes, 100)
    }

    /// The listing in `bytes`, read `chunk` bytes at a time.
    pub(crate) fn decode_in_chunks(bytes: Vec<u8>, chunk: usize) -> Option<FolderListing> {
        FolderListing::from_source(Source::Memory(io::Cursor::new(bytes)), chunk)
    }

    fn from_source(mut source: Source, chunk: usize) -> Option<FolderListing> {
        let len = source.seek(SeekFrom::End(0)).ok()?;
        let body = len.checked_sub(4)?;
        source.seek(SeekFrom::Start(body)).ok()?;
        let mut crc = [0; 4];
        source.read_exact(&mut crc).ok()?;
        let crc = u32::from_le_bytes(crc);
        let (header, mut chunks) = Chunks::open(source, body, chunk).ok()?;
        let (mut last, mut shapes) = (0, Shapes::new());
        while !chunks.is_done() {
            last = chunks.uid_of_file(last, header.version, &mut shapes).ok()??;
        }
        if chunks.crc() != crc {
            return None;
        }
        Some(FolderListing { header, source: chunks.source, body, crc, chunk })
    }

    /// The same listing read through another handle of its file (a walk of each, one
    /// after the other: they share the file's offset, and each walk seeks to its start).
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn try_clone(&self) -> Option<FolderListing> {
        let source = match &self.source {
            Source::File(file) => Source::File(file.try_clone().ok()?),
            Source::Memory(cursor) => Source::Memory(cursor.clone()),
        };
        Some(FolderListing {
            header: self.header.clone(),
            source,
            body: self.body,
            crc: self.crc,
            chunk: self.chunk,
        })
    }

    /// Its files, in ascending UID order.
    #[cfg(test)]
    pub(crate) fn files(self) -> Vec<ListedFile> {
        let mut walk = Walk::new(self);
        let mut files = Vec::new();
        walk.below(u32::MAX, |file| files.push(file));
        files.extend(walk.take(u32::MAX));
        assert!(walk.intact(), "walked to the end");
        files
    }
}

/// A listing's bytes read a chunk at a time, up to its checksum, and hashed as they are
/// read.
struct Chunks {
    source: Source,
    buf: Vec<u8>,
    /// The bytes to hold after a read (more when more are wanted at once: the header).
    chunk: usize,
    /// Where the bytes not yet used begin in `buf`.
    pos: usize,
    /// Where the bytes read end in `buf`.
    filled: usize,
    /// Bytes of the listing not yet read.
    left: u64,
    crc: crc32fast::Hasher,
}

impl Chunks {
    /// The header of the listing in `source`, whose checksum follows `body` bytes, and
    /// its files' bytes after it, read `chunk` bytes at a time.
    fn open(mut source: Source, body: u64, chunk: usize) -> io::Result<(Header, Chunks)> {
        source.seek(SeekFrom::Start(0))?;
        let mut chunks = Chunks {
            source,
            buf: vec![0; chunk.max(MAX_RECORD)],
            chunk: chunk.max(MAX_RECORD),
            pos: 0,
            filled: 0,
            left: body,
            crc: crc32fast::Hasher::new(),
        };
        // A chunk, or more until the header reads (at most [`MAX_HEAD`]): no more is read
        // ahead than a chunk's worth.
        let mut want = chunks.chunk;
        loop {
            let bytes = chunks.fill(want)?;
            let mut reader = Reader { bytes };
            if let Some(header) = reader.header() {
                chunks.pos += bytes.len() - reader.bytes.len();
                return Ok((header, chunks));
            }
            if bytes.len() < want || want >= MAX_HEAD {
                return Err(io::Error::other("not a listing"));
            }
            want = (want * 2).min(MAX_HEAD);
        }
    }

    /// The bytes not yet used: at least `want` of them, or all that are left.
    fn fill(&mut self, want: usize) -> io::Result<&[u8]> {
        if self.filled - self.pos < want && self.left > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
            let target = want.max(self.chunk);
            if self.buf.len() < target {
                self.buf.resize(target, 0);
            }
            while self.filled < target && self.left > 0 {
                let room = usize::try_from(self.left).unwrap_or(usize::MAX);
                let room = room.min(target - self.filled);
                let read = &mut self.buf[self.filled..self.filled + room];
                let n = self.source.read(read)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.crc.update(&read[..n]);
                self.filled += n;
                self.left -= n as u64;
            }
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    /// The next file record of a listing of `version`, its UID above `last`; `Ok(None)`:
    /// not one.
    fn file(
        &mut self,
        last: u32,
        version: u8,
        shapes: &mut Shapes,
    ) -> io::Result<Option<ListedFile>> {
        let bytes = self.fill(MAX_RECORD)?;
        let mut reader = Reader { bytes };
        let file = reader.file(last, version, shapes);
        self.pos += bytes.len() - reader.bytes.len();
        Ok(file)
    }

    /// [`Self::file`] checked as it decodes, without making it: its UID.
    fn uid_of_file(
        &mut self,
        last: u32,
        version: u8,
        shapes: &mut Shapes,
    ) -> io::Result<Option<u32>> {
        let bytes = self.fill(MAX_RECORD)?;
        let mut reader = Reader { bytes };
        let uid = reader.uid_of_file(last, version, shapes);
        self.pos += bytes.len() - reader.bytes.len();
        Ok(uid)
    }

    /// Every byte was read and used.
    fn is_done(&self) -> bool {
        self.pos == self.filled && self.left == 0
    }

    /// The checksum of the bytes read so far.
    fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }
}

/// A walk through a [`FolderListing`]'s files in ascending UID order, read again from its
/// file as it goes.
pub(crate) struct Walk {
    /// The bytes after the next file's (`None` once read to the end, or a read failed).
    chunks: Option<Chunks>,
    /// The checksum the listing ends with.
    crc: u32,
    /// The UID of the last file decoded.
    last: u32,
    /// The next file, decoded.
    next: Option<ListedFile>,
    /// A read failed, a record did not decode, or the checksum differs: not the listing
    /// that was checked.
    broken: bool,
    /// The listing's version.
    version: u8,
    /// The listing's table of shapes so far.
    shapes: Shapes,
}

impl std::fmt::Debug for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("last", &self.last)
            .field("next", &self.next)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Walk {
    pub(crate) fn new(listing: FolderListing) -> Walk {
        let FolderListing { header, source, body, crc, chunk } = listing;
        let chunks = match Chunks::open(source, body, chunk) {
            Ok((read, chunks)) if read == header => Some(chunks),
            _ => None,
        };
        let broken = chunks.is_none();
        let version = header.version;
        let shapes = Shapes::new();
        let mut walk = Walk { chunks, crc, last: 0, next: None, broken, version, shapes };
        walk.next = walk.decode_next();
        walk
    }

    fn decode_next(&mut self) -> Option<ListedFile> {
        let chunks = self.chunks.as_mut()?;
        if chunks.is_done() {
            self.broken |= chunks.crc() != self.crc;
            self.chunks = None;
            return None;
        }
        if let Ok(Some(file)) = chunks.file(self.last, self.version, &mut self.shapes) {
            self.last = file.uid;
            return Some(file);
        }
        self.broken = true;
        self.chunks = None;
        None
    }

    /// The files below `uid` go to `each` (and are passed).
    pub(crate) fn below(&mut self, uid: u32, mut each: impl FnMut(ListedFile)) {
        while let Some(file) = self.next.filter(|file| file.uid < uid) {
            each(file);
            self.next = self.decode_next();
        }
    }

    /// The next file (then passed).
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn next_file(&mut self) -> Option<ListedFile> {
        let file = self.next?;
        self.next = self.decode_next();
        Some(file)
    }

    /// The file of `uid` when it is the next one (then passed).
    pub(crate) fn take(&mut self, uid: u32) -> Option<ListedFile> {
        let file = self.next.filter(|file| file.uid == uid)?;
        self.next = self.decode_next();
        Some(file)
    }

    /// Walked to the end, every byte read back as it was checked: what the walk gave is
    /// the whole listing. False when the file changed in place since it was checked, or a
    /// read failed (the walk then ended early, and its files were not all given).
    pub(crate) fn intact(&self) -> bool {
        self.next.is_none() && self.chunks.is_none() && !self.broken
    }
}

/// A listing written as it is made: each file is encoded as it comes (ascending UID), so
/// a listing costs its bytes, not a record each. With a spill directory those bytes go to
/// an unnamed file there a chunk at a time ([`SPILL_AT`]), so that a folder of any size
/// costs one chunk in memory. The header (which holds the change token, known only once
/// the folder was read) is put in front when it is written ([`Writer::write_to`]).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// The bytes not yet spilled.
    files: Vec<u8>,
    /// Where spill files may be made; `None`: every byte stays in memory.
    spill_dir: Option<PathBuf>,
    /// The unnamed file the earlier bytes went to.
    spill: Option<File>,
    last: u32,
    /// A file came out of order, or a spill failed: nothing is written.
    broken: bool,
    /// A file's directory is not known ([`Place::Unknown`]): the listing cannot give
    /// `cur/`'s files.
    unplaced: bool,
    /// The shapes written so far ([`FIRST_SHAPE`]).
    shapes: Shapes,
}

/// The bytes a [`Writer`] holds before it spills them (about 10 000 files).
pub(crate) const SPILL_AT: usize = 256 * 1024;

/// A listing's bytes in the order they are written: header, files, checksum.
pub(crate) type Pieces = (Vec<u8>, Vec<u8>, [u8; 4]);

impl Writer {
    /// A listing held in memory, its buffer sized for `capacity` bytes of files.
    pub(crate) fn new(capacity: usize) -> Writer {
        Writer { files: Vec::with_capacity(capacity), ..Writer::default() }
    }

    /// A listing that is never written (its files are not even encoded).
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn discarding() -> Writer {
        Writer { broken: true, ..Writer::default() }
    }

    /// A listing whose bytes beyond [`SPILL_AT`] go to an unnamed file in `dir`.
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn spilling_to(dir: PathBuf) -> Writer {
        Writer { files: Vec::with_capacity(SPILL_AT), spill_dir: Some(dir), ..Writer::default() }
    }

    /// The next file (its UID above the last one's).
    pub(crate) fn push(&mut self, file: &ListedFile) {
        if self.broken {
            return;
        }
        if file.uid <= self.last {
            self.broken = true;
            return;
        }
        self.unplaced |= file.place == Place::Unknown;
        let out = &mut self.files;
        put(out, u64::from(file.uid - self.last));
        self.last = file.uid;
        put(out, zigzag(file.received));
        put(out, file.size);
        put(out, file.virtual_size);
        out.extend_from_slice(&file.base.to_le_bytes());
        out.extend_from_slice(&file.name.to_le_bytes());
        let shape = shape_of(file);
        let known = self.shapes.iter().position(|known| *known == shape);
        if let Some(index) = known.and_then(|index| u8::try_from(index).ok()) {
            out.push(FIRST_SHAPE + index);
        } else {
            out.push(file.place.byte());
            if file.place != Place::Unknown {
                let rest = file.rest.as_bytes();
                put(out, rest.len() as u64);
                out.extend_from_slice(rest);
            }
            if self.shapes.len() < MAX_SHAPES {
                self.shapes.push(shape);
            }
        }
        if self.files.len() >= SPILL_AT && self.spill_dir.is_some() && self.spill().is_err() {
            // No listing is kept then: the next run lists the folder whole.
            self.broken = true;
            self.files = Vec::new();
            self.spill = None;
        }
    }

    /// True when every file pushed has its directory and rest: the listing may vouch for
    /// `cur/` ([`Header::cur`]).
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn all_placed(&self) -> bool {
        !self.unplaced
    }

    /// Moves the bytes held to the spill file, made (and at once unlinked, so that a
    /// killed run leaves nothing) the first time.
    fn spill(&mut self) -> io::Result<()> {
        let spill = match (&mut self.spill, &self.spill_dir) {
            (Some(spill), _) => spill,
            (None, Some(dir)) => {
                let path = dir.join(spill_name());
                let file = File::options().read(true).write(true).create_new(true).open(&path)?;
                fs::remove_file(&path)?;
                self.spill.insert(file)
            }
            (None, None) => return Ok(()),
        };
        spill.write_all(&self.files)?;
        self.files.clear();
        Ok(())
    }

    /// Writes the whole listing with `header` to `out`: header, files, checksum.
    #[cfg_attr(not(feature = "maildir"), allow(dead_code))]
    pub(crate) fn write_to(mut self, header: &Header, out: &mut impl Write) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("no listing: a file out of order or a spill failed"));
        }
        let head = head(header);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        out.write_all(&head)?;
        if let Some(spill) = &mut self.spill {
            spill.seek(SeekFrom::Start(0))?;
            let mut chunk = vec![0; 64 * 1024];
            loop {
                let n = spill.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                crc.update(&chunk[..n]);
                out.write_all(&chunk[..n])?;
            }
        }
        crc.update(&self.files);
        out.write_all(&self.files)?;
        out.write_all(&crc.finalize().to_le_bytes())
    }

    /// The file's bytes with `header`, all in memory; `None` when a file came out of
    /// order or the bytes were spilled.
    pub(crate) fn finish(self, header: &Header) -> Option<Pieces> {
        if self.broken || self.spill.is_some() {
            return None;
        }
        let head = head(header);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&self.files);
        Some((head, self.files, crc.finalize().to_le_bytes()))
    }
}

/// The shape `file` is written with (a file of unknown place has no rest).
fn shape_of(file: &ListedFile) -> Shape {
    match file.place {
        Place::Unknown => (Place::Unknown, Rest::default()),
        place => (place, file.rest),
    }
}

/// A listing's header bytes.
fn head(header: &Header) -> Vec<u8> {
    let mut head = Vec::with_capacity(MAGIC.len() + 64);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&header.folder.to_le_bytes());
    head.extend_from_slice(&header.uid_validity.to_le_bytes());
    for text in [&header.token, &header.keywords, &header.cur] {
        put(&mut head, text.len() as u64);
        head.extend_from_slice(text.as_bytes());
    }
    head
}

/// A name no other spill file of this process has.
fn spill_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".dsync-rs-listing-spill.{}.{next}", std::process::id())
}

/// `files` with `header` as a version 1 file (before round 13: no directories, rests or
/// stamp of `cur/`), as older builds wrote it (tests).
#[cfg(test)]
pub(crate) fn encode_v1(header: &Header, files: &[ListedFile]) -> Vec<u8> {
    let mut out = MAGIC_V1.to_vec();
    out.extend_from_slice(&header.folder.to_le_bytes());
    out.extend_from_slice(&header.uid_validity.to_le_bytes());
    for text in [&header.token, &header.keywords] {
        put(&mut out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
    let mut last = 0;
    for file in files {
        put(&mut out, u64::from(file.uid - last));
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

/// [`Pieces`] as one byte string.
pub(crate) fn joined((head, files, crc): Pieces) -> Vec<u8> {
    [head, files, crc.to_vec()].concat()
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
                // The shortest spelling only: one listing, one byte string.
                if byte == 0 && n > 0 {
                    return None;
                }
                self.bytes = self.bytes.get(n + 1..)?;
                return Some(value);
            }
            shift += 7;
        }
        None
    }

    /// [`Self::file`] checked alike, only its UID kept (the check of a whole listing).
    fn uid_of_file(&mut self, last: u32, version: u8, shapes: &mut Shapes) -> Option<u32> {
        let step = u32::try_from(self.number()?).ok().filter(|&step| step > 0)?;
        let uid = last.checked_add(step)?;
        for _ in 0..3 {
            self.number()?;
        }
        self.array::<16>()?;
        if version >= 2 {
            self.shape(shapes)?;
        }
        Some(uid)
    }

    /// A file's shape, `shapes` the listing's table so far (a new one joins it).
    fn shape(&mut self, shapes: &mut Shapes) -> Option<Shape> {
        let [byte] = self.array()?;
        if let Some(index) = byte.checked_sub(FIRST_SHAPE) {
            return shapes.get(usize::from(index)).copied();
        }
        let shape = match Place::from_byte(byte)? {
            Place::Unknown => (Place::Unknown, Rest::default()),
            place => (place, Rest::new(self.str_of(MAX_REST)?)?),
        };
        // Spelled out though the table has it: not our encoding.
        if shapes.contains(&shape) {
            return None;
        }
        if shapes.len() < MAX_SHAPES {
            shapes.push(shape);
        }
        Some(shape)
    }

    /// One file of a listing of `version`, its UID above `last`; `shapes` is the table of
    /// shapes so far.
    fn file(&mut self, last: u32, version: u8, shapes: &mut Shapes) -> Option<ListedFile> {
        let step = u32::try_from(self.number()?).ok().filter(|&step| step > 0)?;
        let uid = last.checked_add(step)?;
        let received = unzigzag(self.number()?);
        let size = self.number()?;
        let virtual_size = self.number()?;
        let base = u64::from_le_bytes(self.array()?);
        let name = u64::from_le_bytes(self.array()?);
        let (place, rest) =
            if version < 2 { (Place::Unknown, Rest::default()) } else { self.shape(shapes)? };
        Some(ListedFile { uid, received, size, virtual_size, base, name, place, rest })
    }

    /// A listing's header, with the magic line.
    fn header(&mut self) -> Option<Header> {
        let version = if let Some(rest) = self.bytes.strip_prefix(MAGIC) {
            self.bytes = rest;
            2
        } else {
            self.bytes = self.bytes.strip_prefix(MAGIC_V1)?;
            1
        };
        let folder = u64::from_le_bytes(self.array()?);
        let uid_validity = u32::from_le_bytes(self.array()?);
        let token = self.text()?;
        let keywords = self.text()?;
        let cur = if version < 2 { String::new() } else { self.text()? };
        Some(Header { folder, uid_validity, token, keywords, cur, version })
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.number()?).ok().filter(|&len| len <= MAX_TEXT)?;
        let (text, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        String::from_utf8(text.to_vec()).ok()
    }

    /// A text of at most `max` bytes, borrowed (a file's rest: no allocation a record).
    fn str_of(&mut self, max: usize) -> Option<&str> {
        let len = usize::try_from(self.number()?).ok().filter(|&len| len <= max)?;
        let (text, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        std::str::from_utf8(text).ok()
    }
}

/// The fuzz target's check: whatever decodes encodes to the same bytes (a version 1 file:
/// to a version 2 file that reads back as the same listing), read in chunks of any size
/// (the first byte picks one) or whole; a walk gives every file in ascending UID order
/// and ends intact, a file's rest only with its directory.
pub(crate) fn fuzz(data: &[u8]) {
    let chunk = data.first().map_or(1, |&byte| usize::from(byte % 80) + 1);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // As read, and with a valid checksum: what the parser proper sees.
    for bytes in [data.to_vec(), sealed] {
        let whole = FolderListing::decode_in_chunks(bytes.clone(), CHUNK);
        let Some(listing) = FolderListing::decode_in_chunks(bytes.clone(), chunk) else {
            assert!(whole.is_none(), "the chunks' size does not matter");
            continue;
        };
        assert!(whole.is_some(), "the chunks' size does not matter");
        let header = listing.header.clone();
        let mut writer = Writer::new(0);
        let mut files = Vec::new();
        let mut walk = Walk::new(listing);
        let mut last = 0;
        walk.below(u32::MAX, |file| {
            assert!(file.uid > last, "ascending");
            last = file.uid;
            files.push(file);
        });
        files.extend(walk.take(u32::MAX));
        assert!(walk.intact(), "a checked listing walks to its end");
        for file in &files {
            assert!(file.place != Place::Unknown || file.rest.as_str().is_empty(), "no rest");
            writer.push(file);
        }
        let again = writer.finish(&header).map(joined);
        if header.version == VERSION {
            assert_eq!(again, Some(bytes), "our own encoding is canonical");
            continue;
        }
        let again = again.and_then(|again| FolderListing::decode_in_chunks(again, chunk));
        let again = again.expect("a version 1 listing is written again as version 2");
        assert_eq!(again.header, Header { version: VERSION, ..header }, "the same header");
        let mut walk = Walk::new(again);
        let mut read = Vec::new();
        walk.below(u32::MAX, |file| read.push(file));
        read.extend(walk.take(u32::MAX));
        assert!(walk.intact() && read == files, "the same files");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            folder: 7,
            uid_validity: 1_700_000_123,
            token: "1.2:3/4.5:6/7.8:9/".into(),
            keywords: String::new(),
            cur: "1 2 3 4 5 6".into(),
            version: VERSION,
        }
    }

    fn sample_files() -> Vec<ListedFile> {
        [(1, -5), (2, 1_700_000_000), (900_000, i64::MAX), (u32::MAX, i64::MIN)]
            .into_iter()
            .map(|(uid, received)| ListedFile {
                uid,
                received,
                size: u64::from(uid) * 3,
                virtual_size: u64::MAX - u64::from(uid),
                base: name_hash(&[b"1700000000.M1P1.host"]),
                name: u64::from(uid),
                place: [Place::Cur, Place::New, Place::Unknown][uid as usize % 3],
                rest: Rest::new(if uid % 3 == 2 { "" } else { ":2,S" }).expect("short"),
            })
            .collect()
    }

    fn encode(header: &Header, files: &[ListedFile]) -> Option<Vec<u8>> {
        let mut writer = Writer::new(0);
        for file in files {
            writer.push(file);
        }
        writer.finish(header).map(joined)
    }

    fn sample() -> Vec<u8> {
        encode(&header(), &sample_files()).expect("in order")
    }

    #[test]
    fn a_listing_reads_back_and_any_damage_is_no_listing() {
        let bytes = sample();
        let listing = FolderListing::decode(bytes.clone()).expect("reads back");
        assert_eq!(listing.header, header());
        assert_eq!(listing.files(), sample_files());
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(FolderListing::decode(damaged).is_none(), "byte {at}");
            assert!(FolderListing::decode(bytes[..at].to_vec()).is_none(), "cut at {at}");
        }
    }

    /// A version 1 file (older builds) reads: its header without `cur/`'s stamp, its
    /// files without directories or rests. (Fails when only version 2 reads.)
    #[test]
    fn a_version_1_listing_reads_without_directories() {
        let files = sample_files();
        let bytes = encode_v1(&header(), &files);
        assert!(bytes.starts_with(b"dsync-rs listing 1\n"));
        let listing = FolderListing::decode(bytes.clone()).expect("reads");
        let expected = Header { cur: String::new(), version: 1, ..header() };
        assert_eq!(listing.header, expected);
        let unplaced: Vec<ListedFile> = files
            .iter()
            .map(|file| ListedFile { place: Place::Unknown, rest: Rest::default(), ..*file })
            .collect();
        assert_eq!(listing.files(), unplaced);
        fuzz(&bytes[..bytes.len() - 4]);
    }

    /// Files of a shape met before cost one byte more than in version 1; a shape of the
    /// table spelled out again, or an index past it, is not our encoding. (Fails when every
    /// shape is written whole, or a spelled-out repeat is read.)
    #[test]
    fn a_repeated_shape_costs_a_byte() {
        let files = many_files();
        let v2 = encode(&header(), &files).expect("in order");
        let v1 = encode_v1(&header(), &files);
        // The first shape whole (place, length, `:2,S`), the stamp of cur/ with its length.
        let first = 1 + 1 + 4;
        let cur = 1 + header().cur.len();
        assert_eq!(v2.len() - v1.len(), files.len() - 1 + first + cur);
        let rest = Rest::new(":2,S").expect("short");
        let explicit = [1, 4, b':', b'2', b',', b'S'];
        let mut shapes = vec![(Place::New, rest)];
        let read = Reader { bytes: &explicit }.shape(&mut shapes);
        assert_eq!(read, Some((Place::Cur, rest)));
        assert_eq!(shapes, [(Place::New, rest), (Place::Cur, rest)], "joins the table");
        assert_eq!(Reader { bytes: &explicit }.shape(&mut shapes), None, "spelled out again");
        assert_eq!(
            Reader { bytes: &[FIRST_SHAPE + 1] }.shape(&mut shapes),
            Some((Place::Cur, rest))
        );
        assert_eq!(Reader { bytes: &[FIRST_SHAPE + 2] }.shape(&mut shapes), None, "past the table");
        // Alternating shapes (a folder where every third message is unread) cost a byte.
        let mut alternating = many_files();
        for (n, file) in alternating.iter_mut().enumerate() {
            file.rest = Rest::new(if n % 3 == 0 { ":2," } else { ":2,S" }).expect("short");
        }
        let v2 = encode(&header(), &alternating).expect("in order");
        let v1 = encode_v1(&header(), &alternating);
        assert_eq!(v2.len() - v1.len(), alternating.len() - 2 + (1 + 1 + 3) + first + cur);
    }

    #[test]
    fn files_out_of_order_are_not_written() {
        let mut files = sample_files();
        files.swap(0, 1);
        assert_eq!(encode(&header(), &files), None);
        let mut files = sample_files();
        files[1].uid = 1;
        assert_eq!(encode(&header(), &files), None);
        let listing = FolderListing::decode(encode(&header(), &[]).expect("empty")).expect("reads");
        assert_eq!(listing.files(), []);
    }

    #[test]
    fn a_walk_passes_what_is_below_and_takes_what_is_next() {
        let mut walk = Walk::new(FolderListing::decode(sample()).expect("reads"));
        assert_eq!(walk.take(2), None, "1 comes first");
        let mut passed = Vec::new();
        walk.below(900_000, |file| passed.push(file.uid));
        assert_eq!(passed, [1, 2]);
        assert_eq!(walk.take(900_000).map(|file| file.uid), Some(900_000));
        walk.below(5, |_| panic!("nothing below 5 is left"));
        assert_eq!(walk.take(u32::MAX).map(|file| file.received), Some(i64::MIN));
        assert_eq!(walk.take(u32::MAX), None);
    }

    #[test]
    fn the_hash_is_fnv_1a_and_parts_are_separated() {
        assert_eq!(name_hash(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(name_hash(&[b"ab", b"c"]), name_hash(&[b"a", b"bc"]));
    }

    /// Files enough for several spills (about 26 bytes each).
    fn many_files() -> Vec<ListedFile> {
        (1..=40_000u32)
            .map(|uid| ListedFile {
                uid,
                received: 1_700_000_000 + i64::from(uid),
                size: u64::from(uid % 5000),
                virtual_size: u64::from(uid % 5000) + 40,
                base: name_hash(&[uid.to_string().as_bytes()]),
                name: name_hash(&[b"name", uid.to_string().as_bytes()]),
                place: Place::Cur,
                rest: Rest::new(":2,S").expect("short"),
            })
            .collect()
    }

    #[test]
    fn a_spilled_listing_is_the_same_bytes_and_leaves_no_file() {
        let files = many_files();
        let whole = encode(&header(), &files).expect("in order");
        assert!(whole.len() > 3 * SPILL_AT, "the test spills several times");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = Writer::spilling_to(dir.path().to_path_buf());
        for file in &files {
            writer.push(file);
        }
        assert!(writer.spill.is_some() && writer.files.len() < SPILL_AT, "bytes left memory");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0, "unnamed");
        let mut out = Vec::new();
        writer.write_to(&header(), &mut out).expect("written");
        assert_eq!(out, whole);
        let listing = FolderListing::decode(out).expect("reads back");
        assert_eq!(listing.files(), files);
    }

    #[test]
    fn a_spill_that_fails_writes_no_listing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = Writer::spilling_to(dir.path().join("gone"));
        for file in &many_files() {
            writer.push(file);
        }
        assert!(writer.files.is_empty(), "nothing held after the failure");
        assert!(writer.write_to(&header(), &mut Vec::new()).is_err());
        let mut discarding = Writer::discarding();
        discarding.push(&sample_files()[0]);
        assert!(discarding.write_to(&header(), &mut Vec::new()).is_err());
    }

    /// A listing read from its file is walked from the file again, a chunk at a time:
    /// changed in place after it was checked (not the way we replace it), the walk says it
    /// is not intact, whatever it gave. (Fails when the walk does not check the bytes it
    /// reads again.)
    #[test]
    fn a_listing_changed_in_place_after_its_check_is_not_intact() {
        let files = many_files();
        let bytes = encode(&header(), &files).expect("in order");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("listing");
        for at in [100, bytes.len() / 2, bytes.len() - 30] {
            fs::write(&path, &bytes).expect("write");
            let listing = FolderListing::read(File::open(&path).expect("open")).expect("checks");
            assert_eq!(listing.header, header());
            // Another program writes into the same file (a new UID step, same length).
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            let mut file = File::options().write(true).open(&path).expect("open to write");
            file.write_all(&damaged).expect("in place");
            let mut walk = Walk::new(listing);
            walk.below(u32::MAX, |_| {});
            let _ = walk.take(u32::MAX);
            assert!(!walk.intact(), "changed at {at}");
        }
        // Unchanged: intact, every file given, in chunks.
        fs::write(&path, &bytes).expect("write");
        let listing = FolderListing::read(File::open(&path).expect("open")).expect("checks");
        assert_eq!(listing.files(), files);
    }

    proptest! {
        /// Read in chunks of any size, a listing's records straddle them: what a walk gives
        /// is what was written, and it ends intact.
        #[test]
        fn any_chunk_size_reads_the_same_listing(chunk in 1usize..300, count in 0usize..200) {
            let files: Vec<ListedFile> = many_files().into_iter().take(count).collect();
            let bytes = encode(&header(), &files).expect("in order");
            let listing = FolderListing::decode_in_chunks(bytes, chunk).expect("reads");
            prop_assert_eq!(&listing.header, &header());
            prop_assert_eq!(listing.files(), files);
        }

        /// The fuzz target's check on stable: arbitrary bytes, and our own encoding with
        /// bytes changed (the fuzz entry also reads them with a valid checksum, so the
        /// parser proper sees them), never panic.
        #[test]
        fn no_bytes_make_the_reader_panic(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            fuzz(&data);
            let mut bytes = sample();
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
            steps in proptest::collection::vec(
                (1u32..1000, any::<i64>(), any::<u64>(), any::<u64>(), any::<u64>()),
                0..50,
            ),
        ) {
            let mut uid = 0u32;
            let files: Vec<ListedFile> = steps
                .into_iter()
                .map(|(step, received, size, virtual_size, base)| {
                    uid += step;
                    let rest = Rest::new(&":2,FS".repeat(uid as usize % 9)).expect("short");
                    let place = if rest.as_str().is_empty() { Place::New } else { Place::Cur };
                    let name = base.rotate_left(3);
                    ListedFile { uid, received, size, virtual_size, base, name, place, rest }
                })
                .collect();
            let header = Header {
                folder,
                uid_validity,
                token,
                keywords: "k".into(),
                cur: "c".into(),
                version: VERSION,
            };
            let listing = FolderListing::decode(encode(&header, &files).expect("in order"));
            prop_assert_eq!(listing.map(|l| (l.header.clone(), l.files())), Some((header, files)));
        }
    }
}
