//! Whether an sdbox mail directory can hold what a killed save left, without listing it.
//!
//! The first write of a run into a mailbox removes what saves that never finished left
//! (`u.<uid>` files at or above the next UID, our temp files of processes that are gone:
//! [`super::write::clean_once`]). Finding them means listing the whole directory: at
//! 100 000 messages half of a catch-up run's own CPU time. Such leftovers can only appear
//! by adding or renaming an entry, which moves the directory's modification and change
//! times. So a writer that knows the directory clean (it listed it, or found it with the
//! stamp recorded here) and changes it only under the log's lock (our saves stage their
//! files outside it: [`super::Store::save_staging`]; expunges unlink under the lock)
//! records, still holding the lock, the directory's stamp (device, inode, modification and
//! change time to the nanosecond) in `dsync-rs-clean` inside it. A later first write that
//! finds the directory with that very stamp has nothing to look for. Any other stamp, a
//! missing or damaged record: the directory is listed as before.
//!
//! A stamp is recorded only when no later change can give the directory the same times:
//! as Dovecot trusts a directory's mtime only once it is older than a second
//! ([`crate::DIRTY_SECS`], its `MAILDIR_SYNC_SECS`), or, on a local file system that
//! stamps times to the nanosecond from this machine's clock (tmpfs, ext2/3/4, XFS,
//! Btrfs), once the kernel's coarse clock, which file times never fall behind, has
//! passed the recorded times: the lock is held for up to a clock tick (a few
//! milliseconds) until it has. Otherwise the record is emptied (no record).
//!
//! The record is rewritten in place, not replaced by a rename: a new entry would move the
//! times it records. A torn write only makes the record unreadable (the next run lists).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::fs::dir_stamp::DirStamp;
use crate::fs::permissions::Permissions;

/// The record's file name in the mail directory (Dovecot's sdbox reads only `u.*` files
/// and its own `dovecot.*` there).
pub(crate) const CLEAN: &str = "dsync-rs-clean";
const HEADER: &str = "dsync-rs clean 1\n";
/// Longest wait, under the lock, for the coarse clock to pass a stamp (a clock tick is
/// 1–10 ms; more means the times do not come from this clock).
const MAX_WAIT: Duration = Duration::from_millis(50);

/// The record's text for `stamp`.
pub(crate) fn encode(stamp: &DirStamp) -> String {
    format!("{HEADER}{}\n", stamp.to_text())
}

/// What [`encode`] wrote; anything else is no record.
pub(crate) fn decode(data: &[u8]) -> Option<DirStamp> {
    let text = std::str::from_utf8(data.strip_prefix(HEADER.as_bytes())?).ok()?;
    DirStamp::from_text(text.strip_suffix('\n')?)
}

/// The stamp of the directory at `dir`, not followed should it be a symlink.
fn stamp_of(dir: &Path) -> Option<DirStamp> {
    let metadata = std::fs::symlink_metadata(dir).ok()?;
    metadata.is_dir().then(|| DirStamp::of_metadata(&metadata))
}

fn open_record(dir: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        // Never read or written through a symlink.
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(dir.join(CLEAN))
}

/// True when `dir` is as a writer left it clean (see the module): its first write need
/// not list it.
pub(crate) fn unchanged(dir: &Path) -> bool {
    let Some(now) = stamp_of(dir) else { return false };
    let Ok(file) = open_record(dir, false) else { return false };
    let mut data = [0u8; 256];
    let Ok(read) = file.read_at(&mut data, 0) else { return false };
    decode(&data[..read]) == Some(now)
}

/// Records `dir` as it is now, clean: called under the log's exclusive lock (no other
/// writer renames files into it meanwhile) by a writer that knew it clean when it took
/// the lock, after its changes. Waits up to a clock tick (see the module); a stamp that
/// cannot be trusted empties the record. A failure is ignored: without the record the
/// next first write lists the directory.
pub(crate) fn record(dir: &Path, permissions: &Permissions) {
    let file = match open_record(dir, true) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            match permissions.create_new(&dir.join(CLEAN)) {
                Ok(file) => file,
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    // After the record exists: creating it moved the directory's times.
    let stamp = stamp_of(dir).filter(|stamp| trusted(dir, stamp));
    if file.set_len(0).is_ok()
        && let Some(stamp) = stamp
    {
        let _ = file.write_all_at(encode(&stamp).as_bytes(), 0);
    }
    #[cfg(test)]
    RECORDS.set(RECORDS.get() + 1);
}

/// True when no change after this call can leave `dir` with `stamp`'s times (see the
/// module): they are older than [`crate::DIRTY_SECS`], or the coarse clock has passed
/// them (waited for on a local file system that stamps nanoseconds).
fn trusted(dir: &Path, stamp: &DirStamp) -> bool {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else { return false };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if stamp.latest().0.saturating_add(i64::try_from(crate::DIRTY_SECS).unwrap_or(1)) < now {
        return true;
    }
    if !local_nanosecond_times(dir) {
        return false;
    }
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        match coarse_now() {
            Some(coarse) if coarse > stamp.latest() => return true,
            Some(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => return false,
        }
    }
}

/// `CLOCK_REALTIME_COARSE` as (seconds, nanoseconds): the clock the kernel stamps file
/// times from (`current_time`; with multigrain times, never less than it).
fn coarse_now() -> Option<(i64, i64)> {
    use nix::time::{ClockId, clock_gettime};
    let now = clock_gettime(ClockId::CLOCK_REALTIME_COARSE).ok()?;
    #[allow(clippy::useless_conversion)] // time_t and c_long are i32 on some targets
    Some((i64::from(now.tv_sec()), i64::from(now.tv_nsec())))
}

/// True for a local file system that keeps times to the nanosecond, taken from this
/// machine's clock (not a network or FUSE file system, whose server stamps them).
fn local_nanosecond_times(dir: &Path) -> bool {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC, statfs,
    };
    // EXT4_SUPER_MAGIC is also ext2's and ext3's (0xEF53); ext3 with 128-byte inodes keeps
    // whole seconds only: its nanoseconds are always 0, and such a stamp passes the coarse
    // clock only a second later, as Dovecot's rule would have it.
    statfs(dir).is_ok_and(|fs| {
        [TMPFS_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC]
            .contains(&fs.filesystem_type())
    })
}

#[cfg(test)]
thread_local! {
    /// How many times this thread recorded (or emptied) a clean stamp (tests).
    pub(crate) static RECORDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> (tempfile::TempDir, Permissions) {
        let dir = tempfile::tempdir().unwrap();
        let permissions = Permissions::private();
        record(dir.path(), &permissions);
        (dir, permissions)
    }

    #[test]
    fn a_directory_left_alone_is_unchanged() {
        let (dir, permissions) = recorded();
        assert!(unchanged(dir.path()));
        // Recording again in place keeps it so.
        record(dir.path(), &permissions);
        assert!(unchanged(dir.path()));
    }

    #[test]
    fn an_entry_added_removed_or_renamed_is_a_change() {
        let (dir, permissions) = recorded();
        std::fs::write(dir.path().join("u.7"), b"x").unwrap();
        assert!(!unchanged(dir.path()), "added");
        record(dir.path(), &permissions);
        assert!(unchanged(dir.path()));
        std::fs::rename(dir.path().join("u.7"), dir.path().join("u.8")).unwrap();
        assert!(!unchanged(dir.path()), "renamed");
        record(dir.path(), &permissions);
        std::fs::remove_file(dir.path().join("u.8")).unwrap();
        assert!(!unchanged(dir.path()), "removed");
    }

    /// Right after a record, a change by anyone gives the directory other times: the
    /// record waited for the clock (with the wait taken out, a change within the same
    /// clock tick on a kernel without multigrain times keeps the times, and this fails).
    #[test]
    fn a_change_right_after_a_record_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let permissions = Permissions::private();
        for round in 0..50 {
            std::fs::write(dir.path().join(format!("u.{round}")), b"x").unwrap();
            record(dir.path(), &permissions);
            let recorded = stamp_of(dir.path()).unwrap();
            assert!(unchanged(dir.path()) || !local_nanosecond_times(dir.path()));
            // What the kernel would stamp a change with now is past the recorded times.
            assert!(coarse_now().unwrap() > recorded.latest() || !unchanged(dir.path()));
            std::fs::write(dir.path().join(format!("v.{round}")), b"x").unwrap();
            assert!(!unchanged(dir.path()), "round {round}");
        }
    }

    #[test]
    fn a_file_changed_in_place_is_no_change_of_the_directory() {
        let (dir, permissions) = recorded();
        std::fs::write(dir.path().join("u.1"), b"x").unwrap();
        record(dir.path(), &permissions);
        std::fs::write(dir.path().join("u.1"), b"longer").unwrap();
        assert!(unchanged(dir.path()));
    }

    #[test]
    fn a_damaged_missing_or_foreign_record_is_no_record() {
        let (dir, _) = recorded();
        let path = dir.path().join(CLEAN);
        let good = std::fs::read(&path).unwrap();
        assert!(unchanged(dir.path()));
        for bad in [&good[..good.len() - 1], b"", b"dsync-rs clean 1\n1 2 3.4 5.6 7\n"] {
            // Rewritten in place (no new entry: the directory's times stay).
            std::fs::write(&path, bad).unwrap();
            assert!(!unchanged(dir.path()), "{bad:?}");
        }
        std::fs::write(&path, &good).unwrap();
        assert!(unchanged(dir.path()));
        std::fs::remove_file(&path).unwrap();
        assert!(!unchanged(dir.path()));
    }

    #[test]
    fn a_record_through_a_symlink_is_not_read() {
        let (dir, _) = recorded();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("record");
        std::fs::rename(dir.path().join(CLEAN), &target).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(CLEAN)).unwrap();
        // Whatever the stamp, a symlinked record is refused (O_NOFOLLOW).
        assert!(!unchanged(dir.path()));
    }

    #[test]
    fn stamps_read_back() {
        let stamp = DirStamp::from_text("1 2 3.4 -5.999999999").expect("a stamp");
        assert_eq!(decode(encode(&stamp).as_bytes()), Some(stamp));
        let out_of_range = "dsync-rs clean 1\n1 2 3.1000000000 5.6\n";
        assert_eq!(decode(out_of_range.as_bytes()), None);
    }
}
