//! Reading the store's tree without ever leaving it through a symlink.
//!
//! A Maildir is a tree its user controls: anyone who can deliver to it or log in as its owner
//! can put a symlink into `cur/` that points at `/etc/shadow`, or make a folder or a `cur/`
//! directory a symlink to another user's mail. A migration runs as root or as the mail user,
//! so following such a link copies whatever that account can read into the mailbox. Dovecot
//! 2.3 follows them (checked with 2.3.19.1: a symlink in `cur/` to a file outside is served
//! as a message); this crate does not.
//!
//! Every path below the root is resolved here one component at a time, each opened with
//! `O_NOFOLLOW` relative to the directory opened before it (`openat`), so what was checked is
//! what is opened: a symlink swapped in after a listing is met by the open itself, not by an
//! earlier `lstat`. A symlink found on the way is read (`readlinkat`) and its target resolved
//! the same way, but only while it stays inside the root: `..` can never climb above the
//! root's descriptor, and an absolute target counts only when it names a place under the
//! root. That is Linux's `openat2(RESOLVE_BENEATH)` done in user space, which also works on
//! kernels and sandboxes without `openat2`. The root itself is opened by its path and may be
//! a symlink (`/home/alice/Maildir -> /srv/mail/alice` is an ordinary setup).
//!
//! Files are opened `O_NONBLOCK` and checked with `fstat` to be regular files before a byte
//! is read, and their type is checked before they are opened at all (with `fstatat`, or by
//! the directory listing that named them a moment before), so a FIFO never blocks a read and
//! a device is never opened unless it was swapped in within that moment, which takes root.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// Symlinks resolved for one path before it counts as a loop (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// What kind of file a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe (FIFO): reading it blocks until someone writes.
    Fifo,
    /// A UNIX-domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Something the system did not name.
    Unknown,
}

impl FileKind {
    /// The kind `st_mode` says.
    pub(crate) fn of_mode(mode: u32) -> FileKind {
        match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => FileKind::File,
            SFlag::S_IFDIR => FileKind::Directory,
            SFlag::S_IFLNK => FileKind::Symlink,
            SFlag::S_IFIFO => FileKind::Fifo,
            SFlag::S_IFSOCK => FileKind::Socket,
            SFlag::S_IFCHR => FileKind::CharDevice,
            SFlag::S_IFBLK => FileKind::BlockDevice,
            _ => FileKind::Unknown,
        }
    }

    fn of_entry(kind: Option<nix::dir::Type>) -> Option<FileKind> {
        use nix::dir::Type;
        Some(match kind? {
            Type::File => FileKind::File,
            Type::Directory => FileKind::Directory,
            Type::Symlink => FileKind::Symlink,
            Type::Fifo => FileKind::Fifo,
            Type::Socket => FileKind::Socket,
            Type::CharacterDevice => FileKind::CharDevice,
            Type::BlockDevice => FileKind::BlockDevice,
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::File => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symlink",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Unknown => "a file of unknown type",
        })
    }
}

/// Why a path below the root was not opened.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The symlink `link` (relative to the root) points at `target`, outside the root.
    Leaves {
        /// The symlink met on the way, relative to the root.
        link: PathBuf,
        /// Its target as written.
        target: PathBuf,
    },
    /// More than [`MAX_SYMLINKS`] symlinks: a loop.
    Loop {
        /// The symlink at which resolution gave up, relative to the root.
        link: PathBuf,
    },
    /// The path leads to something that is not what was asked for (a FIFO where a file
    /// should be, a file where a directory should be).
    Kind(FileKind),
    /// The system refused (`ENOENT`, `EACCES`, …).
    Io(io::Error),
}

impl From<Errno> for Refusal {
    fn from(errno: Errno) -> Refusal {
        Refusal::Io(io::Error::from(errno))
    }
}

impl Refusal {
    /// True when the path does not exist (a file expunged or renamed meanwhile).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Refusal::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// What to open at the end of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A directory, opened for reading its entries.
    Directory,
    /// A regular file, opened for reading.
    File,
}

/// One entry of a directory read with [`read_dir`].
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The name as stored (any bytes but `/` and NUL).
    pub(crate) name: OsString,
    /// The entry's own type (a symlink is [`FileKind::Symlink`], not its target's).
    pub(crate) kind: FileKind,
}

/// The store's root, through which everything below it is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tree<'a> {
    root: &'a Path,
}

impl<'a> Tree<'a> {
    /// The tree under `root` (opened, following symlinks, at each use).
    pub(crate) fn new(root: &'a Path) -> Tree<'a> {
        Tree { root }
    }

    /// Opens the directory at `relative` (empty: the root) for reading its entries.
    pub(crate) fn open_dir(&self, relative: &Path) -> Result<OwnedFd, Refusal> {
        self.resolve(relative, Want::Directory)
    }

    /// Opens the regular file at `relative` for reading. Anything else (a FIFO, a device, a
    /// directory) is refused without being opened, or, when it was swapped in after the
    /// type check, without a byte being read.
    pub(crate) fn open_file(&self, relative: &Path) -> Result<File, Refusal> {
        self.resolve(relative, Want::File).map(File::from)
    }

    /// The status of the regular file at `relative`, following symlinks that stay inside.
    pub(crate) fn stat_file(&self, relative: &Path) -> Result<FileStat, Refusal> {
        let file = self.open_file(relative)?;
        nix::sys::stat::fstat(&file).map_err(Refusal::from)
    }

    /// Reads the whole regular file at `relative`; `None` when it does not exist.
    pub(crate) fn read_optional(&self, relative: &Path) -> Result<Option<Vec<u8>>, Refusal> {
        match self.open_file(relative) {
            Ok(mut file) => {
                let mut data = Vec::new();
                file.read_to_end(&mut data).map_err(Refusal::Io)?;
                Ok(Some(data))
            }
            Err(refusal) if refusal.is_not_found() => Ok(None),
            Err(refusal) => Err(refusal),
        }
    }

    /// The path relative to the root of `path`, which lies below it.
    pub(crate) fn relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.root).unwrap_or(path)
    }

    fn resolve(&self, relative: &Path, want: Want) -> Result<OwnedFd, Refusal> {
        let root = nix::fcntl::open(
            self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut pending = VecDeque::new();
        push_front(&mut pending, relative);
        // The directories walked through, root first; `..` pops, so it cannot climb above.
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut links = 0;
        // The last symlink followed and its target: what a `..` above the root came from.
        let mut followed: Option<(PathBuf, PathBuf)> = None;
        while let Some(name) = pending.pop_front() {
            let parent = stack.last().map_or(root.as_fd(), |(fd, _)| fd.as_fd());
            if name == ".." {
                if stack.pop().is_none() {
                    let (link, target) =
                        followed.unwrap_or_else(|| (PathBuf::new(), relative.to_path_buf()));
                    return Err(Refusal::Leaves { link, target });
                }
                continue;
            }
            let last = pending.is_empty();
            let status =
                nix::sys::stat::fstatat(parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            let kind = FileKind::of_mode(status.st_mode);
            if kind == FileKind::Symlink {
                links += 1;
                let link = walked(&stack, Some(&name));
                if links > MAX_SYMLINKS {
                    return Err(Refusal::Loop { link });
                }
                let target = PathBuf::from(nix::fcntl::readlinkat(parent, name.as_os_str())?);
                if target.is_absolute() {
                    let Some(inside) = self.inside(&target) else {
                        return Err(Refusal::Leaves { link, target });
                    };
                    stack.clear();
                    push_front(&mut pending, &inside);
                } else {
                    push_front(&mut pending, &target);
                }
                followed = Some((link, target));
                continue;
            }
            let wanted =
                if last && want == Want::File { FileKind::File } else { FileKind::Directory };
            if kind != wanted {
                return Err(if last {
                    Refusal::Kind(kind)
                } else {
                    Refusal::Io(Errno::ENOTDIR.into())
                });
            }
            let flags = OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
                | if wanted == FileKind::File { OFlag::O_NONBLOCK } else { OFlag::O_DIRECTORY };
            let opened = nix::fcntl::openat(parent, name.as_os_str(), flags, Mode::empty())
                .map_err(|errno| match errno {
                    // Swapped for a symlink since the fstatat: refused rather than raced.
                    Errno::ELOOP => Refusal::Kind(FileKind::Symlink),
                    other => Refusal::from(other),
                })?;
            // What was opened is what is read: checked on the descriptor itself.
            let opened_kind = FileKind::of_mode(nix::sys::stat::fstat(&opened)?.st_mode);
            if opened_kind != wanted {
                return Err(Refusal::Kind(opened_kind));
            }
            if last {
                return Ok(opened);
            }
            stack.push((opened, name));
        }
        // Only `.`s, `..`s or nothing: a directory reached without a last component.
        match (want, stack.pop()) {
            (Want::Directory, Some((fd, _))) => Ok(fd),
            (Want::Directory, None) => Ok(root),
            (Want::File, _) => Err(Refusal::Kind(FileKind::Directory)),
        }
    }

    /// The part of an absolute symlink target below the root (the root as given, or as the
    /// system resolves it), if the target lies there.
    fn inside(&self, target: &Path) -> Option<PathBuf> {
        if let Ok(rest) = target.strip_prefix(self.root) {
            return Some(rest.to_path_buf());
        }
        let canonical = std::fs::canonicalize(self.root).ok()?;
        target.strip_prefix(canonical).ok().map(Path::to_path_buf)
    }
}

/// Opens `name` in the directory `dir` (one opened beneath the root) when it is a regular
/// file, with the checks [`Tree::open_file`] makes on a path's last component: its type
/// before it is opened (a FIFO or a device never is), `O_NOFOLLOW`, and the type of what
/// was opened. A symlink is [`Refusal::Kind`] here: [`Tree::open_file`] decides whether
/// it stays inside the root.
pub(crate) fn open_regular_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<File, Refusal> {
    let status = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let kind = FileKind::of_mode(status.st_mode);
    if kind != FileKind::File {
        return Err(Refusal::Kind(kind));
    }
    open_listed_regular_at(dir, name).map(|(file, _)| file)
}

/// [`open_regular_at`] for a name that a listing of `dir` has just given as a regular file
/// (its entry's type, or a `stat` of it): that listing was the look before the open, so
/// none is taken again. What was opened is still checked (`O_NOFOLLOW`, then its type:
/// a FIFO swapped in meanwhile neither blocks the open, `O_NONBLOCK`, nor is read).
/// Returns the file with its size when opened: a Maildir message's file does not change
/// once delivered, so reading that many bytes reads it whole without a read to find its end.
pub(crate) fn open_listed_regular_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> Result<(File, Option<u64>), Refusal> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let opened =
        nix::fcntl::openat(dir, name, flags, Mode::empty()).map_err(|errno| match errno {
            Errno::ELOOP => Refusal::Kind(FileKind::Symlink),
            other => Refusal::from(other),
        })?;
    let status = nix::sys::stat::fstat(&opened)?;
    let opened_kind = FileKind::of_mode(status.st_mode);
    if opened_kind != FileKind::File {
        return Err(Refusal::Kind(opened_kind));
    }
    Ok((File::from(opened), u64::try_from(status.st_size).ok()))
}

/// Puts the components of `path` in front of `pending` (`.` dropped, `..` kept).
fn push_front(pending: &mut VecDeque<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    for part in parts.into_iter().rev() {
        pending.push_front(part);
    }
}

/// The path walked so far (plus `name`), relative to the root, for messages.
fn walked(stack: &[(OwnedFd, OsString)], name: Option<&OsStr>) -> PathBuf {
    stack.iter().map(|(_, part)| part.as_os_str()).chain(name).collect()
}

/// The entries of an opened directory, `.` and `..` left out, each with its own type (from
/// the directory entry, or `fstatat` without following when the file system does not say).
pub(crate) fn read_dir(dir: OwnedFd) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for_each_entry(dir, |entry| {
        entries.push(entry);
        true
    })?;
    Ok(entries)
}

/// Calls `each` with the entries of an opened directory (as [`read_dir`] gives them) until it
/// returns `false`, without collecting them: a folder of 100 000 messages is gone through
/// without a list of 100 000 names.
pub(crate) fn for_each_entry(dir: OwnedFd, mut each: impl FnMut(Entry) -> bool) -> io::Result<()> {
    let lookup = dir.try_clone()?;
    let mut listing = nix::dir::Dir::from_fd(dir)?;
    for entry in listing.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_os_string();
        let kind = match FileKind::of_entry(entry.file_type()) {
            Some(kind) => kind,
            None => match nix::sys::stat::fstatat(
                &lookup,
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(status) => FileKind::of_mode(status.st_mode),
                // Removed since it was listed.
                Err(Errno::ENOENT) => continue,
                Err(errno) => return Err(errno.into()),
            },
        };
        if !each(Entry { name, kind }) {
            break;
        }
    }
    Ok(())
}

/// `lstat` of `name` in the opened directory `dir` (no symlink followed).
pub(crate) fn lstat_at(dir: &impl AsFd, name: &OsStr) -> io::Result<FileStat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        std::fs::create_dir_all(root.join("cur")).unwrap();
        std::fs::create_dir_all(root.join(".Sub/cur")).unwrap();
        std::fs::write(root.join("cur/mail"), "inside").unwrap();
        std::fs::write(root.join(".Sub/cur/other"), "other").unwrap();
        std::fs::write(dir.path().join("secret"), "SECRET").unwrap();
        (dir, root)
    }

    fn read(tree: Tree<'_>, path: &str) -> Result<String, Refusal> {
        let mut text = String::new();
        tree.open_file(Path::new(path))?.read_to_string(&mut text).unwrap();
        Ok(text)
    }

    #[test]
    fn follows_symlinks_that_stay_inside_and_refuses_the_others() {
        let (dir, root) = setup();
        let tree = Tree::new(&root);
        symlink("../.Sub/cur/other", root.join("cur/relative")).unwrap();
        symlink(root.join(".Sub/cur/other"), root.join("cur/absolute")).unwrap();
        symlink("../../secret", root.join("cur/up")).unwrap();
        symlink(dir.path().join("secret"), root.join("cur/outside")).unwrap();
        symlink("../../Maildir/cur/mail", root.join("cur/out-and-back")).unwrap();
        symlink("loop", root.join("cur/loop")).unwrap();
        assert_eq!(read(tree, "cur/mail").unwrap(), "inside");
        assert_eq!(read(tree, "cur/relative").unwrap(), "other");
        assert_eq!(read(tree, "cur/absolute").unwrap(), "other");
        for refused in ["cur/up", "cur/outside", "cur/out-and-back"] {
            let refusal = read(tree, refused).unwrap_err();
            assert!(
                matches!(&refusal, Refusal::Leaves { link, .. } if link == Path::new(refused)),
                "{refused}: {refusal:?}"
            );
        }
        assert!(matches!(read(tree, "cur/loop"), Err(Refusal::Loop { .. })));
        assert!(read(tree, "cur/missing").unwrap_err().is_not_found());
    }

    #[test]
    fn a_symlinked_directory_on_the_way_is_resolved_the_same_way() {
        let (dir, root) = setup();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join("elsewhere/mail"), "SECRET").unwrap();
        symlink(dir.path().join("elsewhere"), root.join(".Out")).unwrap();
        symlink(".Sub", root.join(".Alias")).unwrap();
        let tree = Tree::new(&root);
        let refusal = read(tree, ".Out/mail").unwrap_err();
        assert!(matches!(&refusal, Refusal::Leaves { link, .. } if link == Path::new(".Out")));
        assert_eq!(read(tree, ".Alias/cur/other").unwrap(), "other");
        assert!(tree.open_dir(Path::new(".Out")).is_err());
        assert!(tree.open_dir(Path::new("..")).is_err());
    }

    #[test]
    fn the_root_itself_may_be_a_symlink() {
        let (dir, root) = setup();
        let link = dir.path().join("link-to-root");
        symlink(&root, &link).unwrap();
        let tree = Tree::new(&link);
        assert_eq!(read(tree, "cur/mail").unwrap(), "inside");
        // An absolute symlink through the root's real path counts as inside.
        symlink(root.join("cur/mail"), root.join("cur/by-real-path")).unwrap();
        assert_eq!(read(tree, "cur/by-real-path").unwrap(), "inside");
    }

    /// A file opened relative to a directory already opened beneath the root gets the
    /// same checks as a path's last component: only a regular file is opened.
    #[test]
    fn a_regular_file_is_opened_in_a_kept_directory_and_nothing_else() {
        let (_dir, root) = setup();
        nix::unistd::mkfifo(&root.join("cur/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::create_dir(root.join("cur/dir")).unwrap();
        symlink("mail", root.join("cur/to-mail")).unwrap();
        let cur = Tree::new(&root).open_dir(Path::new("cur")).unwrap();
        let open = |name: &str| open_regular_at(cur.as_fd(), OsStr::new(name));
        let mut text = String::new();
        open("mail").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "inside");
        assert!(matches!(open("fifo"), Err(Refusal::Kind(FileKind::Fifo))));
        assert!(matches!(open("dir"), Err(Refusal::Kind(FileKind::Directory))));
        assert!(matches!(open("to-mail"), Err(Refusal::Kind(FileKind::Symlink))));
        assert!(open("missing").is_err_and(|refusal| refusal.is_not_found()));
    }

    #[test]
    fn only_regular_files_are_opened_and_a_fifo_never_blocks() {
        let (_dir, root) = setup();
        nix::unistd::mkfifo(&root.join("cur/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::create_dir(root.join("cur/dir")).unwrap();
        symlink("fifo", root.join("cur/to-fifo")).unwrap();
        let tree = Tree::new(&root);
        assert!(matches!(read(tree, "cur/fifo"), Err(Refusal::Kind(FileKind::Fifo))));
        assert!(matches!(read(tree, "cur/to-fifo"), Err(Refusal::Kind(FileKind::Fifo))));
        assert!(matches!(read(tree, "cur/dir"), Err(Refusal::Kind(FileKind::Directory))));
        assert!(matches!(tree.open_dir(Path::new("cur/mail")), Err(Refusal::Kind(FileKind::File))));
        let entries = read_dir(tree.open_dir(Path::new("cur")).unwrap()).unwrap();
        let mut kinds: Vec<(String, FileKind)> =
            entries.into_iter().map(|e| (e.name.to_string_lossy().into_owned(), e.kind)).collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kinds,
            [
                ("dir".to_string(), FileKind::Directory),
                ("fifo".to_string(), FileKind::Fifo),
                ("mail".to_string(), FileKind::File),
                ("to-fifo".to_string(), FileKind::Symlink),
            ]
        );
    }
}
