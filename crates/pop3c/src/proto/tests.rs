//! Known answers from server transcripts, and the framing properties: the writers and the
//! decoder are inverses, every proper prefix of a valid stream is incomplete, any split of
//! a stream decodes like the whole, dot-stuffing round-trips.

use proptest::prelude::*;

use super::*;
use crate::fuzzing::events;
use crate::types::{MessageNumber, ResponseCode, Uidl};

fn decode_all(kinds: &[ResponseKind], input: &[u8]) -> Vec<String> {
    events(input, input.len().max(1), kinds, Limits::default())
}

/// A Dovecot 2.3.19 session (greeting, CAPA, login, STAT, LIST, UIDL, TOP, RETR with a
/// stuffed line, a refused RETR, QUIT) decodes to the expected events.
#[test]
fn dovecot_transcript() {
    use ResponseKind::{Body, Listing, SingleLine};
    let kinds = [
        SingleLine, Listing, SingleLine, SingleLine, SingleLine, Listing, Listing, Body, Body,
        Body, SingleLine,
    ];
    let input: &[u8] = b"+OK Dovecot (Debian) ready.\r\n\
        +OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n\
        +OK\r\n\
        +OK Logged in.\r\n\
        +OK 2 339\r\n\
        +OK 2 messages:\r\n1 164\r\n2 175\r\n.\r\n\
        +OK\r\n1 00000001641c7a9b\r\n2 00000002641c7a9b\r\n.\r\n\
        +OK\r\nSubject: one\r\n\r\n.\r\n\
        +OK 175 octets\r\nSubject: two\r\n\r\n..leading dot\r\n.\r\n\
        -ERR There's no message 3.\r\n\
        +OK Logging out.\r\n";
    let got = decode_all(&kinds, input);
    let expected = [
        r#"Status(Status { kind: Ok, code: None, text: "Dovecot (Debian) ready." })"#,
        r#"MultiLineStart(Status { kind: Ok, code: None, text: "" })"#,
        "Line([67, 65, 80, 65])",
        "Line([84, 79, 80])",
        "Line([85, 73, 68, 76])",
        "Line([82, 69, 83, 80, 45, 67, 79, 68, 69, 83])",
        "Line([80, 73, 80, 69, 76, 73, 78, 73, 78, 71])",
        "Line([65, 85, 84, 72, 45, 82, 69, 83, 80, 45, 67, 79, 68, 69])",
        "Line([83, 84, 76, 83])",
        "Line([85, 83, 69, 82])",
        "Line([83, 65, 83, 76, 32, 80, 76, 65, 73, 78, 32, 76, 79, 71, 73, 78])",
        "end",
        r#"Status(Status { kind: Ok, code: None, text: "" })"#,
        r#"Status(Status { kind: Ok, code: None, text: "Logged in." })"#,
        r#"Status(Status { kind: Ok, code: None, text: "2 339" })"#,
        r#"MultiLineStart(Status { kind: Ok, code: None, text: "2 messages:" })"#,
        "Line([49, 32, 49, 54, 52])",
        "Line([50, 32, 49, 55, 53])",
        "end",
        r#"MultiLineStart(Status { kind: Ok, code: None, text: "" })"#,
        "Line([49, 32, 48, 48, 48, 48, 48, 48, 48, 49, 54, 52, 49, 99, 55, 97, 57, 98])",
        "Line([50, 32, 48, 48, 48, 48, 48, 48, 48, 50, 54, 52, 49, 99, 55, 97, 57, 98])",
        "end",
        r#"MultiLineStart(Status { kind: Ok, code: None, text: "" })"#,
        r"body Subject: one\r\n\r\n",
        "end",
        r#"MultiLineStart(Status { kind: Ok, code: None, text: "175 octets" })"#,
        r"body Subject: two\r\n\r\n.leading dot\r\n",
        "end",
        r#"Status(Status { kind: Err, code: None, text: "There's no message 3." })"#,
        r#"Status(Status { kind: Ok, code: None, text: "Logging out." })"#,
    ];
    assert_eq!(got, expected);
}

/// Unstuffing and termination: `(body on the wire after +OK, body delivered)`.
#[test]
fn dot_stuffing_known_answers() {
    let cases: [(&[u8], &[u8]); 10] = [
        (b".\r\n", b""),
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b".x\r\n.\r\n", b"x\r\n"),
        (b"a\n.b\n..\n.\n", b"a\nb\n.\n"),
        (b"no dot.\r\n.\r\n", b"no dot.\r\n"),
        (b"cr only\r.\r\n.\r\n", b"cr only\r.\r\n"),
        (b".\rx\r\n.\r\n", b"\rx\r\n"),
        (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    ];
    for (wire, body) in cases {
        let mut input = b"+OK\r\n".to_vec();
        input.extend_from_slice(wire);
        input.extend_from_slice(b"+OK next\r\n");
        let whole = decode_all(&[ResponseKind::Body, ResponseKind::SingleLine], &input);
        let mut expected =
            vec![r#"MultiLineStart(Status { kind: Ok, code: None, text: "" })"#.to_owned()];
        if !body.is_empty() {
            expected.push(format!("body {}", crate::types::escape(body)));
        }
        expected.push("end".into());
        expected.push(r#"Status(Status { kind: Ok, code: None, text: "next" })"#.into());
        assert_eq!(whole, expected, "{}", crate::types::escape(wire));
        for chunk in 1..4 {
            let split = events(
                &input,
                chunk,
                &[ResponseKind::Body, ResponseKind::SingleLine],
                Limits::default(),
            );
            assert_eq!(split, expected);
        }
    }
}

#[test]
fn sasl_exchange_and_error_answers() {
    let kinds = [ResponseKind::Sasl, ResponseKind::Listing, ResponseKind::Body];
    let input = b"+ \r\n+ eHl6\r\n-ERR [AUTH] Authentication failed.\r\n-ERR no UIDL\r\n-ERR [SYS/TEMP] try later\r\n";
    let got = decode_all(&kinds, input);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], "Continuation([])");
    assert_eq!(got[1], "Continuation([101, 72, 108, 54])");
    assert!(
        got[2].contains("Some(Auth)") && got[3].starts_with("Status") && got[4].contains("SysTemp")
    );
}

#[test]
fn limits_and_hostile_input_are_typed_errors() {
    let small =
        Limits { max_status_len: 32, max_line_len: 16, max_listing_len: 40, max_body_len: 64 };
    let run = |kind, input: &[u8]| {
        let mut decoder = Decoder::new(small);
        decoder.expect(kind);
        decoder.feed(input);
        loop {
            match decoder.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(error) => return Some(error),
            }
        }
    };
    use DecodeError as E;
    use ResponseKind::{Body, Listing, SingleLine};
    let long = [b'x'; 100];
    let cases: Vec<(ResponseKind, Vec<u8>, Option<DecodeError>)> = vec![
        (SingleLine, long.to_vec(), Some(E::StatusTooLong { limit: 32 })),
        (
            SingleLine,
            [b"+OK ".as_slice(), &long, b"\r\n"].concat(),
            Some(E::StatusTooLong { limit: 32 }),
        ),
        (Listing, [b"+OK\r\n".as_slice(), &long].concat(), Some(E::LineTooLong { limit: 16 })),
        (
            Listing,
            b"+OK\r\n1 1\r\n2 2\r\n3 3\r\n4 4\r\n5 5\r\n6 6\r\n7 7\r\n8 8\r\n9 9\r\n".to_vec(),
            Some(E::ResponseTooLarge { limit: 40 }),
        ),
        (Body, [b"+OK\r\n".as_slice(), &long].concat(), Some(E::ResponseTooLarge { limit: 64 })),
        (
            SingleLine,
            b"* OK IMAP4rev1\r\n".to_vec(),
            Some(E::Malformed { line: r"* OK IMAP4rev1\r\n".into() }),
        ),
        (SingleLine, b"+ \r\n".to_vec(), Some(E::Malformed { line: r"+ \r\n".into() })),
        (
            SingleLine,
            b"+OK\r\n-ERR extra\r\n".to_vec(),
            Some(E::Unsolicited { line: r"-ERR extra\r\n".into() }),
        ),
        // A body never terminated, and a half status line: need more bytes, no error.
        (Body, b"+OK\r\nline\r\n.".to_vec(), None),
        (SingleLine, b"+OK hal".to_vec(), None),
        // Bare LF line ends everywhere.
        (Listing, b"+OK\n1 2\n.\n".to_vec(), None),
    ];
    for (kind, input, expected) in cases {
        assert_eq!(run(kind, &input), expected, "{}", crate::types::escape(&input));
    }
    // A body may hold lines of any length: only the total is capped.
    let mut input = b"+OK\r\n".to_vec();
    input.extend_from_slice(&[b'y'; 60]);
    input.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(run(Body, &input), None);
}

#[test]
fn data_chunks_respect_the_requested_maximum() {
    let mut decoder = Decoder::new(Limits::default());
    decoder.expect(ResponseKind::Body);
    decoder.feed(b"+OK\r\nabcdefgh\r\n..ij\r\n.\r\n");
    assert!(matches!(decoder.next_event(), Ok(Some(Event::MultiLineStart(_)))));
    let mut body = Vec::new();
    loop {
        match decoder.next_event_max(3) {
            Ok(Some(Event::Data(data))) => {
                assert!(!data.is_empty() && data.len() <= 3);
                body.extend_from_slice(data);
            }
            Ok(Some(Event::End)) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(body, b"abcdefgh\r\n.ij\r\n");
    assert!(!decoder.in_multi_line());
}

// ---- properties ----

fn response_code() -> impl Strategy<Value = ResponseCode> {
    prop_oneof![
        Just(ResponseCode::InUse),
        Just(ResponseCode::LoginDelay),
        Just(ResponseCode::SysTemp),
        Just(ResponseCode::SysPerm),
        Just(ResponseCode::Auth),
        "[A-Z0-9-]{1,8}(/[A-Z0-9-]{1,8}){0,2}".prop_map(|c| ResponseCode::from_text(&c)),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    (
        prop_oneof![Just(StatusKind::Ok), Just(StatusKind::Err)],
        proptest::option::of(response_code()),
        // No line ends, and no leading '[' (it would read as a code).
        "([^\\[\r\n][^\r\n]{0,40})?",
    )
        .prop_map(|(kind, code, text)| Status { kind, code, text })
}

/// Message bodies that end with a line end (servers add one otherwise), rich in dots, CRs
/// and bare LFs.
fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b".\r\n".to_vec()),
            "[ -~]{1,12}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 1..6),
        ],
        0..24,
    )
    .prop_map(|parts| {
        let mut body = parts.concat();
        if !body.is_empty() && !body.ends_with(b"\n") {
            body.extend_from_slice(b"\r\n");
        }
        body
    })
}

/// One server answer and the framing the client expects for it.
#[derive(Debug, Clone)]
enum Answer {
    Single(Status),
    Scan(Vec<(u32, u64)>),
    Uidl(Vec<(u32, String)>),
    Body(Vec<u8>),
    Refused(Status),
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        status().prop_map(Answer::Single),
        proptest::collection::vec((1u32.., any::<u64>()), 0..6).prop_map(Answer::Scan),
        proptest::collection::vec((1u32.., "[!-~]{1,70}"), 0..6).prop_map(Answer::Uidl),
        body().prop_map(Answer::Body),
        status().prop_map(|s| Answer::Refused(Status { kind: StatusKind::Err, ..s })),
    ]
}

fn write_answer(answer: &Answer, out: &mut Vec<u8>) -> ResponseKind {
    let ok = Status { kind: StatusKind::Ok, code: None, text: String::new() };
    match answer {
        Answer::Single(status) => {
            write_status(status, out);
            ResponseKind::SingleLine
        }
        Answer::Scan(entries) => {
            write_status(&ok, out);
            let listing: Vec<u8> =
                entries.iter().flat_map(|(n, s)| format!("{n} {s}\r\n").into_bytes()).collect();
            write_dot_stuffed(&listing, out);
            ResponseKind::Listing
        }
        Answer::Uidl(entries) => {
            write_status(&ok, out);
            let listing: Vec<u8> =
                entries.iter().flat_map(|(n, u)| format!("{n} {u}\r\n").into_bytes()).collect();
            write_dot_stuffed(&listing, out);
            ResponseKind::Listing
        }
        Answer::Body(body) => {
            write_status(&ok, out);
            write_dot_stuffed(body, out);
            ResponseKind::Body
        }
        Answer::Refused(status) => {
            write_status(status, out);
            ResponseKind::Body
        }
    }
}

/// Decodes a stream with the given cut points, checking each answer against what was
/// written: the decoder and parsers invert the writers.
fn check_round_trip(answers: &[Answer], wire: &[u8], kinds: &[ResponseKind], cuts: &[usize]) {
    let mut decoder = Decoder::new(Limits::default());
    for &kind in kinds {
        decoder.expect(kind);
    }
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    bounds.push(wire.len());
    bounds.sort_unstable();
    let mut fed = 0;
    let mut answers = answers.iter();
    let mut current: Option<&Answer> = None;
    let (mut body, mut lines): (Vec<u8>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    for bound in bounds {
        decoder.feed(&wire[fed..bound]);
        fed = bound;
        while let Some(event) = decoder.next_event().expect("valid stream decodes") {
            match event {
                Event::Status(status) => match answers.next() {
                    Some(Answer::Single(expected) | Answer::Refused(expected)) => {
                        assert_eq!(&status, expected);
                    }
                    other => panic!("status {status:?} for {other:?}"),
                },
                Event::MultiLineStart(_) => current = answers.next(),
                Event::Line(line) => lines.push(line.to_vec()),
                Event::Data(data) => body.extend_from_slice(data),
                Event::End => {
                    match current.take() {
                        Some(Answer::Body(expected)) => assert_eq!(&body, expected),
                        Some(Answer::Scan(expected)) => {
                            let parsed: Vec<(u32, u64)> = lines
                                .iter()
                                .map(|l| parse_scan_listing(l).expect("scan listing"))
                                .map(|s| (s.number.get(), s.size))
                                .collect();
                            assert_eq!(&parsed, expected);
                        }
                        Some(Answer::Uidl(expected)) => {
                            let parsed: Vec<(u32, String)> = lines
                                .iter()
                                .map(|l| parse_uidl_listing(l).expect("uidl listing"))
                                .map(|u| (u.number.get(), u.uidl.into_string()))
                                .collect();
                            assert_eq!(&parsed, expected);
                        }
                        other => panic!("end of {other:?}"),
                    }
                    body.clear();
                    lines.clear();
                }
                Event::Continuation(_) => panic!("no SASL here"),
            }
        }
    }
    assert!(answers.next().is_none(), "every answer decoded");
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(decoder.expected(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn status_lines_round_trip(status in status()) {
        let mut line = Vec::new();
        write_status(&status, &mut line);
        prop_assert_eq!(parse_status(&line), Ok((status, line.len())));
        for cut in 0..line.len() {
            prop_assert_eq!(parse_status(&line[..cut]), Err(ParseError::Incomplete));
        }
    }

    #[test]
    fn dot_stuffing_round_trips(body in body()) {
        let mut wire = b"+OK\r\n".to_vec();
        write_dot_stuffed(&body, &mut wire);
        check_round_trip(&[Answer::Body(body)], &wire, &[ResponseKind::Body], &[]);
    }

    #[test]
    fn any_split_decodes_like_the_whole(
        answers in proptest::collection::vec(answer(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        let kinds: Vec<ResponseKind> = answers.iter().map(|a| write_answer(a, &mut wire)).collect();
        check_round_trip(&answers, &wire, &kinds, &[]);
        check_round_trip(&answers, &wire, &kinds, &cuts);
        let whole = events(&wire, wire.len(), &kinds, Limits::default());
        for chunk in [1, 2, 3, 5, 64] {
            prop_assert_eq!(&events(&wire, chunk, &kinds, Limits::default()), &whole);
        }
    }

    #[test]
    fn proper_prefixes_need_more_bytes(answers in proptest::collection::vec(answer(), 1..4)) {
        let mut wire = Vec::new();
        let kinds: Vec<ResponseKind> = answers.iter().map(|a| write_answer(a, &mut wire)).collect();
        for cut in 0..wire.len() {
            let got = events(&wire[..cut], cut.max(1), &kinds, Limits::default());
            prop_assert!(!got.iter().any(|e| e.starts_with("error")), "{:?}", got);
        }
    }

    #[test]
    fn listing_writers_and_parsers_are_inverse(n in 1u32.., size in any::<u64>(), uidl in "[!-~]{1,512}") {
        let number = MessageNumber::new(n).expect("non-zero");
        prop_assert_eq!(parse_scan_listing(format!("{n} {size}").as_bytes()), Ok(ScanListing { number, size }));
        let uidl = Uidl::new(uidl).expect("valid");
        prop_assert_eq!(
            parse_uidl_listing(format!("{n} {uidl}").as_bytes()),
            Ok(UidlListing { number, uidl })
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        crate::fuzzing::decode(&data);
    }
}

#[test]
fn an_event_summary_names_a_large_chunk_by_size_without_printing_it() {
    let chunk = vec![b'x'; 1 << 20];
    let summary = Event::Data(&chunk).summary();
    assert!(summary.starts_with("body data (1048576 bytes) \"xxxx"), "{summary}");
    assert!(summary.len() < 100, "{}", summary.len());
    let line = Event::Line(b"1 abc\r").summary();
    assert_eq!(line, "listing line (6 bytes) \"1 abc\\r\"");
    assert_eq!(Event::Continuation(b"secret".to_vec()).summary(), "SASL continuation");
}
