//! `sync` (two-way) and `sync -1` (one-way): [`plan_merge`] merges one mailbox's messages
//! on both sides (the rules of Dovecot's `dsync-mailbox-import.c`).

mod mailbox;

pub use crate::state::MergeBase;
pub use mailbox::{
    MergeMode, MergePlan, MergeSave, MergeView, Origin, SidePlan, merge_flags, plan_merge,
};
