//! A handler may stop reading a body: the client reads the rest and drops it, and the
//! messages after it arrive whole.

use std::io::Read;

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{FetchHandler, MailboxName, SequenceSet};
use testkit::{Dovecot, RawImap, fixtures};

use crate::login;

/// Reads each body whole, but only the first 10 bytes of message 2's.
#[derive(Default)]
struct StopEarly {
    bodies: Vec<(u32, Vec<u8>)>,
}

impl FetchHandler for StopEarly {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        if start.fetch.seq == 2 {
            bytes.resize(10, 0);
            body.read_exact(&mut bytes)?;
        } else {
            body.read_to_end(&mut bytes)?;
        }
        self.bodies.push((start.fetch.seq, bytes));
        Ok(())
    }

    fn fetch(&mut self, _fetch: Fetch) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_body_left_unread_is_skipped_and_the_next_arrive_whole() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    // Larger than the decoder's buffer, so most of message 2 is still on the socket.
    let messages = fixtures::append_sized(&mut raw, "INBOX", 3, 300 << 10);
    raw.logout();

    let mut session = login(&dovecot);
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let mut handler = StopEarly::default();
    session
        .uid_fetch(&SequenceSet::all(), &[FetchItem::Uid, FetchItem::whole_message()], &mut handler)
        .expect("fetch");
    let expected: Vec<(u32, Vec<u8>)> =
        vec![(1, messages[0].clone()), (2, messages[1][..10].to_vec()), (3, messages[2].clone())];
    assert!(handler.bodies == expected, "bodies differ from what was appended");
    session.noop().expect("the connection is still in step");
}
