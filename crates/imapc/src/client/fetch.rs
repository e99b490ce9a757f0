//! Pipelined `UID FETCH` with body literals streamed to a handler.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use chrono::{DateTime, FixedOffset};

use crate::error::{Error, Result};
use crate::proto::{BodyStart, Command, Fetch, FetchItem, Response, Untagged};
use crate::types::{Capabilities, Flag, SequenceSet};

use super::conn::{BodyReader, Conn, Owned, check};

/// Receives the results of [`Session::uid_fetch`](crate::Session::uid_fetch).
///
/// For every FETCH response: [`body_buffered`](Self::body_buffered) (by default
/// [`body`](Self::body)) once per body literal, in the order the server sends them, then [`fetch`](Self::fetch) with all other attributes once the
/// response is complete. Servers may send items in any order (FLAGS or even UID after
/// `BODY[]`), so a body is tied to its message by `start.fetch.seq` (the sequence number,
/// always known) and, for certain, by the [`Fetch`] that follows it.
///
/// Errors are `std::io::Error` so that handlers can use `?` on file and socket writes.
/// An error aborts the fetch: no further callbacks, the outstanding responses are read and
/// dropped, and [`Error::Handler`] is returned with the session still usable.
pub trait FetchHandler {
    /// A body literal of exactly `start.len` bytes; `body` yields those bytes and then end
    /// of file. Bytes left unread are drained by the client.
    fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> io::Result<()>;

    /// Like [`body`](Self::body) (which the default calls), with the bytes read in place
    /// from the connection's receive buffer ([`BufRead::fill_buf`] and
    /// [`BufRead::consume`]): a handler that converts or writes them from there saves a
    /// copy per message.
    fn body_buffered(&mut self, start: &BodyStart, body: &mut dyn BufRead) -> io::Result<()> {
        self.body(start, body)
    }

    /// The FETCH response is complete. Body items that went to [`body`](Self::body) carry
    /// [`BodyData::Streamed`](crate::proto::BodyData::Streamed).
    fn fetch(&mut self, fetch: Fetch) -> io::Result<()>;

    /// `VANISHED` UIDs reported during a `CHANGEDSINCE … VANISHED` fetch.
    fn vanished(&mut self, uids: &SequenceSet) -> io::Result<()> {
        let _ = uids;
        Ok(())
    }

    /// An `EXISTS` arrived during the fetch: the mailbox now has `count` messages (new mail
    /// was delivered meanwhile).
    fn exists(&mut self, count: u32) -> io::Result<()> {
        let _ = count;
        Ok(())
    }
}

/// One message's metadata, as the migration engine needs it.
///
/// A response with an invalid item is kept, so that the caller can tell the message is
/// there and decide what to do with it: `uid` 0 (a server sent `UID 0`, which no message
/// can have), `internal_date` `None` (the server sent no valid date); [`MessageMeta::invalid`]
/// has what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// UID; 0 when the server sent `UID 0` (RFC 3501 §2.3.1.1: never a UID).
    pub uid: u32,
    /// System flags and keywords, `\Recent` removed.
    pub flags: Vec<Flag>,
    /// INTERNALDATE (received date); `None` when the server sent an invalid one.
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// RFC822.SIZE (a hint; see the crate docs).
    pub rfc822_size: u64,
    /// MODSEQ when CONDSTORE is enabled.
    pub modseq: Option<u64>,
    /// The server's message GUID, when [`Session::set_message_guids`](crate::Session::set_message_guids)
    /// asked for one and the server sent it: Dovecot's `X-GUID` text (an empty one counts
    /// as none), else Gmail's `X-GM-MSGID` as a decimal number (what Dovecot's imapc uses
    /// as the GUID of a Gmail message).
    pub guid: Option<String>,
    /// Items the server sent with invalid values, `(name, value)` ([`Fetch::invalid`]).
    pub invalid: Vec<(String, String)>,
}

impl MessageMeta {
    /// The metadata of a complete answer; `None` for one that lacks an item (an
    /// unsolicited FETCH, such as another client's flag change).
    pub(crate) fn from_fetch(fetch: Fetch) -> Option<MessageMeta> {
        let uid = match fetch.uid {
            Some(uid) => uid.get(),
            None => fetch.invalid("UID").map(|_| 0)?,
        };
        if fetch.internal_date.is_none() && fetch.invalid("INTERNALDATE").is_none() {
            return None;
        }
        let rfc822_size = fetch.rfc822_size?;
        // The answer is ours: its flags, GUID and invalid items move over (a listing
        // makes one of these per message; copying them cost an allocation each).
        let mut flags = fetch.flags.unwrap_or_default();
        flags.retain(|flag| !flag.is_recent());
        let guid = match fetch.x_guid {
            Some(guid) if !guid.is_empty() => Some(guid),
            _ => fetch.gmail_message_id.map(|id| id.to_string()),
        };
        Some(MessageMeta {
            uid,
            flags,
            internal_date: fetch.internal_date,
            rfc822_size,
            modseq: fetch.modseq,
            guid,
            invalid: fetch.invalid,
        })
    }
}

/// The FETCH item that carries a server's persistent message GUID, for the metadata
/// listings of [`Session::set_message_guids`](crate::Session::set_message_guids).
///
/// No capability announces `X-GUID`: only Dovecot knows it, and a server that does not
/// answers the whole `UID FETCH` with `BAD` (or `NO`). [`GuidItem::for_capabilities`]
/// picks `X-GM-MSGID` where Gmail's extension is announced and `X-GUID` otherwise, so a
/// caller must be ready for that refusal and list again without GUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuidItem {
    /// Dovecot's `X-GUID`: its message GUID (for Maildir the file's base name unless
    /// `dovecot-uidlist` overrides it). Copies made by `COPY` keep it.
    XGuid,
    /// Gmail's `X-GM-MSGID` (capability `X-GM-EXT-1`): a 64-bit number, the same for a
    /// message in every label (folder).
    GmailMessageId,
}

impl GuidItem {
    /// The item a server with `capabilities` should be asked for: `X-GM-MSGID` when it
    /// announces `X-GM-EXT-1`, otherwise `X-GUID` (which only Dovecot answers).
    pub fn for_capabilities(capabilities: &Capabilities) -> GuidItem {
        if capabilities.has("X-GM-EXT-1") { GuidItem::GmailMessageId } else { GuidItem::XGuid }
    }

    /// The FETCH item to send.
    pub fn fetch_item(self) -> FetchItem {
        match self {
            GuidItem::XGuid => FetchItem::XGuid,
            GuidItem::GmailMessageId => FetchItem::GmailMessageId,
        }
    }
}

/// Modifiers of a UID FETCH (RFC 7162).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Modifiers {
    pub(crate) changed_since: Option<u64>,
    pub(crate) vanished: bool,
}

/// Command text sent but not yet answered, at most: a server that is busy writing answers
/// may not read, and our blocking writes must never fill both socket buffers.
const MAX_UNANSWERED_BYTES: usize = 32 * 1024;

/// Runs `UID FETCH` over `set`, split into commands of at most `per_command` UIDs (and at
/// most the command-length limit), keeping up to `depth` commands in flight.
pub(crate) fn uid_fetch(
    conn: &mut Conn,
    set: &SequenceSet,
    items: &[FetchItem],
    modifiers: Modifiers,
    per_command: usize,
    handler: &mut dyn FetchHandler,
) -> Result<()> {
    split_uid_fetch(conn, set, items, modifiers, per_command, handler, None)
}

/// [`uid_fetch`], calling `then` once right after its last command is sent, before the
/// answers still due are read: what `then` sends runs on the server behind the fetch.
/// Its answers are left for the caller to read.
pub(crate) fn uid_fetch_then(
    conn: &mut Conn,
    set: &SequenceSet,
    items: &[FetchItem],
    per_command: usize,
    handler: &mut dyn FetchHandler,
    then: &mut dyn FnMut(&mut Conn),
) -> Result<()> {
    split_uid_fetch(conn, set, items, Modifiers::default(), per_command, handler, Some(then))
}

/// Splits `set` into the commands of [`uid_fetch`] and runs them.
fn split_uid_fetch(
    conn: &mut Conn,
    set: &SequenceSet,
    items: &[FetchItem],
    modifiers: Modifiers,
    per_command: usize,
    handler: &mut dyn FetchHandler,
    then: Option<&mut dyn FnMut(&mut Conn)>,
) -> Result<()> {
    // "A1234 UID FETCH " + items + modifiers: leave room for them in the line.
    let items_len: usize = 64 + items.len() * 24;
    let batches =
        set.split(per_command, conn.options.max_command_len.saturating_sub(items_len).max(64));
    run_uid_fetch(conn, &batches, items, items_len, modifiers, handler, then)
}

/// Sends `batches` (keeping the pipeline full) and reads answers until every command is
/// answered.
fn run_uid_fetch(
    conn: &mut Conn,
    batches: &[SequenceSet],
    items: &[FetchItem],
    items_len: usize,
    modifiers: Modifiers,
    handler: &mut dyn FetchHandler,
    mut then: Option<&mut dyn FnMut(&mut Conn)>,
) -> Result<()> {
    let depth = conn.options.pipeline_depth.max(1);
    let mut in_flight: VecDeque<(String, usize)> = VecDeque::new();
    let mut unanswered_bytes: usize = 0;
    let mut next = 0;
    let mut handler_error: Option<io::Error> = None;
    let mut failure: Option<Error> = None;
    let mut malformed: Option<Vec<u8>> = None;
    loop {
        while next < batches.len()
            && handler_error.is_none()
            && failure.is_none()
            && (in_flight.is_empty()
                || (in_flight.len() < depth
                    && unanswered_bytes + batches[next].encoded_len() + items_len
                        <= MAX_UNANSWERED_BYTES))
        {
            let command = Command::UidFetch {
                set: &batches[next],
                items,
                changed_since: modifiers.changed_since,
                vanished: modifiers.vanished,
            };
            let length = batches[next].encoded_len() + items_len;
            in_flight.push_back((conn.send(&command)?, length));
            unanswered_bytes += length;
            next += 1;
            if next == batches.len()
                && let Some(then) = then.take()
            {
                then(conn);
            }
        }
        if in_flight.is_empty() {
            break;
        }
        match conn.next_owned()? {
            Owned::BodyStart(start) => {
                let mut reader = BodyReader::new(conn, start.len);
                if handler_error.is_none()
                    && let Err(error) = handler.body_buffered(&start, &mut reader)
                {
                    if let Some(transport) = reader.error.take() {
                        return Err(transport);
                    }
                    handler_error = Some(error);
                }
                reader.drain()?;
            }
            Owned::BodyEnd => {}
            Owned::Response(Response::Untagged(untagged)) => {
                if handler_error.is_some() {
                    continue;
                }
                let result = match untagged {
                    Untagged::Fetch(fetch) => handler.fetch(*fetch),
                    Untagged::Vanished { uids, .. } => handler.vanished(&uids),
                    Untagged::Exists(count) => handler.exists(count),
                    Untagged::Malformed { raw } if is_fetch(&raw) => {
                        malformed.get_or_insert(raw);
                        Ok(())
                    }
                    _ => Ok(()),
                };
                if let Err(error) = result {
                    handler_error = Some(error);
                }
            }
            Owned::Response(Response::Tagged { tag, status }) => {
                let Some(position) = in_flight.iter().position(|(t, _)| *t == tag) else {
                    return Err(Error::Protocol(format!("answer for unknown tag {tag:?}")));
                };
                if let Some((_, length)) = in_flight.remove(position) {
                    unanswered_bytes -= length;
                }
                if let Err(error) = check("UID FETCH", status) {
                    if error.is_fatal() {
                        return Err(error);
                    }
                    failure.get_or_insert(error);
                }
            }
            Owned::Response(Response::Continuation { .. }) => {
                return Err(Error::Protocol("unexpected continuation during UID FETCH".into()));
            }
        }
    }
    if let Some(error) = handler_error {
        return Err(Error::Handler(error));
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if let Some(raw) = malformed {
        return Err(Error::Decode(crate::proto::DecodeError::Malformed {
            line: mutf7::escape_for_display(&raw[..raw.len().min(200)]),
        }));
    }
    Ok(())
}

pub(crate) fn is_fetch(raw: &[u8]) -> bool {
    let mut words = raw.split(|&b| b == b' ');
    words.next().is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
        && words.next().is_some_and(|w| w.eq_ignore_ascii_case(b"FETCH"))
}

/// Adapts a metadata callback to [`FetchHandler`], keeping only complete answers for UIDs in
/// the requested set (a server answers `UID FETCH 100:*` with the last message even when
/// its UID is below 100), and no more of them than the mailbox has messages.
pub(crate) struct MetaHandler<'a> {
    set: &'a SequenceSet,
    each: &'a mut dyn FnMut(MessageMeta) -> io::Result<()>,
    /// The mailbox's highest EXISTS, when known: a listing cannot hold more messages.
    limit: Option<u32>,
    /// Complete answers handed on.
    listed: u64,
    /// The server listed more than `limit`.
    overflow: bool,
}

impl<'a> MetaHandler<'a> {
    pub(crate) fn new(
        set: &'a SequenceSet,
        each: &'a mut dyn FnMut(MessageMeta) -> io::Result<()>,
        limit: Option<u32>,
    ) -> MetaHandler<'a> {
        MetaHandler { set, each, limit, listed: 0, overflow: false }
    }

    /// The fetch's result, with a listing beyond EXISTS told as the server error it is
    /// (it stopped being collected at that point, so its cost stays bounded).
    pub(crate) fn check(self, result: Result<()>) -> Result<()> {
        if self.overflow {
            return Err(Error::Protocol(format!(
                "the server listed more messages than the {} the mailbox has (EXISTS)",
                self.limit.unwrap_or_default()
            )));
        }
        result
    }
}

impl FetchHandler for MetaHandler<'_> {
    fn body(&mut self, _start: &BodyStart, _body: &mut dyn Read) -> io::Result<()> {
        Ok(())
    }

    fn fetch(&mut self, fetch: Fetch) -> io::Result<()> {
        match MessageMeta::from_fetch(fetch) {
            // UID 0 goes to the caller too: it is a message the server has.
            Some(meta) if meta.uid == 0 || self.set.contains(meta.uid) => {
                self.listed += 1;
                if self.limit.is_some_and(|limit| self.listed > u64::from(limit)) {
                    self.overflow = true;
                    return Err(io::Error::other("listing beyond EXISTS"));
                }
                (self.each)(meta)
            }
            // Unsolicited FETCH (a flag change by another client) without all items.
            _ => Ok(()),
        }
    }

    fn exists(&mut self, count: u32) -> io::Result<()> {
        if let Some(limit) = &mut self.limit {
            *limit = (*limit).max(count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Uid;

    fn fetch(x_guid: Option<&str>, gmail_message_id: Option<u64>) -> Fetch {
        Fetch {
            seq: 1,
            uid: Uid::new(7),
            flags: Some(vec![Flag::Seen, Flag::Recent]),
            internal_date: DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").ok(),
            rfc822_size: Some(42),
            x_guid: x_guid.map(str::to_owned),
            gmail_message_id,
            ..Fetch::default()
        }
    }

    #[test]
    fn message_meta_takes_x_guid_else_gmail_message_id() {
        let guid = |f: &Fetch| MessageMeta::from_fetch(f.clone()).expect("complete").guid;
        let dovecot =
            MessageMeta::from_fetch(fetch(Some("1a2b3c.M1P2.host"), None)).expect("complete");
        assert_eq!(dovecot.guid.as_deref(), Some("1a2b3c.M1P2.host"));
        assert_eq!(dovecot.flags, [Flag::Seen]);
        assert_eq!(dovecot.rfc822_size, 42);
        assert_eq!(
            guid(&fetch(None, Some(1_278_455_344_230_334_865))).as_deref(),
            Some("1278455344230334865")
        );
        assert_eq!(guid(&fetch(Some("dovecot"), Some(5))).as_deref(), Some("dovecot"));
        assert_eq!(guid(&fetch(Some(""), Some(5))).as_deref(), Some("5"));
        assert_eq!(guid(&fetch(Some(""), None)), None);
        assert_eq!(guid(&fetch(None, None)), None);
    }

    #[test]
    fn guid_item_follows_the_gmail_capability() {
        let gmail = Capabilities::new(vec!["IMAP4rev1".into(), "X-GM-EXT-1".into()]);
        let other = Capabilities::new(vec!["IMAP4rev1".into(), "UIDPLUS".into()]);
        assert_eq!(GuidItem::for_capabilities(&gmail), GuidItem::GmailMessageId);
        assert_eq!(GuidItem::for_capabilities(&other), GuidItem::XGuid);
        assert_eq!(GuidItem::GmailMessageId.fetch_item(), FetchItem::GmailMessageId);
        assert_eq!(GuidItem::XGuid.fetch_item(), FetchItem::XGuid);
    }

    /// `from_fetch` as first written, from a borrowed answer: the reference.
    fn from_fetch_reference(fetch: &Fetch) -> Option<MessageMeta> {
        let uid = match fetch.uid {
            Some(uid) => uid.get(),
            None => fetch.invalid("UID").map(|_| 0)?,
        };
        if fetch.internal_date.is_none() && fetch.invalid("INTERNALDATE").is_none() {
            return None;
        }
        Some(MessageMeta {
            uid,
            flags: fetch.flags_without_recent(),
            internal_date: fetch.internal_date,
            rfc822_size: fetch.rfc822_size?,
            modseq: fetch.modseq,
            guid: match &fetch.x_guid {
                Some(guid) if !guid.is_empty() => Some(guid.clone()),
                _ => fetch.gmail_message_id.map(|id| id.to_string()),
            },
            invalid: fetch.invalid.clone(),
        })
    }

    proptest::proptest! {
        /// Taking the answer by value gives the metadata the borrowing version gave:
        /// `\Recent` removed wherever it is and the other flags in order, UID 0 and
        /// invalid dates as invalid items, the GUID rules, incomplete answers refused.
        #[test]
        fn message_meta_from_an_owned_answer_as_from_a_borrowed_one(
            uid in proptest::option::of(0u32..4),
            flags in proptest::option::of(proptest::collection::vec(
                proptest::sample::select(vec![
                    Flag::Seen, Flag::Recent, Flag::Deleted, Flag::Keyword("$Label1".into()),
                ]),
                0..6,
            )),
            dated in proptest::bool::ANY,
            size in proptest::option::of(0u64..3),
            modseq in proptest::option::of(1u64..3),
            x_guid in proptest::option::of(proptest::sample::select(vec!["", "g1"])),
            gmail_message_id in proptest::option::of(1u64..3),
            invalid in proptest::collection::vec(
                proptest::sample::select(vec!["UID", "INTERNALDATE", "X"]), 0..3,
            ),
        ) {
            let answer = Fetch {
                seq: 1,
                uid: uid.and_then(Uid::new),
                flags,
                internal_date: dated
                    .then(|| DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").ok())
                    .flatten(),
                rfc822_size: size,
                modseq,
                x_guid: x_guid.map(str::to_owned),
                gmail_message_id,
                invalid: invalid.iter().map(|name| ((*name).to_owned(), "0".to_owned())).collect(),
                ..Fetch::default()
            };
            proptest::prop_assert_eq!(
                MessageMeta::from_fetch(answer.clone()), from_fetch_reference(&answer)
            );
        }
    }
}
