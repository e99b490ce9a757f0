//! Modified UTF-7, the mailbox-name encoding of IMAP4rev1 (RFC 3501 §5.1.3) and of
//! Dovecot's on-disk folder names.
//!
//! Printable US-ASCII other than `&` stands for itself; `&` is written `&-`; every other
//! character is UTF-16BE, base64-encoded with `,` in place of `/`, without padding, between
//! `&` and `-`. Decoding is **strict**: it rejects every form that a correct encoder never
//! produces (directly representable characters inside an encoded run, adjacent runs,
//! non-zero padding bits, unpaired surrogates, a missing `-`), because two different byte
//! strings must never decode to the same mailbox name.
//!
//! ```
//! assert_eq!(mutf7::encode("Entwürfe"), "Entw&APw-rfe");
//! assert_eq!(mutf7::decode("&ANw-n&AO8-code")?, "Ünïcode");
//! assert_eq!(mutf7::decode("A&-B")?, "A&B");
//! assert!(mutf7::decode("&AOQ-&APY-").is_err()); // two adjacent runs: not the shortest form
//! # Ok::<(), mutf7::DecodeError>(())
//! ```
#![deny(missing_docs)]

use std::fmt::Write as _;

/// Why a byte string is not valid modified UTF-7, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid modified UTF-7 at byte {position}: {kind}")]
pub struct DecodeError {
    /// Byte offset of the offending input.
    pub position: usize,
    /// What is wrong there.
    pub kind: DecodeErrorKind,
}

/// The kinds of invalid modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A byte outside printable US-ASCII appeared outside an encoded run.
    #[error("byte must be encoded")]
    UnencodedByte,
    /// A byte that is not in the modified base64 alphabet appeared inside a run.
    #[error("invalid base64 byte in encoded run")]
    InvalidBase64,
    /// An encoded run was not closed with `-` before the end of the input.
    #[error("unterminated encoded run")]
    Unterminated,
    /// An encoded run's length leaves a partial UTF-16 unit or non-zero padding bits.
    #[error("encoded run has leftover or non-zero padding bits")]
    BadPadding,
    /// An encoded run contains a character that must be written directly.
    #[error("encoded run contains a directly representable character")]
    NeedlesslyEncoded,
    /// An encoded run directly follows another one; the shortest form merges them.
    #[error("adjacent encoded runs")]
    AdjacentRuns,
    /// A UTF-16 surrogate without its partner.
    #[error("unpaired UTF-16 surrogate")]
    UnpairedSurrogate,
}

/// True when `c` is written as itself (printable US-ASCII except `&`).
fn is_direct(c: u32) -> bool {
    (0x20..=0x7e).contains(&c) && c != u32::from(b'&')
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn base64_value(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Encodes a UTF-8 mailbox name into modified UTF-7 (always the shortest form).
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(u32::from(c)) {
            flush_run(&mut pending, &mut out);
            out.push(c);
        } else if c == '&' {
            flush_run(&mut pending, &mut out);
            out.push_str("&-");
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_run(&mut pending, &mut out);
    out
}

fn flush_run(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for unit in units.drain(..) {
        bits = (bits << 16) | u32::from(unit);
        bit_count += 16;
        while bit_count >= 6 {
            bit_count -= 6;
            out.push(char::from(ALPHABET[((bits >> bit_count) & 0x3f) as usize]));
        }
        bits &= (1 << bit_count) - 1;
    }
    if bit_count > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - bit_count)) & 0x3f) as usize]));
    }
    out.push('-');
}

/// Decodes a modified UTF-7 mailbox name into UTF-8, rejecting every non-canonical form.
pub fn decode(encoded: &str) -> Result<String, DecodeError> {
    decode_bytes(encoded.as_bytes())
}

/// [`decode`] for raw bytes as they arrive from a server or a directory listing.
pub fn decode_bytes(encoded: &[u8]) -> Result<String, DecodeError> {
    let mut out = String::with_capacity(encoded.len());
    let mut position = 0;
    // Whether the previous token was an encoded run (for the adjacency rule).
    let mut after_run = false;
    while position < encoded.len() {
        let byte = encoded[position];
        if byte != b'&' {
            if !is_direct(u32::from(byte)) {
                return Err(DecodeError { position, kind: DecodeErrorKind::UnencodedByte });
            }
            out.push(char::from(byte));
            position += 1;
            after_run = false;
            continue;
        }
        let run_start = position;
        let Some(dash) = encoded[position + 1..].iter().position(|&b| b == b'-') else {
            return Err(DecodeError { position: run_start, kind: DecodeErrorKind::Unterminated });
        };
        let run = &encoded[position + 1..position + 1 + dash];
        position += dash + 2;
        if run.is_empty() {
            out.push('&');
            after_run = false;
            continue;
        }
        if after_run {
            return Err(DecodeError { position: run_start, kind: DecodeErrorKind::AdjacentRuns });
        }
        decode_run(run, run_start + 1, &mut out)?;
        after_run = true;
    }
    Ok(out)
}

fn decode_run(run: &[u8], offset: usize, out: &mut String) -> Result<(), DecodeError> {
    let error = |index: usize, kind| DecodeError { position: offset + index, kind };
    let mut units: Vec<u16> = Vec::with_capacity(run.len() * 6 / 16);
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for (index, &byte) in run.iter().enumerate() {
        let value =
            base64_value(byte).ok_or_else(|| error(index, DecodeErrorKind::InvalidBase64))?;
        bits = (bits << 6) | value;
        bit_count += 6;
        if bit_count >= 16 {
            bit_count -= 16;
            let unit = u16::try_from((bits >> bit_count) & 0xffff).unwrap_or(0);
            units.push(unit);
            bits &= (1 << bit_count) - 1;
        }
    }
    // A full unused base64 character, or any set padding bit, is not the shortest form.
    if bit_count >= 6 || bits != 0 {
        return Err(error(run.len().saturating_sub(1), DecodeErrorKind::BadPadding));
    }
    for decoded in char::decode_utf16(units.iter().copied()) {
        let c = decoded.map_err(|_| error(0, DecodeErrorKind::UnpairedSurrogate))?;
        if is_direct(u32::from(c)) || c == '&' {
            return Err(error(0, DecodeErrorKind::NeedlesslyEncoded));
        }
        out.push(c);
    }
    Ok(())
}

/// Escapes bytes for a diagnostic message (`\xNN` for anything not printable).
pub fn escape_for_display(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if (0x20..0x7f).contains(&byte) && byte != b'\\' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

#[doc(hidden)]
/// Entry point for the fuzz target: decoding never panics, and whatever decodes
/// re-encodes to the identical input (strictness means one spelling per name).
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(decoded) = decode_bytes(data) {
        assert_eq!(encode(&decoded).as_bytes(), data, "decode accepted a non-canonical form");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Known answers: (UTF-8, modified UTF-7).
    const KNOWN: &[(&str, &str)] = &[
        ("", ""),
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Ünïcode", "&ANw-n&AO8-code"),
        ("A&B", "A&-B"),
        ("&", "&-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
        ("😀", "&2D3eAA-"),
        ("a\tb", "a&AAk-b"),
        ("Ärger & Freude", "&AMQ-rger &- Freude"),
    ];

    #[test]
    fn known_answers_encode_and_decode() {
        for (utf8, encoded) in KNOWN {
            assert_eq!(encode(utf8), *encoded, "encode {utf8:?}");
            assert_eq!(decode(encoded).as_deref(), Ok(*utf8), "decode {encoded:?}");
        }
    }

    #[test]
    fn rejects_non_canonical_forms() {
        let cases: &[(&str, DecodeErrorKind)] = &[
            ("&AOQ-&APY-", DecodeErrorKind::AdjacentRuns), // "ä" then "ö": one run is shorter
            ("&AGE-", DecodeErrorKind::NeedlesslyEncoded), // "a" encoded
            ("&AOQ", DecodeErrorKind::Unterminated),
            ("&", DecodeErrorKind::Unterminated),
            ("&AEE-", DecodeErrorKind::NeedlesslyEncoded), // "A" encoded
            ("&ACY-", DecodeErrorKind::NeedlesslyEncoded), // "&" encoded
            ("&APx-", DecodeErrorKind::BadPadding),        // padding bits set
            ("&APwA-", DecodeErrorKind::BadPadding),       // a whole spare character
            ("&A-", DecodeErrorKind::BadPadding),
            ("&2D0-", DecodeErrorKind::UnpairedSurrogate),
            ("&AP*-", DecodeErrorKind::InvalidBase64),
            ("&AP/-", DecodeErrorKind::InvalidBase64),
            ("a\tb", DecodeErrorKind::UnencodedByte),
        ];
        for (input, kind) in cases {
            let error = decode(input).expect_err(input);
            assert_eq!(error.kind, *kind, "{input:?}");
        }
        assert_eq!(
            decode_bytes(b"caf\xc3\xa9").expect_err("8-bit").kind,
            DecodeErrorKind::UnencodedByte
        );
    }

    #[test]
    fn escape_for_display_marks_unprintable_bytes() {
        assert_eq!(escape_for_display(b"a\x00b\\"), "a\\x00b\\x5c");
    }

    proptest! {
        #[test]
        fn round_trip(name in any::<String>()) {
            let encoded = encode(&name);
            prop_assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)));
            prop_assert_eq!(decode(&encoded), Ok(name));
        }

        #[test]
        fn decode_accepts_only_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            fuzz_decode(&bytes);
        }

        #[test]
        fn decode_accepts_only_canonical_alphabet(text in "[A-Za-z0-9+,&-]{0,24}") {
            fuzz_decode(text.as_bytes());
        }
    }
}

/// The README's example (the crate's crates.io page) compiles and runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
