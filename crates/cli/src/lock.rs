//! Locks between runs: two dsyncs writing one destination, or keeping one state, at once
//! would both pair and copy the same messages (into an IMAP server: twice). A Maildir or
//! an sdbox destination is locked in its root ([`crate::open::lock_destination`]); a
//! state kept outside a locked root (an IMAP destination's) is locked here, through a
//! `.lock` file beside it. The second run waits up to `-l SECS`, then stops with exit 75
//! naming the holder.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsync_core::{ErrorKind, StorageError};

use crate::exit::CliError;

/// A state file's lock, held until dropped.
#[derive(Debug)]
pub(crate) struct StateLock {
    file: File,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Our process id goes before the lock does (a later holder writes its own).
        let _ = self.file.set_len(0);
    }
}

/// The lock file of the state at `state`: `STATE.lock` beside it.
pub(crate) fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().map(ToOwned::to_owned).unwrap_or_default();
    name.push(".lock");
    state.with_file_name(name)
}

/// Locks the state at `state` (creating its directory, 0700, and the lock file, 0600),
/// waiting up to `timeout` for another dsync (or until `interrupted`).
pub(crate) fn lock_state(
    state: &Path,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<StateLock, CliError> {
    let path = lock_path(state);
    let io_error = |error: std::io::Error| CliError::Storage {
        side: "destination",
        error: StorageError::with_source(
            ErrorKind::from_io(&error),
            format!("lock {}", path.display()),
            error,
        ),
    };
    if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(directory).map_err(io_error)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error)?;
    let what = format!("the sync state {}", state.display());
    wait_for(&mut file, &path, &what, timeout, interrupted)?;
    Ok(StateLock { file })
}

/// Takes `file`'s lock (`path` is its name), waiting up to `timeout` for its holder (or
/// until `interrupted`), and writes our process id into it. `what` names what the lock
/// guards in the message of a run that finds it held.
pub(crate) fn wait_for(
    file: &mut File,
    path: &Path,
    what: &str,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for the message of another run that finds it locked.
                let _ = file
                    .set_len(0)
                    .and_then(|()| writeln!(file, "{}", std::process::id()))
                    .and_then(|()| file.flush());
                return Ok(());
            }
            Err(std::fs::TryLockError::WouldBlock) if interrupted() => {
                let error = StorageError::new(ErrorKind::Interrupted, "interrupted");
                return Err(CliError::Storage { side: "destination", error });
            }
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| text.trim().parse::<u32>().ok())
                    .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
                    .map(|pid| format!(" (process {pid})"))
                    .unwrap_or_default();
                let waited = if timeout.is_zero() {
                    "; run again later, or give -l SECONDS to wait for it".to_owned()
                } else {
                    format!(" after waiting {}s; run again later", timeout.as_secs())
                };
                return Err(CliError::Busy(format!(
                    "{what} is being written by another dsync{holder}: not starting a second \
                     run on it{waited}"
                )));
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(CliError::Storage {
                    side: "destination",
                    error: StorageError::with_source(
                        ErrorKind::from_io(&error),
                        format!("lock {}", path.display()),
                        error,
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_process_and_may_wait() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("deeper/state");
        let first = lock_state(&state, Duration::ZERO, &|| false).expect("first lock");
        assert!(lock_path(&state).ends_with("deeper/state.lock"));
        let second = lock_state(&state, Duration::from_millis(250), &|| false);
        let Err(CliError::Busy(message)) = second else { panic!("not busy: {second:?}") };
        assert!(message.contains("the sync state"), "{message}");
        assert!(message.contains(&format!("(process {})", std::process::id())), "{message}");
        assert!(message.contains("after waiting 0s"), "{message}");
        drop(first);
        lock_state(&state, Duration::ZERO, &|| false).expect("free again");
    }
}
