//! When a message arrived, read from its header: for sources that keep no received date
//! (POP3 has no INTERNALDATE).
//!
//! The first `Received:` header is the one the final mail server added at delivery, so
//! the date after its last `;` (RFC 5321 §4.4) is the closest thing to the received date
//! the original server had. Without one, the `Date:` header (when the sender wrote it) is
//! used, as Dovecot's `pop3c` storage does; without either, nothing.
//!
//! ```
//! use dsync_core::message_date::received_date;
//! let header = b"Received: from mx.example.org by mail.example.net;\r\n \
//!     Tue, 2 Jan 2024 10:00:07 +0100 (CET)\r\nDate: Tue, 2 Jan 2024 09:59:00 +0100\r\n\r\n";
//! assert_eq!(received_date(header), Some(1_704_186_007));
//! ```

use chrono::DateTime;

/// How much of a header is looked at: a `Received:` header comes first in practice.
pub const SCANNED_HEADER_BYTES: usize = 64 * 1024;

/// The received date (UNIX time) from a message header, or from a whole message (only the
/// header is read). `None` when neither `Received:` nor `Date:` holds a valid date.
pub fn received_date(message: &[u8]) -> Option<i64> {
    let header = &message[..message.len().min(SCANNED_HEADER_BYTES)];
    let mut date = None;
    let mut received_seen = false;
    for (name, value) in fields(header) {
        if name.eq_ignore_ascii_case(b"Received") && !received_seen {
            // Only the first Received: counts; a malformed one falls back to Date:.
            received_seen = true;
            let stamp = value.iter().rposition(|&b| b == b';').map(|at| &value[at + 1..]);
            if let Some(received) = stamp.and_then(parse_date) {
                return Some(received);
            }
        } else if name.eq_ignore_ascii_case(b"Date") && date.is_none() {
            date = parse_date(&value);
        }
    }
    date
}

/// The header's fields, unfolded, up to the empty line that ends it.
fn fields(header: &[u8]) -> impl Iterator<Item = (&[u8], Vec<u8>)> {
    let mut lines = header.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut current: Option<(&[u8], Vec<u8>)> = None;
    let mut ended = false;
    std::iter::from_fn(move || {
        while !ended {
            let Some(line) = lines.next() else {
                ended = true;
                break;
            };
            if line.is_empty() {
                ended = true;
                break;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                if let Some((_, value)) = current.as_mut() {
                    value.extend_from_slice(line);
                }
                continue;
            }
            let next = line
                .iter()
                .position(|&b| b == b':')
                .map(|colon| (&line[..colon], line[colon + 1..].to_vec()));
            let finished = std::mem::replace(&mut current, next);
            if finished.is_some() {
                return finished;
            }
        }
        current.take()
    })
}

/// An RFC 5322 date, comments removed (`(CET)`), obsolete forms as chrono accepts them.
fn parse_date(value: &[u8]) -> Option<i64> {
    let mut text = String::with_capacity(value.len());
    let mut depth = 0usize;
    for &byte in value {
        match byte {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'\t' | b'\r' | b'\n' if depth == 0 => text.push(' '),
            _ if depth == 0 && byte.is_ascii() => text.push(char::from(byte)),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    DateTime::parse_from_rfc2822(&text).ok().map(|date| date.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_2: i64 = 1_704_189_600; // Tue, 2 Jan 2024 10:00:00 +0000

    #[test]
    fn first_received_wins_over_later_ones_and_date() {
        let header = b"Return-Path: <a@b>\r\n\
            Received: by final.example; Tue, 2 Jan 2024 10:00:00 +0000\r\n\
            Received: by relay.example; Tue, 2 Jan 2024 09:00:00 +0000\r\n\
            Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody; Wed, 3 Jan 2024 00:00:00 +0000";
        assert_eq!(received_date(header), Some(JAN_2));
    }

    #[test]
    fn folded_received_with_semicolons_in_comments_and_a_zone_comment() {
        let header = b"Received: from a (helo; x) by b\r\n\twith ESMTP id 1;\r\n\
            \tTue, 2 Jan 2024 11:00:00 +0100 (CET)\r\n\r\n";
        assert_eq!(received_date(header), Some(JAN_2));
    }

    #[test]
    fn date_is_the_fallback_and_later_received_headers_do_not_count() {
        let header = b"Date: Tue, 2 Jan 2024 10:00:00 GMT\r\nSubject: x\r\n\r\n";
        assert_eq!(received_date(header), Some(JAN_2));
        let bad_received = b"Received: by x; yesterday\r\nDate: 2 Jan 2024 10:00:00 +0000\r\n\
            Received: by y; Wed, 3 Jan 2024 00:00:00 +0000\r\n\r\n";
        assert_eq!(received_date(bad_received), Some(JAN_2));
    }

    #[test]
    fn bare_lf_lines_and_nothing_usable() {
        assert_eq!(received_date(b"Date: Tue, 2 Jan 2024 10:00:00 +0000\n\n"), Some(JAN_2));
        assert_eq!(received_date(b"Subject: no dates\r\n\r\nDate: Tue, 2 Jan 2024\r\n"), None);
        assert_eq!(received_date(b"Date: not a date\r\n\r\n"), None);
        assert_eq!(received_date(b""), None);
        assert_eq!(received_date(b"\xff\xfe: \xff(((\r\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = received_date(&bytes);
        }
    }
}
