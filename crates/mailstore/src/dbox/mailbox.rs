//! One sdbox mailbox: its state from the index, and its messages' metadata and bodies
//! from their `u.<uid>` files.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::file::{self, Layout, Metadata};
use super::save::Staged;
use super::{Paths, Store};
use crate::error::{Error, IoContext, Result};
use crate::flags::{Flags, Keyword};
use crate::fs::beneath::{FileKind, Tree};
use crate::guid::Guid;
use crate::index::files::{Loaded, MailboxIndex};
use crate::index::state::{FLAG_BACKEND, FLAGS_MASK, IndexState, Message, ext};
use crate::left_out::{self, LeftOut, LeftOutReason, Listing};
use crate::maildir::{MailboxStatus, MessageInfo, MessageReader};
use crate::name::MailboxName;

/// Our extension recording which source UIDVALIDITY a mailbox's UIDs stand for (see
/// [`SdboxMailbox::reset_with_origin`]): `own uid_validity u32, origin u32`. Valid only
/// while `own` is the mailbox's UIDVALIDITY. Dovecot keeps unknown extensions as they are.
pub(crate) const ORIGIN_EXT: &str = "dsync-rs-origin";

/// How much of a file's start is read to find its body.
const HEAD_READ: usize = 1024;
/// Longest metadata block read.
const MAX_METADATA: u64 = 1 << 20;

/// A mailbox of an [`super::Sdbox`] store. Saves are staged until
/// [`SdboxMailbox::commit`]; dropping the mailbox discards staged messages (nothing of
/// them was ever visible).
#[derive(Debug)]
pub struct SdboxMailbox {
    pub(crate) store: Arc<Store>,
    pub(crate) name: MailboxName,
    pub(crate) paths: Paths,
    pub(crate) index: Mutex<MailboxIndex>,
    pub(crate) staged: Vec<Staged>,
    /// Where saves write their files until the commit (decided at the first save).
    pub(crate) staging: OnceLock<PathBuf>,
    /// The index as last read, for lookups of single messages.
    last: Mutex<Option<View>>,
    /// A lookup found the mailbox become another incarnation (another UIDVALIDITY) since
    /// the last view: every lookup answers "no such message" until a view is read on
    /// purpose (a listing, a status).
    superseded: AtomicBool,
}

/// Device and inode of a file.
type Identity = (u64, u64);

/// The index as last read, and the log it was read from.
#[derive(Debug)]
struct View {
    state: Arc<IndexState>,
    /// Device and inode of that log, while `held` holds it open (so that no new file can
    /// get its inode number): a log at the path with another identity is a rotation, a
    /// reset or another incarnation of the mailbox, which a lookup then tells apart.
    log: Option<Identity>,
    /// The log, open (only held, never read).
    held: Option<File>,
}

/// What a message file holds, found by [`SdboxMailbox::read_file`].
#[derive(Debug)]
pub(crate) struct FileInfo {
    /// The opened file.
    pub(crate) file: File,
    /// Where it is (primary or alternate storage).
    pub(crate) path: PathBuf,
    /// Where its body is.
    pub(crate) layout: Layout,
    /// Its metadata.
    pub(crate) metadata: Metadata,
    /// The file's mtime, for a file without a received date.
    pub(crate) mtime: i64,
}

impl SdboxMailbox {
    pub(crate) fn new(store: Arc<Store>, name: MailboxName, paths: Paths) -> SdboxMailbox {
        let index =
            MailboxIndex::new(store.location.index_root().to_path_buf(), paths.index.clone());
        SdboxMailbox {
            store,
            name,
            paths,
            index: Mutex::new(index),
            staged: Vec::new(),
            staging: OnceLock::new(),
            last: Mutex::new(None),
            superseded: AtomicBool::new(false),
        }
    }

    /// The mailbox's name.
    pub fn name(&self) -> &MailboxName {
        &self.name
    }

    /// The mailbox's mail directory (`…/dbox-Mails`).
    pub fn path(&self) -> &Path {
        &self.paths.mail
    }

    /// The directory of its index files (the mail directory unless `INDEX=` moves them).
    pub fn index_path(&self) -> &Path {
        &self.paths.index
    }

    /// Reads the index (under the log's shared lock).
    pub(crate) fn loaded(&self) -> Result<Loaded> {
        let loaded = self.usable(self.read_index(false)?)?;
        self.keep(&loaded);
        self.superseded.store(false, Ordering::Relaxed);
        Ok(loaded)
    }

    /// Keeps `loaded` as the view lookups use, with its log held open when the path still
    /// names the file that was read.
    fn keep(&self, loaded: &Loaded) {
        let log = self.log_if_read(loaded);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(View {
            state: Arc::new(loaded.state.clone()),
            log: log.as_ref().map(|_| loaded.identity()),
            held: log,
        });
    }

    /// The log, opened, when the path still names the file `loaded` was read from.
    fn log_if_read(&self, loaded: &Loaded) -> Option<File> {
        File::open(self.paths.index.join(crate::index::files::LOG))
            .ok()
            .filter(|file| file.metadata().is_ok_and(|m| (m.dev(), m.ino()) == loaded.identity()))
    }

    /// Reads the index under the log's shared lock: with its messages, or without them
    /// (`headers_only`). `None`: there is no log.
    fn read_index(&self, headers_only: bool) -> Result<Option<Loaded>> {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let timeout = self.store.options.lock_timeout;
        if headers_only { index.read_headers(timeout) } else { index.read(timeout) }
    }

    /// `loaded` when there is an index and it has a UIDVALIDITY.
    fn usable(&self, loaded: Option<Loaded>) -> Result<Loaded> {
        let loaded = loaded.ok_or_else(|| self.no_log())?;
        if loaded.state.uid_validity() == 0 {
            return Err(self.corrupt("the index has no UIDVALIDITY (Dovecot would rebuild it)"));
        }
        Ok(loaded)
    }

    /// Reads the index without its messages (under the log's shared lock): the base
    /// header, extensions, keyword names and modseqs, in memory that does not grow with
    /// the mailbox. The view lookups use is left as it is.
    pub(crate) fn headers(&self) -> Result<IndexState> {
        Ok(self.usable(self.read_index(true)?)?.state)
    }

    /// Reads the index with and without its messages, in fresh handles and through a
    /// handle's cache, and fails unless every header field agrees (the base header,
    /// extensions, keyword names, modseqs, where the log ends): a check for tests, on
    /// indexes Dovecot and this crate wrote. Returns the mailbox GUID and the highest
    /// modseq read.
    #[doc(hidden)]
    pub fn check_header_read(&self) -> Result<(Option<Guid>, u64)> {
        let timeout = self.store.options.lock_timeout;
        let fresh = || {
            MailboxIndex::new(
                self.store.location.index_root().to_path_buf(),
                self.paths.index.clone(),
            )
        };
        let full = fresh().read(timeout)?.ok_or_else(|| self.no_log())?;
        let only = fresh().read_headers(timeout)?.ok_or_else(|| self.no_log())?;
        let mut cached = fresh();
        cached.read(timeout)?;
        let stripped = cached.read_headers(timeout)?.ok_or_else(|| self.no_log())?;
        let fields = |loaded: &Loaded| {
            let state = &loaded.state;
            (
                state.header,
                state.exts.clone(),
                state.keywords.clone(),
                state.log_modseq,
                state.highest_modseq(),
                mailbox_guid(state),
                origin_of(state),
                (loaded.head, loaded.end),
            )
        };
        for (what, other) in [("read", &only), ("read after a full read", &stripped)] {
            if fields(other) != fields(&full) {
                return Err(self.corrupt(format!(
                    "{what} without messages differs: {:?} against {:?}",
                    fields(other),
                    fields(&full)
                )));
            }
            if !other.state.messages.is_empty() {
                return Err(self.corrupt(format!("{what} without messages kept messages")));
            }
        }
        Ok((mailbox_guid(&full.state), full.state.highest_modseq()))
    }

    /// The expunges this mailbox's index logs still hold (Dovecot's and ours), under the
    /// log's shared lock: what a sync without state of its own reads to tell an expunged
    /// message from one never delivered.
    pub fn dovecot_expunges(&self) -> Result<crate::DovecotExpunges> {
        let loaded = self.loaded()?;
        Ok(crate::DovecotExpunges {
            uid_validity: loaded.state.uid_validity(),
            messages: loaded
                .state
                .expunged
                .iter()
                .map(|e| crate::ExpungedMessage {
                    uid: e.uid,
                    guid_128: e.guid_128.filter(|guid| guid.iter().any(|&b| b != 0)),
                })
                .collect(),
            flag_changes: loaded.state.flag_changes.clone(),
        })
    }

    pub(crate) fn no_log(&self) -> Error {
        Error::Corrupt {
            path: self.paths.index.join(crate::index::files::LOG),
            line: 0,
            reason: String::from(
                "missing: Dovecot has not initialised this mailbox (it would on first open)",
            ),
        }
    }

    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.paths.index.join(crate::index::files::LOG),
            line: 0,
            reason: reason.into(),
        }
    }

    /// UIDVALIDITY, next UID, GUID, message count and HIGHESTMODSEQ, from the index alone.
    pub fn status(&self) -> Result<MailboxStatus> {
        Ok(status_of(&self.loaded()?.state))
    }

    /// The mailbox GUID (`dbox-hdr`), read without the message records.
    pub fn guid(&self) -> Result<Option<Guid>> {
        Ok(mailbox_guid(&self.headers()?))
    }

    /// Every message in UID order. What the listing leaves out is dropped here;
    /// [`Self::list_messages`] says what and why.
    pub fn messages(&self) -> Result<Vec<MessageInfo>> {
        Ok(self.list_messages()?.entries)
    }

    /// Every message in UID order with its metadata (received date, sizes, GUID, POP3
    /// UIDL and order from its file; flags, keywords and modseq from the index), and what
    /// was left out: a message whose file is missing, broken, or stored in a way this crate
    /// does not read (compressed by a plugin, attachments stored apart), and message files
    /// above the index's next UID that the index does not list (a save that never
    /// finished: Dovecot shows such a file only after an index rebuild). Files are read
    /// only beneath their roots.
    pub fn list_messages(&self) -> Result<Listing<MessageInfo>> {
        if !self.store.options.read_only {
            // A store we write: what a killed save left (`u.<uid>` at or above the next UID,
            // our temp files) goes first, as the first write would remove it anyway.
            self.remove_unfinished_saves()?;
        }
        // The directory first: a save in progress is then either not seen yet or, by the
        // time the index is read (under the lock the saver holds until it committed), in
        // the index.
        let files = self.scan_files()?;
        let loaded = self.loaded()?;
        let state = &loaded.state;
        let mut entries = Vec::with_capacity(state.messages.len());
        let mut left_out = Vec::new();
        let mut missing = Vec::new();
        for message in state.messages.iter() {
            match self.read_file(message.uid, message.flags)? {
                Ok(info) => entries.push(message_info(state, message, &info)?),
                Err(None) => missing.push(message.uid),
                Err(Some(left)) => left_out.push(left),
            }
        }
        if !missing.is_empty() {
            // Expunged since the index was read, or really lost: ask the index again.
            let now = self.loaded()?.state;
            for uid in missing {
                if now.position(uid).is_some() {
                    left_out.push(LeftOut {
                        mailbox: Some(self.name.clone()),
                        path: self.relative_file(uid),
                        reason: LeftOutReason::Unsupported {
                            reason: String::from(
                                "listed in the mailbox's index, but the file is missing \
                                 (Dovecot would rebuild the index)",
                            ),
                        },
                    });
                }
            }
        }
        let next_uid = state.next_uid();
        for (uid, relative) in files {
            if uid >= next_uid {
                left_out.push(LeftOut {
                    mailbox: Some(self.name.clone()),
                    path: relative,
                    reason: LeftOutReason::NotIndexed,
                });
            }
        }
        left_out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Listing { entries, left_out })
    }

    /// `mailboxes/…/dbox-Mails/u.<uid>` relative to the root.
    fn relative_file(&self, uid: u32) -> PathBuf {
        self.paths.relative.join(super::location::MAIL_DIR).join(format!("u.{uid}"))
    }

    /// The `u.<uid>` files of the mail directory (and alternate storage), by UID.
    fn scan_files(&self) -> Result<HashMap<u32, PathBuf>> {
        let mut out = HashMap::new();
        let location = &self.store.location;
        let mail = self.paths.relative.join(super::location::MAIL_DIR);
        let mut roots = vec![location.root()];
        roots.extend(location.alt_root());
        for root in roots {
            let dir = match Tree::new(root).open_dir(&mail) {
                Ok(dir) => dir,
                Err(refusal) if refusal.is_not_found() => continue,
                Err(refusal) => {
                    return Err(left_out::error(refusal, root, &mail, "open directory"));
                }
            };
            let entries =
                crate::fs::beneath::read_dir(dir).ctx("read directory", &root.join(&mail))?;
            for entry in entries {
                let Some(uid) = uid_of(entry.name.as_bytes()) else { continue };
                out.entry(uid).or_insert_with(|| mail.join(&entry.name));
            }
        }
        Ok(out)
    }

    /// Opens and reads the file of message `uid` (in alternate storage first when its
    /// flags say so). `Err(None)`: no such file; `Err(Some(left_out))`: a file this crate
    /// does not read, and why.
    pub(crate) fn read_file(
        &self,
        uid: u32,
        flags: u8,
    ) -> Result<std::result::Result<FileInfo, Option<LeftOut>>> {
        let location = &self.store.location;
        let relative = self.relative_file(uid);
        let mut roots = vec![location.root()];
        if let Some(alt) = location.alt_root() {
            if flags & FLAG_BACKEND != 0 {
                roots.insert(0, alt);
            } else {
                roots.push(alt);
            }
        }
        let left = |reason| {
            Some(LeftOut { mailbox: Some(self.name.clone()), path: relative.clone(), reason })
        };
        for root in roots {
            let file = match Tree::new(root).open_file(&relative) {
                Ok(file) => file,
                Err(refusal) if refusal.is_not_found() => continue,
                Err(refusal) => {
                    return match left_out::reason(refusal, &relative, FileKind::File) {
                        Ok(reason) => Ok(Err(left(reason))),
                        Err(error) => Err(Error::io("open", root.join(&relative), error)),
                    };
                }
            };
            let path = root.join(&relative);
            return Ok(match read_dbox(&file, &path)? {
                Ok((layout, metadata, mtime)) => {
                    if metadata.physical_size.is_some() {
                        Err(left(LeftOutReason::Unsupported {
                            reason: String::from(
                                "stored changed by a Dovecot plugin (compressed or \
                                 encrypted: metadata Z): not read",
                            ),
                        }))
                    } else if metadata.external_parts.is_some() {
                        Err(left(LeftOutReason::Unsupported {
                            reason: String::from(
                                "parts stored in Dovecot's attachment storage (metadata X): \
                                 not read",
                            ),
                        }))
                    } else {
                        Ok(FileInfo { file, path, layout, metadata, mtime })
                    }
                }
                Err(broken) => Err(left(LeftOutReason::Unsupported {
                    reason: format!("not a dbox message file: {broken}"),
                })),
            });
        }
        Ok(Err(None))
    }

    /// The view lookups use: the one read last, or one read now.
    fn view(&self) -> Result<(Arc<IndexState>, Option<Identity>)> {
        let kept = |mailbox: &SdboxMailbox| {
            let last = mailbox.last.lock().unwrap_or_else(PoisonError::into_inner);
            last.as_ref().map(|view| (Arc::clone(&view.state), view.log))
        };
        if let Some(view) = kept(self) {
            return Ok(view);
        }
        self.loaded()?;
        kept(self).ok_or_else(|| self.no_log())
    }

    /// True when the mailbox is still the incarnation `state` was read from: its log is
    /// the file read (`log`), or its index says the same UIDVALIDITY (read without the
    /// messages; the view is then kept with the log now at the path).
    fn same_incarnation(&self, state: &IndexState, log: Option<Identity>) -> Result<bool> {
        let path = self.paths.index.join(crate::index::files::LOG);
        match std::fs::metadata(&path) {
            Ok(now) if Some((now.dev(), now.ino())) == log => return Ok(true),
            Ok(_) => {}
            // No log now: the mailbox is being deleted, and a file opened is still one of
            // the incarnation read (another one's files come after its log).
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(error) => return Err(Error::io("stat", &path, error)),
        }
        let loaded = self.read_index(true)?;
        let Some(loaded) = loaded.filter(|l| l.state.uid_validity() == state.uid_validity()) else {
            return Ok(false);
        };
        // The same incarnation in another log file (Dovecot rotated it): lookups compare
        // with that file from now on.
        let file = self.log_if_read(&loaded);
        if let Some(view) = self.last.lock().unwrap_or_else(PoisonError::into_inner).as_mut()
            && std::ptr::eq(Arc::as_ptr(&view.state), state)
        {
            view.log = file.as_ref().map(|_| loaded.identity());
            view.held = file;
        }
        Ok(true)
    }

    /// The file of message `uid` as it is now, checked (`Ok(None)`: no such message).
    ///
    /// By the view read last; a message it lists whose file is gone is looked up again in
    /// a fresh read. A mailbox that became another incarnation since the view (deleted and
    /// created again, or emptied under a new UIDVALIDITY: its `u.<uid>` files are other
    /// messages under the same names) serves nothing: the fresh read is not kept, and
    /// every later lookup answers `None` until a view is read on purpose.
    pub(crate) fn locate(&self, uid: u32) -> Result<Option<FileInfo>> {
        if self.superseded.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (view, log) = self.view()?;
        let mut state = Arc::clone(&view);
        let mut log = log;
        for fresh in [false, true] {
            if fresh {
                let loaded = self.read_index(false)?;
                let Some(loaded) = loaded.filter(|l| l.state.uid_validity() == view.uid_validity())
                else {
                    self.superseded.store(true, Ordering::Relaxed);
                    return Ok(None);
                };
                self.keep(&loaded);
                (state, log) = self.view()?;
            }
            let Some(position) = state.position(uid) else { continue };
            match self.read_file(uid, state.messages[position].flags)? {
                // Opened first, checked after: a file opened before the mailbox was
                // replaced is the listed message.
                Ok(info) => {
                    if self.same_incarnation(&state, log)? {
                        return Ok(Some(info));
                    }
                    self.superseded.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
                Err(None) => {}
                Err(Some(left)) => return Err(Error::LeftOut(Box::new(left))),
            }
        }
        Ok(None)
    }

    /// Opens the stored bytes (the body, LF line ends) of message `uid`, read only beneath
    /// the store's roots. A file that is not a regular file inside the store, or not one
    /// this crate reads, is [`Error::LeftOut`].
    pub fn open_message(&self, uid: u32) -> Result<MessageReader> {
        let Some(info) = self.locate(uid)? else {
            return Err(Error::UidNotFound { mailbox: self.name.to_string(), uid });
        };
        let mut file = info.file;
        file.seek(SeekFrom::Start(info.layout.body_offset)).ctx("seek", &info.path)?;
        Ok(MessageReader::part(file, info.layout.body_size))
    }

    /// The messages' keywords are never dropped in sdbox (the index holds any number);
    /// always empty, for symmetry with [`crate::Mailbox::take_dropped_keywords`].
    pub fn take_dropped_keywords(&self) -> Vec<crate::DroppedKeyword> {
        Vec::new()
    }

    /// Number of staged, uncommitted messages.
    pub fn staged(&self) -> usize {
        self.staged.len()
    }
}

/// A message as the index and its file describe it.
fn message_info(state: &IndexState, message: &Message, info: &FileInfo) -> Result<MessageInfo> {
    let virtual_size = if let Some(size) = info.metadata.virtual_size {
        size
    } else {
        let mut body = &info.file;
        body.seek(SeekFrom::Start(info.layout.body_offset)).ctx("seek", &info.path)?;
        crate::maildir::virtual_size_read(&mut body.take(info.layout.body_size), &info.path)?
    };
    Ok(MessageInfo {
        uid: message.uid,
        flags: to_flags(message.flags),
        keywords: keywords_of(state, message),
        received: info.metadata.received.unwrap_or(info.mtime),
        size: info.layout.body_size,
        virtual_size,
        guid: info.metadata.guid.clone().unwrap_or_default(),
        pop3_uidl: info.metadata.pop3_uidl.clone().filter(|_| pop3_flag(state, 0x01)),
        pop3_order: info.metadata.pop3_order.filter(|_| pop3_flag(state, 0x02)),
        file_name: format!("u.{}", message.uid),
        in_cur: false,
        modseq: Some(state.modseq_of(message)),
    })
}

/// The status the index says.
pub(crate) fn status_of(state: &IndexState) -> MailboxStatus {
    MailboxStatus {
        uid_validity: state.uid_validity(),
        next_uid: state.next_uid(),
        guid: mailbox_guid(state),
        messages: u32::try_from(state.messages.len()).unwrap_or(u32::MAX),
        origin_uid_validity: origin_of(state),
        highest_modseq: Some(state.highest_modseq()),
    }
}

/// The mailbox GUID of `dbox-hdr` (`rebuild_count u32, guid[16], flags u8`), unless empty.
pub(crate) fn mailbox_guid(state: &IndexState) -> Option<Guid> {
    let (_, header) = state.ext(ext::DBOX_HDR)?;
    let bytes: [u8; 16] = header.header.get(4..20)?.try_into().ok()?;
    Some(Guid::from_bytes(bytes)).filter(|guid| !guid.is_empty())
}

/// `dbox-hdr`'s flags byte: 0x01 some mail has a POP3 UIDL, 0x02 some has a POP3 order.
/// Dovecot ignores a file's `P`/`O` unless the bit is set.
fn pop3_flag(state: &IndexState, bit: u8) -> bool {
    state
        .ext(ext::DBOX_HDR)
        .and_then(|(_, ext)| ext.header.get(20).copied())
        .is_some_and(|flags| flags & bit != 0)
}

/// The origin UIDVALIDITY our extension records, when it belongs to the current one.
pub(crate) fn origin_of(state: &IndexState) -> Option<u32> {
    let (_, ext) = state.ext(ORIGIN_EXT)?;
    let header = ext.header.get(..8)?;
    let own = crate::index::log::le32(header, 0);
    let origin = crate::index::log::le32(header, 4);
    (own == state.uid_validity() && own != 0 && origin != 0).then_some(origin)
}

/// The system flags of an index flag byte.
pub(crate) fn to_flags(byte: u8) -> Flags {
    Flags::ALL
        .iter()
        .filter(|(flag, _, _)| index_bit(*flag) & byte != 0)
        .fold(Flags::EMPTY, |all, (flag, _, _)| all | *flag)
}

/// The index bit of one system flag (`enum mail_flags`); [`Flags`] uses the same values.
pub(crate) fn index_bit(flag: Flags) -> u8 {
    let mut bit = 0;
    for (value, candidate) in [
        (0x01, Flags::ANSWERED),
        (0x02, Flags::FLAGGED),
        (0x04, Flags::DELETED),
        (0x08, Flags::SEEN),
        (0x10, Flags::DRAFT),
    ] {
        if flag.contains(candidate) {
            bit |= value;
        }
    }
    bit & FLAGS_MASK
}

/// A message's keywords, in letter order.
fn keywords_of(state: &IndexState, message: &Message) -> Vec<Keyword> {
    let names: BTreeSet<&str> = message
        .keywords
        .iter()
        .filter_map(|&index| state.keywords.get(index as usize).map(String::as_str))
        .collect();
    names.into_iter().map(|name| Keyword::from_disk(name.to_string())).collect()
}

/// The UID of a message file name `u.<uid>`.
pub(crate) fn uid_of(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"u.")?;
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().filter(|&uid| uid != 0)
}

/// Reads where the body of the open dbox file is and its metadata (and its mtime).
pub(crate) fn read_dbox(
    file: &File,
    path: &Path,
) -> Result<std::result::Result<(Layout, Metadata, i64), file::Broken>> {
    let stat = file.metadata().ctx("stat", path)?;
    let size = stat.len();
    let mut head = vec![0u8; HEAD_READ.min(usize::try_from(size).unwrap_or(HEAD_READ))];
    file.read_exact_at(&mut head, 0).ctx("read", path)?;
    let layout = match file::parse_layout(&head, size) {
        Ok(layout) => layout,
        Err(broken) => return Ok(Err(broken)),
    };
    let metadata_len = (size - layout.metadata_offset()).min(MAX_METADATA);
    let mut metadata = vec![0u8; usize::try_from(metadata_len).unwrap_or(0)];
    file.read_exact_at(&mut metadata, layout.metadata_offset()).ctx("read", path)?;
    Ok(file::parse_metadata(&metadata).map(|metadata| (layout, metadata, stat.mtime())))
}
