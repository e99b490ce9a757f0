//! SHA-256 certificate fingerprints, written the way `openssl x509 -noout -fingerprint
//! -sha256` prints them, so an operator can compare them character by character.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 digest of a certificate's DER encoding: one exact certificate.
///
/// Parsed from `sha256:HEX`, where HEX is 64 hex digits in either case, with or without
/// `:` between the bytes (so both `sha256:9f86d0…` and openssl's
/// `sha256 Fingerprint=9F:86:D0:…` are accepted). Displayed as `sha256:9F:86:D0:…`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(certificate_der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(certificate_der).into())
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A fingerprint that does not parse; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a SHA-256 fingerprint: {reason} (expected sha256:HEX, 64 hex digits, `:` between bytes allowed)"
)]
pub struct FingerprintError {
    text: String,
    reason: &'static str,
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Fingerprint, FingerprintError> {
        let fail = |reason| FingerprintError { text: text.to_owned(), reason };
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let hex = ["sha256:", "sha256 fingerprint="]
            .iter()
            .find_map(|prefix| lower.strip_prefix(prefix))
            .ok_or_else(|| fail("it does not start with sha256:"))?;
        let digits: Vec<u8> = hex.bytes().filter(|&byte| byte != b':').collect();
        if digits.len() != 64 {
            return Err(fail("it does not have 64 hex digits"));
        }
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(fail("it has a non-hex character"));
        }
        let value = |digit: u8| match digit {
            b'0'..=b'9' => digit - b'0',
            _ => (digit | 0x20) - b'a' + 10,
        };
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = value(pair[0]) << 4 | value(pair[1]);
        }
        Ok(Fingerprint(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of the empty string.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn computes_displays_and_parses_back() {
        let fingerprint = Fingerprint::of(b"");
        let shown = fingerprint.to_string();
        assert_eq!(shown.len(), "sha256:".len() + 32 * 3 - 1);
        assert_eq!(shown.replace(':', "").to_lowercase(), format!("sha256{EMPTY}"));
        assert_eq!(shown.parse::<Fingerprint>(), Ok(fingerprint));
        assert_eq!(format!("{fingerprint:?}"), shown);
    }

    #[test]
    fn accepts_the_spellings_operators_paste() {
        let expected = Fingerprint::of(b"");
        let colons = EMPTY
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).expect("ascii").to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        for text in [
            format!("sha256:{EMPTY}"),
            format!("SHA256:{}", EMPTY.to_uppercase()),
            format!("sha256 Fingerprint={colons}"),
            format!("  sha256:{colons}\n"),
        ] {
            assert_eq!(text.parse::<Fingerprint>(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_sha256_fingerprint() {
        for (text, reason) in [
            (EMPTY.to_owned(), "does not start with sha256:"),
            (format!("sha1:{EMPTY}"), "does not start with sha256:"),
            (format!("sha256:{}", &EMPTY[2..]), "64 hex digits"),
            (format!("sha256:{EMPTY}00"), "64 hex digits"),
            (format!("sha256:{}zz", &EMPTY[2..]), "non-hex"),
            (format!("sha256:{}+1", &EMPTY[2..]), "non-hex"),
            (format!("sha256:{}é", &EMPTY[2..]), "non-hex"),
        ] {
            let error = text.parse::<Fingerprint>().expect_err(&text);
            assert!(error.to_string().contains(reason), "{text}: {error}");
        }
    }
}
