//! `dovecot.mailbox.log` (`mailbox-log.c`): the change log dsync reads to learn about
//! deletions. Records are 24 bytes — type, 3 zero bytes, 16-byte GUID, big-endian UNIX
//! time — appended with `O_APPEND`; at 4 KiB the file is rotated to `.2`.
//!
//! We append `DELETE_MAILBOX` (type 1, the mailbox GUID) when deleting a mailbox, as Dovecot
//! does, so a later two-way `doveadm sync` knows the deletion was intended, and `RENAME`
//! (type 3) when renaming one, so its dsync sees the new name as renamed (not created) at
//! that time. Dovecot logs a rename under a hash of the new *virtual* name
//! (`mailbox_name_get_sha128`: the first 16 bytes of the SHA-1 of the UTF-8 name spelt with
//! the namespace's prefix and separator). We spell it as dsync-rs names mailboxes — no
//! prefix, `/` separator, the usual `inbox` namespace; under another configuration Dovecot
//! finds no name for the record and ignores it, as if it had not been written.
//! Subscription changes are not logged (Dovecot's dsync falls back to the subscriptions
//! file's contents).
//!
//! [`read`] returns every record of the log and its rotated `.2` (oldest first), for a
//! sync that has no state of its own to tell a deleted mailbox from a new one.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::fs::permissions::Permissions;
use crate::guid::Guid;

const FILE_NAME: &str = "dovecot.mailbox.log";
const ROTATE_SIZE: u64 = 4096;
/// `MAILBOX_LOG_RECORD_DELETE_MAILBOX`.
pub(crate) const DELETE_MAILBOX: u8 = 1;
/// `MAILBOX_LOG_RECORD_RENAME`.
pub(crate) const RENAME: u8 = 3;

/// What a record of Dovecot's mailbox log says happened (`enum mailbox_log_record_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxChangeKind {
    /// A mailbox was deleted; the record holds its GUID.
    DeleteMailbox,
    /// A directory (a `\Noselect` parent) was deleted; the record holds a hash of its name.
    DeleteDir,
    /// A mailbox was renamed; the record holds its GUID.
    Rename,
    /// A name was subscribed; the record holds a hash of the name.
    Subscribe,
    /// A name was unsubscribed; the record holds a hash of the name.
    Unsubscribe,
    /// A directory was created; the record holds a hash of its name.
    CreateDir,
    /// A type this crate does not know.
    Other(u8),
}

/// One record of Dovecot's `dovecot.mailbox.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxChange {
    /// What happened.
    pub kind: MailboxChangeKind,
    /// The mailbox GUID, or for name-based records Dovecot's 128-bit hash of the name
    /// (which depends on the namespace configuration).
    pub guid: [u8; 16],
    /// When (UNIX seconds).
    pub timestamp: u32,
}

impl MailboxChange {
    /// True when the record names the mailbox `vname` rather than holding a GUID (renames,
    /// directory and subscription records): Dovecot stores the first 16 bytes of the
    /// SHA-1 of the virtual name (`mailbox_name_get_sha128`), namespace prefix and
    /// separator included as Dovecot's configuration spells them.
    pub fn names(&self, vname: &str) -> bool {
        self.guid == *name_hash(vname).as_bytes()
    }
}

/// Dovecot's `mailbox_name_get_sha128`: the first 16 bytes of the SHA-1 of `vname`.
pub(crate) fn name_hash(vname: &str) -> Guid {
    use sha1::Digest as _;
    let digest = sha1::Sha1::digest(vname.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Guid::from_bytes(bytes)
}

/// Appends the `RENAME` record Dovecot writes for a mailbox renamed to `to` (its virtual
/// name with `/` between components, see the module documentation).
pub(crate) fn append_rename(
    root: &Path,
    to: &crate::MailboxName,
    permissions: &Permissions,
) -> Result<()> {
    append(root, RENAME, name_hash(&to.join("/")), permissions)
}

/// Every record of the mailbox log in `root` and its rotated `.2`, oldest first; an
/// incomplete last record (a write in progress) is left out. Empty when there is none.
pub(crate) fn read(root: &Path) -> Result<Vec<MailboxChange>> {
    let mut out = Vec::new();
    for name in [format!("{FILE_NAME}.2"), FILE_NAME.to_string()] {
        let path = root.join(name);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(Error::io("read", &path, error)),
        };
        for bytes in data.chunks_exact(24) {
            let kind = match bytes[0] {
                1 => MailboxChangeKind::DeleteMailbox,
                2 => MailboxChangeKind::DeleteDir,
                3 => MailboxChangeKind::Rename,
                4 => MailboxChangeKind::Subscribe,
                5 => MailboxChangeKind::Unsubscribe,
                6 => MailboxChangeKind::CreateDir,
                other => MailboxChangeKind::Other(other),
            };
            let mut guid = [0u8; 16];
            guid.copy_from_slice(&bytes[4..20]);
            let timestamp = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
            out.push(MailboxChange { kind, guid, timestamp });
        }
    }
    Ok(out)
}

/// One record.
pub(crate) fn record(kind: u8, guid: Guid, timestamp: u32) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[0] = kind;
    bytes[4..20].copy_from_slice(guid.as_bytes());
    bytes[20..].copy_from_slice(&timestamp.to_be_bytes());
    bytes
}

/// Appends a record to the log in `root` (the index root of the namespace).
pub(crate) fn append(root: &Path, kind: u8, guid: Guid, permissions: &Permissions) -> Result<()> {
    if guid.is_empty() {
        return Ok(());
    }
    let path = root.join(FILE_NAME);
    if fs::metadata(&path).is_ok_and(|m| m.len() >= ROTATE_SIZE) {
        let mut rotated = path.clone().into_os_string();
        rotated.push(".2");
        fs::rename(&path, &rotated).ctx("rotate", &path)?;
    }
    let timestamp = u32::try_from(crate::fs::now().0).unwrap_or(u32::MAX);
    let mut file = permissions.open_or_create(&path, true)?;
    file.write_all(&record(kind, guid, timestamp)).ctx("append to", &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_and_rotation() {
        let guid: Guid = "201a6b3053cc1422d2c3670b62616221".parse().unwrap();
        let bytes = record(DELETE_MAILBOX, guid, 0x6b04_026a);
        assert_eq!(&bytes[..4], [1, 0, 0, 0]);
        assert_eq!(&bytes[4..20], guid.as_bytes());
        assert_eq!(&bytes[20..], [0x6b, 0x04, 0x02, 0x6a]);
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..174 {
            append(dir.path(), DELETE_MAILBOX, guid, &Permissions::private()).unwrap();
        }
        assert_eq!(fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(), 3 * 24);
        assert_eq!(fs::metadata(dir.path().join("dovecot.mailbox.log.2")).unwrap().len(), 171 * 24);
        let changes = read(dir.path()).unwrap();
        assert_eq!(changes.len(), 174);
        assert!(changes.iter().all(|c| c.kind == MailboxChangeKind::DeleteMailbox
            && c.guid == *guid.as_bytes()
            && c.timestamp > 1_700_000_000));
    }
}
