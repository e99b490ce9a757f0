//! Dotlocks compatible with Dovecot's `file-dotlock.c`: the lock for `X` is `X.lock`,
//! created with `O_EXCL` and holding `<pid>:<hostname>`.
//!
//! A lock is stale (and removed) when it names a process of this host that no longer exists,
//! or when neither the lock nor the protected file changed for the stale timeout. Dovecot
//! applies the same two rules, so a lock left by a killed writer — ours or Dovecot's — never
//! blocks the other side for long.

use std::fs;
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::permissions::Permissions;
use crate::error::{Error, IoContext, Result};

/// Timeouts of one kind of lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockSettings {
    /// Give up after waiting this long.
    pub(crate) timeout: Duration,
    /// Override a lock when neither it nor the target changed for this long.
    pub(crate) stale_timeout: Duration,
}

impl LockSettings {
    /// `dovecot-uidlist.lock`: stale after 120 s (`MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT`).
    pub(crate) const UIDLIST: LockSettings =
        LockSettings { timeout: Duration::from_secs(180), stale_timeout: Duration::from_secs(120) };
    /// `subscriptions.lock`: 120 s timeout, stale after 30 s (`subscription-file.c`).
    pub(crate) const SUBSCRIPTIONS: LockSettings =
        LockSettings { timeout: Duration::from_secs(120), stale_timeout: Duration::from_secs(30) };
}

/// A held dotlock; dropping it removes the lock file (if it is still ours).
#[derive(Debug)]
pub(crate) struct DotLock {
    lock_path: PathBuf,
    file: Option<fs::File>,
    released: bool,
}

impl DotLock {
    /// Takes the lock for `target` (`<target>.lock`, created with `permissions`: it may
    /// become the target, see [`Self::replace_target`]), waiting up to `settings.timeout`.
    pub(crate) fn acquire(
        target: &Path,
        settings: LockSettings,
        permissions: &Permissions,
    ) -> Result<DotLock> {
        let lock_path = lock_path_for(target);
        let deadline = Instant::now() + settings.timeout;
        let mut pause = Duration::from_millis(2);
        // What we saw of the foreign lock, to decide staleness by "no change for a while".
        let mut observed: Option<(Observation, Instant)> = None;
        loop {
            if let Some(file) = create_with_pid(&lock_path, permissions)? {
                return Ok(DotLock { lock_path, file: Some(file), released: false });
            }
            if owner_is_dead(&lock_path) {
                crate::fs::remove_if_exists(&lock_path)?;
                continue;
            }
            let now = Instant::now();
            let seen = Observation::take(&lock_path, target);
            match &observed {
                Some((previous, since)) if *previous == seen => {
                    if now.duration_since(*since) > settings.stale_timeout
                        && seen.lock_age().is_some_and(|age| age > settings.stale_timeout)
                    {
                        crate::fs::remove_if_exists(&lock_path)?;
                        observed = None;
                        continue;
                    }
                }
                _ => observed = Some((seen, now)),
            }
            if now >= deadline {
                return Err(Error::LockTimeout { path: lock_path });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Removes the lock file now, reporting errors.
    pub(crate) fn release(mut self) -> Result<()> {
        self.released = true;
        self.file = None;
        crate::fs::remove_if_exists(&self.lock_path)
    }

    /// The lock file's path.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.lock_path
    }

    /// Writes `contents` into the lock file and renames it over `target`: the lock file is
    /// the temp file, exactly as Dovecot replaces `subscriptions` and `dovecot-keywords`.
    /// `mtime`, if given, is set on the file before it replaces the target.
    pub(crate) fn replace_target(
        mut self,
        target: &Path,
        contents: &[u8],
        fsync: bool,
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        let result = (|| {
            let mut file = self.file.take().ok_or_else(|| {
                Error::io("write lock", &self.lock_path, std::io::Error::other("lock file closed"))
            })?;
            file.set_len(0).ctx("truncate", &self.lock_path)?;
            file.seek(SeekFrom::Start(0)).ctx("seek", &self.lock_path)?;
            file.write_all(contents).ctx("write", &self.lock_path)?;
            if let Some(mtime) = mtime {
                file.set_modified(mtime).ctx("set mtime", &self.lock_path)?;
            }
            if fsync {
                file.sync_all().ctx("fsync", &self.lock_path)?;
            }
            drop(file);
            fs::rename(&self.lock_path, target).ctx("rename", target)?;
            if fsync && let Some(dir) = target.parent() {
                crate::fs::fsync_dir(dir)?;
            }
            Ok(())
        })();
        if result.is_ok() {
            self.released = true;
        }
        result
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = fs::remove_file(&self.lock_path);
        }
    }
}

/// Creates the lock file already holding `<pid>:<host>`: the content is written to a
/// private temp file first and hard-linked into place (Dovecot's `dotlock_use_excl=no`
/// method), so a process killed at any instant never leaves an empty lock, which nobody
/// could attribute and everyone would have to wait out. `Ok(None)` if the lock is taken.
fn create_with_pid(lock_path: &Path, permissions: &Permissions) -> Result<Option<fs::File>> {
    let content = format!("{}:{}", std::process::id(), crate::fs::hostname());
    let mut temp_name = lock_path.as_os_str().to_owned();
    temp_name.push(format!(".{}.{}.tmp", crate::fs::filename_host(), std::process::id()));
    let temp = PathBuf::from(temp_name);
    let _ = fs::remove_file(&temp);
    let mut file = permissions.create_new(&temp)?;
    let linked = file.write_all(content.as_bytes()).and_then(|()| fs::hard_link(&temp, lock_path));
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e).ctx("create lock", lock_path),
    }
}

/// `<target>.lock`.
pub(crate) fn lock_path_for(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// True when the lock names a process of this host that no longer runs.
fn owner_is_dead(lock_path: &Path) -> bool {
    let Ok(content) = fs::read_to_string(lock_path) else { return false };
    let content = content.trim_end_matches('\n');
    let Some((pid, host)) = content.split_once(':') else { return false };
    if host != crate::fs::hostname() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid > 0 && pid != std::process::id() => !crate::fs::process_alive(pid),
        _ => false,
    }
}

/// Identity and times of the lock and the protected file.
#[derive(Debug, PartialEq, Eq)]
struct Observation {
    lock: Option<(u64, u64, Option<SystemTime>)>,
    target: Option<(u64, u64, Option<SystemTime>)>,
}

impl Observation {
    fn take(lock_path: &Path, target: &Path) -> Observation {
        use std::os::unix::fs::MetadataExt;
        let look = |path: &Path| {
            fs::symlink_metadata(path).ok().map(|m| (m.ino(), m.size(), m.modified().ok()))
        };
        Observation { lock: look(lock_path), target: look(target) }
    }

    fn lock_age(&self) -> Option<Duration> {
        let modified = self.lock.as_ref()?.2?;
        SystemTime::now().duration_since(modified).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        let lock =
            DotLock::acquire(&target, LockSettings::UIDLIST, &Permissions::private()).unwrap();
        let content = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(content, format!("{}:{}", std::process::id(), crate::fs::hostname()));
        let quick = LockSettings { timeout: Duration::from_millis(50), ..LockSettings::UIDLIST };
        assert!(matches!(
            DotLock::acquire(&target, quick, &Permissions::private()),
            Err(Error::LockTimeout { .. })
        ));
        lock.release().unwrap();
        assert!(!dir.path().join("dovecot-uidlist.lock").exists());
        drop(DotLock::acquire(&target, quick, &Permissions::private()).unwrap());
        assert!(!dir.path().join("dovecot-uidlist.lock").exists());
    }

    #[test]
    fn lock_file_replaces_target_from_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("subscriptions");
        fs::write(&target, "old contents that are longer").unwrap();
        let lock = DotLock::acquire(&target, LockSettings::SUBSCRIPTIONS, &Permissions::private())
            .unwrap();
        lock.replace_target(&target, b"V\t2\n\n", true, None).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"V\t2\n\n");
        assert!(!lock_path_for(&target).exists());
    }

    #[test]
    fn lock_of_dead_process_is_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        // pid 0x7ffffff0 cannot exist (pid_max is at most 2^22).
        fs::write(lock_path_for(&target), format!("2147483632:{}", crate::fs::hostname())).unwrap();
        let quick = LockSettings { timeout: Duration::from_millis(50), ..LockSettings::UIDLIST };
        drop(DotLock::acquire(&target, quick, &Permissions::private()).unwrap());
    }

    #[test]
    fn foreign_host_lock_waits_then_goes_stale() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("subscriptions");
        let lock_path = lock_path_for(&target);
        fs::write(&lock_path, "1:some-other-host").unwrap();
        let quick =
            LockSettings { timeout: Duration::from_millis(60), ..LockSettings::SUBSCRIPTIONS };
        assert!(matches!(
            DotLock::acquire(&target, quick, &Permissions::private()),
            Err(Error::LockTimeout { .. })
        ));
        // Age the lock beyond a short stale timeout: it is overridden.
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(&lock_path).unwrap().set_modified(old).unwrap();
        let stale = LockSettings {
            timeout: Duration::from_secs(5),
            stale_timeout: Duration::from_millis(20),
        };
        drop(DotLock::acquire(&target, stale, &Permissions::private()).unwrap());
    }
}
