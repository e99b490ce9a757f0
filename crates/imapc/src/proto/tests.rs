//! Known answers from real servers and RFC examples, the write → parse inverse, and the
//! framing properties: every proper prefix is incomplete, and any split of a byte stream
//! decodes like the whole.

use proptest::prelude::*;

use super::*;
use crate::types::{
    Capabilities, Flag, MailboxName, SequenceSet, Uid, UidValidity, parse_internal_date,
};

fn parse(input: &[u8]) -> Response {
    match parse_response(input, ParseOptions::default()) {
        Ok((response, used)) => {
            assert_eq!(used, input.len(), "trailing bytes in {}", mutf7::escape_for_display(input));
            response
        }
        Err(error) => panic!("{error} for {}", mutf7::escape_for_display(input)),
    }
}

/// parse → write → parse gives the same value.
fn kat_inverse(input: &[u8]) -> Response {
    let response = parse(input);
    let mut written = Vec::new();
    write_response(&response, &mut written);
    assert_eq!(parse(&written), response, "rewritten as {}", mutf7::escape_for_display(&written));
    response
}

#[test]
fn server_transcripts_parse() {
    // Dovecot 2.3, Gmail, Exchange, Courier and RFC 3501/7162 examples.
    let lines: &[&[u8]] = &[
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n",
        b"A1 OK [CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE SORT MULTIAPPEND UIDPLUS CONDSTORE QRESYNC LIST-STATUS SPECIAL-USE LITERAL+] Logged in\r\n",
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded Junk NonJunk $Label1)\r\n",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded Junk NonJunk $Label1 \\*)] Flags permitted.\r\n",
        b"* 8 EXISTS\r\n",
        b"* 0 RECENT\r\n",
        b"* OK [UIDVALIDITY 1732352455] UIDs valid\r\n",
        b"* OK [UIDNEXT 10] Predicted next UID\r\n",
        b"* OK [HIGHESTMODSEQ 715194045007]\r\n",
        b"* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences\r\n",
        b"A3 OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).\r\n",
        b"* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
        b"* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n",
        b"* LIST (\\Noselect \\HasChildren) \"/\" Parent\r\n",
        b"* LIST (\\HasNoChildren) \"/\" \"Project Notes\"\r\n",
        b"* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\n",
        b"* LIST (\\HasNoChildren) \".\" {11}\r\nwith \"quote\r\n",
        b"* LIST () NIL flat\r\n",
        b"* LIST (\\Subscribed \\NonExistent) \"/\" Gone\r\n",
        b"* LIST () \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
        b"* LIST () \"/\" New (\"OLDNAME\" (\"Old\"))\r\n",
        b"* LIST (\\HasNoChildren \\All) \"/\" \"[Gmail]/All Mail\"\r\n",
        b"* LSUB () \".\" #news.comp.mail.misc\r\n",
        b"* XLIST (\\HasNoChildren \\Inbox) \"/\" \"Inbox\"\r\n",
        b"* STATUS INBOX (MESSAGES 8 UIDNEXT 10 UIDVALIDITY 1732352455 HIGHESTMODSEQ 12)\r\n",
        b"* STATUS \"Project Notes\" (MESSAGES 1 SIZE 307456 DELETED 0 UNSEEN 1 RECENT 0)\r\n",
        b"* SEARCH 2 84 882\r\n",
        b"* SEARCH\r\n",
        b"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n",
        b"* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11\r\n",
        b"* ESEARCH (TAG \"A283\") UID ALL 4:7 MODSEQ 917162500\r\n",
        b"* ENABLED CONDSTORE QRESYNC\r\n",
        b"* ENABLED\r\n",
        b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n",
        b"* VANISHED 405,407,410,425\r\n",
        b"* 12 EXPUNGE\r\n",
        b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n",
        b"* NAMESPACE ((\"INBOX.\" \".\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\"))\r\n",
        b"* ID (\"name\" \"Dovecot\")\r\n",
        b"* ID NIL\r\n",
        b"* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\" \"support-url\" NIL)\r\n",
        b"* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584\r\n",
        b"* BYE Logging out\r\n",
        b"* PREAUTH [CAPABILITY IMAP4rev1] Logged in as alice\r\n",
        b"+ \r\n",
        b"+ Ready for literal data\r\n",
        b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
        b"A5 OK [APPENDUID 1732352455 12] Append completed.\r\n",
        b"A6 OK [APPENDUID 38505 3955:3957] Append completed.\r\n",
        b"A7 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
        b"A8 NO [TRYCREATE] Mailbox doesn't exist: Does/Not/Exist\r\n",
        b"A9 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        b"A10 OK [MODIFIED 7,9] Conditional STORE failed\r\n",
        b"A11 NO [THROTTLED] Try later\r\n",
        b"A12 BAD Error in IMAP command UID: Invalid arguments.\r\n",
        b"A13 OK [CLOSED] Previous mailbox closed.\r\n",
        b"* OK [ALERT] System shutdown in 10 minutes\r\n",
        b"* NO [OVERQUOTA] Quota exceeded\r\n",
        b"A14 NO Request is throttled. Suggested Backoff Time: 203 milliseconds\r\n",
        b"* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE \" 7-Jul-2024 10:00:00 +0200\" RFC822.SIZE 312)\r\n",
        b"* 2 FETCH (FLAGS (\\Seen \\Recent $Label1) UID 2 MODSEQ (12345678901))\r\n",
        b"* 3 FETCH (UID 4 RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\n",
        b"* 3 FETCH (UID 4 BODY[HEADER.FIELDS (DATE MESSAGE-ID)] {4}\r\n\r\n\r\n BODY[]<0> {2}\r\nab)\r\n",
        b"* 3 FETCH (UID 4 BINARY[1] ~{3}\r\n\x00\x01\x02 BINARY.SIZE[1] 3)\r\n",
        b"* 3 FETCH (UID 4 BODY[TEXT] NIL RFC822.HEADER {2}\r\nhi)\r\n",
        b"* 5 FETCH (X-GM-MSGID 1278455344230334865 X-GM-THRID 1266894439832287888 X-GM-LABELS (\\Inbox \\Sent Important \"Muy Importante\" \"&AOk-t&AOk-\") UID 9)\r\n",
        b"* 5 FETCH (UID 9 EMAILID (M6d99ac3275bb4e) X-GUID 3bd4650d8fb4a86b1b000000c3b4d104)\r\n",
        b"* 6 FETCH (UID 10 X-GM-LABELS ())\r\n",
        // Invalid values are kept as sent, the rest of the response too.
        b"* 7 FETCH (UID 0 FLAGS () INTERNALDATE \"01-Jan-2024 10:00:00 GMT\" RFC822.SIZE 3)\r\n",
    ];
    for line in lines {
        kat_inverse(line);
    }
    // Lines that parse but do not survive rewriting byte-for-byte are still checked to parse.
    let parse_only: &[&[u8]] = &[
        b"* 4 FETCH (UID 7 ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" \"Hi\" ((\"A\" NIL \"a\" \"x.org\")) NIL NIL NIL NIL NIL NIL \"<m@x>\") BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 12 1 NIL NIL NIL NIL) BODY (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 12 1))\r\n",
        b"* 4 FETCH (UID 7 SAVEDATE NIL PREVIEW \"hi there\" BODY[] {0}\r\n)\r\n",
        b"* SORT 2 3 6\r\n",
        b"* QUOTA \"\" (STORAGE 10 512)\r\n",
        b"* OK\r\n",
        b"A1 OK\r\n",
        b"* OK [HIGHESTMODSEQ 42]\n",
    ];
    for line in parse_only {
        parse(line);
    }
}

#[test]
fn invalid_item_values_are_kept_not_fatal() {
    let Response::Untagged(Untagged::Fetch(fetch)) = kat_inverse(
        b"* 7 FETCH (UID 0 FLAGS (\\Seen) INTERNALDATE \"31-Feb-2024 10:00:00 +0000\" RFC822.SIZE 3)\r\n",
    ) else {
        panic!("a FETCH response")
    };
    assert_eq!((fetch.uid, fetch.internal_date, fetch.rfc822_size), (None, None, Some(3)));
    assert_eq!(fetch.invalid("UID"), Some("0"));
    assert_eq!(fetch.invalid("INTERNALDATE"), Some("31-Feb-2024 10:00:00 +0000"));
    assert_eq!(fetch.flags, Some(vec![Flag::Seen]));
    for zone in ["GMT", "+01:00", "+2400", "+0", "UTC+1"] {
        let line = format!("* 1 FETCH (UID 4 INTERNALDATE \"01-Jan-2024 10:00:00 {zone}\")\r\n");
        let Response::Untagged(Untagged::Fetch(fetch)) = parse(line.as_bytes()) else {
            panic!("a FETCH response for {zone}")
        };
        assert_eq!(fetch.uid, Uid::new(4), "{zone}");
        assert!(fetch.invalid("INTERNALDATE").is_some_and(|text| text.ends_with(zone)));
    }
}

#[test]
fn known_answers_in_detail() {
    let Response::Untagged(Untagged::Fetch(fetch)) =
        kat_inverse(b"* 2 FETCH (FLAGS (\\Seen \\Recent $Label1) UID 2 INTERNALDATE \"08-Jul-2024 11:30:00 +0000\" BODY[] {3}\r\nabc)\r\n")
    else {
        panic!("not a FETCH")
    };
    assert_eq!(fetch.seq, 2);
    assert_eq!(fetch.uid, Uid::new(2));
    assert_eq!(fetch.flags_without_recent(), [Flag::Seen, Flag::Keyword("$Label1".into())]);
    assert_eq!(fetch.internal_date, parse_internal_date(b"08-Jul-2024 11:30:00 +0000"));
    assert_eq!(fetch.bodies[0].data, BodyData::Inline(b"abc".to_vec()));

    let Response::Untagged(Untagged::List(entry)) =
        kat_inverse(b"* LIST (\\HasNoChildren \\Drafts) \"/\" \"Archive/Entw&APw-rfe\"\r\n")
    else {
        panic!("not a LIST")
    };
    assert_eq!(entry.name.decoded(), Some("Archive/Entwürfe"));
    assert_eq!(entry.delimiter, Some('/'));
    assert_eq!(entry.special_use(), Some(&ListAttribute::Drafts));
    let Response::Untagged(Untagged::List(broken)) = parse(b"* LIST () \"/\" &AGE-broken\r\n")
    else {
        panic!()
    };
    assert_eq!((broken.name.decoded(), broken.name.as_raw()), (None, &b"&AGE-broken"[..]));

    let Response::Tagged { tag, status } =
        parse(b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
    else {
        panic!()
    };
    assert_eq!(tag, "a2");
    assert_eq!(status.code.map(|c| c.name()), Some("AUTHENTICATIONFAILED".into()));
    let Response::Tagged { status, .. } = parse(b"a3 NO Too many [THROTTLED]\r\n") else {
        panic!()
    };
    assert!(status.is_throttled());
    // A tagged line whose code does not close still completes its command.
    let Response::Tagged { tag, status } = parse(b"a4 OK [UNCLOSED code\r\n") else { panic!() };
    assert_eq!((tag.as_str(), status.kind), ("a4", StatusKind::Ok));
    assert!(matches!(
        parse(b"* 1 FETCH (UID)\r\n"),
        Response::Untagged(Untagged::Malformed { .. })
    ));
    assert_eq!(parse_response(b"garbage\r\n", ParseOptions::default()), Err(ParseError::Malformed));
    let Response::Untagged(Untagged::ESearch(es)) =
        parse(b"* ESEARCH (TAG \"A1\") UID ALL 2,10:11\r\n")
    else {
        panic!()
    };
    assert_eq!(es.all.and_then(|s| s.to_uids()).map(|u| u.len()), Some(3));
}

#[test]
fn every_proper_prefix_is_incomplete() {
    let stream: &[u8] = b"* 3 FETCH (UID 4 FLAGS (\\Seen) INTERNALDATE \" 7-Jul-2024 10:00:00 +0200\" BODY[HEADER.FIELDS (DATE)] {4}\r\n\r\n\r\n X-GM-LABELS (\"a b\") MODSEQ (5))\r\n";
    let lines: &[&[u8]] = &[
        stream,
        b"A7 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
        b"* LIST (\\HasNoChildren) \"/\" {5}\r\nab\r\nc (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
        b"* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared/\" \"/\"))\r\n",
        b"* STATUS INBOX (MESSAGES 8 UIDNEXT 10)\r\n",
        b"* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11\r\n",
        b"* ID (\"name\" \"Dovecot\")\r\n",
    ];
    for line in lines {
        for cut in 0..line.len() {
            assert_eq!(
                parse_response(&line[..cut], ParseOptions::default()),
                Err(ParseError::Incomplete),
                "prefix {cut} of {}",
                mutf7::escape_for_display(line)
            );
        }
    }
}

/// Decoder output with body chunks merged, for comparing different feeds.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Response(Response),
    Body(BodyStart, Vec<u8>),
}

fn decode_in_chunks(stream: &[u8], cuts: &[usize]) -> Result<Vec<Seen>, DecodeError> {
    let mut decoder = ResponseDecoder::new(Limits::default());
    let mut seen = Vec::new();
    let mut current: Option<(BodyStart, Vec<u8>)> = None;
    let mut position = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    for cut in cuts {
        decoder.feed(&stream[position..cut.max(position)]);
        position = cut.max(position);
        while let Some(event) = decoder.next_event()? {
            match event {
                Event::Response(r) => seen.push(Seen::Response(r)),
                Event::BodyStart(start) => current = Some((start, Vec::new())),
                Event::BodyData(data) => {
                    current.as_mut().expect("inside a body").1.extend_from_slice(data);
                }
                Event::BodyEnd => {
                    let (start, data) = current.take().expect("inside a body");
                    seen.push(Seen::Body(start, data));
                }
            }
        }
    }
    Ok(seen)
}

#[test]
fn decoder_streams_bodies_and_keeps_other_literals_inline() {
    let stream = b"* 1 FETCH (UID 7 BODY[] {5}\r\nhello FLAGS (\\Seen))\r\n* LIST () \"/\" {3}\r\na b\r\nA1 OK done\r\n";
    let seen = decode_in_chunks(stream, &[]).expect("valid");
    assert_eq!(seen.len(), 4);
    let Seen::Body(start, data) = &seen[0] else { panic!("{seen:?}") };
    assert_eq!(
        (start.fetch.seq, start.fetch.uid, start.len, data.as_slice()),
        (1, Uid::new(7), 5, &b"hello"[..])
    );
    let Seen::Response(Response::Untagged(Untagged::Fetch(fetch))) = &seen[1] else { panic!() };
    assert_eq!(fetch.bodies[0].data, BodyData::Streamed(5));
    assert_eq!(fetch.flags, Some(vec![Flag::Seen]));
    let Seen::Response(Response::Untagged(Untagged::List(entry))) = &seen[2] else { panic!() };
    assert_eq!(entry.name.as_raw(), b"a b");
    // A trace shows what stood where the streamed bytes were (items in the writer's order).
    let mut traced = Vec::new();
    write_response_for_trace(&Response::Untagged(Untagged::Fetch(fetch.clone())), &mut traced);
    assert_eq!(traced, b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {5}\r\n<5 bytes>)\r\n");

    // Limits.
    let limits = Limits { max_line_len: 16, ..Limits::default() };
    let mut decoder = ResponseDecoder::new(limits);
    decoder.feed(b"* OK this line is far too long");
    assert_eq!(decoder.next_event(), Err(DecodeError::LineTooLong { limit: 16 }));
    let mut decoder = ResponseDecoder::new(Limits::default());
    decoder.feed(b"* 1 FETCH (BODY[] {4294967295}\r\n");
    assert!(matches!(
        decoder.next_event(),
        Err(DecodeError::LiteralTooLarge { len: 4_294_967_295, .. })
    ));
    let mut decoder = ResponseDecoder::new(Limits::default());
    decoder.feed(b"A1 WHAT\r\n");
    assert!(matches!(decoder.next_event(), Err(DecodeError::Malformed { .. })));
    let mut decoder = ResponseDecoder::new(Limits::default());
    decoder.feed(b"* 1 FETCH (UID 1 BODY[] \x005)\r\n");
    assert!(matches!(
        decoder.next_event(),
        Ok(Some(Event::Response(Response::Untagged(Untagged::Malformed { .. }))))
    ));
}

/// A FETCH answer with items before and after its streamed body (a one-pass copy's: UID,
/// FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ, then BODY[], then more) decodes, fed in any
/// two pieces, to what the whole response parses to: the decoder parses the items before
/// the body once, for the body's start, and only the rest when the response completes.
#[test]
fn a_fetch_with_a_streamed_body_decodes_as_the_whole_response_parses() {
    let stream: &[u8] = b"* 3 FETCH (UID 7 FLAGS (\\Seen $Label1) INTERNALDATE \"14-Jul-2017 03:33:25 +0000\" RFC822.SIZE 5 MODSEQ (4) BODY[] {5}\r\nhello X-GUID {3}\r\nabc UID 7)\r\nA1 OK done\r\n";
    let whole: &[u8] = b"* 3 FETCH (UID 7 FLAGS (\\Seen $Label1) INTERNALDATE \"14-Jul-2017 03:33:25 +0000\" RFC822.SIZE 5 MODSEQ (4) BODY[] \x005 X-GUID {3}\r\nabc UID 7)\r\n";
    let (expected, _) = parse_response(whole, ParseOptions::default()).expect("parses");
    for cut in 0..=stream.len() {
        let seen = decode_in_chunks(stream, &[cut]).expect("valid");
        assert_eq!(seen.len(), 3, "cut {cut}: {seen:?}");
        let Seen::Body(start, data) = &seen[0] else { panic!("{seen:?}") };
        assert_eq!(
            (start.fetch.uid, start.fetch.rfc822_size, data.as_slice()),
            (Uid::new(7), Some(5), &b"hello"[..])
        );
        assert_eq!(seen[1], Seen::Response(expected.clone()), "cut {cut}");
    }
    let Response::Untagged(Untagged::Fetch(fetch)) = &expected else { panic!("{expected:?}") };
    assert_eq!((fetch.seq, fetch.modseq, fetch.x_guid.as_deref()), (3, Some(4), Some("abc")));
    assert_eq!(fetch.flags, Some(vec![Flag::Seen, Flag::Keyword("$Label1".into())]));
}

// ---- Generated responses -------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 .,:()!-]{0,20}".prop_map(|s| s.trim_end().to_owned())
}

fn atom() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9=+.-]{0,10}"
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::Seen),
        Just(Flag::Answered),
        Just(Flag::Flagged),
        Just(Flag::Deleted),
        Just(Flag::Draft),
        Just(Flag::Recent),
        "\\$?[A-Za-z][A-Za-z0-9]{0,8}"
            .prop_map(|k| Flag::Keyword(k.trim_start_matches('\\').to_owned())),
    ]
}

fn name() -> impl Strategy<Value = MailboxName> {
    prop_oneof![
        Just(MailboxName::from_utf8("INBOX")),
        any::<String>().prop_map(|s| MailboxName::from_utf8(&s)),
        "[A-Za-z &/.\"\\\\]{1,12}".prop_map(|s| MailboxName::from_utf8(&s)),
    ]
}

fn set() -> impl Strategy<Value = SequenceSet> {
    proptest::collection::vec(1u32..5000, 1..8)
        .prop_map(|v| SequenceSet::from_uids(v.into_iter().filter_map(Uid::new)))
}

fn uid_validity() -> impl Strategy<Value = UidValidity> {
    (1u32..).prop_map(|v| UidValidity::new(v).unwrap_or_else(|| unreachable!()))
}

fn code() -> impl Strategy<Value = Code> {
    prop_oneof![
        Just(Code::Alert),
        Just(Code::ReadOnly),
        Just(Code::TryCreate),
        Just(Code::NoModSeq),
        Just(Code::Closed),
        proptest::collection::vec(atom(), 1..4)
            .prop_map(|c| Code::Capability(Capabilities::new(c))),
        proptest::collection::vec(flag(), 0..4).prop_map(Code::PermanentFlags),
        uid_validity().prop_map(Code::UidValidity),
        (1u32..).prop_map(|v| Code::UidNext(Uid::new(v).unwrap_or_else(|| unreachable!()))),
        any::<u64>().prop_map(|v| Code::HighestModSeq(v >> 1)),
        (uid_validity(), set())
            .prop_map(|(uid_validity, uids)| Code::AppendUid { uid_validity, uids }),
        (uid_validity(), set(), set()).prop_map(|(uid_validity, source, destination)| {
            Code::CopyUid { uid_validity, source, destination }
        }),
        ("X-[A-Z]{1,8}", proptest::option::of("[a-z0-9 ]{0,8}[a-z0-9]"))
            .prop_map(|(name, data)| Code::Other { name, data }),
    ]
}

fn status(kinds: &'static [StatusKind]) -> impl Strategy<Value = Status> {
    (proptest::sample::select(kinds), proptest::option::of(code()), text())
        .prop_map(|(kind, code, text)| Status { kind, code, text })
}

fn fetch() -> impl Strategy<Value = Fetch> {
    let date = (0i64..4_000_000_000, -720i32..840).prop_map(|(t, m)| {
        chrono::DateTime::from_timestamp(t, 0).map(|d| {
            d.with_timezone(
                &chrono::FixedOffset::east_opt(m * 60).unwrap_or_else(|| unreachable!()),
            )
        })
    });
    let body = (
        prop_oneof![Just(BodyKind::Body), Just(BodyKind::Binary), Just(BodyKind::Rfc822)],
        prop_oneof![Just(String::new()), Just("HEADER".to_owned()), Just("1.2".to_owned())],
        proptest::option::of(any::<u32>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
    )
        .prop_map(|(kind, section, origin, data)| {
            let section = if kind == BodyKind::Rfc822 { String::new() } else { section };
            let origin = if kind == BodyKind::Rfc822 { None } else { origin };
            BodyItem {
                section: BodySection { kind, section, origin },
                data: data.map_or(BodyData::Nil, BodyData::Inline),
            }
        });
    (
        1u32..100_000,
        proptest::option::of(1u32..),
        proptest::option::of(proptest::collection::vec(flag(), 0..5)),
        proptest::option::of(date),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(body, 0..3),
        proptest::option::of(proptest::collection::vec(
            proptest::collection::vec(1u8..=255, 0..12),
            0..3,
        )),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(seq, uid, flags, date, size, modseq, bodies, labels, msgid)| Fetch {
            seq,
            uid: uid.and_then(Uid::new),
            flags,
            internal_date: date.flatten(),
            rfc822_size: size.map(u64::from),
            modseq: modseq.map(|m| m >> 1),
            bodies,
            gmail_labels: labels,
            gmail_message_id: msgid,
            ..Fetch::default()
        })
}

fn list_entry() -> impl Strategy<Value = ListEntry> {
    let attribute = proptest::sample::select(vec![
        ListAttribute::NoSelect,
        ListAttribute::HasChildren,
        ListAttribute::HasNoChildren,
        ListAttribute::Subscribed,
        ListAttribute::Sent,
        ListAttribute::Other("\\XFoo".into()),
    ]);
    (
        proptest::sample::select(vec![ListKind::List, ListKind::Lsub, ListKind::Xlist]),
        proptest::collection::vec(attribute, 0..3),
        proptest::option::of(proptest::sample::select(vec!['/', '.', '\\', '"'])),
        name(),
        proptest::collection::vec("[A-Z]{1,10}", 0..2),
        proptest::option::of(name()),
    )
        .prop_map(|(kind, attributes, delimiter, name, child_info, old_name)| ListEntry {
            kind,
            attributes,
            delimiter,
            name,
            child_info,
            old_name,
        })
}

fn untagged() -> impl Strategy<Value = Untagged> {
    prop_oneof![
        status(&[
            StatusKind::Ok,
            StatusKind::No,
            StatusKind::Bad,
            StatusKind::PreAuth,
            StatusKind::Bye
        ])
        .prop_map(Untagged::Status),
        proptest::collection::vec(atom(), 0..5)
            .prop_map(|c| Untagged::Capability(Capabilities::new(c))),
        proptest::collection::vec(atom(), 0..3).prop_map(Untagged::Enabled),
        proptest::collection::vec(flag(), 0..5).prop_map(Untagged::Flags),
        list_entry().prop_map(Untagged::List),
        (name(), proptest::option::of(any::<u32>()), proptest::option::of(any::<u64>())).prop_map(
            |(name, messages, highest_modseq)| {
                Untagged::MailboxStatus(MailboxStatus {
                    name,
                    messages,
                    recent: None,
                    uid_next: messages.map(|m| m / 2),
                    uid_validity: Some(7),
                    unseen: None,
                    deleted: None,
                    highest_modseq,
                    size: None,
                    mailbox_id: None,
                })
            }
        ),
        (proptest::collection::vec(1u32.., 0..6), proptest::option::of(any::<u32>())).prop_map(
            |(numbers, modseq)| Untagged::Search { numbers, modseq: modseq.map(u64::from) }
        ),
        (
            proptest::option::of("[A-Z][0-9]{1,3}"),
            any::<bool>(),
            proptest::option::of(1u32..),
            proptest::option::of(set())
        )
            .prop_map(|(tag, uid, min, all)| Untagged::ESearch(ESearch {
                tag,
                uid,
                min,
                all,
                ..ESearch::default()
            })),
        any::<u32>().prop_map(Untagged::Exists),
        any::<u32>().prop_map(Untagged::Expunge),
        fetch().prop_map(|f| Untagged::Fetch(Box::new(f))),
        (any::<bool>(), set()).prop_map(|(earlier, uids)| Untagged::Vanished { earlier, uids }),
        proptest::collection::vec((name(), proptest::option::of(Just('/'))), 0..3).prop_map(|ns| {
            Untagged::Namespace(Namespaces {
                personal: ns
                    .into_iter()
                    .map(|(prefix, delimiter)| Namespace { prefix, delimiter })
                    .collect(),
                other_users: Vec::new(),
                shared: Vec::new(),
            })
        }),
        proptest::option::of(proptest::collection::vec(
            (atom(), proptest::option::of(text())),
            0..3
        ))
        .prop_map(Untagged::Id),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        ("[A-Za-z][A-Za-z0-9]{0,5}", status(&[StatusKind::Ok, StatusKind::No, StatusKind::Bad]))
            .prop_map(|(tag, status)| Response::Tagged { tag, status }),
        (proptest::option::of(code()), text())
            .prop_map(|(code, text)| Response::Continuation { code, text }),
        untagged().prop_map(Response::Untagged),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn written_responses_parse_back(response in response()) {
        let mut bytes = Vec::new();
        write_response(&response, &mut bytes);
        prop_assert_eq!(parse(&bytes), response);
    }

    #[test]
    fn any_split_decodes_like_the_whole(
        responses in proptest::collection::vec(response(), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for response in &responses {
            write_response(response, &mut stream);
        }
        let whole = decode_in_chunks(&stream, &[]);
        prop_assert!(whole.is_ok(), "{:?}", whole);
        prop_assert_eq!(decode_in_chunks(&stream, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        crate::fuzzing::decode(&bytes);
    }
}
