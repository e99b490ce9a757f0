//! `flag-list` and `flag` (RFC 3501 §9): FLAGS responses, the FLAGS item of FETCH and the
//! PERMANENTFLAGS code share them.

use nom::Needed;
use nom::bytes::streaming::{tag, take_while1};
use nom::error::ErrorKind;

use super::core::{Res, fail};
use crate::types::Flag;

/// `flag-list = "(" [flag *(SP flag)] ")"`; also used for PERMANENTFLAGS (`\*`).
pub(crate) fn flag_list(input: &[u8]) -> Res<'_, Vec<Flag>> {
    let (mut rest, _) = tag("(")(input)?;
    let mut flags = Vec::new();
    if rest.first() == Some(&b')') {
        return Ok((&rest[1..], flags));
    }
    loop {
        let (after, name) = flag(rest)?;
        flags.push(Flag::from_atom(&String::from_utf8_lossy(name)));
        match after.first() {
            Some(b' ') => rest = &after[1..],
            Some(b')') => return Ok((&after[1..], flags)),
            None => return Err(nom::Err::Incomplete(Needed::Unknown)),
            Some(_) => return fail(after, ErrorKind::Char),
        }
    }
}

/// `flag = "\" atom / atom` (leniently: any printable run, so a server's odd keyword does
/// not make the whole FETCH unreadable).
fn flag(input: &[u8]) -> Res<'_, &[u8]> {
    take_while1(|b| b > 0x20 && b != 0x7f && !matches!(b, b'(' | b')' | b'"' | b'{'))(input)
}
