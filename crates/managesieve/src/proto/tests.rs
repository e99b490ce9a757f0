use proptest::prelude::*;

use super::*;

fn decode_all(data: &[u8]) -> Vec<Line> {
    let mut decoder = Decoder::new(Limits::default());
    decoder.feed(data);
    let mut out = Vec::new();
    while let Some(line) = decoder.next_line().expect("decodes") {
        out.push(line);
    }
    assert!(decoder.undecoded().is_empty(), "left over: {:?}", decoder.undecoded());
    out
}

fn response(line: &Line) -> &Response {
    match line {
        Line::Response(response) => response,
        Line::Data(tokens) => panic!("data {tokens:?}"),
    }
}

fn string(text: &[u8]) -> Token {
    Token::String(text.to_vec())
}

/// Lines of the real managesieved 2.3.19.1 transcript (dovecot-internals.md §3.3).
#[test]
fn pigeonhole_transcript_lines() {
    let lines = decode_all(
        b"\"IMPLEMENTATION\" \"Dovecot (Debian) Pigeonhole\"\r\n\"SASL\" \"PLAIN LOGIN\"\r\n\
          \"STARTTLS\"\r\nOK \"Dovecot (Debian) ready.\"\r\n\
          \"vacation\"\r\n\"spam\" ACTIVE\r\nOK \"Listscripts completed.\"\r\n\
          {10}\r\nkeep;\r\nx\r\n\r\nOK \"Getscript completed.\"\r\n\
          NO {21}\r\nline 1: error: 'foo'\n\r\n\
          NO (ACTIVE) \"Cannot delete the active Sieve script.\"\r\n\
          OK (TAG \"tag1\") \"Done\"\r\n",
    );
    assert_eq!(
        lines[0],
        Line::Data(vec![string(b"IMPLEMENTATION"), string(b"Dovecot (Debian) Pigeonhole")])
    );
    assert_eq!(lines[2], Line::Data(vec![string(b"STARTTLS")]));
    assert_eq!(response(&lines[3]).text, "Dovecot (Debian) ready.");
    assert_eq!(lines[5], Line::Data(vec![string(b"spam"), Token::Atom(b"ACTIVE".to_vec())]));
    assert_eq!(lines[7], Line::Data(vec![string(b"keep;\r\nx\r\n")]));
    let refused = response(&lines[9]);
    assert_eq!((refused.status, refused.text.as_str()), (Status::No, "line 1: error: 'foo'\n"));
    assert_eq!(response(&lines[10]).code, Some(ResponseCode::Active));
    assert_eq!(response(&lines[11]).code, Some(ResponseCode::Tag(b"tag1".to_vec())));
}

#[test]
fn response_codes() {
    let code = |line: &[u8]| response(&decode_all(line)[0]).code.clone();
    assert_eq!(code(b"NO (QUOTA/MAXSIZE) \"x\"\r\n"), Some(ResponseCode::QuotaMaxSize));
    assert_eq!(code(b"NO (quota/maxscripts)\r\n"), Some(ResponseCode::QuotaMaxScripts));
    assert_eq!(code(b"NO (QUOTA)\r\n"), Some(ResponseCode::Quota));
    assert_eq!(
        code(b"BYE (REFERRAL \"sieve://a.example\")\r\n"),
        Some(ResponseCode::Referral("sieve://a.example".into()))
    );
    assert_eq!(
        code(b"NO (REFERRAL sieve://b.example:4190)\r\n"),
        Some(ResponseCode::Referral("sieve://b.example:4190".into()))
    );
    assert_eq!(code(b"NO (TRYLATER) \"x\"\r\n"), Some(ResponseCode::TryLater));
    assert_eq!(code(b"NO (NONEXISTENT) \"x\"\r\n"), Some(ResponseCode::Nonexistent));
    assert_eq!(code(b"NO (ALREADYEXISTS) \"x\"\r\n"), Some(ResponseCode::AlreadyExists));
    assert_eq!(code(b"OK (WARNINGS) \"x\"\r\n"), Some(ResponseCode::Warnings));
    assert_eq!(code(b"OK (SASL \"eA==\")\r\n"), Some(ResponseCode::Sasl(b"eA==".to_vec())));
    assert_eq!(code(b"NO (ENCRYPT-NEEDED)\r\n"), Some(ResponseCode::EncryptNeeded));
    assert_eq!(code(b"NO (AUTH-TOO-WEAK)\r\n"), Some(ResponseCode::AuthTooWeak));
    assert_eq!(code(b"NO (TRANSITION-NEEDED)\r\n"), Some(ResponseCode::TransitionNeeded));
    assert!(matches!(
        code(b"NO (X-EXT (1 \"two\") three) \"x\"\r\n"),
        Some(ResponseCode::Other { name, args }) if name == "X-EXT" && args.len() == 2
    ));
    assert_eq!(code(b"OK\r\n"), None);
}

#[test]
fn malformed_and_oversized_lines_are_errors() {
    for bad in [
        &b"\"unterminated\r\n"[..],
        b"OK ()\r\n",
        b"OK ((((((((((\"deep\"))))))))))\r\n",
        b"\r\n",
        b"OK \"a\"\"b\"\r\n",
        b"abc{3}\r\nxyz\r\n",
    ] {
        let mut decoder = Decoder::new(Limits::default());
        decoder.feed(bad);
        assert!(decoder.next_line().is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let limits = Limits { max_line_len: 16, max_literal_len: 8 };
    let mut decoder = Decoder::new(limits);
    decoder.feed(b"OK \"this line is too long");
    assert_eq!(decoder.next_line(), Err(DecodeError::LineTooLong { limit: 16 }));
    let mut decoder = Decoder::new(limits);
    decoder.feed(b"{9}\r\n");
    assert_eq!(decoder.next_line(), Err(DecodeError::LiteralTooLong { len: 9, limit: 8 }));
    // Two literals on one line count together.
    let mut decoder = Decoder::new(limits);
    decoder.feed(b"{5}\r\n12345 {5}\r\n");
    assert_eq!(decoder.next_line(), Err(DecodeError::LiteralTooLong { len: 10, limit: 8 }));
}

#[test]
fn commands_encode_as_rfc_5804_says() {
    let name = |n: &str| ScriptName::new(n).expect("name");
    let (spam, quoted, away) = (name("spam"), name("a \"b\" \\ c"), name("away"));
    let secret = mailnet::Secret::new(b"\0alice\0pw".to_vec());
    let cases: Vec<(Command<'_>, &[u8])> = vec![
        (Command::Capability, b"CAPABILITY\r\n"),
        (Command::StartTls, b"STARTTLS\r\n"),
        (
            Command::Authenticate { mechanism: "PLAIN", initial_response: Some(&secret) },
            b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHB3\"\r\n",
        ),
        (Command::SaslCancel, b"\"*\"\r\n"),
        (Command::ListScripts, b"LISTSCRIPTS\r\n"),
        (Command::GetScript(&quoted), b"GETSCRIPT \"a \\\"b\\\" \\\\ c\"\r\n"),
        (
            Command::PutScript { name: &spam, script: b"keep;\r\n" },
            b"PUTSCRIPT \"spam\" {7+}\r\nkeep;\r\n\r\n",
        ),
        (Command::CheckScript(b"x"), b"CHECKSCRIPT {1+}\r\nx\r\n"),
        (Command::SetActive(Some(&spam)), b"SETACTIVE \"spam\"\r\n"),
        (Command::SetActive(None), b"SETACTIVE \"\"\r\n"),
        (Command::DeleteScript(&spam), b"DELETESCRIPT \"spam\"\r\n"),
        (Command::RenameScript { from: &spam, to: &away }, b"RENAMESCRIPT \"spam\" \"away\"\r\n"),
        (Command::HaveSpace { name: &spam, size: 98 }, b"HAVESPACE \"spam\" 98\r\n"),
        (Command::Noop, b"NOOP\r\n"),
        (Command::Logout, b"LOGOUT\r\n"),
    ];
    for (command, wire) in cases {
        let mut out = Vec::new();
        command.encode(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(wire));
    }
    let redacted = Command::Authenticate { mechanism: "PLAIN", initial_response: Some(&secret) };
    assert_eq!(redacted.redacted(), "AUTHENTICATE \"PLAIN\" <redacted>");
    let long = "n".repeat(200);
    let long = ScriptName::new(long).expect("200 chars");
    let mut out = Vec::new();
    Command::GetScript(&long).encode(&mut out);
    assert!(out.starts_with(b"GETSCRIPT \"n"));
}

#[test]
fn script_names_follow_pigeonhole() {
    for good in ["spam", "Spam filter (Müll)", "a.b", "x".repeat(256).as_str(), "日本語"] {
        assert!(ScriptName::new(good).is_ok(), "{good}");
    }
    for bad in ["", "a/b", "a\nb", "a\u{7f}", "a\u{85}", "a\u{2028}", &"x".repeat(257)] {
        assert!(ScriptName::new(bad).is_err(), "{bad:?}");
    }
    assert!(ScriptName::from_bytes(b"\xff").is_err());
}

fn decode_in_pieces(data: &[u8], piece: usize) -> Vec<Line> {
    let mut decoder = Decoder::new(Limits::default());
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        decoder.feed(chunk);
        while let Some(line) = decoder.next_line().expect("decodes") {
            out.push(line);
        }
    }
    out
}

proptest! {
    /// A script of any bytes comes back exactly from a GETSCRIPT answer, however the
    /// bytes arrive.
    #[test]
    fn any_script_survives_a_literal(script in proptest::collection::vec(any::<u8>(), 0..300), piece in 1usize..40) {
        let mut wire = format!("{{{}}}\r\n", script.len()).into_bytes();
        wire.extend_from_slice(&script);
        wire.extend_from_slice(b"\r\nOK \"Getscript completed.\"\r\n");
        let lines = decode_in_pieces(&wire, piece);
        prop_assert_eq!(lines.len(), 2);
        prop_assert_eq!(&lines[0], &Line::Data(vec![Token::String(script)]));
    }

    /// Any valid name, encoded as we encode strings (quoted or literal), parses back.
    #[test]
    fn any_name_survives_our_string_encoding(name in "[^/\\p{Cc}\u{2028}\u{2029}]{1,40}") {
        let name = ScriptName::new(name).expect("valid");
        let mut wire = Vec::new();
        command::string(&mut wire, name.as_str().as_bytes());
        wire.extend_from_slice(b" ACTIVE\r\n");
        let lines = decode_in_pieces(&wire, 3);
        prop_assert_eq!(&lines[0], &Line::Data(vec![
            Token::String(name.as_str().as_bytes().to_vec()),
            Token::Atom(b"ACTIVE".to_vec()),
        ]));
    }

    /// Hostile bytes never panic and decode the same whatever the split.
    #[test]
    fn hostile_bytes_decode_the_same_in_any_split(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        crate::fuzzing::decode(&data);
    }

    /// Structured junk (braces, quotes, parentheses, line ends) too.
    #[test]
    fn structured_junk(data in "[{}()\"\\\\ 0-9a-zOKNBY+\r\n]{0,200}") {
        crate::fuzzing::decode(data.as_bytes());
    }
}
