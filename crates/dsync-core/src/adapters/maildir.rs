//! A Maildir (via `mailstore`) as a sync side, read and written exactly as Dovecot 2.3
//! keeps it.

use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use mailstore::{
    CopyOutcome, Durability, Keyword, Layout, Location, Maildir, Options, PendingMessage,
    SaveOptions,
};

use crate::error::{ErrorKind, StorageError};
use crate::history::{FolderHistory, MessageHistory};
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStamp, MailboxStatus,
    MessageMeta, SystemFlags, Uid, UidValidity,
};
use crate::state::listing::{Header, VERSION, Writer};
use crate::storage::{
    Capabilities, MailboxChanges, MailboxWriter, MessageListing, MessageSink, NewMailbox, Skip,
    Storage, StorageMut,
};

use super::kept::Kept;

mod listing;

use listing::{Differ, KeptCur, Learned, ListingFiles, keywords_stamp, listed_file};

/// Dovecot's `dsync_alt_char`: replaces characters a name cannot hold on disk.
const ALT_CHAR: char = '_';

/// A Maildir store.
///
/// Read only beneath its root (see [`mailstore::Mailbox::list_messages`]): what the store
/// holds but is not read as mail (a symlink leaving the Maildir, a FIFO in `cur/`, a folder
/// name that gives no mailbox name, a file the system refuses to read) is reported through
/// [`Storage::take_skipped`], so that the run fails (exit 65) instead of leaving it behind in
/// silence.
#[derive(Debug, Clone)]
pub struct MaildirStorage {
    maildir: Maildir,
    /// Entries left out since the last [`Storage::take_skipped`].
    skipped: Vec<Skip>,
    /// Keywords that could not be stored, for [`Storage::take_warnings`].
    warnings: Vec<String>,
    /// The mailbox fetched from last, with its view ([`super::kept`]).
    kept: Kept<mailstore::Mailbox>,
    /// Where the folders' last listings are kept ([`MaildirStorage::keep_listings_in`]);
    /// boxed, as [`Kept`] is: the CLI moves storages by value.
    listings: Option<Box<ListingFiles>>,
    /// Folder reads that took an unchanged `cur/` from the kept listing
    /// ([`MaildirStorage::unchanged_cur_reads_spared`]).
    cur_reads_spared: usize,
}

impl MaildirStorage {
    /// Opens the Maildir at a Dovecot-style location (`maildir:PATH[:LAYOUT=fs][:UTF-8]`).
    /// Nothing is created until the first write.
    pub fn open(location: &str, durability: Durability) -> Result<MaildirStorage, StorageError> {
        let location: Location = location.parse().map_err(convert_error)?;
        Ok(MaildirStorage::open_location(location, durability))
    }

    /// Opens the Maildir++ store at `root` (modified UTF-7 folder names), whatever
    /// characters its path holds (a `:` cannot be written in a location string). Nothing is
    /// created until the first write. For `LAYOUT=fs` or UTF-8 names use
    /// [`MaildirStorage::open_location`] with a [`Location`] built from the path.
    pub fn open_path(root: impl AsRef<Path>, durability: Durability) -> MaildirStorage {
        MaildirStorage::open_location(Location::maildir(root.as_ref()), durability)
    }

    /// Opens the Maildir at `location`. Nothing is created until the first write.
    pub fn open_location(location: Location, durability: Durability) -> MaildirStorage {
        MaildirStorage::from_maildir(Maildir::with_options(
            location,
            Options::default().with_durability(durability),
        ))
    }

    /// Opens a Maildir that is only read (a backup source): nothing on disk is ever written,
    /// not even the uidlist entries Dovecot would add for newly delivered files (those get
    /// UIDs in memory, the way a sync would number them).
    pub fn open_read_only(location: &str) -> Result<MaildirStorage, StorageError> {
        let location: Location = location.parse().map_err(convert_error)?;
        Ok(MaildirStorage::open_location_read_only(location))
    }

    /// [`MaildirStorage::open_read_only`] with a typed [`Location`].
    pub fn open_location_read_only(location: Location) -> MaildirStorage {
        MaildirStorage::from_maildir(Maildir::with_options(
            location,
            Options::default().with_read_only(true),
        ))
    }

    /// Wraps an already opened [`Maildir`].
    pub fn from_maildir(maildir: Maildir) -> MaildirStorage {
        MaildirStorage {
            maildir,
            skipped: Vec::new(),
            warnings: Vec::new(),
            kept: Kept::new(),
            listings: None,
            cur_reads_spared: 0,
        }
    }

    /// How many folder reads of [`Storage::changes_since`] took `cur/` from the folder's
    /// kept listing ([`MaildirStorage::keep_listings_in`]) instead of reading it: `cur/`
    /// had the stamp the last listing recorded, so its files were the ones kept (only
    /// `new/` and the uidlist were read). For logs and tests.
    pub fn unchanged_cur_reads_spared(&self) -> usize {
        self.cur_reads_spared
    }

    /// Keeps what each folder's listing learned of its message files in files beginning
    /// with `prefix` (`PREFIX.<hash>`, one a folder, beside the state; created with
    /// `permissions`): a source's next listing then `stat`s and opens only the files it has
    /// not seen, and [`Storage::changes_since`] answers from the folder's file names alone
    /// (see `adapters/maildir/listing.rs`). With `write` false (a dry run) they are only
    /// read; with `read` false (a full run) only written. For a source: a Maildir we write
    /// changes its files' names under us.
    pub fn keep_listings_in(
        &mut self,
        prefix: PathBuf,
        permissions: mailstore::Permissions,
        write: bool,
        read: bool,
    ) {
        self.listings = Some(Box::new(ListingFiles::new(prefix, permissions, write, read)));
    }

    /// The underlying store.
    pub fn maildir(&self) -> &Maildir {
        &self.maildir
    }

    /// The owner, group and modes of what this store creates ([`Maildir::permissions`]),
    /// for files kept beside the mail (a state file, a lock).
    pub fn permissions(&self) -> Result<mailstore::Permissions, StorageError> {
        self.maildir.permissions().map_err(convert_error)
    }

    /// Moves folders whose `LAYOUT=fs` directories stand where the Maildir's own files
    /// belong (written by older versions) to the names [`StorageMut::local_name`] gives
    /// them now ([`Maildir::repair_reserved_names`]); one line per folder moved, for the
    /// operator. Call it before a run that writes.
    pub fn repair_reserved_names(&self) -> Result<Vec<String>, StorageError> {
        let root = self.maildir.location().root();
        let moved = self.maildir.repair_reserved_names().map_err(convert_error)?;
        Ok(moved
            .iter()
            .map(|(from, to)| {
                let relative =
                    |path: &Path| path.strip_prefix(root).unwrap_or(path).display().to_string();
                format!(
                    "the folder directory {} had the name of a file the Maildir needs; moved \
                     to {}",
                    relative(from),
                    relative(to)
                )
            })
            .collect())
    }

    /// Flushes everything to disk (needed once at the end with [`Durability::Deferred`]).
    pub fn sync_to_disk(&self) -> Result<(), StorageError> {
        self.maildir.sync_to_disk().map_err(convert_error)
    }

    /// Opens `name` afresh; the mailbox kept from the last fetch goes first (at most one
    /// view is held, and none that a write through this storage may have made stale).
    fn mailbox(&mut self, name: &MailboxName) -> Result<mailstore::Mailbox, StorageError> {
        self.kept.forget();
        self.maildir.mailbox(&to_store_name(name)?).map_err(convert_error)
    }

    /// Keeps what a listing or a read left out, for [`Storage::take_skipped`].
    fn skip(&mut self, left_out: &mailstore::LeftOut) {
        self.skipped.push(left_out_skip(left_out));
    }
}

impl Storage for MaildirStorage {
    fn describe(&self) -> String {
        format!("maildir:{}", self.maildir.location().root().display())
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skipped)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mailbox_guids: true,
            message_guids: true,
            noselect_placeholders: self.maildir.location().layout() == Layout::Fs,
            unstable_uids: false,
            assigns_uids: false,
        }
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        let listing = self.maildir.list_mailboxes().map_err(convert_error)?;
        for left_out in &listing.left_out {
            self.skip(left_out);
        }
        listing
            .entries
            .into_iter()
            .map(|entry| {
                let name = from_store_name(&entry.name)?;
                Ok(MailboxInfo { selectable: entry.selectable, ..MailboxInfo::new(name) })
            })
            .collect()
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        let names = self.maildir.subscriptions().map_err(convert_error)?;
        names.iter().map(from_store_name).collect()
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let before = token_before(&opened, self.maildir.is_read_only());
        let status = opened.status().map_err(convert_error)?;
        let token = before.after();
        Ok(MailboxStatus { change_token: token, ..convert_status(&status)? })
    }

    /// Three `stat`s and the uidlist's first line, not a count of every file.
    fn stamp(&mut self, mailbox: &MailboxName) -> Result<MailboxStamp, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let change_token = change_token(&opened, self.maildir.is_read_only());
        let guid = opened.guid().map_err(convert_error)?.map(|guid| MailboxGuid(*guid.as_bytes()));
        Ok(MailboxStamp { change_token, guid })
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        let opened = self.mailbox(mailbox)?;
        // The message list first: reading it may assign UIDs to new files, which the
        // status read afterwards then accounts for.
        let before = token_before(&opened, self.maildir.is_read_only());
        // The status comes from the listing's own read of the uidlist: a second parse
        // cost more memory than the listing (benches/RESULTS-memory.md). The store's view
        // goes with `opened` before the conversion, which takes the store's strings.
        let (listing, status) = opened.list_messages_with_status().map_err(convert_error)?;
        drop(opened);
        let token = before.after();
        for left_out in &listing.left_out {
            self.skip(left_out);
        }
        let status = MailboxStatus { change_token: token, ..convert_status(&status)? };
        let messages: Vec<MessageMeta> =
            listing.entries.into_iter().filter_map(convert_message).collect();
        Ok(MailboxContents { status, messages })
    }

    /// The store's view of the folder (its uidlist and file names) is held while the
    /// messages are read and handed on one at a time: no list of them.
    fn listing(&mut self, mailbox: &MailboxName) -> Result<MessageListing<'_>, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let before = token_before(&opened, self.maildir.is_read_only());
        let root = self.maildir.location().root();
        let kept = self.listings.as_ref().map(|files| {
            let folder = ListingFiles::folder(root, opened.path());
            (ListingFiles::clone(files), folder, files.load(folder), keywords_stamp(opened.path()))
        });
        let stream = opened.into_messages().map_err(convert_error)?;
        let token = before.after();
        let uid_validity = stream.status().uid_validity;
        let cur = stream.cur_stamp().map(mailstore::DirStamp::to_text).unwrap_or_default();
        let recording = kept.map(|(files, folder, previous, keywords)| {
            let previous = previous.filter(|previous| previous.header.uid_validity == uid_validity);
            let header = Header {
                folder,
                uid_validity,
                token: token.clone().unwrap_or_default(),
                keywords,
                cur,
                version: VERSION,
            };
            let listing = files.writer();
            Recording { files, header, learned: Learned::new(previous), listing }
        });
        let status = MailboxStatus { change_token: token, ..convert_status(stream.status())? };
        let messages = ListedMessages { stream, skipped: &mut self.skipped, recording };
        Ok(MessageListing::new(status, messages))
    }

    /// From the folder's last listing ([`MaildirStorage::keep_listings_in`]) when it was
    /// the one `token` was given with: `cur/` and `new/` read and compared by name, only
    /// new files `stat`ed (see `adapters/maildir/listing.rs`); `cur/` not even read when
    /// its stamp is the one the listing recorded (`listing::KeptCur`).
    fn changes_since(
        &mut self,
        mailbox: &MailboxName,
        token: &str,
    ) -> Result<Option<MailboxChanges>, StorageError> {
        let Some(files) = self.listings.clone() else { return Ok(None) };
        if token.is_empty() {
            return Ok(None);
        }
        let opened = self.mailbox(mailbox)?;
        let folder = ListingFiles::folder(self.maildir.location().root(), opened.path());
        let Some(previous) = files.load(folder) else { return Ok(None) };
        let keywords = keywords_stamp(opened.path());
        if previous.header.token != token || previous.header.keywords != keywords {
            return Ok(None);
        }
        let before = token_before(&opened, self.maildir.is_read_only());
        let kept_cur =
            mailstore::DirStamp::from_text(&previous.header.cur).zip(previous.try_clone());
        let mut stream = match kept_cur {
            // Walked to its end (or dropped) before the comparison's walk begins: the two
            // share the file's offset.
            Some((stamp, copy)) => {
                opened.into_messages_knowing_cur(&stamp, &mut KeptCur::new(copy))
            }
            None => opened.into_messages(),
        }
        .map_err(convert_error)?;
        if stream.status().uid_validity != previous.header.uid_validity {
            return Ok(None);
        }
        if !stream.read_cur() {
            self.cur_reads_spared += 1;
        }
        let cur = stream.cur_stamp().map(mailstore::DirStamp::to_text).unwrap_or_default();
        let uid_validity = previous.header.uid_validity;
        let mut differ = Differ::new(previous, files.writer());
        let mut changed = Vec::new();
        while let Some(info) = stream.next_knowing(&mut differ) {
            let info = info.map_err(convert_error)?;
            if differ.listed(&info)
                && let Some(meta) = convert_message(info)
            {
                changed.push(meta);
            }
        }
        let token = before.after();
        let Some(vanished) = differ.vanished().filter(|_| !differ.foreign) else {
            return Ok(None);
        };
        let status = MailboxStatus { change_token: token, ..convert_status(stream.status())? };
        self.skipped.extend(stream.take_left_out().iter().map(left_out_skip));
        let vanished = vanished
            .into_iter()
            .filter_map(|(first, last)| Some((Uid::new(first)?, Uid::new(last)?)))
            .collect();
        // The listing now, under the token just taken; it gives `cur/`'s files when every
        // file has its directory.
        let cur = if differ.now.all_placed() { cur } else { String::new() };
        let header = Header {
            folder,
            uid_validity,
            token: status.change_token.clone().unwrap_or_default(),
            keywords,
            cur,
            version: VERSION,
        };
        files.save(&header, std::mem::take(&mut differ.now));
        // The new messages are fetched next: from the view just read.
        self.kept.keep(mailbox, stream.into_mailbox());
        Ok(Some(MailboxChanges { status, changed, vanished }))
    }

    fn message_history(
        &mut self,
        mailbox: &MailboxName,
    ) -> Result<Option<MessageHistory>, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let history = opened.dovecot_expunges().map_err(convert_error)?;
        Ok(history.as_ref().map(crate::adapters::message_history))
    }

    fn folder_history(&mut self) -> Result<FolderHistory, StorageError> {
        let changes = self.maildir.dovecot_mailbox_changes().map_err(convert_error)?;
        Ok(crate::adapters::folder_history(&changes))
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        let maildir = &self.maildir;
        let opened = self.kept.get_or_open(mailbox, || {
            maildir.mailbox(&to_store_name(mailbox)?).map_err(convert_error)
        })?;
        fetch_bodies(uids, sink, &mut self.skipped, |uid| {
            opened.open_message(uid).map(mailstore::MessageReader::crlf)
        })
    }
}

impl StorageMut for MaildirStorage {
    fn create_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError> {
        self.kept.forget();
        let guid = new.guid.map(|g| mailstore::Guid::from_bytes(g.0));
        let name = to_store_name(mailbox)?;
        match (new.uid_validity, new.source_uid_validity) {
            (None, Some(origin)) => {
                self.maildir.create_mailbox_with_origin(&name, guid, origin.get())
            }
            (uid_validity, _) => {
                self.maildir.create_mailbox(&name, uid_validity.map(UidValidity::get), guid)
            }
        }
        .map_err(convert_error)?;
        Ok(())
    }

    fn delete_mailbox(&mut self, mailbox: &MailboxName) -> Result<(), StorageError> {
        self.kept.forget();
        self.maildir.delete_mailbox(&to_store_name(mailbox)?).map_err(convert_error)
    }

    fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<(), StorageError> {
        self.kept.forget();
        self.maildir
            .rename_mailbox(&to_store_name(from)?, &to_store_name(to)?)
            .map_err(convert_error)
    }

    fn recreate_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError> {
        if let (None, Some(origin)) = (new.uid_validity, new.source_uid_validity) {
            // In place, in one uidlist rewrite: deleted and then created, a crash in between
            // would leave nothing that says the old UIDVALIDITY must not come back.
            let guid = new.guid.map(|g| mailstore::Guid::from_bytes(g.0));
            let opened = self.mailbox(mailbox)?;
            opened.reset_with_origin(guid, origin.get()).map_err(convert_error)?;
            return Ok(());
        }
        if mailbox.is_inbox() {
            // INBOX is the Maildir root and cannot be deleted: empty it in place under a new
            // UIDVALIDITY instead.
            let guid = new.guid.map(|g| mailstore::Guid::from_bytes(g.0));
            let uid_validity = new.uid_validity.ok_or_else(|| {
                StorageError::new(ErrorKind::InvalidData, "rebuilding INBOX needs a UIDVALIDITY")
            })?;
            return self.mailbox(mailbox)?.reset(uid_validity.get(), guid).map_err(convert_error);
        }
        self.delete_mailbox(mailbox)?;
        self.create_mailbox(mailbox, new)
    }

    fn local_name(&self, name: &MailboxName) -> MailboxName {
        let location = self.maildir.location();
        let separator = location.layout().separator();
        let components = name.components().iter().enumerate().map(|(depth, component)| {
            let replaced: String = component
                .chars()
                .map(|c| if c == '/' || c == separator || c.is_control() { ALT_CHAR } else { c })
                .collect();
            // "." and ".." would be directory references on disk; in LAYOUT=fs `cur`,
            // `subscriptions`, `dovecot-uidlist`… would take the place of the Maildir's own
            // directories and files. Dovecot's dsync puts `_` in front of a name its
            // destination refuses.
            if replaced == "." || replaced == ".." || location.reserves(depth, &replaced) {
                format!("{ALT_CHAR}{replaced}")
            } else {
                replaced
            }
        });
        MailboxName::new(components.collect::<Vec<_>>()).unwrap_or_else(|_| name.clone())
    }

    /// One uidlist rewrite: atomic, and no body is copied.
    fn renumber(
        &mut self,
        mailbox: &MailboxName,
        moves: &[(Uid, MessageMeta)],
    ) -> Result<(), StorageError> {
        let opened = self.mailbox(mailbox)?;
        let pairs: Vec<(u32, u32)> =
            moves.iter().map(|(old, meta)| (old.get(), meta.uid.get())).collect();
        let missing = opened.renumber(&pairs).map_err(convert_error)?;
        for (old, meta) in moves {
            if missing.contains(&old.get()) {
                continue;
            }
            let keywords = store_keywords(mailbox, meta.uid, &meta.flags, &mut self.warnings);
            opened
                .set_flags(meta.uid.get(), to_store_flags(meta.flags.system), &keywords)
                .map_err(convert_error)?;
        }
        dropped_keywords(mailbox, &opened, &mut self.warnings);
        Ok(())
    }

    fn set_subscribed(
        &mut self,
        mailbox: &MailboxName,
        subscribed: bool,
    ) -> Result<(), StorageError> {
        self.kept.forget();
        self.maildir.subscribe(&to_store_name(mailbox)?, subscribed).map_err(convert_error)
    }

    /// One read and at most one write of the `subscriptions` file for all the changes.
    fn update_subscriptions(
        &mut self,
        changes: &[(MailboxName, bool)],
    ) -> Result<Vec<(MailboxName, StorageError)>, StorageError> {
        self.kept.forget();
        let mut refused = Vec::new();
        let mut valid = Vec::with_capacity(changes.len());
        for (mailbox, subscribed) in changes {
            match to_store_name(mailbox) {
                Ok(name) => valid.push((name, *subscribed)),
                Err(error) => refused.push((mailbox.clone(), error)),
            }
        }
        self.maildir.update_subscriptions(&valid).map_err(convert_error)?;
        Ok(refused)
    }

    fn writer<'a>(
        &'a mut self,
        mailbox: &MailboxName,
    ) -> Result<Box<dyn MailboxWriter + 'a>, StorageError> {
        Ok(Box::new(MaildirWriter {
            mailbox: self.mailbox(mailbox)?,
            name: mailbox.clone(),
            maildir: self.maildir.clone(),
            copy_source: None,
            pending: None,
            uid_next: None,
            flag_changes: Vec::new(),
            beliefs: mailstore::FileBeliefs::new(),
            warnings: &mut self.warnings,
            buffer: Vec::new(),
        }))
    }
}

struct MaildirWriter<'a> {
    mailbox: mailstore::Mailbox,
    /// Its name, for warnings.
    name: MailboxName,
    /// The storage's warnings.
    warnings: &'a mut Vec<String>,
    /// The store, for the mailboxes copies are made from.
    maildir: Maildir,
    /// The mailbox copies were last made from, kept open so that its listing is read once.
    copy_source: Option<(MailboxName, mailstore::Mailbox)>,
    pending: Option<PendingMessage>,
    /// UIDNEXT to reach after the staged saves are committed (raising it earlier would
    /// make the staged forced UIDs fall below it).
    uid_next: Option<Uid>,
    /// Where bodies are read into on their way to the file, kept for the next message.
    buffer: Vec<u8>,
    /// Flag changes not made yet ([`MailboxWriter::set_flags`]).
    flag_changes: Vec<(u32, mailstore::Flags, Vec<Keyword>)>,
    /// The flags messages are believed to carry ([`MailboxWriter::believe_flags`]), so a
    /// change finds their files without reading the directories.
    beliefs: mailstore::FileBeliefs,
}

impl MaildirWriter<'_> {
    fn apply_flag_changes(&mut self) -> Result<(), StorageError> {
        if self.flag_changes.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.flag_changes);
        self.mailbox.set_flags_many_believed(&changes, &self.beliefs).map_err(convert_error)?;
        dropped_keywords(&self.name, &self.mailbox, self.warnings);
        if !self.beliefs.is_empty() {
            // Their files carry the new flags now (a keyword that found no letter is
            // not in the name: that belief misses, and only costs a search).
            for (uid, flags, keywords) in changes {
                self.beliefs.insert(uid, flags, keywords);
            }
        }
        Ok(())
    }
}

impl MaildirWriter<'_> {
    /// How `meta` is stored (keywords that cannot be become warnings).
    fn save_options(&mut self, meta: &MessageMeta) -> SaveOptions {
        let keywords = store_keywords(&self.name, meta.uid, &meta.flags, self.warnings);
        save_options(meta, keywords)
    }
}

impl MailboxWriter for MaildirWriter<'_> {
    fn save_body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut pending = self.mailbox.begin_save().map_err(convert_error)?;
        crate::storage::copy_body(body, &mut pending, &mut self.buffer)
            .map_err(super::write_failed("Maildir"))?;
        self.pending = Some(pending);
        Ok(())
    }

    fn save_body_buffered(&mut self, body: &mut dyn BufRead) -> Result<(), StorageError> {
        let mut pending = self.mailbox.begin_save().map_err(convert_error)?;
        pending.write_from(body).map_err(super::write_failed("Maildir"))?;
        self.pending = Some(pending);
        Ok(())
    }

    fn save_finish(&mut self, meta: &MessageMeta) -> Result<(), StorageError> {
        let pending = self.pending.take().ok_or_else(|| {
            StorageError::new(ErrorKind::InvalidData, "save_finish without a body")
        })?;
        let options = self.save_options(meta);
        self.mailbox.save(pending, options).map_err(convert_error)
    }

    /// A hard link where the received dates agree (Dovecot's maildir copy), else a copy of
    /// the file's bytes.
    fn save_copy(
        &mut self,
        from: &MailboxName,
        uid: Uid,
        meta: &MessageMeta,
    ) -> Result<bool, StorageError> {
        let Some(guid) = meta.guid.as_deref() else { return Ok(false) };
        if self.copy_source.as_ref().is_none_or(|(name, _)| name != from) {
            let opened = match self.maildir.mailbox(&to_store_name(from)?) {
                Ok(opened) => opened,
                Err(mailstore::Error::MailboxNotFound { .. }) => return Ok(false),
                Err(error) => return Err(convert_error(error)),
            };
            self.copy_source = Some((from.clone(), opened));
        }
        let options = self.save_options(meta);
        let Some((_, source)) = &self.copy_source else { return Ok(false) };
        let outcome = self
            .mailbox
            .save_copy(source, uid.get(), Some(guid), options)
            .map_err(convert_error)?;
        Ok(outcome != CopyOutcome::NotFound)
    }

    /// Kept until the next expunge or commit, then made under one lock with one pass over
    /// the directories ([`mailstore::Mailbox::set_flags_many`]).
    fn set_flags(&mut self, uid: Uid, flags: &Flags) -> Result<(), StorageError> {
        let keywords = store_keywords(&self.name, uid, flags, self.warnings);
        self.flag_changes.push((uid.get(), to_store_flags(flags.system), keywords));
        Ok(())
    }

    fn believe_flags(&mut self, uid: Uid, flags: &Flags) {
        // Keywords that cannot be stored are not in any file name: no belief then.
        let keywords: Option<Vec<Keyword>> =
            flags.keywords.iter().map(|k| Keyword::new(k.as_str()).ok()).collect();
        if let Some(keywords) = keywords {
            self.beliefs.insert(uid.get(), to_store_flags(flags.system), keywords);
        }
    }

    fn expunge(&mut self, uids: &[Uid]) -> Result<(), StorageError> {
        self.apply_flag_changes()?;
        let uids: Vec<u32> = uids.iter().map(|u| u.get()).collect();
        self.mailbox.expunge_believed(&uids, &self.beliefs).map_err(convert_error)
    }

    fn raise_uid_next(&mut self, uid_next: Uid) -> Result<(), StorageError> {
        self.uid_next = Some(self.uid_next.map_or(uid_next, |u| u.max(uid_next)));
        Ok(())
    }

    fn set_uid_validity(&mut self, uid_validity: UidValidity) -> Result<(), StorageError> {
        self.mailbox.set_uid_validity(uid_validity.get()).map_err(convert_error)
    }

    /// One uidlist rewrite; Dovecot's cached copy of the old GUID goes with it (see
    /// [`mailstore::Mailbox::set_guid`]).
    fn set_guid(&mut self, guid: MailboxGuid) -> Result<(), StorageError> {
        self.mailbox.set_guid(mailstore::Guid::from_bytes(guid.0)).map_err(convert_error)
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        self.apply_flag_changes()?;
        self.mailbox.commit().map_err(convert_error)?;
        dropped_keywords(&self.name, &self.mailbox, self.warnings);
        if let Some(uid_next) = self.uid_next.take() {
            self.mailbox.set_next_uid(uid_next.get()).map_err(convert_error)?;
        }
        Ok(())
    }
}

/// How `meta` is stored: forced UID, flags, `keywords`, received date, GUID, POP3 data.
pub(super) fn save_options(meta: &MessageMeta, keywords: Vec<Keyword>) -> SaveOptions {
    let mut options = SaveOptions::default()
        .with_uid(meta.uid.get())
        .with_flags(to_store_flags(meta.flags.system))
        .with_keywords(keywords)
        .with_pop3(meta.pop3_uidl.clone(), meta.pop3_order);
    if let Some(received) = meta.received {
        options = options.with_received(received);
    }
    if let Some(guid) = &meta.guid {
        options = options.with_guid(guid.clone());
    }
    if let Some(modseq) = meta.modseq {
        options = options.with_modseq(modseq);
    }
    options
}

/// What a listing or a read left out, as the engine reports it.
pub(super) fn left_out_skip(left_out: &mailstore::LeftOut) -> Skip {
    let mailbox = left_out.mailbox.as_ref().and_then(|name| from_store_name(name).ok());
    Skip::new(mailbox, left_out.display_path(), left_out.reason.to_string())
}

/// Sends the bodies of `uids` to `sink` as IMAP serves them (CRLF), each opened by `open`.
/// One expunged since it was listed is passed over (the executor notices); one left out
/// (made a symlink out of the store or a FIFO since it was listed: not a byte is read) is
/// added to `skipped`, and the executor notices it was not fetched.
pub(super) fn fetch_bodies<R: Read>(
    uids: &[Uid],
    sink: &mut dyn MessageSink,
    skipped: &mut Vec<Skip>,
    mut open: impl FnMut(u32) -> mailstore::Result<R>,
) -> Result<(), StorageError> {
    for &uid in uids {
        let mut reader = match open(uid.get()) {
            Ok(reader) => reader,
            Err(mailstore::Error::UidNotFound { .. }) => continue,
            Err(mailstore::Error::LeftOut(left_out)) => {
                skipped.push(left_out_skip(&left_out));
                continue;
            }
            Err(error) => return Err(convert_error(error)),
        };
        sink.body(&mut reader)?;
        sink.done(uid)?;
    }
    Ok(())
}

pub(super) fn to_store_name(name: &MailboxName) -> Result<mailstore::MailboxName, StorageError> {
    mailstore::MailboxName::new(name.components()).map_err(convert_error)
}

pub(super) fn from_store_name(name: &mailstore::MailboxName) -> Result<MailboxName, StorageError> {
    MailboxName::new(name.components().iter().cloned())
        .map_err(|e| StorageError::with_source(ErrorKind::InvalidData, "mailbox name on disk", e))
}

fn convert_status(status: &mailstore::MailboxStatus) -> Result<MailboxStatus, StorageError> {
    let invalid = |what: &str| {
        StorageError::new(ErrorKind::InvalidData, format!("{what} is 0 in dovecot-uidlist"))
    };
    Ok(MailboxStatus {
        uid_validity: UidValidity::new(status.uid_validity)
            .ok_or_else(|| invalid("UIDVALIDITY"))?,
        uid_next: Uid::new(status.next_uid).ok_or_else(|| invalid("next UID"))?,
        messages: status.messages,
        highest_modseq: None,
        guid: status.guid.map(|g| MailboxGuid(*g.as_bytes())),
        change_token: None,
        source_uid_validity: status.origin_uid_validity.and_then(UidValidity::new),
    })
}

/// Modification times of `cur/`, `new/` and the file holding the UIDs (and its size): any
/// delivery, expunge or flag change (a rename in `cur/`) moves one of them. Taken before the
/// mailbox is read, so a change during the read shows up next time.
///
/// A source whose `cur/` or `new/` changed within the last second or two gets no token (its
/// next run lists it again), as Dovecot trusts a directory's mtime only once it is older
/// than `MAILDIR_SYNC_SECS`: a file system stamps times at its own granularity (a kernel
/// tick; a second on some), so a second change within the same tick would leave the
/// token as it was and be passed over. A destination's token is taken after our own
/// writes and keeps the rule it had.
fn change_token(opened: &mailstore::Mailbox, source: bool) -> Option<String> {
    let mut token = directories_stamp(opened.path(), source)?;
    token.push_str(&file_stamp(&opened.uids_file())?);
    Some(token)
}

/// [`change_token`] around a read (a listing or a status read): [`token_before`] it,
/// [`TokenBefore::after`] it. All of it is stamped before, except a source's own uidlist
/// ([`mailstore::Mailbox::own_uids_file`]), stamped after: the read itself writes that file
/// (created at the first, rewritten when it numbers new files), and only a read does; the
/// directories' stamps from before still catch a change during the read. Stamped before,
/// every run that numbered new files would save a token the next run cannot match, and that
/// run would list the folder whole once more. (Should a `dovecot-uidlist` appear meanwhile,
/// the next run stamps that file instead, and the tokens differ.)
struct TokenBefore {
    directories: Option<String>,
    /// The source's own uidlist, stamped after the read.
    own: Option<PathBuf>,
    /// The stamp of the `dovecot-uidlist` otherwise.
    uids: Option<String>,
}

fn token_before(opened: &mailstore::Mailbox, source: bool) -> TokenBefore {
    let directories = directories_stamp(opened.path(), source);
    let own = opened.own_uids_file().filter(|_| source);
    let uids = if own.is_none() { file_stamp(&opened.uids_file()) } else { None };
    TokenBefore { directories, own, uids }
}

impl TokenBefore {
    /// The change token, once the read is done.
    fn after(self) -> Option<String> {
        let uids = match &self.own {
            Some(own) => file_stamp(own),
            None => self.uids,
        };
        self.directories.zip(uids).map(|(directories, uids)| directories + &uids)
    }
}

/// The stamps of `cur/` and `new/` in `dir`; `None` for a source when one changed within
/// [`DIRTY_SECS`].
fn directories_stamp(dir: &Path, source: bool) -> Option<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    let mut token = String::new();
    for sub in ["cur", "new"] {
        let metadata = std::fs::metadata(dir.join(sub)).ok()?;
        let modified = metadata.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        if source && modified.as_secs() + DIRTY_SECS >= now.as_secs() {
            return None;
        }
        token.push_str(&stamp(&metadata)?);
    }
    Some(token)
}

/// The stamp of the file at `path`; `None` when it does not exist.
fn file_stamp(path: &Path) -> Option<String> {
    stamp(&std::fs::metadata(path).ok()?)
}

/// `SECONDS.NANOS:SIZE/`.
fn stamp(metadata: &std::fs::Metadata) -> Option<String> {
    let modified = metadata.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}.{}:{}/", modified.as_secs(), modified.subsec_nanos(), metadata.len()))
}

/// Dovecot's `MAILDIR_SYNC_SECS` (see [`mailstore::DIRTY_SECS`]).
const DIRTY_SECS: u64 = mailstore::DIRTY_SECS;

/// The engine's metadata of a store's message, taking its strings rather than copying them.
/// A folder's messages as the store reads them ([`Storage::listing`]); what the store
/// left out joins the storage's skipped entries once the folder was read to the end.
struct ListedMessages<'a> {
    stream: mailstore::MessageStream,
    skipped: &'a mut Vec<Skip>,
    /// What the listing learns, saved once it was read to the end without an error.
    recording: Option<Recording>,
}

/// A listing kept as it is read ([`MaildirStorage::keep_listings_in`]).
struct Recording {
    files: ListingFiles,
    header: Header,
    /// The last listing's facts, for the files of the same name.
    learned: Learned,
    /// This one.
    listing: Writer,
}

impl Iterator for ListedMessages<'_> {
    type Item = Result<MessageMeta, StorageError>;

    fn next(&mut self) -> Option<Result<MessageMeta, StorageError>> {
        loop {
            let next = match &mut self.recording {
                Some(recording) => self.stream.next_knowing(&mut recording.learned),
                None => self.stream.next(),
            };
            match next {
                Some(Ok(info)) => {
                    if let Some(recording) = &mut self.recording {
                        recording.listing.push(&listed_file(&info));
                    }
                    if let Some(meta) = convert_message(info) {
                        return Some(Ok(meta));
                    }
                }
                Some(Err(error)) => {
                    self.recording = None;
                    return Some(Err(convert_error(error)));
                }
                None => {
                    self.skipped.extend(self.stream.take_left_out().iter().map(left_out_skip));
                    if let Some(mut recording) = self.recording.take() {
                        if !recording.listing.all_placed() {
                            recording.header.cur.clear();
                        }
                        recording.files.save(&recording.header, recording.listing);
                    }
                    return None;
                }
            }
        }
    }
}

pub(super) fn convert_message(info: mailstore::MessageInfo) -> Option<MessageMeta> {
    let mut flags = Flags { system: from_store_flags(info.flags), keywords: BTreeSet::new() };
    flags.keywords.extend(info.keywords.iter().map(|k| k.as_str().to_owned()));
    let mut meta = MessageMeta::new(Uid::new(info.uid)?, flags);
    meta.received = Some(info.received);
    meta.virtual_size = Some(info.virtual_size);
    meta.guid = Some(info.guid);
    meta.pop3_uidl = info.pop3_uidl;
    meta.pop3_order = info.pop3_order;
    meta.modseq = info.modseq;
    Some(meta)
}

const FLAG_PAIRS: [(SystemFlags, mailstore::Flags); 5] = [
    (SystemFlags::SEEN, mailstore::Flags::SEEN),
    (SystemFlags::ANSWERED, mailstore::Flags::ANSWERED),
    (SystemFlags::FLAGGED, mailstore::Flags::FLAGGED),
    (SystemFlags::DELETED, mailstore::Flags::DELETED),
    (SystemFlags::DRAFT, mailstore::Flags::DRAFT),
];

pub(super) fn to_store_flags(flags: SystemFlags) -> mailstore::Flags {
    FLAG_PAIRS
        .iter()
        .filter(|(ours, _)| flags.contains(*ours))
        .fold(mailstore::Flags::EMPTY, |all, (_, theirs)| all | *theirs)
}

fn from_store_flags(flags: mailstore::Flags) -> SystemFlags {
    FLAG_PAIRS
        .iter()
        .filter(|(_, theirs)| flags.contains(*theirs))
        .fold(SystemFlags::empty(), |all, (ours, _)| all.union(*ours))
}

/// The keywords of `flags` a Maildir can hold. One it cannot (empty, not an IMAP atom,
/// longer than 255 bytes) is left out with a warning, and the message keeps the others, as
/// Dovecot's dsync saves a message without the keywords its storage refuses.
pub(super) fn store_keywords(
    mailbox: &MailboxName,
    uid: Uid,
    flags: &Flags,
    warnings: &mut Vec<String>,
) -> Vec<Keyword> {
    let mut keywords = Vec::with_capacity(flags.keywords.len());
    for keyword in &flags.keywords {
        match Keyword::new(keyword.as_str()) {
            Ok(keyword) => keywords.push(keyword),
            Err(error) => {
                let reason = match &error {
                    mailstore::Error::InvalidKeyword { reason, .. } => (*reason).to_owned(),
                    other => other.to_string(),
                };
                warnings.push(format!(
                    "mailbox {mailbox} UID {uid}: keyword {:?} not stored: {reason}",
                    shorten(keyword)
                ));
            }
        }
    }
    keywords
}

/// Warnings for the keywords `opened` found no letter for (see
/// [`mailstore::Mailbox::take_dropped_keywords`]).
fn dropped_keywords(
    mailbox: &MailboxName,
    opened: &mailstore::Mailbox,
    warnings: &mut Vec<String>,
) {
    for dropped in opened.take_dropped_keywords() {
        warnings.push(format!(
            "mailbox {mailbox} UID {}: keyword {:?} not stored: a Maildir mailbox holds at most 26 \
             keywords (a Dovecot destination keeps further ones only in its index, which \
             loses them when rebuilt)",
            dropped.uid,
            shorten(&dropped.keyword)
        ));
    }
}

/// A keyword as a warning shows it: at most 60 characters.
pub(super) fn shorten(keyword: &str) -> String {
    match keyword.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &keyword[..end]),
        None => keyword.to_owned(),
    }
}

/// Maps `mailstore` errors onto the engine's kinds (and so onto doveadm's exit codes), also
/// for callers that write their own files into a Maildir with its
/// [`mailstore::Permissions`].
pub fn convert_error(error: mailstore::Error) -> StorageError {
    StorageError::with_source(error_kind(&error), "Maildir", error)
}

/// The engine's kind of a `mailstore` error (shared by the Maildir and sdbox adapters).
pub(super) fn error_kind(error: &mailstore::Error) -> ErrorKind {
    use mailstore::Error as E;
    match error {
        E::Io { source, .. } | E::Ownership { source, .. } => ErrorKind::from_io(source),
        E::InvalidLocation { .. } => ErrorKind::Usage,
        E::MailboxNotFound { .. } | E::UidNotFound { .. } => ErrorKind::NotFound,
        E::LockTimeout { .. } => ErrorKind::Temporary,
        _ => ErrorKind::InvalidData,
    }
}
