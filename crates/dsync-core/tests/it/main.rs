//! Integration tests of dsync-core against the real Dovecot (started by `testkit`).

mod all_mail;
mod backup;
mod doveadm_takeover;
mod embedding;
mod header_hash;
mod hostile_imap;
mod hostile_servers;
mod imap_guids;
mod imap_writer;
mod incremental;
mod kept_view;
mod list_ahead;
mod maildir_listing;
mod maildir_source;
mod modes;
mod packed_base;
mod parallel;
mod pop3;
mod pop3_migration;
mod pop3_source;
mod remote;

/// A Maildir storage at `path` (fsyncing, as a run without `--no-fsync`).
fn maildir(path: &std::path::Path) -> dsync_core::adapters::maildir::MaildirStorage {
    dsync_core::adapters::maildir::MaildirStorage::open(
        &format!("maildir:{}", path.display()),
        mailstore::Durability::Fsync,
    )
    .expect("location")
}

/// A session with the test Dovecot as alice whose sent command lines are kept in `sent`.
fn traced_imap_source(
    dovecot: &testkit::Dovecot,
    sent: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> dsync_core::adapters::imap::ImapStorage {
    use dsync_core::mailnet::{Trace, TraceDirection};
    let log = std::sync::Arc::clone(sent);
    let trace = Trace::new(move |direction, line| {
        if direction == TraceDirection::Sent {
            log.lock().expect("trace log").push(line.to_owned());
        }
    });
    let options =
        imapc::ConnectOptions::new("127.0.0.1", dovecot.imap_port(), imapc::Security::Plain)
            .trace(trace);
    dsync_core::adapters::imap::ImapStorage::connect(
        &options,
        &imapc::Credentials::new("alice", "alicepw"),
    )
    .expect("log in to the source")
}
