//! `import`: the source's messages arrive under the parent folder with their flags and
//! dates, new UIDs; what the destination held stays; importing again adds nothing.

use std::collections::BTreeSet;

use dsync_core::filter::{FlagCondition, MessageFilter};
use dsync_core::memory::MemoryStorage;
use dsync_core::query::SearchQuery;
use dsync_core::{ErrorKind, Flags, MailboxName, Mode, NoObserver, SyncOptions, UidValidity};
use proptest::prelude::*;

use super::support::{body, name};

fn account(mailboxes: &[(&str, Vec<(u32, bool)>)]) -> MemoryStorage {
    let mut storage = MemoryStorage::with_guids();
    for (path, messages) in mailboxes {
        let name = name(path);
        let mailbox = storage.add_mailbox(&name, UidValidity::new(77).expect("non-zero"));
        for &(id, seen) in messages {
            let flags = if seen { Flags::from_imap_names(["\\Seen"]) } else { Flags::default() };
            mailbox.append(&body(id, "import"), flags, Some(1_600_000_000 + i64::from(id)));
        }
    }
    storage
}

/// (id, flags, received) of every message of `name`.
fn contents(storage: &MemoryStorage, path: &str) -> Vec<(String, Flags, Option<i64>)> {
    let name = name(path);
    storage
        .mailbox(&name)
        .map(|m| {
            m.messages
                .values()
                .map(|msg| {
                    (
                        String::from_utf8_lossy(&msg.body).into_owned(),
                        msg.meta.flags.clone(),
                        msg.meta.received,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn import(
    source: &mut MemoryStorage,
    destination: &mut MemoryStorage,
    filter: MessageFilter,
) -> dsync_core::Report {
    import_query(source, destination, filter, None)
}

fn import_query(
    source: &mut MemoryStorage,
    destination: &mut MemoryStorage,
    filter: MessageFilter,
    query: Option<&str>,
) -> dsync_core::Report {
    let parent = MailboxName::new(["Imported"]).expect("valid");
    let search = query.map(|text| {
        let words: Vec<&str> = text.split_whitespace().collect();
        SearchQuery::parse(&words, 0).expect("valid query").query
    });
    let options = SyncOptions::new(Mode::Import)
        .import_parent(Some(parent))
        .message_filter(filter)
        .search(search)
        .subscribe_imported(true);
    dsync_core::run(&options, source, destination, &mut NoObserver).expect("import succeeds")
}

fn names(storage: &MemoryStorage) -> Vec<String> {
    storage.all_mailboxes().keys().map(ToString::to_string).collect()
}

#[test]
fn a_query_selects_mailboxes_and_messages_and_creates_only_folders_with_matches() {
    let mut source = account(&[
        ("INBOX", vec![(1, true), (2, false), (3, true)]),
        ("Archive", vec![(4, false)]),
        ("Archive/2023", vec![(5, true)]),
        ("Empty", vec![]),
    ]);
    let mut destination = account(&[("INBOX", vec![])]);
    let report = import_query(
        &mut source,
        &mut destination,
        MessageFilter::default(),
        Some("( mailbox Arch* SEEN ) OR ( mailbox INBOX UNSEEN )"),
    );
    // Archive's only message is unseen: no Imported/Archive.
    assert_eq!(report.totals().saved, 2, "{report:?}");
    assert_eq!(names(&destination), ["INBOX", "Imported/Archive/2023", "Imported/INBOX"]);
    let inbox: Vec<_> =
        contents(&destination, "Imported/INBOX").into_iter().map(|(b, ..)| b).collect();
    assert_eq!(inbox, [String::from_utf8_lossy(&body(2, "import")).into_owned()]);
    // Subscribed: the folders imported into, not the parent.
    let subscribed: Vec<String> =
        destination.subscribed().iter().map(ToString::to_string).collect();
    assert_eq!(subscribed, ["Imported/Archive/2023", "Imported/INBOX"]);

    // Nothing matches: no folder is created, nothing subscribed.
    let mut empty = account(&[("INBOX", vec![])]);
    let report =
        import_query(&mut source, &mut empty, MessageFilter::default(), Some("KEYWORD none"));
    assert_eq!(report.totals().saved, 0);
    assert_eq!(names(&empty), ["INBOX"]);
    assert!(empty.subscribed().is_empty());
    // Not even without a query: an empty folder has nothing to import.
    let mut all = account(&[("INBOX", vec![])]);
    import(&mut source, &mut all, MessageFilter::default());
    assert!(!names(&all).contains(&"Imported/Empty".to_owned()), "{:?}", names(&all));
}

#[test]
fn a_named_mailbox_the_source_lacks_fails_like_doveadm_and_the_rest_is_imported() {
    let mut source = account(&[("INBOX", vec![(1, true)]), ("Sent", vec![(2, true)])]);
    let mut destination = account(&[("INBOX", vec![])]);
    let report =
        import_query(&mut source, &mut destination, MessageFilter::default(), Some("mailbox Nope"));
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].kind(), ErrorKind::NotFound);
    assert_eq!(report.exit_code(), 68);
    // With an OR the names are not opened directly: nothing is missing.
    let report = import_query(
        &mut source,
        &mut destination,
        MessageFilter::default(),
        Some("mailbox Nope OR mailbox sent"),
    );
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.totals().saved, 0, "names are case-sensitive but for INBOX");
    let report = import_query(
        &mut source,
        &mut destination,
        MessageFilter::default(),
        Some("mailbox inbox"),
    );
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.totals().saved, 1);
}

proptest! {
    #[test]
    fn import_twice_adds_each_wanted_message_once(
        inbox in proptest::collection::vec((1u32..40, any::<bool>()), 0..8),
        archive in proptest::collection::vec((1u32..40, any::<bool>()), 0..8),
        already in proptest::collection::vec((1u32..40, any::<bool>()), 0..5),
        only_seen in any::<bool>(),
        as_query in any::<bool>(),
    ) {
        let mut source = account(&[("INBOX", inbox.clone()), ("Archive", archive.clone())]);
        let mut destination = account(&[("INBOX", vec![(99, false)]), ("Imported/INBOX", already.clone())]);
        let untouched = contents(&destination, "INBOX");
        // Only \Seen messages: by -O or by the search query.
        let (filter, query) = match (only_seen, as_query) {
            (true, false) => (MessageFilter { flag: Some(FlagCondition::With("\\Seen".into())), ..MessageFilter::default() }, None),
            (true, true) => (MessageFilter::default(), Some("SEEN")),
            (false, true) => (MessageFilter::default(), Some("ALL")),
            (false, false) => (MessageFilter::default(), None),
        };

        import_query(&mut source, &mut destination, filter.clone(), query);
        let second = import_query(&mut source, &mut destination, filter, query);
        prop_assert_eq!(second.totals().saved, 0, "the second import copied again");
        prop_assert_eq!(contents(&destination, "INBOX"), untouched);

        for (path, messages, before) in [("INBOX", &inbox, &already), ("Archive", &archive, &Vec::new())] {
            let got = contents(&destination, &format!("Imported/{path}"));
            let wanted: Vec<_> = messages.iter().filter(|(_, seen)| *seen || !only_seen).collect();
            // Each wanted id is there at least once; no id more often than the source (or
            // what was there before) had it.
            for (id, seen) in &wanted {
                let expected_flags = if *seen { Flags::from_imap_names(["\\Seen"]) } else { Flags::default() };
                let text = String::from_utf8_lossy(&body(*id, "import")).into_owned();
                prop_assert!(got.iter().any(|(b, f, r)| *b == text && (*f == expected_flags || before.iter().any(|(i, _)| i == id)) && *r == Some(1_600_000_000 + i64::from(*id))),
                    "{path}: message {id} missing");
            }
            let ids: BTreeSet<&String> = got.iter().map(|(b, _, _)| b).collect();
            for text in ids {
                let copies = got.iter().filter(|(b, _, _)| b == text).count();
                let in_source = wanted.iter().filter(|(id, _)| String::from_utf8_lossy(&body(*id, "import")) == *text).count();
                let were_there = before.iter().filter(|(id, _)| String::from_utf8_lossy(&body(*id, "import")) == *text).count();
                prop_assert_eq!(copies, in_source.max(were_there), "{}: copies of {}", path, text);
            }
        }
    }
}
