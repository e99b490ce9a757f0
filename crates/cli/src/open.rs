//! Turns parsed locations into opened storages.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::adapters::pop3::{ImapPop3Storage, Pop3Storage};
use dsync_core::adapters::remote::{DEFAULT_REMOTE_CMD, RemoteCommand, RemoteStorage};
use dsync_core::adapters::sdbox::SdboxStorage;
use dsync_core::{ErrorKind, Storage, StorageError, StorageMut};
use imapc::{AuthMechanism, ConnectOptions, Credentials, Security, Timeouts, TlsOptions};
use mailstore::{Durability, Maildir, Options, Permissions, Sdbox, SdboxLocation};

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
    Remote(Box<RemoteStorage>),
    Sdbox(SdboxStorage),
}

impl Opened {
    pub(crate) fn as_storage(&mut self) -> &mut dyn Storage {
        match self {
            Opened::Imap(imap) => imap.as_mut(),
            Opened::Pop3(pop3) => pop3.as_mut(),
            Opened::ImapPop3(pair) => pair.as_mut(),
            Opened::Maildir(maildir) => maildir,
            Opened::Remote(remote) => remote.as_mut(),
            Opened::Sdbox(sdbox) => sdbox,
        }
    }

    /// The read side, shared.
    pub(crate) fn as_storage_ref(&self) -> &dyn Storage {
        match self {
            Opened::Imap(imap) => imap.as_ref(),
            Opened::Pop3(pop3) => pop3.as_ref(),
            Opened::ImapPop3(pair) => pair.as_ref(),
            Opened::Maildir(maildir) => maildir,
            Opened::Remote(remote) => remote.as_ref(),
            Opened::Sdbox(sdbox) => sdbox,
        }
    }

    /// The write side, for storages that have one.
    pub(crate) fn as_storage_mut(&mut self) -> Option<&mut dyn StorageMut> {
        match self {
            Opened::Maildir(maildir) => Some(maildir),
            Opened::Sdbox(sdbox) => Some(sdbox),
            Opened::Imap(imap) => Some(imap.as_mut()),
            _ => None,
        }
    }

    /// The mail root, for a Maildir or an sdbox store (our lock and state file live there).
    pub(crate) fn maildir_root(&self) -> Option<PathBuf> {
        match self {
            Opened::Maildir(maildir) => Some(maildir.maildir().location().root().to_path_buf()),
            Opened::Sdbox(sdbox) => Some(sdbox.sdbox().location().root().to_path_buf()),
            _ => None,
        }
    }

    /// For a Maildir or an sdbox store, the owner, group and modes of what it creates
    /// (derived from its root, or as configured), for our own files kept in it.
    pub(crate) fn maildir_permissions(
        &self,
        side: &'static str,
    ) -> Option<Result<Permissions, CliError>> {
        match self {
            Opened::Maildir(maildir) => {
                Some(maildir.permissions().map_err(|error| CliError::Storage { side, error }))
            }
            Opened::Sdbox(sdbox) => {
                Some(sdbox.permissions().map_err(|error| CliError::Storage { side, error }))
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
            Opened::Sdbox(sdbox) => sdbox.sync_to_disk(),
            _ => Ok(()),
        }
    }

    /// Has a Maildir source keep its folders' last listings
    /// ([`MaildirStorage::keep_listings_in`]).
    pub(crate) fn keep_source_listings(&mut self, listings: &SourceListings) {
        if let Opened::Maildir(maildir) = self {
            let (prefix, permissions, write, read) = listings.clone();
            maildir.keep_listings_in(prefix, permissions, write, read);
        }
    }

    /// Has a Maildir source keep the UIDs of its mailboxes without `dovecot-uidlist` in
    /// files beginning with `prefix` ([`mailstore::Maildir::keep_uids_in`]), written unless
    /// this is a dry run.
    pub(crate) fn keep_source_uids(
        &self,
        (prefix, permissions, write): &(PathBuf, Permissions, bool),
    ) {
        if let Opened::Maildir(maildir) = self {
            maildir.maildir().keep_uids_in(prefix.clone(), permissions.clone(), *write);
        }
    }

    /// Hands a remote source the change tokens of the last run (from the state), so the
    /// remote skips every mailbox that has not changed since.
    pub(crate) fn remember_source_tokens(&mut self, state: &dsync_core::state::SyncState) {
        if let Opened::Remote(remote) = self {
            remote.remember_tokens(state.mailboxes.iter().filter_map(|(name, mailbox)| {
                mailbox.source_token.clone().map(|token| (name.clone(), token))
            }));
        }
    }

    /// Ends a read-only source's conversation where it has one that can still fail: a
    /// remote dsync's final word and exit status.
    pub(crate) fn end_source(&mut self) -> Result<(), StorageError> {
        match self {
            Opened::Remote(remote) => remote.finish(),
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
            Opened::Maildir(_) | Opened::Sdbox(_) => {}
            Opened::Remote(mut remote) => {
                let _ = remote.finish();
            }
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
    /// Where a Maildir source keeps the UIDs of mailboxes without `dovecot-uidlist`, and
    /// with what permissions, and whether they are written (not in a dry run)
    /// ([`source_uids_prefix`]); `None` without a state.
    pub(crate) source_uids: Option<(PathBuf, Permissions, bool)>,
    /// Where a Maildir source keeps its folders' last listings
    /// ([`dsync_core::adapters::maildir::MaildirStorage::keep_listings_in`]: prefix,
    /// permissions, written, read); `None` without a state.
    pub(crate) source_listings: Option<SourceListings>,
}

/// [`Access::source_listings`].
pub(crate) type SourceListings = (PathBuf, Permissions, bool, bool);

/// Replaces `imapc:`/`pop3c:` by the server the `-o imapc_*` settings name, and refuses
/// what cannot be opened yet. `user` fills `%u` in `imapc_user`.
pub(crate) fn resolve(
    location: Location,
    settings: &Settings,
    user: Option<&str>,
) -> Result<Location, CliError> {
    if let Location::Remote { login, host, .. } = location {
        let Some(user) = user else {
            return Err(CliError::Usage(format!(
                "remote:{host}: needs the user whose mail it is: -u USER"
            )));
        };
        return Ok(Location::Remote { login, host, user: user.to_owned() });
    }
    let Location::FromSettings(protocol) = location else { return Ok(location) };
    let (server, prefix) = match protocol {
        // No mail location is ManageSieve: `imapc:` stands in for it.
        Protocol::Imap | Protocol::Sieve => (&settings.imapc, "imapc"),
        Protocol::Pop3 => (&settings.pop3c, "pop3c"),
    };
    let resolved = from_settings(server, prefix, protocol, user)?;
    Ok(match protocol {
        Protocol::Imap | Protocol::Sieve => Location::Imap(resolved),
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
        (Protocol::Sieve, _) => 4190,
    };
    Ok(ServerLocation {
        protocol,
        user: login,
        host,
        port: server.port.unwrap_or(default_port),
        transport,
    })
}

/// Opens a location to be read (a sync source, or either side of `verify`/`check`).
pub(crate) fn open_source(
    location: &Location,
    access: &Access<'_>,
    side: &'static str,
) -> Result<Opened, CliError> {
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
            let maildir = Maildir::with_options(parsed, options);
            if let Some((prefix, permissions, write)) = &access.source_uids {
                maildir.keep_uids_in(prefix.clone(), permissions.clone(), *write);
            }
            let mut opened = Opened::Maildir(MaildirStorage::from_maildir(maildir));
            if let Some(listings) = &access.source_listings {
                opened.keep_source_listings(listings);
            }
            Ok(opened)
        }
        Location::Sdbox(text) => {
            let parsed = parse_sdbox(text)?;
            // As for a Maildir: a typo must not look like an empty store.
            if !parsed.root().is_dir() {
                let error = StorageError::new(
                    ErrorKind::NotFound,
                    format!("{} does not exist", parsed.root().display()),
                );
                return Err(CliError::Storage { side, error });
            }
            let mut options = Options::default().with_read_only(true);
            if let Some(seconds) = access.settings.lock_timeout {
                options = options.with_lock_timeout(Duration::from_secs(seconds));
            }
            Ok(Opened::Sdbox(SdboxStorage::from_sdbox(Sdbox::with_options(parsed, options))))
        }
        Location::Imap(imap) => Ok(Opened::Imap(Box::new(connect_imap(imap, access, side)?))),
        Location::Remote { .. } | Location::RemoteCommand(_) => {
            let command = remote_command(location, access.settings)?;
            tracing::info!("running {command}");
            // -T: what doveadm's -T is for its remote, our I/O timeout everywhere.
            let timeout = Duration::from_secs(access.settings.timeout.max(1));
            let storage = RemoteStorage::connect_with_timeout(command, timeout)
                .map_err(|error| CliError::Storage { side, error })?;
            Ok(Opened::Remote(Box::new(storage)))
        }
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
        Location::FromSettings(_) => Err(CliError::Usage(format!("{location}: cannot be opened"))),
    }
}

/// The command that starts the remote `doveadm dsync-server`: `dsync_remote_cmd` (or
/// doveadm's default) for `remote:[LOGIN@]HOST`, the location itself when it is a command
/// line; both split on single spaces, as doveadm splits them.
pub(crate) fn remote_command(
    location: &Location,
    settings: &Settings,
) -> Result<RemoteCommand, CliError> {
    let command = match location {
        Location::Remote { login, host, user } => {
            let template = settings.dsync_remote_cmd.as_deref().unwrap_or(DEFAULT_REMOTE_CMD);
            RemoteCommand::from_template(template, host, login, user)
        }
        Location::RemoteCommand(line) => RemoteCommand::from_command_line(line),
        _ => return Err(CliError::Usage(format!("{location}: not a remote location"))),
    };
    command.map_err(|error| CliError::Usage(format!("{location}: {error}")))
}

/// Opens a location to be written (a sync destination, or both sides of a two-way sync).
pub(crate) fn open_destination(
    location: &Location,
    settings: &Settings,
    side: &'static str,
) -> Result<Opened, CliError> {
    let durability = if settings.no_fsync { Durability::Deferred } else { Durability::Fsync };
    let mut options =
        Options::default().with_durability(durability).with_owner(settings.owner, settings.group);
    if let Some(seconds) = settings.lock_timeout {
        options = options.with_lock_timeout(Duration::from_secs(seconds));
    }
    match location {
        Location::Maildir(text) => Ok(Opened::Maildir(MaildirStorage::from_maildir(
            Maildir::with_options(parse_maildir(text)?, options),
        ))),
        Location::Sdbox(text) => Ok(Opened::Sdbox(SdboxStorage::from_sdbox(Sdbox::with_options(
            parse_sdbox(text)?,
            options,
        )))),
        Location::Remote { .. } | Location::RemoteCommand(_) => Err(CliError::Usage(format!(
            "{location}: only a backup writes into a Dovecot through dsync's protocol (push): \
             here the {side} must be maildir:PATH or sdbox:PATH"
        ))),
        _ => Err(CliError::Usage(format!(
            "{location}: cannot be written: the {side} must be maildir:PATH, sdbox:PATH or an \
             IMAP server (imap://, imaps://)"
        ))),
    }
}

/// Opens the destination of a run to be read (`verify`): an IMAP server with
/// `--destination-password-file` when given.
pub(crate) fn open_destination_to_read(
    location: &Location,
    access: &Access<'_>,
) -> Result<Opened, CliError> {
    let mut access = access.clone();
    if let (Location::Imap(_), Some(secret)) = (location, &access.settings.destination_secret) {
        access.secret = Some(secret.clone());
    }
    open_source(location, &access, "destination")
}

/// Opens an IMAP server as a `backup` or `sync -1` destination: logged in with
/// `--destination-password-file` when given, else with the source's password.
pub(crate) fn open_imap_destination(
    location: &ImapLocation,
    access: &Access<'_>,
) -> Result<Opened, CliError> {
    let mut access = access.clone();
    access.message_guids = false;
    if let Some(secret) = &access.settings.destination_secret {
        access.secret = Some(secret.clone());
    }
    Ok(Opened::Imap(Box::new(connect_imap(location, &access, "destination")?)))
}

/// Refuses one Maildir or sdbox store as both sides, or one inside the other (either way,
/// after resolving symbolic links): a source inside the destination is one of the
/// destination's folders (Maildir++ `.Folder`, `LAYOUT=fs` or sdbox directories), which a
/// backup deletes; a destination inside the source is written into the source.
pub(crate) fn check_distinct(source: &Location, destination: &Location) -> Result<(), CliError> {
    let (Some(a), Some(b)) = (local_root(source)?, local_root(destination)?) else {
        return Ok(());
    };
    let (a_root, b_root) = (resolved(&a), resolved(&b));
    let refusal = if a_root == b_root {
        let what = match (source, destination) {
            (Location::Maildir(_), Location::Maildir(_)) => "Maildir",
            _ => "directory",
        };
        format!(
            "the source {source} and the destination {destination} are the same {what} ({})",
            a_root.display()
        )
    } else if a_root.starts_with(&b_root) {
        format!(
            "the source {source} is inside the destination {destination} ({} is in {}): the \
             destination's folders would include the source, and a backup deletes them; \
             choose a destination outside the source",
            a_root.display(),
            b_root.display()
        )
    } else if b_root.starts_with(&a_root) {
        format!(
            "the destination {destination} is inside the source {source} ({} is in {}): \
             writing it would write into the source; choose a destination outside the source",
            b_root.display(),
            a_root.display()
        )
    } else {
        return Ok(());
    };
    Err(CliError::Usage(refusal))
}

/// `path` absolute and without symbolic links: the part that exists canonicalized, the
/// rest (not created yet) appended with `.` and `..` resolved by name.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    let base = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    let mut result = base;
    for name in missing.iter().rev() {
        match name.to_str() {
            Some(".") => {}
            Some("..") => {
                result.pop();
            }
            _ => result.push(name),
        }
    }
    result
}

/// The password or token for a connection, read now (a refreshed token is picked up).
pub(crate) fn read_secret(access: &Access<'_>) -> Result<mailnet::Secret<String>, CliError> {
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
pub(crate) fn login_names(
    location: &ServerLocation,
    settings: &Settings,
) -> (String, Option<String>) {
    match (settings.master_user_for(location.protocol), location.user.rsplit_once('*')) {
        (Some(master), _) => (location.user.clone(), Some(master.to_owned())),
        (None, Some((user, master))) if !user.is_empty() && !master.is_empty() => {
            (user.to_owned(), Some(master.to_owned()))
        }
        (None, _) => (location.user.clone(), None),
    }
}

pub(crate) fn tls_options(settings: &Settings) -> TlsOptions {
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

pub(crate) fn timeouts(settings: &Settings) -> Timeouts {
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
pub(crate) fn trace(debug: bool, rawlog: Option<RawLog>) -> mailnet::Trace {
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

/// Holds `dsync-rs.lock` in a Maildir root until dropped.
#[derive(Debug)]
pub(crate) struct DestinationLock {
    file: File,
    root: PathBuf,
    /// The topmost directory that taking the lock created (the root or a parent), when
    /// the root did not exist before.
    created: Option<PathBuf>,
}

impl Drop for DestinationLock {
    fn drop(&mut self) {
        // Our process id goes before the lock does (a later holder writes its own).
        let _ = self.file.set_len(0);
        // A root this run created only to lock it, and then wrote nothing into (the filters
        // left nothing to sync), goes again: a directory that is no Maildir is not left
        // behind. remove_dir only removes empty directories, so nothing else is lost.
        // Our own files in it (the lock, the state of a run that synced nothing) were all
        // made by this run.
        let Some(created) = &self.created else { return };
        let ours = [LOCK_FILE, STATE_FILE];
        let only_ours = std::fs::read_dir(&self.root).is_ok_and(|entries| {
            entries.filter_map(Result::ok).all(|entry| ours.iter().any(|&n| entry.file_name() == n))
        });
        if !only_ours {
            return;
        }
        for name in ours {
            let _ = std::fs::remove_file(self.root.join(name));
        }
        for dir in self.root.ancestors() {
            if std::fs::remove_dir(dir).is_err() || dir == created {
                break;
            }
        }
    }
}

/// The name of our lock file in a Maildir root. No leading dot: in a Maildir++ root a
/// dot-name is a folder.
const LOCK_FILE: &str = "dsync-rs.lock";
/// The default state file in a Maildir root (see `job.rs`).
pub(crate) const STATE_FILE: &str = "dsync-rs-state";

/// Where a Maildir source without `dovecot-uidlist` has its UIDs kept, beside the state
/// file: `STATE.uidlist.<hash>`, one file per mailbox (files, not a directory: in a
/// `LAYOUT=fs` root a directory would be a folder). Nothing is written into a source.
pub(crate) fn source_uids_prefix(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".uidlist");
    PathBuf::from(name)
}

/// Where a Maildir source keeps its folders' last listings, beside the state file:
/// `STATE.listing.<hash>`, one file per folder.
pub(crate) fn source_listings_prefix(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".listing");
    PathBuf::from(name)
}

/// For reading only (`verify`): where a run into the local store `destination` kept the
/// UIDs of a Maildir source without `dovecot-uidlist` by default (beside `dsync-rs-state` in
/// its root), so the source is compared under the UIDs the backup gave it.
pub(crate) fn default_source_uids(destination: &Location) -> Option<(PathBuf, Permissions, bool)> {
    let root = local_root(destination).ok()??;
    Some((source_uids_prefix(&root.join(STATE_FILE)), Permissions::private(), false))
}

/// Where the state of a run into a server is kept without `--state-file`:
/// `$XDG_STATE_HOME/dsync-rs/` (else `~/.local/state/dsync-rs/`), one file per
/// destination and source: `imap-USER@HOST-PORT-HASH.state`, HASH (FNV-1a) telling
/// sources apart.
pub(crate) fn default_state_path(
    source: &Location,
    destination: &Location,
) -> Result<PathBuf, CliError> {
    let directory =
        if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            PathBuf::from(state)
        } else {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or_else(|| {
                CliError::Usage(
                    "neither $XDG_STATE_HOME nor $HOME is set: name the sync state file with \
                 --state-file"
                        .into(),
                )
            })?;
            PathBuf::from(home).join(".local/state")
        }
        .join("dsync-rs");
    let readable: String = destination
        .state_identity()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "@.-_".contains(c) { c } else { '-' })
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in source.state_identity().bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(directory.join(format!("{readable}-{hash:016x}.state")))
}

/// What a Maildir that is about to be written needs before anything is read from the
/// source: the lock when the root exists, else proof that it can be created.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The root exists and is locked.
    Locked(DestinationLock),
    /// The root does not exist yet, and can be created: lock it once something is to be
    /// written (so a failed login leaves nothing behind).
    Creatable,
}

/// Checks a Maildir that is about to be written, before connecting to anything: an
/// existing root is locked (waiting up to `timeout` for another dsync), a missing one must
/// be creatable. So a root that is a file, under `/proc`, on a read-only file system or not
/// writable for us fails here, once, instead of once per mailbox after the source was read.
pub(crate) fn prepare_destination(
    root: &Path,
    permissions: &Permissions,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<Prepared, CliError> {
    match std::fs::symlink_metadata(root) {
        Ok(_) => lock_destination(root, permissions, timeout, interrupted).map(Prepared::Locked),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            probe_creatable(root).map(|()| Prepared::Creatable)
        }
        Err(error) => Err(destination_error(
            ErrorKind::from_io(&error),
            format!("cannot use {}", root.display()),
            error,
        )),
    }
}

fn destination_error(kind: ErrorKind, message: String, error: std::io::Error) -> CliError {
    CliError::Storage {
        side: "destination",
        error: StorageError::with_source(kind, message, error),
    }
}

/// Creates and removes the first missing directory on the way to `root`: what creating
/// the root will do, without leaving anything behind.
fn probe_creatable(root: &Path) -> Result<(), CliError> {
    // Another run probing the same path creates and removes a parent of ours: ENOENT then
    // means "gone meanwhile", not "nothing can be made"; look again.
    for _ in 0..20 {
        match probe_once(root) {
            Err(Probe::ParentVanished) => std::thread::sleep(Duration::from_millis(5)),
            Err(Probe::Failed(error)) => return Err(error),
            Ok(()) => return Ok(()),
        }
    }
    probe_once(root).map_err(|probe| match probe {
        Probe::Failed(error) => error,
        Probe::ParentVanished => destination_error(
            ErrorKind::Temporary,
            format!("cannot create {}: its parent keeps vanishing", root.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ),
    })
}

/// Why [`probe_once`] failed.
enum Probe {
    /// The parent it created in existed when looked at and was gone at the `mkdir`.
    ParentVanished,
    Failed(CliError),
}

fn probe_once(root: &Path) -> Result<(), Probe> {
    let mut first_missing = root;
    let mut existing = root.parent();
    while let Some(parent) = existing {
        if parent.as_os_str().is_empty() || std::fs::symlink_metadata(parent).is_ok() {
            break;
        }
        first_missing = parent;
        existing = parent.parent();
    }
    match std::fs::create_dir(first_missing) {
        Ok(()) => {
            let _ = std::fs::remove_dir(first_missing);
            Ok(())
        }
        // Created meanwhile (another run): creatable.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error)
            if error.kind() == std::io::ErrorKind::NotFound
                && first_missing.parent().is_some_and(|p| {
                    !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err()
                }) =>
        {
            Err(Probe::ParentVanished)
        }
        Err(error) => {
            // ENOENT on a parent that exists: a file system where nothing can be made
            // (/proc, /sys).
            let (kind, why) = match ErrorKind::from_io(&error) {
                ErrorKind::NotFound => (ErrorKind::CannotCreate, ": nothing can be created there"),
                ErrorKind::Temporary => (ErrorKind::CannotCreate, ""),
                other => (other, ""),
            };
            let what = if first_missing == root {
                format!("cannot create {}{why}", root.display())
            } else {
                format!(
                    "cannot create {} (on the way to {}){why}",
                    first_missing.display(),
                    root.display()
                )
            };
            Err(Probe::Failed(destination_error(kind, what, error)))
        }
    }
}

/// Takes a Maildir root's lock, waiting up to `timeout` for another dsync (or until
/// `interrupted`). The root and the lock file are created with the mail's
/// `permissions`. The lock file says which process holds it.
pub(crate) fn lock_destination(
    root: &Path,
    permissions: &Permissions,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<DestinationLock, CliError> {
    let path = root.join(LOCK_FILE);
    let created = root
        .ancestors()
        .take_while(|dir| std::fs::symlink_metadata(dir).is_err())
        .last()
        .map(Path::to_path_buf);
    let mut file = permissions
        .create_dir_all(root)
        .and_then(|()| permissions.open_or_create(&path, false))
        .map_err(|error| CliError::Storage {
            side: "destination",
            error: dsync_core::adapters::maildir::convert_error(error),
        })?;
    let what = root.display().to_string();
    crate::lock::wait_for(&mut file, &path, &what, timeout, interrupted)?;
    Ok(DestinationLock { file, root: root.to_path_buf(), created })
}

fn parse_maildir(location: &str) -> Result<mailstore::Location, CliError> {
    location.parse().map_err(|e: mailstore::Error| CliError::Usage(e.to_string()))
}

pub(crate) fn maildir_root(location: &str) -> Result<PathBuf, CliError> {
    Ok(parse_maildir(location)?.root().to_path_buf())
}

fn parse_sdbox(location: &str) -> Result<SdboxLocation, CliError> {
    location.parse().map_err(|e: mailstore::Error| CliError::Usage(e.to_string()))
}

/// The mail root of a Maildir or sdbox location; `None` for a server.
fn local_root(location: &Location) -> Result<Option<PathBuf>, CliError> {
    Ok(match location {
        Location::Maildir(text) => Some(maildir_root(text)?),
        Location::Sdbox(text) => Some(parse_sdbox(text)?.root().to_path_buf()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_second_dsync_waits_for_the_lock_then_fails_temporarily() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("Maildir");
        let permissions = Permissions::private();
        let never = || false;
        let held =
            lock_destination(&root, &permissions, Duration::ZERO, &never).expect("first lock");
        let started = Instant::now();
        let error = lock_destination(&root, &permissions, Duration::from_millis(300), &never)
            .expect_err("locked");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(error.exit_code(), 75, "{error}");
        let message = error.to_string();
        assert!(message.contains("being written by another dsync"), "{message}");
        assert!(message.contains(&format!("(process {})", std::process::id())), "{message}");
        drop(held);
        lock_destination(&root, &permissions, Duration::ZERO, &never).expect("free again");
    }

    #[test]
    fn nesting_is_refused_either_way_through_symbolic_links() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join(".Inner")).expect("mkdir");
        std::os::unix::fs::symlink(&real, dir.path().join("link")).expect("symlink");
        let maildir = |path: &Path| Location::Maildir(format!("maildir:{}", path.display()));
        let outer = maildir(&dir.path().join("link"));
        let cases = [
            (maildir(&real), maildir(&dir.path().join("link")), "same Maildir"),
            (maildir(&real.join(".Inner")), outer.clone(), "source maildir:"),
            (outer.clone(), maildir(&real.join("new-dir/sub")), "destination maildir:"),
            (maildir(&dir.path().join("link/../real/.Inner")), outer.clone(), "inside"),
        ];
        for (source, destination, said) in cases {
            let error = check_distinct(&source, &destination).expect_err("refused");
            let message = error.to_string();
            assert_eq!(error.exit_code(), 64, "{message}");
            assert!(message.contains(said), "{message}");
            assert!(message.contains(&source.to_string()), "{message}");
            assert!(message.contains(&destination.to_string()), "{message}");
        }
        let sibling = maildir(&dir.path().join("real-backup"));
        check_distinct(&outer, &sibling).expect("siblings are fine");
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
