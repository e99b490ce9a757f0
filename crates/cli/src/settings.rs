//! The effective settings of a run: built-in defaults, then the config file (`[defaults]`,
//! then the account), then `-o key=value` with Dovecot's setting names, then explicit
//! command-line options.

use std::path::PathBuf;

use dsync_core::adapters::pop3::Pop3MigrationSettings;
use imapc::AuthMechanism;
use mailnet::Fingerprint;

use crate::args::{BatchArgs, ConnectionArgs, OutputArgs, WriteArgs};
use crate::config::{OneOrMany, Profile};
use crate::credentials::SecretSource;
use crate::exit::CliError;
use crate::features;
use crate::location::{Protocol, Transport};

/// User and group names to ids, through the system's databases (NSS, as Dovecot's
/// `mail_uid`/`mail_gid`); numbers are taken as they are.
mod owner {
    /// The uid and login group of `name`.
    pub(super) fn user(name: &str) -> Result<(u32, u32), String> {
        if let Ok(uid) = name.parse::<u32>() {
            let login_group = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map_or(uid, |user| user.gid.as_raw());
            return Ok((uid, login_group));
        }
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok((user.uid.as_raw(), user.gid.as_raw())),
            Ok(None) => Err(format!("no user {name:?} on this system")),
            Err(error) => Err(format!("cannot look up user {name:?}: {error}")),
        }
    }

    /// The gid of `name`.
    pub(super) fn group(name: &str) -> Result<u32, String> {
        if let Ok(gid) = name.parse::<u32>() {
            return Ok(gid);
        }
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(group.gid.as_raw()),
            Ok(None) => Err(format!("no group {name:?} on this system")),
            Err(error) => Err(format!("cannot look up group {name:?}: {error}")),
        }
    }
}

/// Dovecot's `imapc_*` / `pop3c_*` server settings (for the `imapc:` / `pop3c:` locations).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerSettings {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<String>,
    pub(crate) transport: Option<Transport>,
    /// `imapc_master_user` / `pop3c_master_user`: the master user for this protocol's
    /// logins (see [`Settings::master_user_for`]).
    pub(crate) master_user: Option<String>,
    /// `imapc_list_prefix`: only the remote mailboxes below it (and INBOX) are seen,
    /// without it.
    pub(crate) list_prefix: Option<String>,
    /// `imapc_features` as given (all accepted ones change nothing; kept for
    /// `$imapc_features`).
    pub(crate) features: String,
    /// `pop3c_features = no-pipelining`.
    pub(crate) no_pipelining: bool,
}

/// Everything a run needs besides its locations.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where the password or token comes from (`None`: `$DSYNC_PASSWORD`).
    pub(crate) secret: Option<SecretSource>,
    /// An IMAP destination's password, when not the source's (`--destination-password-file`).
    pub(crate) destination_secret: Option<SecretSource>,
    pub(crate) mechanism: Option<AuthMechanism>,
    pub(crate) master_user: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) ca_dir: Option<PathBuf>,
    /// Certificates trusted by SHA-256 fingerprint (`--fingerprint`).
    pub(crate) fingerprints: Vec<Fingerprint>,
    pub(crate) accept_invalid_certs: bool,
    pub(crate) timeout: u64,
    pub(crate) connect_timeout: u64,
    pub(crate) retries: u32,
    /// Milliseconds between a temporary failure and the reconnect
    /// (`imapc_connection_retry_interval`).
    pub(crate) retry_interval_ms: u64,
    /// `imapc_max_line_length`: the longest server line accepted (`None`: the client's
    /// default cap).
    pub(crate) max_line_length: Option<usize>,
    /// `~` (and `%h`) for the users of `-u`/`-A`/`-F`: a template (`-o home=`,
    /// `-o mail_home=`, `home` in the config); `None`: the system's passwd entry.
    pub(crate) home: Option<String>,
    /// `-o sieve=`: Pigeonhole's location of the local (Maildir, sdbox) side's Sieve
    /// scripts, a template (`file:~/sieve;active=~/.dovecot.sieve`).
    pub(crate) sieve: Option<String>,
    pub(crate) prefetch_count: Option<usize>,
    pub(crate) commit_interval: u32,
    /// `--save-batch` (hidden), [`dsync_core::SyncOptions::save_batch`].
    pub(crate) save_batch: Option<usize>,
    pub(crate) no_fsync: bool,
    pub(crate) lock_timeout: Option<u64>,
    /// `dsync_remote_cmd`: what `remote:[LOGIN@]HOST` runs (`None`: doveadm's default).
    pub(crate) dsync_remote_cmd: Option<String>,
    /// Uid of what is created in the destination (`--owner`, `mail_uid`); `None`: the
    /// destination root's.
    pub(crate) owner: Option<u32>,
    /// Gid of what is created in the destination (`--owner USER:GROUP`, `mail_gid`).
    pub(crate) group: Option<u32>,
    pub(crate) rawlog_dir: Option<PathBuf>,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) jobs: usize,
    /// Folders of one user synced at once (backup).
    pub(crate) parallel_folders: usize,
    pub(crate) progress_interval: u64,
    pub(crate) imapc: ServerSettings,
    pub(crate) pop3c: ServerSettings,
    /// Dovecot's `pop3_migration_*` settings, for IMAP+POP3 pairs.
    pub(crate) pop3_migration: Pop3MigrationSettings,
    /// Things the operator should know about the settings (printed once).
    pub(crate) warnings: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            secret: None,
            destination_secret: None,
            mechanism: None,
            master_user: None,
            ca_file: None,
            ca_dir: None,
            fingerprints: Vec::new(),
            accept_invalid_certs: false,
            timeout: 300,
            connect_timeout: 30,
            retries: 1,
            retry_interval_ms: 1000,
            max_line_length: None,
            home: None,
            sieve: None,
            prefetch_count: None,
            commit_interval: 100,
            save_batch: None,
            no_fsync: false,
            lock_timeout: None,
            dsync_remote_cmd: None,
            owner: None,
            group: None,
            rawlog_dir: None,
            log_dir: None,
            jobs: 1,
            parallel_folders: 1,
            progress_interval: 10,
            imapc: ServerSettings::default(),
            pop3c: ServerSettings::default(),
            pop3_migration: Pop3MigrationSettings::default(),
            warnings: Vec::new(),
        }
    }
}

/// The command-line groups a verb has (each verb has a different subset).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CliGroups<'a> {
    pub(crate) settings: &'a [String],
    pub(crate) connection: Option<&'a ConnectionArgs>,
    pub(crate) write: Option<&'a WriteArgs>,
    pub(crate) batch: Option<&'a BatchArgs>,
    pub(crate) output: Option<&'a OutputArgs>,
}

impl Settings {
    /// Resolves the settings for a run with `profile` (from the config file).
    #[allow(clippy::field_reassign_with_default)]
    pub(crate) fn resolve(profile: &Profile, cli: CliGroups<'_>) -> Result<Settings, CliError> {
        let mut s = Settings::default();
        // The config file's fields.
        s.secret = profile
            .oauth2_token_file
            .clone()
            .map(SecretSource::OAuth2File)
            .or_else(|| profile.password_command.clone().map(SecretSource::Command))
            .or_else(|| profile.password_file.clone().map(SecretSource::File))
            .or_else(|| profile.password_env.clone().map(SecretSource::Env));
        if let Some(mechanism) = &profile.sasl_mechanism {
            s.mechanism = Some(mechanism_from(mechanism).map_err(CliError::Config)?);
        }
        s.master_user.clone_from(&profile.master_user);
        s.ca_file.clone_from(&profile.ca_file);
        s.ca_dir.clone_from(&profile.ca_dir);
        for text in profile.fingerprint.iter().flat_map(OneOrMany::values) {
            s.fingerprints.push(text.parse().map_err(|e| CliError::Config(format!("{e}")))?);
        }
        s.timeout = profile.timeout.unwrap_or(s.timeout);
        s.retries = profile.retries.unwrap_or(s.retries);
        s.commit_interval = profile.commit_interval.unwrap_or(s.commit_interval);
        s.no_fsync = profile.no_fsync.unwrap_or(s.no_fsync);
        s.lock_timeout = profile.lock_timeout;
        s.jobs = profile.jobs.unwrap_or(s.jobs);
        s.parallel_folders = profile.parallel_folders.unwrap_or(s.parallel_folders).max(1);
        s.log_dir.clone_from(&profile.log_dir);
        s.rawlog_dir.clone_from(&profile.rawlog_dir);
        s.progress_interval = profile.progress_interval.unwrap_or(s.progress_interval);
        s.home.clone_from(&profile.home);
        if let Some(spec) = &profile.owner {
            s.set_owner(spec).map_err(|e| CliError::Config(format!("owner = {spec:?}: {e}")))?;
        }
        for (key, value) in &profile.settings {
            s.apply(key, value).map_err(CliError::Config)?;
        }
        // -o on the command line.
        for setting in cli.settings {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("-o {setting}: expected KEY=VALUE")))?;
            s.apply(key.trim(), value.trim()).map_err(CliError::Usage)?;
        }
        // Explicit options.
        if let Some(connection) = cli.connection {
            let secret = connection
                .oauth2_token_file
                .clone()
                .map(SecretSource::OAuth2File)
                .or_else(|| connection.password_command.clone().map(SecretSource::Command))
                .or_else(|| connection.password_file.clone().map(SecretSource::File));
            if secret.is_some() {
                s.secret = secret;
            }
            if let Some(file) = &connection.destination_password_file {
                s.destination_secret = Some(SecretSource::File(file.clone()));
            }
            if let Some(mechanism) = &connection.sasl_mechanism {
                s.mechanism = Some(mechanism_from(mechanism).map_err(CliError::Usage)?);
            }
            if connection.master_user.is_some() {
                // The command line's master user wins over -o imapc_/pop3c_master_user.
                s.master_user.clone_from(&connection.master_user);
                s.imapc.master_user = None;
                s.pop3c.master_user = None;
            }
            if connection.ca_file.is_some() {
                s.ca_file.clone_from(&connection.ca_file);
            }
            if connection.ca_dir.is_some() {
                s.ca_dir.clone_from(&connection.ca_dir);
            }
            s.fingerprints.extend(connection.fingerprint.iter().copied());
            s.timeout = connection.timeout.unwrap_or(s.timeout);
            s.retries = connection.retries.unwrap_or(s.retries);
            s.parallel_folders = connection.parallel_folders.unwrap_or(s.parallel_folders).max(1);
        }
        if let Some(write) = cli.write {
            s.commit_interval = write.commit_interval.unwrap_or(s.commit_interval);
            s.save_batch = write.save_batch.or(s.save_batch);
            s.no_fsync |= write.no_fsync;
            if write.lock_timeout.is_some() {
                s.lock_timeout = write.lock_timeout;
            }
            if let Some(spec) = &write.owner {
                s.set_owner(spec).map_err(|e| CliError::Usage(format!("--owner {spec}: {e}")))?;
            }
        }
        if let Some(batch) = cli.batch {
            s.jobs = batch.jobs.unwrap_or(s.jobs).max(1);
        }
        if let Some(output) = cli.output {
            if output.log_dir.is_some() {
                s.log_dir.clone_from(&output.log_dir);
            }
            if output.rawlog_dir.is_some() {
                s.rawlog_dir.clone_from(&output.rawlog_dir);
            }
            s.progress_interval = output.progress_interval.unwrap_or(s.progress_interval);
        }
        Ok(s)
    }

    /// The master user of `protocol`'s logins: `--master-user`, else
    /// `-o imapc_master_user` / `-o pop3c_master_user` (also from the config's `settings`),
    /// else the config's `master_user`.
    pub(crate) fn master_user_for(&self, protocol: Protocol) -> Option<&str> {
        let specific = match protocol {
            Protocol::Imap => &self.imapc.master_user,
            Protocol::Pop3 => &self.pop3c.master_user,
            Protocol::Sieve => return self.master_user.as_deref(),
        };
        specific.as_deref().or(self.master_user.as_deref())
    }

    /// `USER[:GROUP]` (or `:GROUP`; `USER:` is the user with its login group, as for
    /// chown), names or numbers: the owner of what is created in the destination.
    fn set_owner(&mut self, spec: &str) -> Result<(), String> {
        let (user, group) = match spec.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (spec, None),
        };
        if user.is_empty() && group.is_none_or(str::is_empty) {
            return Err("expected USER[:GROUP]".into());
        }
        if !user.is_empty() {
            let (uid, login_group) = owner::user(user)?;
            self.owner = Some(uid);
            if group == Some("") {
                self.group = Some(login_group);
            }
        }
        if let Some(group) = group.filter(|g| !g.is_empty()) {
            self.group = Some(owner::group(group)?);
        }
        Ok(())
    }

    /// Applies one Dovecot-named setting.
    fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = |what: &str| {
            value
                .trim_end_matches('s')
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{key}={value}: {what} expected"))
        };
        let server = |protocol: &str| -> Option<&'static str> {
            match protocol {
                "imapc" => Some("imapc"),
                "pop3c" => Some("pop3c"),
                _ => None,
            }
        };
        if let Some((prefix, name)) = key.split_once('_')
            && let Some(protocol) = server(prefix)
        {
            if protocol == "pop3c" && !POP3C_NAMES.contains(&name) {
                return Err(unsupported(key));
            }
            let settings = if protocol == "imapc" { &mut self.imapc } else { &mut self.pop3c };
            match name {
                "host" => settings.host = Some(value.to_owned()),
                "port" => {
                    let port = value.parse::<u16>().ok().filter(|&p| p != 0);
                    settings.port =
                        Some(port.ok_or_else(|| format!("{key}={value}: invalid port"))?);
                }
                "user" => settings.user = Some(value.to_owned()),
                "master_user" => settings.master_user = Some(value.to_owned()),
                // Unlike Dovecot (clear text unless told), unset means STARTTLS, as
                // imap:// does: clear text only when asked for by name.
                "ssl" => {
                    settings.transport = match value {
                        "" => None,
                        "no" => Some(Transport::Plain),
                        "imaps" | "pop3s" => Some(Transport::Tls),
                        "starttls" => Some(Transport::StartTls),
                        _ => {
                            return Err(format!(
                                "{key}={value}: expected no, {protocol}s or starttls"
                            )
                            .replace("imapcs", "imaps")
                            .replace("pop3cs", "pop3s"));
                        }
                    };
                }
                // Dovecot 2.2's names for ssl_client_ca_dir.
                "ssl_ca_dir" => self.ca_dir = Some(value.into()),
                "ssl_verify" => match value {
                    "yes" => self.accept_invalid_certs = false,
                    "no" => {
                        self.accept_invalid_certs = true;
                        self.warnings.push(format!(
                            "{key}=no: server certificates are NOT verified; prefer --ca-file or --fingerprint"
                        ));
                    }
                    _ => return Err(format!("{key}={value}: expected yes or no")),
                },
                "password" => {
                    return Err(format!(
                        "{key}: passwords are never taken from the command line or config; use --password-file, --password-command or DSYNC_PASSWORD"
                    ));
                }
                "sasl_mechanisms" => {
                    let first = value.split([' ', ',']).find(|m| !m.is_empty()).unwrap_or("");
                    self.mechanism = Some(mechanism_from(first)?);
                }
                "cmd_timeout" => self.timeout = number("seconds")?.max(1),
                "connection_timeout_interval" => {
                    // Dovecot's value is in milliseconds.
                    self.connect_timeout = number("milliseconds")?.div_ceil(1000).max(1);
                }
                "connection_retry_count" => {
                    self.retries = u32::try_from(number("a count")?).unwrap_or(u32::MAX);
                }
                "rawlog_dir" => self.rawlog_dir = Some(value.into()),
                "features" if protocol == "imapc" => {
                    settings.features = features::imapc(value, &settings.features)?;
                }
                "features" => settings.no_pipelining = features::pop3c_no_pipelining(value)?,
                // Whether it ends with the server's separator (refused, as by Dovecot) is
                // only known once connected.
                "list_prefix" => {
                    settings.list_prefix = Some(value.to_owned()).filter(|p| !p.is_empty());
                }
                "connection_retry_interval" => self.retry_interval_ms = milliseconds(key, value)?,
                "max_line_length" => {
                    let bytes = crate::filters::parse_size(value)
                        .map_err(|error| format!("{key}={value}: {error}"))?;
                    // 0 is Dovecot's "no limit": the client's own caps stay.
                    self.max_line_length =
                        Some(usize::try_from(bytes).unwrap_or(usize::MAX)).filter(|&n| n > 0);
                }
                "max_idle_time" => {
                    return Err(format!(
                        "{key}: dsync sends no keep-alive NOOPs on an idle connection (a \
                         connection the server drops is reconnected by --retries)"
                    ));
                }
                "quick_received_date" if value == "no" => {}
                "quick_received_date" => {
                    return Err(format!(
                        "{key}={value}: not implemented: a POP3 message's received date comes \
                         from its first Received: header"
                    ));
                }
                _ => return Err(unsupported(key)),
            }
            return Ok(());
        }
        match key {
            "mail_prefetch_count" => {
                self.prefetch_count =
                    Some(usize::try_from(number("a count")?).unwrap_or(usize::MAX).max(1));
            }
            "mail_fsync" => match value {
                "never" => self.no_fsync = true,
                "always" | "optimized" => self.no_fsync = false,
                _ => return Err(format!("{key}={value}: expected always, optimized or never")),
            },
            "ssl_client_ca_file" => self.ca_file = Some(value.into()),
            "ssl_client_ca_dir" => self.ca_dir = Some(value.into()),
            "dsync_commit_msgs_interval" => {
                self.commit_interval = u32::try_from(number("a count")?).unwrap_or(u32::MAX);
            }
            "mail_max_lock_timeout" => self.lock_timeout = Some(number("seconds")?),
            "dsync_remote_cmd" if value.trim().is_empty() => {
                return Err(format!("{key}: the command is empty"));
            }
            "dsync_remote_cmd" => self.dsync_remote_cmd = Some(value.to_owned()),
            // Dovecot's mail user and group: here, whose the mail we create is.
            "mail_uid" if value.is_empty() => self.owner = None,
            "mail_uid" => {
                self.owner = Some(owner::user(value).map_err(|e| format!("{key}={value}: {e}"))?.0);
            }
            "mail_gid" if value.is_empty() => self.group = None,
            "mail_gid" => {
                self.group = Some(owner::group(value).map_err(|e| format!("{key}={value}: {e}"))?);
            }
            "pop3_migration_skip_size_check" => {
                self.pop3_migration.match_options.skip_size_check = yes_no(key, value)?;
            }
            "pop3_migration_ignore_missing_uidls" => {
                self.pop3_migration.missing.ignore_missing_uidls = yes_no(key, value)?;
            }
            "pop3_migration_ignore_extra_uidls" => {
                self.pop3_migration.missing.ignore_extra_uidls = yes_no(key, value)?;
            }
            // `home` is the userdb field, `mail_home` Dovecot's setting: both a template.
            "home" | "mail_home" => self.home = Some(value.to_owned()).filter(|h| !h.is_empty()),
            "sieve" => self.sieve = Some(value.to_owned()).filter(|s| !s.is_empty()),
            "dsync_alt_char" if value == "_" => {}
            "dsync_hashed_headers" if value.eq_ignore_ascii_case("Date Message-ID") => {}
            _ => return Err(unsupported(key)),
        }
        Ok(())
    }
}

/// The `pop3c_*` names Dovecot 2.3 has (the others are `imapc_*` only).
const POP3C_NAMES: &[&str] = &[
    "host",
    "port",
    "user",
    "master_user",
    "password",
    "ssl",
    "ssl_verify",
    "ssl_ca_dir",
    "ssl_ca_file",
    "rawlog_dir",
    "quick_received_date",
    "features",
];

/// A Dovecot `TIME_MSECS` value: `1500`, `1500ms`, `2s`.
fn milliseconds(key: &str, value: &str) -> Result<u64, String> {
    let text = value.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| format!("{key}={value}: milliseconds expected (e.g. 1000, 500ms, 2s)"))?;
    let factor = match text[digits..].trim() {
        "" | "ms" | "msec" | "msecs" => 1,
        "s" | "sec" | "secs" => 1000,
        _ => return Err(format!("{key}={value}: milliseconds expected (e.g. 1000, 500ms, 2s)")),
    };
    Ok(number.saturating_mul(factor))
}

fn yes_no(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{key}={value}: expected yes or no")),
    }
}

fn unsupported(key: &str) -> String {
    format!(
        "-o {key}: not a setting dsync supports (see `dsync --help` for the -o names; \
         dsync_alt_char and dsync_hashed_headers only with Dovecot's defaults)"
    )
}

/// Parses a SASL mechanism name.
pub(crate) fn mechanism_from(name: &str) -> Result<AuthMechanism, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "plain" => AuthMechanism::Plain,
        "login" => AuthMechanism::Login,
        "xoauth2" => AuthMechanism::XOAuth2,
        "oauthbearer" => AuthMechanism::OAuthBearer,
        _ => {
            return Err(format!(
                "unknown SASL mechanism {name:?} (plain, login, xoauth2, oauthbearer)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(settings: &[&str]) -> Result<Settings, CliError> {
        let settings: Vec<String> = settings.iter().map(|s| (*s).to_owned()).collect();
        Settings::resolve(
            &Profile::default(),
            CliGroups { settings: &settings, ..CliGroups::default() },
        )
    }

    #[test]
    fn dovecot_setting_names() {
        let s = with(&[
            "imapc_host=mail.example.com",
            "imapc_port=1993",
            "imapc_ssl=imaps",
            "imapc_user=%u",
            "imapc_features=rfc822.size fetch-headers modseq",
            "imapc_cmd_timeout=60",
            "imapc_connection_timeout_interval=2500",
            "mail_prefetch_count=20",
            "mail_fsync=never",
            "dsync_commit_msgs_interval=500",
            "imapc_sasl_mechanisms=xoauth2",
        ])
        .expect("valid");
        assert_eq!(s.imapc.host.as_deref(), Some("mail.example.com"));
        assert_eq!(s.imapc.port, Some(1993));
        assert_eq!(s.imapc.transport, Some(Transport::Tls));
        assert_eq!(s.timeout, 60);
        assert_eq!(s.connect_timeout, 3);
        assert_eq!(s.prefetch_count, Some(20));
        assert!(s.no_fsync);
        assert_eq!(s.commit_interval, 500);
        assert_eq!(s.mechanism, Some(AuthMechanism::XOAuth2));
    }

    #[test]
    fn owner_from_names_numbers_and_each_place() {
        let s = with(&["mail_uid=nobody", "mail_gid=nogroup"]).expect("valid");
        assert_eq!((s.owner, s.group), (Some(65534), Some(65534)));
        let s = with(&["mail_uid=1234"]).expect("valid");
        assert_eq!((s.owner, s.group), (Some(1234), None));
        let mut settings = Settings::default();
        settings.set_owner("root:65534").expect("valid");
        assert_eq!((settings.owner, settings.group), (Some(0), Some(65534)));
        settings.set_owner(":0").expect("valid");
        assert_eq!((settings.owner, settings.group), (Some(0), Some(0)));
        settings.set_owner("nobody:").expect("valid");
        assert_eq!((settings.owner, settings.group), (Some(65534), Some(65534)));
        for bad in ["no-such-user-dsync", "root:no-such-group-dsync", ":", ""] {
            assert!(Settings::default().set_owner(bad).is_err(), "{bad}");
        }
        let error = with(&["mail_uid=no-such-user-dsync"]).expect_err("unknown").to_string();
        assert!(error.contains("no user"), "{error}");
        // The config file's owner, overridden by -o.
        let profile = Profile { owner: Some("0:0".into()), ..Profile::default() };
        let settings = vec!["mail_gid=65534".to_owned()];
        let s =
            Settings::resolve(&profile, CliGroups { settings: &settings, ..CliGroups::default() })
                .expect("valid");
        assert_eq!((s.owner, s.group), (Some(0), Some(65534)));
    }

    #[test]
    fn tls_settings() {
        let s = with(&[]).expect("defaults");
        assert_eq!((s.imapc.transport, s.pop3c.transport), (None, None), "STARTTLS by default");
        let s = with(&["imapc_ssl=no", "pop3c_ssl=starttls"]).expect("valid");
        assert_eq!(s.imapc.transport, Some(Transport::Plain));
        assert_eq!(s.pop3c.transport, Some(Transport::StartTls));
        assert_eq!(with(&["imapc_ssl="]).expect("valid").imapc.transport, None);
        let error = with(&["pop3c_ssl=yes"]).expect_err("invalid").to_string();
        assert!(error.contains("expected no, pop3s or starttls"), "{error}");
        for (setting, dir) in [
            ("ssl_client_ca_dir=/etc/ssl/certs", "/etc/ssl/certs"),
            ("imapc_ssl_ca_dir=/a", "/a"),
            ("pop3c_ssl_ca_dir=/b", "/b"),
        ] {
            let s = with(&[setting]).expect(setting);
            assert_eq!(s.ca_dir.as_deref(), Some(std::path::Path::new(dir)), "{setting}");
        }
    }

    #[test]
    fn fingerprints_from_the_config_file_and_the_command_line_add_up() {
        let one = format!("sha256:{}", "ab".repeat(32));
        let two = format!("sha256:{}", "cd".repeat(32));
        let profile =
            Profile { fingerprint: Some(OneOrMany::Many(vec![one.clone()])), ..Profile::default() };
        let connection = ConnectionArgs {
            fingerprint: vec![two.parse().expect("valid")],
            ..ConnectionArgs::default()
        };
        let s = Settings::resolve(
            &profile,
            CliGroups { connection: Some(&connection), ..CliGroups::default() },
        )
        .expect("valid");
        assert_eq!(s.fingerprints, [one.parse().expect("valid"), two.parse().expect("valid")]);
        let bad =
            Profile { fingerprint: Some(OneOrMany::One("sha1:00".into())), ..Profile::default() };
        let error = Settings::resolve(&bad, CliGroups::default()).expect_err("bad fingerprint");
        assert_eq!(error.exit_code(), 78, "{error}");
        assert!(error.to_string().contains("sha256:HEX"), "{error}");
    }

    #[test]
    fn refuses_unknown_settings_and_passwords() {
        for (setting, message) in [
            ("bogus_setting=1", "not a setting"),
            ("pop3c_list_prefix=INBOX", "not a setting"),
            ("pop3c_cmd_timeout=5", "not a setting"),
            ("imapc_password=hunter2", "never taken"),
            ("imapc_port=0", "invalid port"),
            ("mail_fsync=sometimes", "expected always"),
            ("no-equals-sign", "KEY=VALUE"),
        ] {
            let error = with(&[setting]).expect_err(setting).to_string();
            assert!(error.contains(message), "{setting}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
