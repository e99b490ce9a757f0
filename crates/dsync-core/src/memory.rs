//! An in-memory storage: the reference implementation of [`Storage`] and [`StorageMut`]
//! for anyone writing an adapter, and the model the engine's property tests run against.
//!
//! It behaves like an IMAP server would: UIDs only grow, a missing parent of a mailbox is
//! listed as `\Noselect`, INBOX cannot be deleted, and writes become visible only at
//! [`MailboxWriter::commit`]. [`MemoryStorage::fail_after`] makes the N-th write fail, which
//! is how tests interrupt a run at any step.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::error::{ErrorKind, StorageError};
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStatus, MessageMeta, Uid,
    UidValidity,
};
use crate::storage::{
    Capabilities, MailboxChanges, MailboxWriter, MessageListing, MessageSink, NewMailbox, Skip,
    Storage, StorageMut,
};

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMessage {
    /// Metadata (its `uid` is the map key too).
    pub meta: MessageMeta,
    /// The body, CRLF line ends.
    pub body: Vec<u8>,
}

/// One mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMailbox {
    /// False for a `\Noselect` placeholder.
    pub selectable: bool,
    /// UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// UIDNEXT.
    pub uid_next: Uid,
    /// Mailbox GUID, when the storage keeps GUIDs.
    pub guid: Option<MailboxGuid>,
    /// Messages by UID.
    pub messages: BTreeMap<Uid, MemoryMessage>,
    /// The source UIDVALIDITY whose UIDs a backup keeps here under `uid_validity`
    /// ([`MailboxStatus::source_uid_validity`]).
    pub source_uid_validity: Option<UidValidity>,
    /// How many times [`MemoryMailbox::set_flags`] changed a message's flags. Part of the
    /// change token, as a server's modification sequence is: flags changed and changed
    /// back still count as a change to the mailbox.
    pub flag_changes: u64,
}

impl MemoryMailbox {
    fn new(uid_validity: UidValidity, guid: Option<MailboxGuid>) -> MemoryMailbox {
        MemoryMailbox {
            selectable: true,
            uid_validity,
            uid_next: Uid::MIN,
            guid,
            messages: BTreeMap::new(),
            source_uid_validity: None,
            flag_changes: 0,
        }
    }

    /// Appends a message with the next UID, like an IMAP APPEND; returns the UID.
    pub fn append(&mut self, body: &[u8], flags: Flags, received: Option<i64>) -> Uid {
        let uid = self.uid_next;
        let mut meta = MessageMeta::new(uid, flags);
        meta.received = received;
        meta.virtual_size = Some(body.len() as u64);
        self.messages.insert(uid, MemoryMessage { meta, body: body.to_vec() });
        self.uid_next = uid.next().unwrap_or(uid);
        uid
    }

    /// Expunges a message (its UID is never reused).
    pub fn expunge(&mut self, uid: Uid) {
        self.messages.remove(&uid);
    }

    /// Replaces a message's flags (a change when they differ: see
    /// [`flag_changes`](Self::flag_changes)).
    pub fn set_flags(&mut self, uid: Uid, flags: Flags) {
        if let Some(message) = self.messages.get_mut(&uid)
            && message.meta.flags != flags
        {
            message.meta.flags = flags;
            self.flag_changes += 1;
        }
    }

    fn status(&self) -> MailboxStatus {
        MailboxStatus {
            uid_validity: self.uid_validity,
            uid_next: self.uid_next,
            messages: u32::try_from(self.messages.len()).unwrap_or(u32::MAX),
            highest_modseq: None,
            guid: self.guid,
            change_token: Some(self.digest()),
            source_uid_validity: self.source_uid_validity,
        }
    }

    /// A digest of everything a sync looks at: a change token that cannot go stale even
    /// when tests edit the public fields directly.
    fn digest(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.uid_validity, self.uid_next, self.guid, self.source_uid_validity, self.flag_changes)
            .hash(&mut hasher);
        for message in self.messages.values() {
            (message.meta.uid, &message.meta.flags, &message.body).hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }
}

/// A whole account in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    mailboxes: BTreeMap<MailboxName, MemoryMailbox>,
    subscriptions: BTreeSet<MailboxName>,
    keeps_guids: bool,
    message_guids: bool,
    unstable_uids: bool,
    assigns_uids: bool,
    guid_counter: u8,
    /// The highest UIDVALIDITY any mailbox here ever had (deleted ones too), so that one
    /// allocated later is new, as an IMAP server's are.
    highest_uid_validity: u32,
    writes_left: Option<u64>,
    /// Per mailbox, entries that its message listing leaves out (like a Maildir's symlink
    /// in `cur/`), as `(item, reason)`.
    unreadable: BTreeMap<MailboxName, Vec<(String, String)>>,
    /// Mailboxes the mailbox list leaves out and reports, with the reason.
    unlisted: BTreeMap<MailboxName, String>,
    /// Skips not yet taken ([`Storage::take_skipped`]).
    skipped: Vec<Skip>,
    /// With [`MemoryStorage::keep_change_history`]: what each mailbox held when a listing
    /// gave out each change token, so that [`Storage::changes_since`] can answer as an IMAP
    /// server with QRESYNC does.
    history: Option<BTreeMap<(MailboxName, String), ListedState>>,
    /// How many message listings ([`Storage::contents`], [`Storage::listing`]) were
    /// answered.
    listings: u64,
    /// How many of them were [`Storage::listing`]s, read one message at a time.
    streamed: u64,
    /// What writers were told to believe ([`MailboxWriter::believe_flags`]).
    beliefs: Vec<(MailboxName, Uid, Flags)>,
}

/// What a mailbox held when a listing gave out a change token.
#[derive(Debug, Clone)]
struct ListedState {
    uid_validity: UidValidity,
    flags: BTreeMap<Uid, Flags>,
}

impl MemoryStorage {
    /// Answers [`Storage::changes_since`] from here on, as an IMAP server with QRESYNC does
    /// (from every later listing's change token); `false` forgets what it kept and
    /// answers `None` again, as a server that lost its mod-sequences.
    pub fn keep_change_history(&mut self, keep: bool) {
        self.history = keep.then(BTreeMap::new);
    }

    /// How many message listings ([`Storage::contents`], [`Storage::listing`]) this
    /// storage answered: a test can tell that a re-run planned from changes alone.
    pub fn listings(&self) -> u64 {
        self.listings
    }

    /// How many of [`MemoryStorage::listings`] were [`Storage::listing`]s, read one
    /// message at a time: a test can tell that no listing was read whole.
    pub fn streamed_listings(&self) -> u64 {
        self.streamed
    }

    /// What this storage's writers were told messages carry
    /// ([`MailboxWriter::believe_flags`]), in order: a test can tell what a run believed.
    pub fn beliefs(&self) -> &[(MailboxName, Uid, Flags)] {
        &self.beliefs
    }

    fn remember_listing(&mut self, mailbox: &MailboxName, status: &MailboxStatus) {
        let (Some(history), Some(token), Some(stored)) =
            (self.history.as_mut(), status.change_token.as_ref(), self.mailboxes.get(mailbox))
        else {
            return;
        };
        let flags = stored.messages.iter().map(|(uid, m)| (*uid, m.meta.flags.clone())).collect();
        history.insert(
            (mailbox.clone(), token.clone()),
            ListedState { uid_validity: stored.uid_validity, flags },
        );
    }

    /// An empty account that, like an IMAP server, has no mailbox GUIDs.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Gives `mailbox` an entry that every listing of its messages leaves out with `reason`
    /// and reports ([`Storage::take_skipped`]), as a Maildir does with a symlink in `cur/`.
    pub fn add_unreadable(&mut self, mailbox: &MailboxName, item: &str, reason: &str) {
        self.unreadable
            .entry(mailbox.clone())
            .or_default()
            .push((item.to_owned(), reason.to_owned()));
    }

    /// Makes the mailbox list leave `mailbox` (and so its messages) out and report it with
    /// `reason`, as a Maildir does with a folder that is a symlink out of the store.
    pub fn add_unlisted(&mut self, mailbox: &MailboxName, reason: &str) {
        self.unlisted.insert(mailbox.clone(), reason.to_owned());
    }

    /// Removes every entry [`MemoryStorage::add_unreadable`] and
    /// [`MemoryStorage::add_unlisted`] added.
    pub fn clear_unreadable(&mut self) {
        self.unreadable.clear();
        self.unlisted.clear();
    }

    /// An empty account that keeps mailbox GUIDs, like a Dovecot storage.
    pub fn with_guids() -> MemoryStorage {
        MemoryStorage { keeps_guids: true, ..MemoryStorage::default() }
    }

    /// Declares UIDs to be positions, as a POP3 source has: syncs then match messages by
    /// their [`MessageMeta::pop3_uidl`].
    #[must_use]
    pub fn unstable_uids(mut self, unstable: bool) -> MemoryStorage {
        self.unstable_uids = unstable;
        self
    }

    /// Makes this storage behave like an IMAP server as a destination
    /// ([`Capabilities::assigns_uids`]): a save is stored at once under the next UID, as
    /// an APPEND is, whatever UID it asked for, and [`MailboxWriter::take_assigned`]
    /// reports the UID after the next commit, as an APPEND's answer arrives; a commit
    /// that fails (see [`fail_after`](Self::fail_after)) loses those answers, not the
    /// messages. Created mailboxes get a UIDVALIDITY of this storage's choosing.
    #[must_use]
    pub fn assigning_uids(mut self, assigns: bool) -> MemoryStorage {
        self.assigns_uids = assigns;
        self
    }

    /// Declares the messages' [`MessageMeta::guid`]s persistent and comparable with
    /// another storage's (like two Dovecot storages), so syncs identify messages by them
    /// instead of by header hashes.
    #[must_use]
    pub fn comparable_message_guids(mut self, comparable: bool) -> MemoryStorage {
        self.message_guids = comparable;
        self
    }

    /// Creates (or returns) a selectable mailbox with `uid_validity`.
    pub fn add_mailbox(
        &mut self,
        name: &MailboxName,
        uid_validity: UidValidity,
    ) -> &mut MemoryMailbox {
        let guid = self.next_guid();
        let mailbox = self
            .mailboxes
            .entry(name.clone())
            .or_insert_with(|| MemoryMailbox::new(uid_validity, guid));
        mailbox.selectable = true;
        mailbox
    }

    /// Adds a `\Noselect` placeholder (a name that only holds children).
    pub fn add_placeholder(&mut self, name: &MailboxName) {
        let guid = self.next_guid();
        self.mailboxes.entry(name.clone()).or_insert_with(|| MemoryMailbox {
            selectable: false,
            ..MemoryMailbox::new(UidValidity::MIN, guid)
        });
    }

    /// A mailbox, if it exists.
    pub fn mailbox(&self, name: &MailboxName) -> Option<&MemoryMailbox> {
        self.mailboxes.get(name)
    }

    /// A mailbox for direct manipulation in tests.
    pub fn mailbox_mut(&mut self, name: &MailboxName) -> Option<&mut MemoryMailbox> {
        self.mailboxes.get_mut(name)
    }

    /// Every stored mailbox.
    pub fn all_mailboxes(&self) -> &BTreeMap<MailboxName, MemoryMailbox> {
        &self.mailboxes
    }

    /// Removes a mailbox outright (test setup; no INBOX protection).
    pub fn remove_mailbox(&mut self, name: &MailboxName) {
        self.mailboxes.remove(name);
    }

    /// Subscribes `name` (it need not exist).
    pub fn subscribe(&mut self, name: &MailboxName) {
        self.subscriptions.insert(name.clone());
    }

    /// Unsubscribes `name`.
    pub fn unsubscribe(&mut self, name: &MailboxName) {
        self.subscriptions.remove(name);
    }

    /// Subscribed names.
    pub fn subscribed(&self) -> &BTreeSet<MailboxName> {
        &self.subscriptions
    }

    /// Makes the write after `writes` more succeed fail with a temporary error, as a lost
    /// connection or a killed process would; `None` turns failures off.
    pub fn fail_after(&mut self, writes: Option<u64>) {
        self.writes_left = writes;
    }

    /// A UIDVALIDITY no mailbox of this storage has used, for mailboxes created without one.
    fn allocate_uid_validity(&mut self) -> UidValidity {
        let highest = self.mailboxes.values().map(|m| m.uid_validity.get()).max().unwrap_or(0);
        let value = highest.max(self.highest_uid_validity).max(1_000_000).saturating_add(1);
        self.highest_uid_validity = value;
        UidValidity::new(value).unwrap_or(UidValidity::MIN)
    }

    /// The mailbox `new` describes: its UIDVALIDITY (a new one when it has none), GUID and
    /// the source UIDVALIDITY it stands for.
    fn new_mailbox(&mut self, new: &NewMailbox) -> MemoryMailbox {
        let forced = if self.assigns_uids { None } else { new.uid_validity };
        let uid_validity = match forced {
            Some(value) => {
                self.highest_uid_validity = self.highest_uid_validity.max(value.get());
                value
            }
            None => self.allocate_uid_validity(),
        };
        let guid = if self.keeps_guids { new.guid.or_else(|| self.next_guid()) } else { None };
        let mut mailbox = MemoryMailbox::new(uid_validity, guid);
        if new.uid_validity.is_none() && !self.assigns_uids {
            mailbox.source_uid_validity = new.source_uid_validity;
        }
        mailbox
    }

    fn next_guid(&mut self) -> Option<MailboxGuid> {
        self.keeps_guids.then(|| {
            self.guid_counter = self.guid_counter.wrapping_add(1);
            MailboxGuid([self.guid_counter; 16])
        })
    }

    fn write_allowed(&mut self) -> Result<(), StorageError> {
        match &mut self.writes_left {
            Some(0) => Err(StorageError::new(ErrorKind::Temporary, "injected failure")),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn selectable(&self, name: &MailboxName) -> Result<&MemoryMailbox, StorageError> {
        self.mailboxes.get(name).filter(|m| m.selectable).ok_or_else(|| {
            StorageError::new(ErrorKind::NotFound, format!("mailbox {name} does not exist"))
        })
    }
}

impl Storage for MemoryStorage {
    fn describe(&self) -> String {
        String::from("memory")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mailbox_guids: self.keeps_guids,
            message_guids: self.message_guids,
            noselect_placeholders: true,
            unstable_uids: self.unstable_uids,
            assigns_uids: self.assigns_uids,
        }
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        let mut list: BTreeMap<MailboxName, bool> = self
            .mailboxes
            .iter()
            .filter(|(name, _)| !self.unlisted.contains_key(*name))
            .map(|(name, m)| (name.clone(), m.selectable))
            .collect();
        for (name, reason) in &self.unlisted {
            self.skipped.push(Skip::new(Some(name.clone()), name.to_string(), reason.as_str()));
        }
        // Like IMAP servers, list a missing parent as a \Noselect placeholder.
        for name in self.mailboxes.keys() {
            let mut parent = name.parent();
            while let Some(p) = parent {
                list.entry(p.clone()).or_insert(false);
                parent = p.parent();
            }
        }
        Ok(list
            .into_iter()
            .map(|(name, selectable)| MailboxInfo { selectable, ..MailboxInfo::new(name) })
            .collect())
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        Ok(self.subscriptions.clone())
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        Ok(self.selectable(mailbox)?.status())
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        let stored = self.selectable(mailbox)?;
        let contents = MailboxContents {
            status: stored.status(),
            messages: stored.messages.values().map(|m| m.meta.clone()).collect(),
        };
        for (item, reason) in self.unreadable.get(mailbox).into_iter().flatten() {
            self.skipped.push(Skip::new(Some(mailbox.clone()), item.as_str(), reason.as_str()));
        }
        self.remember_listing(mailbox, &contents.status);
        self.listings += 1;
        Ok(contents)
    }

    /// [`Storage::contents`], each message cloned only as it is read.
    fn listing(&mut self, mailbox: &MailboxName) -> Result<MessageListing<'_>, StorageError> {
        let status = self.selectable(mailbox)?.status();
        for (item, reason) in self.unreadable.get(mailbox).into_iter().flatten() {
            self.skipped.push(Skip::new(Some(mailbox.clone()), item.as_str(), reason.as_str()));
        }
        self.remember_listing(mailbox, &status);
        self.listings += 1;
        self.streamed += 1;
        let stored = self.selectable(mailbox)?;
        Ok(MessageListing::new(status, stored.messages.values().map(|m| Ok(m.meta.clone()))))
    }

    /// With [`MemoryStorage::keep_change_history`], the difference between what the
    /// mailbox held when `token` was given out and now: as exact as a QRESYNC server's
    /// answer, except that the expunged UIDs also name every UID up to UIDNEXT that no
    /// message has now (what Dovecot sends once its log no longer reaches back).
    fn changes_since(
        &mut self,
        mailbox: &MailboxName,
        token: &str,
    ) -> Result<Option<MailboxChanges>, StorageError> {
        let stored = self.selectable(mailbox)?;
        let Some(then) =
            self.history.as_ref().and_then(|h| h.get(&(mailbox.clone(), token.into())))
        else {
            return Ok(None);
        };
        if then.uid_validity != stored.uid_validity || self.unreadable.contains_key(mailbox) {
            return Ok(None);
        }
        let mut changes = MailboxChanges::new(stored.status());
        changes.changed = stored
            .messages
            .values()
            .filter(|m| then.flags.get(&m.meta.uid) != Some(&m.meta.flags))
            .map(|m| m.meta.clone())
            .collect();
        // The gaps between the UIDs held, below UIDNEXT.
        let mut next_free = 1u32;
        let held = stored.messages.keys().map(|uid| uid.get());
        for held in held.chain(std::iter::once(stored.uid_next.get())) {
            if let (Some(first), Some(last)) = (Uid::new(next_free), Uid::new(held - 1))
                && first <= last
            {
                changes.vanished.push((first, last));
            }
            next_free = next_free.max(held.saturating_add(1));
        }
        let status = changes.status.clone();
        self.remember_listing(mailbox, &status);
        Ok(Some(changes))
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skipped)
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        let stored = self.selectable(mailbox)?;
        for uid in uids {
            if let Some(message) = stored.messages.get(uid) {
                sink.body(&mut message.body.as_slice())?;
                sink.done(*uid)?;
            }
        }
        Ok(())
    }
}

impl StorageMut for MemoryStorage {
    fn create_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError> {
        self.write_allowed()?;
        if self.mailboxes.get(mailbox).is_some_and(|m| m.selectable) {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("mailbox {mailbox} already exists"),
            ));
        }
        let created = self.new_mailbox(new);
        self.mailboxes.insert(mailbox.clone(), created);
        Ok(())
    }

    fn delete_mailbox(&mut self, mailbox: &MailboxName) -> Result<(), StorageError> {
        self.write_allowed()?;
        if mailbox.is_inbox() {
            return Err(StorageError::new(ErrorKind::InvalidData, "INBOX can't be deleted"));
        }
        self.selectable(mailbox)?;
        self.mailboxes.remove(mailbox);
        Ok(())
    }

    /// Renames the mailbox and its descendants (placeholders included), as Dovecot does.
    fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<(), StorageError> {
        self.write_allowed()?;
        if from.is_inbox() || to.is_inbox() || to.is_within(from) {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("cannot rename {from} to {to}"),
            ));
        }
        self.selectable(from)?;
        let moving: Vec<MailboxName> =
            self.mailboxes.keys().filter(|name| name.is_within(from)).cloned().collect();
        let renamed = |name: &MailboxName| {
            let tail = &name.components()[from.components().len()..];
            MailboxName::new(to.components().iter().chain(tail).cloned())
        };
        let mut targets = Vec::with_capacity(moving.len());
        for name in &moving {
            let target = renamed(name).map_err(|e| {
                StorageError::with_source(ErrorKind::InvalidData, format!("renaming {name}"), e)
            })?;
            if self.mailboxes.contains_key(&target) {
                return Err(StorageError::new(
                    ErrorKind::InvalidData,
                    format!("mailbox {target} already exists"),
                ));
            }
            targets.push(target);
        }
        for (name, target) in moving.iter().zip(targets) {
            if let Some(mailbox) = self.mailboxes.remove(name) {
                self.mailboxes.insert(target, mailbox);
            }
        }
        Ok(())
    }

    /// INBOX, and a mailbox that takes a new UIDVALIDITY, are emptied in place (one step, as
    /// the trait asks); others are deleted and created.
    fn recreate_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError> {
        if !mailbox.is_inbox() && new.uid_validity.is_some() {
            self.delete_mailbox(mailbox)?;
            return self.create_mailbox(mailbox, new);
        }
        self.write_allowed()?;
        self.selectable(mailbox)?;
        let created = self.new_mailbox(new);
        self.mailboxes.insert(mailbox.clone(), created);
        Ok(())
    }

    fn renumber(
        &mut self,
        mailbox: &MailboxName,
        moves: &[(Uid, MessageMeta)],
    ) -> Result<(), StorageError> {
        self.write_allowed()?;
        let stored = self.mailboxes.get_mut(mailbox).filter(|m| m.selectable).ok_or_else(|| {
            StorageError::new(ErrorKind::NotFound, format!("mailbox {mailbox} does not exist"))
        })?;
        for (old, meta) in moves {
            if meta.uid < stored.uid_next {
                return Err(StorageError::new(
                    ErrorKind::InvalidData,
                    format!("UID {} is below UIDNEXT", meta.uid),
                ));
            }
            if let Some(mut message) = stored.messages.remove(old) {
                message.meta.uid = meta.uid;
                message.meta.flags = meta.flags.clone();
                stored.messages.insert(meta.uid, message);
                stored.uid_next = meta.uid.next().unwrap_or(meta.uid);
            }
        }
        Ok(())
    }

    fn set_subscribed(
        &mut self,
        mailbox: &MailboxName,
        subscribed: bool,
    ) -> Result<(), StorageError> {
        self.write_allowed()?;
        if subscribed {
            self.subscriptions.insert(mailbox.clone());
        } else {
            self.subscriptions.remove(mailbox);
        }
        Ok(())
    }

    /// Assigning UIDs, copies as an IMAP server's `UID COPY` does: at once and whole
    /// (one write), flags and received date kept, each copy under the target's next UID.
    fn copy_within(
        &mut self,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> Result<Option<crate::storage::CopiedWithin>, StorageError> {
        if !self.assigns_uids {
            return Ok(None);
        }
        if uids.is_empty() {
            return Ok(Some(crate::storage::CopiedWithin::default()));
        }
        self.write_allowed()?;
        let originals: Vec<(Uid, MemoryMessage)> = uids
            .iter()
            .filter_map(|uid| Some((*uid, self.selectable(from).ok()?.messages.get(uid)?.clone())))
            .collect();
        let target = self.mailboxes.get_mut(to).filter(|m| m.selectable).ok_or_else(|| {
            StorageError::new(ErrorKind::NotFound, format!("mailbox {to} does not exist"))
        })?;
        let mut copied = Vec::new();
        for (uid, original) in originals {
            let meta = &original.meta;
            let new = target.append(&original.body, meta.flags.clone(), meta.received);
            if let Some(stored) = target.messages.get_mut(&new) {
                stored.meta.guid.clone_from(&meta.guid);
            }
            copied.push((uid, new));
        }
        Ok(Some(crate::storage::CopiedWithin::new(Some(target.uid_validity.get()), copied)))
    }

    fn writer<'a>(
        &'a mut self,
        mailbox: &MailboxName,
    ) -> Result<Box<dyn MailboxWriter + 'a>, StorageError> {
        let uid_next = self.selectable(mailbox)?.uid_next;
        Ok(Box::new(MemoryWriter {
            storage: self,
            mailbox: mailbox.clone(),
            staged: Vec::new(),
            staged_body: None,
            uid_floor: uid_next,
            unheard: Vec::new(),
            heard: Vec::new(),
        }))
    }
}

enum Change {
    Save(MemoryMessage),
    Flags(Uid, Flags),
    Expunge(Vec<Uid>),
    UidNext(Uid),
    UidValidity(UidValidity),
}

struct MemoryWriter<'a> {
    storage: &'a mut MemoryStorage,
    mailbox: MailboxName,
    staged: Vec<Change>,
    staged_body: Option<Vec<u8>>,
    /// The lowest UID a new save may use (UIDNEXT including staged saves).
    uid_floor: Uid,
    /// Assigning UIDs: saves stored, their answers not yet heard (the next commit).
    unheard: Vec<(Uid, Uid)>,
    /// Assigning UIDs: answers heard and not yet taken.
    heard: Vec<(Uid, Uid)>,
}

impl MailboxWriter for MemoryWriter<'_> {
    fn save_body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).map_err(|e| {
            StorageError::with_source(ErrorKind::Temporary, "reading message body", e)
        })?;
        self.staged_body = Some(bytes);
        Ok(())
    }

    fn save_finish(&mut self, meta: &MessageMeta) -> Result<(), StorageError> {
        self.storage.write_allowed()?;
        let body = self.staged_body.take().ok_or_else(|| {
            StorageError::new(ErrorKind::InvalidData, "save_finish without a body")
        })?;
        if self.storage.assigns_uids {
            // Stored at once under the mailbox's next UID, as an APPEND is.
            let mailbox = self.storage.mailboxes.get_mut(&self.mailbox).ok_or_else(|| {
                StorageError::new(ErrorKind::NotFound, format!("mailbox {} vanished", self.mailbox))
            })?;
            let uid = mailbox.append(&body, meta.flags.clone(), meta.received);
            if let Some(stored) = mailbox.messages.get_mut(&uid) {
                stored.meta.guid.clone_from(&meta.guid);
            }
            self.unheard.push((meta.uid, uid));
            return Ok(());
        }
        if meta.uid < self.uid_floor {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("UID {} is below UIDNEXT {} of {}", meta.uid, self.uid_floor, self.mailbox),
            ));
        }
        self.uid_floor = meta.uid.next().unwrap_or(meta.uid);
        let mut meta = meta.clone();
        meta.virtual_size = Some(body.len() as u64);
        self.staged.push(Change::Save(MemoryMessage { meta, body }));
        Ok(())
    }

    /// Copies a committed message whose GUID is `meta.guid` (bodies are not shared: this
    /// is a model of the behaviour, not of the disk use).
    fn save_copy(
        &mut self,
        from: &MailboxName,
        uid: Uid,
        meta: &MessageMeta,
    ) -> Result<bool, StorageError> {
        self.storage.write_allowed()?;
        let Some(guid) = meta.guid.as_deref() else { return Ok(false) };
        let body = self
            .storage
            .mailboxes
            .get(from)
            .filter(|m| m.selectable)
            .and_then(|m| m.messages.get(&uid))
            .filter(|m| m.meta.guid.as_deref() == Some(guid))
            .map(|m| m.body.clone());
        let Some(body) = body else { return Ok(false) };
        self.staged_body = Some(body);
        self.save_finish(meta)?;
        Ok(true)
    }

    fn set_flags(&mut self, uid: Uid, flags: &Flags) -> Result<(), StorageError> {
        self.storage.write_allowed()?;
        self.staged.push(Change::Flags(uid, flags.clone()));
        Ok(())
    }

    fn believe_flags(&mut self, uid: Uid, flags: &Flags) {
        self.storage.beliefs.push((self.mailbox.clone(), uid, flags.clone()));
    }

    fn expunge(&mut self, uids: &[Uid]) -> Result<(), StorageError> {
        self.storage.write_allowed()?;
        self.staged.push(Change::Expunge(uids.to_vec()));
        Ok(())
    }

    fn raise_uid_next(&mut self, uid_next: Uid) -> Result<(), StorageError> {
        self.storage.write_allowed()?;
        self.uid_floor = self.uid_floor.max(uid_next);
        self.staged.push(Change::UidNext(uid_next));
        Ok(())
    }

    fn set_uid_validity(&mut self, uid_validity: UidValidity) -> Result<(), StorageError> {
        self.storage.write_allowed()?;
        self.staged.push(Change::UidValidity(uid_validity));
        Ok(())
    }

    fn set_guid(&mut self, guid: MailboxGuid) -> Result<(), StorageError> {
        self.storage.write_allowed()?;
        if self.storage.keeps_guids
            && let Some(mailbox) = self.storage.mailboxes.get_mut(&self.mailbox)
        {
            mailbox.guid = Some(guid);
        }
        Ok(())
    }

    fn take_assigned(&mut self) -> Vec<crate::storage::Assigned> {
        self.heard
            .drain(..)
            .map(|(requested, uid)| crate::storage::Assigned::stored(requested, Some(uid)))
            .collect()
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        if let Err(error) = self.storage.write_allowed() {
            // The connection went with the answers: the stored messages stay, unheard.
            self.unheard.clear();
            return Err(error);
        }
        self.heard.append(&mut self.unheard);
        let mailbox = self.storage.mailboxes.get_mut(&self.mailbox).ok_or_else(|| {
            StorageError::new(ErrorKind::NotFound, format!("mailbox {} vanished", self.mailbox))
        })?;
        for change in self.staged.drain(..) {
            match change {
                Change::Save(message) => {
                    let uid = message.meta.uid;
                    mailbox.messages.insert(uid, message);
                    mailbox.uid_next = mailbox.uid_next.max(uid.next().unwrap_or(uid));
                }
                Change::Flags(uid, flags) => mailbox.set_flags(uid, flags),
                Change::Expunge(uids) => uids.iter().for_each(|uid| mailbox.expunge(*uid)),
                Change::UidNext(uid) => mailbox.uid_next = mailbox.uid_next.max(uid),
                Change::UidValidity(value) => {
                    // What stood for the source's UIDVALIDITY was the old value.
                    mailbox.uid_validity = value;
                    mailbox.source_uid_validity = None;
                }
            }
        }
        Ok(())
    }
}
