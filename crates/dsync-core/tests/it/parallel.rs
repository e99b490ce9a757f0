//! Several mailboxes at once (`run_parallel`) against the real Dovecot: the result is what
//! a sequential backup gives, as Dovecot serves it, and the workers really log in.

use std::path::{Path, PathBuf};

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::state::SyncState;
use dsync_core::{Connector, Mode, NoObserver, Report, StorageError, SyncOptions};
use imapc::{ConnectOptions, Credentials, Security};
use mailstore::Durability;
use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

/// Connections to the test Dovecot and the destination Maildir.
struct TestConnector {
    port: u16,
    destination: PathBuf,
}

impl TestConnector {
    fn source(&self) -> ImapStorage {
        let options = ConnectOptions::new("127.0.0.1", self.port, Security::Plain);
        ImapStorage::connect(&options, &Credentials::new("alice", "alicepw"))
            .expect("log in to the source")
    }

    fn destination(&self) -> MaildirStorage {
        let location = format!("maildir:{}", self.destination.display());
        MaildirStorage::open(&location, Durability::Deferred).expect("location")
    }
}

impl Connector for TestConnector {
    type Source = ImapStorage;
    type Destination = MaildirStorage;

    fn open_source(&self) -> Result<ImapStorage, StorageError> {
        Ok(self.source())
    }

    fn open_destination(&self) -> Result<MaildirStorage, StorageError> {
        Ok(self.destination())
    }

    fn close(&self, source: ImapStorage, destination: MaildirStorage) {
        source.logout().expect("log out");
        destination.sync_to_disk().expect("sync");
    }
}

fn parallel_backup(connector: &TestConnector, state: Option<SyncState>) -> Report {
    let options = SyncOptions::new(Mode::Backup).state(state);
    let report = dsync_core::run_parallel(
        &options,
        &mut connector.source(),
        &mut connector.destination(),
        &mut NoObserver,
        connector,
        4,
    )
    .unwrap_or_else(|failed| panic!("backup failed: {failed}"));
    assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
    assert!(report.warnings.is_empty(), "warnings: {:?}", report.warnings);
    report
}

fn served(path: &Path) -> AccountSnapshot {
    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start();
    RawImap::login(dovecot.imap_port(), "reader", "readerpw").snapshot()
}

/// Logins so far, counted once every session has ended (Dovecot logs asynchronously).
fn logins(dovecot: &Dovecot) -> usize {
    dovecot.settled_log(0).matches("Login: user=<alice>").count()
}

#[test]
fn mailboxes_synced_at_once_give_what_a_sequential_backup_gives() {
    let source = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(source.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    for folder in 0..8 {
        let name = format!("Bulk/{folder}");
        imap.create(&name);
        for n in 0..(5 + folder * 3) {
            let flags: &[&str] = if n % 3 == 0 { &["\\Seen", "$Label1"] } else { &[] };
            let index = u32::try_from(folder * 100 + n).expect("small");
            imap.append(&name, flags, None, &fixtures::message(index, "bulk", &"x".repeat(n * 40)));
        }
    }
    let expected = imap.snapshot();

    let dir = tempfile::tempdir().expect("temp dir");
    let connector =
        TestConnector { port: source.imap_port(), destination: dir.path().join("Maildir") };
    let logins_before = logins(&source);
    let report = parallel_backup(&connector, None);
    assert_eq!(report.totals().saved, expected.message_count() as u64);
    // The primary connection and four workers.
    assert_eq!(logins(&source) - logins_before, 5, "{}", source.log());
    // Reports come in tree order, as from a sequential run.
    let names: Vec<String> = report.mailboxes.iter().map(|m| m.mailbox.to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    expected.assert_same(&served(&connector.destination));

    // With the state, an unchanged account needs no worker at all.
    let logins_before = logins(&source);
    let again = parallel_backup(&connector, report.state.clone());
    assert!(again.is_noop(), "{:?}", again.totals());
    assert_eq!(logins(&source) - logins_before, 1);

    // Changes in several mailboxes arrive incrementally through the workers.
    imap.append("Bulk/3", &["\\Flagged"], None, &fixtures::message(900, "new", "new"));
    imap.store("Bulk/5", "1:3", "+FLAGS (\\Answered)");
    imap.expunge_uids("Bulk/7", "2:4");
    imap.store("INBOX", "1", "-FLAGS (\\Seen)");
    let changed = imap.snapshot();
    let third = parallel_backup(&connector, again.state.clone());
    let totals = third.totals();
    assert_eq!((totals.saved, totals.expunged, totals.flags_changed), (1, 3, 4), "{totals}");
    changed.assert_same(&served(&connector.destination));
}
