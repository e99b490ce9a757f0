//! The response grammar as streaming nom parsers over `&[u8]`.
//!
//! [`parse_response`] parses one response from the start of a buffer: a proper prefix of
//! a valid response gives [`ParseError::Incomplete`], never [`ParseError::Malformed`].

mod code;
pub(crate) mod core;
mod fetch;
mod flag;
mod list;
mod plain_fetch;
pub(crate) mod response;

use nom::error::ErrorKind;

pub(crate) use self::core::Ctx;
use crate::proto::response::{Response, Status, StatusKind, Untagged};
pub(crate) use fetch::{body_literal_start, msg_att_rest};
pub(crate) use plain_fetch::{
    plain_body_literal_start, plain_fetch_line, plain_streamed_body_rest,
};

/// Why [`parse_response`] returned no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// More bytes are needed; this is not an error in the data.
    #[error("incomplete response")]
    Incomplete,
    /// Lists nest deeper than the configured limit.
    #[error("response nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a response and no line end lets us skip them.
    #[error("malformed response")]
    Malformed,
}

/// Options of the standalone parser.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Maximum nesting of parenthesised lists (BODYSTRUCTURE, extension data).
    pub max_depth: usize,
    /// Mailbox names on the wire are UTF-8 (`UTF8=ACCEPT` enabled, or IMAP4rev2).
    pub utf8_names: bool,
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        let ctx = Ctx::default();
        ParseOptions { max_depth: ctx.max_depth, utf8_names: ctx.utf8_names }
    }
}

impl From<ParseOptions> for Ctx {
    fn from(options: ParseOptions) -> Ctx {
        Ctx { max_depth: options.max_depth, utf8_names: options.utf8_names }
    }
}

/// Parses one response at the start of `input`; returns it and the number of bytes used.
///
/// Recovery is lenient where the response's end is still clear: an untagged response that
/// does not parse becomes [`Untagged::Malformed`], a tagged one whose code does not parse
/// keeps its tag and status with the rest as text.
pub fn parse_response(
    input: &[u8],
    options: ParseOptions,
) -> Result<(Response, usize), ParseError> {
    let ctx = Ctx::from(options);
    match response::response(ctx)(input) {
        Ok((rest, value)) => Ok((value, input.len() - rest.len())),
        Err(nom::Err::Incomplete(_)) => Err(ParseError::Incomplete),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            if e.code == ErrorKind::TooLarge {
                return Err(ParseError::TooDeep { limit: ctx.max_depth });
            }
            recover(input)
        }
    }
}

fn recover(input: &[u8]) -> Result<(Response, usize), ParseError> {
    let (rest, line) = match response::rest_of_line(input) {
        Ok(found) => found,
        Err(nom::Err::Incomplete(_)) => return Err(ParseError::Incomplete),
        Err(_) => return Err(ParseError::Malformed),
    };
    let used = input.len() - rest.len() + if rest.starts_with(b"\r\n") { 2 } else { 1 };
    if let Some(raw) = line.strip_prefix(b"* ") {
        return Ok((Response::Untagged(Untagged::Malformed { raw: raw.to_vec() }), used));
    }
    // `tag SP (OK|NO|BAD) [SP text]` with an unparsable code: keep tag and status.
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(tag), Some(word)) = (words.next(), words.next()) else {
        return Err(ParseError::Malformed);
    };
    let kind = match word.to_ascii_uppercase().as_slice() {
        b"OK" => StatusKind::Ok,
        b"NO" => StatusKind::No,
        b"BAD" => StatusKind::Bad,
        _ => return Err(ParseError::Malformed),
    };
    let valid_tag = !tag.is_empty()
        && tag.iter().all(|&b| b != b'+' && (crate::types::is_atom_char(b) || b == b']'));
    if !valid_tag {
        return Err(ParseError::Malformed);
    }
    let text = String::from_utf8_lossy(words.next().unwrap_or_default()).into_owned();
    let status = Status { kind, code: None, text };
    Ok((Response::Tagged { tag: String::from_utf8_lossy(tag).into_owned(), status }, used))
}
