//! [`Session`]: everything an authenticated connection can do.

use std::io;

use crate::error::{Error, Result};
use crate::proto::{
    AppendMessage, Code, Command, FetchItem, ListAttribute, ListEntry, ListKind, MailboxStatus,
    Namespaces, Response, SearchKey, StatusItem, StoreAction, Untagged,
};
use crate::types::{Capabilities, Flag, MailboxName, SequenceSet, Uid, UidValidity};

use super::append::{self, AppendOutcome};
use super::conn::{Conn, UnreadExamine, check};
use super::fetch::{self, FetchHandler, GuidItem, MessageMeta, MetaHandler, Modifiers};
use super::listing::MetadataListing;
use super::mailbox::{self, ListOptions, ListResult, MailboxInfo, SelectOptions};

/// An authenticated connection. Only a `Session` can select mailboxes and fetch mail.
#[derive(Debug)]
pub struct Session {
    conn: Box<Conn>,
    selected: Option<MailboxName>,
    /// The GUID item the metadata listings also ask for.
    message_guids: Option<GuidItem>,
}

/// `[APPENDUID]` of an APPEND (RFC 4315).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendUid {
    /// The destination's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// The new UIDs, in the order of the appended messages.
    pub uids: Vec<Uid>,
}

/// The server's `COPYUID` for a [`Session::uid_copy`] (UIDPLUS, RFC 4315).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyUids {
    /// The destination mailbox's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// Each copied message's UID and its copy's UID, in the order of the command's set.
    pub pairs: Vec<(Uid, Uid)>,
}

/// What [`Session::expunge_uids`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expunged {
    /// The messages are gone.
    Done,
    /// No UIDPLUS, and other messages are marked `\Deleted`, which a plain EXPUNGE would
    /// remove too: nothing was expunged, and ours are not marked `\Deleted`.
    Withheld {
        /// The other `\Deleted` messages.
        others: SequenceSet,
    },
}

/// The server's `ID` answer: field names and values (`None` for NIL).
pub type IdFields = Vec<(String, Option<String>)>;

/// Most UIDs a search answer may expand to (64 MiB of `Uid`s): far above any mailbox.
const MAX_SEARCH_RESULTS: u64 = 16 << 20;

/// Messages per MULTIAPPEND command, and bytes: keeps one failure from costing much.
const MULTIAPPEND_MAX_MESSAGES: usize = 50;
const MULTIAPPEND_MAX_BYTES: usize = 16 << 20;

impl Session {
    pub(crate) fn new(conn: Box<Conn>) -> Session {
        Session { conn, selected: None, message_guids: None }
    }

    /// Makes the metadata listings ([`fetch_metadata`](Self::fetch_metadata),
    /// [`fetch_metadata_all`](Self::fetch_metadata_all),
    /// [`examine_with_metadata`](Self::examine_with_metadata)) also ask for `item`, which
    /// fills [`MessageMeta::guid`]; `None` (the default) stops asking.
    ///
    /// [`GuidItem::for_capabilities`] picks the item for this server. Nothing is checked
    /// here: a server that does not know the item (any but Dovecot, for `X-GUID`) answers
    /// those listings with [`Error::Bad`] or [`Error::No`], after which the caller can turn
    /// this off and list again.
    pub fn set_message_guids(&mut self, item: Option<GuidItem>) {
        self.message_guids = item;
    }

    /// The GUID item the metadata listings ask for (see
    /// [`set_message_guids`](Self::set_message_guids)).
    pub fn message_guids(&self) -> Option<GuidItem> {
        self.message_guids
    }

    /// `UID FLAGS INTERNALDATE RFC822.SIZE`, then `MODSEQ` and the GUID item when wanted.
    fn metadata_items(&self, with_modseq: bool) -> Vec<FetchItem> {
        let mut items =
            vec![FetchItem::Uid, FetchItem::Flags, FetchItem::InternalDate, FetchItem::Rfc822Size];
        if with_modseq {
            items.push(FetchItem::ModSeq);
        }
        if let Some(guid) = self.message_guids {
            items.push(guid.fetch_item());
        }
        items
    }

    /// Capabilities after login.
    pub fn capabilities(&self) -> &Capabilities {
        &self.conn.capabilities
    }

    /// True when the server announced `name`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.conn.capabilities.has(name)
    }

    /// `[ALERT]` texts received so far (RFC 3501 says they must be shown to the user);
    /// taking them empties the list. At most ten different alerts are kept per session,
    /// each cut to 500 characters with control characters escaped; the others are only
    /// counted ([`take_dropped_alerts`](Self::take_dropped_alerts)), so a server repeating
    /// alerts costs no memory.
    pub fn take_alerts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.conn.alerts)
    }

    /// How many alerts were not kept (beyond ten, or repeats) since the last call.
    pub fn take_dropped_alerts(&mut self) -> u64 {
        std::mem::take(&mut self.conn.alerts_dropped)
    }

    /// The selected mailbox, if any.
    pub fn selected(&self) -> Option<&MailboxName> {
        self.selected.as_ref()
    }

    /// `NOOP`: keeps the connection alive and collects unsolicited updates.
    pub fn noop(&mut self) -> Result<()> {
        self.conn.simple(&Command::Noop).map(drop)
    }

    /// `CAPABILITY`: refreshes the capability list.
    pub fn refresh_capabilities(&mut self) -> Result<&Capabilities> {
        self.conn.simple(&Command::Capability)?;
        Ok(&self.conn.capabilities)
    }

    /// `ID` (RFC 2971): tells the server who we are (some servers, e.g. NetEase, refuse
    /// SELECT until then) and returns what it says about itself.
    pub fn id(&mut self, fields: Option<&[(&str, &str)]>) -> Result<Option<IdFields>> {
        if !self.has_capability("ID") && !self.has_capability("IMAP4rev2") {
            return Err(Error::Unsupported { capability: "ID" });
        }
        let mut answer = None;
        self.conn.run(&Command::Id(fields), &mut |untagged| {
            if let Untagged::Id(fields) = untagged {
                answer = fields;
            }
            Ok(())
        })?;
        Ok(answer)
    }

    /// `NAMESPACE` (RFC 2342).
    pub fn namespace(&mut self) -> Result<Namespaces> {
        if !self.has_capability("NAMESPACE") && !self.has_capability("IMAP4rev2") {
            return Err(Error::Unsupported { capability: "NAMESPACE" });
        }
        let mut answer = None;
        self.conn.run(&Command::Namespace, &mut |untagged| {
            if let Untagged::Namespace(ns) = untagged {
                answer = Some(ns);
            }
            Ok(())
        })?;
        answer.ok_or_else(|| Error::Protocol("NAMESPACE without answer".into()))
    }

    /// `ENABLE` (RFC 5161): returns what the server actually enabled. Enabling
    /// `UTF8=ACCEPT` switches mailbox names to UTF-8 on the wire.
    pub fn enable(&mut self, capabilities: &[&str]) -> Result<Vec<String>> {
        if !self.has_capability("ENABLE") && !self.has_capability("IMAP4rev2") {
            return Err(Error::Unsupported { capability: "ENABLE" });
        }
        let mut enabled = Vec::new();
        self.conn.run(&Command::Enable(capabilities), &mut |untagged| {
            if let Untagged::Enabled(names) = untagged {
                enabled.extend(names);
            }
            Ok(())
        })?;
        self.enabled(&enabled);
        Ok(enabled)
    }

    /// Switches to what the server enabled: `UTF8=ACCEPT` puts mailbox names in UTF-8.
    fn enabled(&mut self, enabled: &[String]) {
        if enabled
            .iter()
            .any(|c| c.eq_ignore_ascii_case("UTF8=ACCEPT") || c.eq_ignore_ascii_case("IMAP4rev2"))
        {
            self.conn.utf8 = true;
            self.conn.decoder.set_utf8_names(true);
        }
    }

    /// [`list`](Self::list) and [`enable`](Self::enable) in one round trip, the ENABLE
    /// sent right behind the LIST: the two commands a client typically starts a session
    /// with (`LIST "" ""` for the hierarchy delimiter). Without ENABLE support on the
    /// server only the LIST is sent and nothing is enabled.
    pub fn list_and_enable(
        &mut self,
        reference: &str,
        pattern: &str,
        capabilities: &[&str],
    ) -> Result<(Vec<ListEntry>, Vec<String>)> {
        if !self.has_capability("ENABLE") && !self.has_capability("IMAP4rev2") {
            return Ok((self.list(reference, pattern)?, Vec::new()));
        }
        let options = ListOptions {
            reference: reference.into(),
            pattern: pattern.into(),
            ..ListOptions::default()
        };
        let args = mailbox::list_args(&self.conn, &options)?;
        let list_tag = self.conn.send(&args.command())?;
        let enable_tag = self.conn.send(&Command::Enable(capabilities))?;
        let mut listed = ListResult::default();
        let mut enabled = Vec::new();
        self.conn.finish_all(&[(list_tag, "LIST"), (enable_tag, "ENABLE")], &mut |untagged| {
            match untagged {
                Untagged::Enabled(names) => enabled.extend(names),
                other => listed.take(other)?,
            }
            Ok(())
        })?;
        self.enabled(&enabled);
        Ok((listed.entries, enabled))
    }

    /// [`list_extended`](Self::list_extended) of `options` and
    /// [`list_subscribed`](Self::list_subscribed) in one round trip. The server may run
    /// the two concurrently and interleave their answers (Dovecot does): entries marked
    /// `\Subscribed` (or LSUB answers) belong to the second, so `options` must not ask for
    /// `RETURN (SUBSCRIBED)` or select subscribed mailboxes only; if it does, the two
    /// commands run one after the other.
    pub fn list_with_subscribed(
        &mut self,
        options: &ListOptions,
    ) -> Result<(ListResult, Vec<ListEntry>)> {
        if options.return_subscribed || options.subscribed_only {
            let listed = self.list_extended(options)?;
            return Ok((listed, self.list_subscribed()?));
        }
        let args = mailbox::list_args(&self.conn, options)?;
        let list_tag = self.conn.send(&args.command())?;
        let subscribed_tag =
            if self.has_capability("LIST-EXTENDED") || self.has_capability("IMAP4rev2") {
                let subscribed = ListOptions { subscribed_only: true, ..ListOptions::all() };
                let args = mailbox::list_args(&self.conn, &subscribed)?;
                (self.conn.send(&args.command())?, "LIST (SUBSCRIBED)")
            } else {
                let all = MailboxName::from_utf8("*");
                let root = MailboxName::from_utf8("");
                (self.conn.send(&Command::Lsub { reference: &root, pattern: &all })?, "LSUB")
            };
        let mut listed = ListResult::default();
        let mut subscribed = Vec::new();
        self.conn.finish_all(&[(list_tag, "LIST"), subscribed_tag], &mut |untagged| {
            match untagged {
                Untagged::List(entry)
                    if entry.kind == ListKind::Lsub
                        || entry.attributes.contains(&ListAttribute::Subscribed) =>
                {
                    if subscribed.len() >= mailbox::MAX_LISTED {
                        return Err(mailbox::too_many_listed("LIST (SUBSCRIBED)"));
                    }
                    subscribed.push(entry);
                }
                other => listed.take(other)?,
            }
            Ok(())
        })?;
        Ok((listed, subscribed))
    }

    /// `LIST reference pattern` (names in UTF-8; `*` and `%` are wildcards).
    pub fn list(&mut self, reference: &str, pattern: &str) -> Result<Vec<ListEntry>> {
        let options = ListOptions {
            reference: reference.into(),
            pattern: pattern.into(),
            ..ListOptions::default()
        };
        Ok(mailbox::list(&mut self.conn, &options)?.entries)
    }

    /// LIST with LIST-EXTENDED selection and return options (SUBSCRIBED, SPECIAL-USE,
    /// CHILDREN, LIST-STATUS).
    pub fn list_extended(&mut self, options: &ListOptions) -> Result<ListResult> {
        mailbox::list(&mut self.conn, options)
    }

    /// Subscribed mailboxes: `LIST (SUBSCRIBED) "" "*"` where LIST-EXTENDED is offered
    /// (it marks subscribed-but-deleted names `\NonExistent`), else `LSUB "" "*"`.
    pub fn list_subscribed(&mut self) -> Result<Vec<ListEntry>> {
        if self.has_capability("LIST-EXTENDED") || self.has_capability("IMAP4rev2") {
            let options = ListOptions { subscribed_only: true, ..ListOptions::all() };
            Ok(mailbox::list(&mut self.conn, &options)?.entries)
        } else {
            self.lsub("", "*")
        }
    }

    /// `LSUB reference pattern`.
    pub fn lsub(&mut self, reference: &str, pattern: &str) -> Result<Vec<ListEntry>> {
        mailbox::lsub(&mut self.conn, reference, pattern)
    }

    /// `STATUS mailbox (items)`.
    pub fn status(&mut self, mailbox: &MailboxName, items: &[StatusItem]) -> Result<MailboxStatus> {
        mailbox::status(&mut self.conn, mailbox, items)
    }

    /// `SELECT mailbox` (read-write).
    pub fn select(&mut self, mailbox: &MailboxName) -> Result<MailboxInfo> {
        self.select_with(mailbox, false, &SelectOptions::default())
    }

    /// `EXAMINE mailbox` (read-only: fetching never changes flags).
    pub fn examine(&mut self, mailbox: &MailboxName) -> Result<MailboxInfo> {
        self.select_with(mailbox, true, &SelectOptions::default())
    }

    /// SELECT (or EXAMINE when `read_only`) with CONDSTORE / QRESYNC parameters.
    pub fn select_with(
        &mut self,
        mailbox: &MailboxName,
        read_only: bool,
        options: &SelectOptions,
    ) -> Result<MailboxInfo> {
        self.selected = None;
        let info = mailbox::select(&mut self.conn, mailbox, read_only, options)?;
        self.selected = Some(mailbox.clone());
        Ok(info)
    }

    /// Streams flags, INTERNALDATE, RFC822.SIZE (and MODSEQ when `with_modseq`, the message
    /// GUID when [`set_message_guids`](Self::set_message_guids) asked for it) of every
    /// message in `set` to `each`, without bodies: one pipelined pass, constant memory.
    /// More answers than the selected mailbox has messages (its highest EXISTS) are a
    /// server error ([`Error::Protocol`]).
    pub fn fetch_metadata(
        &mut self,
        set: &SequenceSet,
        with_modseq: bool,
        each: &mut dyn FnMut(MessageMeta) -> io::Result<()>,
    ) -> Result<()> {
        let items = self.metadata_items(with_modseq);
        let mut handler = MetaHandler::new(set, each, self.conn.exists);
        // Metadata answers are small: only the command-length limit splits the set.
        let fetched = fetch::uid_fetch(
            &mut self.conn,
            set,
            &items,
            Modifiers::default(),
            usize::MAX,
            &mut handler,
        );
        handler.check(fetched)
    }

    /// The metadata [`fetch_metadata`](Self::fetch_metadata) lists, of the messages of the
    /// selected mailbox whose mod-sequence is above `modseq` (flags changed, or new):
    /// `UID FETCH 1:* (…) (CHANGEDSINCE modseq VANISHED)` (RFC 7162), each such message to
    /// `each`, and the UIDs the server says were expunged since `modseq` to `vanished`
    /// (a server that no longer knows may name more: every UID it does not hold). Needs
    /// QRESYNC enabled ([`enable`](Self::enable)); the caller checks that the mailbox's
    /// HIGHESTMODSEQ has not gone below `modseq` (the server forgot its mod-sequences).
    pub fn fetch_metadata_changed_since(
        &mut self,
        modseq: u64,
        each: &mut dyn FnMut(MessageMeta) -> io::Result<()>,
        vanished: &mut dyn FnMut(&SequenceSet) -> io::Result<()>,
    ) -> Result<()> {
        if !self.has_capability("QRESYNC") {
            return Err(Error::Unsupported { capability: "QRESYNC" });
        }
        let items = self.metadata_items(false);
        let all = SequenceSet::all();
        let mut handler =
            ChangedHandler { meta: MetaHandler::new(&all, each, self.conn.exists), vanished };
        let modifiers = Modifiers { changed_since: Some(modseq), vanished: true };
        let fetched =
            fetch::uid_fetch(&mut self.conn, &all, &items, modifiers, usize::MAX, &mut handler);
        handler.meta.check(fetched)
    }

    /// [`fetch_metadata_changed_since`](Self::fetch_metadata_changed_since) for a server
    /// with CONDSTORE but not QRESYNC: `UID FETCH 1:* (…) (CHANGEDSINCE modseq)`, each
    /// message changed or added since `modseq` to `each`. Expunges are not reported: the
    /// caller compares the UIDs the mailbox still holds ([`uid_search`](Self::uid_search)).
    pub fn fetch_metadata_changed(
        &mut self,
        modseq: u64,
        each: &mut dyn FnMut(MessageMeta) -> io::Result<()>,
    ) -> Result<()> {
        if !self.has_capability("CONDSTORE") {
            return Err(Error::Unsupported { capability: "CONDSTORE" });
        }
        let items = self.metadata_items(false);
        let all = SequenceSet::all();
        let mut handler = MetaHandler::new(&all, each, self.conn.exists);
        let modifiers = Modifiers { changed_since: Some(modseq), vanished: false };
        let fetched =
            fetch::uid_fetch(&mut self.conn, &all, &items, modifiers, usize::MAX, &mut handler);
        handler.check(fetched)
    }

    /// EXAMINE `mailbox` and [`fetch_metadata_all`](Self::fetch_metadata_all) of it in one
    /// round trip ([`examine_listing`](Self::examine_listing), read whole): the listing
    /// sorted by UID, a message answered twice alike once (two different answers under one
    /// UID are both kept, for the caller to report).
    pub fn examine_with_metadata(
        &mut self,
        mailbox: &MailboxName,
        with_modseq: bool,
    ) -> Result<(MailboxInfo, Vec<MessageMeta>)> {
        let (info, listing) = self.examine_listing(mailbox, with_modseq)?;
        let all = listing.read_whole()?;
        Ok((info, all))
    }

    /// EXAMINE `mailbox` with the metadata listing of all its messages (the items of
    /// [`fetch_metadata`](Self::fetch_metadata)) in one round trip
    /// ([`examine_then_list`](Self::examine_then_list), then [`listing`](Self::listing)).
    pub fn examine_listing(
        &mut self,
        mailbox: &MailboxName,
        with_modseq: bool,
    ) -> Result<(MailboxInfo, MetadataListing<'_>)> {
        let info = self.examine_then_list(mailbox, with_modseq)?;
        Ok((info, self.listing()))
    }

    /// EXAMINE `mailbox` and start the metadata listing of all its messages (the items of
    /// [`fetch_metadata`](Self::fetch_metadata)) in one round trip: the `UID FETCH 1:*` is
    /// sent right behind the EXAMINE (RFC 3501 §5.5: the server completes the EXAMINE
    /// before it runs the FETCH); over a 100 ms round trip this saves 0.1 s per mailbox.
    /// Returns the EXAMINE's answer; [`listing`](Self::listing) then reads the listing as
    /// the caller iterates it, so that it costs no memory of its own. Any other command
    /// first reads and drops what is left of it. When the EXAMINE fails, the FETCH's
    /// answer is read and dropped and the EXAMINE's error returned.
    pub fn examine_then_list(
        &mut self,
        mailbox: &MailboxName,
        with_modseq: bool,
    ) -> Result<MailboxInfo> {
        self.selected = None;
        let items = self.metadata_items(with_modseq);
        let all = SequenceSet::all();
        let mut fetch_tag = None;
        let selected = mailbox::select_then(
            &mut self.conn,
            mailbox,
            true,
            &SelectOptions::default(),
            &mut |conn| {
                let command = Command::UidFetch {
                    set: &all,
                    items: &items,
                    changed_since: None,
                    vanished: false,
                };
                fetch_tag = Some(conn.send(&command)?);
                Ok(())
            },
        );
        let Some(fetch_tag) = fetch_tag else {
            // Not even sent: nothing to read.
            return Err(selected.err().unwrap_or_else(|| {
                Error::Protocol("the listing's UID FETCH was not sent".into())
            }));
        };
        let info = match selected {
            Ok(info) => info,
            Err(error) => {
                if !error.is_fatal() {
                    // Its answer (BAD: no mailbox selected) is still on its way.
                    let _ = self.conn.finish(&fetch_tag, "UID FETCH", &mut |_| Ok(()));
                }
                return Err(error);
            }
        };
        self.selected = Some(mailbox.clone());
        self.conn.unread_listing = Some((fetch_tag, info.exists));
        Ok(info)
    }

    /// Sends what [`examine_then_list`](Self::examine_then_list) sends (EXAMINE `mailbox`
    /// and the metadata listing behind it) and returns without waiting for any answer, so
    /// that the server works on them while the caller does something else (a backup
    /// commits the mailbox it copied before). [`finish_examine_then_list`] then reads the
    /// EXAMINE's answer as `examine_then_list` would have (or returns the error that kept
    /// them from being sent); any other command first reads and drops both answers. No
    /// mailbox counts as selected meanwhile ([`selected`](Self::selected) is `None`).
    ///
    /// [`finish_examine_then_list`]: Self::finish_examine_then_list
    pub fn send_examine_then_list(&mut self, mailbox: &MailboxName, with_modseq: bool) {
        self.selected = None;
        let items = self.metadata_items(with_modseq);
        send_examine_then_list(&mut self.conn, mailbox, &items);
    }

    /// [`uid_fetch`](Self::uid_fetch) of `set`, with
    /// [`send_examine_then_list`](Self::send_examine_then_list) of `next` sent right behind
    /// its last command: the server lists `next` as soon as it has sent the bodies, while
    /// the caller still reads and stores them. The fetch's outcome is `uid_fetch`'s; the
    /// EXAMINE's is [`finish_examine_then_list`](Self::finish_examine_then_list)'s.
    pub fn uid_fetch_then_list(
        &mut self,
        set: &SequenceSet,
        items: &[FetchItem],
        handler: &mut dyn FetchHandler,
        next: &MailboxName,
        with_modseq: bool,
    ) -> Result<()> {
        let per_command = self.conn.options.prefetch_count;
        let listing_items = self.metadata_items(with_modseq);
        let mut sent = false;
        let result =
            fetch::uid_fetch_then(&mut self.conn, set, items, per_command, handler, &mut |conn| {
                sent = true;
                send_examine_then_list(conn, next, &listing_items);
            });
        if sent {
            self.selected = None;
        }
        result
    }

    /// True when an EXAMINE of `mailbox` sent by
    /// [`send_examine_then_list`](Self::send_examine_then_list) or
    /// [`uid_fetch_then_list`](Self::uid_fetch_then_list) waits to be read.
    pub fn examine_sent(&self, mailbox: &MailboxName) -> bool {
        self.conn.unread_examine.as_ref().is_some_and(|unread| unread.mailbox == *mailbox)
    }

    /// The answer of the EXAMINE [`send_examine_then_list`](Self::send_examine_then_list)
    /// sent for `mailbox`, read as [`examine_then_list`](Self::examine_then_list) reads it
    /// (its listing is then [`listing`](Self::listing)'s); `None` when no such EXAMINE is
    /// waiting (none was sent, it was for another mailbox, or another command came between
    /// and dropped it).
    pub fn finish_examine_then_list(
        &mut self,
        mailbox: &MailboxName,
    ) -> Option<Result<MailboxInfo>> {
        if !self.examine_sent(mailbox) {
            return None;
        }
        let (examine_tag, fetch_tag) = match self.conn.unread_examine.take()?.sent {
            Ok(tags) => tags,
            Err(error) => return Some(Err(error)),
        };
        let result = match mailbox::select_finish(&mut self.conn, &examine_tag, mailbox, true) {
            Ok(info) => {
                self.selected = Some(mailbox.clone());
                self.conn.unread_listing = Some((fetch_tag, info.exists));
                Ok(info)
            }
            Err(error) => {
                if !error.is_fatal() {
                    // Its answer (BAD: no mailbox selected) is still on its way.
                    let _ = self.conn.finish(&fetch_tag, "UID FETCH", &mut |_| Ok(()));
                }
                Err(error)
            }
        };
        Some(result)
    }

    /// The listing [`examine_then_list`](Self::examine_then_list) started, read as the
    /// caller iterates it, in the server's order ([`MetadataListing`]); an empty one when
    /// none is waiting (it was read, or another command came between).
    pub fn listing(&mut self) -> MetadataListing<'_> {
        let (tag, exists) = self.conn.unread_listing.take().unzip();
        MetadataListing::new(&mut self.conn, tag, exists.unwrap_or(0))
    }

    /// [`fetch_metadata`](Self::fetch_metadata) of the whole mailbox (`1:*`), collected and
    /// sorted by UID. A listing with more messages than the mailbox's EXISTS is refused
    /// ([`Error::Protocol`]) as soon as it grows beyond it.
    pub fn fetch_metadata_all(&mut self) -> Result<Vec<MessageMeta>> {
        let mut all = Vec::new();
        self.fetch_metadata(&SequenceSet::all(), false, &mut |meta| {
            all.push(meta);
            Ok(())
        })?;
        all.sort_by_key(|m| m.uid);
        all.dedup();
        Ok(all)
    }

    /// `UID FETCH set (items)`, pipelined: the set is sent ascending in commands of at most
    /// [`ConnectOptions::prefetch_count`](crate::ConnectOptions::prefetch_count) UIDs (when
    /// it has no `*`) and under the command-length limit, `pipeline_depth` of them in
    /// flight, answers matched by tag. Body literals stream to `handler`.
    pub fn uid_fetch(
        &mut self,
        set: &SequenceSet,
        items: &[FetchItem],
        handler: &mut dyn FetchHandler,
    ) -> Result<()> {
        let per_command = self.conn.options.prefetch_count;
        fetch::uid_fetch(&mut self.conn, set, items, Modifiers::default(), per_command, handler)
    }

    /// `UID FETCH set (items) (CHANGEDSINCE modseq [VANISHED])` (RFC 7162): only messages
    /// changed since `modseq`; with `vanished` (QRESYNC enabled) expunged UIDs go to
    /// [`FetchHandler::vanished`].
    pub fn uid_fetch_changed_since(
        &mut self,
        set: &SequenceSet,
        items: &[FetchItem],
        modseq: u64,
        vanished: bool,
        handler: &mut dyn FetchHandler,
    ) -> Result<()> {
        if !self.has_capability("CONDSTORE") {
            return Err(Error::Unsupported { capability: "CONDSTORE" });
        }
        if vanished && !self.has_capability("QRESYNC") {
            return Err(Error::Unsupported { capability: "QRESYNC" });
        }
        let modifiers = Modifiers { changed_since: Some(modseq), vanished };
        fetch::uid_fetch(&mut self.conn, set, items, modifiers, usize::MAX, handler)
    }

    /// `UID SEARCH criteria` (ESEARCH `RETURN (ALL)` when offered): matching UIDs, ascending.
    pub fn uid_search(&mut self, criteria: &[SearchKey]) -> Result<Vec<Uid>> {
        let esearch = self.has_capability("ESEARCH") || self.has_capability("IMAP4rev2");
        let mut uids: Vec<Uid> = Vec::new();
        self.conn.run(&Command::UidSearch { criteria, esearch }, &mut |untagged| {
            match untagged {
                Untagged::Search { numbers, .. } => {
                    if uids.len() as u64 + numbers.len() as u64 > MAX_SEARCH_RESULTS {
                        return Err(Error::Protocol(format!(
                            "SEARCH answers with more than {MAX_SEARCH_RESULTS} UIDs"
                        )));
                    }
                    uids.extend(numbers.into_iter().filter_map(Uid::new));
                }
                Untagged::ESearch(result) => {
                    if let Some(all) = result.all {
                        // Expanding a server's `1:4294967295` would take 16 GiB.
                        if all.len().is_none_or(|n| n > MAX_SEARCH_RESULTS) {
                            return Err(Error::Protocol(format!(
                                "ESEARCH ALL {all} is implausibly large"
                            )));
                        }
                        uids.extend(all.to_uids().unwrap_or_default());
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// `APPEND` one message; the new UID when the server has UIDPLUS.
    pub fn append(
        &mut self,
        mailbox: &MailboxName,
        message: &AppendMessage<'_>,
    ) -> Result<Option<AppendUid>> {
        let status = self
            .conn
            .simple(&Command::Append { mailbox, messages: std::slice::from_ref(message) })?;
        append_uid(status.code.as_ref(), 1)
    }

    /// Appends many messages as fast as the server allows: MULTIAPPEND batches where
    /// offered, else pipelined APPENDs with non-synchronising literals (LITERAL+), else
    /// one at a time. Returns the new UIDs in order (empty without UIDPLUS).
    pub fn append_many(
        &mut self,
        mailbox: &MailboxName,
        messages: &[AppendMessage<'_>],
    ) -> Result<Vec<Uid>> {
        let mut uids = Vec::new();
        if self.has_capability("MULTIAPPEND") {
            let mut start = 0;
            while start < messages.len() {
                let mut end = start + 1;
                let mut bytes = messages[start].data.len();
                while end < messages.len()
                    && end - start < MULTIAPPEND_MAX_MESSAGES
                    && bytes + messages[end].data.len() <= MULTIAPPEND_MAX_BYTES
                {
                    bytes += messages[end].data.len();
                    end += 1;
                }
                let status = self
                    .conn
                    .simple(&Command::Append { mailbox, messages: &messages[start..end] })?;
                if let Some(found) = append_uid(status.code.as_ref(), end - start)? {
                    uids.extend(found.uids);
                }
                start = end;
            }
            return Ok(uids);
        }
        if self.has_capability("LITERAL+") {
            return self.append_pipelined(mailbox, messages);
        }
        for message in messages {
            if let Some(found) = self.append(mailbox, message)? {
                uids.extend(found.uids);
            }
        }
        Ok(uids)
    }

    /// Appends each message with its own APPEND, all sent back to back with
    /// non-synchronising literals (LITERAL+, RFC 7888) and the answers matched by tag: one
    /// round trip for the lot, and a refused message fails alone. Returns the new UIDs of
    /// the messages that were stored, or the first error after all answers are read.
    pub fn append_pipelined(
        &mut self,
        mailbox: &MailboxName,
        messages: &[AppendMessage<'_>],
    ) -> Result<Vec<Uid>> {
        if !self.has_capability("LITERAL+") {
            return Err(Error::Unsupported { capability: "LITERAL+" });
        }
        let mut tags = Vec::new();
        for message in messages {
            tags.push(
                self.conn
                    .send(&Command::Append { mailbox, messages: std::slice::from_ref(message) })?,
            );
        }
        let mut results: Vec<Option<Result<Option<AppendUid>>>> =
            (0..tags.len()).map(|_| None).collect();
        let mut open = tags.len();
        while open > 0 {
            match self.conn.next_response()? {
                Response::Tagged { tag, status } => {
                    let Some(index) = tags.iter().position(|t| *t == tag) else {
                        return Err(Error::Protocol(format!("answer for unknown tag {tag:?}")));
                    };
                    results[index] =
                        Some(check("APPEND", status).and_then(|s| append_uid(s.code.as_ref(), 1)));
                    open -= 1;
                }
                Response::Continuation { .. } => {
                    return Err(Error::Protocol("unexpected continuation during APPEND".into()));
                }
                Response::Untagged(_) => {}
            }
        }
        let mut uids = Vec::new();
        for result in results.into_iter().flatten() {
            if let Some(found) = result? {
                uids.extend(found.uids);
            }
        }
        Ok(uids)
    }

    /// `UID STORE set [(UNCHANGEDSINCE n)] ±FLAGS.SILENT (flags)`. Returns the UIDs the
    /// server did not change because they were modified since (`[MODIFIED]`, RFC 7162).
    pub fn uid_store(
        &mut self,
        set: &SequenceSet,
        action: StoreAction,
        flags: &[Flag],
        unchanged_since: Option<u64>,
    ) -> Result<Option<SequenceSet>> {
        if unchanged_since.is_some() && !self.has_capability("CONDSTORE") {
            return Err(Error::Unsupported { capability: "CONDSTORE" });
        }
        let mut modified: Option<SequenceSet> = None;
        for part in
            set.split(usize::MAX, self.conn.options.max_command_len.saturating_sub(200).max(64))
        {
            let command =
                Command::UidStore { set: &part, action, silent: true, flags, unchanged_since };
            let status = self.conn.simple(&command)?;
            if let Some(Code::Modified(uids)) = status.code {
                // Each part answers for its own UIDs: all of them are kept.
                modified = Some(match modified {
                    None => uids,
                    Some(earlier) => {
                        let mut ranges = earlier.ranges().to_vec();
                        ranges.extend_from_slice(uids.ranges());
                        SequenceSet::from_ranges(ranges)
                    }
                });
            }
        }
        Ok(modified)
    }

    /// Appends the `len` bytes `body` yields (exactly that many: the literal announces
    /// the length before the bytes follow) to `mailbox`, with `flags` (`\Recent` is left
    /// out) and `internal_date`, without waiting for the answer. Returns the message's
    /// number for its [`AppendOutcome`], which [`finish_appends`](Self::finish_appends)
    /// hands out.
    ///
    /// The message streams from `body` to the socket, at most 64 KiB of it in memory.
    /// Its literal is non-synchronising under `LITERAL+` (and `LITERAL-` up to 4096
    /// bytes), so APPENDs follow each other without a round trip; otherwise it waits for
    /// the server's `+`, and a command the server refuses before that (no such mailbox)
    /// reads nothing from `body`. A message over `APPENDLIMIT` is not sent
    /// ([`Error::TooBig`] in its outcome). At most [`MAX_APPENDS_IN_FLIGHT`](crate::MAX_APPENDS_IN_FLIGHT)
    /// stay unanswered. Any other command first reads the answers in flight (their
    /// outcomes wait for `finish_appends`).
    ///
    /// A refused message fails alone (its outcome), which is why MULTIAPPEND, all or
    /// nothing and with no fewer round trips once literals stream, is not used here. An
    /// error returned here concerns the connection (lost, or `body` failed:
    /// [`Error::AppendSource`]), which is then unusable.
    pub fn append_streamed(
        &mut self,
        mailbox: &MailboxName,
        flags: &[Flag],
        internal_date: Option<&chrono::DateTime<chrono::FixedOffset>>,
        len: u64,
        body: &mut dyn io::Read,
    ) -> Result<u64> {
        append::append(&mut self.conn, mailbox, flags, internal_date, len, body)
    }

    /// Appends `messages` (held in memory) to `mailbox` with one MULTIAPPEND (RFC 3502)
    /// whose literals are non-synchronising, sent without waiting like
    /// [`append_streamed`](Self::append_streamed); returns the number of the first message,
    /// the others numbered after it in order. Their outcomes come from
    /// [`collect_appends`](Self::collect_appends) as one per message.
    ///
    /// The server stores a batch in one transaction, all or nothing: Dovecot spends about
    /// a tenth of the CPU per message that separate APPENDs cost it (one index and
    /// uidlist update for the batch). When it refuses the batch, every outcome says so
    /// ([`AppendOutcome::batch_refused`]): nothing was stored, and the caller sends each
    /// again alone to learn which one the server refuses. Without MULTIAPPEND and
    /// LITERAL+, or with a message over APPENDLIMIT, each message goes as its own
    /// streamed APPEND instead.
    pub fn append_batch(
        &mut self,
        mailbox: &MailboxName,
        messages: &[AppendMessage<'_>],
    ) -> Result<u64> {
        append::append_batch(&mut self.conn, mailbox, messages)
    }

    /// True when [`append_batch`](Self::append_batch) sends one MULTIAPPEND (the server
    /// offers MULTIAPPEND and LITERAL+).
    pub fn batches_appends(&self) -> bool {
        self.has_capability("MULTIAPPEND") && self.has_capability("LITERAL+")
    }

    /// Streamed APPENDs sent and not answered yet.
    pub fn appends_in_flight(&self) -> usize {
        self.conn.appends.in_flight()
    }

    /// Waits for the answers of every streamed APPEND and hands out the outcomes not
    /// taken before, in the order the messages were given.
    pub fn finish_appends(&mut self) -> Result<Vec<AppendOutcome>> {
        append::finish(&mut self.conn)
    }

    /// Like [`finish_appends`](Self::finish_appends) but waits only until at most
    /// `keep_in_flight` streamed APPENDs are unanswered, and hands out the outcomes heard
    /// so far: the APPENDs left in flight keep the server busy meanwhile (a caller that
    /// records each outcome need not let the server idle while it does).
    pub fn collect_appends(&mut self, keep_in_flight: usize) -> Result<Vec<AppendOutcome>> {
        append::collect(&mut self.conn, keep_in_flight)
    }

    /// The most bytes one message may have (`APPENDLIMIT=n`, RFC 7889), when announced.
    pub fn append_limit(&self) -> Option<u64> {
        self.conn.capabilities.append_limit()
    }

    /// Removes exactly the messages `set` names from the selected mailbox: marks them
    /// `\Deleted`, then `UID EXPUNGE` (UIDPLUS, IMAP4rev2). Without UIDPLUS, a plain
    /// `EXPUNGE` would also remove every message someone else marked `\Deleted`, so it is
    /// sent only when searches before and after marking ours find no such message;
    /// otherwise ours are left (or made again) unmarked and [`Expunged::Withheld`] says
    /// which others are in the way. (A client
    /// marking a message `\Deleted` between that search and the EXPUNGE, milliseconds, is
    /// the one case this cannot exclude without UIDPLUS.)
    pub fn expunge_uids(&mut self, set: &SequenceSet) -> Result<Expunged> {
        if self.has_capability("UIDPLUS") || self.has_capability("IMAP4rev2") {
            self.uid_store(set, StoreAction::Add, &[Flag::Deleted], None)?;
            self.uid_expunge(set)?;
            return Ok(Expunged::Done);
        }
        // Without UID EXPUNGE, EXPUNGE removes every \Deleted message: only when no other
        // message is marked, before and after ours are (a client may mark one meanwhile;
        // ours are unmarked again then).
        let others = |marked: &[Uid]| -> Vec<Uid> {
            marked.iter().copied().filter(|uid| !set.contains(uid.get())).collect()
        };
        let before = self.uid_search(&[SearchKey::Deleted])?;
        let earlier = others(&before);
        if !earlier.is_empty() {
            return Ok(Expunged::Withheld { others: SequenceSet::from_uids(earlier) });
        }
        self.uid_store(set, StoreAction::Add, &[Flag::Deleted], None)?;
        let after = self.uid_search(&[SearchKey::Deleted])?;
        let meanwhile = others(&after);
        if !meanwhile.is_empty() {
            let ours: Vec<Uid> = after
                .iter()
                .copied()
                .filter(|uid| set.contains(uid.get()) && !before.contains(uid))
                .collect();
            if !ours.is_empty() {
                let ours = SequenceSet::from_uids(ours);
                self.uid_store(&ours, StoreAction::Remove, &[Flag::Deleted], None)?;
            }
            return Ok(Expunged::Withheld { others: SequenceSet::from_uids(meanwhile) });
        }
        self.expunge()?;
        Ok(Expunged::Done)
    }

    /// `UID EXPUNGE set` (UIDPLUS): removes only these `\Deleted` messages.
    pub fn uid_expunge(&mut self, set: &SequenceSet) -> Result<()> {
        if !self.has_capability("UIDPLUS") && !self.has_capability("IMAP4rev2") {
            return Err(Error::Unsupported { capability: "UIDPLUS" });
        }
        for part in
            set.split(usize::MAX, self.conn.options.max_command_len.saturating_sub(64).max(64))
        {
            self.conn.simple(&Command::UidExpunge(&part))?;
        }
        Ok(())
    }

    /// `UID COPY set mailbox`: copies messages of the selected mailbox (on Gmail a copy to
    /// a label's folder adds the label to the one message). Returns the server's
    /// `COPYUID` (UIDPLUS): the destination's UIDVALIDITY and, per source UID, the new
    /// UID; `None` when the server did not say.
    pub fn uid_copy(
        &mut self,
        set: &SequenceSet,
        mailbox: &MailboxName,
    ) -> Result<Option<CopyUids>> {
        let status = self.conn.simple(&Command::UidCopy { set, mailbox })?;
        let Some(Code::CopyUid { uid_validity, source, destination }) = status.code else {
            return Ok(None);
        };
        let (Some(from), Some(to)) = (source.to_uids(), destination.to_uids()) else {
            return Ok(None);
        };
        Ok(Some(CopyUids { uid_validity, pairs: from.into_iter().zip(to).collect() }))
    }

    /// `EXPUNGE`: removes every `\Deleted` message of the selected mailbox.
    pub fn expunge(&mut self) -> Result<()> {
        self.conn.simple(&Command::Expunge).map(drop)
    }

    /// `CLOSE`: expunges silently and unselects.
    pub fn close(&mut self) -> Result<()> {
        self.conn.simple(&Command::Close)?;
        self.selected = None;
        Ok(())
    }

    /// `UNSELECT` (RFC 3691): unselects without expunging.
    pub fn unselect(&mut self) -> Result<()> {
        if !self.has_capability("UNSELECT") && !self.has_capability("IMAP4rev2") {
            return Err(Error::Unsupported { capability: "UNSELECT" });
        }
        self.conn.simple(&Command::Unselect)?;
        self.selected = None;
        Ok(())
    }

    /// `CREATE mailbox`.
    pub fn create(&mut self, mailbox: &MailboxName) -> Result<()> {
        self.conn.simple(&Command::Create { mailbox, special_use: &[] }).map(drop)
    }

    /// `CREATE mailbox (USE (attrs))` (RFC 6154 CREATE-SPECIAL-USE).
    pub fn create_special_use(
        &mut self,
        mailbox: &MailboxName,
        special_use: &[ListAttribute],
    ) -> Result<()> {
        if !self.has_capability("CREATE-SPECIAL-USE") {
            return Err(Error::Unsupported { capability: "CREATE-SPECIAL-USE" });
        }
        self.conn.simple(&Command::Create { mailbox, special_use }).map(drop)
    }

    /// `DELETE mailbox`.
    pub fn delete(&mut self, mailbox: &MailboxName) -> Result<()> {
        self.conn.simple(&Command::Delete(mailbox)).map(drop)
    }

    /// `RENAME from to`.
    pub fn rename(&mut self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        self.conn.simple(&Command::Rename { from, to }).map(drop)
    }

    /// `SUBSCRIBE mailbox`.
    pub fn subscribe(&mut self, mailbox: &MailboxName) -> Result<()> {
        self.conn.simple(&Command::Subscribe(mailbox)).map(drop)
    }

    /// `UNSUBSCRIBE mailbox`.
    pub fn unsubscribe(&mut self, mailbox: &MailboxName) -> Result<()> {
        self.conn.simple(&Command::Unsubscribe(mailbox)).map(drop)
    }

    /// `LOGOUT` and close the connection.
    pub fn logout(mut self) -> Result<()> {
        logout(&mut self.conn)
    }
}

/// The `[APPENDUID]` of an APPEND of `expected` messages. A set larger than that is a
/// server lie (and `1:4294967295` would cost 16 GiB to expand): refused.
fn append_uid(code: Option<&Code>, expected: usize) -> Result<Option<AppendUid>> {
    let Some(Code::AppendUid { uid_validity, uids }) = code else { return Ok(None) };
    if uids.len().is_none_or(|n| n > expected as u64) {
        return Err(Error::Protocol(format!("APPENDUID {uids} for {expected} message(s)")));
    }
    Ok(Some(AppendUid { uid_validity: *uid_validity, uids: uids.to_uids().unwrap_or_default() }))
}

/// Sends EXAMINE `mailbox` and `UID FETCH 1:* (items)` behind it, reading nothing: the
/// tags (or the error that stopped them) wait in [`Conn::unread_examine`].
fn send_examine_then_list(conn: &mut Conn, mailbox: &MailboxName, items: &[FetchItem]) {
    let sent = mailbox::select_send(conn, mailbox, true, &SelectOptions::default()).and_then(
        |examine_tag| {
            let all = SequenceSet::all();
            let command =
                Command::UidFetch { set: &all, items, changed_since: None, vanished: false };
            match conn.send(&command) {
                Ok(fetch_tag) => Ok((examine_tag, fetch_tag)),
                Err(error) => {
                    // The EXAMINE's answer would come unasked for, maybe among a fetch's
                    // answers still due: the connection is out of step.
                    conn.mark_broken();
                    Err(error)
                }
            }
        },
    );
    conn.unread_examine = Some(UnreadExamine { mailbox: mailbox.clone(), sent });
}

pub(crate) fn logout(conn: &mut Conn) -> Result<()> {
    let result = match conn.simple(&Command::Logout) {
        // The server may close right after its BYE, before or after the tagged OK.
        Ok(_) | Err(Error::Bye { .. } | Error::Net(mailnet::Error::Closed { .. })) => Ok(()),
        Err(other) => Err(other),
    };
    conn.stream.shutdown();
    result
}

/// [`MetaHandler`] plus the `VANISHED` answers of a `CHANGEDSINCE … VANISHED` fetch.
struct ChangedHandler<'a> {
    meta: MetaHandler<'a>,
    vanished: &'a mut dyn FnMut(&SequenceSet) -> io::Result<()>,
}

impl FetchHandler for ChangedHandler<'_> {
    fn body(&mut self, start: &crate::proto::BodyStart, body: &mut dyn io::Read) -> io::Result<()> {
        self.meta.body(start, body)
    }

    fn fetch(&mut self, fetch: crate::proto::Fetch) -> io::Result<()> {
        self.meta.fetch(fetch)
    }

    fn vanished(&mut self, uids: &SequenceSet) -> io::Result<()> {
        (self.vanished)(uids)
    }

    fn exists(&mut self, count: u32) -> io::Result<()> {
        self.meta.exists(count)
    }
}
