//! Peak memory of a client streaming a large body, measured in a child process.
//!
//! The fixture that builds a large message holds it whole, so the test process's peak
//! resident size says nothing about the client. A [`MemoryProbe`] re-runs the test binary
//! with only a *child test* selected and an environment variable set; the child does the
//! transfer, hashes the body as it streams ([`BodyDigest`]) and prints a report line with
//! its own peak (`VmHWM`), which the parent reads back as a [`ChildReport`].
//!
//! ```no_run
//! use testkit::{BodyDigest, MemoryProbe};
//!
//! const PROBE: MemoryProbe = MemoryProbe::new("big::child_fetch", "MYCRATE_BIG_CHILD_PORT");
//!
//! // #[test]
//! fn child_fetch() {
//!     let Some(port) = PROBE.child_argument() else { return };
//!     let started = std::time::Instant::now();
//!     let mut digest = BodyDigest::new();
//!     // … connect to `port`, fetch, and feed the body to `digest.read_all(body)` …
//!     PROBE.report(&digest, started.elapsed());
//! }
//!
//! // #[test]
//! fn big_message_streams_in_bounded_memory() {
//!     if PROBE.is_child() {
//!         return;
//!     }
//!     let body = vec![b'x'; 50 << 20];
//!     let expected = BodyDigest::of(&body);
//!     // … store `body` on a server listening at `port`, then drop it …
//!     # let port = 143;
//!     PROBE.run(&port.to_string()).assert_streamed(&expected, 20 * 1024);
//! }
//! ```

use std::io::{self, Read};
use std::process::Command;
use std::time::Duration;

/// How much a [`BodyDigest`] asks a body for at a time; no read may hand out more.
const CHUNK: usize = 64 * 1024;

/// FNV-1a's offset basis and prime (64 bit): a hash cheap enough for 50 MiB in a debug build.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// What arrived of a body: its FNV-1a hash and length, and the largest single read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDigest {
    /// FNV-1a (64 bit) of the bytes so far.
    pub hash: u64,
    /// How many bytes so far.
    pub len: u64,
    /// The most bytes one read returned.
    pub max_chunk: usize,
}

impl Default for BodyDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyDigest {
    /// The digest of nothing.
    pub const fn new() -> BodyDigest {
        BodyDigest { hash: FNV_OFFSET, len: 0, max_chunk: 0 }
    }

    /// The digest of `bytes` (what the child should see).
    pub fn of(bytes: &[u8]) -> BodyDigest {
        let mut digest = BodyDigest::new();
        digest.update(bytes);
        digest
    }

    /// Adds `bytes`, as one read.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.len += bytes.len() as u64;
        self.max_chunk = self.max_chunk.max(bytes.len());
    }

    /// Reads `body` to its end in 64 KiB reads, adding each.
    ///
    /// # Errors
    ///
    /// The first error of `body`.
    pub fn read_all(&mut self, body: &mut dyn Read) -> io::Result<()> {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            match body.read(&mut chunk)? {
                0 => return Ok(()),
                n => self.update(&chunk[..n]),
            }
        }
    }
}

/// One child test of a test binary, run by its parent test in a process of its own.
#[derive(Debug, Clone, Copy)]
pub struct MemoryProbe {
    /// The child test's path in its binary (`module::function`).
    test: &'static str,
    /// The environment variable that carries the parent's argument, and marks the child.
    variable: &'static str,
}

/// What the child reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildReport {
    /// What arrived.
    pub digest: BodyDigest,
    /// The child's peak resident size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Throughput of the transfer, MiB/s (shown, not checked).
    pub mib_per_s: f64,
}

impl MemoryProbe {
    /// The child test `test` (its path in the binary, `module::function`), told apart by
    /// the environment variable `variable` (a name unique in the workspace).
    pub const fn new(test: &'static str, variable: &'static str) -> MemoryProbe {
        MemoryProbe { test, variable }
    }

    /// Whether this process is the child.
    pub fn is_child(&self) -> bool {
        std::env::var_os(self.variable).is_some()
    }

    /// In the child, what the parent passed to [`run`](Self::run); `None` in an ordinary
    /// test run, where the child test has nothing to do.
    pub fn child_argument(&self) -> Option<String> {
        std::env::var(self.variable).ok()
    }

    /// In the child: prints the report line the parent reads.
    pub fn report(&self, digest: &BodyDigest, elapsed: Duration) {
        let mib = f64::from(u32::try_from(digest.len >> 20).unwrap_or(u32::MAX));
        println!(
            "RESULT len={} hash={:x} max_chunk={} vmhwm_kib={} mib_per_s={:.0}",
            digest.len,
            digest.hash,
            digest.max_chunk,
            peak_rss_kib(),
            mib / elapsed.as_secs_f64()
        );
    }

    /// In the parent: runs the child test with `argument` and returns its report (also
    /// shown on stderr).
    ///
    /// # Panics
    ///
    /// When the child fails or prints no report.
    pub fn run(&self, argument: &str) -> ChildReport {
        let output = Command::new(std::env::current_exe().expect("test binary"))
            .args([self.test, "--exact", "--nocapture", "--test-threads=1"])
            .env(self.variable, argument)
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
        let field = |name: &str| -> &str {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        };
        let number = |name: &str| -> u64 {
            field(name).parse().unwrap_or_else(|_| panic!("{name} in {line}"))
        };
        ChildReport {
            digest: BodyDigest {
                hash: u64::from_str_radix(field("hash"), 16).expect("hash"),
                len: number("len"),
                max_chunk: usize::try_from(number("max_chunk")).expect("max_chunk"),
            },
            peak_rss_kib: number("vmhwm_kib"),
            mib_per_s: field("mib_per_s").parse().expect("mib_per_s"),
        }
    }
}

impl ChildReport {
    /// Asserts that the child received exactly the bytes of `expected`, in reads of at most
    /// 64 KiB, with a peak resident size below `peak_limit_kib`.
    ///
    /// # Panics
    ///
    /// When it did not.
    pub fn assert_streamed(&self, expected: &BodyDigest, peak_limit_kib: u64) {
        assert_eq!(self.digest.len, expected.len, "length differs");
        assert_eq!(self.digest.hash, expected.hash, "bytes differ");
        let peak = self.peak_rss_kib;
        assert!(
            peak < peak_limit_kib,
            "peak RSS {peak} KiB is not far below a {} MiB message",
            expected.len >> 20
        );
        assert!(self.digest.max_chunk <= CHUNK, "a read returned more than was asked for");
    }
}

/// This process's peak resident size (`VmHWM` of /proc/self/status), KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_known_input() {
        // FNV-1a 64 of "a" is af63dc4c8601ec8c (the published test vector).
        assert_eq!(BodyDigest::of(b"a").hash, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(BodyDigest::of(b"").hash, FNV_OFFSET);
        let bytes = vec![7u8; 200_000];
        let mut read = BodyDigest::new();
        read.read_all(&mut bytes.as_slice()).expect("read");
        assert_eq!((read.hash, read.len), (BodyDigest::of(&bytes).hash, 200_000));
        assert_eq!(read.max_chunk, CHUNK);
    }
}
