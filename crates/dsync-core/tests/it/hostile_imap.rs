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

/// One message's metadata that the server gets wrong, or an unusual but legal answer, costs
/// at most that message: a malformed INTERNALDATE zone (the received date then comes from
/// the message's header, with a warning), UID 0 and a second message under one UID
/// (skipped with a report, once), listings and bodies in descending UID order (accepted).
#[test]
fn bad_message_metadata_costs_only_that_message() {
    let message = |uid: u32, index: u32| FakeMessage::new(uid, &fixtures::message(index, "m", "x"));
    let mut bad_date = message(2, 2);
    bad_date.internal_date = String::from("01-Jan-2024 10:00:00 GMT");
    let mut twin = message(3, 33);
    twin.flags = String::from("\\Seen");
    let inbox = FakeMailbox::new(
        b"INBOX",
        7,
        vec![message(1, 1), bad_date, message(0, 9), message(3, 3), twin, message(4, 4)],
    );
    // Listed in descending order (UID 0 first), the mailbox is listed twice (streamed,
    // then whole once the order shows): its UID 0 and the invalid date of its UID 5 are
    // still reported once.
    let mut descending = FakeMailbox::new(
        b"Descending",
        8,
        vec![message(1, 11), message(2, 12), message(5, 15), message(0, 19)],
    );
    descending.messages[2].internal_date = String::from("01-Jan-2024 10:00:00 GMT");
    descending.descending = true;
    let server = FakeImap::start('/', vec![inbox, descending]);

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
    let saved: Vec<(String, u64)> =
        report.mailboxes.iter().map(|m| (m.mailbox.to_string(), m.saved)).collect();
    assert_eq!(saved, [("Descending".to_owned(), 3), ("INBOX".to_owned(), 4)], "{report:?}");
    let mut skipped: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    skipped.sort();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].starts_with("source mailbox Descending: UID 0:"), "{skipped:?}");
    assert!(skipped[1].starts_with("source mailbox INBOX: UID 0:"), "{skipped:?}");
    assert!(skipped[2].starts_with("source mailbox INBOX: UID 3:"), "{skipped:?}");
    assert_eq!(report.exit_code(), 65);
    let warnings = &report.warnings;
    assert!(
        warnings.iter().any(|w| w.contains("INTERNALDATE") && w.contains("UID 2")),
        "{warnings:?}"
    );
    let twice_listed = |w: &&String| w.contains("INTERNALDATE") && w.contains("Descending UID 5");
    assert_eq!(warnings.iter().filter(twice_listed).count(), 1, "{warnings:?}");

    let inbox = destination.contents(&name("INBOX")).expect("INBOX");
    let uids: Vec<u32> = inbox.messages.iter().map(|m| m.uid.get()).collect();
    assert_eq!(uids, [1, 2, 3, 4]);
    // The received date of UID 2 comes from its Date: header.
    let date = inbox.messages[1].received.expect("a received date");
    assert_eq!(
        Some(date),
        dsync_core::message_date::received_date(&fixtures::message(2, "m", "x"))
    );
    let descending = destination.contents(&name("Descending")).expect("Descending");
    assert_eq!(descending.messages.iter().map(|m| m.uid.get()).collect::<Vec<_>>(), [1, 2, 5]);
}
