//! Sources whose UIDs are positions (POP3): backups match by UIDL, keep the destination's
//! UIDs for known messages, record UIDL and POP3 order for new ones, and expunge what the
//! source no longer lists; `sync -1` keeps destination-only mail.

use std::collections::BTreeMap;

use dsync_core::memory::{MemoryMessage, MemoryStorage};
use dsync_core::{
    Flags, MailboxName, MessageMeta, Mode, NoObserver, SyncOptions, Uid, UidValidity,
};
use proptest::prelude::*;

/// A POP3 maildrop: messages in order, numbered 1..n, each with its UIDL.
fn maildrop(uidls: &[u32]) -> MemoryStorage {
    let mut storage = MemoryStorage::new().unstable_uids(true);
    let inbox = storage.add_mailbox(&MailboxName::inbox(), UidValidity::MIN);
    for (position, uidl) in uidls.iter().enumerate() {
        let number = Uid::new(u32::try_from(position + 1).expect("small")).expect("non-zero");
        let body = format!("Message-ID: <{uidl}@pop>\r\n\r\nbody {uidl}\r\n").into_bytes();
        let mut meta = MessageMeta::new(number, Flags::default());
        meta.pop3_uidl = Some(format!("UIDL{uidl}"));
        meta.pop3_order = Some(number.get());
        meta.virtual_size = Some(body.len() as u64);
        inbox.messages.insert(number, MemoryMessage { meta, body });
    }
    inbox.uid_next = Uid::new(u32::try_from(uidls.len() + 1).expect("small")).expect("non-zero");
    storage
}

/// UIDL → (destination UID, POP3 order, body) of the destination's INBOX.
fn view(storage: &MemoryStorage) -> BTreeMap<String, (Uid, Option<u32>, Vec<u8>)> {
    storage.mailbox(&MailboxName::inbox()).map_or_else(BTreeMap::new, |m| {
        m.messages
            .values()
            .filter_map(|msg| {
                Some((
                    msg.meta.pop3_uidl.clone()?,
                    (msg.meta.uid, msg.meta.pop3_order, msg.body.clone()),
                ))
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn uidl_backups_keep_uids_and_follow_the_maildrop(
        first in proptest::collection::btree_set(1u32..60, 0..10),
        keep in proptest::collection::vec(any::<bool>(), 10),
        added in proptest::collection::btree_set(60u32..90, 0..4),
        one_way in any::<bool>(),
    ) {
        let first: Vec<u32> = first.into_iter().collect();
        let mode = if one_way { Mode::OneWay } else { Mode::Backup };
        let mut destination = MemoryStorage::with_guids();
        let run = |source: &mut MemoryStorage, destination: &mut MemoryStorage| {
            dsync_core::run(&SyncOptions::new(mode), source, destination, &mut NoObserver).expect("sync")
        };
        run(&mut maildrop(&first), &mut destination);
        let before = view(&destination);
        prop_assert_eq!(before.len(), first.len());
        for (position, uidl) in first.iter().enumerate() {
            let (uid, order, _) = &before[&format!("UIDL{uidl}")];
            prop_assert_eq!(*order, Some(u32::try_from(position + 1).expect("small")));
            prop_assert_eq!(uid.get() as usize, position + 1, "first run: UIDs in POP3 order");
        }

        // Some messages deleted on the server (later numbers shift), some new ones.
        let mut second: Vec<u32> = first.iter().zip(&keep).filter(|(_, k)| **k).map(|(u, _)| *u).collect();
        second.extend(added.iter().copied());
        let report = run(&mut maildrop(&second), &mut destination);
        let after = view(&destination);
        for uidl in &second {
            let key = format!("UIDL{uidl}");
            prop_assert!(after.contains_key(&key), "{key} missing");
            if let Some(old) = before.get(&key) {
                prop_assert_eq!(&after[&key], old, "a known message changed");
            }
        }
        let gone = first.iter().filter(|u| !second.contains(u)).count();
        prop_assert_eq!(after.len(), if one_way { second.len() + gone } else { second.len() });
        prop_assert_eq!(report.totals().saved, added.len() as u64);
        let again = run(&mut maildrop(&second), &mut destination);
        prop_assert!(again.is_noop(), "{:?}", again.mailboxes);
    }
}

/// A server that lists one UIDL for two messages (issue 16 item 11): both are kept, as
/// Dovecot keeps them, also when the second one appears after a run already copied the
/// first (it used to be taken for the copy already there, and never copied), with a
/// warning naming the UIDL.
#[test]
fn a_duplicate_uidl_keeps_both_messages_with_a_warning() {
    let body = |text: &str| format!("Subject: {text}\r\n\r\n{text}\r\n").into_bytes();
    let drop_with = |messages: &[(&str, &str)]| {
        let mut storage = MemoryStorage::new().unstable_uids(true);
        let inbox = storage.add_mailbox(&MailboxName::inbox(), UidValidity::MIN);
        for (position, (uidl, text)) in messages.iter().enumerate() {
            let number = Uid::new(u32::try_from(position + 1).expect("small")).expect("non-zero");
            let mut meta = MessageMeta::new(number, Flags::default());
            meta.pop3_uidl = Some((*uidl).to_owned());
            inbox.messages.insert(number, MemoryMessage { meta, body: body(text) });
        }
        inbox.uid_next =
            Uid::new(u32::try_from(messages.len() + 1).expect("small")).expect("non-zero");
        storage
    };
    let bodies = |storage: &MemoryStorage| -> Vec<Vec<u8>> {
        storage.mailbox(&MailboxName::inbox()).map_or_else(Vec::new, |m| {
            m.messages.values().map(|message| message.body.clone()).collect()
        })
    };
    let mut destination = MemoryStorage::with_guids();
    let options = SyncOptions::new(Mode::Backup);
    let first = dsync_core::run(
        &options,
        &mut drop_with(&[("x", "one")]),
        &mut destination,
        &mut NoObserver,
    )
    .expect("first run");
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);

    let mut source = drop_with(&[("x", "one"), ("y", "other"), ("x", "two")]);
    let second = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver)
        .expect("second run");
    assert_eq!(second.totals().saved, 2);
    assert!(
        second.warnings.iter().any(|w| w.contains("2 messages with the POP3 UIDL \"x\"")),
        "{:?}",
        second.warnings
    );
    assert_eq!(bodies(&destination), [body("one"), body("other"), body("two")]);
    let third = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver)
        .expect("third run");
    assert_eq!(third.totals().saved, 0);
    assert_eq!(bodies(&destination).len(), 3);
}
