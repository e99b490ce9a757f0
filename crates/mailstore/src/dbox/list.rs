//! The mailboxes of an sdbox store, listed as Dovecot's fs layout lists them
//! (`mailbox-list-fs-iter.c`): every directory below `mailboxes/` is a mailbox name, a
//! selectable one when it holds `dbox-Mails`, a `\Noselect` parent otherwise. Each level is
//! decoded from modified UTF-7 (or taken as UTF-8 with `:UTF-8`) the way
//! [`crate::maildir`] decodes folder names; directories are read only beneath the root,
//! and a directory that is a symlink is never followed.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::location::{MAIL_DIR, MAILBOXES, SdboxLocation};
use crate::error::{IoContext, Result};
use crate::fs::beneath::{self, FileKind, Tree};
use crate::left_out::{self, LeftOut, LeftOutReason};
use crate::name::MailboxName;

/// A mailbox directory found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) name: MailboxName,
    /// `mailboxes/…` relative to the root.
    pub(crate) relative: PathBuf,
    pub(crate) selectable: bool,
}

/// Every mailbox below `mailboxes/`, INBOX first then by name, and what was left out.
pub(crate) fn list(location: &SdboxLocation) -> Result<(Vec<Found>, Vec<LeftOut>)> {
    let tree = Tree::new(location.root());
    let mut found: HashMap<MailboxName, Found> = HashMap::new();
    let mut left_out = Vec::new();
    let mut pending = vec![(PathBuf::from(MAILBOXES), Vec::<String>::new())];
    while let Some((relative, levels)) = pending.pop() {
        let dir = match tree.open_dir(&relative) {
            Ok(dir) => dir,
            Err(refusal) if refusal.is_not_found() => continue,
            Err(refusal) => {
                if levels.is_empty() {
                    return Err(left_out::error(
                        refusal,
                        location.root(),
                        &relative,
                        "open directory",
                    ));
                }
                match left_out::reason(refusal, &relative, FileKind::Directory) {
                    Ok(reason) => left_out.push(LeftOut { mailbox: None, path: relative, reason }),
                    Err(error) => {
                        return Err(crate::error::Error::io(
                            "open",
                            location.root().join(&relative),
                            error,
                        ));
                    }
                }
                continue;
            }
        };
        let entries =
            beneath::read_dir(dir).ctx("read directory", &location.root().join(&relative))?;
        let mut selectable = false;
        for entry in entries {
            let bytes = entry.name.as_bytes();
            if bytes == MAIL_DIR.as_bytes() {
                selectable |= entry.kind == FileKind::Directory;
                continue;
            }
            let path = relative.join(&entry.name);
            match entry.kind {
                FileKind::Directory => {}
                FileKind::Symlink => {
                    let target =
                        std::fs::read_link(location.root().join(&path)).unwrap_or_default();
                    left_out.push(LeftOut {
                        mailbox: None,
                        path,
                        reason: LeftOutReason::SymlinkedFolder { target },
                    });
                    continue;
                }
                // Files beside mailbox directories are not mailboxes in sdbox.
                _ => continue,
            }
            let level = crate::maildir::folders::folder_levels(bytes, None, location.utf8())
                .pop()
                .unwrap_or_default();
            let mut child = levels.clone();
            child.push(level);
            pending.push((path, child));
        }
        if levels.is_empty() {
            continue;
        }
        let name = match MailboxName::new(levels.iter().cloned()) {
            Ok(name) => name,
            Err(error) => {
                let reason = match error {
                    crate::error::Error::InvalidName { reason, .. } => reason,
                    _ => "invalid",
                };
                left_out.push(LeftOut {
                    mailbox: None,
                    path: relative,
                    reason: LeftOutReason::FolderName { name: levels.join("/"), reason },
                });
                continue;
            }
        };
        let canonical = location.relative_dir(&name).ok().as_ref() == Some(&relative);
        let entry = Found { name: name.clone(), relative: relative.clone(), selectable };
        match found.get(&name) {
            None => {
                found.insert(name, entry);
            }
            Some(existing) => {
                // Two spellings of one name: the canonical one is read, the other reported.
                let (kept, dropped) =
                    if canonical { (entry, existing.clone()) } else { (existing.clone(), entry) };
                left_out.push(LeftOut {
                    mailbox: Some(name.clone()),
                    path: dropped.relative.clone(),
                    reason: LeftOutReason::SameName { kept: kept.relative.clone() },
                });
                found.insert(name, kept);
            }
        }
    }
    let mut found: Vec<Found> = found.into_values().collect();
    found.sort_by(|a, b| (!a.name.is_inbox(), &a.name).cmp(&(!b.name.is_inbox(), &b.name)));
    left_out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((found, left_out))
}

/// True when the mail directory `dir` holds a message file (`u.*`).
pub(crate) fn holds_mail(dir: &Path) -> Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(crate::error::Error::io("read directory", dir, error)),
    };
    for entry in entries {
        let entry = entry.ctx("read directory", dir)?;
        if entry.file_name().as_bytes().starts_with(b"u.") {
            return Ok(true);
        }
    }
    Ok(false)
}
