//! An IMAP account as a sync destination: CREATE (with the special-use roles where the
//! server takes them), DELETE, RENAME, SUBSCRIBE, and per mailbox a writer that streams
//! each message into a pipelined APPEND with its flags, keywords and INTERNALDATE,
//! learns the UID the server gave it from APPENDUID (UIDPLUS), stores flag changes and
//! expunges exactly the UIDs it is given.
//!
//! The server chooses UIDs and UIDVALIDITYs ([`Capabilities::assigns_uids`]): the engine
//! pairs messages through its state ([`crate::pairing`]) instead of forcing UIDs.
//!
//! [`Capabilities::assigns_uids`]: crate::Capabilities::assigns_uids

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::time::Duration;

use imapc::proto::{BodyStart, Fetch, FetchItem, ListAttribute, StoreAction};
use imapc::{Expunged, FetchHandler, Flag, Refusal, SequenceSet};

use super::{ImapStorage, convert_error};
use crate::error::{ErrorKind, StorageError};
use crate::model::{Flags, MailboxName, MessageMeta, SpecialUse, Uid};
use crate::spool::temp_file;
use crate::storage::{Assigned, CopiedWithin, MailboxWriter, NewMailbox, NotApplied, StorageMut};

/// A message to append is held in memory up to this size, beyond it in an unlinked
/// temporary file: APPEND announces the length before the bytes, and the flags and date
/// come after the body ([`MailboxWriter::save_finish`]).
const BODY_IN_MEMORY: usize = 1 << 20;

/// APPENDs left unanswered by a commit along the way
/// ([`MailboxWriter::commit_confirmed`]): the server works on them while the engine
/// records the answers heard, instead of idling until the next APPEND arrives. Half of
/// what imapc lets fly, so that sending goes on for a while before it waits again.
const APPENDS_KEPT_IN_FLIGHT: usize = imapc::MAX_APPENDS_IN_FLIGHT / 2;

/// Messages sent in one MULTIAPPEND at most, and bytes: a server stores a batch in one
/// transaction (Dovecot: about a tenth of its CPU per message against separate APPENDs),
/// and refuses it all or nothing, which then costs sending these again one by one.
const BATCH_MESSAGES: usize = 50;
const BATCH_BYTES: usize = 1 << 20;

/// Bytes of batched messages kept until their MULTIAPPEND is answered (to send them again
/// alone if it is refused): beyond it the writer waits for answers before sending more.
const BATCHED_AWAITING_BYTES: usize = 8 << 20;

/// MULTIAPPENDs left unanswered by a commit along the way: each holds many messages, and
/// their bodies are kept until answered.
const BATCHES_KEPT_IN_FLIGHT: usize = 2;

impl StorageMut for ImapStorage {
    fn create_mailbox(
        &mut self,
        mailbox: &MailboxName,
        _new: &NewMailbox,
    ) -> Result<(), StorageError> {
        // The server gives the mailbox a UIDVALIDITY of its own: the pairs in the state,
        // not equal UIDs, say which message is which.
        let wire = self.wire_name(mailbox);
        self.session.create(&wire).map_err(|e| convert_error(e, "CREATE"))
    }

    fn create_mailbox_with_roles(
        &mut self,
        mailbox: &MailboxName,
        new: &NewMailbox,
        roles: &[SpecialUse],
    ) -> Result<(), StorageError> {
        let attributes: Vec<ListAttribute> = roles.iter().map(|r| attribute(*r)).collect();
        if attributes.is_empty() || !self.session.has_capability("CREATE-SPECIAL-USE") {
            return self.create_mailbox(mailbox, new);
        }
        let wire = self.wire_name(mailbox);
        match self.session.create_special_use(&wire, &attributes) {
            Ok(()) => Ok(()),
            // A server may refuse a role (one mailbox per role, or not this one, RFC 6154
            // `[USEATTR]`): the mailbox is still wanted, without it.
            Err(error @ imapc::Error::No { .. }) => {
                self.warnings.push(format!(
                    "mailbox {mailbox} was created without its special-use role: {error}"
                ));
                self.create_mailbox(mailbox, new)
            }
            Err(error) => Err(convert_error(error, "CREATE")),
        }
    }

    fn delete_mailbox(&mut self, mailbox: &MailboxName) -> Result<(), StorageError> {
        if mailbox.is_inbox() {
            return Err(StorageError::new(ErrorKind::InvalidData, "INBOX cannot be deleted"));
        }
        let wire = self.wire_name(mailbox);
        if self.session.selected() == Some(&wire) {
            // Dovecot refuses to delete the selected mailbox.
            let _ = self.session.unselect();
        }
        self.examined = None;
        self.session.delete(&wire).map_err(|e| convert_error(e, "DELETE"))?;
        self.remote.remove(mailbox);
        Ok(())
    }

    fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<(), StorageError> {
        let (old, new) = (self.wire_name(from), self.wire_name(to));
        self.examined = None;
        self.session.rename(&old, &new).map_err(|e| convert_error(e, "RENAME"))?;
        self.remote.remove(from);
        Ok(())
    }

    fn set_subscribed(
        &mut self,
        mailbox: &MailboxName,
        subscribed: bool,
    ) -> Result<(), StorageError> {
        let wire = self.wire_name(mailbox);
        if subscribed {
            self.session.subscribe(&wire).map_err(|e| convert_error(e, "SUBSCRIBE"))
        } else {
            self.session.unsubscribe(&wire).map_err(|e| convert_error(e, "UNSUBSCRIBE"))
        }
    }

    fn copy_within(
        &mut self,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> Result<Option<CopiedWithin>, StorageError> {
        if uids.is_empty() {
            return Ok(Some(CopiedWithin::default()));
        }
        // COPY works from a mailbox examined read-only; one already selected for writing
        // (the last writer's) is as good.
        if self.examined.as_ref() != Some(from) || self.session.selected().is_none() {
            self.examine(from)?;
        }
        let target = self.wire_name(to);
        let doing = format!("UID COPY from {from} to {to}");
        let answer =
            self.session.uid_copy(&uid_set(uids), &target).map_err(|e| convert_error(e, &doing))?;
        // Without COPYUID (no UIDPLUS) the copies are there under UIDs nobody said: the
        // engine finds them by content at the next run, as for an APPEND without APPENDUID.
        let Some(answer) = answer else { return Ok(Some(CopiedWithin::default())) };
        let uids = answer
            .pairs
            .iter()
            .filter_map(|(old, new)| Some((Uid::new(old.get())?, Uid::new(new.get())?)))
            .collect();
        Ok(Some(CopiedWithin { uid_validity: Some(answer.uid_validity.get()), uids }))
    }

    fn labels_as_mailboxes(&self) -> bool {
        self.session.has_capability("X-GM-EXT-1")
    }

    fn still_labelled(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeSet<Uid>, StorageError> {
        if uids.is_empty() || !self.labels_as_mailboxes() {
            return Ok(BTreeSet::new());
        }
        if self.examined.as_ref() != Some(mailbox) || self.session.selected().is_none() {
            self.examine(mailbox)?;
        }
        let items = [FetchItem::Uid, FetchItem::GmailLabels];
        let mut handler = Labelled::default();
        self.session
            .uid_fetch(&uid_set(uids), &items, &mut handler)
            .map_err(|e| convert_error(e, "UID FETCH (X-GM-LABELS)"))?;
        Ok(handler.labelled)
    }

    fn writer<'a>(
        &'a mut self,
        mailbox: &MailboxName,
    ) -> Result<Box<dyn MailboxWriter + 'a>, StorageError> {
        let wire = self.wire_name(mailbox);
        // Selected read-write; a later fetch examines again. The listing's status of it
        // is stale once written: a later status asks the server.
        self.examined = None;
        self.listed.remove(wire.as_raw());
        let info = self.session.select(&wire).map_err(|e| convert_error(e, "SELECT"))?;
        if info.read_only {
            return Err(StorageError::new(
                ErrorKind::Permission,
                format!("mailbox {mailbox} is read-only on this server"),
            ));
        }
        let batches = self.session.batches_appends();
        Ok(Box::new(ImapWriter {
            batches,
            batch: Vec::new(),
            awaiting: BTreeMap::new(),
            awaiting_bytes: 0,
            storage: self,
            mailbox: mailbox.clone(),
            wire,
            info,
            staged: None,
            sent: BTreeMap::new(),
            assigned: Vec::new(),
            flag_changes: HashMap::new(),
            not_stored: BTreeSet::new(),
            unchanged_since: None,
            not_applied: NotApplied::default(),
        }))
    }
}

/// Collects the UIDs whose `X-GM-LABELS` name a label that is a folder of its own: every
/// label but `\Important` and `\Starred`, which Gmail derives (its classifier, the
/// `\Flagged` flag) rather than a user's filing.
#[derive(Default)]
struct Labelled {
    labelled: BTreeSet<Uid>,
}

impl FetchHandler for Labelled {
    fn body(&mut self, _start: &BodyStart, body: &mut dyn Read) -> io::Result<()> {
        io::copy(body, &mut io::sink()).map(drop)
    }

    fn fetch(&mut self, fetch: Fetch) -> io::Result<()> {
        let derived = |label: &[u8]| {
            label.eq_ignore_ascii_case(b"\\Important") || label.eq_ignore_ascii_case(b"\\Starred")
        };
        let filed = fetch.gmail_labels.iter().flatten().any(|label| !derived(label));
        if let (true, Some(uid)) = (filed, fetch.uid.and_then(|u| Uid::new(u.get()))) {
            self.labelled.insert(uid);
        }
        Ok(())
    }
}

/// The LIST attribute of a special-use role.
fn attribute(role: SpecialUse) -> ListAttribute {
    match role {
        SpecialUse::All => ListAttribute::All,
        SpecialUse::Archive => ListAttribute::Archive,
        SpecialUse::Drafts => ListAttribute::Drafts,
        SpecialUse::Flagged => ListAttribute::Flagged,
        SpecialUse::Junk => ListAttribute::Junk,
        SpecialUse::Sent => ListAttribute::Sent,
        SpecialUse::Trash => ListAttribute::Trash,
        SpecialUse::Important => ListAttribute::Important,
    }
}

/// A body staged for the next APPEND.
enum Staged {
    Memory(Vec<u8>),
    File { file: File, len: u64 },
}

/// A message in memory waiting for its MULTIAPPEND, or for its answer.
struct Batched {
    /// The UID the engine asked for (its key for the message).
    requested: Uid,
    flags: Vec<Flag>,
    date: Option<chrono::DateTime<chrono::FixedOffset>>,
    bytes: Vec<u8>,
}

/// Changes to one selected mailbox of an IMAP server.
struct ImapWriter<'a> {
    /// The server takes MULTIAPPEND with non-synchronising literals: messages held in
    /// memory go in batches ([`BATCH_MESSAGES`]).
    batches: bool,
    /// Messages for the next MULTIAPPEND, in the order given.
    batch: Vec<Batched>,
    /// Batched messages sent and not yet answered, by imapc's number: sent again alone if
    /// their batch is refused.
    awaiting: BTreeMap<u64, Batched>,
    awaiting_bytes: usize,
    storage: &'a mut ImapStorage,
    mailbox: MailboxName,
    wire: imapc::MailboxName,
    /// What SELECT said (PERMANENTFLAGS).
    info: imapc::MailboxInfo,
    staged: Option<Staged>,
    /// APPENDs sent and not yet answered: imapc's number for each, with the UID the
    /// engine asked for (its key for the message).
    sent: BTreeMap<u64, Uid>,
    /// Outcomes heard and not yet taken.
    assigned: Vec<Assigned>,
    /// Flag changes not yet sent, grouped by the flags they set.
    flag_changes: HashMap<Flags, Vec<Uid>>,
    /// Flags and keywords the mailbox does not keep (PERMANENTFLAGS), warned about once.
    not_stored: BTreeSet<String>,
    /// The modification sequence flag changes are guarded by (CONDSTORE).
    unchanged_since: Option<u64>,
    /// What was left undone, for the engine.
    not_applied: NotApplied,
}

impl ImapWriter<'_> {
    /// `flags` as IMAP flags, without what this mailbox cannot keep (reported once as a
    /// warning: the message is stored all the same).
    fn imap_flags(&mut self, flags: &Flags) -> Vec<Flag> {
        let all = flags
            .system
            .imap_names()
            .map(Flag::from_atom)
            .chain(flags.keywords.iter().map(|keyword| Flag::Keyword(keyword.clone())));
        let mut kept = Vec::new();
        for flag in all {
            if self.info.can_store(&flag) {
                kept.push(flag);
                continue;
            }
            let not_kept = Flags::from_imap_names([flag.as_str()]);
            self.not_applied.not_kept.system =
                self.not_applied.not_kept.system.union(not_kept.system);
            self.not_applied.not_kept.keywords.extend(not_kept.keywords);
            if self.not_stored.insert(flag.as_str().to_owned()) {
                self.storage.warnings.push(format!(
                    "mailbox {}: the server does not keep the flag {} (PERMANENTFLAGS); \
                     messages are stored without it",
                    self.mailbox,
                    flag.as_str()
                ));
            }
        }
        kept
    }

    fn send_flag_changes(&mut self) -> Result<(), StorageError> {
        let guard =
            self.unchanged_since.filter(|_| self.storage.session.has_capability("CONDSTORE"));
        for (flags, uids) in std::mem::take(&mut self.flag_changes) {
            let set = uid_set(&uids);
            let wanted = self.imap_flags(&flags);
            let modified = self
                .storage
                .session
                .uid_store(&set, StoreAction::Replace, &wanted, guard)
                .map_err(|e| convert_error(e, "UID STORE"))?;
            // Changed by someone else since the listing: left as they are now.
            if let Some(modified) = modified {
                self.not_applied
                    .flags
                    .extend(uids.iter().filter(|uid| modified.contains(uid.get())));
            }
        }
        Ok(())
    }

    /// Sends the flag changes, then waits until at most `keep_in_flight` APPENDs are
    /// unanswered and takes the outcomes heard so far.
    fn collect(&mut self, keep_in_flight: usize) -> Result<(), StorageError> {
        // Every save given so far goes out before the answers are awaited.
        self.send_batch()?;
        if !self.flag_changes.is_empty() {
            // Another command: it waits for every APPEND first.
            self.send_flag_changes()?;
        }
        let keep_in_flight =
            if self.batches { keep_in_flight.min(BATCHES_KEPT_IN_FLIGHT) } else { keep_in_flight };
        // Messages of a refused batch go again alone: their answers are awaited too.
        while self.take_outcomes(keep_in_flight)? {}
        Ok(())
    }

    /// Waits until at most `keep_in_flight` APPENDs are unanswered and records the
    /// outcomes heard; true when messages of a refused batch were sent again alone.
    fn take_outcomes(&mut self, keep_in_flight: usize) -> Result<bool, StorageError> {
        if self.sent.is_empty() {
            return Ok(false);
        }
        let outcomes = self.storage.session.collect_appends(keep_in_flight);
        // Without the answers nothing is known of these saves: the next run finds what
        // reached the server by content.
        let outcomes = outcomes.map_err(|e| convert_error(e, "APPEND"))?;
        let mut sent_again = false;
        for outcome in outcomes {
            let Some(requested) = self.sent.remove(&outcome.index) else { continue };
            let batched = self.awaiting.remove(&outcome.index);
            if let Some(batched) = &batched {
                self.awaiting_bytes -= batched.bytes.len();
            }
            if let (true, Some(batched)) = (outcome.batch_refused, batched) {
                // Nothing of the batch was stored: this message's own answer decides.
                self.send_alone(&batched)?;
                sent_again = true;
                continue;
            }
            let assigned = self.outcome(requested, outcome.result);
            self.assigned.push(assigned);
        }
        Ok(sent_again)
    }

    /// Sends the messages gathered for a MULTIAPPEND (one alone as a plain APPEND).
    fn send_batch(&mut self) -> Result<(), StorageError> {
        let batch = std::mem::take(&mut self.batch);
        if batch.len() <= 1 {
            return batch.iter().try_for_each(|batched| self.send_alone(batched));
        }
        let messages: Vec<imapc::proto::AppendMessage<'_>> = batch
            .iter()
            .map(|batched| imapc::proto::AppendMessage {
                flags: &batched.flags,
                internal_date: batched.date,
                data: &batched.bytes,
            })
            .collect();
        let first = self.storage.session.append_batch(&self.wire, &messages);
        drop(messages);
        let first = first.map_err(|e| convert_error(e, &format!("APPEND to {}", self.mailbox)))?;
        for (index, batched) in (first..).zip(batch) {
            self.sent.insert(index, batched.requested);
            self.awaiting_bytes += batched.bytes.len();
            self.awaiting.insert(index, batched);
        }
        // Bodies kept for a refusal stay bounded: wait for the oldest answers.
        while self.awaiting_bytes > BATCHED_AWAITING_BYTES {
            let in_flight = self.storage.session.appends_in_flight();
            self.take_outcomes(in_flight.saturating_sub(1))?;
        }
        Ok(())
    }

    /// Sends one message held in memory with its own streamed APPEND.
    fn send_alone(&mut self, batched: &Batched) -> Result<(), StorageError> {
        let len = batched.bytes.len() as u64;
        let sent = self.storage.session.append_streamed(
            &self.wire,
            &batched.flags,
            batched.date.as_ref(),
            len,
            &mut &batched.bytes[..],
        );
        let index = sent.map_err(|e| convert_error(e, &format!("APPEND to {}", self.mailbox)))?;
        self.sent.insert(index, batched.requested);
        Ok(())
    }

    /// What became of one APPEND, for the engine.
    fn outcome(
        &self,
        requested: Uid,
        result: imapc::Result<Option<(imapc::UidValidity, imapc::Uid)>>,
    ) -> Assigned {
        let error = match result {
            Ok(answer) => {
                let uid = answer.and_then(|(_, uid)| Uid::new(uid.get()));
                return Assigned::stored(requested, uid);
            }
            Err(error) => error,
        };
        let doing = format!("APPEND to {}", self.mailbox);
        match error.refusal() {
            Some(Refusal::Throttled { backoff }) => {
                let wait = backoff.unwrap_or(Duration::ZERO);
                let error = StorageError::with_source(ErrorKind::Temporary, doing, error);
                Assigned::refused(requested, error, Some(wait))
            }
            Some(Refusal::Unavailable | Refusal::InUse) => {
                let error = StorageError::with_source(ErrorKind::Temporary, doing, error);
                Assigned::refused(requested, error, Some(Duration::ZERO))
            }
            Some(Refusal::TooBig) => {
                let error = StorageError::with_source(ErrorKind::InvalidData, doing, error);
                Assigned::refused(requested, error, None)
            }
            _ => Assigned::refused(requested, convert_error(error, &doing), None),
        }
    }
}

/// An imapc UID set.
fn uid_set(uids: &[Uid]) -> SequenceSet {
    SequenceSet::from_uids(uids.iter().filter_map(|u| imapc::Uid::new(u.get())))
}

fn spool_error(error: io::Error) -> StorageError {
    StorageError::with_source(ErrorKind::from_io(&error), "holding a message to append", error)
}

impl MailboxWriter for ImapWriter<'_> {
    fn save_body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        self.staged = None;
        let mut memory = Vec::new();
        let limit = BODY_IN_MEMORY as u64 + 1;
        body.take(limit).read_to_end(&mut memory).map_err(spool_error)?;
        if memory.len() <= BODY_IN_MEMORY {
            self.staged = Some(Staged::Memory(memory));
            return Ok(());
        }
        let mut file = temp_file().map_err(spool_error)?;
        file.write_all(&memory).map_err(spool_error)?;
        drop(memory);
        let rest = io::copy(body, &mut file).map_err(spool_error)?;
        let len = limit + rest;
        file.rewind().map_err(spool_error)?;
        self.staged = Some(Staged::File { file, len });
        Ok(())
    }

    fn save_finish(&mut self, meta: &MessageMeta) -> Result<(), StorageError> {
        let staged = self.staged.take().ok_or_else(|| {
            StorageError::new(ErrorKind::InvalidData, "save_finish without a body")
        })?;
        let flags = self.imap_flags(&meta.flags);
        let date = meta
            .received
            .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
            .map(|date| date.fixed_offset());
        let (mut file, len) = match staged {
            Staged::Memory(bytes) => {
                let batched = Batched { requested: meta.uid, flags, date, bytes };
                if !self.batches {
                    return self.send_alone(&batched);
                }
                self.batch.push(batched);
                let bytes: usize = self.batch.iter().map(|batched| batched.bytes.len()).sum();
                if self.batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                    self.send_batch()?;
                }
                return Ok(());
            }
            Staged::File { file, len } => (file, len),
        };
        // In the order given: what was batched goes first.
        self.send_batch()?;
        let sent =
            self.storage.session.append_streamed(&self.wire, &flags, date.as_ref(), len, &mut file);
        let index = sent.map_err(|e| convert_error(e, &format!("APPEND to {}", self.mailbox)))?;
        self.sent.insert(index, meta.uid);
        Ok(())
    }

    fn set_flags(&mut self, uid: Uid, flags: &Flags) -> Result<(), StorageError> {
        self.flag_changes.entry(flags.clone()).or_default().push(uid);
        Ok(())
    }

    fn expunge(&mut self, uids: &[Uid]) -> Result<(), StorageError> {
        self.send_flag_changes()?;
        if uids.is_empty() {
            return Ok(());
        }
        let expunged = self
            .storage
            .session
            .expunge_uids(&uid_set(uids))
            .map_err(|e| convert_error(e, "UID EXPUNGE"))?;
        match expunged {
            Expunged::Done => Ok(()),
            Expunged::Withheld { others } => {
                self.storage.warnings.push(format!(
                    "mailbox {}: the server has no UIDPLUS and other messages ({others}) are \
                     marked \\Deleted, which an EXPUNGE would remove too: {} message(s) are \
                     not expunged this time (the next run tries again)",
                    self.mailbox,
                    uids.len()
                ));
                self.not_applied.expunges.extend_from_slice(uids);
                Ok(())
            }
        }
    }

    fn unchanged_since(&mut self, modseq: u64) {
        self.unchanged_since = Some(modseq);
    }

    fn take_not_applied(&mut self) -> NotApplied {
        std::mem::take(&mut self.not_applied)
    }

    fn raise_uid_next(&mut self, _uid_next: Uid) -> Result<(), StorageError> {
        // The server keeps its own UIDNEXT; nothing here depends on raising it.
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        self.collect(0)
    }

    fn commit_confirmed(&mut self) -> Result<(), StorageError> {
        self.collect(APPENDS_KEPT_IN_FLIGHT)
    }

    fn take_assigned(&mut self) -> Vec<Assigned> {
        std::mem::take(&mut self.assigned)
    }
}
