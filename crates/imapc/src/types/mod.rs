//! Value types shared by the codec and the client.

mod capability;
mod date;
mod flag;
mod mailbox;
mod sequence;

pub use capability::Capabilities;
pub use date::{format_internal_date, parse_internal_date};
pub use flag::Flag;
pub(crate) use flag::is_atom_char;
pub use mailbox::MailboxName;
pub use sequence::{SeqBound, SeqRange, SequenceSet, Uid, UidValidity};
