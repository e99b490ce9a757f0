//! The pull role: we are the master of a `doveadm backup -R`-like conversation and the
//! remote `dsync-server` exports. We never import on the remote side and never change it.
//!
//! The session is a thin reader: it hands over what the remote sends and asks for the
//! mails its caller wants. It decides nothing; the caller (dsync-core's planner, through
//! an adapter) does. Per mailbox the protocol's order is fixed:
//!
//! ```text
//! we: B (our status)          remote: B, A… ".", C… "."
//! we: R… "."                  remote: M + body… "."
//! we: S                       remote: S
//! ```
//! so [`PullSession::open`] returns the remote's status, attributes and mail list, then
//! [`PullSession::fetch`] asks for bodies once, then [`PullSession::close`] ends the
//! mailbox. [`PullSession::finish`] ends the conversation.

use std::io::Read;
use std::time::Duration;

use crate::command::RemoteCommand;
use crate::connection::{Connection, Incoming};
use crate::error::ClientError;
use crate::proto::{
    Attribute, Encoder, Finish, Handshake, Item, Mail, MailChange, MailRequest, Mailbox,
    MailboxDeletes, MailboxState, SyncType, TreeNode,
};

/// What the remote exported for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxExport {
    /// The remote's status of the mailbox.
    pub mailbox: Mailbox,
    /// Its attributes, each with its value (inline or streamed).
    pub attributes: Vec<(Attribute, Option<Vec<u8>>)>,
    /// Its mails (`Cs` items on a full export) and changes.
    pub changes: Vec<MailChange>,
    /// The remote's status equals the one we sent ([`needs_sync`] is false): the remote
    /// exported nothing, `attributes` and `changes` are empty, and the mailbox is not
    /// open.
    pub unchanged: bool,
}

/// Whether a mailbox is synced in a `c` (changed) conversation, decided the same way on
/// both sides from the two `B` items (`dsync_boxes_need_sync`): any difference in
/// UIDVALIDITY, UIDNEXT, message count, HIGHESTMODSEQ, private HIGHESTMODSEQ or first
/// recent UID.
pub fn needs_sync(ours: &Mailbox, theirs: &Mailbox) -> bool {
    let status = |b: &Mailbox| {
        (
            b.uid_validity,
            b.uid_next,
            b.messages_count,
            b.highest_modseq,
            b.highest_pvt_modseq,
            b.first_recent_uid,
        )
    };
    status(ours) != status(theirs)
}

/// Where a session is between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between mailboxes.
    Idle,
    /// After [`PullSession::open`]: the remote waits for our requests.
    Opened,
    /// After [`PullSession::fetch`]: states are next.
    Fetched,
    /// After an [`PullSession::open`] that both sides skipped: nothing to fetch, no
    /// states to exchange.
    Skipped,
}

/// A conversation in the pull role.
#[derive(Debug)]
pub struct PullSession {
    connection: Connection,
    encoder: Encoder,
    remote_hostname: String,
    tree: Vec<TreeNode>,
    deletes: MailboxDeletes,
    phase: Phase,
    /// The remote's status of the open mailbox.
    open_box: Option<Mailbox>,
    /// The remote's status of a mailbox both sides skipped.
    skipped_box: Option<Mailbox>,
}

/// doveadm's default I/O timeout (`-T`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `sync_until_timestamp` of our handshake: 9999-12-31 23:59:59 UTC.
const RECEIVED_DATES_WANTED: i64 = 253_402_300_799;

/// Our hostname for the handshake (the remote logs it).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "dsync-rs".to_owned())
}

impl PullSession {
    /// Starts `command` and does the handshake: our version, schemas and settings (a full
    /// export, mails only on request, received dates in the mail list, the remote a backup
    /// *sender*), our empty tree; then
    /// the remote's version, schemas, handshake, mailbox tree and deletion log.
    pub fn start(command: &RemoteCommand) -> Result<PullSession, ClientError> {
        PullSession::start_with_timeout(command, DEFAULT_TIMEOUT)
    }

    /// [`PullSession::start`] with an I/O timeout other than doveadm's 600 s: a remote
    /// that sends nothing for that long ends the session with [`ClientError::Timeout`].
    pub fn start_with_timeout(
        command: &RemoteCommand,
        timeout: Duration,
    ) -> Result<PullSession, ClientError> {
        let mut connection = Connection::spawn(command, timeout)?;
        let encoder = Encoder::new();
        let handshake = Handshake {
            hostname: hostname(),
            // Changed: a mailbox whose status we send as the remote's own (what we saw
            // last time) is skipped by both sides, so an unchanged mailbox costs one `B`
            // each way and no mail list. Any other status gets a full export.
            sync_type: Some(SyncType::Changed),
            send_mail_requests: true,
            // From the slave's point of view: it sends.
            backup_send: true,
            // Any until-time makes Dovecot's exporter send each mail's received date in its
            // `C` item (DSYNC_MAILBOX_EXPORTER_FLAG_TIMESTAMPS); the filtering by it is the
            // importer's, ours, so this one (year 9999) filters nothing.
            sync_until_timestamp: Some(RECEIVED_DATES_WANTED),
            hashed_headers: Some(vec!["Date".into(), "Message-ID".into()]),
            alt_char: Some("_".into()),
            ..Handshake::default()
        };
        {
            let out = connection.buffer();
            encoder.start(out);
            encoder.item(&handshake, out);
            // Our tree is empty: in the pull role the remote keeps its own (it is the
            // backup sender, its tree sync preserves everything local).
            Encoder::end_of_list(out);
            encoder.item(&MailboxDeletes::default(), out);
        }
        let mut session = PullSession {
            connection,
            encoder,
            remote_hostname: String::new(),
            tree: Vec::new(),
            deletes: MailboxDeletes::default(),
            phase: Phase::Idle,
            open_box: None,
            skipped_box: None,
        };
        let remote = session.connection.remote_handshake()?;
        session.remote_hostname = remote.hostname;
        // dsync-brain.c: a master that syncs from state sends S items here; we don't.
        while let Some(node) = session.list_item::<TreeNode>("a tree node (N)")? {
            session.tree.push(node);
        }
        session.deletes = session.item("the deletion log (D)")?;
        Ok(session)
    }

    /// The remote's hostname, from its handshake.
    pub fn remote_hostname(&self) -> &str {
        &self.remote_hostname
    }

    /// The remote's mailbox tree, parents before children.
    pub fn tree(&self) -> &[TreeNode] {
        &self.tree
    }

    /// The remote's deletion log.
    pub fn deletes(&self) -> &MailboxDeletes {
        &self.deletes
    }

    /// Opens one of the remote's mailboxes: sends `ours` (our status of it: a fresh
    /// mailbox is `uid_next` 1, no messages) and reads the remote's status, attributes and
    /// mail list (all of it: the remote exports every mail of a mailbox it syncs). `None`
    /// when the remote no longer has the mailbox (`mailbox_lost`); an export marked
    /// `unchanged` when `ours` equals the remote's status (then nothing else is sent and
    /// the mailbox is not open).
    pub fn open(&mut self, ours: &Mailbox) -> Result<Option<MailboxExport>, ClientError> {
        self.end_mailbox()?;
        self.encoder.item(ours, self.connection.buffer());
        let mailbox: Mailbox = self.item("the remote's mailbox status (B)")?;
        if mailbox.mailbox_lost || mailbox.mailbox_ignore {
            return Ok(None);
        }
        if !needs_sync(ours, &mailbox) {
            // Nothing follows for this mailbox, not even its S.
            self.phase = Phase::Skipped;
            self.skipped_box = Some(mailbox.clone());
            return Ok(Some(MailboxExport {
                mailbox,
                attributes: Vec::new(),
                changes: Vec::new(),
                unchanged: true,
            }));
        }
        let mut attributes = Vec::new();
        while let Some(attribute) = self.list_item::<Attribute>("an attribute (A)")? {
            let value = if attribute.stream {
                let mut value = Vec::new();
                BodyReader {
                    connection: &mut self.connection,
                    done: false,
                    chunk: Vec::new(),
                    at: 0,
                }
                .read_to_end(&mut value)
                .map_err(Self::stream_error)?;
                Some(value)
            } else {
                attribute.value.clone()
            };
            attributes.push((attribute, value));
        }
        let mut changes = Vec::new();
        while let Some(change) = self.list_item::<MailChange>("a mail change (C)")? {
            changes.push(change);
        }
        self.phase = Phase::Opened;
        self.open_box = Some(mailbox.clone());
        Ok(Some(MailboxExport { mailbox, attributes, changes, unchanged: false }))
    }

    /// Asks for `requests` of the open mailbox (once per [`PullSession::open`]) and hands
    /// each mail that arrives, with its body, to `on_mail`. Mails the remote no longer has
    /// do not arrive. The body reader yields the body as the remote stores it (LF line
    /// ends from Maildir and dbox); reading it to the end is not required.
    pub fn fetch(
        &mut self,
        requests: &[MailRequest],
        on_mail: &mut dyn FnMut(&Mail, &mut dyn Read) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        if self.phase == Phase::Skipped {
            // An unchanged mailbox: the remote is not in it; nothing can arrive.
            return Ok(());
        }
        if self.phase != Phase::Opened {
            return Err(ClientError::Unexpected {
                got: "a second fetch".into(),
                expected: "one fetch per opened mailbox",
            });
        }
        {
            let out = self.connection.buffer();
            for request in requests {
                self.encoder.item(request, out);
            }
            Encoder::end_of_list(out);
        }
        self.phase = Phase::Fetched;
        while let Some(mail) = self.list_item::<Mail>("a mail (M)")? {
            let mut body = BodyReader {
                connection: &mut self.connection,
                done: !mail.stream,
                chunk: Vec::new(),
                at: 0,
            };
            on_mail(&mail, &mut body)?;
            // Skip what the handler left unread.
            std::io::copy(&mut body, &mut std::io::sink()).map_err(Self::stream_error)?;
        }
        Ok(())
    }

    /// Ends the open mailbox: sends our new state and returns the remote's.
    pub fn close(&mut self, ours: &MailboxState) -> Result<MailboxState, ClientError> {
        if self.phase == Phase::Skipped {
            // Nothing was exchanged: the remote's state is what both sides had.
            self.phase = Phase::Idle;
            let remote = self.skipped_box.take().unwrap_or_default();
            return Ok(MailboxState {
                mailbox_guid: remote.mailbox_guid,
                last_uidvalidity: remote.uid_validity,
                last_common_uid: remote.uid_next.saturating_sub(1),
                last_common_modseq: remote.highest_modseq,
                last_common_pvt_modseq: remote.highest_pvt_modseq,
                last_messages_count: Some(remote.messages_count),
                changes_during_sync: false,
            });
        }
        if self.phase == Phase::Idle {
            return Err(ClientError::Unexpected {
                got: "a close".into(),
                expected: "an open mailbox",
            });
        }
        if self.phase == Phase::Opened {
            self.fetch(&[], &mut |_, _| Ok(()))?;
        }
        self.encoder.item(ours, self.connection.buffer());
        let state = self.item("the remote's mailbox state (S)")?;
        self.phase = Phase::Idle;
        self.open_box = None;
        Ok(state)
    }

    /// Ends the conversation: the end of our mailbox list, then the remote's `F` and `X`,
    /// then its exit status.
    pub fn finish(mut self) -> Result<(), ClientError> {
        self.end_mailbox()?;
        Encoder::end_of_list(self.connection.buffer());
        let finish: Finish = self.item("the remote's finish (F)")?;
        if finish.error.is_some() || finish.mail_error.is_some_and(|e| e != 0) {
            return Err(ClientError::Remote {
                message: finish.error.unwrap_or_else(|| "(no reason given)".into()),
                mail_error: finish.mail_error,
                require_full_resync: finish.require_full_resync,
            });
        }
        self.expect(|e| matches!(e, Incoming::Done), "the remote's goodbye (X)")?;
        self.connection.finish()
    }

    /// Closes a mailbox left open, with a state that claims nothing in common.
    fn end_mailbox(&mut self) -> Result<(), ClientError> {
        if self.phase == Phase::Skipped {
            self.phase = Phase::Idle;
            self.skipped_box = None;
        }
        let Some(remote) = self.open_box.clone() else { return Ok(()) };
        let state = MailboxState {
            mailbox_guid: remote.mailbox_guid,
            last_uidvalidity: remote.uid_validity,
            ..MailboxState::default()
        };
        self.close(&state).map(|_| ())
    }

    fn stream_error(source: std::io::Error) -> ClientError {
        match source
            .into_inner()
            .map(<dyn std::error::Error + Send + Sync>::downcast::<ClientError>)
        {
            Some(Ok(error)) => *error,
            Some(Err(other)) => ClientError::Handler(other),
            None => ClientError::Unexpected { got: "a broken stream".into(), expected: "a body" },
        }
    }

    fn expect(
        &mut self,
        wanted: impl Fn(&Incoming) -> bool,
        expected: &'static str,
    ) -> Result<(), ClientError> {
        self.connection.expect(wanted, expected)
    }

    /// The next event as one item of kind `I`.
    fn item<I: Item>(&mut self, expected: &'static str) -> Result<I, ClientError> {
        self.connection.item(expected)
    }

    /// The next item of a list of `I`, or `None` at its end.
    fn list_item<I: Item>(&mut self, expected: &'static str) -> Result<Option<I>, ClientError> {
        self.connection.list_item(expected)
    }
}

/// A stream that follows an item, read from the connection.
struct BodyReader<'a> {
    connection: &'a mut Connection,
    done: bool,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.connection.next() {
                Ok(Incoming::StreamData(data)) => {
                    self.chunk = data;
                    self.at = 0;
                }
                Ok(Incoming::StreamEnd) => self.done = true,
                Ok(other) => {
                    self.done = true;
                    let error =
                        ClientError::Unexpected { got: other.describe(), expected: "stream data" };
                    return Err(std::io::Error::other(error));
                }
                Err(error) => {
                    self.done = true;
                    return Err(std::io::Error::other(error));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
