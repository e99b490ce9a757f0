//! An sdbox store (via `mailstore`) as a sync side, read and written as Dovecot 2.3 keeps
//! it: one `u.<uid>` file per message, the mailbox state in Dovecot's index, changed only
//! by transactions appended to `dovecot.index.log` under Dovecot's lock.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Read};
use std::path::Path;

use mailstore::{
    CopyOutcome, Durability, Keyword, Options, PendingMessage, SaveOptions, Sdbox, SdboxLocation,
    SdboxMailbox,
};

use super::maildir::{
    convert_message, error_kind, fetch_bodies, from_store_name, left_out_skip, save_options,
    store_keywords, to_store_flags, to_store_name,
};
use crate::error::{ErrorKind, StorageError};
use crate::history::{FolderHistory, MessageHistory};
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStamp, MailboxStatus,
    MessageMeta, Uid, UidValidity,
};
use crate::storage::{
    Capabilities, MailboxWriter, MessageSink, NewMailbox, Skip, Storage, StorageMut,
};

use super::kept::Kept;

/// Dovecot's `dsync_alt_char`: replaces characters a name cannot hold on disk.
const ALT_CHAR: char = '_';

/// An sdbox store (`sdbox:PATH[:INDEX=DIR][:ALT=DIR][:UTF-8]`).
///
/// Read only beneath its roots: what the store holds but is not read as mail (a message
/// file its index does not list, one a Dovecot plugin compressed, a folder name that gives
/// no mailbox name, a symlink) is reported through [`Storage::take_skipped`], so that the
/// run fails (exit 65) instead of leaving it behind in silence.
#[derive(Debug, Clone)]
pub struct SdboxStorage {
    store: Sdbox,
    /// Entries left out since the last [`Storage::take_skipped`].
    skipped: Vec<Skip>,
    /// Keywords that could not be stored, for [`Storage::take_warnings`].
    warnings: Vec<String>,
    /// The mailbox fetched from last, with its index ([`super::kept`]).
    kept: Kept<SdboxMailbox>,
}

impl SdboxStorage {
    /// Opens the sdbox store at a Dovecot-style location. Nothing is created until the
    /// first write.
    pub fn open(location: &str, durability: Durability) -> Result<SdboxStorage, StorageError> {
        let location: SdboxLocation = location.parse().map_err(convert_error)?;
        Ok(SdboxStorage::open_location(location, durability))
    }

    /// Opens the sdbox store at `root` (indexes beside the mail, modified UTF-7 folder
    /// names), whatever characters its path holds (a `:` cannot be written in a location
    /// string). Nothing is created until the first write. For `INDEX=`, `ALT=` or UTF-8
    /// names use [`SdboxStorage::open_location`].
    pub fn open_path(root: impl AsRef<Path>, durability: Durability) -> SdboxStorage {
        SdboxStorage::open_location(SdboxLocation::new(root.as_ref()), durability)
    }

    /// Opens the sdbox store at `location`. Nothing is created until the first write.
    pub fn open_location(location: SdboxLocation, durability: Durability) -> SdboxStorage {
        SdboxStorage::from_sdbox(Sdbox::with_options(
            location,
            Options::default().with_durability(durability),
        ))
    }

    /// Opens an sdbox store that is only read (a backup source): nothing on disk is ever
    /// written.
    pub fn open_read_only(location: &str) -> Result<SdboxStorage, StorageError> {
        let location: SdboxLocation = location.parse().map_err(convert_error)?;
        Ok(SdboxStorage::open_location_read_only(location))
    }

    /// [`SdboxStorage::open_read_only`] with a typed [`SdboxLocation`].
    pub fn open_location_read_only(location: SdboxLocation) -> SdboxStorage {
        SdboxStorage::from_sdbox(Sdbox::with_options(
            location,
            Options::default().with_read_only(true),
        ))
    }

    /// Wraps an already opened [`Sdbox`].
    pub fn from_sdbox(store: Sdbox) -> SdboxStorage {
        SdboxStorage { store, skipped: Vec::new(), warnings: Vec::new(), kept: Kept::new() }
    }

    /// The underlying store.
    pub fn sdbox(&self) -> &Sdbox {
        &self.store
    }

    /// The owner, group and modes of what this store creates ([`Sdbox::permissions`]),
    /// for files kept beside the mail (a state file, a lock).
    pub fn permissions(&self) -> Result<mailstore::Permissions, StorageError> {
        self.store.permissions().map_err(convert_error)
    }

    /// Flushes everything to disk (needed once at the end with [`Durability::Deferred`]).
    pub fn sync_to_disk(&self) -> Result<(), StorageError> {
        self.store.sync_to_disk().map_err(convert_error)
    }

    /// Opens `name` afresh; the mailbox kept from the last fetch goes first (at most one
    /// index is held, and none that a write through this storage may have made stale).
    fn mailbox(&mut self, name: &MailboxName) -> Result<SdboxMailbox, StorageError> {
        self.kept.forget();
        self.store.mailbox(&to_store_name(name)?).map_err(convert_error)
    }

    /// Keeps what a listing or a read left out, for [`Storage::take_skipped`].
    fn skip(&mut self, left_out: &mailstore::LeftOut) {
        self.skipped.push(left_out_skip(left_out));
    }
}

impl Storage for SdboxStorage {
    fn describe(&self) -> String {
        format!("sdbox:{}", self.store.location().root().display())
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skipped)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mailbox_guids: true,
            message_guids: true,
            noselect_placeholders: true,
            unstable_uids: false,
            assigns_uids: false,
        }
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        let listing = self.store.list_mailboxes().map_err(convert_error)?;
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
        let names = self.store.subscriptions().map_err(convert_error)?;
        names.iter().map(from_store_name).collect()
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let token = change_token(&opened);
        Ok(MailboxStatus {
            change_token: token,
            ..convert_status(&opened.status().map_err(convert_error)?)?
        })
    }

    /// One `stat` of the log and a read of the index, not of every message file.
    fn stamp(&mut self, mailbox: &MailboxName) -> Result<MailboxStamp, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let change_token = change_token(&opened);
        let guid = opened.guid().map_err(convert_error)?.map(|guid| MailboxGuid(*guid.as_bytes()));
        Ok(MailboxStamp { change_token, guid })
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let token = change_token(&opened);
        let listing = opened.list_messages().map_err(convert_error)?;
        for left_out in &listing.left_out {
            self.skip(left_out);
        }
        let status = MailboxStatus {
            change_token: token,
            ..convert_status(&opened.status().map_err(convert_error)?)?
        };
        // Messages expunged between the listing and the status read are not counted.
        let messages: Vec<MessageMeta> =
            listing.entries.into_iter().filter_map(convert_message).collect();
        Ok(MailboxContents { status, messages })
    }

    fn message_history(
        &mut self,
        mailbox: &MailboxName,
    ) -> Result<Option<MessageHistory>, StorageError> {
        let opened = self.mailbox(mailbox)?;
        let history = opened.dovecot_expunges().map_err(convert_error)?;
        Ok(Some(crate::adapters::message_history(&history)))
    }

    fn folder_history(&mut self) -> Result<FolderHistory, StorageError> {
        let changes = self.store.dovecot_mailbox_changes().map_err(convert_error)?;
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
        let store = &self.store;
        let opened = self.kept.get_or_open(mailbox, || {
            store.mailbox(&to_store_name(mailbox)?).map_err(convert_error)
        })?;
        fetch_bodies(uids, sink, &mut self.skipped, |uid| {
            opened.open_message(uid).map(mailstore::MessageReader::crlf)
        })
    }
}

impl StorageMut for SdboxStorage {
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
                self.store.create_mailbox_with_origin(&name, guid, origin.get())
            }
            (uid_validity, _) => {
                self.store.create_mailbox(&name, uid_validity.map(UidValidity::get), guid)
            }
        }
        .map_err(convert_error)?;
        Ok(())
    }

    fn delete_mailbox(&mut self, mailbox: &MailboxName) -> Result<(), StorageError> {
        self.kept.forget();
        self.store.delete_mailbox(&to_store_name(mailbox)?).map_err(convert_error)
    }

    fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<(), StorageError> {
        self.kept.forget();
        self.store.rename_mailbox(&to_store_name(from)?, &to_store_name(to)?).map_err(convert_error)
    }

    /// In place: the index is replaced by a new log that resets it (Dovecot's sessions see
    /// a new mailbox), so a crash never leaves the old UIDVALIDITY free to come back.
    fn recreate_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError> {
        let guid = new.guid.map(|g| mailstore::Guid::from_bytes(g.0));
        let opened = self.mailbox(mailbox)?;
        match (new.uid_validity, new.source_uid_validity) {
            (None, Some(origin)) => {
                opened.reset_with_origin(guid, origin.get()).map(|_| ()).map_err(convert_error)
            }
            (Some(uid_validity), _) => {
                opened.reset(uid_validity.get(), guid).map_err(convert_error)
            }
            (None, None) => {
                drop(opened);
                self.delete_mailbox(mailbox)?;
                self.create_mailbox(mailbox, new)
            }
        }
    }

    fn local_name(&self, name: &MailboxName) -> MailboxName {
        let location = self.store.location();
        let components = name.components().iter().enumerate().map(|(depth, component)| {
            let replaced: String = component
                .chars()
                .map(|c| if c == '/' || c.is_control() { ALT_CHAR } else { c })
                .collect();
            // "." and ".." would be directory references on disk, `dbox-Mails` the mail
            // directory, a leading `~` a home directory: Dovecot refuses them
            // (`mailbox_list_is_valid_fs_name`) and its dsync puts `_` in front.
            if replaced == "." || replaced == ".." || location.reserves(depth, &replaced) {
                format!("{ALT_CHAR}{replaced}")
            } else {
                replaced
            }
        });
        MailboxName::new(components.collect::<Vec<_>>()).unwrap_or_else(|_| name.clone())
    }

    /// One transaction: the new UIDs appended (files hard-linked), the old expunged.
    fn renumber(
        &mut self,
        mailbox: &MailboxName,
        moves: &[(Uid, MessageMeta)],
    ) -> Result<(), StorageError> {
        let opened = self.mailbox(mailbox)?;
        let pairs: Vec<(u32, u32)> =
            moves.iter().map(|(old, meta)| (old.get(), meta.uid.get())).collect();
        let missing = opened.renumber(&pairs).map_err(convert_error)?;
        let mut changes = Vec::with_capacity(moves.len());
        for (old, meta) in moves {
            if missing.contains(&old.get()) {
                continue;
            }
            let keywords = store_keywords(mailbox, meta.uid, &meta.flags, &mut self.warnings);
            changes.push((meta.uid.get(), to_store_flags(meta.flags.system), keywords));
        }
        opened.set_flags_many(&changes).map_err(convert_error)
    }

    fn set_subscribed(
        &mut self,
        mailbox: &MailboxName,
        subscribed: bool,
    ) -> Result<(), StorageError> {
        self.kept.forget();
        self.store.subscribe(&to_store_name(mailbox)?, subscribed).map_err(convert_error)
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
        self.store.update_subscriptions(&valid).map_err(convert_error)?;
        Ok(refused)
    }

    fn writer<'a>(
        &'a mut self,
        mailbox: &MailboxName,
    ) -> Result<Box<dyn MailboxWriter + 'a>, StorageError> {
        Ok(Box::new(SdboxWriter {
            mailbox: self.mailbox(mailbox)?,
            name: mailbox.clone(),
            store: self.store.clone(),
            copy_source: None,
            pending: None,
            uid_next: None,
            highest_modseq: None,
            flag_changes: Vec::new(),
            warnings: &mut self.warnings,
        }))
    }
}

struct SdboxWriter<'a> {
    mailbox: SdboxMailbox,
    /// Its name, for warnings.
    name: MailboxName,
    /// The storage's warnings.
    warnings: &'a mut Vec<String>,
    /// The store, for the mailboxes copies are made from.
    store: Sdbox,
    /// The mailbox copies were last made from, kept open.
    copy_source: Option<(MailboxName, SdboxMailbox)>,
    pending: Option<PendingMessage>,
    /// UIDNEXT to reach after the staged saves are committed (raising it earlier would
    /// make the staged forced UIDs fall below it).
    uid_next: Option<Uid>,
    /// HIGHESTMODSEQ to reach after the staged saves are committed.
    highest_modseq: Option<u64>,
    /// Flag changes not made yet ([`MailboxWriter::set_flags`]).
    flag_changes: Vec<(u32, mailstore::Flags, Vec<Keyword>)>,
}

impl SdboxWriter<'_> {
    /// Makes the flag changes kept so far under one lock, with one read of the index for
    /// their messages (not one per message), each its own transaction as before (so the
    /// modseqs Dovecot counts are the same).
    fn apply_flag_changes(&mut self) -> Result<(), StorageError> {
        if self.flag_changes.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.flag_changes);
        self.mailbox.set_flags_each(&changes).map_err(convert_error)
    }

    /// How `meta` is stored (keywords that cannot be become warnings).
    fn save_options(&mut self, meta: &MessageMeta) -> SaveOptions {
        let keywords: Vec<Keyword> =
            store_keywords(&self.name, meta.uid, &meta.flags, self.warnings);
        save_options(meta, keywords)
    }
}

impl MailboxWriter for SdboxWriter<'_> {
    fn save_body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut pending = self.mailbox.begin_save().map_err(convert_error)?;
        io::copy(body, &mut pending).map_err(super::write_failed("sdbox"))?;
        self.pending = Some(pending);
        Ok(())
    }

    fn save_body_buffered(&mut self, body: &mut dyn BufRead) -> Result<(), StorageError> {
        let mut pending = self.mailbox.begin_save().map_err(convert_error)?;
        pending.write_from(body).map_err(super::write_failed("sdbox"))?;
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

    /// A hard link where the file already records what the copy needs (Dovecot's sdbox
    /// copy), else a copy of the body.
    fn save_copy(
        &mut self,
        from: &MailboxName,
        uid: Uid,
        meta: &MessageMeta,
    ) -> Result<bool, StorageError> {
        let Some(guid) = meta.guid.as_deref() else { return Ok(false) };
        if self.copy_source.as_ref().is_none_or(|(name, _)| name != from) {
            let opened = match self.store.mailbox(&to_store_name(from)?) {
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

    /// Kept until the next expunge or commit, then made under one lock
    /// ([`SdboxMailbox::set_flags_each`]).
    fn set_flags(&mut self, uid: Uid, flags: &Flags) -> Result<(), StorageError> {
        let keywords = store_keywords(&self.name, uid, flags, self.warnings);
        self.flag_changes.push((uid.get(), to_store_flags(flags.system), keywords));
        Ok(())
    }

    fn expunge(&mut self, uids: &[Uid]) -> Result<(), StorageError> {
        self.apply_flag_changes()?;
        let uids: Vec<u32> = uids.iter().map(|u| u.get()).collect();
        self.mailbox.expunge(&uids).map_err(convert_error)
    }

    fn raise_uid_next(&mut self, uid_next: Uid) -> Result<(), StorageError> {
        self.uid_next = Some(self.uid_next.map_or(uid_next, |u| u.max(uid_next)));
        Ok(())
    }

    fn raise_highest_modseq(&mut self, modseq: u64) -> Result<(), StorageError> {
        self.highest_modseq = Some(self.highest_modseq.map_or(modseq, |m| m.max(modseq)));
        Ok(())
    }

    fn set_uid_validity(&mut self, uid_validity: UidValidity) -> Result<(), StorageError> {
        self.mailbox.set_uid_validity(uid_validity.get()).map_err(convert_error)
    }

    fn set_guid(&mut self, guid: MailboxGuid) -> Result<(), StorageError> {
        self.mailbox.set_guid(mailstore::Guid::from_bytes(guid.0)).map_err(convert_error)
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        self.apply_flag_changes()?;
        self.mailbox.commit().map_err(convert_error)?;
        if let Some(uid_next) = self.uid_next.take() {
            self.mailbox.set_next_uid(uid_next.get()).map_err(convert_error)?;
        }
        if let Some(modseq) = self.highest_modseq.take() {
            self.mailbox.raise_highest_modseq(modseq).map_err(convert_error)?;
        }
        Ok(())
    }
}

fn convert_status(status: &mailstore::MailboxStatus) -> Result<MailboxStatus, StorageError> {
    let invalid = |what: &str| {
        StorageError::new(ErrorKind::InvalidData, format!("{what} is 0 in the sdbox index"))
    };
    Ok(MailboxStatus {
        uid_validity: UidValidity::new(status.uid_validity)
            .ok_or_else(|| invalid("UIDVALIDITY"))?,
        uid_next: Uid::new(status.next_uid).ok_or_else(|| invalid("next UID"))?,
        messages: status.messages,
        highest_modseq: status.highest_modseq,
        guid: status.guid.map(|g| MailboxGuid(*g.as_bytes())),
        change_token: None,
        source_uid_validity: status.origin_uid_validity.and_then(UidValidity::new),
    })
}

/// Identity, size and modification time of the mailbox's `dovecot.index.log`: every
/// change to the mailbox (a save, an expunge, a flag change) is appended to it, and a
/// rotation replaces it. Taken before the mailbox is read, so a change during the read
/// shows up next time.
fn change_token(mailbox: &SdboxMailbox) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(mailbox.index_path().join("dovecot.index.log")).ok()?;
    Some(format!(
        "{}.{}:{}:{}.{}",
        metadata.dev(),
        metadata.ino(),
        metadata.len(),
        metadata.mtime(),
        metadata.mtime_nsec()
    ))
}

/// Maps `mailstore` errors onto the engine's kinds (and so onto doveadm's exit codes).
pub fn convert_error(error: mailstore::Error) -> StorageError {
    StorageError::with_source(error_kind(&error), "sdbox", error)
}
