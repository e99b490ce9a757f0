//! The mailbox a Maildir or sdbox adapter read last, kept open between reads.
//!
//! A `mailstore` mailbox handle keeps the view it read (a Maildir's uidlist and directory
//! scan, an sdbox's index), and finds each message by it. Opened afresh for every
//! [`Storage::fetch`](crate::Storage::fetch), each call re-read the whole view: a backup
//! that compares header hashes in chunks (benches/RESULTS-memory.md, Round 9) re-read a
//! 100 000-message folder once per chunk. The adapters keep the handle of the one
//! mailbox they fetched from last instead:
//!
//! - at most one, so memory does not grow with the number of mailboxes: fetching from
//!   another mailbox, or listing, or reading the status of any, lets it go first;
//! - dropped by every write through the adapter ([`crate::StorageMut`]: a writer, a
//!   create, delete, rename, recreate or renumber, subscriptions), so a read after our own
//!   write starts from a fresh view;
//! - stale views are still safe: a message whose file moved since (Dovecot or a client
//!   renamed it for a flag change) or that the view does not know is looked up again by
//!   a fresh read ([`mailstore::Mailbox::open_message`], [`mailstore::SdboxMailbox::open_message`]),
//!   as within a single call before; a mailbox that became another incarnation since
//!   (deleted and created again, another UIDVALIDITY) serves nothing until it is listed
//!   again.

use crate::model::MailboxName;

/// The handle (`M`) of the mailbox read last, by its engine name. A clone starts empty:
/// handles are not shared. Boxed: a storage that keeps nothing stays small (the CLI
/// moves storages by value).
pub(crate) struct Kept<M> {
    kept: Option<Box<(MailboxName, M)>>,
}

impl<M> Kept<M> {
    /// Nothing kept.
    pub(crate) fn new() -> Kept<M> {
        Kept { kept: None }
    }

    /// The kept handle of `name`, or the one `open` gives (then kept in place of any
    /// other, which goes first so that two views are never held at once).
    pub(crate) fn get_or_open<E>(
        &mut self,
        name: &MailboxName,
        open: impl FnOnce() -> Result<M, E>,
    ) -> Result<&M, E> {
        if self.kept.as_ref().is_some_and(|kept| kept.0 != *name) {
            self.kept = None;
        }
        let kept = match self.kept.take() {
            Some(kept) => self.kept.insert(kept),
            None => self.kept.insert(Box::new((name.clone(), open()?))),
        };
        Ok(&kept.1)
    }

    /// Keeps `handle` as `name`'s (one just read whole), in place of any other.
    pub(crate) fn keep(&mut self, name: &MailboxName, handle: M) {
        self.kept = None;
        self.kept = Some(Box::new((name.clone(), handle)));
    }

    /// Lets the kept handle go (and the view it holds).
    pub(crate) fn forget(&mut self) {
        self.kept = None;
    }
}

impl<M> Clone for Kept<M> {
    fn clone(&self) -> Kept<M> {
        Kept::new()
    }
}

impl<M> std::fmt::Debug for Kept<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("mailbox", &self.kept.as_ref().map(|kept| &kept.0)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> MailboxName {
        MailboxName::new([text.to_owned()]).expect("name")
    }

    #[test]
    fn keeps_one_handle_and_opens_another_mailbox_afresh() {
        let mut kept: Kept<u32> = Kept::new();
        let mut opened = 0;
        let mut open = |value| {
            opened += 1;
            Ok::<u32, ()>(value)
        };
        assert_eq!(kept.get_or_open(&name("a"), || open(1)), Ok(&1));
        assert_eq!(kept.get_or_open(&name("a"), || open(2)), Ok(&1));
        assert_eq!(kept.get_or_open(&name("b"), || open(3)), Ok(&3));
        assert_eq!(kept.get_or_open(&name("a"), || open(4)), Ok(&4));
        assert_eq!(kept.clone().get_or_open(&name("a"), || open(5)), Ok(&5));
        kept.forget();
        assert_eq!(kept.get_or_open(&name("a"), || open(6)), Ok(&6));
        assert_eq!(kept.get_or_open(&name("b"), || Err(())), Err(()));
        // A failed open keeps nothing.
        assert_eq!(kept.get_or_open(&name("b"), || open(7)), Ok(&7));
        assert_eq!(opened, 6);
    }
}
