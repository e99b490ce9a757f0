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

/// Files Dovecot (or this crate) keeps in every mailbox directory, the root (INBOX's)
/// included: exact names, then name prefixes (`dovecot.index` covers `dovecot.index.log`,
/// `dsync-rs` our journal, state and lock files). In `LAYOUT=fs` a child mailbox is a
/// directory in its parent's, so a folder with one of these names would take the place
/// of the file (or the file its place).
const MAILBOX_FILES: [&str; 2] = ["maildirfolder", "dovecot-shared"];
const MAILBOX_FILE_PREFIXES: [&str; 5] =
    ["dovecot-uidlist", "dovecot-keywords", "dovecot.index", "dovecot-acl", "dsync-rs"];
/// Files kept only in the root: the subscriptions, Dovecot's UIDVALIDITY allocator, its
/// folder-list index and mailbox log, the Maildir++ quota file.
const ROOT_FILES: [&str; 2] = ["subscriptions", "maildirsize"];
const ROOT_FILE_PREFIXES: [&str; 4] =
    ["subscriptions.", "dovecot-uidvalidity", "dovecot.list.index", "dovecot.mailbox.log"];

/// Why `component` (as stored on disk) cannot be a `LAYOUT=fs` directory at `depth`
/// (0: the top level, in the root), if it cannot. `cur`, `new` and `tmp` are refused by
/// Dovecot too ("Contains reserved name"). The control-file names Dovecot 2.3 accepts, and
/// then loses the file to the folder's directory: `CREATE subscriptions` breaks every
/// later SUBSCRIBE and LSUB ("read() failed with subscription file: Is a directory"),
/// `CREATE dovecot.index` INBOX's index; we refuse them instead.
pub(crate) fn reserved_reason(depth: usize, component: &str) -> Option<&'static str> {
    if SUBDIRS.contains(&component) {
        return Some("component is a reserved Maildir directory (cur, new, tmp)");
    }
    let is = |exact: &[&str], prefixes: &[&str]| {
        exact.contains(&component) || prefixes.iter().any(|p| component.starts_with(p))
    };
    if is(&MAILBOX_FILES, &MAILBOX_FILE_PREFIXES) {
        return Some("component is the name of a file kept in each mailbox directory");
    }
    if depth == 0 && is(&ROOT_FILES, &ROOT_FILE_PREFIXES) {
        return Some("top-level name of a file kept in the Maildir root");
    }
    None
}

/// The directory of mailbox `name`, refusing names that cannot be stored in this layout.
/// The result is always `root` or a path below it. Names that collide with Dovecot's
/// control files in `LAYOUT=fs` are only refused for new folders ([`creatable_dir`]): one
/// that exists can be read, renamed and deleted.
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

/// Removes `dir` and then its parents, up to but not including `root`, while they are
/// empty: Dovecot's `mailbox_list_delete_until_root` after it deleted or renamed a
/// `LAYOUT=fs` mailbox. A mailbox directory (it has `cur/`) or one with other children is
/// not empty and ends the walk. Like Dovecot, a failure only ends it too: the mailbox
/// operation itself has succeeded, and an empty directory left behind is only cosmetic.
pub(crate) fn remove_empty_parents(root: &Path, dir: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        if dir == root
            || !dir.starts_with(root)
            || fs::remove_dir(dir).is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound)
        {
            return;
        }
        current = dir.parent();
    }
}

/// [`mailbox_dir`] for a mailbox to be created (or renamed to): `LAYOUT=fs` also refuses
/// names whose directory would take the place of a control file ([`reserved_reason`]).
pub(crate) fn creatable_dir(location: &Location, name: &MailboxName) -> Result<PathBuf> {
    let dir = mailbox_dir(location, name)?;
    if location.layout() == Layout::Fs && !name.is_inbox() {
        for (depth, component) in name.components().iter().enumerate() {
            let stored = if location.utf8() { component.clone() } else { mutf7::encode(component) };
            if let Some(reason) = reserved_reason(depth, &stored) {
                return Err(Error::InvalidName { name: name.to_string(), reason });
            }
        }
    }
    Ok(dir)
}

/// Moves every folder directory of a `LAYOUT=fs` tree whose name is reserved at its
/// depth ([`reserved_reason`]) to a free name with `_` in front (Dovecot's dsync fix for a
/// name its destination refuses): older versions created such folders, and a directory
/// named `subscriptions` or `dsync-rs-state` in the root made every later run fail ("Is a
/// directory"). Nothing is deleted. Returns `(old path, new path)` of each move.
pub(crate) fn repair_reserved(root: &Path, fsync: bool) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut moved = Vec::new();
    repair_below(root, 0, fsync, &mut moved)?;
    Ok(moved)
}

fn repair_below(
    dir: &Path,
    depth: usize,
    fsync: bool,
    moved: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<()> {
    for (file_name, path) in dir_entries(dir)? {
        // A mailbox's own cur/ new/ tmp/ (a folder could never be named so).
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if SUBDIRS.contains(&file_name.as_str()) || !is_dir {
            continue;
        }
        let mut child = path;
        if reserved_reason(depth, &file_name).is_some() {
            let Some(target) = free_escaped_name(dir, &file_name) else { continue };
            match fs::rename(&child, &target) {
                Ok(()) => {}
                // Another process moved or deleted it meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx("rename", &child),
            }
            if fsync {
                crate::fs::fsync_dir(dir)?;
            }
            moved.push((child, target.clone()));
            child = target;
        }
        repair_below(&child, depth + 1, fsync, moved)?;
    }
    Ok(())
}

/// `_name`, `__name`, … (cut to [`NAME_MAX`] bytes): the first that `dir` does not hold.
fn free_escaped_name(dir: &Path, name: &str) -> Option<PathBuf> {
    (1..=16).find_map(|count| {
        let mut escaped = "_".repeat(count);
        for c in name.chars() {
            if escaped.len() + c.len_utf8() > NAME_MAX {
                break;
            }
            escaped.push(c);
        }
        let path = dir.join(escaped);
        (fs::symlink_metadata(&path).is_err()).then_some(path)
    })
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

    #[test]
    fn fs_reserves_the_names_of_the_maildirs_own_files() {
        let fs = Location::maildir("/m").with_layout(Layout::Fs);
        let creatable = |text: &str| creatable_dir(&fs, &text.parse().unwrap()).is_ok();
        for reserved in [
            "subscriptions",
            "subscriptions.lock",
            "dovecot-uidvalidity.6b14c8df",
            "dovecot.list.index.log",
            "dovecot.mailbox.log",
            "maildirsize",
            "dsync-rs-state",
            "dsync-rs.lock",
            "a/dovecot-uidlist",
            "a/dovecot-uidlist.lock",
            "a/b/dovecot-keywords",
            "a/dovecot.index.cache",
            "a/maildirfolder",
            "a/dovecot-acl",
            "a/dsync-rs-journal",
            "dovecot-shared",
        ] {
            assert!(!creatable(reserved), "{reserved}");
            // Existing ones can still be opened, renamed and deleted.
            assert!(mailbox_dir(&fs, &reserved.parse().unwrap()).is_ok(), "{reserved}");
        }
        for fine in [
            "a/subscriptions",
            "a/maildirsize",
            "Subscriptions",
            "dovecot",
            "_cur",
            "x/_dsync-rs-state",
        ] {
            assert!(creatable(fine), "{fine}");
        }
        // Maildir++ folders are `.`-names: nothing collides.
        let plus = Location::maildir("/m");
        assert!(creatable_dir(&plus, &"subscriptions".parse().unwrap()).is_ok());
        assert!(!plus.reserves(0, "subscriptions"));
        assert!(fs.reserves(0, "dovecot-uidlist"));
        assert!(Location::maildir("/m").with_layout(Layout::Fs).with_utf8(true).reserves(1, "cur"));
    }
}
