//! doveadm's `-a` (copy by GUID from an all-mail mailbox) against runs without it, on
//! random accounts shaped like Gmail's: an "All" mailbox holding messages that also appear
//! (same GUID, same body) in label folders, plus messages found only in a folder. For
//! `backup` and `sync -1`, into memory and into a Maildir, from empty and incrementally:
//! * the destination ends exactly as without `-a`;
//! * every body is read from the source at most once per run when its GUID is already in
//!   the all-mail mailbox: the source is asked for `saved - copied_locally` bodies, and
//!   `copied_locally` is the number of saved folder messages whose GUID "All" holds.
//!
//! The Maildir runs also check that such copies share one file (hard links).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dsync_core::filter::MailboxPattern;
use dsync_core::memory::MemoryStorage;
use dsync_core::{
    Capabilities, Flags, MailboxContents, MailboxInfo, MailboxName, MailboxStamp, MailboxStatus,
    MessageSink, Mode, NoObserver, Report, Storage, StorageError, StorageMut, SyncOptions, Uid,
    UidValidity,
};
use proptest::prelude::*;

use super::support::{maildir, name, read_mailbox};

const FLAG_NAMES: &[&str] = &["\\Seen", "\\Flagged", "$Label1"];
const RECEIVED: i64 = 1_700_000_000;

/// A folder message: a copy of "All"'s n-th message, or one of its own.
#[derive(Debug, Clone)]
enum Entry {
    CopyOf(usize, u8),
    Own(u8, u8),
}

#[derive(Debug, Clone)]
struct Spec {
    /// "All"'s messages: (body variant, flag bits).
    all: Vec<(u8, u8)>,
    /// Label folders.
    folders: Vec<Vec<Entry>>,
    /// Appended before the second run: to "All" (each also copied into folder 0) and to
    /// folder 1 as copies of older "All" messages.
    later: (Vec<u8>, Vec<usize>),
}

fn spec() -> impl Strategy<Value = Spec> {
    let all = proptest::collection::vec((0u8..4, 0u8..8), 1..8);
    let entry = prop_oneof![
        (0usize..8, 0u8..8).prop_map(|(n, flags)| Entry::CopyOf(n, flags)),
        (0u8..4, 0u8..8).prop_map(|(variant, flags)| Entry::Own(variant, flags)),
    ];
    let folders = proptest::collection::vec(proptest::collection::vec(entry, 0..6), 1..4);
    let later =
        (proptest::collection::vec(0u8..4, 0..3), proptest::collection::vec(0usize..8, 0..3));
    (all, folders, later).prop_map(|(all, folders, later)| Spec { all, folders, later })
}

fn folder(index: usize) -> MailboxName {
    name(&format!("Labels/L{index}"))
}

fn flags(bits: u8) -> Flags {
    Flags::from_imap_names(
        FLAG_NAMES.iter().enumerate().filter(|(bit, _)| bits & (1 << bit) != 0).map(|(_, f)| *f),
    )
}

/// Appends a message with a GUID (the source's GUIDs travel with `-a`).
fn append(storage: &mut MemoryStorage, mailbox: &MailboxName, guid: &str, body: &str, bits: u8) {
    let stored = storage.mailbox_mut(mailbox).expect("mailbox exists");
    let uid = stored.append(body.as_bytes(), flags(bits), Some(RECEIVED));
    if let Some(message) = stored.messages.get_mut(&uid) {
        message.meta.guid = Some(guid.to_owned());
    }
}

fn all_body(n: usize, variant: u8) -> String {
    format!("Message-ID: <all-{n}@example.com>\r\nSubject: all {n}\r\n\r\nbody {variant}\r\n")
}

fn build(spec: &Spec) -> MemoryStorage {
    let mut storage = MemoryStorage::with_guids();
    let all = name("All");
    storage.add_mailbox(&name("INBOX"), UidValidity::MIN);
    storage.add_mailbox(&all, UidValidity::MIN);
    for (n, (variant, bits)) in spec.all.iter().enumerate() {
        append(&mut storage, &all, &format!("g{n}"), &all_body(n, *variant), *bits);
    }
    for (index, entries) in spec.folders.iter().enumerate() {
        let mailbox = folder(index);
        storage.add_mailbox(&mailbox, UidValidity::MIN);
        for (n, entry) in entries.iter().enumerate() {
            match entry {
                Entry::CopyOf(of, bits) => {
                    let of = of % spec.all.len();
                    let body = all_body(of, spec.all[of].0);
                    append(&mut storage, &mailbox, &format!("g{of}"), &body, *bits);
                }
                Entry::Own(variant, bits) => {
                    let body = format!("Subject: own {index}/{n}\r\n\r\nown {variant}\r\n");
                    append(&mut storage, &mailbox, &format!("own-{index}-{n}"), &body, *bits);
                }
            }
        }
    }
    storage
}

/// The changes of the second run.
fn change(storage: &mut MemoryStorage, spec: &Spec) {
    let all = name("All");
    let first = spec.all.len();
    for (k, variant) in spec.later.0.iter().enumerate() {
        let n = first + k;
        append(storage, &all, &format!("g{n}"), &all_body(n, *variant), 0);
        append(storage, &folder(0), &format!("g{n}"), &all_body(n, *variant), 1);
    }
    let target = folder(1 % spec.folders.len());
    for of in &spec.later.1 {
        let of = of % spec.all.len();
        append(storage, &target, &format!("g{of}"), &all_body(of, spec.all[of].0), 2);
    }
}

/// A source that counts the bodies it is asked for.
struct Counting {
    inner: MemoryStorage,
    fetched: u64,
}

impl Storage for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        self.inner.mailboxes()
    }
    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        self.inner.subscriptions()
    }
    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        self.inner.status(mailbox)
    }
    fn stamp(&mut self, mailbox: &MailboxName) -> Result<MailboxStamp, StorageError> {
        self.inner.stamp(mailbox)
    }
    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        self.inner.contents(mailbox)
    }
    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        self.fetched += uids.len() as u64;
        self.inner.fetch(mailbox, uids, sink)
    }
    /// Not counted: a merge reads headers to tell messages apart, with or without `-a`.
    fn header_hashes(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, String>, StorageError> {
        self.inner.header_hashes(mailbox, uids)
    }
}

/// A mailbox as a client sees it: UIDVALIDITY, UIDNEXT, (UID, flags, received, GUID, body).
type Seen = (u32, u32, Vec<(u32, Flags, Option<i64>, Option<String>, Vec<u8>)>);

fn snapshot(storage: &mut dyn Storage) -> BTreeMap<MailboxName, Seen> {
    let mut mailboxes = BTreeMap::new();
    for info in storage.mailboxes().expect("list") {
        if !info.selectable {
            continue;
        }
        let (status, messages) = read_mailbox(storage, &info.name);
        let seen = messages
            .into_iter()
            .map(|(m, body)| (m.uid.get(), m.flags, m.received, m.guid, body.unwrap_or_default()))
            .collect();
        mailboxes.insert(info.name, (status.uid_validity.get(), status.uid_next.get(), seen));
    }
    mailboxes
}

/// Runs `mode` with or without `-a All`; returns the report and the bodies fetched.
fn sync(
    mode: Mode,
    all_mail: bool,
    source: &MemoryStorage,
    destination: &mut dyn StorageMut,
    state: Option<dsync_core::state::SyncState>,
) -> (Report, u64) {
    let pattern = all_mail.then(|| MailboxPattern::parse("All").expect("pattern"));
    let options = SyncOptions::new(mode).all_mail(pattern).state(state);
    let mut counting = Counting { inner: source.clone(), fetched: 0 };
    let report = dsync_core::run(&options, &mut counting, destination, &mut NoObserver)
        .unwrap_or_else(|failed| panic!("{failed}"));
    (report, counting.fetched)
}

/// Checks one run with `-a`: counts, and that only copies were skipped.
fn check_counts(source: &MemoryStorage, report: &Report, fetched: u64) {
    let totals = report.totals();
    assert_eq!(fetched, totals.saved - totals.copied_locally, "bodies read from the source");
    let all = name("All");
    let in_all: BTreeSet<&str> = source
        .mailbox(&all)
        .map(|m| m.messages.values().filter_map(|m| m.meta.guid.as_deref()).collect())
        .unwrap_or_default();
    // Every folder save whose GUID "All" holds was copied locally, and nothing else was.
    let mut expected = 0;
    for mailbox in report.mailboxes.iter().filter(|m| m.mailbox != all && m.saved > 0) {
        let stored = source.mailbox(&mailbox.mailbox).expect("source mailbox");
        let copies = stored
            .messages
            .values()
            .rev()
            .take(usize::try_from(mailbox.saved).expect("small"))
            .filter(|m| m.meta.guid.as_deref().is_some_and(|g| in_all.contains(g)))
            .count();
        expected += copies as u64;
    }
    assert_eq!(totals.copied_locally, expected, "local copies");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn all_mail_changes_what_is_read_not_what_is_written(
        spec in spec(),
        one_way in any::<bool>(),
        into_maildir in any::<bool>(),
    ) {
        let mode = if one_way { Mode::OneWay } else { Mode::Backup };
        let mut source = build(&spec);
        let dirs = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let (mut plain, mut with_all): (Box<dyn StorageMut>, Box<dyn StorageMut>) =
            if into_maildir {
                (Box::new(maildir(dirs.0.path())), Box::new(maildir(dirs.1.path())))
            } else {
                (Box::new(MemoryStorage::with_guids()), Box::new(MemoryStorage::with_guids()))
            };
        let mut states = (None, None);
        for round in 0..2 {
            if round == 1 {
                change(&mut source, &spec);
            }
            let (plain_report, _) = sync(mode, false, &source, &mut *plain, states.0.take());
            let (report, fetched) = sync(mode, true, &source, &mut *with_all, states.1.take());
            check_counts(&source, &report, fetched);
            prop_assert_eq!(report.totals().saved, plain_report.totals().saved);
            prop_assert_eq!(snapshot(&mut *with_all), snapshot(&mut *plain));
            states = (plain_report.state, report.state);
        }
        if into_maildir {
            assert_shared_files(dirs.1.path(), &source);
        }
    }
}

/// In the Maildir written with `-a`, a folder message whose GUID "All" holds shares the
/// file of "All"'s copy (it was hard-linked, not copied).
fn assert_shared_files(root: &Path, source: &MemoryStorage) {
    use std::os::unix::fs::MetadataExt;
    let all = name("All");
    let in_all: BTreeSet<&str> = source
        .mailbox(&all)
        .map(|m| m.messages.values().filter_map(|m| m.meta.guid.as_deref()).collect())
        .unwrap_or_default();
    let mut storage = maildir(root);
    for info in storage.mailboxes().expect("list") {
        if info.name == all || !info.selectable {
            continue;
        }
        let store = mailstore::Maildir::open(
            format!("maildir:{}", root.display()).parse().expect("location"),
        );
        let mailbox = store
            .mailbox(&mailstore::MailboxName::new(info.name.components()).expect("name"))
            .expect("open");
        for message in mailbox.messages().expect("messages") {
            if in_all.contains(message.guid.as_str()) {
                // Mail without flags is in new/ under its bare name.
                let sub = if message.file_name.contains(':') { "cur" } else { "new" };
                let file = mailbox.path().join(sub).join(&message.file_name);
                let links = std::fs::metadata(&file).expect("stat").nlink();
                assert!(
                    links >= 2,
                    "{} in {} is not shared ({links} link)",
                    message.guid,
                    info.name
                );
            }
        }
    }
}
