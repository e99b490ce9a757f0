//! Bodies read from a storage and kept until they are written back to the same storage
//! (it cannot be read and written at once).

use std::io::{self, Read, Seek, Write};

use crate::error::{ErrorKind, StorageError};
use crate::model::{MailboxName, Uid};
use crate::storage::{MessageSink, Storage};

/// Bodies read from a storage and kept until they are written back to the same storage
/// (a message moving to a new UID on its own side: its storage cannot be read and written
/// at once). Small bodies stay in memory, larger ones go to an unlinked temporary file.
pub(crate) struct Spool {
    bodies: Vec<(Uid, SpooledBody)>,
    pending: Option<SpooledBody>,
}

enum SpooledBody {
    Memory(Vec<u8>),
    File(std::fs::File),
}

/// Bodies up to this size are spooled in memory.
const SPOOL_IN_MEMORY: usize = 1 << 20;

impl Spool {
    /// Reads `uids` of `mailbox` from `storage`.
    pub(crate) fn fill<S: Storage + ?Sized>(
        storage: &mut S,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<Spool, StorageError> {
        let mut spool = Spool { bodies: Vec::new(), pending: None };
        storage.fetch(mailbox, uids, &mut spool)?;
        Ok(spool)
    }

    /// Replays the spooled bodies into `sink`, as if fetched.
    pub(crate) fn replay(self, sink: &mut dyn MessageSink) -> Result<(), StorageError> {
        let spool_error =
            |e: io::Error| StorageError::with_source(ErrorKind::Temporary, "reading the spool", e);
        for (uid, body) in self.bodies {
            match body {
                SpooledBody::Memory(bytes) => sink.body(&mut bytes.as_slice())?,
                SpooledBody::File(mut file) => {
                    file.rewind().map_err(spool_error)?;
                    sink.body(&mut file)?;
                }
            }
            sink.done(uid)?;
        }
        Ok(())
    }
}

impl MessageSink for Spool {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let spool_error = |e: io::Error| {
            StorageError::with_source(ErrorKind::from_io(&e), "spooling a message", e)
        };
        let mut memory = Vec::new();
        body.take(SPOOL_IN_MEMORY as u64 + 1).read_to_end(&mut memory).map_err(spool_error)?;
        if memory.len() <= SPOOL_IN_MEMORY {
            self.pending = Some(SpooledBody::Memory(memory));
            return Ok(());
        }
        let mut file = temp_file().map_err(spool_error)?;
        file.write_all(&memory).map_err(spool_error)?;
        io::copy(body, &mut file).map_err(spool_error)?;
        self.pending = Some(SpooledBody::File(file));
        Ok(())
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        if let Some(body) = self.pending.take() {
            self.bodies.push((uid, body));
        }
        Ok(())
    }
}

/// A temporary file that is already unlinked (nothing to clean up, even after a kill).
/// Only ours (0600) from the start: another user who opened it before the unlink could
/// otherwise read the mail written into it later.
pub(crate) fn temp_file() -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        ".dsync-rs-spool.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
