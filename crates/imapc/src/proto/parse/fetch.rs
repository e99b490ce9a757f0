//! `msg-att` of FETCH responses (RFC 3501 §7.4.2, RFC 3516, RFC 7162, Gmail, RFC 8474).

use nom::Needed;
use nom::bytes::streaming::{tag, take_while1};
use nom::error::ErrorKind;

use super::core::{
    Ctx, Res, astring, atom, fail, nil, nstring, number, number64, quoted, skip_value, sp,
    streamed_marker, string, upper,
};
use super::flag::flag_list;
use crate::proto::response::{BodyData, BodyItem, BodyKind, BodySection, Fetch};
use crate::types::{Uid, is_atom_char, parse_internal_date};

/// `msg-att = "(" (msg-att-dynamic / msg-att-static) *(SP …) ")"`.
pub(crate) fn msg_att(ctx: Ctx, input: &[u8]) -> Res<'_, Fetch> {
    let (mut rest, _) = tag("(")(input)?;
    let mut fetch = Fetch::default();
    if rest.first() == Some(&b')') {
        return Ok((&rest[1..], fetch));
    }
    loop {
        let (after, ()) = fetch_item(ctx, rest, &mut fetch)?;
        match after.first() {
            Some(b' ') => rest = &after[1..],
            Some(b')') => return Ok((&after[1..], fetch)),
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(_) => return fail(after, ErrorKind::Char),
        }
    }
}

/// The items of a FETCH response from `input` on (which starts at an item) up to and
/// including its `)`, added to `fetch`, which holds the items before them: the end of
/// [`msg_att`] for a response whose start [`body_literal_start`] parsed already.
pub(crate) fn msg_att_rest<'a>(ctx: Ctx, input: &'a [u8], fetch: &mut Fetch) -> Res<'a, ()> {
    let mut rest = input;
    loop {
        let (after, ()) = fetch_item(ctx, rest, fetch)?;
        match after.first() {
            Some(b' ') => rest = &after[1..],
            Some(b')') => return Ok((&after[1..], ())),
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(_) => return fail(after, ErrorKind::Char),
        }
    }
}

/// An item's name: the atom, the section in brackets and a partial `<origin>`.
#[derive(Debug)]
struct ItemName<'a> {
    name: &'a [u8],
    section: Option<&'a [u8]>,
    origin: Option<u32>,
}

fn item_name(input: &[u8]) -> Res<'_, ItemName<'_>> {
    // `take_while1(|b| is_atom_char(b) && b != b'[')`, as a plain loop: this runs for every
    // item of every FETCH response.
    let Some(len) = input.iter().position(|&b| !ITEM_NAME_CHAR[usize::from(b)]) else {
        return Err(nom::Err::Incomplete(Needed::new(1)));
    };
    if len == 0 {
        return fail(input, ErrorKind::TakeWhile1);
    }
    let (name, mut rest) = input.split_at(len);
    let mut item = ItemName { name, section: None, origin: None };
    if rest.first() == Some(&b'[') {
        let (after, section) = section_text(&rest[1..])?;
        item.section = Some(section);
        rest = after;
        if rest.first() == Some(&b'<') {
            let (after, origin) = number(&rest[1..])?;
            let (after, _) = tag(">")(after)?;
            item.origin = Some(origin);
            rest = after;
        }
    }
    Ok((rest, item))
}

/// Which bytes [`item_name`] takes into an item's name: `ATOM-CHAR` but `[`. A table, as
/// the name of every item of every FETCH response is scanned with it.
const ITEM_NAME_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut index = 0;
    let mut byte = 0u8;
    while index < table.len() {
        table[index] = is_atom_char(byte) && byte != b'[';
        index += 1;
        byte = byte.wrapping_add(1);
    }
    table
};

/// The text of `section = "[" [section-spec] "]"` after the `[`, through the `]`; quoted
/// header names inside a field list may contain `]`.
fn section_text(input: &[u8]) -> Res<'_, &[u8]> {
    let mut index = 0;
    let mut in_quote = false;
    loop {
        let Some(&byte) = input.get(index) else {
            return Err(nom::Err::Incomplete(Needed::Unknown));
        };
        match byte {
            b'\r' | b'\n' | 0 => return fail(&input[index..], ErrorKind::Char),
            b'\\' if in_quote => index += 1,
            b'"' => in_quote = !in_quote,
            b']' if !in_quote => return Ok((&input[index + 1..], &input[..index])),
            _ => {}
        }
        index += 1;
    }
}

/// The body item an item name (`upper_name`: its atom in upper case) stands for.
fn body_kind(upper_name: &[u8], item: &ItemName<'_>) -> Option<BodyKind> {
    match (upper_name, item.section.is_some()) {
        (b"BODY", true) => Some(BodyKind::Body),
        (b"BINARY", true) => Some(BodyKind::Binary),
        (b"RFC822", false) => Some(BodyKind::Rfc822),
        (b"RFC822.HEADER", false) => Some(BodyKind::Rfc822Header),
        (b"RFC822.TEXT", false) => Some(BodyKind::Rfc822Text),
        _ => None,
    }
}

fn body_section(item: &ItemName<'_>, kind: BodyKind) -> BodySection {
    BodySection {
        kind,
        section: item.section.map(|s| String::from_utf8_lossy(s).into_owned()).unwrap_or_default(),
        origin: item.origin,
    }
}

/// A body value: `nstring` (or `literal8` for BINARY), or the decoder's streamed marker.
fn body_value(input: &[u8]) -> Res<'_, BodyData> {
    match input.first() {
        Some(b'\0') => streamed_marker(input).map(|(r, n)| (r, BodyData::Streamed(n))),
        _ => nstring(input)
            .map(|(r, v)| (r, v.map_or(BodyData::Nil, |v| BodyData::Inline(v.into_owned())))),
    }
}

fn fetch_item<'a>(ctx: Ctx, input: &'a [u8], fetch: &mut Fetch) -> Res<'a, ()> {
    let (rest, item) = item_name(input)?;
    let (rest, _) = sp(rest)?;
    let mut buf = [0u8; 32];
    let name = upper(item.name, &mut buf);
    if let Some(kind) = body_kind(name, &item) {
        let (rest, data) = body_value(rest)?;
        fetch.bodies.push(BodyItem { section: body_section(&item, kind), data });
        return Ok((rest, ()));
    }
    let rest = match (name, item.section) {
        (b"UID", None) => {
            let (r, uid) = number(rest)?;
            match Uid::new(uid) {
                Some(uid) => fetch.uid = Some(uid),
                None => fetch.invalid.push((String::from("UID"), uid.to_string())),
            }
            r
        }
        (b"FLAGS", None) => {
            let (r, flags) = flag_list(rest)?;
            fetch.flags = Some(flags);
            r
        }
        (b"INTERNALDATE", None) => {
            let (r, text) = quoted(rest)?;
            match parse_internal_date(&text) {
                Some(date) => fetch.internal_date = Some(date),
                None => fetch.invalid.push((
                    String::from("INTERNALDATE"),
                    String::from_utf8_lossy(&text).into_owned(),
                )),
            }
            r
        }
        (b"RFC822.SIZE", None) => {
            let (r, size) = number64(rest)?;
            fetch.rfc822_size = Some(size);
            r
        }
        (b"MODSEQ", None) => {
            let (r, _) = tag("(")(rest)?;
            let (r, modseq) = number64(r)?;
            let (r, _) = tag(")")(r)?;
            fetch.modseq = Some(modseq);
            r
        }
        (b"BINARY.SIZE", Some(section)) => {
            let (r, size) = number64(rest)?;
            fetch.binary_sizes.push((String::from_utf8_lossy(section).into_owned(), size));
            r
        }
        (b"X-GM-MSGID", None) => {
            let (r, id) = number64(rest)?;
            fetch.gmail_message_id = Some(id);
            r
        }
        (b"X-GM-THRID", None) => {
            let (r, id) = number64(rest)?;
            fetch.gmail_thread_id = Some(id);
            r
        }
        (b"X-GM-LABELS", None) => {
            let (r, labels) = astring_list(rest)?;
            fetch.gmail_labels = Some(labels);
            r
        }
        (b"EMAILID", None) => {
            let (r, _) = tag("(")(rest)?;
            let (r, id) = atom(r)?;
            let (r, _) = tag(")")(r)?;
            fetch.email_id = Some(String::from_utf8_lossy(id).into_owned());
            r
        }
        (b"X-GUID", None) => {
            let (r, guid) = match rest.first() {
                Some(b'N' | b'n') => nil(rest).map(|(r, ())| (r, None))?,
                _ => astring(rest).map(|(r, v)| (r, Some(v)))?,
            };
            fetch.x_guid = guid.map(|g| String::from_utf8_lossy(&g).into_owned());
            r
        }
        _ => {
            // ENVELOPE, BODY, BODYSTRUCTURE, SAVEDATE, PREVIEW, unknown extensions.
            let (r, ()) = skip_value(ctx.max_depth)(rest)?;
            fetch
                .skipped
                .push(String::from_utf8_lossy(&input[..input.len() - rest.len() - 1]).into_owned());
            r
        }
    };
    Ok((rest, ()))
}

/// `"(" [astring *(SP astring)] ")"` as raw bytes (X-GM-LABELS).
fn astring_list(input: &[u8]) -> Res<'_, Vec<Vec<u8>>> {
    let (mut rest, _) = tag("(")(input)?;
    let mut values = Vec::new();
    loop {
        match rest.first() {
            Some(b')') => return Ok((&rest[1..], values)),
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            _ => {}
        }
        let (after, value) = match rest.first() {
            Some(b'"' | b'{') => string(rest)?,
            _ => take_while1(|b| b > 0x20 && b != 0x7f && !matches!(b, b'(' | b')' | b'"' | b'{'))(
                rest,
            )
            .map(|(r, v)| (r, std::borrow::Cow::Borrowed(v)))?,
        };
        values.push(value.into_owned());
        rest = after.strip_prefix(b" ").unwrap_or(after);
    }
}

/// What the framer needs to know when a literal is announced at the end of `prefix` (the
/// response so far, without the `{n}` announcement): if the literal is the value of a body
/// item of a FETCH response, the message's sequence number, the items parsed so far, the
/// body item's name and where in `prefix` that item starts (the complete response is
/// parsed from there on by [`msg_att_rest`], not again from its start). `None` for every
/// other literal (they are kept inline).
pub(crate) fn body_literal_start(ctx: Ctx, prefix: &[u8]) -> Option<(Fetch, BodySection, usize)> {
    let rest = prefix.strip_prefix(b"* ")?;
    let (rest, seq) = number(rest).ok()?;
    let rest = rest.strip_prefix(b" ")?;
    let (rest, word) = atom(rest).ok()?;
    if !word.eq_ignore_ascii_case(b"FETCH") {
        return None;
    }
    let mut rest = rest.strip_prefix(b" (")?;
    let mut fetch = Fetch { seq, ..Fetch::default() };
    loop {
        // Is the rest exactly `<body item name> SP`?
        if let Ok((after, item)) = item_name(rest)
            && after == b" "
        {
            let start = prefix.len() - rest.len();
            let mut buf = [0u8; 32];
            let name = upper(item.name, &mut buf);
            return body_kind(name, &item).map(|kind| (fetch, body_section(&item, kind), start));
        }
        let (after, ()) = fetch_item(ctx, rest, &mut fetch).ok()?;
        rest = after.strip_prefix(b" ")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::{Just, Strategy};

    /// An item name as comparable data: the rest's length and the parts, or the error.
    type Outcome = Result<(usize, Vec<u8>, Option<Vec<u8>>, Option<u32>), String>;

    fn outcome(result: Res<'_, ItemName<'_>>) -> Outcome {
        match result {
            Ok((rest, item)) => {
                Ok((rest.len(), item.name.to_vec(), item.section.map(<[u8]>::to_vec), item.origin))
            }
            Err(nom::Err::Incomplete(_)) => Err("incomplete".to_owned()),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                Err(format!("{:?} at {}", e.code, e.input.len()))
            }
        }
    }

    /// `item_name` as first written, with nom's `take_while1`: the reference.
    fn item_name_reference(input: &[u8]) -> Res<'_, ItemName<'_>> {
        let (rest, name) = take_while1(|b| is_atom_char(b) && b != b'[')(input)?;
        let mut item = ItemName { name, section: None, origin: None };
        let mut rest = rest;
        if rest.first() == Some(&b'[') {
            let (after, section) = section_text(&rest[1..])?;
            item.section = Some(section);
            rest = after;
            if rest.first() == Some(&b'<') {
                let (after, origin) = number(&rest[1..])?;
                let (after, _) = tag(">")(after)?;
                item.origin = Some(origin);
                rest = after;
            }
        }
        Ok((rest, item))
    }

    fn item_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::prop_oneof![
                6 => proptest::sample::select(b"BODYUIDFLAGS.8<>[]0123456789 ()\"\\*%{}".to_vec()),
                2 => proptest::num::u8::ANY,
                1 => Just(b'['),
            ],
            0..24,
        )
    }

    proptest::proptest! {
        /// Any bytes, cut at every length: the table-driven name scan of `item_name`
        /// gives what nom's `take_while1` gave (name, section, origin, rest or error).
        #[test]
        fn item_name_matches_the_take_while1_reference(input in item_bytes()) {
            for end in 0..=input.len() {
                let prefix = &input[..end];
                proptest::prop_assert_eq!(
                    outcome(item_name(prefix)), outcome(item_name_reference(prefix)),
                    "{:?}", prefix
                );
            }
        }

        /// Item names are case-insensitive: a FETCH answer whose names (not their
        /// sections or values) are in any mix of cases parses as in upper case, body
        /// items included. (Items we skip are not in it: their names are kept as sent.)
        #[test]
        fn item_names_in_any_case_parse_alike(
            lower in proptest::collection::vec(proptest::bool::ANY, 16 * 20),
        ) {
            let items: &[(&str, &str, &str)] = &[
                ("UID", "", "7"),
                ("FLAGS", "", "(\\Seen)"),
                ("INTERNALDATE", "", "\"07-Dec-2026 10:00:00 +0100\""),
                ("RFC822.SIZE", "", "12"),
                ("MODSEQ", "", "(9)"),
                ("BODY", "[]", "\"a\""),
                ("BINARY", "[1]", "NIL"),
                ("RFC822", "", "NIL"),
                ("RFC822.HEADER", "", "\"h\""),
                ("RFC822.TEXT", "", "NIL"),
                ("BODY", "[HEADER]<3>", "\"x\""),
                ("BINARY.SIZE", "[1]", "4"),
                ("X-GM-MSGID", "", "5"),
                ("EMAILID", "", "(M1)"),
                ("X-GUID", "", "\"g\""),
            ];
            let mut upper = b"(".to_vec();
            let mut mixed = b"(".to_vec();
            for (index, (name, section, value)) in items.iter().enumerate() {
                if index > 0 {
                    upper.push(b' ');
                    mixed.push(b' ');
                }
                upper.extend_from_slice(name.as_bytes());
                for (at, byte) in name.bytes().enumerate() {
                    let flip = lower[index * 20 + at];
                    mixed.push(if flip { byte.to_ascii_lowercase() } else { byte });
                }
                for out in [&mut upper, &mut mixed] {
                    out.extend_from_slice(format!("{section} {value}").as_bytes());
                }
            }
            upper.push(b')');
            mixed.push(b')');
            let expected = msg_att(Ctx::default(), &upper).map(|(rest, fetch)| (rest.len(), fetch));
            proptest::prop_assert!(expected.is_ok(), "{:?}", expected);
            let got = msg_att(Ctx::default(), &mixed).map(|(rest, fetch)| (rest.len(), fetch));
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
