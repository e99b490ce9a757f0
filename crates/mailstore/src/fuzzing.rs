//! Entry points for the fuzz targets in `fuzz/` and the corpus replay tests. Each one must
//! never panic, whatever the input.

use crate::maildir::{filename, folders, journal, keywords::KeywordTable, uidlist::Uidlist};

/// `dovecot-uidlist` parser; a parsed file must survive write → parse unchanged.
pub fn uidlist(data: &[u8]) {
    if let Ok(Some(list)) = Uidlist::parse(data) {
        let again = Uidlist::parse(&list.to_bytes());
        let Ok(Some(again)) = again else { panic!("rewritten uidlist does not parse: {again:?}") };
        assert_eq!(
            again.records,
            list.records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.filename = filename::base(&r.filename).to_string();
                    r
                })
                .collect::<Vec<_>>()
        );
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
/// records (0 when the file is empty or broken).
pub fn uidlist_parse(data: &[u8]) -> usize {
    match Uidlist::parse(data) {
        Ok(Some(list)) => list.records.len(),
        _ => 0,
    }
}
