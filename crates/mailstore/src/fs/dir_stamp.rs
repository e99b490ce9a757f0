//! A directory's stamp: what says that none of its entries was added, removed or renamed
//! since it was taken. Kept by an sdbox writer that knows its mail directory clean
//! (`dbox::clean_stamp`) and by a caller that keeps a Maildir's `cur/` files
//! (`maildir::kept_cur`).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt as _;

/// A directory's identity and change times (to the nanosecond): any entry created,
/// renamed or removed in it moves its mtime and ctime, and setting the mtime back
/// (`touch -d`) moves the ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    device: u64,
    inode: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl DirStamp {
    /// The stamp of the directory whose status is `metadata`.
    pub(crate) fn of_metadata(metadata: &Metadata) -> DirStamp {
        DirStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// The mtime (seconds, nanoseconds).
    pub(crate) fn modified(&self) -> (i64, i64) {
        self.modified
    }

    /// The later of the two times.
    pub(crate) fn latest(&self) -> (i64, i64) {
        self.modified.max(self.changed)
    }

    /// As text, `device inode mtime.ns ctime.ns`, for a caller to keep.
    pub fn to_text(&self) -> String {
        let DirStamp { device, inode, modified, changed } = self;
        format!("{device} {inode} {}.{} {}.{}", modified.0, modified.1, changed.0, changed.1)
    }

    /// What [`Self::to_text`] wrote; `None` for anything else.
    pub fn from_text(text: &str) -> Option<DirStamp> {
        let mut fields = text.split(' ');
        let device = fields.next()?.parse().ok()?;
        let inode = fields.next()?.parse().ok()?;
        let mut time = || -> Option<(i64, i64)> {
            let (seconds, nanos) = fields.next()?.split_once('.')?;
            let nanos: i64 = nanos.parse().ok()?;
            (0..1_000_000_000).contains(&nanos).then_some(())?;
            Some((seconds.parse().ok()?, nanos))
        };
        let (modified, changed) = (time()?, time()?);
        fields.next().is_none().then_some(DirStamp { device, inode, modified, changed })
    }
}
