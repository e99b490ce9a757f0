//! An observer that interrupts (Ctrl-C) stops every mode after the message being saved:
//! what was saved is committed, the error is `Interrupted` (exit 75), the state returned
//! covers the mailboxes finished before, and a second run completes the copy without a
//! duplicate.

use dsync_core::memory::MemoryStorage;
use dsync_core::{
    ErrorKind, Flags, MailboxName, MailboxReport, Mode, Observer, SyncOptions, Uid, UidValidity,
};

use super::support::name;

fn source() -> MemoryStorage {
    let mut source = MemoryStorage::new();
    for (folder, count) in [("INBOX", 30), ("Archive", 40), ("Sent", 5)] {
        let mailbox = source.add_mailbox(&name(folder), UidValidity::new(7).expect("nonzero"));
        for id in 0..count {
            let body = format!("Message-ID: <{folder}-{id}@x>\r\n\r\nbody {id}\r\n");
            mailbox.append(body.as_bytes(), Flags::default(), Some(1_700_000_000));
        }
    }
    source
}

/// Interrupts after `after` saved messages (or before the first mailbox with 0).
struct CtrlC {
    after: u64,
    saved: u64,
    finished: Vec<MailboxName>,
}

impl Observer for CtrlC {
    fn message_saved(&mut self, _mailbox: &MailboxName, _uid: Uid, _bytes: u64) {
        self.saved += 1;
    }
    fn mailbox_finished(&mut self, report: &MailboxReport) {
        self.finished.push(report.mailbox.clone());
    }
    fn interrupted(&mut self) -> bool {
        self.saved >= self.after
    }
}

fn messages(storage: &MemoryStorage) -> usize {
    storage.all_mailboxes().values().map(|m| m.messages.len()).sum()
}

#[test]
fn every_mode_stops_after_the_current_message_and_resumes() {
    for mode in [Mode::Backup, Mode::OneWay, Mode::Import] {
        for after in [0, 1, 37] {
            let mut source = source();
            let mut destination = MemoryStorage::new();
            let mut observer = CtrlC { after, saved: 0, finished: Vec::new() };
            let options = SyncOptions::new(mode).commit_interval(10);
            let failed = dsync_core::run(&options, &mut source, &mut destination, &mut observer)
                .expect_err("interrupted");
            assert_eq!(failed.error.kind(), ErrorKind::Interrupted, "{mode:?} after {after}");
            assert_eq!(failed.exit_code(), 75);
            // Exactly the saved messages are there: the last one was committed.
            assert_eq!(messages(&destination), usize::try_from(after).expect("small"));
            let state = failed.report.state.clone().expect("state of the finished mailboxes");
            for finished in &observer.finished {
                if mode != Mode::Import {
                    assert!(state.mailboxes.contains_key(finished), "{mode:?}: {finished}");
                }
            }

            // The next run (not interrupted) completes it: every message once.
            let options = SyncOptions::new(mode).state(Some(state));
            dsync_core::run(&options, &mut source, &mut destination, &mut dsync_core::NoObserver)
                .expect("resumed");
            assert_eq!(messages(&destination), 75, "{mode:?} after {after}");
            for folder in ["INBOX", "Archive", "Sent"] {
                let copied = destination.mailbox(&name(folder)).expect("copied");
                let original = source.mailbox(&name(folder)).expect("source");
                assert_eq!(copied.messages.len(), original.messages.len(), "{mode:?} {folder}");
            }
        }
    }
}
