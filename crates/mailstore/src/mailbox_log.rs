//! `dovecot.mailbox.log` (`mailbox-log.c`): the change log dsync reads to learn about
//! deletions. Records are 24 bytes — type, 3 zero bytes, 16-byte GUID, big-endian UNIX
//! time — appended with `O_APPEND`; at 4 KiB the file is rotated to `.2`.
//!
//! We append `DELETE_MAILBOX` (type 1, the mailbox GUID) when deleting a mailbox, as Dovecot
//! does, so a later two-way `doveadm sync` knows the deletion was intended. Renames and
//! subscription changes are logged by Dovecot with a hash of the *virtual* name, which
//! depends on the namespace configuration we do not know, so we do not log them.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::fs::permissions::Permissions;
use crate::guid::Guid;

const FILE_NAME: &str = "dovecot.mailbox.log";
const ROTATE_SIZE: u64 = 4096;
/// `MAILBOX_LOG_RECORD_DELETE_MAILBOX`.
pub(crate) const DELETE_MAILBOX: u8 = 1;

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
    }
}
