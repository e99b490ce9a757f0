//! A handler may stop reading a body: the client reads the rest and drops it, and the
//! messages after it arrive whole.

use std::io::Read;

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{FetchHandler, MailboxName, SequenceSet};
use testkit::{LeaveUnread, fixtures};

use crate::login;

/// Hands each body to a [`LeaveUnread`].
struct Handler(LeaveUnread);

impl FetchHandler for Handler {
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
        self.0.read(start.fetch.seq, body)
    }

    fn fetch(&mut self, _fetch: Fetch) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_body_left_unread_is_skipped_and_the_next_arrive_whole() {
    // Larger than the decoder's buffer, so most of message 2 is still on the socket.
    let (dovecot, messages) = fixtures::alice_with_sized(3, 300 << 10);
    let mut session = login(&dovecot);
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let mut handler = Handler(LeaveUnread::new(2, 10));
    session
        .uid_fetch(&SequenceSet::all(), &[FetchItem::Uid, FetchItem::whole_message()], &mut handler)
        .expect("fetch");
    handler.0.assert_read(&messages);
    session.noop().expect("the connection is still in step");
}
