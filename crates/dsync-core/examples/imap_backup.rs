//! Backs an IMAP account up into a Maildir (`doveadm backup`), with progress and a state
//! file beside the Maildir, so that the next run costs only what changed.
//!
//! `DSYNC_PASSWORD=secret cargo run -p dsync-core --example imap_backup -- mail.example.com alice /srv/backup/alice`
//! (implicit TLS on port 993, the certificate checked against the web PKI roots).

use std::path::PathBuf;

use dsync_core::adapters::{imap::ImapStorage, maildir::MaildirStorage};
use dsync_core::imapc::{ConnectOptions, Credentials, Security};
use dsync_core::mailstore::Durability;
use dsync_core::state::{StateFile, SyncState};
use dsync_core::{MailboxReport, Mode, Observer, StorageError, SyncOptions};

/// Prints each mailbox as it finishes and persists the state when the engine asks.
struct Progress<'a>(&'a StateFile);

impl Observer for Progress<'_> {
    fn mailbox_finished(&mut self, report: &MailboxReport) {
        println!("{}: {} saved, {} expunged", report.mailbox, report.saved, report.expunged);
    }
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
        self.0.checkpoint(state)
    }
    // One line appended instead of the whole state, for each mailbox created.
    fn forget(
        &mut self,
        mailbox: &dsync_core::MailboxName,
        state: &SyncState,
    ) -> Result<(), StorageError> {
        self.0.checkpoint_forget(mailbox, state)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(host), Some(user), Some(maildir)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: imap_backup HOST USER MAILDIR (password in DSYNC_PASSWORD)".into());
    };
    let password = std::env::var("DSYNC_PASSWORD")?;
    let maildir = PathBuf::from(maildir);

    let server = ConnectOptions::new(host.as_str(), 993, Security::Tls);
    let mut source = ImapStorage::connect(&server, &Credentials::new(user.as_str(), password))?;
    let mut backup = MaildirStorage::open_path(&maildir, Durability::Fsync);
    let file = StateFile::new(maildir.with_extension("state"), format!("imaps://{user}@{host}"));
    let state = file.load().unwrap_or_else(|error| {
        eprintln!("{error}: doing a full run");
        file.fresh()
    });
    let options = SyncOptions::new(Mode::Backup).state(Some(state));
    let result = dsync_core::run(&options, &mut source, &mut backup, &mut Progress(&file));
    // A failed run returns what it did too: its state saves the work for the next run.
    let report = match result {
        Ok(report) => report,
        Err(failed) => {
            if let Some(state) = &failed.report.state {
                file.save(state)?;
            }
            return Err(failed.into());
        }
    };
    if let Some(state) = &report.state {
        file.save(state)?;
    }
    source.logout()?;
    println!("{}", report.totals());
    std::process::exit(report.exit_code().into())
}
