//! A Maildir source's listings kept beside the state ([`MaildirStorage::keep_listings_in`]),
//! so that a re-run costs what changed (issue 23 item 1, Maildir sources).
//!
//! A listing `stat`s every message file (its mtime is the received date) and, when neither
//! its name nor the uidlist carries `W=`, opens it to count its CRLF size: at 100 000
//! messages most of a catch-up run's work. What it learned does not change while a file
//! keeps its name, so it is kept per folder ([`FolderListing`], about 27 bytes a message)
//! and handed back to the next listing ([`mailstore::KnownFiles`]), which then reads
//! `cur/`, `new/` and the uidlist, and only the files it has not seen. Dovecot serves
//! those facts from its index cache the same way (a file touched since keeps the date it
//! was first seen with, there as here).
//!
//! The same file answers [`Storage::changes_since`](crate::Storage::changes_since): when
//! it was written by the listing whose change token the state recorded, the messages whose
//! names differ from it (flag changes, moves to `cur/`) or that it does not hold (new), and
//! those it holds that are gone (expunged, from `cur/` or `new/`), are exactly what changed
//! since. A UID whose base name differs from the one kept (files numbered in memory that a
//! later delivery sorted before), another UIDVALIDITY, a `dovecot-keywords` changed since,
//! a file that does not read back whole: no answer, and the folder is listed whole.
//!
//! Each file's directory and the rest of its name are kept too, and `cur/`'s stamp when
//! the read vouched for it: a re-run whose `cur/` has that stamp still hands `cur/`'s
//! files to the store ([`KeptCur`]), which then reads only `new/` and the uidlist
//! (deliveries alone: the common catch-up run).
//!
//! [`MaildirStorage::keep_listings_in`]: super::MaildirStorage::keep_listings_in

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use mailstore::{FileLookup, KeptCurFile, KeptCurFiles, KnownFile, KnownFiles, MessageInfo};

use crate::state::listing::{
    FolderListing, Header, ListedFile, Place, Rest, Walk, Writer, name_hash,
};

/// Where a store's folder listings are kept.
#[derive(Debug, Clone)]
pub(crate) struct ListingFiles {
    /// Each folder's file is this path with `.<hash>` appended.
    prefix: PathBuf,
    permissions: mailstore::Permissions,
    /// False: read, never written (a dry run).
    write: bool,
    /// False: written, never read (a full run, `-f`).
    read: bool,
}

impl ListingFiles {
    pub(crate) fn new(
        prefix: PathBuf,
        permissions: mailstore::Permissions,
        write: bool,
        read: bool,
    ) -> ListingFiles {
        ListingFiles { prefix, permissions, write, read }
    }

    /// The hash that names the folder at `dir` of the store at `root`.
    pub(crate) fn folder(root: &Path, dir: &Path) -> u64 {
        name_hash(&[root.as_os_str().as_encoded_bytes(), dir.as_os_str().as_encoded_bytes()])
    }

    /// A writer of a new listing, its bytes spilled beside the listings (see
    /// [`Writer::spilling_to`]): a folder of any size costs one chunk of memory.
    /// Nothing is encoded when listings are not written (a dry run), and a directory
    /// that cannot be made means no listing (the next run lists the folder whole).
    pub(crate) fn writer(&self) -> Writer {
        if !self.write {
            return Writer::discarding();
        }
        let dir = self.prefix.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        match self.permissions.create_dir_all(&dir) {
            Ok(()) => Writer::spilling_to(dir),
            Err(_) => Writer::discarding(),
        }
    }

    fn path(&self, folder: u64) -> PathBuf {
        let mut name = self.prefix.as_os_str().to_owned();
        name.push(format!(".{folder:016x}"));
        PathBuf::from(name)
    }

    /// The folder's last listing, when there is one of ours for this very folder: checked
    /// whole here and read again as it is walked, a chunk at a time, never held (the file
    /// stays open: a run that replaces it meanwhile renames a new one over its name).
    pub(crate) fn load(&self, folder: u64) -> Option<FolderListing> {
        if !self.read {
            return None;
        }
        let file = std::fs::File::open(self.path(folder)).ok()?;
        FolderListing::read(file).filter(|listing| listing.header.folder == folder)
    }

    /// Replaces the folder's listing (a new file renamed over it: a reader finds the old
    /// one or the new one whole). Not fsynced: a file lost or torn in a crash only costs
    /// the next run a full listing. A failure to write is not the run's failure.
    pub(crate) fn save(&self, header: &Header, listing: Writer) {
        if !self.write {
            return;
        }
        let path = self.path(header.folder);
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".tmp{}", std::process::id()));
        let temp = PathBuf::from(temp);
        // The directory was made with the writer ([`Self::writer`]); a writer that could
        // not make it holds nothing, and writing it fails below.
        let written = (|| {
            let _ = std::fs::remove_file(&temp);
            let file = self.permissions.create_new(&temp).map_err(std::io::Error::other)?;
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
            listing.write_to(header, &mut out)?;
            out.flush()?;
            drop(out);
            std::fs::rename(&temp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
            // The old one would describe an older listing than the state will: gone.
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The stamp of a folder's `dovecot-keywords` (device, inode, size, modification and
/// change time): its letters name the keywords of unchanged names.
pub(crate) fn keywords_stamp(dir: &Path) -> String {
    match std::fs::metadata(dir.join("dovecot-keywords")) {
        Ok(m) => format!(
            "{}:{}:{}:{}.{}:{}.{}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ),
        Err(_) => String::new(),
    }
}

/// The record of a listed message.
pub(crate) fn listed_file(info: &MessageInfo) -> ListedFile {
    let name = &info.file_name;
    let rest = Rest::new(name.get(base(name).len()..).unwrap_or_default());
    let place = match rest {
        None => Place::Unknown,
        Some(_) if info.in_cur => Place::Cur,
        Some(_) => Place::New,
    };
    ListedFile {
        uid: info.uid,
        received: info.received,
        size: info.size,
        virtual_size: info.virtual_size,
        base: base_hash(name),
        name: name_hash(&[name.as_bytes()]),
        place,
        rest: rest.unwrap_or_default(),
    }
}

/// The base name of `name` (up to Dovecot's `:` info separator).
fn base(name: &str) -> &str {
    name.split_once(':').map_or(name, |(base, _)| base)
}

/// The hash of the base name of `name`.
fn base_hash(name: &str) -> u64 {
    name_hash(&[base(name).as_bytes()])
}

/// The place of a file now in `cur/` when `in_cur`.
fn place(in_cur: bool) -> Place {
    if in_cur { Place::Cur } else { Place::New }
}

/// `cur/`'s files as the last listing kept them, handed to the store
/// ([`mailstore::Mailbox::into_messages_knowing_cur`]) from a walk of its own.
pub(crate) struct KeptCur {
    /// The listing until the store asks for the first file (it does not when `cur/`'s
    /// stamp moved: then nothing is read).
    listing: Option<FolderListing>,
    /// The listing again, for a walk from the start ([`KeptCurFiles::rewind`]).
    again: Option<FolderListing>,
    walk: Option<Walk>,
    /// The file given last.
    given: Option<ListedFile>,
    /// A file's directory was not kept: not all of `cur/` can be given.
    unplaced: bool,
}

impl KeptCur {
    /// The files of `listing` (its own handle of the kept file: see
    /// [`FolderListing::try_clone`]).
    pub(crate) fn new(listing: FolderListing) -> KeptCur {
        let again = listing.try_clone();
        KeptCur { listing: Some(listing), again, walk: None, given: None, unplaced: false }
    }
}

impl KeptCurFiles for KeptCur {
    fn next_file(&mut self) -> Option<KeptCurFile<'_>> {
        self.given = None;
        if let Some(listing) = self.listing.take() {
            self.walk = Some(Walk::new(listing));
        }
        let walk = self.walk.as_mut()?;
        while let Some(file) = walk.next_file() {
            match file.place {
                Place::Cur => {
                    let given = self.given.insert(file);
                    let rest = given.rest.as_str();
                    return Some(KeptCurFile { uid: given.uid, base_hash: given.base, rest });
                }
                Place::New => {}
                Place::Unknown => {
                    self.unplaced = true;
                    return None;
                }
            }
        }
        None
    }

    fn base_hash(&self, base: &str) -> u64 {
        name_hash(&[base.as_bytes()])
    }

    fn intact(&self) -> bool {
        !self.unplaced && self.walk.as_ref().is_some_and(Walk::intact)
    }

    fn rewind(&mut self) -> bool {
        // One walk after the other: they share the file's offset, and each seeks to its
        // start.
        self.walk = None;
        self.given = None;
        self.unplaced = false;
        self.listing = self.again.as_ref().and_then(FolderListing::try_clone);
        self.listing.is_some()
    }
}

/// A full listing's knowledge: what the last listing learned of each UID whose base name
/// is the same.
pub(crate) struct Learned {
    previous: Option<Walk>,
}

impl Learned {
    pub(crate) fn new(previous: Option<FolderListing>) -> Learned {
        Learned { previous: previous.map(Walk::new) }
    }
}

impl KnownFiles for Learned {
    fn lookup(&mut self, uid: u32, name: &str, _in_cur: bool) -> FileLookup {
        let Some(walk) = &mut self.previous else { return FileLookup::Read };
        walk.below(uid, |_| {});
        match walk.take(uid) {
            Some(file) if file.base == base_hash(name) => {
                FileLookup::Known(KnownFile::new(file.received, file.size, file.virtual_size))
            }
            _ => FileLookup::Read,
        }
    }
}

/// [`Storage::changes_since`](crate::Storage::changes_since)'s comparison of the folder
/// with its last listing, walked along (both in ascending UID order): a file under the same
/// name is skipped (kept as it was), one renamed is listed from what was known, one not
/// known is read.
pub(crate) struct Differ {
    previous: Walk,
    /// The last listing's file of the UID looked up last, until the listing gives that
    /// message (or not: then it is gone).
    held: Option<ListedFile>,
    /// The listing now.
    pub(crate) now: Writer,
    /// UIDs of the last listing gone, as inclusive ranges.
    vanished: Vec<(u32, u32)>,
    /// A UID now names another message than before: no answer.
    pub(crate) foreign: bool,
}

impl Differ {
    /// Against `previous`, the new listing written to `now`.
    pub(crate) fn new(previous: FolderListing, now: Writer) -> Differ {
        Differ {
            previous: Walk::new(previous),
            held: None,
            now,
            vanished: Vec::new(),
            foreign: false,
        }
    }

    fn vanish(vanished: &mut Vec<(u32, u32)>, uid: u32) {
        match vanished.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(uid) => *last = uid,
            _ => vanished.push((uid, uid)),
        }
    }

    /// The last listing's file of `uid`; the ones before it (and one held for a message
    /// the listing did not give) are gone.
    fn take(&mut self, uid: u32) -> Option<ListedFile> {
        if let Some(held) = self.held.take() {
            if held.uid == uid {
                return Some(held);
            }
            Self::vanish(&mut self.vanished, held.uid);
        }
        let vanished = &mut self.vanished;
        self.previous.below(uid, |file| Self::vanish(vanished, file.uid));
        self.previous.take(uid)
    }

    /// A message the listing gave: true when it changed since (new, renamed).
    pub(crate) fn listed(&mut self, info: &MessageInfo) -> bool {
        let file = listed_file(info);
        self.now.push(&file);
        let Some(before) = self.take(info.uid) else { return true };
        if before.base != file.base {
            self.foreign = true;
        }
        before.name != file.name
    }

    /// The UIDs of the last listing that are gone, as inclusive ranges (once the listing
    /// was read to the end); `None` when the last listing did not read back whole as it
    /// was checked (changed in place since, or a read failed): its files were not all
    /// compared.
    pub(crate) fn vanished(&mut self) -> Option<Vec<(u32, u32)>> {
        let _ = self.take(u32::MAX).map(|file| Self::vanish(&mut self.vanished, file.uid));
        self.previous.intact().then(|| std::mem::take(&mut self.vanished))
    }
}

impl KnownFiles for Differ {
    fn lookup(&mut self, uid: u32, name: &str, in_cur: bool) -> FileLookup {
        let Some(before) = self.take(uid) else { return FileLookup::Read };
        // The same name in the same directory (nearly every file): the same base name
        // too, and the same rest. A file kept without its directory (a version 1 listing)
        // is listed from what was known, to be kept with it this time.
        if before.name == name_hash(&[name.as_bytes()]) && before.place == place(in_cur) {
            self.now.push(&before);
            return FileLookup::Skip;
        }
        // Held for `listed`, which compares the names.
        self.held = Some(before);
        if before.base != base_hash(name) {
            // Another message under the UID (the file may be gone before it is listed).
            self.foreign = true;
            return FileLookup::Read;
        }
        FileLookup::Known(KnownFile::new(before.received, before.size, before.virtual_size))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::*;
    use crate::adapters::maildir::MaildirStorage;
    use crate::model::{MailboxName, MessageMeta};
    use crate::storage::{MailboxChanges, Storage};

    /// A read-only Maildir source (INBOX) in a temporary directory, with its UIDs and
    /// listings kept beside it as a run with a state keeps them.
    struct Source {
        dir: tempfile::TempDir,
        root: PathBuf,
        /// Seconds added to the directories' aged mtimes, so that each change stamps
        /// them differently.
        step: u64,
        /// Delivered so far (names are never reused).
        delivered: u32,
    }

    impl Source {
        fn new(messages: u32) -> Source {
            let dir = tempfile::tempdir().expect("temp dir");
            let root = dir.path().join("source");
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(root.join(sub)).expect("maildir");
            }
            let mut source = Source { dir, root, step: 0, delivered: 0 };
            for _ in 0..messages {
                source.deliver("cur");
            }
            source.settle();
            source
        }

        /// A new message in `sub` (`cur` gets `:2,S`); its name.
        fn deliver(&mut self, sub: &str) -> String {
            self.delivered += 1;
            let n = self.delivered;
            let suffix = if sub == "cur" { ":2,S" } else { "" };
            let name = format!("{}.M{n}P1.host{suffix}", 1_600_000_000 + n);
            let body = format!("Subject: {n}\n\n{}\n", "x".repeat(n as usize % 7));
            fs::write(self.root.join(sub).join(&name), body).expect("deliver");
            name
        }

        /// The directories' mtimes put in the past (each call later than the last), as
        /// a second after the change: their stamps are trusted.
        fn settle(&mut self) {
            self.settle_only(&["cur", "new"]);
        }

        /// [`Self::settle`] of `subs` alone (a directory touched moves its stamp).
        fn settle_only(&mut self, subs: &[&str]) {
            self.step += 1;
            let then =
                SystemTime::now() - Duration::from_secs(10_000) + Duration::from_secs(self.step);
            for sub in subs {
                let dir = fs::File::open(self.root.join(sub)).expect("open dir");
                dir.set_modified(then).expect("set mtime");
            }
        }

        /// A `dovecot-uidlist` numbering every file now in `cur/` and `new/` (name order),
        /// as Dovecot's sync would.
        fn number_by_dovecot(&self) {
            let mut bases: Vec<String> = ["cur", "new"]
                .iter()
                .flat_map(|sub| self.names(sub))
                .map(|name| base(&name).to_string())
                .collect();
            bases.sort();
            let mut text =
                format!("3 V1600000000 N{} G0123456789abcdef0123456789abcdef\n", bases.len() + 1);
            for (uid, base) in bases.iter().enumerate() {
                text.push_str(&(uid + 1).to_string());
                text.push_str(" :");
                text.push_str(base);
                text.push('\n');
            }
            fs::write(self.root.join("dovecot-uidlist"), text).expect("uidlist");
        }

        fn names(&self, sub: &str) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(self.root.join(sub))
                .expect("read dir")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
            names.sort();
            names
        }

        fn path(&self, sub: &str, name: &str) -> PathBuf {
            self.root.join(sub).join(name)
        }

        /// Opened as a run with a state opens it; `listings` false: as main did.
        fn open(&self, listings: bool) -> MaildirStorage {
            let maildir = mailstore::Maildir::with_options(
                mailstore::Location::maildir(&self.root),
                mailstore::Options::default().with_read_only(true),
            );
            let private = mailstore::Permissions::private();
            maildir.keep_uids_in(self.dir.path().join("state.uidlist"), private.clone(), true);
            let mut storage = MaildirStorage::from_maildir(maildir);
            if listings {
                storage.keep_listings_in(
                    self.dir.path().join("state.listing"),
                    private,
                    true,
                    true,
                );
            }
            storage
        }

        /// The kept listing file of INBOX (there is one folder).
        fn listing_file(&self) -> PathBuf {
            let folder = ListingFiles::folder(&self.root, &self.root);
            let mut name = self.dir.path().join("state.listing").into_os_string();
            name.push(format!(".{folder:016x}"));
            PathBuf::from(name)
        }
    }

    fn inbox() -> MailboxName {
        MailboxName::inbox()
    }

    /// A whole listing: its token and messages.
    fn list(storage: &mut MaildirStorage) -> (Option<String>, Vec<MessageMeta>) {
        let listing = storage.listing(&inbox()).expect("listing");
        let token = listing.status.change_token.clone();
        let messages = listing.messages.collect::<Result<Vec<_>, _>>().expect("messages");
        (token, messages)
    }

    /// What a storage without kept listings lists (main's listing).
    fn full(source: &Source) -> Vec<MessageMeta> {
        list(&mut source.open(false)).1
    }

    /// Two re-runs from `token`, each after one delivery into `new/`: the first reads
    /// `cur/` (the listing it starts from cannot vouch for it), the second does not; both
    /// answer what a full read of the source gives.
    fn two_delivery_rounds(
        source: &mut Source,
        model: &mut BTreeMap<u32, MessageMeta>,
        mut token: String,
    ) {
        for (round, spared) in [(0, 0), (1, 1)] {
            source.deliver("new");
            source.settle_only(&["new"]);
            let mut opened = source.open(true);
            let changes = opened.changes_since(&inbox(), &token).expect("changes");
            let changes = changes.unwrap_or_else(|| panic!("an answer in round {round}"));
            assert_eq!(opened.unchanged_cur_reads_spared(), spared, "round {round}");
            assert_eq!(changes.changed.len(), 1, "round {round}");
            apply(model, &changes);
            assert_eq!(*model, by_uid(full(source)), "round {round}");
            token = changes.status.change_token.expect("token");
        }
    }

    fn by_uid(messages: Vec<MessageMeta>) -> BTreeMap<u32, MessageMeta> {
        messages.into_iter().map(|meta| (meta.uid.get(), meta)).collect()
    }

    /// `changes` applied to `model`.
    fn apply(model: &mut BTreeMap<u32, MessageMeta>, changes: &MailboxChanges) {
        for &(first, last) in &changes.vanished {
            model.retain(|&uid, _| uid < first.get() || uid > last.get());
        }
        for meta in &changes.changed {
            model.insert(meta.uid.get(), meta.clone());
        }
    }

    fn flip_flag(source: &Source, name: &str) -> String {
        let (base, flags) = name.split_once(":2,").expect("a cur/ name");
        let flags = if flags.contains('F') { flags.replace('F', "") } else { format!("F{flags}") };
        let mut flags: Vec<char> = flags.chars().collect();
        flags.sort_unstable();
        let renamed = format!("{base}:2,{}", flags.into_iter().collect::<String>());
        fs::rename(source.path("cur", name), source.path("cur", &renamed)).expect("rename");
        renamed
    }

    /// Sets a file's mtime, its name kept (`touch`).
    fn touch(path: &Path, unix: u64) {
        let file = fs::OpenOptions::new().write(true).open(path).expect("open");
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(unix)).expect("mtime");
    }

    /// Flag changes, deliveries into new/, expunges from cur/ and new/, a move from new/ to
    /// cur/: the changes since the last listing are exactly those, and applied to it give
    /// the whole listing. (Fails when a renamed file is skipped as unchanged, or a file
    /// gone is not reported vanished.)
    #[test]
    fn the_changes_since_the_last_listing_are_what_changed() {
        let mut source = Source::new(30);
        let in_new = [source.deliver("new"), source.deliver("new"), source.deliver("new")];
        source.settle();
        let (token, listed) = list(&mut source.open(true));
        let token = token.expect("a settled folder has a token");
        assert_eq!(listed, full(&source));
        let mut model = by_uid(listed);

        let cur = source.names("cur");
        for name in &cur[3..8] {
            flip_flag(&source, name);
        }
        fs::remove_file(source.path("cur", &cur[10])).expect("expunge");
        fs::remove_file(source.path("cur", &cur[11])).expect("expunge");
        fs::remove_file(source.path("new", &in_new[0])).expect("expunge from new/");
        fs::rename(
            source.path("new", &in_new[1]),
            source.path("cur", &format!("{}:2,", in_new[1])),
        )
        .expect("to cur/");
        let delivered = [source.deliver("new"), source.deliver("cur")];
        source.settle();

        let changes = source.open(true).changes_since(&inbox(), &token).expect("changes");
        let changes = changes.expect("an answer from the kept listing");
        // 5 flag changes, the move to cur/, 2 new.
        assert_eq!(changes.changed.len(), 8, "{:?}", changes.changed);
        let vanished: u32 =
            changes.vanished.iter().map(|(first, last)| last.get() - first.get() + 1).sum();
        assert_eq!(vanished, 3, "{:?}", changes.vanished);
        apply(&mut model, &changes);
        assert_eq!(model, by_uid(full(&source)));
        assert!(model.values().any(|m| m.guid.as_deref() == delivered[0].split(':').next()));

        // Asked again from the new token: nothing changed.
        let token = changes.status.change_token.expect("token");
        let again = source.open(true).changes_since(&inbox(), &token).expect("changes");
        let again = again.expect("an answer");
        assert!(again.changed.is_empty() && again.vanished.is_empty(), "{again:?}");
    }

    /// A file whose mtime changed while its name stayed keeps the received date it was
    /// first listed with, as Dovecot serves it from its index cache: the file is not
    /// `stat`ed again. A full run (the listings not read) sees the new date. (Fails when
    /// known files are read again.)
    #[test]
    fn a_file_touched_under_its_name_keeps_the_date_first_listed() {
        let mut source = Source::new(5);
        let (_, first) = list(&mut source.open(true));
        let name = source.names("cur")[2].clone();
        touch(&source.path("cur", &name), 1_000_000_000);
        source.settle();
        let (_, second) = list(&mut source.open(true));
        assert_eq!(second, first, "dates as first listed");
        assert_eq!(full(&source)[2].received, Some(1_000_000_000), "a full listing stats it");
        let mut fresh = source.open(false);
        let private = mailstore::Permissions::private();
        fresh.keep_listings_in(source.dir.path().join("state.listing"), private, true, false);
        assert_eq!(list(&mut fresh).1[2].received, Some(1_000_000_000), "not read with -f");
    }

    /// Every file's received date set apart from what was listed first, so that a kept
    /// listing used where it must not be shows.
    fn touch_all(source: &Source, unix: u64) {
        for name in source.names("cur") {
            touch(&source.path("cur", &name), unix);
        }
    }

    /// A kept listing of another folder, of another UIDVALIDITY, or with a damaged byte
    /// is not used: each file is read, and changes are not answered. (Fails without the
    /// folder, UIDVALIDITY or checksum check respectively.)
    #[test]
    fn a_listing_of_another_folder_or_uidvalidity_or_damaged_is_not_used() {
        // Another folder's: a copy of this folder elsewhere, listed there.
        let source = Source::new(6);
        let (token, _) = list(&mut source.open(true));
        let token = token.expect("token");
        let kept = source.listing_file();
        let mut copy = Source::new(0);
        fs::remove_dir_all(&copy.root).expect("empty");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&source.root)
            .arg(&copy.root)
            .status()
            .expect("cp");
        assert!(status.success());
        fs::copy(
            source.dir.path().join(format!(
                "state.uidlist.{:016x}",
                ListingFiles::folder(&source.root, &source.root)
            )),
            copy.dir.path().join(format!(
                "state.uidlist.{:016x}",
                ListingFiles::folder(&copy.root, &copy.root)
            )),
        )
        .expect("uids");
        touch_all(&copy, 1_100_000_000);
        copy.settle();
        fs::copy(&kept, copy.listing_file()).expect("foreign listing");
        let (_, listed) = list(&mut copy.open(true));
        assert!(listed.iter().all(|m| m.received == Some(1_100_000_000)), "{listed:?}");

        // Damaged: one byte of the first file's received date.
        let bytes = fs::read(&kept).expect("kept");
        let mut damaged = bytes.clone();
        // Past the magic line, folder and UIDVALIDITY: the token's length and text, the
        // keywords' (none: 0), `cur/`'s stamp's and the first UID step; then the received
        // date.
        let at = 19 + 8 + 4;
        let token_len = usize::from(bytes[at]);
        let cur_at = at + 1 + token_len + 1;
        let cur_len = usize::from(bytes[cur_at]);
        assert!(cur_len > 0 && cur_len < 128, "a stamp of cur/ (one byte's length)");
        let received = cur_at + 1 + cur_len + 1;
        damaged[received] ^= 0x01;
        fs::write(&kept, &damaged).expect("damage");
        touch_all(&source, 1_200_000_000);
        let mut opened = source.open(true);
        assert_eq!(opened.changes_since(&inbox(), &token).expect("changes"), None);
        let (_, listed) = list(&mut opened);
        assert!(listed.iter().all(|m| m.received == Some(1_200_000_000)), "{listed:?}");

        // Another UIDVALIDITY: the same files under a new uidlist of ours.
        let (token, _) = list(&mut source.open(true));
        let token = token.expect("token");
        let uids = source.dir.path().join(format!(
            "state.uidlist.{:016x}",
            ListingFiles::folder(&source.root, &source.root)
        ));
        let text = fs::read_to_string(&uids).expect("uids");
        let (header, records) = text.split_once('\n').expect("header");
        let changed = header.replacen(" V1", " V2", 1);
        assert_ne!(changed, header, "a UIDVALIDITY of the time");
        let header = changed;
        fs::write(&uids, format!("{header}\n{records}")).expect("new UIDVALIDITY");
        touch_all(&source, 1_300_000_000);
        let mut opened = source.open(true);
        assert_eq!(opened.changes_since(&inbox(), &token).expect("changes"), None);
        let (_, listed) = list(&mut opened);
        assert!(listed.iter().all(|m| m.received == Some(1_300_000_000)), "{listed:?}");
    }

    /// A listing too big for one chunk is spilled to an unnamed file beside the listings
    /// as it is made, and saved whole: what is loaded is what was pushed, and no spill
    /// file is left. (Fails when the spilled bytes are not copied into the listing.)
    #[test]
    fn a_big_listing_is_saved_through_its_spill() {
        use crate::state::listing::SPILL_AT;
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("state").join("dsync-rs-state.listing");
        let files = ListingFiles::new(prefix, mailstore::Permissions::private(), true, true);
        let header = Header {
            folder: 42,
            uid_validity: 7,
            token: "token".into(),
            keywords: String::new(),
            cur: String::new(),
            version: crate::state::listing::VERSION,
        };
        let listed: Vec<ListedFile> = (1..=30_000u32)
            .map(|uid| ListedFile {
                uid,
                received: i64::from(uid),
                size: 100,
                virtual_size: 104,
                base: name_hash(&[&uid.to_le_bytes()]),
                name: name_hash(&[b"n", &uid.to_le_bytes()]),
                place: Place::Cur,
                rest: Rest::new(":2,S").expect("short"),
            })
            .collect();
        let mut writer = files.writer();
        for file in &listed {
            writer.push(file);
        }
        files.save(&header, writer);
        let loaded = files.load(42).expect("saved");
        assert!(fs::metadata(files.path(42)).expect("file").len() > 2 * SPILL_AT as u64);
        assert_eq!(loaded.header, header);
        assert_eq!(loaded.files(), listed);
        let names: Vec<_> = fs::read_dir(dir.path().join("state"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("dsync-rs-state.listing.000000000000002a")]);
    }

    /// The last listing is read again from its file as the folder is compared with it:
    /// a file changed in place after it was checked gives no answer, though the walk
    /// ended early and passed every later message as new. (Fails when the comparison
    /// does not ask whether the walk was intact.)
    #[test]
    fn a_kept_listing_changed_in_place_during_the_comparison_gives_no_answer() {
        let source = Source::new(6);
        let _ = list(&mut source.open(true));
        let kept = source.listing_file();
        let folder = ListingFiles::folder(&source.root, &source.root);
        let files = ListingFiles::new(
            source.dir.path().join("state.listing"),
            mailstore::Permissions::private(),
            false,
            true,
        );
        let whole = fs::read(&kept).expect("kept");
        for cut in [false, true] {
            fs::write(&kept, &whole).expect("restore");
            let previous = files.load(folder).expect("checked");
            // A byte of the last file's name hash changed, or the file cut short, in place.
            let mut changed = fs::File::options().write(true).open(&kept).expect("open");
            if cut {
                changed.set_len(whole.len() as u64 / 2).expect("cut");
            } else {
                use std::io::{Seek as _, SeekFrom};
                changed.seek(SeekFrom::End(-6)).expect("seek");
                changed.write_all(&[whole[whole.len() - 6] ^ 1]).expect("write");
            }
            let mut differ = Differ::new(previous, Writer::discarding());
            assert_eq!(differ.vanished(), None, "cut: {cut}");
        }
        fs::write(&kept, &whole).expect("restore");
        let mut differ = Differ::new(files.load(folder).expect("checked"), Writer::discarding());
        assert_eq!(differ.vanished(), Some(vec![(1, 6)]), "all gone from an intact one");
    }

    /// A run interrupted after the listing was kept but before its state was saved asks
    /// with the older token next time: that is not the kept listing's, so no answer (the
    /// folder is listed whole). (Fails without the token check: the changes between
    /// the two listings would be lost.)
    #[test]
    fn after_an_interrupted_run_the_older_token_gets_no_answer() {
        let mut source = Source::new(8);
        let (first, _) = list(&mut source.open(true));
        let first = first.expect("token");
        let name = source.names("cur")[1].clone();
        flip_flag(&source, &name);
        source.deliver("new");
        source.settle();
        // The interrupted run: its answer was kept, its state never saved.
        let answered = source.open(true).changes_since(&inbox(), &first).expect("changes");
        assert!(answered.is_some_and(|c| c.changed.len() == 2));
        assert_eq!(source.open(true).changes_since(&inbox(), &first).expect("changes"), None);
    }

    /// Files Dovecot has not numbered get UIDs in memory (file-name order); a later
    /// delivery that sorts before one of them shifts it to the next UID. A UID whose base
    /// name changed is not a flag change: no answer. (Fails without the base-name check:
    /// the message would keep the other's body at the destination.)
    #[test]
    fn a_uid_now_naming_another_file_gets_no_answer() {
        let mut source = Source::new(0);
        fs::write(source.path("cur", "1600000001.M1P1.host:2,S"), "Subject: 1\n\n1\n").expect("w");
        fs::write(
            source.root.join("dovecot-uidlist"),
            "3 V1600000000 N2 G0123456789abcdef0123456789abcdef\n1 :1600000001.M1P1.host\n",
        )
        .expect("uidlist");
        fs::write(source.path("new", "1600000009.M9P1.host"), "Subject: 9\n\n9\n").expect("w");
        source.settle();
        let (token, listed) = list(&mut source.open(true));
        let token = token.expect("token");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].guid.as_deref(), Some("1600000009.M9P1.host"));
        fs::write(source.path("new", "1600000005.M5P1.host"), "Subject: 5\n\n5\n").expect("w");
        source.settle();
        let full = full(&source);
        assert_eq!(full[1].guid.as_deref(), Some("1600000005.M5P1.host"), "shifted");
        assert_eq!(source.open(true).changes_since(&inbox(), &token).expect("changes"), None);
    }

    /// A kept listing written by an older build (version 1: no directories, no stamp of
    /// `cur/`) still answers: `cur/` is read, the changes are right, and the listing
    /// written then gives `cur/` to the next deliveries-only run. (Fails when a version 1
    /// listing is not read, the folder then listed whole: no answer.)
    #[test]
    fn a_version_1_listing_reads_cur_and_the_next_one_gives_it() {
        use crate::state::listing::encode_v1;
        let mut source = Source::new(20);
        source.number_by_dovecot();
        source.settle();
        let (token, listed) = list(&mut source.open(true));
        let token = token.expect("token");
        let mut model = by_uid(listed);
        let kept = source.listing_file();
        let v2 = FolderListing::read(fs::File::open(&kept).expect("kept")).expect("v2");
        assert!(!v2.header.cur.is_empty(), "a numbered, settled cur/ is vouched for");
        let header = Header { cur: String::new(), ..v2.header.clone() };
        fs::write(&kept, encode_v1(&header, &v2.files())).expect("as an older build");

        two_delivery_rounds(&mut source, &mut model, token);
    }

    /// A numbered file moved from `new/` to `cur/` under the same name (no info part) is
    /// kept as a file of `cur/`: the next deliveries-only run, which takes `cur/` from the
    /// kept listing, still has it. (Fails when a file of the same name is skipped as
    /// unchanged whatever its directory: it would vanish.)
    #[test]
    fn a_file_moved_to_cur_under_its_name_is_kept_in_cur() {
        let mut source = Source::new(5);
        let moved = source.deliver("new");
        source.number_by_dovecot();
        source.settle();
        let (token, listed) = list(&mut source.open(true));
        let mut model = by_uid(listed);
        let token = token.expect("token");
        fs::rename(source.path("new", &moved), source.path("cur", &moved)).expect("move");
        source.settle();
        two_delivery_rounds(&mut source, &mut model, token);
    }

    #[derive(Debug, Clone)]
    enum Change {
        Deliver {
            into_cur: bool,
        },
        Flag(usize),
        ExpungeCur(usize),
        ExpungeNew(usize),
        MoveToCur(usize),
        /// Moved to `cur/` under the name it had in `new/` (no info part).
        MoveToCurKeepingName(usize),
        /// Listed whole through the kept listing rather than asked for changes.
        ListWhole,
    }

    fn change() -> impl Strategy<Value = Change> {
        // Changes to `new/` alone are the more frequent (as in a catch-up run), so that
        // batches without a change to `cur/` are common.
        prop_oneof![
            4 => Just(Change::Deliver { into_cur: false }),
            1 => Just(Change::Deliver { into_cur: true }),
            1 => any::<usize>().prop_map(Change::Flag),
            1 => any::<usize>().prop_map(Change::ExpungeCur),
            2 => any::<usize>().prop_map(Change::ExpungeNew),
            1 => any::<usize>().prop_map(Change::MoveToCur),
            1 => any::<usize>().prop_map(Change::MoveToCurKeepingName),
            1 => Just(Change::ListWhole),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Over any sequence of changes (each batch settled), the messages known from the
        /// kept listing and the changes since it equal the whole listing of a store that
        /// keeps none.
        /// Numbered by Dovecot too, the directories settled only when changed: a batch of
        /// deliveries and expunges from `new/` alone is answered with `cur/` taken from the
        /// kept listing.
        #[test]
        fn the_kept_listing_and_its_changes_are_the_whole_listing(
            batches in proptest::collection::vec(proptest::collection::vec(change(), 0..4), 1..6),
            numbered in any::<bool>(),
        ) {
            let mut source = Source::new(6);
            if numbered {
                // Two of them numbered in new/ (as Dovecot saves mail without flags).
                source.deliver("new");
                source.deliver("new");
                source.number_by_dovecot();
                source.settle();
            }
            let (token, listed) = list(&mut source.open(true));
            let mut token = token.expect("token");
            let mut model = by_uid(listed);
            for batch in batches {
                let mut whole = false;
                let mut cur_changed = false;
                for change in batch {
                    cur_changed |= matches!(
                        change,
                        Change::Deliver { into_cur: true }
                            | Change::Flag(_)
                            | Change::ExpungeCur(_)
                            | Change::MoveToCur(_)
                            | Change::MoveToCurKeepingName(_)
                    );
                    let cur = source.names("cur");
                    let new = source.names("new");
                    match change {
                        Change::Deliver { into_cur } => {
                            source.deliver(if into_cur { "cur" } else { "new" });
                        }
                        Change::Flag(n) if !cur.is_empty() => {
                            let name = &cur[n % cur.len()];
                            if name.contains(":2,") {
                                flip_flag(&source, name);
                            }
                        }
                        Change::ExpungeCur(n) if !cur.is_empty() => {
                            fs::remove_file(source.path("cur", &cur[n % cur.len()])).expect("rm");
                        }
                        Change::ExpungeNew(n) if !new.is_empty() => {
                            fs::remove_file(source.path("new", &new[n % new.len()])).expect("rm");
                        }
                        Change::MoveToCur(n) if !new.is_empty() => {
                            let name = &new[n % new.len()];
                            fs::rename(source.path("new", name), source.path("cur", &format!("{name}:2,")))
                                .expect("move");
                        }
                        Change::MoveToCurKeepingName(n) if !new.is_empty() => {
                            let name = &new[n % new.len()];
                            fs::rename(source.path("new", name), source.path("cur", name))
                                .expect("move");
                        }
                        Change::ListWhole => whole = true,
                        _ => {}
                    }
                }
                source.settle_only(if cur_changed { &["cur", "new"] } else { &["new"] });
                let mut opened = source.open(true);
                if whole {
                    let (now, listed) = list(&mut opened);
                    token = now.expect("token");
                    model = by_uid(listed);
                } else {
                    match opened.changes_since(&inbox(), &token).expect("changes") {
                        Some(changes) => {
                            apply(&mut model, &changes);
                            token = changes.status.change_token.expect("token");
                        }
                        // Files Dovecot has not numbered get UIDs in memory, which shift
                        // when one before is expunged: no answer (see
                        // `a_uid_now_naming_another_file_gets_no_answer`), the folder is
                        // listed whole.
                        None if numbered => {
                            let (now, listed) = list(&mut opened);
                            token = now.expect("token");
                            model = by_uid(listed);
                        }
                        None => panic!("an answer"),
                    }
                }
                prop_assert_eq!(&model, &by_uid(full(&source)));
            }
        }
    }
}
