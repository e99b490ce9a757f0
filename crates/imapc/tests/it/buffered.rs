//! Bodies read in place from the connection's receive buffer (`body_buffered`, the way
//! dsync converts line ends without copying): whatever amounts a handler consumes, and
//! wherever the socket reads fell, every body arrives whole and the stream stays in step.

use std::io::{BufRead, Read};

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{FetchHandler, MailboxName, SequenceSet};
use testkit::{Dovecot, RawImap, fixtures};

use crate::login;

/// Reads each body with `fill_buf`/`consume`, consuming `steps` bytes in turn (at most
/// what is buffered); stops after `stop_at.1` bytes of message `stop_at.0`.
struct InPlace {
    steps: &'static [usize],
    stop_at: Option<(u32, usize)>,
    bodies: Vec<(u32, Vec<u8>)>,
}

impl FetchHandler for InPlace {
    fn body(&mut self, _start: &BodyStart, _body: &mut dyn Read) -> std::io::Result<()> {
        panic!("the client hands bodies over buffered");
    }

    fn body_buffered(&mut self, start: &BodyStart, body: &mut dyn BufRead) -> std::io::Result<()> {
        let limit = match self.stop_at {
            Some((seq, limit)) if seq == start.fetch.seq => limit,
            _ => usize::MAX,
        };
        let mut got = Vec::new();
        let mut steps = self.steps.iter().cycle();
        while got.len() < limit {
            let available = body.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let step = steps.next().copied().unwrap_or(usize::MAX);
            let n = available.len().min(step).min(limit - got.len());
            got.extend_from_slice(&available[..n]);
            body.consume(n);
        }
        self.bodies.push((start.fetch.seq, got));
        Ok(())
    }

    fn fetch(&mut self, _fetch: Fetch) -> std::io::Result<()> {
        Ok(())
    }
}

/// Messages smaller and larger than the 64 KiB receive buffer, in one mailbox.
fn mixed_sizes() -> (Dovecot, Vec<Vec<u8>>) {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let sizes = [10, 70 << 10, 1000, 300 << 10, 3, 65 << 10, 200];
    let messages: Vec<Vec<u8>> =
        sizes.iter().zip(1..).map(|(&size, index)| fixtures::sized_message(index, size)).collect();
    for message in &messages {
        imap.append("INBOX", &[], None, message);
    }
    imap.logout();
    (dovecot, messages)
}

#[test]
fn bodies_read_in_place_arrive_whole_whatever_is_consumed_at_once() {
    let (dovecot, messages) = mixed_sizes();
    let mut session = login(&dovecot);
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let items = [FetchItem::Uid, FetchItem::whole_message()];
    for steps in [&[usize::MAX][..], &[1, 7, 4096, 3], &[65_536, 1]] {
        let mut handler = InPlace { steps, stop_at: None, bodies: Vec::new() };
        session.uid_fetch(&SequenceSet::all(), &items, &mut handler).expect("fetch");
        let got: Vec<&[u8]> = handler.bodies.iter().map(|(_, body)| body.as_slice()).collect();
        let want: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        assert!(got == want, "steps {steps:?}: bodies differ");
    }
    session.noop().expect("the connection is still in step");
}

#[test]
fn a_body_read_in_place_only_in_part_is_skipped_and_the_next_arrive_whole() {
    let (dovecot, messages) = mixed_sizes();
    let mut session = login(&dovecot);
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let items = [FetchItem::Uid, FetchItem::whole_message()];
    // Message 4 (300 KiB) is left after 10 bytes, most of it still on the socket.
    let mut handler = InPlace { steps: &[4096], stop_at: Some((4, 10)), bodies: Vec::new() };
    session.uid_fetch(&SequenceSet::all(), &items, &mut handler).expect("fetch");
    assert_eq!(handler.bodies.len(), messages.len());
    for ((seq, got), want) in handler.bodies.iter().zip(&messages) {
        let want = if *seq == 4 { &want[..10] } else { &want[..] };
        assert!(got == want, "message {seq} differs");
    }
    session.noop().expect("the connection is still in step");
}
