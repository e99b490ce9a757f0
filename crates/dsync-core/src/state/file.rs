//! [`StateFile`]: a [`SyncState`] kept in a file between runs, written atomically (temp
//! file, fsync, rename), tagged with the source it belongs to and checked against it on
//! load, so a state made for one account is never applied to another.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::stored::StoredText;
use super::{Sink, StateError, SyncState};
use crate::error::{ErrorKind, StorageError};
use crate::model::MailboxName;

/// Where a [`SyncState`] lives between runs, and which source it belongs to.
///
/// ```no_run
/// use dsync_core::state::StateFile;
///
/// let file = StateFile::new("/var/lib/backup/alice.state", "imap://alice@mail.example.com");
/// // A missing file is a fresh state; a damaged or foreign one costs a full run.
/// let state = file.load().unwrap_or_else(|error| {
///     eprintln!("{error}; doing a full run");
///     file.fresh()
/// });
/// // … run with `SyncOptions::state(Some(state))`, save at each `Observer::checkpoint`
/// // and once more from the report:
/// file.save(&state)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    source: String,
    /// Owner and modes of the file and of the directories created for it (`None`: only
    /// the running user's, 0600 and 0700).
    #[cfg(feature = "maildir")]
    permissions: Option<mailstore::Permissions>,
}

/// Why a saved state was not loaded. Each only costs a full run: callers usually report it
/// and go on with [`StateFile::fresh`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// The file exists but cannot be read.
    #[error("cannot read state {}: {source}", path.display())]
    Unreadable {
        /// The state file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a state this version can read.
    #[error("state {} is damaged ({source})", path.display())]
    Damaged {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        source: StateError,
    },
    /// The state was written for another source (or for none).
    #[error("state {} belongs to another source ({})", path.display(), found.as_deref().unwrap_or("none"))]
    OtherSource {
        /// The state file.
        path: PathBuf,
        /// The source it names.
        found: Option<String>,
    },
}

impl StateFile {
    /// The state at `path` for the source identified by `source` (any stable text that
    /// names the account, e.g. `imap://alice@mail.example.com`; never a password).
    pub fn new(path: impl Into<PathBuf>, source: impl Into<String>) -> StateFile {
        StateFile {
            path: path.into(),
            source: source.into(),
            #[cfg(feature = "maildir")]
            permissions: None,
        }
    }

    /// Creates the file and its missing directories with `permissions` (a Maildir's, from
    /// [`crate::adapters::maildir::MaildirStorage::permissions`], to keep the state beside
    /// the mail it describes and owned like it).
    #[cfg(feature = "maildir")]
    #[cfg_attr(docsrs, doc(cfg(feature = "maildir")))]
    #[must_use]
    pub fn with_permissions(mut self, permissions: mailstore::Permissions) -> StateFile {
        self.permissions = Some(permissions);
        self
    }

    /// Where the state lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The source the state belongs to.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The saved state: a [`fresh`](Self::fresh) one if there is no file yet, an error if
    /// the file cannot be read, is damaged, or belongs to another source.
    ///
    /// The whole file is read and checked as [`SyncState::decode`] checks a text, but each
    /// mailbox's message lines stay in the file, which is kept open: a run reads them
    /// again when it plans the mailbox ([`BaseFlags::read`](super::BaseFlags::read)), and
    /// [`save`](Self::save) copies those of mailboxes it did not change. Should the file
    /// no longer hold them by then (changed by something else since), the mailbox is done
    /// as without a saved state, and left out of the next save.
    pub fn load(&self) -> Result<SyncState, StateFileError> {
        let unreadable = |source| StateFileError::Unreadable { path: self.path.clone(), source };
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(self.fresh()),
            Err(source) => return Err(unreadable(source)),
        };
        let reader = file.try_clone().map_err(unreadable)?;
        let text = Arc::new(StoredText::File(file));
        let decoded =
            super::decode::decode_stored(text, &mut BufReader::with_capacity(64 * 1024, reader))
                .map_err(unreadable)?;
        let state = decoded
            .map_err(|source| StateFileError::Damaged { path: self.path.clone(), source })?;
        if state.source.as_deref() == Some(self.source.as_str()) {
            Ok(state)
        } else {
            Err(StateFileError::OtherSource { path: self.path.clone(), found: state.source })
        }
    }

    /// An empty state tagged with the source (a full run).
    pub fn fresh(&self) -> SyncState {
        SyncState { source: Some(self.source.clone()), ..SyncState::default() }
    }

    /// Writes `state`, tagged with this file's source, for the next run: the old file stays
    /// whole until the new one is on disk.
    ///
    /// Written as it is encoded, through a bounded buffer: the message lines of mailboxes
    /// whose records are still in the file they were loaded from are copied from it as they
    /// are (they are what the encoder writes). A mailbox whose records that file no longer
    /// holds as loaded is left out (its next run is a full one).
    pub fn save(&self, state: &SyncState) -> io::Result<()> {
        self.write_atomically_with(&mut |file| {
            let mut out =
                FileSink { writer: BufWriter::with_capacity(64 * 1024, file), written: 0 };
            state.write_to(Some(&self.source), &mut out)?;
            out.writer.flush()
        })
    }

    /// Writes `bytes` to this file's path the way the state is written (a temp file in the
    /// same directory, fsynced, renamed; this file's permissions): for a companion file
    /// kept beside the state, such as the Sieve scripts' base.
    pub fn write_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_atomically(bytes)
    }

    /// Persists that `mailbox`'s entry is gone from `state` (what
    /// [`Observer::forget`](crate::Observer::forget) reports): one line appended (and
    /// fsynced) to the saved state, which the next full save leaves out, rather than the
    /// whole state again for each of thousands of mailboxes. Without a file to append to,
    /// the whole `state` is saved.
    pub fn forget(&self, mailbox: &MailboxName, state: &SyncState) -> io::Result<()> {
        match OpenOptions::new().append(true).open(&self.path) {
            Ok(mut file) => {
                file.write_all(SyncState::forget_record(mailbox).as_bytes())?;
                file.sync_data()
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => self.save(state),
            Err(error) => Err(error),
        }
    }

    /// Persists one pair record (a save an IMAP destination confirmed, what
    /// [`Observer::paired`](crate::Observer::paired) reports): appended to the saved
    /// state, written but not fsynced (one fsync per message would cost more than the
    /// copy; a killed process loses nothing written, a power loss the last records, and
    /// the next run finds those messages by content). Without a file to append to, the
    /// whole `state` is saved.
    pub fn append_pair(&self, record: &str, state: &SyncState) -> io::Result<()> {
        match OpenOptions::new().append(true).open(&self.path) {
            Ok(mut file) => file.write_all(record.as_bytes()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => self.save(state),
            Err(error) => Err(error),
        }
    }

    /// [`save`](Self::save) for an [`Observer::checkpoint`](crate::Observer::checkpoint):
    /// a failure stops the run.
    pub fn checkpoint(&self, state: &SyncState) -> Result<(), StorageError> {
        self.save(state).map_err(|error| self.storage_error(error))
    }

    /// [`forget`](Self::forget) for an [`Observer::forget`](crate::Observer::forget): a
    /// failure stops the run.
    pub fn checkpoint_forget(
        &self,
        mailbox: &MailboxName,
        state: &SyncState,
    ) -> Result<(), StorageError> {
        self.forget(mailbox, state).map_err(|error| self.storage_error(error))
    }

    fn storage_error(&self, error: io::Error) -> StorageError {
        let message = format!("cannot save the sync state to {}", self.path.display());
        StorageError::with_source(ErrorKind::from_io(&error), message, error)
    }

    // `self` carries the store's permissions only with the `maildir` feature.
    #[cfg_attr(not(feature = "maildir"), allow(clippy::unused_self))]
    fn create_dir_all(&self, directory: &Path) -> io::Result<()> {
        #[cfg(feature = "maildir")]
        if let Some(permissions) = &self.permissions {
            return permissions.create_dir_all(directory).map_err(io::Error::other);
        }
        DirBuilder::new().recursive(true).mode(0o700).create(directory)
    }

    // `self` carries the store's permissions only with the `maildir` feature.
    #[cfg_attr(not(feature = "maildir"), allow(clippy::unused_self))]
    fn create_new(&self, path: &Path) -> io::Result<File> {
        #[cfg(feature = "maildir")]
        if let Some(permissions) = &self.permissions {
            return permissions.create_new(path).map_err(io::Error::other);
        }
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
    }

    fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_atomically_with(&mut |file| file.write_all(bytes))
    }

    /// Has `write` fill a new file, then puts it in this file's place.
    fn write_atomically_with(
        &self,
        write: &mut dyn FnMut(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let path = &self.path;
        let directory =
            path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        self.create_dir_all(directory)?;
        // No leading dot: in a Maildir++ root a dot-name is a folder.
        let temp = directory.join(format!(
            "{}.tmp{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
            std::process::id()
        ));
        let result = (|| {
            // A temp file a killed run left behind is replaced, not reused with its owner.
            let _ = std::fs::remove_file(&temp);
            let mut file = self.create_new(&temp)?;
            write(&mut file)?;
            file.sync_all()?;
            std::fs::rename(&temp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }
}

/// A state written to a file through a buffer, counting what it wrote.
struct FileSink<'a> {
    writer: BufWriter<&'a mut File>,
    written: u64,
}

impl Write for FileSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.writer.write(bytes)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Sink for FileSink<'_> {
    fn position(&self) -> u64 {
        self.written
    }

    fn rollback(&mut self, position: u64) -> io::Result<()> {
        self.writer.flush()?;
        let file = self.writer.get_mut();
        file.set_len(position)?;
        file.seek(SeekFrom::Start(position))?;
        self.written = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MailboxState;

    fn name(text: &str) -> MailboxName {
        MailboxName::split(text, Some('/')).expect("valid name")
    }

    #[test]
    fn a_forgotten_entry_is_one_appended_line_and_gone_at_the_next_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = StateFile::new(dir.path().join("state"), "maildir:/src");
        let mut state = file.fresh();
        for mailbox in ["A", "B/C"] {
            state.mailboxes.insert(name(mailbox), MailboxState::default());
        }
        // Nothing saved yet: the whole state is written.
        let a = name("A");
        state.mailboxes.remove(&a);
        file.forget(&a, &state).expect("forget");
        assert_eq!(file.load().expect("load"), state);
        state.mailboxes.insert(a.clone(), MailboxState::default());
        file.save(&state).expect("save");
        let saved = std::fs::read_to_string(file.path()).expect("read");

        let b_c = name("B/C");
        state.mailboxes.remove(&b_c);
        file.forget(&b_c, &state).expect("forget");
        let appended = std::fs::read_to_string(file.path()).expect("read");
        assert_eq!(appended, format!("{saved}forget B/C\n"));
        assert_eq!(file.load().expect("load"), state);
        assert!(file.load().expect("load").mailboxes.contains_key(&a));
    }

    #[test]
    fn a_state_is_tagged_private_and_refused_for_another_source_or_when_damaged() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("deep/er/state");
        let file = StateFile::new(&path, "imap://alice@one");
        assert_eq!(file.load().expect("missing is fresh"), file.fresh());
        let mut state = SyncState::default();
        state.mailboxes.insert(name("A"), MailboxState::default());
        file.save(&state).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = file.load().expect("load");
        assert_eq!(loaded.source.as_deref(), Some("imap://alice@one"));
        assert!(loaded.mailboxes.contains_key(&name("A")));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, ["state"], "no temp file left behind");

        let other = StateFile::new(&path, "imap://bob@one");
        assert!(matches!(other.load(), Err(StateFileError::OtherSource { .. })));
        std::fs::write(&path, "not a state\n").expect("damage");
        assert!(matches!(file.load(), Err(StateFileError::Damaged { .. })));
    }

    /// A state of `mailboxes`, each with `messages` records.
    fn big_state(file: &StateFile, mailboxes: &[&str], messages: u32) -> SyncState {
        use crate::model::{Flags, Uid};
        use crate::state::MergeBase;
        let mut state = file.fresh();
        for mailbox in mailboxes {
            let flags = (1..=messages)
                .map(|uid| {
                    let names: &[&str] = if uid % 3 == 0 { &["\\Seen", "$Junk"] } else { &[] };
                    (
                        Uid::new(uid).expect("non-zero"),
                        Flags::from_imap_names(names.iter().copied()),
                    )
                })
                .collect();
            let base = MergeBase { uid_validity: 7, last_common_uid: messages, flags };
            let entry = MailboxState { base, source_token: Some("t".into()), ..Default::default() };
            state.mailboxes.insert(name(mailbox), entry);
        }
        state
    }

    /// Loading keeps each mailbox's message lines in the file (nothing per message in
    /// memory); saving copies them for the mailboxes a run left alone, and the file is
    /// what the encoder writes for the same state.
    #[test]
    fn a_loaded_state_keeps_its_message_lines_in_the_file_and_saves_them_as_they_are() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = StateFile::new(dir.path().join("state"), "maildir:/src");
        let state = big_state(&file, &["A", "B/C"], 1000);
        file.save(&state).expect("save");
        assert_eq!(std::fs::read_to_string(file.path()).expect("read"), state.encode());

        let mut loaded = file.load().expect("load");
        for entry in loaded.mailboxes.values() {
            assert!(entry.base.flags.decoded().is_none(), "records decoded at load");
            assert_eq!(entry.base.flags.len(), 1000);
        }
        assert_eq!(loaded, state);
        // A run changes B/C (its records are read and replaced) and leaves A alone.
        let b_c = name("B/C");
        let entry = loaded.mailboxes.get_mut(&b_c).expect("entry");
        let mut records = entry.base.flags.read().expect("readable").into_owned();
        records.retain(|uid, _| uid.get() % 2 == 0);
        entry.base.flags = records.into();
        let mut expected = state.clone();
        expected.mailboxes.get_mut(&b_c).expect("entry").base.flags =
            loaded.mailboxes[&b_c].base.flags.clone();
        // Saved twice: the second save copies A's lines from the file the first replaced.
        for _ in 0..2 {
            file.save(&loaded).expect("save");
            let written = std::fs::read_to_string(file.path()).expect("read");
            assert_eq!(written, expected.encode());
        }
        assert!(loaded.mailboxes[&name("A")].base.flags.decoded().is_none());
        assert_eq!(file.load().expect("load"), expected);
    }

    /// Message lines that change in the file after it was loaded (someone else wrote into
    /// it) are never used: reading them fails, so the run does that mailbox as without a
    /// state, and a save leaves the mailbox out (a full run of it next time).
    #[test]
    fn message_lines_changed_under_the_run_cost_a_full_run_of_their_mailbox() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = StateFile::new(dir.path().join("state"), "maildir:/src");
        let state = big_state(&file, &["A", "B"], 100);
        file.save(&state).expect("save");
        let loaded = file.load().expect("load");
        // B's third line `3 S $Junk` becomes `3 F $Junk`, in place.
        let text = std::fs::read_to_string(file.path()).expect("read");
        let at = text.find("mailbox B ").and_then(|b| text[b..].find("\n3 S").map(|at| b + at + 3));
        let at = at.expect("B's third line") as u64;
        let writer = OpenOptions::new().write(true).open(file.path()).expect("open");
        writer.write_all_at(b"F", at).expect("write");
        drop(writer);

        let b = &loaded.mailboxes[&name("B")].base;
        assert!(b.flags.read().is_err(), "changed lines were used");
        // Read one at a time, the records end with the error (the check is of the whole
        // section, so it comes last); A's stream as saved.
        let last = b.flags.records().last().expect("records");
        assert!(last.is_err_and(|error| error.reason.contains("changed")));
        let a = loaded.mailboxes[&name("A")].base.flags.records();
        assert_eq!(a.collect::<Result<Vec<_>, _>>().expect("reads").len(), 100);
        assert!(b.read().is_err());
        assert!(loaded.mailboxes[&name("A")].base.flags.read().is_ok());
        assert_ne!(loaded, state);
        file.save(&loaded).expect("save");
        let mut expected = state;
        expected.mailboxes.remove(&name("B"));
        assert_eq!(std::fs::read_to_string(file.path()).expect("read"), expected.encode());
        assert_eq!(file.load().expect("load"), expected);
    }
}
