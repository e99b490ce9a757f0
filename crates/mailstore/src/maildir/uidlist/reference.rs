//! The parser as it was before records became spans of one text (round 7): the reference
//! the new one must agree with, on every input. Two fixes made since are made here too (a
//! header line's CR before a NUL, and its length when a CR or NUL ends its content).

#![allow(clippy::pedantic, dead_code)]

use std::fmt::Write as _;

use crate::guid::Guid;

/// One message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    /// The UID.
    pub(super) uid: u32,
    /// Extension fields (`key`, value) in file order.
    pub(super) extensions: Vec<(u8, String)>,
    /// The base file name (no `:2,` info).
    pub(super) filename: String,
}

impl Record {
    /// The value of extension `key`.
    pub(super) fn ext(&self, key: u8) -> Option<&str> {
        self.extensions.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }
}

/// A parsed uidlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Uidlist {
    /// 1 or 3.
    pub(super) version: u8,
    /// UIDVALIDITY (non-zero).
    pub(super) uid_validity: u32,
    /// `N` of the header (lags behind appended records).
    pub(super) header_next_uid: u32,
    /// Mailbox GUID (`G`), absent in version 1.
    pub(super) guid: Option<Guid>,
    /// Unknown header fields (key and value as one token), preserved on rewrite.
    pub(super) header_extra: Vec<String>,
    /// Records in UID order.
    pub(super) records: Vec<Record>,
    /// Length of the complete lines read (a torn last line starts here).
    pub(super) complete_len: usize,
    /// Dovecot would rewrite the file (dropped fields, duplicates, old version, no GUID).
    pub(super) wants_rewrite: bool,
}

/// Why Dovecot would consider a uidlist broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Broken {
    /// 1-based line.
    pub(super) line: usize,
    /// What is wrong.
    pub(super) reason: String,
}

impl Uidlist {
    /// Parses a whole file. `Ok(None)` for an empty file (Dovecot treats it as missing).
    pub(super) fn parse(data: &[u8]) -> Result<Option<Uidlist>, Broken> {
        let mut lines = complete_lines(data);
        let Some((header, header_end)) = lines.next() else {
            // Dovecot treats a file without a complete first line as broken too; only an
            // empty file means "no uidlist yet" without anything to lose.
            return if data.is_empty() {
                Ok(None)
            } else {
                Err(broken(1, "no complete header line".into()))
            };
        };
        let header = utf8(header, 1)?;
        let mut list = parse_header(header)?;
        let mut previous_uid = 0u32;
        // Base names borrowed from `data`: no String per record just to find duplicates.
        // Sized for the file up front (one record per line): no rehashing or regrowing.
        let lines_hint = memchr::memchr_iter(b'\n', data).count();
        let mut positions: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(lines_hint);
        list.records.reserve_exact(lines_hint);
        // The other change since round 7: the length of the header line, not of its
        // content (a CR or a NUL may end that before the `\n`).
        let mut complete_len = header_end;
        for (index, (line, consumed)) in lines.enumerate() {
            let line_number = index + 2;
            let line = utf8(line, line_number)?;
            let record = parse_record(line, list.version, line_number, &mut list.wants_rewrite)?;
            if record.uid <= previous_uid {
                return Err(broken(
                    line_number,
                    format!("UIDs not ordered ({} <= {previous_uid})", record.uid),
                ));
            }
            if list.version == 1 && record.uid >= list.header_next_uid {
                return Err(broken(line_number, "UID larger than next_uid".into()));
            }
            previous_uid = record.uid;
            // Dovecot's file table hashes and compares base names (up to `:`). The record's
            // file name is the end of the line.
            let name = &line[line.len() - record.filename.len()..];
            let base = crate::maildir::filename::base(name);
            let duplicate = match positions.entry(base) {
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(list.records.len());
                    None
                }
                std::collections::hash_map::Entry::Occupied(entry) => Some(*entry.get()),
            };
            if let Some(at) = duplicate {
                // Dovecot: "Duplicate file entry", the later UID replaces the earlier one.
                list.records.remove(at);
                list.wants_rewrite = true;
                for position in positions.values_mut() {
                    if *position > at {
                        *position -= 1;
                    }
                }
                positions.insert(base, list.records.len());
            }
            list.records.push(record);
            complete_len = consumed;
        }
        list.complete_len = complete_len;
        if list.version != 3 || list.guid.is_none() {
            list.wants_rewrite = true;
        }
        Ok(Some(list))
    }
}

/// Complete `\n`-terminated lines (a trailing `\r` removed) with the offset after each.
fn complete_lines(data: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let end = start + memchr::memchr(b'\n', data.get(start..)?)?;
        let line = &data[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Dovecot parses C strings: a NUL ends the line's content.
        let line = memchr::memchr(0, line).map_or(line, |nul| &line[..nul]);
        Some((line, start))
    })
}

fn utf8(line: &[u8], number: usize) -> Result<&str, Broken> {
    std::str::from_utf8(line).map_err(|_| broken(number, "not UTF-8".into()))
}

fn broken(line: usize, reason: String) -> Broken {
    Broken { line, reason }
}

/// Decimal u32 as Dovecot's `str_to_uint`: digits only, no overflow.
fn parse_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_header(line: &str) -> Result<Uidlist, Broken> {
    // The one change since round 7 (found by the fuzz target): a CR before a NUL is not
    // part of the header's last field.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let bytes = line.as_bytes();
    if bytes.len() < 2 || !bytes[0].is_ascii_digit() || bytes[1] != b' ' {
        return Err(broken(1, "invalid version number".into()));
    }
    let version = bytes[0] - b'0';
    let rest = &line[2..];
    let (mut uid_validity, mut next_uid, mut guid, mut extra) = (0, 0, None, Vec::new());
    match version {
        1 => {
            let mut fields = rest.split_whitespace();
            let mut field = || fields.next().and_then(parse_u32);
            match (field(), field()) {
                (Some(v), Some(n)) => (uid_validity, next_uid) = (v, n),
                _ => return Err(broken(1, "corrupted version 1 header".into())),
            }
        }
        3 => {
            for field in rest.split(' ').filter(|f| !f.is_empty()) {
                // V, N and G are ASCII; anything else is kept whole (it may not even be).
                let key = field.as_bytes()[0];
                let value = if key.is_ascii() { &field[1..] } else { "" };
                match key {
                    b'V' => {
                        uid_validity = parse_u32(value)
                            .ok_or_else(|| broken(1, format!("invalid UIDVALIDITY {value:?}")))?;
                    }
                    b'N' => {
                        next_uid = parse_u32(value)
                            .ok_or_else(|| broken(1, format!("invalid next UID {value:?}")))?;
                    }
                    b'G' => {
                        let parsed = value.parse::<Guid>();
                        guid =
                            Some(parsed.map_err(|_| {
                                broken(1, format!("invalid mailbox GUID {value:?}"))
                            })?);
                    }
                    _ => extra.push(field.to_string()),
                }
            }
        }
        _ => return Err(broken(1, format!("unsupported version {version}"))),
    }
    if uid_validity == 0 || next_uid == 0 {
        return Err(broken(
            1,
            format!("broken header (uidvalidity {uid_validity}, next uid {next_uid})"),
        ));
    }
    Ok(Uidlist {
        version,
        uid_validity,
        header_next_uid: next_uid,
        guid,
        header_extra: extra,
        records: Vec::new(),
        complete_len: 0,
        wants_rewrite: false,
    })
}

fn parse_record(
    line: &str,
    version: u8,
    number: usize,
    wants_rewrite: &mut bool,
) -> Result<Record, Broken> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let uid = line[..digits].parse::<u64>().unwrap_or(u64::MAX);
    if digits == 0 || uid == 0 || line.as_bytes().get(digits) != Some(&b' ') {
        return Err(broken(number, "invalid data".into()));
    }
    let uid = u32::try_from(uid)
        .ok()
        .filter(|&u| u != u32::MAX)
        .ok_or_else(|| broken(number, "UID too high".into()))?;
    let mut rest = line[digits..].trim_start_matches(' ');
    let mut extensions = Vec::new();
    if version == 3 {
        while !rest.is_empty() && !rest.starts_with(':') {
            let end = rest.find(' ').unwrap_or(rest.len());
            let field = &rest[..end];
            match field.as_bytes()[0] {
                key @ b'A'..=b'Z' => extensions.push((key, field[1..].to_string())),
                _ => *wants_rewrite = true, // "Invalid extension record, removing"
            }
            rest = rest[end..].trim_start_matches(' ');
        }
        rest = rest.strip_prefix(':').unwrap_or(rest);
        if rest.is_empty() {
            return Err(broken(number, "invalid extended fields".into()));
        }
    }
    // A name whose base (before `:`) is empty could only be written back as an empty name,
    // which Dovecot would reject; no file can be matched by it either.
    // Control characters (a CR that would be taken for a line end when written back) are
    // refused too: no Maildir writer produces them.
    // (Control characters are ASCII or start with 0xC2: only then look at the chars.)
    if rest.is_empty()
        || rest.contains('/')
        || (rest.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2)
            && rest.chars().any(char::is_control))
        || crate::maildir::filename::base(rest).is_empty()
    {
        return Err(broken(number, format!("broken file name {rest:?}")));
    }
    Ok(Record { uid, extensions, filename: rest.to_string() })
}

impl Uidlist {
    /// The old `to_bytes`.
    pub(super) fn to_bytes_reference(&self) -> Vec<u8> {
        let mut out = format!("3 V{} N{}", self.uid_validity, self.header_next_uid);
        if let Some(guid) = self.guid {
            let _ = write!(out, " G{guid}");
        }
        for field in &self.header_extra {
            let _ = write!(out, " {field}");
        }
        out.push('\n');
        for record in &self.records {
            let base = crate::maildir::filename::base(&record.filename);
            let _ = write!(out, "{}", record.uid);
            for (key, value) in &record.extensions {
                out.push(' ');
                out.push(char::from(*key));
                out.push_str(value);
            }
            out.push_str(" :");
            out.push_str(base);
            out.push('\n');
        }
        out.into_bytes()
    }
}
