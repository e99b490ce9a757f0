//! One mailbox: its state, messages, and changes to them.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::Store;
use super::believed::FileBeliefs;
use super::filename;
use super::kept_cur::{DirStamp, KeptCurFiles};
use super::keywords::KeywordTable;
use super::known_files::{FileLookup, KnownFile, KnownFiles, NothingKnown};
use super::records::Records;
use super::save::Staged;
use super::state::{self, FileBuf, FileRef, Files, Paths, Scan, StreamedRead, Sub};
use super::uidlist::streamed::Changed;
use super::uidlist::{Record, Uidlist, ext};
use crate::crlf::CrlfReader;
use crate::error::{Error, IoContext, Result};
use crate::flags::{Flags, Keyword};
use crate::fs::beneath::{self, FileKind, Refusal, Tree};
use crate::guid::Guid;
use crate::left_out::{self, LeftOut, LeftOutReason, Listing};
use crate::name::MailboxName;

/// A mailbox's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxStatus {
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// The UID the next message gets (IMAP `UIDNEXT`).
    pub next_uid: u32,
    /// The mailbox GUID (`G` of the uidlist header).
    pub guid: Option<Guid>,
    /// Number of messages.
    pub messages: u32,
    /// The UIDVALIDITY whose UIDs the mailbox holds under its own, when it was rebuilt by
    /// [`Mailbox::reset_with_origin`] or created by
    /// [`Maildir::create_mailbox_with_origin`](super::Maildir::create_mailbox_with_origin).
    pub origin_uid_validity: Option<u32>,
    /// HIGHESTMODSEQ, where the store keeps modseqs (sdbox; not a Maildir).
    pub highest_modseq: Option<u64>,
}

/// One message as a mail client would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageInfo {
    /// UID.
    pub uid: u32,
    /// System flags.
    pub flags: Flags,
    /// Keywords, in letter order.
    pub keywords: Vec<Keyword>,
    /// Received date (IMAP INTERNALDATE), UNIX seconds: the file's mtime.
    pub received: i64,
    /// Bytes stored on disk (`S=`).
    pub size: u64,
    /// Size with CRLF line ends, what IMAP serves (`W=`, `RFC822.SIZE`).
    pub virtual_size: u64,
    /// Message GUID: the uidlist's `G` field, else the base file name.
    pub guid: String,
    /// POP3 UIDL stored for this message (`P`), if any.
    pub pop3_uidl: Option<String>,
    /// POP3 order (`O`), if any.
    pub pop3_order: Option<u32>,
    /// Current file name (in `cur/` or `new/`; `u.<uid>` in sdbox).
    pub file_name: String,
    /// The file is in `cur/` (else in `new/`; false in sdbox).
    pub in_cur: bool,
    /// The message's modseq, where the store keeps modseqs (sdbox; not a Maildir).
    pub modseq: Option<u64>,
}

/// The stored bytes of one message (of a Maildir file, or the body part of an sdbox
/// `u.<uid>` file).
#[derive(Debug)]
pub struct MessageReader {
    body: io::Take<File>,
}

impl MessageReader {
    /// The whole of `file`.
    pub(crate) fn whole(file: File) -> MessageReader {
        MessageReader { body: file.take(u64::MAX) }
    }

    /// `size` bytes of `file` from where it is positioned.
    pub(crate) fn part(file: File, size: u64) -> MessageReader {
        MessageReader { body: file.take(size) }
    }

    /// The bytes as IMAP serves them (bare LF → CRLF).
    pub fn crlf(self) -> CrlfReader<io::Take<File>> {
        CrlfReader::new(self.body)
    }
}

impl Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
}

/// A message's file opened for reading, with its size when the open learnt it.
pub(crate) struct OpenedFile {
    pub(crate) file: File,
    pub(crate) size: Option<u64>,
}

impl OpenedFile {
    /// The message: its known size read (no read for the end of the file), else the file
    /// to its end.
    fn into_reader(self) -> MessageReader {
        match self.size {
            Some(size) => MessageReader::part(self.file, size),
            None => MessageReader::whole(self.file),
        }
    }
}

/// The messages of a mailbox, read one at a time ([`Mailbox::into_messages`]), in the
/// uidlist's order (ascending UID).
#[derive(Debug)]
pub struct MessageStream {
    mailbox: Mailbox,
    view: Arc<View>,
    dirs: [Option<OwnedFd>; 2],
    /// The next record of the view's uidlist to read.
    next: usize,
    left_out: Vec<LeftOut>,
    status: MailboxStatus,
    /// `cur/`'s stamp taken before the read, when the read vouches for `cur/`.
    cur_stamp: Option<DirStamp>,
    /// `cur/` was taken from the caller, not read.
    cur_kept: bool,
}

impl MessageStream {
    /// The mailbox's status as read.
    pub fn status(&self) -> &MailboxStatus {
        &self.status
    }

    /// What was left out so far, sorted by path (all of it once the stream has ended).
    pub fn take_left_out(&mut self) -> Vec<LeftOut> {
        let mut left_out = std::mem::take(&mut self.left_out);
        left_out.sort_by(|a, b| a.path.cmp(&b.path));
        left_out
    }

    /// `cur/`'s stamp, taken before the folder was read, when that read vouches for every
    /// entry of `cur/`: the stamp was older than [`crate::DIRTY_SECS`] (nothing could
    /// change in its second unseen), and every entry of `cur/` is a regular file that a
    /// record of the folder's uidlist numbers, none left out. A caller that keeps it with
    /// each `cur/` file's UID, base name hash and rest of name (its [`MessageInfo`] with
    /// [`MessageInfo::in_cur`]) may hand them back to
    /// [`Mailbox::into_messages_knowing_cur`] next time.
    pub fn cur_stamp(&self) -> Option<&DirStamp> {
        self.cur_stamp.as_ref()
    }

    /// False when `cur/` was taken from the caller ([`Mailbox::into_messages_knowing_cur`])
    /// and not read.
    pub fn read_cur(&self) -> bool {
        !self.cur_kept
    }

    /// The mailbox back, keeping the view the stream read: messages are then opened by it
    /// ([`Mailbox::open_message`]) without reading the folder again.
    pub fn into_mailbox(self) -> Mailbox {
        self.mailbox
    }
}

impl MessageStream {
    /// The next message, as [`Iterator::next`] gives it, with `known` asked first what it
    /// knows of each regular file: a known file is neither `stat`ed nor opened, and one the
    /// caller has as it is is not listed at all ([`KnownFiles`]).
    pub fn next_knowing(&mut self, known: &mut dyn KnownFiles) -> Option<Result<MessageInfo>> {
        let view = &self.view;
        while self.next < view.records.len() {
            let position = self.next;
            self.next += 1;
            let (mailbox, dirs, left_out) = (&self.mailbox, &self.dirs, &mut self.left_out);
            let read = view.records.with_record(position, |record| {
                let Some(file) = Mailbox::file_of(view, position, &record) else { return Ok(None) };
                mailbox.read_message(view, &record, &file.as_ref(), dirs, left_out, &mut *known)
            });
            match read.map_err(|Changed| mailbox.changed(position)).and_then(Option::transpose) {
                Ok(Some(Some(info))) => return Some(Ok(info)),
                Ok(_) => {}
                Err(error) => {
                    self.next = view.records.len();
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

impl Iterator for MessageStream {
    type Item = Result<MessageInfo>;

    fn next(&mut self) -> Option<Result<MessageInfo>> {
        self.next_knowing(&mut NothingKnown)
    }
}

/// A mailbox of a [`super::Maildir`]. Saves are staged until [`Mailbox::commit`]; dropping
/// the mailbox discards staged messages (nothing of them was ever visible).
#[derive(Debug)]
pub struct Mailbox {
    pub(crate) store: Arc<Store>,
    pub(crate) name: MailboxName,
    pub(crate) paths: Paths,
    pub(crate) staged: Vec<Staged>,
    /// The last view read, so that opening many messages does not rescan each time.
    cache: Mutex<Option<Arc<View>>>,
    /// The uidlist as our last change left it (see [`state::locked_cached`]); after a
    /// commit of saves, only its tail (see [`state::CachedUidlist`]).
    pub(crate) uidlist_cache: Mutex<Option<state::CachedUidlist>>,
    /// File base names known to be taken (those of the uidlist, of `new/` and of this
    /// handle's saves), once a commit had to check a caller's GUID against them (see
    /// [`Mailbox::commit`]): the commits keep only the uidlist's tail, not its records.
    /// (Keys of the names, [`super::save::base_key`], 8 bytes a name.)
    pub(crate) taken_bases: Option<super::save::TakenKeys>,
    /// Keywords that found no letter (see [`Mailbox::take_dropped_keywords`]).
    dropped_keywords: Mutex<Vec<DroppedKeyword>>,
    /// A file created in `tmp/` came out with the right owner, group and mode: later ones
    /// will too, and are not checked (one `fstat` less per saved message).
    pub(crate) tmp_files_right: AtomicBool,
    /// A lookup found the folder another incarnation than the view it listed from (see
    /// [`Mailbox::locate`]): lookups by UID find nothing until a new view is read on
    /// purpose ([`Mailbox::view`]), so they do not each read the folder again.
    superseded: AtomicBool,
    /// `tmp/`, `new/` and `cur/` opened once the first save needs them: files are created
    /// and renamed relative to them (see [`Mailbox::sub_dir`]).
    sub_dirs: [OnceLock<OwnedFd>; 3],
    /// `new/` and `cur/` resolved beneath the root ([`Tree`]) once a message is read from
    /// them: each message file is then opened relative to its directory (see
    /// [`Mailbox::open_in_sub_dir`]), not by walking the path from the root again.
    read_dirs: [OnceLock<OwnedFd>; 2],
    /// The buffer the last message saved was gathered in, for the next (see
    /// [`Mailbox::begin_save`]): one allocation per handle, not one per message.
    pub(crate) spare_buffer: Mutex<Vec<u8>>,
}

/// Which of a mailbox's directories [`Mailbox::sub_dir`] opens.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SubDir {
    Tmp,
    Mail(Sub),
}

impl SubDir {
    fn index(self) -> usize {
        match self {
            SubDir::Tmp => 0,
            SubDir::Mail(Sub::New) => 1,
            SubDir::Mail(Sub::Cur) => 2,
        }
    }
}

/// A keyword a save or flag change could not store: the mailbox's 26 keyword letters
/// (`a`–`z`, `dovecot-keywords`) were all taken by others. Dovecot keeps such keywords only
/// in its index, which loses them when rebuilt; a Maildir file cannot carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedKeyword {
    /// The message's UID.
    pub uid: u32,
    /// The keyword.
    pub keyword: String,
}

/// Dovecot's mailbox list index, a cache of the folder tree and each folder's status.
const LIST_INDEX_FILES: [&str; 3] =
    ["dovecot.list.index", "dovecot.list.index.log", "dovecot.list.index.log.2"];

/// What one read of the mailbox found.
#[derive(Debug)]
struct View {
    records: Records,
    /// Every message file, read or not (all are numbered, as Dovecot numbers them), kept
    /// against `records`.
    files: Files,
    keywords: KeywordTable,
    /// Positions of the records whose files are not read: not regular files, or symlinks
    /// that do not resolve to one inside the store.
    unreadable: HashSet<usize>,
    /// What was left out, and why.
    left_out: Vec<LeftOut>,
    /// The UIDs come from a file (`dovecot-uidlist`, or our own kept one), so the
    /// UIDVALIDITY names this incarnation of the folder; a folder numbered in memory gets a
    /// new one at every read.
    uids_from_file: bool,
}

impl View {
    /// The UIDVALIDITY, when it names the folder's incarnation (see `uids_from_file`).
    fn lasting_uid_validity(&self) -> Option<u32> {
        self.uids_from_file.then_some(self.records.header().uid_validity)
    }
}

/// What [`Mailbox::open_in_sub_dir`] found.
enum InSubDir {
    Opened(OpenedFile),
    /// No such file.
    Missing,
    /// The full resolution decides.
    Undecided,
}

impl Mailbox {
    /// `tmp/`, `new/` or `cur/` of this mailbox, opened on first use and kept: creating
    /// and renaming a message's file relative to it spares the kernel looking up every
    /// component of the mailbox's path, twice per message.
    pub(crate) fn sub_dir(&self, which: SubDir) -> Result<BorrowedFd<'_>> {
        let slot = &self.sub_dirs[which.index()];
        if slot.get().is_none() {
            let path = self.sub_dir_path(which);
            let opened = fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_DIRECTORY)
                .open(&path)
                .ctx("open", &path)?;
            let _ = slot.set(OwnedFd::from(opened));
        }
        match slot.get() {
            Some(fd) => Ok(fd.as_fd()),
            None => Err(Error::io(
                "open",
                self.sub_dir_path(which),
                io::Error::other("directory not opened"),
            )),
        }
    }

    /// The path of a [`Self::sub_dir`].
    pub(crate) fn sub_dir_path(&self, which: SubDir) -> PathBuf {
        match which {
            SubDir::Tmp => self.paths.tmp(),
            SubDir::Mail(sub) => self.paths.sub(sub),
        }
    }

    pub(crate) fn new(store: Arc<Store>, name: MailboxName, dir: PathBuf) -> Mailbox {
        let root = store.location.root().to_path_buf();
        Mailbox {
            store,
            name,
            paths: Paths { root, dir },
            staged: Vec::new(),
            cache: Mutex::new(None),
            uidlist_cache: Mutex::new(None),
            taken_bases: None,
            dropped_keywords: Mutex::new(Vec::new()),
            tmp_files_right: AtomicBool::new(false),
            superseded: AtomicBool::new(false),
            sub_dirs: [OnceLock::new(), OnceLock::new(), OnceLock::new()],
            read_dirs: [OnceLock::new(), OnceLock::new()],
            spare_buffer: Mutex::new(Vec::new()),
        }
    }

    /// The keywords saves and flag changes of this handle left out since the last call,
    /// because no letter was free for them (a Maildir mailbox holds at most 26 keywords).
    /// The messages themselves were saved or changed, with their other keywords.
    pub fn take_dropped_keywords(&self) -> Vec<DroppedKeyword> {
        std::mem::take(
            &mut *self.dropped_keywords.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The mailbox's name.
    pub fn name(&self) -> &MailboxName {
        &self.name
    }

    /// The mailbox's directory.
    pub fn path(&self) -> &Path {
        &self.paths.dir
    }

    /// UIDVALIDITY, next UID, GUID and message count.
    pub fn status(&self) -> Result<MailboxStatus> {
        if let Some(status) = self.quick_status()? {
            return Ok(status);
        }
        let view = self.view()?;
        Ok(Self::view_status(&view, Self::present_count(&view)))
    }

    /// The status of `view`, holding `messages` messages.
    fn view_status(view: &View, messages: usize) -> MailboxStatus {
        MailboxStatus {
            uid_validity: view.records.header().uid_validity,
            next_uid: view.records.next_uid(),
            guid: view.records.header().guid,
            messages: u32::try_from(messages).unwrap_or(u32::MAX),
            origin_uid_validity: view.records.header().origin(),
            highest_modseq: None,
        }
    }

    /// [`Self::status`] from the uidlist and one pass over `new/` and `cur/` that keeps no
    /// file list (a full view of a 100 000-message folder holds ~18 MB of names); for a
    /// read-only mailbox without one, from the uidlist the store keeps outside. `None`
    /// when the mailbox needs what [`Self::view`] does: no uidlist yet, an interrupted
    /// commit to complete, or files the uidlist does not know.
    fn quick_status(&self) -> Result<Option<MailboxStatus>> {
        if self.paths.dir.join(super::journal::JOURNAL).exists() {
            return Ok(None);
        }
        let uidlist = match (self.paths.read_uidlist()?, self.store.own_uidlists.get()) {
            (None, Some(own)) if self.store.options.read_only => own.read(&self.paths)?,
            (uidlist, _) => uidlist,
        };
        let Some(uidlist) = uidlist else { return Ok(None) };
        let mut present: HashMap<&str, bool> =
            uidlist.records().map(|r| (r.base(), false)).collect();
        let tree = self.paths.tree();
        for sub in [Sub::New, Sub::Cur] {
            let path = self.paths.sub(sub);
            let dir = match tree.open_dir(self.paths.relative(&path)) {
                Ok(dir) => dir,
                Err(refusal) if refusal.is_not_found() => continue,
                // Left out by the full read, which says why.
                Err(_) => return Ok(None),
            };
            let mut plain = true;
            beneath::for_each_entry(dir, |entry| {
                if entry.name.as_encoded_bytes().starts_with(b".") {
                    return true;
                }
                // Anything but a regular file the uidlist knows: the full read decides.
                let seen = entry
                    .name
                    .to_str()
                    .filter(|_| entry.kind == FileKind::File)
                    .and_then(|name| present.get_mut(filename::base(name)));
                match seen {
                    Some(seen) => *seen = true,
                    None => plain = false,
                }
                plain
            })
            .ctx("read directory", &path)?;
            if !plain {
                return Ok(None);
            }
        }
        let messages = uidlist.records().filter(|r| present.get(r.base()) == Some(&true)).count();
        Ok(Some(MailboxStatus {
            uid_validity: uidlist.uid_validity,
            next_uid: uidlist.next_uid(),
            guid: uidlist.guid,
            messages: u32::try_from(messages).unwrap_or(u32::MAX),
            origin_uid_validity: uidlist.origin(),
            highest_modseq: None,
        }))
    }

    /// The mailbox GUID (`G` of the uidlist header), read from the header line alone:
    /// cheap in a big folder. `None` before the first message or for an old uidlist.
    pub fn guid(&self) -> Result<Option<Guid>> {
        let header = match (self.paths.read_uidlist_header()?, self.store.own_uidlists.get()) {
            (None, Some(own)) => own.header(&self.paths)?,
            (header, _) => header,
        };
        Ok(header.and_then(|uidlist| uidlist.guid))
    }

    /// Every message in UID order. What the listing leaves out is dropped here;
    /// [`Self::list_messages`] says what and why.
    pub fn messages(&self) -> Result<Vec<MessageInfo>> {
        Ok(self.list_messages()?.entries)
    }

    /// Every message in UID order, and the files of `cur/` and `new/` left out, each with
    /// its reason ([`LeftOut`]).
    ///
    /// Files are read only beneath the store's root: a message file that is a symlink is
    /// read when it resolves to a regular file inside the store (Dovecot follows it too),
    /// and left out when it points outside (Dovecot would serve the target: any file the
    /// running account can read), loops or dangles. A `cur/` or `new/` that is a symlink
    /// leaving the store is left out as a whole. Left out too: FIFOs, sockets, devices and
    /// directories (Dovecot blocks forever reading a FIFO), files the system refuses to read
    /// when their size must be read from them, names that are not UTF-8 or have an empty
    /// base name, and a second file with the same base name as another (Dovecot gives it a
    /// new name and UID at its next sync). Every one of them keeps the UID Dovecot would
    /// give it, so the others' UIDs are what Dovecot's would be.
    pub fn list_messages(&self) -> Result<Listing<MessageInfo>> {
        Ok(self.list_messages_with_status()?.0)
    }

    /// [`Self::list_messages`] and the mailbox's status from the same read (its count the
    /// messages listed), without parsing the uidlist again as [`Self::status`] would: in a
    /// large folder that second parse cost more memory than the listing itself.
    pub fn list_messages_with_status(&self) -> Result<(Listing<MessageInfo>, MailboxStatus)> {
        let view = self.view()?;
        let mut left_out = view.left_out.clone();
        let tree = self.paths.tree();
        // cur/ and new/ opened once: each file is then one fstatat, as a stat by path was.
        let dirs = [Sub::New, Sub::Cur]
            .map(|sub| tree.open_dir(self.paths.relative(&self.paths.sub(sub))).ok());
        let mut out = Vec::new();
        for position in 0..view.records.len() {
            let read = view.records.with_record(position, |record| {
                let Some(file) = Self::file_of(&view, position, &record) else { return Ok(None) };
                let known = &mut NothingKnown;
                self.read_message(&view, &record, &file.as_ref(), &dirs, &mut left_out, known)
            });
            if let Some(info) =
                read.map_err(|Changed| self.changed(position))?.transpose()?.flatten()
            {
                out.push(info);
            }
        }
        left_out.sort_by(|a, b| a.path.cmp(&b.path));
        let status = Self::view_status(&view, out.len());
        Ok((Listing { entries: out, left_out }, status))
    }

    /// One message of `view` as [`Self::list_messages`] lists it: `None` when its file is
    /// gone since the scan, or left out (then added to `left_out`).
    fn read_message(
        &self,
        view: &View,
        record: &Record<'_>,
        file: &FileRef<'_>,
        dirs: &[Option<OwnedFd>; 2],
        left_out: &mut Vec<LeftOut>,
        known: &mut dyn KnownFiles,
    ) -> Result<Option<MessageInfo>> {
        // A symlink may lead elsewhere since: always resolved.
        let lookup = if file.kind == FileKind::File {
            known.lookup(record.uid, file.name, file.sub == Sub::Cur)
        } else {
            FileLookup::Read
        };
        let known = match lookup {
            FileLookup::Skip => return Ok(None),
            FileLookup::Known(known) => Some(known),
            FileLookup::Read => None,
        };
        if let Some(known) = known {
            return Ok(Some(Self::message_info(view, record, file, known)));
        }
        let tree = self.paths.tree();
        let path = self.paths.file(file);
        let relative = self.paths.relative(&path);
        let status = match stat_message(tree, dirs, file, relative) {
            Ok(status) => status,
            // Renamed (flag change) or expunged by someone else since the scan.
            Err(refusal) if refusal.is_not_found() => return Ok(None),
            Err(refusal) => {
                left_out.push(self.left_out(relative, refusal)?);
                return Ok(None);
            }
        };
        let name = &file.name;
        let size = known_size(record, name, ext::SIZE)
            .unwrap_or_else(|| u64::try_from(status.st_size).unwrap_or(0));
        let virtual_size = match known_size(record, name, ext::VSIZE) {
            Some(v) => v,
            None => match tree.open_file(relative) {
                Ok(mut file) => virtual_size_read(&mut file, &path)?,
                Err(refusal) if refusal.is_not_found() => return Ok(None),
                Err(refusal) => {
                    left_out.push(self.left_out(relative, refusal)?);
                    return Ok(None);
                }
            },
        };
        let known = KnownFile::new(status.st_mtime, size, virtual_size);
        Ok(Some(Self::message_info(view, record, file, known)))
    }

    /// The message of `record`, whose file is `file`, with the file's facts `known`.
    fn message_info(
        view: &View,
        record: &Record<'_>,
        file: &FileRef<'_>,
        known: KnownFile,
    ) -> MessageInfo {
        let name = file.name;
        let info = filename::info(name);
        let mut keyword_indexes = info.keywords.clone();
        keyword_indexes.sort_unstable();
        let keywords =
            keyword_indexes.iter().map(|&i| Keyword::from_disk(view.keywords.name(i))).collect();
        MessageInfo {
            uid: record.uid,
            flags: info.flags,
            keywords,
            received: known.received,
            size: known.size,
            virtual_size: known.virtual_size,
            guid: message_guid(record, name).to_string(),
            pop3_uidl: record.ext(ext::POP3_UIDL).map(str::to_string),
            pop3_order: record.ext(ext::POP3_ORDER).and_then(|v| v.parse().ok()).filter(|&o| o > 0),
            file_name: name.to_string(),
            in_cur: file.sub == Sub::Cur,
            modseq: None,
        }
    }

    /// [`Self::list_messages_with_status`] read one message at a time, so that a caller
    /// comparing a large folder with another holds the store's view of the folder (its
    /// uidlist and file names) but no list of messages. The status's count is of the files
    /// present when the folder was read.
    pub fn into_messages(self) -> Result<MessageStream> {
        self.stream(None)
    }

    /// [`Self::into_messages`] with `cur/`'s files taken from `files`, not read, when
    /// `cur/`'s stamp is still `stamp` (a [`MessageStream::cur_stamp`] of an earlier
    /// read, whose `cur/` files the caller kept): then no entry of `cur/` was created,
    /// renamed or removed since that read began, and only `new/` and the uidlist are read.
    /// Whatever cannot be vouched for reads `cur/` as [`Self::into_messages`] does: another
    /// stamp, a store we may write, no `dovecot-uidlist` (our own uidlist numbers every
    /// name), an interrupted commit's journal, a UID the uidlist does not have or whose
    /// base name is not the one kept, a base name also in `new/`, files not in ascending
    /// UID order or not all given ([`KeptCurFiles::intact`]). [`MessageStream::read_cur`]
    /// says which it was. A message of `cur/` opened later ([`Self::open_message`]) is
    /// found under its name as rebuilt, and by a new read of both directories should it
    /// be gone.
    pub fn into_messages_knowing_cur(
        self,
        stamp: &DirStamp,
        files: &mut dyn KeptCurFiles,
    ) -> Result<MessageStream> {
        self.stream(Some((stamp, files)))
    }

    fn stream(self, kept: Option<(&DirStamp, &mut dyn KeptCurFiles)>) -> Result<MessageStream> {
        let now = crate::fs::now().0;
        // Before the read: a change during it moves the stamp the next read compares.
        let cur = DirStamp::of(&self.paths.sub(Sub::Cur)).filter(|cur| cur.trusted_at(now));
        let kept_view = match (kept, cur) {
            (Some((stamp, files)), Some(cur)) if cur == *stamp => self.read_view_kept_cur(files)?,
            _ => None,
        };
        let cur_kept = kept_view.is_some();
        let view = match kept_view {
            Some(view) => self.keep_view(view),
            None => self.view()?,
        };
        let cur_stamp = cur.filter(|_| Self::vouches_for_cur(&view));
        let tree = self.paths.tree();
        let dirs = [Sub::New, Sub::Cur]
            .map(|sub| tree.open_dir(self.paths.relative(&self.paths.sub(sub))).ok());
        let status = Self::view_status(&view, Self::present_count(&view));
        let left_out = view.left_out.clone();
        Ok(MessageStream {
            mailbox: self,
            view,
            dirs,
            next: 0,
            left_out,
            status,
            cur_stamp,
            cur_kept,
        })
    }

    /// True when every entry of `cur/` the view read is a regular file a record numbers
    /// from a uidlist file: nothing left out or unreadable (in `cur/` or `new/`), no file
    /// without a record, no symlink.
    fn vouches_for_cur(view: &View) -> bool {
        view.uids_from_file
            && view.left_out.is_empty()
            && view.unreadable.is_empty()
            && view.files.all_regular_and_numbered()
    }

    /// The view of a read-only folder whose `cur/` files are `kept` (see
    /// [`Self::into_messages_knowing_cur`]): `new/` read against the uidlist, the files
    /// no record names numbered in memory as [`Self::read_only_view`] numbers them.
    /// `None` when anything does not match: the caller reads `cur/`. When `new/` holds
    /// no delivery no record names (Dovecot's LDA and LMTP number theirs), the uidlist
    /// is read line by line as [`Self::read_streamed_view`] reads it, the kept files
    /// checked as its lines come: no whole parse.
    fn read_view_kept_cur(&self, kept: &mut dyn KeptCurFiles) -> Result<Option<View>> {
        if !self.store.options.read_only || self.paths.dir.join(super::journal::JOURNAL).exists() {
            return Ok(None);
        }
        if !self.paths.has_unnumbered_new_files() {
            if let Some(view) = self.read_streamed_view_kept_cur(kept)? {
                return Ok(Some(view));
            }
            // (A delivery in a `new/` older than the uidlist, as a rule.)
            if !kept.rewind() {
                return Ok(None);
            }
        }
        let Some(list) = self.paths.read_uidlist()? else { return Ok(None) };
        let (files, left_out) = self.paths.scan_new_files(&list)?;
        let Some(files) = files.with_kept_cur(&list, kept) else { return Ok(None) };
        let keywords = self.paths.read_keywords()?;
        if files.others().is_empty() {
            return Ok(Some(self.checked_view(Records::Whole(list), files, keywords, left_out)));
        }
        self.read_only_view(Some(list), files, keywords, left_out).map(Some)
    }

    /// The entry at `relative` of this mailbox, left out because of `refusal`; an error
    /// when the refusal is an I/O failure rather than a property of the entry.
    fn left_out(&self, relative: &Path, refusal: Refusal) -> Result<LeftOut> {
        match left_out::reason(refusal, relative, FileKind::File) {
            Ok(reason) => Ok(LeftOut {
                mailbox: Some(self.name.clone()),
                path: relative.to_path_buf(),
                reason,
            }),
            Err(error) => Err(Error::io("open", self.paths.root.join(relative), error)),
        }
    }

    /// Opens the message file `file` (a regular file, or a symlink to one, inside the
    /// store), which the mailbox's last read listed as `listed`: `Ok(None)` when it is gone
    /// (renamed or expunged since it was listed).
    pub(crate) fn open_file(&self, file: &Path, listed: FileKind) -> Result<Option<OpenedFile>> {
        match self.open_in_sub_dir(file, listed) {
            InSubDir::Opened(opened) => return Ok(Some(opened)),
            InSubDir::Missing => return Ok(None),
            InSubDir::Undecided => {}
        }
        let relative = self.paths.relative(file);
        match self.paths.tree().open_file(relative) {
            Ok(file) => Ok(Some(OpenedFile { file, size: None })),
            Err(refusal) if refusal.is_not_found() => Ok(None),
            Err(refusal) => Err(match self.left_out(relative, refusal) {
                Ok(left_out) => Error::LeftOut(Box::new(left_out)),
                Err(error) => error,
            }),
        }
    }

    /// A regular file of this mailbox's `new/` or `cur/` opened relative to that directory
    /// (resolved beneath the root once, then kept): 3 system calls instead of 9 a message
    /// (the root, the mailbox's directories and the subdirectory opened, checked and
    /// closed again each time). [`InSubDir::Undecided`]: not a file of `new/` or `cur/`,
    /// or anything but a regular file there (a symlink, a FIFO), which the full resolution
    /// of [`Self::open_file`] then opens or refuses as before.
    /// A file `listed` as a regular file is opened without another look at its type first
    /// ([`beneath::open_listed_regular_at`]): one system call less, and its size is known.
    fn open_in_sub_dir(&self, file: &Path, listed: FileKind) -> InSubDir {
        self.try_open_in_sub_dir(file, listed).unwrap_or(InSubDir::Undecided)
    }

    fn try_open_in_sub_dir(&self, file: &Path, listed: FileKind) -> Option<InSubDir> {
        let parent = file.parent()?;
        if parent.parent()? != self.paths.dir {
            return None;
        }
        let sub = match parent.file_name()?.to_str()? {
            "new" => Sub::New,
            "cur" => Sub::Cur,
            _ => return None,
        };
        let slot = &self.read_dirs[usize::from(sub == Sub::Cur)];
        if slot.get().is_none() {
            let opened = self.paths.tree().open_dir(self.paths.relative(parent)).ok()?;
            let _ = slot.set(opened);
        }
        let (dir, name) = (slot.get()?.as_fd(), file.file_name()?);
        let opened = if listed == FileKind::File {
            beneath::open_listed_regular_at(dir, name).map(|(file, size)| OpenedFile { file, size })
        } else {
            beneath::open_regular_at(dir, name).map(|file| OpenedFile { file, size: None })
        };
        Some(match opened {
            Ok(opened) => InSubDir::Opened(opened),
            Err(refusal) if refusal.is_not_found() => InSubDir::Missing,
            Err(_) => InSubDir::Undecided,
        })
    }

    /// Opens the stored bytes of message `uid`. Read only beneath the store's root, as
    /// [`Self::list_messages`] reads: a file that is (or was made, since the listing) a
    /// symlink leaving the store, or anything but a regular file, is [`Error::LeftOut`];
    /// not a byte of it is read, and a FIFO is never opened.
    pub fn open_message(&self, uid: u32) -> Result<MessageReader> {
        for attempt in 0..3 {
            let Some(found) = self.locate(uid, attempt > 0)? else {
                if attempt == 0 {
                    continue;
                }
                return Err(self.uid_not_found(uid));
            };
            // None: renamed by a concurrent flag change: look again.
            if let Some(opened) = self.open_file(&found.path, found.kind)? {
                return Ok(opened.into_reader());
            }
        }
        Err(self.uid_not_found(uid))
    }

    /// Where message `uid` is, by the cached view (`fresh` false) or a new read, with its
    /// GUID and the sizes its name or record know; `None` when there is no such message.
    /// The file may have been renamed (flag change) or expunged since: callers retry with
    /// `fresh` on `ENOENT`, as [`Self::open_message`] does. A fresh read that finds the
    /// folder another incarnation than the cached view's (another lasting UIDVALIDITY:
    /// deleted and re-created, or renumbered) finds nothing, and is not cached: its UID
    /// `uid` is another message than the one listed, for this and every later lookup.
    pub(crate) fn locate(&self, uid: u32, fresh: bool) -> Result<Option<Located>> {
        if self.superseded.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let view = if fresh {
            let listed =
                self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let view = Arc::new(self.read_view()?);
            let listed = listed.and_then(|listed| listed.lasting_uid_validity());
            if listed
                .is_some_and(|listed| view.lasting_uid_validity().is_some_and(|now| now != listed))
            {
                self.superseded.store(true, Ordering::Relaxed);
                return Ok(None);
            }
            *self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Arc::clone(&view));
            view
        } else {
            self.cached_view()?
        };
        let Some(position) = view.records.position_of_uid(uid) else { return Ok(None) };
        let found = view.records.with_record(position, |record| {
            let file = Self::file_of(&view, position, &record)?;
            let file = file.as_ref();
            Some(Located {
                path: self.paths.file(&file),
                kind: file.kind,
                guid: message_guid(&record, file.name).to_string(),
                size: known_size(&record, file.name, ext::SIZE),
                virtual_size: known_size(&record, file.name, ext::VSIZE),
            })
        });
        match found {
            Ok(found) => Ok(found.flatten()),
            // The cached view's uidlist was changed in place: a fresh read (the callers'
            // next attempt) decides.
            Err(Changed) if !fresh => Ok(None),
            Err(Changed) => Err(self.changed(position)),
        }
    }

    /// Replaces the flags and keywords of message `uid` (the file is renamed with the new
    /// info; unknown flag letters are kept; a file in `new/` moves to `cur/`).
    pub fn set_flags(&self, uid: u32, flags: Flags, keywords: &[Keyword]) -> Result<()> {
        self.set_flags_many(&[(uid, flags, keywords.to_vec())])
    }

    /// [`Self::set_flags`] for many messages under one lock. Fails on the first unknown UID
    /// (changes before it are kept).
    pub fn set_flags_many(&self, changes: &[(u32, Flags, Vec<Keyword>)]) -> Result<()> {
        // Only the files of the changed messages are looked for: a few changes in a big
        // mailbox cost one pass over its directories, not a map of every file.
        self.set_flags_many_believed(changes, &FileBeliefs::new())
    }

    /// Renames one file to carry `flags`; rescans when someone else renamed it first.
    pub(crate) fn rename_with_flags(
        &self,
        scan: &mut Scan,
        names: &HashSet<&str>,
        base: &str,
        uid: u32,
        flags: Flags,
        letters: &[u8],
    ) -> Result<bool> {
        for _ in 0..3 {
            let file = scan.get(base).ok_or_else(|| self.uid_not_found(uid))?;
            let new_name = filename::with_flags(file.name, flags, letters);
            let from = self.paths.file(&file);
            let to = self.paths.sub(Sub::Cur).join(&new_name);
            if from == to {
                return Ok(false);
            }
            match fs::rename(&from, &to) {
                Ok(()) => {
                    // Under its base name: a flag change keeps it.
                    let kind = file.kind;
                    if !scan.insert(Sub::Cur, &new_name, kind) {
                        *scan = self.paths.scan_bases(names)?;
                    }
                    return Ok(true);
                }
                // Dovecot renamed it meanwhile (its flag changes take no lock): look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    *scan = self.paths.scan_bases(names)?;
                }
                Err(e) => return Err(e).ctx("rename", &from),
            }
        }
        Err(self.uid_not_found(uid))
    }

    /// Removes messages. Unknown UIDs are ignored (already expunged). As in Dovecot the
    /// uidlist keeps their records until it is next rewritten; their UIDs are never reused.
    pub fn expunge(&self, uids: &[u32]) -> Result<()> {
        self.expunge_believed(uids, &FileBeliefs::new())
    }

    /// Raises the next UID to `next_uid` (never lowers it: Dovecot treats a lowered next UID
    /// as corruption).
    pub fn set_next_uid(&self, next_uid: u32) -> Result<()> {
        // With the uidlist our last commit left (after a copy, the usual caller) it is not
        // read and parsed again.
        let mut cache =
            self.uidlist_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state::locked_cached(&self.store, &self.paths, &mut cache, |locked| {
            if next_uid > locked.uidlist.next_uid() {
                // A rewrite: every record, read again after a commit kept only the tail.
                locked.make_whole()?;
                locked.uidlist.header_next_uid = next_uid;
                locked.rewrite()?;
            }
            Ok(())
        })
    }

    /// Replaces UIDVALIDITY (the uidlist is rewritten; Dovecot then resets its index cache,
    /// as after its own UIDVALIDITY changes).
    pub fn set_uid_validity(&self, uid_validity: u32) -> Result<()> {
        crate::uidvalidity::check_nonzero(uid_validity)?;
        state::locked(&self.store, &self.paths, |locked| {
            if locked.uidlist.uid_validity != uid_validity {
                crate::uidvalidity::raise(
                    self.store.location.root(),
                    uid_validity,
                    &locked.permissions,
                )?;
                locked.uidlist.uid_validity = uid_validity;
                locked.uidlist.set_origin(None);
                locked.rewrite()?;
            }
            Ok(())
        })
    }

    /// Gives messages new UIDs without touching their files: each `(old, new)` pair moves
    /// the message at UID `old` to UID `new`. The new UIDs must be ascending and at least
    /// the next UID. One uidlist rewrite under the lock does it all, so a crash leaves
    /// either every message at its old UID or every one at its new UID, never a copy at
    /// both. Dovecot then sees the old UIDs expunged and the new ones arrive. Pairs whose
    /// old UID no longer exists (expunged meanwhile) are skipped; their UIDs are returned.
    pub fn renumber(&self, moves: &[(u32, u32)]) -> Result<Vec<u32>> {
        state::locked(&self.store, &self.paths, |locked| {
            let mut next = locked.uidlist.next_uid();
            let mut missing = Vec::new();
            let mut moved = Vec::with_capacity(moves.len());
            let scan = self.paths.scan()?;
            for &(old, new) in moves {
                if new < next {
                    return Err(Error::UidTooLow {
                        mailbox: self.name.to_string(),
                        uid: new,
                        next_uid: next,
                    });
                }
                let position = locked.uidlist.records().position(|r| r.uid == old);
                let present =
                    |index| locked.uidlist.get(index).map(|r| scan.contains_key(r.base()));
                match position {
                    Some(index) if present(index) == Some(true) => {
                        let Some(mut record) = locked.uidlist.remove(index) else { continue };
                        record.uid = new;
                        moved.push(record);
                        next = new.saturating_add(1);
                    }
                    _ => missing.push(old),
                }
            }
            if moved.is_empty() {
                return Ok(missing);
            }
            for record in &moved {
                locked.uidlist.push(record);
            }
            locked.uidlist.header_next_uid = locked.uidlist.header_next_uid.max(next);
            locked.rewrite()?;
            Ok(missing)
        })
    }

    /// Empties the mailbox and gives it a new identity: every message file is removed and
    /// the uidlist is rewritten with `uid_validity`, next UID 1 and `guid` (a new one when
    /// `None`). This is how a mailbox that cannot be deleted (INBOX) is rebuilt; lowering
    /// the next UID is legal only together with a new UIDVALIDITY, which is why both change
    /// at once here.
    pub fn reset(&self, uid_validity: u32, guid: Option<Guid>) -> Result<()> {
        crate::uidvalidity::check_nonzero(uid_validity)?;
        self.reset_to(Some(uid_validity), guid, None).map(|_| ())
    }

    /// Empties the mailbox as [`Self::reset`] does, under a new UIDVALIDITY allocated here
    /// (above every value this store or `origin` ever had, as Dovecot's allocator gives
    /// them), and records that it now holds the UIDs of `origin`
    /// ([`MailboxStatus::origin_uid_validity`]) in the same uidlist rewrite. For a backup
    /// destination that gave out UIDs of its own under the source's UIDVALIDITY: rebuilt
    /// under that same value, those UIDs would name other messages. Returns the new value.
    pub fn reset_with_origin(&self, guid: Option<Guid>, origin: u32) -> Result<u32> {
        crate::uidvalidity::check_nonzero(origin)?;
        self.reset_to(None, guid, Some(origin))
    }

    fn reset_to(
        &self,
        uid_validity: Option<u32>,
        guid: Option<Guid>,
        origin: Option<u32>,
    ) -> Result<u32> {
        state::locked(&self.store, &self.paths, |locked| {
            let root = self.store.location.root();
            let uid_validity = match uid_validity {
                Some(value) if value == locked.uidlist.uid_validity => {
                    return Err(Error::InvalidValue {
                        field: "UIDVALIDITY",
                        value: value.to_string(),
                        reason: "a reset needs a new UIDVALIDITY (UIDs must never be reused)",
                    });
                }
                Some(value) => {
                    crate::uidvalidity::raise(root, value, &locked.permissions)?;
                    value
                }
                None => {
                    let floor = locked.uidlist.uid_validity.max(origin.unwrap_or(0));
                    crate::uidvalidity::raise(root, floor, &locked.permissions)?;
                    crate::uidvalidity::next(root, &locked.permissions)?
                        .max(floor.saturating_add(1))
                }
            };
            let guid_changed = guid.is_some_and(|guid| locked.uidlist.guid != Some(guid));
            let scan = self.paths.scan()?;
            for file in scan.values() {
                if file.kind == FileKind::Directory {
                    // Not mail (listings report it): removed when empty, as Dovecot's sync
                    // removes an empty directory it finds in cur/, else left alone.
                    let _ = fs::remove_dir(self.paths.file(&file));
                    continue;
                }
                crate::fs::remove_if_exists(&self.paths.file(&file))?;
            }
            if locked.fsync {
                crate::fs::fsync_dir(&self.paths.sub(Sub::New))?;
                crate::fs::fsync_dir(&self.paths.sub(Sub::Cur))?;
            }
            locked.uidlist = Uidlist::new(uid_validity, 1, guid.unwrap_or_else(Guid::generate));
            locked.uidlist.set_origin(origin);
            locked.rewrite()?;
            if guid_changed {
                // As in `set_guid`: Dovecot's list index would go on answering the old GUID.
                for cache in LIST_INDEX_FILES {
                    crate::fs::remove_if_exists(&root.join(cache))?;
                }
            }
            Ok(uid_validity)
        })
    }

    /// Replaces the mailbox GUID, keeping UIDVALIDITY, UIDs and messages.
    ///
    /// Dovecot's mailbox list index (`dovecot.list.index*` in the root, on by default in
    /// 2.3) caches each mailbox's GUID and trusts the copy until the mailbox's own index
    /// changes, which a uidlist rewrite does not do: `doveadm mailbox status guid` and
    /// dsync then still see the old GUID. So when the GUID changes, those files are
    /// removed too. They are only a cache; Dovecot rebuilds them, even under a running
    /// session, without a warning (checked with 2.3.19.1).
    pub fn set_guid(&self, guid: Guid) -> Result<()> {
        state::locked(&self.store, &self.paths, |locked| {
            if locked.uidlist.guid != Some(guid) {
                locked.uidlist.guid = Some(guid);
                locked.rewrite()?;
                let root = self.store.location.root();
                for cache in LIST_INDEX_FILES {
                    crate::fs::remove_if_exists(&root.join(cache))?;
                }
            }
            Ok(())
        })
    }

    /// Keyword letters for the keywords of message `uid`, adding new ones to `table`. A
    /// keyword that finds no free letter is left out and recorded
    /// ([`Self::take_dropped_keywords`]): the message keeps the others, as Dovecot saves a
    /// message whose keywords its Maildir files cannot all hold.
    pub(crate) fn keyword_indexes(
        &self,
        table: &mut KeywordTable,
        uid: u32,
        keywords: &[Keyword],
    ) -> (Vec<u8>, bool) {
        let mut indexes = Vec::with_capacity(keywords.len());
        let mut changed = false;
        for keyword in keywords {
            match table.index_or_insert(keyword.as_str()) {
                Some((index, added)) => {
                    changed |= added;
                    indexes.push(index);
                }
                None => self
                    .dropped_keywords
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(DroppedKeyword { uid, keyword: keyword.to_string() }),
            }
        }
        (indexes, changed)
    }

    pub(crate) fn uid_not_found(&self, uid: u32) -> Error {
        Error::UidNotFound { mailbox: self.name.to_string(), uid }
    }

    fn cached_view(&self) -> Result<Arc<View>> {
        let cached = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match cached {
            Some(view) => Ok(view),
            None => self.view(),
        }
    }

    /// How many records have files that exist and are read.
    fn present_count(view: &View) -> usize {
        (0..view.records.len())
            .filter(|position| {
                view.files.has_file(*position) && !view.unreadable.contains(position)
            })
            .count()
    }

    /// The error of a view whose uidlist's line at `position` is no longer the one read.
    fn changed(&self, position: usize) -> Error {
        Error::Corrupt {
            path: self.paths.uidlist(),
            line: position + 2,
            reason: "changed in place since the mailbox was read".to_string(),
        }
    }

    /// The file of `record`, the record at `position` of the view's uidlist, when it
    /// exists and is read.
    fn file_of(view: &View, position: usize, record: &Record<'_>) -> Option<FileBuf> {
        if !view.unreadable.is_empty() && view.unreadable.contains(&position) {
            return None;
        }
        view.files.file_with_base(record.base(), position)
    }

    /// Reads the uidlist and the directories. Files the uidlist does not know (delivered by
    /// an MTA, or orphaned by a crash) get UIDs under the lock, as Dovecot's sync does, so
    /// both agree on them; a store we may not write gets them in memory only.
    fn view(&self) -> Result<Arc<View>> {
        Ok(self.keep_view(self.read_view()?))
    }

    /// `view` made the one lookups use.
    fn keep_view(&self, view: View) -> Arc<View> {
        let view = Arc::new(view);
        self.superseded.store(false, Ordering::Relaxed);
        *self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::clone(&view));
        view
    }

    fn read_view(&self) -> Result<View> {
        if let Some(view) = self.read_streamed_view()? {
            return Ok(view);
        }
        let uidlist = self.paths.read_uidlist()?;
        // Each file read against the uidlist's records: those it names are kept as what
        // differs from their record (see [`Files`]).
        let (files, left_out) = self.paths.scan_files(uidlist.as_ref())?;
        let journal = self.paths.dir.join(super::journal::JOURNAL).exists();
        // A file the uidlist does not know needs a sync.
        let needs_sync = journal || uidlist.is_none() || !files.others().is_empty();
        let keywords = self.paths.read_keywords()?;
        if !needs_sync && let Some(uidlist) = uidlist {
            return Ok(self.checked_view(Records::Whole(uidlist), files, keywords, left_out));
        }
        if self.store.options.read_only {
            return self.read_only_view(uidlist, files, keywords, left_out);
        }
        let synced = state::locked(&self.store, &self.paths, |locked| {
            let (scan, left_out) = self.paths.scan_reporting(locked.uidlist.len())?;
            locked.assign_new_files(&scan)?;
            Ok((locked.uidlist.clone(), scan, left_out))
        });
        match synced {
            Ok((uidlist, scan, left_out)) => {
                let keywords = self.paths.read_keywords()?;
                let files = Files::from_scan(&uidlist, &scan);
                Ok(self.checked_view(Records::Whole(uidlist), files, keywords, left_out))
            }
            Err(e) if state::is_read_only(&e) => {
                self.read_only_view(uidlist, files, keywords, left_out)
            }
            Err(e) => Err(e),
        }
    }

    /// The view of a mailbox we do not write (see [`Self::assign_read_only`]), of `files`
    /// as read against `uidlist`.
    fn read_only_view(
        &self,
        uidlist: Option<Uidlist>,
        files: Files,
        keywords: KeywordTable,
        left_out: Vec<LeftOut>,
    ) -> Result<View> {
        let from_file = uidlist.is_some() || self.store.own_uidlists.get().is_some();
        if let Some(list) = uidlist {
            // Numbered in memory (see [`Self::assign_read_only`]): only the files no record
            // names get UIDs, and only they are matched again.
            let numbered = state::assign_in_memory(&self.paths, Some(list), files.others());
            let files = files.with_others_numbered(&numbered);
            let view = self.checked_view(Records::Whole(numbered), files, keywords, left_out);
            return Ok(View { uids_from_file: from_file, ..view });
        }
        let scan = files.into_scan(uidlist.as_ref());
        let uidlist = self.assign_read_only(uidlist, &scan)?;
        let files = Files::from_scan(&uidlist, &scan);
        let view = self.checked_view(Records::Whole(uidlist), files, keywords, left_out);
        Ok(View { uids_from_file: from_file, ..view })
    }

    /// [`Self::read_view_kept_cur`] with the uidlist read line by line (see
    /// [`state::KeptMerge`]); `None` when that cannot decide (the kept files were taken:
    /// they are rewound for the whole read).
    fn read_streamed_view_kept_cur(&self, kept: &mut dyn KeptCurFiles) -> Result<Option<View>> {
        let mut merge = state::KeptMerge::new(kept);
        let read = self.paths.read_uidlist_streamed_with(&mut |position, uid, base| {
            merge.record(position, uid, base);
        })?;
        let Some(StreamedRead::Streamed(list, bases)) = read else { return Ok(None) };
        let Some(files) = merge.finish(list.len()) else { return Ok(None) };
        let Some((files, left_out)) = self.paths.scan_new_hashed(files, list.len(), &bases)? else {
            return Ok(None);
        };
        drop(bases);
        self.streamed_view(*list, files, left_out)
    }

    /// [`Self::read_view`] of a folder that needs no sync, its uidlist read line by line
    /// and its directories against the hashes of the base names: the view holds 16 bytes
    /// a message (benches/RESULTS-memory.md, Round 11). `None` when that read cannot
    /// decide (no uidlist, a journal to replay, a file no record names, a name listed
    /// twice, hashes that meet): the whole read then decides, as before.
    fn read_streamed_view(&self) -> Result<Option<View>> {
        // A file put in `new/` after the uidlist was written is, as a rule, one no record
        // names yet (a delivery): that read could not decide, and reading the uidlist line
        // by line first was in vain (a tenth of a changed re-run's CPU at 100 000
        // messages, benches/RESULTS-incremental.md Round 12). Should the file be numbered
        // after all, the whole read finds the same.
        if self.paths.has_unnumbered_new_files() {
            return Ok(None);
        }
        let Some(StreamedRead::Streamed(list, bases)) = self.paths.read_uidlist_streamed()? else {
            return Ok(None);
        };
        let Some((files, left_out)) = self.paths.scan_hashed(list.len(), &bases)? else {
            return Ok(None);
        };
        drop(bases);
        self.streamed_view(*list, files, left_out)
    }

    /// The view of a uidlist read line by line and the files found against it; `None`
    /// when a journal is there to replay (the whole read replays it).
    fn streamed_view(
        &self,
        list: super::uidlist::streamed::Streamed<File>,
        files: Files,
        left_out: Vec<LeftOut>,
    ) -> Result<Option<View>> {
        if self.paths.dir.join(super::journal::JOURNAL).exists() {
            return Ok(None);
        }
        let keywords = self.paths.read_keywords()?;
        Ok(Some(self.checked_view(Records::Streamed(list), files, keywords, left_out)))
    }

    /// The UIDs of a mailbox we do not write, without a sync: from its `dovecot-uidlist`
    /// (files it does not know numbered in memory, as Dovecot's next sync would), else
    /// from the uidlist of our own the store keeps outside ([`super::Maildir::keep_uids_in`]),
    /// else numbered anew.
    fn assign_read_only(&self, uidlist: Option<Uidlist>, scan: &Scan) -> Result<Uidlist> {
        match (&uidlist, self.store.own_uidlists.get()) {
            (None, Some(own)) => own.assign(&self.paths, scan, self.store.fsync()),
            _ => Ok(state::assign_in_memory(&self.paths, uidlist, scan)),
        }
    }

    /// The file that holds this mailbox's UIDs: its `dovecot-uidlist`, or, when it has none
    /// and the store keeps UIDs of its own ([`super::Maildir::keep_uids_in`]), that file
    /// (which exists once the mailbox was read). A change token stats it.
    pub fn uids_file(&self) -> PathBuf {
        self.own_uids_file().unwrap_or_else(|| self.paths.uidlist())
    }

    /// The uidlist of our own that holds this mailbox's UIDs, when it has no
    /// `dovecot-uidlist` and the store keeps UIDs outside ([`super::Maildir::keep_uids_in`]);
    /// it exists once the mailbox was read. Only reading the mailbox writes it.
    pub fn own_uids_file(&self) -> Option<PathBuf> {
        let own = self.store.own_uidlists.get()?;
        (!self.paths.uidlist().exists()).then(|| own.path(&self.paths))
    }

    /// The view of what was read, with every file that is not a regular file inside the
    /// store set apart: symlinks are resolved beneath the root (followed when they stay
    /// inside), anything else is left out with its reason.
    fn checked_view(
        &self,
        mut records: Records,
        files: Files,
        keywords: KeywordTable,
        mut left_out: Vec<LeftOut>,
    ) -> View {
        let tree = self.paths.tree();
        let mut unreadable = HashSet::new();
        // Records' files, then those no record names, by base name.
        let mut not_regular: Vec<(Option<usize>, FileBuf)> = files
            .not_regular_positions()
            .filter_map(|position| {
                let file =
                    records.with_record(position, |r| files.file_with_base(r.base(), position));
                Some((Some(position), file.ok().flatten().flatten()?))
            })
            .collect();
        not_regular.extend(
            files.others().iter().filter(|(_, f)| f.kind != FileKind::File).map(|(_, f)| {
                (None, FileBuf { sub: f.sub, name: f.name.to_string(), kind: f.kind })
            }),
        );
        not_regular.sort_by(|a, b| filename::base(&a.1.name).cmp(filename::base(&b.1.name)));
        for (position, file) in not_regular {
            let file = file.as_ref();
            let path = self.paths.file(&file);
            let relative = self.paths.relative(&path);
            let reason = match file.kind {
                FileKind::File => continue,
                FileKind::Symlink => match tree.stat_file(relative) {
                    // It stays inside the store: read as the file it points to.
                    Ok(_) => continue,
                    Err(refusal) if refusal.is_not_found() => {
                        if fs::symlink_metadata(&path).is_err() {
                            // Renamed or expunged since the scan.
                            unreadable.extend(position);
                            continue;
                        }
                        let target = fs::read_link(&path).unwrap_or_default();
                        LeftOutReason::Unreadable {
                            error: format!(
                                "a symlink to {}, which does not exist",
                                left_out::escape(target.as_os_str().as_encoded_bytes())
                            ),
                        }
                    }
                    Err(refusal) => match left_out::reason(refusal, relative, FileKind::File) {
                        Ok(reason) => reason,
                        Err(error) => LeftOutReason::Unreadable { error: error.to_string() },
                    },
                },
                kind => LeftOutReason::WrongKind { kind, expected: FileKind::File },
            };
            left_out.push(LeftOut { mailbox: None, path: relative.to_path_buf(), reason });
            unreadable.extend(position);
        }
        for entry in &mut left_out {
            entry.mailbox = Some(self.name.clone());
        }
        // The view finds files by record position: the index of base names is not asked
        // again (and is built again if it were).
        if let Records::Whole(uidlist) = &mut records {
            uidlist.drop_base_index();
        }
        View { records, files, keywords, unreadable, left_out, uids_from_file: true }
    }
}

#[cfg(test)]
impl Mailbox {
    /// Of the view this handle keeps: whether its uidlist was read line by line, and the
    /// bytes its records and files take on the heap (tests).
    pub(crate) fn view_bytes(&self) -> Option<(bool, usize)> {
        let view = self.cache.lock().ok()?.clone()?;
        let (streamed, records) = match &view.records {
            Records::Whole(list) => (false, list.records_bytes()),
            Records::Streamed(list) => (true, list.records_bytes()),
        };
        Some((streamed, records + view.files.held_bytes()))
    }
}

/// A message file found by [`Mailbox::locate`].
#[derive(Debug)]
pub(crate) struct Located {
    /// Its path when the mailbox was read.
    pub(crate) path: PathBuf,
    /// The directory entry's type then (a regular file, or a symlink to one in the store).
    pub(crate) kind: FileKind,
    /// Message GUID: the uidlist's `G` field, else the base file name.
    pub(crate) guid: String,
    /// `S=` of the name, else of the uidlist record.
    pub(crate) size: Option<u64>,
    /// `W=` of the name, else of the uidlist record.
    pub(crate) virtual_size: Option<u64>,
}

/// A message's GUID: the record's `G` field, else the base of its file name.
fn message_guid<'a>(record: &Record<'a>, name: &'a str) -> &'a str {
    record.ext(ext::GUID).filter(|g| !g.is_empty()).unwrap_or(filename::base(name))
}

/// `S=` (`kind` [`ext::SIZE`]) or `W=` ([`ext::VSIZE`]) from the file name, else from the
/// uidlist record (both use the same letters).
fn known_size(record: &Record<'_>, name: &str, kind: u8) -> Option<u64> {
    filename::size_field(name, kind).or_else(|| record.ext(kind).and_then(|v| v.parse().ok()))
}

/// The status of a listed message file: `fstatat` in its opened directory for a regular
/// file, resolution beneath the root for a symlink (or a file swapped for one since).
fn stat_message(
    tree: Tree<'_>,
    dirs: &[Option<OwnedFd>; 2],
    file: &FileRef<'_>,
    relative: &Path,
) -> Result<nix::sys::stat::FileStat, Refusal> {
    let dir = dirs[usize::from(file.sub == Sub::Cur)].as_ref();
    if file.kind == FileKind::File
        && let Some(dir) = dir
    {
        let status =
            beneath::lstat_at(dir, std::ffi::OsStr::new(file.name)).map_err(Refusal::Io)?;
        match FileKind::of_mode(status.st_mode) {
            FileKind::File => return Ok(status),
            FileKind::Symlink => {}
            kind => return Err(Refusal::Kind(kind)),
        }
    }
    tree.stat_file(relative)
}

/// [`virtual_size_of`] for an open file, read from its current position to the end
/// (`path` is for error messages).
pub(crate) fn virtual_size_read(file: &mut impl Read, path: &Path) -> Result<u64> {
    let mut buffer = vec![0u8; 64 * 1024];
    let (mut total, mut previous) = (0u64, 0u8);
    loop {
        let n = file.read(&mut buffer).ctx("read", path)?;
        if n == 0 {
            return Ok(total);
        }
        for &byte in &buffer[..n] {
            total += if byte == b'\n' && previous != b'\r' { 2 } else { 1 };
            previous = byte;
        }
    }
}
