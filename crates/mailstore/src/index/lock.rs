//! The lock Dovecot takes on `dovecot.index.log` before it changes a mailbox index
//! (`mail_transaction_log_lock_head` with the default `lock_method = fcntl`): a POSIX
//! record lock on the whole file.
//!
//! `flock(2)` locks do not conflict with `fcntl` locks on Linux, so a writer that used
//! `flock` would race Dovecot without noticing. We take open-file-description locks
//! (`F_OFD_SETLK`), which conflict with Dovecot's `fcntl` locks like any POSIX record lock
//! but belong to the descriptor, not the process: closing another descriptor of the same
//! file elsewhere in this process cannot drop them, and two handles of this process exclude
//! each other as two processes do.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

use crate::error::{Error, Result};

/// Shared (reading) or exclusive (writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Readers exclude writers only.
    Shared,
    /// Excludes everyone else, Dovecot included.
    Exclusive,
}

/// How long to sleep between attempts while someone else holds the lock.
const POLL: Duration = Duration::from_millis(10);

/// Takes the lock on the whole of `file`, waiting up to `timeout`. The lock lasts until the
/// descriptor is closed. `path` is for errors.
// The lock constants are small (0..=2): they fit the C `short` of `struct flock`.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn lock(file: &File, mode: Mode, timeout: Duration, path: &Path) -> Result<()> {
    let request = libc::flock {
        l_type: match mode {
            Mode::Shared => libc::F_RDLCK as libc::c_short,
            Mode::Exclusive => libc::F_WRLCK as libc::c_short,
        },
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        // Must be 0 for open-file-description locks.
        l_pid: 0,
    };
    let deadline = Instant::now() + timeout;
    loop {
        match fcntl(file, FcntlArg::F_OFD_SETLK(&request)) {
            Ok(_) => return Ok(()),
            Err(Errno::EAGAIN | Errno::EACCES | Errno::EINTR) if Instant::now() < deadline => {
                std::thread::sleep(POLL);
            }
            Err(Errno::EAGAIN | Errno::EACCES) => {
                return Err(Error::LockTimeout { path: path.to_path_buf() });
            }
            Err(errno) => return Err(Error::io("lock", path, errno.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares_between_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dovecot.index.log");
        std::fs::write(&path, b"x").unwrap();
        let open = || File::options().read(true).write(true).open(&path).unwrap();
        let (first, second) = (open(), open());
        lock(&first, Mode::Shared, Duration::ZERO, &path).unwrap();
        lock(&second, Mode::Shared, Duration::ZERO, &path).unwrap();
        let third = open();
        let refused = lock(&third, Mode::Exclusive, Duration::from_millis(30), &path);
        assert!(matches!(refused, Err(Error::LockTimeout { .. })), "{refused:?}");
        drop((first, second));
        lock(&third, Mode::Exclusive, Duration::ZERO, &path).unwrap();
        let fourth = open();
        assert!(lock(&fourth, Mode::Shared, Duration::ZERO, &path).is_err());
        drop(third);
        lock(&fourth, Mode::Shared, Duration::ZERO, &path).unwrap();
    }
}
