//! Streaming saves: `tmp/` → fsync → staged → [`Mailbox::commit`] renames into `cur/` (or
//! `new/` for mail without flags and keywords, as Dovecot) and appends to `dovecot-uidlist`
//! under its lock (Dovecot's `maildir-save.c` sequence, plus the journal of
//! [`super::journal`]).

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::filename;
use super::journal::{self, Entry};
use super::mailbox::{Mailbox, SubDir};
use super::state::{self, Sub};
use super::uidlist::{RecordBuf, ext};
use crate::crlf::ConvertingWriter;
use crate::error::{Error, IoContext, Result};
use crate::flags::{Flags, Keyword};
use crate::pending::PendingMessage;

/// Converted bytes gathered before they are written: a message up to this size is
/// written with one system call.
pub(crate) const CHUNK: usize = 64 * 1024;

/// How to store one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveOptions {
    /// The UID to give it (must be ≥ the mailbox's next UID at commit); `None` takes the
    /// next UID.
    pub uid: Option<u32>,
    /// System flags.
    pub flags: Flags,
    /// Keywords (at most 26 different ones per mailbox).
    pub keywords: Vec<Keyword>,
    /// Received date (INTERNALDATE) as UNIX seconds; `None` keeps "now".
    pub received: Option<i64>,
    /// Message GUID to keep. A GUID that is a Maildir base name with the right `S=`/`W=`
    /// becomes the file name, as Dovecot does; any other is stored as the uidlist `G` field.
    pub guid: Option<String>,
    /// POP3 UIDL (uidlist `P`).
    pub pop3_uidl: Option<String>,
    /// POP3 order (uidlist `O`, must be > 0).
    pub pop3_order: Option<u32>,
    /// The modseq to give it, where the store keeps modseqs (sdbox; a Maildir ignores it).
    pub modseq: Option<u64>,
}

impl SaveOptions {
    /// Options with a forced UID.
    pub fn with_uid(mut self, uid: u32) -> SaveOptions {
        self.uid = Some(uid);
        self
    }
    /// Options with these flags.
    pub fn with_flags(mut self, flags: Flags) -> SaveOptions {
        self.flags = flags;
        self
    }
    /// Options with these keywords.
    pub fn with_keywords(mut self, keywords: Vec<Keyword>) -> SaveOptions {
        self.keywords = keywords;
        self
    }
    /// Options with this received date.
    pub fn with_received(mut self, received: i64) -> SaveOptions {
        self.received = Some(received);
        self
    }
    /// Options with this message GUID.
    pub fn with_guid(mut self, guid: impl Into<String>) -> SaveOptions {
        self.guid = Some(guid.into());
        self
    }
    /// Options with this modseq (sdbox).
    pub fn with_modseq(mut self, modseq: u64) -> SaveOptions {
        self.modseq = Some(modseq);
        self
    }
    /// Options with this POP3 UIDL and order.
    pub fn with_pop3(mut self, uidl: Option<String>, order: Option<u32>) -> SaveOptions {
        self.pop3_uidl = uidl;
        self.pop3_order = order;
        self
    }
}

/// A saved message waiting for commit.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp_path: PathBuf,
    tmp_name: String,
    /// Base name: generated with sizes, or the caller's GUID when usable.
    base: String,
    /// The name that is generated when the preferred base is already taken.
    fallback_base: String,
    guid: Option<String>,
    options: SaveOptions,
    /// Renamed into `cur/` or `new/`: nothing left in `tmp/` to remove.
    committed: bool,
}

impl Staged {
    /// A finished temp file `tmp_path` (named `tmp_name` in `tmp/`), not yet named for
    /// `cur/` or `new/` (see [`Mailbox::stage`]). Dropping it removes the temp file.
    pub(super) fn new(tmp_path: PathBuf, tmp_name: String, options: SaveOptions) -> Staged {
        Staged {
            tmp_path,
            tmp_name,
            base: String::new(),
            fallback_base: String::new(),
            guid: None,
            options,
            committed: false,
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Only uncommitted temp files are left to remove (committed ones were renamed away;
        // trying anyway cost a failing unlink per message).
        if !self.committed {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

impl Mailbox {
    /// Starts a message in `tmp/`. Once a file of this handle came out with the right
    /// owner and mode, later ones are not checked (no `fstat` per message).
    pub fn begin_save(&self) -> Result<PendingMessage> {
        state::writable(&self.store)?;
        let tmp_name = filename::generate_temp_name();
        let permissions = self.store.permissions()?;
        let tmp_dir = match self.sub_dir(SubDir::Tmp) {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // tmp/ may be missing in a Maildir written by other software.
                permissions.create_dir(&self.paths.tmp())?;
                self.sub_dir(SubDir::Tmp)
            }
            other => other,
        }?;
        // `paths.tmp().join(name)` with one allocation, not three.
        let dir = self.paths.dir.as_os_str();
        let mut tmp_path = PathBuf::with_capacity(dir.len() + 5 + tmp_name.len());
        tmp_path.push(dir);
        tmp_path.push("tmp");
        tmp_path.push(&tmp_name);
        let check = !self.tmp_files_right.load(Ordering::Relaxed);
        let (file, right) = permissions.create_new_in(tmp_dir, &tmp_name, &tmp_path, check)?;
        if right {
            self.tmp_files_right.store(true, Ordering::Relaxed);
        }
        // No buffer of its own: the converting writer collects a whole message (up to
        // 64 KiB, in the buffer the last message used) and writes it with one system call,
        // without a copy into another buffer.
        let spare = std::mem::take(
            &mut *self.spare_buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let writer = ConvertingWriter::new(
            BufWriter::with_capacity(0, file),
            self.store.options.line_endings,
        )
        .buffering_into(CHUNK, spare);
        Ok(PendingMessage { writer: Some(writer), tmp_path, tmp_name })
    }

    /// Finishes a message (sizes, received date, fsync) and stages it for [`Self::commit`].
    pub fn save(&mut self, mut pending: PendingMessage, options: SaveOptions) -> Result<()> {
        validate(&options)?;
        let writer = pending
            .writer
            .take()
            .ok_or_else(|| Error::io("write", &pending.tmp_path, io::Error::other("finished")))?;
        // From here on the staged entry owns the temp file (and removes it on error); the
        // finished pending message, no longer removing it, hands over its names.
        let staged = Staged::new(
            std::mem::take(&mut pending.tmp_path),
            std::mem::take(&mut pending.tmp_name),
            options,
        );
        let tmp_path = &staged.tmp_path;
        let (buffered, size, virtual_size, spare) =
            writer.finish_keeping().ctx("write", tmp_path)?;
        // Kept for the next message, unless a big one grew it.
        if spare.capacity() <= 4 * CHUNK {
            *self.spare_buffer.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner) = spare;
        }
        let file =
            buffered.into_inner().map_err(|e| Error::io("write", tmp_path, e.into_error()))?;
        if let Some(received) = staged.options.received {
            file.set_modified(crate::fs::system_time(received)).ctx("set mtime", tmp_path)?;
        }
        if self.store.fsync() {
            file.sync_all().ctx("fsync", tmp_path)?;
        }
        self.stage(staged, size, virtual_size);
        Ok(())
    }

    /// Names a finished temp file holding `size` bytes (`virtual_size` with CRLF) and queues
    /// it for [`Self::commit`]: the caller's GUID becomes the base name when it is a usable
    /// one with exactly these `S=`/`W=` (as Dovecot keeps it), otherwise the generated name
    /// with sizes is used and the GUID goes into the uidlist `G` field.
    pub(super) fn stage(&mut self, mut staged: Staged, size: u64, virtual_size: u64) {
        let base = filename::base_of_temp(&staged.tmp_name);
        let mut fallback = String::with_capacity(base.len() + 48);
        fallback.push_str(base);
        // `,S={size},W={virtual_size}` without the formatting machinery (once a message).
        fallback.push_str(",S=");
        filename::push_decimal(&mut fallback, size);
        fallback.push_str(",W=");
        filename::push_decimal(&mut fallback, virtual_size);
        staged.fallback_base = fallback;
        let preferred = staged.options.guid.as_deref().filter(|guid| {
            filename::is_usable_base(guid)
                && filename::size_field(guid, b'S') == Some(size)
                && filename::size_field(guid, b'W') == Some(virtual_size)
        });
        if let Some(guid) = preferred {
            staged.base = guid.to_string();
        } else {
            staged.base = staged.fallback_base.clone();
            staged.guid = staged.options.guid.clone();
        }
        self.staged.push(staged);
    }

    /// Streams a whole message from `source` and stages it: [`Self::begin_save`], copy,
    /// [`Self::save`].
    pub fn save_from(&mut self, source: &mut impl io::Read, options: SaveOptions) -> Result<()> {
        let mut pending = self.begin_save()?;
        let path = pending.tmp_path.clone();
        io::copy(source, &mut pending).ctx("copy message into", &path)?;
        self.save(pending, options)
    }

    /// Number of staged, uncommitted messages.
    pub fn staged(&self) -> usize {
        self.staged.len()
    }

    /// True when `cur/` holds a file with exactly the name a message with `base` and these
    /// flags would get there (a rename would replace it).
    /// Looked up relative to the kept `cur/` ([`Self::sub_dir`]): one path component for
    /// the kernel to resolve, not the whole path, once per message of a Maildir source.
    fn name_exists_in_cur(&self, base: &str, flags: Flags, keywords: &[u8]) -> bool {
        let name = final_name(base, flags, keywords);
        if filename::sub_for(&name) != Sub::Cur {
            return false;
        }
        match self.sub_dir(SubDir::Mail(Sub::Cur)) {
            Ok(cur) => {
                let nofollow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
                nix::sys::stat::fstatat(cur, name.as_str(), nofollow).is_ok()
            }
            Err(_) => fs::symlink_metadata(self.paths.sub(Sub::Cur).join(&name)).is_ok(),
        }
    }

    /// Makes every staged message visible and durable, in save order, and returns their
    /// UIDs. Under `dovecot-uidlist.lock`: assign UIDs (forced ones must be ≥ next UID),
    /// update `dovecot-keywords`, write the journal, rename into `cur/` (`new/` without flags
    /// and keywords, as Dovecot, so clients see them `\Recent`), fsync them, append
    /// the uidlist records, remove the journal. On error nothing of the batch stays visible.
    pub fn commit(&mut self) -> Result<Vec<u32>> {
        if self.staged.is_empty() {
            return Ok(Vec::new());
        }
        let mut staged = std::mem::take(&mut self.staged);
        let mut cache =
            self.uidlist_cache.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        // Only names taken from callers' GUIDs can collide with existing files; generated
        // names are unique, so the directory scan is skipped when there are none. The names
        // found are kept for this handle's later commits (with their own names added): one
        // scan per mailbox, not one per commit. A file delivered meanwhile has a generated
        // name, which a GUID from elsewhere does not take.
        let mut taken_cache = self.taken_bases.take();
        let result =
            state::locked_cached(&self.store.clone(), &self.paths.clone(), &mut cache, |locked| {
                let mut table = self.paths.read_keywords()?;
                let mut keywords_changed = false;
                if taken_cache.is_none()
                    && staged.iter().any(|item| item.base != item.fallback_base)
                {
                    // The names of `new/` and of the uidlist, as keys: the uidlist's
                    // records are not kept from one commit to the next (a long save would
                    // keep every record it appended), these 8 bytes a name are. Files in
                    // `cur/` are numbered (in the uidlist) but for a mail client's own
                    // moves from `new/`; one of those with a GUID-like name is a copy of
                    // the same message (a GUID names one delivery), so sharing its base
                    // costs no mail, only which copy keeps the UID: `cur/` is not read
                    // (100 000 names for a re-run that saves five). Only a file with the
                    // very name we would rename onto is looked for (one `stat`).
                    locked.make_whole()?;
                    let new = self.paths.scan_new()?;
                    let keys = new
                        .keys()
                        .chain(locked.uidlist.records().map(super::uidlist::Record::base));
                    taken_cache = Some(TakenKeys::from_keys(keys.map(base_key).collect()));
                } else if let Some(taken) = taken_cache.as_mut()
                    && locked.fresh
                {
                    // Read afresh: someone else changed it since our last commit (a list
                    // taken from `known` holds no records: read them).
                    locked.make_whole()?;
                    for record in locked.uidlist.records() {
                        taken.insert(base_key(record.base()));
                    }
                }
                let mut next = locked.uidlist.next_uid();
                let mut entries = Vec::with_capacity(staged.len());
                for item in &mut staged {
                    let uid = match item.options.uid {
                        Some(uid) if uid >= next => uid,
                        Some(uid) => {
                            return Err(Error::UidTooLow {
                                mailbox: self.name.to_string(),
                                uid,
                                next_uid: next,
                            });
                        }
                        None => next,
                    };
                    if uid == u32::MAX {
                        return Err(Error::InvalidValue {
                            field: "UID",
                            value: uid.to_string(),
                            reason: "UID space exhausted",
                        });
                    }
                    next = uid + 1;
                    let (indexes, changed) =
                        self.keyword_indexes(&mut table, uid, &item.options.keywords);
                    keywords_changed |= changed;
                    // Without known names, no caller's GUID asked for one (nothing to check).
                    if let Some(taken) = taken_cache.as_mut() {
                        let wanted = item.base != item.fallback_base;
                        if wanted
                            && (taken.contains(base_key(&item.base))
                                || self.name_exists_in_cur(
                                    &item.base,
                                    item.options.flags,
                                    &indexes,
                                ))
                        {
                            // Dovecot: a wanted file name that exists already is stored as
                            // `G` instead.
                            item.guid = Some(item.base.clone());
                            item.base = item.fallback_base.clone();
                        }
                        taken.insert(base_key(&item.base));
                    }
                    let mut extensions = Vec::new();
                    if let Some(guid) = item.guid.as_ref().filter(|g| **g != item.base) {
                        extensions.push((ext::GUID, guid.clone()));
                    }
                    if let Some(uidl) = &item.options.pop3_uidl {
                        extensions.push((ext::POP3_UIDL, uidl.clone()));
                    }
                    if let Some(order) = item.options.pop3_order {
                        extensions.push((ext::POP3_ORDER, order.to_string()));
                    }
                    // The names move into the entry: after this, a staged item needs only
                    // its path (to remove the temp file should the commit fail).
                    let final_name = final_name(&item.base, item.options.flags, &indexes);
                    entries.push(Entry {
                        tmp_name: std::mem::take(&mut item.tmp_name),
                        final_name,
                        record: RecordBuf {
                            uid,
                            extensions,
                            filename: std::mem::take(&mut item.base),
                        },
                    });
                }
                if keywords_changed {
                    locked.write_keywords(&table)?;
                }
                journal::write(locked, &entries)?;
                // Only the tail is kept after the commit: the records are let go before the
                // append, which then does not copy a whole list's text to add a few lines.
                locked.uidlist.forget_records();
                let mut renamed = Vec::with_capacity(entries.len());
                let mut touched = [false, false];
                let result = (|| {
                    let tmp_dir = self.sub_dir(SubDir::Tmp)?;
                    for entry in &entries {
                        let sub = filename::sub_for(&entry.final_name);
                        let sub_dir = self.sub_dir(SubDir::Mail(sub))?;
                        let to = entry.final_name.as_str();
                        // The path only for an error (two joins per message otherwise).
                        nix::fcntl::renameat(tmp_dir, entry.tmp_name.as_str(), sub_dir, to)
                            .map_err(|e| {
                                Error::io("rename", self.paths.sub(sub).join(to), e.into())
                            })?;
                        renamed.push((sub, to));
                        touched[usize::from(sub == Sub::Cur)] = true;
                    }
                    if locked.fsync {
                        for (sub, touched) in [Sub::New, Sub::Cur].into_iter().zip(touched) {
                            if touched {
                                crate::fs::fsync_dir(&self.paths.sub(sub))?;
                            }
                        }
                    }
                    locked.append(entries.iter().map(|e| &e.record))
                })();
                if let Err(error) = result {
                    // Like Dovecot: unlink what was moved while still holding the lock.
                    for (sub, name) in &renamed {
                        let _ = fs::remove_file(self.paths.sub(*sub).join(name));
                    }
                    let _ = journal::remove(locked);
                    return Err(error);
                }
                journal::remove(locked)?;
                // What was appended is on disk: the next commit needs only the tail.
                locked.uidlist.forget_records();
                Ok(entries.iter().map(|e| e.record.uid).collect())
            });
        *self.uidlist_cache.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner) = cache;
        if result.is_ok() {
            self.taken_bases = taken_cache;
            for item in &mut staged {
                item.committed = true;
            }
        }
        // The list is kept for the next batch (no regrowing it one save at a time; its
        // entries are large). Clearing drops them as dropping the list would.
        staged.clear();
        if self.staged.capacity() == 0 {
            self.staged = staged;
        }
        result
    }

    /// Discards staged messages.
    pub fn rollback(&mut self) {
        self.staged.clear();
    }
}

/// The name a new message gets, as in Dovecot's `maildir_get_dest_filename`: the bare
/// base name (for `new/`) when it has neither flags nor keywords, so that mail clients see
/// it as `\Recent`, else the base name with its `:2,` info (for `cur/`).
fn final_name(base: &str, flags: Flags, keywords: &[u8]) -> String {
    if flags == Flags::EMPTY && keywords.is_empty() {
        base.to_string()
    } else {
        filename::with_flags(base, flags, keywords)
    }
}

/// Values that go into the uidlist must be single tokens.
pub(crate) fn validate(options: &SaveOptions) -> Result<()> {
    let token = |field: &'static str, value: &Option<String>| -> Result<()> {
        match value {
            Some(v) if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f) => {
                Err(Error::InvalidValue {
                    field,
                    value: v.clone(),
                    reason: "empty or contains white space or control characters",
                })
            }
            _ => Ok(()),
        }
    };
    token("message GUID", &options.guid)?;
    token("POP3 UIDL", &options.pop3_uidl)?;
    if options.uid == Some(0) {
        return Err(Error::InvalidValue {
            field: "UID",
            value: String::from("0"),
            reason: "UIDs start at 1",
        });
    }
    if options.pop3_order == Some(0) {
        return Err(Error::InvalidValue {
            field: "POP3 order",
            value: String::from("0"),
            reason: "must be > 0",
        });
    }
    Ok(())
}

/// The keys of the taken base names ([`base_key`]) a handle keeps between its commits
/// ([`Mailbox::taken_bases`]): sorted in one vector (8 bytes a name, no slack), the latest
/// in a set of at most [`TakenKeys::RECENT`] merged into it when full. A `HashSet<u64>` of
/// every name cost 18 bytes a name, up to twice that while it grew (a full backup of
/// 100 000 messages held 1.77 MB of it at its peak; benches/RESULTS-memory.md, Round 11).
#[derive(Debug, Default)]
pub(crate) struct TakenKeys {
    sorted: Vec<u64>,
    recent: HashSet<u64>,
}

impl TakenKeys {
    /// How many keys the set of the latest holds before they are merged.
    const RECENT: usize = 1 << 14;

    /// The set of `keys`.
    fn from_keys(mut keys: Vec<u64>) -> TakenKeys {
        keys.sort_unstable();
        keys.dedup();
        keys.shrink_to_fit();
        TakenKeys { sorted: keys, recent: HashSet::new() }
    }

    /// True when `key` is in the set.
    pub(crate) fn contains(&self, key: u64) -> bool {
        self.recent.contains(&key) || self.sorted.binary_search(&key).is_ok()
    }

    /// Adds `key`.
    pub(crate) fn insert(&mut self, key: u64) {
        if !self.contains(key) && self.recent.insert(key) && self.recent.len() >= Self::RECENT {
            self.merge();
        }
    }

    /// Merges the latest keys into the sorted ones, from the back, in place.
    fn merge(&mut self) {
        let mut recent: Vec<u64> = self.recent.drain().collect();
        recent.sort_unstable();
        let old = self.sorted.len();
        self.sorted.reserve_exact(recent.len());
        self.sorted.resize(old + recent.len(), 0);
        let (mut from_sorted, mut from_recent) = (old, recent.len());
        for at in (0..self.sorted.len()).rev() {
            let take_sorted = from_recent == 0
                || (from_sorted > 0 && self.sorted[from_sorted - 1] > recent[from_recent - 1]);
            if take_sorted {
                from_sorted -= 1;
                self.sorted[at] = self.sorted[from_sorted];
            } else {
                from_recent -= 1;
                self.sorted[at] = recent[from_recent];
            }
        }
    }

    /// The number of keys (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }
}

/// A base file name's key in the set of taken ones ([`Mailbox::taken_bases`]: those of
/// the uidlist, of `new/` and of this handle's saves): a hash, not the name. Two names with one key make the second look taken: it then gets a
/// generated name and keeps its GUID in the uidlist, which is the safe side.
pub(crate) fn base_key(base: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    base.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    proptest::proptest! {
        /// The sizes in a file name read as `format!` writes them.
        #[test]
        fn push_decimal_writes_what_format_writes(value in proptest::num::u64::ANY) {
            for value in [value, value % 10, value % 1000, u64::MAX, 0] {
                let mut out = String::from(",S=");
                super::filename::push_decimal(&mut out, value);
                proptest::prop_assert_eq!(out, format!(",S={value}"));
            }
        }
    }

    use crate::maildir::state::DIRECTORY_SCANS;
    use crate::{Flags, Keyword, Location, MailboxName, Maildir, SaveOptions};

    /// The taken keys answer as a set of every key inserted, across merges: the keys of
    /// the first fill, inserted ones (again too), and none other.
    #[test]
    fn taken_keys_are_a_set() {
        let key = |n: u64| n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 3;
        let mut taken = super::TakenKeys::from_keys((0..1000).map(key).chain([key(7)]).collect());
        for n in (500..50_000).chain(0..10) {
            taken.insert(key(n));
        }
        assert_eq!(taken.len(), 50_000);
        assert!(taken.sorted.windows(2).all(|pair| pair[0] < pair[1]));
        assert!((0..50_000).all(|n| taken.contains(key(n))));
        assert!(!(50_000..60_000).any(|n| taken.contains(key(n))));
    }

    fn save(mailbox: &mut super::Mailbox, options: SaveOptions) {
        let mut pending = mailbox.begin_save().unwrap();
        pending.write_all(b"Subject: cached\r\n\r\nbody\r\n").unwrap();
        mailbox.save(pending, options).unwrap();
    }

    fn body(n: usize, size: usize) -> Vec<u8> {
        let mut body = format!("Subject: {n}\r\n\r\n").into_bytes();
        while body.len() < size {
            body.extend_from_slice(format!("line {n} {}\r\n", body.len()).as_bytes());
        }
        body
    }

    fn tmp_files(mailbox: &super::Mailbox) -> Vec<String> {
        std::fs::read_dir(mailbox.paths.tmp())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// A caller's GUID becomes the file name unless the uidlist or `new/` has that base
    /// already; `cur/` is not read for it (its unnumbered files are mail clients' moves,
    /// and one with a GUID's name is a copy of the same message).
    #[test]
    fn guid_names_are_checked_against_the_uidlist_and_new_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let maildir = Maildir::open(Location::maildir(&root));
        let body = b"Subject: hi\r\n\r\nHello\r\n"; // 19 bytes stored, 22 served
        let guid = |n: u32| format!("1795424863.M{n}P1.vm,S=19,W=22");
        let save_as = |mailbox: &mut super::Mailbox, uid: u32, guid: String| {
            let mut pending = mailbox.begin_save().unwrap();
            pending.write_all(body).unwrap();
            let options = SaveOptions::default().with_uid(uid).with_guid(guid);
            mailbox.save(pending, options.with_flags(Flags::SEEN)).unwrap();
            mailbox.commit().unwrap();
        };
        let mut first = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        save_as(&mut first, 1, guid(1));
        // Unnumbered files: one delivered to new/, two a client moved to cur/ (one with the
        // very name the save would rename onto, one with the same base and other flags).
        std::fs::write(root.join("new").join(guid(2)), body).unwrap();
        std::fs::write(root.join("cur").join(format!("{}:2,S", guid(3))), body).unwrap();
        std::fs::write(root.join("cur").join(format!("{}:2,FS", guid(4))), body).unwrap();
        let mut later = maildir.mailbox(&MailboxName::inbox()).unwrap();
        let before = DIRECTORY_SCANS.get();
        for (uid, n) in [(2, 1), (3, 2), (4, 3), (5, 4)] {
            save_as(&mut later, uid, guid(n));
        }
        assert_eq!(DIRECTORY_SCANS.get(), before + 1, "new/ read once for the handle");
        let names: Vec<String> = later
            .messages()
            .unwrap()
            .into_iter()
            .filter(|m| (2..=5).contains(&m.uid))
            .map(|m| m.file_name)
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(!names[0].starts_with("1795424863."), "taken in the uidlist: {names:?}");
        assert!(!names[1].starts_with("1795424863."), "taken in new/: {names:?}");
        assert!(!names[2].starts_with("1795424863."), "the name is taken in cur/: {names:?}");
        // Another file of that base stays beside it: two copies of one message, either of
        // which is listed under the UID (Dovecot numbers the other on its own).
        assert!(names[3].starts_with(&guid(4)), "cur/ is not read: {names:?}");
        assert!(root.join("cur").join(format!("{}:2,S", guid(4))).exists());
        assert!(root.join("cur").join(format!("{}:2,FS", guid(4))).exists());
        assert!(root.join("cur").join(format!("{}:2,S", guid(3))).exists(), "nothing replaced");
    }

    /// A caller's GUID that names a message the uidlist has is taken whatever flags that
    /// message's file carries now (no file with the very name the save would rename onto):
    /// the uidlist's own index of base names answers.
    #[test]
    fn a_guid_the_uidlist_has_is_taken_under_other_flags() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let maildir = Maildir::open(Location::maildir(&root));
        let guid = "1795424863.M1P1.vm,S=19,W=22";
        let save_as = |mailbox: &mut super::Mailbox, uid: u32, flags: Flags| {
            let mut pending = mailbox.begin_save().unwrap();
            pending.write_all(b"Subject: hi\r\n\r\nHello\r\n").unwrap();
            let options = SaveOptions::default().with_uid(uid).with_guid(guid.to_owned());
            mailbox.save(pending, options.with_flags(flags)).unwrap();
            mailbox.commit().unwrap();
        };
        let mut first = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        save_as(&mut first, 1, Flags::SEEN);
        for (uid, flags) in [(2, Flags::FLAGGED), (3, Flags::EMPTY)] {
            let mut later = maildir.mailbox(&MailboxName::inbox()).unwrap();
            save_as(&mut later, uid, flags);
        }
        let names: Vec<(u32, String)> = maildir
            .mailbox(&MailboxName::inbox())
            .unwrap()
            .messages()
            .unwrap()
            .into_iter()
            .map(|m| (m.uid, m.file_name))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], (1, format!("{guid}:2,S")));
        assert!(names[1..].iter().all(|(_, name)| !name.starts_with(guid)), "{names:?}");
    }

    #[test]
    fn files_of_every_size_are_complete_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        // Tiny, empty, one over a chunk, one of several chunks, written in odd pieces.
        let sizes = [10, 0, 5000, 70_000, 300_000, 1, 64 * 1024, 200];
        let mut expected = Vec::new();
        for round in 0..3 {
            for (n, size) in sizes.iter().enumerate() {
                let body = body(n, *size);
                let mut pending = mailbox.begin_save().unwrap();
                for piece in body.chunks(4093) {
                    pending.write_all(piece).unwrap();
                }
                let uid = u32::try_from(expected.len()).unwrap() + 1;
                let received = 1_600_000_000 + i64::from(uid);
                let options = SaveOptions::default().with_uid(uid).with_received(received);
                mailbox.save(pending, options).unwrap();
                expected.push((uid, body, received));
            }
            assert_eq!(mailbox.commit().unwrap().len(), sizes.len(), "round {round}");
        }
        let listed = mailbox.messages().unwrap();
        assert_eq!(listed.len(), expected.len());
        for (info, (uid, body, received)) in listed.iter().zip(&expected) {
            assert_eq!((info.uid, info.received), (*uid, *received));
            let mut read = Vec::new();
            std::io::Read::read_to_end(&mut mailbox.open_message(*uid).unwrap(), &mut read)
                .unwrap();
            // Stored with LF line ends (the bodies have no other CR).
            let stored: Vec<u8> = body.iter().copied().filter(|b| *b != b'\r').collect();
            assert_eq!(read, stored, "UID {uid}");
            assert_eq!(info.virtual_size, body.len() as u64);
        }
        assert_eq!(tmp_files(&mailbox), Vec::<String>::new());
    }

    #[test]
    fn messages_given_up_leave_nothing_in_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        save(&mut mailbox, SaveOptions::default());
        mailbox.commit().unwrap();
        // Dropped while being written: a big one (its first chunks were written) and a
        // small one (nothing was).
        for size in [500_000, 100] {
            let mut pending = mailbox.begin_save().unwrap();
            pending.write_all(&body(1, size)).unwrap();
            drop(pending);
        }
        // Rolled back.
        for size in [100, 500_000, 100] {
            let mut pending = mailbox.begin_save().unwrap();
            pending.write_all(&body(2, size)).unwrap();
            mailbox.save(pending, SaveOptions::default()).unwrap();
        }
        mailbox.rollback();
        assert_eq!(tmp_files(&mailbox), Vec::<String>::new());
        // Staged when the handle is dropped.
        for size in [100, 500_000, 100] {
            let mut pending = mailbox.begin_save().unwrap();
            pending.write_all(&body(3, size)).unwrap();
            mailbox.save(pending, SaveOptions::default()).unwrap();
        }
        let tmp = mailbox.paths.tmp();
        drop(mailbox);
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        assert_eq!(mailbox.messages().unwrap().len(), 1);
    }

    #[test]
    fn a_message_being_written_when_the_handle_goes_leaves_nothing_in_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        save(&mut mailbox, SaveOptions::default());
        mailbox.commit().unwrap();
        let mut pending = mailbox.begin_save().unwrap();
        pending.write_all(&body(1, 500_000)).unwrap();
        let tmp = mailbox.paths.tmp();
        drop(mailbox);
        drop(pending);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn a_file_that_cannot_be_created_fails_the_save() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        save(&mut mailbox, SaveOptions::default());
        mailbox.commit().unwrap();
        // `tmp/` replaced behind the handle's back (which keeps the old one open).
        let tmp = mailbox.paths.tmp();
        std::fs::remove_dir(&tmp).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let failure = mailbox.begin_save().expect_err("created in a removed directory");
        assert!(failure.to_string().starts_with("create "), "{failure}");
        assert_eq!(mailbox.commit().unwrap(), Vec::<u32>::new());
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        assert_eq!(mailbox.messages().unwrap().len(), 1, "nothing of the failed save shows");
    }

    /// The cached uidlist after a commit is the file's tail: its header, where its lines
    /// end and its next UID, none of its records.
    fn assert_cached_tail(mailbox: &super::Mailbox) {
        let cached = mailbox.uidlist_cache.lock().unwrap().clone().unwrap().uidlist;
        let file = mailbox.paths.read_uidlist().unwrap().unwrap();
        assert!(!cached.is_whole() && cached.len() == 0, "{cached:?}");
        assert_eq!(
            (cached.next_uid(), cached.complete_len, cached.header_line()),
            (file.next_uid(), file.complete_len, file.header_line())
        );
    }

    #[test]
    fn the_cached_uidlist_is_the_files_tail() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        for batch in 0..4u32 {
            for n in 0..3u32 {
                let uid = 10 * batch + n + 1;
                let options = SaveOptions::default()
                    .with_uid(uid)
                    .with_flags(Flags::SEEN)
                    .with_keywords(vec![Keyword::new(format!("$K{n}")).unwrap()])
                    .with_pop3(Some(format!("uidl{uid}")), Some(uid))
                    .with_guid(format!("guid-{uid}"));
                save(&mut mailbox, options);
            }
            mailbox.commit().unwrap();
            assert_cached_tail(&mailbox);
        }
        // A rewrite reads the records again, and keeps them.
        mailbox.set_next_uid(100).unwrap();
        assert_eq!(
            Some(mailbox.uidlist_cache.lock().unwrap().clone().unwrap().uidlist),
            mailbox.paths.read_uidlist().unwrap()
        );
        save(&mut mailbox, SaveOptions::default());
        assert_eq!(mailbox.commit().unwrap(), [100]);
        assert_cached_tail(&mailbox);
        assert_eq!(mailbox.messages().unwrap().len(), 13);
    }

    /// A save of many messages committed every few keeps none of the records it appended
    /// (they are on disk; it used to keep them all, ~100 bytes a message): each commit
    /// finds a file name a caller's GUID asks for taken by any earlier commit's, and what
    /// needs every record afterwards (a flag change, an expunge, a rewrite) reads them.
    #[test]
    fn a_long_save_keeps_only_the_uidlists_tail() {
        use crate::maildir::uidlist::{Uidlist, ext};
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        // The body `save` writes: 22 bytes stored, 25 served.
        let usable = |n: u32| format!("1795424863.M{n}P1.vm,S=22,W=25");
        let guid_of = |uid: u32| match uid {
            // The name of UID 1, fifteen commits later: taken.
            151 => Some(usable(1)),
            _ if uid % 3 == 1 => Some(usable(uid)),
            _ if uid % 3 == 2 => Some(format!("guid-{uid}")),
            _ => None,
        };
        for uid in 1..=200u32 {
            let mut options = SaveOptions::default()
                .with_uid(uid)
                .with_flags(if uid % 2 == 0 { Flags::SEEN } else { Flags::EMPTY })
                .with_pop3(Some(format!("uidl{uid}")), None);
            if let Some(guid) = guid_of(uid) {
                options = options.with_guid(guid);
            }
            save(&mut mailbox, options);
            if uid % 10 == 0 {
                mailbox.commit().unwrap();
                assert_cached_tail(&mailbox);
            }
        }
        let bytes = std::fs::read(mailbox.paths.uidlist()).unwrap();
        let file = Uidlist::parse(&bytes).unwrap().unwrap();
        assert_eq!(file.to_bytes(), bytes, "as Dovecot writes it");
        assert_eq!(
            file.records().map(|r| r.uid).collect::<Vec<_>>(),
            (1..=200).collect::<Vec<_>>()
        );
        for record in file.records() {
            let uid = record.uid;
            assert_eq!(record.ext(ext::POP3_UIDL), Some(format!("uidl{uid}").as_str()));
            let guid = guid_of(uid);
            if uid % 3 == 1 && uid != 151 {
                let guid = guid.unwrap();
                assert_eq!((record.base(), record.ext(ext::GUID)), (guid.as_str(), None));
            } else {
                assert_ne!(record.base(), usable(1), "UID {uid}");
                assert_eq!(record.ext(ext::GUID), guid.as_deref(), "UID {uid}");
            }
        }
        // An early message's flags, another's expunge and a rewrite on the same handle.
        mailbox.set_flags(4, Flags::FLAGGED, &[]).unwrap();
        mailbox.expunge(&[5]).unwrap();
        mailbox.set_next_uid(300).unwrap();
        let listed = mailbox.messages().unwrap();
        assert_eq!(listed.len(), 199);
        assert_eq!(listed[3].uid, 4);
        assert!(listed[3].file_name.starts_with(&usable(4)));
        assert!(listed[3].file_name.ends_with(":2,F"), "{}", listed[3].file_name);
        assert_eq!(listed[4].uid, 6);
        assert_eq!(mailbox.status().unwrap().next_uid, 300);
        let rewritten = mailbox.paths.read_uidlist().unwrap().unwrap();
        assert_eq!(rewritten.len(), 200, "a rewrite keeps every record");
    }

    /// A commit another process left half done (its journal written, its files in `tmp/`,
    /// the uidlist not yet appended to) is completed by the next commit of a handle that
    /// kept only the uidlist's tail: the file did not change, the journal is what says so.
    #[test]
    fn an_interrupted_commit_is_completed_by_a_handle_keeping_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let maildir = Maildir::open(Location::maildir(&root));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        save(&mut mailbox, SaveOptions::default());
        assert_eq!(mailbox.commit().unwrap(), [1]);
        assert_cached_tail(&mailbox);
        let name = "1795424863.M9P9.other,S=22,W=25";
        std::fs::write(
            root.join("tmp").join(name),
            "Subject: cached

body
",
        )
        .unwrap();
        let journal = format!("dsync-rs journal 1\n{name}/{name}:2,S/2 :{name}\n");
        std::fs::write(root.join(super::journal::JOURNAL), journal).unwrap();
        save(&mut mailbox, SaveOptions::default());
        assert_eq!(mailbox.commit().unwrap(), [3]);
        assert_cached_tail(&mailbox);
        assert!(!root.join(super::journal::JOURNAL).exists());
        let listed: Vec<(u32, String)> =
            mailbox.messages().unwrap().into_iter().map(|m| (m.uid, m.file_name)).collect();
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert_eq!(listed[1], (2, format!("{name}:2,S")));
    }

    /// A name another handle took between two commits of this one is taken: the file it
    /// changed is read whole, and its names join those this handle knows.
    #[test]
    fn a_name_taken_by_another_handle_between_commits_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let guid = |n: u32| format!("1795424863.M{n}P1.vm,S=22,W=25");
        let save_as = |mailbox: &mut super::Mailbox, uid: u32, guid: String, flags: Flags| {
            save(mailbox, SaveOptions::default().with_uid(uid).with_guid(guid).with_flags(flags));
            mailbox.commit().unwrap();
        };
        let mut first = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        let mut second = maildir.mailbox(&MailboxName::inbox()).unwrap();
        save_as(&mut first, 1, guid(1), Flags::SEEN);
        save_as(&mut second, 2, guid(2), Flags::SEEN);
        // Other flags: not the very name of the other's file.
        save_as(&mut first, 3, guid(2), Flags::FLAGGED);
        save_as(&mut first, 4, guid(4), Flags::FLAGGED);
        let names: Vec<(u32, String)> =
            first.messages().unwrap().into_iter().map(|m| (m.uid, m.file_name)).collect();
        assert_eq!(names[1], (2, format!("{}:2,S", guid(2))));
        assert!(!names[2].1.starts_with("1795424863."), "{names:?}");
        assert_eq!(names[3], (4, format!("{}:2,F", guid(4))));
    }

    #[test]
    fn a_change_by_someone_else_is_seen_despite_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
        let mut first = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        let mut second = maildir.mailbox(&MailboxName::inbox()).unwrap();
        for round in 0..3u32 {
            save(&mut first, SaveOptions::default());
            assert_eq!(first.commit().unwrap(), [2 * round + 1]);
            save(&mut second, SaveOptions::default());
            assert_eq!(second.commit().unwrap(), [2 * round + 2]);
        }
        // A rewrite by someone else (a new inode) too.
        second.set_uid_validity(8).unwrap();
        save(&mut first, SaveOptions::default());
        assert_eq!(first.commit().unwrap(), [7]);
        assert_eq!(first.status().unwrap().uid_validity, 8);
    }
}
