//! The traits the engine talks to. An IMAP server, a Maildir, an in-memory test store or a
//! third party's own backend become a sync side by implementing them.
//!
//! * [`Storage`] is the read side: mailbox tree, subscriptions, status, message metadata,
//!   and bodies streamed into a [`MessageSink`].
//! * [`StorageMut`] adds the write side: create/delete mailboxes, subscriptions, and a
//!   [`MailboxWriter`] that saves messages with **forced UIDs**, changes flags, expunges and
//!   raises UIDNEXT, durable only at [`MailboxWriter::commit`].
//!
//! Bodies cross the seam in the IMAP wire form (CRLF line ends), as a `Read` that yields one
//! message: a storage that keeps LF on disk converts in both directions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};

mod sinks;

use crate::error::{ErrorKind, StorageError};
use crate::history::{FolderHistory, MessageHistory};
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStamp, MailboxStatus,
    MessageMeta, SpecialUse, Uid, UidValidity,
};
use sinks::{HeaderHashSink, RenumberSink};

/// What a storage can represent, so the planner does not ask for the impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Mailbox GUIDs are persistent identities (Dovecot storages keep one per mailbox): a
    /// different GUID under the same name is a different mailbox, and the same GUID under a
    /// new name a renamed one. IMAP servers and POP3 have none; their adapters still report
    /// the GUID Dovecot's imapc/pop3c derive from the name ([`crate::derived_guid`]), which
    /// is given to mailboxes created from them and adopted by a backup's destination, but
    /// never taken as identity: with `false` here, no rebuild and no rename detection
    /// follows from a GUID.
    pub mailbox_guids: bool,
    /// Message GUIDs are persistent and comparable across storages.
    pub message_guids: bool,
    /// A `\Noselect` mailbox that holds only children can exist without being a mailbox.
    pub noselect_placeholders: bool,
    /// UIDs are only positions that change when earlier messages go (POP3): messages are
    /// then matched by their POP3 UIDL instead.
    pub unstable_uids: bool,
    /// The storage gives each saved message a UID of its own choosing and cannot take a
    /// forced one, nor a UIDVALIDITY (an IMAP server: APPEND). Saves ignore
    /// [`MessageMeta::uid`] and report the UID given with
    /// [`MailboxWriter::take_assigned`]; the engine then pairs messages across the sides
    /// by a mapping kept in its state ([`crate::pairing`]) instead of by equal UIDs.
    pub assigns_uids: bool,
}

/// The read side of a storage.
pub trait Storage {
    /// A short description for messages and logs (never contains a secret).
    fn describe(&self) -> String;

    /// What this storage can represent.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Every mailbox, including `\Noselect` placeholders.
    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError>;

    /// Subscribed mailbox names (they need not exist).
    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError>;

    /// The status of one mailbox (cheap: no message list).
    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError>;

    /// The change token and GUID alone. The default takes them from [`Storage::status`];
    /// a storage whose status costs more than that (Maildir counts its files) overrides it.
    fn stamp(&mut self, mailbox: &MailboxName) -> Result<MailboxStamp, StorageError> {
        Ok(MailboxStamp::from(&self.status(mailbox)?))
    }

    /// What changed in `mailbox` since the listing whose status carried `token` (a
    /// [`MailboxStatus::change_token`] this storage gave out): new messages and messages
    /// whose flags changed, with their whole metadata, and the UIDs expunged since. `None`
    /// when the storage cannot tell (no such history: an IMAP server without QRESYNC, a
    /// mailbox with `NOMODSEQ`, mod-sequences that went back since, another UIDVALIDITY):
    /// the caller then lists the mailbox whole with [`Storage::contents`]. The default
    /// always answers `None`.
    ///
    /// [`MailboxStatus::change_token`]: crate::MailboxStatus::change_token
    fn changes_since(
        &mut self,
        mailbox: &MailboxName,
        token: &str,
    ) -> Result<Option<MailboxChanges>, StorageError> {
        let _ = (mailbox, token);
        Ok(None)
    }

    /// Status and every message's metadata, consistent with each other.
    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError>;

    /// [`Storage::contents`] as it is read: the status first, then the messages one at a
    /// time in ascending UID order, so that a backup compares two large mailboxes without
    /// holding either listing whole (benches/RESULTS-memory.md). A message that cannot be
    /// read ends the listing with the error. What the listing leaves out is reported by
    /// [`Storage::take_skipped`] once it was read to the end. The default reads
    /// [`Storage::contents`] whole; a storage that reads its messages one by one anyway
    /// (an IMAP FETCH, a directory's files) can hand them on as they come.
    fn listing(&mut self, mailbox: &MailboxName) -> Result<MessageListing<'_>, StorageError> {
        Ok(MessageListing::whole(self.contents(mailbox)?))
    }

    /// A hint: `mailbox` is the one the engine lists next ([`Storage::listing`]). With
    /// `after_fetch`, one more [`Storage::fetch`] of the current mailbox comes first, its
    /// last; without, this storage has nothing more to do for the current mailbox. A
    /// storage whose listing waits on a server can start it early (an IMAP server: the
    /// EXAMINE and its `UID FETCH` are sent behind that fetch, their answers read by that
    /// `listing`), so that the server works while the engine stores and commits the
    /// mailbox it copied. Whatever comes next, the storage must answer as if the hint had
    /// not been given: a failure to start belongs to the `listing`, and any other call
    /// first drops what was started. The default does nothing.
    fn list_ahead(&mut self, mailbox: &MailboxName, after_fetch: bool) {
        let _ = (mailbox, after_fetch);
    }

    /// Streams the bodies of `uids` (ascending) into `sink`: for each message found,
    /// [`MessageSink::body`] then [`MessageSink::done`]. UIDs that no longer exist are
    /// skipped silently; the caller notices that `done` was never called for them.
    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError>;

    /// Entries this storage left out of what it reported since the last call (its mailbox
    /// list, a message list, a body), each with the reason: something the source holds that
    /// the run will not copy, such as a Maildir entry that is a symlink leaving the store or
    /// a FIFO, or a folder name that cannot be mapped. The engine collects them into
    /// [`crate::Report::skipped`], and a run that skipped anything ends with exit 65, so that
    /// exit 0 always means nothing was left behind. The default reports none.
    ///
    /// A storage reports an entry every time it leaves it out; a mailbox whose listing
    /// skipped something is not recorded as synced in the state (the next run looks again
    /// and reports it again, rather than passing it over as unchanged).
    fn take_skipped(&mut self) -> Vec<Skip> {
        Vec::new()
    }

    /// What an operator should know that is neither a failure nor something left out,
    /// since the last call (a message copied with a received date taken from its header
    /// because the server's was invalid). The engine moves them into
    /// [`crate::Report::warnings`]. The default reports none.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// The mailbox's attributes (IMAP METADATA; Dovecot keeps Sieve scripts as INBOX's
    /// private `vendor/vendor.dovecot/pvt/server/sieve/…` attributes), deleted ones
    /// included so a sync can carry the deletion. The default, for storages that keep
    /// none, is an empty list.
    fn attributes(&mut self, mailbox: &MailboxName) -> Result<Vec<MailboxAttribute>, StorageError> {
        let _ = mailbox;
        Ok(Vec::new())
    }

    /// What this storage's own history says happened to the messages of `mailbox`
    /// (expunges and flag changes in a Dovecot-served Maildir's or sdbox's index log), for
    /// a merge without state of its own. The default: no history (`None`), and the merge
    /// cannot tell an expunged message from one never delivered, nor which side changed
    /// a message's flags.
    fn message_history(
        &mut self,
        mailbox: &MailboxName,
    ) -> Result<Option<MessageHistory>, StorageError> {
        let _ = mailbox;
        Ok(None)
    }

    /// The mailbox deletes and renames this storage's own history records (Dovecot's
    /// `dovecot.mailbox.log`), for a merge without state of its own. The default: none.
    fn folder_history(&mut self) -> Result<FolderHistory, StorageError> {
        Ok(FolderHistory::default())
    }

    /// Dovecot's header hash (see [`crate::header_hash`]) of each of `uids`, the identity
    /// of messages when GUIDs are not available on both sides. UIDs that no longer exist
    /// are missing from the answer. The default reads each message's header through
    /// [`Storage::fetch`]; IMAP adapters fetch only the two header fields.
    fn header_hashes(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, String>, StorageError> {
        let mut sink = HeaderHashSink::default();
        self.fetch(mailbox, uids, &mut sink)?;
        Ok(sink.into_hashes())
    }
}

/// A mailbox's listing as it is read ([`Storage::listing`]).
#[non_exhaustive]
pub struct MessageListing<'a> {
    /// The status, consistent with the messages.
    pub status: MailboxStatus,
    /// The messages, in ascending UID order.
    pub messages: Box<dyn Iterator<Item = Result<MessageMeta, StorageError>> + 'a>,
}

impl<'a> MessageListing<'a> {
    /// A listing of `status` whose messages `messages` reads.
    pub fn new(
        status: MailboxStatus,
        messages: impl Iterator<Item = Result<MessageMeta, StorageError>> + 'a,
    ) -> MessageListing<'a> {
        MessageListing { status, messages: Box::new(messages) }
    }

    /// The listing of `contents`, read whole before.
    pub fn whole(contents: MailboxContents) -> MessageListing<'static> {
        MessageListing::new(contents.status, contents.messages.into_iter().map(Ok))
    }
}

impl std::fmt::Debug for MessageListing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageListing").field("status", &self.status).finish_non_exhaustive()
    }
}

/// What changed in a mailbox since a change token ([`Storage::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxChanges {
    /// The mailbox's status now (its change token the one to ask with next time).
    pub status: MailboxStatus,
    /// Messages new or changed since the token, with their whole metadata, ascending UID.
    pub changed: Vec<MessageMeta>,
    /// UID ranges (inclusive, ascending) expunged since the token. They may also name UIDs
    /// that never existed (a server that no longer knows which went sends every UID it
    /// does not hold).
    pub vanished: Vec<(Uid, Uid)>,
}

impl MailboxChanges {
    /// Changes with nothing changed or expunged yet.
    pub fn new(status: MailboxStatus) -> MailboxChanges {
        MailboxChanges { status, changed: Vec::new(), vanished: Vec::new() }
    }
}

/// One mailbox attribute ([`Storage::attributes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxAttribute {
    /// True for a private (per user) attribute, false for a shared one.
    pub private: bool,
    /// The key without the `/private/` or `/shared/` prefix (`comment`,
    /// `vendor/vendor.dovecot/pvt/server/sieve/files/NAME`).
    pub key: String,
    /// The value; `None` for an attribute that was deleted.
    pub value: Option<Vec<u8>>,
    /// When it last changed (UNIX time), when known.
    pub last_change: Option<i64>,
}

impl MailboxAttribute {
    /// An attribute with a value.
    pub fn new(private: bool, key: impl Into<String>, value: Option<Vec<u8>>) -> MailboxAttribute {
        MailboxAttribute { private, key: key.into(), value, last_change: None }
    }
}

/// An entry a storage left out, and why ([`Storage::take_skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skip {
    /// The mailbox the entry belongs to, in the engine's names; `None` when the entry is a
    /// mailbox that could not be given a name at all.
    pub mailbox: Option<MailboxName>,
    /// What was left out, as the storage knows it: a path inside the store
    /// (`.Archive/cur/1700000000.M1P2.host:2,S`), a server's mailbox name, `UID 12`.
    pub item: String,
    /// Why, in words an operator can act on.
    pub reason: String,
}

impl Skip {
    /// `item` of `mailbox` (if any) left out because of `reason`.
    pub fn new(
        mailbox: Option<MailboxName>,
        item: impl Into<String>,
        reason: impl Into<String>,
    ) -> Skip {
        Skip { mailbox, item: item.into(), reason: reason.into() }
    }
}

/// How much of a body is read at once on its way into a storage ([`copy_body`]).
#[cfg(feature = "maildir")]
const BODY_CHUNK: usize = 64 * 1024;

/// Copies a whole body from `body` into `to`, through `buffer` (grown to [`BODY_CHUNK`]
/// once, then kept by the caller for the next message): `io::copy` would zero its own
/// 8 KiB buffer on every read, and read a large body from the socket in 8 KiB pieces.
#[cfg(feature = "maildir")]
pub(crate) fn copy_body(
    body: &mut dyn Read,
    to: &mut dyn std::io::Write,
    buffer: &mut Vec<u8>,
) -> std::io::Result<u64> {
    if buffer.len() < BODY_CHUNK {
        buffer.resize(BODY_CHUNK, 0);
    }
    let mut copied = 0;
    loop {
        let n = match body.read(buffer) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buffer[..n])?;
        copied += n as u64;
    }
}

/// Receives message bodies from [`Storage::fetch`].
///
/// The two calls exist because some IMAP servers send a message's `UID` after its body:
/// the body is delivered (and can be spooled to its final storage) before the sink learns
/// which message it was.
pub trait MessageSink {
    /// The body of the next message. Reading it to the end is not required.
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError>;

    /// Like [`body`](Self::body) (which the default calls), from a source that holds the
    /// bytes in a buffer of its own (an IMAP connection's receive buffer): a sink that
    /// converts or writes them in place saves a copy per message.
    fn body_buffered(&mut self, body: &mut dyn BufRead) -> Result<(), StorageError> {
        self.body(body)
    }

    /// The body delivered last belongs to `uid`.
    fn done(&mut self, uid: Uid) -> Result<(), StorageError>;

    /// Like [`done`](Self::done), from a source that learns a message's received date only
    /// from its body (POP3 has no INTERNALDATE): the date is used when the message's
    /// metadata has none.
    fn done_with_received(&mut self, uid: Uid, received: Option<i64>) -> Result<(), StorageError> {
        let _ = received;
        self.done(uid)
    }

    /// Like [`done_with_received`](Self::done_with_received), from a source that hands
    /// more of a message's metadata with its body than in its listing (Dovecot's dsync `M`
    /// items carry the POP3 UIDL and order): each field is used when the message's metadata
    /// has none.
    fn done_with_delivered(&mut self, uid: Uid, delivered: Delivered) -> Result<(), StorageError> {
        self.done_with_received(uid, delivered.received)
    }

    /// Whether the message `uid` may need the received date a source reads from its body
    /// ([`done_with_received`](Self::done_with_received)); `false` lets the source skip
    /// reading it (a message whose metadata has a date, or one not asked for).
    fn wants_received(&self, uid: Uid) -> bool {
        let _ = uid;
        true
    }
}

/// Metadata a source learns only while delivering a message's body
/// ([`MessageSink::done_with_delivered`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// The received date (UNIX seconds).
    pub received: Option<i64>,
    /// The POP3 UIDL.
    pub pop3_uidl: Option<String>,
    /// The position in the POP3 listing (1-based).
    pub pop3_order: Option<u32>,
}

impl Delivered {
    /// Just a received date.
    pub fn received(received: Option<i64>) -> Delivered {
        Delivered { received, ..Delivered::default() }
    }

    /// Whether `meta` lacks something this has.
    pub fn adds_to(&self, meta: &MessageMeta) -> bool {
        (meta.received.is_none() && self.received.is_some())
            || (meta.pop3_uidl.is_none() && self.pop3_uidl.is_some())
            || (meta.pop3_order.is_none() && self.pop3_order.is_some())
    }

    /// Fills in what `meta` lacks (what it has, e.g. a planned POP3 order, stays).
    pub fn fill(self, meta: &mut MessageMeta) {
        if meta.received.is_none() {
            meta.received = self.received;
        }
        if meta.pop3_uidl.is_none() {
            meta.pop3_uidl = self.pop3_uidl;
        }
        if meta.pop3_order.is_none() {
            meta.pop3_order = self.pop3_order;
        }
    }
}

/// Parameters of a mailbox to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailbox {
    /// UIDVALIDITY to give it (the source's, so cached UIDs stay valid); `None` lets the
    /// storage allocate one (imports).
    pub uid_validity: Option<UidValidity>,
    /// Mailbox GUID to give it, when the source has a persistent one.
    pub guid: Option<MailboxGuid>,
    /// With `uid_validity` `None` in a backup: the source's UIDVALIDITY, which this storage
    /// already gave out other UIDs under, so the mailbox takes a new one of its own and
    /// remembers that it holds the source's UIDs ([`MailboxStatus::source_uid_validity`]).
    /// The storage must keep it with the mailbox for as long as the mailbox keeps that
    /// UIDVALIDITY; one that cannot leaves it out of its status (the next backup then
    /// rebuilds the mailbox again, under yet another UIDVALIDITY: safe, not cheap).
    pub source_uid_validity: Option<UidValidity>,
}

/// The write side of a storage.
pub trait StorageMut: Storage {
    /// Creates a selectable mailbox (parents as needed) with the given UIDVALIDITY.
    fn create_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError>;

    /// Deletes one mailbox and its messages. Children are not deleted; the mailbox may
    /// remain as a `\Noselect` placeholder for them. Deleting INBOX is an error.
    fn delete_mailbox(&mut self, mailbox: &MailboxName) -> Result<(), StorageError>;

    /// Renames a mailbox and its children, keeping their UIDVALIDITY, UIDs, GUIDs and mail
    /// (a merge uses it when the other side renamed the mailbox since the last run). The
    /// target must not exist. The default refuses; the merge then copies the mailbox under
    /// its new name instead, which loses nothing.
    fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<(), StorageError> {
        Err(StorageError::new(ErrorKind::InvalidData, format!("cannot rename {from} to {to} here")))
    }

    /// Empties `mailbox` and gives it a new identity (UIDVALIDITY, GUID, UIDNEXT 1), for a
    /// destination that cannot be reconciled with its source. The default deletes and
    /// creates it; a storage whose INBOX cannot be deleted must override this so that
    /// INBOX is emptied and re-identified in place.
    ///
    /// With `new.uid_validity` `None` (the mailbox must not go back to UIDs it gave out
    /// before) the change should be atomic: a crash between a delete and a create would
    /// leave no trace of the old mailbox, and the next run would create it again under the
    /// old UIDVALIDITY. Storages override this to empty the mailbox in place.
    fn recreate_mailbox(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
    ) -> Result<(), StorageError> {
        self.delete_mailbox(mailbox)?;
        self.create_mailbox(mailbox, new)
    }

    /// How `name`, coming from another storage, is spelled here. A storage that cannot hold
    /// some characters in a name replaces them (Dovecot's `dsync_alt_char`, `_`: a `.`
    /// inside a Maildir++ folder name, a `/` anywhere). The default keeps names unchanged.
    fn local_name(&self, name: &MailboxName) -> MailboxName {
        name.clone()
    }

    /// Moves messages to new UIDs within `mailbox` (a two-way sync making both sides agree
    /// on UIDs): each `(old, meta)` gives the message at UID `old` the UID and flags of
    /// `meta`. New UIDs are ascending and at least UIDNEXT. Messages no longer there are
    /// skipped. Storages should override this with an atomic operation (Maildir rewrites
    /// the uidlist once); the default copies each body to its new UID and then expunges the
    /// old one, so a crash in between can leave a message at both UIDs.
    fn renumber(
        &mut self,
        mailbox: &MailboxName,
        moves: &[(Uid, MessageMeta)],
    ) -> Result<(), StorageError> {
        let old: Vec<Uid> = moves.iter().map(|(uid, _)| *uid).collect();
        let spool = crate::spool::Spool::fill(self, mailbox, &old)?;
        let mut writer = self.writer(mailbox)?;
        spool.replay(&mut RenumberSink::new(&mut *writer, moves))?;
        writer.commit()?;
        writer.expunge(&old)?;
        writer.commit()
    }

    /// Subscribes or unsubscribes a name.
    fn set_subscribed(
        &mut self,
        mailbox: &MailboxName,
        subscribed: bool,
    ) -> Result<(), StorageError>;

    /// Subscribes (`true`) or unsubscribes (`false`) each name, in order, at once where the
    /// storage can: a Maildir rewrites its `subscriptions` file once instead of once per
    /// name, which made thousands of folders quadratic. Returns the changes refused one by
    /// one (a name this storage cannot hold), each with why, and applies the others; an
    /// `Err` is about them all (the file could not be written, the connection is lost), and
    /// any of them may or may not have been applied. The default calls
    /// [`set_subscribed`](Self::set_subscribed) for each name.
    fn update_subscriptions(
        &mut self,
        changes: &[(MailboxName, bool)],
    ) -> Result<Vec<(MailboxName, StorageError)>, StorageError> {
        let mut refused = Vec::new();
        for (mailbox, subscribed) in changes {
            match self.set_subscribed(mailbox, *subscribed) {
                Ok(()) => {}
                Err(error) if error.kind().is_confined() => refused.push((mailbox.clone(), error)),
                Err(error) => return Err(error),
            }
        }
        Ok(refused)
    }

    /// [`create_mailbox`](Self::create_mailbox) with the special-use roles the mailbox
    /// should have, for a storage that can set them at creation (IMAP's
    /// CREATE-SPECIAL-USE, RFC 6154). The default ignores the roles.
    fn create_mailbox_with_roles(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
        roles: &[SpecialUse],
    ) -> Result<(), StorageError> {
        let _ = roles;
        self.create_mailbox(mailbox, new)
    }

    /// Opens an existing mailbox for changes.
    fn writer<'a>(
        &'a mut self,
        mailbox: &MailboxName,
    ) -> Result<Box<dyn MailboxWriter + 'a>, StorageError>;

    /// Copies messages `uids` of `from` into `to`, both mailboxes of this storage, without
    /// moving their bodies over the wire (IMAP `UID COPY`; the copies keep the originals'
    /// flags and received date). `None`: this storage cannot copy (the default); the
    /// caller then saves the bodies the usual way. With no `uids` nothing is sent: the
    /// answer only says whether the storage can copy. See [`CopiedWithin`].
    fn copy_within(
        &mut self,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> Result<Option<CopiedWithin>, StorageError> {
        let _ = (from, uids, to);
        Ok(None)
    }

    /// True when a message shown in several mailboxes is one message with several labels
    /// (Gmail, `X-GM-EXT-1`): a copy into another mailbox adds a label, flags are the
    /// message's own in every mailbox, and expunging it from the all-mail mailbox (`\All`)
    /// deletes it from every mailbox. The default: mailboxes hold copies of their own.
    fn labels_as_mailboxes(&self) -> bool {
        false
    }

    /// Of `uids` in `mailbox`, those that still show in some other mailbox as a label a
    /// user filed them under ([`labels_as_mailboxes`](Self::labels_as_mailboxes): Gmail's
    /// `X-GM-LABELS`), so that expunging them from the all-mail mailbox would delete them
    /// everywhere. The default: none.
    fn still_labelled(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeSet<Uid>, StorageError> {
        let _ = (mailbox, uids);
        Ok(BTreeSet::new())
    }
}

/// What [`StorageMut::copy_within`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopiedWithin {
    /// The UIDVALIDITY of the mailbox copied into, when the storage said.
    pub uid_validity: Option<u32>,
    /// Each copied UID with the UID of its copy, as far as the storage said (an IMAP
    /// server without UIDPLUS says nothing: the copies are there, their UIDs unknown).
    pub uids: Vec<(Uid, Uid)>,
}

impl CopiedWithin {
    /// Copies into a mailbox of `uid_validity` (when known): each UID with its copy's.
    pub fn new(uid_validity: Option<u32>, uids: Vec<(Uid, Uid)>) -> CopiedWithin {
        CopiedWithin { uid_validity, uids }
    }
}

/// Changes to one mailbox, made durable by [`MailboxWriter::commit`]. Dropping a writer
/// without committing discards what was staged since the last commit.
pub trait MailboxWriter {
    /// Stages the body of the next message to save (see [`MailboxWriter::save_finish`]).
    /// A body staged earlier and never finished is discarded.
    fn save_body(&mut self, body: &mut dyn Read) -> Result<(), StorageError>;

    /// Like [`save_body`](Self::save_body) (which the default calls), with the bytes read
    /// in place from the source's buffer: a storage that converts or writes them from
    /// there saves a copy per message.
    fn save_body_buffered(&mut self, body: &mut dyn BufRead) -> Result<(), StorageError> {
        self.save_body(body)
    }

    /// Saves the staged body with `meta`: its UID (forced; at least the mailbox's UIDNEXT
    /// and above every UID saved before), flags, keywords, received date and, where the
    /// storage keeps them, GUID and POP3 data.
    fn save_finish(&mut self, meta: &MessageMeta) -> Result<(), StorageError>;

    /// Saves a copy of message `uid` of `from`, a mailbox of this same storage, as `meta`
    /// (its UID, flags, keywords, received date and GUID), when that message's GUID is
    /// `meta.guid`: a body the storage already holds is not transferred again (doveadm's
    /// `-a`). Returns `false` when this storage cannot copy, or `from` no longer holds such
    /// a message; nothing is staged then and the caller saves the body the usual way. The
    /// default always returns `false`. A Maildir hard-links the file, as Dovecot does.
    fn save_copy(
        &mut self,
        from: &MailboxName,
        uid: Uid,
        meta: &MessageMeta,
    ) -> Result<bool, StorageError> {
        let _ = (from, uid, meta);
        Ok(false)
    }

    /// The flags the caller believes message `uid` carries here now (what the last run
    /// left, from its state), told before a [`set_flags`](Self::set_flags) or
    /// [`expunge`](Self::expunge) of it. A storage that must search for a message (a
    /// Maildir reads its directories to learn a file's name, which carries the flags)
    /// looks under the believed name first; a wrong belief costs only that search. The
    /// default ignores it.
    fn believe_flags(&mut self, uid: Uid, flags: &Flags) {
        let _ = (uid, flags);
    }

    /// Replaces the flags and keywords of `uid`.
    fn set_flags(&mut self, uid: Uid, flags: &Flags) -> Result<(), StorageError>;

    /// Expunges `uids`.
    fn expunge(&mut self, uids: &[Uid]) -> Result<(), StorageError>;

    /// Flag changes staged from here on apply only to messages that nothing changed since
    /// the mailbox's modification sequence `modseq` (CONDSTORE's `UNCHANGEDSINCE`: a flag a
    /// mail client changed after the listing is not overwritten). The default ignores it,
    /// right for a storage without modification sequences.
    fn unchanged_since(&mut self, modseq: u64) {
        let _ = modseq;
    }

    /// The flag changes and expunges the storage left undone since the last call, by
    /// choice rather than failure (see [`NotApplied`]). The default: none.
    fn take_not_applied(&mut self) -> NotApplied {
        NotApplied::default()
    }

    /// Raises UIDNEXT to at least `uid_next` (never lowers it).
    fn raise_uid_next(&mut self, uid_next: Uid) -> Result<(), StorageError>;

    /// Raises HIGHESTMODSEQ to at least `modseq` (never lowers it), at the next
    /// [`commit`](Self::commit): a client that cached the source's HIGHESTMODSEQ must not
    /// see the copy's below it. The default does nothing, right for a storage without
    /// modseqs of its own to set (a Maildir, an IMAP server).
    fn raise_highest_modseq(&mut self, modseq: u64) -> Result<(), StorageError> {
        let _ = modseq;
        Ok(())
    }

    /// Gives the mailbox another GUID, keeping UIDVALIDITY, messages and UIDs (a backup
    /// destination adopting a GUID the source derives from the name, see
    /// [`crate::plan::MailboxPlan::set_guid`]). Applies at once, not at
    /// [`commit`](Self::commit). The default does nothing, which is right for a storage
    /// without mailbox GUIDs; one that keeps them overrides it, or the plan asks again on
    /// every run.
    fn set_guid(&mut self, guid: MailboxGuid) -> Result<(), StorageError> {
        let _ = guid;
        Ok(())
    }

    /// Gives the mailbox a new UIDVALIDITY, keeping its messages and UIDs (a two-way sync
    /// resolving a UIDVALIDITY conflict). Storages that cannot (an IMAP server) refuse.
    fn set_uid_validity(&mut self, uid_validity: UidValidity) -> Result<(), StorageError> {
        Err(StorageError::new(
            ErrorKind::InvalidData,
            format!("this storage cannot change a mailbox's UIDVALIDITY (to {uid_validity})"),
        ))
    }

    /// Makes everything staged so far durable.
    fn commit(&mut self) -> Result<(), StorageError>;

    /// A commit along the way for a storage that assigns UIDs: like [`commit`], but it
    /// may leave the latest saves unconfirmed, so that the storage keeps working on them
    /// while the caller records what [`take_assigned`] reports (an IMAP server with
    /// APPENDs still in flight). The saves left out are reported by a later call or by
    /// the next [`commit`], which confirms everything. The default is [`commit`].
    ///
    /// [`commit`]: MailboxWriter::commit
    /// [`take_assigned`]: MailboxWriter::take_assigned
    fn commit_confirmed(&mut self) -> Result<(), StorageError> {
        self.commit()
    }

    /// For a storage that assigns UIDs ([`Capabilities::assigns_uids`]): what became of
    /// the saves committed since the last call, in the order they were made, each under
    /// the UID its [`MessageMeta`] asked for. The default (a storage that takes forced
    /// UIDs) reports nothing: each save has the UID it asked for.
    fn take_assigned(&mut self) -> Vec<Assigned> {
        Vec::new()
    }
}

/// What a [`MailboxWriter`] chose not to do ([`MailboxWriter::take_not_applied`]): the
/// engine keeps its record of these messages as it was, so the next run looks at them
/// again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotApplied {
    /// Messages whose flags were not replaced: changed since the modification sequence
    /// given to [`MailboxWriter::unchanged_since`].
    pub flags: Vec<Uid>,
    /// Messages not expunged: an IMAP server without UIDPLUS, where an `EXPUNGE` would
    /// also remove messages someone else marked `\Deleted`.
    pub expunges: Vec<Uid>,
    /// Flags and keywords the mailbox does not keep (an IMAP server's PERMANENTFLAGS):
    /// left out of what was stored or saved.
    pub not_kept: Flags,
}

/// What became of one save on a storage that assigns UIDs ([`MailboxWriter::take_assigned`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Assigned {
    /// The UID the save's [`MessageMeta`] carried (the engine's key for it).
    pub requested: Uid,
    /// The UID the storage gave it (`Ok(None)`: stored, but the storage cannot tell the
    /// UID: an IMAP server without UIDPLUS), or why it was not stored. The error's kind
    /// says what to do: [`ErrorKind::Temporary`] to try again later (throttled, after
    /// [`Assigned::retry_after`] when the server said), [`ErrorKind::InvalidData`] for a
    /// message this storage will never take (too big), another kind to stop (quota full).
    pub result: Result<Option<Uid>, StorageError>,
    /// How long the storage asked to wait before trying again, when it said.
    pub retry_after: Option<std::time::Duration>,
}

impl Assigned {
    /// `requested` stored under `uid`.
    pub fn stored(requested: Uid, uid: Option<Uid>) -> Assigned {
        Assigned { requested, result: Ok(uid), retry_after: None }
    }

    /// `requested` not stored, because of `error`.
    pub fn refused(
        requested: Uid,
        error: StorageError,
        retry_after: Option<std::time::Duration>,
    ) -> Assigned {
        Assigned { requested, result: Err(error), retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::Delivered;
    use crate::model::{Flags, MessageMeta, Uid};

    #[test]
    fn delivered_fills_only_what_the_metadata_lacks() {
        let uid = Uid::new(7).expect("nonzero");
        let mut planned = MessageMeta::new(uid, Flags::default());
        planned.pop3_order = Some(2);
        let delivered = Delivered {
            received: Some(1_700_000_000),
            pop3_uidl: Some("legacy-7".into()),
            pop3_order: Some(9),
        };
        assert!(delivered.adds_to(&planned));
        delivered.fill(&mut planned);
        assert_eq!(planned.received, Some(1_700_000_000));
        assert_eq!(planned.pop3_uidl.as_deref(), Some("legacy-7"));
        assert_eq!(planned.pop3_order, Some(2), "a planned order stays");
        assert!(!Delivered::received(Some(1)).adds_to(&planned));
        assert!(!Delivered::default().adds_to(&MessageMeta::new(uid, Flags::default())));
    }
}
