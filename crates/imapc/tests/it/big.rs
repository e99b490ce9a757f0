//! A 50 MiB message is fetched with the process's peak memory far below its size. The
//! fetch runs in a child process (this test binary re-invoked by a `testkit::MemoryProbe`)
//! so that VmHWM measures only the client, not the fixture that built the message.

use std::io::Read;

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{FetchHandler, MailboxName, SequenceSet};
use testkit::{BodyDigest, Dovecot, MemoryProbe, RawImap, fixtures};

const SIZE: usize = 50 << 20;
const PROBE: MemoryProbe =
    MemoryProbe::new("big::child_fetch_big_message", "IMAPC_TEST_BIG_CHILD_PORT");

/// Digests every body it is handed.
struct Digest(BodyDigest);

impl FetchHandler for Digest {
    fn body(&mut self, _start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
        self.0.read_all(body)
    }
    fn fetch(&mut self, _fetch: Fetch) -> std::io::Result<()> {
        Ok(())
    }
}

/// The child half: does nothing unless started by the parent below.
#[test]
fn child_fetch_big_message() {
    let Some(port) = PROBE.child_argument() else { return };
    let options = imapc::ConnectOptions::new(
        "127.0.0.1",
        port.parse().expect("port"),
        imapc::Security::Plain,
    );
    let mut session = imapc::Client::connect(&options)
        .expect("connect")
        .login(&imapc::Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("login");
    session.examine(&MailboxName::from_utf8("INBOX")).expect("EXAMINE");
    let mut digest = Digest(BodyDigest::new());
    let started = std::time::Instant::now();
    session
        .uid_fetch(&SequenceSet::all(), &[FetchItem::Uid, FetchItem::whole_message()], &mut digest)
        .expect("fetch");
    PROBE.report(&digest.0, started.elapsed());
}

#[test]
fn fifty_mib_message_streams_in_bounded_memory() {
    if PROBE.is_child() {
        return;
    }
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let body = fixtures::sized_message(1, SIZE);
    let expected = BodyDigest::of(&body);
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    raw.append("INBOX", &["\\Seen"], None, &body);
    raw.logout();
    drop(body);

    PROBE.run(&dovecot.imap_port().to_string()).assert_streamed(&expected, 20 * 1024);
}
