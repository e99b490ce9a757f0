//! Moving message bodies from one storage into a mailbox writer: streamed, in ascending
//! UID order, committed every `commit_interval` saves.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};

use super::{Names, Observer};
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{MailboxName, MessageMeta, Uid};
use crate::plan::{MailboxPlan, SaveList};
use crate::report::MailboxReport;
use crate::storage::{Delivered, MailboxWriter, MessageSink, Storage};

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
    /// Saves whose body the written side already holds (`-a`), copied there instead.
    pub(super) local: Option<LocalCopies<'r>>,
}

/// Bodies the written side already holds: they are copied there, not transferred.
pub(super) struct LocalCopies<'a> {
    /// The written side's mailbox that holds them.
    pub(super) mailbox: &'a MailboxName,
    /// By the final UID of a save, the UID of its body in `mailbox`.
    pub(super) uids: BTreeMap<Uid, Uid>,
}

/// Counts of one copy.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Copied {
    /// Messages saved.
    pub(super) saved: u64,
    /// Bytes saved.
    pub(super) bytes: u64,
    /// Of `saved`, messages copied from a body the written side held already.
    pub(super) local: u64,
    /// Messages asked for that the origin no longer had.
    pub(super) vanished: u64,
    /// The counts as of the last commit: what is durable even when the caller's final
    /// commit fails.
    pub(super) committed: Committed,
}

/// Saves that a commit made durable.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Committed {
    saved: u64,
    bytes: u64,
    local: u64,
}

/// A copy stopped by `error`; `copied` says what it had committed before.
#[derive(Debug)]
pub(super) struct CopyFailed {
    pub(super) error: SyncError,
    pub(super) copied: Copied,
}

impl From<Box<CopyFailed>> for SyncError {
    fn from(failed: Box<CopyFailed>) -> SyncError {
        failed.error
    }
}

/// Copies `saves` (origin UID → metadata carrying the final UID; ascending in both) from
/// `route.from` into `writer`; saves listed in `route.local` are copied on the written
/// side, in the same order.
pub(super) fn copy_messages(
    route: &mut CopyRoute<'_, '_>,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    saves: &[(Uid, &MessageMeta)],
    commit_interval: u32,
) -> Result<Copied, Box<CopyFailed>> {
    copy_in_batches(route, writer, observer, commit_interval, |copy| copy(saves))
}

/// [`copy_messages`] of a plan's [`SaveList`], each saved under its own UID, decoded
/// `batch` messages at a time ([`crate::SyncOptions::save_batch`]: the decoded metadata,
/// ~250 bytes a message with the lookup by UID, is what a copy holds beyond the list
/// itself; each batch is one `fetch` of the source) so that the copy's memory does not
/// grow with the number of messages.
fn copy_save_list_by(
    route: &mut CopyRoute<'_, '_>,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    saves: &SaveList,
    commit_interval: u32,
    batch: usize,
) -> Result<Copied, Box<CopyFailed>> {
    copy_in_batches(route, writer, observer, commit_interval, |copy| {
        let mut messages = saves.iter();
        loop {
            let batch: Vec<MessageMeta> = messages.by_ref().take(batch.max(1)).collect();
            if batch.is_empty() {
                return Ok(());
            }
            let batch: Vec<(Uid, &MessageMeta)> = batch.iter().map(|m| (m.uid, m)).collect();
            copy(&batch)?;
        }
    })
}

/// Runs `batches`, which hands each batch of saves to the copy it is given; one writer's
/// commits count across all of them.
fn copy_in_batches(
    route: &mut CopyRoute<'_, '_>,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    commit_interval: u32,
    batches: impl FnOnce(
        &mut dyn FnMut(&[(Uid, &MessageMeta)]) -> Result<(), SyncError>,
    ) -> Result<(), SyncError>,
) -> Result<Copied, Box<CopyFailed>> {
    let mut copier = Copier {
        writer,
        observer,
        mailbox: route.to_name,
        commit_interval: commit_interval.max(1),
        since_commit: 0,
        copied: Copied::default(),
        destination_error: None,
    };
    let local = route.local.take();
    let result = batches(&mut |saves| match &local {
        None => copier.transfer(route, saves),
        Some(local) => copy_runs(&mut copier, route, local, saves),
    });
    match result {
        Ok(()) => Ok(copier.copied),
        Err(error) => Err(Box::new(CopyFailed { error, copied: copier.copied })),
    }
}

/// [`copy_messages`] with saves whose bodies the written side may hold.
fn copy_runs(
    copier: &mut Copier<'_>,
    route: &mut CopyRoute<'_, '_>,
    local: &LocalCopies<'_>,
    saves: &[(Uid, &MessageMeta)],
) -> Result<(), SyncError> {
    let (to_side, to_name) = (route.to_side, route.to_name);
    let at_destination = |error| SyncError::at(to_side, to_name)(error);
    // Runs of saves of one kind, in order: UIDs are forced and must ascend.
    for run in saves
        .chunk_by(|a, b| local.uids.contains_key(&a.1.uid) == local.uids.contains_key(&b.1.uid))
    {
        let Some(&(_, first)) = run.first() else { continue };
        if !local.uids.contains_key(&first.uid) {
            copier.transfer(route, run)?;
            continue;
        }
        for &(origin, meta) in run {
            let held = local.uids.get(&meta.uid).copied();
            let copied = match held {
                Some(uid) => copier.copy_held(local.mailbox, uid, meta).map_err(at_destination)?,
                None => false,
            };
            if !copied {
                // Gone from the all-mail mailbox since it was listed: transfer it.
                copier.transfer(route, &[(origin, meta)])?;
            }
        }
    }
    Ok(())
}

/// [`copy_messages`] from mailbox `names.source` of the read-only source into `writer`,
/// which writes mailbox `names.destination` of the destination (backup, import and POP3
/// runs).
pub(super) fn copy_from_source(
    source: &mut dyn Storage,
    names: &Names<'_>,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    saves: &[(Uid, &MessageMeta)],
    commit_interval: u32,
    local: Option<LocalCopies<'_>>,
) -> Result<Copied, Box<CopyFailed>> {
    with_source_route(source, names, local, |route| {
        copy_messages(route, writer, observer, saves, commit_interval)
    })
}

/// [`copy_from_source`] of a plan's [`SaveList`], `batch` saves at a time
/// ([`copy_save_list_by`]).
pub(super) fn copy_save_list_from_source(
    source: &mut dyn Storage,
    names: &Names<'_>,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    saves: &SaveList,
    (commit_interval, batch): (u32, usize),
    local: Option<LocalCopies<'_>>,
) -> Result<Copied, Box<CopyFailed>> {
    with_source_route(source, names, local, |route| {
        copy_save_list_by(route, writer, observer, saves, commit_interval, batch)
    })
}

/// Runs `copy` on the route from mailbox `names.source` of the source to mailbox
/// `names.destination` of the destination.
fn with_source_route<T>(
    source: &mut dyn Storage,
    names: &Names<'_>,
    local: Option<LocalCopies<'_>>,
    copy: impl FnOnce(&mut CopyRoute<'_, '_>) -> T,
) -> T {
    let (from, to) = (names.source, names.destination);
    let mut fetch = |uids: &[Uid], sink: &mut dyn MessageSink| source.fetch(from, uids, sink);
    let mut route = CopyRoute {
        from: &mut fetch,
        from_name: from,
        from_side: Side::Source,
        to_name: to,
        to_side: Side::Destination,
        local,
    };
    copy(&mut route)
}

impl Copied {
    /// Puts the counts into a mailbox's report.
    pub(super) fn record_in(self, report: &mut MailboxReport) {
        report.saved = self.saved;
        report.bytes = self.bytes;
        report.copied_locally = self.local;
        report.vanished = self.vanished;
    }

    /// Puts the counts of what was committed into a mailbox's report: after a failure,
    /// the saves since the last commit are gone (their files are removed from `tmp/`).
    pub(super) fn record_committed_in(self, report: &mut MailboxReport) {
        report.saved = self.committed.saved;
        report.bytes = self.committed.bytes;
        report.copied_locally = self.committed.local;
        report.vanished = self.vanished;
    }

    /// Everything counted is committed now (the caller's final commit succeeded).
    pub(super) fn all_committed(&mut self) {
        self.committed = Committed { saved: self.saved, bytes: self.bytes, local: self.local };
    }

    /// Adds another copy's counts.
    pub(super) fn add(&mut self, other: Copied) {
        self.saved += other.saved;
        self.bytes += other.bytes;
        self.local += other.local;
        self.vanished += other.vanished;
        self.committed.saved += other.committed.saved;
        self.committed.bytes += other.committed.bytes;
        self.committed.local += other.committed.local;
    }
}

/// The written side of a copy: saves, counts, and commits every `commit_interval` saves.
struct Copier<'a> {
    writer: &'a mut dyn MailboxWriter,
    observer: &'a mut dyn Observer,
    mailbox: &'a MailboxName,
    commit_interval: u32,
    since_commit: u32,
    copied: Copied,
    /// The real error when the written side failed, so the run blames the right side
    /// (the reading adapter only sees that its sink refused).
    destination_error: Option<StorageError>,
}

impl Copier<'_> {
    /// Transfers `saves` through the route's fetch.
    fn transfer(
        &mut self,
        route: &mut CopyRoute<'_, '_>,
        saves: &[(Uid, &MessageMeta)],
    ) -> Result<(), SyncError> {
        if saves.is_empty() {
            return Ok(());
        }
        let wanted: BTreeMap<Uid, &MessageMeta> = saves.iter().copied().collect();
        let uids: Vec<Uid> = wanted.keys().copied().collect();
        let saved_before = self.copied.saved;
        let mut sink = CopySink { copier: self, wanted, staged_bytes: None, last_saved: None };
        let result = (route.from)(&uids, &mut sink);
        if result.is_ok() && self.destination_error.is_none() {
            // Only a fetch that ended well says that what it did not deliver is gone; one
            // cut short says nothing about the rest.
            self.copied.vanished += uids.len() as u64 - (self.copied.saved - saved_before);
        }
        if let Some(error) = self.destination_error.take() {
            return Err(SyncError::at(route.to_side, route.to_name)(error));
        }
        result.map_err(SyncError::at(route.from_side, route.from_name))
    }

    /// Copies a body the written side holds as message `uid` of `from`; false when it no
    /// longer does.
    fn copy_held(
        &mut self,
        from: &MailboxName,
        uid: Uid,
        meta: &MessageMeta,
    ) -> Result<bool, StorageError> {
        if !self.writer.save_copy(from, uid, meta)? {
            return Ok(false);
        }
        self.copied.local += 1;
        self.saved(meta, 0)?;
        Ok(true)
    }

    /// Counts a finished save and commits when the interval is reached.
    fn saved(&mut self, meta: &MessageMeta, bytes: u64) -> Result<(), StorageError> {
        self.copied.saved += 1;
        self.copied.bytes += bytes;
        self.since_commit += 1;
        self.observer.message_saved(self.mailbox, meta.uid, bytes);
        let interrupted = self.observer.interrupted();
        if self.since_commit >= self.commit_interval || interrupted {
            self.writer.commit()?;
            self.since_commit = 0;
            self.copied.all_committed();
        }
        if interrupted {
            return Err(StorageError::new(ErrorKind::Interrupted, "interrupted"));
        }
        Ok(())
    }
}

/// Forwards fetched bodies into the writer, in ascending UID order.
struct CopySink<'c, 'a, 'm> {
    copier: &'c mut Copier<'a>,
    wanted: BTreeMap<Uid, &'m MessageMeta>,
    staged_bytes: Option<u64>,
    last_saved: Option<Uid>,
}

impl CopySink<'_, '_, '_> {
    fn fail(&mut self, error: StorageError) -> StorageError {
        let reply = StorageError::new(error.kind(), "the destination refused the message");
        self.copier.destination_error = Some(error);
        reply
    }

    fn finish(&mut self, uid: Uid, delivered: Delivered) -> Result<(), StorageError> {
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
        let saved = if delivered.adds_to(meta) {
            let mut completed = meta.clone();
            delivered.fill(&mut completed);
            self.copier.writer.save_finish(&completed)
        } else {
            self.copier.writer.save_finish(meta)
        };
        if let Err(error) = saved {
            return Err(self.fail(error));
        }
        self.last_saved = Some(uid);
        if let Err(error) = self.copier.saved(meta, bytes) {
            return Err(self.fail(error));
        }
        Ok(())
    }
}

impl CopySink<'_, '_, '_> {
    /// What saving a body (read through a [`CountingReader`]) came to.
    fn after_body(
        &mut self,
        saved: Result<(), StorageError>,
        count: u64,
        failed: Option<(io::ErrorKind, String)>,
    ) -> Result<(), StorageError> {
        match saved {
            Ok(()) => {
                self.staged_bytes = Some(count);
                Ok(())
            }
            Err(error) => match failed {
                // The body could not be read (the source's connection was lost
                // mid-message): the writer only passed that on, so the source is to blame.
                Some((kind, text)) => {
                    let error = io::Error::new(kind, text);
                    Err(StorageError::with_source(
                        ErrorKind::from_io(&error),
                        "reading the message from the source",
                        error,
                    ))
                }
                None => Err(self.fail(error)),
            },
        }
    }
}

impl MessageSink for CopySink<'_, '_, '_> {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut counting = CountingReader { inner: body, count: 0, failed: None };
        let saved = self.copier.writer.save_body(&mut counting);
        self.after_body(saved, counting.count, counting.failed)
    }

    fn body_buffered(&mut self, body: &mut dyn BufRead) -> Result<(), StorageError> {
        let mut counting = CountingReader { inner: body, count: 0, failed: None };
        let saved = self.copier.writer.save_body_buffered(&mut counting);
        self.after_body(saved, counting.count, counting.failed)
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        self.finish(uid, Delivered::default())
    }

    fn done_with_received(&mut self, uid: Uid, received: Option<i64>) -> Result<(), StorageError> {
        self.finish(uid, Delivered::received(received))
    }

    fn done_with_delivered(&mut self, uid: Uid, delivered: Delivered) -> Result<(), StorageError> {
        self.finish(uid, delivered)
    }

    fn wants_received(&self, uid: Uid) -> bool {
        self.wanted.get(&uid).is_some_and(|meta| meta.received.is_none())
    }
}

/// Counts what the writer reads (or consumes, read in place), and remembers when reading
/// (the source) failed.
struct CountingReader<'a, R: ?Sized> {
    inner: &'a mut R,
    count: u64,
    /// The read error, when the source failed rather than the writer.
    failed: Option<(io::ErrorKind, String)>,
}

impl<R: ?Sized> CountingReader<'_, R> {
    fn failed(&mut self, error: io::Error) -> io::Error {
        if error.kind() != io::ErrorKind::Interrupted {
            self.failed = Some((error.kind(), error.to_string()));
        }
        error
    }
}

impl<R: Read + ?Sized> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(error) => Err(self.failed(error)),
        }
    }
}

impl<R: BufRead + ?Sized> BufRead for CountingReader<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.inner.fill_buf() {
            Ok(bytes) => Ok(bytes),
            Err(error) => {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.failed = Some((error.kind(), error.to_string()));
                }
                Err(error)
            }
        }
    }

    fn consume(&mut self, amount: usize) {
        self.count += amount as u64;
        self.inner.consume(amount);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::NoObserver;
    use crate::memory::MemoryStorage;
    use crate::model::{Flags, UidValidity};
    use crate::storage::StorageMut;

    /// A source of ten messages and an empty destination mailbox.
    fn storages() -> (MemoryStorage, MemoryStorage, MailboxName, SaveList) {
        let inbox = MailboxName::inbox();
        let validity = UidValidity::new(9).expect("non-zero");
        let mut source = MemoryStorage::new();
        let mailbox = source.add_mailbox(&inbox, validity);
        for n in 1..=10 {
            let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
            let flags = Flags::from_imap_names(if n % 2 == 0 { vec!["\\Seen"] } else { vec![] });
            mailbox.append(body.as_bytes(), flags, Some(1_700_000_000 + n));
        }
        let mut destination = MemoryStorage::new();
        destination.add_mailbox(&inbox, validity);
        let saves = source.contents(&inbox).expect("listed").messages.into_iter().collect();
        (source, destination, inbox, saves)
    }

    /// A route from the source's `inbox` to the destination's.
    fn inbox_route<'r, 'f>(
        fetch: &'r mut Fetch<'f>,
        inbox: &'r MailboxName,
        local: Option<LocalCopies<'r>>,
    ) -> CopyRoute<'r, 'f> {
        let (from_side, to_side) = (Side::Source, Side::Destination);
        CopyRoute { from: fetch, from_name: inbox, from_side, to_name: inbox, to_side, local }
    }

    /// A save list is copied a batch at a time, one fetch each, and the commits count
    /// across the batches: a copy cut in its third batch of three has committed the first
    /// four saves (the interval), which a copy restarting its count per batch never would.
    #[test]
    fn a_save_list_is_copied_in_batches_committed_across_them() {
        let (mut source, mut destination, inbox, saves) = storages();
        let mut fetched: Vec<Vec<u32>> = Vec::new();
        let mut fetch = |uids: &[Uid], sink: &mut dyn MessageSink| {
            fetched.push(uids.iter().map(|uid| uid.get()).collect());
            if fetched.len() == 3 {
                return Err(StorageError::new(ErrorKind::Temporary, "connection lost"));
            }
            source.fetch(&inbox, uids, sink)
        };
        let mut route = inbox_route(&mut fetch, &inbox, None);
        let mut writer = destination.writer(&inbox).expect("writer");
        let failed = copy_save_list_by(&mut route, &mut *writer, &mut NoObserver, &saves, 4, 3)
            .expect_err("the third fetch fails");
        assert_eq!((failed.copied.saved, failed.copied.committed.saved), (6, 4));
        drop(writer);
        assert_eq!(fetched, [vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
    }

    /// Every message arrives as listed, whatever the batch size.
    #[test]
    fn a_save_list_copies_every_message_as_listed() {
        for batch in [1, 3, 10, 11] {
            let (mut source, mut destination, inbox, saves) = storages();
            let mut fetch =
                |uids: &[Uid], sink: &mut dyn MessageSink| source.fetch(&inbox, uids, sink);
            let mut route = inbox_route(&mut fetch, &inbox, None);
            let mut writer = destination.writer(&inbox).expect("writer");
            let copied =
                copy_save_list_by(&mut route, &mut *writer, &mut NoObserver, &saves, 4, batch)
                    .expect("copied");
            writer.commit().expect("commit");
            drop(writer);
            assert_eq!(copied.saved, 10);
            let listed = destination.contents(&inbox).expect("listed").messages;
            let wanted: Vec<MessageMeta> = saves.iter().collect();
            let uids_flags = |m: &[MessageMeta]| -> Vec<(Uid, Flags, Option<i64>)> {
                m.iter().map(|m| (m.uid, m.flags.clone(), m.received)).collect()
            };
            assert_eq!(uids_flags(&listed), uids_flags(&wanted), "batch {batch}");
        }
    }

    /// Saves whose bodies the written side holds (`-a`) are copied there, the others
    /// fetched, in UID order, whatever batch boundary splits a run of either kind.
    #[test]
    fn local_copies_and_transfers_alternate_across_batches() {
        let (mut source, mut destination, inbox, _) = storages();
        let all = MailboxName::new(["All"]).expect("name");
        let held = destination.add_mailbox(&all, UidValidity::new(3).expect("non-zero"));
        let mailbox = source.mailbox_mut(&inbox).expect("source INBOX");
        let mut uids = BTreeMap::new();
        for (uid, message) in &mut mailbox.messages {
            message.meta.guid = Some(format!("guid-{uid}"));
            if [3, 4, 5, 8].contains(&uid.get()) {
                let copy = held.append(&message.body, Flags::default(), None);
                held.messages.get_mut(&copy).expect("held").meta.guid = Some(format!("guid-{uid}"));
                uids.insert(*uid, copy);
            }
        }
        let saves: SaveList =
            source.contents(&inbox).expect("listed").messages.into_iter().collect();
        let mut fetched: Vec<Vec<u32>> = Vec::new();
        let mut fetch = |uids: &[Uid], sink: &mut dyn MessageSink| {
            fetched.push(uids.iter().map(|uid| uid.get()).collect());
            source.fetch(&inbox, uids, sink)
        };
        let mut route = inbox_route(&mut fetch, &inbox, Some(LocalCopies { mailbox: &all, uids }));
        let mut writer = destination.writer(&inbox).expect("writer");
        let copied = copy_save_list_by(&mut route, &mut *writer, &mut NoObserver, &saves, 3, 4)
            .expect("copied");
        writer.commit().expect("commit");
        drop(writer);
        assert_eq!((copied.saved, copied.local, copied.vanished), (10, 4, 0));
        assert_eq!(fetched, [vec![1, 2], vec![6, 7], vec![9, 10]]);
        let ours = destination.mailbox(&inbox).expect("INBOX");
        let theirs = source.mailbox(&inbox).expect("INBOX");
        let listed = |m: &crate::memory::MemoryMailbox| -> Vec<(Uid, Flags, Option<i64>, Vec<u8>)> {
            m.messages
                .values()
                .map(|m| (m.meta.uid, m.meta.flags.clone(), m.meta.received, m.body.clone()))
                .collect()
        };
        assert_eq!(listed(ours), listed(theirs));
    }
}
