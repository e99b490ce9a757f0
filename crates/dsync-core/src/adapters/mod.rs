//! Adapters that make the workspace's storage crates sync sides (each behind a cargo
//! feature, all on by default).

#[cfg(feature = "imap")]
pub mod imap;
#[cfg(feature = "maildir")]
pub mod maildir;
#[cfg(feature = "pop3")]
pub mod pop3;

/// The sink's own error travelled through `io::Error`; take it back out.
#[cfg(any(feature = "imap", feature = "pop3"))]
pub(crate) fn unwrap_sink_error(error: std::io::Error) -> crate::StorageError {
    let Some(inner) = error.into_inner() else {
        return crate::StorageError::new(crate::ErrorKind::Temporary, "message sink failed");
    };
    match inner.downcast::<crate::StorageError>() {
        Ok(storage_error) => *storage_error,
        Err(other) => crate::StorageError::new(crate::ErrorKind::Temporary, other.to_string()),
    }
}
