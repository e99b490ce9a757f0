//! A 50 MiB message is fetched with the process's peak memory far below its size. The
//! fetch runs in a child process (this test binary re-invoked with an environment
//! variable) so that VmHWM measures only the client, not the fixture that built the message.

use std::io::Read;
use std::process::Command;

use imapc::proto::{BodyStart, Fetch, FetchItem};
use imapc::{FetchHandler, MailboxName, SequenceSet};
use testkit::{Dovecot, RawImap, fixtures};

const SIZE: usize = 50 << 20;
const CHILD_PORT: &str = "IMAPC_TEST_BIG_CHILD_PORT";

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

struct Hash {
    state: u64,
    len: u64,
    max_chunk: usize,
}

impl FetchHandler for Hash {
    fn body(&mut self, _start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            self.max_chunk = self.max_chunk.max(n);
            self.len += n as u64;
            fnv1a(&mut self.state, &chunk[..n]);
        }
    }
    fn fetch(&mut self, _fetch: Fetch) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The child half: does nothing unless started by the parent below.
#[test]
fn child_fetch_big_message() {
    let Ok(port) = std::env::var(CHILD_PORT) else { return };
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
    let mut hash = Hash { state: 0xcbf2_9ce4_8422_2325, len: 0, max_chunk: 0 };
    let started = std::time::Instant::now();
    session
        .uid_fetch(&SequenceSet::all(), &[FetchItem::Uid, FetchItem::whole_message()], &mut hash)
        .expect("fetch");
    let seconds = started.elapsed().as_secs_f64();
    let mib = f64::from(u32::try_from(hash.len >> 20).unwrap_or(u32::MAX));
    println!(
        "RESULT len={} hash={:x} max_chunk={} vmhwm_kib={} mib_per_s={:.0}",
        hash.len,
        hash.state,
        hash.max_chunk,
        peak_rss_kib(),
        mib / seconds
    );
}

#[test]
fn fifty_mib_message_streams_in_bounded_memory() {
    if std::env::var_os(CHILD_PORT).is_some() {
        return;
    }
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let body = fixtures::sized_message(1, SIZE);
    let mut expected = 0xcbf2_9ce4_8422_2325;
    fnv1a(&mut expected, &body);
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    raw.append("INBOX", &["\\Seen"], None, &body);
    raw.logout();
    let body_len = body.len();
    drop(body);

    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["big::child_fetch_big_message", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_PORT, dovecot.imap_port().to_string())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("RESULT ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no result in {stdout}"));
    eprintln!("{line}");
    let field = |name: &str| -> String {
        line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{name}="))).expect(name).to_owned()
    };
    assert_eq!(field("len").parse::<usize>().expect("len"), body_len);
    assert_eq!(field("hash"), format!("{expected:x}"), "bytes differ");
    let peak_kib: u64 = field("vmhwm_kib").parse().expect("vmhwm");
    assert!(peak_kib < 20 * 1024, "peak RSS {peak_kib} KiB is not far below a 50 MiB message");
    assert!(field("max_chunk").parse::<usize>().expect("chunk") <= 64 * 1024);
}
