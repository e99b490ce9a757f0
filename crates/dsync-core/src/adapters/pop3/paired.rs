//! [`ImapPop3Storage`]: IMAP for everything, POP3 only to learn INBOX's UIDLs and order.

use std::collections::BTreeSet;
use std::io::{self, Read};

use pop3c::{ConnectOptions, Credentials, MessageNumber, Session};

use super::{convert_error, login};
use crate::adapters::imap::ImapStorage;
use crate::error::{ErrorKind, StorageError};
use crate::model::{MailboxContents, MailboxInfo, MailboxName, MailboxStatus, Uid};
use crate::pop3_migration::{
    ImapMessage, MatchOptions, MatchOutcome, MatchedBy, Matcher, MissingPolicy, Pop3Message,
};
use crate::storage::{Capabilities, MessageSink, Skip, Storage};

/// How much of a header (or of a whole message, when a server cut its header short) is
/// hashed: no real header is this long, and it bounds memory against a hostile server.
const HEADER_LIMIT: u64 = 1 << 20;

/// Dovecot's `pop3_migration_*` settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pop3MigrationSettings {
    /// How messages are matched (`pop3_migration_skip_size_check`).
    pub match_options: MatchOptions,
    /// What to tolerate (`pop3_migration_ignore_missing_uidls`,
    /// `pop3_migration_ignore_extra_uidls`).
    pub missing: MissingPolicy,
}

/// How INBOX's last matching went, for progress output and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchSummary {
    /// Messages in the IMAP INBOX.
    pub imap_messages: usize,
    /// Messages POP3 listed.
    pub pop3_messages: usize,
    /// Pairs found by position and size (no header fetched).
    pub by_order_and_size: usize,
    /// Pairs found by header hash.
    pub by_header: usize,
    /// IMAP messages without a POP3 identity (the destination gives them new UIDLs).
    pub unmatched_imap: usize,
    /// POP3 messages without an IMAP match (their UIDLs are lost; tolerated only by the
    /// settings).
    pub unmatched_pop3: usize,
    /// Headers fetched, over both protocols.
    pub headers_fetched: usize,
    /// Whole messages fetched because a server cut a header short.
    pub whole_messages_fetched: usize,
}

/// An IMAP account whose INBOX messages carry their POP3 UIDL and position, so a migration
/// keeps both what IMAP clients and what POP3 clients cached. Other mailboxes, flags,
/// UIDs and bodies all come from IMAP.
///
/// The POP3 session is opened only while INBOX is matched (after the IMAP listing, so the
/// POP3 server does not drop an idle session) and ends with `QUIT`, which deletes nothing.
#[derive(Debug)]
pub struct ImapPop3Storage {
    imap: ImapStorage,
    pop3_options: ConnectOptions,
    pop3_credentials: Credentials,
    settings: Pop3MigrationSettings,
    last_match: Option<MatchSummary>,
    warnings: Vec<String>,
}

impl ImapPop3Storage {
    /// Pairs a logged-in IMAP storage with the same account's POP3 server. Logs in to POP3
    /// once (and quits) so wrong POP3 credentials fail now, not after hours of copying.
    pub fn connect(
        imap: ImapStorage,
        pop3_options: ConnectOptions,
        pop3_credentials: Credentials,
        settings: Pop3MigrationSettings,
    ) -> Result<ImapPop3Storage, StorageError> {
        login(&pop3_options, &pop3_credentials)?.quit().map_err(|e| convert_error(e, "QUIT"))?;
        Ok(ImapPop3Storage {
            imap,
            pop3_options,
            pop3_credentials,
            settings,
            last_match: None,
            warnings: Vec::new(),
        })
    }

    /// How the last matching of INBOX went, if INBOX was read.
    pub fn last_match(&self) -> Option<&MatchSummary> {
        self.last_match.as_ref()
    }

    /// The IMAP side, e.g. to log out politely.
    pub fn into_imap(self) -> ImapStorage {
        self.imap
    }

    /// Matches INBOX's IMAP messages with the POP3 view and records each one's UIDL and
    /// position in `contents`.
    fn match_inbox(&mut self, contents: &mut MailboxContents) -> Result<(), StorageError> {
        let mut session = login(&self.pop3_options, &self.pop3_credentials)?;
        let listing = session.messages().map_err(|e| convert_error(e, "LIST/UIDL"))?;
        let pop3_view: Vec<Pop3Message> = listing
            .into_iter()
            .map(|m| Pop3Message {
                number: m.number.get(),
                size: m.size,
                uidl: m.uidl.into_string(),
            })
            .collect();
        let mut imap_view: Vec<ImapMessage> = contents
            .messages
            .iter()
            .map(|m| ImapMessage {
                uid: m.uid.get(),
                size: m.virtual_size.unwrap_or(0),
                known_uidl: None,
            })
            .collect();
        imap_view.sort_by_key(|m| m.uid);
        let mut summary = MatchSummary {
            imap_messages: imap_view.len(),
            pop3_messages: pop3_view.len(),
            ..MatchSummary::default()
        };
        let mut matcher = Matcher::new(imap_view, pop3_view, self.settings.match_options);
        let outcome = self.hash_headers(&mut session, &mut matcher, &mut summary);
        // QUIT even when hashing failed: it releases the maildrop lock and deletes nothing.
        let quit = session.quit().map_err(|e| convert_error(e, "QUIT"));
        outcome?;
        quit?;
        let outcome = matcher.finish();
        self.apply(&outcome, contents, &mut summary)?;
        self.last_match = Some(summary);
        Ok(())
    }

    /// Fetches the headers the matcher asks for: `BODY.PEEK[HEADER]` and `TOP n 0`, then
    /// whole messages for headers a server cut short (Dovecot does the same).
    fn hash_headers(
        &mut self,
        session: &mut Session,
        matcher: &mut Matcher,
        summary: &mut MatchSummary,
    ) -> Result<(), StorageError> {
        let needed = matcher.headers_needed();
        if needed.is_empty() {
            return Ok(());
        }
        let inbox = MailboxName::inbox();
        let uids: Vec<Uid> = needed.imap_uids.iter().filter_map(|&u| Uid::new(u)).collect();
        let mut imap_refetch = Vec::new();
        self.imap.fetch_section(&inbox, &uids, "HEADER", HEADER_LIMIT, &mut |uid, header| {
            summary.headers_fetched += 1;
            if matcher.add_imap_header(uid.get(), header).is_some_and(|h| !h.has_end_of_header) {
                imap_refetch.push(uid);
            }
        })?;
        summary.whole_messages_fetched += imap_refetch.len();
        self.imap.fetch_section(&inbox, &imap_refetch, "", HEADER_LIMIT, &mut |uid, whole| {
            matcher.add_imap_header(uid.get(), whole);
        })?;

        let numbers: Vec<MessageNumber> =
            needed.pop3_numbers.iter().filter_map(|&n| MessageNumber::new(n)).collect();
        let mut pop3_refetch = Vec::new();
        // Servers without TOP (CAPA says so) get RETR: the header is all that is hashed.
        let capabilities = session.capabilities();
        let has_top = capabilities.is_empty() || capabilities.has("TOP");
        let mut on_header = |number: MessageNumber, body: &mut dyn Read| -> io::Result<()> {
            let mut header = Vec::new();
            body.take(HEADER_LIMIT).read_to_end(&mut header)?;
            summary.headers_fetched += 1;
            let hash = matcher.add_pop3_header(number.get(), &header);
            if hash.is_some_and(|h| !h.has_end_of_header) && has_top {
                pop3_refetch.push(number);
            }
            Ok(())
        };
        let fetched = if has_top {
            session.top_many(&numbers, 0, &mut on_header)
        } else {
            session.retr_many(&numbers, &mut on_header)
        };
        tolerate_vanished(fetched)?;
        summary.whole_messages_fetched += pop3_refetch.len();
        let fetched =
            session.retr_many(&pop3_refetch, &mut |number: MessageNumber, body: &mut dyn Read| {
                let mut whole = Vec::new();
                body.take(HEADER_LIMIT).read_to_end(&mut whole)?;
                matcher.add_pop3_header(number.get(), &whole);
                Ok(())
            });
        tolerate_vanished(fetched)
    }

    /// Writes the outcome into `contents`, or fails as Dovecot does on POP3 messages that
    /// nothing matched (migrating now would lose their UIDLs).
    fn apply(
        &mut self,
        outcome: &MatchOutcome,
        contents: &mut MailboxContents,
        summary: &mut MatchSummary,
    ) -> Result<(), StorageError> {
        summary.unmatched_imap = outcome.unmatched_imap.len();
        summary.unmatched_pop3 = outcome.unmatched_pop3.len();
        for assignment in &outcome.assignments {
            match assignment.matched_by {
                MatchedBy::OrderAndSize => summary.by_order_and_size += 1,
                MatchedBy::HeaderHash => summary.by_header += 1,
                MatchedBy::KnownUidl => {}
            }
        }
        if let Err(unmatched) = outcome.check(self.settings.missing) {
            self.last_match = Some(*summary);
            let setting = if unmatched.all_imap_found {
                "pop3_migration_ignore_extra_uidls"
            } else {
                "pop3_migration_ignore_missing_uidls"
            };
            // Confined to INBOX (other mailboxes still migrate), and no retry helps until
            // the views agree or a setting tolerates it: data error, not doveadm's 75.
            return Err(StorageError::with_source(
                ErrorKind::InvalidData,
                format!("pop3-migration of INBOX; set {setting} to continue anyway"),
                unmatched,
            ));
        }
        if let Some(tolerated) = outcome.unmatched_error() {
            self.warnings.push(format!("pop3-migration: {tolerated}"));
        }
        for meta in &mut contents.messages {
            if let Some(assignment) = outcome.get(meta.uid.get()) {
                meta.pop3_uidl = Some(assignment.uidl.clone());
                meta.pop3_order = Some(assignment.order);
            }
        }
        Ok(())
    }
}

/// A POP3 message deleted by another session meanwhile is refused; the matcher takes a
/// message without header as gone from POP3, as Dovecot does.
fn tolerate_vanished(result: Result<(), pop3c::Error>) -> Result<(), StorageError> {
    match result {
        Ok(()) | Err(pop3c::Error::Refused { message: Some(_), .. }) => Ok(()),
        Err(pop3c::Error::Handler(error)) => {
            Err(StorageError::with_source(ErrorKind::Temporary, "POP3 header", error))
        }
        Err(error) => Err(convert_error(error, "TOP/RETR")),
    }
}

impl Storage for ImapPop3Storage {
    fn describe(&self) -> String {
        format!(
            "{} + pop3 {}:{}",
            self.imap.describe(),
            self.pop3_options.host,
            self.pop3_options.port
        )
    }

    fn capabilities(&self) -> Capabilities {
        self.imap.capabilities()
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        self.imap.mailboxes()
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        self.imap.subscriptions()
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        self.imap.status(mailbox)
    }

    /// Tolerated unmatched POP3 messages, and the IMAP side's warnings.
    fn take_warnings(&mut self) -> Vec<String> {
        let mut warnings = self.imap.take_warnings();
        warnings.append(&mut self.warnings);
        warnings
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        self.imap.take_skipped()
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        let mut contents = self.imap.contents(mailbox)?;
        if mailbox.is_inbox() {
            self.match_inbox(&mut contents)?;
        }
        Ok(contents)
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        self.imap.fetch(mailbox, uids, sink)
    }

    fn header_hashes(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<std::collections::BTreeMap<Uid, String>, StorageError> {
        self.imap.header_hashes(mailbox, uids)
    }
}
