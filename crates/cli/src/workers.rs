//! More connections for `--parallel-folders`: the engine's workers open the source and
//! the destination again through the same code as the run's first connection.

use std::collections::{BTreeMap, BTreeSet};

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::{
    Capabilities, Connector, ErrorKind, MailboxChanges, MailboxContents, MailboxInfo, MailboxName,
    MailboxStamp, MailboxStatus, MessageSink, Skip, Storage, StorageError, Uid,
};

use crate::exit::CliError;
use crate::location::Location;
use crate::open::{self, Access, Opened};

/// Opens a worker's pair of connections.
pub(crate) struct Workers<'a> {
    pub(crate) source: &'a Location,
    pub(crate) destination: &'a Location,
    pub(crate) access: Access<'a>,
}

impl Connector for Workers<'_> {
    type Source = Opened;
    type Destination = MaildirStorage;

    fn open_source(&self) -> Result<Opened, StorageError> {
        open::open_source(self.source, &self.access, "source").map_err(storage_error)
    }

    fn open_destination(&self) -> Result<MaildirStorage, StorageError> {
        match open::open_destination(self.destination, self.access.settings, "destination") {
            Ok(Opened::Maildir(maildir)) => Ok(maildir),
            Ok(other) => {
                other.close();
                Err(StorageError::new(ErrorKind::Usage, "the destination is not a Maildir"))
            }
            Err(error) => Err(storage_error(error)),
        }
    }

    fn close(&self, source: Opened, _destination: MaildirStorage) {
        // Deferred fsyncs are flushed once, after the run, by the first connection.
        source.close();
    }
}

fn storage_error(error: CliError) -> StorageError {
    match error {
        CliError::Storage { error, .. } => error,
        other => StorageError::new(ErrorKind::Usage, other.to_string()),
    }
}

/// An opened source is a storage through the one it holds (a worker's source is handed to
/// the engine by value).
impl Storage for Opened {
    fn describe(&self) -> String {
        self.as_storage_ref().describe()
    }

    fn capabilities(&self) -> Capabilities {
        self.as_storage_ref().capabilities()
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        self.as_storage().mailboxes()
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        self.as_storage().subscriptions()
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        self.as_storage().status(mailbox)
    }

    fn stamp(&mut self, mailbox: &MailboxName) -> Result<MailboxStamp, StorageError> {
        self.as_storage().stamp(mailbox)
    }

    fn take_skipped(&mut self) -> Vec<Skip> {
        self.as_storage().take_skipped()
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        self.as_storage().contents(mailbox)
    }

    fn changes_since(
        &mut self,
        mailbox: &MailboxName,
        token: &str,
    ) -> Result<Option<MailboxChanges>, StorageError> {
        self.as_storage().changes_since(mailbox, token)
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        self.as_storage().fetch(mailbox, uids, sink)
    }

    fn header_hashes(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, String>, StorageError> {
        self.as_storage().header_hashes(mailbox, uids)
    }
}
