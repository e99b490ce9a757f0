//! What a listing leaves out, and why: entries the store holds that this crate will not read
//! as mail. Nothing is left out in silence; a caller that copies mail reports each one.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
pub use crate::fs::beneath::FileKind;
use crate::fs::beneath::Refusal;
use crate::name::MailboxName;

/// A listing and the entries it left out ([`crate::Maildir::list_mailboxes`],
/// [`crate::Mailbox::list_messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listing<T> {
    /// What was listed.
    pub entries: Vec<T>,
    /// What was found but left out, each with its reason.
    pub left_out: Vec<LeftOut>,
}

/// An entry of the store left out of a listing or a read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeftOut {
    /// The mailbox it belongs to, or that it would have been; `None` for a folder whose
    /// directory name gives no usable mailbox name.
    pub mailbox: Option<MailboxName>,
    /// Where it is, relative to the store's root, as on disk (`.Archive/cur/1700000000.M1P2.host:2,S`).
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: LeftOutReason,
}

impl LeftOut {
    /// The path for messages: relative to the root, bytes that are not printable UTF-8
    /// escaped (`\x09` for a tab).
    pub fn display_path(&self) -> String {
        escape(self.path.as_os_str().as_bytes())
    }
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.display_path(), self.reason)
    }
}

/// Why an entry was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeftOutReason {
    /// It is, or its path goes through, a symlink that points outside the store. Never
    /// followed: the target could be any file the running account can read.
    SymlinkLeavesStore {
        /// The symlink on its way (relative to the root) when it is not the entry itself:
        /// a symlinked `cur/` or folder directory.
        via: Option<PathBuf>,
        /// Where the symlink points, as written.
        target: PathBuf,
    },
    /// Resolving it met more than 40 symlinks (a loop).
    SymlinkLoop {
        /// Where resolution gave up, relative to the root.
        at: PathBuf,
    },
    /// A folder directory that is a symlink to a directory inside the store that is not
    /// one of its folders. Folder symlinks are not followed (an alias of another folder is
    /// left out without a report, as Dovecot's dsync leaves aliases out: its mail is copied
    /// with the folder it points to).
    SymlinkedFolder {
        /// Where it points, as written.
        target: PathBuf,
    },
    /// Not a regular file where a message file is, or not a directory where `cur/`, `new/`
    /// or a folder is: a FIFO (whose read would block forever), a socket, a device.
    WrongKind {
        /// What it is.
        kind: FileKind,
        /// What it should have been.
        expected: FileKind,
    },
    /// The system refused to read it (`EACCES`, …).
    Unreadable {
        /// The system's message.
        error: String,
    },
    /// A message file name that is not UTF-8.
    NameNotUtf8,
    /// A message file name with an empty base name (`:2,S`); Dovecot renames such a file
    /// when it next syncs the folder.
    EmptyBaseName,
    /// A second message file with the same base name as another, which is not a hard link
    /// of it; Dovecot gives it a new name and UID when it next syncs the folder.
    DuplicateBaseName {
        /// The file that was read under that base name.
        kept: String,
    },
    /// A folder directory whose name, mapped the way Dovecot maps it, is not a usable
    /// mailbox name (an empty hierarchy level from `..`, a control character, INBOX).
    /// Dovecot 2.3 lists such folders but cannot open them either.
    FolderName {
        /// The name Dovecot shows for it (escaped where not printable).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A folder directory whose name maps to the same mailbox name as another folder's.
    SameName {
        /// The directory read under that name, relative to the root.
        kept: PathBuf,
    },
    /// An sdbox message file (`u.<uid>`) the mailbox's index does not list, with a UID
    /// above every indexed one: a save that never finished. Dovecot shows it only after an
    /// index rebuild (`doveadm force-resync`).
    NotIndexed,
    /// A message file this crate cannot read as mail: not in the format, missing although
    /// the index lists it, or stored in a way it does not decode (compressed by a plugin,
    /// attachments kept apart).
    Unsupported {
        /// What is wrong, in words.
        reason: String,
    },
}

impl fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = |path: &PathBuf| escape(path.as_os_str().as_bytes());
        match self {
            LeftOutReason::SymlinkLeavesStore { via: None, target } => {
                write!(f, "a symlink to {}, outside the Maildir: not followed", bytes(target))
            }
            LeftOutReason::SymlinkLeavesStore { via: Some(via), target } => write!(
                f,
                "{} is a symlink to {}, outside the Maildir: not followed",
                bytes(via),
                bytes(target)
            ),
            LeftOutReason::SymlinkLoop { at } => {
                write!(f, "too many levels of symlinks at {}", bytes(at))
            }
            LeftOutReason::SymlinkedFolder { target } => write!(
                f,
                "a folder that is a symlink to {}, a directory of the Maildir that is not one \
                 of its folders: not followed",
                bytes(target)
            ),
            LeftOutReason::WrongKind { kind, expected } => {
                write!(f, "{kind}, not {expected}")
            }
            LeftOutReason::Unreadable { error } => write!(f, "cannot be read: {error}"),
            LeftOutReason::NameNotUtf8 => f.write_str("message file name is not UTF-8"),
            LeftOutReason::EmptyBaseName => f.write_str(
                "message file name has an empty base name (Dovecot renames it at its next sync)",
            ),
            LeftOutReason::DuplicateBaseName { kept } => write!(
                f,
                "same base name as {kept}, a different file (Dovecot gives it a new name and \
                 UID at its next sync)"
            ),
            LeftOutReason::FolderName { name, reason } => {
                write!(f, "folder name \"{name}\" cannot be used: {reason}")
            }
            LeftOutReason::NotIndexed => f.write_str(
                "not in the mailbox's index (a save that never finished; Dovecot shows it only \
                 after `doveadm force-resync`)",
            ),
            LeftOutReason::Unsupported { reason } => f.write_str(reason),
            LeftOutReason::SameName { kept } => write!(
                f,
                "its folder name is also that of {}, which is read under that name",
                bytes(kept)
            ),
        }
    }
}

/// Why the entry at `path` (relative to the root), which should be `expected`, is left
/// out, given why it could not be opened. `Err` for what is not a property of the entry but
/// a failure to report (an I/O error) or a file that vanished meanwhile (`NotFound`).
pub(crate) fn reason(
    refusal: Refusal,
    path: &Path,
    expected: FileKind,
) -> Result<LeftOutReason, io::Error> {
    Ok(match refusal {
        Refusal::Leaves { link, target } => {
            LeftOutReason::SymlinkLeavesStore { via: (link != path).then_some(link), target }
        }
        Refusal::Loop { link } => LeftOutReason::SymlinkLoop { at: link },
        Refusal::Kind(kind) => LeftOutReason::WrongKind { kind, expected },
        Refusal::Io(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            LeftOutReason::Unreadable { error: error.to_string() }
        }
        Refusal::Io(error) => return Err(error),
    })
}

/// The error reading the file at `relative` (below `root`) gives when it was refused:
/// [`Error::LeftOut`] for a property of the entry (a symlink leaving the store, a FIFO),
/// [`Error::Io`] for what the system said (`EACCES` included: a control file or directory
/// that cannot be read is a permission problem, not data to skip).
pub(crate) fn error(refusal: Refusal, root: &Path, relative: &Path, op: &'static str) -> Error {
    if let Refusal::Io(source) = refusal {
        return Error::io(op, root.join(relative), source);
    }
    match reason(refusal, relative, FileKind::File) {
        Ok(reason) => Error::LeftOut(Box::new(LeftOut {
            mailbox: None,
            path: relative.to_path_buf(),
            reason,
        })),
        Err(source) => Error::io(op, root.join(relative), source),
    }
}

/// Bytes as text, with `\xNN` for what is not printable UTF-8.
pub(crate) fn escape(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                let mut buffer = [0; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shown_with_unprintable_bytes_escaped() {
        assert_eq!(escape(b".caf\xc3\xa9"), ".café");
        assert_eq!(escape(b".caf\xe9"), ".caf\\xe9");
        assert_eq!(escape(b".a\tb\\"), ".a\\x09b\\x5c");
        let left = LeftOut {
            mailbox: None,
            path: PathBuf::from("cur/x"),
            reason: LeftOutReason::SymlinkLeavesStore {
                via: None,
                target: PathBuf::from("/etc/shadow"),
            },
        };
        assert_eq!(
            left.to_string(),
            "cur/x: a symlink to /etc/shadow, outside the Maildir: not followed"
        );
    }
}
