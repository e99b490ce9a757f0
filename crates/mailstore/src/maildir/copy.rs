//! Copies of messages the store already holds: a hard link into `tmp/`, as Dovecot's
//! `maildir-copy.c` (`maildir_copy_hardlink`) makes them, else a byte copy; either is staged
//! like a save and becomes visible at [`Mailbox::commit`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::filename;
use super::mailbox::{Mailbox, virtual_size_read};
use super::save::{SaveOptions, Staged, validate};
use super::state;
use crate::error::{Error, IoContext, Result};
use crate::fs::beneath::FileKind;

/// What [`Mailbox::save_copy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyOutcome {
    /// The file was hard-linked: both mailboxes share one body on disk.
    Linked,
    /// The bytes were copied (a hard link was impossible or would change the other copy's
    /// received date).
    Copied,
    /// `from` has no message `uid` (any more), or its GUID is not the expected one: nothing
    /// was staged.
    NotFound,
}

/// Reads of the source mailbox before giving up: a concurrent flag change renames the file
/// between our read and our use of its name (as in [`Mailbox::open_message`]).
const ATTEMPTS: usize = 3;

/// What linking the source into `tmp/` gave.
enum Link {
    /// `tmp/<tmp_name>` is a new name of the source file.
    Done { tmp_path: PathBuf, tmp_name: String },
    /// The source name no longer exists (renamed or expunged since the read).
    SourceGone,
    /// The file system cannot link it here (Dovecot's `ECANTLINK` cases, `EACCES`, `EEXIST`).
    Impossible,
}

impl Mailbox {
    /// Stages a copy of message `uid` of `from` (a mailbox of the same store, or the same
    /// mailbox through another handle), as [`Self::save`] stages a new message: it becomes
    /// visible at [`Self::commit`] with `options` (UID, flags, keywords, GUID, POP3 fields),
    /// and [`Self::rollback`] or dropping `self` removes it again.
    ///
    /// As Dovecot copies within a Maildir store, the file is hard-linked, so the body is
    /// stored once ([`CopyOutcome::Linked`]). A hard link shares the file's mtime, which is
    /// the received date (INTERNALDATE) of both copies, so it is only made when
    /// `options.received` is `None` or equals the source's received date; otherwise, or
    /// when the file system cannot link (another file system, no permission, too many
    /// links, no hard links at all), the bytes are copied as [`Self::save_from`] does
    /// ([`CopyOutcome::Copied`]). Either way `options.received` `None` keeps the source's
    /// received date.
    ///
    /// The source's GUID is its uidlist `G` field, else its base file name; when
    /// `expected_guid` is given and differs, or `from` has no message `uid`, nothing is
    /// staged and [`CopyOutcome::NotFound`] is returned. Pass the source's GUID as
    /// `options.guid` to keep it: a Maildir base name with the copy's `S=`/`W=` becomes the
    /// copy's file name, as in Dovecot's copies, and when that name is taken (a copy within
    /// one mailbox) the copy gets a new name with the GUID in its uidlist `G` field.
    ///
    /// Errors: invalid `options` (as for [`Self::save`]), a read-only store, and I/O
    /// failures other than the link refusals above (a full disk is an error, not a reason
    /// to copy).
    pub fn save_copy(
        &mut self,
        from: &Mailbox,
        uid: u32,
        expected_guid: Option<&str>,
        options: SaveOptions,
    ) -> Result<CopyOutcome> {
        validate(&options)?;
        state::writable(&self.store)?;
        for attempt in 0..ATTEMPTS {
            let last = attempt + 1 == ATTEMPTS;
            let found = from
                .locate(uid, attempt > 0)?
                .filter(|found| expected_guid.is_none_or(|guid| guid == found.guid));
            let Some(found) = found else {
                // The cached view may be out of date: read again before saying no.
                if attempt == 0 {
                    continue;
                }
                return Ok(CopyOutcome::NotFound);
            };
            // Read beneath the store's root only, like any read: a file made a symlink out
            // of the store or a FIFO since the listing is not copied (the caller copies the
            // message from elsewhere).
            let mut file = match from.open_file(&found.path, found.kind) {
                Ok(Some(opened)) => opened.file,
                // Renamed by a flag change or expunged since the read: look again.
                Ok(None) => continue,
                Err(Error::LeftOut(_)) => return Ok(CopyOutcome::NotFound),
                Err(e) => return Err(e),
            };
            let metadata = file.metadata().ctx("stat", &found.path)?;
            let received = crate::fs::unix_seconds(metadata.modified().ctx("stat", &found.path)?);
            if options.received.is_none_or(|wanted| wanted == received) {
                // The link is made to the file opened and checked, never to what its path
                // names by now; a symlink (resolved inside the store) is copied, not linked.
                let link = if found.kind == FileKind::File {
                    self.link_into_tmp(&file)?
                } else {
                    Link::Impossible
                };
                match link {
                    Link::Done { tmp_path, tmp_name } => {
                        // Owns the new link from here on: an error below removes it. The
                        // data was durable already; commit's fsync of cur/ (new/) covers the name.
                        let staged = Staged::new(tmp_path, tmp_name, options);
                        let size = found.size.unwrap_or(metadata.len());
                        let virtual_size = match found.virtual_size {
                            Some(virtual_size) => virtual_size,
                            None => virtual_size_read(&mut file, &found.path)?,
                        };
                        self.stage(staged, size, virtual_size);
                        return Ok(CopyOutcome::Linked);
                    }
                    Link::SourceGone if !last => continue,
                    // Renamed once too often, or not linkable: the open file is copied.
                    Link::SourceGone | Link::Impossible => {}
                }
            }
            let options =
                SaveOptions { received: Some(options.received.unwrap_or(received)), ..options };
            self.save_from(&mut file, options)?;
            return Ok(CopyOutcome::Copied);
        }
        Ok(CopyOutcome::NotFound)
    }

    /// Hard-links the opened file `source` into `tmp/` under a new unique name (creating
    /// `tmp/` if missing, as [`Self::begin_save`] does). The link is made through
    /// `/proc/self/fd/N`, so it is of the very file that was opened beneath the store's
    /// root, whatever its directory holds by now; without `/proc`, it is copied instead.
    fn link_into_tmp(&self, source: &File) -> Result<Link> {
        let tmp_dir = self.paths.tmp();
        let tmp_name = filename::temp_name(&filename::generate_base());
        let tmp_path = tmp_dir.join(&tmp_name);
        let opened = PathBuf::from(format!("/proc/self/fd/{}", source.as_raw_fd()));
        let mut made_tmp = false;
        loop {
            let linked = nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                &opened,
                nix::fcntl::AT_FDCWD,
                &tmp_path,
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(io::Error::from);
            match linked {
                Ok(()) => return Ok(Link::Done { tmp_path, tmp_name }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Either end may be missing: tmp/ (a Maildir written by other
                    // software), the source (expunged since it was opened) or /proc.
                    if made_tmp || tmp_dir.is_dir() {
                        return Ok(if opened.exists() {
                            Link::SourceGone
                        } else {
                            Link::Impossible
                        });
                    }
                    self.store.permissions()?.create_dir(&tmp_dir)?;
                    made_tmp = true;
                }
                Err(e) if cannot_link(&e) => return Ok(Link::Impossible),
                Err(e) => return Err(e).ctx("link", &tmp_path),
            }
        }
    }
}

/// `link(2)` failures that mean "copy instead": Dovecot's `ECANTLINK` (`EXDEV`, `EMLINK`,
/// `EPERM`), `EACCES` and `EEXIST`, plus file systems without hard links (`EOPNOTSUPP`).
/// Anything else (`ENOSPC`, `EDQUOT`, `EIO`…) is an error.
fn cannot_link(error: &io::Error) -> bool {
    use io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::CrossesDevices
            | ErrorKind::TooManyLinks
            | ErrorKind::PermissionDenied
            | ErrorKind::AlreadyExists
            | ErrorKind::Unsupported
    )
}

#[cfg(test)]
mod tests {
    use std::io::{self, ErrorKind};

    use super::cannot_link;

    #[test]
    #[cfg(target_os = "linux")]
    fn which_link_failures_fall_back_to_a_copy() {
        // EXDEV, EMLINK, EPERM, EACCES, EEXIST, EOPNOTSUPP (Linux numbers).
        for errno in [18, 31, 1, 13, 17, 95] {
            assert!(cannot_link(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        // ENOSPC, EDQUOT, EIO, EROFS are errors.
        for errno in [28, 122, 5, 30] {
            assert!(!cannot_link(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        assert!(!cannot_link(&io::Error::from(ErrorKind::NotFound)));
    }
}
