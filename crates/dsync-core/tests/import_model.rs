//! `import`: the source's messages arrive under the parent folder with their flags and
//! dates, new UIDs; what the destination held stays; importing again adds nothing.

use std::collections::BTreeSet;

use dsync_core::filter::{FlagCondition, MessageFilter};
use dsync_core::memory::MemoryStorage;
use dsync_core::{Flags, MailboxName, Mode, NoObserver, SyncOptions, UidValidity};
use proptest::prelude::*;

fn body(id: u32) -> Vec<u8> {
    format!("Date: d{id}\r\nMessage-ID: <{id}@import>\r\n\r\nx\r\n").into_bytes()
}

fn account(mailboxes: &[(&str, Vec<(u32, bool)>)]) -> MemoryStorage {
    let mut storage = MemoryStorage::with_guids();
    for (path, messages) in mailboxes {
        let name = MailboxName::split(path, Some('/')).expect("valid");
        let mailbox = storage.add_mailbox(&name, UidValidity::new(77).expect("non-zero"));
        for &(id, seen) in messages {
            let flags = if seen { Flags::from_imap_names(["\\Seen"]) } else { Flags::default() };
            mailbox.append(&body(id), flags, Some(1_600_000_000 + i64::from(id)));
        }
    }
    storage
}

/// (id, flags, received) of every message of `name`.
fn contents(storage: &MemoryStorage, path: &str) -> Vec<(String, Flags, Option<i64>)> {
    let name = MailboxName::split(path, Some('/')).expect("valid");
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
    let parent = MailboxName::new(["Imported"]).expect("valid");
    let options = SyncOptions::new(Mode::Import).import_parent(Some(parent)).message_filter(filter);
    dsync_core::run(&options, source, destination, &mut NoObserver).expect("import succeeds")
}

proptest! {
    #[test]
    fn import_twice_adds_each_wanted_message_once(
        inbox in proptest::collection::vec((1u32..40, any::<bool>()), 0..8),
        archive in proptest::collection::vec((1u32..40, any::<bool>()), 0..8),
        already in proptest::collection::vec((1u32..40, any::<bool>()), 0..5),
        only_seen in any::<bool>(),
    ) {
        let mut source = account(&[("INBOX", inbox.clone()), ("Archive", archive.clone())]);
        let mut destination = account(&[("INBOX", vec![(99, false)]), ("Imported/INBOX", already.clone())]);
        let untouched = contents(&destination, "INBOX");
        let filter = if only_seen {
            MessageFilter { flag: Some(FlagCondition::With("\\Seen".into())), ..MessageFilter::default() }
        } else {
            MessageFilter::default()
        };

        import(&mut source, &mut destination, filter.clone());
        let second = import(&mut source, &mut destination, filter);
        prop_assert_eq!(second.totals().saved, 0, "the second import copied again");
        prop_assert_eq!(contents(&destination, "INBOX"), untouched);

        for (path, messages, before) in [("INBOX", &inbox, &already), ("Archive", &archive, &Vec::new())] {
            let got = contents(&destination, &format!("Imported/{path}"));
            let wanted: Vec<_> = messages.iter().filter(|(_, seen)| *seen || !only_seen).collect();
            // Each wanted id is there at least once; no id more often than the source (or
            // what was there before) had it.
            for (id, seen) in &wanted {
                let expected_flags = if *seen { Flags::from_imap_names(["\\Seen"]) } else { Flags::default() };
                let text = String::from_utf8_lossy(&body(*id)).into_owned();
                prop_assert!(got.iter().any(|(b, f, r)| *b == text && (*f == expected_flags || before.iter().any(|(i, _)| i == id)) && *r == Some(1_600_000_000 + i64::from(*id))),
                    "{path}: message {id} missing");
            }
            let ids: BTreeSet<&String> = got.iter().map(|(b, _, _)| b).collect();
            for text in ids {
                let copies = got.iter().filter(|(b, _, _)| b == text).count();
                let in_source = wanted.iter().filter(|(id, _)| String::from_utf8_lossy(&body(*id)) == *text).count();
                let were_there = before.iter().filter(|(id, _)| String::from_utf8_lossy(&body(*id)) == *text).count();
                prop_assert_eq!(copies, in_source.max(were_there), "{}: copies of {}", path, text);
            }
        }
    }
}
