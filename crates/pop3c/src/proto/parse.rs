//! The response grammar as nom parsers.
//!
//! Status lines are parsed with streaming combinators: a proper prefix of a valid line is
//! [`ParseError::Incomplete`], never [`ParseError::Malformed`]. Lines of multi-line
//! listings arrive whole from the [`Decoder`](super::Decoder) (which removed the line end
//! and the dot-stuffing) and are parsed with complete combinators.

use nom::branch::alt;
use nom::bytes::complete::{take_till1 as take_till1_complete, take_while1};
use nom::bytes::streaming::{tag_no_case, take_till};
use nom::character::complete::{digit1, space0, space1};
use nom::character::streaming::char;
use nom::combinator::{all_consuming, map_res, opt, value};
use nom::multi::many0;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::types::{Capability, MessageNumber, ResponseCode, Uidl};

/// `+OK` or `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// `+OK`: the command succeeded.
    Ok,
    /// `-ERR`: the command failed.
    Err,
}

/// A status line: indicator, optional response code (RFC 2449 §8), text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `+OK` or `-ERR`.
    pub kind: StatusKind,
    /// `[IN-USE]`, `[SYS/TEMP]` … when the server sent one.
    pub code: Option<ResponseCode>,
    /// The rest of the line (lossy UTF-8; empty when none).
    pub text: String,
}

impl Status {
    /// True for `+OK`.
    pub fn is_ok(&self) -> bool {
        self.kind == StatusKind::Ok
    }
}

/// One reply line to a command that may be answered with a SASL challenge (`AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` / `-ERR`.
    Status(Status),
    /// `+ challenge` (RFC 5034 §4): the base64 text after `"+ "`, not decoded.
    Continuation(Vec<u8>),
}

/// Why a parser returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// More bytes are needed; this is not an error in the data.
    #[error("incomplete response")]
    Incomplete,
    /// The bytes do not follow the grammar.
    #[error("malformed response")]
    Malformed,
}

impl<E> From<nom::Err<E>> for ParseError {
    fn from(error: nom::Err<E>) -> ParseError {
        match error {
            nom::Err::Incomplete(_) => ParseError::Incomplete,
            nom::Err::Error(_) | nom::Err::Failure(_) => ParseError::Malformed,
        }
    }
}

/// One line of a `LIST` answer, or the text of `+OK` to `LIST n` (RFC 1939 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanListing {
    /// The message.
    pub number: MessageNumber,
    /// Its size in octets as the server counts it (RFC 1939 says with CRLF line ends;
    /// take it as a hint, servers differ).
    pub size: u64,
}

/// One line of a `UIDL` answer, or the text of `+OK` to `UIDL n` (RFC 1939 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlListing {
    /// The message.
    pub number: MessageNumber,
    /// Its unique id.
    pub uidl: Uidl,
}

/// Parses one status line (line end included) at the start of `input`; returns it and
/// the number of bytes used.
///
/// ```
/// use pop3c::proto::{parse_status, StatusKind};
/// use pop3c::ResponseCode;
/// let (status, used) = parse_status(b"-ERR [IN-USE] Mailbox locked\r\nrest")?;
/// assert_eq!((status.kind, status.code, status.text.as_str(), used),
///            (StatusKind::Err, Some(ResponseCode::InUse), "Mailbox locked", 30));
/// assert_eq!(parse_status(b"+OK Dovec"), Err(pop3c::proto::ParseError::Incomplete));
/// # Ok::<(), pop3c::proto::ParseError>(())
/// ```
pub fn parse_status(input: &[u8]) -> Result<(Status, usize), ParseError> {
    let (rest, status) = status_line(input)?;
    Ok((status, input.len() - rest.len()))
}

/// Parses one reply line to `AUTH`: a status or a `+ ` continuation.
pub fn parse_reply(input: &[u8]) -> Result<(Reply, usize), ParseError> {
    let (rest, reply) =
        alt((status_line.map(Reply::Status), continuation.map(Reply::Continuation)))
            .parse(input)?;
    Ok((reply, input.len() - rest.len()))
}

/// `status-line = ("+OK" / "-ERR") [SP [resp-code SP] text] CRLF`
/// (RFC 1939 §3, RFC 2449 §8). A bare LF ends the line as well.
fn status_line(input: &[u8]) -> IResult<&[u8], Status> {
    let (input, kind) = alt((
        value(StatusKind::Ok, tag_no_case(&b"+OK"[..])),
        value(StatusKind::Err, tag_no_case(&b"-ERR"[..])),
    ))
    .parse(input)?;
    let (input, rest) = line_rest(input)?;
    // "+OKAY" is not "+OK": the indicator ends at SP or the line end.
    let rest = match rest.split_first() {
        None => rest,
        Some((b' ' | b'\t', text)) => text,
        Some(_) => {
            return Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Tag)));
        }
    };
    let (code, text) = resp_code_and_text(rest);
    Ok((input, Status { kind, code, text: String::from_utf8_lossy(text).into_owned() }))
}

/// `continuation = "+" [SP base64] CRLF` (RFC 5034 §4; some servers omit the SP when the
/// challenge is empty).
fn continuation(input: &[u8]) -> IResult<&[u8], Vec<u8>> {
    let (input, _) = char('+')(input)?;
    let (input, rest) = line_rest(input)?;
    let text = match rest.split_first() {
        None => rest,
        Some((b' ', text)) => text,
        Some(_) => {
            return Err(nom::Err::Error(nom::error::Error::new(
                input,
                nom::error::ErrorKind::Char,
            )));
        }
    };
    Ok((input, text.to_vec()))
}

/// Everything up to the line end (CRLF or bare LF), which is consumed but not returned.
fn line_rest(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (input, rest) = take_till(|b| b == b'\n')(input)?;
    let (input, _) = char('\n')(input)?;
    Ok((input, rest.strip_suffix(b"\r").unwrap_or(rest)))
}

/// `resp-code = "[" resp-level *("/" resp-level) "]"` (RFC 2449 §8), then SP and the text.
/// A bracket that does not form a code stays part of the text.
fn resp_code_and_text(rest: &[u8]) -> (Option<ResponseCode>, &[u8]) {
    let Some(inner) = rest.strip_prefix(b"[") else { return (None, rest) };
    let Some(close) = memchr::memchr(b']', inner) else { return (None, rest) };
    let code = &inner[..close];
    let valid = !code.is_empty()
        && code.split(|&b| b == b'/').all(|level| {
            !level.is_empty() && level.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'[')
        });
    if !valid {
        return (None, rest);
    }
    let text = &inner[close + 1..];
    let text = text.strip_prefix(b" ").unwrap_or(text);
    // Valid codes are printable ASCII, so this is lossless.
    (Some(ResponseCode::from_text(&String::from_utf8_lossy(code))), text)
}

fn number<T: std::str::FromStr>(input: &[u8]) -> IResult<&[u8], T> {
    map_res(digit1, |digits: &[u8]| {
        std::str::from_utf8(digits).map_err(|_| ()).and_then(|s| s.parse::<T>().map_err(|_| ()))
    })
    .parse(input)
}

fn msg_number(input: &[u8]) -> IResult<&[u8], MessageNumber> {
    map_res(number::<u32>, |n| MessageNumber::new(n).ok_or(())).parse(input)
}

/// `scan-listing = msg-number SP size [SP info]` (RFC 1939 §5). Leading and repeated
/// spaces are tolerated; anything after the size is ignored, as RFC 1939 allows.
pub fn parse_scan_listing(line: &[u8]) -> Result<ScanListing, ParseError> {
    let (_, (number, size)) = all_consuming((
        preceded(space0, msg_number),
        preceded(space1, number::<u64>),
        opt(preceded(space1, nom::combinator::rest)),
    ))
    .map(|(number, size, _)| (number, size))
    .parse(line)
    .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Malformed)?;
    Ok(ScanListing { number, size })
}

/// `uidl-listing = msg-number SP unique-id` (RFC 1939 §7); trailing spaces tolerated.
pub fn parse_uidl_listing(line: &[u8]) -> Result<UidlListing, ParseError> {
    let (_, (number, uidl)) = all_consuming((
        preceded(space0, msg_number),
        preceded(space1, map_res(take_till1_complete(|b| b == b' '), Uidl::from_bytes)),
        space0,
    ))
    .map(|(number, uidl, _)| (number, uidl))
    .parse(line)
    .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Malformed)?;
    Ok(UidlListing { number, uidl })
}

/// `capa-line = capa-tag *(SP param)` (RFC 2449 §5); the tag is upper-cased.
pub fn parse_capability(line: &[u8]) -> Result<Capability, ParseError> {
    let word = |input| take_while1(|b: u8| b > 0x20 && b < 0x7f).parse(input);
    let (_, (name, params, _)) =
        all_consuming((preceded(space0, word), many0(preceded(space1, word)), space0))
            .parse(line)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Malformed)?;
    // Printable ASCII only, checked by `word`.
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(Capability {
        name: text(name).to_ascii_uppercase(),
        params: params.into_iter().map(text).collect(),
    })
}

/// The `count octets` of a `STAT` answer's text (RFC 1939 §5: drop listing).
pub fn parse_stat(text: &str) -> Result<(u32, u64), ParseError> {
    let (_, (count, octets)) = (preceded(space0, number::<u32>), preceded(space1, number::<u64>))
        .parse(text.as_bytes())
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Malformed)?;
    Ok((count, octets))
}

/// The APOP timestamp of a greeting's text, `<…>` included (RFC 1939 §7: a msg-id such
/// as `<1896.697170952@dbc.mtview.ca.us>`): the first `<` … `>` span without spaces or
/// control characters that contains `@`.
pub fn apop_timestamp(greeting_text: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(open) = greeting_text[from..].find('<').map(|i| from + i) {
        let close = open + greeting_text[open..].find('>')?;
        let token = &greeting_text[open..=close];
        if token.contains('@') && token[1..].bytes().all(|b| b > 0x20 && b < 0x7f && b != b'<') {
            return Some(token);
        }
        from = open + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: StatusKind, code: Option<ResponseCode>, text: &str) -> Status {
        Status { kind, code, text: text.into() }
    }

    /// Status lines from Dovecot 2.3, Gmail, Exchange, qmail, Courier and RFC examples.
    #[test]
    fn known_status_lines() {
        use ResponseCode as C;
        use StatusKind::{Err, Ok};
        let cases: Vec<(&[u8], Status)> = vec![
            (b"+OK Dovecot (Debian) ready.\r\n", status(Ok, None, "Dovecot (Debian) ready.")),
            (
                b"+OK Dovecot ready. <6a1.1.65c4@host>\r\n",
                status(Ok, None, "Dovecot ready. <6a1.1.65c4@host>"),
            ),
            (b"+OK\r\n", status(Ok, None, "")),
            (b"+OK\n", status(Ok, None, "")),
            (b"+OK \r\n", status(Ok, None, "")),
            (b"+ok lower case\r\n", status(Ok, None, "lower case")),
            (b"-ERR\r\n", status(Err, None, "")),
            (
                b"-ERR [AUTH] Authentication failed.\r\n",
                status(Err, Some(C::Auth), "Authentication failed."),
            ),
            (
                b"-ERR [SYS/TEMP] Temporary authentication failure.\r\n",
                status(Err, Some(C::SysTemp), "Temporary authentication failure."),
            ),
            (b"-ERR [SYS/PERM] Quota\r\n", status(Err, Some(C::SysPerm), "Quota")),
            (
                b"-ERR [IN-USE] Mailbox is locked\r\n",
                status(Err, Some(C::InUse), "Mailbox is locked"),
            ),
            (b"-ERR [LOGIN-DELAY] wait\r\n", status(Err, Some(C::LoginDelay), "wait")),
            (b"-ERR [UTF8]\r\n", status(Err, Some(C::Other("UTF8".into())), "")),
            (b"-ERR [] empty brackets\r\n", status(Err, None, "[] empty brackets")),
            (b"-ERR [unterminated code\r\n", status(Err, None, "[unterminated code")),
            (b"-ERR [a b] spaces\r\n", status(Err, None, "[a b] spaces")),
            (b"+OK 2 320\r\n", status(Ok, None, "2 320")),
            (b"+OK caf\xc3\xa9 \xff\r\n", status(Ok, None, "caf\u{e9} \u{fffd}")),
            (
                b"+OK The Microsoft Exchange POP3 service is ready. [TQBOADIAUABS]\r\n",
                status(Ok, None, "The Microsoft Exchange POP3 service is ready. [TQBOADIAUABS]"),
            ),
            (
                b"+OK Gpop ready for requests from 192.0.2.1 s3mb\r\n",
                status(Ok, None, "Gpop ready for requests from 192.0.2.1 s3mb"),
            ),
        ];
        for (input, expected) in cases {
            let (parsed, used) = parse_status(input)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(input)));
            assert_eq!(parsed, expected);
            assert_eq!(used, input.len());
            // Every proper prefix is incomplete, never malformed.
            for cut in 0..input.len() {
                assert_eq!(
                    parse_status(&input[..cut]),
                    Result::Err(ParseError::Incomplete),
                    "{cut}"
                );
            }
        }
    }

    #[test]
    fn malformed_status_lines() {
        for input in [&b"+OKAY\r\n"[..], b"OK\r\n", b"* OK imap\r\n", b"-ERROR x\r\n", b"\r\n"] {
            assert_eq!(parse_status(input), Err(ParseError::Malformed), "{input:?}");
        }
    }

    #[test]
    fn replies_to_auth() {
        let cases: [(&[u8], Reply); 5] = [
            (b"+ \r\n", Reply::Continuation(Vec::new())),
            (b"+\r\n", Reply::Continuation(Vec::new())),
            (
                b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+\r\n",
                Reply::Continuation(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+".to_vec()),
            ),
            (b"+OK Logged in.\r\n", Reply::Status(status(StatusKind::Ok, None, "Logged in."))),
            (
                b"-ERR [AUTH] no\r\n",
                Reply::Status(status(StatusKind::Err, Some(ResponseCode::Auth), "no")),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_reply(input), Ok((expected, input.len())));
            for cut in 0..input.len() {
                assert_eq!(parse_reply(&input[..cut]), Err(ParseError::Incomplete));
            }
        }
        assert_eq!(parse_reply(b"+x\r\n"), Err(ParseError::Malformed));
    }

    #[test]
    fn listings() {
        let n = |v| MessageNumber::new(v).expect("non-zero");
        assert_eq!(parse_scan_listing(b"1 1205"), Ok(ScanListing { number: n(1), size: 1205 }));
        assert_eq!(
            parse_scan_listing(b"2  340 extra"),
            Ok(ScanListing { number: n(2), size: 340 })
        );
        assert_eq!(
            parse_scan_listing(b"4294967295 18446744073709551615"),
            Ok(ScanListing { number: n(u32::MAX), size: u64::MAX })
        );
        for bad in
            [&b"0 12"[..], b"1", b"1 x", b"x 1", b"4294967296 1", b"1 18446744073709551616", b""]
        {
            assert_eq!(parse_scan_listing(bad), Err(ParseError::Malformed), "{bad:?}");
        }
        let uidl =
            |v: u32, u: &str| UidlListing { number: n(v), uidl: Uidl::new(u).expect("uidl") };
        assert_eq!(
            parse_uidl_listing(b"1 whqtswO00WBw418f9t5JxYwZ"),
            Ok(uidl(1, "whqtswO00WBw418f9t5JxYwZ"))
        );
        assert_eq!(parse_uidl_listing(b"2 QhdPYR:00WBw1Ph7x7 "), Ok(uidl(2, "QhdPYR:00WBw1Ph7x7")));
        for bad in [&b"1"[..], b"1 ", b"1 a b", b"0 a", b"1 caf\xc3\xa9", b"a b"] {
            assert_eq!(parse_uidl_listing(bad), Err(ParseError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn capabilities_stat_and_apop_timestamp() {
        let sasl = parse_capability(b"SASL PLAIN LOGIN").expect("capa");
        assert_eq!((sasl.name.as_str(), sasl.params.len()), ("SASL", 2));
        assert_eq!(parse_capability(b"pipelining").expect("capa").name, "PIPELINING");
        assert_eq!(
            parse_capability(b"IMPLEMENTATION Shlemazle-Plotz-v302").expect("capa").params,
            ["Shlemazle-Plotz-v302"]
        );
        assert_eq!(parse_capability(b""), Err(ParseError::Malformed));
        assert_eq!(parse_capability(b"X\x01"), Err(ParseError::Malformed));
        assert_eq!(parse_stat("2 320"), Ok((2, 320)));
        assert_eq!(parse_stat("0 0 extra"), Ok((0, 0)));
        assert_eq!(parse_stat("two 320"), Err(ParseError::Malformed));
        assert_eq!(
            apop_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(apop_timestamp("ready <no at> <a@b>"), Some("<a@b>"));
        assert_eq!(apop_timestamp("Dovecot ready."), None);
        assert_eq!(apop_timestamp("<unclosed@x"), None);
    }
}
