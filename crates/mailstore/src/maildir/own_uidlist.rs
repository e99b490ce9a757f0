//! UIDs of a read-only mailbox that has no `dovecot-uidlist`, kept outside the store.
//!
//! A Maildir written by another program (procmail, Courier, an MTA) has no
//! `dovecot-uidlist`. Dovecot would write one at its first look; a source we only read must
//! not be written, and numbering its files in memory anew each time gives a new UIDVALIDITY
//! every run (and, once a file is removed, other UIDs for the files after it). So a store
//! given a place for them ([`super::Maildir::keep_uids_in`]) keeps, per mailbox, a uidlist of
//! its own in Dovecot's format there: the UIDVALIDITY and mailbox GUID it made up the first
//! time, and each file's UID. Files it does not know get the next UIDs in Dovecot's order
//! (file-name sort, which is delivery-time order); files gone are dropped; the next UID
//! never goes down, so a UID is never given to another file.

use std::path::{Path, PathBuf};

use super::filename;
use super::state::{self, Paths, Scan};
use super::uidlist::{Uidlist, ext};
use crate::error::{Error, IoContext, Result};
use crate::fs::dotlock::{DotLock, LockSettings};
use crate::fs::permissions::Permissions;

/// Where a store keeps the uidlists of its mailboxes without `dovecot-uidlist`.
#[derive(Debug, Clone)]
pub(crate) struct OwnUidlists {
    /// Each mailbox's file is this path with `.<hash>` appended.
    prefix: PathBuf,
    /// What those files (and missing parent directories) are created with.
    permissions: Permissions,
    /// False: the files are read, never written (a dry run).
    write: bool,
}

impl OwnUidlists {
    pub(crate) fn new(prefix: PathBuf, permissions: Permissions, write: bool) -> OwnUidlists {
        OwnUidlists { prefix, permissions, write }
    }

    /// The file of the mailbox in `paths`: named after a hash of the store's root and the
    /// mailbox's directory, so another source kept beside the same state never reads it.
    pub(crate) fn path(&self, paths: &Paths) -> PathBuf {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let root = paths.root.as_os_str().as_encoded_bytes();
        let dir = paths.dir.as_os_str().as_encoded_bytes();
        for &byte in root.iter().chain(&[0]).chain(dir) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut name = self.prefix.as_os_str().to_owned();
        name.push(format!(".{hash:016x}"));
        PathBuf::from(name)
    }

    /// The UIDs of the files in `scan`: those the file gave before, the next ones for files
    /// it does not know. The file is rewritten (under its dotlock, replaced by rename) when
    /// that changed anything, before any UID is handed out.
    pub(crate) fn assign(&self, paths: &Paths, scan: &Scan, fsync: bool) -> Result<Uidlist> {
        let path = self.path(paths);
        if !self.write {
            return Ok(assigned(paths, load(paths, &path)?, scan));
        }
        if let Some(parent) = path.parent() {
            self.permissions.create_dir_all(parent)?;
        }
        let lock = DotLock::acquire(&path, LockSettings::UIDLIST, &self.permissions)?;
        let before = read(&path)?;
        let uidlist = match &before {
            Some(_) => assigned(paths, before.clone(), scan),
            None => assigned(paths, courier(paths)?, scan),
        };
        if before.as_ref().is_none_or(|before| *before != uidlist) {
            lock.replace_target(&path, &uidlist.to_bytes(), fsync, None)?;
        } else {
            lock.release()?;
        }
        Ok(uidlist)
    }

    /// The whole file of the mailbox in `paths`, as it is; `None` before the first
    /// [`Self::assign`].
    pub(crate) fn read(&self, paths: &Paths) -> Result<Option<Uidlist>> {
        read(&self.path(paths))
    }

    /// The file's header alone (UIDVALIDITY, next UID, GUID); `None` before the first
    /// [`Self::assign`].
    pub(crate) fn header(&self, paths: &Paths) -> Result<Option<Uidlist>> {
        use std::io::BufRead as _;
        let path = self.path(paths);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).ctx("open", &path),
        };
        let mut line = Vec::new();
        std::io::BufReader::new(file).read_until(b'\n', &mut line).ctx("read", &path)?;
        parse(&path, line)
    }
}

/// `before` with the files of `scan` it does not know numbered, and those gone forgotten
/// (the next UID stays where it was). A file whose name carries no `W=` gets its size with
/// CRLF line ends recorded (`W`, as Dovecot's uidlist records it): otherwise every listing
/// reads every such file whole to compute it (a Maildir other programs write seldom has
/// `W=` in its names).
fn assigned(paths: &Paths, before: Option<Uidlist>, scan: &Scan) -> Uidlist {
    let mut uidlist = state::assign_in_memory(paths, before, scan);
    let next_uid = uidlist.next_uid();
    uidlist.retain(|record| scan.contains_key(record.base()));
    uidlist.header_next_uid = next_uid;
    let tree = paths.tree();
    for position in 0..uidlist.len() {
        let Some(record) = uidlist.get(position) else { break };
        if record.ext(ext::VSIZE).is_some() {
            continue;
        }
        let Some(file) = scan.get(record.base()) else { continue };
        if filename::size_field(file.name, ext::VSIZE).is_some() {
            continue;
        }
        let path = paths.file(&file);
        // Not readable as a message here: the listing reports it.
        let Ok(mut opened) = tree.open_file(paths.relative(&path)) else { continue };
        if let Ok(size) = super::virtual_size_read(&mut opened, &path) {
            uidlist.add_extension(position, ext::VSIZE, &size.to_string());
        }
    }
    uidlist
}

/// Our file at `path`, else what Courier's `courierimapuiddb` says (the first time).
fn load(paths: &Paths, path: &Path) -> Result<Option<Uidlist>> {
    match read(path)? {
        Some(uidlist) => Ok(Some(uidlist)),
        None => courier(paths),
    }
}

/// The UIDVALIDITY and UIDs Courier-IMAP gave the folder (`courierimapuiddb` in its
/// directory: `1 <uidvalidity> <next uid>`, then `<uid> <file name>` lines, which is
/// Dovecot's uidlist version 1), with a new mailbox GUID: the clients of the Courier server
/// then keep their caches. `None` when there is none or it cannot be read as such.
fn courier(paths: &Paths) -> Result<Option<Uidlist>> {
    let Some(data) = paths.read_optional(&paths.dir.join(COURIER_UIDDB))? else {
        return Ok(None);
    };
    let Ok(Some(mut uidlist)) = Uidlist::parse(&data) else { return Ok(None) };
    if uidlist.version != 1 {
        return Ok(None);
    }
    uidlist.version = 3;
    uidlist.guid = Some(crate::guid::Guid::generate());
    uidlist.complete_len = 0;
    uidlist.wants_rewrite = false;
    Ok(Some(uidlist))
}

/// Courier-IMAP's UID file in each folder directory.
const COURIER_UIDDB: &str = "courierimapuiddb";

/// The whole file; `None` when it does not exist yet.
fn read(path: &Path) -> Result<Option<Uidlist>> {
    match std::fs::read(path) {
        Ok(data) => parse(path, data),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).ctx("read", path),
    }
}

fn parse(path: &Path, data: Vec<u8>) -> Result<Option<Uidlist>> {
    let mut parsed = Uidlist::parse_owned(data).map_err(|broken| Error::Corrupt {
        path: path.to_path_buf(),
        line: broken.line,
        reason: broken.reason,
    })?;
    if let Some(uidlist) = &mut parsed {
        // What only matters when writing Dovecot's own file.
        uidlist.complete_len = 0;
        uidlist.wants_rewrite = false;
    }
    Ok(parsed)
}
