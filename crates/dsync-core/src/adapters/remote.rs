//! A Dovecot reached through dsync's own wire protocol (`remote:HOST`: `ssh HOST doveadm
//! dsync-server`) as a **read-only source**.
//!
//! The remote brain is asked only to export (it is a backup sender; nothing on it is ever
//! changed) and this adapter only translates: its tree becomes the mailbox list and
//! subscriptions, its mail list (`C` items) the message metadata with Dovecot's own
//! mailbox and message GUIDs, UIDVALIDITY, UIDs, flags and keywords, and its `M` streams
//! the bodies. Every decision — what to copy, expunge, rebuild — stays with the engine's
//! planner, exactly as for a Maildir or IMAP source.
//!
//! The protocol visits one mailbox at a time and asks for bodies once per visit
//! ([`dsync_proto::PullSession`]). The adapter opens a mailbox on the first question
//! about it (status, stamp, contents or fetch), keeps the answer while the engine works on
//! it, and closes it when the engine moves to another one; a second fetch of the same
//! mailbox opens it again (the remote lists it once more; bodies are only ever sent once).

use std::collections::{BTreeMap, BTreeSet};

use dsync_proto::proto::{
    Attribute, ChangeType, Existence, Mail, MailChange, MailRequest, Mailbox, MailboxState, flags,
};
use dsync_proto::{ClientError, MailboxExport, PullSession};
pub use dsync_proto::{DEFAULT_REMOTE_CMD, RemoteCommand};

use crate::error::{ErrorKind, StorageError};
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStatus, MessageMeta,
    SystemFlags, Uid, UidValidity,
};
use crate::storage::{Capabilities, Delivered, MailboxAttribute, MessageSink, Skip, Storage};

/// The mailbox the conversation is in.
#[derive(Debug)]
struct Open {
    name: MailboxName,
    export: MailboxExport,
    fetched: bool,
}

/// A remote Dovecot's mail, read through `doveadm dsync-server`.
#[derive(Debug)]
pub struct RemoteStorage {
    command: RemoteCommand,
    session: Option<PullSession>,
    /// Selectable mailboxes by name: GUID and UIDVALIDITY from the tree.
    boxes: BTreeMap<MailboxName, (MailboxGuid, u32)>,
    mailboxes: Vec<MailboxInfo>,
    subscriptions: BTreeSet<MailboxName>,
    open: Option<Open>,
    attributes: BTreeMap<MailboxName, Vec<MailboxAttribute>>,
    skipped: Vec<Skip>,
    /// The change tokens of the last run ([`RemoteStorage::remember_tokens`]): the
    /// remote's status as it was then, sent back as ours so an unchanged mailbox is
    /// skipped by both sides.
    previous: BTreeMap<MailboxName, String>,
}

/// Maps a protocol failure to the engine's error kinds.
pub(crate) fn convert(error: ClientError) -> StorageError {
    let kind = match error.exit_code() {
        64 => ErrorKind::Usage,
        65 => ErrorKind::InvalidData,
        67 => ErrorKind::NoSuchUser,
        68 => ErrorKind::NotFound,
        73 => ErrorKind::NoSpace,
        77 => ErrorKind::Permission,
        78 => ErrorKind::Config,
        _ => ErrorKind::Temporary,
    };
    StorageError::with_source(kind, "remote dsync", error)
}

impl RemoteStorage {
    /// Starts `command` (a `doveadm dsync-server` at the other end) and reads the remote's
    /// mailbox tree.
    pub fn connect(command: RemoteCommand) -> Result<RemoteStorage, StorageError> {
        RemoteStorage::connect_with_timeout(command, dsync_proto::DEFAULT_TIMEOUT)
    }

    /// [`RemoteStorage::connect`] with an I/O timeout: a remote silent for that long fails
    /// the run (exit 75) instead of hanging it.
    pub fn connect_with_timeout(
        command: RemoteCommand,
        timeout: std::time::Duration,
    ) -> Result<RemoteStorage, StorageError> {
        let session = PullSession::start_with_timeout(&command, timeout).map_err(convert)?;
        let mut storage = RemoteStorage {
            command,
            session: None,
            boxes: BTreeMap::new(),
            mailboxes: Vec::new(),
            subscriptions: BTreeSet::new(),
            open: None,
            attributes: BTreeMap::new(),
            skipped: Vec::new(),
            previous: BTreeMap::new(),
        };
        for node in session.tree() {
            let name = match MailboxName::new(node.name.iter().cloned()) {
                Ok(name) => name,
                Err(error) => {
                    storage.skipped.push(Skip::new(None, node.name.join("/"), error.to_string()));
                    continue;
                }
            };
            if node.subscribed {
                storage.subscriptions.insert(name.clone());
            }
            let selectable = node.existence == Existence::Exists
                && node.mailbox_guid.is_some_and(|guid| !guid.is_empty());
            match (node.existence, node.mailbox_guid, node.uid_validity) {
                (Existence::Exists, Some(guid), Some(uid_validity)) if selectable => {
                    storage.boxes.insert(name.clone(), (MailboxGuid(guid.0), uid_validity));
                }
                (Existence::Deleted, _, _) => continue,
                _ => {}
            }
            storage.mailboxes.push(MailboxInfo { selectable, ..MailboxInfo::new(name) });
        }
        storage.session = Some(session);
        Ok(storage)
    }

    /// Ends the conversation: the remote's final word and its exit status (once; later
    /// calls do nothing). Dropping the storage instead stops the remote command.
    pub fn finish(&mut self) -> Result<(), StorageError> {
        self.close()?;
        match self.session.take() {
            Some(session) => session.finish().map_err(convert),
            None => Ok(()),
        }
    }

    /// The change tokens this storage reported in the last run, by mailbox (from the
    /// state): each is the remote's status then. A mailbox whose status is still that is
    /// skipped by the remote (no mail list, one `B` item each way), which makes a re-run
    /// that finds nothing changed cost one round trip per mailbox.
    pub fn remember_tokens(&mut self, tokens: impl IntoIterator<Item = (MailboxName, String)>) {
        self.previous.extend(tokens);
    }

    fn session(&mut self) -> Result<&mut PullSession, StorageError> {
        self.session.as_mut().ok_or_else(|| {
            StorageError::new(ErrorKind::Temporary, "the remote dsync conversation has failed")
        })
    }

    /// Closes the open mailbox, telling the remote we hold nothing in common (we keep no
    /// protocol state yet: every run is a full export).
    fn close(&mut self) -> Result<(), StorageError> {
        let Some(open) = self.open.take() else { return Ok(()) };
        if open.export.unchanged {
            // Skipped by both sides: nothing is open on the remote.
            return Ok(());
        }
        let state = MailboxState {
            mailbox_guid: open.export.mailbox.mailbox_guid,
            last_uidvalidity: open.export.mailbox.uid_validity,
            ..MailboxState::default()
        };
        let result = self.session()?.close(&state).map(|_| ());
        self.failed_if(result)
    }

    /// A failed conversation cannot go on: forget it, so later calls say so.
    fn failed_if<T>(&mut self, result: Result<T, ClientError>) -> Result<T, StorageError> {
        result.map_err(|error| {
            self.session = None;
            convert(error)
        })
    }

    /// Makes `name` the open mailbox (reopening it when its bodies were already asked for).
    fn open(
        &mut self,
        name: &MailboxName,
        for_fetch: bool,
        full: bool,
    ) -> Result<&Open, StorageError> {
        let reuse = self.open.as_ref().is_some_and(|open| {
            &open.name == name && !(for_fetch && open.fetched) && !(full && open.export.unchanged)
        });
        if !reuse {
            self.close()?;
            let Some(&(guid, uid_validity)) = self.boxes.get(name) else {
                return Err(StorageError::new(
                    ErrorKind::NotFound,
                    format!("mailbox {name} does not exist on the remote side"),
                ));
            };
            // What a mailbox we just created would say: nothing in common yet, so the
            // remote exports every mail it has. Or, when only the status is asked for,
            // the remote's own status of the last run: unchanged, it exports nothing.
            let fresh = Mailbox::fresh(dsync_proto::proto::Guid128(guid.0), uid_validity);
            let seen =
                if full { None } else { self.previous.get(name).and_then(|t| parse_token(t)) };
            let ours = match seen {
                Some(seen) => Mailbox {
                    uid_validity: seen.uid_validity,
                    uid_next: seen.uid_next,
                    messages_count: seen.messages_count,
                    highest_modseq: seen.highest_modseq,
                    highest_pvt_modseq: seen.highest_pvt_modseq,
                    first_recent_uid: seen.first_recent_uid,
                    ..fresh
                },
                None => fresh,
            };
            let result = self.session()?.open(&ours);
            let Some(export) = self.failed_if(result)? else {
                return Err(StorageError::new(
                    ErrorKind::NotFound,
                    format!("mailbox {name} was deleted on the remote side during the run"),
                ));
            };
            let attributes = export.attributes.iter().map(convert_attribute).collect();
            self.attributes.insert(name.clone(), attributes);
            self.open = Some(Open { name: name.clone(), export, fetched: false });
        }
        self.open.as_ref().ok_or_else(|| StorageError::new(ErrorKind::Temporary, "no mailbox open"))
    }
}

fn convert_attribute((attribute, value): &(Attribute, Option<Vec<u8>>)) -> MailboxAttribute {
    let private = attribute.attribute_type == dsync_proto::proto::AttributeType::Private;
    let value = if attribute.deleted { None } else { value.clone() };
    let mut converted = MailboxAttribute::new(private, attribute.key.clone(), value);
    converted.last_change = attribute.last_change;
    converted
}

/// The protocol's flag bits (`enum mail_flags`) and the engine's flags.
const FLAG_BITS: [(u8, SystemFlags); 5] = [
    (flags::SEEN, SystemFlags::SEEN),
    (flags::ANSWERED, SystemFlags::ANSWERED),
    (flags::FLAGGED, SystemFlags::FLAGGED),
    (flags::DELETED, SystemFlags::DELETED),
    (flags::DRAFT, SystemFlags::DRAFT),
];

/// The engine's flags as the protocol's bits (the two differ: `\Seen` is 0x08 there).
pub(crate) fn protocol_flags(system: SystemFlags) -> u8 {
    FLAG_BITS.iter().filter(|(_, flag)| system.contains(*flag)).fold(0, |all, (bit, _)| all | bit)
}

/// The protocol's flag bits (`enum mail_flags`) as the engine's; `\Recent` is dropped.
fn system_flags(bits: u8) -> SystemFlags {
    FLAG_BITS
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .fold(SystemFlags::empty(), |all, (_, flag)| all.union(flag))
}

/// Applies one `C` item's keyword changes: `+kw`/`&kw`/`=kw` present, `-kw` absent.
fn apply_keywords(keywords: &mut BTreeSet<String>, change: &MailChange) {
    if change.keywords_reset {
        keywords.clear();
    }
    for entry in &change.keyword_changes {
        let mut chars = entry.chars();
        let (Some(op), rest) = (chars.next(), chars.as_str()) else { continue };
        if rest.is_empty() {
            continue;
        }
        match op {
            '+' | '&' | '=' => {
                keywords.insert(rest.to_owned());
            }
            '-' => {
                keywords.remove(rest);
            }
            _ => {}
        }
    }
}

/// The remote's status as a change token: every field by which the remote decides that
/// a mailbox changed (`dsync_boxes_need_sync`), so the token can be sent back as our status.
fn change_token(remote: &Mailbox) -> String {
    format!(
        "{}.{}.{}.{}.{}.{}",
        remote.uid_validity,
        remote.uid_next,
        remote.messages_count,
        remote.highest_modseq,
        remote.highest_pvt_modseq,
        remote.first_recent_uid
    )
}

/// A token of [`change_token`] back as a status (`None` for an older format).
fn parse_token(token: &str) -> Option<Mailbox> {
    let mut parts = token.split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    let (
        uid_validity,
        uid_next,
        messages_count,
        highest_modseq,
        highest_pvt_modseq,
        first_recent_uid,
    ) = (next()?, next()?, next()?, next()?, next()?, next()?);
    Some(Mailbox {
        uid_validity: u32::try_from(uid_validity).ok()?,
        uid_next: u32::try_from(uid_next).ok()?,
        messages_count: u32::try_from(messages_count).ok()?,
        highest_modseq,
        highest_pvt_modseq,
        first_recent_uid: u32::try_from(first_recent_uid).ok()?,
        ..Mailbox::default()
    })
}

/// The remote's status of a mailbox.
fn status_of(name: &MailboxName, remote: &Mailbox) -> Result<MailboxStatus, StorageError> {
    let invalid = |what: &str| {
        StorageError::new(ErrorKind::InvalidData, format!("remote mailbox {name}: {what}"))
    };
    Ok(MailboxStatus {
        uid_validity: UidValidity::new(remote.uid_validity)
            .ok_or_else(|| invalid("UIDVALIDITY 0"))?,
        uid_next: Uid::new(remote.uid_next).ok_or_else(|| invalid("UIDNEXT 0"))?,
        messages: remote.messages_count,
        highest_modseq: Some(remote.highest_modseq),
        guid: Some(MailboxGuid(remote.mailbox_guid.0)),
        change_token: Some(change_token(remote)),
        source_uid_validity: None,
    })
}

/// The status and message list of an export.
fn contents_of(
    name: &MailboxName,
    export: &MailboxExport,
) -> Result<MailboxContents, StorageError> {
    let remote = &export.mailbox;
    let mut messages: BTreeMap<Uid, MessageMeta> = BTreeMap::new();
    for change in &export.changes {
        let Some(uid) = Uid::new(change.uid) else { continue };
        match change.change_type {
            ChangeType::Save => {
                let mut meta = MessageMeta::new(uid, Flags::default());
                meta.flags.system = system_flags(change.final_flags.unwrap_or(0));
                apply_keywords(&mut meta.flags.keywords, change);
                meta.guid = change.guid.clone().filter(|guid| !guid.is_empty());
                meta.virtual_size = change.virtual_size.filter(|&size| size != u64::MAX);
                meta.received = change.received_timestamp.and_then(|time| i64::try_from(time).ok());
                messages.insert(uid, meta);
            }
            ChangeType::Expunge => {
                messages.remove(&uid);
            }
            ChangeType::FlagChange => {
                if let Some(meta) = messages.get_mut(&uid) {
                    let added = system_flags(change.add_flags.unwrap_or(0));
                    let removed = system_flags(change.remove_flags.unwrap_or(0));
                    meta.flags.system = meta.flags.system.union(added).difference(removed);
                    apply_keywords(&mut meta.flags.keywords, change);
                }
            }
        }
    }
    let mut status = status_of(name, remote)?;
    status.messages = u32::try_from(messages.len()).unwrap_or(u32::MAX);
    Ok(MailboxContents { status, messages: messages.into_values().collect() })
}

/// What an `M` item tells beyond the `C` list: the received date, and the POP3 UIDL and
/// order Dovecot keeps for the mail (`""` and 0 when it keeps none).
fn delivered_meta(mail: &Mail) -> Delivered {
    let mut delivered = Delivered::received(mail.received_date);
    delivered.pop3_uidl = mail.pop3_uidl.clone().filter(|uidl| !uidl.is_empty());
    delivered.pop3_order = mail.pop3_order.filter(|&order| order > 0);
    delivered
}

impl Storage for RemoteStorage {
    fn describe(&self) -> String {
        format!("remote dsync ({})", self.command)
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
        Ok(self.mailboxes.clone())
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        Ok(self.subscriptions.clone())
    }

    /// From the remote's `B` item: a mailbox unchanged since the last run is not listed.
    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        let open = self.open(mailbox, false, false)?;
        status_of(mailbox, &open.export.mailbox)
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        let open = self.open(mailbox, false, true)?;
        contents_of(mailbox, &open.export)
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skipped)
    }

    /// The attributes come with the mailbox's export (`A` items, before its mail list).
    fn attributes(&mut self, mailbox: &MailboxName) -> Result<Vec<MailboxAttribute>, StorageError> {
        if !self.attributes.contains_key(mailbox) {
            self.open(mailbox, false, true)?;
        }
        Ok(self.attributes.get(mailbox).cloned().unwrap_or_default())
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        let open = self.open(mailbox, true, true)?;
        let listed: BTreeSet<u32> = open
            .export
            .changes
            .iter()
            .filter(|change| change.change_type == ChangeType::Save)
            .map(|change| change.uid)
            .collect();
        // By UID: the answer then names the UID (a request by GUID is answered for every
        // copy at once, without one).
        let requests: Vec<MailRequest> = uids
            .iter()
            .filter(|uid| listed.contains(&uid.get()))
            .map(|uid| MailRequest { guid: None, uid: Some(uid.get()) })
            .collect();
        if let Some(open) = self.open.as_mut() {
            open.fetched = true;
        }
        let mut sink_error = None;
        let session = self.session()?;
        let result = session.fetch(&requests, &mut |mail, body| {
            let (Some(uid), true) = (mail.uid.and_then(Uid::new), mail.stream) else {
                // Expunged meanwhile: nothing to deliver, the executor notices.
                return Ok(());
            };
            let mut crlf = mailstore::CrlfReader::new(body);
            let delivered = sink
                .body(&mut crlf)
                .and_then(|()| sink.done_with_delivered(uid, delivered_meta(mail)));
            delivered.map_err(|error| {
                let message = error.to_string();
                sink_error = Some(error);
                ClientError::Handler(message.into())
            })
        });
        if let Some(error) = sink_error {
            // The conversation is cut midway: it cannot continue.
            self.session = None;
            self.open = None;
            return Err(error);
        }
        self.failed_if(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords_follow_dovecots_bits_and_changes() {
        let bits = flags::SEEN | flags::FLAGGED | flags::RECENT;
        assert_eq!(system_flags(bits), SystemFlags::SEEN.union(SystemFlags::FLAGGED));
        assert_eq!(protocol_flags(SystemFlags::SEEN.union(SystemFlags::FLAGGED)), 0x0a);
        let change = MailChange {
            keyword_changes: vec!["&Work".into(), "=Old".into(), "+New".into(), "-Gone".into()],
            ..MailChange::default()
        };
        let mut keywords = BTreeSet::from(["Gone".to_owned()]);
        apply_keywords(&mut keywords, &change);
        assert_eq!(keywords, BTreeSet::from(["New".into(), "Old".into(), "Work".into()]));
    }
}
