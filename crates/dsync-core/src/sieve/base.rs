//! What the last Sieve run left equal on both sides: each script's SHA-1 and size and the
//! active script. ManageSieve gives no change times, so a two-way `sync` finds which side
//! changed a script by comparing it with this base.
//!
//! Saved as text of the same family as the mail's state (see [`crate::state`]):
//!
//! ```text
//! dsync-rs sieve state 1
//! pair sieve%3A%2F%2Falice%40127.0.0.1 file%3A%2Fhome%2Falice%2Fsieve
//! synced 1765000000
//! script away%20message 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 43
//! active away%20message
//! ```
//!
//! `pair` names the two locations the base belongs to (a base made for other locations is
//! not used); `synced` is the run's time in seconds since the epoch.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha1::{Digest, Sha1};

use crate::state::{StateError, escape, unescape};

const HEADER: &str = "dsync-rs sieve state 1";

/// A script's bytes, as far as the base needs them: their SHA-1 and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptDigest {
    /// SHA-1 of the bytes.
    pub sha1: [u8; 20],
    /// Their length.
    pub size: u64,
}

impl ScriptDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> ScriptDigest {
        ScriptDigest { sha1: Sha1::digest(bytes).into(), size: bytes.len() as u64 }
    }
}

/// What the last run left equal on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveBase {
    /// The two locations (`source destination`, as shown) this base belongs to.
    pub pair: String,
    /// When the run ended, in seconds since the epoch.
    pub synced_at: Option<u64>,
    /// Each script both sides held with the same bytes.
    pub scripts: BTreeMap<String, ScriptDigest>,
    /// The active script both sides had (`None`: none, or they differed and no earlier
    /// agreement is known).
    pub active: Option<String>,
}

impl SieveBase {
    /// Encodes the base as text.
    pub fn encode(&self) -> String {
        let mut out = format!("{HEADER}\npair {}\n", escape(&self.pair));
        if let Some(time) = self.synced_at {
            let _ = writeln!(out, "synced {time}");
        }
        for (name, digest) in &self.scripts {
            let _ = write!(out, "script {} ", escape(name));
            for byte in digest.sha1 {
                let _ = write!(out, "{byte:02x}");
            }
            let _ = writeln!(out, " {}", digest.size);
        }
        if let Some(active) = &self.active {
            let _ = writeln!(out, "active {}", escape(active));
        }
        out
    }

    /// Decodes text written by [`SieveBase::encode`].
    pub fn decode(text: &str) -> Result<SieveBase, StateError> {
        let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line));
        if lines.next().map(|(_, line)| line) != Some(HEADER) {
            return Err(StateError { line: 1, reason: format!("expected {HEADER:?}") });
        }
        let mut base = SieveBase::default();
        for (number, line) in lines {
            let error = |reason: &str| StateError { line: number, reason: reason.to_owned() };
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                ["pair", pair] => base.pair = unescape(pair).map_err(|e| error(&e))?,
                ["synced", time] => {
                    base.synced_at = Some(time.parse().map_err(|_| error("bad time"))?);
                }
                ["script", name, sha1, size] => {
                    let digest = ScriptDigest {
                        sha1: parse_sha1(sha1).ok_or_else(|| error("bad SHA-1"))?,
                        size: size.parse().map_err(|_| error("bad size"))?,
                    };
                    base.scripts.insert(unescape(name).map_err(|e| error(&e))?, digest);
                }
                ["active", name] => base.active = Some(unescape(name).map_err(|e| error(&e))?),
                _ => return Err(error("unknown line")),
            }
        }
        Ok(base)
    }
}

fn parse_sha1(hex: &str) -> Option<[u8; 20]> {
    if hex.len() != 40 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0; 20];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut base = SieveBase {
            pair: "sieve://alice@127.0.0.1 file:/home/alice/sieve".into(),
            synced_at: Some(1_765_000_000),
            ..SieveBase::default()
        };
        base.scripts.insert("away message".into(), ScriptDigest::of(b"abc"));
        base.active = Some("away message".into());
        let text = base.encode();
        assert_eq!(
            text,
            "dsync-rs sieve state 1\n\
             pair sieve%3A%2F%2Falice%40127.0.0.1%20file%3A%2Fhome%2Falice%2Fsieve\n\
             synced 1765000000\n\
             script away%20message a9993e364706816aba3e25717850c26c9cd0d89d 3\n\
             active away%20message\n"
        );
        assert_eq!(SieveBase::decode(&text), Ok(base));
        for (bad, why) in [
            ("dsync-rs state 1\n", "expected"),
            ("dsync-rs sieve state 1\nscript a 00 3\n", "SHA-1"),
            (
                "dsync-rs sieve state 1\nscript a a9993e364706816aba3e25717850c26c9cd0d89d x\n",
                "size",
            ),
            ("dsync-rs sieve state 1\nsynced soon\n", "time"),
            ("dsync-rs sieve state 1\nmailbox INBOX\n", "unknown"),
        ] {
            let error = SieveBase::decode(bad).expect_err(bad);
            assert!(error.to_string().contains(why), "{bad}: {error}");
        }
    }
}
