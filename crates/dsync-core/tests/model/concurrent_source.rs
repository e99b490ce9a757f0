//! Mail that reaches the source while a run copies must arrive with the next run, also
//! when that run trusts its saved state to skip unchanged mailboxes: the state records
//! the source as it was listed, not as it was after the copy.

use std::collections::BTreeSet;

use dsync_core::memory::MemoryStorage;
use dsync_core::{
    Capabilities, Flags, MailboxContents, MailboxInfo, MailboxName, MailboxStatus, MessageSink,
    Mode, NoObserver, Storage, StorageError, SyncOptions, Uid, UidValidity,
};

/// A source whose INBOX receives one message while its bodies are being fetched.
struct DeliveringSource {
    inner: MemoryStorage,
    delivered: bool,
}

impl Storage for DeliveringSource {
    fn describe(&self) -> String {
        "delivering".into()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        self.inner.mailboxes()
    }
    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        self.inner.subscriptions()
    }
    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        self.inner.status(mailbox)
    }
    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        self.inner.contents(mailbox)
    }
    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        self.inner.fetch(mailbox, uids, sink)?;
        if !self.delivered {
            self.delivered = true;
            let inbox = self.inner.mailbox_mut(mailbox).expect("mailbox");
            inbox.append(
                b"Subject: late\r\n\r\narrived during the copy\r\n",
                Flags::default(),
                None,
            );
        }
        Ok(())
    }
}

#[test]
fn mail_delivered_during_a_copy_arrives_with_the_next_run() {
    let mut inner = MemoryStorage::new();
    let inbox = MailboxName::inbox();
    let mailbox = inner.add_mailbox(&inbox, UidValidity::new(5).expect("non-zero"));
    mailbox.append(b"Subject: first\r\n\r\none\r\n", Flags::default(), None);
    let mut source = DeliveringSource { inner, delivered: false };
    let mut destination = MemoryStorage::with_guids();

    let first = dsync_core::run(
        &SyncOptions::new(Mode::Backup),
        &mut source,
        &mut destination,
        &mut NoObserver,
    )
    .expect("first run");
    assert_eq!(first.totals().saved, 1, "the late message was not listed yet");
    let second = dsync_core::run(
        &SyncOptions::new(Mode::Backup).state(first.state),
        &mut source,
        &mut destination,
        &mut NoObserver,
    )
    .expect("second run");
    assert_eq!(second.totals().saved, 1, "the saved state hid the late message");
    assert_eq!(destination.mailbox(&inbox).expect("inbox").messages.len(), 2);
}
