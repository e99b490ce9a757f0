//! POP3 sources end to end, judged by Dovecot: after a migration into a Maildir, the
//! destination's own POP3 server must list the same UIDLs in the same order with the same
//! sizes and bytes as the source's, so no POP3 client downloads its mail again; with an
//! IMAP+POP3 source its IMAP view must be kept as well.

use std::path::Path;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::pop3::{ImapPop3Storage, Pop3MigrationSettings, Pop3Storage};
use dsync_core::pop3_migration::MissingPolicy;
use dsync_core::{ErrorKind, Mode, NoObserver, Report, Storage, SyncOptions};
use testkit::{Dovecot, RawImap, RawPop3};

use crate::maildir;
use crate::pop3_source::{MESSAGES, Pop3Source, message, received_time};

/// What a POP3 client sees: `UIDL` and `LIST` lines and every message's bytes, in order.
#[derive(PartialEq, Eq)]
struct Pop3View {
    uidls: Vec<(u32, String)>,
    sizes: Vec<(u32, u64)>,
    bodies: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Pop3View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.bodies.iter().map(|b| message_id(b)).collect();
        f.debug_struct("Pop3View")
            .field("uidls", &self.uidls)
            .field("sizes", &self.sizes)
            .field("message_ids", &ids)
            .finish()
    }
}

fn pop3_view(dovecot: &Dovecot, user: &str, password: &str) -> Pop3View {
    let mut pop3 = RawPop3::login(dovecot.pop3_port(), user, password);
    let uidls = pop3.uidl();
    let sizes = pop3.list();
    let bodies = sizes.iter().map(|(n, _)| pop3.retr(*n)).collect();
    pop3.quit();
    Pop3View { uidls, sizes, bodies }
}

fn pop3_options(dovecot: &Dovecot) -> pop3c::ConnectOptions {
    pop3c::ConnectOptions::new("127.0.0.1", dovecot.pop3_port(), pop3c::Security::Plain)
}

fn pop3_only(dovecot: &Dovecot) -> Pop3Storage {
    Pop3Storage::connect(&pop3_options(dovecot), &pop3c::Credentials::new("alice", "alicepw"))
        .expect("POP3 login")
}

fn imap_and_pop3(
    dovecot: &Dovecot,
    pop3_user: &str,
    pop3_password: &str,
    settings: Pop3MigrationSettings,
) -> ImapPop3Storage {
    let options =
        imapc::ConnectOptions::new("127.0.0.1", dovecot.imap_port(), imapc::Security::Plain);
    let imap = ImapStorage::connect(&options, &imapc::Credentials::new("alice", "alicepw"))
        .expect("IMAP login");
    let credentials = pop3c::Credentials::new(pop3_user, pop3_password);
    ImapPop3Storage::connect(imap, pop3_options(dovecot), credentials, settings)
        .expect("POP3 login")
}

fn backup(source: &mut dyn Storage, destination: &mut dyn dsync_core::StorageMut) -> Report {
    dsync_core::run(&SyncOptions::new(Mode::Backup), source, destination, &mut NoObserver)
        .unwrap_or_else(|failed| panic!("backup failed: {failed}"))
}

/// A Dovecot serving a copy of the migrated Maildir as user `reader`.
fn serve(path: &Path) -> Dovecot {
    Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start()
}

/// The id a test message carries in its `Message-ID`.
fn message_id(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let start = text.find("Message-ID: <").expect("Message-ID") + "Message-ID: <".len();
    text[start..].split('@').next().unwrap_or_default().to_owned()
}

#[test]
fn pop3_only_backup_is_what_the_destination_pop3_serves() {
    let source = Pop3Source::start("%08Xv%08Xu");
    let expected = pop3_view(&source.dovecot, "alice", "alicepw");
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");

    let report = backup(&mut pop3_only(&source.dovecot), &mut maildir(&destination));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.totals().saved, MESSAGES.len() as u64);
    let served = serve(&destination);
    // POP3 keeps no received date: each message got the date of its first Received:
    // header, not its Date: and not the time of the migration. (Read before POP3 RETR
    // marks the messages \Seen.)
    let mut imap = RawImap::login(served.imap_port(), "reader", "readerpw");
    for snapshot in imap.messages("INBOX") {
        let id = message_id(&snapshot.body);
        assert_eq!(snapshot.internal_date, received_time(&id), "INTERNALDATE of {id}");
        assert!(snapshot.flags.is_empty(), "POP3 has no flags: {:?}", snapshot.flags);
    }
    imap.logout();
    assert_eq!(pop3_view(&served, "reader", "readerpw"), expected);
    drop(served);

    // Nothing changed: nothing is copied again.
    let again = backup(&mut pop3_only(&source.dovecot), &mut maildir(&destination));
    assert!(again.is_noop(), "{}", again.totals());

    // A POP3 client deleted messages 1 and 2, and new mail arrived: the new mail must
    // be listed after the old, though POP3 numbers shifted.
    let mut pop3 = RawPop3::login(source.dovecot.pop3_port(), "alice", "alicepw");
    pop3.command_ok("DELE 1");
    pop3.command_ok("DELE 2");
    pop3.quit();
    let mut imap = RawImap::login(source.dovecot.imap_port(), "alice", "alicepw");
    imap.append("INBOX", &[], None, &message("late", 1500));
    imap.append("INBOX", &[], None, &message("later", 1700));
    imap.logout();
    let changed = pop3_view(&source.dovecot, "alice", "alicepw");
    let third = backup(&mut pop3_only(&source.dovecot), &mut maildir(&destination));
    let totals = third.totals();
    assert_eq!((totals.saved, totals.expunged), (2, 2), "{totals}");
    let served = serve(&destination);
    assert_eq!(pop3_view(&served, "reader", "readerpw"), changed);
}

#[test]
fn imap_and_pop3_backup_keeps_the_imap_view_and_the_pop3_view() {
    let source = Pop3Source::start("%08Xv%08Xu");
    let mut imap = RawImap::login(source.dovecot.imap_port(), "alice", "alicepw");
    imap.store("INBOX", "2", "+FLAGS (\\Seen $Label1)");
    imap.store("INBOX", "7", "+FLAGS (\\Answered \\Flagged)");
    imap.create("Archive");
    imap.subscribe("Archive");
    imap.append("Archive", &["\\Seen"], None, &message("archived", 400));
    // Reading the POP3 view marks messages \Seen (Dovecot's RETR does): read it first.
    let expected_pop3 = pop3_view(&source.dovecot, "alice", "alicepw");
    imap.store("INBOX", "3", "-FLAGS (\\Seen)");
    let expected_imap = imap.snapshot();
    imap.logout();

    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let mut storage =
        imap_and_pop3(&source.dovecot, "alice", "alicepw", Pop3MigrationSettings::default());
    let report = backup(&mut storage, &mut maildir(&destination));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let summary = *storage.last_match().expect("INBOX was matched");
    // The first message lines up by position and size; equal sizes from the second on
    // leave the rest to header hashes.
    assert_eq!((summary.by_order_and_size, summary.by_header), (1, 8), "{summary:?}");
    assert_eq!((summary.unmatched_imap, summary.unmatched_pop3), (0, 0));
    assert!(storage.take_warnings().is_empty());

    let served = serve(&destination);
    let mut imap = RawImap::login(served.imap_port(), "reader", "readerpw");
    expected_imap.assert_same(&imap.snapshot());
    imap.logout();
    assert_eq!(pop3_view(&served, "reader", "readerpw"), expected_pop3);
    drop(served);

    let mut storage =
        imap_and_pop3(&source.dovecot, "alice", "alicepw", Pop3MigrationSettings::default());
    assert!(backup(&mut storage, &mut maildir(&destination)).is_noop());
}

/// IMAP and POP3 views that disagree (here: two accounts, the POP3 one holding a message
/// the IMAP one lacks) fail the mailbox as Dovecot does, because migrating would lose that
/// UIDL; `ignore_extra_uidls` lets it through with a warning.
#[test]
fn pop3_messages_without_imap_match_fail_unless_tolerated() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").user("bob", "bobpw").start();
    for (user, password, extra) in [("alice", "alicepw", false), ("bob", "bobpw", true)] {
        let mut imap = RawImap::login(dovecot.imap_port(), user, password);
        for (id, size) in &MESSAGES[..3] {
            imap.append("INBOX", &[], None, &message(id, *size));
        }
        if extra {
            imap.append("INBOX", &[], None, &message("only-pop3", 2000));
        }
        imap.logout();
    }
    let bob_pop3 = pop3_view(&dovecot, "bob", "bobpw");
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");

    let mut storage = imap_and_pop3(&dovecot, "bob", "bobpw", Pop3MigrationSettings::default());
    let report = backup(&mut storage, &mut maildir(&destination));
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = report.failures[0].to_string();
    assert!(
        failure.contains("1 POP3 messages have no matching IMAP messages")
            && failure.contains("pop3_migration_ignore_extra_uidls"),
        "{failure}"
    );
    assert_eq!(report.exit_code(), 65);
    assert_eq!(report.totals().saved, 0);

    let tolerant = Pop3MigrationSettings {
        missing: MissingPolicy { ignore_extra_uidls: true, ..MissingPolicy::default() },
        ..Pop3MigrationSettings::default()
    };
    let mut storage = imap_and_pop3(&dovecot, "bob", "bobpw", tolerant);
    let report = backup(&mut storage, &mut maildir(&destination));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.totals().saved, 3);
    // The run took the storage's warnings into its report.
    let warnings = &report.warnings;
    assert!(
        warnings.len() == 1 && warnings[0].contains("POP3 contains more than IMAP INBOX"),
        "{warnings:?}"
    );
    assert!(storage.take_warnings().is_empty());
    // alice's messages carry bob's UIDLs, in bob's order.
    let served = serve(&destination);
    let migrated = pop3_view(&served, "reader", "readerpw");
    assert_eq!(migrated.uidls, bob_pop3.uidls[..3]);
    assert_eq!(migrated.bodies, bob_pop3.bodies[..3]);
}

#[test]
fn wrong_pop3_password_is_an_authentication_error_before_any_copy() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let wrong = pop3c::Credentials::new("alice", "not-the-password");
    let error = Pop3Storage::connect(&pop3_options(&dovecot), &wrong).expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Authentication);
    assert_eq!(error.kind().exit_code(), 77);

    let options =
        imapc::ConnectOptions::new("127.0.0.1", dovecot.imap_port(), imapc::Security::Plain);
    let imap = ImapStorage::connect(&options, &imapc::Credentials::new("alice", "alicepw"))
        .expect("IMAP login");
    let error = ImapPop3Storage::connect(
        imap,
        pop3_options(&dovecot),
        wrong,
        Pop3MigrationSettings::default(),
    )
    .expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Authentication);
    assert!(!format!("{error:#}").contains("not-the-password"));
}

/// Dovecot's POP3 serves the UIDLs a Maildir's uidlist stores (`P`), duplicates too. A
/// second message with a UIDL the destination already holds a copy of used to be taken
/// for that copy and never copied (issue 16 item 11): both are kept, with a warning.
#[test]
fn a_uidl_dovecot_lists_twice_keeps_both_messages() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let source_root = dir.path().join("source");
    std::fs::create_dir(&source_root).expect("mkdir");
    testkit::chown_to_mail_user(&source_root);
    let store = mailstore::Maildir::open(mailstore::Location::maildir(&source_root));
    let add = |text: &str| {
        let mut inbox = store
            .mailbox(&"INBOX".parse().expect("name"))
            .or_else(|_| store.create_mailbox(&"INBOX".parse().expect("name"), None, None));
        let inbox = inbox.as_mut().expect("INBOX");
        let mut pending = inbox.begin_save().expect("save");
        pending.write_all(message(text, 200).as_slice()).expect("write");
        let options = mailstore::SaveOptions::default().with_pop3(Some("same-uidl".into()), None);
        inbox.save(pending, options).expect("save");
        inbox.commit().expect("commit");
    };
    add("first");
    let dovecot = Dovecot::builder()
        .user_with_mail("alice", "alicepw", &format!("maildir:{}", source_root.display()))
        .start();
    let destination = dir.path().join("destination");
    let report = backup(&mut pop3_only(&dovecot), &mut maildir(&destination));
    assert_eq!((report.totals().saved, report.exit_code()), (1, 0), "{report:?}");

    add("second");
    let listed = pop3_view(&dovecot, "alice", "alicepw");
    assert_eq!(listed.uidls, [(1, "same-uidl".to_owned()), (2, "same-uidl".to_owned())]);
    let report = backup(&mut pop3_only(&dovecot), &mut maildir(&destination));
    assert_eq!(report.totals().saved, 1, "{report:?}");
    assert!(
        report.warnings.iter().any(|w| w.contains("2 messages with the POP3 UIDL \"same-uidl\"")),
        "{:?}",
        report.warnings
    );
    let mut stored = maildir(&destination);
    let inbox = stored.contents(&dsync_core::MailboxName::inbox()).expect("INBOX");
    assert_eq!(inbox.messages.len(), 2);
    let again = backup(&mut pop3_only(&dovecot), &mut maildir(&destination));
    assert_eq!((again.totals().saved, again.totals().expunged), (0, 0));
}
