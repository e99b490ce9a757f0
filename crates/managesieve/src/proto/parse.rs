//! nom parsers over one complete server line (literals included), as the decoder frames
//! it: tokens first, then what the line means.

use nom::branch::alt;
use nom::bytes::complete::{tag, take, take_while1};
use nom::character::complete::digit1;
use nom::combinator::opt;
use nom::{IResult, Parser};

use super::types::{Response, ResponseCode, Status, Token, escape};

/// How deep `( … )` may nest in a response code; real codes use one level.
const MAX_LIST_DEPTH: usize = 8;

/// A line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed server line: {line:?}")]
pub struct ParseError {
    /// The line, escaped and cut short.
    pub line: String,
}

impl ParseError {
    fn of(line: &[u8]) -> ParseError {
        ParseError { line: escape(&line[..line.len().min(200)]) }
    }
}

/// What a server line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `OK`, `NO` or `BYE` ends the answer to a command.
    Response(Response),
    /// Anything else is data: a capability (`"NAME" ["value"]`), a script listing
    /// (`"name" [ACTIVE]`), a script (`{n}` literal), a SASL challenge (a string).
    Data(Vec<Token>),
}

/// Parses one framed line (its line end included; `LF` alone is accepted).
pub fn parse_line(line: &[u8]) -> Result<Line, ParseError> {
    let tokens = tokens(line)?;
    let Some(first) = tokens.first() else { return Err(ParseError::of(line)) };
    let status = if first.is_atom("OK") {
        Status::Ok
    } else if first.is_atom("NO") {
        Status::No
    } else if first.is_atom("BYE") {
        Status::Bye
    } else {
        return Ok(Line::Data(tokens));
    };
    let mut rest = &tokens[1..];
    let mut code = None;
    if let Some((Token::List(items), after)) = rest.split_first() {
        code = ResponseCode::from_tokens(items);
        if code.is_none() {
            return Err(ParseError::of(line));
        }
        rest = after;
    }
    // RFC 5804 has one string; atoms (a lenient server's bare words) are joined.
    let mut text = Vec::new();
    for (i, token) in rest.iter().enumerate() {
        let Some(bytes) = token.bytes() else { return Err(ParseError::of(line)) };
        if i > 0 {
            text.push(b' ');
        }
        text.extend_from_slice(bytes);
    }
    Ok(Line::Response(Response { status, code, text: String::from_utf8_lossy(&text).into_owned() }))
}

/// The tokens of a line, separated by spaces, up to its line end (which must end the
/// input: a literal's bytes are taken by count, so a CR at its end is never taken for one).
pub fn tokens(line: &[u8]) -> Result<Vec<Token>, ParseError> {
    let at_end = |input: &[u8]| input == b"\r\n" || input == b"\n";
    let mut input = line;
    let mut out = Vec::new();
    while !at_end(input) {
        if !out.is_empty() {
            input = spaces(input).map_err(|_| ParseError::of(line))?.0;
            if at_end(input) {
                break; // a trailing space
            }
        }
        let (rest, token) = token(input, 0).map_err(|_| ParseError::of(line))?;
        out.push(token);
        input = rest;
    }
    Ok(out)
}

fn spaces(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b| b == b' ')(input)
}

fn token(input: &[u8], depth: usize) -> IResult<&[u8], Token> {
    if input.first() == Some(&b'(') {
        return list(input, depth);
    }
    alt((quoted, literal, atom)).parse(input)
}

/// `( token *(SP token) )`, at most [`MAX_LIST_DEPTH`] deep.
fn list(input: &[u8], depth: usize) -> IResult<&[u8], Token> {
    let fail = || nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::TooLarge));
    if depth >= MAX_LIST_DEPTH {
        return Err(fail());
    }
    let (mut input, _) = tag(&b"("[..])(input)?;
    let mut items = Vec::new();
    loop {
        if let Ok((rest, _)) = tag::<_, _, nom::error::Error<&[u8]>>(&b")"[..])(input) {
            return Ok((rest, Token::List(items)));
        }
        if !items.is_empty() {
            input = spaces(input)?.0;
        }
        let (rest, item) = token(input, depth + 1)?;
        items.push(item);
        input = rest;
    }
}

/// A quoted string: `"` … `"` with `\"` and `\\`; no CR or LF inside.
fn quoted(input: &[u8]) -> IResult<&[u8], Token> {
    let (mut input, _) = tag(&b"\""[..])(input)?;
    let mut out = Vec::new();
    loop {
        let fail = nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Char));
        match input {
            [b'"', rest @ ..] => return Ok((rest, Token::String(out))),
            [b'\\', escaped @ (b'"' | b'\\'), rest @ ..] => {
                out.push(*escaped);
                input = rest;
            }
            [b'\r' | b'\n', ..] | [] => return Err(fail),
            [byte, rest @ ..] => {
                out.push(*byte);
                input = rest;
            }
        }
    }
}

/// A literal: `{n}` or `{n+}`, CRLF (or LF), then `n` octets.
fn literal(input: &[u8]) -> IResult<&[u8], Token> {
    let (input, _) = tag(&b"{"[..])(input)?;
    let (input, digits) = digit1(input)?;
    let (input, _) = opt(tag(&b"+"[..])).parse(input)?;
    let (input, _) = tag(&b"}"[..])(input)?;
    let (input, _) = alt((tag(&b"\r\n"[..]), tag(&b"\n"[..]))).parse(input)?;
    let len = literal_len(digits).ok_or_else(|| {
        nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::TooLarge))
    })?;
    let (input, bytes) = take(len)(input)?;
    Ok((input, Token::String(bytes.to_vec())))
}

/// The number of a `{n}`, when it fits.
pub(crate) fn literal_len(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A bare word: anything up to a space, a parenthesis, a quote or the line end.
fn atom(input: &[u8]) -> IResult<&[u8], Token> {
    let (input, bytes) =
        take_while1(|b| !matches!(b, b' ' | b'(' | b')' | b'"' | b'{' | b'\r' | b'\n' | 0))(input)?;
    Ok((input, Token::Atom(bytes.to_vec())))
}
