//! `dovecot-uidvalidity` (`mailbox-uidvalidity.c`): the storage-wide allocator of
//! UIDVALIDITY values for new mailboxes, shared with Dovecot so neither reuses a value.
//!
//! `dovecot-uidvalidity` holds the last value as 8 lowercase hex digits; an empty marker
//! `dovecot-uidvalidity.<hex>` carries the same value. Allocating renames the marker from
//! `<cur>` to `<cur+1>` (the atomic step) and rewrites the main file. With no marker yet the
//! value is the current time.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{IoContext, Result};

const FILE_NAME: &str = "dovecot-uidvalidity";
const RETRIES: u32 = 10;

/// Allocates the next UIDVALIDITY in `root` (created if missing).
pub(crate) fn next(root: &Path) -> Result<u32> {
    let path = root.join(FILE_NAME);
    let current = fs::read(&path)
        .ok()
        .and_then(|bytes| {
            std::str::from_utf8(bytes.get(..8.min(bytes.len()))?).ok().map(str::to_string)
        })
        .and_then(|text| u32::from_str_radix(text.trim(), 16).ok())
        .filter(|&v| v != 0);
    if let Some(mut value) = current
        && rename_marker(root, &mut value).is_ok()
    {
        write_main(&path, value)?;
        return Ok(value);
    }
    rescan(root, &path)
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

fn marker(root: &Path, value: u32) -> std::path::PathBuf {
    root.join(format!("{FILE_NAME}.{value:08x}"))
}

fn write_main(path: &Path, value: u32) -> Result<()> {
    // Dovecot pwrite()s 8 bytes in place; the file never holds anything else.
    fs::write(path, format!("{value:08x}")).ctx("write", path)
}

fn rescan(root: &Path, path: &Path) -> Result<u32> {
    crate::fs::create_dir_all(root)?;
    let prefix = format!("{FILE_NAME}.");
    let mut values: Vec<u32> = fs::read_dir(root)
        .ctx("read directory", root)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            u32::from_str_radix(name.strip_prefix(&prefix)?, 16).ok()
        })
        .collect();
    values.sort_unstable();
    let (Some(&min), Some(&max)) = (values.first(), values.last()) else {
        let mut value = u32::try_from(crate::fs::now().0).unwrap_or(1).max(1);
        for _ in 0..RETRIES {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(marker(root, value))
            {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    value = value.wrapping_add(1).max(1);
                }
                Err(e) => return Err(e).ctx("create", &marker(root, value)),
            }
        }
        write_main(path, value)?;
        return Ok(value);
    };
    if min != max {
        crate::fs::remove_if_exists(&marker(root, min))?;
    }
    let mut value = max;
    rename_marker(root, &mut value).ctx("rename", &marker(root, max))?;
    write_main(path, value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
