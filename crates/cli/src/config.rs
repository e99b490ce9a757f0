//! The TOML config file (`-c FILE` or `$DSYNC_CONFIG`): defaults for every run and named
//! accounts, so that a repeated job is one short command (`dsync -c f.toml backup -u alice`).
//!
//! ```toml
//! [defaults]
//! source = "imaps://%u@old.example.com"          # templates: %u %n %d
//! destination = "maildir:/srv/mail/%d/%n/Maildir"
//! home = "/srv/mail/%d/%n"                       # `~` of a user: maildir:~/Maildir
//! master_user = "migrator"
//! ca_file = "/etc/dsync/old-server.pem"          # or ca_dir; or fingerprint = "sha256:…"
//! password_file = "/etc/dsync/master.pw"
//! no_fsync = true
//! jobs = 8
//! parallel_folders = 2                           # folders of a user at once (backup)
//! settings = { mail_prefetch_count = "20" }     # like -o key=value
//! owner = "vmail:vmail"                          # of what is created (default: the root's)
//! sieve_from = "sieve://%u@old.example.com"      # Sieve scripts too (--sieve-from/--sieve-to)
//! sieve_to = "file:~/sieve;active=~/.dovecot.sieve"
//!
//! [accounts.alice]
//! source = "imaps://alice@old.example.com"
//! destination = "maildir:/srv/mail/alice"
//! password_file = "/etc/dsync/alice.pw"
//! ```
//!
//! Command-line options win over an account, which wins over `[defaults]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Defaults for every run.
    #[serde(default)]
    pub(crate) defaults: Profile,
    /// Named accounts (`-u NAME`, all of them with `-A`).
    #[serde(default)]
    pub(crate) accounts: BTreeMap<String, Profile>,
}

/// A set of settings: `[defaults]` or one `[accounts.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// Source location (template).
    pub(crate) source: Option<String>,
    /// Destination location (template).
    pub(crate) destination: Option<String>,
    /// Where the Sieve scripts come from (template; `--sieve-from`).
    pub(crate) sieve_from: Option<String>,
    /// Where the Sieve scripts go (template; `--sieve-to`).
    pub(crate) sieve_to: Option<String>,
    /// The user put into templates (default: the account's name).
    pub(crate) user: Option<String>,
    /// Password file (template).
    pub(crate) password_file: Option<PathBuf>,
    /// Password command (template).
    pub(crate) password_command: Option<String>,
    /// Environment variable with the password.
    pub(crate) password_env: Option<String>,
    /// OAuth2 access token file (template).
    pub(crate) oauth2_token_file: Option<PathBuf>,
    /// SASL mechanism.
    pub(crate) sasl_mechanism: Option<String>,
    /// Master user.
    pub(crate) master_user: Option<String>,
    /// The user's home (template), for `~` and `%h` in Maildir locations.
    pub(crate) home: Option<String>,
    /// Extra CA file.
    pub(crate) ca_file: Option<PathBuf>,
    /// Extra CA directory.
    pub(crate) ca_dir: Option<PathBuf>,
    /// Certificates trusted by SHA-256 fingerprint: one string or a list.
    pub(crate) fingerprint: Option<OneOrMany>,
    /// Reply timeout, seconds.
    pub(crate) timeout: Option<u64>,
    /// Reconnects after temporary failures.
    pub(crate) retries: Option<u32>,
    /// Commit interval.
    pub(crate) commit_interval: Option<u32>,
    /// Deferred fsync.
    pub(crate) no_fsync: Option<bool>,
    /// Lock timeout, seconds.
    pub(crate) lock_timeout: Option<u64>,
    /// Parallel users.
    pub(crate) jobs: Option<usize>,
    /// Folders of a user synced at once.
    pub(crate) parallel_folders: Option<usize>,
    /// Per-user logs.
    pub(crate) log_dir: Option<PathBuf>,
    /// Raw protocol logs.
    pub(crate) rawlog_dir: Option<PathBuf>,
    /// Seconds between progress lines.
    pub(crate) progress_interval: Option<u64>,
    /// Owner (and group) of what is created in the destination: `USER[:GROUP]`.
    pub(crate) owner: Option<String>,
    /// `-o` settings.
    #[serde(default)]
    pub(crate) settings: BTreeMap<String, String>,
}

impl Profile {
    /// `self` with every field `over` sets replaced (settings merged key by key).
    pub(crate) fn overlaid(&self, over: &Profile) -> Profile {
        macro_rules! pick {
            ($($field:ident),*) => {
                Profile {
                    $($field: over.$field.clone().or_else(|| self.$field.clone()),)*
                    settings: {
                        let mut settings = self.settings.clone();
                        settings.extend(over.settings.clone());
                        settings
                    },
                }
            };
        }
        pick!(
            source,
            destination,
            sieve_from,
            sieve_to,
            user,
            password_file,
            password_command,
            password_env,
            oauth2_token_file,
            sasl_mechanism,
            master_user,
            home,
            ca_file,
            ca_dir,
            fingerprint,
            timeout,
            retries,
            commit_interval,
            no_fsync,
            lock_timeout,
            jobs,
            parallel_folders,
            log_dir,
            rawlog_dir,
            progress_interval,
            owner
        )
    }
}

/// A setting that takes one value or a list (`key = "a"` or `key = ["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values.
    pub(crate) fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(value) => vec![value.as_str()],
            OneOrMany::Many(values) => values.iter().map(String::as_str).collect(),
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigFile {
    /// Reads and parses `path`.
    pub(crate) fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        ConfigFile::parse(&text).map_err(|e| ConfigError(format!("config {}: {e}", path.display())))
    }

    /// Parses the text of a config file. Errors never quote the file: a line of it may
    /// hold a password (which is refused, but must not reach stderr or a log either).
    pub(crate) fn parse(text: &str) -> Result<ConfigFile, String> {
        let without_quote = |error: toml::de::Error| {
            let place = error.span().map(|span| position(text, span.start)).unwrap_or_default();
            format!("{place}{}", error.message().trim_end())
        };
        let table: toml::Table = toml::from_str(text).map_err(without_quote)?;
        if let Some(key) = password_key(&table) {
            return Err(format!(
                "{key}: passwords are not accepted in the config file: it is read by whoever may \
                 read the file and ends up in backups and version control. Put the password in \
                 a file only the migration user can read and name it with password_file = \
                 \"/etc/dsync/NAME.pw\" (a template: %u, %n, %d), or use password_command = \
                 \"CMD\" (a vault or password manager) or password_env = \"VARIABLE\""
            ));
        }
        toml::from_str(text).map_err(without_quote)
    }

    /// The settings for `account` (defaults overlaid with the account, if it exists).
    pub(crate) fn profile(&self, account: Option<&str>) -> Profile {
        match account.and_then(|name| self.accounts.get(name)) {
            Some(profile) => self.defaults.overlaid(profile),
            None => self.defaults.clone(),
        }
    }
}

/// `line L, column C: ` of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: ")
}

/// The first key that holds a password (`password`, `imapc_password`, …): directly in
/// `[defaults]` or an account, or in its `settings`. Named as `[section] key`.
fn password_key(table: &toml::Table) -> Option<String> {
    let is_password = |key: &str| key == "password" || key.ends_with("_password");
    let in_profile = |section: String, profile: &toml::Value| {
        let profile = profile.as_table()?;
        let settings = profile.get("settings").and_then(toml::Value::as_table);
        let key = profile
            .keys()
            .find(|key| is_password(key))
            .or_else(|| settings.and_then(|s| s.keys().find(|key| is_password(key))))?;
        Some(format!("{section} {key}"))
    };
    if let Some(key) = table.keys().find(|key| is_password(key)) {
        return Some(key.clone());
    }
    if let Some(found) = table.get("defaults").and_then(|p| in_profile("[defaults]".into(), p)) {
        return Some(found);
    }
    let accounts = table.get("accounts").and_then(toml::Value::as_table)?;
    accounts.iter().find_map(|(name, p)| in_profile(format!("[accounts.{name}]"), p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_overlay_defaults() {
        let config = ConfigFile::parse(
            r#"
[defaults]
source = "imaps://%u@old.example.com"
destination = "maildir:/srv/%n"
master_user = "admin"
jobs = 4
parallel_folders = 3
settings = { mail_prefetch_count = "20", mail_fsync = "never" }

[accounts.alice]
destination = "maildir:/special/alice"
settings = { mail_fsync = "always" }
"#,
        )
        .expect("valid");
        let alice = config.profile(Some("alice"));
        assert_eq!(alice.source.as_deref(), Some("imaps://%u@old.example.com"));
        assert_eq!(alice.destination.as_deref(), Some("maildir:/special/alice"));
        assert_eq!(alice.master_user.as_deref(), Some("admin"));
        assert_eq!(alice.settings["mail_fsync"], "always");
        assert_eq!(alice.settings["mail_prefetch_count"], "20");
        assert_eq!(alice.parallel_folders, Some(3));
        let bob = config.profile(Some("bob"));
        assert_eq!(bob.destination.as_deref(), Some("maildir:/srv/%n"));
    }

    #[test]
    fn typos_and_passwords_are_refused() {
        let typo = ConfigFile::parse("[defaults]\npasword_file = \"x\"\n").expect_err("typo");
        assert!(typo.contains("pasword_file"), "{typo}");
        let password =
            ConfigFile::parse("[accounts.a]\nsettings = { imapc_password = \"secret\" }\n")
                .expect_err("password");
        assert!(password.contains("not accepted"), "{password}");
        assert!(!password.contains("secret"), "{password}");
        for text in [
            "[defaults]\npassword = \"hunter2\"\n",
            "[accounts.bob]\nmaster_password = \"hunter2\"\n",
            "password = \"hunter2\"\n",
        ] {
            let error = ConfigFile::parse(text).expect_err(text);
            assert!(error.contains("password_file") && !error.contains("hunter2"), "{error}");
        }
        // A syntax error on the password's line names the place, never the line.
        let broken = ConfigFile::parse("[defaults]\npassword = hunter2\n").expect_err("syntax");
        assert!(broken.starts_with("line 2, column") && !broken.contains("hunter2"), "{broken}");
        let wrong =
            ConfigFile::parse("[defaults]\njobs = \"many\"\nmaster_user = 1\n").expect_err("type");
        assert!(!wrong.contains('\n'), "one line: {wrong}");
    }
}
