//! `run_parallel` against `run`: on random accounts, a backup that syncs several mailboxes
//! at once (workers reading clones of an in-memory source and writing the same Maildir)
//! leaves exactly the Maildir a sequential backup leaves, from empty and from an older
//! backup; workers that cannot connect are left out with a warning; an error that is not
//! confined to a mailbox stops the run with every recorded mailbox complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::memory::MemoryStorage;
use dsync_core::{
    Connector, ErrorKind, Flags, MailboxContents, MailboxName, MessageSink, Mode, NoObserver,
    Report, Storage, StorageError, SyncOptions, Uid, UidValidity,
};
use proptest::prelude::*;

use super::support::{maildir, read_mailbox};

const FLAG_NAMES: &[&str] = &["\\Seen", "\\Answered", "\\Flagged", "$Label1", "Junk"];

/// Mailbox index → (UIDVALIDITY, messages as (body variant, flag bits)).
type AccountSpec = BTreeMap<usize, (u32, Vec<(u8, u8)>)>;

fn account_spec() -> impl Strategy<Value = AccountSpec> {
    let messages = proptest::collection::vec((0u8..4, 0u8..32), 0..6);
    proptest::collection::btree_map(0usize..10, (1u32..3, messages), 1..10)
}

fn mailbox_name(index: usize) -> MailboxName {
    let path = match index {
        0 => "INBOX".to_owned(),
        n if n % 3 == 0 => format!("Folder {n}/Sub"),
        n => format!("Folder {n}"),
    };
    MailboxName::split(&path, Some('/')).expect("valid")
}

fn build(spec: &AccountSpec) -> MemoryStorage {
    let mut storage = MemoryStorage::with_guids();
    for (&index, (uid_validity, messages)) in spec {
        let name = mailbox_name(index);
        let mailbox =
            storage.add_mailbox(&name, UidValidity::new(*uid_validity).expect("non-zero"));
        for (n, (variant, flag_bits)) in messages.iter().enumerate() {
            let flags = FLAG_NAMES
                .iter()
                .enumerate()
                .filter(|(bit, _)| flag_bits & (1 << bit) != 0)
                .map(|(_, flag)| *flag);
            let body = format!("Subject: {index}/{n}/{variant}\r\n\r\nbody {variant}\r\n");
            mailbox.append(body.as_bytes(), Flags::from_imap_names(flags), Some(1_700_000_000));
        }
        if index % 2 == 1 {
            storage.subscribe(&name);
        }
    }
    storage
}

/// Opens clones of the source and the Maildir; `fail` makes some opens fail.
struct TestConnector {
    source: MemoryStorage,
    destination: PathBuf,
    fail_destination: bool,
}

impl Connector for TestConnector {
    type Source = MemoryStorage;
    type Destination = MaildirStorage;

    fn open_source(&self) -> Result<MemoryStorage, StorageError> {
        Ok(self.source.clone())
    }

    fn open_destination(&self) -> Result<MaildirStorage, StorageError> {
        if self.fail_destination {
            return Err(StorageError::new(ErrorKind::Temporary, "too many connections"));
        }
        Ok(maildir(&self.destination))
    }
}

fn sequential(source: &mut MemoryStorage, destination: &Path) -> Report {
    let options = SyncOptions::new(Mode::Backup);
    dsync_core::run(&options, source, &mut maildir(destination), &mut NoObserver)
        .unwrap_or_else(|failed| panic!("{failed}"))
}

fn parallel(connector: &TestConnector, workers: usize) -> Report {
    let options = SyncOptions::new(Mode::Backup);
    dsync_core::run_parallel(
        &options,
        &mut connector.source.clone(),
        &mut maildir(&connector.destination),
        &mut NoObserver,
        connector,
        workers,
    )
    .unwrap_or_else(|failed| panic!("{failed}"))
}

/// A mailbox as a client sees it: UIDVALIDITY, UIDNEXT, (UID, flags, received, body).
type Seen = (u32, u32, Vec<(u32, Flags, Option<i64>, Vec<u8>)>);

/// Everything a client sees in a Maildir.
fn snapshot(path: &Path) -> (BTreeMap<MailboxName, Seen>, Vec<MailboxName>) {
    let mut storage = maildir(path);
    let mut mailboxes = BTreeMap::new();
    for info in storage.mailboxes().expect("list") {
        if !info.selectable {
            continue;
        }
        let (status, messages) = read_mailbox(&mut storage, &info.name);
        let seen = messages
            .into_iter()
            .map(|(m, body)| (m.uid.get(), m.flags, m.received, body.expect("body")))
            .collect();
        // A mailbox rebuilt under a UIDVALIDITY of the destination's own (allocated from
        // the clock-based dovecot-uidvalidity, so it differs between two runs) is shown
        // under the source's it stands for.
        let uid_validity = status.source_uid_validity.unwrap_or(status.uid_validity);
        mailboxes.insert(info.name, (uid_validity.get(), status.uid_next.get(), seen));
    }
    let subscriptions = storage.subscriptions().expect("subscriptions").into_iter().collect();
    (mailboxes, subscriptions)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn parallel_backup_equals_sequential_backup(
        older in account_spec(),
        newer in account_spec(),
        workers in 2usize..6,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (one, many) = (dir.path().join("sequential"), dir.path().join("parallel"));
        // Both destinations start as a backup of an older, different account.
        sequential(&mut build(&older), &one);
        sequential(&mut build(&older), &many);

        let source = build(&newer);
        let report_one = sequential(&mut source.clone(), &one);
        let connector =
            TestConnector { source, destination: many.clone(), fail_destination: false };
        let report_many = parallel(&connector, workers);
        let sorted = |r: &Report| {
            let mut warnings = r.warnings.clone();
            warnings.sort();
            warnings
        };
        prop_assert_eq!(sorted(&report_one), sorted(&report_many));
        prop_assert_eq!(report_one.totals(), report_many.totals());
        // The destination's change tokens hold file times, which differ between the two.
        let recorded = |r: &Report| {
            r.state.as_ref().expect("state").mailboxes.iter().map(|(name, m)| {
                (name.clone(), m.base.clone(), m.source_token.clone(), m.destination_guid)
            }).collect::<Vec<_>>()
        };
        prop_assert_eq!(recorded(&report_one), recorded(&report_many));
        let mailboxes = |r: &Report| r.mailboxes.iter().map(|m| m.mailbox.clone()).collect::<Vec<_>>();
        prop_assert_eq!(mailboxes(&report_one), mailboxes(&report_many));
        prop_assert_eq!(
            allocated_unset(snapshot(&one), &newer),
            allocated_unset(snapshot(&many), &newer)
        );
    }
}

/// `snapshot` with the UIDVALIDITY of an INBOX the source does not have set to 0: the
/// destination allocates it from the clock (`dovecot-uidvalidity`, which also remembers
/// the source's values), so it depends on when and in which order the two runs created
/// their mailboxes, not on what they copied.
fn allocated_unset(
    mut snapshot: (BTreeMap<MailboxName, Seen>, Vec<MailboxName>),
    source: &AccountSpec,
) -> (BTreeMap<MailboxName, Seen>, Vec<MailboxName>) {
    if !source.contains_key(&0)
        && let Some(inbox) = snapshot.0.get_mut(&mailbox_name(0))
    {
        inbox.0 = 0;
    }
    snapshot
}

#[test]
fn workers_that_cannot_connect_are_left_out() {
    let spec: AccountSpec = (0..6).map(|i| (i, (1, vec![(0, 1), (1, 2)]))).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let (one, many) = (dir.path().join("sequential"), dir.path().join("parallel"));
    sequential(&mut build(&spec), &one);
    let connector =
        TestConnector { source: build(&spec), destination: many.clone(), fail_destination: true };
    let report = parallel(&connector, 3);
    assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("too many connections"), "{:?}", report.warnings);
    assert_eq!(report.totals().saved, 12);
    assert_eq!(snapshot(&one), snapshot(&many));
}

/// A source whose listing of one mailbox fails as a lost connection would.
#[derive(Clone)]
struct Broken {
    inner: MemoryStorage,
    broken: MailboxName,
}

impl Storage for Broken {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> dsync_core::Capabilities {
        self.inner.capabilities()
    }
    fn mailboxes(&mut self) -> Result<Vec<dsync_core::MailboxInfo>, StorageError> {
        self.inner.mailboxes()
    }
    fn subscriptions(&mut self) -> Result<std::collections::BTreeSet<MailboxName>, StorageError> {
        self.inner.subscriptions()
    }
    fn status(&mut self, mailbox: &MailboxName) -> Result<dsync_core::MailboxStatus, StorageError> {
        self.inner.status(mailbox)
    }
    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        if *mailbox == self.broken {
            return Err(StorageError::new(ErrorKind::Temporary, "connection lost"));
        }
        self.inner.contents(mailbox)
    }
    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        self.inner.fetch(mailbox, uids, sink)
    }
}

struct BrokenConnector {
    source: Broken,
    destination: PathBuf,
}

impl Connector for BrokenConnector {
    type Source = Broken;
    type Destination = MaildirStorage;

    fn open_source(&self) -> Result<Broken, StorageError> {
        Ok(self.source.clone())
    }

    fn open_destination(&self) -> Result<MaildirStorage, StorageError> {
        Ok(maildir(&self.destination))
    }
}

#[test]
fn a_lost_connection_stops_the_run_and_the_state_records_only_complete_mailboxes() {
    let spec: AccountSpec = (0..9).map(|i| (i, (1, vec![(0, 1), (1, 2), (2, 4)]))).collect();
    let source = build(&spec);
    let broken = Broken { inner: source.clone(), broken: mailbox_name(4) };
    let dir = tempfile::tempdir().expect("temp dir");
    let connector = BrokenConnector { source: broken, destination: dir.path().join("Maildir") };
    let failed = dsync_core::run_parallel(
        &SyncOptions::new(Mode::Backup),
        &mut connector.source.clone(),
        &mut maildir(&connector.destination),
        &mut NoObserver,
        &connector,
        3,
    )
    .expect_err("the lost connection stops the run");
    assert_eq!(failed.error.kind(), ErrorKind::Temporary);
    let state = failed.report.state.clone().expect("state");
    assert!(!state.mailboxes.contains_key(&mailbox_name(4)));
    // Every mailbox the state records is complete, so a re-run from it finishes the job.
    let (mailboxes, _) = snapshot(&connector.destination);
    for name in state.mailboxes.keys() {
        assert_eq!(mailboxes[name].2.len(), 3, "{name} recorded but incomplete");
    }
    let options = SyncOptions::new(Mode::Backup).state(Some(state));
    dsync_core::run(
        &options,
        &mut source.clone(),
        &mut maildir(&connector.destination),
        &mut NoObserver,
    )
    .expect("the re-run completes");
    let one = dir.path().join("sequential");
    sequential(&mut source.clone(), &one);
    assert_eq!(snapshot(&one).0, snapshot(&connector.destination).0);
}
