//! The push role: we are the master of a `doveadm backup`-like conversation, the exporter,
//! and the remote `dsync-server` imports what we send (its handshake says `backup_recv`:
//! the flags are from the slave's point of view). Dovecot's importer makes its side what
//! we describe: it creates, renames and deletes mailboxes after our tree, saves the mails
//! it lacks (asking for their bodies), reverts flags and expunges what we do not list.
//!
//! The session only carries what its caller decided to describe. Per mailbox the order is
//! fixed (transcripts T4, T7):
//!
//! ```text
//! we: B (our status)             remote: B (its status)
//! we: A… "."  C… "."             remote: R… "."   (after our whole C list)
//! we: M + body… "."
//! we: S                          remote: S
//! ```
//! so [`PushSession::offer`] sends our status and returns the remote's, then
//! [`PushSession::describe`] sends attributes and mail list and returns the remote's
//! requests, [`PushSession::send_mail`] answers them one by one, [`PushSession::close`]
//! exchanges states. A caller that finds the remote's status unsafe to go on with calls
//! nothing more and drops the session: the remote has then imported nothing of that
//! mailbox.

use std::io::Read;
use std::time::Duration;

use crate::command::RemoteCommand;
use crate::connection::{Connection, Incoming};
use crate::error::ClientError;
use crate::proto::{
    Attribute, DotEncoder, Encoder, Finish, Handshake, Mail, MailChange, MailRequest, Mailbox,
    MailboxDeletes, MailboxState, SyncType, TreeNode,
};

/// Where a session is between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between mailboxes.
    Idle,
    /// After [`PushSession::offer`]: our attributes and mail list are next.
    Offered,
    /// After [`PushSession::describe`]: mails are next.
    Described,
}

/// A conversation in the push role.
#[derive(Debug)]
pub struct PushSession {
    connection: Connection,
    encoder: Encoder,
    remote_hostname: String,
    tree: Vec<TreeNode>,
    deletes: MailboxDeletes,
    phase: Phase,
}

impl PushSession {
    /// Starts `command` and does the handshake: our version, schemas and settings (a full
    /// sync, mails only on request, the remote a backup *receiver*); the remote's version,
    /// schemas and handshake; then our `tree` (parents before children) and `deletes`, and
    /// the remote's tree and deletion log. After this the remote has synced its mailbox
    /// tree to ours: created, renamed and deleted its mailboxes.
    pub fn start(
        command: &RemoteCommand,
        timeout: Duration,
        tree: &[TreeNode],
        deletes: &MailboxDeletes,
    ) -> Result<PushSession, ClientError> {
        let mut connection = Connection::spawn(command, timeout)?;
        let encoder = Encoder::new();
        let handshake = Handshake {
            hostname: crate::pull::hostname(),
            sync_type: Some(SyncType::Full),
            send_mail_requests: true,
            // From the slave's point of view: it receives (trap 1 of the notes: with
            // backup_send it would export and import nothing).
            backup_recv: true,
            hashed_headers: Some(vec!["Date".into(), "Message-ID".into()]),
            alt_char: Some("_".into()),
            ..Handshake::default()
        };
        {
            let out = connection.buffer();
            encoder.start(out);
            encoder.item(&handshake, out);
        }
        let remote = connection.remote_handshake()?;
        {
            let out = connection.buffer();
            for node in tree {
                encoder.item(node, out);
            }
            Encoder::end_of_list(out);
            encoder.item(deletes, out);
        }
        let mut remote_tree = Vec::new();
        while let Some(node) = connection.list_item::<TreeNode>("a tree node (N)")? {
            remote_tree.push(node);
        }
        let remote_deletes = connection.item("the remote's deletion log (D)")?;
        Ok(PushSession {
            connection,
            encoder,
            remote_hostname: remote.hostname,
            tree: remote_tree,
            deletes: remote_deletes,
            phase: Phase::Idle,
        })
    }

    /// The remote's hostname, from its handshake.
    pub fn remote_hostname(&self) -> &str {
        &self.remote_hostname
    }

    /// The remote's mailbox tree as it was before it synced to ours.
    pub fn remote_tree(&self) -> &[TreeNode] {
        &self.tree
    }

    /// The remote's deletion log.
    pub fn remote_deletes(&self) -> &MailboxDeletes {
        &self.deletes
    }

    /// Starts one of our mailboxes (they go in our tree's order): sends `ours`, our status
    /// of it, and returns the remote's. A remote status with `mailbox_lost` or
    /// `mailbox_ignore` ends the mailbox there: nothing more is sent for it.
    pub fn offer(&mut self, ours: &Mailbox) -> Result<Mailbox, ClientError> {
        self.in_phase(Phase::Idle, "an offer between mailboxes")?;
        self.encoder.item(ours, self.connection.buffer());
        let remote: Mailbox = self.connection.item("the remote's mailbox status (B)")?;
        if !(remote.mailbox_lost || remote.mailbox_ignore) {
            self.phase = Phase::Offered;
        }
        Ok(remote)
    }

    /// Sends the open mailbox's attributes (each with its value; a value with `stream`
    /// set travels as a stream) and its whole mail list, and returns the mails the remote
    /// wants (by GUID and UID, as it asks).
    pub fn describe(
        &mut self,
        attributes: &[(Attribute, Option<Vec<u8>>)],
        changes: &[MailChange],
    ) -> Result<Vec<MailRequest>, ClientError> {
        self.in_phase(Phase::Offered, "a mail list after an offer")?;
        {
            let out = self.connection.buffer();
            for (attribute, value) in attributes {
                self.encoder.item(attribute, out);
                if attribute.stream {
                    let mut stream = DotEncoder::new();
                    stream.encode(value.as_deref().unwrap_or_default(), out);
                    stream.finish(out);
                }
            }
            Encoder::end_of_list(out);
        }
        for change in changes {
            self.encoder.item(change, self.connection.buffer());
            self.connection.flush_if_large()?;
        }
        Encoder::end_of_list(self.connection.buffer());
        let mut requests = Vec::new();
        while let Some(request) = self.connection.list_item::<MailRequest>("a mail request (R)")? {
            requests.push(request);
        }
        self.phase = Phase::Described;
        Ok(requests)
    }

    /// Sends one requested mail: its item, then `body` as a stream (sent as read: Dovecot
    /// stores it with its own line ends).
    pub fn send_mail(&mut self, mail: &Mail, body: &mut dyn Read) -> Result<(), ClientError> {
        self.in_phase(Phase::Described, "mails after the mail list")?;
        let mail = Mail { stream: true, ..mail.clone() };
        self.encoder.item(&mail, self.connection.buffer());
        let mut stream = DotEncoder::new();
        let mut chunk = vec![0; 64 << 10];
        loop {
            let n = match body.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(ClientError::Handler(error.into())),
            };
            stream.encode(&chunk[..n], self.connection.buffer());
            self.connection.flush_if_large()?;
        }
        stream.finish(self.connection.buffer());
        self.connection.flush_if_large()
    }

    /// Ends the open mailbox: the end of our mails, our new state, and the remote's.
    pub fn close(&mut self, ours: &MailboxState) -> Result<MailboxState, ClientError> {
        if self.phase == Phase::Offered {
            self.describe(&[], &[])?;
        }
        self.in_phase(Phase::Described, "a close of an open mailbox")?;
        Encoder::end_of_list(self.connection.buffer());
        self.encoder.item(ours, self.connection.buffer());
        let state = self.connection.item("the remote's mailbox state (S)")?;
        self.phase = Phase::Idle;
        Ok(state)
    }

    /// Ends the conversation: the end of our mailbox list, then the remote's `F` (its
    /// failure, if any, with Dovecot's reason) and `X`, then its exit status.
    pub fn finish(mut self) -> Result<(), ClientError> {
        self.in_phase(Phase::Idle, "the end between mailboxes")?;
        Encoder::end_of_list(self.connection.buffer());
        let finish: Finish = self.connection.item("the remote's finish (F)")?;
        if finish.error.is_some() || finish.mail_error.is_some_and(|e| e != 0) {
            return Err(ClientError::Remote {
                message: finish.error.unwrap_or_else(|| "(no reason given)".into()),
                mail_error: finish.mail_error,
                require_full_resync: finish.require_full_resync,
            });
        }
        self.connection.expect(|e| matches!(e, Incoming::Done), "the remote's goodbye (X)")?;
        self.connection.finish()
    }

    fn in_phase(&self, wanted: Phase, expected: &'static str) -> Result<(), ClientError> {
        if self.phase == wanted {
            Ok(())
        } else {
            Err(ClientError::Unexpected {
                got: format!("a call in phase {:?}", self.phase),
                expected,
            })
        }
    }
}
