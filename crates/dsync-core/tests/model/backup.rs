//! Model-based properties of `backup` on random pairs of accounts (in-memory storages):
//! after a run the destination equals the source as a client sees it; a second run changes
//! nothing; the source is never written; a run interrupted at any write and then re-run
//! ends exactly like an uninterrupted one; UIDs never go down within a UIDVALIDITY.

use std::collections::{BTreeMap, BTreeSet};

use dsync_core::filter::{FlagCondition, MailboxFilter, MailboxPattern, MessageFilter};
use dsync_core::memory::{MemoryMessage, MemoryStorage};
use dsync_core::{
    Flags, MailboxName, MessageMeta, Mode, NoObserver, SyncOptions, SystemFlags, Uid, UidValidity,
};
use proptest::prelude::*;

use super::support::name;

const NAMES: &[&str] = &["INBOX", "A", "A/B", "A/B/C", "B", "INBOX/Sub", "Ünïcode"];

/// A generated message: UID gap before it, flag bits, keyword choice, body variant.
#[derive(Debug, Clone)]
struct MessageSpec {
    gap: u32,
    flags: u8,
    keyword: Option<u8>,
    variant: u8,
}

#[derive(Debug, Clone)]
struct MailboxSpec {
    uid_validity: u32,
    messages: Vec<MessageSpec>,
    uid_next_extra: u32,
}

#[derive(Debug, Clone)]
struct AccountSpec {
    mailboxes: BTreeMap<usize, MailboxSpec>,
    subscriptions: BTreeSet<usize>,
}

fn message_spec() -> impl Strategy<Value = MessageSpec> {
    (0u32..3, 0u8..32, proptest::option::of(0u8..3), 0u8..2)
        .prop_map(|(gap, flags, keyword, variant)| MessageSpec { gap, flags, keyword, variant })
}

fn mailbox_spec() -> impl Strategy<Value = MailboxSpec> {
    (1u32..3, proptest::collection::vec(message_spec(), 0..6), 0u32..3).prop_map(
        |(uid_validity, messages, uid_next_extra)| MailboxSpec {
            uid_validity,
            messages,
            uid_next_extra,
        },
    )
}

fn account_spec() -> impl Strategy<Value = AccountSpec> {
    (
        proptest::collection::btree_map(1..NAMES.len(), mailbox_spec(), 0..NAMES.len()),
        mailbox_spec(),
        proptest::collection::btree_set(0..NAMES.len() + 1, 0..4),
    )
        .prop_map(|(mut mailboxes, inbox, subscriptions)| {
            mailboxes.insert(0, inbox); // every account has an INBOX
            AccountSpec { mailboxes, subscriptions }
        })
}

/// Builds a storage. Message GUIDs identify the body, so a destination built independently
/// with the same UIDVALIDITY can be told apart from the source by GUID, as Dovecot does.
fn build(spec: &AccountSpec, with_guids: bool) -> MemoryStorage {
    // Message GUIDs decide identity only where both sides declare them comparable (two
    // Dovecot storages); the model's GUIDs are.
    let mut storage = MemoryStorage::with_guids().comparable_message_guids(with_guids);
    for (&index, mailbox) in &spec.mailboxes {
        let mailbox_name = name(NAMES[index]);
        let stored = storage
            .add_mailbox(&mailbox_name, UidValidity::new(mailbox.uid_validity).expect("non-zero"));
        let mut uid = 0;
        for message in &mailbox.messages {
            uid += 1 + message.gap;
            let body =
                format!("Subject: {} {uid} v{}\r\n\r\nbody\r\n", NAMES[index], message.variant)
                    .into_bytes();
            let mut flags = Flags {
                system: SystemFlags::from_bits_truncate(message.flags),
                keywords: BTreeSet::new(),
            };
            if let Some(k) = message.keyword {
                flags.keywords.insert(format!("$Label{k}"));
            }
            let uid_value = Uid::new(uid).expect("non-zero");
            let mut meta = MessageMeta::new(uid_value, flags);
            meta.received = Some(1_700_000_000 + i64::from(uid));
            meta.virtual_size = Some(body.len() as u64);
            if with_guids {
                meta.guid = Some(format!("{}-{uid}-{}", NAMES[index], message.variant));
            }
            stored.messages.insert(uid_value, MemoryMessage { meta, body });
        }
        stored.uid_next = Uid::new(uid + 1 + mailbox.uid_next_extra).expect("non-zero");
    }
    for &index in &spec.subscriptions {
        storage.subscribe(&name(NAMES.get(index).copied().unwrap_or("Ghost")));
    }
    storage
}

/// What a mail client caches about an account.
type View = (
    BTreeMap<MailboxName, (u32, u32, Vec<(u32, Flags, Option<i64>, Vec<u8>)>)>,
    BTreeSet<MailboxName>,
);

fn view(storage: &MemoryStorage) -> View {
    let mailboxes = storage
        .all_mailboxes()
        .iter()
        .filter(|(_, m)| m.selectable)
        .map(|(name, m)| {
            let messages = m
                .messages
                .values()
                .map(|msg| {
                    (
                        msg.meta.uid.get(),
                        msg.meta.flags.clone(),
                        msg.meta.received,
                        msg.body.clone(),
                    )
                })
                .collect();
            // A destination rebuilt under a UIDVALIDITY of its own (it had given out UIDs
            // under the source's) holds the source's UIDs: shown as the source's.
            let uid_validity = m.source_uid_validity.unwrap_or(m.uid_validity);
            (name.clone(), (uid_validity.get(), m.uid_next.get(), messages))
        })
        .collect();
    (mailboxes, storage.subscribed().clone())
}

fn backup(
    source: &mut MemoryStorage,
    destination: &mut MemoryStorage,
    commit_interval: u32,
) -> Result<dsync_core::Report, dsync_core::Failed> {
    let options = SyncOptions::new(Mode::Backup).commit_interval(commit_interval);
    dsync_core::run(&options, source, destination, &mut NoObserver)
}

/// A destination derived from the source by the kinds of drift a real one has: messages
/// lost or added (at new UIDs), flags changed, UIDNEXT raised, mailboxes missing or extra,
/// subscriptions changed. Message identity stays tied to UIDs, as on an IMAP source.
fn drift(source: &MemoryStorage, seed: &[u8]) -> MemoryStorage {
    let mut destination = source.clone();
    for (step, &byte) in seed.iter().enumerate() {
        let names: Vec<MailboxName> = destination.all_mailboxes().keys().cloned().collect();
        let Some(target) = names.get(usize::from(byte) % names.len().max(1)).cloned() else {
            continue;
        };
        let mailbox = destination.mailbox_mut(&target).expect("exists");
        let uids: Vec<Uid> = mailbox.messages.keys().copied().collect();
        match (byte >> 4) % 7 {
            0 if !uids.is_empty() => mailbox.expunge(uids[step % uids.len()]),
            1 => {
                let body = format!("Subject: new {step} {byte}\r\n\r\n").into_bytes();
                let uid = mailbox.append(&body, Flags::default(), Some(1));
                // Every message has an identity (here a stand-in for Dovecot's header hash).
                if let Some(message) = mailbox.messages.get_mut(&uid) {
                    message.meta.guid = Some(String::from_utf8_lossy(&body).into_owned());
                }
            }
            2 if !uids.is_empty() => {
                let flags = Flags {
                    system: SystemFlags::from_bits_truncate(byte),
                    keywords: BTreeSet::new(),
                };
                mailbox.set_flags(uids[step % uids.len()], flags);
            }
            3 => mailbox.uid_next = Uid::new(mailbox.uid_next.get() + 2).expect("non-zero"),
            4 if !target.is_inbox() => destination.remove_mailbox(&target),
            5 => {
                let extra = name(NAMES[usize::from(byte) % NAMES.len()]);
                if destination.mailbox(&extra).is_none() {
                    destination.add_mailbox(&extra, UidValidity::new(3).expect("non-zero"));
                }
            }
            _ => {
                let subscription = name(
                    NAMES.get(usize::from(byte) % (NAMES.len() + 1)).copied().unwrap_or("Ghost"),
                );
                if destination.subscribed().contains(&subscription) {
                    destination.unsubscribe(&subscription);
                } else {
                    destination.subscribe(&subscription);
                }
            }
        }
    }
    destination
}

/// Each selectable mailbox's UIDVALIDITY and UIDNEXT, as stored.
fn uid_counters(storage: &MemoryStorage) -> BTreeMap<MailboxName, (u32, u32)> {
    storage
        .all_mailboxes()
        .iter()
        .filter(|(_, m)| m.selectable)
        .map(|(name, m)| (name.clone(), (m.uid_validity.get(), m.uid_next.get())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn backup_makes_destination_equal_and_second_run_is_noop(
        source_spec in account_spec(),
        // An independent destination (a different history, told apart by message GUIDs as
        // Dovecot does), or `None`: one that drifted away from the source.
        independent in proptest::option::of(account_spec()),
        source_seed in proptest::collection::vec(any::<u8>(), 0..8),
        seed in proptest::collection::vec(any::<u8>(), 0..8),
        commit_interval in 1u32..4,
    ) {
        // Otherwise both sides evolved from a common ancestor (the last backup): the
        // source by new mail, expunges and flag changes, the destination by drift.
        let ancestor = build(&source_spec, true);
        let mut source = drift(&ancestor, &source_seed);
        let mut destination = match &independent {
            Some(spec) => build(spec, true),
            None => drift(&ancestor, &seed),
        };
        let source_before = view(&source);

        let report = backup(&mut source, &mut destination, commit_interval).expect("backup succeeds");
        prop_assert!(report.failures.is_empty(), "{:?}", report.failures);
        prop_assert_eq!(view(&destination), source_before.clone());
        prop_assert_eq!(view(&source), source_before, "the source was written");

        let again = backup(&mut source, &mut destination, commit_interval).expect("second backup succeeds");
        prop_assert!(again.is_noop(), "second run did something: {:?}", again);
    }

    #[test]
    fn interrupted_backup_resumes_to_the_same_result(
        source_spec in account_spec(),
        source_seed in proptest::collection::vec(any::<u8>(), 0..8),
        seed in proptest::collection::vec(any::<u8>(), 0..8),
        fail_after in 0u64..40,
        commit_interval in 1u32..4,
    ) {
        let ancestor = build(&source_spec, true);
        let mut source = drift(&ancestor, &source_seed);
        let mut destination = drift(&ancestor, &seed);
        let before = uid_counters(&destination);

        destination.fail_after(Some(fail_after));
        let interrupted = backup(&mut source, &mut destination, commit_interval);
        destination.fail_after(None);
        if interrupted.is_err() {
            // Whatever was committed is a consistent state: no UIDNEXT went down within a
            // UIDVALIDITY (not even in a rebuilt mailbox: a rebuild that would lower it
            // takes a new UIDVALIDITY), and nothing is half-saved.
            for (mailbox, (uid_validity, uid_next)) in uid_counters(&destination) {
                if let Some((old_validity, old_next)) = before.get(&mailbox)
                    && *old_validity == uid_validity
                {
                    prop_assert!(uid_next >= *old_next, "{mailbox}: UIDNEXT went down");
                }
            }
        }
        backup(&mut source, &mut destination, commit_interval).expect("resumed backup succeeds");
        prop_assert_eq!(view(&destination), view(&source));
        let again = backup(&mut source, &mut destination, commit_interval).expect("third run");
        prop_assert!(again.is_noop());
    }
}

fn mailbox_filter() -> impl Strategy<Value = MailboxFilter> {
    let include = proptest::sample::subsequence(vec!["*", "A*", "A/%", "INBOX", "B"], 0..2);
    let exclude = proptest::sample::subsequence(vec!["B", "A/B/C", "INBOX/*", "Ü*"], 0..3);
    (include, exclude).prop_map(|(include, exclude)| MailboxFilter {
        include: include.into_iter().map(|p| MailboxPattern::parse(p).expect("valid")).collect(),
        exclude: exclude.into_iter().map(|p| MailboxPattern::parse(p).expect("valid")).collect(),
    })
}

fn message_filter() -> impl Strategy<Value = MessageFilter> {
    let flag = prop_oneof![
        Just(None),
        Just(Some(FlagCondition::With("\\Seen".into()))),
        Just(Some(FlagCondition::Without("\\Seen".into()))),
        Just(Some(FlagCondition::With("$Label1".into()))),
    ];
    (proptest::option::of(1_700_000_001i64..1_700_000_006), proptest::option::of(28u64..45), flag)
        .prop_map(|(received_since, max_size, flag)| MessageFilter {
            received_since,
            max_size,
            flag,
            ..MessageFilter::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Dovecot's known hazard: a filtered backup deleting what it was told not to look at.
    #[test]
    fn filtered_backup_never_touches_anything_outside_the_filters(
        source_spec in account_spec(),
        source_seed in proptest::collection::vec(any::<u8>(), 0..8),
        seed in proptest::collection::vec(any::<u8>(), 0..8),
        mailboxes in mailbox_filter(),
        messages in message_filter(),
    ) {
        let ancestor = build(&source_spec, true);
        let mut source = drift(&ancestor, &source_seed);
        let mut destination = drift(&ancestor, &seed);
        let before = destination.clone();
        let options = SyncOptions::new(Mode::Backup).mailbox_filter(mailboxes.clone()).message_filter(messages.clone());
        let report = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver).expect("filtered backup");

        for (name, old) in before.all_mailboxes().iter().filter(|(_, m)| m.selectable) {
            let Some(new) = destination.mailbox(name) else {
                prop_assert!(mailboxes.wants(name, &[]), "{name} deleted outside the mailbox filter");
                continue;
            };
            if !mailboxes.wants(name, &[]) {
                prop_assert_eq!(old, new, "{} changed outside the mailbox filter", name);
                continue;
            }
            if new.uid_validity == old.uid_validity {
                // Outside the filter: the destination copy is, and the source copy (if the
                // source still has one) is too. An in-scope source copy may re-flag it.
                let source_copy = |uid: &Uid| source.mailbox(name).and_then(|m| m.messages.get(uid));
                let outside = |(uid, m): &(&Uid, &MemoryMessage)| {
                    !messages.wants(&m.meta) && !source_copy(uid).is_some_and(|s| messages.wants(&s.meta))
                };
                for (uid, message) in old.messages.iter().filter(outside) {
                    prop_assert_eq!(new.messages.get(uid), Some(message), "{}: message {} outside the filter changed", name, uid);
                }
            } else {
                prop_assert!(messages.is_everything(), "{name} rebuilt by a filtered run");
            }
        }
        for subscription in before.subscribed().symmetric_difference(destination.subscribed()) {
            prop_assert!(mailboxes.wants(subscription, &[]), "subscription {subscription} changed outside the filter");
        }
        // Inside the filters, every wanted source message is there with its flags, unless
        // the run reported it as skipped or the mailbox as blocked.
        let blocked: BTreeSet<MailboxName> = report.failures.iter().filter_map(|f| f.mailbox.clone()).collect();
        let skipped: u64 = report.mailboxes.iter().map(|m| m.skipped).sum();
        for (name, wanted) in source.all_mailboxes().iter().filter(|(n, m)| m.selectable && mailboxes.wants(n, &[])) {
            if blocked.contains(name) || skipped > 0 {
                continue;
            }
            let copy = destination.mailbox(name).expect("wanted mailbox exists on the destination");
            for (uid, message) in wanted.messages.iter().filter(|(_, m)| messages.wants(&m.meta)) {
                prop_assert_eq!(copy.messages.get(uid).map(|m| (&m.meta.flags, &m.body)), Some((&message.meta.flags, &message.body)));
            }
        }
    }
}

#[test]
fn dry_run_reports_without_writing() {
    let spec = AccountSpec {
        mailboxes: BTreeMap::from([(
            0,
            MailboxSpec {
                uid_validity: 1,
                messages: vec![MessageSpec { gap: 0, flags: 1, keyword: None, variant: 0 }],
                uid_next_extra: 0,
            },
        )]),
        subscriptions: BTreeSet::from([0]),
    };
    let mut source = build(&spec, false);
    let mut destination = MemoryStorage::with_guids();
    let options = SyncOptions::new(Mode::Backup).dry_run(true);
    let report =
        dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver).expect("dry run");
    assert!(report.dry_run);
    assert_eq!(report.totals().saved, 1);
    assert_eq!(report.subscribed, 1);
    assert!(destination.all_mailboxes().is_empty() && destination.subscribed().is_empty());
}

#[test]
fn inbox_rebuild_keeps_inbox_and_takes_source_identity() {
    let mut source = MemoryStorage::new();
    let inbox = MailboxName::inbox();
    source.add_mailbox(&inbox, UidValidity::new(5).expect("non-zero")).append(
        b"a\r\n",
        Flags::default(),
        None,
    );
    let mut destination = MemoryStorage::with_guids();
    let stored = destination.add_mailbox(&inbox, UidValidity::new(9).expect("non-zero"));
    stored.append(b"other\r\n", Flags::default(), None);
    stored.append(b"other2\r\n", Flags::default(), None);

    let report = backup(&mut source, &mut destination, 100).expect("backup");
    assert!(matches!(report.mailboxes[0].action, dsync_core::MailboxAction::Recreate(_)));
    assert_eq!(view(&destination), view(&source));
}

/// Without GUIDs or state, messages under one UID on both sides are told apart by their
/// header hashes: one message that differs deep in a large mailbox is found, and the
/// destination rebuilt from the source.
#[test]
fn a_different_message_deep_in_a_large_mailbox_is_found_by_its_header_hash() {
    let inbox = MailboxName::inbox();
    let body = |n: u32, text: &str| {
        format!("Message-ID: <{n}.{text}@example.org>\r\nSubject: {n}\r\n\r\n{text}\r\n")
            .into_bytes()
    };
    let mut source = MemoryStorage::new();
    let stored = source.add_mailbox(&inbox, UidValidity::new(5).expect("non-zero"));
    for n in 1..=9_000 {
        stored.append(&body(n, "same"), Flags::default(), Some(1));
    }
    let mut destination = source.clone();
    let deep = Uid::new(8_500).expect("non-zero");
    let replaced = destination.mailbox_mut(&inbox).and_then(|m| m.messages.get_mut(&deep));
    replaced.expect("UID 8500").body = body(8_500, "other");

    let report = backup(&mut source, &mut destination, 1_000).expect("backup");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let bodies = |storage: &MemoryStorage| -> Vec<Vec<u8>> {
        storage.mailbox(&inbox).expect("INBOX").messages.values().map(|m| m.body.clone()).collect()
    };
    assert_eq!(bodies(&destination), bodies(&source));
}
