//! 128-bit GUIDs (mailbox GUIDs in `dovecot-uidlist`) and a source of unique bytes.

use std::fmt;
use std::io::Read;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// A 128-bit GUID, written as 32 lowercase hex digits (Dovecot's `guid_128`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 16]);

impl Guid {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Guid {
        Guid(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A new unique GUID (random bytes from the kernel; only uniqueness matters to Dovecot).
    pub fn generate() -> Guid {
        Guid(unique_bytes())
    }

    /// True for the all-zero GUID, which Dovecot treats as "none".
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl FromStr for Guid {
    type Err = Error;
    /// Parses exactly 32 hex digits (either case), as Dovecot's `guid_128_from_string`.
    fn from_str(text: &str) -> Result<Guid, Error> {
        let invalid = || Error::InvalidValue {
            field: "GUID",
            value: text.to_string(),
            reason: "not 32 hex digits",
        };
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return Err(invalid());
        }
        let mut out = [0u8; 16];
        for (index, pair) in bytes.chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            out[index] = (high << 4) | low;
        }
        Ok(Guid(out))
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// 16 bytes that are unique with overwhelming probability: `/dev/urandom`, or if that cannot
/// be read, a mix of the clock, the pid and a process-wide counter.
pub(crate) fn unique_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok() {
        return bytes;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut state = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for chunk in bytes.chunks_mut(8) {
        state = splitmix64(state);
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let text = "11c75a325f02046bff3d000083ecc375";
        let guid: Guid = text.parse().unwrap();
        assert_eq!(guid.to_string(), text);
        assert_eq!("11C75A325F02046BFF3D000083ECC375".parse::<Guid>().unwrap(), guid);
        for bad in ["", "11c75a325f02046bff3d000083ecc37", "11c75a325f02046bff3d000083ecc37g"] {
            assert!(bad.parse::<Guid>().is_err());
        }
        assert_ne!(Guid::generate(), Guid::generate());
    }
}
