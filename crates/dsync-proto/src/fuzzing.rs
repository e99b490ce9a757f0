//! Entry point for the fuzz target in `fuzz/` and the corpus replay in `cargo test`.

use crate::proto::{
    Attribute, Decoder, Encoder, Event, Finish, Handshake, Item, ItemKind, Limits, Mail,
    MailChange, MailRequest, Mailbox, MailboxDeletes, MailboxState, Record, TreeNode,
};

/// Decodes `data` as a peer's byte stream, from the start of a conversation, in two
/// different splits: nothing may panic and both give the same events. Every item that
/// reads as its typed form encodes to a line that reads back and encodes to the same line
/// (typed values themselves may not come back: a line whose only value is present and
/// empty is the same as one without values, in Dovecot too).
pub fn decode(data: &[u8]) {
    let limits = Limits { max_line_len: 1 << 12, max_chunk_len: 16 };
    let whole = events(data, data.len().max(1), limits);
    let split = events(data, 7, limits);
    assert_eq!(whole, split, "decoding depends on how the input was split");
}

fn events(data: &[u8], chunk: usize, limits: Limits) -> Vec<String> {
    let mut decoder = Decoder::new(limits);
    let mut out = Vec::new();
    let mut stream = Vec::new();
    for piece in data.chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(Event::StreamData(bytes))) => stream.extend_from_slice(bytes),
                Ok(Some(Event::StreamEnd)) => {
                    out.push(format!("stream {}", stream.escape_ascii()));
                    stream.clear();
                }
                Ok(Some(Event::Item(record))) => out.push(item(&record)),
                Ok(Some(event)) => out.push(format!("{event:?}")),
                Ok(None) => break,
                Err(error) => {
                    out.push(format!("error {error}"));
                    return out;
                }
            }
        }
    }
    if !stream.is_empty() {
        out.push(format!("partial stream {}", stream.escape_ascii()));
    }
    out
}

fn item(record: &Record) -> String {
    match record.kind() {
        ItemKind::Handshake => typed::<Handshake>(record),
        ItemKind::MailboxState => typed::<MailboxState>(record),
        ItemKind::TreeNode => typed::<TreeNode>(record),
        ItemKind::MailboxDelete => typed::<MailboxDeletes>(record),
        ItemKind::Mailbox => typed::<Mailbox>(record),
        ItemKind::Attribute => typed::<Attribute>(record),
        ItemKind::MailChange => typed::<MailChange>(record),
        ItemKind::MailRequest => typed::<MailRequest>(record),
        ItemKind::Mail => typed::<Mail>(record),
        ItemKind::Finish => typed::<Finish>(record),
        _ => format!("{record:?}"),
    }
}

/// The typed form, checked to survive encoding and decoding again.
fn typed<I: Item + std::fmt::Debug>(record: &Record) -> String {
    match I::from_record(record) {
        Ok(value) => {
            let mut line = Vec::new();
            Encoder::new().item(&value, &mut line);
            let mut decoder = Decoder::after_handshake(
                crate::proto::SchemaSet::dovecot_2_3(),
                5,
                Limits::default(),
            );
            decoder.feed(&line);
            let Ok(Some(Event::Item(again))) = decoder.next_event() else {
                panic!(
                    "our own encoding of {value:?} does not decode: {:?}",
                    line.escape_ascii().to_string()
                )
            };
            let again = I::from_record(&again).expect("our own encoding reads back");
            let mut line_again = Vec::new();
            Encoder::new().item(&again, &mut line_again);
            assert_eq!(line_again, line, "encoding is not stable for {value:?}");
            format!("{value:?}")
        }
        Err(error) => format!("item error {error}"),
    }
}
