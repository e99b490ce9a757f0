//! Adapters that make the workspace's storage crates sync sides (each behind a cargo
//! feature, all on by default).

#[cfg(any(feature = "imap", feature = "pop3", feature = "maildir"))]
use std::io;
#[cfg(any(feature = "imap", feature = "pop3"))]
use std::io::Read;

#[cfg(any(feature = "imap", feature = "pop3"))]
use crate::message_date::SCANNED_HEADER_BYTES;

#[cfg(feature = "imap")]
pub mod imap;
#[cfg(feature = "maildir")]
mod kept;
#[cfg(feature = "maildir")]
pub mod maildir;
#[cfg(feature = "pop3")]
pub mod pop3;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(feature = "remote")]
pub mod remote_push;
#[cfg(feature = "maildir")]
pub mod sdbox;

/// A body that could not be written into a local store (`store`: "Maildir", "sdbox"),
/// with the kind its I/O error names (a full disk stays a full disk).
#[cfg(feature = "maildir")]
pub(crate) fn write_failed(store: &'static str) -> impl Fn(io::Error) -> crate::StorageError {
    move |error| {
        let kind = crate::ErrorKind::from_io(&error);
        crate::StorageError::with_source(kind, format!("writing message to the {store}"), error)
    }
}

/// The sink's own error travelled through `io::Error`; take it back out.
#[cfg(any(feature = "imap", feature = "pop3"))]
pub(crate) fn unwrap_sink_error(error: io::Error) -> crate::StorageError {
    let Some(inner) = error.into_inner() else {
        return crate::StorageError::new(crate::ErrorKind::Temporary, "message sink failed");
    };
    match inner.downcast::<crate::StorageError>() {
        Ok(storage_error) => *storage_error,
        Err(other) => crate::StorageError::new(crate::ErrorKind::Temporary, other.to_string()),
    }
}

/// Passes a message through and keeps a copy of its header (up to
/// [`SCANNED_HEADER_BYTES`]) for [`crate::message_date::received_date`]: the received date
/// of a message whose source has none for it (POP3, or a malformed IMAP INTERNALDATE).
#[cfg(any(feature = "imap", feature = "pop3"))]
pub(crate) struct HeaderTap<'a> {
    inner: &'a mut dyn Read,
    pub(crate) header: Vec<u8>,
    complete: bool,
}

#[cfg(any(feature = "imap", feature = "pop3"))]
impl<'a> HeaderTap<'a> {
    pub(crate) fn new(inner: &'a mut dyn Read) -> HeaderTap<'a> {
        HeaderTap { inner, header: Vec::new(), complete: false }
    }

    fn observe(&mut self, bytes: &[u8]) {
        let room = SCANNED_HEADER_BYTES - self.header.len();
        let start = self.header.len().saturating_sub(3);
        self.header.extend_from_slice(&bytes[..bytes.len().min(room)]);
        // The header ends at an empty line (CRLF or bare LF).
        let tail = &self.header[start..];
        let ended = memchr::memmem::find(tail, b"\n\r\n")
            .or_else(|| memchr::memmem::find(tail, b"\n\n"))
            .is_some();
        self.complete = ended || self.header.len() >= SCANNED_HEADER_BYTES;
    }
}

#[cfg(any(feature = "imap", feature = "pop3"))]
impl Read for HeaderTap<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.complete {
            self.observe(&buf[..n]);
        }
        Ok(n)
    }
}

/// Dovecot's expunge and flag-change records as a merge reads them. A record that carries a GUID hash
/// names the message by it too; Dovecot's Maildir leaves it empty, and the UID alone
/// names the message (UIDs are never reused under one UIDVALIDITY).
#[cfg(feature = "maildir")]
pub(crate) fn message_history(
    history: &mailstore::DovecotExpunges,
) -> crate::history::MessageHistory {
    let expunged = history.messages.iter().filter_map(|m| crate::Uid::new(m.uid)).collect();
    let flag_changes = history
        .flag_changes
        .iter()
        .filter_map(|(&uid, &position)| Some((crate::Uid::new(uid)?, position)))
        .collect();
    crate::history::MessageHistory::new(
        crate::UidValidity::new(history.uid_validity),
        expunged,
        flag_changes,
    )
}

/// Dovecot's mailbox log as a merge reads it: deleted mailbox GUIDs, renamed-to name hashes.
#[cfg(feature = "maildir")]
pub(crate) fn folder_history(
    changes: &[mailstore::MailboxChange],
) -> crate::history::FolderHistory {
    use mailstore::MailboxChangeKind;
    let mut history = crate::history::FolderHistory::default();
    for change in changes {
        match change.kind {
            MailboxChangeKind::DeleteMailbox => {
                history.deleted.insert(crate::MailboxGuid(change.guid));
            }
            MailboxChangeKind::Rename => {
                history.renamed_to.insert(change.guid);
            }
            _ => {}
        }
    }
    history
}
