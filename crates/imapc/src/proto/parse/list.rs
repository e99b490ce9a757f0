//! LIST/LSUB (RFC 3501, RFC 5258 extended data) and STATUS (RFC 3501, RFC 7162, RFC 8438).

use nom::Needed;
use nom::bytes::streaming::tag;
use nom::error::ErrorKind;

use super::core::{
    Ctx, Res, astring, atom, delimiter, fail, mailbox, nil, number, number64, skip_value, sp, upper,
};
use crate::proto::response::{ListAttribute, ListEntry, ListKind, MailboxStatus};

/// `mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
/// [SP mbox-list-extended]`.
pub(crate) fn mailbox_list(ctx: Ctx, input: &[u8]) -> Res<'_, ListEntry> {
    let (mut rest, _) = tag("(")(input)?;
    let mut attributes = Vec::new();
    if rest.first() == Some(&b')') {
        rest = &rest[1..];
    } else {
        loop {
            let (after, name) = list_flag(rest)?;
            attributes.push(ListAttribute::from_atom(&String::from_utf8_lossy(name)));
            match after.first() {
                Some(b' ') => rest = &after[1..],
                Some(b')') => {
                    rest = &after[1..];
                    break;
                }
                None => return Err(nom::Err::Incomplete(Needed::Unknown)),
                Some(_) => return fail(after, ErrorKind::Char),
            }
        }
    }
    let (rest, _) = sp(rest)?;
    let (rest, delimiter) = delimiter(rest)?;
    let (rest, _) = sp(rest)?;
    let (mut rest, name) = mailbox(ctx)(rest)?;
    let mut entry = ListEntry {
        kind: ListKind::List,
        attributes,
        delimiter,
        name,
        child_info: Vec::new(),
        old_name: None,
    };
    if rest.starts_with(b" (") {
        rest = extended(ctx, &rest[2..], &mut entry)?.0;
    }
    Ok((rest, entry))
}

/// `mbx-list-flag = "\" atom`, leniently any atom.
fn list_flag(input: &[u8]) -> Res<'_, &[u8]> {
    let backslash = usize::from(input.first() == Some(&b'\\'));
    let (rest, _) = atom(&input[backslash..])?;
    Ok((rest, &input[..input.len() - rest.len()]))
}

/// `mbox-list-extended-item *(SP mbox-list-extended-item) ")"` after the `(`:
/// `CHILDINFO (…)`, `OLDNAME (mailbox)`, and any other tagged extension, skipped.
fn extended<'a>(ctx: Ctx, input: &'a [u8], entry: &mut ListEntry) -> Res<'a, ()> {
    let mut rest = input;
    loop {
        if rest.first() == Some(&b')') {
            return Ok((&rest[1..], ()));
        }
        let (after, name) = astring(rest)?;
        let (after, _) = sp(after)?;
        let mut buf = [0u8; 32];
        let upper = upper(&name, &mut buf);
        rest = if upper == b"CHILDINFO" {
            let (mut a, _) = tag("(")(after)?;
            loop {
                let (b, value) = astring(a)?;
                entry.child_info.push(String::from_utf8_lossy(&value).into_owned());
                match b.first() {
                    Some(b' ') => a = &b[1..],
                    Some(b')') => break &b[1..],
                    None => return Err(nom::Err::Incomplete(Needed::Unknown)),
                    Some(_) => return fail(b, ErrorKind::Char),
                }
            }
        } else if upper == b"OLDNAME" {
            let (a, _) = tag("(")(after)?;
            let (a, old) = mailbox(ctx)(a)?;
            entry.old_name = Some(old);
            tag(")")(a)?.0
        } else {
            skip_value(ctx.max_depth)(after)?.0
        };
        if rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
    }
}

/// `"STATUS" SP mailbox SP "(" [status-att-list] ")"` after the keyword and SP.
pub(crate) fn status_data(ctx: Ctx, input: &[u8]) -> Res<'_, MailboxStatus> {
    let (rest, name) = mailbox(ctx)(input)?;
    let (rest, _) = sp(rest)?;
    let (mut rest, _) = tag("(")(rest)?;
    let mut status = MailboxStatus {
        name,
        messages: None,
        recent: None,
        uid_next: None,
        uid_validity: None,
        unseen: None,
        deleted: None,
        highest_modseq: None,
        size: None,
        mailbox_id: None,
    };
    loop {
        match rest.first() {
            Some(b')') => return Ok((&rest[1..], status)),
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            _ => {}
        }
        let (after, item) = atom(rest)?;
        let (after, _) = sp(after)?;
        let mut buf = [0u8; 32];
        let item = upper(item, &mut buf);
        let number_into = |slot: &mut Option<u32>| -> Res<'_, ()> {
            let (r, v) = number(after)?;
            *slot = Some(v);
            Ok((r, ()))
        };
        let after = match item {
            b"MESSAGES" => number_into(&mut status.messages)?.0,
            b"RECENT" => number_into(&mut status.recent)?.0,
            b"UIDNEXT" => number_into(&mut status.uid_next)?.0,
            b"UIDVALIDITY" => number_into(&mut status.uid_validity)?.0,
            b"UNSEEN" => number_into(&mut status.unseen)?.0,
            b"DELETED" => number_into(&mut status.deleted)?.0,
            b"HIGHESTMODSEQ" => {
                let (r, v) = number64(after)?;
                status.highest_modseq = Some(v);
                r
            }
            b"SIZE" => {
                let (r, v) = number64(after)?;
                status.size = Some(v);
                r
            }
            b"MAILBOXID" => {
                let (r, _) = tag("(")(after)?;
                let (r, id) = atom(r)?;
                status.mailbox_id = Some(String::from_utf8_lossy(id).into_owned());
                tag(")")(r)?.0
            }
            _ if after.first().is_some_and(|b| b.eq_ignore_ascii_case(&b'N')) => nil(after)?.0,
            _ => skip_value(ctx.max_depth)(after)?.0,
        };
        rest = after.strip_prefix(b" ").unwrap_or(after);
    }
}
