//! What Dovecot's index of a Maildir folder remembers of expunged messages: a Maildir that
//! Dovecot served carries `dovecot.index.log` (and `.log.2`), whose `EXTERNAL` expunge
//! records name each message Dovecot expunged by UID (`EXPUNGE_GUID` records also have
//! room for the 128-bit hash of its GUID, which Dovecot 2.3.19.1's Maildir leaves empty:
//! seen in the integration test). Dovecot's dsync reads them to tell a message expunged on
//! one side from one the other side never had; a sync without state of its own can do the
//! same.

use super::mailbox::Mailbox;
use crate::error::Result;
use crate::index::files::MailboxIndex;

/// The expunges Dovecot's index logs of a mailbox still hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DovecotExpunges {
    /// The UIDVALIDITY of Dovecot's index: the UIDs below belong to it (compare it with the
    /// mailbox's before using them).
    pub uid_validity: u32,
    /// The expunged messages, in log order. Older expunges are gone with rotated-out logs.
    pub messages: Vec<ExpungedMessage>,
    /// Per UID still in the mailbox, where in the log chain its flags were last changed
    /// (file sequence in the high 32 bits, offset in the low) by the records the log
    /// still holds: of two copies of one store that diverged, the later position is the
    /// side that changed the flags since (Dovecot's dsync tells it by modseqs).
    pub flag_changes: std::collections::BTreeMap<u32, u64>,
}

/// One expunged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpungedMessage {
    /// Its UID.
    pub uid: u32,
    /// `mail_generate_guid_128_hash` of its GUID, when the record carried one (not all
    /// zero).
    pub guid_128: Option<[u8; 16]>,
}

impl ExpungedMessage {
    /// True when this is the message with GUID `guid` (as [`crate::MessageInfo::guid`] and
    /// Dovecot spell it); false when the record carried no GUID.
    pub fn has_guid(&self, guid: &str) -> bool {
        self.guid_128 == Some(crate::dbox::guid_128(guid))
    }
}

impl Mailbox {
    /// The expunges Dovecot recorded in this mailbox's index logs (read under the log's
    /// shared `fcntl` lock, as Dovecot reads them); `None` when Dovecot never indexed the
    /// mailbox.
    pub fn dovecot_expunges(&self) -> Result<Option<DovecotExpunges>> {
        let root = self.store.location.root().to_path_buf();
        let mut index = MailboxIndex::new(root, self.path().to_path_buf());
        let Some(loaded) = index.read(self.store.options.lock_timeout)? else { return Ok(None) };
        Ok(Some(DovecotExpunges {
            uid_validity: loaded.state.uid_validity(),
            messages: loaded
                .state
                .expunged
                .iter()
                .map(|e| ExpungedMessage {
                    uid: e.uid,
                    guid_128: e.guid_128.filter(|guid| guid.iter().any(|&b| b != 0)),
                })
                .collect(),
            flag_changes: loaded.state.flag_changes.clone(),
        }))
    }
}
