//! `dovecot-uidlist` (`maildir-uidlist.c`): version 3 read and written, version 1 read.
//!
//! ```text
//! 3 V<uidvalidity> N<nextuid> G<mailbox guid>[ <key><value>]...
//! <uid>[ <key><value>]... :<base file name>
//! ```
//!
//! The reader enforces Dovecot's rules: a violation makes the whole file "broken"
//! ([`Broken`]), which Dovecot answers by deleting and rebuilding it. Two defects Dovecot
//! repairs instead, and so do we: an extension field whose key is not `A`–`Z` is dropped,
//! and a file name listed twice keeps only its later UID. A last line without `\n` (a torn
//! append) is ignored, as Dovecot's line reader ignores it.

use std::fmt::Write as _;

use crate::guid::Guid;

/// Record extension keys Dovecot defines.
pub(crate) mod ext {
    /// Physical size, when not in the file name.
    pub(crate) const SIZE: u8 = b'S';
    /// Virtual (CRLF) size, when not in the file name.
    pub(crate) const VSIZE: u8 = b'W';
    /// POP3 UIDL overriding `pop3_uidl_format`.
    pub(crate) const POP3_UIDL: u8 = b'P';
    /// POP3 order (lower first).
    pub(crate) const POP3_ORDER: u8 = b'O';
    /// Message GUID, when it differs from the base name.
    pub(crate) const GUID: u8 = b'G';
}

/// The uidlist header field (`X…`, which Dovecot keeps through its own rewrites as it keeps
/// every header field it does not know) that records a mailbox rebuilt under a UIDVALIDITY
/// of its own in place of another one whose UIDs it holds: `Xdsync-origin=<own>:<other>`.
/// It counts only while `<own>` is the mailbox's UIDVALIDITY.
pub(crate) const ORIGIN_FIELD: &str = "Xdsync-origin=";

/// One message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The UID.
    pub(crate) uid: u32,
    /// Extension fields (`key`, value) in file order.
    pub(crate) extensions: Vec<(u8, String)>,
    /// The base file name (no `:2,` info).
    pub(crate) filename: String,
}

impl Record {
    /// The value of extension `key`.
    pub(crate) fn ext(&self, key: u8) -> Option<&str> {
        self.extensions.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }
}

/// A parsed uidlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uidlist {
    /// 1 or 3.
    pub(crate) version: u8,
    /// UIDVALIDITY (non-zero).
    pub(crate) uid_validity: u32,
    /// `N` of the header (lags behind appended records).
    pub(crate) header_next_uid: u32,
    /// Mailbox GUID (`G`), absent in version 1.
    pub(crate) guid: Option<Guid>,
    /// Unknown header fields (key and value as one token), preserved on rewrite.
    pub(crate) header_extra: Vec<String>,
    /// Records in UID order.
    pub(crate) records: Vec<Record>,
    /// Length of the complete lines read (a torn last line starts here).
    pub(crate) complete_len: usize,
    /// Dovecot would rewrite the file (dropped fields, duplicates, old version, no GUID).
    pub(crate) wants_rewrite: bool,
}

/// Why Dovecot would consider a uidlist broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    /// 1-based line.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) reason: String,
}

impl Uidlist {
    /// A new, empty version-3 uidlist.
    pub(crate) fn new(uid_validity: u32, next_uid: u32, guid: Guid) -> Uidlist {
        Uidlist {
            version: 3,
            uid_validity,
            header_next_uid: next_uid.max(1),
            guid: Some(guid),
            header_extra: Vec::new(),
            records: Vec::new(),
            complete_len: 0,
            wants_rewrite: false,
        }
    }

    /// The UIDVALIDITY whose UIDs this mailbox holds under its own (see
    /// [`ORIGIN_FIELD`]), when the field names the current UIDVALIDITY.
    pub(crate) fn origin(&self) -> Option<u32> {
        self.header_extra.iter().find_map(|field| {
            let (own, origin) = field.strip_prefix(ORIGIN_FIELD)?.split_once(':')?;
            (parse_u32(own)? == self.uid_validity).then_some(parse_u32(origin)?)
        })
    }

    /// Records (or with `None` forgets) the UIDVALIDITY whose UIDs this mailbox holds under
    /// its current one.
    pub(crate) fn set_origin(&mut self, origin: Option<u32>) {
        self.header_extra.retain(|field| !field.starts_with(ORIGIN_FIELD));
        if let Some(origin) = origin.filter(|&o| o != 0 && o != self.uid_validity) {
            self.header_extra.push(format!("{ORIGIN_FIELD}{}:{origin}", self.uid_validity));
        }
    }

    /// The next UID: the larger of the header's `N` and the last record's UID + 1.
    pub(crate) fn next_uid(&self) -> u32 {
        let after_last = self.records.last().map_or(1, |r| r.uid.saturating_add(1));
        self.header_next_uid.max(after_last)
    }

    /// Parses a whole file. `Ok(None)` for an empty file (Dovecot treats it as missing).
    pub(crate) fn parse(data: &[u8]) -> Result<Option<Uidlist>, Broken> {
        let mut lines = complete_lines(data);
        let Some((header, _)) = lines.next() else {
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
        let mut complete_len = header.len() + 1;
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

    /// The header line, with `\n`.
    pub(crate) fn header_line(&self) -> String {
        let mut line = format!("3 V{} N{}", self.uid_validity, self.header_next_uid);
        if let Some(guid) = self.guid {
            let _ = write!(line, " G{guid}");
        }
        for field in &self.header_extra {
            let _ = write!(line, " {field}");
        }
        line.push('\n');
        line
    }

    /// The whole file as version 3.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header_line();
        for record in &self.records {
            push_record_line(&mut out, record);
        }
        out.into_bytes()
    }
}

/// Appends a record's line (`<uid> <extensions> :<base name>\n`) to `out`, growing it
/// once (a commit writes two lines per message: the journal's and the uidlist's). Extension
/// values must not contain white space (checked by the callers that accept them from
/// outside).
pub(crate) fn push_record_line(out: &mut String, record: &Record) {
    let base = crate::maildir::filename::base(&record.filename);
    let extensions: usize = record.extensions.iter().map(|(_, value)| value.len() + 2).sum();
    out.reserve(10 + extensions + 2 + base.len() + 1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_counts_only_for_the_uid_validity_it_names() {
        let list = Uidlist::parse(b"3 V900 N1 Pfoo Xdsync-origin=900:500\n").unwrap().unwrap();
        assert_eq!(list.origin(), Some(500));
        // Written for an earlier UIDVALIDITY (someone changed it since), or damaged: none.
        for header in ["3 V901 N1 Xdsync-origin=900:500", "3 V900 N1 Xdsync-origin=900:x"] {
            let list = Uidlist::parse(format!("{header}\n").as_bytes()).unwrap().unwrap();
            assert_eq!(list.origin(), None, "{header}");
        }
        let mut list = list;
        list.set_origin(Some(7));
        assert_eq!(list.header_line(), "3 V900 N1 Pfoo Xdsync-origin=900:7\n");
        list.set_origin(Some(900));
        assert_eq!(list.header_line(), "3 V900 N1 Pfoo\n", "its own value is no origin");
        list.set_origin(Some(7));
        list.set_origin(None);
        assert_eq!((list.origin(), list.header_extra.as_slice()), (None, &["Pfoo".to_owned()][..]));
    }

    const DOVECOT: &str = "3 V1795424865 N9 G11c75a325f02046bff3d000083ecc375\n\
        1 :1795424863.M887367P15871.vm,S=216,W=225\n\
        2 G1234 P00ab O3 :1795424863.M889967P15871.vm,S=228,W=237\n\
        9 :1795424863.M911307P15871.vm,S=215,W=224\n";

    #[test]
    fn parses_what_dovecot_writes_and_writes_it_back() {
        let list = Uidlist::parse(DOVECOT.as_bytes()).unwrap().unwrap();
        assert_eq!((list.version, list.uid_validity, list.header_next_uid), (3, 1_795_424_865, 9));
        assert_eq!(list.next_uid(), 10);
        assert_eq!(list.guid.unwrap().to_string(), "11c75a325f02046bff3d000083ecc375");
        assert_eq!(list.records.len(), 3);
        assert_eq!(list.records[1].ext(ext::GUID), Some("1234"));
        assert_eq!(list.records[1].ext(ext::POP3_ORDER), Some("3"));
        assert_eq!(list.records[2].filename, "1795424863.M911307P15871.vm,S=215,W=224");
        assert!(!list.wants_rewrite);
        assert_eq!(String::from_utf8(list.to_bytes()).unwrap(), DOVECOT);
        assert_eq!(list.complete_len, DOVECOT.len());
    }

    #[test]
    fn duplicates_keep_the_later_uid_wherever_they_are() {
        let text = "3 V1 N1 G11c75a325f02046bff3d000083ecc375\n\
            1 :a\n2 :b\n3 :c\n4 :a:2,S\n5 :d\n6 :c\n7 :b\n";
        let list = Uidlist::parse(text.as_bytes()).unwrap().unwrap();
        let records: Vec<(u32, &str)> =
            list.records.iter().map(|r| (r.uid, r.filename.as_str())).collect();
        assert_eq!(records, [(4, "a:2,S"), (5, "d"), (6, "c"), (7, "b")]);
        assert!(list.wants_rewrite);
    }

    #[test]
    fn broken_files() {
        let cases: &[(&str, usize)] = &[
            ("x V1 N1\n", 1),
            ("3 V0 N1\n", 1),
            ("3 V1 N0\n", 1),
            ("3 V1 N1 Gxyz\n", 1),
            ("3 Vabc N1\n", 1),
            ("4 V1 N1\n", 1),
            ("3 V1 N1\n0 :a\n", 2),
            ("3 V1 N1\n2 :a\n2 :b\n", 3),
            ("3 V1 N1\n1 :a\n1x :b\n", 3),
            ("3 V1 N1\n1 S12\n", 2),
            ("3 V1 N1\n1 :a/b\n", 2),
            ("3 V1 N1\n1 ::b\n", 2),
            ("1 5 9\n1 a\n8 :b2\x11,S\n", 3),
            ("3 V1 N1\n4294967295 :a\n", 2),
            ("3 V1 N1\n99999999999 :a\n", 2),
            ("1 5 3\n1 a\n3 b\n", 3),
        ];
        assert_eq!(Uidlist::parse(b"3 V1 N1\n1 :\xff\n").unwrap_err().line, 2);
        for (text, line) in cases {
            let err = Uidlist::parse(text.as_bytes()).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err:?}");
        }
    }

    #[test]
    fn recoveries() {
        assert_eq!(Uidlist::parse(b"").unwrap(), None);
        assert_eq!(Uidlist::parse(b"3 V1 N1").unwrap_err().line, 1);
        // Lowercase extension key: dropped; duplicate file: later UID wins; torn last line ignored.
        let text = "3 V7 N1 G11c75a325f02046bff3d000083ecc375\n1 xjunk S5 :a\n2 :b\n3 :a\n4 :c";
        let list = Uidlist::parse(text.as_bytes()).unwrap().unwrap();
        assert!(list.wants_rewrite);
        let uids: Vec<(u32, &str)> =
            list.records.iter().map(|r| (r.uid, r.filename.as_str())).collect();
        assert_eq!(uids, [(2, "b"), (3, "a")]);
        assert_eq!(list.complete_len, text.len() - "4 :c".len());
        assert_eq!(list.next_uid(), 4);
        // Version 1 (Courier).
        let list = Uidlist::parse(b"1 5 9\n1 a\n8 b:2,S\n").unwrap().unwrap();
        assert_eq!((list.uid_validity, list.next_uid(), list.guid), (5, 9, None));
        assert!(list.wants_rewrite);
        assert_eq!(list.records[1].filename, "b:2,S");
        // Unknown header fields are kept; CRLF tolerated.
        let list = Uidlist::parse(b"3 V1 N1 Pfoo\r\n").unwrap().unwrap();
        assert_eq!(list.header_extra, ["Pfoo"]);
        assert_eq!(list.header_line(), "3 V1 N1 Pfoo\n");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn record() -> impl Strategy<Value = (Vec<(u8, String)>, String)> {
            (
                proptest::collection::vec(
                    (prop::sample::select(b"SWPOGAZ".to_vec()), "[!-~&&[^:]][!-~]{0,12}"),
                    0..4,
                ),
                "[0-9]{1,10}\\.M[0-9]{1,6}P[0-9]{1,5}\\.[a-z]{1,8}(,S=[0-9]{1,6})?(,W=[0-9]{1,6})?",
            )
        }

        proptest! {
            #[test]
            fn write_then_parse_is_identity(
                uid_validity in 1u32..,
                header_next in 1u32..1000,
                gaps in proptest::collection::vec(1u32..1000, 0..20),
                records in proptest::collection::vec(record(), 0..20),
                guid in any::<[u8; 16]>(),
            ) {
                let mut list = Uidlist::new(uid_validity, header_next, Guid::from_bytes(guid));
                let mut uid = 0u32;
                for ((extensions, filename), gap) in records.into_iter().zip(gaps) {
                    uid += gap;
                    if list.records.iter().any(|r| r.filename == filename) {
                        continue;
                    }
                    list.records.push(Record { uid, extensions, filename });
                }
                let bytes = list.to_bytes();
                let parsed = Uidlist::parse(&bytes).unwrap().unwrap();
                prop_assert_eq!(&parsed.records, &list.records);
                prop_assert_eq!(parsed.next_uid(), list.next_uid());
                prop_assert_eq!(parsed.guid, list.guid);
                prop_assert_eq!(parsed.complete_len, bytes.len());
                prop_assert!(!parsed.wants_rewrite);
                // A torn append never changes what the complete lines say.
                for cut in 0..bytes.len() {
                    if let Ok(Some(prefix)) = Uidlist::parse(&bytes[..cut]) {
                        prop_assert_eq!(&prefix.records[..], &list.records[..prefix.records.len()]);
                    }
                }
            }

            #[test]
            fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
                crate::fuzzing::uidlist(&data);
            }
        }
    }
}
