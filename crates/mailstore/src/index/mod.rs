//! Dovecot's mailbox index files, read and written as Dovecot 2.3.19.1 does: the
//! transaction log `dovecot.index.log` ([`log`]), the snapshot `dovecot.index`
//! ([`snapshot`]), their replay into a mailbox's state ([`state`]), and the files on disk
//! under the log's `fcntl` lock ([`files`], [`lock`]).
//!
//! Only the log is written: Dovecot replays it and writes its own `dovecot.index` when it
//! wants to. sdbox keeps every piece of a mailbox's state here (UIDVALIDITY, UIDs, flags,
//! keywords, modseqs, mailbox GUID); a Dovecot-served Maildir keeps its expunge history.

pub(crate) mod files;
pub(crate) mod lock;
pub(crate) mod log;
pub(crate) mod snapshot;
pub(crate) mod state;
