//! The `u.<uid>` file of sdbox, one message per file (`dbox-file.h`, `dbox-file.c`,
//! `dbox-save.c`):
//!
//! ```text
//! 2 M1e C<create time hex>\n                 file header: version, then <key><hex> fields
//! \x01\x02N <8 spaces> <16 hex digits>\n     message header (0x1e bytes): body size
//! <body: exactly that many bytes, LF line ends>
//! \n\x01\x03\n                               metadata: <key><value>\n lines,
//! R<received hex>\nV<vsize hex>\n…G<guid>\n\n  an empty line ends them
//! ```
//!
//! Metadata keys: `G` GUID, `P` POP3 UIDL, `O` POP3 order (decimal), `R` received date
//! (hex), `V` virtual size (hex; LF counted as CRLF), `Z` physical size when a plugin
//! changed the stored bytes (compression), `X` external attachment references, `B`
//! original mailbox. Unknown keys are kept.

use std::fmt;

/// Size of the message header we write (`sizeof(struct dbox_message_header)`).
pub(crate) const MESSAGE_HEADER_SIZE: usize = 30;
/// Starts the message header.
const MAGIC_PRE: &[u8; 2] = b"\x01\x02";
/// Starts the metadata block.
pub(crate) const MAGIC_POST: &[u8; 4] = b"\n\x01\x03\n";
/// Longest file header line a reader accepts.
const MAX_HEADER_LINE: usize = 1024;

/// What a message's metadata says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// `G`: the message GUID.
    pub(crate) guid: Option<String>,
    /// `R`: received date, UNIX seconds.
    pub(crate) received: Option<i64>,
    /// `V`: size with CRLF line ends.
    pub(crate) virtual_size: Option<u64>,
    /// `P`: POP3 UIDL.
    pub(crate) pop3_uidl: Option<String>,
    /// `O`: POP3 order.
    pub(crate) pop3_order: Option<u32>,
    /// `Z`: the plain size when the stored bytes are not the message (a plugin compressed
    /// them).
    pub(crate) physical_size: Option<u64>,
    /// `X`: parts stored outside the file (attachment storage).
    pub(crate) external_parts: Option<String>,
    /// Every line, key first, as stored (unknown keys included).
    pub(crate) lines: Vec<Vec<u8>>,
}

/// Why a file is not a dbox message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken(pub(crate) String);

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the body of a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset of the body.
    pub(crate) body_offset: u64,
    /// Bytes of body.
    pub(crate) body_size: u64,
}

impl Layout {
    /// Offset of the metadata block.
    pub(crate) fn metadata_offset(&self) -> u64 {
        self.body_offset + self.body_size
    }
}

/// The file header and message header we write in front of a body of `body_size` bytes
/// (the size is filled in when the body is finished: [`message_header`]).
pub(crate) fn file_header(create_time: i64) -> Vec<u8> {
    format!("2 M{MESSAGE_HEADER_SIZE:x} C{:x}\n", create_time.max(0)).into_bytes()
}

/// The message header for a body of `body_size` bytes (`dbox_msg_header_fill`).
pub(crate) fn message_header(body_size: u64) -> [u8; MESSAGE_HEADER_SIZE] {
    let mut header = [b' '; MESSAGE_HEADER_SIZE];
    header[..2].copy_from_slice(MAGIC_PRE);
    header[2] = b'N';
    header[13..29].copy_from_slice(format!("{body_size:016X}").as_bytes());
    header[29] = b'\n';
    header
}

/// The metadata block for a message, in the order Dovecot writes it
/// (`dbox_save_write_metadata`): `R`, `V`, `P`, `O`, `G`.
pub(crate) fn metadata(
    received: i64,
    virtual_size: u64,
    pop3_uidl: Option<&str>,
    pop3_order: Option<u32>,
    guid: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + guid.len());
    out.extend_from_slice(MAGIC_POST);
    // A date before 1970 as Dovecot writes it (`%llx` of the `time_t`): two's complement.
    let received = received.cast_unsigned();
    out.extend_from_slice(format!("R{received:x}\nV{virtual_size:x}\n").as_bytes());
    if let Some(uidl) = pop3_uidl {
        out.push(b'P');
        out.extend_from_slice(uidl.as_bytes());
        out.push(b'\n');
    }
    if let Some(order) = pop3_order {
        out.extend_from_slice(format!("O{order}\n").as_bytes());
    }
    out.push(b'G');
    out.extend_from_slice(guid.as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// Parses the file header and message header at the start of a file (`start`, at least
/// the first few hundred bytes or the whole file) of `file_size` bytes: where the body is.
pub(crate) fn parse_layout(start: &[u8], file_size: u64) -> Result<Layout, Broken> {
    let line_end = memchr::memchr(b'\n', &start[..start.len().min(MAX_HEADER_LINE)])
        .ok_or_else(|| Broken(String::from("EOF while reading file header")))?;
    let line = &start[..line_end];
    let version = line.first().copied().unwrap_or(0);
    if !matches!(version, b'1' | b'2') || line.get(1) != Some(&b' ') {
        return Err(Broken(String::from("Invalid dbox version")));
    }
    let mut message_header_size = 0usize;
    for field in line[2..].split(|&b| b == b' ') {
        let Some((&key, value)) = field.split_first() else { continue };
        match key {
            b'M' => {
                message_header_size = hex(value)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| Broken(String::from("Invalid message header size")))?;
            }
            b'C' => {
                hex(value).ok_or_else(|| Broken(String::from("Invalid create time stamp")))?;
            }
            _ => {}
        }
    }
    if message_header_size == 0 {
        return Err(Broken(String::from("Missing message header size")));
    }
    if !(29..=MAX_HEADER_LINE).contains(&message_header_size) {
        return Err(Broken(format!("message header size {message_header_size}")));
    }
    let header_at = line_end + 1;
    let header = start
        .get(header_at..header_at + message_header_size)
        .ok_or_else(|| Broken(String::from("EOF reading msg header")))?;
    if &header[..2] != MAGIC_PRE {
        return Err(Broken(String::from("msg header has bad magic value")));
    }
    if header[message_header_size - 1] != b'\n' {
        return Err(Broken(String::from("msg header doesn't end with LF")));
    }
    // hex2dec(): a digit it does not know makes the size 0.
    let body_size = hex(&header[13..29]).unwrap_or(0);
    let body_offset = (header_at + message_header_size) as u64;
    if body_offset.saturating_add(body_size) > file_size {
        return Err(Broken(format!(
            "body of {body_size} bytes at {body_offset} runs past the file's {file_size} bytes"
        )));
    }
    Ok(Layout { body_offset, body_size })
}

/// Parses the metadata block (`data` starts with [`MAGIC_POST`]).
pub(crate) fn parse_metadata(data: &[u8]) -> Result<Metadata, Broken> {
    let rest = data
        .strip_prefix(MAGIC_POST.as_slice())
        .ok_or_else(|| Broken(String::from("metadata header has bad magic value")))?;
    let mut metadata = Metadata::default();
    let mut ended = false;
    for line in rest.split_inclusive(|&b| b == b'\n') {
        // Only whole lines count (a last one without LF is cut off at EOF).
        let Some(line) = line.strip_suffix(b"\n") else { break };
        // An empty line (or an old-format line starting with a space) ends the block.
        if line.is_empty() || line[0] == b' ' {
            ended = true;
            break;
        }
        metadata.lines.push(line.to_vec());
        let (key, value) = (line[0], &line[1..]);
        let text = || std::str::from_utf8(value).ok().map(str::to_string);
        match key {
            b'G' if metadata.guid.is_none() => metadata.guid = text().filter(|g| !g.is_empty()),
            b'R' if metadata.received.is_none() => {
                // Dovecot reads it back into a `time_t`: a date before 1970 wraps.
                metadata.received = hex(value).map(u64::cast_signed);
            }
            b'V' if metadata.virtual_size.is_none() => metadata.virtual_size = hex(value),
            b'P' if metadata.pop3_uidl.is_none() => metadata.pop3_uidl = text(),
            b'O' if metadata.pop3_order.is_none() => {
                metadata.pop3_order = text().and_then(|t| t.parse().ok()).filter(|&o| o > 0);
            }
            b'Z' if metadata.physical_size.is_none() => metadata.physical_size = hex(value),
            b'X' if metadata.external_parts.is_none() => {
                metadata.external_parts = Some(String::from_utf8_lossy(value).into_owned());
            }
            _ => {}
        }
    }
    if !ended {
        return Err(Broken(String::from("missing end-of-metadata line")));
    }
    Ok(metadata)
}

/// `str_to_uintmax_hex`: hex digits only, at least one, no overflow.
fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut value = 0u64;
    for &digit in digits {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        value = (value << 4) | u64::from(nibble);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file of the design notes' §1.3 dump (written by the prototype, read by Dovecot).
    fn sample() -> Vec<u8> {
        let body = b"Date: Mon, 1 Jan 2024 10:02:00 +0000\nMessage-ID: <w2@example.com>\n\
Subject: dot\n\nhello\n.dot\n";
        let mut file = b"2 M1e C6b14a9bf\n".to_vec();
        file.extend_from_slice(&message_header(body.len() as u64));
        file.extend_from_slice(body);
        file.extend_from_slice(&metadata(
            0x6553_f164,
            (body.len() + memchr::memchr_iter(b'\n', body).count()) as u64,
            Some("UIDL-seven"),
            Some(1),
            "0123456789abcdef0123456789abcdef",
        ));
        file
    }

    #[test]
    fn writes_what_dovecot_reads() {
        let file = sample();
        assert_eq!(&file[..16], b"2 M1e C6b14a9bf\n");
        assert_eq!(&file[16..46], b"\x01\x02N          000000000000005B\n");
        let layout = parse_layout(&file, file.len() as u64).unwrap();
        assert_eq!(layout, Layout { body_offset: 46, body_size: 0x5b });
        let meta = &file[usize::try_from(layout.metadata_offset()).unwrap()..];
        assert!(meta.starts_with(b"\n\x01\x03\nR6553f164\nV"));
        let parsed = parse_metadata(meta).unwrap();
        assert_eq!(parsed.received, Some(0x6553_f164));
        assert_eq!(parsed.virtual_size, Some(0x5b + 6));
        assert_eq!(parsed.pop3_uidl.as_deref(), Some("UIDL-seven"));
        assert_eq!(parsed.pop3_order, Some(1));
        assert_eq!(parsed.guid.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert!(meta.ends_with(b"G0123456789abcdef0123456789abcdef\n\n"));
    }

    #[test]
    fn a_date_before_1970_is_written_and_read_as_dovecot_does() {
        // What Dovecot 2.3.19.1 wrote for a Maildir message with mtime -2^31 (doveadm
        // backup into sdbox).
        let meta = metadata(-2_147_483_648, 1, None, None, "g");
        assert!(meta.starts_with(b"\n\x01\x03\nRffffffff80000000\nV1\n"), "{meta:?}");
        assert_eq!(parse_metadata(&meta).unwrap().received, Some(-2_147_483_648));
    }

    #[test]
    fn broken_files_say_why() {
        let file = sample();
        let size = file.len() as u64;
        assert!(parse_layout(b"3 M1e\n", 6).is_err());
        assert!(parse_layout(b"2 C1\n", 5).unwrap_err().0.contains("Missing"));
        assert!(parse_layout(&file[..30], size).unwrap_err().0.contains("EOF"));
        assert!(parse_layout(&file, 60).unwrap_err().0.contains("runs past"));
        let mut bad_magic = file.clone();
        bad_magic[16] = b'x';
        assert!(parse_layout(&bad_magic, size).is_err());
        assert!(parse_metadata(b"\n\x01\x03\nGabc\n").unwrap_err().0.contains("end-of-metadata"));
        assert!(parse_metadata(b"\n\x01\x04\n\n").is_err());
        let kept = parse_metadata(b"\n\x01\x03\nQfuture\nGx\n\n").unwrap();
        assert_eq!(kept.lines, [b"Qfuture".to_vec(), b"Gx".to_vec()]);
    }
}
