//! `response = *(continue-req / response-data) response-done` (RFC 3501 §9): the line
//! level, untagged dispatch and the small untagged responses.

use nom::Needed;
use nom::bytes::streaming::{tag, take_while1};
use nom::error::ErrorKind;

use super::code::{capability_data, resp_text, status};
use super::core::{
    Ctx, Res, atom, crlf, delimiter, fail, keyword, mailbox, nil, nstring, number, number64,
    nz_number, sequence_set, skip_value, sp, string, upper,
};
use super::fetch::msg_att;
use super::flag::flag_list;
use super::list::{mailbox_list, status_data};
use crate::proto::response::{
    ESearch, ListKind, Namespace, Namespaces, Response, StatusKind, Untagged,
};

/// One whole response including its final CRLF.
pub(crate) fn response(ctx: Ctx) -> impl Fn(&[u8]) -> Res<'_, Response> {
    move |input| {
        let (rest, response) = match input.first() {
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(b'+') => {
                let rest = &input[1..];
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                let (rest, (code, text)) = resp_text(rest)?;
                (rest, Response::Continuation { code, text })
            }
            Some(b'*') => {
                let (rest, _) = tag("* ")(input)?;
                let (rest, untagged) = untagged(ctx, rest)?;
                (rest, Response::Untagged(untagged))
            }
            Some(_) => tagged(input)?,
        };
        let (rest, ()) = crlf(rest)?;
        Ok((rest, response))
    }
}

/// `tag = 1*<any ASTRING-CHAR except "+">`.
pub(crate) fn tag_name(input: &[u8]) -> Res<'_, &[u8]> {
    take_while1(|b| b != b'+' && (crate::types::is_atom_char(b) || b == b']'))(input)
}

/// `response-tagged = tag SP resp-cond-state CRLF`.
fn tagged(input: &[u8]) -> Res<'_, Response> {
    let (rest, tag) = tag_name(input)?;
    let (rest, _) = sp(rest)?;
    let (rest, kind) = cond_state(rest)?;
    let (rest, status) = status(kind)(rest)?;
    Ok((rest, Response::Tagged { tag: String::from_utf8_lossy(tag).into_owned(), status }))
}

fn cond_state(input: &[u8]) -> Res<'_, StatusKind> {
    let (rest, word) = atom(input)?;
    let mut buf = [0u8; 32];
    let kind = match upper(word, &mut buf) {
        b"OK" => StatusKind::Ok,
        b"NO" => StatusKind::No,
        b"BAD" => StatusKind::Bad,
        _ => return fail(input, ErrorKind::Tag),
    };
    Ok((rest, kind))
}

fn untagged(ctx: Ctx, input: &[u8]) -> Res<'_, Untagged> {
    if input.first().is_some_and(u8::is_ascii_digit) {
        let (rest, n) = number(input)?;
        let (rest, _) = sp(rest)?;
        let (after, word) = atom(rest)?;
        let mut buf = [0u8; 32];
        return match upper(word, &mut buf) {
            b"EXISTS" => Ok((after, Untagged::Exists(n))),
            b"RECENT" => Ok((after, Untagged::Recent(n))),
            b"EXPUNGE" => Ok((after, Untagged::Expunge(n))),
            b"FETCH" => {
                let (after, _) = sp(after)?;
                let (after, mut fetch) = msg_att(ctx, after)?;
                fetch.seq = n;
                Ok((after, Untagged::Fetch(Box::new(fetch))))
            }
            _ => other(input),
        };
    }
    let (rest, word) = atom(input)?;
    let mut buf = [0u8; 32];
    match upper(word, &mut buf) {
        b"OK" => status(StatusKind::Ok)(rest).map(|(r, s)| (r, Untagged::Status(s))),
        b"NO" => status(StatusKind::No)(rest).map(|(r, s)| (r, Untagged::Status(s))),
        b"BAD" => status(StatusKind::Bad)(rest).map(|(r, s)| (r, Untagged::Status(s))),
        b"PREAUTH" => status(StatusKind::PreAuth)(rest).map(|(r, s)| (r, Untagged::Status(s))),
        b"BYE" => status(StatusKind::Bye)(rest).map(|(r, s)| (r, Untagged::Status(s))),
        b"CAPABILITY" => capability_data(rest).map(|(r, c)| (r, Untagged::Capability(c))),
        b"ENABLED" => {
            capability_data(rest).map(|(r, c)| (r, Untagged::Enabled(c.names().to_vec())))
        }
        b"FLAGS" => {
            let (rest, _) = sp(rest)?;
            flag_list(rest).map(|(r, f)| (r, Untagged::Flags(f)))
        }
        b"LIST" => list_of(ctx, rest, ListKind::List),
        b"LSUB" => list_of(ctx, rest, ListKind::Lsub),
        b"XLIST" => list_of(ctx, rest, ListKind::Xlist),
        b"STATUS" => {
            let (rest, _) = sp(rest)?;
            status_data(ctx, rest).map(|(r, s)| (r, Untagged::MailboxStatus(s)))
        }
        b"SEARCH" => search(rest),
        b"ESEARCH" => esearch(ctx, rest).map(|(r, e)| (r, Untagged::ESearch(e))),
        b"VANISHED" => vanished(rest),
        b"NAMESPACE" => namespace(ctx, rest),
        b"ID" => id(rest),
        _ => other(input),
    }
}

fn list_of(ctx: Ctx, input: &[u8], kind: ListKind) -> Res<'_, Untagged> {
    let (rest, _) = sp(input)?;
    let (rest, mut entry) = mailbox_list(ctx, rest)?;
    entry.kind = kind;
    Ok((rest, Untagged::List(entry)))
}

/// An untagged response we do not model: kept whole, literals included.
fn other(input: &[u8]) -> Res<'_, Untagged> {
    let (rest, line) = rest_of_line(input)?;
    let name_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let name = String::from_utf8_lossy(&line[..name_end]).to_ascii_uppercase();
    Ok((rest, Untagged::Other { name, raw: line.to_vec() }))
}

/// Everything up to (not including) the CRLF that ends the response, stepping over
/// literals so that a CRLF inside one does not end it.
pub(crate) fn rest_of_line(input: &[u8]) -> Res<'_, &[u8]> {
    let mut position = 0;
    loop {
        let Some(offset) = memchr::memchr(b'\n', &input[position..]) else {
            return Err(nom::Err::Incomplete(Needed::Unknown));
        };
        let newline = position + offset;
        let line_end =
            if newline > 0 && input[newline - 1] == b'\r' { newline - 1 } else { newline };
        match announced_literal(&input[..line_end]) {
            Some(len) => {
                let Some(end) =
                    usize::try_from(len).ok().and_then(|l| (newline + 1).checked_add(l))
                else {
                    return fail(input, ErrorKind::Digit);
                };
                if end > input.len() {
                    return Err(nom::Err::Incomplete(Needed::Unknown));
                }
                position = end;
            }
            None => return Ok((&input[line_end..], &input[..line_end])),
        }
    }
}

/// The length of a literal announced at the very end of a line (`… {123}` or `~{123}`).
pub(crate) fn announced_literal(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let inner = inner.strip_suffix(b"+").unwrap_or(inner);
    let digits_start = inner.iter().rposition(|b| !b.is_ascii_digit())? + 1;
    if inner[digits_start - 1] != b'{' || digits_start == inner.len() {
        return None;
    }
    inner[digits_start..]
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// `mailbox-data =/ "SEARCH" *(SP nz-number) [SP "(" "MODSEQ" SP mod-sequence-value ")"]`.
fn search(input: &[u8]) -> Res<'_, Untagged> {
    let mut numbers = Vec::new();
    let mut modseq = None;
    let mut rest = input;
    while rest.first() == Some(&b' ') {
        rest = &rest[1..];
        if rest.first() == Some(&b'(') {
            let (after, _) = tag("(")(rest)?;
            let (after, ()) = keyword("MODSEQ")(after)?;
            let (after, _) = sp(after)?;
            let (after, value) = number64(after)?;
            let (after, _) = tag(")")(after)?;
            modseq = Some(value);
            rest = after;
        } else if rest.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
            break; // trailing space, as some servers send
        } else {
            let (after, n) = nz_number(rest)?;
            numbers.push(n.get());
            rest = after;
        }
    }
    Ok((rest, Untagged::Search { numbers, modseq }))
}

/// `esearch-response = "ESEARCH" [search-correlator] [SP "UID"] *(SP search-return-data)`.
fn esearch(ctx: Ctx, input: &[u8]) -> Res<'_, ESearch> {
    let mut result = ESearch::default();
    let mut rest = input;
    if rest.starts_with(b" (") {
        let (after, _) = tag(" (")(rest)?;
        let (after, ()) = keyword("TAG")(after)?;
        let (after, _) = sp(after)?;
        let (after, value) = string(after)?;
        let (after, _) = tag(")")(after)?;
        result.tag = Some(String::from_utf8_lossy(&value).into_owned());
        rest = after;
    }
    while rest.first() == Some(&b' ') {
        let (after, name) = atom(&rest[1..])?;
        let mut buf = [0u8; 32];
        let name = upper(name, &mut buf);
        if name == b"UID" {
            result.uid = true;
            rest = after;
            continue;
        }
        let (after, _) = sp(after)?;
        rest = match name {
            b"MIN" => nz_number(after).map(|(r, v)| {
                result.min = Some(v.get());
                r
            })?,
            b"MAX" => nz_number(after).map(|(r, v)| {
                result.max = Some(v.get());
                r
            })?,
            b"COUNT" => number(after).map(|(r, v)| {
                result.count = Some(v);
                r
            })?,
            b"ALL" => sequence_set(after).map(|(r, v)| {
                result.all = Some(v);
                r
            })?,
            b"MODSEQ" => number64(after).map(|(r, v)| {
                result.modseq = Some(v);
                r
            })?,
            _ => skip_value(ctx.max_depth)(after).map(|(r, ())| r)?,
        };
    }
    Ok((rest, result))
}

/// `"VANISHED" [SP "(EARLIER)"] SP known-uids` (RFC 7162 §3.2.10).
fn vanished(input: &[u8]) -> Res<'_, Untagged> {
    let (mut rest, _) = sp(input)?;
    let mut earlier = false;
    if rest.first() == Some(&b'(') {
        let (after, _) = tag("(")(rest)?;
        let (after, ()) = keyword("EARLIER")(after)?;
        let (after, _) = tag(") ")(after)?;
        earlier = true;
        rest = after;
    }
    let (rest, uids) = sequence_set(rest)?;
    Ok((rest, Untagged::Vanished { earlier, uids }))
}

/// `namespace-response = "NAMESPACE" SP namespace SP namespace SP namespace` (RFC 2342).
fn namespace(ctx: Ctx, input: &[u8]) -> Res<'_, Untagged> {
    let (rest, _) = sp(input)?;
    let (rest, personal) = namespace_list(ctx, rest)?;
    let (rest, _) = sp(rest)?;
    let (rest, other_users) = namespace_list(ctx, rest)?;
    let (rest, _) = sp(rest)?;
    let (rest, shared) = namespace_list(ctx, rest)?;
    Ok((rest, Untagged::Namespace(Namespaces { personal, other_users, shared })))
}

/// `namespace = nil / "(" 1*namespace-descr ")"`,
/// `namespace-descr = "(" string SP (DQUOTE QUOTED-CHAR DQUOTE / nil) *namespace-response-extension ")"`.
fn namespace_list(ctx: Ctx, input: &[u8]) -> Res<'_, Vec<Namespace>> {
    if input.first().is_some_and(|b| b.eq_ignore_ascii_case(&b'N')) {
        return nil(input).map(|(r, ())| (r, Vec::new()));
    }
    let (mut rest, _) = tag("(")(input)?;
    let mut out = Vec::new();
    loop {
        let (after, _) = tag("(")(rest)?;
        let (after, prefix) = mailbox(ctx)(after)?;
        let (after, _) = sp(after)?;
        let (mut after, delimiter) = delimiter(after)?;
        // Extensions: SP string SP "(" string *(SP string) ")"
        while after.first() == Some(&b' ') {
            let (a, _) = string(&after[1..])?;
            let (a, _) = sp(a)?;
            let (a, ()) = skip_value(ctx.max_depth)(a)?;
            after = a;
        }
        let (after, _) = tag(")")(after)?;
        out.push(Namespace { prefix, delimiter });
        match after.first() {
            Some(b')') => return Ok((&after[1..], out)),
            Some(b'(') => rest = after,
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(_) => return fail(after, ErrorKind::Char),
        }
    }
}

/// `id-response = "ID" SP id-params-list`,
/// `id-params-list = "(" *(string SP nstring) ")" / nil` (RFC 2971).
fn id(input: &[u8]) -> Res<'_, Untagged> {
    let (rest, _) = sp(input)?;
    if rest.first().is_some_and(|b| b.eq_ignore_ascii_case(&b'N')) {
        return nil(rest).map(|(r, ())| (r, Untagged::Id(None)));
    }
    let (mut rest, _) = tag("(")(rest)?;
    let mut pairs = Vec::new();
    loop {
        if rest.first() == Some(&b')') {
            return Ok((&rest[1..], Untagged::Id(Some(pairs))));
        }
        let (after, name) = string(rest)?;
        let (after, _) = sp(after)?;
        let (after, value) = nstring(after)?;
        pairs.push((
            String::from_utf8_lossy(&name).into_owned(),
            value.map(|v| String::from_utf8_lossy(&v).into_owned()),
        ));
        rest = after.strip_prefix(b" ").unwrap_or(after);
    }
}
