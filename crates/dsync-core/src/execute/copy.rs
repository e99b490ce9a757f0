//! Moving message bodies from one storage into a mailbox writer: streamed, in ascending
//! UID order, committed every `commit_interval` saves.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::Observer;
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{MailboxName, MessageMeta, Uid};
use crate::plan::MailboxPlan;
use crate::report::MailboxReport;
use crate::storage::{MailboxWriter, MessageSink, Storage};

/// Reads the bodies of some UIDs into a sink (a storage's `fetch`, or a spool's replay).
pub(super) type Fetch<'a> =
    dyn FnMut(&[Uid], &mut dyn MessageSink) -> Result<(), StorageError> + 'a;

/// Where bodies are read from and where they go, for error messages and reports.
pub(super) struct CopyRoute<'r, 'f> {
    /// Reads bodies.
    pub(super) from: &'r mut Fetch<'f>,
    /// The mailbox read (its name on the side read).
    pub(super) from_name: &'r MailboxName,
    /// Which side that is.
    pub(super) from_side: Side,
    /// The mailbox written (its name on the written side).
    pub(super) to_name: &'r MailboxName,
    /// Which side that is.
    pub(super) to_side: Side,
}

/// Counts of one copy.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Copied {
    /// Messages saved.
    pub(super) saved: u64,
    /// Bytes saved.
    pub(super) bytes: u64,
    /// Messages asked for that the origin no longer had.
    pub(super) vanished: u64,
}

/// Copies `saves` (origin UID → metadata carrying the final UID; ascending in both) from
/// `route.from` into `writer`.
pub(super) fn copy_messages(
    route: &mut CopyRoute<'_, '_>,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    saves: &[(Uid, &MessageMeta)],
    commit_interval: u32,
) -> Result<Copied, SyncError> {
    if saves.is_empty() {
        return Ok(Copied::default());
    }
    let wanted: BTreeMap<Uid, &MessageMeta> = saves.iter().copied().collect();
    let uids: Vec<Uid> = wanted.keys().copied().collect();
    let mut sink = CopySink {
        writer,
        observer,
        mailbox: route.to_name,
        wanted,
        commit_interval: commit_interval.max(1),
        since_commit: 0,
        staged_bytes: None,
        last_saved: None,
        copied: Copied::default(),
        destination_error: None,
    };
    let result = (route.from)(&uids, &mut sink);
    let mut copied = sink.copied;
    copied.vanished = uids.len() as u64 - copied.saved;
    if let Some(error) = sink.destination_error.take() {
        return Err(SyncError { side: route.to_side, mailbox: Some(route.to_name.clone()), error });
    }
    result.map_err(|error| SyncError {
        side: route.from_side,
        mailbox: Some(route.from_name.clone()),
        error,
    })?;
    Ok(copied)
}

/// [`copy_messages`] from mailbox `from` of the read-only source into `writer`, which
/// writes mailbox `to` of the destination (backup, import and POP3 runs).
pub(super) fn copy_from_source(
    source: &mut dyn Storage,
    from: &MailboxName,
    to: &MailboxName,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    saves: &[(Uid, &MessageMeta)],
    commit_interval: u32,
) -> Result<Copied, SyncError> {
    let mut fetch = |uids: &[Uid], sink: &mut dyn MessageSink| source.fetch(from, uids, sink);
    let mut route = CopyRoute {
        from: &mut fetch,
        from_name: from,
        from_side: Side::Source,
        to_name: to,
        to_side: Side::Destination,
    };
    copy_messages(&mut route, writer, observer, saves, commit_interval)
}

impl Copied {
    /// Puts the counts into a mailbox's report.
    pub(super) fn record_in(self, report: &mut MailboxReport) {
        report.saved = self.saved;
        report.bytes = self.bytes;
        report.vanished = self.vanished;
    }
}

/// Forwards fetched bodies into the writer, in ascending UID order.
struct CopySink<'a> {
    writer: &'a mut dyn MailboxWriter,
    observer: &'a mut dyn Observer,
    mailbox: &'a MailboxName,
    wanted: BTreeMap<Uid, &'a MessageMeta>,
    commit_interval: u32,
    since_commit: u32,
    staged_bytes: Option<u64>,
    last_saved: Option<Uid>,
    copied: Copied,
    /// The real error when the written side failed, so the run blames the right side
    /// (the reading adapter only sees that its sink refused).
    destination_error: Option<StorageError>,
}

impl CopySink<'_> {
    fn fail(&mut self, error: StorageError) -> StorageError {
        let reply = StorageError::new(error.kind(), "the destination refused the message");
        self.destination_error = Some(error);
        reply
    }

    fn finish(&mut self, uid: Uid, received: Option<i64>) -> Result<(), StorageError> {
        let Some(bytes) = self.staged_bytes.take() else {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("UID {uid} was reported without a body"),
            ));
        };
        let Some(meta) = self.wanted.remove(&uid) else {
            // Not asked for (a server answering more than requested): drop the staged body.
            return Ok(());
        };
        if self.last_saved.is_some_and(|last| uid <= last) {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("UID {uid} arrived out of ascending order"),
            ));
        }
        let saved = match (meta.received, received) {
            (None, Some(received)) => {
                self.writer.save_finish(&MessageMeta { received: Some(received), ..meta.clone() })
            }
            _ => self.writer.save_finish(meta),
        };
        if let Err(error) = saved {
            return Err(self.fail(error));
        }
        self.last_saved = Some(uid);
        self.copied.saved += 1;
        self.copied.bytes += bytes;
        self.since_commit += 1;
        self.observer.message_saved(self.mailbox, meta.uid, bytes);
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
        self.finish(uid, None)
    }

    fn done_with_received(&mut self, uid: Uid, received: Option<i64>) -> Result<(), StorageError> {
        self.finish(uid, received)
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

/// Applies a backup plan's reverts (expunges, flag changes) and commits them before the
/// long copy, so they are durable early.
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
