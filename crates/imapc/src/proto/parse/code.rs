//! `resp-text = ["[" resp-text-code "]" SP] text` (RFC 3501 §9) and the codes of the
//! extensions we meet (RFC 4315, RFC 5530, RFC 7162).

use nom::bytes::streaming::{tag, take_while, take_while1};
use nom::error::ErrorKind;

use super::core::{
    Res, astring, atom, fail, number, number64, nz_number, sequence_set, sp, text, upper,
};
use super::flag::flag_list;
use crate::proto::response::{Code, Status, StatusKind};
use crate::types::{Capabilities, Uid, UidValidity};

/// `resp-text`, tolerating a missing SP or text after the code (Gmail sends
/// `OK [HIGHESTMODSEQ n]` with nothing after it) and a missing text altogether.
pub(crate) fn resp_text(input: &[u8]) -> Res<'_, (Option<Code>, String)> {
    let (rest, code) = if input.first() == Some(&b'[') {
        let (rest, code) = resp_text_code(&input[1..])?;
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        (rest, Some(code))
    } else {
        (input, None)
    };
    let (rest, text) = text(rest)?;
    Ok((rest, (code, text)))
}

/// A status with the given kind from its `resp-text`.
pub(crate) fn status(kind: StatusKind) -> impl Fn(&[u8]) -> Res<'_, Status> {
    move |input| {
        // `* OK` without text: tolerated.
        let input = input.strip_prefix(b" ").unwrap_or(input);
        let (rest, (code, text)) = resp_text(input)?;
        Ok((rest, Status { kind, code, text }))
    }
}

/// The code after `[`, through the closing `]`. A known code whose arguments do not parse
/// is kept as [`Code::Other`] rather than failing the response.
fn resp_text_code(input: &[u8]) -> Res<'_, Code> {
    let (after_name, name) =
        take_while1(|b| b != b']' && b != b' ' && b != b'\r' && b != b'\n')(input)?;
    let mut buf = [0u8; 32];
    let known: Option<Res<'_, Code>> = match upper(name, &mut buf) {
        b"ALERT" => Some(Ok((after_name, Code::Alert))),
        b"PARSE" => Some(Ok((after_name, Code::Parse))),
        b"READ-ONLY" => Some(Ok((after_name, Code::ReadOnly))),
        b"READ-WRITE" => Some(Ok((after_name, Code::ReadWrite))),
        b"TRYCREATE" => Some(Ok((after_name, Code::TryCreate))),
        b"UIDNOTSTICKY" => Some(Ok((after_name, Code::UidNotSticky))),
        b"NOMODSEQ" => Some(Ok((after_name, Code::NoModSeq))),
        b"CLOSED" => Some(Ok((after_name, Code::Closed))),
        b"CAPABILITY" => Some(capability_data(after_name).map(|(r, c)| (r, Code::Capability(c)))),
        b"PERMANENTFLAGS" => {
            Some(preceded_sp(after_name, flag_list).map(|(r, f)| (r, Code::PermanentFlags(f))))
        }
        b"UIDVALIDITY" => Some(
            preceded_sp(after_name, nz_number)
                .map(|(r, v)| (r, Code::UidValidity(UidValidity::from(v)))),
        ),
        b"UIDNEXT" => {
            Some(preceded_sp(after_name, nz_number).map(|(r, v)| (r, Code::UidNext(Uid::from(v)))))
        }
        b"UNSEEN" => Some(preceded_sp(after_name, number).map(|(r, v)| (r, Code::Unseen(v)))),
        b"HIGHESTMODSEQ" => {
            Some(preceded_sp(after_name, number64).map(|(r, v)| (r, Code::HighestModSeq(v))))
        }
        b"MODIFIED" => {
            Some(preceded_sp(after_name, sequence_set).map(|(r, v)| (r, Code::Modified(v))))
        }
        b"APPENDUID" => Some(append_uid(after_name)),
        b"COPYUID" => Some(copy_uid(after_name)),
        b"BADCHARSET" => Some(bad_charset(after_name)),
        _ => None,
    };
    match known {
        Some(Ok((rest, code))) if rest.first() == Some(&b']') => return Ok((&rest[1..], code)),
        Some(Err(nom::Err::Incomplete(n))) => return Err(nom::Err::Incomplete(n)),
        Some(Err(nom::Err::Failure(e))) => return Err(nom::Err::Failure(e)),
        _ => {}
    }
    // Unknown (or malformed known) code: `atom [SP 1*<any TEXT-CHAR except "]">] "]"`.
    let (rest, data) = if after_name.first() == Some(&b' ') {
        let (rest, data) = take_while(|b| b != b']' && b != b'\r' && b != b'\n')(&after_name[1..])?;
        (rest, Some(String::from_utf8_lossy(data).into_owned()))
    } else {
        (after_name, None)
    };
    let (rest, _) = tag("]")(rest)?;
    Ok((rest, Code::Other { name: String::from_utf8_lossy(name).into_owned(), data }))
}

fn preceded_sp<'a, T>(input: &'a [u8], parser: impl Fn(&'a [u8]) -> Res<'a, T>) -> Res<'a, T> {
    let (rest, _) = sp(input)?;
    parser(rest)
}

/// `capability-data = "CAPABILITY" *(SP capability)` — after the keyword.
pub(crate) fn capability_data(input: &[u8]) -> Res<'_, Capabilities> {
    let mut names = Vec::new();
    let mut rest = input;
    while rest.first() == Some(&b' ') {
        let (after, name) = atom(&rest[1..])?;
        names.push(String::from_utf8_lossy(name).into_owned());
        rest = after;
    }
    if rest.is_empty() {
        return Err(nom::Err::Incomplete(nom::Needed::Unknown));
    }
    Ok((rest, Capabilities::new(names)))
}

/// `"APPENDUID" SP nz-number SP append-uid` (RFC 4315).
fn append_uid(input: &[u8]) -> Res<'_, Code> {
    let (rest, _) = sp(input)?;
    let (rest, uid_validity) = nz_number(rest)?;
    let (rest, _) = sp(rest)?;
    let (rest, uids) = sequence_set(rest)?;
    let uid_validity = UidValidity::from(uid_validity);
    Ok((rest, Code::AppendUid { uid_validity, uids }))
}

/// `"COPYUID" SP nz-number SP uid-set SP uid-set` (RFC 4315).
fn copy_uid(input: &[u8]) -> Res<'_, Code> {
    let (rest, _) = sp(input)?;
    let (rest, uid_validity) = nz_number(rest)?;
    let (rest, _) = sp(rest)?;
    let (rest, source) = sequence_set(rest)?;
    let (rest, _) = sp(rest)?;
    let (rest, destination) = sequence_set(rest)?;
    let uid_validity = UidValidity::from(uid_validity);
    Ok((rest, Code::CopyUid { uid_validity, source, destination }))
}

/// `"BADCHARSET" [SP "(" charset *(SP charset) ")"]`.
fn bad_charset(input: &[u8]) -> Res<'_, Code> {
    if input.first() != Some(&b' ') {
        return Ok((input, Code::BadCharset(Vec::new())));
    }
    let (mut rest, _) = tag(" (")(input)?;
    let mut names = Vec::new();
    loop {
        let (after, name) = astring(rest)?;
        names.push(String::from_utf8_lossy(&name).into_owned());
        match after.first() {
            Some(b' ') => rest = &after[1..],
            Some(b')') => return Ok((&after[1..], Code::BadCharset(names))),
            None => return Err(nom::Err::Incomplete(nom::Needed::Unknown)),
            Some(_) => return fail(after, ErrorKind::Char),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: &str) -> (Option<Code>, String) {
        let line = format!("{input}\r\n");
        let (rest, value) = resp_text(line.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e:?}"));
        assert_eq!(rest, b"\r\n", "{input}");
        value
    }

    #[test]
    fn known_answers() {
        let uv = |v| UidValidity::new(v).expect("nz");
        let table: Vec<(&str, Option<Code>, &str)> = vec![
            ("[ALERT] Mind the gap", Some(Code::Alert), "Mind the gap"),
            (
                "[UIDNEXT 10] Predicted next UID",
                Some(Code::UidNext(Uid::new(10).expect("nz"))),
                "Predicted next UID",
            ),
            ("[UIDVALIDITY 1720339200] Ok", Some(Code::UidValidity(uv(1_720_339_200))), "Ok"),
            ("[HIGHESTMODSEQ 715194045007]", Some(Code::HighestModSeq(715_194_045_007)), ""),
            ("[NOMODSEQ] Sorry", Some(Code::NoModSeq), "Sorry"),
            ("[CLOSED]", Some(Code::Closed), ""),
            ("[READ-ONLY] EXAMINE completed", Some(Code::ReadOnly), "EXAMINE completed"),
            (
                "[APPENDUID 38505 3955] APPEND completed",
                Some(Code::AppendUid { uid_validity: uv(38505), uids: "3955".parse_set() }),
                "APPEND completed",
            ),
            (
                "[COPYUID 38505 304,319:320 3956:3958] Done",
                Some(Code::CopyUid {
                    uid_validity: uv(38505),
                    source: "304,319:320".parse_set(),
                    destination: "3956:3958".parse_set(),
                }),
                "Done",
            ),
            (
                "[THROTTLED] slow down",
                Some(Code::Other { name: "THROTTLED".into(), data: None }),
                "slow down",
            ),
            (
                "[AUTHENTICATIONFAILED] Authentication failed.",
                Some(Code::Other { name: "AUTHENTICATIONFAILED".into(), data: None }),
                "Authentication failed.",
            ),
            (
                "[X-FOO some data] t",
                Some(Code::Other { name: "X-FOO".into(), data: Some("some data".into()) }),
                "t",
            ),
            (
                "[UIDNEXT abc] broken",
                Some(Code::Other { name: "UIDNEXT".into(), data: Some("abc".into()) }),
                "broken",
            ),
            ("plain text [THROTTLED]", None, "plain text [THROTTLED]"),
            ("", None, ""),
        ];
        for (input, expected_code, expected_text) in table {
            assert_eq!(code(input), (expected_code, expected_text.to_owned()), "{input}");
        }
        let (flags_code, _) = code("[PERMANENTFLAGS (\\Answered \\Seen $Forwarded \\*)] Limited");
        assert!(matches!(flags_code, Some(Code::PermanentFlags(f)) if f.len() == 4));
        let (caps, _) = code("[CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.");
        assert!(matches!(caps, Some(Code::Capability(c)) if c.has_auth("PLAIN")));
    }

    trait ParseSet {
        fn parse_set(&self) -> crate::types::SequenceSet;
    }
    impl ParseSet for &str {
        fn parse_set(&self) -> crate::types::SequenceSet {
            let text = format!("{self} ");
            sequence_set(text.as_bytes()).expect("set").1
        }
    }
}
