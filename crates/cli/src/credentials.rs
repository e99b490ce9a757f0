//! Where passwords and tokens come from. Never from argv (visible in `ps` and shell
//! history): a file (`--password-file`), an environment variable (`DSYNC_PASSWORD`, or
//! `env:NAME` in a user list), the output of a command (`--password-command`, e.g. a
//! secret manager's CLI), or an OAuth2 access token file (`--oauth2-token-file`) that is
//! read again at every connection, so a token refreshed by another process is picked up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mailnet::Secret;

/// The environment variable holding a password when nothing else is given.
pub(crate) const PASSWORD_ENV: &str = "DSYNC_PASSWORD";

/// Where one account's secret comes from. Paths and commands may hold `%u`-style
/// templates (expanded per user in batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// The first line of a file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// The first line a shell command prints.
    Command(String),
    /// An OAuth2 access token in a file (XOAUTH2 or OAUTHBEARER), re-read per connection.
    OAuth2File(PathBuf),
}

impl SecretSource {
    /// Parses a credential reference of a user list: `file:PATH`, `env:NAME`,
    /// `command:SHELL COMMAND`, `oauth2-file:PATH`.
    pub(crate) fn parse_reference(text: &str) -> Result<SecretSource, String> {
        // The text is never echoed: a password written here by mistake must not reach a log.
        const FORMS: &str = "file:PATH, env:NAME, command:CMD or oauth2-file:PATH (a password itself is never accepted here)";
        let (kind, value) = text
            .split_once(':')
            .ok_or_else(|| format!("a credential reference must be {FORMS}"))?;
        if value.is_empty() {
            return Err(format!(
                "a credential reference must be {FORMS}; this one is empty after the colon"
            ));
        }
        Ok(match kind {
            "file" => SecretSource::File(value.into()),
            "env" => SecretSource::Env(value.into()),
            "command" | "cmd" => SecretSource::Command(value.into()),
            "oauth2-file" | "oauth2" => SecretSource::OAuth2File(value.into()),
            _ => return Err(format!("unknown kind of credential reference: use {FORMS}")),
        })
    }

    /// The same source with `%u`-style templates expanded for `user`.
    pub(crate) fn for_user(&self, user: &str) -> SecretSource {
        let path = |p: &Path| PathBuf::from(crate::location::expand(&p.to_string_lossy(), user));
        match self {
            SecretSource::File(p) => SecretSource::File(path(p)),
            SecretSource::Env(name) => SecretSource::Env(name.clone()),
            SecretSource::Command(c) => SecretSource::Command(crate::location::expand(c, user)),
            SecretSource::OAuth2File(p) => SecretSource::OAuth2File(path(p)),
        }
    }

    /// True for an OAuth2 token (the login then uses a bearer-token mechanism).
    pub(crate) fn is_oauth2(&self) -> bool {
        matches!(self, SecretSource::OAuth2File(_))
    }

    /// Reads the secret now (called for every connection).
    pub(crate) fn read(&self) -> Result<Secret<String>, CredentialError> {
        let (text, from) = match self {
            SecretSource::File(path) | SecretSource::OAuth2File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CredentialError::Unreadable(path.display().to_string(), e))?;
                (text, path.display().to_string())
            }
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(text) => (text, format!("${name}")),
                Err(_) => return Err(CredentialError::Missing(Some(name.clone()))),
            },
            SecretSource::Command(command) => {
                (run_command(command)?, "the password command".into())
            }
        };
        // A password file conventionally ends with a newline that is not part of it.
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r').to_owned();
        if line.is_empty() {
            return Err(CredentialError::Empty(from));
        }
        Ok(Secret::new(line))
    }
}

fn run_command(command: &str) -> Result<String, CredentialError> {
    // The command line itself is never printed: it may embed a key id or a path an
    // operator considers sensitive.
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| CredentialError::Unreadable("the password command".into(), e))?;
    if !output.status.success() {
        return Err(CredentialError::CommandFailed(output.status.code()));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| CredentialError::Empty("the password command".into()))
}

/// Why no password could be had.
#[derive(Debug)]
pub(crate) enum CredentialError {
    /// Nothing configured (or the named environment variable is unset).
    Missing(Option<String>),
    /// A file or the command could not be read.
    Unreadable(String, std::io::Error),
    /// The password command exited with a failure.
    CommandFailed(Option<i32>),
    /// The file, variable or command output is empty.
    Empty(String),
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialError::Missing(None) => write!(
                f,
                "no password: give --password-file FILE, --password-command CMD, --oauth2-token-file FILE or set {PASSWORD_ENV} (passwords are never taken from the command line)"
            ),
            CredentialError::Missing(Some(name)) => {
                write!(f, "no password: the environment variable {name} is not set")
            }
            CredentialError::Unreadable(from, error) => write!(f, "cannot read {from}: {error}"),
            CredentialError::CommandFailed(Some(code)) => {
                write!(f, "the password command failed (exit {code})")
            }
            CredentialError::CommandFailed(None) => {
                write!(f, "the password command was killed by a signal")
            }
            CredentialError::Empty(from) => write!(f, "the password in {from} is empty"),
        }
    }
}

impl std::error::Error for CredentialError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            SecretSource::parse_reference("file:/etc/pw/%u"),
            Ok(SecretSource::File("/etc/pw/%u".into()))
        );
        assert_eq!(SecretSource::parse_reference("env:PW_A"), Ok(SecretSource::Env("PW_A".into())));
        assert_eq!(
            SecretSource::parse_reference("command:pass show mail/%u"),
            Ok(SecretSource::Command("pass show mail/%u".into()))
        );
        assert_eq!(
            SecretSource::parse_reference("oauth2-file:/run/tok"),
            Ok(SecretSource::OAuth2File("/run/tok".into()))
        );
        for bad in ["secret", "file:", "password:x"] {
            assert!(SecretSource::parse_reference(bad).is_err(), "{bad}");
        }
        let expanded = SecretSource::File("/pw/%n".into()).for_user("bob@example.com");
        assert_eq!(expanded, SecretSource::File("/pw/bob".into()));
    }

    #[test]
    fn reads_first_line_of_file_and_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\r\nsecond line\n").expect("write");
        assert_eq!(SecretSource::File(file.clone()).read().expect("read").expose(), "s3cret");
        std::fs::write(&file, "\n").expect("write");
        assert!(matches!(SecretSource::File(file).read(), Err(CredentialError::Empty(_))));
        let command = SecretSource::Command("printf 'tok\\n'".into());
        assert_eq!(command.read().expect("run").expose(), "tok");
        assert!(matches!(
            SecretSource::Command("exit 3".into()).read(),
            Err(CredentialError::CommandFailed(Some(3)))
        ));
        assert!(matches!(
            SecretSource::Env("DSYNC_TEST_UNSET_VARIABLE".into()).read(),
            Err(CredentialError::Missing(Some(_)))
        ));
    }
}
