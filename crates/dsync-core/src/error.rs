//! Errors: [`StorageError`] is what adapters report, [`SyncError`] what a sync run returns.
//! Both carry an [`ErrorKind`] that maps to doveadm's exit codes (Dovecot's
//! `src/doveadm/doveadm.h` and `doveadm-mail.c`).

use std::error::Error as StdError;
use std::fmt;

use crate::model::MailboxName;

/// What kind of failure happened: decides the exit code and whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Network failure, timeout, server going away, throttling, lock held too long: a later
    /// run may succeed (doveadm's default failure, `EX_TEMPFAIL`).
    Temporary,
    /// The server refused the credentials.
    Authentication,
    /// The user does not exist.
    NoSuchUser,
    /// A mailbox or other named object does not exist.
    NotFound,
    /// Operating-system or server permission refused.
    Permission,
    /// Out of disk space or over quota.
    NoSpace,
    /// Files cannot be created where they should be (a path component is not a directory,
    /// a read-only file system): nothing else will work either, so the run stops.
    CannotCreate,
    /// The data cannot be processed (corrupt file, impossible operation such as deleting
    /// INBOX, a mailbox name the destination cannot represent).
    InvalidData,
    /// A location, option or argument is wrong.
    Usage,
    /// The configuration is inconsistent (e.g. the same path on both sides).
    Config,
    /// The caller asked the run to stop (Ctrl-C, SIGTERM): what was committed stays, and
    /// the next run resumes (`EX_TEMPFAIL`, but not to be retried at once).
    Interrupted,
}

impl ErrorKind {
    /// The exit code doveadm uses for this kind (`sysexits.h` values).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Temporary | ErrorKind::Interrupted => 75,
            ErrorKind::Authentication | ErrorKind::Permission => 77,
            ErrorKind::NoSuchUser => 67,
            ErrorKind::NotFound => 68,
            ErrorKind::NoSpace | ErrorKind::CannotCreate => 73,
            ErrorKind::InvalidData => 65,
            ErrorKind::Usage => 64,
            ErrorKind::Config => 78,
        }
    }

    /// True for a failure confined to the one mailbox (or name) it concerns: a run records
    /// it and goes on with the others (not found, permission, data it cannot process).
    pub fn is_confined(self) -> bool {
        matches!(self, ErrorKind::NotFound | ErrorKind::InvalidData | ErrorKind::Permission)
    }

    /// Classifies an I/O error from a local storage.
    pub fn from_io(error: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as Io;
        match error.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::Permission,
            Io::ReadOnlyFilesystem | Io::NotADirectory | Io::IsADirectory => {
                ErrorKind::CannotCreate
            }
            Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => ErrorKind::NoSpace,
            Io::InvalidData | Io::InvalidInput | Io::InvalidFilename => ErrorKind::InvalidData,
            _ => ErrorKind::Temporary,
        }
    }
}

/// An error reported by a storage adapter.
#[derive(Debug)]
pub struct StorageError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl StorageError {
    /// An error with a message and no underlying cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StorageError {
        StorageError { kind, message: message.into(), source: None }
    }

    /// An error caused by `source` (an adapter's own error type).
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> StorageError {
        StorageError { kind, message: message.into(), source: Some(Box::new(source)) }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message (without the cause).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The underlying error (an adapter's own type), for callers that advise on it; the
    /// [`Display`](fmt::Display) already shows it.
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Show the whole cause chain so an operator sees e.g. the server's NO text or the
        // OS error; many errors already print their own cause, so skip repeats.
        let mut shown = self.message.clone();
        let mut cause = self.source.as_deref().map(|e| e as &(dyn StdError + 'static));
        while let Some(error) = cause {
            let text = error.to_string();
            if !shown.contains(&text) {
                shown.push_str(": ");
                shown.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&shown)
    }
}

impl StdError for StorageError {
    /// The underlying error (e.g. an `imapc::Error` telling that the server throttles),
    /// for `downcast_ref`. The [`Display`](fmt::Display) shows it too, for operators.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|error| error as &(dyn StdError + 'static))
    }
}

/// One of the two storages of a run: where an error came from, which side a change,
/// a rename, a skipped entry or an unfinished rebuild belongs to. The merge modes call
/// them A (the source) and B (the destination); see `docs/design.md`, "Words".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Side {
    /// The storage named first: only read by `backup`, `import` and `sync -1`; side A of
    /// a two-way `sync`, which writes it too.
    Source,
    /// The storage named second, which every mode writes; side B of the merge modes.
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// A sync run failed.
#[derive(Debug, thiserror::Error)]
#[error("{side}{}: {error}", mailbox.as_ref().map(|m| format!(" mailbox {m}")).unwrap_or_default())]
#[non_exhaustive]
pub struct SyncError {
    /// Where it failed.
    pub side: Side,
    /// The mailbox being synced, if any.
    pub mailbox: Option<MailboxName>,
    /// The cause.
    #[source]
    pub error: StorageError,
}

impl SyncError {
    /// `error` on `side`, in `mailbox`: for `map_err` (the name is cloned only on error).
    pub(crate) fn at(side: Side, mailbox: &MailboxName) -> impl FnOnce(StorageError) -> SyncError {
        move |error| SyncError { side, mailbox: Some(mailbox.clone()), error }
    }

    /// `error` on `side`, in no particular mailbox (a listing, the connection): for
    /// `map_err`.
    pub(crate) fn global(side: Side) -> impl FnOnce(StorageError) -> SyncError {
        move |error| SyncError { side, mailbox: None, error }
    }

    /// A request the run refuses before it starts (exit 64).
    pub(crate) fn usage(message: impl Into<String>) -> SyncError {
        SyncError::global(Side::Source)(StorageError::new(ErrorKind::Usage, message))
    }

    /// The kind of the underlying storage error.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The exit code doveadm would use.
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_doveadm() {
        let table = [
            (ErrorKind::Temporary, 75),
            (ErrorKind::Authentication, 77),
            (ErrorKind::Permission, 77),
            (ErrorKind::NoSuchUser, 67),
            (ErrorKind::NotFound, 68),
            (ErrorKind::NoSpace, 73),
            (ErrorKind::CannotCreate, 73),
            (ErrorKind::InvalidData, 65),
            (ErrorKind::Usage, 64),
            (ErrorKind::Config, 78),
            (ErrorKind::Interrupted, 75),
        ];
        for (kind, code) in table {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn display_shows_the_cause_chain() {
        let io = std::io::Error::other("disk on fire");
        let error = StorageError::with_source(ErrorKind::Temporary, "writing uidlist", io);
        let sync =
            SyncError { side: Side::Destination, mailbox: Some(MailboxName::inbox()), error };
        assert_eq!(sync.to_string(), "destination mailbox INBOX: writing uidlist: disk on fire");
        assert_eq!(sync.exit_code(), 75);

        // A cause that already prints its own cause is not repeated.
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "cannot connect: {}", self.0)
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Wrapper(std::io::Error::other("refused"));
        let error = StorageError::with_source(ErrorKind::Temporary, "IMAP", refused);
        assert_eq!(error.to_string(), "IMAP: cannot connect: refused");

        // The cause is reachable through the standard chain too.
        let cause = StdError::source(&error).expect("a source");
        assert!(cause.downcast_ref::<Wrapper>().is_some());
        let sync = SyncError { side: Side::Source, mailbox: None, error };
        let chained = StdError::source(&sync).and_then(StdError::source);
        assert!(chained.is_some_and(|e| e.downcast_ref::<Wrapper>().is_some()));
    }
}
