//! What a storage remembers of its own past, for a merge that has no state of its own: a
//! Maildir or sdbox that Dovecot served keeps expunge records in each mailbox's
//! `dovecot.index.log` and deletes and renames in `dovecot.mailbox.log`. Dovecot's dsync
//! reads them to tell a message or mailbox deleted on one side from one the other side
//! never had (`dsync-mailbox-export.c`, `dsync-mailbox-tree-sync.c`); so do we, through
//! [`crate::Storage::expunge_history`] and [`crate::Storage::folder_history`].

use std::collections::BTreeSet;

use crate::model::{MailboxGuid, MailboxName, Uid, UidValidity};

/// The messages a mailbox's history says were expunged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpungeHistory {
    /// The UIDVALIDITY the UIDs belong to (a history of an earlier incarnation says
    /// nothing about the current one).
    pub uid_validity: Option<UidValidity>,
    /// The expunged UIDs still recorded (old records go with rotated-out logs).
    pub uids: BTreeSet<Uid>,
}

impl ExpungeHistory {
    /// `uids` expunged under `uid_validity`.
    pub fn new(uid_validity: Option<UidValidity>, uids: BTreeSet<Uid>) -> ExpungeHistory {
        ExpungeHistory { uid_validity, uids }
    }

    /// The UIDs, when they belong to `uid_validity`.
    pub fn under(&self, uid_validity: UidValidity) -> Option<&BTreeSet<Uid>> {
        (self.uid_validity == Some(uid_validity)).then_some(&self.uids)
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
