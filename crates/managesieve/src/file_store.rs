//! Pigeonhole's `file` script storage, read and written the way Pigeonhole 0.5 does
//! (`src/lib-sieve/storage/file/`), so that a Dovecot serving the directory sees exactly
//! what we wrote:
//!
//! * a script is `DIR/NAME.sieve`, its bytes as they are (CRLF and non-ASCII kept); only
//!   names Pigeonhole accepts ([`ScriptName`]) become files, and only such files are
//!   listed (hidden files, `tmp/` and the compiled `*.svbin` are not scripts);
//! * a script is saved atomically: written to `DIR/tmp/`, synced, then renamed to its
//!   name; its mode is the directory's without the execute bits (`0600` under Pigeonhole's
//!   `0700`), and when we run as root it gets the directory's owner;
//! * the active script is a **relative** symlink at the active path (Dovecot's default
//!   `~/.dovecot.sieve → sieve/NAME.sieve`), replaced atomically (a new link renamed over
//!   it). A regular file there is a legacy single script: it is the active script without
//!   being one of the listed ones, and is moved into the directory as
//!   `dovecot.orig.sieve` before a link replaces it — Pigeonhole's "rescue" — never lost.
//!
//! The store lives in this crate next to the ManageSieve client because both hold the
//! same thing — a user's named scripts and which one is active, named by [`ScriptName`] —
//! and a migration reads one and writes the other.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::proto::ScriptName;

/// The suffix of a script file.
const SUFFIX: &str = ".sieve";

/// Where Pigeonhole rescues a legacy regular file found at the active path.
const RESCUED_NAME: &str = "dovecot.orig";

/// A Pigeonhole file store: the script directory and the active-script path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    dir: PathBuf,
    active_path: Option<PathBuf>,
}

/// A script file of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredScript {
    /// Its name (the file name without `.sieve`).
    pub name: ScriptName,
    /// Its last change (the file's mtime; dsync's `last_change` of the script).
    pub modified: SystemTime,
}

/// What the active path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveScript {
    /// Nothing: no script is active.
    None,
    /// A link to one of the store's scripts.
    Script(ScriptName),
    /// A regular file: a legacy single script, active but not one of the listed scripts.
    Singular,
    /// A link that points somewhere else (outside the directory, not a `.sieve` file);
    /// Pigeonhole ignores it, so no script is active. The link's target.
    Foreign(PathBuf),
}

impl FileStore {
    /// A store at `dir`, with the active link at `active_path` (`None`: the store has no
    /// active script and cannot get one).
    pub fn new(dir: impl Into<PathBuf>, active_path: Option<PathBuf>) -> FileStore {
        FileStore { dir: dir.into(), active_path }
    }

    /// Parses Pigeonhole's location syntax, `[file:]DIR[;active=PATH]`; `~` (alone or
    /// leading `~/`) is `home`, the user's home directory.
    ///
    /// ```
    /// use std::path::Path;
    /// use managesieve::FileStore;
    /// let store = FileStore::parse_location("file:~/sieve;active=~/.dovecot.sieve", Some(Path::new("/home/alice")))?;
    /// assert_eq!(store.dir(), Path::new("/home/alice/sieve"));
    /// assert_eq!(store.active_path(), Some(Path::new("/home/alice/.dovecot.sieve")));
    /// # Ok::<(), managesieve::Error>(())
    /// ```
    pub fn parse_location(location: &str, home: Option<&Path>) -> Result<FileStore> {
        let invalid = |problem: String| Error::Store { path: PathBuf::from(location), problem };
        let rest = location.strip_prefix("file:").unwrap_or(location);
        let mut parts = rest.split(';');
        let dir = parts.next().unwrap_or_default();
        if dir.is_empty() {
            return Err(invalid("the location names no directory".into()));
        }
        let expand = |path: &str| -> Result<PathBuf> {
            let tail = match path.strip_prefix('~') {
                None => return Ok(PathBuf::from(path)),
                Some("") => "",
                Some(tail) if tail.starts_with('/') => &tail[1..],
                Some(_) => return Err(invalid(format!("{path:?}: only ~ and ~/ are understood"))),
            };
            let home = home.ok_or_else(|| invalid(format!("{path:?} needs the user's home")))?;
            Ok(if tail.is_empty() { home.to_path_buf() } else { home.join(tail) })
        };
        let mut active = None;
        for option in parts {
            match option.split_once('=') {
                Some(("active", path)) if !path.is_empty() => active = Some(expand(path)?),
                _ => return Err(invalid(format!("unknown option {option:?}"))),
            }
        }
        Ok(FileStore::new(expand(dir)?, active))
    }

    /// The script directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The active-script path.
    pub fn active_path(&self) -> Option<&Path> {
        self.active_path.as_deref()
    }

    fn script_path(&self, name: &ScriptName) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    /// Every script, by name. A missing directory is an empty store. Files that are not
    /// scripts (hidden files, `tmp/`, `*.svbin`, names Pigeonhole would refuse, anything
    /// but a regular file) are left out, as Pigeonhole leaves them out.
    pub fn list(&self) -> Result<Vec<StoredScript>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Error::io("read the Sieve directory", &self.dir, error)),
        };
        let mut scripts = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read the Sieve directory", &self.dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(name) = ScriptName::new(name) else { continue };
            let metadata = fs::symlink_metadata(entry.path())
                .map_err(|e| Error::io("stat", entry.path(), e))?;
            if !metadata.is_file() {
                continue;
            }
            let modified = metadata.modified().map_err(|e| Error::io("stat", entry.path(), e))?;
            scripts.push(StoredScript { name, modified });
        }
        scripts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(scripts)
    }

    /// A script's bytes.
    pub fn read(&self, name: &ScriptName) -> Result<Vec<u8>> {
        let path = self.script_path(name);
        fs::read(&path).map_err(|e| Error::io("read the Sieve script", path, e))
    }

    /// The bytes of a [`ActiveScript::Singular`] active file.
    pub fn read_singular(&self) -> Result<Vec<u8>> {
        let path = self.active_path.as_deref().ok_or_else(|| self.no_active_path())?;
        fs::read(path).map_err(|e| Error::io("read the active Sieve script", path, e))
    }

    /// What the active path holds.
    pub fn active(&self) -> Result<ActiveScript> {
        let Some(path) = self.active_path.as_deref() else { return Ok(ActiveScript::None) };
        let metadata = match fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(ActiveScript::None);
            }
            Err(error) => return Err(Error::io("stat the active Sieve link", path, error)),
        };
        if metadata.is_file() {
            return Ok(ActiveScript::Singular);
        }
        if !metadata.file_type().is_symlink() {
            return Ok(ActiveScript::Foreign(path.to_path_buf()));
        }
        let target =
            fs::read_link(path).map_err(|e| Error::io("read the active Sieve link", path, e))?;
        // Resolved lexically against the link's directory, as Pigeonhole compares it with
        // the script directory.
        let resolved = normalize(&parent(path).join(&target));
        let in_dir = resolved.parent().is_some_and(|dir| dir == normalize(&self.dir));
        let name = resolved
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| ScriptName::new(n).ok());
        match name {
            Some(name) if in_dir => Ok(ActiveScript::Script(name)),
            _ => Ok(ActiveScript::Foreign(target)),
        }
    }

    /// Stores `script` as `name` atomically (through `tmp/`), replacing any script of that
    /// name; `modified` becomes its mtime (the script's last change), else now.
    pub fn write(
        &self,
        name: &ScriptName,
        script: &[u8],
        modified: Option<SystemTime>,
    ) -> Result<()> {
        let dir_mode = self.ensure_dirs()?;
        let tmp = self.dir.join("tmp").join(unique_name(name.as_str()));
        let written = write_file(&tmp, script, dir_mode & 0o666, modified);
        if let Err(error) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write the Sieve script", &tmp, error));
        }
        give_owner_of(&tmp, &self.dir)?;
        let path = self.script_path(name);
        if let Err(error) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("rename into place the Sieve script", path, error));
        }
        // A compiled binary of the old script would be stale (Pigeonhole recompiles when
        // it is older than the script, but our mtime may be older).
        let _ = fs::remove_file(self.dir.join(format!("{name}.svbin")));
        Ok(())
    }

    /// Makes `name` the active script (a relative link, replaced atomically), or with
    /// `None` deactivates. A legacy regular file at the active path is rescued into the
    /// directory as `dovecot.orig.sieve` first (an error when that name is taken).
    pub fn activate(&self, name: Option<&ScriptName>) -> Result<()> {
        let active = self.active_path.as_deref().ok_or_else(|| self.no_active_path())?;
        if self.active()? == ActiveScript::Singular {
            self.rescue_singular(active)?;
        }
        let Some(name) = name else {
            return match fs::remove_file(active) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(Error::io("remove the active Sieve link", active, error)),
            };
        };
        let script = self.script_path(name);
        if !script.is_file() {
            return Err(Error::Store {
                path: script,
                problem: "cannot activate a script that does not exist".into(),
            });
        }
        let target = relative_path(&parent(active), &script);
        let mut new_link = active.as_os_str().to_owned();
        new_link.push(OsString::from(format!("-new.{}", unique_name("link"))));
        let new_link = PathBuf::from(new_link);
        symlink(&target, &new_link)
            .map_err(|e| Error::io("create the active Sieve link", &new_link, e))?;
        give_owner_of(&new_link, &parent(active))?;
        if let Err(error) = fs::rename(&new_link, active) {
            let _ = fs::remove_file(&new_link);
            return Err(Error::io("replace the active Sieve link", active, error));
        }
        Ok(())
    }

    /// Deletes a script (and its compiled binary). The active script cannot be deleted,
    /// as with Pigeonhole: deactivate it first.
    pub fn delete(&self, name: &ScriptName) -> Result<()> {
        let path = self.script_path(name);
        if self.active()? == ActiveScript::Script(name.clone()) {
            return Err(Error::Store { path, problem: "cannot delete the active script".into() });
        }
        fs::remove_file(&path).map_err(|e| Error::io("delete the Sieve script", &path, e))?;
        let _ = fs::remove_file(self.dir.join(format!("{name}.svbin")));
        Ok(())
    }

    fn no_active_path(&self) -> Error {
        Error::Store {
            path: self.dir.clone(),
            problem: "the location has no active= path, so no script can be active".into(),
        }
    }

    /// Creates the directory and `tmp/` (`0700`, as Pigeonhole does) when missing;
    /// returns the directory's mode.
    fn ensure_dirs(&self) -> Result<u32> {
        for dir in [self.dir.clone(), self.dir.join("tmp")] {
            match fs::symlink_metadata(&dir) {
                Ok(metadata) if metadata.is_dir() => continue,
                Ok(_) => {
                    return Err(Error::Store { path: dir, problem: "not a directory".into() });
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(Error::io("stat", dir, error)),
            }
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("create the Sieve directory", &dir, e))?;
            // Created by us (root, for a user): the owner of the directory it is in.
            give_owner_of(&dir, &parent(&dir))?;
        }
        let metadata =
            fs::metadata(&self.dir).map_err(|e| Error::io("stat", self.dir.clone(), e))?;
        Ok(metadata.permissions().mode() & 0o777)
    }

    /// Moves a legacy regular active file into the directory as `dovecot.orig.sieve`.
    fn rescue_singular(&self, active: &Path) -> Result<()> {
        let rescued = ScriptName::new(RESCUED_NAME).map_err(Error::from)?;
        if self.script_path(&rescued).exists() {
            return Err(Error::Store {
                path: active.to_path_buf(),
                problem: format!(
                    "is a regular file (a legacy script) and {RESCUED_NAME}{SUFFIX} exists, so it cannot be rescued before it is replaced"
                ),
            });
        }
        let bytes = self.read_singular()?;
        let modified = fs::metadata(active).and_then(|m| m.modified()).ok();
        self.write(&rescued, &bytes, modified)?;
        fs::remove_file(active).map_err(|e| Error::io("remove the legacy active script", active, e))
    }
}

/// Gives `path` the owner of directory `of` when that differs (we run as root writing a
/// user's home, so what we create must be the user's, as if Pigeonhole had made it);
/// without the right to, it stays ours.
fn give_owner_of(path: &Path, of: &Path) -> Result<()> {
    let owner = fs::metadata(of).map_err(|e| Error::io("stat", of, e))?;
    let file = fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
    if (owner.uid(), owner.gid()) == (file.uid(), file.gid()) {
        return Ok(());
    }
    match std::os::unix::fs::lchown(path, Some(owner.uid()), Some(owner.gid())) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        Err(error) => Err(Error::io("change the owner of", path, error)),
    }
}

/// Writes a new file with `mode`, syncs it, sets its mtime.
fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    modified: Option<SystemTime>,
) -> io::Result<()> {
    let mut file: File = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    // The umask may have taken bits the directory's mode grants.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    if let Some(modified) = modified {
        file.set_modified(modified)?;
    }
    file.sync_all()
}

/// A name no other writer uses at the same time: `BASE_<secs>.M<micros>P<pid>.<n>`, like
/// Dovecot's temporary names.
fn unique_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{base}_{}.M{}P{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directory a path is in (`.` for a bare name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with `.` and `dir/..` removed, lexically (symlinks are not resolved, as the
/// link stays valid when the home moves).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `target` relative to directory `from` (`sieve/x.sieve` for `~` and `~/sieve/x.sieve`):
/// the active link stays valid when the home is moved or mounted elsewhere. Paths on
/// different roots (one relative, one absolute) give `target` as it is.
fn relative_path(from: &Path, target: &Path) -> PathBuf {
    let (from, target) = (normalize(from), normalize(target));
    if from.is_absolute() != target.is_absolute() {
        return target;
    }
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for component in &to[common..] {
        out.push(component);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_as_pigeonhole_makes_them() {
        let cases = [
            ("/home/a", "/home/a/sieve/x.sieve", "sieve/x.sieve"),
            ("/home/a/sieve", "/home/a/sieve/x.sieve", "x.sieve"),
            ("/var/links/a", "/home/a/sieve/x.sieve", "../../../home/a/sieve/x.sieve"),
            ("/home/a/./b/..", "/home/a/sieve/x.sieve", "sieve/x.sieve"),
        ];
        for (from, target, expected) in cases {
            assert_eq!(relative_path(Path::new(from), Path::new(target)), Path::new(expected));
        }
    }

    #[test]
    fn locations() {
        let home = Path::new("/home/alice");
        let store = FileStore::parse_location("/srv/s;active=/srv/a", None).expect("plain");
        assert_eq!(
            (store.dir(), store.active_path()),
            (Path::new("/srv/s"), Some(Path::new("/srv/a")))
        );
        let store = FileStore::parse_location("file:~/sieve", Some(home)).expect("home");
        assert_eq!((store.dir(), store.active_path()), (Path::new("/home/alice/sieve"), None));
        for bad in ["file:", "file:~/s", "file:/s;bindir=/b", "file:~bob/s", "file:/s;active="] {
            assert!(FileStore::parse_location(bad, None).is_err(), "{bad}");
        }
    }
}
