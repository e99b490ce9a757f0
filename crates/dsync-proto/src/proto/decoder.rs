//! The framer: splits the peer's byte stream into the version line, schema lines, item
//! lines, list ends and dot-stuffed streams, before anything is interpreted, with a cap
//! on line length. Streams are handed out in chunks and never held whole.

use std::sync::Arc;

use super::dot::DotDecoder;
use super::record::Record;
use super::schema::{ItemKind, Schema, SchemaSet};
use super::{PROTOCOL_MAJOR, escape};

/// Caps on what a peer may make us buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (an item with its values, a schema). 16 MiB: item lines are short
    /// except inline attribute values, which Dovecot sends as streams when long.
    pub max_line_len: usize,
    /// Largest piece of a stream handed out at once.
    pub max_chunk_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_line_len: 16 << 20, max_chunk_len: 64 << 10 }
    }
}

/// The peer sent something we refuse to decode; the conversation cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first line is not `VERSION\tdsync\t3\t<minor>`.
    #[error("remote dsync doesn't use a compatible protocol: {line:?}")]
    Incompatible {
        /// The line, escaped and cut short.
        line: String,
    },
    /// A line grew beyond [`Limits::max_line_len`] without its end.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A schema line lacks a required key.
    #[error("remote sent an invalid handshake for {kind}: {reason}")]
    InvalidSchema {
        /// The item kind.
        kind: ItemKind,
        /// Why.
        reason: String,
    },
    /// The peer's schemas lack one its protocol version must have.
    #[error("remote didn't handshake deserializer for {kind}")]
    MissingSchema {
        /// The item kind.
        kind: ItemKind,
    },
    /// An item line of no known kind (or of one the peer gave no schema for).
    #[error("received unexpected input {line:?}")]
    UnexpectedItem {
        /// The line, escaped and cut short.
        line: String,
    },
    /// An item line whose values do not fit its schema (a required key missing).
    #[error("invalid input to {kind}: {reason}")]
    InvalidItem {
        /// The item kind.
        kind: ItemKind,
        /// Why.
        reason: String,
    },
}

/// What the decoder found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The peer's version line: protocol 3 and this minor version.
    Version {
        /// The minor version (Dovecot 2.3 sends 5).
        minor: u32,
    },
    /// The peer's schema lines are complete ([`Decoder::peer_schemas`]).
    SchemasDone,
    /// One item, by the peer's schema.
    Item(Record),
    /// `.`: the end of a list.
    EndOfList,
    /// `X`: the peer is closing.
    Done,
    /// The next bytes of the stream that follows the last item, stuffing removed.
    StreamData(&'a [u8]),
    /// The stream ended.
    StreamEnd,
}

#[derive(Debug, Clone)]
enum Phase {
    Version,
    Schemas,
    Items,
    Stream(DotDecoder),
}

/// Decodes the peer's side of a conversation. Feed bytes with [`Decoder::feed`] and take
/// events with [`Decoder::next_event`] until it answers `Ok(None)` (need more bytes).
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    phase: Phase,
    minor: u32,
    peer: SchemaSet,
    limits: Limits,
    chunk: Vec<u8>,
    stream_end_pending: bool,
}

impl Decoder {
    /// A decoder at the start of a conversation (expecting the version line).
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            phase: Phase::Version,
            minor: 0,
            peer: SchemaSet::empty(),
            limits,
            chunk: Vec::new(),
            stream_end_pending: false,
        }
    }

    /// A decoder for a conversation whose handshake is already done (tests, excerpts).
    pub fn after_handshake(peer: SchemaSet, minor: u32, limits: Limits) -> Decoder {
        Decoder { phase: Phase::Items, minor, peer, ..Decoder::new(limits) }
    }

    /// The peer's protocol minor version (0 before its version line).
    pub fn peer_minor(&self) -> u32 {
        self.minor
    }

    /// The peer's schemas as announced so far.
    pub fn peer_schemas(&self) -> &SchemaSet {
        &self.peer
    }

    /// True inside a stream.
    pub fn in_stream(&self) -> bool {
        matches!(self.phase, Phase::Stream(_)) || self.stream_end_pending
    }

    /// Bytes fed but not decoded yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Adds bytes from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, DecodeError> {
        loop {
            if self.stream_end_pending {
                self.stream_end_pending = false;
                return Ok(Some(Event::StreamEnd));
            }
            if let Phase::Stream(dot) = &mut self.phase {
                let available = &self.buf[self.pos..];
                if available.is_empty() {
                    return Ok(None);
                }
                let take = available.len().min(self.limits.max_chunk_len.max(1));
                self.chunk.clear();
                let used = dot.decode(&available[..take], &mut self.chunk);
                self.pos += used;
                if dot.is_done() {
                    self.phase = Phase::Items;
                    if self.chunk.is_empty() {
                        return Ok(Some(Event::StreamEnd));
                    }
                    self.stream_end_pending = true;
                }
                if self.chunk.is_empty() {
                    continue;
                }
                return Ok(Some(Event::StreamData(&self.chunk)));
            }
            let Some(line) = self.next_line()? else { return Ok(None) };
            if let Some(event) = self.line_event(&line)? {
                return Ok(Some(event));
            }
        }
    }

    /// The next complete line (LF and a CR before it removed, cut at a NUL as Dovecot's C
    /// strings are).
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let rest = &self.buf[self.pos..];
        let Some(end) = memchr::memchr(b'\n', rest) else {
            if rest.len() > self.limits.max_line_len {
                return Err(DecodeError::LineTooLong { limit: self.limits.max_line_len });
            }
            return Ok(None);
        };
        if end > self.limits.max_line_len {
            return Err(DecodeError::LineTooLong { limit: self.limits.max_line_len });
        }
        let mut line = &rest[..end];
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(nul) = memchr::memchr(0, line) {
            line = &line[..nul];
        }
        let line = line.to_vec();
        self.pos += end + 1;
        Ok(Some(line))
    }

    fn line_event(&mut self, line: &[u8]) -> Result<Option<Event<'static>>, DecodeError> {
        match self.phase {
            Phase::Version => {
                self.minor = parse_version(line)
                    .ok_or_else(|| DecodeError::Incompatible { line: shown(line) })?;
                self.phase = Phase::Schemas;
                Ok(Some(Event::Version { minor: self.minor }))
            }
            Phase::Schemas => {
                if line == b"." {
                    if let Some(&kind) = self.peer.missing_for(self.minor).first() {
                        return Err(DecodeError::MissingSchema { kind });
                    }
                    self.phase = Phase::Items;
                    return Ok(Some(Event::SchemasDone));
                }
                // Schemas of kinds we do not know are ignored.
                if let Some(kind) = line.first().copied().and_then(ItemKind::from_byte) {
                    let schema = Schema::parse(kind, &line[1..])
                        .map_err(|reason| DecodeError::InvalidSchema { kind, reason })?;
                    self.peer.insert(schema);
                }
                Ok(None)
            }
            Phase::Items => {
                if line == b"." {
                    return Ok(Some(Event::EndOfList));
                }
                if line.first() == Some(&b'X') {
                    return Ok(Some(Event::Done));
                }
                let schema = line
                    .first()
                    .copied()
                    .and_then(ItemKind::from_byte)
                    .and_then(|kind| self.peer.get(kind))
                    .map(Arc::clone)
                    .ok_or_else(|| DecodeError::UnexpectedItem { line: shown(line) })?;
                let kind = schema.kind();
                let record = Record::decode(schema, &line[1..])
                    .map_err(|reason| DecodeError::InvalidItem { kind, reason })?;
                if kind.may_have_stream() && record.has("stream") {
                    self.phase = Phase::Stream(DotDecoder::new());
                }
                Ok(Some(Event::Item(record)))
            }
            Phase::Stream(_) => unreachable!("streams are decoded before lines"),
        }
    }
}

/// `VERSION\tdsync\t3\t<minor>` (`version_string_verify_full`): the minor version.
fn parse_version(line: &[u8]) -> Option<u32> {
    let fields = escape::split_tabescaped(line);
    let [version, name, major, minor] = fields.as_slice() else { return None };
    if version != b"VERSION" || name != b"dsync" || major != PROTOCOL_MAJOR.as_bytes() {
        return None;
    }
    std::str::from_utf8(minor).ok()?.parse().ok()
}

/// A line for an error message: escaped, at most 200 characters.
fn shown(line: &[u8]) -> String {
    let text: String = line.escape_ascii().to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(decoder: &mut Decoder, input: &[u8]) -> Vec<String> {
        decoder.feed(input);
        let mut out = Vec::new();
        loop {
            match decoder.next_event() {
                Ok(Some(Event::StreamData(data))) => {
                    out.push(format!("data {}", data.escape_ascii()));
                }
                Ok(Some(event)) => out.push(format!("{event:?}")),
                Ok(None) => return out,
                Err(error) => {
                    out.push(format!("error {error}"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn handshake_then_items_and_a_stream() {
        let mut decoder = Decoder::new(Limits::default());
        let mut wire = b"VERSION\tdsync\t3\t5\n".to_vec();
        SchemaSet::dovecot_2_3().encode(&mut wire);
        wire.extend_from_slice(b"Mg\t\x02\t\t\x02\t1\t2\t\nbody\n..x\r\n.\r\n.\nX\n");
        let out = events(&mut decoder, &wire);
        assert_eq!(out[0], "Version { minor: 5 }");
        assert_eq!(out[1], "SchemasDone");
        assert!(out[2].starts_with("Item("), "{out:?}");
        assert_eq!(&out[3..], ["data body\\n.x", "StreamEnd", "EndOfList", "Done"]);
    }

    #[test]
    fn refusals() {
        let mut decoder = Decoder::new(Limits::default());
        assert!(events(&mut decoder, b"VERSION\tdsync\t4\t0\n")[0].starts_with("error"));
        let mut decoder = Decoder::new(Limits::default());
        let out = events(&mut decoder, b"VERSION\tdsync\t3\t5\nHhostname\n.\n");
        assert_eq!(
            out.last().map(String::as_str),
            Some("error remote didn't handshake deserializer for mailbox_state")
        );
        let mut decoder = Decoder::after_handshake(SchemaSet::dovecot_2_3(), 5, Limits::default());
        assert_eq!(events(&mut decoder, b"Q1\n"), ["error received unexpected input \"Q1\""]);
        let mut decoder = Decoder::after_handshake(SchemaSet::dovecot_2_3(), 5, Limits::default());
        assert!(events(&mut decoder, b"Cs\n")[0].contains("Missing required field uid"));
        let limits = Limits { max_line_len: 8, ..Limits::default() };
        let mut decoder = Decoder::after_handshake(SchemaSet::dovecot_2_3(), 5, limits);
        assert_eq!(events(&mut decoder, b"Rabcdefghij"), ["error line longer than 8 bytes"]);
    }

    #[test]
    fn unknown_schema_lines_are_ignored_and_older_peers_lack_newer_items() {
        let mut decoder = Decoder::new(Limits::default());
        let mut wire = b"VERSION\tdsync\t3\t0\n".to_vec();
        for kind in ItemKind::ALL {
            if kind.min_minor_version() == 0 {
                Schema::dovecot_2_3(kind).encode(&mut wire);
            }
        }
        wire.extend_from_slice(b"Zfuture\tkeys\n.\n");
        let out = events(&mut decoder, &wire);
        assert_eq!(out, ["Version { minor: 0 }", "SchemasDone"]);
    }
}
