//! Where passwords come from. Never from argv (visible in `ps` and shell history): a file
//! given by `--password-file`, or the `DSYNC_PASSWORD` environment variable.

use std::path::Path;

use mailnet::Secret;

/// The environment variable holding a password when no file is given.
pub(crate) const PASSWORD_ENV: &str = "DSYNC_PASSWORD";

/// Why no password could be had.
#[derive(Debug)]
pub(crate) enum CredentialError {
    /// Neither a file nor the environment variable.
    Missing,
    /// The file could not be read.
    Unreadable(std::path::PathBuf, std::io::Error),
    /// The file or variable is empty.
    Empty(String),
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialError::Missing => write!(
                f,
                "no password: give --password-file FILE or set {PASSWORD_ENV} (passwords are never taken from the command line)"
            ),
            CredentialError::Unreadable(path, error) => {
                write!(f, "cannot read password file {}: {error}", path.display())
            }
            CredentialError::Empty(from) => write!(f, "the password in {from} is empty"),
        }
    }
}

impl std::error::Error for CredentialError {}

/// Reads the password: the first line of `file`, else `DSYNC_PASSWORD`.
pub(crate) fn password(file: Option<&Path>) -> Result<Secret<String>, CredentialError> {
    let (text, from) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CredentialError::Unreadable(path.to_path_buf(), e))?;
            (text, path.display().to_string())
        }
        None => match std::env::var(PASSWORD_ENV) {
            Ok(text) => (text, PASSWORD_ENV.to_owned()),
            Err(_) => return Err(CredentialError::Missing),
        },
    };
    // A password file conventionally ends with a newline that is not part of it.
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(CredentialError::Empty(from));
    }
    Ok(Secret::new(line))
}
