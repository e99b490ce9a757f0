//! `dovecot-uidvalidity` (`mailbox-uidvalidity.c`): the storage-wide allocator of
//! UIDVALIDITY values for new mailboxes, shared with Dovecot so neither reuses a value.
//!
//! `dovecot-uidvalidity` holds the last value as 8 lowercase hex digits; an empty marker
//! `dovecot-uidvalidity.<hex>` carries the same value. Allocating renames the marker from
//! `<cur>` to `<cur+1>` (the atomic step) and rewrites the main file. With no marker yet the
//! value is the current time.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fs::permissions::Permissions;

const FILE_NAME: &str = "dovecot-uidvalidity";
const RETRIES: u32 = 10;
/// Mode of the empty markers (Dovecot creates them 0444 whatever the store's modes are).
const MARKER_MODE: u32 = 0o444;

/// Refuses UIDVALIDITY 0, which no mailbox has (RFC 3501 §2.3.1.1): a value to be
/// written must pass here first.
pub(crate) fn check_nonzero(uid_validity: u32) -> Result<()> {
    if uid_validity == 0 {
        return Err(Error::InvalidValue {
            field: "UIDVALIDITY",
            value: String::from("0"),
            reason: "must not be 0",
        });
    }
    Ok(())
}

/// Allocates the next UIDVALIDITY in `root` (created if missing).
pub(crate) fn next(root: &Path, permissions: &Permissions) -> Result<u32> {
    let path = root.join(FILE_NAME);
    if let Some(mut value) = read_main(&path)
        && rename_marker(root, &mut value).is_ok()
    {
        write_main(&path, value, permissions)?;
        return Ok(value);
    }
    rescan(root, &path, permissions)
}

/// Makes sure every value allocated from now on (by us or by Dovecot) is above `value`, a
/// UIDVALIDITY just given to a mailbox from elsewhere (the source's): the marker moves up
/// to `value` when it is below. Without a marker yet, the allocator starts where Dovecot's
/// first allocation would (the current time), or at `value` when that is higher.
pub(crate) fn raise(root: &Path, value: u32, permissions: &Permissions) -> Result<()> {
    let path = root.join(FILE_NAME);
    let mut trust_main = true;
    for _ in 0..RETRIES {
        let current = match read_main(&path).filter(|_| trust_main) {
            Some(current) => Some(current),
            None => highest_marker(root)?,
        };
        let Some(current) = current else {
            let start = value.max(now_value());
            match permissions.create_new_with_mode(&marker(root, start), MARKER_MODE) {
                Ok(_) => return write_main(&path, start, permissions),
                // Someone allocated meanwhile: look again.
                Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                    trust_main = false;
                    continue;
                }
                Err(error) => return Err(error),
            }
        };
        if current >= value {
            return Ok(());
        }
        match fs::rename(marker(root, current), marker(root, value)) {
            Ok(()) => return write_main(&path, value, permissions),
            // The main file was behind the marker, or someone allocated meanwhile.
            Err(e) if e.kind() == ErrorKind::NotFound => trust_main = false,
            Err(e) => return Err(e).ctx("rename", &marker(root, current)),
        }
    }
    // Others keep allocating: their values are above ours by now, or Dovecot's own
    // rescan takes the highest marker.
    Ok(())
}

/// The value of the main file, if it holds a usable one.
fn read_main(path: &Path) -> Option<u32> {
    let bytes = fs::read(path).ok()?;
    let text = std::str::from_utf8(bytes.get(..8.min(bytes.len()))?).ok()?;
    u32::from_str_radix(text.trim(), 16).ok().filter(|&v| v != 0)
}

/// Renames `.<value>` to the next value, retrying upward on races; updates `value`.
fn rename_marker(root: &Path, value: &mut u32) -> std::io::Result<()> {
    let mut last_error = std::io::Error::from(ErrorKind::NotFound);
    for _ in 0..RETRIES {
        let from = marker(root, *value);
        *value = value.wrapping_add(1).max(1);
        match fs::rename(&from, marker(root, *value)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => last_error = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_error)
}

fn marker(root: &Path, value: u32) -> PathBuf {
    root.join(format!("{FILE_NAME}.{value:08x}"))
}

/// Dovecot's first value: the current time.
fn now_value() -> u32 {
    u32::try_from(crate::fs::now().0).unwrap_or(1).max(1)
}

fn write_main(path: &Path, value: u32, permissions: &Permissions) -> Result<()> {
    // Dovecot pwrite()s 8 bytes at the start; the file never holds anything else.
    permissions
        .open_or_create(path, false)?
        .write_all(format!("{value:08x}").as_bytes())
        .ctx("write", path)
}

/// The markers' values, lowest first.
fn markers(root: &Path) -> Result<Vec<u32>> {
    let prefix = format!("{FILE_NAME}.");
    let mut values: Vec<u32> = fs::read_dir(root)
        .ctx("read directory", root)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            u32::from_str_radix(name.strip_prefix(&prefix)?, 16).ok()
        })
        .collect();
    values.sort_unstable();
    Ok(values)
}

fn highest_marker(root: &Path) -> Result<Option<u32>> {
    Ok(markers(root)?.last().copied())
}

fn rescan(root: &Path, path: &Path, permissions: &Permissions) -> Result<u32> {
    permissions.create_dir_all(root)?;
    let values = markers(root)?;
    let (Some(&min), Some(&max)) = (values.first(), values.last()) else {
        let mut value = now_value();
        for _ in 0..RETRIES {
            match permissions.create_new_with_mode(&marker(root, value), MARKER_MODE) {
                Ok(_) => break,
                Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                    value = value.wrapping_add(1).max(1);
                }
                Err(error) => return Err(error),
            }
        }
        write_main(path, value, permissions)?;
        return Ok(value);
    };
    if min != max {
        crate::fs::remove_if_exists(&marker(root, min))?;
    }
    let mut value = max;
    rename_marker(root, &mut value).ctx("rename", &marker(root, max))?;
    write_main(path, value, permissions)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(root: &Path) -> Result<u32> {
        super::next(root, &Permissions::private())
    }

    #[test]
    fn allocates_like_dovecot() {
        let dir = tempfile::tempdir().unwrap();
        let first = next(dir.path()).unwrap();
        let now = u32::try_from(crate::fs::now().0).unwrap();
        assert!(first.abs_diff(now) < 5);
        assert_eq!(fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(), format!("{first:08x}"));
        assert!(marker(dir.path(), first).exists());
        let second = next(dir.path()).unwrap();
        assert_eq!(second, first + 1);
        assert!(!marker(dir.path(), first).exists() && marker(dir.path(), second).exists());
        // Main file lost: the marker still knows the value.
        fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(next(dir.path()).unwrap(), second + 1);
        // Duplicate markers: the highest wins, the lowest goes.
        fs::write(marker(dir.path(), 5), "").unwrap();
        fs::write(dir.path().join(FILE_NAME), "zzzz").unwrap();
        assert_eq!(next(dir.path()).unwrap(), second + 2);
        assert!(!marker(dir.path(), 5).exists());
    }
}

#[cfg(test)]
mod raise_tests {
    use super::*;

    fn value_of(root: &Path) -> (u32, Vec<u32>) {
        (read_main(&root.join(FILE_NAME)).unwrap(), markers(root).unwrap())
    }

    #[test]
    fn raising_keeps_later_values_above() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let permissions = Permissions::private();
        // Nothing yet, a value from the past: starts at the current time as Dovecot would.
        raise(root, 1_000, &permissions).unwrap();
        let (start, markers_now) = value_of(root);
        assert!(start.abs_diff(now_value()) < 5, "{start}");
        assert_eq!(markers_now, [start]);
        // A value above: the marker moves up to it, the next allocation is above it.
        let future = start + 1_000_000;
        raise(root, future, &permissions).unwrap();
        assert_eq!(value_of(root), (future, vec![future]));
        raise(root, future - 5, &permissions).unwrap();
        assert_eq!(value_of(root), (future, vec![future]));
        assert_eq!(next(root, &permissions).unwrap(), future + 1);
        // A main file behind its marker (crash between rename and write) is not trusted.
        fs::write(root.join(FILE_NAME), "00000010").unwrap();
        raise(root, future + 10, &permissions).unwrap();
        assert_eq!(value_of(root), (future + 10, vec![future + 10]));
    }

    #[test]
    fn a_fresh_root_with_a_future_value_starts_there() {
        let dir = tempfile::tempdir().unwrap();
        let permissions = Permissions::private();
        raise(dir.path(), u32::MAX - 1, &permissions).unwrap();
        assert_eq!(value_of(dir.path()), (u32::MAX - 1, vec![u32::MAX - 1]));
        let marker_mode = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(marker(dir.path(), u32::MAX - 1)).unwrap().mode() & 0o777
        };
        assert_eq!(marker_mode, 0o444);
    }
}
