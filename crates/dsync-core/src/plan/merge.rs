//! `sync` (two-way) and `sync -1` (one-way), planned in three steps: renames found by
//! mailbox GUID ([`next_rename`]), one step per folder ([`plan_folders`], and
//! [`plan_rebuild`] once a folder's copies are read), then [`plan_merge`] merges one
//! mailbox's messages on both sides (the rules of Dovecot's `dsync-mailbox-import.c`);
//! subscriptions by [`plan_subscriptions`].

mod folders;
mod mailbox;
mod renames;
pub mod streamed;
mod subscriptions;

pub use crate::state::MergeBase;
pub(crate) use folders::changed_guid;
pub use folders::{
    FolderInput, FolderStep, Incarnation, KeepReason, plan_folders, plan_rebuild, token_needed,
};
pub use mailbox::{
    MergeMode, MergePlan, MergeSave, MergeView, Origin, SidePlan, merge_flags, plan_merge,
};
pub use renames::{Listed, Rename, move_state, next_history_rename, next_rename};
pub use subscriptions::{Subscribed, SubscriptionPlan, plan_subscriptions, record_subscriptions};

/// Mailbox names for the table tests, written with `/` between levels.
#[cfg(test)]
mod test_names {
    use std::collections::BTreeSet;

    use crate::model::MailboxName;

    pub(super) fn name(text: &str) -> MailboxName {
        MailboxName::split(text, Some('/')).expect("valid")
    }

    pub(super) fn names(list: &str) -> BTreeSet<MailboxName> {
        list.split_whitespace().map(name).collect()
    }
}
