//! Reading a mailbox's on-disk state, and changing it under `dovecot-uidlist.lock`.
//!
//! Every write to `dovecot-uidlist` (appends, rewrites, UID assignment for new files) and to
//! `dovecot-keywords` happens while holding the uidlist dotlock, exactly as Dovecot requires,
//! so Dovecot may serve the same mailbox while we write.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Store;
use super::filename;
use super::journal;
use super::keywords::KeywordTable;
use super::uidlist::streamed::{self, Bases, Streamed};
use super::uidlist::{RecordBuf, Uidlist};
use crate::error::{Error, IoContext, Result};
use crate::fs::beneath::{self, FileKind, Tree};
use crate::fs::dotlock::{DotLock, LockSettings};
use crate::fs::permissions::Permissions;
use crate::guid::Guid;
use crate::left_out::{self, LeftOut, LeftOutReason};

pub(crate) const UIDLIST: &str = "dovecot-uidlist";
pub(crate) const KEYWORDS: &str = "dovecot-keywords";

/// `new/` or `cur/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sub {
    New,
    Cur,
}

impl Sub {
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }
}

/// A message file found on disk, as a [`Scan`] holds it (the name borrowed from the
/// scan's arena of names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileRef<'a> {
    pub(crate) sub: Sub,
    /// The file's name.
    pub(crate) name: &'a str,
    /// The directory entry's own type: a symlink or a FIFO is numbered like any message
    /// file (Dovecot numbers every name), but only read through [`Tree`].
    pub(crate) kind: FileKind,
}

/// The files of `new/` and `cur/` by base name.
///
/// Every name is held once, in one arena (`names`: the names one after another), and the
/// files are a list of slots sorted by base name, found by binary search: no hash table
/// and no allocation a file. At 1 000 000 files a table of boxed names cost ~100 B a file
/// (2^21 buckets of 25 B, a 48 B allocation a name); this costs the name's bytes and a
/// 16 B slot (benches/RESULTS-memory.md, Round 8).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scan {
    names: String,
    /// Sorted by base name, one a base name (once [`Scan::sort`] ran).
    slots: Vec<Slot>,
}

/// Where a file's name is in [`Scan::names`], and what the directory said of it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    /// The name's length (a directory entry's name is at most 255 bytes on Linux).
    len: u16,
    /// The base name's length: the base name is the name's start.
    base_len: u16,
    sub: Sub,
    kind: FileKind,
}

impl Scan {
    /// An empty scan with room for `capacity` files.
    pub(crate) fn with_capacity(capacity: usize) -> Scan {
        Scan { names: String::new(), slots: Vec::with_capacity(capacity) }
    }

    fn name(&self, slot: &Slot) -> &str {
        let end = slot.start + usize::from(slot.len);
        self.names.get(slot.start..end).unwrap_or_default()
    }

    fn base_of(&self, slot: &Slot) -> &str {
        let end = slot.start + usize::from(slot.base_len);
        self.names.get(slot.start..end).unwrap_or_default()
    }

    fn file(&self, slot: &Slot) -> FileRef<'_> {
        FileRef { sub: slot.sub, name: self.name(slot), kind: slot.kind }
    }

    /// Adds a name at the end, unsorted (while the directories are read; [`Scan::sort`]
    /// orders them). `None` when the name is too long to be a directory entry's.
    fn push(&mut self, sub: Sub, name: &str, kind: FileKind) -> Option<()> {
        let len = u16::try_from(name.len()).ok()?;
        let base_len = u16::try_from(filename::base(name).len()).ok()?;
        let start = self.names.len();
        self.names.push_str(name);
        self.slots.push(Slot { start, len, base_len, sub, kind });
        Some(())
    }

    /// Sorts the slots by base name; slots of one base name keep the order they were
    /// pushed in (their names are in the arena in that order).
    fn sort(&mut self) {
        let mut slots = std::mem::take(&mut self.slots);
        slots.sort_unstable_by(|a, b| {
            self.base_of(a).cmp(self.base_of(b)).then(a.start.cmp(&b.start))
        });
        self.slots = slots;
    }

    /// The index of the slot with base name `base`.
    fn find(&self, base: &str) -> Result<usize, usize> {
        self.slots.binary_search_by(|slot| self.base_of(slot).cmp(base))
    }

    /// The file with base name `base`.
    pub(crate) fn get(&self, base: &str) -> Option<FileRef<'_>> {
        let index = self.find(base).ok()?;
        self.slots.get(index).map(|slot| self.file(slot))
    }

    /// True when a file has base name `base`.
    pub(crate) fn contains_key(&self, base: &str) -> bool {
        self.find(base).is_ok()
    }

    /// Adds the file `name` under its base name, replacing the file there (a flag change
    /// keeps the base name). False when the name is too long to be a directory entry's.
    pub(crate) fn insert(&mut self, sub: Sub, name: &str, kind: FileKind) -> bool {
        let (Ok(len), Ok(base_len)) =
            (u16::try_from(name.len()), u16::try_from(filename::base(name).len()))
        else {
            return false;
        };
        // The replaced name's bytes stay in the arena (a few renames a run).
        let slot = Slot { start: self.names.len(), len, base_len, sub, kind };
        let found = self.find(filename::base(name));
        self.names.push_str(name);
        match found {
            Ok(index) => self.slots[index] = slot,
            Err(index) => self.slots.insert(index, slot),
        }
        true
    }

    /// The base names, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|slot| self.base_of(slot))
    }

    /// The files, in the order of their base names.
    pub(crate) fn values(&self) -> impl Iterator<Item = FileRef<'_>> {
        self.slots.iter().map(|slot| self.file(slot))
    }

    /// Base names and their files, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, FileRef<'_>)> {
        self.slots.iter().map(|slot| (self.base_of(slot), self.file(slot)))
    }

    /// The number of files.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there is no file.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The files of `new/` and `cur/` as a mailbox's view holds them, against its uidlist.
///
/// A file whose base name a record has (nearly every one: the uidlist names every file it
/// numbered) is kept as what differs from the record: its directory, the entry's type and
/// the rest of its name after the base name (`:2,S`), one of a few such shapes shared by
/// every file that has it: 4 bytes a file. A [`Scan`] held every name whole, 41 bytes and
/// a 16-byte slot a file at 100 000 (benches/RESULTS-memory.md, Round 9 r9-names). The
/// files no record names (a delivery; every file when there is no uidlist) are a [`Scan`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Files {
    /// By record position: 0 when no file has the record's base name, else 1 + the index
    /// of the file's shape in `shapes`.
    by_record: Vec<u32>,
    /// Directory, entry type and the name after the base name, one of each seen.
    shapes: Vec<Shape>,
    /// The files whose base name no record has.
    others: Scan,
}

/// What a file whose base name is a record's has of its own.
#[derive(Debug, Clone)]
struct Shape {
    sub: Sub,
    kind: FileKind,
    /// The name after the base name (from the first `:`, or empty).
    rest: Box<str>,
}

/// A file of [`Files`], its name made whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileBuf {
    pub(crate) sub: Sub,
    pub(crate) name: String,
    pub(crate) kind: FileKind,
}

impl FileBuf {
    /// As a [`FileRef`].
    pub(crate) fn as_ref(&self) -> FileRef<'_> {
        FileRef { sub: self.sub, name: &self.name, kind: self.kind }
    }
}

impl Files {
    /// The files of `scan` against `list` (every file of a scan has a base name of its
    /// own: nothing is compared).
    pub(crate) fn from_scan(list: &Uidlist, scan: &Scan) -> Files {
        let mut builder = FilesBuilder::new(list.len());
        let mut others = Scan::with_capacity(0);
        for (base, file) in scan.iter() {
            match list.position_of_base(base) {
                Some(position) if builder.set(position, file).is_some() => {}
                _ => {
                    let _ = others.push(file.sub, file.name, file.kind);
                }
            }
        }
        others.sort();
        others.names.shrink_to_fit();
        others.slots.shrink_to_fit();
        let mut files = builder.files;
        files.others = others;
        files
    }

    /// The files whose base name no record of the uidlist they were read against had,
    /// made the files of `list`'s records that now have it: `list` is that uidlist with
    /// records appended (files numbered in memory, [`assign_in_memory`] of
    /// [`Self::others`]). The same files as [`Files::from_scan`] of `list` and every file
    /// ([`Self::into_scan`]) gives, without rebuilding and matching every name again: a
    /// changed re-run of a big read-only folder with a few deliveries numbers those alone.
    pub(crate) fn with_others_numbered(mut self, list: &Uidlist) -> Files {
        let others = std::mem::take(&mut self.others);
        let mut builder = FilesBuilder::resume(self, list.len());
        let mut rest = Scan::with_capacity(0);
        for (base, file) in others.iter() {
            match list.position_of_base(base) {
                Some(position) if builder.set(position, file).is_some() => {}
                _ => {
                    let _ = rest.push(file.sub, file.name, file.kind);
                }
            }
        }
        rest.sort();
        let mut files = builder.files;
        files.others = rest;
        files
    }

    /// Every file as a [`Scan`] (`list` the uidlist they were read against).
    pub(crate) fn into_scan(mut self, list: Option<&Uidlist>) -> Scan {
        let Some(list) = list.filter(|_| self.by_record.iter().any(|&id| id != 0)) else {
            return self.others;
        };
        let mut scan = std::mem::take(&mut self.others);
        for position in 0..self.by_record.len() {
            if let Some(file) = self.file(list, position) {
                let _ = scan.push(file.sub, &file.name, file.kind);
            }
        }
        scan.sort();
        scan
    }

    fn shape(&self, position: usize) -> Option<&Shape> {
        let id = *self.by_record.get(position)?;
        self.shapes.get(usize::try_from(id).ok()?.checked_sub(1)?)
    }

    /// The file of the record at `position` of `list` (the uidlist the files were read
    /// against).
    pub(crate) fn file(&self, list: &Uidlist, position: usize) -> Option<FileBuf> {
        self.file_with_base(list.get(position)?.base(), position)
    }

    /// [`Self::file`] of the record at `position`, whose base name is `base`.
    pub(crate) fn file_with_base(&self, base: &str, position: usize) -> Option<FileBuf> {
        let Some(shape) = self.shape(position) else {
            // No record's file; a file no record named cannot be one's either.
            return None;
        };
        let mut name = String::with_capacity(base.len() + shape.rest.len());
        name.push_str(base);
        name.push_str(&shape.rest);
        Some(FileBuf { sub: shape.sub, name, kind: shape.kind })
    }

    /// These files (of `new/` alone, read against `list`) with `cur/`'s files as a caller
    /// kept them ([`super::kept_cur`]): each made the file of its UID's record, its name
    /// that record's base name and the rest kept. `None` when one does not match: a UID
    /// `list` does not have, not above the last one, whose record's base name has another
    /// hash than the one kept, whose record already has a file (in `new/`), a rest that is
    /// not an info part, or files not given whole ([`KeptCurFiles::intact`]).
    ///
    /// [`KeptCurFiles::intact`]: super::kept_cur::KeptCurFiles::intact
    pub(crate) fn with_kept_cur(
        self,
        list: &Uidlist,
        kept: &mut dyn super::kept_cur::KeptCurFiles,
    ) -> Option<Files> {
        let mut builder = FilesBuilder::resume(self, list.len());
        let mut rest = String::new();
        let mut last = 0;
        let mut next_position = 0;
        // The shape of the last file, for the next with the same rest (most are).
        let mut last_shape: Option<(String, u32)> = None;
        loop {
            let (uid, base_hash) = {
                let Some(file) = kept.next_file() else { break };
                rest.clear();
                rest.push_str(file.rest);
                (file.uid, file.base_hash)
            };
            if uid <= last || !(rest.is_empty() || rest.starts_with(filename::INFO_SEP)) {
                return None;
            }
            last = uid;
            // Records are in ascending UID order in a parsed list (a file out of order is
            // broken), as the kept files are.
            let position = list.position_of_uid_from(next_position, uid)?;
            next_position = position + 1;
            let base = list.get(position)?.base();
            if kept.base_hash(base) != base_hash || builder.files.has_file(position) {
                return None;
            }
            match &last_shape {
                Some((shape_rest, id)) if *shape_rest == rest => builder.set_id(position, *id)?,
                _ => {
                    builder.set_shape(position, Sub::Cur, FileKind::File, &rest)?;
                    let id = *builder.files.by_record.get(position)?;
                    last_shape = Some((rest.clone(), id));
                }
            }
        }
        kept.intact().then_some(builder.files)
    }

    /// True when every file is a regular file that a record names.
    pub(crate) fn all_regular_and_numbered(&self) -> bool {
        self.others.is_empty() && self.shapes.iter().all(|shape| shape.kind == FileKind::File)
    }

    /// True when the record at `position` has a file.
    pub(crate) fn has_file(&self, position: usize) -> bool {
        self.shape(position).is_some()
    }

    /// The files whose base name no record has.
    pub(crate) fn others(&self) -> &Scan {
        &self.others
    }

    /// The positions of the records whose files are not regular files.
    pub(crate) fn not_regular_positions(&self) -> impl Iterator<Item = usize> + '_ {
        let any = self.shapes.iter().any(|shape| shape.kind != FileKind::File);
        let positions = self.by_record.iter().enumerate().filter(move |_| any);
        positions.filter_map(|(position, _)| {
            self.shape(position).filter(|shape| shape.kind != FileKind::File).map(|_| position)
        })
    }

    /// The files that are not regular files (by base name), of records and others.
    #[cfg(test)]
    pub(crate) fn not_regular(&self, list: &Uidlist) -> Vec<(String, FileBuf)> {
        let mut found = Vec::new();
        if self.shapes.iter().any(|shape| shape.kind != FileKind::File) {
            for (position, record) in list.records().enumerate() {
                if let Some(file) = self.file(list, position).filter(|f| f.kind != FileKind::File) {
                    found.push((record.base().to_string(), file));
                }
            }
        }
        for (base, file) in self.others.iter().filter(|(_, f)| f.kind != FileKind::File) {
            let file = FileBuf { sub: file.sub, name: file.name.to_string(), kind: file.kind };
            found.push((base.to_string(), file));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// The number of files.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_record.iter().filter(|&&id| id != 0).count() + self.others.len()
    }

    /// The bytes the files take on the heap (tests; a shape's name counted by its length).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        let shapes: usize = self.shapes.iter().map(|s| size_of::<Shape>() + s.rest.len()).sum();
        let others =
            self.others.names.capacity() + self.others.slots.capacity() * size_of::<Slot>();
        self.by_record.capacity() * 4 + shapes + others
    }
}

/// `cur/`'s files as a caller kept them ([`super::kept_cur`]), merged with a uidlist's
/// records as they are read line by line (both in ascending UID order): each kept file
/// made the file of its UID's record once that record's base name has the hash kept. The
/// checks of [`Files::with_kept_cur`], without a whole parse of the uidlist.
pub(crate) struct KeptMerge<'k> {
    kept: &'k mut dyn super::kept_cur::KeptCurFiles,
    /// The next kept file: its UID, base name hash and rest.
    next: Option<(u32, u64)>,
    rest: String,
    files: FilesBuilder,
    /// The shape of the last file set, for the next with the same rest.
    last_shape: Option<(String, u32)>,
    failed: bool,
}

impl<'k> KeptMerge<'k> {
    pub(crate) fn new(kept: &'k mut dyn super::kept_cur::KeptCurFiles) -> KeptMerge<'k> {
        let mut merge = KeptMerge {
            kept,
            next: None,
            rest: String::new(),
            files: FilesBuilder::new(0),
            last_shape: None,
            failed: false,
        };
        merge.pull(0);
        merge
    }

    /// The kept file after the one of UID `last`.
    fn pull(&mut self, last: u32) {
        let next = self.kept.next_file().map(|file| {
            self.rest.clear();
            self.rest.push_str(file.rest);
            (file.uid, file.base_hash)
        });
        let rest_ok = self.rest.is_empty() || self.rest.starts_with(filename::INFO_SEP);
        if next.is_some_and(|(uid, _)| uid <= last || !rest_ok) {
            self.failed = true;
        }
        self.next = next;
    }

    /// The record at `position`, of `uid` and base name `base`, as it is read.
    pub(crate) fn record(&mut self, position: usize, uid: u32, base: &str) {
        let Some((next_uid, base_hash)) = self.next.filter(|_| !self.failed) else { return };
        if next_uid < uid {
            // A kept UID the uidlist does not have.
            self.failed = true;
            return;
        }
        if next_uid > uid {
            return;
        }
        if self.kept.base_hash(base) != base_hash {
            self.failed = true;
            return;
        }
        if self.files.files.by_record.len() <= position {
            self.files.files.by_record.resize(position + 1, 0);
        }
        let set = match &self.last_shape {
            Some((rest, id)) if *rest == self.rest => self.files.set_id(position, *id),
            _ => self.files.set_shape(position, Sub::Cur, FileKind::File, &self.rest).and_then(
                |()| {
                    let id = *self.files.files.by_record.get(position)?;
                    self.last_shape = Some((self.rest.clone(), id));
                    Some(())
                },
            ),
        };
        self.failed |= set.is_none();
        self.pull(uid);
    }

    /// `cur/`'s files, once the uidlist's `records` were read; `None` when a kept file did
    /// not match, was not found, or the kept files were not all given.
    pub(crate) fn finish(mut self, records: usize) -> Option<Files> {
        if self.failed || self.next.is_some() || !self.kept.intact() {
            return None;
        }
        self.files.files.by_record.resize(records, 0);
        Some(self.files.files)
    }
}

/// [`Files`] as a directory is read: the shapes seen so far, by directory and type.
struct FilesBuilder {
    files: Files,
    ids: HashMap<(Sub, FileKind), HashMap<Box<str>, u32>>,
}

impl FilesBuilder {
    fn new(records: usize) -> FilesBuilder {
        let files = Files { by_record: vec![0; records], ..Files::default() };
        FilesBuilder { files, ids: HashMap::new() }
    }

    /// Goes on building `files`, for `records` records (at least as many as it has).
    fn resume(mut files: Files, records: usize) -> FilesBuilder {
        if files.by_record.len() < records {
            files.by_record.resize(records, 0);
        }
        let mut ids: HashMap<(Sub, FileKind), HashMap<Box<str>, u32>> = HashMap::new();
        for (index, shape) in files.shapes.iter().enumerate() {
            if let Ok(id) = u32::try_from(index + 1) {
                ids.entry((shape.sub, shape.kind)).or_default().insert(shape.rest.clone(), id);
            }
        }
        FilesBuilder { files, ids }
    }

    /// Makes `file` the record at `position`'s; `None` when its shape finds no number.
    fn set(&mut self, position: usize, file: FileRef<'_>) -> Option<()> {
        let rest = file.name.get(filename::base(file.name).len()..).unwrap_or("");
        self.set_shape(position, file.sub, file.kind, rest)
    }

    /// [`Self::set`] of a file in `sub` of type `kind` whose name after the base name is
    /// `rest`.
    fn set_shape(&mut self, position: usize, sub: Sub, kind: FileKind, rest: &str) -> Option<()> {
        let ids = self.ids.entry((sub, kind)).or_default();
        let id = if let Some(&id) = ids.get(rest) {
            id
        } else {
            let id = u32::try_from(self.files.shapes.len() + 1).ok()?;
            self.files.shapes.push(Shape { sub, kind, rest: rest.into() });
            ids.insert(rest.into(), id);
            id
        };
        self.set_id(position, id)
    }

    /// Gives the record at `position` the file of shape `id` (1 + its index in
    /// [`Files::shapes`]).
    fn set_id(&mut self, position: usize, id: u32) -> Option<()> {
        *self.files.by_record.get_mut(position)? = id;
        Some(())
    }

    /// Adds `file`, whose base name is that of the record at `position` of `list`, as
    /// [`Paths::keep_one_a_base`] would keep one file a base name when files are read in
    /// order: a `cur/` file wins over a `new/` one, then the first by name; a link of the
    /// file kept is silent. `Err((dropped's directory and name, kept name))` when the two
    /// are not links of one file (the loser is reported).
    fn add(
        &mut self,
        list: &Uidlist,
        position: usize,
        file: FileRef<'_>,
        dirs: &[(Sub, OwnedFd)],
    ) -> Result<(), ((Sub, String), String)> {
        let Some(kept) = self.files.file(list, position) else {
            // (`None` only with more shapes than a u32 numbers, never.)
            let _ = self.set(position, file);
            return Ok(());
        };
        let wins = kept.sub != file.sub || file.name < kept.name.as_str();
        if same_file(dirs, (kept.sub, &kept.name), (file.sub, file.name)) {
            if wins {
                let _ = self.set(position, file);
            }
            return Ok(());
        }
        if wins {
            let _ = self.set(position, file);
            Err(((kept.sub, kept.name), file.name.to_string()))
        } else {
            Err(((file.sub, file.name.to_string()), kept.name))
        }
    }
}

#[cfg(test)]
thread_local! {
    /// How many times this thread read a mailbox's directories (tests of the paths that
    /// must not).
    pub(crate) static DIRECTORY_SCANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// How many times this thread read and parsed a whole uidlist (tests of the paths that
    /// must not).
    pub(crate) static UIDLIST_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Paths of one mailbox.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// The store's root, below which everything is read through [`Tree`].
    pub(crate) root: PathBuf,
    /// The mailbox's directory (the root, or a directory below it).
    pub(crate) dir: PathBuf,
}

impl Paths {
    pub(crate) fn tree(&self) -> Tree<'_> {
        Tree::new(&self.root)
    }
    /// `path` (below the root) relative to the root.
    pub(crate) fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        self.tree().relative(path)
    }
    /// Reads a whole file of the store (below the root, through [`Tree`]); `None` when it
    /// does not exist.
    pub(crate) fn read_optional(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let relative = self.relative(path);
        self.tree()
            .read_optional(relative)
            .map_err(|refusal| left_out::error(refusal, &self.root, relative, "read"))
    }
    pub(crate) fn uidlist(&self) -> PathBuf {
        self.dir.join(UIDLIST)
    }
    pub(crate) fn keywords(&self) -> PathBuf {
        self.dir.join(KEYWORDS)
    }
    pub(crate) fn sub(&self, sub: Sub) -> PathBuf {
        self.dir.join(sub.dir_name())
    }
    pub(crate) fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }
    pub(crate) fn file(&self, file: &FileRef<'_>) -> PathBuf {
        self.sub(file.sub).join(file.name)
    }

    /// Reads and parses the uidlist; `None` when missing or empty. A broken file is an
    /// error: Dovecot would delete it and renumber every message from its index cache, which
    /// we cannot read, so we refuse to guess.
    pub(crate) fn read_uidlist(&self) -> Result<Option<Uidlist>> {
        #[cfg(test)]
        UIDLIST_READS.set(UIDLIST_READS.get() + 1);
        let path = self.uidlist();
        let Some(data) = self.read_optional(&path)? else { return Ok(None) };
        Uidlist::parse_owned(data).map_err(|broken| Error::Corrupt {
            path,
            line: broken.line,
            reason: broken.reason,
        })
    }

    /// Reads the uidlist line by line for a view ([`Streamed`]): the file kept open, its
    /// text not kept. `None` when missing or empty; [`StreamedRead::Whole`] when only the
    /// whole parse may answer (see [`super::uidlist::streamed`]), which
    /// [`Self::read_uidlist`] then does. A broken file is an error, as there.
    pub(crate) fn read_uidlist_streamed(&self) -> Result<Option<StreamedRead>> {
        self.read_uidlist_streamed_with(&mut |_, _, _| {})
    }

    /// [`Self::read_uidlist_streamed`], each record's position, UID and base name given
    /// to `each` as its line is read.
    pub(crate) fn read_uidlist_streamed_with(
        &self,
        each: &mut dyn FnMut(usize, u32, &str),
    ) -> Result<Option<StreamedRead>> {
        #[cfg(test)]
        UIDLIST_READS.set(UIDLIST_READS.get() + 1);
        let path = self.uidlist();
        let Some(file) = self.open_uidlist(&path, "read")? else { return Ok(None) };
        let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0x7669_6577);
        match Streamed::read_with(file, streamed::CHUNK, seed, each) {
            Ok(None) => Ok(None),
            Ok(Some(streamed::Read::Streamed(list, bases))) => {
                Ok(Some(StreamedRead::Streamed(list, bases)))
            }
            Ok(Some(streamed::Read::Whole)) => Ok(Some(StreamedRead::Whole)),
            Err(streamed::ReadError::Io(error)) => Err(Error::io("read", path, error)),
            Err(streamed::ReadError::Broken(broken)) => {
                Err(Error::Corrupt { path, line: broken.line, reason: broken.reason })
            }
        }
    }

    /// The uidlist at `path` opened beneath the root; `None` when there is none. A refusal
    /// is the error of `verb` on it.
    fn open_uidlist(&self, path: &Path, verb: &'static str) -> Result<Option<fs::File>> {
        let relative = self.relative(path);
        match self.tree().open_file(relative) {
            Ok(file) => Ok(Some(file)),
            Err(refusal) if refusal.is_not_found() => Ok(None),
            Err(refusal) => Err(left_out::error(refusal, &self.root, relative, verb)),
        }
    }

    /// Reads only the uidlist's header (UIDVALIDITY, next UID, GUID), not its records.
    pub(crate) fn read_uidlist_header(&self) -> Result<Option<Uidlist>> {
        use std::io::{BufRead, BufReader, Read};
        let path = self.uidlist();
        let Some(file) = self.open_uidlist(&path, "open")? else { return Ok(None) };
        let mut line = Vec::new();
        BufReader::with_capacity(4096, file.take(64 * 1024))
            .read_until(b'\n', &mut line)
            .ctx("read", &path)?;
        Uidlist::parse(&line).map_err(|broken| Error::Corrupt {
            path,
            line: broken.line,
            reason: broken.reason,
        })
    }

    pub(crate) fn read_keywords(&self) -> Result<KeywordTable> {
        Ok(self
            .read_optional(&self.keywords())?
            .map(|d| KeywordTable::parse(&d))
            .unwrap_or_default())
    }

    /// Lists `cur/` and `new/`; see [`Self::scan_reporting`].
    pub(crate) fn scan(&self) -> Result<Scan> {
        Ok(self.scan_reporting(0)?.0)
    }

    /// Lists `cur/` and `new/` as Dovecot's sync does: every name not starting with `.` is
    /// a message file, whatever its type (the caller reads only regular files). When a base
    /// name is in both, the `cur/` file wins (Dovecot moves new → cur; a crash can leave
    /// both as links of one file).
    ///
    /// Left out, with the reason (their mailbox is the caller's to fill in): a `cur/` or
    /// `new/` that cannot be opened beneath the root (a symlink leaving it, not a
    /// directory); names that are not UTF-8 or have an empty base name; a second file with
    /// the same base name that is not a link of the first (Dovecot gives it a new name).
    ///
    /// `expected` is how many files the caller expects (the uidlist's records): the table
    /// is made that big at once, not doubled on the way there.
    pub(crate) fn scan_reporting(&self, expected: usize) -> Result<(Scan, Vec<LeftOut>)> {
        self.scan_in(&[Sub::New, Sub::Cur], None, expected)
    }

    /// [`Self::scan`] of only the files whose base name is in `bases`: one pass over the
    /// directories without keeping every name, for changing a few messages of a big
    /// mailbox (a re-run's flag changes and expunges).
    pub(crate) fn scan_bases(&self, bases: &HashSet<&str>) -> Result<Scan> {
        Ok(self.scan_in(&[Sub::New, Sub::Cur], Some(bases), 0)?.0)
    }

    /// [`Self::scan`] of `new/` alone: the files no sync has numbered yet (Dovecot moves a
    /// file to `cur/` when it numbers it).
    pub(crate) fn scan_new(&self) -> Result<Scan> {
        Ok(self.scan_in(&[Sub::New], None, 0)?.0)
    }

    fn scan_in(
        &self,
        subs: &[Sub],
        wanted: Option<&HashSet<&str>>,
        expected: usize,
    ) -> Result<(Scan, Vec<LeftOut>)> {
        let (files, left_out) = self.scan_against(subs, wanted, expected, None)?;
        Ok((files.others, left_out))
    }

    /// [`Self::scan_reporting`] as a mailbox's view holds it: the files whose base name a
    /// record of `known` has are kept as what differs from the record ([`Files`]), the
    /// others as a [`Scan`]. The same files are kept and the same ones reported.
    pub(crate) fn scan_files(&self, known: Option<&Uidlist>) -> Result<(Files, Vec<LeftOut>)> {
        self.scan_against(&[Sub::New, Sub::Cur], None, 0, known)
    }

    /// [`Self::scan_files`] of `new/` alone (`cur/`'s files come from elsewhere:
    /// [`Files::with_kept_cur`]).
    pub(crate) fn scan_new_files(&self, known: &Uidlist) -> Result<(Files, Vec<LeftOut>)> {
        self.scan_against(&[Sub::New], None, 0, Some(known))
    }

    /// True when `new/` changed after the uidlist was last written and holds a file (not
    /// a dot file): a delivery no record names yet, as a rule. A writer that numbers what
    /// it puts in `new/` (Dovecot's saves and ours put mail without flags there) renames
    /// the file in before it writes the uidlist, so numbered files leave `new/` older.
    /// Reads `new/` only up to its first such entry; what cannot be read or stamped
    /// counts as none (the scan that follows decides and reports).
    pub(crate) fn has_unnumbered_new_files(&self) -> bool {
        let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
        match (modified(&self.sub(Sub::New)), modified(&self.uidlist())) {
            (Some(new), Some(uidlist)) if new > uidlist => {}
            _ => return false,
        }
        let relative = self.relative(&self.sub(Sub::New)).to_path_buf();
        let Ok(Some(dir)) = self.open_sub(Sub::New, &relative, &mut |_, _| {}) else {
            return false;
        };
        let mut found = false;
        let _ = beneath::for_each_entry(dir, |entry| {
            found = !entry.name.as_encoded_bytes().starts_with(b".");
            !found
        });
        found
    }

    /// [`Self::scan_files`] against a uidlist read line by line: each file's base name
    /// found by its hash in `bases` (`records` of them). `None` when that cannot decide
    /// as [`Self::scan_files`] would (a file whose base name no record has, which needs a
    /// sync; two files of one record, or whose hashes meet: duplicates to compare), and
    /// the caller reads the folder as before. Otherwise the same files are kept and the
    /// same ones reported, without a name held.
    pub(crate) fn scan_hashed(
        &self,
        records: usize,
        bases: &Bases,
    ) -> Result<Option<(Files, Vec<LeftOut>)>> {
        self.scan_hashed_into(FilesBuilder::new(records), &[Sub::New, Sub::Cur], bases)
    }

    /// [`Self::scan_hashed`] of `new/` alone into `files` (`cur/`'s, kept by the caller:
    /// [`KeptMerge`]): `None` also when a file of `new/` is a record's that has one.
    pub(crate) fn scan_new_hashed(
        &self,
        files: Files,
        records: usize,
        bases: &Bases,
    ) -> Result<Option<(Files, Vec<LeftOut>)>> {
        self.scan_hashed_into(FilesBuilder::resume(files, records), &[Sub::New], bases)
    }

    fn scan_hashed_into(
        &self,
        mut files: FilesBuilder,
        subs: &[Sub],
        bases: &Bases,
    ) -> Result<Option<(Files, Vec<LeftOut>)>> {
        #[cfg(test)]
        DIRECTORY_SCANS.set(DIRECTORY_SCANS.get() + 1);
        let mut left_out = Vec::new();
        let mut report =
            |path: PathBuf, reason| left_out.push(LeftOut { mailbox: None, path, reason });
        let mut decided = true;
        for &sub in subs {
            let relative = self.relative(&self.sub(sub)).to_path_buf();
            let Some(dir) = self.open_sub(sub, &relative, &mut report)? else { continue };
            beneath::for_each_entry(dir, |entry| {
                let Some(name) = message_name(entry.name, &relative, &mut report) else {
                    return true;
                };
                let base = filename::base(&name);
                if base.is_empty() {
                    report(relative.join(&name), LeftOutReason::EmptyBaseName);
                    return true;
                }
                let file = FileRef { sub, name: &name, kind: entry.kind };
                match bases.find(bases.hash(base)) {
                    Some(position) if !files.files.has_file(position) => {
                        decided = files.set(position, file).is_some();
                    }
                    _ => decided = false,
                }
                decided
            })
            .ctx("read directory", &self.sub(sub))?;
            if !decided {
                return Ok(None);
            }
        }
        Ok(Some((files.files, left_out)))
    }

    /// `sub` (at `relative` below the root) opened for listing; `None` when it is missing,
    /// or refused and reported to `report` as left out.
    fn open_sub(
        &self,
        sub: Sub,
        relative: &Path,
        report: &mut impl FnMut(PathBuf, LeftOutReason),
    ) -> Result<Option<OwnedFd>> {
        match self.tree().open_dir(relative) {
            Ok(dir) => Ok(Some(dir)),
            Err(refusal) if refusal.is_not_found() => Ok(None),
            Err(refusal) => match left_out::reason(refusal, relative, FileKind::Directory) {
                Ok(reason) => {
                    report(relative.to_path_buf(), reason);
                    Ok(None)
                }
                Err(error) => Err(Error::io("open directory", self.sub(sub), error)),
            },
        }
    }

    fn scan_against(
        &self,
        subs: &[Sub],
        wanted: Option<&HashSet<&str>>,
        expected: usize,
        known: Option<&Uidlist>,
    ) -> Result<(Files, Vec<LeftOut>)> {
        #[cfg(test)]
        DIRECTORY_SCANS.set(DIRECTORY_SCANS.get() + 1);
        let mut scan = Scan::with_capacity(expected);
        let mut files = FilesBuilder::new(known.map_or(0, Uidlist::len));
        let mut left_out = Vec::new();
        let mut report =
            |path: PathBuf, reason| left_out.push(LeftOut { mailbox: None, path, reason });
        // cur/ last, so that its files replace those of new/ with the same base name.
        let mut dirs = Vec::with_capacity(2);
        for &sub in subs {
            let relative = self.relative(&self.sub(sub)).to_path_buf();
            let Some(dir) = self.open_sub(sub, &relative, &mut report)? else { continue };
            let lookup = dir.try_clone().ctx("open directory", &self.sub(sub))?;
            // Opened before the directory is read: a known file is compared with the one
            // kept for its record as it is read.
            dirs.push((sub, lookup));
            let dirs = dirs.as_slice();
            // Straight into the arena: no list of the directory's entries.
            beneath::for_each_entry(dir, |entry| {
                let Some(name) = message_name(entry.name, &relative, &mut report) else {
                    return true;
                };
                let base = filename::base(&name);
                if wanted.is_some_and(|wanted| !wanted.contains(base)) {
                    return true;
                }
                if base.is_empty() {
                    report(relative.join(&name), LeftOutReason::EmptyBaseName);
                    return true;
                }
                if let Some((list, position)) =
                    known.and_then(|list| Some((list, list.position_of_base(base)?)))
                {
                    let file = FileRef { sub, name: &name, kind: entry.kind };
                    if let Err((dropped, kept)) = files.add(list, position, file, dirs) {
                        let dropped_path = self.relative(&self.sub(dropped.0)).join(dropped.1);
                        report(dropped_path, LeftOutReason::DuplicateBaseName { kept });
                    }
                    return true;
                }
                if scan.push(sub, &name, entry.kind).is_none() {
                    let error = "a name longer than a directory entry's".to_string();
                    report(relative.join(&name), LeftOutReason::Unreadable { error });
                }
                true
            })
            .ctx("read directory", &self.sub(sub))?;
        }
        scan.sort();
        self.keep_one_a_base(&mut scan, &dirs, &mut report);
        scan.names.shrink_to_fit();
        scan.slots.shrink_to_fit();
        let mut files = files.files;
        files.others = scan;
        Ok((files, left_out))
    }

    /// Keeps one file a base name in the sorted `scan`: of files with one base name (in
    /// the order they were read: `new/` first), a `cur/` file wins over a `new/` one, then
    /// the first by name, as each is compared with the file kept so far; one that is not
    /// a link of the file it lost to is reported (a link of it is the same message).
    fn keep_one_a_base(
        &self,
        scan: &mut Scan,
        dirs: &[(Sub, OwnedFd)],
        report: &mut impl FnMut(PathBuf, LeftOutReason),
    ) {
        let mut slots = std::mem::take(&mut scan.slots);
        let mut kept_count = 0;
        let mut index = 0;
        while let Some(&first) = slots.get(index) {
            let base = scan.base_of(&first);
            let mut kept = first;
            index += 1;
            while let Some(&file) = slots.get(index).filter(|slot| scan.base_of(slot) == base) {
                index += 1;
                let (name, previous) = (scan.name(&file), scan.name(&kept));
                let wins = kept.sub != file.sub || name < previous;
                if same_file(dirs, (kept.sub, previous), (file.sub, name)) {
                    if wins {
                        kept = file;
                    }
                    continue;
                }
                let (winner, dropped) = if wins { (file, kept) } else { (kept, file) };
                kept = winner;
                let dropped_path = self.relative(&self.sub(dropped.sub)).join(scan.name(&dropped));
                let kept_name = scan.name(&winner).to_string();
                report(dropped_path, LeftOutReason::DuplicateBaseName { kept: kept_name });
            }
            if let Some(slot) = slots.get_mut(kept_count) {
                *slot = kept;
            }
            kept_count += 1;
        }
        slots.truncate(kept_count);
        scan.slots = slots;
    }
}

/// True when two entries with one base name are links of the same file (Dovecot then
/// removes one of them; nothing is lost).
fn same_file(dirs: &[(Sub, OwnedFd)], a: (Sub, &str), b: (Sub, &str)) -> bool {
    let status = |(sub, name): (Sub, &str)| {
        let (_, dir) = dirs.iter().find(|(s, _)| *s == sub)?;
        let status = beneath::lstat_at(dir, name.as_ref()).ok()?;
        Some((status.st_dev, status.st_ino))
    };
    matches!((status(a), status(b)), (Some(a), Some(b)) if a == b)
}

/// What [`Paths::read_uidlist_streamed`] read.
#[derive(Debug)]
pub(crate) enum StreamedRead {
    /// Every record, and the hashes of their base names.
    Streamed(Box<Streamed<fs::File>>, Bases),
    /// Only the whole parse may answer.
    Whole,
}

/// The uidlist while the lock is held.
#[derive(Debug)]
pub(crate) struct Locked {
    pub(crate) paths: Paths,
    pub(crate) uidlist: Uidlist,
    pub(crate) fsync: bool,
    /// What files created under the lock get.
    pub(crate) permissions: Permissions,
    /// The list is not the one this handle kept from its last lock (it was read, or taken
    /// from [`super::known`]): records someone else appended since may be in it.
    pub(crate) fresh: bool,
}

impl Locked {
    /// Appends whole record lines in one write, first cutting off a torn last line that a
    /// crash may have left (Dovecot ignores it, but appending after it would corrupt the
    /// next line).
    pub(crate) fn append<'r>(
        &mut self,
        records: impl Iterator<Item = &'r RecordBuf> + Clone,
    ) -> Result<()> {
        if records.clone().next().is_none() {
            return Ok(());
        }
        let path = self.paths.uidlist();
        let length: usize = records.clone().map(|r| r.filename.len() + 32).sum();
        let mut text = String::with_capacity(length);
        for record in records.clone() {
            super::uidlist::push_record_line(&mut text, record);
        }
        let mut file = OpenOptions::new().write(true).open(&path).ctx("open", &path)?;
        let len = file.metadata().ctx("stat", &path)?.len();
        let complete = self.uidlist.complete_len as u64;
        if len > complete {
            file.set_len(complete).ctx("truncate torn line of", &path)?;
        }
        file.seek(SeekFrom::Start(complete)).ctx("seek", &path)?;
        file.write_all(text.as_bytes()).ctx("append to", &path)?;
        if self.fsync {
            file.sync_data().ctx("fdatasync", &path)?;
        }
        self.uidlist.complete_len += text.len();
        for record in records {
            self.uidlist.push(record);
        }
        Ok(())
    }

    /// Reads the whole uidlist again when only its tail was kept (a writer's between its
    /// commits, [`Uidlist::forget_records`]): for what needs every record, a rewrite or a
    /// lookup by UID or base name. Call it before changing the list. Under the lock, and
    /// with the file as our last commit left it, the read finds what was let go.
    pub(crate) fn make_whole(&mut self) -> Result<()> {
        if self.uidlist.is_whole() {
            return Ok(());
        }
        let path = self.paths.uidlist();
        self.uidlist = self
            .paths
            .read_uidlist()?
            .ok_or_else(|| Error::io("read", &path, std::io::Error::from(ErrorKind::NotFound)))?;
        Ok(())
    }

    /// Rewrites the whole uidlist (`dovecot-uidlist.tmp` then rename, as Dovecot's
    /// `maildir_uidlist_recreate`). The list must be whole ([`Self::make_whole`]).
    pub(crate) fn rewrite(&mut self) -> Result<()> {
        if !self.uidlist.is_whole() {
            // A list of the records since the last commit would lose every other one.
            debug_assert!(false, "a rewrite of a uidlist whose records were let go");
            let error = std::io::Error::other("only the uidlist's last records are known");
            return Err(Error::io("rewrite", self.paths.uidlist(), error));
        }
        let bytes = self.uidlist.to_bytes();
        crate::fs::replace_file(
            &self.paths.uidlist(),
            &self.paths.dir.join("dovecot-uidlist.tmp"),
            &bytes,
            self.fsync,
            &self.permissions,
        )?;
        self.uidlist.version = 3;
        self.uidlist.complete_len = bytes.len();
        self.uidlist.wants_rewrite = false;
        Ok(())
    }

    /// Gives UIDs to files the uidlist does not know, in Dovecot's order (file-name sort,
    /// from the next UID up), and appends them.
    pub(crate) fn assign_new_files(&mut self, scan: &Scan) -> Result<()> {
        self.make_whole()?;
        // The uidlist's own index of base names: no set of 100 000 names per sync.
        let mut new: Vec<&str> = scan.keys().filter(|b| !self.uidlist.contains_base(b)).collect();
        if new.is_empty() {
            return Ok(());
        }
        new.sort_by(|a, b| filename::sort_cmp(a, b).then_with(|| a.cmp(b)));
        let records: Vec<RecordBuf> = (self.uidlist.next_uid()..u32::MAX)
            .zip(new)
            .map(|(uid, base)| RecordBuf {
                uid,
                extensions: Vec::new(),
                filename: base.to_string(),
            })
            .collect();
        self.append(records.iter())
    }

    /// Writes `dovecot-keywords` as Dovecot does: the lock file is the temp file, and its
    /// mtime must grow on every change because Dovecot re-reads the file only when the
    /// mtime (in seconds) changes.
    pub(crate) fn write_keywords(&self, table: &KeywordTable) -> Result<()> {
        let target = self.paths.keywords();
        let old_mtime =
            fs::metadata(&target).ok().and_then(|m| m.modified().ok()).map(crate::fs::unix_seconds);
        // The uidlist lock protects the keywords file; a leftover lock is stale by definition.
        crate::fs::remove_if_exists(&crate::fs::dotlock::lock_path_for(&target))?;
        let lock = DotLock::acquire(
            &target,
            LockSettings { timeout: Duration::from_secs(2), ..LockSettings::UIDLIST },
            &self.permissions,
        )?;
        let mtime = old_mtime.map_or(crate::fs::now().0, |old| crate::fs::now().0.max(old + 1));
        lock.replace_target(
            &target,
            &table.to_bytes(),
            self.fsync,
            Some(crate::fs::system_time(mtime)),
        )
    }
}

/// Runs `f` holding `dovecot-uidlist.lock`, with a fresh uidlist (created with a new
/// UIDVALIDITY and GUID if missing) and any interrupted commit of ours completed first.
/// `Err(ReadOnly)` when the store was opened read-only.
pub(crate) fn writable(store: &Store) -> Result<()> {
    if store.options.read_only {
        return Err(Error::ReadOnly { path: store.location.root().to_path_buf() });
    }
    Ok(())
}

pub(crate) fn locked<T>(
    store: &Store,
    paths: &Paths,
    f: impl FnOnce(&mut Locked) -> Result<T>,
) -> Result<T> {
    // Its callers take every record (they rewrite or renumber): whole, also when the
    // file is the one `known` records.
    locked_cached(store, paths, &mut None, |locked| {
        locked.make_whole()?;
        f(locked)
    })
}

/// Identity of the uidlist file as we last left it. Dovecot (and we) only ever append to the
/// file or replace it by rename, so any change by anyone moves the size, the inode or the
/// change time; an unchanged stamp means the file still says what our copy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    /// The size of the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// As text, for [`super::known`]: the numbers separated by spaces.
    pub(crate) fn encode(&self) -> String {
        let Stamp { device, inode, len, modified, changed } = self;
        format!("{device} {inode} {len} {} {} {} {}", modified.0, modified.1, changed.0, changed.1)
    }

    /// What [`Self::encode`] wrote.
    pub(crate) fn decode(text: &str) -> Option<Stamp> {
        let mut fields = text.split(' ');
        let mut next = || fields.next();
        let stamp = Stamp {
            device: next()?.parse().ok()?,
            inode: next()?.parse().ok()?,
            len: next()?.parse().ok()?,
            modified: (next()?.parse().ok()?, next()?.parse().ok()?),
            changed: (next()?.parse().ok()?, next()?.parse().ok()?),
        };
        next().is_none().then_some(stamp)
    }

    pub(crate) fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let metadata = fs::metadata(path).ok()?;
        Some(Stamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }
}

/// The uidlist as it was when we released the lock, and the file's stamp then. After a
/// commit of saves it holds only the list's tail ([`Uidlist::forget_records`]): what the
/// next commit's append needs, not every record of the file; whoever needs them reads
/// them again ([`Locked::make_whole`]).
#[derive(Debug, Clone)]
pub(crate) struct CachedUidlist {
    stamp: Stamp,
    pub(crate) uidlist: Uidlist,
}

/// [`locked`] that reuses the uidlist kept in `cache` when the file has not changed since
/// (instead of reading and parsing it again: a commit every 100 saves into a mailbox of
/// 100 000 messages otherwise parses 50 million lines in all), and leaves the new one there.
pub(crate) fn locked_cached<T>(
    store: &Store,
    paths: &Paths,
    cache: &mut Option<CachedUidlist>,
    f: impl FnOnce(&mut Locked) -> Result<T>,
) -> Result<T> {
    writable(store)?;
    let permissions = store.permissions()?;
    let lock = DotLock::acquire(&paths.uidlist(), store.lock_settings(), permissions)?;
    let fsync = store.fsync();
    let path = paths.uidlist();
    let now = Stamp::of(&path);
    let cached = cache.take().filter(|cached| now == Some(cached.stamp));
    // The stamp `dsync-rs-uidlist-known` holds, when known: recorded again only when the
    // file's moved. A kept list's was recorded when it was kept.
    let mut recorded = cached.as_ref().map(|cached| cached.stamp);
    let result = (|| {
        let fresh = cached.is_none();
        let uidlist = if let Some(cached) = cached {
            cached.uidlist
        } else if let Some(uidlist) = super::known::open(paths, now) {
            recorded = now;
            uidlist
        } else if let Some(uidlist) = paths.read_uidlist()? {
            uidlist
        } else {
            let uid_validity = crate::uidvalidity::next(store.location.root(), permissions)?;
            let uidlist = Uidlist::new(uid_validity, 1, Guid::generate());
            let mut locked = Locked {
                paths: paths.clone(),
                uidlist,
                fsync,
                permissions: permissions.clone(),
                fresh: true,
            };
            locked.rewrite()?;
            locked.uidlist
        };
        let permissions = permissions.clone();
        let mut locked = Locked { paths: paths.clone(), uidlist, fsync, permissions, fresh };
        journal::replay(&mut locked)?;
        store.clear_tmp_once(&paths.dir);
        if locked.uidlist.wants_rewrite {
            // Dovecot upgrades old versions, adds a missing GUID and drops repaired fields.
            if locked.uidlist.guid.is_none() {
                locked.uidlist.guid = Some(Guid::generate());
            }
            locked.rewrite()?;
        }
        let value = f(&mut locked)?;
        Ok((value, locked.uidlist))
    })();
    let result = result.map(|(value, uidlist)| {
        // Stamped while still locked: nobody else can have changed the file yet.
        let stamp = Stamp::of(&path);
        if let Some(stamp) = stamp.filter(|&stamp| Some(stamp) != recorded) {
            super::known::record(paths, stamp, &uidlist, permissions);
        }
        *cache = stamp.map(|stamp| CachedUidlist { stamp, uidlist });
        value
    });
    let released = lock.release();
    let value = result?;
    released?;
    Ok(value)
}

/// What a sync would record, computed without writing (for stores we must not or cannot
/// write): an interrupted commit of ours is completed from the journal, then unknown files
/// are numbered in Dovecot's order. A missing uidlist gets the current time as UIDVALIDITY
/// (Dovecot's own fallback when it cannot use `dovecot-uidvalidity`).
pub(crate) fn assign_in_memory(paths: &Paths, uidlist: Option<Uidlist>, scan: &Scan) -> Uidlist {
    let mut uidlist = uidlist.unwrap_or_else(|| {
        let uid_validity = u32::try_from(crate::fs::now().0).unwrap_or(1).max(1);
        Uidlist::new(uid_validity, 1, Guid::generate())
    });
    if let Ok(Some(data)) = paths.read_optional(&paths.dir.join(journal::JOURNAL)) {
        for entry in journal::parse(&data) {
            let base = &entry.record.filename;
            if !uidlist.contains_base(base)
                && scan.contains_key(base)
                && entry.record.uid >= uidlist.next_uid()
            {
                uidlist.push(&entry.record);
            }
        }
    }
    let mut new: Vec<&str> = scan.keys().filter(|b| !uidlist.contains_base(b)).collect();
    new.sort_by(|a, b| filename::sort_cmp(a, b).then_with(|| a.cmp(b)));
    let first = uidlist.next_uid();
    for (uid, base) in (first..u32::MAX).zip(new) {
        uidlist.push(&RecordBuf { uid, extensions: Vec::new(), filename: base.to_string() });
    }
    uidlist
}

/// True for errors that mean "this store is read-only for us".
pub(crate) fn is_read_only(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. }
        if matches!(source.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem))
}

/// Creates `dir/{cur,new,tmp}` (missing ones only).
pub(crate) fn create_subdirs(dir: &Path, permissions: &Permissions) -> Result<()> {
    for sub in super::layout::SUBDIRS {
        permissions.create_dir(&dir.join(sub))?;
    }
    Ok(())
}

/// The name of a directory entry that may be a message file: `None` for a dot file and
/// for a name that is not UTF-8 (reported to `report` as left out).
fn message_name(
    name: OsString,
    relative: &Path,
    report: &mut impl FnMut(PathBuf, LeftOutReason),
) -> Option<String> {
    if name.as_encoded_bytes().starts_with(b".") {
        return None;
    }
    match name.into_string() {
        Ok(name) => Some(name),
        Err(name) => {
            report(relative.join(name), LeftOutReason::NameNotUtf8);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::fs;

    use super::{FileBuf, FileRef, Files, Paths, Scan, StreamedRead, Sub, UIDLIST, Uidlist};
    use crate::fs::beneath::FileKind;
    use crate::left_out::{LeftOut, LeftOutReason};
    use crate::{Location, MailboxName, Maildir, SaveOptions};

    fn file(sub: Sub, name: &str) -> FileRef<'_> {
        FileRef { sub, name, kind: FileKind::File }
    }

    #[test]
    fn a_scan_finds_files_by_the_base_of_their_names() {
        let mut scan = Scan::with_capacity(4);
        assert!(scan.insert(Sub::New, "1.M1P1.a", FileKind::File));
        assert!(scan.insert(Sub::Cur, "2.M1P1.b:2,S", FileKind::File));
        assert_eq!(scan.get("2.M1P1.b"), Some(file(Sub::Cur, "2.M1P1.b:2,S")));
        assert!(scan.contains_key("1.M1P1.a") && !scan.contains_key("2.M1P1.b:2,S"));
        // A flag change keeps the base: the file is replaced, not added.
        assert!(scan.insert(Sub::Cur, "2.M1P1.b:2,FS", FileKind::File));
        assert_eq!(scan.get("2.M1P1.b"), Some(file(Sub::Cur, "2.M1P1.b:2,FS")));
        assert_eq!(scan.keys().collect::<Vec<_>>(), ["1.M1P1.a", "2.M1P1.b"]);
        let pairs: Vec<(&str, &str)> = scan.iter().map(|(base, file)| (base, file.name)).collect();
        assert_eq!(pairs, [("1.M1P1.a", "1.M1P1.a"), ("2.M1P1.b", "2.M1P1.b:2,FS")]);
        assert_eq!((scan.values().count(), scan.len()), (2, 2));
        // Not a directory entry's name: refused, nothing changed.
        assert!(!scan.insert(Sub::Cur, &"x".repeat(70_000), FileKind::File));
        assert_eq!(scan.len(), 2);
    }

    proptest::proptest! {
        /// A scan filled while reading (pushed in any order, then sorted) and changed
        /// afterwards (inserts) finds what a map by base name holds: the first name
        /// pushed a base (the caller keeps one a base), then the last inserted.
        #[test]
        fn a_scan_is_a_map_by_base_name(
            pushed in proptest::collection::vec((0u16..300, 0u8..3, proptest::bool::ANY), 0..200),
            inserted in proptest::collection::vec((0u16..400, 0u8..3, proptest::bool::ANY), 0..40),
        ) {
            // Base names that are the start of others (`…host`, `…host1`): a base name
            // sorts before a longer one that a name with flags (`…host:2,S`) sorts after.
            let name = |base: u16, flags: u8| {
                let (m, tail) = (base / 3, base % 3);
                let tail = if tail == 0 { String::new() } else { tail.to_string() };
                let base = format!("{}.M{m}P1.host{tail}", 1_700_000_000 + u32::from(m % 7));
                match flags {
                    0 => base,
                    1 => format!("{base}:2,S"),
                    _ => format!("{base}:2,FS"),
                }
            };
            let sub = |cur: bool| if cur { Sub::Cur } else { Sub::New };
            let mut model = std::collections::BTreeMap::new();
            let mut scan = Scan::with_capacity(pushed.len());
            for &(base, flags, cur) in &pushed {
                let name = name(base, flags);
                let key = super::filename::base(&name).to_string();
                if model.contains_key(&key) {
                    continue;
                }
                scan.push(sub(cur), &name, FileKind::File).unwrap();
                model.insert(key, (sub(cur), name));
            }
            scan.sort();
            for &(base, flags, cur) in &inserted {
                let name = name(base, flags);
                proptest::prop_assert!(scan.insert(sub(cur), &name, FileKind::Symlink));
                model.insert(super::filename::base(&name).to_string(), (sub(cur), name));
            }
            proptest::prop_assert_eq!(scan.len(), model.len());
            let keys: Vec<&str> = model.keys().map(String::as_str).collect();
            proptest::prop_assert_eq!(scan.keys().collect::<Vec<_>>(), keys);
            for ((base, found), (key, (sub, name))) in scan.iter().zip(&model) {
                proptest::prop_assert_eq!(base, key.as_str());
                proptest::prop_assert_eq!((found.sub, found.name), (*sub, name.as_str()));
                proptest::prop_assert_eq!(scan.get(key).map(|file| file.name), Some(name.as_str()));
            }
            for base in 0..400 {
                let key = name(base, 0);
                proptest::prop_assert_eq!(scan.contains_key(&key), model.contains_key(&key));
            }
        }
    }

    /// One file a base name: `cur/` wins over `new/`, then the first by name; a second
    /// file that is not a link of the kept one is reported, whatever the size hint.
    #[test]
    fn one_file_a_base_name_is_kept_and_the_others_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in ["cur", "new"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        fs::write(root.join("new/9.M1P1.b"), "new").unwrap();
        fs::write(root.join("cur/9.M1P1.b:2,T"), "t").unwrap();
        fs::write(root.join("cur/9.M1P1.b:2,S"), "s").unwrap();
        fs::write(root.join("cur/9.M2P1.c:2,T"), "c").unwrap();
        fs::hard_link(root.join("cur/9.M2P1.c:2,T"), root.join("cur/9.M2P1.c:2,S")).unwrap();
        fs::write(root.join("new/9.M3P1.d"), "d").unwrap();
        let paths = Paths { root: root.clone(), dir: root };
        for expected in [0, 1, 1000] {
            let (scan, mut left_out) = paths.scan_reporting(expected).unwrap();
            assert_eq!(scan.values().count(), 3);
            assert_eq!(scan.get("9.M1P1.b"), Some(file(Sub::Cur, "9.M1P1.b:2,S")));
            assert_eq!(scan.get("9.M2P1.c"), Some(file(Sub::Cur, "9.M2P1.c:2,S")));
            assert_eq!(scan.get("9.M3P1.d"), Some(file(Sub::New, "9.M3P1.d")));
            left_out.sort_by(|a, b| a.path.cmp(&b.path));
            let found: Vec<(String, LeftOutReason)> = left_out
                .into_iter()
                .map(|entry| (entry.path.to_string_lossy().into_owned(), entry.reason))
                .collect();
            let kept = |name: &str| LeftOutReason::DuplicateBaseName { kept: name.into() };
            assert_eq!(found.len(), 2, "{found:?}");
            assert_eq!(found[0], ("cur/9.M1P1.b:2,T".to_string(), kept("9.M1P1.b:2,S")));
            // new/'s file gave way to the first cur/ file read (in directory order).
            assert_eq!(found[1].0, "new/9.M1P1.b");
            assert!(
                [kept("9.M1P1.b:2,S"), kept("9.M1P1.b:2,T")].contains(&found[1].1),
                "{found:?}"
            );
        }
    }

    /// A folder of `files` (base name, rest of the name, `cur/`, a link of the file made
    /// before it with that base name, a symlink) and a uidlist of `records` (per base name:
    /// none, the base name, the whole name with `:2,S`).
    fn folder(
        files: &[(u8, u8, bool, bool, bool)],
        records: &[u8],
    ) -> (tempfile::TempDir, Uidlist) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["cur", "new"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        // Base names that start others (`…h1`, `…h12`), as in the scan's proptest.
        let base = |b: u8| format!("{}.M{}P1.h{}", 1_700_000_000 + u32::from(b % 3), b / 4, b % 4);
        let mut made = std::collections::HashMap::<u8, std::path::PathBuf>::new();
        for (i, &(b, rest, cur, link, symlink)) in files.iter().enumerate() {
            let rest = [",S=9", ":2,S", ":2,FS", ":2,T", ""][usize::from(rest % 5)];
            let path =
                root.join(if cur { "cur" } else { "new" }).join(format!("{}{rest}", base(b)));
            if path.symlink_metadata().is_ok() {
                continue;
            }
            match made.get(&b) {
                Some(earlier) if link => fs::hard_link(earlier, &path).unwrap(),
                Some(earlier) if symlink => std::os::unix::fs::symlink(earlier, &path).unwrap(),
                _ => fs::write(&path, format!("file {i}")).unwrap(),
            }
            made.entry(b).or_insert(path);
        }
        let mut text = format!("3 V7 N1000 G{}\n", "0123456789abcdef".repeat(2));
        for (b, &kind) in records.iter().enumerate() {
            let b = u8::try_from(b).unwrap();
            match kind % 3 {
                1 => writeln!(text, "{} :{}", u32::from(b) + 1, base(b)).unwrap(),
                2 => writeln!(text, "{} :{}:2,S", u32::from(b) + 1, base(b)).unwrap(),
                _ => {}
            }
        }
        fs::write(root.join(UIDLIST), &text).unwrap();
        let list = Uidlist::parse(text.as_bytes()).unwrap().unwrap();
        (dir, list)
    }

    fn owned(file: FileRef<'_>) -> FileBuf {
        FileBuf { sub: file.sub, name: file.name.to_string(), kind: file.kind }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// A view's files, read against the uidlist, answer as the scan of the folder (a
        /// map by base name, one file a base name, the others reported) does: the same
        /// file for every record, the files no record names as the scan has them, the
        /// same files left out and why; and made into a scan and back, the same again.
        #[test]
        fn a_views_files_are_the_scan_of_the_folder(
            files in proptest::collection::vec(
                (0u8..14, 0u8..5, proptest::bool::ANY, proptest::bool::ANY,
                 proptest::bool::weighted(0.1)),
                0..40,
            ),
            records in proptest::collection::vec(0u8..3, 0..14),
        ) {
            let (dir, list) = folder(&files, &records);
            let paths = Paths { root: dir.path().to_path_buf(), dir: dir.path().to_path_buf() };
            let (scan, mut scan_left_out) = paths.scan_reporting(0).unwrap();
            let (found, mut left_out) = paths.scan_files(Some(&list)).unwrap();
            let by_path = |a: &LeftOut, b: &LeftOut| a.path.cmp(&b.path);
            scan_left_out.sort_by(by_path);
            left_out.sort_by(by_path);
            proptest::prop_assert_eq!(&left_out, &scan_left_out);
            proptest::prop_assert_eq!(found.len(), scan.len());
            for (position, record) in list.records().enumerate() {
                let expected = scan.get(record.base()).map(owned);
                proptest::prop_assert_eq!(found.file(&list, position), expected.clone());
                proptest::prop_assert_eq!(found.has_file(position), expected.is_some());
            }
            let others: Vec<(&str, FileRef<'_>)> =
                scan.iter().filter(|(base, _)| !list.contains_base(base)).collect();
            proptest::prop_assert_eq!(found.others().iter().collect::<Vec<_>>(), others.clone());
            let not_regular: Vec<(String, FileBuf)> = scan
                .iter()
                .filter(|(_, file)| file.kind != FileKind::File)
                .map(|(base, file)| (base.to_string(), owned(file)))
                .collect();
            proptest::prop_assert_eq!(found.not_regular(&list), not_regular);
            let again = found.clone().into_scan(Some(&list));
            proptest::prop_assert_eq!(again.iter().collect::<Vec<_>>(), scan.iter().collect::<Vec<_>>());
            let back = Files::from_scan(&list, &again);
            for position in 0..list.len() {
                proptest::prop_assert_eq!(back.file(&list, position), found.file(&list, position));
            }
            proptest::prop_assert_eq!(back.others().iter().collect::<Vec<_>>(), others.clone());
            // Numbered in memory (a folder we do not write): numbering the others alone
            // gives the same records, and the same file for each, as numbering the whole
            // scan and matching it again.
            let whole_list = super::assign_in_memory(&paths, Some(list.clone()), &again);
            let whole = Files::from_scan(&whole_list, &again);
            let others_list = super::assign_in_memory(&paths, Some(list.clone()), found.others());
            let records = |l: &Uidlist| {
                l.records().map(|r| (r.uid, r.base().to_string())).collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(records(&others_list), records(&whole_list));
            let numbered = found.clone().with_others_numbered(&others_list);
            for position in 0..whole_list.len() {
                let file = numbered.file(&others_list, position);
                proptest::prop_assert_eq!(file, whole.file(&whole_list, position));
            }
            proptest::prop_assert_eq!(
                numbered.others().iter().collect::<Vec<_>>(),
                whole.others().iter().collect::<Vec<_>>()
            );
            let kinds = |files: &Files| files.not_regular_positions().collect::<Vec<_>>();
            proptest::prop_assert_eq!(kinds(&numbered), kinds(&whole));
            // Without a uidlist every file is among the others.
            let (alone, _) = paths.scan_files(None).unwrap();
            proptest::prop_assert_eq!(alone.others().iter().collect::<Vec<_>>(), scan.iter().collect::<Vec<_>>());

            // Read line by line and against the hashes of the base names: the same files
            // for every record and the same left out, whenever that read decides; it
            // decides unless a file's base name is no record's or two files have one.
            let Some(StreamedRead::Streamed(streamed, bases)) = paths.read_uidlist_streamed().unwrap() else {
                panic!("the uidlist has no name twice");
            };
            proptest::prop_assert_eq!(streamed.len(), list.len());
            let entries = ["new", "cur"].iter().map(|sub| fs::read_dir(dir.path().join(sub)).unwrap().count()).sum::<usize>();
            let decides = others.is_empty() && entries == found.len();
            match paths.scan_hashed(streamed.len(), &bases).unwrap() {
                Some((hashed, mut hashed_left_out)) => {
                    proptest::prop_assert!(decides);
                    hashed_left_out.sort_by(by_path);
                    proptest::prop_assert_eq!(&hashed_left_out, &left_out);
                    proptest::prop_assert_eq!(hashed.len(), found.len());
                    for (position, record) in list.records().enumerate() {
                        let file = hashed.file_with_base(record.base(), position);
                        proptest::prop_assert_eq!(file, found.file(&list, position));
                    }
                    let kinds = |files: &Files| files.not_regular_positions().collect::<Vec<_>>();
                    proptest::prop_assert_eq!(kinds(&hashed), kinds(&found));
                }
                None => proptest::prop_assert!(!decides),
            }
        }
    }

    /// A read finds the files the uidlist does not know even when as many of its records
    /// have no file (it counts the records whose file it found, not all of them).
    #[test]
    fn an_unknown_file_is_numbered_beside_a_record_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let maildir = Maildir::open(Location::maildir(&root));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        for _ in 0..2 {
            let mut pending = mailbox.begin_save().unwrap();
            std::io::Write::write_all(&mut pending, b"Subject: x\r\n\r\nbody\r\n").unwrap();
            mailbox.save(pending, SaveOptions::default()).unwrap();
        }
        mailbox.commit().unwrap();
        let messages = mailbox.messages().unwrap();
        assert_eq!(messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
        let gone = root.join("cur").join(&messages[1].file_name);
        let gone = if gone.exists() { gone } else { root.join("new").join(&messages[1].file_name) };
        fs::remove_file(gone).unwrap();
        fs::write(root.join("new/1700000009.M1P1.delivered"), "Subject: y\n\nbody\n").unwrap();
        let listed = maildir.mailbox(&MailboxName::inbox()).unwrap().messages().unwrap();
        let listed: Vec<(u32, &str)> =
            listed.iter().map(|m| (m.uid, m.file_name.as_str())).collect();
        assert_eq!(listed, [(1, messages[0].file_name.as_str()), (3, "1700000009.M1P1.delivered")]);
        let uidlist = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
        assert!(uidlist.contains("3 ") && uidlist.contains("1700000009.M1P1.delivered"));
    }
}
