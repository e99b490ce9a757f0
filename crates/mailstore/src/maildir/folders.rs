//! The folders of a store, listed as Dovecot 2.3 lists them, and what cannot be listed.
//!
//! Directory names map to mailbox names the way Dovecot's `mailbox_list_get_vname` maps
//! them (checked against Dovecot 2.3.19.1's IMAP LIST): each level is decoded from modified
//! UTF-7, and a level that is not valid modified UTF-7 (raw UTF-8 such as `.café`, a
//! non-canonical `&AGE`) keeps its bytes as its name. Dovecot lists such a folder under that
//! name but cannot open it; we list and read it under the same name, so its mail is copied
//! (a destination stores it under the canonical spelling). A name with bytes that are not
//! UTF-8 is renamed by Dovecot's next listing to the modified UTF-7 of its valid part (each
//! broken sequence one U+FFFD); we list it under the name it gets then, without renaming.
//!
//! Left out and reported ([`LeftOut`]): names that give no usable mailbox name (an empty
//! level from `..`, a control character, `INBOX` again), a second directory with the same
//! name, and folder directories that are symlinks, which are never followed: one leading
//! outside the store is reported, one to another folder of the store is an alias and is left
//! out without a report, as Dovecot's dsync leaves aliases out (its mail is that folder's),
//! any other is reported.

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::layout::{self, SUBDIRS, TRASH_DIR};
use crate::error::{Error, Result};
use crate::fs::beneath::{self, FileKind, Refusal, Tree};
use crate::left_out::{self, LeftOut, LeftOutReason};
use crate::location::{Layout, Location};
use crate::name::MailboxName;

/// One folder found while listing.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) name: MailboxName,
    /// Its directory (the canonical one for its name, or where a non-canonical name is).
    pub(crate) dir: PathBuf,
    /// False for a `LAYOUT=fs` directory without `cur/` (IMAP `\Noselect`).
    pub(crate) selectable: bool,
}

/// The mailbox name levels Dovecot gives the directory name `storage` (without Maildir++'s
/// leading `.`), split at `separator` (`None`: one `LAYOUT=fs` level); `utf8` for
/// `:UTF-8` locations.
pub(crate) fn folder_levels(storage: &[u8], separator: Option<char>, utf8: bool) -> Vec<String> {
    let split = |text: &str| -> Vec<String> {
        match separator {
            Some(separator) => text.split(separator).map(str::to_string).collect(),
            None => vec![text.to_string()],
        }
    };
    match std::str::from_utf8(storage) {
        Ok(text) if utf8 => split(text),
        Ok(text) => {
            split(text).into_iter().map(|level| mutf7::decode(&level).unwrap_or(level)).collect()
        }
        Err(_) => {
            // Dovecot renames the directory to the modified UTF-7 of its valid part and lists
            // it from the next listing on: the name it has then.
            let valid = dovecot_valid_utf8(storage);
            if utf8 { split(&mutf7::encode(&valid)) } else { split(&valid) }
        }
    }
}

/// Dovecot's `uni_utf8_get_valid_data`: every byte that starts no valid UTF-8 sequence
/// becomes U+FFFD, never two U+FFFD in a row.
fn dovecot_valid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() && !out.ends_with('\u{FFFD}') {
            out.push('\u{FFFD}');
        }
    }
    out
}

/// A directory that would be a folder.
#[derive(Debug)]
struct Candidate {
    name: MailboxName,
    /// Relative to the root.
    path: PathBuf,
    /// The directory the name maps to, so that no other spelling of it wins.
    canonical: bool,
    selectable: bool,
}

/// A folder directory that is a symlink to a directory inside the store.
#[derive(Debug)]
struct Linked {
    name: Option<MailboxName>,
    path: PathBuf,
    /// Device and inode of the directory it resolves to.
    id: (u64, u64),
}

/// Every folder below the root (INBOX not included) by name, and what was left out.
pub(crate) fn list(location: &Location) -> Result<(Vec<Found>, Vec<LeftOut>)> {
    let tree = Tree::new(location.root());
    let root = match tree.open_dir(Path::new("")) {
        Ok(root) => root,
        Err(refusal) if refusal.is_not_found() => return Ok((Vec::new(), Vec::new())),
        Err(refusal) => {
            return Err(left_out::error(refusal, location.root(), Path::new(""), "open directory"));
        }
    };
    let mut lister =
        Lister { location, tree, candidates: Vec::new(), linked: Vec::new(), left_out: Vec::new() };
    match location.layout() {
        Layout::MaildirPlusPlus => lister.maildirplusplus(root)?,
        Layout::Fs => lister.fs(root, Path::new(""), &[])?,
    }
    Ok(lister.finish())
}

struct Lister<'a> {
    location: &'a Location,
    tree: Tree<'a>,
    candidates: Vec<Candidate>,
    linked: Vec<Linked>,
    left_out: Vec<LeftOut>,
}

impl Lister<'_> {
    fn maildirplusplus(&mut self, root: OwnedFd) -> Result<()> {
        let entries = beneath::read_dir(root).map_err(|e| self.read_error(Path::new(""), e))?;
        for entry in entries {
            let bytes = entry.name.as_bytes();
            let Some(storage) = bytes.strip_prefix(b".") else { continue };
            if storage.is_empty() || bytes == TRASH_DIR.as_bytes() {
                continue;
            }
            let path = PathBuf::from(&entry.name);
            let levels = folder_levels(storage, Some('.'), self.location.utf8());
            match entry.kind {
                FileKind::Directory => {
                    if let Some(name) = self.usable_name(levels, &path) {
                        self.add(name, path, true);
                    }
                }
                FileKind::Symlink => self.symlink(MailboxName::new(levels).ok(), path),
                _ => {}
            }
        }
        Ok(())
    }

    fn fs(&mut self, dir: OwnedFd, relative: &Path, prefix: &[String]) -> Result<()> {
        let entries = beneath::read_dir(dir).map_err(|e| self.read_error(relative, e))?;
        for entry in entries {
            let bytes = entry.name.as_bytes();
            if SUBDIRS.iter().any(|sub| sub.as_bytes() == bytes) {
                continue;
            }
            let path = relative.join(&entry.name);
            let mut levels = prefix.to_vec();
            levels.extend(folder_levels(bytes, None, self.location.utf8()));
            match entry.kind {
                FileKind::Directory => {}
                FileKind::Symlink => {
                    self.symlink(MailboxName::new(levels).ok(), path);
                    continue;
                }
                _ => continue,
            }
            let name = match MailboxName::new(levels.clone()) {
                // `<root>/INBOX/` only holds INBOX's children: INBOX itself is the root.
                Ok(name) if name.is_inbox() => None,
                Ok(name) => Some(name),
                Err(_) => {
                    // Reported (with everything below it, which has its name as prefix).
                    self.usable_name(levels, &path);
                    continue;
                }
            };
            let child = match self.tree.open_dir(&path) {
                Ok(child) => child,
                // Replaced or removed since it was listed.
                Err(refusal) => {
                    self.refused(name, &path, refusal, FileKind::Directory);
                    continue;
                }
            };
            if let Some(name) = name {
                let selectable = beneath::lstat_at(&child, "cur".as_ref()).is_ok_and(|status| {
                    matches!(
                        FileKind::of_mode(status.st_mode),
                        FileKind::Directory | FileKind::Symlink
                    )
                });
                self.add(name, path.clone(), selectable);
            }
            self.fs(child, &path, &levels)?;
        }
        Ok(())
    }

    /// The mailbox name of `levels`, or `None` with the entry reported when there is none.
    fn usable_name(&mut self, levels: Vec<String>, path: &Path) -> Option<MailboxName> {
        let shown = left_out::escape(levels.join("/").as_bytes());
        let reason = match MailboxName::new(levels) {
            Ok(name) if !name.is_inbox() => return Some(name),
            Ok(_) => "INBOX is the Maildir's root directory, not a folder",
            Err(Error::InvalidName { reason, .. }) => reason,
            Err(_) => "invalid name",
        };
        self.left_out.push(LeftOut {
            mailbox: None,
            path: path.to_path_buf(),
            reason: LeftOutReason::FolderName { name: shown, reason },
        });
        None
    }

    fn add(&mut self, name: MailboxName, path: PathBuf, selectable: bool) {
        let canonical = layout::mailbox_dir(self.location, &name)
            .is_ok_and(|dir| dir == self.location.root().join(&path));
        self.candidates.push(Candidate { name, path, canonical, selectable });
    }

    /// A folder directory that is a symlink: never followed. One to a directory inside the
    /// store is checked against the folders at the end (an alias is fine); one leading
    /// outside to a directory is reported; one to anything else is no folder at all (Dovecot
    /// does not list it either).
    fn symlink(&mut self, name: Option<MailboxName>, path: PathBuf) {
        match self.tree.open_dir(&path) {
            Ok(dir) => match nix::sys::stat::fstat(&dir) {
                Ok(status) => {
                    self.linked.push(Linked { name, path, id: (status.st_dev, status.st_ino) });
                }
                Err(errno) => self.refused(name, &path, Refusal::from(errno), FileKind::Directory),
            },
            Err(refusal @ Refusal::Leaves { .. }) => {
                // Only whether it is a directory is looked at out there, not its contents.
                if std::fs::metadata(self.location.root().join(&path)).is_ok_and(|m| m.is_dir()) {
                    self.refused(name, &path, refusal, FileKind::Directory);
                }
            }
            Err(Refusal::Kind(_)) => {}
            Err(refusal) if refusal.is_not_found() => {}
            Err(refusal) => self.refused(name, &path, refusal, FileKind::Directory),
        }
    }

    /// Reports the entry at `path` that could not be opened.
    fn refused(
        &mut self,
        mailbox: Option<MailboxName>,
        path: &Path,
        refusal: Refusal,
        expected: FileKind,
    ) {
        let reason = match left_out::reason(refusal, path, expected) {
            Ok(reason) => reason,
            // Vanished since it was listed: nothing left behind.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return,
            Err(error) => LeftOutReason::Unreadable { error: error.to_string() },
        };
        self.left_out.push(LeftOut { mailbox, path: path.to_path_buf(), reason });
    }

    fn read_error(&self, relative: &Path, error: io::Error) -> Error {
        Error::io("read directory", self.location.root().join(relative), error)
    }

    /// Aliases resolved, duplicate names reported, the folders sorted by name.
    fn finish(mut self) -> (Vec<Found>, Vec<LeftOut>) {
        let root = self.location.root();
        if !self.linked.is_empty() {
            let folders: HashSet<(u64, u64)> = self
                .candidates
                .iter()
                .filter_map(|c| std::fs::symlink_metadata(root.join(&c.path)).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect();
            for linked in std::mem::take(&mut self.linked) {
                if folders.contains(&linked.id) {
                    continue;
                }
                let target = std::fs::read_link(root.join(&linked.path)).unwrap_or_default();
                self.left_out.push(LeftOut {
                    mailbox: linked.name,
                    path: linked.path,
                    reason: LeftOutReason::SymlinkedFolder { target },
                });
            }
        }
        self.candidates.sort_by(|a, b| {
            (&a.name, !a.canonical, a.path.as_os_str().as_bytes()).cmp(&(
                &b.name,
                !b.canonical,
                b.path.as_os_str().as_bytes(),
            ))
        });
        let mut found: Vec<Found> = Vec::with_capacity(self.candidates.len());
        let mut kept_path = PathBuf::new();
        for candidate in self.candidates {
            if found.last().is_some_and(|last| last.name == candidate.name) {
                self.left_out.push(LeftOut {
                    mailbox: Some(candidate.name),
                    path: candidate.path,
                    reason: LeftOutReason::SameName { kept: kept_path.clone() },
                });
                continue;
            }
            kept_path.clone_from(&candidate.path);
            found.push(Found {
                name: candidate.name,
                dir: root.join(&candidate.path),
                selectable: candidate.selectable,
            });
        }
        self.left_out.sort_by(|a, b| a.path.cmp(&b.path));
        (found, self.left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(storage: &[u8], separator: Option<char>, utf8: bool) -> Vec<String> {
        folder_levels(storage, separator, utf8)
    }

    #[test]
    fn names_as_dovecot_gives_them() {
        let plus = Some('.');
        assert_eq!(levels(b"Entw&APw-rfe.R&-D", plus, false), ["Entwürfe", "R&D"]);
        // Not modified UTF-7: the bytes are the name.
        assert_eq!(levels("café".as_bytes(), plus, false), ["café"]);
        assert_eq!(levels(b"&AGE", plus, false), ["&AGE"]);
        assert_eq!(levels(b"&AGE-&AGI-", plus, false), ["&AGE-&AGI-"]);
        assert_eq!(levels(b"a.&AGE.&AOk-", plus, false), ["a", "&AGE", "é"]);
        assert_eq!(levels(b"a..b", plus, false), ["a", "", "b"]);
        // Not UTF-8: the name Dovecot renames it to.
        assert_eq!(levels(b"caf\xe9", plus, false), ["caf\u{FFFD}"]);
        assert_eq!(levels(b"a\xff\xfe\xfdb.c\x80", plus, false), ["a\u{FFFD}b", "c\u{FFFD}"]);
        assert_eq!(levels(b"\xef\xbf\xbd\xff", plus, false), ["\u{FFFD}"]);
        assert_eq!(levels(b"caf\xe9", plus, true), ["caf&,,0-"]);
        // UTF-8 locations take names as they are.
        assert_eq!(levels("café.&AOk-".as_bytes(), plus, true), ["café", "&AOk-"]);
        assert_eq!(levels(b"a.b", None, false), ["a.b"]);
    }
}
