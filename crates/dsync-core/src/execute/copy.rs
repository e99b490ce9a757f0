//! Moving message bodies from one side into a destination writer.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::{Observer, SyncOptions, at};
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{MailboxName, MessageMeta, Uid};
use crate::plan::MailboxPlan;
use crate::report::MailboxReport;
use crate::storage::{MailboxWriter, MessageSink, Storage};

pub(super) fn copy_messages(
    options: &SyncOptions,
    source: &mut dyn Storage,
    source_name: &MailboxName,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    plan: &MailboxPlan,
    report: &mut MailboxReport,
) -> Result<(), SyncError> {
    if plan.save.is_empty() {
        return Ok(());
    }
    let wanted: BTreeMap<Uid, &MessageMeta> = plan.save.iter().map(|m| (m.uid, m)).collect();
    let uids: Vec<Uid> = wanted.keys().copied().collect();
    let mut sink = CopySink {
        writer,
        observer,
        mailbox: &plan.mailbox,
        wanted,
        commit_interval: options.commit_interval.max(1),
        since_commit: 0,
        staged_bytes: None,
        last_saved: None,
        saved: 0,
        bytes: 0,
        destination_error: None,
    };
    let result = source.fetch(source_name, &uids, &mut sink);
    report.saved = sink.saved;
    report.bytes = sink.bytes;
    report.vanished = uids.len() as u64 - sink.saved;
    if let Some(error) = sink.destination_error.take() {
        return Err(SyncError {
            side: Side::Destination,
            mailbox: Some(plan.mailbox.clone()),
            error,
        });
    }
    result.map_err(at(Side::Source, Some(source_name)))
}

/// Forwards fetched bodies into the destination writer, in ascending UID order.
struct CopySink<'a> {
    writer: &'a mut dyn MailboxWriter,
    observer: &'a mut dyn Observer,
    mailbox: &'a MailboxName,
    wanted: BTreeMap<Uid, &'a MessageMeta>,
    commit_interval: u32,
    since_commit: u32,
    staged_bytes: Option<u64>,
    last_saved: Option<Uid>,
    saved: u64,
    bytes: u64,
    /// The real error when the destination failed, so the run blames the right side
    /// (the source adapter only sees that its sink refused).
    destination_error: Option<StorageError>,
}

impl CopySink<'_> {
    fn fail(&mut self, error: StorageError) -> StorageError {
        let reply = StorageError::new(error.kind(), "destination refused the message");
        self.destination_error = Some(error);
        reply
    }

    fn finish(&mut self, uid: Uid) -> Result<(), StorageError> {
        let Some(bytes) = self.staged_bytes.take() else {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("source reported UID {uid} without a body"),
            ));
        };
        let Some(meta) = self.wanted.remove(&uid) else {
            // Not asked for (a server answering more than requested): drop the staged body.
            return Ok(());
        };
        if self.last_saved.is_some_and(|last| uid <= last) {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("source returned UID {uid} out of ascending order"),
            ));
        }
        if let Err(error) = self.writer.save_finish(meta) {
            return Err(self.fail(error));
        }
        self.last_saved = Some(uid);
        self.saved += 1;
        self.bytes += bytes;
        self.since_commit += 1;
        self.observer.message_saved(self.mailbox, uid, bytes);
        if self.since_commit >= self.commit_interval {
            if let Err(error) = self.writer.commit() {
                return Err(self.fail(error));
            }
            self.since_commit = 0;
        }
        Ok(())
    }
}

impl MessageSink for CopySink<'_> {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut counting = CountingReader { inner: body, count: 0 };
        match self.writer.save_body(&mut counting) {
            Ok(()) => {
                self.staged_bytes = Some(counting.count);
                Ok(())
            }
            Err(error) => Err(self.fail(error)),
        }
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        self.finish(uid)
    }
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

pub(super) fn apply_reverts(
    writer: &mut dyn MailboxWriter,
    plan: &MailboxPlan,
    report: &mut MailboxReport,
) -> Result<(), StorageError> {
    if !plan.expunge.is_empty() {
        writer.expunge(&plan.expunge)?;
        report.expunged = plan.expunge.len() as u64;
    }
    for (uid, flags) in &plan.set_flags {
        writer.set_flags(*uid, flags)?;
        report.flags_changed += 1;
    }
    if !plan.expunge.is_empty() || !plan.set_flags.is_empty() {
        writer.commit()?;
    }
    Ok(())
}
