//! Deleting a mailbox directory the way Dovecot does (`mailbox_list_delete_maildir_via_trash`):
//! an atomic rename out of sight marks it deleted, the removal of the files follows. Several
//! processes (Dovecot, or our own workers) may delete mailboxes at the same moment through
//! the same trash directory, so every step tolerates the others.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::filename;
use crate::error::{Error, Result};

/// How often a rename is retried while other deleters keep the trash directory busy.
const ATTEMPTS: u32 = 5;

/// Renames `dir` (the mailbox `name`) to `trash`, or into it when another deletion is
/// still emptying it, and then removes the trash. Once the rename succeeded the mailbox
/// is deleted as far as any reader is concerned; files another deleter is still removing
/// are left to it.
pub(crate) fn delete_via_trash(dir: &Path, trash: &Path, name: &str, fsync: bool) -> Result<()> {
    let mut target: PathBuf = trash.to_path_buf();
    let mut attempt = 0;
    while let Err(error) = fs::rename(dir, &target) {
        attempt += 1;
        match error.kind() {
            ErrorKind::NotFound if target != trash && attempt < ATTEMPTS => {
                // The trash we renamed into was removed meanwhile: the plain name is free.
                target = trash.to_path_buf();
            }
            ErrorKind::NotFound => {
                return Err(Error::MailboxNotFound { name: name.to_owned() });
            }
            ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty if target == trash => {
                // Another deletion is emptying the trash (or a crash left it): go inside it.
                target = trash.join(filename::generate_base());
            }
            ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty if attempt < ATTEMPTS => {
                remove_tolerantly(&target).map_err(|e| Error::io("remove", &target, e))?;
            }
            _ => return Err(Error::io("rename", dir, error)),
        }
    }
    if fsync {
        crate::fs::fsync_dir(dir.parent().unwrap_or(dir))?;
    }
    // What another deleter moved in meanwhile is that deleter's to remove.
    remove_tolerantly(trash).map_err(|e| Error::io("remove", trash, e))
}

/// Removes a directory tree that another process may be removing or adding to.
fn remove_tolerantly(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty | ErrorKind::ResourceBusy
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).expect("create");
        }
        fs::write(dir.join("cur").join("1.M1P1.host:2,S"), b"x").expect("write");
        dir
    }

    #[test]
    fn a_left_over_trash_does_not_stop_a_delete() {
        let root = tempfile::tempdir().expect("temp dir");
        let trash = root.path().join("..DOVECOT-TRASH");
        let left_over = mailbox(root.path(), "..DOVECOT-TRASH");
        assert!(left_over.is_dir());
        let dir = mailbox(root.path(), ".A");
        delete_via_trash(&dir, &trash, "A", false).expect("delete");
        assert!(!dir.exists());
        assert!(!trash.exists());
    }

    #[test]
    fn concurrent_deletes_through_one_trash_all_succeed() {
        let root = tempfile::tempdir().expect("temp dir");
        let trash = root.path().join("..DOVECOT-TRASH");
        let dirs: Vec<PathBuf> =
            (0..16).map(|n| mailbox(root.path(), &format!(".Folder{n}"))).collect();
        std::thread::scope(|scope| {
            for dir in &dirs {
                let trash = &trash;
                scope.spawn(move || delete_via_trash(dir, trash, "folder", false).expect("delete"));
            }
        });
        assert!(dirs.iter().all(|d| !d.exists()));
    }

    #[test]
    fn a_missing_mailbox_is_not_found() {
        let root = tempfile::tempdir().expect("temp dir");
        let trash = root.path().join("..DOVECOT-TRASH");
        let result = delete_via_trash(&root.path().join(".Gone"), &trash, "Gone", false);
        assert!(matches!(result, Err(Error::MailboxNotFound { .. })), "{result:?}");
    }
}
