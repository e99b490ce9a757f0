//! An IMAP source whose answers Dovecot cannot be made to give (issue 16 items 8 and 11),
//! served by `testkit::FakeImap`, a model server that answers the commands a sync sends:
//! mailbox names that are not canonical modified UTF-7 or cannot be mapped, and messages
//! whose metadata is malformed or arrives in an unusual order. One bad item must never
//! cost a folder or the account: it is copied as well as it can be, or skipped with a
//! report (exit 65), and everything else is copied.

use std::time::Duration;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::derived_guid::hash_guid;
use dsync_core::{MailboxName, Mode, NoObserver, Storage, SyncOptions};
use imapc::{ConnectOptions, Credentials, Security, Timeouts};
use mailstore::Durability;
use testkit::{FakeImap, FakeMailbox, FakeMessage, fixtures};

fn connect(server: &FakeImap) -> ImapStorage {
    let options =
        ConnectOptions::new("127.0.0.1", server.port(), Security::Plain).timeouts(Timeouts {
            connect: Duration::from_secs(5),
            read: Some(Duration::from_secs(5)),
            write: Some(Duration::from_secs(5)),
        });
    ImapStorage::connect(&options, &Credentials::new("alice", "pw")).expect("log in")
}

fn name(text: &str) -> MailboxName {
    MailboxName::split(text, Some('/')).expect("mailbox name")
}

fn one_message(raw_name: &[u8], index: u32) -> FakeMailbox {
    let body = fixtures::message(index, "hostile", "x");
    FakeMailbox::new(raw_name, 100 + index, vec![FakeMessage::new(1, &body)])
}

/// Names a server may list that are not canonical modified UTF-7: they are used as the
/// server spells them in every command, and mapped to a name the destination can hold.
/// Names with an empty level (`a//b`, `/abs`, ``) cannot be mapped: each is skipped and
/// reported, and the rest of the account is copied.
#[test]
fn non_canonical_names_are_examined_as_listed_and_unmappable_ones_skipped() {
    let server = FakeImap::start(
        '/',
        vec![
            one_message(b"INBOX", 1),
            one_message(b"Inbox/Sub", 2),
            one_message("café".as_bytes(), 3),
            one_message(b"&AGE-bad", 4),
            one_message(b"ctl\x01x", 5),
            one_message(b"a//b", 6),
            one_message(b"/abs", 7),
            one_message(b"", 8),
        ],
    );
    let mut source = connect(&server);
    let listed: Vec<MailboxName> =
        source.mailboxes().expect("the listing survives").into_iter().map(|m| m.name).collect();
    for expected in ["INBOX", "INBOX/Sub", "café", "&AGE-bad", "ctl\u{1}x"] {
        assert!(listed.contains(&name(expected)), "{expected:?} missing from {listed:?}");
    }
    let skipped = source.take_skipped();
    let mut items: Vec<&str> = skipped.iter().map(|s| s.item.as_str()).collect();
    items.sort_unstable();
    assert_eq!(items, ["\"\"", "\"/abs\"", "\"a//b\""], "{skipped:?}");
    // The derived GUID hashes the server's own bytes, as Dovecot's imapc does.
    let status = source.status(&name("café")).expect("STATUS with the server's bytes");
    assert_eq!(status.guid, Some(hash_guid("café".as_bytes())));
    let status = source.status(&name("INBOX/Sub")).expect("STATUS");
    assert_eq!(status.guid, Some(hash_guid(b"Inbox/Sub")));
    source.logout().expect("LOGOUT");

    let dir = tempfile::tempdir().expect("temp dir");
    let location = format!("maildir:{}", dir.path().join("Maildir").display());
    let mut destination = MaildirStorage::open(&location, Durability::Deferred).expect("open");
    let mut source = connect(&server);
    let report = dsync_core::run(
        &SyncOptions::new(Mode::Backup),
        &mut source,
        &mut destination,
        &mut NoObserver,
    )
    .expect("backup");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.totals().saved, 5, "{report:?}");
    assert_eq!(report.skipped.len(), 3, "{:?}", report.skipped);
    assert_eq!(report.exit_code(), 65);
    assert!(
        report.warnings.iter().any(|w| w.contains("is stored as ctl_x")),
        "{:?}",
        report.warnings
    );
    let examined: Vec<String> =
        server.commands().into_iter().filter(|c| c.contains("EXAMINE")).collect();
    for raw in ["EXAMINE Inbox/Sub", "café", "EXAMINE &AGE-bad", "ctl\u{1}x"] {
        assert!(
            examined.iter().any(|c| c.contains(raw)),
            "{raw} not examined as listed: {examined:?}"
        );
    }
}
