//! Turns parsed locations into opened storages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::{ErrorKind, Storage, StorageError, StorageMut};
use imapc::{ConnectOptions, Credentials, Security, Timeouts, TlsOptions};
use mailstore::Durability;

use crate::args::SyncArgs;
use crate::credentials;
use crate::exit::CliError;
use crate::location::{ImapLocation, Location, Transport};

/// An opened source.
pub(crate) enum Source {
    Imap(Box<ImapStorage>),
    Maildir(MaildirStorage),
}

impl Source {
    pub(crate) fn as_storage(&mut self) -> &mut dyn Storage {
        match self {
            Source::Imap(imap) => imap.as_mut(),
            Source::Maildir(maildir) => maildir,
        }
    }
}

/// An opened destination.
pub(crate) enum Destination {
    Maildir(MaildirStorage),
}

impl Destination {
    pub(crate) fn as_storage_mut(&mut self) -> &mut dyn StorageMut {
        match self {
            Destination::Maildir(maildir) => maildir,
        }
    }

    /// The default place of the state file: the destination's root directory.
    pub(crate) fn default_state_file(&self) -> PathBuf {
        match self {
            Destination::Maildir(maildir) => {
                maildir.maildir().location().root().join("dsync-rs-state")
            }
        }
    }

    /// Flushes what deferred durability left unsynced.
    pub(crate) fn finish(&self) -> Result<(), StorageError> {
        match self {
            Destination::Maildir(maildir) => maildir.sync_to_disk(),
        }
    }
}

/// Opens both sides, refusing combinations that could only do harm.
pub(crate) fn pair(
    source: &Location,
    destination: &Location,
    args: &SyncArgs,
) -> Result<(Source, Destination), CliError> {
    if let (Location::Maildir(a), Location::Maildir(b)) = (source, destination)
        && same_directory(&maildir_root(a)?, &maildir_root(b)?)
    {
        let error =
            StorageError::new(ErrorKind::Config, "source and destination are the same Maildir");
        return Err(CliError::Storage { side: "destination", error });
    }
    let destination = match destination {
        Location::Maildir(location) => {
            let durability = if args.no_fsync { Durability::Deferred } else { Durability::Fsync };
            let storage = MaildirStorage::open(location, durability)
                .map_err(|error| CliError::Storage { side: "destination", error })?;
            Destination::Maildir(storage)
        }
        Location::Imap(_) => {
            return Err(CliError::Usage(String::from(
                "IMAP destinations are not supported yet: the destination must be maildir:PATH",
            )));
        }
    };
    let source = match source {
        Location::Maildir(location) => {
            let root = maildir_root(location)?;
            // A typo in the source path must not look like an empty mailbox: a backup would
            // then empty the destination.
            if !root.is_dir() {
                let error = StorageError::new(
                    ErrorKind::NotFound,
                    format!("{} does not exist", root.display()),
                );
                return Err(CliError::Storage { side: "source", error });
            }
            let storage = MaildirStorage::open_read_only(location)
                .map_err(|error| CliError::Storage { side: "source", error })?;
            Source::Maildir(storage)
        }
        Location::Imap(imap) => Source::Imap(Box::new(open_imap(imap, args)?)),
    };
    Ok((source, destination))
}

fn open_imap(location: &ImapLocation, args: &SyncArgs) -> Result<ImapStorage, CliError> {
    let connection = &args.connection;
    let password = credentials::password(connection.password_file.as_deref())
        .map_err(CliError::Credentials)?;
    let security = match location.transport {
        Transport::Plain => Security::Plain,
        Transport::Tls => Security::Tls,
        Transport::StartTls => Security::StartTls,
    };
    let mut tls = TlsOptions::new();
    if let Some(ca_file) = &connection.ca_file {
        tls = tls.ca_file(ca_file);
    }
    let timeout = Duration::from_secs(connection.timeout.max(1));
    let timeouts = Timeouts {
        connect: timeout.min(Duration::from_secs(30)),
        read: Some(timeout),
        write: Some(timeout),
    };
    let options = ConnectOptions::new(location.host.clone(), location.port, security)
        .tls(tls)
        .timeouts(timeouts);
    let credentials = match &connection.master_user {
        Some(master) => {
            Credentials::master(location.user.clone(), master.clone(), password.expose().clone())
        }
        None => Credentials::new(location.user.clone(), password.expose().clone()),
    };
    ImapStorage::connect(&options, &credentials)
        .map_err(|error| CliError::Storage { side: "source", error })
}

fn maildir_root(location: &str) -> Result<PathBuf, CliError> {
    let parsed: mailstore::Location =
        location.parse().map_err(|e: mailstore::Error| CliError::Usage(e.to_string()))?;
    Ok(parsed.root().to_path_buf())
}

fn same_directory(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
