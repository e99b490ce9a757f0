//! Lexical rules of RFC 3501 §9: numbers, atoms, strings, literals, sequence sets.
//!
//! Every parser is a streaming nom parser: input that ends early gives
//! `nom::Err::Incomplete`, never an error.

use std::borrow::Cow;
use std::num::NonZeroU32;

use nom::bytes::streaming::{tag, tag_no_case, take, take_while, take_while1};
use nom::error::{Error, ErrorKind};
use nom::{IResult, Needed};

use crate::types::{MailboxName, SeqBound, SeqRange, SequenceSet, is_atom_char};

/// Result of a parser over response bytes.
pub(crate) type Res<'a, T> = IResult<&'a [u8], T>;

/// Options the grammar depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// Maximum nesting of parenthesised lists.
    pub(crate) max_depth: usize,
    /// Mailbox names are UTF-8 (after `ENABLE UTF8=ACCEPT` / IMAP4rev2), not mUTF-7.
    pub(crate) utf8_names: bool,
}

impl Default for Ctx {
    fn default() -> Ctx {
        Ctx { max_depth: 64, utf8_names: false }
    }
}

/// Upper-cases a short keyword into `buf` without allocating (keywords are matched
/// case-insensitively on every response, so this is hot). Words longer than the buffer
/// come back empty: no keyword we match is that long.
pub(crate) fn upper<'b>(word: &[u8], buf: &'b mut [u8; 32]) -> &'b [u8] {
    let Some(out) = buf.get_mut(..word.len()) else { return &[] };
    out.copy_from_slice(word);
    out.make_ascii_uppercase();
    out
}

pub(crate) fn fail<T>(input: &[u8], kind: ErrorKind) -> Res<'_, T> {
    Err(nom::Err::Error(Error::new(input, kind)))
}

/// `SP`.
pub(crate) fn sp(input: &[u8]) -> Res<'_, &[u8]> {
    tag(" ")(input)
}

/// `CRLF`; a bare LF is tolerated (some servers send it).
pub(crate) fn crlf(input: &[u8]) -> Res<'_, ()> {
    match input {
        [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => Ok((rest, ())),
        [] | [b'\r'] => Err(nom::Err::Incomplete(Needed::Unknown)),
        _ => fail(input, ErrorKind::CrLf),
    }
}

/// Case-insensitive keyword that must not continue as a longer atom (`NIL` but not `NILS`).
pub(crate) fn keyword<'a>(word: &'static str) -> impl Fn(&'a [u8]) -> Res<'a, ()> {
    move |input| {
        let (rest, _) = tag_no_case(word)(input)?;
        match rest.first() {
            None => Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(&b) if is_atom_char(b) || b == b']' => fail(input, ErrorKind::Tag),
            Some(_) => Ok((rest, ())),
        }
    }
}

/// `number = 1*DIGIT` (32-bit).
pub(crate) fn number(input: &[u8]) -> Res<'_, u32> {
    nom::character::streaming::u32(input)
}

/// `number64` (RFC 9051) / `mod-sequence-value` (RFC 7162).
pub(crate) fn number64(input: &[u8]) -> Res<'_, u64> {
    nom::character::streaming::u64(input)
}

/// `nz-number = digit-nz *DIGIT`.
pub(crate) fn nz_number(input: &[u8]) -> Res<'_, NonZeroU32> {
    let (rest, value) = number(input)?;
    match NonZeroU32::new(value) {
        Some(v) => Ok((rest, v)),
        None => fail(input, ErrorKind::Verify),
    }
}

/// `atom = 1*ATOM-CHAR`.
pub(crate) fn atom(input: &[u8]) -> Res<'_, &[u8]> {
    take_while1(is_atom_char)(input)
}

/// `1*ASTRING-CHAR` (atom chars plus `]`).
pub(crate) fn astring_atom(input: &[u8]) -> Res<'_, &[u8]> {
    take_while1(|b| is_atom_char(b) || b == b']')(input)
}

/// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`, with `\"` and `\\` escapes. 8-bit bytes are
/// accepted (UTF-8 after `UTF8=ACCEPT`); CR, LF and NUL are not.
pub(crate) fn quoted(input: &[u8]) -> Res<'_, Cow<'_, [u8]>> {
    let (body, _) = tag("\"")(input)?;
    let mut owned: Option<Vec<u8>> = None;
    // Plain bytes up to the first one that ends the string, escapes or is refused: found
    // with a tight loop (most quoted strings have no escape at all), then handled below.
    let Some(mut index) = body.iter().position(|&b| matches!(b, b'"' | b'\\' | b'\r' | b'\n' | 0))
    else {
        return Err(nom::Err::Incomplete(Needed::Unknown));
    };
    loop {
        let Some(&byte) = body.get(index) else {
            return Err(nom::Err::Incomplete(Needed::Unknown));
        };
        match byte {
            b'"' => {
                let rest = &body[index + 1..];
                let value = match owned {
                    Some(v) => Cow::Owned(v),
                    None => Cow::Borrowed(&body[..index]),
                };
                return Ok((rest, value));
            }
            b'\\' => {
                let Some(&escaped) = body.get(index + 1) else {
                    return Err(nom::Err::Incomplete(Needed::Unknown));
                };
                if escaped != b'"' && escaped != b'\\' {
                    return fail(&body[index..], ErrorKind::Escaped);
                }
                owned.get_or_insert_with(|| body[..index].to_vec()).push(escaped);
                index += 2;
            }
            b'\r' | b'\n' | 0 => return fail(&body[index..], ErrorKind::Char),
            _ => {
                if let Some(v) = owned.as_mut() {
                    v.push(byte);
                }
                index += 1;
            }
        }
    }
}

/// The announcement of `literal = "{" number64 ["+"] "}" CRLF` or `literal8 = "~{" …`:
/// returns the length. A server never sends `{n+}`, but accepting it costs nothing.
pub(crate) fn literal_header(input: &[u8]) -> Res<'_, u64> {
    let input = match input.first() {
        Some(b'~') => &input[1..],
        Some(_) => input,
        None => return Err(nom::Err::Incomplete(Needed::Unknown)),
    };
    let (rest, _) = tag("{")(input)?;
    let (rest, len) = number64(rest)?;
    let rest = rest.strip_prefix(b"+").unwrap_or(rest);
    let (rest, _) = tag("}")(rest)?;
    let (rest, ()) = crlf(rest)?;
    Ok((rest, len))
}

/// `literal` / `literal8` with its data, which must be in the input.
pub(crate) fn literal(input: &[u8]) -> Res<'_, &[u8]> {
    let (rest, len) = literal_header(input)?;
    let Ok(len) = usize::try_from(len) else { return fail(input, ErrorKind::Digit) };
    take(len)(rest)
}

/// `string = quoted / literal`.
pub(crate) fn string(input: &[u8]) -> Res<'_, Cow<'_, [u8]>> {
    match input.first() {
        Some(b'"') => quoted(input),
        Some(b'{' | b'~') => literal(input).map(|(rest, v)| (rest, Cow::Borrowed(v))),
        Some(_) => fail(input, ErrorKind::Char),
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
    }
}

/// `astring = 1*ASTRING-CHAR / string`.
pub(crate) fn astring(input: &[u8]) -> Res<'_, Cow<'_, [u8]>> {
    match input.first() {
        Some(b'"' | b'{' | b'~') => string(input),
        Some(_) => astring_atom(input).map(|(rest, v)| (rest, Cow::Borrowed(v))),
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
    }
}

/// `nil = "NIL"`.
pub(crate) fn nil(input: &[u8]) -> Res<'_, ()> {
    keyword("NIL")(input)
}

/// `nstring = string / nil`.
pub(crate) fn nstring(input: &[u8]) -> Res<'_, Option<Cow<'_, [u8]>>> {
    match input.first() {
        Some(b'N' | b'n') => nil(input).map(|(rest, ())| (rest, None)),
        _ => string(input).map(|(rest, v)| (rest, Some(v))),
    }
}

/// Text to the end of the line (`text = 1*TEXT-CHAR`, here possibly empty), lossily UTF-8.
pub(crate) fn text(input: &[u8]) -> Res<'_, String> {
    let (rest, bytes) = take_while(|b| b != b'\r' && b != b'\n')(input)?;
    Ok((rest, String::from_utf8_lossy(bytes).into_owned()))
}

/// `mailbox = "INBOX" / astring`, decoded per the context.
pub(crate) fn mailbox(ctx: Ctx) -> impl Fn(&[u8]) -> Res<'_, MailboxName> {
    move |input| {
        let (rest, raw) = astring(input)?;
        Ok((rest, mailbox_name(ctx, &raw)))
    }
}

pub(crate) fn mailbox_name(ctx: Ctx, raw: &[u8]) -> MailboxName {
    if ctx.utf8_names || !raw.is_ascii() {
        MailboxName::from_utf8_wire(raw)
    } else {
        MailboxName::from_mutf7(raw)
    }
}

/// A one-character quoted delimiter or NIL: `(DQUOTE QUOTED-CHAR DQUOTE / nil)`.
pub(crate) fn delimiter(input: &[u8]) -> Res<'_, Option<char>> {
    match input.first() {
        Some(b'"') => {
            let (rest, bytes) = quoted(input)?;
            let text = String::from_utf8_lossy(&bytes);
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok((rest, Some(c))),
                _ => fail(input, ErrorKind::Char),
            }
        }
        _ => nil(input).map(|(rest, ())| (rest, None)),
    }
}

/// `seq-number = nz-number / "*"`.
fn seq_number(input: &[u8]) -> Res<'_, SeqBound> {
    match input.first() {
        Some(b'*') => Ok((&input[1..], SeqBound::Largest)),
        _ => nz_number(input).map(|(rest, v)| (rest, SeqBound::Value(v))),
    }
}

/// `sequence-set = (seq-number / seq-range) ["," sequence-set]`.
pub(crate) fn sequence_set(input: &[u8]) -> Res<'_, SequenceSet> {
    let mut ranges = Vec::new();
    let mut rest = input;
    loop {
        let (after, start) = seq_number(rest)?;
        let (after, end) = match after.first() {
            Some(b':') => seq_number(&after[1..])?,
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(_) => (after, start),
        };
        ranges.push(SeqRange { start, end });
        match after.first() {
            Some(b',') => rest = &after[1..],
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(_) => return Ok((after, SequenceSet::from_ranges(ranges))),
        }
    }
}

/// Skips one value of any shape — atom, number, string, literal, NIL or a parenthesised
/// list of values — for items we do not model (ENVELOPE, BODYSTRUCTURE, extension data).
/// Nesting deeper than `depth` fails with `ErrorKind::TooLarge`.
pub(crate) fn skip_value(depth: usize) -> impl Fn(&[u8]) -> Res<'_, ()> {
    move |input| skip_value_at(input, depth)
}

fn skip_value_at(input: &[u8], depth: usize) -> Res<'_, ()> {
    match input.first() {
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
        Some(b'(') => {
            if depth == 0 {
                return Err(nom::Err::Failure(Error::new(input, ErrorKind::TooLarge)));
            }
            let mut rest = &input[1..];
            let mut first = true;
            loop {
                match rest.first() {
                    None => return Err(nom::Err::Incomplete(Needed::Unknown)),
                    Some(b')') => return Ok((&rest[1..], ())),
                    Some(b' ') if !first => rest = &rest[1..],
                    Some(_) if first => {}
                    Some(_) => return fail(rest, ErrorKind::Char),
                }
                first = false;
                // Tolerate "( )" style doubled spaces and an empty list after a space.
                if rest.first() == Some(&b')') {
                    continue;
                }
                let (after, ()) = skip_value_at(rest, depth - 1)?;
                rest = after;
            }
        }
        Some(b'"' | b'{' | b'~') => string(input).map(|(rest, _)| (rest, ())),
        Some(b'\0') => streamed_marker(input).map(|(rest, _)| (rest, ())),
        Some(_) => {
            // Atoms, numbers, NIL, flags such as \Seen, and section names with brackets.
            let (rest, _) = take_while1(|b: u8| {
                b > 0x20 && b != 0x7f && !matches!(b, b'(' | b')' | b'"' | b'{')
            })(input)?;
            if rest.is_empty() {
                return Err(nom::Err::Incomplete(Needed::Unknown));
            }
            Ok((rest, ()))
        }
    }
}

/// The decoder's stand-in for a body literal that went to a handler: NUL (never valid in
/// an IMAP line outside literal8 data, and the framer rejects it there) followed by the
/// literal's length in decimal.
pub(crate) fn streamed_marker(input: &[u8]) -> Res<'_, u64> {
    let (rest, _) = tag("\0")(input)?;
    number64(rest)
}

/// Writes the stand-in parsed by [`streamed_marker`].
pub(crate) fn write_streamed_marker(out: &mut Vec<u8>, len: u64) {
    out.push(0);
    // The decimal digits, without `core::fmt` (once per streamed body).
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = len;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_known_answers() {
        let table: &[(&[u8], &[u8], &[u8])] = &[
            (b"\"abc\" ", b"abc", b" "),
            (b"\"a\\\"b\\\\c\")", b"a\"b\\c", b")"),
            (b"\"\" ", b"", b" "),
            (b"{3}\r\nabc)", b"abc", b")"),
            (b"{0}\r\n ", b"", b" "),
            (b"~{2}\r\n\0\xff ", b"\0\xff", b" "),
            (b"\"gr\xc3\xbc\xc3\x9f\" ", "grüß".as_bytes(), b" "),
        ];
        for (input, value, rest) in table {
            let (r, v) = string(input).unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
            assert_eq!((v.as_ref(), r), (*value, *rest), "{}", mutf7::escape_for_display(input));
        }
        for bad in [&b"\"a\rb\""[..], b"\"a\\nb\"", b"abc"] {
            assert!(matches!(string(bad), Err(nom::Err::Error(_))), "{bad:?}");
        }
        for incomplete in [&b"\"abc"[..], b"{3}\r\nab", b"{3}\r", b"{3", b"", b"\"a\\"] {
            assert!(matches!(string(incomplete), Err(nom::Err::Incomplete(_))), "{incomplete:?}");
        }
    }

    #[test]
    fn nil_and_astring() {
        assert_eq!(nstring(b"NIL ").map(|(r, v)| (r, v.is_none())), Ok((&b" "[..], true)));
        assert_eq!(nstring(b"nil)").map(|(r, v)| (r, v.is_none())), Ok((&b")"[..], true)));
        assert!(nstring(b"NILS ").is_err());
        assert!(matches!(nstring(b"NI"), Err(nom::Err::Incomplete(_))));
        assert_eq!(
            astring(b"INBOX ").map(|(r, v)| (r, v.into_owned())),
            Ok((&b" "[..], b"INBOX".to_vec()))
        );
        assert_eq!(
            astring(b"a]b)").map(|(r, v)| (r, v.into_owned())),
            Ok((&b")"[..], b"a]b".to_vec()))
        );
    }

    #[test]
    fn sequence_sets() {
        let table: &[(&[u8], &str)] = &[
            (b"1 ", "1"),
            (b"1:3,5,7:* ", "1:3,5,7:*"),
            (b"*:4)", "*:4"),
            (b"4294967295]", "4294967295"),
        ];
        for (input, written) in table {
            let (_, set) = sequence_set(input).expect("valid set");
            assert_eq!(set.to_string(), *written);
        }
        assert!(sequence_set(b"0 ").is_err());
        assert!(sequence_set(b"4294967296 ").is_err());
        assert!(matches!(sequence_set(b"1:3,"), Err(nom::Err::Incomplete(_))));
    }

    #[test]
    fn skip_value_handles_nesting_and_limits() {
        let envelope = b"(\"date\" \"subj\" ((\"A\" NIL \"a\" \"x.org\")) NIL NIL NIL NIL NIL {3}\r\n)()) rest";
        assert_eq!(skip_value(8)(envelope), Ok((&b" rest"[..], ())));
        let deep = [b"(".repeat(100), b")".repeat(100), b" ".to_vec()].concat();
        assert!(matches!(skip_value(64)(&deep), Err(nom::Err::Failure(_))));
        assert!(skip_value(128)(&deep).is_ok());
        assert!(matches!(skip_value(8)(b"(a (b"), Err(nom::Err::Incomplete(_))));
    }

    #[test]
    fn literal_header_lengths() {
        assert_eq!(literal_header(b"{4294967295}\r\n"), Ok((&b""[..], 4_294_967_295)));
        assert_eq!(literal_header(b"~{5}\r\n"), Ok((&b""[..], 5)));
        assert!(literal_header(b"{99999999999999999999999}\r\n").is_err());
    }

    /// `quoted` as first written, a byte at a time: the reference for the scan that
    /// finds the first byte needing attention before handling it.
    fn quoted_reference(input: &[u8]) -> Res<'_, Cow<'_, [u8]>> {
        let (body, _) = tag("\"")(input)?;
        let mut owned: Option<Vec<u8>> = None;
        let mut index = 0;
        loop {
            let Some(&byte) = body.get(index) else {
                return Err(nom::Err::Incomplete(Needed::Unknown));
            };
            match byte {
                b'"' => {
                    let rest = &body[index + 1..];
                    let value = match owned {
                        Some(v) => Cow::Owned(v),
                        None => Cow::Borrowed(&body[..index]),
                    };
                    return Ok((rest, value));
                }
                b'\\' => {
                    let Some(&escaped) = body.get(index + 1) else {
                        return Err(nom::Err::Incomplete(Needed::Unknown));
                    };
                    if escaped != b'"' && escaped != b'\\' {
                        return fail(&body[index..], ErrorKind::Escaped);
                    }
                    owned.get_or_insert_with(|| body[..index].to_vec()).push(escaped);
                    index += 2;
                }
                b'\r' | b'\n' | 0 => return fail(&body[index..], ErrorKind::Char),
                _ => {
                    if let Some(v) = owned.as_mut() {
                        v.push(byte);
                    }
                    index += 1;
                }
            }
        }
    }

    proptest::proptest! {
        /// Any bytes after a quote (quotes, backslashes, CR, LF and NUL often), cut at
        /// every length: `quoted` gives what the byte-at-a-time reference gives (value,
        /// rest, error and where it points, or "incomplete" for every proper prefix of a
        /// string).
        #[test]
        fn quoted_matches_the_byte_at_a_time_reference(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => proptest::strategy::Just(b'"'),
                    3 => proptest::strategy::Just(b'\\'),
                    1 => proptest::strategy::Just(b'\r'),
                    1 => proptest::strategy::Just(b'\n'),
                    1 => proptest::strategy::Just(0u8),
                    8 => proptest::num::u8::ANY,
                ],
                0..40),
        ) {
            let mut input = vec![b'"'];
            input.extend_from_slice(&body);
            for end in 0..=input.len() {
                let prefix = &input[..end];
                proptest::prop_assert_eq!(quoted(prefix), quoted_reference(prefix), "{:?}", prefix);
            }
        }

        /// The streamed-body marker is a NUL and the length in decimal, and parses back.
        #[test]
        fn streamed_marker_round_trips(len in proptest::prop_oneof![
            proptest::num::u64::ANY, 0u64..1000, proptest::strategy::Just(u64::MAX)
        ]) {
            let mut out = b"x".to_vec();
            write_streamed_marker(&mut out, len);
            proptest::prop_assert_eq!(&out, &format!("x\0{len}").into_bytes());
            out.push(b')');
            proptest::prop_assert_eq!(streamed_marker(&out[1..]), Ok((&b")"[..], len)));
        }
    }
}
