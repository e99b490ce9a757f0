//! Mailbox names to directories and back, for Maildir++ and `LAYOUT=fs`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::location::{Layout, Location};
use crate::name::MailboxName;

/// Longest directory entry name Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Maildir++ directory Dovecot renames a mailbox to while deleting it.
pub(crate) const TRASH_DIR: &str = "..DOVECOT-TRASH";
/// Directories inside every Maildir mailbox; reserved as names in `LAYOUT=fs`.
pub(crate) const SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

/// The directory of mailbox `name`, refusing names that cannot be stored in this layout.
/// The result is always `root` or a path below it.
pub(crate) fn mailbox_dir(location: &Location, name: &MailboxName) -> Result<PathBuf> {
    if name.is_inbox() {
        return Ok(location.root().to_path_buf());
    }
    let refuse = |reason: &'static str| Error::InvalidName { name: name.to_string(), reason };
    let encoded: Vec<String> = name
        .components()
        .iter()
        .map(|c| if location.utf8() { c.clone() } else { mutf7::encode(c) })
        .collect();
    match location.layout() {
        Layout::MaildirPlusPlus => {
            if name.components().iter().any(|c| c.contains('.')) {
                return Err(refuse("component contains the Maildir++ separator `.`"));
            }
            let dir_name = format!(".{}", encoded.join("."));
            if dir_name.len() > NAME_MAX {
                return Err(refuse("name too long for one directory entry"));
            }
            Ok(location.root().join(dir_name))
        }
        Layout::Fs => {
            let mut dir = location.root().to_path_buf();
            for component in &encoded {
                if SUBDIRS.contains(&component.as_str()) {
                    return Err(refuse(
                        "component is a reserved Maildir directory (cur, new, tmp)",
                    ));
                }
                if component.len() > NAME_MAX {
                    return Err(refuse("component too long for a directory entry"));
                }
                dir.push(component);
            }
            Ok(dir)
        }
    }
}

/// `(file name, path)` of the entries of `dir` with UTF-8 names; a missing directory is empty.
pub(crate) fn dir_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("read directory", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("read directory", dir)?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(location: &Location, name: &str) -> Result<String> {
        let name: MailboxName = name.parse()?;
        mailbox_dir(location, &name).map(|p| p.strip_prefix("/m").unwrap().display().to_string())
    }

    #[test]
    fn known_answers() {
        let plus = Location::maildir("/m");
        let fs = Location::maildir("/m").with_layout(Layout::Fs);
        let utf8 = Location::maildir("/m").with_utf8(true);
        assert_eq!(dir(&plus, "inbox").unwrap(), "");
        assert_eq!(dir(&plus, "Archive/2023").unwrap(), ".Archive.2023");
        assert_eq!(dir(&plus, "Entwürfe").unwrap(), ".Entw&APw-rfe");
        assert_eq!(dir(&plus, "R&D").unwrap(), ".R&-D");
        assert_eq!(dir(&plus, "INBOX/Sub").unwrap(), ".INBOX.Sub");
        assert_eq!(dir(&utf8, "Entwürfe").unwrap(), ".Entwürfe");
        assert_eq!(dir(&fs, "Archive/2023").unwrap(), "Archive/2023");
        assert_eq!(dir(&fs, "a.b").unwrap(), "a.b");
        for hostile in ["a.b", "x/../..", "..", "a/\u{0}"] {
            assert!(matches!(dir(&plus, hostile), Err(Error::InvalidName { .. })), "{hostile}");
        }
        for hostile in ["cur", "a/new", "tmp/x", "../x"] {
            assert!(matches!(dir(&fs, hostile), Err(Error::InvalidName { .. })), "{hostile}");
        }
        assert!(dir(&plus, &"x".repeat(300)).is_err());
    }
}
