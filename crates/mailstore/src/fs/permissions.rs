//! Owner, group and mode bits of what a store creates, derived from the mail root the way
//! Dovecot derives them (`mailbox_list_get_permissions` in `mailbox-list.c`, 2.3.19.1).
//!
//! Dovecot stats the root directory: new directories get its mode with the owner bits
//! forced on (`(mode & 0777) | 0700`), new files the same without the x bits
//! (`(mode & 0666) | 0600`). Its group is given to new files unless the directory is
//! setgid (the kernel does it), group and world have the same bits ("don't bother") or it
//! is the process's own group. When the root does not exist yet, Dovecot's defaults apply
//! (0700/0600), or the parent's mode and group when the parent is setgid.
//!
//! Dovecot runs as the mail user, so what it creates is the mail user's. We may run as
//! root: then every new directory and file is also given the owner and group of the root
//! (of its nearest existing parent when the root is missing), or the ones configured
//! explicitly, so that a Dovecot serving the store can read and change all of it. Owners
//! are changed on the open file descriptor (`fchown`, `fchmod`), never by path, and only
//! when they differ from what the kernel gave the new file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The set-group-ID bit: new entries of such a directory inherit its group (and new
/// directories the bit itself).
const SETGID: u32 = 0o2000;

/// Where the permissions of a store came from (named in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// Nothing to derive from: Dovecot's defaults, the invoking user's.
    Defaults,
    /// The existing mail root.
    Root(PathBuf),
    /// The nearest existing parent of a root that does not exist yet.
    Parent(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => f.write_str("defaults"),
            Origin::Root(path) => write!(f, "mail root {}", path.display()),
            Origin::Parent(path) => write!(f, "{}, parent of the mail root", path.display()),
        }
    }
}

/// What `stat` says about the directory permissions are derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirStat {
    /// `st_mode` (only the permission bits are used).
    pub(crate) mode: u32,
    /// `st_uid`.
    pub(crate) uid: u32,
    /// `st_gid`.
    pub(crate) gid: u32,
}

impl DirStat {
    fn of(metadata: &fs::Metadata) -> DirStat {
        DirStat { mode: metadata.mode(), uid: metadata.uid(), gid: metadata.gid() }
    }
}

/// Who this process is (effective ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) euid: u32,
    pub(crate) egid: u32,
}

impl Process {
    fn current() -> Process {
        Process { euid: nix::unistd::geteuid().as_raw(), egid: nix::unistd::getegid().as_raw() }
    }

    fn is_root(self) -> bool {
        self.euid == 0
    }
}

/// The owner, group and mode bits a store gives the directories and files it creates
/// (see [`crate::Maildir::permissions`]). Also usable for files that live beside the mail,
/// such as a sync tool's state file in the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    file_mode: u32,
    dir_mode: u32,
    owner: Option<u32>,
    group: Option<u32>,
    origin: Origin,
    /// The owner or group was given explicitly (named in errors).
    explicit: bool,
}

impl Permissions {
    /// Files 0600, directories 0700, owner and group left as the kernel gives them (the
    /// invoking user's): Dovecot's defaults, and what private files such as logs get.
    pub fn private() -> Permissions {
        Permissions {
            file_mode: 0o600,
            dir_mode: 0o700,
            owner: None,
            group: None,
            origin: Origin::Defaults,
            explicit: false,
        }
    }

    /// Derives the permissions for a store rooted at `root`: from the root directory when
    /// it exists, else from its nearest existing parent (see the module documentation).
    pub(crate) fn derive(root: &Path) -> Result<Permissions> {
        let process = Process::current();
        match fs::metadata(root) {
            Ok(metadata) if metadata.is_dir() => {
                Ok(Permissions::from_root(DirStat::of(&metadata), process, root))
            }
            Ok(_) => Err(Error::io(
                "use as mail root",
                root,
                io::Error::new(ErrorKind::NotADirectory, "not a directory"),
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let (parent, metadata) = nearest_existing(root)?;
                Ok(Permissions::from_parent(DirStat::of(&metadata), process, &parent))
            }
            Err(e) => Err(e).ctx("stat", root),
        }
    }

    /// Permissions from the existing root directory `stat` (Dovecot's
    /// `mailbox_list_get_permissions_stat`), for a process `process`.
    pub(crate) fn from_root(stat: DirStat, process: Process, root: &Path) -> Permissions {
        let (owner, group) = if process.is_root() {
            // Standing in for the mail user: the root's owner and group.
            (Some(stat.uid), Some(stat.gid))
        } else {
            let setgid = stat.mode & SETGID != 0;
            let group_like_world = (stat.mode & 0o070) >> 3 == stat.mode & 0o007;
            let own_group = process.egid == stat.gid;
            (None, (!setgid && !group_like_world && !own_group).then_some(stat.gid))
        };
        Permissions {
            file_mode: (stat.mode & 0o666) | 0o600,
            dir_mode: (stat.mode & 0o777) | 0o700,
            owner,
            group,
            origin: Origin::Root(root.to_path_buf()),
            explicit: false,
        }
    }

    /// Permissions for a root that does not exist yet, from its nearest existing `parent`:
    /// Dovecot's defaults (0700/0600), or the parent's mode when it is setgid (a tree
    /// shared by group, whose group the kernel passes on); owned like the parent when we
    /// are root.
    pub(crate) fn from_parent(stat: DirStat, process: Process, parent: &Path) -> Permissions {
        let (file_mode, dir_mode) = if stat.mode & SETGID != 0 {
            ((stat.mode & 0o666) | 0o600, (stat.mode & 0o2777) | 0o700)
        } else {
            (0o600, 0o700)
        };
        let (owner, group) =
            if process.is_root() { (Some(stat.uid), Some(stat.gid)) } else { (None, None) };
        Permissions {
            file_mode,
            dir_mode,
            owner,
            group,
            origin: Origin::Parent(parent.to_path_buf()),
            explicit: false,
        }
    }

    /// The same permissions with the owner and/or group set explicitly (Dovecot's
    /// `mail_uid`/`mail_gid`); `None` keeps the derived one. Changing a file's owner needs
    /// root: otherwise creating files fails with [`Error::Ownership`].
    pub fn with_owner(mut self, owner: Option<u32>, group: Option<u32>) -> Permissions {
        if owner.is_some() {
            self.owner = owner;
            self.explicit = true;
        }
        if group.is_some() {
            self.group = group;
            self.explicit = true;
        }
        self
    }

    /// Mode bits of new files (e.g. `0o660`).
    pub fn file_mode(&self) -> u32 {
        self.file_mode
    }

    /// Mode bits of new directories (e.g. `0o770`; `0o2770` when setgid is to be set).
    pub fn dir_mode(&self) -> u32 {
        self.dir_mode
    }

    /// The uid new entries are given, if it is changed at all.
    pub fn owner(&self) -> Option<u32> {
        self.owner
    }

    /// The gid new entries are given, if it is changed at all.
    pub fn group(&self) -> Option<u32> {
        self.group
    }

    /// Creates `dir` and its missing parents with [`Self::dir_mode`] and the owner.
    /// Directories that exist are left as they are.
    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut current = dir;
        loop {
            match fs::metadata(current) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => missing.push(current),
                Err(e) => return Err(e).ctx("stat", current),
            }
            match current.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => current = parent,
                _ => break,
            }
        }
        for dir in missing.into_iter().rev() {
            self.create_dir(dir)?;
        }
        Ok(())
    }

    /// Creates one directory; `Ok(false)` when it existed already (then left as it is).
    pub fn create_dir(&self, dir: &Path) -> Result<bool> {
        match fs::DirBuilder::new().mode(self.dir_mode & 0o777).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e).ctx("mkdir", dir),
        }
        let fixed = open_directory(dir)
            .ctx("open", dir)
            .and_then(|handle| self.fix(&handle, dir, self.dir_mode, true).map(drop));
        if let Err(error) = fixed {
            // As Dovecot: a directory that cannot be given its owner is not left behind.
            let _ = fs::remove_dir(dir);
            return Err(error);
        }
        Ok(true)
    }

    /// Creates a file that must not exist yet, for writing, with [`Self::file_mode`] and
    /// the owner. On failure nothing is left behind.
    pub fn create_new(&self, path: &Path) -> Result<File> {
        self.create_new_with_mode(path, self.file_mode)
    }

    /// [`Self::create_new`] with other mode bits (Dovecot's read-only markers).
    pub(crate) fn create_new_with_mode(&self, path: &Path, mode: u32) -> Result<File> {
        self.create_new_checked(path, mode, true).map(|(file, _)| file)
    }

    /// [`Self::create_new_checked`] of `name` in the open directory `dir` (whose path is
    /// `path`'s parent): the kernel looks up one name, not every component of the path.
    pub(crate) fn create_new_in(
        &self,
        dir: std::os::fd::BorrowedFd<'_>,
        name: &str,
        path: &Path,
        check: bool,
    ) -> Result<(File, bool)> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        let mode = nix::sys::stat::Mode::from_bits_truncate(self.file_mode & 0o7777);
        let file = nix::fcntl::openat(dir, name, flags, mode)
            .map(File::from)
            .map_err(io::Error::from)
            .ctx("create", path)?;
        if !check {
            return Ok((file, false));
        }
        match self.fix(&file, path, self.file_mode, false) {
            Ok(changed) => Ok((file, !changed)),
            Err(error) => {
                let _ = fs::remove_file(path);
                Err(error)
            }
        }
    }

    /// Creates `path` like [`Self::create_new`]; when `check` is false, trusts that it
    /// comes out with the right owner, group and mode (no `fstat`): for a directory where
    /// an earlier file needed no change. Those are decided by our user, group and umask
    /// and the directory's set-group-ID bit, none of which a run changes. Returns whether
    /// the file was checked and needed no change.
    pub(crate) fn create_new_checked(
        &self,
        path: &Path,
        mode: u32,
        check: bool,
    ) -> Result<(File, bool)> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .ctx("create", path)?;
        if !check {
            return Ok((file, false));
        }
        match self.fix(&file, path, mode, false) {
            Ok(changed) => Ok((file, !changed)),
            Err(error) => {
                let _ = fs::remove_file(path);
                Err(error)
            }
        }
    }

    /// Opens `path` for writing (appending when `append`), creating it with
    /// [`Self::file_mode`] and the owner when missing. An existing file keeps its owner and
    /// mode, as with Dovecot's `open(O_CREAT)`.
    pub fn open_or_create(&self, path: &Path, append: bool) -> Result<File> {
        match self.create_new(path) {
            Ok(file) => Ok(file),
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                OpenOptions::new().write(true).append(append).open(path).ctx("open", path)
            }
            Err(error) => Err(error),
        }
    }

    /// Opens `path` empty for writing, creating it or truncating what a crash left there,
    /// with [`Self::file_mode`] and the owner either way (a temp file to be renamed).
    pub(crate) fn create_or_truncate(&self, path: &Path) -> Result<File> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.file_mode)
            .open(path)
            .ctx("create", path)?;
        self.fix(&file, path, self.file_mode, false)?;
        Ok(file)
    }

    /// Gives an open new entry its owner, group and `mode` where the kernel gave it others
    /// (the umask, our own ids when running as root). A directory keeps the setgid bit it
    /// inherited. True when it had to change anything.
    fn fix(&self, handle: &File, path: &Path, mode: u32, is_dir: bool) -> Result<bool> {
        let mut metadata = handle.metadata().ctx("stat", path)?;
        let owner = self.owner.filter(|&uid| uid != metadata.uid());
        let group = self.group.filter(|&gid| gid != metadata.gid());
        let mut changed = false;
        if owner.is_some() || group.is_some() {
            changed = true;
            std::os::unix::fs::fchown(handle, owner, group)
                .map_err(|source| self.ownership_error(path, source))?;
            // The kernel may drop set-id bits when the owner changes.
            metadata = handle.metadata().ctx("stat", path)?;
        }
        let current = metadata.mode() & 0o7777;
        let wanted = if is_dir { mode | (current & SETGID) } else { mode };
        if current != wanted {
            changed = true;
            handle.set_permissions(fs::Permissions::from_mode(wanted)).ctx("chmod", path)?;
        }
        Ok(changed)
    }

    fn ownership_error(&self, path: &Path, source: io::Error) -> Error {
        let ids = |name: &str, id: Option<u32>| id.map(|id| format!("{name} {id}"));
        let wanted = [ids("uid", self.owner), ids("gid", self.group)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let origin = if self.explicit {
            String::from("as configured")
        } else {
            format!("like the {}", self.origin)
        };
        let hint = if source.kind() == ErrorKind::PermissionDenied {
            "; only root can give files to another user"
        } else {
            ""
        };
        Error::Ownership {
            path: path.to_path_buf(),
            reason: format!("{wanted} ({origin}): {source}{hint}"),
            source,
        }
    }
}

impl Default for Permissions {
    fn default() -> Permissions {
        Permissions::private()
    }
}

/// Opens a directory we just created without following a symbolic link put in its place.
fn open_directory(dir: &Path) -> io::Result<File> {
    use nix::fcntl::OFlag;
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
        .open(dir)
}

/// The nearest existing ancestor of `path` (`.` for a relative path none of whose
/// components exist) and its metadata.
fn nearest_existing(path: &Path) -> Result<(PathBuf, fs::Metadata)> {
    let mut current = path.parent();
    while let Some(dir) = current {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        match fs::metadata(dir) {
            Ok(metadata) => return Ok((dir.to_path_buf(), metadata)),
            Err(e) if e.kind() == ErrorKind::NotFound => current = dir.parent(),
            Err(e) => return Err(e).ctx("stat", dir),
        }
    }
    let dot = Path::new(".");
    fs::metadata(dot).ctx("stat", dot).map(|metadata| (dot.to_path_buf(), metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Process = Process { euid: 0, egid: 0 };
    const VMAIL: Process = Process { euid: 5000, egid: 5000 };

    fn stat(mode: u32, uid: u32, gid: u32) -> DirStat {
        DirStat { mode: 0o040_000 | mode, uid, gid }
    }

    /// Directory mode, file mode, uid and gid to give.
    type Given = (u32, u32, Option<u32>, Option<u32>);

    fn modes(p: &Permissions) -> Given {
        (p.dir_mode, p.file_mode, p.owner, p.group)
    }

    #[test]
    fn from_an_existing_root_like_dovecot() {
        let root = Path::new("/srv/mail/alice");
        // (root mode, owner, group, process) -> (dir mode, file mode, chown uid, chown gid)
        let cases: &[(u32, u32, u32, Process, Given)] = &[
            // Running as root: always the root's owner and group.
            (0o700, 5000, 5000, ROOT, (0o700, 0o600, Some(5000), Some(5000))),
            (0o770, 5000, 5000, ROOT, (0o770, 0o660, Some(5000), Some(5000))),
            (0o2770, 5000, 6000, ROOT, (0o770, 0o660, Some(5000), Some(6000))),
            (0o750, 5000, 5000, ROOT, (0o750, 0o640, Some(5000), Some(5000))),
            // Owner bits are always on; x bits never on files.
            (0o070, 5000, 5000, ROOT, (0o770, 0o660, Some(5000), Some(5000))),
            (0o755, 5000, 5000, ROOT, (0o755, 0o644, Some(5000), Some(5000))),
            // As the mail user, Dovecot's file_create_gid rules: group same as world...
            (0o700, 5000, 6000, VMAIL, (0o700, 0o600, None, None)),
            // ...setgid directory...
            (0o2770, 5000, 6000, VMAIL, (0o770, 0o660, None, None)),
            // ...our own group...
            (0o770, 5000, 5000, VMAIL, (0o770, 0o660, None, None)),
            // ...else the root's group.
            (0o770, 5000, 6000, VMAIL, (0o770, 0o660, None, Some(6000))),
        ];
        for (mode, uid, gid, process, expected) in cases {
            let derived = Permissions::from_root(stat(*mode, *uid, *gid), *process, root);
            assert_eq!(modes(&derived), *expected, "root {mode:o} {uid}:{gid} as {process:?}");
        }
    }

    #[test]
    fn from_the_parent_of_a_missing_root() {
        let parent = Path::new("/srv/mail");
        let plain = Permissions::from_parent(stat(0o755, 5000, 5000), ROOT, parent);
        assert_eq!(modes(&plain), (0o700, 0o600, Some(5000), Some(5000)));
        let shared = Permissions::from_parent(stat(0o2770, 5000, 6000), ROOT, parent);
        assert_eq!(modes(&shared), (0o2770, 0o660, Some(5000), Some(6000)));
        let as_user = Permissions::from_parent(stat(0o2770, 5000, 6000), VMAIL, parent);
        assert_eq!(modes(&as_user), (0o2770, 0o660, None, None));
    }

    #[test]
    fn explicit_owner_overrides_what_is_given() {
        let derived = Permissions::from_root(stat(0o770, 5000, 5000), ROOT, Path::new("/r"));
        let only_group = derived.clone().with_owner(None, Some(7000));
        assert_eq!(modes(&only_group), (0o770, 0o660, Some(5000), Some(7000)));
        let both = derived.with_owner(Some(8000), Some(9000));
        assert_eq!(modes(&both), (0o770, 0o660, Some(8000), Some(9000)));
        assert!(both.explicit);
    }

    #[test]
    fn new_entries_get_exact_modes_despite_the_umask() {
        // The umask of the test process (usually 022) must not show in what we create.
        let dir = tempfile::tempdir().unwrap();
        let permissions =
            Permissions { file_mode: 0o660, dir_mode: 0o770, ..Permissions::private() };
        let nested = dir.path().join("a/b");
        permissions.create_dir_all(&nested).unwrap();
        for path in [dir.path().join("a"), nested.clone()] {
            assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o770, "{path:?}");
        }
        let file = nested.join("f");
        drop(permissions.create_new(&file).unwrap());
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o660);
        assert!(!permissions.create_dir(&nested).unwrap(), "exists already");
        let marker = nested.join("m");
        drop(permissions.create_new_with_mode(&marker, 0o444).unwrap());
        assert_eq!(fs::metadata(&marker).unwrap().mode() & 0o7777, 0o444);
    }

    #[test]
    fn a_setgid_directory_passes_its_bit_on() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o2770)).unwrap();
        let derived = Permissions::derive(&shared).unwrap();
        assert_eq!(derived.dir_mode(), 0o770);
        let child = shared.join("child");
        derived.create_dir_all(&child).unwrap();
        assert_eq!(fs::metadata(&child).unwrap().mode() & 0o7777, 0o2770);
    }

    #[test]
    fn a_missing_root_is_derived_from_its_nearest_parent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("x/y/Maildir");
        let derived = Permissions::derive(&root).unwrap();
        assert_eq!(derived.origin, Origin::Parent(dir.path().to_path_buf()));
        let relative = Permissions::derive(Path::new("no-such-dir-here/Maildir")).unwrap();
        assert_eq!(relative.origin, Origin::Parent(PathBuf::from(".")));
    }
}
