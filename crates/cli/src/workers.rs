//! More connections for `--parallel-folders`: the engine's workers open the source and
//! the destination (a Maildir or an sdbox store, or an IMAP server) again through the same
//! code as the run's first connection.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::adapters::sdbox::SdboxStorage;
use dsync_core::history::{FolderHistory, MessageHistory};
use dsync_core::{
    Capabilities, Connector, ErrorKind, Failed, MailboxAttribute, MailboxChanges, MailboxContents,
    MailboxInfo, MailboxName, MailboxStamp, MailboxStatus, MessageListing, MessageSink, Observer,
    Report, Skip, Storage, StorageError, StorageMut, SyncOptions, Uid,
};

use crate::exit::CliError;
use crate::location::Location;
use crate::open::{self, Access, Opened};

/// True when `--parallel-folders` can open more connections for this pair in `mode`:
/// a source that can be opened again with stable UIDs (IMAP, Maildir, sdbox), into a
/// Maildir or an sdbox store (backup), or into an IMAP server (backup and `sync -1`).
pub(crate) fn supported(mode: dsync_core::Mode, source: &Location, destination: &Location) -> bool {
    use dsync_core::Mode;
    let source_ok = matches!(source, Location::Imap(_) | Location::Maildir(_) | Location::Sdbox(_));
    let destination_ok = match destination {
        Location::Maildir(_) | Location::Sdbox(_) => mode == Mode::Backup,
        Location::Imap(_) => matches!(mode, Mode::Backup | Mode::OneWay),
        _ => false,
    };
    source_ok && destination_ok
}

/// A backup (or into an IMAP server, a `sync -1`) over up to `parallel` workers
/// ([`dsync_core::run_parallel`]), each opening `locations` (the source, and a Maildir,
/// an sdbox store or an IMAP server as the destination) again; `stores` are the run's
/// first connections.
pub(crate) fn run(
    options: &SyncOptions,
    stores: (&mut dyn Storage, &mut dyn StorageMut),
    observer: &mut dyn Observer,
    locations: (&Location, &Location),
    access: Access<'_>,
    parallel: usize,
) -> Result<Report, Failed> {
    let ((source, destination), (from, to)) = (stores, locations);
    match to {
        Location::Sdbox(_) => {
            let workers = Workers::<SdboxStorage>::new(from, to, access);
            dsync_core::run_parallel(options, source, destination, observer, &workers, parallel)
        }
        Location::Imap(_) => {
            let workers = Workers::<ImapStorage>::new(from, to, access);
            dsync_core::run_parallel(options, source, destination, observer, &workers, parallel)
        }
        _ => {
            let workers = Workers::<MaildirStorage>::new(from, to, access);
            dsync_core::run_parallel(options, source, destination, observer, &workers, parallel)
        }
    }
}

/// A destination the workers can write, each worker through a store or a session of its
/// own: a Maildir or an sdbox store (Dovecot's locks keep their shared files consistent;
/// each mailbox is written by one worker at a time), or an IMAP server.
trait WorkerDestination: StorageMut + Send + Sized {
    /// The store `opened` holds, or `opened` back when it is of another kind.
    fn take(opened: Opened) -> Result<Self, Opened>;

    /// Opens `location` as the run's first destination was opened.
    fn open(location: &Location, access: &Access<'_>) -> Result<Opened, CliError> {
        open::open_destination(location, access.settings, "destination")
    }

    /// Ends a worker's destination. Deferred fsyncs of a store are flushed once, after
    /// the run, by the first connection.
    fn close(self) {}
}

impl WorkerDestination for MaildirStorage {
    fn take(opened: Opened) -> Result<Self, Opened> {
        match opened {
            Opened::Maildir(maildir) => Ok(maildir),
            other => Err(other),
        }
    }
}

impl WorkerDestination for SdboxStorage {
    fn take(opened: Opened) -> Result<Self, Opened> {
        match opened {
            Opened::Sdbox(sdbox) => Ok(sdbox),
            other => Err(other),
        }
    }
}

impl WorkerDestination for ImapStorage {
    fn take(opened: Opened) -> Result<Self, Opened> {
        match opened {
            Opened::Imap(imap) => Ok(*imap),
            other => Err(other),
        }
    }

    fn open(location: &Location, access: &Access<'_>) -> Result<Opened, CliError> {
        match location {
            Location::Imap(imap) => open::open_imap_destination(imap, access),
            other => open::open_destination(other, access.settings, "destination"),
        }
    }

    fn close(self) {
        // Told LOGOUT, as the first connection is; its answer no longer matters.
        let _ = self.logout();
    }
}

/// Opens a worker's pair of connections; `D` is the kind of store the destination is.
struct Workers<'a, D> {
    source: &'a Location,
    destination: &'a Location,
    access: Access<'a>,
    kind: PhantomData<fn() -> D>,
}

impl<'a, D: WorkerDestination> Workers<'a, D> {
    /// Workers copying from `source` to `destination` (a store of kind `D`).
    fn new(source: &'a Location, destination: &'a Location, access: Access<'a>) -> Self {
        Workers { source, destination, access, kind: PhantomData }
    }
}

impl<D: WorkerDestination> Connector for Workers<'_, D> {
    type Source = Opened;
    type Destination = D;

    fn open_source(&self) -> Result<Opened, StorageError> {
        open::open_source(self.source, &self.access, "source").map_err(storage_error)
    }

    fn open_destination(&self) -> Result<D, StorageError> {
        match D::open(self.destination, &self.access) {
            Ok(opened) => D::take(opened).map_err(|other| {
                other.close();
                StorageError::new(ErrorKind::Usage, "the destination changed its kind")
            }),
            Err(error) => Err(storage_error(error)),
        }
    }

    fn close(&self, source: Opened, destination: D) {
        source.close();
        destination.close();
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

    fn take_warnings(&mut self) -> Vec<String> {
        Opened::take_warnings(self)
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        self.as_storage().contents(mailbox)
    }

    // Every method with a default is passed on too: the default `listing` reads the
    // folder whole (and a `maildir:` source then keeps no listing for the next run).
    fn listing(&mut self, mailbox: &MailboxName) -> Result<MessageListing<'_>, StorageError> {
        self.as_storage().listing(mailbox)
    }

    fn list_ahead(&mut self, mailbox: &MailboxName, after_fetch: bool) {
        self.as_storage().list_ahead(mailbox, after_fetch);
    }

    fn attributes(&mut self, mailbox: &MailboxName) -> Result<Vec<MailboxAttribute>, StorageError> {
        self.as_storage().attributes(mailbox)
    }

    fn message_history(
        &mut self,
        mailbox: &MailboxName,
    ) -> Result<Option<MessageHistory>, StorageError> {
        self.as_storage().message_history(mailbox)
    }

    fn folder_history(&mut self) -> Result<FolderHistory, StorageError> {
        self.as_storage().folder_history()
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
