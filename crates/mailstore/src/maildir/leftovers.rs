//! What killed writers leave in a mailbox's `tmp/`: messages written but never committed
//! (ours are named [`filename::TEMP_PREFIX`]…), and our staging directories in the root's
//! `tmp/` (`.dsync-rs-create.…`, `.dsync-rs-delete.…`). Nobody will ever rename them into
//! place, so they only take space: 8 killed runs left 413 files behind.
//!
//! Dovecot removes any file in `tmp/` whose status changed more than 36 hours ago
//! (`maildir_check_tmp`: `unlink_old_files` with `MAILDIR_TMP_DELETE_SECS`; directories
//! are left alone), since a file that old cannot belong to a delivery in progress. Ours
//! say who wrote them (`P<pid>.<host>` in the name), so they go as soon as that process is
//! gone from this host, as Dovecot decides for a dotlock.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::filename;
use super::layout;

/// Dovecot's `MAILDIR_TMP_DELETE_SECS`: a file in `tmp/` unchanged for this long is junk.
pub(crate) const DOVECOT_TMP_AGE: Duration = Duration::from_secs(36 * 3600);

/// Our staging directories are removed after this long even when their writer cannot be
/// told (another host).
const STAGING_AGE: Duration = Duration::from_secs(3600);

/// The start of our staging directories' names.
pub(crate) const STAGING_PREFIX: &str = ".dsync-rs-";

/// What an entry of `tmp/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A file or link.
    File,
    /// A directory.
    Directory,
}

/// True when `name` was written by a process of this host that no longer runs.
fn writer_is_gone(name: &str) -> bool {
    match filename::writer_of(name) {
        Some((pid, host)) => {
            host == crate::fs::filename_host()
                && pid != filename::process_id()
                && !crate::fs::process_alive(pid)
        }
        None => false,
    }
}

/// True when `name` is one of ours that this very process is writing: never left over,
/// whatever its age, so it need not even be looked at.
fn written_by_this_process(name: &str) -> bool {
    (name.starts_with(filename::TEMP_PREFIX) || name.starts_with(STAGING_PREFIX))
        && filename::writer_of(name).is_some_and(|(pid, host)| {
            pid == filename::process_id() && host == crate::fs::filename_host()
        })
}

/// Whether the entry `name` of `tmp/`, of `kind`, whose status changed at `changed`
/// (UNIX seconds), is left over and may go.
fn is_left_over(name: &str, kind: Kind, changed: i64, now: SystemTime) -> bool {
    let older_than = |age: Duration| {
        let limit = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
        let limit = limit.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        changed < i64::try_from(limit).unwrap_or(i64::MAX)
    };
    match kind {
        Kind::Directory => {
            name.starts_with(STAGING_PREFIX) && (writer_is_gone(name) || older_than(STAGING_AGE))
        }
        Kind::File => {
            (name.starts_with(filename::TEMP_PREFIX) && writer_is_gone(name))
                || older_than(DOVECOT_TMP_AGE)
        }
    }
}

/// Removes what is left over in the `tmp/` directory `tmp` (see the module documentation)
/// as of `now`, and returns how many entries went. Only directories are looked at unless
/// `files`. Errors are of no consequence: what cannot be removed now is tried next time.
pub(crate) fn remove_from_tmp(tmp: &Path, now: SystemTime, files: bool) -> usize {
    let Ok(entries) = layout::dir_entries(tmp) else { return 0 };
    let mut removed = 0;
    for (name, path) in entries {
        // The first commit of a run finds its own messages staged here, up to a commit's
        // worth in every mailbox: one `stat` each, for nothing.
        if written_by_this_process(&name) {
            continue;
        }
        let Ok(metadata) = fs::symlink_metadata(&path) else { continue };
        let kind = if metadata.is_dir() { Kind::Directory } else { Kind::File };
        if (kind == Kind::File && !files) || !is_left_over(&name, kind, metadata.ctime(), now) {
            continue;
        }
        let gone = match kind {
            Kind::Directory => fs::remove_dir_all(&path),
            Kind::File => fs::remove_file(&path),
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process id that is not running (the highest possible ones are never handed out
    /// on a test machine).
    fn dead_pid() -> u32 {
        (4_000_000..4_194_304).find(|pid| !crate::fs::process_alive(*pid)).expect("a free pid")
    }

    #[test]
    fn ours_go_when_their_writer_is_gone_and_anything_after_36_hours() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = dir.path();
        let host = crate::fs::filename_host();
        let dead = dead_pid();
        let ours_dead = format!("{}1700000000.M1P{dead}.{host}", filename::TEMP_PREFIX);
        // Process 1 always runs: a live writer other than this process.
        let ours_alive = format!("{}1700000000.M1P1.{host}", filename::TEMP_PREFIX);
        let ours_now = filename::temp_name(&filename::generate_base());
        let ours_elsewhere = format!("{}1700000000.M1P{dead}.other-host", filename::TEMP_PREFIX);
        // Dovecot's (or an older dsync's) name of a dead process: only the age counts.
        let dovecot = format!("1700000000.M1P{dead}.{host}");
        for name in [&ours_dead, &ours_alive, &ours_now, &ours_elsewhere, &dovecot] {
            fs::write(tmp.join(name), b"partial").expect("write");
        }
        let staging_dead = tmp.join(format!(".dsync-rs-create.1700000000.M1P{dead}.{host}"));
        let staging_alive = tmp.join(format!(".dsync-rs-create.1700000000.M1P1.{host}"));
        let staging_now = tmp.join(format!(".dsync-rs-create.{}", filename::generate_base()));
        let foreign_dir = tmp.join("somebody's");
        for dir in [&staging_dead, &staging_alive, &staging_now, &foreign_dir] {
            fs::create_dir_all(dir.join("cur")).expect("mkdir");
        }

        let now = SystemTime::now();
        assert_eq!(remove_from_tmp(tmp, now, false), 1, "directories only");
        assert!(!staging_dead.exists() && staging_alive.exists() && foreign_dir.exists());
        assert!(staging_now.exists());
        assert_eq!(remove_from_tmp(tmp, now, true), 1);
        let left = |name: &str| tmp.join(name).exists();
        assert!(!left(&ours_dead), "ours, its process gone: at once");
        assert!(left(&ours_alive) && left(&ours_now) && left(&ours_elsewhere) && left(&dovecot));

        // 36 hours on, Dovecot's rule takes every file; a live writer's staging directory
        // is past the hour; somebody else's directory stays, as with Dovecot. What this
        // very process is writing is never touched.
        let later = now + DOVECOT_TMP_AGE + Duration::from_secs(60);
        assert_eq!(remove_from_tmp(tmp, later, true), 4);
        assert!(!left(&ours_alive) && !left(&ours_elsewhere) && !left(&dovecot));
        assert!(!staging_alive.exists() && foreign_dir.exists());
        assert!(left(&ours_now) && staging_now.exists());
    }
}
