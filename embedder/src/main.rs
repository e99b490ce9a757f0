//! The README's "As a library" example, word for word inside `main`: IMAP → Maildir with
//! progress and a saved state, with dsync-core as the only dependency.

use dsync_core::adapters::{imap::ImapStorage, maildir::MaildirStorage};
use dsync_core::imapc::{ConnectOptions, Credentials, Security};
use dsync_core::mailstore::Durability;
use dsync_core::state::{StateFile, SyncState};
use dsync_core::{MailboxReport, Mode, Observer, StorageError, SyncOptions};

/// Prints each mailbox as it finishes and persists the state when the engine asks.
struct Progress<'a>(&'a StateFile);

impl Observer for Progress<'_> {
    fn mailbox_finished(&mut self, report: &MailboxReport) {
        println!("{}: {} saved", report.mailbox, report.saved);
    }
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
        self.0.checkpoint(state)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ConnectOptions::new("mail.example.com", 993, Security::Tls);
    let mut source = ImapStorage::connect(&server, &Credentials::new("alice", "secret"))?;
    let mut backup = MaildirStorage::open_path("/srv/backup/alice", Durability::Fsync);
    let file = StateFile::new("/srv/backup/alice.state", "imaps://alice@mail.example.com");
    let state = file.load().unwrap_or_else(|_| file.fresh());
    let options = SyncOptions::new(Mode::Backup).state(Some(state));
    let report = dsync_core::run(&options, &mut source, &mut backup, &mut Progress(&file))?;
    file.save(report.state.as_ref().expect("a run that finished has a state"))?;
    println!("{} (exit code {})", report.totals(), report.exit_code());
    Ok(())
}
