//! A 40 MiB message (with dot-stuffed lines all through it) is read with RETR with the
//! process's peak memory far below its size. The read runs in a child process (this test
//! binary re-invoked with an environment variable) so that VmHWM measures only the client,
//! not the fixture that built the message.

use std::io::Read;
use std::process::Command;

use pop3c::{Client, ConnectOptions, Credentials, MessageNumber, Security};
use testkit::{Dovecot, RawImap};

const SIZE: usize = 40 << 20;
const CHILD_PORT: &str = "POP3C_TEST_BIG_CHILD_PORT";

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

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
fn child_retr_big_message() {
    let Ok(port) = std::env::var(CHILD_PORT) else { return };
    let options = ConnectOptions::new("127.0.0.1", port.parse().expect("port"), Security::Plain);
    let mut session = Client::connect(&options)
        .expect("connect")
        .login(&Credentials::new("alice", "alicepw"))
        .map_err(|(e, _)| e)
        .expect("login");
    let (mut hash, mut len, mut max_chunk) = (0xcbf2_9ce4_8422_2325_u64, 0u64, 0usize);
    let started = std::time::Instant::now();
    let first = MessageNumber::new(1).expect("1");
    session
        .retr_many(&[first], &mut |_: MessageNumber, body: &mut dyn Read| {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = body.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                max_chunk = max_chunk.max(n);
                len += n as u64;
                fnv1a(&mut hash, &chunk[..n]);
            }
        })
        .expect("RETR");
    let seconds = started.elapsed().as_secs_f64();
    let mib = f64::from(u32::try_from(len >> 20).unwrap_or(u32::MAX));
    println!(
        "RESULT len={len} hash={hash:x} max_chunk={max_chunk} vmhwm_kib={} mib_per_s={:.0}",
        peak_rss_kib(),
        mib / seconds
    );
}

#[test]
fn forty_mib_message_streams_in_bounded_memory() {
    if std::env::var_os(CHILD_PORT).is_some() {
        return;
    }
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let body = dotted_message(SIZE);
    let mut expected = 0xcbf2_9ce4_8422_2325;
    fnv1a(&mut expected, &body);
    let mut raw = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    raw.append("INBOX", &[], None, &body);
    raw.logout();
    let body_len = body.len();
    drop(body);

    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["big::child_retr_big_message", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_PORT, dovecot.pop3_port().to_string())
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
    assert!(peak_kib < 20 * 1024, "peak RSS {peak_kib} KiB is not far below a 40 MiB message");
    assert!(field("max_chunk").parse::<usize>().expect("chunk") <= 64 * 1024);
}
