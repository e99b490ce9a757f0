//! The one error type of this crate.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a mail store, with the path, mailbox or
/// value it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we tried (`open`, `rename`, …).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A new file or directory could not be given the owner or group it should have
    /// (see [`crate::Permissions`]): only root can give files to another user.
    #[error("cannot give {path} to {reason}")]
    Ownership {
        /// The new file or directory (removed again).
        path: PathBuf,
        /// The owner and group wanted, where they come from, and why it failed.
        reason: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A location string we do not understand.
    #[error("invalid mail location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// A mailbox name that cannot be stored (hostile or reserved).
    #[error("invalid mailbox name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (components joined with `/`).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A keyword that is not an IMAP atom.
    #[error("invalid keyword {keyword:?}: {reason}")]
    InvalidKeyword {
        /// The keyword as given.
        keyword: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A value that cannot be stored in the on-disk format (GUID, POP3 UIDL, …).
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidValue {
        /// Which value (`message GUID`, `POP3 UIDL`, `UID`, …).
        field: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The mailbox does not exist.
    #[error("mailbox {name} does not exist")]
    MailboxNotFound {
        /// The mailbox.
        name: String,
    },
    /// The mailbox exists already.
    #[error("mailbox {name} already exists")]
    MailboxExists {
        /// The mailbox.
        name: String,
    },
    /// INBOX can be emptied but never deleted or renamed away.
    #[error("INBOX cannot be {operation}")]
    InboxOperation {
        /// `deleted` or `renamed`.
        operation: &'static str,
    },
    /// No message with this UID.
    #[error("mailbox {mailbox}: no message with UID {uid}")]
    UidNotFound {
        /// The mailbox.
        mailbox: String,
        /// The UID asked for.
        uid: u32,
    },
    /// A forced UID below the mailbox's next UID (UIDs only ever grow).
    #[error("mailbox {mailbox}: UID {uid} is below the next UID {next_uid}")]
    UidTooLow {
        /// The mailbox.
        mailbox: String,
        /// The UID asked for.
        uid: u32,
        /// The mailbox's next UID at commit time.
        next_uid: u32,
    },
    /// A dotlock could not be taken in time.
    #[error("timed out waiting for lock {path}")]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
    },
    /// A write to a store opened read-only ([`crate::Options::with_read_only`]).
    #[error("mail store {path} is opened read-only")]
    ReadOnly {
        /// The store's root.
        path: PathBuf,
    },
    /// An entry of the store that is not read as mail: a symlink leaving the store, a FIFO
    /// where a message file should be, a file the system refuses to open (see
    /// [`crate::LeftOut`]). Listings report such entries instead of failing; this error is
    /// what reading one returns ([`crate::Mailbox::open_message`], a control file).
    #[error("{0}")]
    LeftOut(Box<crate::LeftOut>),
    /// A file on disk that does not follow its format.
    #[error("corrupt {path} line {line}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when not line-oriented).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }
}

/// `result.ctx("open", &path)?` turns an `io::Error` into an [`Error::Io`].
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::io(op, path, source))
    }
}
