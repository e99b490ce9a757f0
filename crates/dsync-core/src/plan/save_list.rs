//! The messages a plan saves, kept compactly.
//!
//! A first backup saves every source message, so its plan holds the metadata of the whole
//! folder until the copy is done. As a `Vec<MessageMeta>` that cost ~190 bytes a message
//! (a 144-byte slot, the GUID's allocation, the slack of a vector grown by doubling): 190 MB
//! at a million messages, the largest part of the run's memory. [`SaveList`] writes each
//! message as a few bytes one after another — UIDs, dates and modseqs as differences from
//! the message before, a Dovecot GUID as its 16 bytes, the flags as an index into a table
//! of the distinct flag sets seen — about 25 bytes a message with a Dovecot GUID. Any
//! other GUID (a Maildir's is its file's base name, `1700000000.M1234P567.host`, ~30–60
//! bytes) is written as what differs from the GUID before it: the bytes they share at the
//! start and at the end are counted, not repeated, so names of one host and time take a
//! few bytes. It is read in order, which is how plans are executed.

use std::fmt;

use crate::model::{MessageMeta, Uid};
use crate::packed::{FlagSets, get_signed, get_unsigned, put_signed, put_unsigned};

/// Source messages to save, in the order they were added, stored compactly (see the module
/// documentation). Reading gives back exactly the [`MessageMeta`] that was added.
#[derive(Clone, Default)]
pub struct SaveList {
    /// The encoded messages, one after another.
    bytes: Vec<u8>,
    /// The distinct flag sets, by index.
    flag_sets: FlagSets,
    /// Messages held.
    len: usize,
    /// The sum of the known virtual sizes.
    virtual_bytes: u64,
    /// What the next message is encoded against.
    last: Previous,
    /// The last text GUID written (what the next one is written against).
    last_text_guid: Vec<u8>,
}

/// The values the next message's are encoded as differences from.
#[derive(Debug, Clone, Copy, Default)]
struct Previous {
    uid: u32,
    received: i64,
    modseq: u64,
}

/// Which optional fields a message has, and how its GUID is written.
mod tag {
    pub(super) const RECEIVED: u8 = 1;
    pub(super) const VIRTUAL_SIZE: u8 = 1 << 1;
    /// 32 lower-case hexadecimal digits (a Dovecot GUID), written as their 16 bytes.
    pub(super) const GUID_HEX: u8 = 1 << 2;
    /// Any other GUID: the lengths it shares at its start and end with the last text
    /// GUID, then the bytes between ([`super::put_text_against`]).
    pub(super) const GUID_TEXT: u8 = 1 << 3;
    pub(super) const POP3_UIDL: u8 = 1 << 4;
    pub(super) const POP3_ORDER: u8 = 1 << 5;
    pub(super) const MODSEQ: u8 = 1 << 6;
}

impl SaveList {
    /// An empty list.
    pub fn new() -> SaveList {
        SaveList::default()
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sum of the messages' virtual sizes, where known.
    pub fn virtual_bytes(&self) -> u64 {
        self.virtual_bytes
    }

    /// The messages, in the order they were added.
    pub fn iter(&self) -> SaveListIter<'_> {
        SaveListIter {
            list: self,
            at: 0,
            left: self.len,
            last: Previous::default(),
            last_text_guid: Vec::new(),
        }
    }

    /// Adds a message at the end.
    pub fn push(&mut self, meta: MessageMeta) {
        let MessageMeta { uid, flags, received, virtual_size, guid, pop3_uidl, pop3_order, modseq } =
            meta;
        let hex_guid = guid.as_deref().and_then(guid_bytes);
        let mut fields = 0;
        for (present, bit) in [
            (received.is_some(), tag::RECEIVED),
            (virtual_size.is_some(), tag::VIRTUAL_SIZE),
            (hex_guid.is_some(), tag::GUID_HEX),
            (hex_guid.is_none() && guid.is_some(), tag::GUID_TEXT),
            (pop3_uidl.is_some(), tag::POP3_UIDL),
            (pop3_order.is_some(), tag::POP3_ORDER),
            (modseq.is_some(), tag::MODSEQ),
        ] {
            if present {
                fields |= bit;
            }
        }
        let out = &mut self.bytes;
        out.push(fields);
        put_signed(out, i64::from(uid.get()) - i64::from(self.last.uid));
        self.last.uid = uid.get();
        put_unsigned(out, self.flag_sets.index_of(&flags) as u64);
        if let Some(received) = received {
            put_signed(out, received.wrapping_sub(self.last.received));
            self.last.received = received;
        }
        if let Some(size) = virtual_size {
            put_unsigned(out, size);
            self.virtual_bytes = self.virtual_bytes.saturating_add(size);
        }
        match (hex_guid, &guid) {
            (Some(raw), _) => out.extend_from_slice(&raw),
            (None, Some(text)) => put_text_against(out, text, &mut self.last_text_guid),
            (None, None) => {}
        }
        if let Some(uidl) = &pop3_uidl {
            put_text(out, uidl);
        }
        if let Some(order) = pop3_order {
            put_unsigned(out, u64::from(order));
        }
        if let Some(modseq) = modseq {
            put_signed(out, modseq.wrapping_sub(self.last.modseq).cast_signed());
            self.last.modseq = modseq;
        }
        self.len += 1;
    }
}

/// Reads a [`SaveList`] in order.
#[derive(Debug, Clone)]
pub struct SaveListIter<'a> {
    list: &'a SaveList,
    at: usize,
    left: usize,
    last: Previous,
    /// The last text GUID read.
    last_text_guid: Vec<u8>,
}

impl Iterator for SaveListIter<'_> {
    type Item = MessageMeta;

    fn next(&mut self) -> Option<MessageMeta> {
        if self.left == 0 {
            return None;
        }
        let decoded = self.decode();
        // Only what `push` wrote is read: a failure here is a bug of this module, and the
        // list then ends rather than giving something else.
        debug_assert!(decoded.is_some(), "a save list that does not decode");
        if let Some(meta) = decoded {
            self.left -= 1;
            Some(meta)
        } else {
            self.left = 0;
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for SaveListIter<'_> {}

impl SaveListIter<'_> {
    fn decode(&mut self) -> Option<MessageMeta> {
        let bytes = &self.list.bytes;
        let at = &mut self.at;
        let fields = *bytes.get(*at)?;
        *at += 1;
        let has = |bit: u8| fields & bit != 0;
        let uid = i64::from(self.last.uid) + get_signed(bytes, at)?;
        let uid = u32::try_from(uid).ok()?;
        self.last.uid = uid;
        let index = usize::try_from(get_unsigned(bytes, at)?).ok()?;
        let flags = self.list.flag_sets.get(index)?.clone();
        let received = if has(tag::RECEIVED) {
            self.last.received = self.last.received.wrapping_add(get_signed(bytes, at)?);
            Some(self.last.received)
        } else {
            None
        };
        let virtual_size =
            if has(tag::VIRTUAL_SIZE) { Some(get_unsigned(bytes, at)?) } else { None };
        let guid = if has(tag::GUID_HEX) {
            let raw = bytes.get(*at..*at + 16)?;
            *at += 16;
            Some(hex(raw))
        } else if has(tag::GUID_TEXT) {
            Some(get_text_against(bytes, at, &mut self.last_text_guid)?)
        } else {
            None
        };
        let pop3_uidl = if has(tag::POP3_UIDL) { Some(get_text(bytes, at)?) } else { None };
        let pop3_order = if has(tag::POP3_ORDER) {
            Some(u32::try_from(get_unsigned(bytes, at)?).ok()?)
        } else {
            None
        };
        let modseq = if has(tag::MODSEQ) {
            self.last.modseq =
                self.last.modseq.wrapping_add(get_signed(bytes, at)?.cast_unsigned());
            Some(self.last.modseq)
        } else {
            None
        };
        Some(MessageMeta {
            uid: Uid::new(uid)?,
            flags,
            received,
            virtual_size,
            guid,
            pop3_uidl,
            pop3_order,
            modseq,
        })
    }
}

impl<'a> IntoIterator for &'a SaveList {
    type Item = MessageMeta;
    type IntoIter = SaveListIter<'a>;

    fn into_iter(self) -> SaveListIter<'a> {
        self.iter()
    }
}

impl FromIterator<MessageMeta> for SaveList {
    fn from_iter<I: IntoIterator<Item = MessageMeta>>(messages: I) -> SaveList {
        let mut list = SaveList::new();
        list.extend(messages);
        list
    }
}

impl Extend<MessageMeta> for SaveList {
    fn extend<I: IntoIterator<Item = MessageMeta>>(&mut self, messages: I) {
        for meta in messages {
            self.push(meta);
        }
    }
}

impl PartialEq for SaveList {
    fn eq(&self, other: &SaveList) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for SaveList {}

impl fmt::Debug for SaveList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The 16 bytes of a GUID written as 32 lower-case hexadecimal digits; `None` for any
/// other text (which is then kept as it is, so that it reads back the same).
fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    let digits = text.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let mut raw = [0; 16];
    for (byte, pair) in raw.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
    }
    Some(raw)
}

fn lower_hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn hex(raw: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(raw.len() * 2);
    for byte in raw {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_unsigned(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Writes `text` as the lengths it shares at its start and its end with `last`, and the
/// bytes between; `last` becomes `text`. Maildir base names of one delivering host and
/// second share all but a few digits.
fn put_text_against(out: &mut Vec<u8>, text: &str, last: &mut Vec<u8>) {
    let text = text.as_bytes();
    let prefix = text.iter().zip(last.iter()).take_while(|(a, b)| a == b).count();
    // The shared end must not reach into the shared start, of either.
    let room = text.len().min(last.len()) - prefix;
    let suffix =
        text.iter().rev().zip(last.iter().rev()).take(room).take_while(|(a, b)| a == b).count();
    put_unsigned(out, prefix as u64);
    put_unsigned(out, suffix as u64);
    let middle = &text[prefix..text.len() - suffix];
    put_unsigned(out, middle.len() as u64);
    out.extend_from_slice(middle);
    last.clear();
    last.extend_from_slice(text);
}

/// Reads what [`put_text_against`] wrote against `last` (the text before), which becomes
/// the text read.
fn get_text_against(bytes: &[u8], at: &mut usize, last: &mut Vec<u8>) -> Option<String> {
    let prefix = usize::try_from(get_unsigned(bytes, at)?).ok()?;
    let suffix = usize::try_from(get_unsigned(bytes, at)?).ok()?;
    let len = usize::try_from(get_unsigned(bytes, at)?).ok()?;
    let middle = bytes.get(*at..at.checked_add(len)?)?;
    *at += len;
    let start = last.get(..prefix)?;
    let end = last.get(last.len().checked_sub(suffix)?..)?;
    let mut text = Vec::with_capacity(prefix + len + suffix);
    text.extend_from_slice(start);
    text.extend_from_slice(middle);
    text.extend_from_slice(end);
    last.clone_from(&text);
    String::from_utf8(text).ok()
}

fn get_text(bytes: &[u8], at: &mut usize) -> Option<String> {
    let len = usize::try_from(get_unsigned(bytes, at)?).ok()?;
    let text = bytes.get(*at..at.checked_add(len)?)?;
    *at += len;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, SystemFlags};
    use proptest::prelude::*;

    fn flags() -> impl Strategy<Value = Flags> {
        (0u8..32, proptest::collection::btree_set("[a-z$]{1,6}", 0..3)).prop_map(
            |(bits, keywords)| {
                let mut flags = Flags { keywords, ..Flags::default() };
                for (bit, name) in ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
                    .into_iter()
                    .enumerate()
                {
                    if bits & (1 << bit) != 0
                        && let Some(flag) = SystemFlags::from_imap_name(name)
                    {
                        flags.system = flags.system.union(flag);
                    }
                }
                flags
            },
        )
    }

    fn guid() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{32}",
            "[0-9A-Fa-f]{32}",
            "[0-9a-f]{31,33}",
            "[0-9]{1,20}",
            ".{0,40}",
            // Maildir base names, sharing a start and an end with each other.
            "17000000[0-9]{2}\\.M[0-9]{1,6}P[0-9]{1,3}\\.host[a-b]?",
            // Shared bytes that end inside a character.
            "[aé€]{0,4}",
        ]
    }

    fn meta() -> impl Strategy<Value = MessageMeta> {
        (
            (1u32.., flags(), any::<Option<i64>>(), any::<Option<u64>>()),
            (
                proptest::option::of(guid()),
                proptest::option::of(".{0,70}"),
                any::<Option<u32>>(),
                any::<Option<u64>>(),
            ),
        )
            .prop_map(
                |((uid, flags, received, virtual_size), (guid, pop3_uidl, pop3_order, modseq))| {
                    MessageMeta {
                        uid: Uid::new(uid).expect("non-zero"),
                        flags,
                        received,
                        virtual_size,
                        guid,
                        pop3_uidl,
                        pop3_order,
                        modseq,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn reads_back_what_was_pushed(messages in proptest::collection::vec(meta(), 0..60)) {
            let list: SaveList = messages.iter().cloned().collect();
            prop_assert_eq!(list.len(), messages.len());
            prop_assert_eq!(list.iter().len(), messages.len());
            prop_assert_eq!(list.iter().collect::<Vec<_>>(), messages.clone());
            let sizes = messages.iter().filter_map(|m| m.virtual_size).fold(0u64, u64::saturating_add);
            prop_assert_eq!(list.virtual_bytes(), sizes);
        }
    }

    #[test]
    fn a_dovecot_guid_takes_its_sixteen_bytes() {
        let guid = "0123456789abcdeffedcba9876543210";
        let mut list = SaveList::new();
        for uid in 1..=1000 {
            let mut meta = MessageMeta::new(Uid::new(uid).expect("non-zero"), Flags::default());
            meta.guid = Some(guid.to_owned());
            meta.received = Some(1_700_000_000 + i64::from(uid) * 60);
            meta.virtual_size = Some(3000);
            list.push(meta);
        }
        // Tag, UID difference, flag index, date difference, size (2), GUID (16); the first
        // date is written whole (5 bytes instead of 1).
        assert_eq!(list.bytes.len(), 1000 * 22 + 4);
        assert!(list.iter().all(|m| m.guid.as_deref() == Some(guid)));
    }

    #[test]
    fn maildir_base_names_take_what_differs() {
        let mut list = SaveList::new();
        let names: Vec<String> =
            (0..1000).map(|n| format!("1700000000.M{}P4242.mail.example.org", 1000 + n)).collect();
        for (uid, name) in (1..).zip(&names) {
            let mut meta = MessageMeta::new(Uid::new(uid).expect("non-zero"), Flags::default());
            meta.guid = Some(name.clone());
            list.push(meta);
        }
        // Tag, UID difference, flag index, then 2 lengths shared, 1 length and a few
        // digits, against 42 bytes of text each.
        assert!(list.bytes.len() < 1000 * 10, "{} bytes", list.bytes.len());
        let read: Vec<String> = list.iter().filter_map(|m| m.guid).collect();
        assert_eq!(read, names);
    }

    #[test]
    fn flag_sets_are_kept_once() {
        let seen = Flags::from_imap_names(["\\Seen", "$Label1"]);
        let list: SaveList = (1..=100)
            .map(|uid| MessageMeta::new(Uid::new(uid).expect("non-zero"), seen.clone()))
            .collect();
        assert_eq!(list.flag_sets.len(), 1);
        assert!(list.iter().all(|m| m.flags == seen));
    }
}
