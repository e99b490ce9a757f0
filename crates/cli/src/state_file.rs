//! Loading and saving the sync state between runs (atomically: temp file, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use dsync_core::MailboxName;
use dsync_core::state::SyncState;
use mailstore::Permissions;

/// Where the state lives, which source it belongs to, and who may read it.
pub(crate) struct StateFile {
    path: PathBuf,
    source: String,
    /// Owner and modes for the file and missing directories (the mail's in its root).
    permissions: Permissions,
}

impl StateFile {
    pub(crate) fn new(path: PathBuf, source: String, permissions: Permissions) -> StateFile {
        StateFile { path, source, permissions }
    }

    /// Where the state lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, if there is a usable one for this source. A missing, unreadable,
    /// damaged or foreign state only costs a full run, so it is reported and ignored.
    pub(crate) fn load(&self) -> SyncState {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return self.load_fresh();
            }
            Err(error) => {
                warn(&format!(
                    "cannot read state {}: {error}; doing a full run",
                    self.path.display()
                ));
                return self.load_fresh();
            }
        };
        match SyncState::decode(&text) {
            Ok(state) if state.source.as_deref() == Some(self.source.as_str()) => state,
            Ok(_) => {
                warn(&format!(
                    "state {} belongs to another source; doing a full run",
                    self.path.display()
                ));
                self.load_fresh()
            }
            Err(error) => {
                warn(&format!(
                    "state {} is damaged ({error}); doing a full run",
                    self.path.display()
                ));
                self.load_fresh()
            }
        }
    }

    /// An empty state tagged with the source (a full run).
    pub(crate) fn load_fresh(&self) -> SyncState {
        SyncState { source: Some(self.source.clone()), ..SyncState::default() }
    }

    /// Writes the state for the next run.
    pub(crate) fn save(&self, state: &SyncState) -> std::io::Result<()> {
        let mut state = state.clone();
        state.source = Some(self.source.clone());
        write_atomically(&self.path, state.encode().as_bytes(), &self.permissions)
    }

    /// Persists that `mailbox`'s entry is gone from `state`: one line appended (and
    /// fsynced) to the saved state, which the next full save leaves out. Rewriting the
    /// whole state for each of thousands of mailboxes created again was quadratic. Without
    /// a file to append to, the whole `state` is saved.
    pub(crate) fn forget(&self, mailbox: &MailboxName, state: &SyncState) -> std::io::Result<()> {
        match std::fs::OpenOptions::new().append(true).open(&self.path) {
            Ok(mut file) => {
                file.write_all(SyncState::forget_record(mailbox).as_bytes())?;
                file.sync_data()
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => self.save(state),
            Err(error) => Err(error),
        }
    }

    /// Persists one pair record (a save an IMAP destination confirmed,
    /// [`dsync_core::state::pairs::pair_record`]): appended to the saved state, written
    /// but not fsynced (one fsync per message would cost more than the copy; a killed
    /// dsync loses nothing written, a power loss the last records, and the next run finds
    /// those messages by content). Without a file to append to, the whole `state` is saved.
    pub(crate) fn append_pair(&self, record: &str, state: &SyncState) -> std::io::Result<()> {
        match std::fs::OpenOptions::new().append(true).open(&self.path) {
            Ok(mut file) => file.write_all(record.as_bytes()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => self.save(state),
            Err(error) => Err(error),
        }
    }
}

fn warn(message: &str) {
    tracing::warn!("{message}");
}

/// Writes `bytes` to `path` through a temp file in the same directory (fsynced, renamed).
pub(crate) fn write_atomically(
    path: &Path,
    bytes: &[u8],
    permissions: &Permissions,
) -> std::io::Result<()> {
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    permissions.create_dir_all(directory).map_err(std::io::Error::other)?;
    // No leading dot: in a Maildir++ root a dot-name is a folder.
    let temp = directory.join(format!(
        "{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let result = (|| {
        // A temp file a killed run left behind is replaced, not reused with its owner.
        let _ = std::fs::remove_file(&temp);
        let mut file = permissions.create_new(&temp).map_err(std::io::Error::other)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_core::state::MailboxState;

    fn name(text: &str) -> MailboxName {
        MailboxName::split(text, Some('/')).expect("valid name")
    }

    #[test]
    fn a_forgotten_entry_is_one_appended_line_and_gone_at_the_next_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file =
            StateFile::new(dir.path().join("state"), "maildir:/src".into(), Permissions::private());
        let mut state = file.load_fresh();
        for mailbox in ["A", "B/C"] {
            state.mailboxes.insert(name(mailbox), MailboxState::default());
        }
        // Nothing saved yet: the whole state is written.
        let a = name("A");
        state.mailboxes.remove(&a);
        file.forget(&a, &state).expect("forget");
        assert_eq!(file.load(), state);
        state.mailboxes.insert(a.clone(), MailboxState::default());
        file.save(&state).expect("save");
        let saved = std::fs::read_to_string(file.path()).expect("read");

        let b_c = name("B/C");
        state.mailboxes.remove(&b_c);
        file.forget(&b_c, &state).expect("forget");
        let appended = std::fs::read_to_string(file.path()).expect("read");
        assert_eq!(appended, format!("{saved}forget B/C\n"));
        assert_eq!(file.load(), state);
        assert!(file.load().mailboxes.contains_key(&a));
    }
}
