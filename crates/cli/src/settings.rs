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
use crate::location::Transport;

/// Dovecot's `imapc_*` / `pop3c_*` server settings (for the `imapc:` / `pop3c:` locations).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerSettings {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<String>,
    pub(crate) transport: Option<Transport>,
    pub(crate) master_user: Option<String>,
}

/// Everything a run needs besides its locations.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where the password or token comes from (`None`: `$DSYNC_PASSWORD`).
    pub(crate) secret: Option<SecretSource>,
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
    pub(crate) prefetch_count: Option<usize>,
    pub(crate) commit_interval: u32,
    pub(crate) no_fsync: bool,
    pub(crate) lock_timeout: Option<u64>,
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
            mechanism: None,
            master_user: None,
            ca_file: None,
            ca_dir: None,
            fingerprints: Vec::new(),
            accept_invalid_certs: false,
            timeout: 300,
            connect_timeout: 30,
            retries: 1,
            prefetch_count: None,
            commit_interval: 100,
            no_fsync: false,
            lock_timeout: None,
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
            if let Some(mechanism) = &connection.sasl_mechanism {
                s.mechanism = Some(mechanism_from(mechanism).map_err(CliError::Usage)?);
            }
            if connection.master_user.is_some() {
                s.master_user.clone_from(&connection.master_user);
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
            s.no_fsync |= write.no_fsync;
            if write.lock_timeout.is_some() {
                s.lock_timeout = write.lock_timeout;
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
                // What these features turn on in Dovecot, dsync always does (RFC822.SIZE,
                // header hashes from two header fields, CONDSTORE); the rest concern
                // Dovecot's own cache and have no meaning here.
                "features" | "max_idle_time" | "connection_retry_interval" | "max_line_length" => {}
                "list_prefix" if value.is_empty() => {}
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
            "pop3_migration_skip_size_check" => {
                self.pop3_migration.match_options.skip_size_check = yes_no(key, value)?;
            }
            "pop3_migration_ignore_missing_uidls" => {
                self.pop3_migration.missing.ignore_missing_uidls = yes_no(key, value)?;
            }
            "pop3_migration_ignore_extra_uidls" => {
                self.pop3_migration.missing.ignore_extra_uidls = yes_no(key, value)?;
            }
            "dsync_alt_char" if value == "_" => {}
            "dsync_hashed_headers" if value.eq_ignore_ascii_case("Date Message-ID") => {}
            _ => return Err(unsupported(key)),
        }
        Ok(())
    }
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
         imapc_list_prefix, dsync_alt_char and dsync_hashed_headers only with Dovecot's defaults)"
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
            ("imapc_list_prefix=INBOX", "not a setting"),
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
