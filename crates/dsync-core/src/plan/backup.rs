//! `backup`: the destination becomes identical to the source. [`plan_tree`] decides which
//! mailboxes to create, delete and (un)subscribe; [`plan_mailbox`], one mailbox at a time,
//! which messages to save, expunge and re-flag, and when to rebuild.

mod delta;
mod mailbox;
pub mod streamed;
mod tree;

pub use delta::{base_after, plan_delta, plan_delta_in};
pub(crate) use mailbox::holds_uids_of;
pub use mailbox::plan_mailbox;
pub use tree::plan_tree;
