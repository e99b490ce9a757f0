//! What a storage remembers of its own past, for a merge that has no state of its own: a
//! Maildir or sdbox that Dovecot served keeps expunge records in each mailbox's
//! `dovecot.index.log` and deletes and renames in `dovecot.mailbox.log`. Dovecot's dsync
//! reads them to tell a message or mailbox deleted on one side from one the other side
//! never had (`dsync-mailbox-export.c`, `dsync-mailbox-tree-sync.c`); so do we, through
//! [`crate::Storage::message_history`] and [`crate::Storage::folder_history`].

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{MailboxGuid, MailboxName, Uid, UidValidity};

/// What a mailbox's history says happened to its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageHistory {
    /// The UIDVALIDITY the UIDs belong to (a history of an earlier incarnation says
    /// nothing about the current one).
    pub uid_validity: Option<UidValidity>,
    /// The expunged UIDs still recorded (old records go with rotated-out logs).
    pub expunged: BTreeSet<Uid>,
    /// Per UID, when its flags were last changed, as a position that only grows along the
    /// history (Dovecot: where in the index log chain). Two copies of one store that
    /// diverged share the positions before the split, so the later one tells which side
    /// changed the flags since. Absent: no change recorded.
    pub flag_changes: BTreeMap<Uid, u64>,
}

impl MessageHistory {
    /// The history of a mailbox under `uid_validity`.
    pub fn new(
        uid_validity: Option<UidValidity>,
        expunged: BTreeSet<Uid>,
        flag_changes: BTreeMap<Uid, u64>,
    ) -> MessageHistory {
        MessageHistory { uid_validity, expunged, flag_changes }
    }
}

/// What a storage's history says happened to its mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FolderHistory {
    /// GUIDs of mailboxes deleted.
    pub deleted: BTreeSet<MailboxGuid>,
    /// Dovecot's 128-bit hash of each name a mailbox was renamed to: the first 16 bytes of
    /// the SHA-1 of the name as Dovecot's namespace spells it.
    pub renamed_to: BTreeSet<[u8; 16]>,
}

impl FolderHistory {
    /// True when the history holds nothing.
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.renamed_to.is_empty()
    }

    /// True when a mailbox was renamed to `name`. Dovecot hashes the name as its namespace
    /// spells it (modified UTF-7, its separator), which this crate does not know: the
    /// spellings with `/` and with `.` are both tried.
    pub fn renamed_to(&self, name: &MailboxName) -> bool {
        use sha1::Digest as _;
        ['/', '.'].iter().any(|&separator| {
            let encoded: Vec<String> = name.components().iter().map(|c| mutf7::encode(c)).collect();
            let spelled = encoded.join(&separator.to_string());
            let digest = sha1::Sha1::digest(spelled.as_bytes());
            let mut hash = [0u8; 16];
            hash.copy_from_slice(&digest[..16]);
            self.renamed_to.contains(&hash)
        })
    }
}
