//! The one place where failures become exit codes (doveadm's, `sysexits.h`).

use std::fmt;

use dsync_core::{ErrorKind, Failed, StorageError};

use crate::advice;
use crate::credentials::CredentialError;
use crate::location::LocationError;

/// `EX_USAGE`: bad arguments.
pub(crate) const USAGE: u8 = 64;

/// `EX_TEMPFAIL`: run again later (also the exit of an interrupted run).
pub(crate) const TEMPORARY: u8 = 75;

/// Everything that makes the `dsync` command fail.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A location argument is malformed.
    Location(LocationError),
    /// A combination of arguments is not supported.
    Usage(String),
    /// The config file (or a setting in it) is wrong.
    Config(String),
    /// A file dsync itself writes (a log, a report) cannot be created.
    Output(String),
    /// No password could be had.
    Credentials(CredentialError),
    /// Nothing is known about a user that is needed (e.g. its home for `~`).
    UnknownUser(String),
    /// Opening or finishing one side failed.
    Storage { side: &'static str, error: StorageError },
    /// The sync stopped early.
    Sync(Box<Failed>),
    /// Another dsync holds the destination's lock (longer than `-l` allows): a temporary
    /// failure, but not one to retry within this run.
    Busy(String),
}

impl std::error::Error for CliError {}

impl CliError {
    /// doveadm's exit code for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Location(_) | CliError::Usage(_) | CliError::Credentials(_) => USAGE,
            CliError::Config(_) => ErrorKind::Config.exit_code(),
            CliError::Output(_) => ErrorKind::CannotCreate.exit_code(),
            CliError::UnknownUser(_) => ErrorKind::NoSuchUser.exit_code(),
            CliError::Storage { error, .. } => error.kind().exit_code(),
            CliError::Sync(failed) => failed.exit_code(),
            CliError::Busy(_) => TEMPORARY,
        }
    }
}

impl CliError {
    /// The run was stopped by Ctrl-C or SIGTERM (not a failure: it resumes next time).
    pub(crate) fn is_interrupted(&self) -> bool {
        match self {
            CliError::Storage { error, .. } => error.kind() == ErrorKind::Interrupted,
            CliError::Sync(failed) => failed.error.kind() == ErrorKind::Interrupted,
            _ => false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_interrupted() {
            return f.write_str("interrupted; run again to resume");
        }
        match self {
            CliError::Location(error) => error.fmt(f),
            CliError::Usage(message)
            | CliError::Config(message)
            | CliError::Output(message)
            | CliError::UnknownUser(message)
            | CliError::Busy(message) => f.write_str(message),
            CliError::Credentials(error) => error.fmt(f),
            CliError::Storage { side, error } => {
                write!(f, "{side}: {error}")?;
                if let Some(hint) = hint(error) {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            CliError::Sync(failed) => {
                write!(f, "{}", failed.error)?;
                if let Some(hint) = hint(&failed.error.error) {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
        }
    }
}

/// A word of advice for the errors operators meet most: which option fixes a refused
/// certificate, a refused clear-text login or a wrong port; else, for credentials and
/// temporary failures, what to do. Other errors (a configuration error such as the same
/// Maildir on both sides) say enough themselves: no hint that does not fit them.
fn hint(error: &StorageError) -> Option<String> {
    if let Some(advice) = advice::advice(error) {
        return Some(advice);
    }
    match error.kind() {
        ErrorKind::Authentication => Some("check the user name and password".into()),
        ErrorKind::Temporary => Some("temporary: run again later".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_belong_to_the_errors_they_fit() {
        let same =
            StorageError::new(ErrorKind::Config, "source and destination are the same Maildir");
        assert_eq!(hint(&same), None);
        let refused = StorageError::with_source(
            ErrorKind::Authentication,
            "IMAP logging in",
            imapc::Error::AuthenticationFailed { code: None, text: "no".into() },
        );
        assert_eq!(hint(&refused).as_deref(), Some("check the user name and password"));
        let unavailable = StorageError::with_source(
            ErrorKind::Temporary,
            "IMAP logging in",
            imapc::Error::AuthenticationFailed { code: None, text: "backend down".into() },
        );
        assert_eq!(hint(&unavailable).as_deref(), Some("temporary: run again later"));
        let tls_port = StorageError::with_source(
            ErrorKind::Config,
            "IMAP connecting",
            imapc::Error::ImplicitTlsPort { waited: std::time::Duration::from_secs(15) },
        );
        let shown = CliError::Storage { side: "source", error: tls_port }.to_string();
        assert!(shown.contains("this port speaks TLS: use imaps://"), "{shown}");
        assert!(!shown.contains("--ca-file"), "{shown}");
    }
}
