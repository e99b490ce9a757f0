//! A storage of your own, synced into a Maildir that Dovecot reads as its own.
//!
//! `Archive` below stands for any backend (a database, an API, an mbox): it implements the
//! read side of [`dsync_core::Storage`], and `dsync_core::run` backs it up into a Maildir
//! with its UIDVALIDITY, UIDs, flags and dates. Run it with
//! `cargo run -p dsync-core --example custom_storage -- /tmp/archive-maildir`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::mailstore::Durability;
use dsync_core::{
    ErrorKind, Flags, MailboxContents, MailboxInfo, MailboxName, MailboxStatus, MessageMeta,
    MessageSink, Mode, NoObserver, Storage, StorageError, SyncOptions, Uid, UidValidity,
};

/// A read-only archive: one mailbox of raw messages (CRLF line ends).
struct Archive {
    messages: Vec<(Uid, Flags, i64, &'static [u8])>,
}

impl Archive {
    /// This archive has only an INBOX.
    fn check(mailbox: &MailboxName) -> Result<(), StorageError> {
        if mailbox.is_inbox() {
            Ok(())
        } else {
            Err(StorageError::new(ErrorKind::NotFound, format!("no mailbox {mailbox}")))
        }
    }
}

impl Storage for Archive {
    fn describe(&self) -> String {
        String::from("archive")
    }

    fn mailboxes(&mut self) -> Result<Vec<MailboxInfo>, StorageError> {
        Ok(vec![MailboxInfo::new(MailboxName::inbox())])
    }

    fn subscriptions(&mut self) -> Result<BTreeSet<MailboxName>, StorageError> {
        Ok(BTreeSet::from([MailboxName::inbox()]))
    }

    fn status(&mut self, mailbox: &MailboxName) -> Result<MailboxStatus, StorageError> {
        Archive::check(mailbox)?;
        let last = self.messages.iter().map(|(uid, ..)| *uid).max().unwrap_or(Uid::MIN);
        Ok(MailboxStatus::new(
            // UIDs only mean something together with their UIDVALIDITY: keep it stable.
            UidValidity::new(1_700_000_000).expect("non-zero"),
            last.next().expect("room for one more UID"),
            u32::try_from(self.messages.len()).unwrap_or(u32::MAX),
        ))
    }

    fn contents(&mut self, mailbox: &MailboxName) -> Result<MailboxContents, StorageError> {
        let status = self.status(mailbox)?;
        let messages = self
            .messages
            .iter()
            .map(|(uid, flags, received, body)| {
                let mut meta = MessageMeta::new(*uid, flags.clone());
                meta.received = Some(*received);
                meta.virtual_size = Some(body.len() as u64);
                meta
            })
            .collect();
        Ok(MailboxContents { status, messages })
    }

    fn fetch(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
        sink: &mut dyn MessageSink,
    ) -> Result<(), StorageError> {
        Archive::check(mailbox)?;
        for (uid, _, _, body) in self.messages.iter().filter(|(uid, ..)| uids.contains(uid)) {
            sink.body(&mut &body[..])?;
            sink.done(*uid)?;
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = std::env::args_os()
        .nth(1)
        .map_or_else(|| std::env::temp_dir().join("dsync-archive-example"), PathBuf::from);
    let uid = |n| Uid::new(n).expect("non-zero");
    let mut archive = Archive {
        messages: vec![
            (
                uid(3),
                Flags::from_imap_names(["\\Seen"]),
                1_700_000_000,
                b"Subject: first\r\n\r\nhello\r\n",
            ),
            (
                uid(7),
                Flags::from_imap_names(["$Label1"]),
                1_700_086_400,
                b"Subject: second\r\n\r\nworld\r\n",
            ),
        ],
    };
    // Any path works, `:` included; the Maildir's types come re-exported from dsync-core.
    let mut maildir = MaildirStorage::open_path(&target, Durability::Fsync);
    let report = dsync_core::run(
        &SyncOptions::new(Mode::Backup),
        &mut archive,
        &mut maildir,
        &mut NoObserver,
    )?;
    println!("{}: {}", target.display(), report.totals());
    Ok(())
}
