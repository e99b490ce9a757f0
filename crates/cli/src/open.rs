//! Turns parsed locations into opened storages.
//!
//! POP3 locations (`pop3://`, `pop3s://`, the IMAP+POP3 pair, `pop3c:`) are parsed
//! and resolved here but refused in [`not_yet`] until `dsync_core::adapters::pop3` exists;
//! wiring it in is one arm in [`open_source`] (connect like [`connect_imap`] does) and
//! one in [`Opened`].

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::{ErrorKind, Storage, StorageError, StorageMut};
use imapc::{AuthMechanism, ConnectOptions, Credentials, Security, Timeouts, TlsOptions, Trace};
use mailstore::{Durability, Maildir, Options};

use crate::credentials::{CredentialError, PASSWORD_ENV, SecretSource};
use crate::exit::CliError;
use crate::location::{ImapLocation, Location, Protocol, ServerLocation, Transport, expand};
use crate::logging::{PROTOCOL, RawLog};
use crate::settings::{ServerSettings, Settings};

/// An opened storage.
pub(crate) enum Opened {
    Imap(Box<ImapStorage>),
    Maildir(MaildirStorage),
}

impl Opened {
    pub(crate) fn as_storage(&mut self) -> &mut dyn Storage {
        match self {
            Opened::Imap(imap) => imap.as_mut(),
            Opened::Maildir(maildir) => maildir,
        }
    }

    /// The write side, for storages that have one.
    pub(crate) fn as_storage_mut(&mut self) -> Option<&mut dyn StorageMut> {
        match self {
            Opened::Imap(_) => None,
            Opened::Maildir(maildir) => Some(maildir),
        }
    }

    /// The Maildir root, for a Maildir.
    pub(crate) fn maildir_root(&self) -> Option<PathBuf> {
        match self {
            Opened::Imap(_) => None,
            Opened::Maildir(maildir) => Some(maildir.maildir().location().root().to_path_buf()),
        }
    }

    /// Flushes what deferred durability left unsynced.
    pub(crate) fn finish(&self) -> Result<(), StorageError> {
        match self {
            Opened::Imap(_) => Ok(()),
            Opened::Maildir(maildir) => maildir.sync_to_disk(),
        }
    }

    /// Logs out of a server (errors are of no consequence any more).
    pub(crate) fn close(self) {
        if let Opened::Imap(imap) = self {
            let _ = imap.logout();
        }
    }
}

/// How to reach servers for one user.
#[derive(Clone)]
pub(crate) struct Access<'a> {
    pub(crate) settings: &'a Settings,
    /// The secret, already expanded for the user (`None`: `$DSYNC_PASSWORD`).
    pub(crate) secret: Option<SecretSource>,
    pub(crate) debug: bool,
    pub(crate) rawlog: Option<RawLog>,
}

/// Replaces `imapc:`/`pop3c:` by the server the `-o imapc_*` settings name, and refuses
/// what cannot be opened yet. `user` fills `%u` in `imapc_user`.
pub(crate) fn resolve(
    location: Location,
    settings: &Settings,
    user: Option<&str>,
) -> Result<Location, CliError> {
    let Location::FromSettings(protocol) = location else { return Ok(location) };
    let (server, prefix) = match protocol {
        Protocol::Imap => (&settings.imapc, "imapc"),
        Protocol::Pop3 => (&settings.pop3c, "pop3c"),
    };
    let resolved = from_settings(server, prefix, protocol, user)?;
    Ok(match protocol {
        Protocol::Imap => Location::Imap(resolved),
        Protocol::Pop3 => Location::Pop3(resolved),
    })
}

fn from_settings(
    server: &ServerSettings,
    prefix: &str,
    protocol: Protocol,
    user: Option<&str>,
) -> Result<ServerLocation, CliError> {
    let host = server.host.clone().ok_or_else(|| {
        CliError::Usage(format!("{prefix}: needs the server: -o {prefix}_host=HOST"))
    })?;
    let login = match (&server.user, user) {
        (Some(template), Some(user)) => expand(template, user),
        (Some(template), None) => template.clone(),
        (None, Some(user)) => user.to_owned(),
        (None, None) => {
            return Err(CliError::Usage(format!(
                "{prefix}: needs a user: -o {prefix}_user=USER or -u USER"
            )));
        }
    };
    let transport = server.transport.unwrap_or(Transport::Plain);
    let default_port = match (protocol, transport) {
        (Protocol::Imap, Transport::Tls) => 993,
        (Protocol::Imap, _) => 143,
        (Protocol::Pop3, Transport::Tls) => 995,
        (Protocol::Pop3, _) => 110,
    };
    Ok(ServerLocation {
        protocol,
        user: login,
        host,
        port: server.port.unwrap_or(default_port),
        transport,
    })
}

/// The error for locations whose storage does not exist yet.
pub(crate) fn not_yet(location: &Location) -> Option<CliError> {
    let what = match location {
        Location::Pop3(_) | Location::FromSettings(Protocol::Pop3) => {
            "POP3 locations are not supported yet (the engine's POP3 adapter is being written); use the imap:// URL of the same account meanwhile"
        }
        Location::ImapPop3 { .. } => {
            "IMAP+POP3 pairs (keeping POP3 UIDLs) are not supported yet (the engine's POP3 adapter is being written); use the imap:// URL alone meanwhile"
        }
        Location::Sdbox(_) => "sdbox: locations are not supported yet: use maildir:",
        _ => return None,
    };
    Some(CliError::Usage(format!("{location}: {what}")))
}

/// Opens a location to be read (a sync source, or either side of `verify`/`check`).
pub(crate) fn open_source(
    location: &Location,
    access: &Access<'_>,
    side: &'static str,
) -> Result<Opened, CliError> {
    if let Some(error) = not_yet(location) {
        return Err(error);
    }
    match location {
        Location::Maildir(text) => {
            let root = maildir_root(text)?;
            // A typo in the source path must not look like an empty mailbox: a backup would
            // then empty the destination.
            if !root.is_dir() {
                let error = StorageError::new(
                    ErrorKind::NotFound,
                    format!("{} does not exist", root.display()),
                );
                return Err(CliError::Storage { side, error });
            }
            let parsed = parse_maildir(text)?;
            let mut options = Options::default().with_read_only(true);
            if let Some(seconds) = access.settings.lock_timeout {
                options = options.with_lock_timeout(Duration::from_secs(seconds));
            }
            Ok(Opened::Maildir(MaildirStorage::from_maildir(Maildir::with_options(
                parsed, options,
            ))))
        }
        Location::Imap(imap) => Ok(Opened::Imap(Box::new(connect_imap(imap, access, side)?))),
        _ => Err(CliError::Usage(format!("{location}: cannot be opened"))),
    }
}

/// Opens a location to be written (a sync destination, or both sides of a two-way sync).
pub(crate) fn open_destination(
    location: &Location,
    settings: &Settings,
    side: &'static str,
) -> Result<Opened, CliError> {
    if let Some(error) = not_yet(location) {
        return Err(error);
    }
    match location {
        Location::Maildir(text) => {
            let parsed = parse_maildir(text)?;
            let durability =
                if settings.no_fsync { Durability::Deferred } else { Durability::Fsync };
            let mut options = Options::default().with_durability(durability);
            if let Some(seconds) = settings.lock_timeout {
                options = options.with_lock_timeout(Duration::from_secs(seconds));
            }
            Ok(Opened::Maildir(MaildirStorage::from_maildir(Maildir::with_options(
                parsed, options,
            ))))
        }
        _ => Err(CliError::Usage(format!(
            "{location}: IMAP destinations are not supported yet: the {side} must be maildir:PATH"
        ))),
    }
}

/// Refuses to use one Maildir as both sides.
pub(crate) fn check_distinct(a: &Location, b: &Location) -> Result<(), CliError> {
    if let (Location::Maildir(a), Location::Maildir(b)) = (a, b)
        && same_directory(&maildir_root(a)?, &maildir_root(b)?)
    {
        let error =
            StorageError::new(ErrorKind::Config, "source and destination are the same Maildir");
        return Err(CliError::Storage { side: "destination", error });
    }
    Ok(())
}

fn connect_imap(
    location: &ImapLocation,
    access: &Access<'_>,
    side: &'static str,
) -> Result<ImapStorage, CliError> {
    let settings = access.settings;
    // The secret is read at every connection: a refreshed OAuth2 token is picked up.
    let secret = match &access.secret {
        Some(source) => source.read(),
        None => SecretSource::Env(PASSWORD_ENV.into()).read().map_err(|error| match error {
            CredentialError::Missing(_) => CredentialError::Missing(None),
            other => other,
        }),
    }
    .map_err(CliError::Credentials)?;
    let security = match location.transport {
        Transport::Plain => Security::Plain,
        Transport::Tls => Security::Tls,
        Transport::StartTls => Security::StartTls,
    };
    let mut tls = TlsOptions::new();
    if let Some(ca_file) = &settings.ca_file {
        tls = tls.ca_file(ca_file);
    }
    if settings.accept_invalid_certs {
        tls = tls.dangerous_accept_invalid_certs(true);
    }
    let timeout = Duration::from_secs(settings.timeout.max(1));
    let timeouts = Timeouts {
        connect: timeout.min(Duration::from_secs(settings.connect_timeout.max(1))),
        read: Some(timeout),
        write: Some(timeout),
    };
    let mut options = ConnectOptions::new(location.host.clone(), location.port, security)
        .tls(tls)
        .timeouts(timeouts);
    if let Some(count) = settings.prefetch_count {
        options = options.prefetch_count(count);
    }
    if access.debug || access.rawlog.is_some() {
        options = options.trace(trace(access.debug, access.rawlog.clone()));
    }
    // `user*master` is Dovecot's master-user login; --master-user says the same.
    let (user, master) = match (&settings.master_user, location.user.rsplit_once('*')) {
        (Some(master), _) => (location.user.clone(), Some(master.clone())),
        (None, Some((user, master))) if !user.is_empty() && !master.is_empty() => {
            (user.to_owned(), Some(master.to_owned()))
        }
        (None, _) => (location.user.clone(), None),
    };
    let password = secret.into_inner();
    let mut credentials = match master {
        Some(master) => Credentials::master(user, master, password),
        None => Credentials::new(user, password),
    };
    let mechanism = match (settings.mechanism, &access.secret) {
        (Some(mechanism), _) => Some(mechanism),
        (None, Some(source)) if source.is_oauth2() => Some(AuthMechanism::XOAuth2),
        _ => None,
    };
    if let Some(mechanism) = mechanism {
        credentials = credentials.mechanism(mechanism);
    }
    tracing::info!("connecting to {location}");
    ImapStorage::connect(&options, &credentials).map_err(|error| CliError::Storage { side, error })
}

/// A protocol trace: `-D` lines through tracing, and the raw log file.
fn trace(debug: bool, rawlog: Option<RawLog>) -> Trace {
    Trace::new(move |direction, line| {
        let arrow = match direction {
            imapc::TraceDirection::Sent => "C:",
            imapc::TraceDirection::Received => "S:",
        };
        let line = line.trim_end();
        if debug {
            tracing::debug!(target: PROTOCOL, "{arrow} {line}");
        }
        if let Some(rawlog) = &rawlog
            && let Ok(mut file) = rawlog.lock()
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = writeln!(file, "{}.{:06} {arrow} {line}", now.as_secs(), now.subsec_micros());
        }
    })
}

/// Holds `dsync-rs.lock` in the destination root until dropped.
#[derive(Debug)]
pub(crate) struct DestinationLock {
    _file: File,
}

/// Takes the destination's lock (`-l SECS`), waiting up to `timeout` for another dsync.
pub(crate) fn lock_destination(
    root: &Path,
    timeout: Duration,
) -> Result<DestinationLock, CliError> {
    let io_error = |error: std::io::Error| CliError::Storage {
        side: "destination",
        error: StorageError::with_source(
            ErrorKind::from_io(&error),
            format!("lock {}", root.join("dsync-rs.lock").display()),
            error,
        ),
    };
    std::fs::create_dir_all(root).map_err(io_error)?;
    // No leading dot: in a Maildir++ root a dot-name is a folder.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("dsync-rs.lock"))
        .map_err(io_error)?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DestinationLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let error = StorageError::new(
                    ErrorKind::Temporary,
                    format!(
                        "{} is locked by another dsync (waited {}s)",
                        root.display(),
                        timeout.as_secs()
                    ),
                );
                return Err(CliError::Storage { side: "destination", error });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io_error(error)),
        }
    }
}

fn parse_maildir(location: &str) -> Result<mailstore::Location, CliError> {
    location.parse().map_err(|e: mailstore::Error| CliError::Usage(e.to_string()))
}

pub(crate) fn maildir_root(location: &str) -> Result<PathBuf, CliError> {
    Ok(parse_maildir(location)?.root().to_path_buf())
}

fn same_directory(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_dsync_waits_for_the_lock_then_fails_temporarily() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("Maildir");
        let held = lock_destination(&root, Duration::ZERO).expect("first lock");
        let started = Instant::now();
        let error = lock_destination(&root, Duration::from_millis(300)).expect_err("locked");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(error.exit_code(), 75, "{error}");
        assert!(error.to_string().contains("locked by another dsync"), "{error}");
        drop(held);
        lock_destination(&root, Duration::ZERO).expect("free again");
    }

    #[test]
    fn imapc_location_from_settings() {
        let mut settings = Settings::default();
        let missing = resolve(Location::FromSettings(Protocol::Imap), &settings, Some("bob"));
        assert!(missing.is_err());
        settings.imapc.host = Some("old.example.com".into());
        settings.imapc.transport = Some(Transport::Tls);
        settings.imapc.user = Some("%n".into());
        let resolved =
            resolve(Location::FromSettings(Protocol::Imap), &settings, Some("bob@example.com"))
                .expect("resolved");
        assert_eq!(resolved.to_string(), "imaps://bob@old.example.com:993");
        let pop3 = resolve(Location::FromSettings(Protocol::Pop3), &settings, Some("bob"));
        assert!(pop3.is_err(), "pop3c_host is not set");
    }
}
