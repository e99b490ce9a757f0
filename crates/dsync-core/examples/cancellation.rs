//! Stopping a run from another thread with a [`Cancel`] token — a UI's button, a signal
//! handler, an async task — and resuming it: the run commits what it saved and returns a
//! partial report whose state the next run starts from. Runs in memory, no server needed.
//!
//! `cargo run -p dsync-core --example cancellation`

use std::sync::mpsc;

use dsync_core::memory::MemoryStorage;
use dsync_core::{
    Cancel, ErrorKind, Flags, MailboxName, Mode, NoObserver, Observer, SyncOptions, Uid,
    UidValidity,
};

/// Tells another thread how far the run is.
struct Saved(mpsc::Sender<u32>);

impl Observer for Saved {
    fn message_saved(&mut self, _mailbox: &MailboxName, uid: Uid, _bytes: u64) {
        let _ = self.0.send(uid.get());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut source = MemoryStorage::new();
    let inbox = source.add_mailbox(&MailboxName::inbox(), UidValidity::new(1).ok_or("zero")?);
    for n in 0..1000 {
        let body = format!("Subject: message {n}\r\n\r\nbody {n}\r\n");
        inbox.append(body.as_bytes(), Flags::default(), Some(1_700_000_000));
    }
    let mut destination = MemoryStorage::new();

    // Another thread cancels once 250 messages are saved (a user pressing Stop); the run
    // stops at its next check, after the message being saved then.
    let cancel = Cancel::new();
    let (progress, saved) = mpsc::channel();
    let stopper = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            if saved.iter().any(|uid| uid >= 250) {
                cancel.cancel();
            }
        })
    };
    let options = SyncOptions::new(Mode::Backup).commit_interval(100).cancel(Some(cancel));
    let result = dsync_core::run(&options, &mut source, &mut destination, &mut Saved(progress));
    stopper.join().map_err(|_| "the stopping thread panicked")?;
    let failed = match result {
        Err(failed) if failed.error.kind() == ErrorKind::Interrupted => failed,
        Err(failed) => return Err(failed.into()),
        Ok(_) => return Err("the run finished before it was cancelled".into()),
    };
    println!(
        "cancelled after {} messages (exit code {})",
        failed.report.totals().saved,
        failed.exit_code()
    );

    // The next run starts from the partial report's state and copies only the rest.
    let resume = SyncOptions::new(Mode::Backup).state(failed.report.state.clone());
    let rest = dsync_core::run(&resume, &mut source, &mut destination, &mut NoObserver)?;
    println!("resumed: {} more", rest.totals().saved);
    Ok(())
}
