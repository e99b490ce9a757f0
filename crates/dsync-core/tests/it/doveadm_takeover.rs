//! Switching tools in the middle of a migration, judged by Dovecot: an IMAP or POP3 source
//! has no mailbox GUIDs, and Dovecot's imapc/pop3c derive them from the names. We write the
//! same ones, so `doveadm backup -R … imapc:` onto our destination changes nothing (before,
//! it saw other GUIDs, tried to delete every mailbox, failed on INBOX with exit 65 and left
//! mail deleted), ours onto doveadm's changes nothing, and a destination an older version
//! wrote with random GUIDs adopts the derived ones in place.
//!
//! The source Dovecot's hierarchy separator is `/` or `.`; the Dovecot serving the
//! destination (and running doveadm) always uses `/`: the GUID hashes the source's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::adapters::pop3::Pop3Storage;
use dsync_core::state::SyncState;
use dsync_core::{MailboxAction, Mode, NoObserver, Report, Storage, StorageMut, SyncOptions};
use mailstore::Durability;
use testkit::{AccountSnapshot, Dovecot, RawImap, chown_to_mail_user, fixtures};

const PASSWORD: &str = "alicepw";
const USERS: [&str; 2] = ["ours", "theirs"];

/// A source account (alice) on a Dovecot whose separator is `separator`, and a second
/// Dovecot that serves the destination Maildirs `ours` and `theirs` (not yet created) and
/// has a user `probe` whose mail location `-o mail_location=…` may replace.
struct Setup {
    source: Dovecot,
    target: Dovecot,
    dir: tempfile::TempDir,
    separator: char,
}

impl Setup {
    fn new(separator: char) -> Setup {
        let mut source = Dovecot::builder().user("alice", PASSWORD);
        if separator != '/' {
            source =
                source.extra_config(&format!("namespace inbox {{\n  separator = {separator}\n}}"));
        }
        let source = source.start();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut target = Dovecot::builder().user("probe", PASSWORD);
        for user in USERS {
            let location = format!("maildir:{}", dir.path().join(user).display());
            target = target.user_with_mail(user, PASSWORD, &location);
        }
        Setup { source, target: target.start(), dir, separator }
    }

    fn path(&self, user: &str) -> PathBuf {
        self.dir.path().join(user)
    }

    /// Nested, non-ASCII and `&` names, flags, keywords, a UID gap, an empty folder,
    /// subscriptions. (No `%`: doveadm's own second `backup -R imapc:` fails on a folder
    /// `50%`, exit 2, "Mailbox 50%25 mailbox_rename conflict"; its GUID is checked in the
    /// unit tests of `derived_guid`.)
    fn populate(&self) {
        let mut imap = RawImap::login(self.source.imap_port(), "alice", PASSWORD);
        let nested = |parts: &[&str]| parts.join(&self.separator.to_string());
        let folders = [
            nested(&["Archive"]),
            nested(&["Archive", "2002"]),
            nested(&["Archive", fixtures::NON_ASCII_FOLDER]),
            fixtures::NON_ASCII_FOLDER.to_owned(),
            "R&-D".to_owned(),
            "Sent Items".to_owned(),
            "Empty".to_owned(),
        ];
        for (index, folder) in folders.iter().enumerate() {
            imap.create(folder);
            if folder != "Empty" {
                let flags: &[&str] = if index % 2 == 0 { &["\\Seen", "$Label1"] } else { &[] };
                for n in 0..3 {
                    let body =
                        fixtures::message(u32::try_from(index * 10 + n).unwrap_or(0), folder, "b");
                    imap.append(folder, flags, Some("07-Jul-2024 10:00:00 +0200"), &body);
                }
            }
            if index % 3 == 0 {
                imap.subscribe(folder);
            }
        }
        for n in 0..4 {
            imap.append("INBOX", &["\\Flagged"], None, &fixtures::message(100 + n, "inbox", "x"));
        }
        imap.expunge_uids(&nested(&["Archive", "2002"]), "2");
        imap.logout();
    }

    fn imap_source(&self) -> ImapStorage {
        let options = imapc::ConnectOptions::new(
            "127.0.0.1",
            self.source.imap_port(),
            imapc::Security::Plain,
        );
        ImapStorage::connect(&options, &imapc::Credentials::new("alice", PASSWORD))
            .expect("log in to the source")
    }

    fn pop3_source(&self) -> Pop3Storage {
        let options = pop3c::ConnectOptions::new(
            "127.0.0.1",
            self.source.pop3_port(),
            pop3c::Security::Plain,
        );
        Pop3Storage::connect(&options, &pop3c::Credentials::new("alice", PASSWORD))
            .expect("log in to the source")
    }

    fn maildir(&self, user: &str) -> MaildirStorage {
        MaildirStorage::open(&format!("maildir:{}", self.path(user).display()), Durability::Fsync)
            .expect("location")
    }

    /// `doveadm -o imapc_…/pop3c_… ARGS` on the destination's Dovecot, reading alice.
    fn doveadm(&self, args: &[&str]) -> std::process::Output {
        let settings = [
            format!("imapc_port={}", self.source.imap_port()),
            format!("pop3c_port={}", self.source.pop3_port()),
            "imapc_host=127.0.0.1".to_owned(),
            "imapc_user=alice".to_owned(),
            format!("imapc_password={PASSWORD}"),
            "pop3c_host=127.0.0.1".to_owned(),
            "pop3c_user=alice".to_owned(),
            format!("pop3c_password={PASSWORD}"),
        ];
        let mut all: Vec<&str> = settings.iter().flat_map(|s| ["-o", s.as_str()]).collect();
        all.extend_from_slice(args);
        self.target.doveadm(&all)
    }

    /// `doveadm backup -R -u USER LOCATION` (`imapc:` or `pop3c:`); must succeed.
    fn doveadm_backup(&self, user: &str, location: &str) {
        std::fs::create_dir_all(self.path(user)).expect("mkdir");
        chown_to_mail_user(&self.path(user));
        let output = self.doveadm(&["backup", "-R", "-u", user, location]);
        assert!(
            output.status.success(),
            "doveadm backup -R -u {user} {location} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Mailbox GUIDs by name: those of `user`'s Maildir.
    fn guids(&self, user: &str) -> BTreeMap<String, String> {
        chown_to_mail_user(&self.path(user));
        self.guids_with(&["mailbox", "status", "-u", user, "guid", "*"])
    }

    /// The mailbox GUIDs doveadm derives for the source over `imapc:` or `pop3c:`.
    fn derived_guids(&self, location: &str) -> BTreeMap<String, String> {
        let setting = format!("mail_location={location}");
        self.guids_with(&["-o", &setting, "mailbox", "status", "-u", "probe", "guid", "*"])
    }

    fn guids_with(&self, args: &[&str]) -> BTreeMap<String, String> {
        let output = self.doveadm(args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.rsplit_once(" guid="))
            .map(|(name, guid)| (name.to_owned(), guid.to_owned()))
            .collect()
    }

    /// What Dovecot serves from `user`'s Maildir, and its message files.
    fn served(&self, user: &str) -> (AccountSnapshot, BTreeSet<PathBuf>) {
        chown_to_mail_user(&self.path(user));
        let snapshot = RawImap::login(self.target.imap_port(), user, PASSWORD).snapshot();
        (snapshot, message_files(&self.path(user)))
    }
}

/// Every file under a `cur/` or `new/` below `root`, relative to it: a mailbox deleted and
/// created again, or a message saved again, shows as other names.
fn message_files(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if dir.file_name().is_some_and(|n| n == "cur" || n == "new") {
                found.insert(path.strip_prefix(root).expect("below root").to_path_buf());
            }
        }
    }
    found
}

fn backup(
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    state: Option<SyncState>,
) -> Report {
    let mut options = SyncOptions::new(Mode::Backup);
    options.state = state;
    let report = dsync_core::run(&options, source, destination, &mut NoObserver)
        .unwrap_or_else(|failed| panic!("backup failed: {failed}"));
    assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
    report
}

fn assert_same(
    expected: &(AccountSnapshot, BTreeSet<PathBuf>),
    actual: &(AccountSnapshot, BTreeSet<PathBuf>),
) {
    expected.0.assert_same(&actual.0);
    assert_eq!(expected.1, actual.1, "message files differ");
}

/// Both directions for one source separator.
fn imap_takeover_both_ways(separator: char) {
    let setup = Setup::new(separator);
    setup.populate();
    let imapc = setup.derived_guids("imapc:");
    assert_eq!(imapc.len(), 8, "{imapc:?}");
    let source = RawImap::login(setup.source.imap_port(), "alice", PASSWORD).snapshot();

    // (a) Ours first: the GUIDs are imapc's, and doveadm then finds nothing to change.
    backup(&mut setup.imap_source(), &mut setup.maildir("ours"), None);
    assert_eq!(setup.guids("ours"), imapc);
    let before = setup.served("ours");
    assert_eq!(before.0.message_count(), source.message_count());
    if separator == '/' {
        source.assert_same(&before.0);
    }
    setup.doveadm_backup("ours", "imapc:");
    assert_same(&before, &setup.served("ours"));
    assert_eq!(setup.guids("ours"), imapc);

    // (b) doveadm first: ours then finds nothing to change.
    setup.doveadm_backup("theirs", "imapc:");
    assert_eq!(setup.guids("theirs"), imapc);
    let before = setup.served("theirs");
    before.0.assert_same(&setup.served("ours").0);
    let report = backup(&mut setup.imap_source(), &mut setup.maildir("theirs"), None);
    assert!(report.is_noop(), "{:?}", report.totals());
    assert_same(&before, &setup.served("theirs"));
    assert_eq!(setup.guids("theirs"), imapc);
}

#[test]
fn doveadm_takes_over_our_imap_backup_and_we_take_over_its() {
    imap_takeover_both_ways('/');
}

#[test]
fn takeover_works_when_the_source_separator_is_a_dot() {
    imap_takeover_both_ways('.');
}

/// A destination an older version wrote (random mailbox GUIDs, served by Dovecot since, so
/// its list index caches them) and its saved state: the next run rewrites each GUID in
/// place, nothing else, and doveadm can take over afterwards.
#[test]
fn a_destination_with_random_guids_adopts_the_derived_ones_in_place() {
    let setup = Setup::new('/');
    setup.populate();
    let imapc = setup.derived_guids("imapc:");
    let first = backup(&mut setup.imap_source(), &mut setup.maildir("ours"), None);

    // What an older version left: a random GUID in every mailbox, and a state recording it.
    let store = mailstore::Maildir::open(mailstore::Location::maildir(setup.path("ours")));
    let mut destination = setup.maildir("ours");
    let mut state = first.state.clone().expect("state");
    for entry in store.mailboxes().expect("list") {
        store
            .mailbox(&entry.name)
            .expect("open")
            .set_guid(mailstore::Guid::generate())
            .expect("GUID");
    }
    let random = setup.guids("ours");
    assert_eq!(random.len(), imapc.len());
    assert!(random.iter().all(|(name, guid)| imapc[name] != *guid), "{random:?}");
    let before = setup.served("ours");
    for (name, entry) in &mut state.mailboxes {
        let stamp = destination.stamp(name).expect("stamp");
        entry.destination_token = stamp.change_token;
        entry.destination_guid = stamp.guid;
        entry.source_guid = None;
    }

    let report = backup(&mut setup.imap_source(), &mut destination, Some(state));
    assert!(
        report.mailboxes.iter().all(|m| m.action == MailboxAction::Update),
        "{:?}",
        report.mailboxes
    );
    assert!(report.is_noop(), "{:?}", report.totals());
    assert_eq!(setup.guids("ours"), imapc);
    assert_same(&before, &setup.served("ours"));
    let again = backup(&mut setup.imap_source(), &mut setup.maildir("ours"), report.state.clone());
    assert!(again.is_noop());

    setup.doveadm_backup("ours", "imapc:");
    assert_same(&before, &setup.served("ours"));
    let log = setup.target.log();
    assert!(!log.contains("Error") && !log.contains("Warning"), "Dovecot complained:\n{log}");
}

/// POP3: ours writes pop3c's INBOX GUID, and adopts it where an older version wrote a
/// random one; doveadm's `backup -R pop3c:` first, then ours from the same POP3 account:
/// the same INBOX GUID, the same UIDLs, nothing changed. (The other way round cannot work
/// with doveadm: pop3c's index gives INBOX a new UIDVALIDITY on every run, so doveadm's
/// second `backup -R pop3c:` onto its own first result fails the same way, exit 65.)
#[test]
fn we_take_over_doveadms_pop3c_backup() {
    let setup = Setup::new('/');
    setup.populate();
    let inbox = |guids: BTreeMap<String, String>| guids.get("INBOX").cloned().expect("INBOX");
    let pop3c = inbox(setup.derived_guids("pop3c:"));
    assert_eq!(pop3c, "c92f64f79f0d1ed01e6d5b314f04886c");

    backup(&mut setup.pop3_source(), &mut setup.maildir("ours"), None);
    assert_eq!(inbox(setup.guids("ours")), pop3c);
    // An INBOX an older version wrote (a random GUID) adopts pop3c's in place.
    let store = mailstore::Maildir::open(mailstore::Location::maildir(setup.path("ours")));
    let ours = store.mailbox(&mailstore::MailboxName::inbox()).expect("INBOX");
    ours.set_guid(mailstore::Guid::generate()).expect("GUID");
    let before = setup.served("ours");
    let report = backup(&mut setup.pop3_source(), &mut setup.maildir("ours"), None);
    assert!(report.is_noop(), "{:?}", report.totals());
    assert_eq!(inbox(setup.guids("ours")), pop3c);
    assert_same(&before, &setup.served("ours"));

    setup.doveadm_backup("theirs", "pop3c:");
    assert_eq!(inbox(setup.guids("theirs")), pop3c);
    let before = setup.served("theirs");
    assert_eq!(before.0.message_count(), 4);
    let report = backup(&mut setup.pop3_source(), &mut setup.maildir("theirs"), None);
    assert!(report.is_noop(), "{:?}", report.totals());
    assert!(report.mailboxes.iter().all(|m| m.action == MailboxAction::Update));
    assert_same(&before, &setup.served("theirs"));
    assert_eq!(inbox(setup.guids("theirs")), pop3c);
}
