//! Changes to sdbox mailboxes, each one transaction appended to the log under Dovecot's
//! lock, in the shapes Dovecot's own dsync writes (`EXTERNAL|SYNC`): flag and keyword
//! changes, expunges (`EXPUNGE_GUID`, then the files go), UIDNEXT and HIGHESTMODSEQ raises,
//! a new UIDVALIDITY or mailbox GUID, messages moved to new UIDs, and a mailbox emptied
//! under a new identity (a new log that resets the index).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha1::Digest as _;

use super::clean_stamp;
use super::mailbox::{ORIGIN_EXT, SdboxMailbox, index_bit, mailbox_guid, uid_of};
use super::save::TEMP_PREFIX;
use crate::error::{Error, Result};
use crate::flags::{Flags, Keyword};
use crate::fs::permissions::Permissions;
use crate::guid::Guid;
use crate::index::log::{LogHeader, Transaction, kind, payload};
use crate::index::state::{Coverage, FLAGS_MASK, IndexState, ext, field};

/// Flags of every record we write: the change is done (not a request), and it comes from
/// synchronising with another store, as Dovecot's dsync marks its own.
const OURS: u32 = kind::EXTERNAL | kind::SYNC;

/// One message of a commit.
#[derive(Debug, Clone)]
pub(crate) struct Save {
    pub(crate) uid: u32,
    pub(crate) flags: u8,
    pub(crate) keywords: Vec<String>,
    pub(crate) modseq: Option<u64>,
    pub(crate) pop3_uidl: bool,
    pub(crate) pop3_order: bool,
}

/// The UIDs of `changes`, ascending, each once.
fn uids_of(changes: &[(u32, Flags, Vec<Keyword>)]) -> Vec<u32> {
    let uids: BTreeSet<u32> = changes.iter().map(|(uid, _, _)| *uid).collect();
    uids.into_iter().collect()
}

/// `(first, last)` runs of the ascending `uids`.
fn ranges(uids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for uid in uids {
        match out.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(uid) => *last = uid,
            _ => out.push((uid, uid)),
        }
    }
    out
}

/// An `EXT_INTRO` of `name` that matches the extension as the index has it (so that
/// Dovecot applies what follows), or creates it with the given sizes.
fn intro(state: &IndexState, name: &str, hdr_size: u32, record_size: u16, align: u16) -> Vec<u8> {
    match state.ext(name) {
        Some((_, existing)) => payload::ext_intro(
            name,
            existing.reset_id,
            u32::try_from(existing.header.len()).unwrap_or(u32::MAX).max(hdr_size),
            existing.record_size,
            existing.record_align,
            true,
        ),
        None => payload::ext_intro(name, 0, hdr_size, record_size, align, true),
    }
}

/// Records that turn modseq tracking on when it is off (`mail_index_modseq_enable`).
fn enable_modseqs(state: &IndexState, transaction: &mut Transaction) {
    if state.ext(ext::MODSEQ).is_none() {
        transaction.push(kind::EXT_INTRO | OURS, intro(state, ext::MODSEQ, 16, 8, 8));
        let mut header = state.log_modseq.max(1).to_le_bytes().to_vec();
        header.extend_from_slice(&[0; 8]);
        transaction.push(kind::EXT_HDR_UPDATE | OURS, payload::header_update(0, &header));
    }
}

/// The transaction of a commit: `APPEND`, keywords, POP3 bits, modseqs last.
pub(crate) fn appends(state: &IndexState, saves: &[Save]) -> Transaction {
    let mut transaction = Transaction::new();
    let appends: Vec<(u32, u8)> = saves.iter().map(|s| (s.uid, s.flags)).collect();
    transaction.push(kind::APPEND | OURS, payload::append(&appends));
    let mut keywords: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for save in saves {
        let unique: BTreeSet<&str> = save.keywords.iter().map(String::as_str).collect();
        for keyword in unique {
            keywords.entry(keyword).or_default().push(save.uid);
        }
    }
    for (keyword, uids) in keywords {
        transaction.push(
            kind::KEYWORD_UPDATE | OURS,
            payload::keyword_update(true, keyword, &ranges(uids)),
        );
    }
    let bits = u8::from(saves.iter().any(|s| s.pop3_uidl))
        | (u8::from(saves.iter().any(|s| s.pop3_order)) << 1);
    let current = state.ext(ext::DBOX_HDR).and_then(|(_, e)| e.header.get(20).copied());
    if bits != 0 && current.unwrap_or(0) | bits != current.unwrap_or(0) {
        transaction.push(kind::EXT_INTRO | OURS, intro(state, ext::DBOX_HDR, 24, 0, 0));
        transaction.push(
            kind::EXT_HDR_UPDATE | OURS,
            payload::header_update(20, &[current.unwrap_or(0) | bits]),
        );
    }
    // Dovecot's POP3 server trusts `hdr-pop3-uidl` to name the highest UID with a UIDL
    // (`index_pop3_uidl_can_exist`); Dovecot raises it with every save that has one.
    let highest_pop3 = saves.iter().filter(|s| s.pop3_uidl || s.pop3_order).map(|s| s.uid).max();
    if let (Some(highest), Some((_, pop3))) = (highest_pop3, state.ext(ext::POP3_UIDL))
        && pop3.header.len() >= 4
        && crate::index::log::le32(&pop3.header, 0) < highest
    {
        transaction.push(kind::EXT_INTRO | OURS, intro(state, ext::POP3_UIDL, 4, 0, 0));
        transaction
            .push(kind::EXT_HDR_UPDATE | OURS, payload::header_update(0, &highest.to_le_bytes()));
    }
    let modseqs: Vec<(u32, u64)> =
        saves.iter().filter_map(|s| s.modseq.filter(|&m| m > 0).map(|m| (s.uid, m))).collect();
    if !modseqs.is_empty() {
        enable_modseqs(state, &mut transaction);
        transaction.push(kind::MODSEQ_UPDATE | OURS, payload::modseq_update(&modseqs));
    }
    transaction
}

/// The header and first transaction of a new mailbox's log (the recipe Dovecot 2.3.19.1
/// was shown to read: the `dbox-hdr` extension with the mailbox GUID, as Dovecot writes at
/// log creation; then modseqs on, UIDVALIDITY, and our origin record).
pub(crate) fn fresh_index(
    uid_validity: u32,
    guid: Guid,
    origin: Option<u32>,
) -> (LogHeader, Transaction) {
    let now = u32::try_from(crate::fs::now().0).unwrap_or(u32::MAX).max(1);
    let header = LogHeader::new(now, 1, now, 1);
    let mut transaction = Transaction::new();
    let empty = IndexState::default();
    transaction.push(kind::EXT_INTRO, intro(&empty, ext::DBOX_HDR, 24, 0, 0));
    let mut dbox_hdr = vec![0u8; 4];
    dbox_hdr.extend_from_slice(guid.as_bytes());
    dbox_hdr.extend_from_slice(&[0; 4]);
    transaction.push(kind::EXT_HDR_UPDATE, payload::header_update(0, &dbox_hdr));
    transaction.push(kind::EXT_INTRO | OURS, intro(&empty, ext::MODSEQ, 16, 8, 8));
    transaction.push(
        kind::EXT_HDR_UPDATE | OURS,
        payload::header_update(0, &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
    transaction.push(
        kind::HEADER_UPDATE | OURS,
        payload::header_updates(&[(field::UID_VALIDITY, &uid_validity.to_le_bytes())]),
    );
    if let Some(origin) = origin {
        transaction.push(kind::EXT_INTRO | OURS, intro(&empty, ORIGIN_EXT, 8, 0, 0));
        let mut record = uid_validity.to_le_bytes().to_vec();
        record.extend_from_slice(&origin.to_le_bytes());
        transaction.push(kind::EXT_HDR_UPDATE | OURS, payload::header_update(0, &record));
    }
    (header, transaction)
}

/// The UIDVALIDITY for a new or emptied mailbox: `wanted` (Dovecot's allocator is raised
/// past it, so neither side hands it out again), else the next from the allocator, above
/// `floor` (an origin or the value being replaced).
pub(crate) fn allocate_uid_validity(
    root: &Path,
    wanted: Option<u32>,
    floor: u32,
    permissions: &Permissions,
) -> Result<u32> {
    if let Some(value) = wanted {
        crate::uidvalidity::raise(root, value, permissions)?;
        return Ok(value);
    }
    if floor != 0 {
        crate::uidvalidity::raise(root, floor, permissions)?;
    }
    Ok(crate::uidvalidity::next(root, permissions)?.max(floor.saturating_add(1)))
}

/// Dovecot's `mail_generate_guid_128_hash`: a 32-hex-digit GUID as its bytes, any other
/// as the last 16 bytes of its SHA-1.
pub(crate) fn guid_128(guid: &str) -> [u8; 16] {
    if let Ok(parsed) = guid.parse::<Guid>() {
        return *parsed.as_bytes();
    }
    let digest = sha1::Sha1::digest(guid.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[4..20]);
    out
}

/// Removes our staging directories in the root whose writer is gone.
pub(crate) fn remove_stale_staging(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(super::STAGING_PREFIX) && writer_is_gone(name) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// True when `name` (ours) was written by a process of this host that no longer runs.
fn writer_is_gone(name: &str) -> bool {
    match crate::maildir::filename::writer_of(name) {
        Some((pid, host)) => {
            host == crate::fs::filename_host()
                && pid != std::process::id()
                && !crate::fs::process_alive(pid)
        }
        None => false,
    }
}

/// Under the log's exclusive lock (`state` current), before a change that adds files to
/// `mailbox`'s mail directory: the first time this store writes into it, removes the temp
/// files of our killed writers, and the `u.<uid>` files at or above the next UID, which
/// only a save killed before its transaction was written leaves (the index never listed
/// them; a Dovecot save of that UID would take an existing file for corruption and rebuild
/// the index). A directory whose stamp is the one a writer recorded when it left it clean
/// is not listed ([`clean_stamp`]). Returns whether the directory is known clean now (it
/// has that stamp, or was just listed): only then may the change record its own stamp.
pub(crate) fn clean_once(mailbox: &SdboxMailbox, state: &IndexState) -> Result<bool> {
    let dir = &mailbox.paths.mail;
    let first = mailbox.store.first_write_to(dir);
    if clean_stamp::unchanged(dir) {
        return Ok(true);
    }
    if !first {
        return Ok(false);
    }
    let next_uid = state.next_uid();
    let Ok(entries) = fs::read_dir(dir) else { return Ok(false) };
    #[cfg(test)]
    SCANS.set(SCANS.get() + 1);
    for entry in entries {
        // An entry that cannot be read is one not looked at: the directory is not known
        // clean then.
        let Ok(entry) = entry else { return Ok(false) };
        let name = entry.file_name();
        let orphan = uid_of(name.as_bytes()).is_some_and(|uid| uid >= next_uid);
        let ours = name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX) && writer_is_gone(n));
        if orphan || ours {
            crate::fs::remove_if_exists(&entry.path())?;
        }
    }
    Ok(true)
}

#[cfg(test)]
thread_local! {
    /// How many times this thread listed a mail directory for leftovers (tests).
    pub(crate) static SCANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Where [`SdboxMailbox::change_files`] unlinks the files of the UIDs a change returns.
#[derive(Debug, Clone, Copy)]
enum Unlink {
    /// Primary and alternate storage (expunged messages).
    Everywhere,
    /// The primary directory only (the old names of moved messages).
    Primary,
}

impl SdboxMailbox {
    /// Removes, under the log's exclusive lock (which every writer holds from renaming its
    /// files to `u.<uid>` until its transaction is in the log), what saves that never
    /// finished left: `u.<uid>` files at or above the next UID, which Dovecot does not
    /// show, and our temp files of processes that are gone. Once per mailbox and run, as
    /// the first write does it.
    pub(crate) fn remove_unfinished_saves(&self) -> Result<()> {
        self.store.writable()?;
        let mut index = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(locked) = index.lock_headers(self.store.options.lock_timeout)? else {
            return Ok(()); // no log yet: nothing was ever saved here
        };
        if clean_once(self, locked.state())? && !clean_stamp::unchanged(&self.paths.mail) {
            clean_stamp::record(&self.paths.mail, self.store.permissions()?);
        }
        Ok(())
    }

    /// Records the mail directory's stamp as clean (under the lock, after a change that
    /// began with the directory known clean).
    pub(crate) fn record_clean(&self) -> Result<()> {
        clean_stamp::record(&self.paths.mail, self.store.permissions()?);
        Ok(())
    }

    /// Takes the log's exclusive lock, lets `change` build a transaction from the index as
    /// it is now, and appends it. `change` returns the transaction (empty: nothing to
    /// write) and a value handed back. `records` says which messages `change` sees.
    fn change<T>(
        &self,
        records: Coverage<'_>,
        change: impl FnOnce(&IndexState) -> Result<(Transaction, T)>,
    ) -> Result<T> {
        self.change_files(records, None, |state| Ok((change(state)?, Vec::new())))
    }

    /// [`Self::change`] for a change to the mail directory's files: whatever `change` does
    /// to them (it may link new `u.<uid>` files it logs), and the files of the UIDs it
    /// returns, unlinked (`unlink`: where) after the transaction is in the log, still
    /// under the lock. The mail directory so changes only under the lock, and a clean
    /// stamp it had when the lock was taken is recorded again afterwards ([`clean_stamp`]).
    fn change_files<T>(
        &self,
        records: Coverage<'_>,
        unlink: Option<Unlink>,
        change: impl FnOnce(&IndexState) -> Result<((Transaction, T), Vec<u32>)>,
    ) -> Result<T> {
        self.store.writable()?;
        let mut index = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let timeout = self.store.options.lock_timeout;
        let locked = match records {
            Coverage::Headers => index.lock_headers(timeout)?,
            Coverage::Uids(uids) => index.lock_uids(timeout, uids)?,
            Coverage::All => index.lock(timeout)?,
        };
        let mut locked = locked.ok_or_else(|| self.no_log())?;
        let clean = unlink.is_some() && clean_stamp::unchanged(&self.paths.mail);
        let ((transaction, value), gone) = change(locked.state())?;
        locked.append(&transaction, self.store.fsync())?;
        match unlink {
            Some(Unlink::Everywhere) => self.unlink_files(&gone)?,
            Some(Unlink::Primary) => self.unlink_primary(&gone)?,
            None => {}
        }
        if clean && !clean_stamp::unchanged(&self.paths.mail) {
            self.record_clean()?;
        }
        Ok(value)
    }

    /// Replaces the flags and keywords of message `uid`.
    pub fn set_flags(&self, uid: u32, flags: Flags, keywords: &[Keyword]) -> Result<()> {
        self.set_flags_many(&[(uid, flags, keywords.to_vec())])
    }

    /// [`Self::set_flags`] for many messages in one transaction, which holds only what
    /// changes. A UID the mailbox does not hold fails the whole call: nothing is changed.
    pub fn set_flags_many(&self, changes: &[(u32, Flags, Vec<Keyword>)]) -> Result<()> {
        let uids = uids_of(changes);
        self.change(Coverage::Uids(&uids), |state| Ok((self.flag_transaction(state, changes)?, ())))
    }

    /// [`Self::set_flags`] for each change in turn, each its own transaction as
    /// `set_flags` writes it (so the log, and the modseqs Dovecot counts from it, are what
    /// one call per message gives), under one lock and one read of the index for their
    /// messages. A UID the mailbox does not hold fails at its change: those before it are
    /// made.
    pub fn set_flags_each(&self, changes: &[(u32, Flags, Vec<Keyword>)]) -> Result<()> {
        self.store.writable()?;
        let uids = uids_of(changes);
        let mut index = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let locked = index.lock_uids(self.store.options.lock_timeout, &uids)?;
        let mut locked = locked.ok_or_else(|| self.no_log())?;
        for change in changes {
            let transaction =
                self.flag_transaction(locked.state(), std::slice::from_ref(change))?;
            locked.append(&transaction, self.store.fsync())?;
        }
        Ok(())
    }

    /// The transaction that gives the messages of `changes` their flags and keywords
    /// (only what changes; `state` holds at least their records).
    fn flag_transaction(
        &self,
        state: &IndexState,
        changes: &[(u32, Flags, Vec<Keyword>)],
    ) -> Result<Transaction> {
        let mut updates = Vec::new();
        let mut keywords: BTreeMap<(&str, bool), Vec<u32>> = BTreeMap::new();
        let mut sorted: Vec<&(u32, Flags, Vec<Keyword>)> = changes.iter().collect();
        sorted.sort_by_key(|(uid, _, _)| *uid);
        for (uid, flags, wanted) in sorted {
            let position = state
                .position(*uid)
                .ok_or_else(|| Error::UidNotFound { mailbox: self.name.to_string(), uid: *uid })?;
            let message = &state.messages[position];
            let (old, new) = (message.flags & FLAGS_MASK, index_bit(*flags));
            if old != new {
                updates.push((*uid, *uid, new & !old, old & !new));
            }
            let current: BTreeSet<&str> = message
                .keywords
                .iter()
                .filter_map(|&i| state.keywords.get(i as usize).map(String::as_str))
                .collect();
            let wanted: BTreeSet<&str> = wanted.iter().map(Keyword::as_str).collect();
            for added in wanted.difference(&current) {
                keywords.entry((added, true)).or_default().push(*uid);
            }
            for removed in current.difference(&wanted) {
                keywords.entry((removed, false)).or_default().push(*uid);
            }
        }
        let mut transaction = Transaction::new();
        if !updates.is_empty() {
            transaction.push(kind::FLAG_UPDATE | OURS, payload::flag_update(&updates));
        }
        for ((keyword, add), uids) in keywords {
            transaction.push(
                kind::KEYWORD_UPDATE | OURS,
                payload::keyword_update(add, keyword, &ranges(uids)),
            );
        }
        Ok(transaction)
    }

    /// Removes messages: one `EXPUNGE_GUID` transaction (each with its GUID, as Dovecot
    /// expunges), then their files. Unknown UIDs are ignored (already expunged); UIDs are
    /// never reused.
    pub fn expunge(&self, uids: &[u32]) -> Result<()> {
        let wanted: Vec<u32> =
            uids.iter().copied().collect::<BTreeSet<u32>>().into_iter().collect();
        self.change_files(Coverage::Uids(&wanted), Some(Unlink::Everywhere), |state| {
            let mut entries = Vec::new();
            for &uid in &wanted {
                let Some(position) = state.position(uid) else { continue };
                let guid = match self.read_file(uid, state.messages[position].flags)? {
                    Ok(info) => info.metadata.guid.as_deref().map_or([0; 16], guid_128),
                    Err(_) => [0; 16],
                };
                entries.push((uid, guid));
            }
            let mut transaction = Transaction::new();
            if !entries.is_empty() {
                transaction.push(
                    kind::EXPUNGE_GUID | kind::EXPUNGE_PROT | OURS,
                    payload::expunge_guid(&entries),
                );
            }
            let gone: Vec<u32> = entries.into_iter().map(|(uid, _)| uid).collect();
            Ok(((transaction, ()), gone))
        })
    }

    /// Unlinks the files of `uids` (primary and alternate storage).
    fn unlink_files(&self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut dirs = vec![self.paths.mail.clone()];
        dirs.extend(self.paths.alt.clone());
        for dir in &dirs {
            for uid in uids {
                crate::fs::remove_if_exists(&dir.join(format!("u.{uid}")))?;
            }
            if self.store.fsync() && dir.is_dir() {
                crate::fs::fsync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Raises the next UID to `next_uid` (never lowers it).
    pub fn set_next_uid(&self, next_uid: u32) -> Result<()> {
        self.change(Coverage::Headers, |state| {
            let mut transaction = Transaction::new();
            if next_uid > state.next_uid() {
                transaction.push(
                    kind::HEADER_UPDATE | OURS,
                    payload::header_updates(&[(field::NEXT_UID, &next_uid.to_le_bytes())]),
                );
            }
            Ok((transaction, ()))
        })
    }

    /// Raises HIGHESTMODSEQ to at least `modseq` (so CONDSTORE clients never see it
    /// shrink); turns modseqs on when they are off.
    pub fn raise_highest_modseq(&self, modseq: u64) -> Result<()> {
        self.change(Coverage::Headers, |state| {
            let mut transaction = Transaction::new();
            if modseq > state.highest_modseq() {
                enable_modseqs(state, &mut transaction);
                transaction
                    .push(kind::MODSEQ_UPDATE | OURS, payload::modseq_update(&[(0, modseq)]));
            }
            Ok((transaction, ()))
        })
    }

    /// Replaces UIDVALIDITY (a header update, as Dovecot's `mailbox_update` writes it;
    /// Dovecot's sessions then see the mailbox as new). Dovecot's allocator is raised past
    /// it.
    pub fn set_uid_validity(&self, uid_validity: u32) -> Result<()> {
        crate::uidvalidity::check_nonzero(uid_validity)?;
        let root = self.store.location.root().to_path_buf();
        let permissions = self.store.permissions()?.clone();
        self.change(Coverage::Headers, |state| {
            let mut transaction = Transaction::new();
            if state.uid_validity() != uid_validity {
                crate::uidvalidity::raise(&root, uid_validity, &permissions)?;
                transaction.push(
                    kind::HEADER_UPDATE | OURS,
                    payload::header_updates(&[(field::UID_VALIDITY, &uid_validity.to_le_bytes())]),
                );
            }
            Ok((transaction, ()))
        })
    }

    /// Replaces the mailbox GUID (`dbox-hdr`), keeping UIDVALIDITY, UIDs and messages.
    /// Dovecot's mailbox list index, which caches GUIDs, is removed (it is rebuilt).
    pub fn set_guid(&self, guid: Guid) -> Result<()> {
        let changed = self.change(Coverage::Headers, |state| {
            let mut transaction = Transaction::new();
            if mailbox_guid(state) != Some(guid) {
                transaction.push(kind::EXT_INTRO | OURS, intro(state, ext::DBOX_HDR, 24, 0, 0));
                transaction
                    .push(kind::EXT_HDR_UPDATE | OURS, payload::header_update(4, guid.as_bytes()));
            }
            let changed = !transaction.is_empty();
            Ok((transaction, changed))
        })?;
        if changed {
            super::remove_list_index(&self.store.location)?;
        }
        Ok(())
    }

    /// Marks the index deleted (`INDEX_DELETED`), as Dovecot does before it removes a
    /// mailbox, and returns the mailbox GUID. Nothing to mark without a log.
    pub(crate) fn mark_deleted(&self) -> Result<Option<Guid>> {
        let mut index = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut locked) = index.lock_headers(self.store.options.lock_timeout)? else {
            return Ok(None);
        };
        let guid = mailbox_guid(locked.state());
        let mut transaction = Transaction::new();
        transaction.push(kind::INDEX_DELETED | kind::EXTERNAL, vec![0; 4]);
        locked.append(&transaction, self.store.fsync())?;
        Ok(guid)
    }

    /// Empties the mailbox and gives it a new identity: `uid_validity`, next UID 1 and
    /// `guid` (a new one when `None`).
    pub fn reset(&self, uid_validity: u32, guid: Option<Guid>) -> Result<()> {
        crate::uidvalidity::check_nonzero(uid_validity)?;
        self.reset_to(Some(uid_validity), guid, None).map(|_| ())
    }

    /// Empties the mailbox as [`Self::reset`] does, under a new UIDVALIDITY allocated here
    /// (above every value this store or `origin` ever had), and records in the new index
    /// that it holds the UIDs of `origin` ([`crate::MailboxStatus::origin_uid_validity`]).
    /// Returns the new value.
    pub fn reset_with_origin(&self, guid: Option<Guid>, origin: u32) -> Result<u32> {
        crate::uidvalidity::check_nonzero(origin)?;
        self.reset_to(None, guid, Some(origin))
    }

    /// Under the lock: every message expunged in the old log (so a crash leaves a
    /// consistent, empty mailbox), every message file removed, then a new log that resets
    /// the index (same indexid, next file sequence, `prev_file_seq` 0) renamed into place.
    fn reset_to(
        &self,
        uid_validity: Option<u32>,
        guid: Option<Guid>,
        origin: Option<u32>,
    ) -> Result<u32> {
        self.store.writable()?;
        let root = self.store.location.root().to_path_buf();
        let permissions = self.store.permissions()?.clone();
        let fsync = self.store.fsync();
        let mut index = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut locked =
            index.lock(self.store.options.lock_timeout)?.ok_or_else(|| self.no_log())?;
        let old = locked.state().uid_validity();
        let uid_validity = match uid_validity {
            Some(value) if value == old => {
                return Err(Error::InvalidValue {
                    field: "UIDVALIDITY",
                    value: value.to_string(),
                    reason: "a reset needs a new UIDVALIDITY (UIDs must never be reused)",
                });
            }
            wanted => {
                allocate_uid_validity(&root, wanted, old.max(origin.unwrap_or(0)), &permissions)?
            }
        };
        let old_guid = mailbox_guid(locked.state());
        let uids: Vec<u32> = locked.state().messages.iter().map(|m| m.uid).collect();
        if !uids.is_empty() {
            let entries: Vec<(u32, [u8; 16])> = uids.iter().map(|&uid| (uid, [0; 16])).collect();
            let mut transaction = Transaction::new();
            transaction.push(
                kind::EXPUNGE_GUID | kind::EXPUNGE_PROT | OURS,
                payload::expunge_guid(&entries),
            );
            locked.append(&transaction, fsync)?;
        }
        let mut dirs = vec![self.paths.mail.clone()];
        dirs.extend(self.paths.alt.clone());
        for dir in &dirs {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if uid_of(name.as_bytes()).is_some() || name.as_bytes().starts_with(b".temp.") {
                    crate::fs::remove_if_exists(&entry.path())?;
                }
            }
            if fsync {
                crate::fs::fsync_dir(dir)?;
            }
        }
        let guid = guid.unwrap_or_else(Guid::generate);
        let (_, transaction) = fresh_index(uid_validity, guid, origin);
        let indexid = locked.head().indexid;
        let now = u32::try_from(crate::fs::now().0).unwrap_or(u32::MAX);
        locked.replace(indexid, now, &transaction, &permissions, fsync)?;
        drop(index);
        if old_guid != Some(guid) {
            super::remove_list_index(&self.store.location)?;
        }
        Ok(uid_validity)
    }

    /// Gives messages new UIDs: each `(old, new)` moves the message at UID `old` to UID
    /// `new` with its flags and keywords (new UIDs ascending and at least the next UID).
    /// The file is hard-linked to `u.<new>`, one transaction appends the new UIDs and
    /// expunges the old ones, and the old names go: a crash leaves each message at its old
    /// UID or its new one, never both. Pairs whose old UID no longer exists are skipped;
    /// their UIDs are returned.
    pub fn renumber(&self, moves: &[(u32, u32)]) -> Result<Vec<u32>> {
        let olds: Vec<u32> =
            moves.iter().map(|(old, _)| *old).collect::<BTreeSet<u32>>().into_iter().collect();
        self.change_files(Coverage::Uids(&olds), Some(Unlink::Primary), |state| {
            let mut next = state.next_uid();
            let mut missing = Vec::new();
            let mut saves = Vec::new();
            let mut expunges = Vec::new();
            let mut seen = HashSet::new();
            for &(old, new) in moves {
                if new < next {
                    return Err(Error::UidTooLow {
                        mailbox: self.name.to_string(),
                        uid: new,
                        next_uid: next,
                    });
                }
                let Some(position) = state.position(old).filter(|_| seen.insert(old)) else {
                    missing.push(old);
                    continue;
                };
                let message = &state.messages[position];
                let Ok(info) = self.read_file(old, message.flags)? else {
                    missing.push(old);
                    continue;
                };
                let target = self.paths.mail.join(format!("u.{new}"));
                crate::fs::remove_if_exists(&target)?;
                fs::hard_link(&info.path, &target).map_err(|e| Error::io("link", &target, e))?;
                saves.push(Save {
                    uid: new,
                    flags: message.flags,
                    keywords: message
                        .keywords
                        .iter()
                        .filter_map(|&i| state.keywords.get(i as usize).cloned())
                        .collect(),
                    modseq: None,
                    pop3_uidl: false,
                    pop3_order: false,
                });
                expunges.push((old, info.metadata.guid.as_deref().map_or([0; 16], guid_128)));
                next = new.saturating_add(1);
            }
            if saves.is_empty() {
                return Ok(((Transaction::new(), missing), Vec::new()));
            }
            let mut transaction = appends(state, &saves);
            transaction.push(
                kind::EXPUNGE_GUID | kind::EXPUNGE_PROT | OURS,
                payload::expunge_guid(&expunges),
            );
            let moved = expunges.iter().map(|(uid, _)| *uid).collect();
            Ok(((transaction, missing), moved))
        })
    }

    /// Unlinks `u.<uid>` of the primary directory only (the old names of moved messages).
    fn unlink_primary(&self, uids: &[u32]) -> Result<()> {
        for uid in uids {
            crate::fs::remove_if_exists(&self.paths.mail.join(format!("u.{uid}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MailboxName, SaveOptions, Sdbox, SdboxLocation};

    /// A long save keeps no message record between its commits (only the index's
    /// headers); a flag change reads the record of the message it changes, the next save
    /// lets it go again, and what was written reads back whole.
    #[test]
    fn saves_keep_no_record_of_the_messages_they_append() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sdbox::open(SdboxLocation::new(dir.path().join("sdbox")));
        let name = MailboxName::new(["Big"]).unwrap();
        let mut mailbox = store.create_mailbox(&name, Some(7), None).unwrap();
        let cached = |mailbox: &SdboxMailbox| {
            mailbox
                .index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .cached_messages()
        };
        let save = |mailbox: &mut SdboxMailbox, count: u32| {
            for index in 0..count {
                let options = SaveOptions::default()
                    .with_keywords(vec![Keyword::new(format!("k{}", index % 3)).unwrap()])
                    .with_modseq(u64::from(index) + 10);
                mailbox.save_from(&mut &b"Subject: x\n\nbody\n"[..], options).unwrap();
            }
            mailbox.commit().unwrap()
        };
        for _ in 0..3 {
            save(&mut mailbox, 5);
            assert_eq!(cached(&mailbox), Some((true, 0)));
        }
        mailbox.set_next_uid(40).unwrap();
        mailbox.raise_highest_modseq(900).unwrap();
        assert_eq!(cached(&mailbox), Some((true, 0)));
        mailbox.set_flags(3, Flags::SEEN, &[]).unwrap();
        // Only the record of the message it changes.
        assert_eq!(cached(&mailbox), Some((false, 1)));
        assert_eq!(save(&mut mailbox, 2), [40, 41]);
        assert_eq!(cached(&mailbox), Some((true, 0)));
        let status = mailbox.status().unwrap();
        assert_eq!((status.messages, status.next_uid, status.highest_modseq), (17, 42, Some(905)));
        let listed = mailbox.messages().unwrap();
        assert_eq!(listed[2].flags, Flags::SEEN);
        assert_eq!(listed[4].keywords, [Keyword::new("k1").unwrap()]);
        assert_eq!(listed[16].uid, 41);
    }

    #[test]
    fn guids_hash_as_dovecot_hashes_them() {
        let hex = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(guid_128(hex), *hex.parse::<Guid>().unwrap().as_bytes());
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d: the last 16 bytes.
        assert_eq!(
            guid_128("abc"),
            [
                0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0,
                0xd8, 0x9d
            ]
        );
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), [(1, 3), (5, 5), (7, 8)]);
    }
}
