//! Entry points for the fuzz targets in `fuzz/` and the corpus replay tests. Each one must
//! never panic, whatever the input.

use crate::maildir::{filename, folders, journal, keywords::KeywordTable, uidlist::Uidlist};

/// `dovecot-uidlist` parser; a parsed file must survive write → parse unchanged.
pub fn uidlist(data: &[u8]) {
    // A lookup by UID over the file's lines (a re-run's) answers what the parse answers
    // on a file Dovecot would not rewrite, and never panics on any other.
    for block in [7, crate::maildir::uidlist::lookup::BLOCK] {
        crate::maildir::uidlist::lookup::agrees_with_the_parse(data, block);
    }
    // The line-by-line read of a view (its text left in the file) reads what the parse
    // reads, whatever the size of its reads.
    for chunk in [7, crate::maildir::uidlist::streamed::CHUNK] {
        crate::maildir::uidlist::streamed::agrees_with_the_parse(data, chunk, 1);
    }
    // The record of the uidlist as we left it (`dsync-rs-uidlist-known`), read from the
    // same directory: anything but our own line is no record, and ours reads back.
    if let Some(known) = crate::maildir::known::Known::decode(data) {
        assert_eq!(crate::maildir::known::Known::decode(known.encode().as_bytes()), Some(known));
    }
    if let Ok(Some(list)) = Uidlist::parse(data) {
        let again = Uidlist::parse(&list.to_bytes());
        let Ok(Some(again)) = again else { panic!("rewritten uidlist does not parse: {again:?}") };
        // Written back with base names only.
        let bufs = |list: &Uidlist, base: bool| {
            let mut bufs: Vec<_> =
                list.records().map(crate::maildir::uidlist::Record::to_buf).collect();
            for buf in bufs.iter_mut().filter(|_| base) {
                buf.filename = filename::base(&buf.filename).to_string();
            }
            bufs
        };
        assert_eq!(bufs(&again, false), bufs(&list, true));
        // Every base name is found at its record.
        for (position, record) in list.records().enumerate() {
            assert_eq!(list.position_of_base(record.base()), Some(position));
        }
        assert_eq!((again.uid_validity, again.next_uid()), (list.uid_validity, list.next_uid()));
        // The origin record survives a rewrite, and setting one reads back (or is refused
        // for 0 and the mailbox's own UIDVALIDITY).
        assert_eq!(again.origin(), list.origin());
        let mut marked = list.clone();
        let origin = list.uid_validity.wrapping_add(1);
        marked.set_origin(Some(origin));
        let expected = (origin != 0).then_some(origin);
        let reread = Uidlist::parse(&marked.to_bytes());
        let Ok(Some(reread)) = reread else { panic!("marked uidlist does not parse: {reread:?}") };
        assert_eq!(reread.origin(), expected);
    }
}

/// File-name parser: sizes, flags, re-flagging.
pub fn filename(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else { return };
    let _ = filename::size_field(name, b'S');
    let _ = filename::size_field(name, b'W');
    let info = filename::info(name);
    let renamed = filename::with_flags(name, info.flags, &info.keywords);
    let again = filename::info(&renamed);
    assert_eq!(again.flags, info.flags, "{name:?} -> {renamed:?}");
    let _ = filename::sort_cmp(name, &renamed);
}

/// `dovecot-keywords` parser; the table must round-trip.
pub fn keywords(data: &[u8]) {
    let table = KeywordTable::parse(data);
    assert_eq!(KeywordTable::parse(&table.to_bytes()), table);
}

/// `subscriptions` parser (both versions, both encodings); names must round-trip.
pub fn subscriptions(data: &[u8]) {
    for utf8 in [false, true] {
        let names = crate::subscriptions::parse(data, '.', utf8);
        let again =
            crate::subscriptions::parse(&crate::subscriptions::serialize(&names, utf8), '.', utf8);
        assert_eq!(again, names);
    }
}

/// Folder directory names to mailbox names, as Dovecot maps them: for both layouts and
/// both encodings, a level is its decoded modified UTF-7 or else its bytes; bytes that are
/// not UTF-8 give U+FFFD, never two in a row; no level is ever lost or split.
pub fn folder_name(data: &[u8]) {
    for separator in [Some('.'), None] {
        for utf8 in [false, true] {
            let levels = folders::folder_levels(data, separator, utf8);
            let expected = separator.map_or(1, |sep| {
                data.iter().filter(|&&byte| u32::from(byte) == u32::from(sep)).count() + 1
            });
            assert_eq!(levels.len(), expected, "{data:?} {separator:?} {utf8}");
            match (std::str::from_utf8(data), separator) {
                (Ok(text), Some(sep)) => {
                    for (given, level) in text.split(sep).zip(&levels) {
                        let decoded = mutf7::decode(given);
                        assert!(
                            *level == given || (!utf8 && decoded.as_deref() == Ok(level)),
                            "{given:?} -> {level:?}"
                        );
                    }
                }
                (Ok(_), None) => {}
                (Err(_), _) => {
                    let joined = levels.concat();
                    assert!(!utf8 || joined.is_ascii(), "{joined:?}");
                    if !utf8 {
                        assert!(joined.contains('\u{FFFD}'), "{joined:?}");
                    }
                }
            }
            let _ = crate::MailboxName::new(levels);
        }
    }
}

/// Commit journal parser.
pub fn journal(data: &[u8]) {
    let _ = journal::parse(data);
}

/// Location strings.
pub fn location(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(location) = text.parse::<crate::Location>() {
        let _ = location.to_string();
    }
}

/// `dovecot-uidlist` parsing alone, for the `uidlist` benchmark in `benches/`: the number of
/// records (0 when the file is empty or broken). `data` is the file as read, which the
/// parse keeps, as a mailbox's read does.
pub fn uidlist_parse(data: Vec<u8>) -> usize {
    match Uidlist::parse_owned(data) {
        Ok(Some(list)) => list.len(),
        _ => 0,
    }
}

/// `dovecot.index.log` (a whole file): header, records up to the last complete
/// transaction, and their replay, which stops at the first record Dovecot would call
/// corrupt. Whatever is replayed keeps UIDs ascending and below the next UID.
pub fn index_log(data: &[u8]) {
    use crate::index::{log, state::IndexState};
    let Ok(header) = log::LogHeader::parse(data) else { return };
    let start = usize::from(header.hdr_size);
    // Read piece by piece from a file, as a lock reads it, the log gives the same.
    if let Some(streamed) = streamed_log(data, start) {
        let whole = log::records(data, start).map(|(all, end)| {
            (all.iter().map(|r| (r.kind, r.payload.to_vec(), r.offset)).collect::<Vec<_>>(), end)
        });
        assert_eq!(streamed, whole);
    }
    let Ok((records, end)) = log::records(data, start) else { return };
    assert!(end <= data.len());
    let mut state = IndexState::starting_at(header.initial_modseq);
    // A replay without messages refuses the same record and keeps the same headers.
    let mut headers = IndexState::starting_at(header.initial_modseq).without_messages();
    // A replay for a few UIDs (taken from the data) keeps those messages as the full
    // replay has them, and the same headers.
    let wanted: std::collections::BTreeSet<u32> =
        data.chunks_exact(4).take(4).map(|c| log::le32(c, 0) % 64).collect();
    let wanted: Vec<u32> = wanted.into_iter().collect();
    let mut some = IndexState::starting_at(header.initial_modseq)
        .covering(crate::index::state::Coverage::Uids(&wanted));
    for record in &records {
        assert!(record.offset < record.end && record.end <= end);
        let applied = state.apply(record);
        assert_eq!(headers.apply(record), applied);
        assert_eq!(some.apply(record), applied);
        if applied.is_err() {
            break;
        }
        check_index(&state);
        assert_eq!(
            (headers.header, &headers.exts, &headers.keywords, headers.highest_modseq()),
            (state.header, &state.exts, &state.keywords, state.highest_modseq())
        );
        assert_eq!(
            (some.header, &some.exts, &some.keywords, some.highest_modseq()),
            (state.header, &state.exts, &state.keywords, state.highest_modseq())
        );
        let kept: Vec<_> = state.messages.iter().filter(|m| wanted.contains(&m.uid)).collect();
        assert_eq!(some.messages.iter().collect::<Vec<_>>(), kept);
    }
}

/// Records as `(kind, payload, offset)` and where the complete part ends.
type StreamedLog = Result<(Vec<(u32, Vec<u8>, usize)>, usize), crate::index::log::Corrupt>;

/// The records of `data` read by a [`crate::index::log::Stream`] from a temporary file, 7
/// bytes at a time (`None`: no temporary file could be written).
fn streamed_log(data: &[u8], start: usize) -> Option<StreamedLog> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "dsync-rs-fuzz-log.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, data).ok()?;
    let file = std::fs::File::open(&path);
    let _ = std::fs::remove_file(&path);
    let file = file.ok()?;
    let mut stream = crate::index::log::Stream::with_chunk(&file, data.len(), start, 7);
    let mut out = Vec::new();
    loop {
        match stream.next().ok()? {
            Ok(Some(record)) => out.push((record.kind, record.payload.to_vec(), record.offset)),
            Ok(None) => return Some(Ok((out, stream.offset()))),
            Err(corrupt) => return Some(Err(corrupt)),
        }
    }
}

/// `dovecot.index` (a whole file): a snapshot that parses has ascending UIDs below its
/// next UID and only keywords it names.
pub fn index_snapshot(data: &[u8]) {
    // Read without the messages (records checked, not kept), the file says the same.
    let mut reader = data;
    let headers = crate::index::snapshot::parse_from(
        &mut reader,
        data.len(),
        crate::index::state::Coverage::Headers,
    );
    match (&headers, crate::index::snapshot::parse(data)) {
        (Ok(Some(headers)), Ok(Some(full))) => {
            assert!(headers.state.messages.is_empty());
            assert_eq!(
                (headers.state.header, &headers.state.exts, &headers.state.keywords),
                (full.state.header, &full.state.exts, &full.state.keywords)
            );
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (headers, full) => panic!("without messages {headers:?}, whole {full:?}"),
    }
    if let Ok(Some(snapshot)) = crate::index::snapshot::parse(data) {
        check_index(&snapshot.state);
        // Read for a few of its UIDs, it keeps those records as the whole read has them.
        let wanted: Vec<u32> = snapshot.state.messages.iter().step_by(3).map(|m| m.uid).collect();
        let mut reader = data;
        let coverage = crate::index::state::Coverage::Uids(&wanted);
        let some = crate::index::snapshot::parse_from(&mut reader, data.len(), coverage);
        let Ok(Some(some)) = some else { panic!("read for some UIDs: {some:?}") };
        let kept: Vec<_> =
            snapshot.state.messages.iter().filter(|m| wanted.contains(&m.uid)).collect();
        assert_eq!(some.state.messages.iter().collect::<Vec<_>>(), kept);
        for message in snapshot.state.messages.iter() {
            assert!(message.keywords.iter().all(|&k| (k as usize) < snapshot.state.keywords.len()));
        }
    }
}

fn check_index(state: &crate::index::state::IndexState) {
    let uids: Vec<u32> = state.messages.iter().map(|m| m.uid).collect();
    assert!(uids.windows(2).all(|pair| pair[0] < pair[1]), "{uids:?}");
    if let Some(&last) = uids.last() {
        assert!(state.next_uid() > last, "next UID {} not above {last}", state.next_uid());
    }
    let _ = state.highest_modseq();
}

/// `dsync-rs-clean`, our record of an sdbox mail directory's clean stamp: anything but
/// our own line is no record, and ours reads back.
/// The stamp alone, as a Maildir source's kept listing holds it, reads back too.
pub fn clean_stamp(data: &[u8]) {
    use crate::dbox::clean_stamp::{decode, encode};
    if let Some(stamp) = decode(data) {
        assert_eq!(decode(encode(&stamp).as_bytes()), Some(stamp));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(stamp) = crate::DirStamp::from_text(text)
    {
        assert_eq!(crate::DirStamp::from_text(&stamp.to_text()), Some(stamp));
    }
}

/// A dbox message file (`u.<uid>`): parsing never panics; and `data` as a body, written
/// with our headers and metadata, reads back as exactly that body and metadata.
pub fn dbox_file(data: &[u8]) {
    use crate::dbox::file;
    if let Ok(layout) = file::parse_layout(data, data.len() as u64) {
        let start = usize::try_from(layout.metadata_offset()).unwrap_or(usize::MAX);
        if let Some(metadata) = data.get(start..) {
            let _ = file::parse_metadata(metadata);
        }
    }
    let mut written = file::file_header(1_700_000_000);
    written.extend_from_slice(&file::message_header(data.len() as u64));
    written.extend_from_slice(data);
    written.extend_from_slice(&file::metadata(
        1_700_000_000,
        data.len() as u64,
        Some("uidl"),
        Some(3),
        "0123456789abcdef0123456789abcdef",
    ));
    let layout = file::parse_layout(&written, written.len() as u64).expect("our own file");
    let body_start = usize::try_from(layout.body_offset).expect("offset");
    let body_end = usize::try_from(layout.metadata_offset()).expect("offset");
    assert_eq!(&written[body_start..body_end], data);
    let metadata = file::parse_metadata(&written[body_end..]).expect("our own metadata");
    assert_eq!(metadata.pop3_order, Some(3));
    assert_eq!(metadata.guid.as_deref(), Some("0123456789abcdef0123456789abcdef"));
}
