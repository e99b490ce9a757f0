//! What an embedder needs comes from dsync-core alone: the storage crates' types through
//! its re-exports, and Maildirs opened by path, whatever characters the path holds.

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::mailstore::{Durability, Location};
use dsync_core::memory::MemoryStorage;
use dsync_core::{Flags, MailboxName, Mode, NoObserver, Storage, SyncOptions, UidValidity};

/// A Maildir whose path holds a `:` (which a location string must write `::`) is opened by
/// path, written, and is the same store the escaped location string names.
#[test]
fn maildir_path_with_a_colon_opens_by_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("mail:alice");
    let mut source = MemoryStorage::new();
    let inbox = MailboxName::inbox();
    source.add_mailbox(&inbox, UidValidity::new(7).expect("non-zero")).append(
        b"Subject: colon\r\n\r\nbody\r\n",
        Flags::default(),
        Some(1_700_000_000),
    );

    let mut destination = MaildirStorage::open_path(&root, Durability::Fsync);
    let report = dsync_core::run(
        &SyncOptions::new(Mode::Backup),
        &mut source,
        &mut destination,
        &mut NoObserver,
    )
    .expect("backup");
    assert_eq!(report.totals().saved, 1);
    assert!(root.join("cur").is_dir() || root.join("new").is_dir(), "written at the path");

    // The same store through Dovecot's escaping (`::` for one `:`) and a typed Location.
    let escaped = format!("maildir:{}", root.display().to_string().replace(':', "::"));
    assert_eq!(escaped.parse::<Location>().expect("location").root(), root);
    let mut again = MaildirStorage::open_location_read_only(Location::maildir(&root));
    let status = again.status(&inbox).expect("status");
    assert_eq!((status.uid_validity.get(), status.messages), (7, 1));
}

/// What an embedder moves to a worker thread (or tokio's `spawn_blocking`) is `Send`.
#[test]
fn storages_options_reports_and_errors_are_send() {
    fn send<T: Send>() {}
    send::<dsync_core::adapters::imap::ImapStorage>();
    send::<dsync_core::adapters::pop3::Pop3Storage>();
    send::<dsync_core::adapters::pop3::ImapPop3Storage>();
    send::<MaildirStorage>();
    send::<dsync_core::adapters::sdbox::SdboxStorage>();
    send::<MemoryStorage>();
    send::<SyncOptions>();
    send::<dsync_core::Cancel>();
    send::<dsync_core::state::StateFile>();
    send::<dsync_core::Report>();
    send::<dsync_core::Failed>();
    send::<dsync_core::StorageError>();
    fn sync<T: Sync>() {}
    sync::<dsync_core::Failed>();
}
