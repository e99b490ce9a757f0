//! File-system helpers: crash-safe replacement of small files, directory fsync, dotlocks,
//! the host name Dovecot puts into file names and locks. Every directory and file the
//! crate creates is created through [`permissions::Permissions`], which gives it the
//! store's owner and mode bits.

pub(crate) mod beneath;
pub(crate) mod dir_stamp;
pub(crate) mod dotlock;
pub(crate) mod permissions;

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};
use permissions::Permissions;

/// Makes a rename or unlink inside `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync directory", dir)
}

/// Replaces `target` with `contents` crash-safely: write `temp` (created with
/// `permissions`), fsync it (if `fsync`), rename over `target`, fsync the directory (if
/// `fsync`). A crash leaves either the old or the new file, never a mix.
pub(crate) fn replace_file(
    target: &Path,
    temp: &Path,
    contents: &[u8],
    fsync: bool,
    permissions: &Permissions,
) -> Result<()> {
    let result = (|| {
        let mut file = permissions.create_or_truncate(temp)?;
        file.write_all(contents).ctx("write", temp)?;
        if fsync {
            file.sync_all().ctx("fsync", temp)?;
        }
        fs::rename(temp, target).ctx("rename", target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(temp);
    }
    result?;
    if fsync && let Some(dir) = target.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Removes a file; a missing file is not an error.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("unlink", path),
    }
}

/// UNIX seconds of a `SystemTime` (negative before 1970).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `SystemTime` of UNIX seconds.
pub(crate) fn system_time(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 { UNIX_EPOCH + magnitude } else { UNIX_EPOCH - magnitude }
}

/// Dovecot's `MAILDIR_SYNC_SECS`: a directory whose mtime (in seconds) is at least now
/// minus this may still change without its mtime moving (file systems stamp times at their
/// own granularity: a kernel tick, a second on some), so a stamp of it is trusted only
/// once it is older (a Maildir source's change token, sdbox's clean stamp).
pub const DIRTY_SECS: u64 = 1;

/// The current time as UNIX seconds and microseconds.
pub(crate) fn now() -> (i64, u32) {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX), elapsed.subsec_micros())
}

/// The host name as Dovecot's `my_hostname` (gethostname), used in lock files so that
/// Dovecot can recognise a lock of ours whose process died. `None` if unknown.
pub(crate) fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| String::from("localhost"))
    })
}

/// The host name made safe for a Maildir file name: Dovecot does not escape, but `/`, `:`,
/// `,` and control bytes would break the name's grammar, so they become `_`.
pub(crate) fn filename_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        hostname()
            .chars()
            .map(|c| if c == '/' || c == ':' || c == ',' || c.is_control() { '_' } else { c })
            .collect()
    })
}

/// True while process `pid` exists on this machine (zombies count as dead).
pub(crate) fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
