//! The sinks behind the default methods of the storage traits: header hashes read through
//! [`Storage::fetch`](super::Storage::fetch), and spooled bodies saved under new UIDs.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use super::{MailboxWriter, MessageSink};
use crate::error::{ErrorKind, StorageError};
use crate::header_hash::{DEFAULT_HASHED_HEADERS, HashVersion, header_hash};
use crate::model::{MessageMeta, Uid};

/// Reads a message up to the end of its header and hashes it.
#[derive(Default)]
pub(super) struct HeaderHashSink {
    hashes: BTreeMap<Uid, String>,
    pending: Option<String>,
}

impl HeaderHashSink {
    /// The hashes read, by UID.
    pub(super) fn into_hashes(self) -> BTreeMap<Uid, String> {
        self.hashes
    }
}

impl MessageSink for HeaderHashSink {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut header = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = body.read(&mut chunk).map_err(|e| {
                StorageError::with_source(ErrorKind::Temporary, "reading a message header", e)
            })?;
            if n == 0 {
                break;
            }
            header.extend_from_slice(&chunk[..n]);
            // Stop at the end of the header (the rest is not needed) or after 1 MiB.
            if let Some(end) = memchr::memmem::find(&header, b"\r\n\r\n")
                .or_else(|| memchr::memmem::find(&header, b"\n\n"))
            {
                header.truncate(end + 2);
                break;
            }
            if header.len() > 1 << 20 {
                break;
            }
        }
        self.pending = Some(header_hash(&header, &DEFAULT_HASHED_HEADERS, HashVersion::V3));
        Ok(())
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        if let Some(hash) = self.pending.take() {
            self.hashes.insert(uid, hash);
        }
        Ok(())
    }
}

/// Saves spooled bodies under their new UIDs (the default [`StorageMut::renumber`]).
pub(super) struct RenumberSink<'a> {
    writer: &'a mut dyn MailboxWriter,
    wanted: BTreeMap<Uid, &'a MessageMeta>,
}

impl<'a> RenumberSink<'a> {
    /// Saves the message spooled under each `moves` UID as its new metadata.
    pub(super) fn new(
        writer: &'a mut dyn MailboxWriter,
        moves: &'a [(Uid, MessageMeta)],
    ) -> RenumberSink<'a> {
        let wanted = moves.iter().map(|(uid, meta)| (*uid, meta)).collect();
        RenumberSink { writer, wanted }
    }
}

impl MessageSink for RenumberSink<'_> {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        self.writer.save_body(body)
    }

    fn body_buffered(&mut self, body: &mut dyn BufRead) -> Result<(), StorageError> {
        self.writer.save_body_buffered(body)
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        match self.wanted.get(&uid) {
            Some(meta) => self.writer.save_finish(meta),
            None => Ok(()),
        }
    }
}
