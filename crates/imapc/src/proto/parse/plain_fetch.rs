//! The FETCH answers of a metadata listing, read without the general parser.
//!
//! A listing is one `* n FETCH (UID u FLAGS (…) INTERNALDATE "…" RFC822.SIZE s MODSEQ (m))`
//! line per message, and the nom grammar of [`msg_att`](super::fetch) spent ~4 000
//! instructions on each (a dispatch per item, a parser per value, the response layers
//! around them). [`plain_fetch_line`] reads exactly that shape, in upper case, item by item
//! in any order, and declines (`None`) at anything else: other items, other spellings,
//! unusual values (UID 0, an invalid date, 8-bit flags, numbers that overflow, lone LF line
//! ends). A declined line goes to [`parse_response`](super::parse_response) as before, so
//! what is accepted is parsed as the general parser parses it (a property test and the
//! fuzz target compare the two), and everything else is parsed by it.

use crate::proto::response::{BodyData, BodyItem, BodyKind, BodySection, Fetch};
use crate::types::{Flag, Uid, parse_internal_date};

/// The FETCH response in `line` (a whole line with its CRLF), when it has the plain shape
/// of a metadata listing's answer; `None` otherwise (the general parser decides then).
pub(crate) fn plain_fetch_line(line: &[u8]) -> Option<Fetch> {
    let rest = line.strip_prefix(b"* ")?;
    let (seq, rest) = digits_u32(rest)?;
    let mut rest = rest.strip_prefix(b" FETCH (")?;
    let mut fetch = Fetch { seq, ..Fetch::default() };
    loop {
        rest = item(rest, &mut fetch)?;
        match rest {
            [b' ', after @ ..] => rest = after,
            b")\r\n" => return Some(fetch),
            _ => return None,
        }
    }
}

/// [`body_literal_start`](super::body_literal_start) for the plain shape of a body FETCH's
/// answer: `* n FETCH (`, items [`plain_fetch_line`] reads, then `BODY[] ` (the whole
/// message, its literal announced next). The answer so far, the body item, and where in
/// `prefix` the body item starts; `None` for anything else.
pub(crate) fn plain_body_literal_start(prefix: &[u8]) -> Option<(Fetch, BodySection, usize)> {
    let rest = prefix.strip_prefix(b"* ")?;
    let (seq, rest) = digits_u32(rest)?;
    let mut rest = rest.strip_prefix(b" FETCH (")?;
    let mut fetch = Fetch { seq, ..Fetch::default() };
    loop {
        if rest == WHOLE_BODY {
            let section =
                BodySection { kind: BodyKind::Body, section: String::new(), origin: None };
            return Some((fetch, section, prefix.len() - rest.len()));
        }
        rest = item(rest, &mut fetch)?.strip_prefix(b" ")?;
    }
}

/// [`msg_att_rest`](super::msg_att_rest) for the end of an answer that
/// [`plain_body_literal_start`] read: `BODY[] `, the decoder's marker for the streamed
/// literal, `)` and CRLF. Adds the body item to `fetch`; `None` (and `fetch` untouched) for
/// anything else.
pub(crate) fn plain_streamed_body_rest(input: &[u8], fetch: &mut Fetch) -> Option<()> {
    let rest = input.strip_prefix(WHOLE_BODY)?.strip_prefix(b"\0")?;
    let (len, rest) = digits_u64(rest)?;
    if rest != b")\r\n" {
        return None;
    }
    let section = BodySection { kind: BodyKind::Body, section: String::new(), origin: None };
    fetch.bodies.push(BodyItem { section, data: BodyData::Streamed(len) });
    Some(())
}

/// The whole message's body item and the space before its value.
const WHOLE_BODY: &[u8] = b"BODY[] ";

/// One item at the start of `input`, stored into `fetch` as `msg_att` stores it; the rest.
fn item<'a>(input: &'a [u8], fetch: &mut Fetch) -> Option<&'a [u8]> {
    if let Some(rest) = input.strip_prefix(b"UID ") {
        let (uid, rest) = digits_u32(rest)?;
        fetch.uid = Some(Uid::new(uid)?);
        Some(rest)
    } else if let Some(rest) = input.strip_prefix(b"FLAGS (") {
        let (flags, rest) = flag_list(rest)?;
        fetch.flags = Some(flags);
        Some(rest)
    } else if let Some(rest) = input.strip_prefix(b"INTERNALDATE \"") {
        let end = rest.iter().position(|&b| matches!(b, b'"' | b'\\' | b'\r' | b'\n'))?;
        if rest[end] != b'"' {
            return None;
        }
        fetch.internal_date = Some(parse_internal_date(&rest[..end])?);
        Some(&rest[end + 1..])
    } else if let Some(rest) = input.strip_prefix(b"RFC822.SIZE ") {
        let (size, rest) = digits_u64(rest)?;
        fetch.rfc822_size = Some(size);
        Some(rest)
    } else if let Some(rest) = input.strip_prefix(b"MODSEQ (") {
        let (modseq, rest) = digits_u64(rest)?;
        fetch.modseq = Some(modseq);
        rest.strip_prefix(b")")
    } else {
        None
    }
}

/// `[flag *(SP flag)] ")"` after the `(`, printable ASCII flags only; the flags and the rest.
fn flag_list(input: &[u8]) -> Option<(Vec<Flag>, &[u8])> {
    let mut flags = Vec::new();
    if let Some(rest) = input.strip_prefix(b")") {
        return Some((flags, rest));
    }
    let mut rest = input;
    loop {
        // What `flag` takes, less 8-bit bytes (the general parser decodes those lossily).
        let len = rest
            .iter()
            .position(|&b| !matches!(b, 0x21..=0x7e) || matches!(b, b'(' | b')' | b'"' | b'{'))?;
        if len == 0 {
            return None;
        }
        let name = std::str::from_utf8(&rest[..len]).ok()?;
        flags.push(Flag::from_atom(name));
        match &rest[len..] {
            [b' ', after @ ..] => rest = after,
            [b')', after @ ..] => return Some((flags, after)),
            _ => return None,
        }
    }
}

/// Decimal digits at the start of `input` (at least one) as a `u32`; `None` on overflow.
fn digits_u32(input: &[u8]) -> Option<(u32, &[u8])> {
    let (value, rest) = digits_u64(input)?;
    Some((u32::try_from(value).ok()?, rest))
}

/// Decimal digits at the start of `input` (at least one) as a `u64`; `None` on overflow.
fn digits_u64(input: &[u8]) -> Option<(u64, &[u8])> {
    let len = input.iter().position(|b| !b.is_ascii_digit()).unwrap_or(input.len());
    if len == 0 {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in &input[..len] {
        value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some((value, &input[len..]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::response::{Response, Untagged};
    use crate::proto::{ParseOptions, parse_response};

    /// What the general parser makes of `line`, as a FETCH answer.
    fn general(line: &[u8]) -> Option<Fetch> {
        match parse_response(line, ParseOptions::default()) {
            Ok((Response::Untagged(Untagged::Fetch(fetch)), used)) if used == line.len() => {
                Some(*fetch)
            }
            _ => None,
        }
    }

    #[test]
    fn known_answers() {
        let dovecot = b"* 12 FETCH (UID 31 FLAGS (\\Seen $Label1) INTERNALDATE \
            \"07-Dec-2026 10:00:00 +0100\" RFC822.SIZE 5600 MODSEQ (9))\r\n";
        let fetch = plain_fetch_line(dovecot).expect("plain");
        assert_eq!(fetch.seq, 12);
        assert_eq!(fetch.uid, Uid::new(31));
        assert_eq!(fetch.flags, Some(vec![Flag::Seen, Flag::Keyword("$Label1".into())]));
        assert_eq!(fetch.rfc822_size, Some(5600));
        assert_eq!(fetch.modseq, Some(9));
        assert_eq!(Some(fetch), general(dovecot));
        assert_eq!(
            plain_fetch_line(b"* 1 FETCH (FLAGS ())\r\n"),
            general(b"* 1 FETCH (FLAGS ())\r\n")
        );
        // A body FETCH's answer, before and after its streamed literal.
        let prefix = b"* 3 FETCH (UID 7 BODY[] ";
        let ctx = crate::proto::parse::Ctx::default();
        let (mut fetch, section, start) = plain_body_literal_start(prefix).expect("plain");
        assert_eq!((fetch.seq, fetch.uid, start), (3, Uid::new(7), 17));
        assert_eq!(
            Some((fetch.clone(), section, start)),
            super::super::body_literal_start(ctx, prefix)
        );
        let mut general = fetch.clone();
        assert_eq!(plain_streamed_body_rest(b"BODY[] \x005600)\r\n", &mut fetch), Some(()));
        super::super::msg_att_rest(ctx, b"BODY[] \x005600)\r\n", &mut general).expect("parses");
        assert_eq!(fetch, general);
        assert_eq!(fetch.bodies[0].data, BodyData::Streamed(5600));
        // Declined: left to the general parser.
        for line in [
            &b"* 1 FETCH (UID 0)\r\n"[..],
            b"* 1 FETCH (UID 1)\n",
            b"* 1 FETCH (uid 1)\r\n",
            b"* 1 fetch (UID 1)\r\n",
            b"* 1 FETCH (UID 1 X-GUID \"g\")\r\n",
            b"* 1 FETCH (UID 4294967296)\r\n",
            b"* 1 FETCH (INTERNALDATE \"07-Dec-2026 10:00:00 +9999\")\r\n",
            b"* 1 FETCH (INTERNALDATE \"a\\\"b\")\r\n",
            b"* 1 FETCH (FLAGS (\\Seen\xff))\r\n",
            b"* 1 FETCH (FLAGS ( \\Seen))\r\n",
            b"* 1 FETCH ()\r\n",
            b"* 1 FETCH (UID 1) \r\n",
        ] {
            assert_eq!(plain_fetch_line(line), None, "{}", mutf7::escape_for_display(line));
        }
    }

    /// Pieces of FETCH answers: the items of a listing, with their usual and unusual
    /// values, other items, and bytes that make a line malformed.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0u64..5_000_000_000).prop_map(|n| format!("UID {n}")),
            1 => prop::sample::select(vec!["UID 007", "UID 0", "UID 00"]).prop_map(str::to_owned),
            4 => prop::collection::vec(
                prop::sample::select(vec![
                    "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent",
                    "\\*", "\\Xy", "$Label1", "NonJunk", "a]b", "%x", "", "é", "a{b", "a\"b",
                    "a(b", "\u{7f}", "\t",
                ]),
                0..4,
            )
            .prop_map(|flags| format!("FLAGS ({})", flags.join(" "))),
            4 => (1u32..32, 0usize..13, 1990u32..2100, 0u32..25, 0u32..60, "[+-]", 0u32..1500)
                .prop_map(|(day, month, year, hour, minute, sign, zone)| {
                    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                        "Sep", "Oct", "Nov", "Dec", "Xyz"];
                    format!("INTERNALDATE \"{day:2}-{}-{year} {hour:02}:{minute:02}:07 {sign}{zone:04}\"",
                        months[month])
                }),
            4 => (0u64..u64::MAX).prop_map(|n| format!("RFC822.SIZE {}", n >> (n % 64))),
            1 => Just("RFC822.SIZE 18446744073709551616".to_owned()),
            3 => (0u64..u64::MAX).prop_map(|n| format!("MODSEQ ({})", n >> (n % 64))),
            1 => Just("X-GUID \"abc\"".to_owned()),
            1 => Just("BODY[] NIL".to_owned()),
            1 => Just("ENVELOPE NIL".to_owned()),
            1 => "[a-zA-Z0-9 ()\"\\\\.\\[\\]-]{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Whatever start of a body FETCH's answer the fast reader accepts, the general
        /// one reads alike (answer so far, body item, where it starts); and so the end of
        /// the answer after the streamed literal. Dovecot's `UID u BODY[] ` is accepted.
        #[test]
        fn accepted_body_answers_read_as_the_general_reader_reads_them(
            seq in prop_oneof![1u64..100_000, Just(0), Just(4_294_967_296)],
            pieces in prop::collection::vec(piece(), 0..4),
            body in prop::sample::select(vec![
                "BODY[] ", "BODY[]  ", "body[] ", "BODY[1] ", "BODY[]<0> ", "BINARY[] ",
                "RFC822 ", "BODY[] NIL ", "",
            ]),
            len in prop_oneof![any::<u64>(), Just(0)],
            end in prop::sample::select(vec![")\r\n", ")\n", ") \r\n", "\r\n", " UID 5)\r\n", "))\r\n"]),
        ) {
            let items: String = pieces.iter().flat_map(|piece| [piece.as_str(), " "]).collect();
            let prefix = format!("* {seq} FETCH ({items}{body}");
            let ctx = crate::proto::parse::Ctx::default();
            let fast = plain_body_literal_start(prefix.as_bytes());
            if fast.is_some() {
                let general = super::super::body_literal_start(ctx, prefix.as_bytes());
                prop_assert_eq!(&fast, &general, "{}", prefix);
            }
            let dovecot_shape = pieces.is_empty() && body == "BODY[] ";
            if dovecot_shape && u32::try_from(seq).is_ok() {
                prop_assert!(fast.is_some(), "{}", prefix);
            }
            let Some((fetch, _, start)) = fast else { return Ok(()) };
            let mut pending = prefix.into_bytes();
            crate::proto::parse::core::write_streamed_marker(&mut pending, len);
            pending.extend_from_slice(end.as_bytes());
            let mut ours = fetch.clone();
            if plain_streamed_body_rest(&pending[start..], &mut ours).is_some() {
                let mut general = fetch.clone();
                let rest = super::super::msg_att_rest(ctx, &pending[start..], &mut general)
                    .map(|(rest, ())| rest.to_vec());
                prop_assert_eq!(rest, Ok(b"\r\n".to_vec()));
                prop_assert_eq!(ours, general);
            } else {
                prop_assert_eq!(ours, fetch, "a declined end leaves the answer as it was");
                prop_assert!(end != ")\r\n", "{}", end);
            }
        }

        /// Whatever the fast reader accepts, the general parser parses to the same answer;
        /// and a listing answer in Dovecot's spelling is accepted.
        #[test]
        fn accepted_lines_parse_as_the_general_parser_parses_them(
            seq in prop_oneof![1u64..100_000, Just(0), Just(4_294_967_296)],
            pieces in prop::collection::vec(piece(), 0..7),
            lower in prop::collection::vec(any::<bool>(), 7),
            end in prop::sample::select(vec![")\r\n", ")\n", ") \r\n", "\r\n", "))\r\n"]),
        ) {
            let pieces: Vec<String> = pieces.iter().zip(&lower).map(|(piece, &lower)| {
                if lower { piece.to_lowercase() } else { piece.clone() }
            }).collect();
            let line = format!("* {seq} FETCH ({}{end}", pieces.join(" "));
            if let Some(fetch) = plain_fetch_line(line.as_bytes()) {
                prop_assert_eq!(Some(fetch), general(line.as_bytes()), "{}", line);
            }
        }

        #[test]
        fn dovecot_listing_answers_are_read_by_the_fast_reader(
            seq in 1u32..,
            uid in 1u32..,
            flags in prop::collection::vec(
                prop::sample::select(vec!["\\Seen", "\\Answered", "\\Flagged", "$Label1"]),
                0..4,
            ),
            size in any::<u64>(),
            modseq in any::<u64>(),
        ) {
            let line = format!(
                "* {seq} FETCH (UID {uid} FLAGS ({}) INTERNALDATE \"07-Dec-2026 10:00:00 +0100\" \
                 RFC822.SIZE {size} MODSEQ ({modseq}))\r\n",
                flags.join(" ")
            );
            let fast = plain_fetch_line(line.as_bytes());
            prop_assert!(fast.is_some(), "{}", line);
            prop_assert_eq!(fast, general(line.as_bytes()));
        }
    }
}
