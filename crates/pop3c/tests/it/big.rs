//! A 40 MiB message (with dot-stuffed lines all through it) is read with RETR with the
//! process's peak memory far below its size. The read runs in a child process (this test
//! binary re-invoked by a `testkit::MemoryProbe`) so that VmHWM measures only the client,
//! not the fixture that built the message.

use std::io::Read;

use pop3c::{Client, ConnectOptions, Credentials, MessageNumber, Security};
use testkit::{BodyDigest, Dovecot, MemoryProbe, RawImap};

const SIZE: usize = 40 << 20;
const PROBE: MemoryProbe =
    MemoryProbe::new("big::child_retr_big_message", "POP3C_TEST_BIG_CHILD_PORT");

/// A message of about `size` bytes whose every 7th line starts with a dot.
fn dotted_message(size: usize) -> Vec<u8> {
    let mut bytes = b"Subject: big\r\nMessage-ID: <big@example.com>\r\n\r\n".to_vec();
    let mut line = 0u64;
    while bytes.len() < size {
        if line.is_multiple_of(7) {
            bytes.push(b'.');
        }
        bytes.extend(
            format!(
                "{line:08} abcdefghijklmnopqrstuvwxyz0123456789.ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
            )
            .bytes(),
        );
        line += 1;
    }
    bytes
}

/// The child half: does nothing unless started by the parent below.
#[test]
fn child_retr_big_message() {
    let Some(port) = PROBE.child_argument() else { return };
    let options = ConnectOptions::new("127.0.0.1", port.parse().expect("port"), Security::Plain);
    let mut session = Client::connect(&options)
        .expect("connect")
        .login(&Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("login");
    let mut digest = BodyDigest::new();
    let started = std::time::Instant::now();
    let first = MessageNumber::new(1).expect("1");
    session
        .retr_many(&[first], &mut |_: MessageNumber, body: &mut dyn Read| digest.read_all(body))
        .expect("RETR");
    PROBE.report(&digest, started.elapsed());
}

#[test]
fn forty_mib_message_streams_in_bounded_memory() {
    if PROBE.is_child() {
        return;
    }
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let body = dotted_message(SIZE);
    let expected = BodyDigest::of(&body);
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    raw.append("INBOX", &[], None, &body);
    raw.logout();
    drop(body);

    PROBE.run(&dovecot.pop3_port().to_string()).assert_streamed(&expected, 20 * 1024);
}
