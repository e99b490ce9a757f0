//! Copying messages to a side that may assign its own UIDs: bodies streamed from the other
//! side into a [`MailboxWriter`], committed every `commit_interval` saves, and each save's
//! outcome (the UID it got, or why not) handed back as soon as the side confirms it, so
//! that the caller can record the pair before anything else happens.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::time::Duration;

use crate::error::{ErrorKind, StorageError};
use crate::execute::Observer;
use crate::header_hash::{DEFAULT_HASHED_HEADERS, HashVersion, header_hash};
use crate::model::{Flags, MailboxName, MessageMeta, Uid};
use crate::storage::{Delivered, MailboxWriter, MessageSink};

/// Reads the bodies of some UIDs of the origin mailbox into a sink.
pub(super) type Fetch<'a> =
    dyn FnMut(&[Uid], &mut dyn MessageSink) -> Result<(), StorageError> + 'a;

/// Hears each confirmed save: origin UID, the UID it got (`None`: stored, UID unknown),
/// and the header hash of what was sent ([`crate::header_hash`], read on the way).
pub(super) type Stored<'a> = dyn FnMut(&mut dyn Observer, Uid, Option<Uid>, Option<&str>) + 'a;

/// A header longer than this is hashed as far as it goes (as the storages' own
/// `header_hashes` do).
const HEADER_LIMIT: usize = 1 << 20;

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
        staged_hash: None,
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
    /// The staged message's header hash.
    staged_hash: Option<String>,
    /// Saves since the last commit: origin UID, UID asked for, bytes, header hash.
    unconfirmed: Vec<(Uid, Uid, u64, Option<String>)>,
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
            for (origin, asked, bytes, hash) in std::mem::take(&mut self.unconfirmed) {
                self.copied.stored += 1;
                self.copied.bytes += bytes;
                (self.stored)(&mut *self.observer, origin, Some(asked), hash.as_deref());
            }
            return Ok(());
        }
        match how {
            Commit::All => self.target.writer.commit()?,
            Commit::Confirmed => self.target.writer.commit_confirmed()?,
        }
        let mut requested: BTreeMap<Uid, (Uid, u64, Option<String>)> =
            std::mem::take(&mut self.unconfirmed)
                .into_iter()
                .map(|(origin, asked, bytes, hash)| (asked, (origin, bytes, hash)))
                .collect();
        let mut stop = None;
        for assigned in self.target.writer.take_assigned() {
            let Some((origin, bytes, hash)) = requested.remove(&assigned.requested) else {
                continue;
            };
            match assigned.result {
                Ok(uid) => {
                    self.copied.stored += 1;
                    self.copied.bytes += bytes;
                    (self.stored)(&mut *self.observer, origin, uid, hash.as_deref());
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
                .map(|(asked, (origin, bytes, hash))| (origin, asked, bytes, hash))
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
        let hash = self.staged_hash.take();
        self.unconfirmed.push((uid, asked, bytes, hash));
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
        let mut counting = Counting {
            inner: body,
            count: 0,
            failed: None,
            header: Vec::new(),
            header_done: false,
        };
        match self.target.writer.save_body(&mut counting) {
            Ok(()) => {
                self.staged_bytes = Some(counting.count);
                // What this save stores, for finding it again when another folder wants it.
                self.staged_hash =
                    Some(header_hash(&counting.header, &DEFAULT_HASHED_HEADERS, HashVersion::V3));
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

/// Counts what the writer reads, keeps the message's header on the way (until the empty
/// line, or [`HEADER_LIMIT`]), and remembers when reading (the origin) failed.
struct Counting<'a> {
    inner: &'a mut dyn Read,
    count: u64,
    failed: Option<(io::ErrorKind, String)>,
    /// The header read so far.
    header: Vec<u8>,
    /// The header is complete (or as long as it is kept).
    header_done: bool,
}

impl Counting<'_> {
    fn keep_header(&mut self, bytes: &[u8]) {
        if self.header_done {
            return;
        }
        // From a little before, so that an empty line split across reads is found.
        let from = self.header.len().saturating_sub(3);
        self.header.extend_from_slice(bytes);
        let window = &self.header[from..];
        let end = memchr::memmem::find(window, b"\r\n\r\n")
            .or_else(|| memchr::memmem::find(window, b"\n\n"));
        if let Some(end) = end {
            self.header.truncate(from + end + 2);
            self.header_done = true;
        } else if self.header.len() > HEADER_LIMIT {
            self.header_done = true;
        }
    }
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                self.keep_header(&buf[..n]);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `data` in reads of at most `step` bytes.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_header_kept_on_the_way_hashes_as_the_whole_message_does() {
        let messages: [&[u8]; 3] = [
            b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <a@x>\r\nSubject: s\r\n\r\nDate: no\r\n",
            b"Message-ID: <b@x>\nDate: Tue, 2 Jan 2024 10:00:00 +0000\n\nMessage-ID: <c@x>\n",
            b"Subject: no empty line\r\nMessage-ID: <d@x>\r\n",
        ];
        for message in messages {
            let whole = header_hash(message, &DEFAULT_HASHED_HEADERS, HashVersion::V3);
            for step in [1, 2, 3, 5, 64] {
                let mut inner = Trickle { data: message, step };
                let mut counting = Counting {
                    inner: &mut inner,
                    count: 0,
                    failed: None,
                    header: Vec::new(),
                    header_done: false,
                };
                io::copy(&mut counting, &mut io::sink()).expect("read");
                assert_eq!(counting.count, message.len() as u64);
                let kept = header_hash(&counting.header, &DEFAULT_HASHED_HEADERS, HashVersion::V3);
                assert_eq!(
                    kept,
                    whole,
                    "{step}-byte reads of {:?}",
                    String::from_utf8_lossy(message)
                );
            }
        }
    }
}
