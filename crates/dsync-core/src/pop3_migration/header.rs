//! The header hash of Dovecot's pop3-migration plugin (`pop3_migration_get_hdr_sha1` in
//! `src/plugins/pop3-migration/pop3-migration-plugin.c`, Dovecot 2.3): SHA-1 over the
//! message header after a filter that hides what IMAP and POP3 servers show differently,
//! then the version-4 normalisation of [`header_hash`](crate::header_hash).
//!
//! The filter, line by line, exactly as Dovecot's header parser and filter stream see the
//! lines (`message-header-parser.c`, `istream-header-filter.c`):
//! * headers named in [`SKIPPED_HEADERS`] are dropped (case-insensitively), with their
//!   continuation lines;
//! * a line that is not `name: value` is dropped, and so are its continuation lines;
//! * a continuation line of only spaces and tabs is dropped — and with it every further
//!   continuation line of the same header (the filter carries the decision over);
//! * a header whose name has a byte ≤ 0x20 or ≥ 0x7f is dropped (a NUL ends the name);
//! * a line of only CRs stops everything: neither it, nor any later header, nor the
//!   end-of-header line is hashed (Courier IMAP stops there, its POP3 does not);
//! * the CR of each CRLF is removed (other CRs stay and normalise to `?`);
//! * the body is never hashed; the empty end-of-header line is, as `\n`.
//!
//! Known-answer values come from Dovecot's own `test-pop3-migration-plugin.c`.

use sha1::{Digest, Sha1};

use crate::header_hash::{HashVersion, Normalizer};

/// Headers the plugin never hashes because servers show them differently over IMAP and
/// POP3 (Yahoo IMAP has `Return-Path`, its POP3 does not; mbox servers add `Status`,
/// `X-UID`, `X-IMAP`, `Content-Length` …).
pub const SKIPPED_HEADERS: [&str; 11] = [
    "Content-Length",
    "Return-Path",
    "Status",
    "X-IMAP",
    "X-IMAPbase",
    "X-Keywords",
    "X-Message-Flag",
    "X-Status",
    "X-UID",
    "X-UIDL",
    "X-Yahoo-Newman-Property",
];

/// Dovecot's `MESSAGE_HEADER_NAME_MAX_LEN`: a longer name makes the line a value only.
const NAME_MAX_LEN: usize = 1000;

/// A filtered-header SHA-1 and whether the header's end (the empty line) was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderHash {
    /// SHA-1 of the filtered, normalised header.
    pub sha1: [u8; 20],
    /// False when the input ended inside the header. Dovecot then fetches the whole
    /// message (`RETR` / `BODY[]`) and hashes its header instead, because some servers cut
    /// headers at odd lines in `TOP n 0` / `BODY[HEADER]`; do the same and hash again.
    pub has_end_of_header: bool,
}

impl HeaderHash {
    /// The SHA-1 in lower-case hex.
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        self.sha1.iter().fold(String::with_capacity(40), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }
}

/// The hash of a header block (`TOP n 0`, `BODY[HEADER]`) or of a whole message.
///
/// ```
/// use dsync_core::pop3_migration::header_sha1;
/// // IMAP and POP3 views that differ in a skipped header and in spacing hash the same.
/// let imap = header_sha1(b"Subject: hi\r\nX-UID: 7\r\nDate: x\r\n\r\nbody");
/// let pop3 = header_sha1(b"Subject:  hi \r\nDate:x\r\n\r\n");
/// assert_eq!(imap, pop3);
/// assert!(imap.has_end_of_header);
/// ```
pub fn header_sha1(input: &[u8]) -> HeaderHash {
    let mut hasher = HeaderHasher::new();
    hasher.update(input);
    hasher.finish()
}

/// Streaming form of [`header_sha1`]: feed the message in chunks until
/// [`update`](Self::update) returns false (the header ended), then [`finish`](Self::finish).
/// Memory: one header line.
#[derive(Debug, Clone)]
pub struct HeaderHasher {
    sha1: Sha1,
    normalizer: Normalizer,
    /// The current line so far (without its LF).
    line: Vec<u8>,
    /// No line processed yet: a first line starting with a space is not a continuation.
    first_line: bool,
    /// The filter's decision for the previous line, inherited by continuation lines.
    previous_dropped: bool,
    /// Name and name-to-value separator length of the last non-continuation line, which
    /// Dovecot's parser keeps for the continuation lines that follow.
    name: Vec<u8>,
    middle_len: usize,
    /// A CR-only line was seen: hash nothing more.
    stopped: bool,
    end_of_header: bool,
}

impl Default for HeaderHasher {
    fn default() -> HeaderHasher {
        HeaderHasher::new()
    }
}

impl HeaderHasher {
    /// A hasher at the start of a message.
    pub fn new() -> HeaderHasher {
        HeaderHasher {
            sha1: Sha1::new(),
            normalizer: Normalizer::new(HashVersion::V4),
            line: Vec::new(),
            first_line: true,
            previous_dropped: false,
            name: Vec::new(),
            middle_len: 0,
            stopped: false,
            end_of_header: false,
        }
    }

    /// Feeds the next bytes; returns false once the header has ended (more input is
    /// ignored).
    pub fn update(&mut self, mut data: &[u8]) -> bool {
        while !self.end_of_header && !data.is_empty() {
            let Some(lf) = memchr::memchr(b'\n', data) else {
                self.line.extend_from_slice(data);
                break;
            };
            if self.line.is_empty() {
                self.line_done(&data[..lf], true);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&data[..lf]);
                self.line_done(&line, true);
                line.clear();
                self.line = line;
            }
            data = &data[lf + 1..];
        }
        !self.end_of_header
    }

    /// The hash. A last line without LF counts as a header line without line end, as
    /// Dovecot's parser treats it.
    pub fn finish(mut self) -> HeaderHash {
        if !self.end_of_header && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, false);
        }
        HeaderHash { sha1: self.sha1.finalize().into(), has_end_of_header: self.end_of_header }
    }

    fn emit(&mut self, bytes: &[u8]) {
        let sha1 = &mut self.sha1;
        self.normalizer.feed(bytes, &mut |normalised: &[u8]| sha1.update(normalised));
    }

    /// One line, without its LF (`has_newline`) or the input's unterminated last line.
    fn line_done(&mut self, raw: &[u8], has_newline: bool) {
        // The parser drops the CR of CRLF only.
        let text = if has_newline { raw.strip_suffix(b"\r").unwrap_or(raw) } else { raw };
        let continued = !self.first_line && matches!(raw.first(), Some(b' ' | b'\t'));
        self.first_line = false;
        if has_newline && text.is_empty() && !continued {
            self.end_of_header = true;
            if !self.stopped {
                self.emit(b"\n");
            }
            return;
        }
        let (value_start, mut dropped) = if continued {
            (0, self.previous_dropped)
        } else {
            self.split_name(text);
            let value_start =
                if self.middle_len == 0 { 0 } else { self.name.len() + self.middle_len };
            (value_start, is_skipped(c_string(&self.name)))
        };
        let value = &text[value_start..];
        // pop3_header_filter_callback, in its order.
        if !value.is_empty()
            && self.middle_len == 0
            && self.name.is_empty()
            && value.iter().all(|&b| b == b'\r')
        {
            self.stopped = true;
        } else if !continued && self.middle_len == 0 {
            dropped = true; // not "name: value" (Zimbra's BODY[HEADER] drops such lines)
        } else if continued && value.iter().all(|&b| b == b' ' || b == b'\t') {
            dropped = true; // whitespace-only continuation (Zimbra drops it too)
        }
        if self.stopped || !name_is_valid(c_string(&self.name)) {
            dropped = true;
        }
        self.previous_dropped = dropped;
        if !dropped {
            self.emit(text);
            if has_newline {
                self.emit(b"\n");
            }
        }
    }

    /// Splits a non-continuation line into name and separator as Dovecot's parser does:
    /// name = bytes before the first `:` minus trailing spaces/tabs; separator = from there
    /// through the colon and one space or tab after it. No colon, or a name longer than
    /// 1000 bytes: the whole line is a value (empty name, empty separator).
    fn split_name(&mut self, text: &[u8]) {
        self.name.clear();
        self.middle_len = 0;
        let Some(colon) = memchr::memchr(b':', text) else { return };
        let mut name_end = colon;
        while name_end > 0 && matches!(text[name_end - 1], b' ' | b'\t') {
            name_end -= 1;
        }
        if name_end > NAME_MAX_LEN {
            return;
        }
        let mut value_start = colon + 1;
        if matches!(text.get(value_start), Some(b' ' | b'\t')) {
            value_start += 1;
        }
        self.name.extend_from_slice(&text[..name_end]);
        self.middle_len = value_start - name_end;
    }
}

/// The name as C code sees it: up to the first NUL.
fn c_string(name: &[u8]) -> &[u8] {
    memchr::memchr(0, name).map_or(name, |nul| &name[..nul])
}

fn is_skipped(name: &[u8]) -> bool {
    SKIPPED_HEADERS.iter().any(|skipped| skipped.as_bytes().eq_ignore_ascii_case(name))
}

/// `header_name_is_valid`: no byte ≤ 0x20 or ≥ 0x7f.
fn name_is_valid(name: &[u8]) -> bool {
    name.iter().all(|&b| b > 0x20 && b < 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dovecot 2.3.19's own table (`test-pop3-migration-plugin.c`).
    #[test]
    fn known_answers_from_dovecot() {
        let cases: [(&[u8], &str, bool); 18] = [
            (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709", false),
            (b"\n", "adc83b19e793491b1c6ea0fd8b46cd9f32e592fc", true),
            (b"a: \r\n", "a3871371f2d468493005286282ae10549dab2c57", false),
            (b"a: b\r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b \r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b  \r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b     \r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\r\n\r\n", "938b96404495cced816e3a4f6031734eab4e71b3", true),
            (b"a: b\r\n\r\r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\r\n\r\r\nc: d\r\n\r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", true),
            (b"a: b\r\n \r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\r\n  \r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\r\n\t\r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\t\t\t\t\r\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\nfoo\n", "44ef6a20971148dd54a161f79814e22e2d098ddb", false),
            (b"a: b\nc: d\n", "4dbea2c1bdd1323e15931382c1835200d9286230", false),
            (b"a:b\nc:d\n", "4dbea2c1bdd1323e15931382c1835200d9286230", false),
            (b"a: b\nfoo\nc: d\n", "4dbea2c1bdd1323e15931382c1835200d9286230", false),
        ];
        for (input, sha1, end_of_header) in cases {
            let hash = header_sha1(input);
            let shown = String::from_utf8_lossy(input);
            assert_eq!(hash.hex(), sha1, "{shown:?}");
            assert_eq!(hash.has_end_of_header, end_of_header, "{shown:?}");
            // Any split of the input hashes the same.
            for cut in 0..=input.len() {
                let mut hasher = HeaderHasher::new();
                hasher.update(&input[..cut]);
                hasher.update(&input[cut..]);
                assert_eq!(hasher.finish(), hash, "{shown:?} cut at {cut}");
            }
        }
    }

    /// Equivalences that follow from the filter, each checked against its plain form.
    #[test]
    fn filtered_differences_hash_alike() {
        let base = header_sha1(b"Subject: hello world\r\nFrom: a@b\r\n\r\n");
        let same: [&[u8]; 10] = [
            b"Subject: hello world\r\nFrom: a@b\r\n\r\nbody is ignored\r\n",
            b"Subject: hello world\nFrom: a@b\n\n",
            b"Return-Path: <x@y>\r\nSubject: hello world\r\nX-UID: 42\r\nStatus: RO\r\nFrom: a@b\r\n\r\n",
            b"Subject:hello\tworld  \r\nFrom:   a@b\r\n\r\n",
            b"Subject: hello world\r\nbroken line\r\n continued broken\r\nFrom: a@b\r\n\r\n",
            b"Subject: hello world\r\n \r\n dropped after a blank continuation\r\nFrom: a@b\r\n\r\n",
            b"Subject: hello world\r\nBad Name: x\r\n\x7fName: y\r\nFrom: a@b\r\n\r\n",
            b"Subject: hello world\r\nX-Keywords: $Label1\r\n folded keyword\r\nFrom: a@b\r\n\r\n",
            b"Subject: hello world\r\nFrom: a@b\r\n\r\r\n\r\n",
            b"CONTENT-LENGTH: 12\r\nSubject: hello world\r\nFrom: a@b\r\n\r\n",
        ];
        // The CR-only line hides the end of header: compare that one without it.
        for input in same {
            let hash = header_sha1(input);
            if input.windows(3).any(|w| w == b"\r\r\n") {
                assert_eq!(hash.sha1, header_sha1(b"Subject: hello world\r\nFrom: a@b\r\n").sha1);
            } else {
                assert_eq!(hash.sha1, base.sha1, "{:?}", String::from_utf8_lossy(input));
            }
        }
        let different: [&[u8]; 4] = [
            b"Subject: hello world!\r\nFrom: a@b\r\n\r\n",
            b"From: a@b\r\nSubject: hello world\r\n\r\n",
            b"Subject: hello world\r\nFrom: a@b\r\n",
            b"Subject: hello world\r\nFrom: a@b\r\n continued\r\n\r\n",
        ];
        for input in different {
            assert_ne!(header_sha1(input).sha1, base.sha1, "{:?}", String::from_utf8_lossy(input));
        }
        // 8-bit bytes and '?' runs collapse (Zimbra, Yahoo), NUL ends a name.
        assert_eq!(
            header_sha1("Subject: caf\u{e9} \u{65e5}\r\n\r\n".as_bytes()),
            header_sha1(b"Subject: caf? ?\r\n\r\n")
        );
        assert_eq!(header_sha1(b"X-UID\0junk: 1\r\n\r\n"), header_sha1(b"\r\n"));
        assert_eq!(
            header_sha1(&[b"x".repeat(1001), b": y\r\n\r\n".to_vec()].concat()),
            header_sha1(b"\r\n"),
            "an overlong name makes the line a value, which is dropped"
        );
    }
}
