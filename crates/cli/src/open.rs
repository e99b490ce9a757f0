//! Turns parsed locations into opened storages.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::adapters::pop3::{ImapPop3Storage, Pop3Storage};
use dsync_core::{ErrorKind, Storage, StorageError, StorageMut};
use imapc::{AuthMechanism, ConnectOptions, Credentials, Security, Timeouts, TlsOptions};
use mailstore::{Durability, Maildir, Options, Permissions};

use crate::credentials::{CredentialError, PASSWORD_ENV, SecretSource};
use crate::exit::CliError;
use crate::location::{ImapLocation, Location, Protocol, ServerLocation, Transport, expand};
use crate::logging::{PROTOCOL, RawLog};
use crate::settings::{ServerSettings, Settings};

/// An opened storage.
pub(crate) enum Opened {
    Imap(Box<ImapStorage>),
    Pop3(Box<Pop3Storage>),
    ImapPop3(Box<ImapPop3Storage>),
    Maildir(MaildirStorage),
}

impl Opened {
    pub(crate) fn as_storage(&mut self) -> &mut dyn Storage {
        match self {
            Opened::Imap(imap) => imap.as_mut(),
            Opened::Pop3(pop3) => pop3.as_mut(),
            Opened::ImapPop3(pair) => pair.as_mut(),
            Opened::Maildir(maildir) => maildir,
        }
    }

    /// The read side, shared.
    pub(crate) fn as_storage_ref(&self) -> &dyn Storage {
        match self {
            Opened::Imap(imap) => imap.as_ref(),
            Opened::Pop3(pop3) => pop3.as_ref(),
            Opened::ImapPop3(pair) => pair.as_ref(),
            Opened::Maildir(maildir) => maildir,
        }
    }

    /// The write side, for storages that have one.
    pub(crate) fn as_storage_mut(&mut self) -> Option<&mut dyn StorageMut> {
        match self {
            Opened::Maildir(maildir) => Some(maildir),
            _ => None,
        }
    }

    /// The Maildir root, for a Maildir.
    pub(crate) fn maildir_root(&self) -> Option<PathBuf> {
        match self {
            Opened::Maildir(maildir) => Some(maildir.maildir().location().root().to_path_buf()),
            _ => None,
        }
    }

    /// For a Maildir, the owner, group and modes of what it creates (derived from its
    /// root, or as configured), for our own files kept in it.
    pub(crate) fn maildir_permissions(
        &self,
        side: &'static str,
    ) -> Option<Result<Permissions, CliError>> {
        match self {
            Opened::Maildir(maildir) => {
                Some(maildir.permissions().map_err(|error| CliError::Storage { side, error }))
            }
            _ => None,
        }
    }

    /// A Maildir's folders whose `LAYOUT=fs` directories stand where its own files belong
    /// (older versions created them) are moved aside; one warning line per folder.
    pub(crate) fn repair_reserved_names(&self) -> Result<Vec<String>, StorageError> {
        match self {
            Opened::Maildir(maildir) => maildir.repair_reserved_names(),
            _ => Ok(Vec::new()),
        }
    }

    /// Flushes what deferred durability left unsynced.
    pub(crate) fn finish(&self) -> Result<(), StorageError> {
        match self {
            Opened::Maildir(maildir) => maildir.sync_to_disk(),
            _ => Ok(()),
        }
    }

    /// An IMAP source was asked for message GUIDs and refused them.
    pub(crate) fn refused_message_guids(&self) -> bool {
        matches!(self, Opened::Imap(imap) if imap.message_guids() == Some(false))
    }

    /// What the storage itself has to say (tolerated pop3-migration mismatches).
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Opened::Imap(imap) => imap.take_warnings(),
            Opened::ImapPop3(pair) => pair.take_warnings(),
            _ => Vec::new(),
        }
    }

    /// Logs out of a server (errors are of no consequence any more). POP3 ends with QUIT,
    /// which deletes nothing: dsync never marks a message deleted.
    pub(crate) fn close(self) {
        match self {
            Opened::Imap(imap) => {
                let _ = imap.logout();
            }
            Opened::Pop3(pop3) => {
                let _ = pop3.quit();
            }
            Opened::ImapPop3(pair) => {
                let _ = pair.into_imap().logout();
            }
            Opened::Maildir(_) => {}
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
    /// Ask IMAP servers for message GUIDs (`-a` copies by them).
    pub(crate) message_guids: bool,
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
    // As imap:// and pop3:// do: STARTTLS unless `-o imapc_ssl=no` asks for clear text.
    let transport = server.transport.unwrap_or(Transport::StartTls);
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
        Location::Pop3(pop3) => {
            let (options, credentials) = pop3_login(pop3, access)?;
            tracing::info!("connecting to {location}");
            let storage = Pop3Storage::connect(&options, &credentials)
                .map_err(|error| CliError::Storage { side, error })?;
            Ok(Opened::Pop3(Box::new(storage)))
        }
        Location::ImapPop3 { imap, pop3 } => {
            let imap = connect_imap(imap, access, side)?;
            let (options, credentials) = pop3_login(pop3, access)?;
            let settings = access.settings.pop3_migration;
            let pair = ImapPop3Storage::connect(imap, options, credentials, settings)
                .map_err(|error| CliError::Storage { side, error })?;
            Ok(Opened::ImapPop3(Box::new(pair)))
        }
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
            let mut options = Options::default()
                .with_durability(durability)
                .with_owner(settings.owner, settings.group);
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

/// The password or token for a connection, read now (a refreshed token is picked up).
fn read_secret(access: &Access<'_>) -> Result<mailnet::Secret<String>, CliError> {
    match &access.secret {
        Some(source) => source.read(),
        None => SecretSource::Env(PASSWORD_ENV.into()).read().map_err(|error| match error {
            CredentialError::Missing(_) => CredentialError::Missing(None),
            other => other,
        }),
    }
    .map_err(CliError::Credentials)
}

/// The login and the master user: `user*master` is Dovecot's master-user login;
/// `--master-user` (or `-o imapc_master_user` / `-o pop3c_master_user` for its protocol)
/// says the same.
fn login_names(location: &ServerLocation, settings: &Settings) -> (String, Option<String>) {
    match (settings.master_user_for(location.protocol), location.user.rsplit_once('*')) {
        (Some(master), _) => (location.user.clone(), Some(master.to_owned())),
        (None, Some((user, master))) if !user.is_empty() && !master.is_empty() => {
            (user.to_owned(), Some(master.to_owned()))
        }
        (None, _) => (location.user.clone(), None),
    }
}

fn tls_options(settings: &Settings) -> TlsOptions {
    let mut tls = TlsOptions::new();
    if let Some(ca_file) = &settings.ca_file {
        tls = tls.ca_file(ca_file);
    }
    if let Some(ca_dir) = &settings.ca_dir {
        tls = tls.ca_dir(ca_dir);
    }
    for fingerprint in &settings.fingerprints {
        tls = tls.pin_fingerprint(*fingerprint);
    }
    if settings.accept_invalid_certs {
        tls = tls.dangerous_accept_invalid_certs(true);
    }
    tls
}

fn timeouts(settings: &Settings) -> Timeouts {
    let timeout = Duration::from_secs(settings.timeout.max(1));
    Timeouts {
        connect: timeout.min(Duration::from_secs(settings.connect_timeout.max(1))),
        read: Some(timeout),
        write: Some(timeout),
    }
}

fn connect_imap(
    location: &ImapLocation,
    access: &Access<'_>,
    side: &'static str,
) -> Result<ImapStorage, CliError> {
    let settings = access.settings;
    let secret = read_secret(access)?;
    let security = match location.transport {
        Transport::Plain => Security::Plain,
        Transport::Tls => Security::Tls,
        Transport::StartTls => Security::StartTls,
    };
    let mut options = ConnectOptions::new(location.host.clone(), location.port, security)
        .tls(tls_options(settings))
        .timeouts(timeouts(settings));
    if let Some(count) = settings.prefetch_count {
        options = options.prefetch_count(count);
    }
    if let Some(bytes) = settings.max_line_length {
        let mut limits = imapc::proto::Limits { max_line_len: bytes, ..Default::default() };
        limits.max_response_len = limits.max_response_len.max(bytes);
        options = options.limits(limits);
    }
    if access.debug || access.rawlog.is_some() {
        options = options.trace(trace(access.debug, access.rawlog.clone()));
    }
    let (user, master) = login_names(location, settings);
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
    let mut storage = ImapStorage::connect(&options, &credentials)
        .map_err(|error| CliError::Storage { side, error })?;
    if access.message_guids {
        storage.fetch_message_guids();
    }
    if let Some(prefix) = &settings.imapc.list_prefix {
        storage.set_list_prefix(prefix).map_err(|error| CliError::Storage { side, error })?;
    }
    Ok(storage)
}

/// Connection options and credentials for a POP3 server (AUTH PLAIN when offered, else
/// USER/PASS; master users as for IMAP).
fn pop3_login(
    location: &ServerLocation,
    access: &Access<'_>,
) -> Result<(pop3c::ConnectOptions, pop3c::Credentials), CliError> {
    let settings = access.settings;
    if access.secret.as_ref().is_some_and(SecretSource::is_oauth2) {
        return Err(CliError::Usage(format!(
            "{location}: OAuth2 tokens are for IMAP; POP3 needs a password"
        )));
    }
    let secret = read_secret(access)?;
    let security = match location.transport {
        Transport::Plain => pop3c::Security::Plain,
        Transport::Tls => pop3c::Security::Tls,
        Transport::StartTls => pop3c::Security::StartTls,
    };
    let mut options = pop3c::ConnectOptions::new(location.host.clone(), location.port, security)
        .tls(tls_options(settings))
        .timeouts(timeouts(settings))
        .pipelining(!settings.pop3c.no_pipelining);
    if access.debug || access.rawlog.is_some() {
        options = options.trace(trace(access.debug, access.rawlog.clone()));
    }
    let (user, master) = login_names(location, settings);
    let password = secret.into_inner();
    let credentials = match master {
        Some(master) => pop3c::Credentials::master(user, master, password),
        None => pop3c::Credentials::new(user, password),
    };
    Ok((options, credentials))
}

/// A protocol trace (IMAP and POP3 alike): `-D` lines through tracing, and the raw log
/// file.
fn trace(debug: bool, rawlog: Option<RawLog>) -> mailnet::Trace {
    mailnet::Trace::new(move |direction, line| {
        let arrow = match direction {
            mailnet::TraceDirection::Sent => "C:",
            mailnet::TraceDirection::Received => "S:",
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
/// The root and the lock file are created with the mail's `permissions`.
pub(crate) fn lock_destination(
    root: &Path,
    permissions: &Permissions,
    timeout: Duration,
) -> Result<DestinationLock, CliError> {
    let path = root.join("dsync-rs.lock");
    let io_error = |error: std::io::Error| CliError::Storage {
        side: "destination",
        error: StorageError::with_source(
            ErrorKind::from_io(&error),
            format!("lock {}", path.display()),
            error,
        ),
    };
    // No leading dot: in a Maildir++ root a dot-name is a folder.
    let file = permissions
        .create_dir_all(root)
        .and_then(|()| permissions.open_or_create(&path, false))
        .map_err(|error| CliError::Storage {
            side: "destination",
            error: dsync_core::adapters::maildir::convert_error(error),
        })?;
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
        let permissions = Permissions::private();
        let held = lock_destination(&root, &permissions, Duration::ZERO).expect("first lock");
        let started = Instant::now();
        let error =
            lock_destination(&root, &permissions, Duration::from_millis(300)).expect_err("locked");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(error.exit_code(), 75, "{error}");
        assert!(error.to_string().contains("locked by another dsync"), "{error}");
        drop(held);
        lock_destination(&root, &permissions, Duration::ZERO).expect("free again");
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

        // Without imapc_ssl / pop3c_ssl: STARTTLS on the plain port, as imap:// means;
        // clear text only with `no`.
        settings.imapc.transport = None;
        settings.pop3c.host = Some("old.example.com".into());
        for (protocol, expected) in [
            (Protocol::Imap, "imap://bob@old.example.com:143"),
            (Protocol::Pop3, "pop3://bob@old.example.com:110"),
        ] {
            let resolved = resolve(Location::FromSettings(protocol), &settings, Some("bob"))
                .expect("resolved");
            assert_eq!(resolved.to_string(), expected);
        }
        settings.imapc.transport = Some(Transport::Plain);
        let plain = resolve(Location::FromSettings(Protocol::Imap), &settings, Some("bob"));
        assert_eq!(plain.expect("resolved").to_string(), "imap://bob@old.example.com:143?tls=none");
    }
}
