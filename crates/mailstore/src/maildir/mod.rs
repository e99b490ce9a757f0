//! A Maildir store: folders, subscriptions, and [`Mailbox`]es.

mod believed;
mod copy;
pub(crate) mod filename;
pub(crate) mod folders;
mod history;
pub(crate) mod journal;
mod kept_cur;
pub(crate) mod keywords;
pub(crate) mod known;
mod known_files;
pub(crate) mod layout;
pub(crate) mod leftovers;
mod mailbox;
mod own_uidlist;
mod records;
pub(crate) mod save;
pub(crate) mod state;
mod trash;
pub(crate) mod uidlist;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

pub use believed::FileBeliefs;
pub use copy::CopyOutcome;
pub use history::{DovecotExpunges, ExpungedMessage};
pub use kept_cur::{DirStamp, KeptCurFile, KeptCurFiles};
pub use known_files::{FileLookup, KnownFile, KnownFiles, NothingKnown};
pub(crate) use mailbox::virtual_size_read;
pub use mailbox::{
    DroppedKeyword, Mailbox, MailboxStatus, MessageInfo, MessageReader, MessageStream,
};
pub use save::SaveOptions;

use crate::crlf::LineEndings;
use crate::error::{Error, IoContext, Result};
use crate::fs::dotlock::{DotLock, LockSettings};
use crate::fs::permissions::Permissions;
use crate::guid::Guid;
use crate::left_out::Listing;
use crate::location::{Layout, Location};
use crate::name::MailboxName;
use state::Paths;
use uidlist::Uidlist;

/// The subscriptions file in the root (`subscription-file.c`).
const SUBSCRIPTIONS: &str = "subscriptions";

/// When data reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// fsync every message, the directories and the uidlist at each step, like Dovecot's
    /// default `mail_fsync = optimized`: a commit that returned survives a power loss.
    #[default]
    Fsync,
    /// No fsync at all (`mail_fsync = never`), for speed; call [`Maildir::sync_to_disk`]
    /// once at the end. Renames keep their order, so a killed process still leaves a
    /// consistent Maildir; only a power loss before the final sync can lose recent writes.
    Deferred,
}

/// Tunables of a [`Maildir`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// When data reaches the disk.
    pub durability: Durability,
    /// How bodies are stored (LF by default, as Dovecot).
    pub line_endings: LineEndings,
    /// How long to wait for `dovecot-uidlist.lock` (Dovecot's stale timeout is 120 s).
    pub lock_timeout: Duration,
    /// Never write anything, not even the uidlist records Dovecot would add for mail it
    /// has not numbered yet (they are numbered in memory, the same way): for sources.
    pub read_only: bool,
    /// Give everything created this uid (Dovecot's `mail_uid`) instead of the root's owner
    /// (see [`Maildir::permissions`]).
    pub owner: Option<u32>,
    /// Give everything created this gid (Dovecot's `mail_gid`) instead of the root's group.
    pub group: Option<u32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Fsync,
            line_endings: LineEndings::Lf,
            lock_timeout: LockSettings::UIDLIST.timeout,
            read_only: false,
            owner: None,
            group: None,
        }
    }
}

impl Options {
    /// The same options with another durability.
    pub fn with_durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }
    /// The same options with another line-ending mode.
    pub fn with_line_endings(mut self, line_endings: LineEndings) -> Options {
        self.line_endings = line_endings;
        self
    }
    /// The same options, read-only or not.
    pub fn with_read_only(mut self, read_only: bool) -> Options {
        self.read_only = read_only;
        self
    }
    /// The same options with another lock timeout.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Options {
        self.lock_timeout = timeout;
        self
    }
    /// The same options with an explicit owner and/or group for what is created (`None`
    /// keeps the one derived from the root). Changing owners needs root.
    pub fn with_owner(mut self, owner: Option<u32>, group: Option<u32>) -> Options {
        self.owner = owner;
        self.group = group;
        self
    }
}

/// What mailboxes share: where the store is and how to write it.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) location: Location,
    pub(crate) options: Options,
    /// Derived at the first write (the root may not exist before).
    permissions: OnceLock<Permissions>,
    /// The mailbox directories whose `tmp/` was cleared of leftovers (once per store).
    tmp_checked: Mutex<HashSet<PathBuf>>,
    /// Where the folders whose directory names are not the canonical spelling of their
    /// names are, from the last listing (`None` before the first).
    noncanonical: Mutex<Option<HashMap<MailboxName, PathBuf>>>,
    /// Where a read-only store keeps the UIDs of mailboxes without `dovecot-uidlist`
    /// ([`Maildir::keep_uids_in`]).
    pub(crate) own_uidlists: OnceLock<own_uidlist::OwnUidlists>,
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
    pub(crate) fn lock_settings(&self) -> LockSettings {
        LockSettings { timeout: self.options.lock_timeout, ..LockSettings::UIDLIST }
    }
    /// Removes what killed writers left in `dir/tmp/` ([`leftovers`]), the first time this
    /// store writes the mailbox in `dir`. Called under its uidlist lock after an
    /// interrupted commit was completed, so no journal still needs those files.
    pub(crate) fn clear_tmp_once(&self, dir: &Path) {
        let first = self
            .tmp_checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf());
        if first {
            leftovers::remove_from_tmp(&dir.join("tmp"), std::time::SystemTime::now(), true);
        }
    }
}

/// A folder found by [`Maildir::mailboxes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxEntry {
    /// The name.
    pub name: MailboxName,
    /// False for a `LAYOUT=fs` directory that only holds children (IMAP `\Noselect`).
    pub selectable: bool,
}

/// A Maildir store as Dovecot 2.3 keeps it. Opening never creates anything; the root is
/// created by the first write.
#[derive(Debug, Clone)]
pub struct Maildir {
    store: Arc<Store>,
}

impl Maildir {
    /// Opens the store at `location` with default [`Options`].
    pub fn open(location: Location) -> Maildir {
        Maildir::with_options(location, Options::default())
    }

    /// Opens the store with explicit options.
    pub fn with_options(location: Location, options: Options) -> Maildir {
        Maildir {
            store: Arc::new(Store {
                location,
                options,
                permissions: OnceLock::new(),
                tmp_checked: Mutex::new(HashSet::new()),
                noncanonical: Mutex::new(None),
                own_uidlists: OnceLock::new(),
            }),
        }
    }

    /// For a read-only store (a source): keeps the UIDs given to the files of mailboxes
    /// that have no `dovecot-uidlist` (a Maildir another program writes) in files of our
    /// own named `PREFIX.<hash>`, one per mailbox, created with `permissions`, instead of
    /// numbering them anew at each opening. Then the UIDVALIDITY, the mailbox GUID and
    /// every file's UID stay the same from run to run, as Dovecot's uidlist would keep
    /// them: files found later get the next UIDs (in file-name order), and a UID is never
    /// given to another file. Nothing is written into the store; with `write` false (a dry
    /// run) not even those files, which are then only read. The first call counts; it must
    /// come before the mailboxes are read. A store that may be written gets a
    /// `dovecot-uidlist` instead, as Dovecot does.
    pub fn keep_uids_in(&self, prefix: PathBuf, permissions: Permissions, write: bool) {
        let own = own_uidlist::OwnUidlists::new(prefix, permissions, write);
        let _ = self.store.own_uidlists.set(own);
    }

    /// True for a store opened read-only ([`Options::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.store.options.read_only
    }

    /// The location.
    pub fn location(&self) -> &Location {
        &self.store.location
    }

    fn root(&self) -> &Path {
        self.store.location.root()
    }

    /// The owner, group and mode bits everything this store creates gets, as Dovecot
    /// derives them (`mailbox_list_get_permissions`): from the root directory's mode and
    /// group (files get its mode without the x bits), or, while the root does not exist,
    /// Dovecot's defaults (0700/0600) unless its nearest existing parent is setgid. Run as
    /// root, new entries also get the root's (the parent's) owner and group, standing in
    /// for the mail user Dovecot runs as; [`Options::with_owner`] sets them explicitly.
    /// Derived once, at the first call (every write makes it).
    pub fn permissions(&self) -> Result<Permissions> {
        self.store.permissions().cloned()
    }

    /// Every mailbox, INBOX first (listed when the root is a mailbox directory, i.e. has
    /// `cur/`, so what is listed can be opened), then by name. Maildir++ lists only real
    /// folders: a parent that was never created is not listed (IMAP shows it `\Noselect`);
    /// `LAYOUT=fs` lists such parents with `selectable: false`. What the listing leaves out
    /// is dropped here; [`Maildir::list_mailboxes`] says what and why.
    pub fn mailboxes(&self) -> Result<Vec<MailboxEntry>> {
        Ok(self.list_mailboxes()?.entries)
    }

    /// [`Maildir::mailboxes`] and the folder directories left out, each with its reason
    /// ([`crate::LeftOut`]).
    ///
    /// Folder directories are named as Dovecot 2.3 names them: levels that are not valid
    /// modified UTF-7 (`.café` in raw UTF-8, `.&AGE`) keep their bytes as their name, and
    /// such a folder is listed and read under that name (Dovecot lists it too, but cannot
    /// open it); bytes that are not UTF-8 become U+FFFD, as Dovecot renames them. Left out:
    /// names that give no valid [`MailboxName`] (an empty level from `..`, a control
    /// character, INBOX), a second directory with the same name as another (the one whose
    /// directory is the name's canonical spelling is read), and folder directories that are
    /// symlinks: never followed, reported unless they are an alias of another folder of the
    /// store, which Dovecot's dsync leaves out too (its mail is that folder's).
    pub fn list_mailboxes(&self) -> Result<Listing<MailboxEntry>> {
        let mut entries = Vec::new();
        if self.root().join("cur").is_dir() {
            entries.push(MailboxEntry { name: MailboxName::inbox(), selectable: true });
        }
        let (found, left_out) = folders::list(&self.store.location)?;
        let mut noncanonical = HashMap::new();
        for found in found {
            if layout::mailbox_dir(&self.store.location, &found.name).ok().as_ref()
                != Some(&found.dir)
            {
                noncanonical.insert(found.name.clone(), found.dir);
            }
            entries.push(MailboxEntry { name: found.name, selectable: found.selectable });
        }
        *self.store.noncanonical.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(noncanonical);
        Ok(Listing { entries, left_out })
    }

    /// Opens an existing mailbox (also one listed under a name its directory does not
    /// spell canonically, see [`Maildir::list_mailboxes`]).
    pub fn mailbox(&self, name: &MailboxName) -> Result<Mailbox> {
        let dir = self.existing_dir(name)?;
        Ok(Mailbox::new(Arc::clone(&self.store), name.clone(), dir))
    }

    /// The directory of the existing mailbox `name`: where its name maps to, else where the
    /// last listing found it (listing once if there was none).
    fn existing_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        let canonical = layout::mailbox_dir(&self.store.location, name);
        if let Ok(dir) = &canonical
            && dir.join("cur").is_dir()
        {
            return Ok(dir.clone());
        }
        let listed = |store: &Store| {
            let noncanonical = store.noncanonical.lock().unwrap_or_else(PoisonError::into_inner);
            noncanonical.as_ref().map(|map| map.get(name).cloned())
        };
        let found = if let Some(found) = listed(&self.store) {
            found
        } else {
            self.list_mailboxes()?;
            listed(&self.store).flatten()
        };
        match (found, canonical) {
            (Some(dir), _) if dir.join("cur").is_dir() => Ok(dir),
            (_, Err(error)) => Err(error),
            _ => Err(Error::MailboxNotFound { name: name.to_string() }),
        }
    }

    /// Creates a mailbox with the given UIDVALIDITY and GUID (new ones, allocated as Dovecot
    /// does, when `None`). The folder appears atomically: it is built under `tmp/` and
    /// renamed into place. INBOX may be "created" while it has no `dovecot-uidlist` yet.
    pub fn create_mailbox(
        &self,
        name: &MailboxName,
        uid_validity: Option<u32>,
        guid: Option<Guid>,
    ) -> Result<Mailbox> {
        self.create(name, uid_validity, guid, None)
    }

    /// Creates a mailbox under a new UIDVALIDITY, as [`Self::create_mailbox`] with `None`
    /// does, recording in the same step that it holds the UIDs of `origin` (see
    /// [`Mailbox::reset_with_origin`]).
    pub fn create_mailbox_with_origin(
        &self,
        name: &MailboxName,
        guid: Option<Guid>,
        origin: u32,
    ) -> Result<Mailbox> {
        self.create(name, None, guid, Some(origin).filter(|&o| o != 0))
    }

    fn create(
        &self,
        name: &MailboxName,
        uid_validity: Option<u32>,
        guid: Option<Guid>,
        origin: Option<u32>,
    ) -> Result<Mailbox> {
        let dir = layout::creatable_dir(&self.store.location, name)?;
        if let Some(value) = uid_validity {
            crate::uidvalidity::check_nonzero(value)?;
        }
        self.ensure_root()?;
        let permissions = self.store.permissions()?;
        let fsync = self.store.fsync();
        let exists = || Error::MailboxExists { name: name.to_string() };
        let maildirplusplus = self.store.location.layout() == Layout::MaildirPlusPlus;
        let new_uidlist = || -> Result<Vec<u8>> {
            // Dovecot's next new mailbox must not get a value we gave one already; a new
            // value standing for `origin` must be above it.
            if let Some(value) = uid_validity.or(origin) {
                crate::uidvalidity::raise(self.root(), value, permissions)?;
            }
            let uid_validity = match uid_validity {
                Some(value) => value,
                None => crate::uidvalidity::next(self.root(), permissions)?,
            };
            let mut uidlist = Uidlist::new(uid_validity, 1, guid.unwrap_or_else(Guid::generate));
            uidlist.set_origin(origin);
            Ok(uidlist.to_bytes())
        };
        if name.is_inbox() || dir.is_dir() {
            // INBOX is the root; a LAYOUT=fs parent already is a directory: fill in place.
            if dir.join(state::UIDLIST).exists() || (!name.is_inbox() && dir.join("cur").is_dir()) {
                return Err(exists());
            }
            state::create_subdirs(&dir, permissions)?;
            if maildirplusplus && !name.is_inbox() {
                permissions.open_or_create(&dir.join("maildirfolder"), false)?;
            }
            let paths = Paths { root: self.root().to_path_buf(), dir: dir.clone() };
            let lock = DotLock::acquire(&paths.uidlist(), self.store.lock_settings(), permissions)?;
            if paths.uidlist().exists() {
                return Err(exists());
            }
            crate::fs::replace_file(
                &paths.uidlist(),
                &dir.join("dovecot-uidlist.tmp"),
                &new_uidlist()?,
                fsync,
                permissions,
            )?;
            lock.release()?;
            return Ok(Mailbox::new(Arc::clone(&self.store), name.clone(), dir));
        }
        // Build the folder where no Dovecot listing looks, then rename it into place.
        self.remove_stale_staging();
        let staging =
            self.root().join("tmp").join(format!(".dsync-rs-create.{}", filename::generate_base()));
        let result = (|| {
            permissions.create_dir_all(&staging)?;
            state::create_subdirs(&staging, permissions)?;
            if maildirplusplus {
                permissions.create_new(&staging.join("maildirfolder"))?;
            }
            let bytes = new_uidlist()?;
            let uidlist = staging.join(state::UIDLIST);
            permissions.create_new(&uidlist)?.write_all(&bytes).ctx("write", &uidlist)?;
            if fsync {
                let uidlist = staging.join(state::UIDLIST);
                fs::File::open(&uidlist).and_then(|f| f.sync_all()).ctx("fsync", &uidlist)?;
                for sub in layout::SUBDIRS {
                    crate::fs::fsync_dir(&staging.join(sub))?;
                }
                crate::fs::fsync_dir(&staging)?;
            }
            let parent = dir.parent().unwrap_or(self.root());
            permissions.create_dir_all(parent)?;
            match fs::rename(&staging, &dir) {
                Ok(()) => {}
                Err(_) if dir.exists() => return Err(exists()),
                Err(e) => return Err(e).ctx("rename", &dir),
            }
            if fsync {
                crate::fs::fsync_dir(parent)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result?;
        Ok(Mailbox::new(Arc::clone(&self.store), name.clone(), dir))
    }

    /// Deletes a mailbox and its messages (INBOX cannot be deleted). Maildir++ children are
    /// separate folders and stay; in `LAYOUT=fs` a folder with children keeps its directory
    /// as a `\Noselect` parent, as Dovecot does, and parent directories the deletion leaves
    /// empty are removed up to the root (Dovecot's `mailbox_list_delete_until_root`), so
    /// that they do not linger as `\Noselect` folders.
    pub fn delete_mailbox(&self, name: &MailboxName) -> Result<()> {
        state::writable(&self.store)?;
        if name.is_inbox() {
            return Err(Error::InboxOperation { operation: "deleted" });
        }
        let dir = self.existing_dir(name)?;
        let paths = Paths { root: self.root().to_path_buf(), dir: dir.clone() };
        let guid = paths.read_uidlist().ok().flatten().and_then(|list| list.guid);
        let has_children = self.store.location.layout() == Layout::Fs
            && layout::dir_entries(&dir)?
                .iter()
                .any(|(n, p)| !layout::SUBDIRS.contains(&n.as_str()) && p.is_dir());
        if has_children {
            for (entry, path) in layout::dir_entries(&dir)? {
                if layout::SUBDIRS.contains(&entry.as_str()) {
                    fs::remove_dir_all(&path).ctx("remove", &path)?;
                } else if !path.is_dir() {
                    crate::fs::remove_if_exists(&path)?;
                }
            }
        } else {
            // Like Dovecot: rename out of sight first (atomic), then delete at leisure.
            let trash = match self.store.location.layout() {
                Layout::MaildirPlusPlus => self.root().join(layout::TRASH_DIR),
                Layout::Fs => self
                    .root()
                    .join("tmp")
                    .join(format!(".dsync-rs-delete.{}", filename::generate_base())),
            };
            trash::delete_via_trash(&dir, &trash, &name.to_string(), self.store.fsync())?;
            if let Some(parent) = dir.parent() {
                layout::remove_empty_parents(self.root(), parent);
            }
        }
        if let Some(guid) = guid {
            crate::mailbox_log::append(
                self.root(),
                crate::mailbox_log::DELETE_MAILBOX,
                guid,
                self.store.permissions()?,
            )?;
        }
        Ok(())
    }

    /// Renames a mailbox and its children. The target must not exist; INBOX cannot be
    /// renamed.
    pub fn rename_mailbox(&self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        state::writable(&self.store)?;
        if from.is_inbox() || to.is_inbox() {
            return Err(Error::InboxOperation { operation: "renamed" });
        }
        let source = layout::mailbox_dir(&self.store.location, from)?;
        let target = layout::creatable_dir(&self.store.location, to)?;
        if !source.is_dir() {
            return Err(Error::MailboxNotFound { name: from.to_string() });
        }
        if target.exists() || to.starts_with(from) {
            return Err(Error::MailboxExists { name: to.to_string() });
        }
        let mut moves = vec![(source, target)];
        if self.store.location.layout() == Layout::MaildirPlusPlus {
            for found in folders::list(&self.store.location)?.0 {
                if found.name != *from && found.name.starts_with(from) {
                    let tail = &found.name.components()[from.components().len()..];
                    let new_name = MailboxName::new(to.components().iter().chain(tail).cloned())?;
                    let new_dir = layout::creatable_dir(&self.store.location, &new_name)?;
                    if new_dir.exists() {
                        return Err(Error::MailboxExists { name: new_name.to_string() });
                    }
                    moves.push((found.dir, new_dir));
                }
            }
        }
        for (source, target) in moves {
            if let Some(parent) = target.parent() {
                self.store.permissions()?.create_dir_all(parent)?;
            }
            fs::rename(&source, &target).ctx("rename", &source)?;
            if self.store.fsync() {
                crate::fs::fsync_dir(target.parent().unwrap_or(self.root()))?;
            }
            // `LAYOUT=fs`: parents the move left empty go, as Dovecot's rename removes them.
            if self.store.location.layout() == Layout::Fs
                && let Some(parent) = source.parent()
            {
                layout::remove_empty_parents(self.root(), parent);
            }
        }
        crate::mailbox_log::append_rename(self.root(), to, self.store.permissions()?)
    }

    /// The mailbox changes Dovecot (or our deletes) recorded in `dovecot.mailbox.log` and
    /// its rotated `.2` in the root, oldest first: what Dovecot's dsync reads to tell a
    /// deleted mailbox from a new one.
    pub fn dovecot_mailbox_changes(&self) -> Result<Vec<crate::MailboxChange>> {
        crate::mailbox_log::read(self.root())
    }

    /// The subscribed mailboxes (the `subscriptions` file; names need not exist), in file
    /// order, each once.
    pub fn subscriptions(&self) -> Result<Vec<MailboxName>> {
        self.read_subscriptions()
    }

    fn read_subscriptions(&self) -> Result<Vec<MailboxName>> {
        let relative = Path::new(SUBSCRIPTIONS);
        if self.root().join(relative).is_dir() {
            // A `LAYOUT=fs` folder named `subscriptions` (Dovecot creates one on request,
            // older versions of ours copied one): there is no file, so nothing is
            // subscribed. [`Maildir::repair_reserved_names`] moves the folder aside.
            return Ok(Vec::new());
        }
        let data = crate::fs::beneath::Tree::new(self.root())
            .read_optional(relative)
            .map_err(|refusal| crate::left_out::error(refusal, self.root(), relative, "read"))?
            .unwrap_or_default();
        Ok(crate::subscriptions::parse(
            &data,
            self.store.location.layout().separator(),
            self.store.location.utf8(),
        ))
    }

    /// Replaces the whole subscription set (version-2 file written under
    /// `subscriptions.lock`, replaced by rename). A name given twice is written once.
    pub fn set_subscriptions(&self, names: &[MailboxName]) -> Result<()> {
        self.ensure_root()?;
        let path = self.root().join(SUBSCRIPTIONS);
        let lock = DotLock::acquire(&path, LockSettings::SUBSCRIPTIONS, self.store.permissions()?)?;
        let unique = crate::subscriptions::unique(names.iter().cloned());
        let bytes = crate::subscriptions::serialize(&unique, self.store.location.utf8());
        lock.replace_target(&path, &bytes, self.store.fsync(), None)
    }

    /// Subscribes (`true`) or unsubscribes (`false`) each name, in order, with one read and
    /// at most one write of the file, under `subscriptions.lock` (so a subscription Dovecot
    /// adds meanwhile is kept). New names go to the end, as Dovecot appends them. Nothing is
    /// written when nothing changes. One read and one write however many names change: a
    /// sync of thousands of folders hands them all over at once.
    pub fn update_subscriptions(&self, changes: &[(MailboxName, bool)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        self.ensure_root()?;
        let path = self.root().join(SUBSCRIPTIONS);
        let lock = DotLock::acquire(&path, LockSettings::SUBSCRIPTIONS, self.store.permissions()?)?;
        let current = self.read_subscriptions()?;
        let Some(updated) = crate::subscriptions::apply(&current, changes) else {
            return lock.release();
        };
        let bytes = crate::subscriptions::serialize(&updated, self.store.location.utf8());
        lock.replace_target(&path, &bytes, self.store.fsync(), None)
    }

    /// Subscribes (`true`) or unsubscribes one mailbox (see
    /// [`update_subscriptions`](Self::update_subscriptions) for many).
    pub fn subscribe(&self, name: &MailboxName, subscribed: bool) -> Result<()> {
        self.update_subscriptions(&[(name.clone(), subscribed)])
    }

    /// In `LAYOUT=fs`, moves every folder whose directory has a name the layout reserves
    /// ([`Location::reserves`]) to the first free name with `_` in front, the name Dovecot's
    /// dsync gives such a folder: `subscriptions` becomes `_subscriptions`, `a/dovecot.index`
    /// `a/_dovecot.index`. Older versions created such folders, whose directories then stood
    /// where Dovecot's or our own files belong (`subscriptions`, `dovecot-uidlist`, a sync
    /// state), and every later run failed. Nothing is deleted; nothing happens in Maildir++
    /// or a read-only store. Returns the `(old, new)` directory of each folder moved; call
    /// it before a writable run.
    pub fn repair_reserved_names(&self) -> Result<Vec<(PathBuf, PathBuf)>> {
        if self.store.location.layout() != Layout::Fs
            || self.store.options.read_only
            || !self.root().is_dir()
        {
            return Ok(Vec::new());
        }
        layout::repair_reserved(self.root(), self.store.fsync())
    }

    /// Flushes everything written with [`Durability::Deferred`] to disk: one `syncfs(2)`
    /// of the file system holding the root. Nothing to do for a store that fsyncs as it
    /// goes, that is read-only, or whose root was never created (nothing was written).
    pub fn sync_to_disk(&self) -> Result<()> {
        if self.store.fsync() || self.store.options.read_only {
            return Ok(());
        }
        let root = self.root();
        let directory = match fs::File::open(root) {
            Ok(directory) => directory,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error).ctx("open", root),
        };
        sync_file_system(&directory).ctx("sync the file system of", root)
    }

    /// Removes staging directories (`tmp/.dsync-rs-*`) that a killed process left behind
    /// ([`leftovers`]). Dovecot's own `tmp/` cleanup skips directories.
    fn remove_stale_staging(&self) {
        leftovers::remove_from_tmp(&self.root().join("tmp"), std::time::SystemTime::now(), false);
    }

    /// Creates the root as a mailbox directory (INBOX's `cur/ new/ tmp/`) if missing.
    fn ensure_root(&self) -> Result<()> {
        state::writable(&self.store)?;
        let root = self.root();
        if root.join("cur").is_dir() && root.join("tmp").is_dir() && root.join("new").is_dir() {
            return Ok(());
        }
        let permissions = self.store.permissions()?;
        permissions.create_dir_all(root)?;
        state::create_subdirs(root, permissions)?;
        if self.store.fsync() {
            crate::fs::fsync_dir(root)?;
        }
        Ok(())
    }
}

/// `syncfs(2)`: writes out the file system `file` is on (Linux); elsewhere `sync(2)`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sync_file_system(file: &fs::File) -> std::io::Result<()> {
    nix::unistd::syncfs(file).map_err(std::io::Error::from)
}

/// `syncfs(2)`: writes out the file system `file` is on (Linux); elsewhere `sync(2)`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sync_file_system(_file: &fs::File) -> std::io::Result<()> {
    nix::unistd::sync();
    Ok(())
}
