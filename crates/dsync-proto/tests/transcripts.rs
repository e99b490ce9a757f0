//! The seven conversations captured between real Dovecots (`tests/data/dsync-wire-transcript.txt`,
//! recorded with Dovecot 2.3.19.1; T7's master is a non-Dovecot prototype) decode into
//! typed items and encode back byte for byte, in both directions.

use dsync_proto::proto::{
    Attribute, Decoder, Encoder, Event, Finish, Handshake, Item, ItemKind, Limits, Mail,
    MailChange, MailRequest, Mailbox, MailboxDeletes, MailboxState, Record, SchemaSet, TreeNode,
    encode_stream,
};

const TRANSCRIPT: &str = include_str!("data/dsync-wire-transcript.txt");

/// One conversation: its title and the bytes each side sent.
struct Conversation {
    title: String,
    master: Vec<u8>,
    slave: Vec<u8>,
}

/// Undoes the transcript's rendering of one line (`\t`, `\1`, `\2`, `\r`, `\\`).
fn unrender(line: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = line.bytes();
    while let Some(byte) = chars.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        out.push(match chars.next() {
            Some(b't') => b'\t',
            Some(b'1') => 1,
            Some(b'2') => 2,
            Some(b'r') => b'\r',
            Some(b'\\') => b'\\',
            other => panic!("unknown escape \\{other:?} in {line:?}"),
        });
    }
    out.push(b'\n');
    out
}

fn conversations() -> Vec<Conversation> {
    let mut list: Vec<Conversation> = Vec::new();
    for line in TRANSCRIPT.lines() {
        if let Some(title) =
            line.strip_prefix("# T").filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
        {
            list.push(Conversation {
                title: format!("T{title}"),
                master: Vec::new(),
                slave: Vec::new(),
            });
            continue;
        }
        let Some(current) = list.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("M> ") {
            current.master.extend(unrender(rest));
        } else if let Some(rest) = line.strip_prefix("S> ") {
            current.slave.extend(unrender(rest));
        }
    }
    list
}

/// The schema lines T2–T5 leave out ("identical to T1") go back in after the version line.
fn with_schemas(wire: &[u8]) -> Vec<u8> {
    let version = b"VERSION\tdsync\t3\t5\n";
    match wire.strip_prefix(&version[..]) {
        Some(rest) if rest.starts_with(b".\n") => {
            let mut full = Vec::new();
            Encoder::new().start(&mut full);
            full.extend_from_slice(&rest[2..]);
            full
        }
        _ => wire.to_vec(),
    }
}

fn typed<I: Item>(record: &Record, out: &mut Vec<u8>) {
    let item = I::from_record(record).unwrap_or_else(|e| panic!("{e}: {record:?}"));
    Encoder::new().item(&item, out);
}

/// Decodes `wire` and encodes every event back.
fn round_trip(wire: &[u8], from_start: bool) -> Vec<u8> {
    let limits = Limits::default();
    let mut decoder = if from_start {
        Decoder::new(limits)
    } else {
        Decoder::after_handshake(SchemaSet::dovecot_2_3(), 5, limits)
    };
    decoder.feed(wire);
    let mut out = Vec::new();
    let mut stream = Vec::new();
    loop {
        let event = decoder.next_event().unwrap_or_else(|e| panic!("decoding: {e}"));
        match event {
            None => break,
            Some(Event::Version { minor }) => assert_eq!(minor, 5),
            Some(Event::SchemasDone) => {
                assert_eq!(decoder.peer_schemas(), &SchemaSet::dovecot_2_3());
                Encoder::new().start(&mut out);
            }
            Some(Event::Item(record)) => match record.kind() {
                ItemKind::Handshake => typed::<Handshake>(&record, &mut out),
                ItemKind::MailboxState => typed::<MailboxState>(&record, &mut out),
                ItemKind::TreeNode => typed::<TreeNode>(&record, &mut out),
                ItemKind::MailboxDelete => typed::<MailboxDeletes>(&record, &mut out),
                ItemKind::Mailbox => typed::<Mailbox>(&record, &mut out),
                ItemKind::Attribute => typed::<Attribute>(&record, &mut out),
                ItemKind::MailChange => typed::<MailChange>(&record, &mut out),
                ItemKind::MailRequest => typed::<MailRequest>(&record, &mut out),
                ItemKind::Mail => typed::<Mail>(&record, &mut out),
                ItemKind::Finish => typed::<Finish>(&record, &mut out),
                other => panic!("unexpected {other}"),
            },
            Some(Event::EndOfList) => Encoder::end_of_list(&mut out),
            Some(Event::Done) => Encoder::done(&mut out),
            Some(Event::StreamData(data)) => stream.extend_from_slice(data),
            Some(Event::StreamEnd) => encode_stream(&std::mem::take(&mut stream), &mut out),
        }
    }
    assert_eq!(decoder.buffered(), 0, "undecoded bytes left");
    out
}

#[test]
fn the_seven_transcripts_round_trip_byte_for_byte() {
    let list = conversations();
    let titles: Vec<&str> = list.iter().map(|c| &c.title[..2]).collect();
    assert_eq!(titles, ["T1", "T2", "T3", "T4", "T5", "T6", "T7"]);
    for conversation in &list {
        // T6 is an excerpt from the middle of a conversation.
        let from_start = !conversation.title.starts_with("T6");
        for (side, wire) in [("master", &conversation.master), ("slave", &conversation.slave)] {
            let wire = if from_start { with_schemas(wire) } else { wire.clone() };
            assert!(wire.len() > 100, "{} {side}: too little parsed", conversation.title);
            let again = round_trip(&wire, from_start);
            assert!(
                again == wire,
                "{} {side} differs:\n{}\n--- encoded back ---\n{}",
                conversation.title,
                wire.escape_ascii(),
                again.escape_ascii()
            );
        }
    }
}

#[test]
fn the_transcripts_carry_what_the_notes_say() {
    let list = conversations();
    let t5 = &list[4];
    let mut decoder = Decoder::new(Limits::default());
    decoder.feed(&with_schemas(&t5.master));
    let mut attributes = Vec::new();
    let mut streams = Vec::new();
    let mut stream = Vec::new();
    while let Some(event) = decoder.next_event().expect("decodes") {
        match event {
            Event::Item(record) if record.kind() == ItemKind::Attribute => {
                attributes.push(Attribute::from_record(&record).expect("attribute"));
            }
            Event::StreamData(data) => stream.extend_from_slice(data),
            Event::StreamEnd => streams.push(std::mem::take(&mut stream)),
            _ => {}
        }
    }
    let keys: Vec<&str> =
        attributes.iter().map(|a| a.key.rsplit('/').next().unwrap_or("")).collect();
    assert_eq!(keys, ["away", "spam", "default", "vacation"]);
    assert_eq!(attributes[2].value.as_deref(), Some(&b"Laway"[..]));
    assert!(attributes[3].deleted && !attributes[3].stream);
    assert_eq!(streams[0], b"require [\"vacation\"];\r\nvacation :days 1 \"I am away\";\r\n");

    // T7: the master's handshake asks the slave to import (backup_recv).
    let t7 = &list[6];
    let mut decoder = Decoder::new(Limits::default());
    decoder.feed(&t7.master);
    let handshake = loop {
        match decoder.next_event().expect("decodes") {
            Some(Event::Item(record)) => break Handshake::from_record(&record).expect("handshake"),
            Some(_) => {}
            None => panic!("no handshake"),
        }
    };
    assert!(handshake.backup_recv && handshake.send_mail_requests && !handshake.backup_send);
    assert_eq!(
        handshake.hashed_headers.as_deref(),
        Some(&["Date".to_owned(), "Message-ID".to_owned()][..])
    );
}
