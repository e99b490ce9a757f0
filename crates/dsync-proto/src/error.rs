//! What can go wrong talking to a remote `dsync-server`.

use std::process::ExitStatus;

use crate::proto::{DecodeError, ItemError};

/// A failure of the conversation with the remote side. Every one ends the conversation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The remote command line cannot be built.
    #[error("invalid remote command: {reason}")]
    Command {
        /// Why.
        reason: String,
    },
    /// The remote command could not be started.
    #[error("cannot start the remote command {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Reading from or writing to the remote command failed.
    #[error("talking to the remote command {command} failed: {source}")]
    Io {
        /// The command line.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The remote side sent what the protocol does not allow.
    #[error("remote dsync sent bad input: {0}")]
    Decode(#[from] DecodeError),
    /// An item whose values do not mean what its kind needs.
    #[error("remote dsync sent a bad item: {0}")]
    Item(#[from] ItemError),
    /// An item or event that has no place at this point of the conversation.
    #[error("remote dsync sent {got} while we expected {expected}")]
    Unexpected {
        /// What came.
        got: String,
        /// What the conversation needed.
        expected: &'static str,
    },
    /// The remote side closed its output before the conversation ended; `status` is how the
    /// command exited (its stderr, passed through, says why).
    #[error("remote command {command} ended the conversation early ({status})")]
    Closed {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// The remote side sent nothing for longer than the I/O timeout.
    #[error("remote command {command} sent nothing for {seconds} s: giving up")]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout.
        seconds: u64,
    },
    /// The remote side reported a failure in its `F` item.
    #[error("remote dsync failed: {message}")]
    Remote {
        /// Its error text (or a generic one).
        message: String,
        /// Its `enum mail_error` value, when given.
        mail_error: Option<i32>,
        /// It asks for a full resync next time.
        require_full_resync: bool,
    },
    /// The conversation ended well but the command then exited with an error.
    #[error("remote command {command} returned an error ({status})")]
    Exit {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// A caller's handler for a received mail failed.
    #[error("{0}")]
    Handler(Box<dyn std::error::Error + Send + Sync>),
}

impl ClientError {
    /// The doveadm exit code this failure maps to: the remote command's own code when it
    /// is one of doveadm's (67 unknown user, 77 permission, 78 configuration, …), 65 for a
    /// protocol violation, 75 (try again) otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Command { .. } => 64,
            ClientError::Spawn { .. } => 78,
            ClientError::Decode(_) | ClientError::Item(_) | ClientError::Unexpected { .. } => 65,
            ClientError::Closed { status, .. } | ClientError::Exit { status, .. } => {
                let code = status.code().unwrap_or(75);
                if matches!(code, 2 | 64 | 65 | 67 | 68 | 73 | 75 | 77 | 78) { code } else { 75 }
            }
            // `enum mail_error` (dovecot-formats.md §5.11).
            ClientError::Remote { mail_error, .. } => match mail_error {
                Some(4) => 64,
                Some(3 | 8 | 10..=13) => 65,
                Some(7) => 68,
                Some(6) => 73,
                Some(5) => 77,
                _ => 75,
            },
            ClientError::Io { .. } | ClientError::Timeout { .. } | ClientError::Handler(_) => 75,
        }
    }
}
