//! `--sieve-from LOCATION --sieve-to LOCATION`: the user's Sieve scripts migrate with the
//! mail, after it. A location is `sieve://USER@HOST[:PORT]` (ManageSieve; STARTTLS unless
//! `?tls=none`, the same credentials, master user and TLS options as `imap://`) or
//! Pigeonhole's `file:DIR[;active=PATH]` (`~` = the user's home). The engine's
//! [`dsync_core::sieve`] plans and carries out; this module opens the two sides and
//! reports. A script the destination refuses is reported with its reason and makes the
//! exit code 65; it never touches the mail.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dsync_core::sieve::{ScriptSet, ScriptStore, SieveBase, SieveReport, sync_with_base};
use dsync_core::state::StateFile;
use dsync_core::{ErrorKind, Mode, StorageError};
use mailstore::Permissions;
use managesieve::{ActiveScript, FileStore, ScriptName};

use crate::args::SieveArgs;
use crate::config::Profile;
use crate::exit::CliError;
use crate::home;
use crate::job::{Job, Task};
use crate::location::{self, Location, LocationError, ServerLocation, Transport, expand};
use crate::logging::RawLog;
use crate::open::{self, Access};
use crate::settings::Settings;

/// Where a user's scripts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SieveLocation {
    /// A ManageSieve server.
    Server(ServerLocation),
    /// Pigeonhole's file store.
    Files(FileStore),
}

impl std::fmt::Display for SieveLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SieveLocation::Server(server) => server.fmt(f),
            SieveLocation::Files(store) => {
                write!(f, "file:{}", store.dir().display())?;
                match store.active_path() {
                    Some(active) => write!(f, ";active={}", active.display()),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Both sides, parsed for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SievePair {
    pub(crate) from: SieveLocation,
    pub(crate) to: SieveLocation,
}

const EXPECTED: &str = "expected sieve://USER@HOST[:PORT][?tls=none] or file:DIR[;active=PATH]";

/// Which mail sides are local stores (Maildir, sdbox): Dovecot's `-o sieve=` names the
/// Sieve scripts of the local side.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LocalSides {
    pub(crate) source: bool,
    pub(crate) destination: bool,
}

impl LocalSides {
    /// The sides of `source` and `destination`.
    pub(crate) fn of(source: &Location, destination: &Location) -> LocalSides {
        LocalSides { source: !source.is_server(), destination: !destination.is_server() }
    }
}

/// The pair of `--sieve-from`/`--sieve-to` (else `sieve_from`/`sieve_to` of the config
/// file's account or defaults; else, for the local side, Dovecot's `-o sieve=`: the
/// destination's when it is a Maildir or sdbox, else the source's) for `user` (templates:
/// `%u`, `%n`, `%d`, `~`), or `None` when not asked for.
pub(crate) fn locations(
    args: &SieveArgs,
    profile: &Profile,
    user: Option<&str>,
    settings: &Settings,
    local: LocalSides,
) -> Result<Option<SievePair>, CliError> {
    let mut from = args.sieve_from.as_ref().or(profile.sieve_from.as_ref());
    let mut to = args.sieve_to.as_ref().or(profile.sieve_to.as_ref());
    let mut setting_names = None;
    if let Some(setting) = &settings.sieve {
        if local.destination && to.is_none() {
            to = Some(setting);
            setting_names = Some(("destination", "--sieve-from"));
        } else if local.source && from.is_none() {
            from = Some(setting);
            setting_names = Some(("source", "--sieve-to"));
        }
    }
    let (from, to) = match (from, to) {
        (None, None) => return Ok(None),
        (Some(from), Some(to)) => (from, to),
        _ => {
            if let Some((side, other)) = setting_names {
                return Err(CliError::Usage(format!(
                    "-o sieve= names the {side}'s Sieve scripts: give {other} LOCATION (or it in the config file) for the other side"
                )));
            }
            return Err(CliError::Usage(
                "Sieve scripts need both a source and a destination (--sieve-from and --sieve-to, or sieve_from and sieve_to in the config file)".into(),
            ));
        }
    };
    Ok(Some(SievePair { from: parse(from, user, settings)?, to: parse(to, user, settings)? }))
}

/// The locations for a task: a mode scripts are not synced in (import) is refused (64)
/// before anything runs.
pub(crate) fn task_locations(
    args: &SieveArgs,
    profile: &Profile,
    task: &Task,
    user: Option<&str>,
    settings: &Settings,
    local: LocalSides,
) -> Result<Option<SievePair>, CliError> {
    let pair = locations(args, profile, user, settings, local)?;
    if pair.is_some() {
        // The engine's refusal of a mode (import), before anything runs.
        if let Err(error) = dsync_core::sieve::check_mode(task.mode) {
            return Err(CliError::Usage(format!("--sieve-from/--sieve-to: {error}")));
        }
    }
    Ok(pair)
}

/// `dsync verify --sieve-from … --sieve-to …`: every difference between the two script
/// sets (names, bytes, the active script), as lines.
pub(crate) fn compare(pair: &SievePair, access: &Access<'_>) -> Result<Vec<String>, CliError> {
    let mut a = open_side(&pair.from, access, "Sieve source")?;
    let mut b = open_side(&pair.to, access, "Sieve destination")?;
    let read = |side: &mut Box<dyn Side>, name| {
        side.read_all().map_err(|error| CliError::Storage { side: name, error })
    };
    let (a_set, b_set) = (read(&mut a, "Sieve source")?, read(&mut b, "Sieve destination")?);
    a.close();
    b.close();
    Ok(dsync_core::sieve::differences(&a_set, &b_set))
}

pub(crate) fn parse(
    template: &str,
    user: Option<&str>,
    settings: &Settings,
) -> Result<SieveLocation, CliError> {
    let text = match user {
        Some(user) => expand(template, user),
        None => template.to_owned(),
    };
    let invalid =
        |reason: String| CliError::Location(LocationError { location: text.clone(), reason });
    if let Some(rest) = text.strip_prefix("sieve://") {
        return location::parse_sieve_server(rest).map(SieveLocation::Server).map_err(invalid);
    }
    if text.starts_with("file:") {
        let home = if text.contains('~') { Some(home::home_of(user, settings)?) } else { None };
        return FileStore::parse_location(&text, home.as_deref())
            .map(SieveLocation::Files)
            .map_err(|error| invalid(error.to_string()));
    }
    Err(invalid(EXPECTED.into()))
}

/// `dsync check --sieve LOCATION`: the scripts there, as lines (`away  60 bytes  active`),
/// and as a report for the batch table (their number; names that cannot be used are
/// skipped, exit 65).
pub(crate) fn list(
    location: &SieveLocation,
    access: &Access<'_>,
) -> Result<(String, SieveReport), CliError> {
    let mut side = open_side(location, access, "Sieve")?;
    let set = side.read_all().map_err(|error| CliError::Storage { side: "Sieve", error })?;
    side.close();
    let mut out = format!("sieve {location}: {} scripts\n", set.scripts.len());
    let width = set.scripts.keys().map(|n| n.chars().count()).max().unwrap_or(0);
    for (name, bytes) in &set.scripts {
        let active = if set.active.as_ref() == Some(name) { "  active" } else { "" };
        let pad = " ".repeat(width - name.chars().count());
        let _ = writeln!(out, "  {name}{pad}  {} bytes{active}", bytes.len());
    }
    let mut report = SieveReport { source_scripts: set.scripts.len(), ..SieveReport::default() };
    for script in &set.unusable {
        let active = if script.active { ", the active script" } else { "" };
        let _ = writeln!(out, "  {}  unusable name: {}{active}", script.name, script.reason);
        report.skipped.push(format!(
            "sieve: script {} cannot be migrated: {}{active}",
            script.name, script.reason
        ));
    }
    Ok((out, report))
}

/// Where a user's Sieve base (what the last run left equal on both sides) is kept: next
/// to the mail's state file, as `NAME.sieve`, with the same owner and modes.
pub(crate) struct BaseFile {
    path: PathBuf,
    permissions: Permissions,
}

impl BaseFile {
    /// The base file next to the state file at `state`.
    pub(crate) fn next_to(state: &Path, permissions: Permissions) -> BaseFile {
        let mut name = state.file_name().unwrap_or_default().to_os_string();
        name.push(".sieve");
        BaseFile { path: state.with_file_name(name), permissions }
    }

    /// The saved base for `pair`, if there is a usable one: a missing, damaged or foreign
    /// base only means the sides are united, so it is reported and ignored.
    fn load(&self, pair: &str) -> Option<SieveBase> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(
                    "sieve: cannot read {}: {error}; uniting the scripts",
                    self.path.display()
                );
                return None;
            }
        };
        match SieveBase::decode(&text) {
            Ok(base) if base.pair == pair => Some(base),
            Ok(base) => {
                tracing::warn!(
                    "sieve: {} belongs to {}; uniting the scripts of {pair}",
                    self.path.display(),
                    base.pair
                );
                None
            }
            Err(error) => {
                tracing::warn!(
                    "sieve: {} is damaged ({error}); uniting the scripts",
                    self.path.display()
                );
                None
            }
        }
    }

    fn save(&self, base: &SieveBase) {
        let file = StateFile::new(&self.path, "").with_permissions(self.permissions.clone());
        if let Err(error) = file.write_bytes(base.encode().as_bytes()) {
            tracing::warn!("sieve: cannot save {}: {error}", self.path.display());
        }
    }
}

/// Migrates the scripts of `pair` in the task's mode (a dry run only plans), logging each
/// refused script with the side's reason and each two-way conflict. A two-way sync plans
/// against the base in `base_file` (unless `-f`) and every real run saves the new one.
pub(crate) fn run(
    job: &Job,
    pair: &SievePair,
    task: &Task,
    base_file: Option<&BaseFile>,
    debug: bool,
    rawlog: Option<&RawLog>,
) -> Result<SieveReport, CliError> {
    let access = Access {
        settings: &job.settings,
        secret: job.secret.clone(),
        debug,
        rawlog: rawlog.cloned(),
        message_guids: false,
        source_uids: None,
        source_listings: None,
    };
    let mut source = open_side(&pair.from, &access, "Sieve source")?;
    let mut destination = open_side(&pair.to, &access, "Sieve destination")?;
    let identity = format!("{} {}", pair.from, pair.to);
    let base = match base_file {
        Some(file) if task.mode == Mode::TwoWay && !task.full => file.load(&identity),
        _ => None,
    };
    if task.mode == Mode::TwoWay && base.is_none() {
        tracing::info!("sieve: no saved Sieve state: the scripts of both sides are united");
    }
    let (report, mut next) =
        sync_with_base(task.mode, &mut *source, &mut *destination, base.as_ref(), task.dry_run)
            .map_err(|error| CliError::Storage { side: "Sieve", error })?;
    source.close();
    destination.close();
    if let Some(file) = base_file
        && !task.dry_run
    {
        next.pair = identity;
        file.save(&next);
    }
    if task.dry_run {
        for step in &report.planned {
            tracing::info!("sieve: would {step:?}");
        }
        for step in report.source_changes.iter().flat_map(|c| &c.planned) {
            tracing::info!("sieve: would {step:?} on the source");
        }
    }
    for conflict in &report.conflicts {
        tracing::warn!("{conflict}");
    }
    for skipped in &report.skipped {
        tracing::error!("{skipped}");
    }
    for refused in &report.refused {
        tracing::error!(
            "sieve: {} of script {:?} refused by {}: {}",
            refused.action,
            refused.name,
            match refused.side {
                dsync_core::Side::Source => &pair.from,
                // The destination, or a side a later version may add: named by where the
                // scripts were written.
                _ => &pair.to,
            },
            refused.reason
        );
    }
    tracing::info!("{}", report.summary());
    Ok(report)
}

/// One side, opened: a logged-in ManageSieve session or a file store.
trait Side: ScriptStore {
    /// Ends the session politely (ManageSieve `LOGOUT`).
    fn close(self: Box<Self>) {}
}

fn open_side(
    location: &SieveLocation,
    access: &Access<'_>,
    side: &'static str,
) -> Result<Box<dyn Side>, CliError> {
    match location {
        SieveLocation::Files(store) => Ok(Box::new(Files(store.clone()))),
        SieveLocation::Server(server) => {
            let session = connect(server, access)
                .map_err(|error| CliError::Storage { side, error: storage_error(&error) })?;
            Ok(Box::new(Server(session)))
        }
    }
}

fn connect(
    server: &ServerLocation,
    access: &Access<'_>,
) -> Result<managesieve::Session, managesieve::Error> {
    let settings = access.settings;
    let secret = open::read_secret(access).map_err(|error| {
        managesieve::Error::AuthenticationFailed { code: None, text: error.to_string() }
    })?;
    let security = match server.transport {
        Transport::Plain => managesieve::Security::Plain,
        Transport::Tls => managesieve::Security::Tls,
        Transport::StartTls => managesieve::Security::StartTls,
    };
    let mut options = managesieve::ConnectOptions::new(server.host.clone(), server.port, security)
        .tls(open::tls_options(settings))
        .timeouts(open::timeouts(settings));
    if access.debug || access.rawlog.is_some() {
        options = options.trace(open::trace(access.debug, access.rawlog.clone()));
    }
    let (user, master) = open::login_names(server, settings);
    let password = secret.into_inner();
    let credentials = match master {
        Some(master) => managesieve::Credentials::master(user, master, password),
        None => managesieve::Credentials::new(user, password),
    };
    // The mechanism as for IMAP: --sasl-mechanism, else XOAUTH2 for an OAuth2 token.
    let mechanism = match (settings.mechanism, &access.secret) {
        (Some(imapc::AuthMechanism::Plain), _) => managesieve::AuthMechanism::Plain,
        (Some(imapc::AuthMechanism::Login), _) => managesieve::AuthMechanism::Login,
        (Some(imapc::AuthMechanism::XOAuth2), _) => managesieve::AuthMechanism::XOAuth2,
        (Some(imapc::AuthMechanism::OAuthBearer), _) => managesieve::AuthMechanism::OAuthBearer,
        (None, Some(source)) if source.is_oauth2() => managesieve::AuthMechanism::XOAuth2,
        _ => managesieve::AuthMechanism::Auto,
    };
    let credentials = credentials.mechanism(mechanism);
    tracing::info!("connecting to {server}");
    managesieve::Client::connect(&options)?.login(&credentials).map_err(|(error, _)| error)
}

/// A ManageSieve error as the engine's: refusals of one script are data (or quota, or a
/// missing script), so the run goes on; the rest is about the server.
fn storage_error(error: &managesieve::Error) -> StorageError {
    use managesieve::{Error, ResponseCode};
    let kind = match error {
        Error::Refused { code: Some(code), .. } if code.is_quota() => ErrorKind::NoSpace,
        Error::Refused { code: Some(ResponseCode::Nonexistent), .. } => ErrorKind::NotFound,
        Error::Refused { code: Some(ResponseCode::TryLater), .. } => ErrorKind::Temporary,
        Error::Refused { .. } | Error::InvalidScriptName(_) | Error::Store { .. } => {
            ErrorKind::InvalidData
        }
        Error::AuthenticationFailed { .. } | Error::LoginDisabled => ErrorKind::Authentication,
        Error::Referral { .. }
        | Error::StartTlsUnavailable
        | Error::StartTlsRefused { .. }
        | Error::Net(mailnet::Error::Certificate { .. } | mailnet::Error::NotTls { .. }) => {
            ErrorKind::Config
        }
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            ErrorKind::Permission
        }
        Error::Io { .. } => ErrorKind::CannotCreate,
        _ if error.kind() == managesieve::ErrorKind::Retryable => ErrorKind::Temporary,
        Error::Net(_) => ErrorKind::Temporary,
        _ => ErrorKind::InvalidData,
    };
    StorageError::new(kind, error.to_string())
}

fn name(name: &str) -> Result<ScriptName, StorageError> {
    ScriptName::new(name)
        .map_err(|error| StorageError::new(ErrorKind::InvalidData, error.to_string()))
}

struct Server(managesieve::Session);

impl ScriptStore for Server {
    fn read_all(&mut self) -> Result<ScriptSet, StorageError> {
        let mut set = ScriptSet::default();
        let listing = self.0.list_scripts_leniently().map_err(|e| storage_error(&e))?;
        set.unusable = listing
            .unusable
            .into_iter()
            .map(|script| dsync_core::sieve::UnusableScript {
                // Already escaped by the client.
                name: format!("\"{}\"", script.name.name),
                reason: script.name.reason.to_owned(),
                active: script.active,
            })
            .collect();
        for script in listing.scripts {
            let bytes = self.0.get_script(&script.name).map_err(|e| storage_error(&e))?;
            if script.active {
                set.active = Some(script.name.to_string());
            }
            set.scripts.insert(script.name.to_string(), bytes);
        }
        Ok(set)
    }
    fn put(&mut self, script: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let warnings = self.0.put_script(&name(script)?, bytes).map_err(|e| storage_error(&e))?;
        if let Some(warnings) = warnings {
            tracing::warn!("sieve: script {script:?} stored with warnings: {warnings}");
        }
        Ok(())
    }
    fn activate(&mut self, script: Option<&str>) -> Result<(), StorageError> {
        let script = script.map(name).transpose()?;
        self.0.set_active(script.as_ref()).map_err(|e| storage_error(&e))
    }
    fn delete(&mut self, script: &str) -> Result<(), StorageError> {
        self.0.delete_script(&name(script)?).map_err(|e| storage_error(&e))
    }
}

impl Side for Server {
    fn close(self: Box<Self>) {
        if let Err(error) = self.0.logout() {
            tracing::debug!("sieve: logout: {error}");
        }
    }
}

/// The name a legacy single active file is read under: the one Pigeonhole rescues it to.
const SINGULAR_NAME: &str = "dovecot.orig";

struct Files(FileStore);

impl ScriptStore for Files {
    fn read_all(&mut self) -> Result<ScriptSet, StorageError> {
        let store_error = |e: managesieve::Error| storage_error(&e);
        let mut set = ScriptSet::default();
        for script in self.0.list().map_err(store_error)? {
            let bytes = self.0.read(&script.name).map_err(store_error)?;
            set.modified.insert(script.name.to_string(), script.modified);
            set.scripts.insert(script.name.to_string(), bytes);
        }
        // When the active link was last set (its own mtime, not its target's).
        set.active_modified = self
            .0
            .active_path()
            .and_then(|path| std::fs::symlink_metadata(path).ok())
            .and_then(|metadata| metadata.modified().ok());
        match self.0.active().map_err(store_error)? {
            ActiveScript::None => {}
            ActiveScript::Script(name) => set.active = Some(name.to_string()),
            // A legacy single script: active, under the name Pigeonhole would give it.
            ActiveScript::Singular if !set.scripts.contains_key(SINGULAR_NAME) => {
                set.scripts
                    .insert(SINGULAR_NAME.into(), self.0.read_singular().map_err(store_error)?);
                set.active = Some(SINGULAR_NAME.into());
            }
            ActiveScript::Singular => {
                return Err(StorageError::new(
                    ErrorKind::InvalidData,
                    format!(
                        "{}: the active path is a regular file and {SINGULAR_NAME}.sieve exists too",
                        self.0.dir().display()
                    ),
                ));
            }
            ActiveScript::Foreign(target) => tracing::warn!(
                "sieve: the active link of {} points to {} outside the script directory: no script is active there",
                self.0.dir().display(),
                target.display()
            ),
        }
        Ok(set)
    }
    fn put(&mut self, script: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.0.write(&name(script)?, bytes, None).map_err(|e| storage_error(&e))
    }
    fn activate(&mut self, script: Option<&str>) -> Result<(), StorageError> {
        let script = script.map(name).transpose()?;
        self.0.activate(script.as_ref()).map_err(|e| storage_error(&e))
    }
    fn delete(&mut self, script: &str) -> Result<(), StorageError> {
        self.0.delete(&name(script)?).map_err(|e| storage_error(&e))
    }
}

impl Side for Files {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sieve_locations() {
        let settings = Settings::default();
        let server = parse("sieve://alice@mail.example.com", None, &settings).expect("sieve://");
        let SieveLocation::Server(server) = server else { panic!("{server:?}") };
        assert_eq!((server.port, server.transport), (4190, Transport::StartTls));
        let plain =
            parse("sieve://%u@127.0.0.1:4190?tls=none", Some("bob"), &settings).expect("plain");
        assert_eq!(plain.to_string(), "sieve://bob@127.0.0.1:4190?tls=none");
        let files =
            parse("file:/srv/%n/sieve;active=/srv/%n/.dovecot.sieve", Some("bob@x"), &settings)
                .expect("file:");
        assert_eq!(files.to_string(), "file:/srv/bob/sieve;active=/srv/bob/.dovecot.sieve");
        for bad in ["imap://alice@host", "sieve://host", "file:", "sieves://a@b"] {
            assert!(parse(bad, None, &settings).is_err(), "{bad}");
        }
    }
}
