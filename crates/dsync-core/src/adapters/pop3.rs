//! POP3 accounts (via `pop3c`) as sync sources.
//!
//! * [`Pop3Storage`]: a POP3 account alone. POP3 shows one mailbox (INBOX), no flags and
//!   no UIDs: message numbers are positions that change when earlier mail goes, so the
//!   storage declares [`Capabilities::unstable_uids`] and the engine identifies messages by
//!   their UIDL. Each copy keeps its UIDL (Maildir `P`) and new copies get ascending UIDs
//!   in POP3 order, so the destination's POP3 server lists the same UIDLs in the same
//!   order. The received date
//!   is read from the message's first `Received:` header (else `Date:`), as it streams.
//! * [`ImapPop3Storage`] (features `imap` and `pop3`): an IMAP account whose INBOX
//!   messages also learn their POP3 UIDL and position, by Dovecot's pop3-migration
//!   matching ([`crate::pop3_migration`]) against the same account's POP3 view. Everything
//!   IMAP keeps (UIDs, UIDVALIDITY, flags, keywords, INTERNALDATE, folders) is kept too.
//!
//! Neither deletes anything on the server: no `DELE`, and the POP3 session ends with
//! `QUIT` or is dropped without it.

use std::collections::BTreeSet;
use std::io::{self, Read};

use pop3c::{Client, ConnectOptions, Credentials, MessageNumber, Session};

use super::HeaderTap;
use super::unwrap_sink_error;
use crate::derived_guid;
use crate::error::{ErrorKind, StorageError};
use crate::message_date::received_date;
use crate::model::{
    Flags, MailboxContents, MailboxInfo, MailboxName, MailboxStatus, MessageMeta, Uid, UidValidity,
};
use crate::storage::{Capabilities, MessageSink, Storage};

/// A logged-in POP3 session, read as a sync source (INBOX only).
#[derive(Debug)]
pub struct Pop3Storage {
    session: Session,
    description: String,
}

impl Pop3Storage {
    /// Connects and logs in. The description names host and port, never the password.
    pub fn connect(
        options: &ConnectOptions,
        credentials: &Credentials,
    ) -> Result<Pop3Storage, StorageError> {
        let session = login(options, credentials)?;
        Ok(Pop3Storage::from_session(session, format!("pop3 {}:{}", options.host, options.port)))
    }

    /// Wraps a session that is already logged in.
    pub fn from_session(session: Session, description: String) -> Pop3Storage {
        Pop3Storage { session, description }
    }

    /// Ends the session with `QUIT`, releasing the server's maildrop lock at once.
    pub fn quit(self) -> Result<(), StorageError> {
        self.session.quit().map_err(|e| convert_error(e, "QUIT"))
    }

    fn require_inbox(mailbox: &MailboxName) -> Result<(), StorageError> {
        if mailbox.is_inbox() {
            Ok(())
        } else {
            Err(StorageError::new(
                ErrorKind::NotFound,
                format!("POP3 has only INBOX, not {mailbox}"),
            ))
        }
    }
}

impl Storage for Pop3Storage {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { unstable_uids: true, ..Capabilities::default() }
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        Ok(vec![MailboxInfo { name: MailboxName::inbox(), selectable: true, special_use: vec![] }])
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        Ok(BTreeSet::new())
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        Pop3Storage::require_inbox(mailbox)?;
        let stat = self.session.stat().map_err(|e| convert_error(e, "STAT"))?;
        Ok(positions_status(stat.count))
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        Pop3Storage::require_inbox(mailbox)?;
        let listing = self.session.messages().map_err(|e| convert_error(e, "LIST/UIDL"))?;
        let mut messages = Vec::with_capacity(listing.len());
        for info in listing {
            let Some(uid) = Uid::new(info.number.get()) else { continue };
            let mut meta = MessageMeta::new(uid, Flags::default());
            meta.virtual_size = Some(info.size);
            meta.pop3_uidl = Some(info.uidl.into_string());
            // No POP3 order: the destination gives new messages ascending UIDs in POP3
            // order, after the ones it has, so its UID order is the POP3 order. A stored
            // position would go stale once earlier messages are deleted and would then
            // sort new mail before old (Dovecot sorts by the stored order first).
            messages.push(meta);
        }
        let count = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        Ok(MailboxContents { status: positions_status(count), messages })
    }

    /// `RETR`, pipelined. A message the server refuses (deleted by another session
    /// meanwhile) is left out, and the engine reports it as vanished.
    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        Pop3Storage::require_inbox(mailbox)?;
        let numbers: Vec<MessageNumber> =
            uids.iter().filter_map(|uid| MessageNumber::new(uid.get())).collect();
        let mut deliver = |number: MessageNumber, body: &mut dyn Read| -> io::Result<()> {
            let uid = Uid::new(number.get()).ok_or_else(|| io::Error::other("message 0"))?;
            let mut tap = HeaderTap::new(body);
            sink.body(&mut tap).map_err(io::Error::other)?;
            let received = received_date(&tap.header);
            sink.done_with_received(uid, received).map_err(io::Error::other)
        };
        match self.session.retr_many(&numbers, &mut deliver) {
            Ok(()) | Err(pop3c::Error::Refused { command: "RETR", .. }) => Ok(()),
            Err(pop3c::Error::Handler(error)) => Err(unwrap_sink_error(error)),
            Err(error) => Err(convert_error(error, "RETR")),
        }
    }
}

/// POP3 has no UIDVALIDITY and no UIDs: the status of positions 1..=count. The mailbox
/// GUID is the one Dovecot's pop3c derives ([`crate::derived_guid`]), no identity.
fn positions_status(count: u32) -> MailboxStatus {
    MailboxStatus {
        uid_validity: UidValidity::MIN,
        uid_next: Uid::new(count.saturating_add(1)).unwrap_or(Uid::MIN),
        messages: count,
        highest_modseq: None,
        guid: Some(derived_guid::pop3c_mailbox_guid()),
        change_token: None,
        source_uid_validity: None,
    }
}

fn login(options: &ConnectOptions, credentials: &Credentials) -> Result<Session, StorageError> {
    let client = Client::connect(options).map_err(|e| convert_error(e, "connecting"))?;
    client.login(credentials).map_err(|(e, _client)| convert_error(e, "logging in"))
}

/// Maps `pop3c` errors onto the engine's kinds (and so onto doveadm's exit codes).
/// Only what a later run may mend is temporary: a wrong port, a refused STLS or a host
/// that does not exist is not, and is not retried.
pub(crate) fn convert_error(error: pop3c::Error, doing: &str) -> StorageError {
    use pop3c::Error as E;
    let kind = match &error {
        _ if error.is_retryable() => ErrorKind::Temporary,
        _ if error.is_wrong_endpoint() => ErrorKind::Config,
        E::Net(net) if net.is_unknown_host() => ErrorKind::NotFound,
        E::Net(net) if net.is_configuration() => ErrorKind::Config,
        E::LoginDisabled => ErrorKind::Config,
        E::Unsupported { .. } | E::InvalidArgument(_) => ErrorKind::InvalidData,
        _ => match error.kind() {
            pop3c::ErrorKind::Credentials => ErrorKind::Authentication,
            _ => ErrorKind::Temporary,
        },
    };
    StorageError::with_source(kind, format!("POP3 {doing}"), error)
}

#[cfg(feature = "imap")]
mod paired;
#[cfg(feature = "imap")]
pub use paired::{ImapPop3Storage, MatchSummary, Pop3MigrationSettings};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_ports_and_unknown_hosts_are_not_temporary() {
        let table = [
            (
                pop3c::Error::WrongService {
                    found: mailnet::Service::Imap,
                    greeting: "* OK".into(),
                    tls: false,
                },
                ErrorKind::Config,
            ),
            (
                pop3c::Error::ImplicitTlsPort { waited: std::time::Duration::from_secs(15) },
                ErrorKind::Config,
            ),
            (pop3c::Error::StlsRefused { code: None, text: "no".into() }, ErrorKind::Config),
            (
                pop3c::Error::StlsRefused {
                    code: Some(pop3c::ResponseCode::SysTemp),
                    text: "later".into(),
                },
                ErrorKind::Temporary,
            ),
            (
                pop3c::Error::Net(mailnet::Error::Resolve {
                    host: "mail.invalid".into(),
                    source: io::Error::other("Name or service not known"),
                }),
                ErrorKind::NotFound,
            ),
            (
                pop3c::Error::AuthenticationFailed {
                    code: Some(pop3c::ResponseCode::SysTemp),
                    text: "backend down".into(),
                },
                ErrorKind::Temporary,
            ),
            (
                pop3c::Error::AuthenticationFailed { code: None, text: "wrong".into() },
                ErrorKind::Authentication,
            ),
        ];
        for (error, kind) in table {
            let text = error.to_string();
            assert_eq!(convert_error(error, "connecting").kind(), kind, "{text}");
        }
    }

    #[test]
    fn header_tap_keeps_only_the_header_and_passes_everything() {
        let message = b"Received: x; Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n".repeat(3);
        let mut source: &[u8] = &message;
        let mut tap = HeaderTap::new(&mut source);
        let mut out = Vec::new();
        // Small reads, so the end of the header straddles two of them.
        let mut chunk = [0u8; 7];
        loop {
            let n = tap.read(&mut chunk).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(out, message);
        assert!(tap.complete);
        assert!(tap.header.len() < 60, "stopped after the header: {}", tap.header.len());
        assert_eq!(received_date(&tap.header), Some(1_704_189_600));
    }
}
