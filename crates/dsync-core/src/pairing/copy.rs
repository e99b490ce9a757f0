//! Copying messages to a side that may assign its own UIDs: bodies streamed from the other
//! side into a [`MailboxWriter`], committed every `commit_interval` saves, and each save's
//! outcome (the UID it got, or why not) handed back as soon as the side confirms it, so
//! that the caller can record the pair before anything else happens.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::time::Duration;

use crate::error::{ErrorKind, StorageError};
use crate::execute::Observer;
use crate::model::{Flags, MailboxName, MessageMeta, Uid};
use crate::storage::{Delivered, MailboxWriter, MessageSink};

/// Reads the bodies of some UIDs of the origin mailbox into a sink.
pub(super) type Fetch<'a> =
    dyn FnMut(&[Uid], &mut dyn MessageSink) -> Result<(), StorageError> + 'a;

/// Hears each confirmed save: origin UID, the UID it got (`None`: stored, UID unknown).
pub(super) type Stored<'a> = dyn FnMut(&mut dyn Observer, Uid, Option<Uid>) + 'a;

/// Where copies go.
pub(super) struct Target<'a> {
    /// The written mailbox's name (reports, observer).
    pub(super) mailbox: &'a MailboxName,
    /// Its writer.
    pub(super) writer: &'a mut dyn MailboxWriter,
    /// The written storage assigns UIDs itself ([`crate::Capabilities::assigns_uids`]);
    /// otherwise saves take UIDs from `next_uid` up.
    pub(super) assigns: bool,
    /// The next UID to give a save on a storage that takes forced UIDs.
    pub(super) next_uid: Uid,
    /// Commit after this many saves.
    pub(super) commit_interval: u32,
}

/// What one copy did.
#[derive(Debug, Default)]
pub(super) struct Copied {
    /// Confirmed saves.
    pub(super) stored: u64,
    /// Bytes of the confirmed saves.
    pub(super) bytes: u64,
    /// Origin messages that were gone when fetched.
    pub(super) vanished: u64,
    /// Saves to try again later (the written side asked to slow down), with its wait.
    pub(super) later: Vec<(Uid, Option<Duration>)>,
    /// Saves the written side will never take (too big), with why.
    pub(super) refused: Vec<(Uid, StorageError)>,
}

/// Copies `saves` (origin UIDs, ascending, with the flags the copy gets) described by
/// `metas` from `fetch` into `target`. `stored` hears each confirmed save (origin UID,
/// new UID) right after the commit that confirmed it. A save the written side refuses for
/// good, or asks to retry later, is collected in [`Copied`]; any other refusal (quota
/// full, connection lost) stops the copy.
pub(super) fn copy(
    fetch: &mut Fetch<'_>,
    target: &mut Target<'_>,
    observer: &mut dyn Observer,
    saves: &[(Uid, Flags)],
    metas: &BTreeMap<Uid, &MessageMeta>,
    stored: &mut Stored<'_>,
) -> Result<Copied, Box<CopyStopped>> {
    let wanted: BTreeMap<Uid, (&MessageMeta, &Flags)> = saves
        .iter()
        .filter_map(|(uid, flags)| metas.get(uid).map(|meta| (*uid, (*meta, flags))))
        .collect();
    let uids: Vec<Uid> = wanted.keys().copied().collect();
    let mut sink = Sink {
        target,
        observer,
        wanted,
        stored,
        copied: Copied::default(),
        staged_bytes: None,
        unconfirmed: Vec::new(),
        since_commit: 0,
        written_error: None,
        seen: 0,
    };
    let fetched = (fetch)(&uids, &mut sink);
    if let Some(error) = sink.written_error.take() {
        return Err(Box::new(CopyStopped { error, written: true, copied: sink.copied }));
    }
    if let Err(error) = fetched {
        // What was saved before the origin failed is still confirmed, if it can be.
        let _ = sink.commit(Commit::All);
        return Err(Box::new(CopyStopped { error, written: false, copied: sink.copied }));
    }
    if let Err(error) = sink.commit(Commit::All) {
        return Err(Box::new(CopyStopped { error, written: true, copied: sink.copied }));
    }
    sink.copied.vanished = uids.len() as u64 - sink.seen;
    Ok(sink.copied)
}

/// A copy stopped by `error`, of the written side (`written`) or the origin.
#[derive(Debug)]
pub(super) struct CopyStopped {
    pub(super) error: StorageError,
    pub(super) written: bool,
    /// What it had confirmed before.
    pub(super) copied: Copied,
}

/// How much a commit confirms ([`Sink::commit`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Every save so far.
    All,
    /// What the written side has confirmed so far.
    Confirmed,
}

struct Sink<'t, 'a, 'm> {
    target: &'t mut Target<'a>,
    observer: &'t mut dyn Observer,
    wanted: BTreeMap<Uid, (&'m MessageMeta, &'m Flags)>,
    stored: &'t mut Stored<'t>,
    copied: Copied,
    staged_bytes: Option<u64>,
    /// Saves since the last commit: origin UID, UID asked for, bytes.
    unconfirmed: Vec<(Uid, Uid, u64)>,
    since_commit: u32,
    /// The written side failed (the origin only sees its sink refuse).
    written_error: Option<StorageError>,
    /// Origin messages delivered.
    seen: u64,
}

impl Sink<'_, '_, '_> {
    fn fail(&mut self, error: StorageError) -> StorageError {
        let reply = StorageError::new(error.kind(), "the destination refused the message");
        self.written_error = Some(error);
        reply
    }

    /// Commits and takes the outcomes of the saves since the last commit: all of them
    /// (`Commit::All`), or along the way (`Commit::Confirmed`) those the written side has
    /// confirmed so far, the rest waiting for a later commit
    /// ([`MailboxWriter::commit_confirmed`]).
    fn commit(&mut self, how: Commit) -> Result<(), StorageError> {
        if self.unconfirmed.is_empty() {
            return Ok(());
        }
        self.since_commit = 0;
        if !self.target.assigns {
            self.target.writer.commit()?;
            for (origin, asked, bytes) in std::mem::take(&mut self.unconfirmed) {
                self.copied.stored += 1;
                self.copied.bytes += bytes;
                (self.stored)(&mut *self.observer, origin, Some(asked));
            }
            return Ok(());
        }
        match how {
            Commit::All => self.target.writer.commit()?,
            Commit::Confirmed => self.target.writer.commit_confirmed()?,
        }
        let mut requested: BTreeMap<Uid, (Uid, u64)> = std::mem::take(&mut self.unconfirmed)
            .into_iter()
            .map(|(origin, asked, bytes)| (asked, (origin, bytes)))
            .collect();
        let mut stop = None;
        for assigned in self.target.writer.take_assigned() {
            let Some((origin, bytes)) = requested.remove(&assigned.requested) else { continue };
            match assigned.result {
                Ok(uid) => {
                    self.copied.stored += 1;
                    self.copied.bytes += bytes;
                    (self.stored)(&mut *self.observer, origin, uid);
                }
                Err(_) if assigned.retry_after.is_some() => {
                    self.copied.later.push((origin, assigned.retry_after));
                }
                Err(error) if error.kind() == ErrorKind::InvalidData => {
                    self.copied.refused.push((origin, error));
                }
                Err(error) => {
                    // Quota full and the like: the run stops, naming the message.
                    let kind = error.kind();
                    let mailbox = self.target.mailbox;
                    stop.get_or_insert(StorageError::with_source(
                        kind,
                        format!("saving source UID {origin} ({bytes} bytes) in {mailbox}"),
                        error,
                    ));
                }
            }
        }
        // Not answered yet: confirmed by a later commit (after a full commit, none is
        // left but those the writer never reported).
        if how == Commit::Confirmed {
            self.unconfirmed = requested
                .into_iter()
                .map(|(asked, (origin, bytes))| (origin, asked, bytes))
                .collect();
        }
        stop.map_or(Ok(()), Err)
    }

    fn finish(&mut self, uid: Uid, delivered: Delivered) -> Result<(), StorageError> {
        let Some(bytes) = self.staged_bytes.take() else {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("UID {uid} was reported without a body"),
            ));
        };
        let Some((meta, flags)) = self.wanted.remove(&uid) else { return Ok(()) };
        self.seen += 1;
        let asked = if self.target.assigns {
            uid
        } else {
            let asked = self.target.next_uid;
            self.target.next_uid = asked.next().unwrap_or(asked);
            asked
        };
        let mut saved = meta.clone();
        saved.uid = asked;
        saved.flags = flags.clone();
        delivered.fill(&mut saved);
        if let Err(error) = self.target.writer.save_finish(&saved) {
            return Err(self.fail(error));
        }
        self.unconfirmed.push((uid, asked, bytes));
        self.since_commit += 1;
        self.observer.message_saved(self.target.mailbox, uid, bytes);
        let interrupted = self.observer.interrupted();
        let how = if interrupted { Commit::All } else { Commit::Confirmed };
        if (self.since_commit >= self.target.commit_interval.max(1) || interrupted)
            && let Err(error) = self.commit(how)
        {
            return Err(self.fail(error));
        }
        if interrupted {
            return Err(self.fail(StorageError::new(ErrorKind::Interrupted, "interrupted")));
        }
        Ok(())
    }
}

impl MessageSink for Sink<'_, '_, '_> {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut counting = Counting { inner: body, count: 0, failed: None };
        match self.target.writer.save_body(&mut counting) {
            Ok(()) => {
                self.staged_bytes = Some(counting.count);
                Ok(())
            }
            Err(error) => match counting.failed.take() {
                // Reading the origin failed (its connection was lost mid-message).
                Some((kind, text)) => {
                    let error = io::Error::new(kind, text);
                    Err(StorageError::with_source(
                        ErrorKind::from_io(&error),
                        "reading the message",
                        error,
                    ))
                }
                None => Err(self.fail(error)),
            },
        }
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
}

/// Counts what the writer reads, and remembers when reading (the origin) failed.
struct Counting<'a> {
    inner: &'a mut dyn Read,
    count: u64,
    failed: Option<(io::ErrorKind, String)>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
            Err(error) => {
                self.failed = Some((error.kind(), error.to_string()));
                Err(error)
            }
        }
    }
}
