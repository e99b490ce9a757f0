//! An unchanged `cur/` taken from the caller instead of read
//! ([`Mailbox::into_messages_knowing_cur`]): a re-run after deliveries into `new/` alone
//! then reads `new/` and the uidlist, not the 100 000 names of `cur/` (issue 23 item 1;
//! Dovecot skips an unchanged `cur/` by its mtime the same way).
//!
//! A caller keeps, from a read whose stream vouched for `cur/` ([`MessageStream::cur_stamp`]),
//! the directory's stamp and, per file of `cur/`, its UID, a hash of its base name and the
//! rest of its name (`:2,S`). When `cur/`'s stamp is the same now, no entry of `cur/` was
//! created, renamed or removed since that read began, and the caller's files are `cur/`'s.
//!
//! [`Mailbox::into_messages_knowing_cur`]: super::Mailbox::into_messages_knowing_cur
//! [`MessageStream::cur_stamp`]: super::MessageStream::cur_stamp

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// A directory's identity and change times: any entry created, renamed or removed in it
/// moves its mtime and ctime, and setting the mtime back (`touch -d`) moves the ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    device: u64,
    inode: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl DirStamp {
    /// The stamp of the directory at `path` now; `None` when it cannot be `stat`ed.
    pub(crate) fn of(path: &Path) -> Option<DirStamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(DirStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }

    /// True when the mtime is older than [`crate::DIRTY_SECS`] at `now` (UNIX seconds):
    /// Dovecot's rule for a directory's mtime (`MAILDIR_SYNC_SECS`). A file system that
    /// stamps times by the second leaves the mtime as it was after a change in the same
    /// second, so a stamp that recent cannot say that nothing changed after it; an older
    /// one moves with any later change of an entry.
    pub(crate) fn trusted_at(&self, now: i64) -> bool {
        let dirty = i64::try_from(crate::DIRTY_SECS).unwrap_or(i64::MAX);
        self.modified.0.saturating_add(dirty) < now
    }

    /// As text (six numbers separated by spaces), for a caller to keep.
    pub fn to_text(&self) -> String {
        let DirStamp { device, inode, modified, changed } = self;
        format!("{device} {inode} {} {} {} {}", modified.0, modified.1, changed.0, changed.1)
    }

    /// What [`Self::to_text`] wrote; `None` for anything else.
    pub fn from_text(text: &str) -> Option<DirStamp> {
        let mut fields = text.split(' ');
        let mut next = || fields.next();
        let stamp = DirStamp {
            device: next()?.parse().ok()?,
            inode: next()?.parse().ok()?,
            modified: (next()?.parse().ok()?, next()?.parse().ok()?),
            changed: (next()?.parse().ok()?, next()?.parse().ok()?),
        };
        (next().is_none() && stamp.to_text() == text).then_some(stamp)
    }
}

/// One file of `cur/` as a caller kept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptCurFile<'a> {
    /// The message's UID (a record of the folder's `dovecot-uidlist`).
    pub uid: u32,
    /// [`KeptCurFiles::base_hash`] of its base name.
    pub base_hash: u64,
    /// Its name after the base name (from the first `:`, or empty).
    pub rest: &'a str,
}

/// The files of an unchanged `cur/`, as the caller kept them from the read its stamp is of.
pub trait KeptCurFiles {
    /// The next file, in ascending UID order; `None` after the last.
    fn next_file(&mut self) -> Option<KeptCurFile<'_>>;

    /// The caller's hash of a base name (the one [`KeptCurFile::base_hash`] holds): each
    /// file's record must have the base name the caller kept, else `cur/` is read.
    fn base_hash(&self, base: &str) -> u64;

    /// Asked once the files were given: false when they are not all the caller kept (its
    /// copy could not be read back whole); `cur/` is then read.
    fn intact(&self) -> bool;
}
