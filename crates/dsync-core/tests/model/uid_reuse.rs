//! The UID rule of `backup` across any sequence of runs: a destination mailbox never lets a
//! UID name two different messages under one UIDVALIDITY, whatever mail clients append to
//! it between runs, whatever the source does (new mail, expunges, a new UIDVALIDITY), and
//! whether or not a run remembers the previous one's state or is interrupted. A client that
//! watches the destination after every step records each (UIDVALIDITY, UID) → message it
//! sees; seeing another message under a pair it saw before is the bug (issue 16 item 2:
//! Dovecot's backup recreates a mailbox that is ahead of its source under the same
//! UIDVALIDITY, and the next APPEND gets a UID that already named another message).
//!
//! And the runs converge: once nobody writes, a backup leaves the destination holding the
//! source's messages under the source's UIDs and a second run changes nothing.

use std::collections::BTreeMap;

use dsync_core::memory::{MemoryMailbox, MemoryStorage};
use dsync_core::state::SyncState;
use dsync_core::{Flags, MailboxName, Mode, NoObserver, SyncOptions, Uid, UidValidity};
use proptest::prelude::*;

use super::support::{body, name};

const NAMES: &[&str] = &["INBOX", "A", "A/B"];

/// One thing that happens between (or as) runs.
#[derive(Debug, Clone)]
enum Step {
    /// New mail on the source.
    SourceAppend(usize),
    /// The source expunges its `n`-th message.
    SourceExpunge(usize, usize),
    /// The source mailbox starts over under a higher UIDVALIDITY (its messages renumbered).
    SourceNewUidValidity(usize),
    /// A mail client appends to the destination (the new server gets mail before the
    /// switch-over).
    ClientAppend(usize),
    /// A mail client expunges the destination's `n`-th message.
    ClientExpunge(usize, usize),
    /// A backup, with the state of the previous run or (`-f`, a lost state file) without,
    /// interrupted after `fail_after` writes when given.
    Backup { keep_state: bool, fail_after: Option<u64> },
}

fn mailbox_at(index: usize) -> MailboxName {
    name(NAMES[index % NAMES.len()])
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..NAMES.len()).prop_map(Step::SourceAppend),
        1 => (0..NAMES.len(), 0usize..4).prop_map(|(m, n)| Step::SourceExpunge(m, n)),
        1 => (0..NAMES.len()).prop_map(Step::SourceNewUidValidity),
        3 => (0..NAMES.len()).prop_map(Step::ClientAppend),
        1 => (0..NAMES.len(), 0usize..4).prop_map(|(m, n)| Step::ClientExpunge(m, n)),
        4 => (any::<bool>(), proptest::option::of(0u64..12))
            .prop_map(|(keep_state, fail_after)| Step::Backup { keep_state, fail_after }),
    ]
}

/// What a client watching the destination learnt: per mailbox, UIDVALIDITY and UID, the
/// message body it saw there.
#[derive(Default)]
struct Client {
    seen: BTreeMap<(MailboxName, u32, u32), String>,
}

impl Client {
    /// Looks at every message of `destination`; a UID that names another message than
    /// before under the same UIDVALIDITY is an error.
    fn watch(&mut self, destination: &MemoryStorage, after: &str) -> Result<(), TestCaseError> {
        for (name, mailbox) in destination.all_mailboxes().iter().filter(|(_, m)| m.selectable) {
            for (uid, message) in &mailbox.messages {
                let key = (name.clone(), mailbox.uid_validity.get(), uid.get());
                let text = String::from_utf8_lossy(&message.body).into_owned();
                match self.seen.get(&key) {
                    Some(body) => prop_assert_eq!(
                        body,
                        &text,
                        "{} UIDVALIDITY {} UID {} names another message after {}",
                        name,
                        key.1,
                        uid,
                        after
                    ),
                    None => {
                        self.seen.insert(key, text);
                    }
                }
            }
        }
        Ok(())
    }
}

fn mailbox_mut(storage: &mut MemoryStorage, index: usize) -> &mut MemoryMailbox {
    let mailbox = mailbox_at(index);
    if storage.mailbox(&mailbox).is_none() {
        storage.add_mailbox(
            &mailbox,
            UidValidity::new(1000 + u32::try_from(index).expect("small")).expect("non-zero"),
        );
    }
    storage.mailbox_mut(&mailbox).expect("just added")
}

fn nth_uid(mailbox: &MemoryMailbox, n: usize) -> Option<Uid> {
    let uids: Vec<Uid> = mailbox.messages.keys().copied().collect();
    (!uids.is_empty()).then(|| uids[n % uids.len()])
}

/// The destination as the source should see it: UIDVALIDITY (the source's it stands for),
/// UIDs and bodies.
type View = BTreeMap<MailboxName, (u32, Vec<(u32, Vec<u8>)>)>;

fn view(storage: &MemoryStorage) -> View {
    storage
        .all_mailboxes()
        .iter()
        .filter(|(_, m)| m.selectable)
        .map(|(name, m)| {
            let uid_validity = m.source_uid_validity.unwrap_or(m.uid_validity).get();
            let messages = m.messages.iter().map(|(u, msg)| (u.get(), msg.body.clone())).collect();
            (name.clone(), (uid_validity, messages))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_uid_names_two_messages_under_one_uid_validity(
        initial in proptest::collection::vec(0..NAMES.len(), 0..6),
        steps in proptest::collection::vec(step(), 1..25),
        source_guids in any::<bool>(),
    ) {
        // The source like an IMAP server (no GUIDs) or like a Dovecot Maildir; the
        // destination keeps mailbox GUIDs, as a Maildir does.
        let mut source =
            if source_guids { MemoryStorage::with_guids() } else { MemoryStorage::new() };
        let mut destination = MemoryStorage::with_guids();
        let mut next_id = 0u32;
        mailbox_mut(&mut source, 0);
        for index in initial {
            next_id += 1;
            mailbox_mut(&mut source, index).append(&body(next_id, "source"), Flags::default(), Some(1));
        }
        let mut client = Client::default();
        let mut state: Option<SyncState> = None;

        for (number, step) in steps.iter().enumerate() {
            let after = format!("step {number} {step:?}");
            match step {
                Step::SourceAppend(index) => {
                    next_id += 1;
                    mailbox_mut(&mut source, *index).append(&body(next_id, "source"), Flags::default(), Some(1));
                }
                Step::SourceExpunge(index, n) => {
                    let mailbox = mailbox_mut(&mut source, *index);
                    if let Some(uid) = nth_uid(mailbox, *n) {
                        mailbox.expunge(uid);
                    }
                }
                Step::SourceNewUidValidity(index) => {
                    let mailbox = mailbox_mut(&mut source, *index);
                    let bodies: Vec<Vec<u8>> = mailbox.messages.values().map(|m| m.body.clone()).collect();
                    mailbox.uid_validity = UidValidity::new(mailbox.uid_validity.get() + 1).expect("non-zero");
                    mailbox.messages.clear();
                    mailbox.uid_next = Uid::MIN;
                    for body in bodies {
                        mailbox.append(&body, Flags::default(), Some(1));
                    }
                }
                Step::ClientAppend(index) => {
                    if let Some(mailbox) = destination.mailbox_mut(&mailbox_at(*index)) {
                        next_id += 1;
                        mailbox.append(&body(next_id, "client"), Flags::default(), Some(2));
                    }
                }
                Step::ClientExpunge(index, n) => {
                    if let Some(mailbox) = destination.mailbox_mut(&mailbox_at(*index))
                        && let Some(uid) = nth_uid(mailbox, *n)
                    {
                        mailbox.expunge(uid);
                    }
                }
                Step::Backup { keep_state, fail_after } => {
                    let previous = if *keep_state { state.take() } else { None };
                    let options = SyncOptions::new(Mode::Backup).commit_interval(2).state(previous);
                    destination.fail_after(*fail_after);
                    let result = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver);
                    destination.fail_after(None);
                    state = match result {
                        Ok(report) => {
                            prop_assert!(report.failures.is_empty(), "{:?}", report.failures);
                            report.state
                        }
                        Err(failed) => failed.report.state,
                    };
                }
            }
            client.watch(&destination, &after)?;
        }

        // Converges: with nobody writing, one run makes the destination hold the source's
        // messages under its UIDs, and the next one does nothing.
        let options = SyncOptions::new(Mode::Backup).state(state);
        let report = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver)
            .expect("final backup");
        prop_assert!(report.failures.is_empty(), "{:?}", report.failures);
        client.watch(&destination, "the final run")?;
        prop_assert_eq!(view(&destination), view(&source));
        let again = SyncOptions::new(Mode::Backup).state(report.state);
        let report = dsync_core::run(&again, &mut source, &mut destination, &mut NoObserver)
            .expect("second final backup");
        prop_assert!(report.is_noop(), "{:?}", report);
        // Also without any state (doveadm's -f).
        let report = dsync_core::run(&SyncOptions::new(Mode::Backup), &mut source, &mut destination, &mut NoObserver)
            .expect("stateless backup");
        prop_assert!(report.is_noop(), "{:?}", report);
    }
}

/// A `sync -1` (or two-way `sync`) after a backup that rebuilt the destination under a
/// UIDVALIDITY of its own merges it as holding the source's UIDs: going back to the
/// source's UIDVALIDITY would give out again the UIDs the destination gave its own mail
/// before the rebuild.
#[test]
fn a_merge_after_a_renumbering_backup_keeps_the_destination_uid_validity() {
    let inbox = MailboxName::inbox();
    let message = |id: &str| format!("Message-ID: <{id}@model>\r\n\r\n{id}\r\n").into_bytes();
    let mut source = MemoryStorage::new();
    let stored = source.add_mailbox(&inbox, UidValidity::new(5).expect("non-zero"));
    stored.append(&message("a"), Flags::default(), Some(1));
    let mut destination = MemoryStorage::with_guids();
    let mut client = Client::default();
    let run = |mode, source: &mut MemoryStorage, destination: &mut MemoryStorage, state| {
        let options = SyncOptions::new(mode).state(state);
        dsync_core::run(&options, source, destination, &mut NoObserver).expect("run").state
    };
    let state = run(Mode::Backup, &mut source, &mut destination, None);
    let client_append = |destination: &mut MemoryStorage, id: &str| {
        destination.mailbox_mut(&inbox).expect("INBOX").append(
            &message(id),
            Flags::default(),
            Some(2),
        );
    };
    client_append(&mut destination, "client-1");
    client.watch(&destination, "the first client append").expect("no reuse");
    let state = run(Mode::Backup, &mut source, &mut destination, state);
    client.watch(&destination, "the renumbering backup").expect("no reuse");
    let renumbered = destination.mailbox(&inbox).expect("INBOX").uid_validity;
    assert_ne!(renumbered.get(), 5);

    client_append(&mut destination, "client-2");
    source.mailbox_mut(&inbox).expect("INBOX").append(&message("new"), Flags::default(), Some(3));
    let _ = run(Mode::OneWay, &mut source, &mut destination, state);
    client.watch(&destination, "sync -1").expect("no reuse");
    let merged = destination.mailbox(&inbox).expect("INBOX");
    assert_eq!(merged.uid_validity, renumbered);
    assert_eq!(merged.messages.len(), 3, "a, client-2 and new");
    // A backup then reverts the client's mail: UID 2 is the source's `new` there, the
    // client's here, so once more under a new UIDVALIDITY.
    let _ = run(Mode::Backup, &mut source, &mut destination, None);
    client.watch(&destination, "the last backup").expect("no reuse");
    let last = destination.mailbox(&inbox).expect("INBOX");
    assert_eq!((last.source_uid_validity, last.messages.len()), (UidValidity::new(5), 2));
}
