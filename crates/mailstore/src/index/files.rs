//! A mailbox's index files on disk: `dovecot.index` (optional snapshot),
//! `dovecot.index.log` (the head of the log, required) and `dovecot.index.log.2` (the log
//! before the last rotation), read into an [`IndexState`] under the log's lock, and changed
//! only by appending whole transactions under the exclusive lock.
//!
//! Which files are replayed from where is decided as `mail_transaction_log_view_set` does:
//! from the snapshot's log position when the snapshot belongs to these logs (same
//! `indexid`), else from the beginning of the log chain (a file whose `prev_file_seq` is
//! 0). A file with `prev_file_seq` 0 after another one resets the index (Dovecot writes
//! such a file when it recreates an index; so do we when a mailbox is emptied under a new
//! UIDVALIDITY). Modseqs are counted from each file's start, so what is replayed from the
//! middle of a file still gets the modseqs Dovecot gives it.
//!
//! A writer keeps what it read: the next lock replays only what was appended since, unless
//! the head file was replaced (rotated or reset: another inode), which rereads everything.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock::{self, Mode};
use super::log::{self, LogHeader, Transaction};
use super::snapshot;
use super::state::{Coverage, IndexState};
use crate::error::{Error, IoContext, Result};
use crate::fs::beneath::Tree;

/// The head of the transaction log.
pub(crate) const LOG: &str = "dovecot.index.log";
/// The log before the last rotation.
pub(crate) const LOG_2: &str = "dovecot.index.log.2";
/// Dovecot's snapshot of the index.
pub(crate) const INDEX: &str = "dovecot.index";
/// Dovecot's cache of message data (never read; removed with the index it belongs to).
pub(crate) const CACHE: &str = "dovecot.index.cache";

/// What was read, and where the head log's complete transactions end.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The index as of the end of the log.
    pub(crate) state: IndexState,
    /// The head log file's header.
    pub(crate) head: LogHeader,
    /// Where the complete transactions of the head log end.
    pub(crate) end: u64,
    /// Device and inode of the head log, to notice a rotation or reset.
    identity: (u64, u64),
}

/// The index files of one mailbox, in `dir`, read only beneath `root` (see
/// [`crate::fs::beneath`]).
#[derive(Debug)]
pub(crate) struct MailboxIndex {
    root: PathBuf,
    dir: PathBuf,
    /// What the last read or write left, for an incremental read at the next lock.
    cached: Option<Loaded>,
}

/// An exclusive lock on the log, with the index as of taking it.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    index: &'a mut MailboxIndex,
    file: File,
    loaded: Loaded,
}

impl Loaded {
    /// Device and inode of the head log that was read.
    pub(crate) fn identity(&self) -> (u64, u64) {
        self.identity
    }
}

impl MailboxIndex {
    /// The index in `dir` (below `root`).
    pub(crate) fn new(root: PathBuf, dir: PathBuf) -> MailboxIndex {
        MailboxIndex { root, dir, cached: None }
    }

    /// Whether the index kept for the next lock holds messages, and how many (tests).
    #[cfg(test)]
    pub(crate) fn cached_messages(&self) -> Option<(bool, usize)> {
        self.cached.as_ref().map(|c| (c.state.headers_only, c.state.messages.len()))
    }

    /// The head log's path.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    fn corrupt(&self, file: &str, reason: impl Into<String>) -> Error {
        Error::Corrupt { path: self.dir.join(file), line: 0, reason: reason.into() }
    }

    /// Reads the index under a shared lock (Dovecot cannot change it meanwhile). `Ok(None)`
    /// when there is no log: a mailbox directory Dovecot has not initialised yet.
    pub(crate) fn read(&mut self, timeout: Duration) -> Result<Option<Loaded>> {
        self.read_as(timeout, Coverage::All)
    }

    /// [`Self::read`] without the messages ([`IndexState::without_messages`]): the headers,
    /// extensions, keyword names and modseqs a full read gives, in memory that does not
    /// grow with the mailbox (the files are read piece by piece).
    pub(crate) fn read_headers(&mut self, timeout: Duration) -> Result<Option<Loaded>> {
        self.read_as(timeout, Coverage::Headers)
    }

    fn read_as(&mut self, timeout: Duration, coverage: Coverage<'_>) -> Result<Option<Loaded>> {
        let relative = self.dir.strip_prefix(&self.root).unwrap_or(&self.dir).join(LOG);
        let file = match Tree::new(&self.root).open_file(&relative) {
            Ok(file) => file,
            Err(refusal) if refusal.is_not_found() => return Ok(None),
            Err(refusal) => {
                return Err(crate::left_out::error(refusal, &self.root, &relative, "open"));
            }
        };
        let path = self.log_path();
        lock::lock(&file, Mode::Shared, timeout, &path)?;
        let Some(file) = self.same_as_path(file, false)? else {
            // Replaced between open and lock: read the new one.
            return self.read_as(timeout, coverage);
        };
        let loaded = self.load(&file, coverage)?;
        self.cached = Some(loaded.clone());
        Ok(Some(loaded))
    }

    /// Takes the exclusive lock (waiting up to `timeout`), reads what changed since the
    /// last read, and removes a torn transaction a killed writer left at the end (Dovecot
    /// takes it for corruption when it next locks). `Ok(None)` when there is no log.
    pub(crate) fn lock(&mut self, timeout: Duration) -> Result<Option<Locked<'_>>> {
        self.lock_as(timeout, Coverage::All)
    }

    /// [`Self::lock`] with the index read without its messages (see
    /// [`Self::read_headers`]): what a change that needs no message record (a save, a
    /// header update) locks with, so a long save holds no record of the messages it
    /// appends.
    pub(crate) fn lock_headers(&mut self, timeout: Duration) -> Result<Option<Locked<'_>>> {
        self.lock_as(timeout, Coverage::Headers)
    }

    /// [`Self::lock`] with the index read for the messages of `uids` (ascending) only
    /// ([`Coverage::Uids`]): what a change to a few messages (flags, expunges) locks with,
    /// so that it neither builds nor copies a record of every message.
    pub(crate) fn lock_uids(
        &mut self,
        timeout: Duration,
        uids: &[u32],
    ) -> Result<Option<Locked<'_>>> {
        self.lock_as(timeout, Coverage::Uids(uids))
    }

    fn lock_as(&mut self, timeout: Duration, coverage: Coverage<'_>) -> Result<Option<Locked<'_>>> {
        let path = self.log_path();
        loop {
            let file = match File::options().read(true).write(true).open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(Error::io("open", &path, error)),
            };
            lock::lock(&file, Mode::Exclusive, timeout, &path)?;
            let Some(file) = self.same_as_path(file, true)? else { continue };
            let loaded = self.load(&file, coverage)?;
            let length = file.metadata().ctx("stat", &path)?.len();
            if length > loaded.end {
                file.set_len(loaded.end).ctx("truncate the torn transaction of", &path)?;
            }
            return Ok(Some(Locked { index: self, file, loaded }));
        }
    }

    /// `file` if it is still what the path names (Dovecot may have rotated or replaced the
    /// log between our open and our lock); `None` to open again.
    fn same_as_path(&self, file: File, writable: bool) -> Result<Option<File>> {
        let path = self.log_path();
        let opened = file.metadata().ctx("stat", &path)?;
        match fs::metadata(&path) {
            Ok(now) if (now.dev(), now.ino()) == (opened.dev(), opened.ino()) => Ok(Some(file)),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound && !writable => Ok(None),
            Err(error) => Err(Error::io("stat", &path, error)),
        }
    }

    /// The index as of the end of the locked head log `file`: the cached state brought
    /// up to date when the file is the one read last (and the cache holds the messages
    /// `coverage` asks for), else everything read again, keeping those messages. The log
    /// files are read piece by piece, never whole.
    fn load(&mut self, file: &File, coverage: Coverage<'_>) -> Result<Loaded> {
        let path = self.log_path();
        let metadata = file.metadata().ctx("stat", &path)?;
        let identity = (metadata.dev(), metadata.ino());
        let len = usize::try_from(metadata.len()).unwrap_or(usize::MAX);
        if let Some(cached) = self.cached.take()
            && cached.identity == identity
            && metadata.len() >= cached.end
            && cached.state.covers(coverage)
        {
            let mut state = cached.state;
            if matches!(coverage, Coverage::Headers) && !state.headers_only {
                state = state.without_messages();
            }
            state.file_seq = cached.head.file_seq;
            let start = usize::try_from(cached.end).unwrap_or(usize::MAX);
            let mut stream = log::Stream::new(file, len, start);
            while let Some(record) = self.next_record(&mut stream, LOG)? {
                state.apply(&record).map_err(|reason| self.corrupt(LOG, reason))?;
            }
            let end = stream.offset() as u64;
            return Ok(Loaded { state, head: cached.head, end, identity });
        }
        let head_data = read_header(file, &path)?;
        let head = LogHeader::parse(&head_data).map_err(|reason| self.corrupt(LOG, reason))?;
        let snapshot = self.read_snapshot(coverage)?.filter(|s| s.indexid == head.indexid);
        let older = self.read_older(&head)?;
        let mut files: Vec<(LogHeader, &File, usize, &str)> = Vec::new();
        if let Some((header, older_file, older_len)) = &older {
            files.push((*header, older_file, *older_len, LOG_2));
        }
        files.push((head, file, len, LOG));
        let (state, end) = self.replay(snapshot, &files, coverage)?;
        Ok(Loaded { state, head, end: end as u64, identity })
    }

    /// The next complete record of `stream` (of the file `name`).
    fn next_record<'s>(
        &self,
        stream: &'s mut log::Stream<'_>,
        name: &str,
    ) -> Result<Option<log::RawRecord<'s>>> {
        let path = self.dir.join(name);
        match stream.next().ctx("read", &path)? {
            Ok(record) => Ok(record),
            Err(corrupt) => Err(self.corrupt(name, corrupt.to_string())),
        }
    }

    fn read_snapshot(&self, coverage: Coverage<'_>) -> Result<Option<snapshot::Snapshot>> {
        let path = self.dir.join(INDEX);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io("open", &path, error)),
        };
        let len = file.metadata().ctx("stat", &path)?.len();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut reader = io::BufReader::with_capacity(64 * 1024, file);
        match snapshot::parse_from(&mut reader, len, coverage) {
            Ok(snapshot) => Ok(snapshot),
            Err(snapshot::Failed::Broken(reason)) => Err(self.corrupt(INDEX, reason)),
            Err(snapshot::Failed::Io(error)) => Err(Error::io("read", &path, error)),
        }
    }

    /// `dovecot.index.log.2` when it is the file before `head`, open, with its length.
    fn read_older(&self, head: &LogHeader) -> Result<Option<(LogHeader, File, usize)>> {
        let path = self.dir.join(LOG_2);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io("open", &path, error)),
        };
        let len = file.metadata().ctx("stat", &path)?.len();
        let data = read_header(&file, &path)?;
        // A .log.2 that is not this log's predecessor (another index, a stale file) is
        // ignored, as Dovecot ignores it.
        Ok(LogHeader::parse(&data)
            .ok()
            .filter(|older| older.indexid == head.indexid && older.file_seq < head.file_seq)
            .map(|older| (older, file, usize::try_from(len).unwrap_or(usize::MAX))))
    }

    /// Replays `files` (oldest first) onto `snapshot`, or from the beginning of the chain.
    /// Returns the state and where the last file's complete transactions end.
    fn replay(
        &self,
        snapshot: Option<snapshot::Snapshot>,
        files: &[(LogHeader, &File, usize, &str)],
        coverage: Coverage<'_>,
    ) -> Result<(IndexState, usize)> {
        let fresh = || IndexState::default().covering(coverage);
        let last = files.len() - 1;
        // (file index, offset) to start at, and the state to start from.
        let (mut first, mut offset, mut state) = if let Some(snapshot) = snapshot {
            {
                let seq = snapshot.log_file_seq;
                let at = snapshot.log_file_head_offset as usize;
                if let Some(index) = files.iter().position(|(h, ..)| h.file_seq == seq) {
                    (index, at, snapshot.state)
                } else if files
                    .iter()
                    .any(|(h, ..)| h.prev_file_seq == seq && at == h.prev_file_offset as usize)
                {
                    let index =
                        files.iter().position(|(h, ..)| h.prev_file_seq == seq).unwrap_or(last);
                    (index, usize::from(files[index].0.hdr_size), snapshot.state)
                } else if let Some(index) =
                    files.iter().rposition(|(h, ..)| h.prev_file_seq == 0 && h.file_seq > seq)
                {
                    (index, usize::from(files[index].0.hdr_size), fresh())
                } else {
                    return Err(self.corrupt(
                        LOG,
                        format!("dovecot.index is at log file {seq}, which is gone"),
                    ));
                }
            }
        } else {
            let Some(index) = files.iter().position(|(h, ..)| h.prev_file_seq == 0) else {
                return Err(self.corrupt(
                    LOG,
                    "the log does not start at its beginning and dovecot.index is \
                     missing (Dovecot would rebuild the mailbox)",
                ));
            };
            (index, usize::from(files[index].0.hdr_size), fresh())
        };
        let mut end = 0;
        while first <= last {
            let (header, file, len, name) = files[first];
            let hdr_size = usize::from(header.hdr_size);
            if offset < hdr_size || offset > len {
                return Err(self.corrupt(name, format!("index position {offset} outside the log")));
            }
            state.log_modseq = header.initial_modseq;
            state.file_seq = header.file_seq;
            let mut stream = log::Stream::new(file, len, hdr_size);
            while let Some(record) = self.next_record(&mut stream, name)? {
                if record.offset < offset {
                    // Already in the snapshot: only the modseq is counted.
                    state.log_modseq = super::state::modseq_after(&record, state.log_modseq);
                } else {
                    state.apply(&record).map_err(|reason| self.corrupt(name, reason))?;
                }
            }
            let complete = stream.offset();
            if offset > complete {
                return Err(
                    self.corrupt(name, format!("index position {offset} past the log's end"))
                );
            }
            end = complete;
            first += 1;
            if first <= last {
                let next = files[first].0;
                if next.prev_file_seq == 0 {
                    state.reset();
                } else if next.prev_file_seq != header.file_seq {
                    return Err(self.corrupt(LOG, "a log file in the middle is missing"));
                }
                offset = usize::from(next.hdr_size);
            }
        }
        Ok((state, end))
    }

    /// Writes a new log holding `transaction` after a fresh header and makes it the
    /// mailbox's log in one rename: either the old log (or none) or the new one is seen.
    /// `reset_from` is the log being replaced, whose successor the new file is (same
    /// indexid, next file_seq, prev 0: a reset Dovecot's readers apply, also to an old
    /// `dovecot.index`). Afterwards the old snapshot, cache and `.log.2` are removed.
    pub(crate) fn publish(
        &mut self,
        header: LogHeader,
        transaction: &Transaction,
        permissions: &crate::fs::permissions::Permissions,
        fsync: bool,
    ) -> Result<()> {
        let mut data = header.encode().to_vec();
        data.extend_from_slice(&transaction.encode());
        // What we publish must read back under our own replay, or it is not published.
        let mut check = IndexState::starting_at(header.initial_modseq);
        let (records, end) =
            log::records(&data, log::HEADER_SIZE).map_err(|c| self.corrupt(LOG, c.to_string()))?;
        for record in &records {
            check.apply(record).map_err(|reason| self.corrupt(LOG, format!("ours: {reason}")))?;
        }
        debug_assert_eq!(end, data.len());
        let temp = self.dir.join(format!(".{LOG}.dsync-rs.{}", std::process::id()));
        crate::fs::replace_file(&self.log_path(), &temp, &data, fsync, permissions)?;
        for stale in [INDEX, CACHE, LOG_2] {
            crate::fs::remove_if_exists(&self.dir.join(stale))?;
        }
        self.cached = None;
        Ok(())
    }
}

impl Locked<'_> {
    /// The index as of now.
    pub(crate) fn state(&self) -> &IndexState {
        &self.loaded.state
    }

    /// The head log's header.
    pub(crate) fn head(&self) -> &LogHeader {
        &self.loaded.head
    }

    /// Appends `transaction` at the end of the complete part of the log, after checking
    /// that it applies (what Dovecot would call corrupt is never written), and fsyncs it
    /// (`fsync`). The kept state includes it.
    pub(crate) fn append(&mut self, transaction: &Transaction, fsync: bool) -> Result<()> {
        if transaction.is_empty() {
            return Ok(());
        }
        let bytes = transaction.encode();
        let (records, end) =
            log::records(&bytes, 0).map_err(|c| self.index.corrupt(LOG, format!("ours: {c}")))?;
        debug_assert_eq!(end, bytes.len());
        let mut state = self.loaded.state.clone();
        for record in &records {
            state
                .apply(record)
                .map_err(|reason| self.index.corrupt(LOG, format!("refused to write: {reason}")))?;
        }
        let path = self.index.log_path();
        // One write: a kill leaves the whole transaction or a torn tail that readers skip
        // and our next lock removes.
        self.file.write_all_at(&bytes, self.loaded.end).ctx("append to", &path)?;
        if fsync {
            self.file.sync_data().ctx("fsync", &path)?;
        }
        self.loaded.state = state;
        self.loaded.end += bytes.len() as u64;
        Ok(())
    }

    /// Replaces the log with a new file holding `transaction` (see
    /// [`MailboxIndex::publish`]) while the old one is still locked, so no writer appends to
    /// the old file meanwhile: Dovecot, when it gets the lock, sees the file was replaced.
    pub(crate) fn replace(
        self,
        indexid: u32,
        create_stamp: u32,
        transaction: &Transaction,
        permissions: &crate::fs::permissions::Permissions,
        fsync: bool,
    ) -> Result<()> {
        let head = self.loaded.head;
        let mut header = LogHeader::new(
            indexid,
            head.file_seq.wrapping_add(1).max(1),
            create_stamp,
            self.loaded.state.highest_modseq(),
        );
        header.prev_file_seq = 0;
        header.prev_file_offset = 0;
        self.index.publish(header, transaction, permissions, fsync)
        // The old file's lock goes with `self.file`.
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Keep what was read for the next lock.
        self.index.cached = Some(self.loaded.clone());
    }
}

/// The first bytes of a log `file`, enough for its header (the whole file when shorter).
fn read_header(file: &File, path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(log::HEADER_SIZE);
    let mut reader = file;
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0)).ctx("seek", path)?;
    reader.take(u64::from(u16::MAX)).read_to_end(&mut data).ctx("read", path)?;
    Ok(data)
}
