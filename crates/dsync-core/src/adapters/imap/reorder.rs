//! Bodies to the engine in ascending UID order, whatever order the server answers in.
//!
//! RFC 3501 sets no order for the responses to `UID FETCH` (servers answer in descending
//! order, Dovecot interleaves pipelined commands), but the engine saves messages under
//! their forced UIDs, which must ascend. A body whose UID is the next one wanted (the
//! server sent its UID before it, as Dovecot does) streams straight through; any other is
//! held (in memory while small, else in an unlinked temporary file) until the bodies
//! before it have come or the answer is complete. Messages asked for that the server
//! does not send (expunged meanwhile) are then simply missing, as before.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Read, Seek, Write};

use imapc::FetchHandler;
use imapc::proto::{BodyStart, Fetch};

use super::super::HeaderTap;
use crate::message_date::received_date;
use crate::model::Uid;
use crate::storage::MessageSink;

/// Bodies held in memory at most, in all (beyond it they go to temporary files).
const HELD_IN_MEMORY: usize = 16 << 20;
/// One body is held in memory up to this size.
const ONE_IN_MEMORY: usize = 1 << 20;

/// A body that arrived before its turn.
struct Held {
    body: HeldBody,
    received: Option<i64>,
}

enum HeldBody {
    Memory(Vec<u8>),
    File(std::fs::File),
}

/// What the body read last became, until its FETCH response says whose it was.
enum Pending {
    /// Streamed to the sink: its UID was the next one wanted.
    Delivered { uid: Uid, received: Option<i64> },
    /// Kept until its turn.
    Held(Held),
}

/// Puts the answers to one `UID FETCH` of `wanted` (ascending) in ascending order.
pub(super) struct Reorder<'a> {
    sink: &'a mut dyn MessageSink,
    /// UIDs asked for whose body has not been handed on.
    wanted: BTreeSet<Uid>,
    held: BTreeMap<Uid, Held>,
    pending: Option<Pending>,
    in_memory: usize,
}

impl<'a> Reorder<'a> {
    pub(super) fn new(sink: &'a mut dyn MessageSink, wanted: &[Uid]) -> Reorder<'a> {
        Reorder {
            sink,
            wanted: wanted.iter().copied().collect(),
            held: BTreeMap::new(),
            pending: None,
            in_memory: 0,
        }
    }

    /// The answer is complete: what is still held goes on, ascending (the UIDs before it
    /// were not sent).
    pub(super) fn finish(mut self) -> io::Result<()> {
        for (uid, held) in std::mem::take(&mut self.held) {
            self.deliver(uid, held)?;
        }
        Ok(())
    }

    fn deliver(&mut self, uid: Uid, held: Held) -> io::Result<()> {
        match held.body {
            HeldBody::Memory(bytes) => {
                self.in_memory -= bytes.len();
                self.sink.body(&mut bytes.as_slice()).map_err(io::Error::other)?;
            }
            HeldBody::File(mut file) => {
                file.rewind()?;
                self.sink.body(&mut file).map_err(io::Error::other)?;
            }
        }
        self.sink.done_with_received(uid, held.received).map_err(io::Error::other)?;
        self.wanted.remove(&uid);
        Ok(())
    }

    /// Hands on held bodies that are now next in line.
    fn release(&mut self) -> io::Result<()> {
        while let Some(next) = self.wanted.first().copied() {
            let Some(held) = self.held.remove(&next) else { break };
            self.deliver(next, held)?;
        }
        Ok(())
    }

    fn hold(&mut self, body: &mut dyn Read) -> io::Result<Held> {
        let mut tap = HeaderTap::new(body);
        let room = ONE_IN_MEMORY.min(HELD_IN_MEMORY.saturating_sub(self.in_memory));
        let mut memory = Vec::new();
        (&mut tap).take(room as u64 + 1).read_to_end(&mut memory)?;
        let body = if memory.len() <= room {
            self.in_memory += memory.len();
            HeldBody::Memory(memory)
        } else {
            let mut file = crate::spool::temp_file()?;
            file.write_all(&memory)?;
            io::copy(&mut tap, &mut file)?;
            HeldBody::File(file)
        };
        Ok(Held { body, received: received_date(&tap.header) })
    }
}

impl FetchHandler for Reorder<'_> {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> io::Result<()> {
        // imapc hands bodies over buffered (`body_buffered`); this is for other callers.
        self.body_buffered(start, &mut io::BufReader::new(body))
    }

    fn body_buffered(&mut self, start: &BodyStart, body: &mut dyn BufRead) -> io::Result<()> {
        let uid = start.fetch.uid.and_then(|uid| Uid::new(uid.get()));
        self.pending = Some(match uid {
            // The common case (the metadata has INTERNALDATE): straight through from the
            // connection's buffer, no header scanned for a date.
            Some(uid) if self.wanted.first() == Some(&uid) && !self.sink.wants_received(uid) => {
                self.sink.body_buffered(body).map_err(io::Error::other)?;
                Pending::Delivered { uid, received: None }
            }
            Some(uid) if self.wanted.first() == Some(&uid) => {
                let mut tap = HeaderTap::new(body);
                self.sink.body(&mut tap).map_err(io::Error::other)?;
                Pending::Delivered { uid, received: received_date(&tap.header) }
            }
            _ => Pending::Held(self.hold(body)?),
        });
        Ok(())
    }

    fn fetch(&mut self, fetch: Fetch) -> io::Result<()> {
        // A FETCH without a body before it is unsolicited (a flag change): nothing to do.
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let Some(uid) = fetch.uid.and_then(|uid| Uid::new(uid.get())) else { return Ok(()) };
        match pending {
            Pending::Delivered { uid: streamed, received } => {
                self.sink.done_with_received(streamed, received).map_err(io::Error::other)?;
                self.wanted.remove(&streamed);
            }
            Pending::Held(held) => {
                if self.wanted.first() == Some(&uid) {
                    self.deliver(uid, held)?;
                } else if self.wanted.contains(&uid) && !self.held.contains_key(&uid) {
                    self.held.insert(uid, held);
                } else if let HeldBody::Memory(bytes) = held.body {
                    // Not asked for, or a second body under one UID: dropped.
                    self.in_memory -= bytes.len();
                }
            }
        }
        self.release()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StorageError;
    use imapc::proto::{BodyKind, BodySection};

    #[derive(Default)]
    struct Collect {
        body: Vec<u8>,
        got: Vec<(u32, Vec<u8>, Option<i64>)>,
        /// UIDs whose metadata has a received date already (no date wanted from the body).
        dated: Vec<u32>,
    }

    impl MessageSink for Collect {
        fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
            self.body.clear();
            body.read_to_end(&mut self.body)
                .map_err(|e| StorageError::with_source(crate::ErrorKind::Temporary, "read", e))?;
            Ok(())
        }
        fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
            self.done_with_received(uid, None)
        }
        fn done_with_received(
            &mut self,
            uid: Uid,
            received: Option<i64>,
        ) -> Result<(), StorageError> {
            self.got.push((uid.get(), std::mem::take(&mut self.body), received));
            Ok(())
        }
        fn wants_received(&self, uid: Uid) -> bool {
            !self.dated.contains(&uid.get())
        }
    }

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    fn fetch(seq: u32, uid: Option<u32>) -> Fetch {
        let mut fetch = Fetch::default();
        fetch.seq = seq;
        fetch.uid = uid.and_then(imapc::Uid::new);
        fetch
    }

    /// Feeds `answers` (UID, UID known before the body, body) as a server would.
    fn run(wanted: &[u32], answers: &[(u32, bool, Vec<u8>)]) -> Vec<(u32, Vec<u8>)> {
        let mut sink = Collect::default();
        let wanted: Vec<Uid> = wanted.iter().map(|&n| uid(n)).collect();
        let mut reorder = Reorder::new(&mut sink, &wanted);
        for (index, (number, first, body)) in answers.iter().enumerate() {
            let seq = u32::try_from(index).expect("small") + 1;
            let start = BodyStart {
                fetch: fetch(seq, first.then_some(*number)),
                section: BodySection::new(BodyKind::Body, ""),
                len: body.len() as u64,
            };
            reorder.body_buffered(&start, &mut body.as_slice()).expect("body");
            reorder.fetch(fetch(seq, Some(*number))).expect("fetch");
            // An unsolicited flag change in between changes nothing.
            reorder.fetch(fetch(seq, Some(*number))).expect("unsolicited");
        }
        reorder.finish().expect("finish");
        sink.got.into_iter().map(|(uid, body, _)| (uid, body)).collect()
    }

    fn body(n: u32) -> Vec<u8> {
        format!("Date: Tue, 2 Jan 2024 10:00:0{} +0000\r\n\r\nbody {n}\r\n", n % 10).into_bytes()
    }

    #[test]
    fn any_answer_order_comes_out_ascending() {
        let expected: Vec<(u32, Vec<u8>)> = [1, 2, 5].iter().map(|&n| (n, body(n))).collect();
        for first in [true, false] {
            let descending = [(5, first, body(5)), (2, first, body(2)), (1, first, body(1))];
            assert_eq!(run(&[1, 2, 5], &descending), expected, "UID first: {first}");
            let mixed = [(2, first, body(2)), (1, !first, body(1)), (5, first, body(5))];
            assert_eq!(run(&[1, 2, 5], &mixed), expected);
        }
        // UID 1 was expunged meanwhile: the others still come, in order.
        let gone = [(5, true, body(5)), (2, true, body(2))];
        assert_eq!(run(&[1, 2, 5], &gone), expected[1..]);
        // A body not asked for, and a second one under a UID, are dropped.
        let extra =
            [(1, true, body(1)), (9, true, body(9)), (2, false, body(2)), (2, false, body(7))];
        assert_eq!(run(&[1, 2], &extra), expected[..2]);
    }

    #[test]
    fn a_date_is_read_from_the_header_only_where_the_sink_wants_one() {
        let mut sink = Collect { dated: vec![1], ..Collect::default() };
        let mut reorder = Reorder::new(&mut sink, &[uid(1), uid(2)]);
        for number in [1, 2] {
            let bytes = body(number);
            let start = BodyStart {
                fetch: fetch(number, Some(number)),
                section: BodySection::new(BodyKind::Body, ""),
                len: bytes.len() as u64,
            };
            reorder.body_buffered(&start, &mut bytes.as_slice()).expect("body");
            reorder.fetch(fetch(number, Some(number))).expect("fetch");
        }
        reorder.finish().expect("finish");
        assert_eq!(sink.got, [(1, body(1), None), (2, body(2), Some(1_704_189_602))]);
    }

    #[test]
    fn large_held_bodies_wait_in_a_file_and_dates_come_from_headers() {
        let mut large = body(3);
        large.extend(std::iter::repeat_n(b'x', ONE_IN_MEMORY + 10));
        let answers = [(3, true, large.clone()), (1, true, body(1))];
        let mut sink = Collect::default();
        let mut reorder = Reorder::new(&mut sink, &[uid(1), uid(3)]);
        for (index, (number, _, bytes)) in answers.iter().enumerate() {
            let seq = u32::try_from(index).expect("small") + 1;
            let start = BodyStart {
                fetch: fetch(seq, Some(*number)),
                section: BodySection::new(BodyKind::Body, ""),
                len: bytes.len() as u64,
            };
            reorder.body_buffered(&start, &mut bytes.as_slice()).expect("body");
            reorder.fetch(fetch(seq, Some(*number))).expect("fetch");
        }
        assert_eq!(reorder.in_memory, 0, "the large body went to a file");
        reorder.finish().expect("finish");
        let uids: Vec<u32> = sink.got.iter().map(|(u, _, _)| *u).collect();
        assert_eq!(uids, [1, 3]);
        assert!(sink.got[1].1 == large);
        assert_eq!(sink.got[0].2, Some(1_704_189_601));
        assert_eq!(sink.got[1].2, Some(1_704_189_603));
    }
}
