//! An IMAP account (via `imapc`) as a sync source: mailboxes, subscriptions, UIDVALIDITY,
//! UIDs, flags, INTERNALDATE, and bodies streamed with pipelined `UID FETCH`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read};

use imapc::proto::{BodyStart, Fetch, FetchItem, ListAttribute, SearchKey, StatusItem};
use imapc::{
    Client, ConnectOptions, Credentials, FetchHandler, GuidItem, ListOptions, SequenceSet, Session,
};

mod list_prefix;
mod reorder;
mod write;

use self::list_prefix::{ListPrefix, Local};
use self::reorder::Reorder;
use super::unwrap_sink_error;
use crate::derived_guid;
use crate::error::{ErrorKind, StorageError};
use crate::header_hash::{DEFAULT_HASHED_HEADERS, HashVersion, header_hash};
use crate::model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStatus, MessageMeta,
    SpecialUse, SystemFlags, Uid, UidValidity,
};
use crate::storage::{Capabilities, MailboxChanges, MessageListing, MessageSink, Skip, Storage};

/// UIDs per `UID FETCH` of bodies ([`ImapStorage`]'s `fetch`): the most an answer out of
/// UID order can make it hold back (bodies over 1 MiB, and beyond 16 MiB in all, wait in
/// temporary files). imapc splits commands at `prefetch_count` (default also 1 000).
const REORDER_CHUNK: usize = 1000;

/// A logged-in IMAP session, read as a sync source.
#[derive(Debug)]
pub struct ImapStorage {
    session: Session,
    description: String,
    /// The hierarchy delimiter of the personal namespace (`None`: flat).
    delimiter: Option<char>,
    /// What is selected, so repeated fetches of one mailbox do not re-EXAMINE it.
    examined: Option<MailboxName>,
    /// CONDSTORE is enabled: SELECT and STATUS report HIGHESTMODSEQ.
    condstore: bool,
    /// QRESYNC is enabled: `UID FETCH … (CHANGEDSINCE m VANISHED)` tells what changed.
    qresync: bool,
    /// STATUS of every mailbox that came with the last LIST (LIST-STATUS, RFC 5819), by
    /// wire name; each is used once by `status`, so a run asks no STATUS round trip per
    /// mailbox, and a later `status` of the same mailbox asks the server again.
    listed: HashMap<Vec<u8>, imapc::proto::MailboxStatus>,
    /// The subscriptions that came in the same round trip as the last LIST; the next
    /// `subscriptions` answers from them once.
    subscribed: Option<Vec<imapc::proto::ListEntry>>,
    /// What became of [`ImapStorage::fetch_message_guids`]: see
    /// [`ImapStorage::message_guids`].
    message_guids: Option<bool>,
    /// `imapc_list_prefix` ([`ImapStorage::set_list_prefix`]).
    list_prefix: Option<ListPrefix>,
    /// What the operator should hear about ([`Storage::take_warnings`]: the
    /// `imapc_list_prefix` mailbox left out, invalid INTERNALDATEs).
    warnings: Vec<String>,
    /// The server's own name of each mailbox the last listing found, by our name: every
    /// command to the server uses these bytes, never a re-encoding of ours (a name that
    /// is not canonical modified UTF-7, `Inbox/Sub`, would otherwise not be found).
    remote: HashMap<MailboxName, imapc::MailboxName>,
    /// What the listing left out ([`Storage::take_skipped`]).
    skipped: Vec<Skip>,
    /// Messages whose invalid INTERNALDATE was reported: a mailbox listed twice in a run
    /// (streamed, then whole) reports it once.
    misdated: HashSet<(MailboxName, Uid)>,
    /// The mailbox [`Storage::list_ahead`] named, to be listed behind the next `fetch`.
    ahead: Option<MailboxName>,
}

impl ImapStorage {
    /// Connects and logs in. The description names user, host and port, never the password.
    pub fn connect(
        options: &ConnectOptions,
        credentials: &Credentials,
    ) -> Result<ImapStorage, StorageError> {
        let client = Client::connect(options).map_err(|e| convert_error(e, "connecting"))?;
        let session =
            client.login(credentials).map_err(|(e, _client)| convert_error(e, "logging in"))?;
        let description = format!("imap {}:{}", options.host, options.port);
        ImapStorage::from_session(session, description)
    }

    /// Wraps a session that is already logged in.
    pub fn from_session(
        mut session: Session,
        description: String,
    ) -> Result<ImapStorage, StorageError> {
        // `LIST "" ""` answers with the hierarchy delimiter (RFC 3501 §6.3.8). With
        // CONDSTORE, HIGHESTMODSEQ tells whether anything changed since the last run: the
        // ENABLE goes in the same round trip.
        // With QRESYNC too, a re-run asks only for what changed since then
        // ([`Storage::changes_since`]).
        let (root, enabled) = if session.has_capability("QRESYNC") {
            session
                .list_and_enable("", "", &["CONDSTORE", "QRESYNC"])
                .map_err(|e| convert_error(e, "LIST"))?
        } else if session.has_capability("CONDSTORE") {
            session.list_and_enable("", "", &["CONDSTORE"]).map_err(|e| convert_error(e, "LIST"))?
        } else {
            (session.list("", "").map_err(|e| convert_error(e, "LIST"))?, Vec::new())
        };
        let delimiter = root.first().and_then(|entry| entry.delimiter);
        let condstore = enabled.iter().any(|c| c.eq_ignore_ascii_case("CONDSTORE"));
        let qresync = enabled.iter().any(|c| c.eq_ignore_ascii_case("QRESYNC"));
        Ok(ImapStorage {
            session,
            description,
            delimiter,
            examined: None,
            condstore: condstore || qresync,
            qresync,
            listed: HashMap::new(),
            subscribed: None,
            message_guids: None,
            ahead: None,
            list_prefix: None,
            warnings: Vec::new(),
            remote: HashMap::new(),
            skipped: Vec::new(),
            misdated: HashSet::new(),
        })
    }

    /// Sees only the remote mailboxes below `prefix` and the server's separator, without
    /// the prefix, plus INBOX: Dovecot's `imapc_list_prefix`, for servers that keep every
    /// folder below `INBOX.` (Courier, Cyrus), where the prefix `INBOX` makes the remote
    /// `INBOX.Sent` the mailbox `Sent`. Every name sent to the server gets the prefix back
    /// (INBOX excepted), subscriptions map the same way, and the prefix mailbox itself is
    /// not seen (with a warning when it can hold mail). An empty prefix turns it off.
    ///
    /// Fails (as Dovecot does) when `prefix` ends with the server's separator.
    pub fn set_list_prefix(&mut self, prefix: &str) -> Result<(), StorageError> {
        self.list_prefix = if prefix.is_empty() {
            None
        } else {
            // A server without hierarchy is treated as Dovecot's imapc does: `/`.
            Some(ListPrefix::new(prefix, self.delimiter.unwrap_or('/'))?)
        };
        Ok(())
    }

    /// Asks the server for its message GUIDs in every later listing
    /// ([`Storage::contents`]), which then fills [`MessageMeta::guid`]: Gmail's `X-GM-MSGID`
    /// (in decimal, as Dovecot's imapc does) when the server announces `X-GM-EXT-1`,
    /// otherwise Dovecot's `X-GUID` (a message and its `COPY` in another folder share it).
    /// The GUIDs go to the destination with the messages and let it find copies there, as
    /// doveadm's `-a` does.
    ///
    /// No capability announces `X-GUID`, so this is a guess: a server that does not know
    /// the item refuses the whole listing (`BAD` or `NO`). The listing is then repeated
    /// without GUIDs, and they stay off for the session; [`message_guids`](Self::message_guids)
    /// tells, so that a caller can warn. After such a refusal this does nothing.
    ///
    /// [`Capabilities::message_guids`](crate::Capabilities::message_guids) stays
    /// false all the same: message identity for an IMAP source remains UID plus header hash.
    /// A destination written earlier without these GUIDs holds GUIDs of its own making, so
    /// comparing GUIDs would take every message already copied there for a different one.
    pub fn fetch_message_guids(&mut self) {
        if self.message_guids == Some(false) {
            return;
        }
        let item = GuidItem::for_capabilities(self.session.capabilities());
        self.session.set_message_guids(Some(item));
    }

    /// Whether listings carry message GUIDs ([`fetch_message_guids`](Self::fetch_message_guids)):
    /// `None` when they were not asked for or no listing has been answered since;
    /// `Some(true)` once the server answered a listing that asked for them (messages it
    /// gave no GUID still have none); `Some(false)` when the server refused them and the
    /// listings go on without.
    pub fn message_guids(&self) -> Option<bool> {
        self.message_guids
    }

    /// EXAMINE and `UID FETCH 1:*` of the metadata in one round trip. When the server
    /// refuses the GUID item, GUIDs are turned off for the session and the listing repeated.
    fn examine_with_metadata(
        &mut self,
        wire: &imapc::MailboxName,
    ) -> Result<(imapc::MailboxInfo, Vec<imapc::MessageMeta>), StorageError> {
        let asked = self.session.message_guids();
        // With CONDSTORE each message's MODSEQ too, for a destination that keeps them.
        let with_modseq = self.condstore;
        let error = match self.session.examine_with_metadata(wire, with_modseq) {
            Ok(listed) => {
                if asked.is_some() {
                    self.message_guids = Some(true);
                }
                return Ok(listed);
            }
            Err(error) => error,
        };
        let refused = matches!(
            error,
            imapc::Error::Bad { command: "UID FETCH", .. }
                | imapc::Error::No { command: "UID FETCH", .. }
        ) && !error.is_throttled();
        if asked.is_none() || !refused {
            return Err(convert_error(error, "EXAMINE"));
        }
        self.session.set_message_guids(None);
        match self.session.examine_with_metadata(wire, with_modseq) {
            Ok(listed) => {
                // The same listing works without them: it was the GUID item.
                self.message_guids = Some(false);
                Ok(listed)
            }
            Err(again) => {
                // Not (only) the GUID item: keep asking, report this failure.
                self.session.set_message_guids(asked);
                Err(convert_error(again, "EXAMINE"))
            }
        }
    }

    /// Logs out politely.
    pub fn logout(self) -> Result<(), StorageError> {
        self.session.logout().map_err(|e| convert_error(e, "LOGOUT"))
    }

    /// The GUID Dovecot's imapc gives `name`: derived from the name on the server, which
    /// this adapter spells as [`wire_name`](Self::wire_name) does (see
    /// [`crate::derived_guid`]).
    fn derived_guid(&self, name: &MailboxName) -> MailboxGuid {
        let separator = self.delimiter.unwrap_or('/');
        if let Some(remote) = self.remote.get(name).filter(|_| !name.is_inbox()) {
            // Dovecot's storage name is the server's name (prefix included).
            return derived_guid::imapc_mailbox_guid_raw(remote.as_raw(), separator);
        }
        match &self.list_prefix {
            // Dovecot's storage name keeps `imapc_list_prefix` (`INBOX.Sent`), except INBOX's.
            Some(prefix) if !name.is_inbox() => {
                let components: Vec<&str> = prefix
                    .as_str()
                    .split(separator)
                    .chain(name.components().iter().map(String::as_str))
                    .collect();
                derived_guid::imapc_mailbox_guid(&components, separator)
            }
            _ => derived_guid::imapc_mailbox_guid(name.components(), separator),
        }
    }

    fn wire_name(&self, name: &MailboxName) -> imapc::MailboxName {
        if let Some(remote) = self.remote.get(name) {
            return remote.clone();
        }
        let joined = name.join(self.delimiter.unwrap_or('/'));
        match &self.list_prefix {
            Some(prefix) => {
                imapc::MailboxName::from_utf8(&prefix.to_remote(&joined, name.is_inbox()))
            }
            None => imapc::MailboxName::from_utf8(&joined),
        }
    }

    /// Our name of a remote mailbox; `None` for one that `imapc_list_prefix` leaves out.
    fn our_name(&self, wire: &imapc::MailboxName) -> Result<Option<MailboxName>, StorageError> {
        let text = wire.display();
        let relative = match self.list_prefix.as_ref().map(|prefix| prefix.to_local(&text)) {
            None => &*text,
            Some(Local::Inbox) => "INBOX",
            Some(Local::Below(below)) => below,
            Some(Local::Prefix | Local::Outside) => return Ok(None),
        };
        let name = MailboxName::split(relative, self.delimiter).map_err(|e| {
            StorageError::with_source(ErrorKind::InvalidData, format!("mailbox name {text:?}"), e)
        })?;
        if let Some(prefix) = &self.list_prefix
            && name.is_inbox()
            && !wire.is_inbox()
        {
            // Dovecot would hide it behind the real INBOX; its mail would not be copied.
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!(
                    "mailbox {text:?} would be INBOX with imapc_list_prefix={}, which is the \
                     server's own INBOX: rename it on the server",
                    prefix.as_str()
                ),
            ));
        }
        Ok(Some(name))
    }

    /// Our listing of `mailbox` from the server's, sorted by UID ([`ListingConverter`]).
    fn convert_listing(
        &mut self,
        mailbox: &MailboxName,
        listed: Vec<imapc::MessageMeta>,
    ) -> Vec<MessageMeta> {
        let mut converter = ListingConverter::new(
            mailbox,
            &mut self.skipped,
            &mut self.warnings,
            &mut self.misdated,
        );
        listed.into_iter().filter_map(|meta| converter.convert(meta)).collect()
    }

    /// The contents of the examined `mailbox` from its whole listing `all` (sorted by
    /// UID), with a STATUS after it when the EXAMINE gave no UIDNEXT.
    fn whole_contents(
        &mut self,
        mailbox: &MailboxName,
        info: &imapc::MailboxInfo,
        all: Vec<imapc::MessageMeta>,
    ) -> Result<MailboxContents, StorageError> {
        self.examined = Some(mailbox.clone());
        let messages = self.convert_listing(mailbox, all);
        let status = self.examined_status(mailbox, info, info.highest_modseq)?;
        Ok(MailboxContents { status, messages })
    }

    /// Tells the operator when the `imapc_list_prefix` mailbox itself could hold mail:
    /// like Dovecot, dsync does not copy it.
    fn left_out(&mut self, entry: &imapc::proto::ListEntry) {
        let Some(prefix) = &self.list_prefix else { return };
        let text = entry.name.display();
        if entry.is_noselect() || prefix.to_local(&text) != Local::Prefix {
            return;
        }
        let warning = format!(
            "imapc_list_prefix={}: the mailbox {text:?} itself is not copied (as with \
             Dovecot's imapc), only INBOX and the mailboxes below it",
            prefix.as_str()
        );
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// The LIST pattern: `*`, or `PREFIX*` with `imapc_list_prefix`.
    fn list_pattern(&self) -> String {
        self.list_prefix.as_ref().map_or_else(|| "*".to_owned(), ListPrefix::pattern)
    }

    /// Streams the first `limit` bytes of a body section of each UID to `each`, in UID
    /// order: `section` `"HEADER"` for headers, `""` for whole messages (`BODY.PEEK[…]`,
    /// so nothing becomes \Seen). One message is held at a time.
    pub fn fetch_section(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        section: &str,
        limit: u64,
        each: &mut dyn FnMut(Uid, &[u8]),
    ) -> Result<(), StorageError> {
        if uids.is_empty() {
            return Ok(());
        }
        if self.examined.as_ref() != Some(mailbox) || self.session.selected().is_none() {
            self.examine(mailbox)?;
        }
        let set = SequenceSet::from_uids(uids.iter().filter_map(|u| imapc::Uid::new(u.get())));
        let items = [
            FetchItem::Uid,
            FetchItem::Body { section: section.to_owned(), partial: None, peek: true },
        ];
        let mut handler = SectionHandler { each, limit, pending: None };
        self.session
            .uid_fetch(&set, &items, &mut handler)
            .map_err(|e| convert_error(e, "UID FETCH"))
    }

    fn status_items(&self) -> Vec<StatusItem> {
        let mut items = vec![StatusItem::Messages, StatusItem::UidNext, StatusItem::UidValidity];
        if self.condstore {
            items.push(StatusItem::HighestModSeq);
        }
        items
    }

    /// The status of the mailbox `info` describes (just examined), with `highest_modseq`.
    fn examined_status(
        &mut self,
        mailbox: &MailboxName,
        info: &imapc::MailboxInfo,
        highest_modseq: Option<u64>,
    ) -> Result<MailboxStatus, StorageError> {
        // Courier omits UIDNEXT in SELECT: ask STATUS then (Dovecot's imapc does the same).
        let uid_next = match info.uid_next {
            Some(uid) => Uid::new(uid.get()),
            None => Some(self.status(mailbox)?.uid_next),
        }
        .unwrap_or(Uid::MIN);
        examined_status(info, uid_next, highest_modseq, self.derived_guid(mailbox))
    }

    fn examine(&mut self, mailbox: &MailboxName) -> Result<imapc::MailboxInfo, StorageError> {
        let wire = self.wire_name(mailbox);
        let info = self.session.examine(&wire).map_err(|e| convert_error(e, "EXAMINE"))?;
        self.examined = Some(mailbox.clone());
        Ok(info)
    }
}

/// The default [`Storage::capabilities`]: in particular `message_guids` is false even after
/// [`ImapStorage::fetch_message_guids`] (see there why), and `mailbox_guids` is false: the
/// mailbox GUIDs in [`MailboxStatus::guid`] are the ones Dovecot's imapc derives from the
/// name ([`crate::derived_guid`]), given to the mailboxes a sync creates but no identity.
impl Storage for ImapStorage {
    fn describe(&self) -> String {
        self.description.clone()
    }

    /// An IMAP server gives each APPEND a UID of its choosing ([`Capabilities::assigns_uids`]).
    fn capabilities(&self) -> Capabilities {
        Capabilities { assigns_uids: true, ..Capabilities::default() }
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        let entries = if self.session.has_capability("SPECIAL-USE")
            && self.session.has_capability("LIST-EXTENDED")
        {
            let mut options = ListOptions {
                return_special_use: true,
                pattern: self.list_pattern(),
                ..ListOptions::all()
            };
            if self.session.has_capability("LIST-STATUS") {
                options.return_status = self.status_items();
            }
            // The subscriptions come along: a sync asks for them next.
            let (listed, subscribed) = self
                .session
                .list_with_subscribed(&options)
                .map_err(|e| convert_error(e, "LIST"))?;
            self.subscribed = Some(subscribed);
            self.listed = listed
                .statuses
                .into_iter()
                .map(|status| (status.name.as_raw().to_vec(), status))
                .collect();
            listed.entries
        } else {
            let pattern = self.list_pattern();
            self.session.list("", &pattern).map_err(|e| convert_error(e, "LIST"))?
        };
        let mut mailboxes = Vec::with_capacity(entries.len() + 1);
        self.remote.clear();
        for entry in &entries {
            let name = match self.our_name(&entry.name) {
                Ok(Some(name)) => name,
                Ok(None) => {
                    self.left_out(entry);
                    continue;
                }
                Err(error) => {
                    // One name that cannot be mapped costs that mailbox, not the account.
                    let item = format!("{:?}", entry.name.display());
                    self.skipped.push(Skip::new(None, item, error.to_string()));
                    continue;
                }
            };
            if let Some(first) = self.remote.get(&name) {
                if first.as_raw() != entry.name.as_raw() {
                    let item = format!("{:?}", entry.name.display());
                    let reason = format!(
                        "its name here, {name}, is also that of the server's mailbox {:?}",
                        first.display()
                    );
                    self.skipped.push(Skip::new(Some(name), item, reason));
                }
                continue;
            }
            self.remote.insert(name.clone(), entry.name.clone());
            if self.list_prefix.is_some() && name.is_inbox() {
                // Dovecot keeps none of INBOX's flags here (only that it has children).
                mailboxes.push(MailboxInfo::new(name));
                continue;
            }
            let special_use = entry.attributes.iter().filter_map(special_use).collect();
            mailboxes.push(MailboxInfo { name, selectable: !entry.is_noselect(), special_use });
        }
        if self.list_prefix.is_some() && !mailboxes.iter().any(|m| m.name.is_inbox()) {
            // `PREFIX*` does not match INBOX, which always exists.
            mailboxes.push(MailboxInfo::new(MailboxName::inbox()));
        }
        Ok(mailboxes)
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        let entries = match self.subscribed.take() {
            Some(entries) => entries,
            None => {
                self.session.list_subscribed().map_err(|e| convert_error(e, "LIST (SUBSCRIBED)"))?
            }
        };
        let mut names = BTreeSet::new();
        for entry in &entries {
            match self.our_name(&entry.name) {
                Ok(Some(name)) => {
                    names.insert(name);
                }
                Ok(None) => {}
                // A subscription holds no mail; a name that cannot be mapped is dropped.
                Err(error) => self.warnings.push(format!("subscription not copied: {error}")),
            }
        }
        Ok(names)
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        let wire = self.wire_name(mailbox);
        let status = if let Some(listed) = self.listed.remove(wire.as_raw()) {
            listed
        } else {
            let items = self.status_items();
            self.session.status(&wire, &items).map_err(|e| convert_error(e, "STATUS"))?
        };
        let missing = |what: &str| {
            StorageError::new(ErrorKind::InvalidData, format!("STATUS of {mailbox} lacks {what}"))
        };
        let uid_validity =
            status.uid_validity.and_then(UidValidity::new).ok_or_else(|| missing("UIDVALIDITY"))?;
        let uid_next = status.uid_next.and_then(Uid::new).ok_or_else(|| missing("UIDNEXT"))?;
        let messages = status.messages.unwrap_or(0);
        Ok(MailboxStatus {
            uid_validity,
            uid_next,
            messages,
            highest_modseq: status.highest_modseq,
            guid: Some(self.derived_guid(mailbox)),
            change_token: change_token(uid_validity, uid_next, messages, status.highest_modseq),
            source_uid_validity: None,
        })
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        std::mem::take(&mut self.skipped)
    }

    /// The `imapc_list_prefix` mailbox left out, and the server's `[ALERT]`s (RFC 3501
    /// wants them shown; the first ten of a session, then how many more there were).
    fn take_warnings(&mut self) -> Vec<String> {
        let mut warnings = std::mem::take(&mut self.warnings);
        for alert in self.session.take_alerts() {
            warnings.push(format!("{}: the server says: {alert}", self.description));
        }
        let dropped = self.session.take_dropped_alerts();
        if dropped > 0 {
            warnings.push(format!(
                "{}: {dropped} more server alert{} not shown (repeated, or beyond ten)",
                self.description,
                if dropped == 1 { "" } else { "s" }
            ));
        }
        warnings
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        // EXAMINE and `UID FETCH 1:*` in one round trip.
        let wire = self.wire_name(mailbox);
        let (info, all) = self.examine_with_metadata(&wire)?;
        self.whole_contents(mailbox, &info, all)
    }

    /// The listing as the server sends it, one answer at a time (EXAMINE and
    /// `UID FETCH 1:*` in one round trip, as [`Storage::contents`]): a large mailbox is
    /// compared without being held. In the server's order — Dovecot's is ascending UID;
    /// the engine notices another and lists whole. Read whole, as `contents`, while it is
    /// not known yet whether the server takes the message GUID item (the first listing
    /// that asks learns it, retrying without when refused), and when the EXAMINE gave no
    /// UIDNEXT (Courier: a STATUS must follow the listing).
    fn listing(&mut self, mailbox: &MailboxName) -> Result<MessageListing<'_>, StorageError> {
        if self.session.message_guids().is_some() && self.message_guids.is_none() {
            return Ok(MessageListing::whole(self.contents(mailbox)?));
        }
        let wire = self.wire_name(mailbox);
        let guid = self.derived_guid(mailbox);
        self.ahead = None;
        let info = match self.session.finish_examine_then_list(&wire) {
            // Sent ahead (`list_ahead`).
            Some(result) => result,
            None => self.session.examine_then_list(&wire, self.condstore),
        }
        .map_err(|e| convert_error(e, "EXAMINE"))?;
        let Some(uid_next) = info.uid_next.and_then(|uid| Uid::new(uid.get())) else {
            let all =
                self.session.listing().read_whole().map_err(|e| convert_error(e, "UID FETCH"))?;
            return Ok(MessageListing::whole(self.whole_contents(mailbox, &info, all)?));
        };
        self.examined = Some(mailbox.clone());
        let status = examined_status(&info, uid_next, info.highest_modseq, guid)?;
        let ImapStorage { session, skipped, warnings, misdated, .. } = self;
        let mut converter = ListingConverter::new(mailbox, skipped, warnings, misdated);
        let messages = session.listing().filter_map(move |listed| match listed {
            Ok(meta) => converter.convert(meta).map(Ok),
            Err(error) => Some(Err(convert_error(error, "UID FETCH"))),
        });
        Ok(MessageListing::new(status, messages))
    }

    /// Sends what [`Storage::listing`] would send for `mailbox` (EXAMINE and the listing's
    /// `UID FETCH 1:*`) without waiting for the answers: right behind the last command of
    /// the next `fetch` with `after_fetch` ([`Session::uid_fetch_then_list`]), else now
    /// ([`Session::send_examine_then_list`]; nothing when it went behind a fetch already).
    /// Dovecot then lists the next mailbox while the engine still stores and commits the
    /// last one's messages, and the round trip is gone. `listing` of that mailbox reads
    /// the answers; any other command drops them first (and EXAMINEs again what it
    /// needs). Nothing is sent ahead when `listing` would not send exactly that (the first
    /// listing, which learns whether the message GUID item is taken).
    fn list_ahead(&mut self, mailbox: &MailboxName, after_fetch: bool) {
        if self.session.message_guids().is_some() && self.message_guids.is_none() {
            return;
        }
        if after_fetch {
            self.ahead = Some(mailbox.clone());
            return;
        }
        self.ahead = None;
        let wire = self.wire_name(mailbox);
        if !self.session.examine_sent(&wire) {
            self.examined = None;
            self.session.send_examine_then_list(&wire, self.condstore);
        }
    }

    /// With QRESYNC: EXAMINE, then `UID FETCH 1:* (…) (CHANGEDSINCE m VANISHED)` with the
    /// HIGHESTMODSEQ `m` of `token` (a token this adapter gave out). With CONDSTORE alone:
    /// `UID FETCH 1:* (…) (CHANGEDSINCE m)` for the changes and, unless the message count
    /// shows that nothing older went, `UID SEARCH ALL` (ESEARCH's ranges where offered) for
    /// the UIDs still held: every other UID below UIDNEXT is reported vanished. `None`
    /// (list it whole) without CONDSTORE, for a token of another form or another
    /// UIDVALIDITY, a mailbox without mod-sequences (`NOMODSEQ`), or a HIGHESTMODSEQ now
    /// below `m`: the server lost its mod-sequences (Dovecot rebuilding a lost index starts
    /// them again), so what it would call changed since `m` could miss changes.
    fn changes_since(
        &mut self,
        mailbox: &MailboxName,
        token: &str,
    ) -> Result<Option<MailboxChanges>, StorageError> {
        let Some(since) = TokenParts::parse(token).filter(|_| self.condstore) else {
            return Ok(None);
        };
        let info = self.examine(mailbox)?;
        let current = info.highest_modseq.filter(|_| !info.no_modseq);
        if info.uid_validity.get() != since.uid_validity
            || current.is_none_or(|modseq| modseq < since.highest_modseq)
        {
            return Ok(None);
        }
        let mut listed = Vec::new();
        let mut vanished = Vec::new();
        if self.qresync {
            self.session
                .fetch_metadata_changed_since(
                    since.highest_modseq,
                    &mut |meta| {
                        listed.push(meta);
                        Ok(())
                    },
                    &mut |uids| {
                        vanished.extend(uid_ranges(uids));
                        Ok(())
                    },
                )
                .map_err(|e| convert_error(e, "UID FETCH (CHANGEDSINCE)"))?;
        } else {
            self.session
                .fetch_metadata_changed(since.highest_modseq, &mut |meta| {
                    listed.push(meta);
                    Ok(())
                })
                .map_err(|e| convert_error(e, "UID FETCH (CHANGEDSINCE)"))?;
            if since.expunges_possible(info.exists, &listed) {
                let held = self
                    .session
                    .uid_search(&[SearchKey::All])
                    .map_err(|e| convert_error(e, "UID SEARCH"))?;
                let uid_next = info.uid_next.map_or(since.uid_next, imapc::Uid::get);
                vanished = uids_not_held(&held, uid_next);
            }
        }
        listed.sort_by_key(|m| m.uid);
        listed.dedup();
        vanished.sort_unstable();
        let changed = self.convert_listing(mailbox, listed);
        let status = self.examined_status(mailbox, &info, current)?;
        let mut changes = MailboxChanges::new(status);
        changes.changed = changed;
        changes.vanished = vanished;
        Ok(Some(changes))
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        if uids.is_empty() {
            return Ok(());
        }
        if self.examined.as_ref() != Some(mailbox) || self.session.selected().is_none() {
            self.examine(mailbox)?;
        }
        let items = [FetchItem::Uid, FetchItem::whole_message()];
        // The next mailbox's listing goes behind the last piece (`list_ahead`).
        let ahead = self.ahead.take().map(|next| self.wire_name(&next));
        let pieces = uids.len().div_ceil(REORDER_CHUNK);
        // In pieces, so that what an answer out of UID order makes us hold stays bounded.
        for (index, chunk) in uids.chunks(REORDER_CHUNK).enumerate() {
            let set = SequenceSet::from_uids(chunk.iter().filter_map(|u| imapc::Uid::new(u.get())));
            let mut handler = Reorder::new(sink, chunk);
            let result = match &ahead {
                Some(next) if index + 1 == pieces => {
                    let result = self.session.uid_fetch_then_list(
                        &set,
                        &items,
                        &mut handler,
                        next,
                        self.condstore,
                    );
                    if self.session.selected().is_none() {
                        self.examined = None;
                    }
                    result
                }
                _ => self.session.uid_fetch(&set, &items, &mut handler),
            };
            let result = result.and_then(|()| handler.finish().map_err(imapc::Error::Handler));
            match result {
                Ok(()) => {}
                Err(imapc::Error::Handler(error)) => return Err(unwrap_sink_error(error)),
                Err(error) => return Err(convert_error(error, "UID FETCH")),
            }
        }
        Ok(())
    }

    /// Fetches only the hashed header fields (`BODY.PEEK[HEADER.FIELDS (DATE MESSAGE-ID)]`,
    /// what Dovecot's imapc does with `fetch-headers`), not whole messages.
    fn header_hashes(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, String>, StorageError> {
        let mut hashes = BTreeMap::new();
        if uids.is_empty() {
            return Ok(hashes);
        }
        if self.examined.as_ref() != Some(mailbox) || self.session.selected().is_none() {
            self.examine(mailbox)?;
        }
        let set = SequenceSet::from_uids(uids.iter().filter_map(|u| imapc::Uid::new(u.get())));
        let section =
            format!("HEADER.FIELDS ({})", DEFAULT_HASHED_HEADERS.join(" ").to_ascii_uppercase());
        let items = [FetchItem::Uid, FetchItem::Body { section, partial: None, peek: true }];
        let mut handler = HeaderHandler { hashes: &mut hashes, pending: None };
        self.session
            .uid_fetch(&set, &items, &mut handler)
            .map_err(|e| convert_error(e, "UID FETCH"))?;
        Ok(hashes)
    }
}

/// Hashes header-field literals as they stream in.
struct HeaderHandler<'a> {
    hashes: &'a mut BTreeMap<Uid, String>,
    pending: Option<String>,
}

impl FetchHandler for HeaderHandler<'_> {
    fn body(&mut self, _start: &BodyStart, body: &mut dyn Read) -> io::Result<()> {
        let mut header = Vec::new();
        // The two fields of one message: a hostile server could send more; cap it.
        body.take(1 << 20).read_to_end(&mut header)?;
        self.pending = Some(header_hash(&header, &DEFAULT_HASHED_HEADERS, HashVersion::V3));
        Ok(())
    }

    fn fetch(&mut self, fetch: Fetch) -> io::Result<()> {
        if let (Some(hash), Some(uid)) =
            (self.pending.take(), fetch.uid.and_then(|u| Uid::new(u.get())))
        {
            self.hashes.insert(uid, hash);
        }
        Ok(())
    }
}

/// Hands each section's first bytes to a callback once its UID is known.
struct SectionHandler<'a> {
    each: &'a mut dyn FnMut(Uid, &[u8]),
    limit: u64,
    pending: Option<Vec<u8>>,
}

impl FetchHandler for SectionHandler<'_> {
    fn body(&mut self, _start: &BodyStart, body: &mut dyn Read) -> io::Result<()> {
        let mut bytes = Vec::new();
        body.take(self.limit).read_to_end(&mut bytes)?;
        self.pending = Some(bytes);
        Ok(())
    }

    fn fetch(&mut self, fetch: Fetch) -> io::Result<()> {
        if let (Some(bytes), Some(uid)) =
            (self.pending.take(), fetch.uid.and_then(|u| Uid::new(u.get())))
        {
            (self.each)(uid, &bytes);
        }
        Ok(())
    }
}

/// Changes whenever the mailbox does, but only when the server keeps mod-sequences: without
/// CONDSTORE a flag change leaves UIDNEXT and MESSAGES as they were.
fn change_token(
    uid_validity: UidValidity,
    uid_next: Uid,
    messages: u32,
    highest_modseq: Option<u64>,
) -> Option<String> {
    highest_modseq.map(|modseq| format!("{uid_validity}/{uid_next}/{messages}/{modseq}"))
}

/// What [`change_token`] put in a token.
struct TokenParts {
    uid_validity: u32,
    uid_next: u32,
    messages: u32,
    highest_modseq: u64,
}

impl TokenParts {
    fn parse(token: &str) -> Option<TokenParts> {
        let mut parts = token.split('/');
        let uid_validity = parts.next()?.parse().ok()?;
        let uid_next = parts.next()?.parse().ok()?;
        let messages = parts.next()?.parse().ok()?;
        let highest_modseq = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(TokenParts {
            uid_validity,
            uid_next,
            messages,
            highest_modseq,
        })
    }

    /// Whether messages the mailbox held at the token may have been expunged since, now
    /// that it holds `exists` and `changed` lists what changed or came since: every
    /// message added since has a mod-sequence above the token's (RFC 7162 §3.1.1), so it
    /// is among `changed` if it is still there, and `exists` is the token's count less the
    /// older ones expunged plus the new ones held.
    fn expunges_possible(&self, exists: u32, changed: &[imapc::MessageMeta]) -> bool {
        let mut added: Vec<u32> =
            changed.iter().map(|m| m.uid).filter(|&uid| uid >= self.uid_next).collect();
        added.sort_unstable();
        added.dedup();
        u64::from(self.messages) + added.len() as u64 != u64::from(exists)
    }
}

/// The UID ranges below `uid_next` that are not in `held` (ascending): what a server
/// without QRESYNC expunged, and UIDs that were never used.
fn uids_not_held(held: &[imapc::Uid], uid_next: u32) -> Vec<(Uid, Uid)> {
    let mut gaps = Vec::new();
    let mut next = 1u32;
    for uid in held.iter().map(|uid| uid.get()).take_while(|&uid| uid < uid_next) {
        if uid > next
            && let (Some(first), Some(last)) = (Uid::new(next), Uid::new(uid - 1))
        {
            gaps.push((first, last));
        }
        next = next.max(uid.saturating_add(1));
    }
    if next < uid_next
        && let (Some(first), Some(last)) = (Uid::new(next), Uid::new(uid_next - 1))
    {
        gaps.push((first, last));
    }
    gaps
}

/// The UID ranges of a `VANISHED` set (`*` is the highest UID there can be).
fn uid_ranges(set: &SequenceSet) -> impl Iterator<Item = (Uid, Uid)> + '_ {
    set.ranges().iter().filter_map(|range| {
        let value = |bound: imapc::SeqBound| match bound {
            imapc::SeqBound::Value(value) => Uid::new(value.get()),
            imapc::SeqBound::Largest => Uid::new(u32::MAX),
        };
        let (a, b) = (value(range.start)?, value(range.end)?);
        Some((a.min(b), a.max(b)))
    })
}

/// The status of an examined mailbox whose UIDNEXT is known.
fn examined_status(
    info: &imapc::MailboxInfo,
    uid_next: Uid,
    highest_modseq: Option<u64>,
    guid: MailboxGuid,
) -> Result<MailboxStatus, StorageError> {
    let uid_validity = UidValidity::new(info.uid_validity.get())
        .ok_or_else(|| StorageError::new(ErrorKind::InvalidData, "UIDVALIDITY 0"))?;
    Ok(MailboxStatus {
        uid_validity,
        uid_next,
        messages: info.exists,
        highest_modseq,
        guid: Some(guid),
        change_token: change_token(uid_validity, uid_next, info.exists, highest_modseq),
        source_uid_validity: None,
    })
}

/// Our messages from the server's listing, one at a time, in the order given. A message
/// the server gets wrong costs that message at most: UID 0 (no message has it, and none
/// can be fetched by it) and a second, different message under the UID just listed are
/// left out and reported ([`Storage::take_skipped`]); the same answer twice in a row is
/// one message; an INTERNALDATE that is no date leaves the received date to the
/// message's header, with a warning (once a run).
struct ListingConverter<'a> {
    mailbox: MailboxName,
    skipped: &'a mut Vec<Skip>,
    warnings: &'a mut Vec<String>,
    misdated: &'a mut HashSet<(MailboxName, Uid)>,
    /// The server's previous answer.
    previous: Option<imapc::MessageMeta>,
    /// The UID of the last message kept.
    last: Option<Uid>,
}

impl<'a> ListingConverter<'a> {
    fn new(
        mailbox: &MailboxName,
        skipped: &'a mut Vec<Skip>,
        warnings: &'a mut Vec<String>,
        misdated: &'a mut HashSet<(MailboxName, Uid)>,
    ) -> ListingConverter<'a> {
        let mailbox = mailbox.clone();
        ListingConverter { mailbox, skipped, warnings, misdated, previous: None, last: None }
    }

    fn convert(&mut self, meta: imapc::MessageMeta) -> Option<MessageMeta> {
        let ours = self.ours(&meta);
        self.previous = Some(meta);
        ours
    }

    fn ours(&mut self, meta: &imapc::MessageMeta) -> Option<MessageMeta> {
        if self.previous.as_ref() == Some(meta) {
            return None;
        }
        let Some(uid) = Uid::new(meta.uid) else {
            self.skip(
                "UID 0".into(),
                "the server gives a message UID 0, which no message can have (RFC 3501 \
                 §2.3.1.1): it cannot be fetched by UID, so it is not copied",
            );
            return None;
        };
        if self.last == Some(uid) {
            self.skip(
                format!("UID {uid}"),
                "the server lists a second, different message under this UID (one UID \
                 names one message): the first is copied, this one is not",
            );
            return None;
        }
        if meta.internal_date.is_none() && self.misdated.insert((self.mailbox.clone(), uid)) {
            let sent = meta.invalid.iter().find(|(item, _)| item == "INTERNALDATE").map(|(_, v)| v);
            let warning = format!(
                "mailbox {} UID {uid}: the server's INTERNALDATE {:?} is not a valid date; the \
                 message is copied with the received date its Received: or Date: header gives",
                self.mailbox,
                sent.map_or("", String::as_str)
            );
            self.warnings.push(warning);
        }
        self.last = Some(uid);
        Some(convert_message(meta, uid))
    }

    fn skip(&mut self, item: String, reason: &str) {
        self.skipped.push(Skip::new(Some(self.mailbox.clone()), item, reason));
    }
}

fn convert_message(meta: &imapc::MessageMeta, uid: Uid) -> MessageMeta {
    let mut flags = Flags::default();
    for flag in &meta.flags {
        match flag {
            imapc::Flag::Seen => flags.system = flags.system.union(SystemFlags::SEEN),
            imapc::Flag::Answered => flags.system = flags.system.union(SystemFlags::ANSWERED),
            imapc::Flag::Flagged => flags.system = flags.system.union(SystemFlags::FLAGGED),
            imapc::Flag::Deleted => flags.system = flags.system.union(SystemFlags::DELETED),
            imapc::Flag::Draft => flags.system = flags.system.union(SystemFlags::DRAFT),
            imapc::Flag::Keyword(keyword) => {
                flags.keywords.insert(keyword.clone());
            }
            // \Recent is session state; other \-flags cannot be stored by any storage.
            _ => {}
        }
    }
    let mut ours = MessageMeta::new(uid, flags);
    ours.received = meta.internal_date.map(|date| date.timestamp());
    ours.virtual_size = Some(meta.rfc822_size);
    ours.guid.clone_from(&meta.guid);
    ours.modseq = meta.modseq;
    ours
}

fn special_use(attribute: &ListAttribute) -> Option<SpecialUse> {
    Some(match attribute {
        ListAttribute::All => SpecialUse::All,
        ListAttribute::Archive => SpecialUse::Archive,
        ListAttribute::Drafts => SpecialUse::Drafts,
        ListAttribute::Flagged => SpecialUse::Flagged,
        ListAttribute::Junk => SpecialUse::Junk,
        ListAttribute::Sent => SpecialUse::Sent,
        ListAttribute::Trash => SpecialUse::Trash,
        ListAttribute::Important => SpecialUse::Important,
        _ => return None,
    })
}

/// Maps `imapc` errors onto the engine's kinds (and so onto doveadm's exit codes). Only
/// what a later run may mend is temporary: a wrong port, a refused STARTTLS or a host that
/// does not exist is not, and is not retried.
pub(crate) fn convert_error(error: imapc::Error, doing: &str) -> StorageError {
    use imapc::Error as E;
    let kind = match &error {
        E::AuthenticationFailed { code, .. } => login_refusal_kind(code.as_ref()),
        E::StartTlsRefused { code, .. } if is_temporary_code(code.as_ref()) => ErrorKind::Temporary,
        _ if error.is_wrong_endpoint() => ErrorKind::Config,
        E::Net(net) if net.is_unknown_host() => ErrorKind::NotFound,
        E::Net(net) if net.is_configuration() => ErrorKind::Config,
        E::LoginDisabled => ErrorKind::Config,
        // Response codes of RFC 5530; anything else may go away on a retry.
        E::No { code, .. } | E::Bad { code, .. } => {
            match code.as_ref().map(imapc::proto::Code::name).as_deref() {
                Some("NONEXISTENT" | "TRYCREATE") => ErrorKind::NotFound,
                Some("OVERQUOTA" | "LIMIT") => ErrorKind::NoSpace,
                Some("NOPERM") => ErrorKind::Permission,
                Some("CANNOT" | "PARSE") => ErrorKind::InvalidData,
                _ => ErrorKind::Temporary,
            }
        }
        E::InvalidArgument(_) | E::Unsupported { .. } => ErrorKind::InvalidData,
        _ => ErrorKind::Temporary,
    };
    StorageError::with_source(kind, format!("IMAP {doing}"), error)
}

/// A login refused with `code` (RFC 5530): the credentials, unless the server says it is
/// a passing trouble (`UNAVAILABLE`: a backend is down) or that TLS is needed.
fn login_refusal_kind(code: Option<&imapc::proto::Code>) -> ErrorKind {
    if is_temporary_code(code) {
        return ErrorKind::Temporary;
    }
    match code.map(imapc::proto::Code::name).as_deref() {
        Some("PRIVACYREQUIRED") => ErrorKind::Config,
        _ => ErrorKind::Authentication,
    }
}

/// RFC 5530's codes for a failure that goes away by itself (`UNAVAILABLE`, `INUSE`,
/// `SERVERBUG`), and the common `THROTTLED`.
fn is_temporary_code(code: Option<&imapc::proto::Code>) -> bool {
    matches!(
        code.map(imapc::proto::Code::name).as_deref(),
        Some("UNAVAILABLE" | "INUSE" | "SERVERBUG" | "THROTTLED")
    )
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use imapc::proto::Code;

    fn code(name: &str) -> Code {
        Code::Other { name: name.into(), data: None }
    }

    #[test]
    fn login_refusals_wrong_ports_and_unknown_hosts_get_their_kinds() {
        let login = |code| imapc::Error::AuthenticationFailed { code, text: "no".into() };
        let table = [
            (login(None), ErrorKind::Authentication),
            (login(Some(code("AUTHENTICATIONFAILED"))), ErrorKind::Authentication),
            (login(Some(code("EXPIRED"))), ErrorKind::Authentication),
            (login(Some(code("UNAVAILABLE"))), ErrorKind::Temporary),
            (login(Some(code("SERVERBUG"))), ErrorKind::Temporary),
            (login(Some(code("PRIVACYREQUIRED"))), ErrorKind::Config),
            (imapc::Error::StartTlsRefused { code: None, text: "no".into() }, ErrorKind::Config),
            (
                imapc::Error::StartTlsRefused {
                    code: Some(code("UNAVAILABLE")),
                    text: "later".into(),
                },
                ErrorKind::Temporary,
            ),
            (imapc::Error::PreauthWithoutTls, ErrorKind::Config),
            (imapc::Error::StartTlsUnavailable, ErrorKind::Config),
            (
                imapc::Error::ImplicitTlsPort { waited: std::time::Duration::from_secs(15) },
                ErrorKind::Config,
            ),
            (
                imapc::Error::WrongService {
                    found: mailnet::Service::Pop3,
                    greeting: "+OK".into(),
                    tls: false,
                },
                ErrorKind::Config,
            ),
            (
                imapc::Error::Net(mailnet::Error::NotTls {
                    host: "h".into(),
                    service: None,
                    received: "x".into(),
                }),
                ErrorKind::Config,
            ),
            (
                imapc::Error::Net(mailnet::Error::Resolve {
                    host: "mail.invalid".into(),
                    source: io::Error::other("Name or service not known"),
                }),
                ErrorKind::NotFound,
            ),
            (
                imapc::Error::Net(mailnet::Error::Resolve {
                    host: "mail.example.com".into(),
                    source: io::Error::other("Temporary failure in name resolution"),
                }),
                ErrorKind::Temporary,
            ),
            (
                imapc::Error::Net(mailnet::Error::Stalled {
                    timeout: std::time::Duration::from_secs(2),
                }),
                ErrorKind::Temporary,
            ),
        ];
        for (error, kind) in table {
            let text = error.to_string();
            assert_eq!(convert_error(error, "connecting").kind(), kind, "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(held: &[u32], uid_next: u32) -> Vec<(u32, u32)> {
        let held: Vec<imapc::Uid> = held.iter().filter_map(|&uid| imapc::Uid::new(uid)).collect();
        uids_not_held(&held, uid_next).into_iter().map(|(a, b)| (a.get(), b.get())).collect()
    }

    #[test]
    fn the_uids_not_held_below_uid_next_are_the_gaps() {
        assert_eq!(ranges(&[2, 3, 7], 10), [(1, 1), (4, 6), (8, 9)]);
        assert_eq!(ranges(&[1, 2, 3], 4), []);
        assert_eq!(ranges(&[], 1), []);
        assert_eq!(ranges(&[], 5), [(1, 4)]);
        // A UID at or above UIDNEXT (a message that came meanwhile) is no gap's end.
        assert_eq!(ranges(&[1, 4, 12], 6), [(2, 3), (5, 5)]);
    }
}
