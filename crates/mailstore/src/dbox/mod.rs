//! An sdbox store as Dovecot 2.3 keeps it: one `u.<uid>` file per message, and the
//! mailbox's state (UIDVALIDITY, UIDs, flags, keywords, modseqs, mailbox GUID) only in
//! its index, which this crate reads from `dovecot.index` plus the transaction log and
//! writes by appending transactions to `dovecot.index.log` under Dovecot's lock (see
//! [`crate::index`]).

pub(crate) mod clean_stamp;
#[cfg(test)]
mod clean_tests;
pub(crate) mod file;
mod list;
pub(crate) mod location;
mod mailbox;
mod save;
mod write;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub use mailbox::SdboxMailbox;
pub(crate) use write::guid_128;

use crate::error::{Error, IoContext, Result};
use crate::fs::dotlock::{DotLock, LockSettings};
use crate::fs::permissions::Permissions;
use crate::guid::Guid;
use crate::index::files::{self as index_files, MailboxIndex};
use crate::left_out::Listing;
use crate::maildir::{Durability, MailboxEntry, Options};
use crate::name::MailboxName;
use location::{MAIL_DIR, MAILBOXES, SdboxLocation};

/// The subscriptions file in the root.
const SUBSCRIPTIONS: &str = "subscriptions";
/// Dovecot's mailbox list index, a cache of the folder tree and each folder's status.
const LIST_INDEX_FILES: [&str; 3] =
    ["dovecot.list.index", "dovecot.list.index.log", "dovecot.list.index.log.2"];
/// Our staging directories in the root (mailboxes being created or deleted, a process's
/// saves waiting for their commit).
const STAGING_PREFIX: &str = ".dsync-rs-";

/// Where one mailbox's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paths {
    /// `mailboxes/<name>` relative to the roots.
    pub(crate) relative: PathBuf,
    /// `ROOT/mailboxes/<name>`: holds `dbox-Mails` and the children.
    pub(crate) dir: PathBuf,
    /// `…/dbox-Mails`: the mail.
    pub(crate) mail: PathBuf,
    /// Where the index files are.
    pub(crate) index: PathBuf,
    /// `ALT/mailboxes/<name>/dbox-Mails`, with alternate storage.
    pub(crate) alt: Option<PathBuf>,
}

impl Paths {
    fn new(location: &SdboxLocation, relative: PathBuf) -> Paths {
        let dir = location.root().join(&relative);
        let mail = dir.join(MAIL_DIR);
        let index = match location.index_root() {
            index if index != location.root() => index.join(&relative),
            _ => mail.clone(),
        };
        let alt = location.alt_root().map(|alt| alt.join(&relative).join(MAIL_DIR));
        Paths { relative, dir, mail, index, alt }
    }
}

/// What mailboxes share.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) location: SdboxLocation,
    pub(crate) options: Options,
    permissions: OnceLock<Permissions>,
    /// Mail directories already cleared of what killed writers left (once per store).
    cleaned: Mutex<HashSet<PathBuf>>,
    /// Mailboxes the last listing found in directories their names do not spell.
    noncanonical: Mutex<Option<HashMap<MailboxName, PathBuf>>>,
    /// This store's directory for saves waiting for their commit, once made
    /// ([`Store::save_staging`]).
    save_staging: Mutex<Option<PathBuf>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        // Every mailbox (and so every staged save) is gone with the last handle.
        let staging = self.save_staging.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(dir) = staging.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Store {
    /// The owner and modes of everything created, derived from the root once.
    pub(crate) fn permissions(&self) -> Result<&Permissions> {
        if let Some(permissions) = self.permissions.get() {
            return Ok(permissions);
        }
        let derived = Permissions::derive(self.location.root())?
            .with_owner(self.options.owner, self.options.group);
        Ok(self.permissions.get_or_init(|| derived))
    }

    pub(crate) fn fsync(&self) -> bool {
        self.options.durability == Durability::Fsync
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.options.read_only {
            return Err(Error::ReadOnly { path: self.location.root().to_path_buf() });
        }
        Ok(())
    }

    /// True the first time it is asked for `dir` (then the caller cleans it).
    pub(crate) fn first_write_to(&self, dir: &Path) -> bool {
        self.cleaned.lock().unwrap_or_else(PoisonError::into_inner).insert(dir.to_path_buf())
    }

    fn paths(&self, name: &MailboxName) -> Result<Paths> {
        Ok(Paths::new(&self.location, self.location.relative_dir(name)?))
    }

    /// The directory in the root where this store's saves write their files until the
    /// commit renames them to `u.<uid>` (`.dsync-rs-save.<unique name of this process>`),
    /// made at the first save; the staging a killed run of ours left in the root goes
    /// first. A mail directory then changes only under the log's lock (see
    /// [`clean_stamp`]). Removed when the store is dropped, else by the next run.
    pub(crate) fn save_staging(&self) -> Result<PathBuf> {
        let mut staging = self.save_staging.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(dir) = staging.as_ref() {
            return Ok(dir.clone());
        }
        let root = self.location.root();
        if self.first_write_to(root) {
            write::remove_stale_staging(root);
        }
        let dir = root
            .join(format!("{STAGING_PREFIX}save.{}", crate::maildir::filename::generate_base()));
        self.permissions()?.create_dir(&dir)?;
        *staging = Some(dir.clone());
        Ok(dir)
    }
}

/// An sdbox store (`sdbox:PATH`) as Dovecot 2.3 keeps it. Opening creates nothing; the
/// root is created by the first write.
///
/// ```
/// use std::io::Write;
/// use mailstore::{Flags, Keyword, MailboxName, SaveOptions, Sdbox, SdboxLocation};
///
/// let dir = tempfile::tempdir()?;
/// let store = Sdbox::open(SdboxLocation::new(dir.path().join("sdbox")));
/// let archive = MailboxName::new(["Archive", "2023"])?;
/// let mut mailbox = store.create_mailbox(&archive, Some(1_700_000_000), None)?;
/// let mut message = mailbox.begin_save()?;
/// message.write_all(b"Subject: hi\r\n\r\nHello\r\n")?;
/// let options = SaveOptions::default()
///     .with_uid(42)
///     .with_flags(Flags::SEEN)
///     .with_keywords(vec![Keyword::new("$Label1")?])
///     .with_received(1_700_000_123);
/// mailbox.save(message, options)?;
/// assert_eq!(mailbox.commit()?, [42]);
///
/// let status = mailbox.status()?;
/// assert_eq!((status.uid_validity, status.next_uid, status.messages), (1_700_000_000, 43, 1));
/// let messages = mailbox.messages()?;
/// assert_eq!((messages[0].size, messages[0].virtual_size), (19, 22));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sdbox {
    store: Arc<Store>,
}

impl Sdbox {
    /// Opens the store at `location` with default [`Options`].
    pub fn open(location: SdboxLocation) -> Sdbox {
        Sdbox::with_options(location, Options::default())
    }

    /// Opens the store with explicit options ([`Options::line_endings`] does not apply:
    /// sdbox always stores LF, as Dovecot does).
    pub fn with_options(location: SdboxLocation, options: Options) -> Sdbox {
        Sdbox {
            store: Arc::new(Store {
                location,
                options,
                permissions: OnceLock::new(),
                cleaned: Mutex::new(HashSet::new()),
                noncanonical: Mutex::new(None),
                save_staging: Mutex::new(None),
            }),
        }
    }

    /// The location.
    pub fn location(&self) -> &SdboxLocation {
        &self.store.location
    }

    fn root(&self) -> &Path {
        self.store.location.root()
    }

    /// The owner, group and mode bits of what this store creates, derived from the root as
    /// Dovecot derives them (see [`crate::Maildir::permissions`]).
    pub fn permissions(&self) -> Result<Permissions> {
        self.store.permissions().cloned()
    }

    /// Every mailbox, INBOX first, then by name; directories without `dbox-Mails` are
    /// listed with `selectable: false` (IMAP `\Noselect`). What the listing leaves out is
    /// dropped here; [`Self::list_mailboxes`] says what and why.
    pub fn mailboxes(&self) -> Result<Vec<MailboxEntry>> {
        Ok(self.list_mailboxes()?.entries)
    }

    /// [`Self::mailboxes`] and what was left out, each with its reason: directory names
    /// that give no usable mailbox name, a second directory with the name of another, and
    /// mailbox directories that are symlinks (never followed). Names are read as Dovecot
    /// names them (a level that is not valid modified UTF-7 keeps its bytes).
    pub fn list_mailboxes(&self) -> Result<Listing<MailboxEntry>> {
        let (found, left_out) = list::list(&self.store.location)?;
        let mut entries = Vec::with_capacity(found.len());
        let mut noncanonical = HashMap::new();
        for found in found {
            if self.store.location.relative_dir(&found.name).ok().as_ref() != Some(&found.relative)
            {
                noncanonical.insert(found.name.clone(), found.relative);
            }
            entries.push(MailboxEntry { name: found.name, selectable: found.selectable });
        }
        *self.store.noncanonical.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(noncanonical);
        Ok(Listing { entries, left_out })
    }

    /// Opens an existing mailbox (also one listed under a name its directory does not spell
    /// canonically).
    pub fn mailbox(&self, name: &MailboxName) -> Result<SdboxMailbox> {
        let paths = self.existing(name)?;
        Ok(SdboxMailbox::new(Arc::clone(&self.store), name.clone(), paths))
    }

    /// The paths of the existing mailbox `name`.
    fn existing(&self, name: &MailboxName) -> Result<Paths> {
        let canonical = self.store.paths(name);
        if let Ok(paths) = &canonical
            && paths.mail.is_dir()
        {
            return Ok(paths.clone());
        }
        let listed = |store: &Store| {
            let map = store.noncanonical.lock().unwrap_or_else(PoisonError::into_inner);
            map.as_ref().map(|map| map.get(name).cloned())
        };
        let found = if let Some(found) = listed(&self.store) {
            found
        } else {
            self.list_mailboxes()?;
            listed(&self.store).flatten()
        };
        match (found, canonical) {
            (Some(relative), _) => {
                let paths = Paths::new(&self.store.location, relative);
                if paths.mail.is_dir() {
                    Ok(paths)
                } else {
                    Err(Error::MailboxNotFound { name: name.to_string() })
                }
            }
            (None, Err(error)) => Err(error),
            (None, Ok(_)) => Err(Error::MailboxNotFound { name: name.to_string() }),
        }
    }

    /// Creates a mailbox with the given UIDVALIDITY and GUID (new ones, allocated as
    /// Dovecot does, when `None`). The mailbox appears atomically, index included: its
    /// `dbox-Mails` is built beside the tree and renamed into place. A directory that
    /// Dovecot created without ever indexing it (no log, no mail) is initialised in place.
    pub fn create_mailbox(
        &self,
        name: &MailboxName,
        uid_validity: Option<u32>,
        guid: Option<Guid>,
    ) -> Result<SdboxMailbox> {
        if let Some(value) = uid_validity {
            crate::uidvalidity::check_nonzero(value)?;
        }
        self.create(name, uid_validity, guid, None)
    }

    /// Creates a mailbox under a new UIDVALIDITY, recording in its index that it holds the
    /// UIDs of `origin` (see [`SdboxMailbox::reset_with_origin`]).
    pub fn create_mailbox_with_origin(
        &self,
        name: &MailboxName,
        guid: Option<Guid>,
        origin: u32,
    ) -> Result<SdboxMailbox> {
        self.create(name, None, guid, Some(origin).filter(|&o| o != 0))
    }

    fn create(
        &self,
        name: &MailboxName,
        uid_validity: Option<u32>,
        guid: Option<Guid>,
        origin: Option<u32>,
    ) -> Result<SdboxMailbox> {
        self.store.writable()?;
        let paths = self.store.paths(name)?;
        self.ensure_root()?;
        let permissions = self.store.permissions()?;
        let fsync = self.store.fsync();
        let exists = || Error::MailboxExists { name: name.to_string() };
        if paths.index.join(index_files::LOG).exists() && paths.mail.is_dir() {
            return Err(exists());
        }
        let uid_validity = write::allocate_uid_validity(
            self.root(),
            uid_validity,
            origin.unwrap_or(0),
            permissions,
        )?;
        let fresh = write::fresh_index(uid_validity, guid.unwrap_or_else(Guid::generate), origin);
        if paths.mail.is_dir() {
            // Dovecot made the directory but never indexed it: initialise it in place,
            // unless it holds mail an index rebuild would find (never hide that).
            if list::holds_mail(&paths.mail)? {
                return Err(Error::Corrupt {
                    path: paths.index.join(index_files::LOG),
                    line: 0,
                    reason: String::from(
                        "missing while the mailbox holds mail: run `doveadm force-resync` on it",
                    ),
                });
            }
            permissions.create_dir_all(&paths.index)?;
            MailboxIndex::new(self.store.location.index_root().to_path_buf(), paths.index.clone())
                .publish(fresh.0, &fresh.1, permissions, fsync)?;
            return Ok(SdboxMailbox::new(Arc::clone(&self.store), name.clone(), paths));
        }
        let staging = self
            .root()
            .join(format!("{STAGING_PREFIX}create.{}", crate::maildir::filename::generate_base()));
        let result = (|| {
            let staged_mail = staging.join(MAIL_DIR);
            permissions.create_dir_all(&staged_mail)?;
            let index_dir = if paths.index == paths.mail {
                staged_mail.clone()
            } else {
                permissions.create_dir_all(&paths.index)?;
                paths.index.clone()
            };
            MailboxIndex::new(index_dir.clone(), index_dir).publish(
                fresh.0,
                &fresh.1,
                permissions,
                fsync,
            )?;
            permissions.create_dir_all(&paths.dir)?;
            match nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &staged_mail,
                nix::fcntl::AT_FDCWD,
                &paths.mail,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => {}
                Err(nix::errno::Errno::EEXIST) => return Err(exists()),
                Err(errno) => return Err(Error::io("rename", &paths.mail, errno.into())),
            }
            if fsync {
                crate::fs::fsync_dir(&paths.dir)?;
            }
            Ok(())
        })();
        let _ = fs::remove_dir_all(&staging);
        result?;
        Ok(SdboxMailbox::new(Arc::clone(&self.store), name.clone(), paths))
    }

    /// Deletes a mailbox and its messages (INBOX cannot be deleted). Children stay: the
    /// directory remains as their `\Noselect` parent; directories the deletion leaves
    /// empty are removed up to `mailboxes/`. The deletion is logged in
    /// `dovecot.mailbox.log` (by GUID) for Dovecot's two-way dsync, and the index is marked
    /// deleted first, so a Dovecot session that has the mailbox open says so.
    pub fn delete_mailbox(&self, name: &MailboxName) -> Result<()> {
        self.store.writable()?;
        if name.is_inbox() {
            return Err(Error::InboxOperation { operation: "deleted" });
        }
        let paths = self.existing(name)?;
        let mailbox = SdboxMailbox::new(Arc::clone(&self.store), name.clone(), paths.clone());
        let guid = mailbox.mark_deleted()?;
        let trash = self
            .root()
            .join(format!("{STAGING_PREFIX}delete.{}", crate::maildir::filename::generate_base()));
        fs::rename(&paths.mail, &trash).ctx("rename", &paths.mail)?;
        if self.store.fsync() {
            crate::fs::fsync_dir(&paths.dir)?;
        }
        fs::remove_dir_all(&trash).ctx("remove", &trash)?;
        if paths.index != paths.mail {
            for file in
                [index_files::LOG, index_files::LOG_2, index_files::INDEX, index_files::CACHE]
            {
                crate::fs::remove_if_exists(&paths.index.join(file))?;
            }
            remove_empty_parents(self.store.location.index_root(), &paths.index);
        }
        if let Some(alt) = &paths.alt {
            match fs::remove_dir_all(alt) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("remove", alt, error));
                }
                _ => {}
            }
            if let (Some(parent), Some(alt_root)) = (alt.parent(), self.store.location.alt_root()) {
                remove_empty_parents(alt_root, parent);
            }
        }
        remove_empty_parents(&self.root().join(MAILBOXES), &paths.dir);
        if let Some(guid) = guid {
            crate::mailbox_log::append(
                self.store.location.index_root(),
                crate::mailbox_log::DELETE_MAILBOX,
                guid,
                self.store.permissions()?,
            )?;
        }
        Ok(())
    }

    /// Renames a mailbox and its children (mail, index and alternate storage). The target
    /// must not exist; INBOX cannot be renamed.
    pub fn rename_mailbox(&self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        self.store.writable()?;
        if from.is_inbox() || to.is_inbox() {
            return Err(Error::InboxOperation { operation: "renamed" });
        }
        let source = self.existing(from)?;
        let target = self.store.paths(to)?;
        if target.dir.exists() || to.starts_with(from) {
            return Err(Error::MailboxExists { name: to.to_string() });
        }
        let permissions = self.store.permissions()?;
        let mut moves = vec![(source.dir.clone(), target.dir.clone(), self.root().join(MAILBOXES))];
        if source.index != source.mail {
            let index_root = self.store.location.index_root();
            moves.push((
                index_root.join(&source.relative),
                index_root.join(&target.relative),
                index_root.join(MAILBOXES),
            ));
        }
        if let Some(alt_root) = self.store.location.alt_root() {
            moves.push((
                alt_root.join(&source.relative),
                alt_root.join(&target.relative),
                alt_root.join(MAILBOXES),
            ));
        }
        for (from_dir, to_dir, top) in moves {
            if !from_dir.exists() {
                continue;
            }
            if let Some(parent) = to_dir.parent() {
                permissions.create_dir_all(parent)?;
            }
            fs::rename(&from_dir, &to_dir).ctx("rename", &from_dir)?;
            if self.store.fsync() {
                crate::fs::fsync_dir(to_dir.parent().unwrap_or(self.root()))?;
            }
            if let Some(parent) = from_dir.parent() {
                remove_empty_parents(&top, parent);
            }
        }
        crate::mailbox_log::append_rename(self.store.location.index_root(), to, permissions)
    }

    /// The mailbox changes Dovecot (or our deletes) recorded in `dovecot.mailbox.log` and
    /// its rotated `.2` (in the index root), oldest first.
    pub fn dovecot_mailbox_changes(&self) -> Result<Vec<crate::MailboxChange>> {
        crate::mailbox_log::read(self.store.location.index_root())
    }

    /// The subscribed mailboxes (names need not exist), in file order, each once.
    pub fn subscriptions(&self) -> Result<Vec<MailboxName>> {
        let relative = Path::new(SUBSCRIPTIONS);
        let data = crate::fs::beneath::Tree::new(self.root())
            .read_optional(relative)
            .map_err(|refusal| crate::left_out::error(refusal, self.root(), relative, "read"))?
            .unwrap_or_default();
        Ok(crate::subscriptions::parse(&data, '/', self.store.location.utf8()))
    }

    /// Replaces the whole subscription set (version-2 file written under
    /// `subscriptions.lock`, replaced by rename).
    pub fn set_subscriptions(&self, names: &[MailboxName]) -> Result<()> {
        self.ensure_root()?;
        let path = self.root().join(SUBSCRIPTIONS);
        let lock = DotLock::acquire(&path, LockSettings::SUBSCRIPTIONS, self.store.permissions()?)?;
        let unique = crate::subscriptions::unique(names.iter().cloned());
        let bytes = crate::subscriptions::serialize(&unique, self.store.location.utf8());
        lock.replace_target(&path, &bytes, self.store.fsync(), None)
    }

    /// Subscribes (`true`) or unsubscribes each name with one read and at most one write of
    /// the file, under `subscriptions.lock`; new names go to the end, as Dovecot appends
    /// them.
    pub fn update_subscriptions(&self, changes: &[(MailboxName, bool)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        self.ensure_root()?;
        let path = self.root().join(SUBSCRIPTIONS);
        let lock = DotLock::acquire(&path, LockSettings::SUBSCRIPTIONS, self.store.permissions()?)?;
        let current = self.subscriptions()?;
        let Some(updated) = crate::subscriptions::apply(&current, changes) else {
            return lock.release();
        };
        let bytes = crate::subscriptions::serialize(&updated, self.store.location.utf8());
        lock.replace_target(&path, &bytes, self.store.fsync(), None)
    }

    /// Subscribes (`true`) or unsubscribes one mailbox.
    pub fn subscribe(&self, name: &MailboxName, subscribed: bool) -> Result<()> {
        self.update_subscriptions(&[(name.clone(), subscribed)])
    }

    /// Flushes everything written with [`Durability::Deferred`] to disk (`syncfs(2)` of the
    /// root's file system, and of the index and alternate roots).
    pub fn sync_to_disk(&self) -> Result<()> {
        if self.store.fsync() || self.store.options.read_only {
            return Ok(());
        }
        let location = &self.store.location;
        for root in [Some(location.root()), Some(location.index_root()), location.alt_root()]
            .into_iter()
            .flatten()
        {
            match fs::File::open(root) {
                Ok(directory) => nix::unistd::syncfs(&directory)
                    .map_err(std::io::Error::from)
                    .ctx("sync the file system of", root)?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(Error::io("open", root, error)),
            }
        }
        Ok(())
    }

    /// Creates the root and `mailboxes/` if missing, and removes staging directories a
    /// killed run of ours left in the root.
    fn ensure_root(&self) -> Result<()> {
        self.store.writable()?;
        let permissions = self.store.permissions()?;
        let mailboxes = self.root().join(MAILBOXES);
        if !mailboxes.is_dir() {
            permissions.create_dir_all(&mailboxes)?;
        }
        if self.store.first_write_to(self.root()) {
            write::remove_stale_staging(self.root());
        }
        Ok(())
    }
}

/// Removes `dir` and then its parents, up to but not including `top`, while they are
/// empty (Dovecot's `mailbox_list_delete_until_root`); a failure ends the walk.
fn remove_empty_parents(top: &Path, dir: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        if dir == top
            || !dir.starts_with(top)
            || fs::remove_dir(dir).is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound)
        {
            return;
        }
        current = dir.parent();
    }
}

/// Removes Dovecot's list index (it caches each mailbox's GUID and would go on answering
/// an old one); Dovecot rebuilds it.
pub(crate) fn remove_list_index(location: &SdboxLocation) -> Result<()> {
    for cache in LIST_INDEX_FILES {
        crate::fs::remove_if_exists(&location.index_root().join(cache))?;
    }
    Ok(())
}
