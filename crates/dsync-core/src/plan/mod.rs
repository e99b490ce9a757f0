//! The pure planner: from what both sides hold, decide what to change. No I/O here, so the
//! rules are tested (and property-tested) on their own.
//!
//! One module per mode, as in the executor: [`backup`], [`merge`] (`sync` and `sync -1`),
//! [`uidl`] (sources whose UIDs are positions: POP3) and [`import`]. Planning is two-level
//! so that a large account never has to be held in memory at once: first the mailbox tree
//! (which mailboxes to create, delete, rename, sync), then one mailbox at a time (which
//! messages to save, expunge and re-flag).

pub mod backup;
pub mod import;
pub mod merge;
mod save_list;
pub mod uidl;

pub(crate) use backup::holds_uids_of;
pub use backup::{plan_mailbox, plan_tree};
pub use save_list::{SaveList, SaveListIter};

use std::fmt;

use crate::model::{Flags, MailboxContents, MailboxGuid, MailboxName, Uid, UidValidity};
use crate::storage::Capabilities;

/// What a sync run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Make the destination identical to the source (Dovecot's `backup`): destination-only
    /// mailboxes, messages and changes are reverted. The source is never written.
    #[default]
    Backup,
    /// Merge the source into the destination (Dovecot's `sync -1`): the source's new mail,
    /// expunges and flag changes arrive; the destination's own changes stay. The source is
    /// never written. See [`merge`].
    OneWay,
    /// Merge both ways (Dovecot's `sync`): run it with [`crate::run_two_way`].
    TwoWay,
    /// Copy messages into the destination under [`crate::SyncOptions::import_parent`]
    /// with new UIDs (Dovecot's `import`), skipping ones already there.
    Import,
}

/// Which of the two sides' GUIDs tell things apart, from both storages' [`Capabilities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ComparableGuids {
    /// Message GUIDs ([`Capabilities::message_guids`] on both sides): the same UID with
    /// different GUIDs is a different message, and the mailbox is rebuilt.
    pub messages: bool,
    /// Mailbox GUIDs ([`Capabilities::mailbox_guids`] on both sides): different GUIDs are
    /// different mailboxes, and the destination's is rebuilt. Otherwise a source GUID is
    /// one derived from the name ([`crate::derived_guid`]): the destination adopts it.
    pub mailboxes: bool,
}

impl ComparableGuids {
    /// What `source` and `destination` both keep persistently.
    pub fn between(source: Capabilities, destination: Capabilities) -> ComparableGuids {
        ComparableGuids {
            messages: source.message_guids && destination.message_guids,
            mailboxes: source.mailbox_guids && destination.mailbox_guids,
        }
    }
}

/// UIDNEXT as reported, but never at or below a UID that exists (servers get it wrong):
/// where new messages of a side may go.
pub(crate) fn effective_uid_next(contents: &MailboxContents) -> Uid {
    let after_last = contents.messages.iter().map(|m| m.uid).max().and_then(Uid::next);
    after_last.map_or(contents.status.uid_next, |after| contents.status.uid_next.max(after))
}

/// Mailbox-level changes for the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreePlan {
    /// Destination mailboxes to delete, children before parents.
    pub delete: Vec<MailboxName>,
    /// Source mailboxes to sync (created on the destination if missing), parents first.
    pub sync: Vec<MailboxName>,
    /// Names to subscribe on the destination.
    pub subscribe: Vec<MailboxName>,
    /// Names to unsubscribe on the destination.
    pub unsubscribe: Vec<MailboxName>,
}

impl TreePlan {
    /// True when the tree needs no change (mailboxes may still need message changes).
    pub fn is_tree_unchanged(&self) -> bool {
        self.delete.is_empty() && self.subscribe.is_empty() && self.unsubscribe.is_empty()
    }
}

/// Why a destination mailbox must be deleted and rebuilt from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecreateReason {
    /// The two sides' UIDVALIDITY differ, so no destination UID means the same message.
    UidValidityChanged {
        /// The source's UIDVALIDITY.
        source: UidValidity,
        /// The destination's.
        destination: UidValidity,
    },
    /// Both sides have persistent mailbox GUIDs and they differ.
    GuidChanged,
    /// The destination has used UIDs the source has not reached yet.
    DestinationAhead {
        /// The source's UIDNEXT.
        source: Uid,
        /// The destination's UIDNEXT.
        destination: Uid,
    },
    /// A source message's UID is below the destination's UIDNEXT but missing there, and a
    /// UID below UIDNEXT cannot be assigned any more.
    UidNotAssignable(Uid),
    /// The same UID holds different messages on the two sides (by GUID).
    UidConflict(Uid),
}

impl fmt::Display for RecreateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecreateReason::UidValidityChanged { source, destination } => {
                write!(
                    f,
                    "UIDVALIDITY changed ({destination} on the destination, {source} on the source)"
                )
            }
            RecreateReason::GuidChanged => f.write_str("mailbox GUIDs differ"),
            RecreateReason::DestinationAhead { source, destination } => {
                write!(f, "destination UIDNEXT {destination} is beyond the source's {source}")
            }
            RecreateReason::UidNotAssignable(uid) => {
                write!(f, "UID {uid} is missing on the destination but below its UIDNEXT")
            }
            RecreateReason::UidConflict(uid) => {
                write!(f, "UID {uid} is a different message on each side")
            }
        }
    }
}

/// What happens to the destination mailbox itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailboxAction {
    /// It exists and is updated in place.
    Update,
    /// It does not exist and is created with the source's UIDVALIDITY.
    Create,
    /// It exists but cannot be reconciled: deleted and rebuilt.
    Recreate(RecreateReason),
    /// It would have to be rebuilt, which a run with message filters never does (it would
    /// delete mail outside the filter): left unchanged and reported.
    Blocked(RecreateReason),
}

/// Message-level changes for one destination mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxPlan {
    /// The mailbox.
    pub mailbox: MailboxName,
    /// Create, recreate or update.
    pub action: MailboxAction,
    /// Destination UIDs to expunge.
    pub expunge: Vec<Uid>,
    /// New flags for destination messages.
    pub set_flags: Vec<(Uid, Flags)>,
    /// Source messages to copy, ascending by UID, each saved under its source UID.
    pub save: SaveList,
    /// UIDNEXT the destination must reach at the end.
    pub uid_next: Option<Uid>,
    /// Source messages inside the filters that a filtered run cannot save (their UID is
    /// below the destination's UIDNEXT, and only a rebuild could assign it).
    pub skipped: Vec<Uid>,
    /// A new mailbox GUID for the existing destination mailbox: the source's GUID, derived
    /// from its name ([`crate::derived_guid`]), where the destination holds another one
    /// (written by an older version, or by hand). UIDVALIDITY, UIDs and messages stay.
    pub set_guid: Option<MailboxGuid>,
    /// A [`MailboxAction::Recreate`] that must not take the source's UIDVALIDITY: the
    /// destination mailbox already holds it (or holds the source's UIDs under one of its
    /// own), so UIDs it gave out under it, to messages of its own, could name other
    /// messages after the rebuild. The rebuilt mailbox takes a new UIDVALIDITY of the
    /// destination's and remembers the source's
    /// ([`crate::MailboxStatus::source_uid_validity`]); the source's UIDs stay.
    pub new_uid_validity: bool,
}

impl MailboxPlan {
    /// The plan of a mailbox with nothing to do (an [`MailboxAction::Update`] with no
    /// changes): what a mailbox neither side changed since the last run gets, and the
    /// start of a plan of one's own.
    pub fn unchanged(mailbox: MailboxName) -> MailboxPlan {
        MailboxPlan {
            mailbox,
            action: MailboxAction::Update,
            expunge: Vec::new(),
            set_flags: Vec::new(),
            save: SaveList::new(),
            uid_next: None,
            skipped: Vec::new(),
            set_guid: None,
            new_uid_validity: false,
        }
    }

    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.action == MailboxAction::Update
            && self.expunge.is_empty()
            && self.set_flags.is_empty()
            && self.save.is_empty()
            && self.uid_next.is_none()
            && self.skipped.is_empty()
            && self.set_guid.is_none()
    }
}
