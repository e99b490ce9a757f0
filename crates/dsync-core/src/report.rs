//! What a run did (or, in a dry run, would do), per mailbox and in total.

use std::fmt;

use crate::error::{ErrorKind, Side, SyncError};
use crate::model::MailboxName;
use crate::plan::MailboxAction;
use crate::storage::Skip;

/// The result of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxReport {
    /// The mailbox.
    pub mailbox: MailboxName,
    /// Whether it was updated, created or rebuilt (and why).
    pub action: MailboxAction,
    /// Messages saved on the destination.
    pub saved: u64,
    /// Body bytes copied (wire form, CRLF).
    pub bytes: u64,
    /// Of `saved`, messages copied from a body the destination already held (found by GUID
    /// in the all-mail mailbox, [`crate::SyncOptions::all_mail`]) rather than transferred;
    /// their bytes are not in `bytes`.
    pub copied_locally: u64,
    /// Messages expunged on the destination.
    pub expunged: u64,
    /// Messages whose flags or keywords were changed.
    pub flags_changed: u64,
    /// Source messages that disappeared between listing and copying (expunged there
    /// meanwhile); not an error, the destination simply matches the newer source.
    pub vanished: u64,
    /// Source messages inside the message filters that a filtered run could not save
    /// (their UID is below the destination's UIDNEXT; a run without filters rebuilds).
    pub skipped: u64,
    /// Changes made on the source side (two-way sync only): saves, expunges, flag changes.
    pub source_changes: u64,
    /// What an operator should know about this mailbox (the run moves them into
    /// [`Report::warnings`]).
    pub warnings: Vec<String>,
}

impl MailboxReport {
    /// A report with nothing done yet.
    pub fn new(mailbox: MailboxName, action: MailboxAction) -> MailboxReport {
        MailboxReport {
            mailbox,
            action,
            saved: 0,
            bytes: 0,
            copied_locally: 0,
            expunged: 0,
            flags_changed: 0,
            vanished: 0,
            skipped: 0,
            source_changes: 0,
            warnings: Vec::new(),
        }
    }

    /// True when nothing changed on the destination.
    pub fn is_unchanged(&self) -> bool {
        self.action == MailboxAction::Update
            && self.saved == 0
            && self.expunged == 0
            && self.flags_changed == 0
            && self.source_changes == 0
    }
}

/// A mailbox renamed on one side because the other side had renamed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRename {
    /// The side that was renamed by this run.
    pub side: Side,
    /// The old name (as the destination spells it).
    pub from: MailboxName,
    /// The new name.
    pub to: MailboxName,
}

/// An entry one side left out of the run ([`crate::Storage::take_skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The side that left it out.
    pub side: Side,
    /// What it was and why.
    pub skip: Skip,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.side)?;
        if let Some(mailbox) = &self.skip.mailbox {
            write!(f, " mailbox {mailbox}")?;
        }
        write!(f, ": {}: {}", self.skip.item, self.skip.reason)
    }
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// True when nothing was written (dry run): the numbers are what would be done.
    pub dry_run: bool,
    /// Per synced mailbox, in tree order.
    pub mailboxes: Vec<MailboxReport>,
    /// Destination mailboxes deleted.
    pub deleted_mailboxes: Vec<MailboxName>,
    /// Mailboxes renamed because the other side renamed them (merge modes).
    pub renamed_mailboxes: Vec<MailboxRename>,
    /// Subscriptions added on the destination.
    pub subscribed: u64,
    /// Subscriptions removed on the destination.
    pub unsubscribed: u64,
    /// Mailboxes that failed while the run went on (the run's exit code reflects them).
    pub failures: Vec<SyncError>,
    /// Entries the sides left out although they hold them (a run with any ends with exit
    /// 65 unless a failure says otherwise).
    pub skipped: Vec<Skipped>,
    /// Things an operator should know that are not failures.
    pub warnings: Vec<String>,
    /// What to pass to the next run ([`crate::SyncOptions::state`]).
    pub state: Option<crate::state::SyncState>,
}

/// Totals over every mailbox of a [`Report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Mailboxes synced.
    pub mailboxes: u64,
    /// Mailboxes created (including rebuilt ones).
    pub created: u64,
    /// Messages saved.
    pub saved: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Of `saved`, messages copied from a body the destination already held.
    pub copied_locally: u64,
    /// Messages expunged.
    pub expunged: u64,
    /// Flag changes.
    pub flags_changed: u64,
}

impl Report {
    /// Totals over every mailbox.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for mailbox in &self.mailboxes {
            totals.mailboxes += 1;
            totals.created += u64::from(mailbox.action != MailboxAction::Update);
            totals.saved += mailbox.saved;
            totals.bytes += mailbox.bytes;
            totals.copied_locally += mailbox.copied_locally;
            totals.expunged += mailbox.expunged;
            totals.flags_changed += mailbox.flags_changed;
        }
        totals
    }

    /// True when the destination needed no change at all.
    pub fn is_noop(&self) -> bool {
        self.deleted_mailboxes.is_empty()
            && self.renamed_mailboxes.is_empty()
            && self.subscribed == 0
            && self.unsubscribed == 0
            && self.mailboxes.iter().all(MailboxReport::is_unchanged)
    }

    /// doveadm's exit code for this result: 0 when everything synced; 2 when messages
    /// changed during the run ("run again"); otherwise 75 if any failure was temporary (it
    /// wins, as in doveadm), else the first failure's code, else 65 when an entry was
    /// skipped (something was left behind: exit 0 must never hide that).
    pub fn exit_code(&self) -> u8 {
        if self.failures.iter().any(|f| f.kind() == ErrorKind::Temporary) {
            return ErrorKind::Temporary.exit_code();
        }
        match self.failures.first() {
            Some(failure) => failure.exit_code(),
            None if !self.skipped.is_empty() => ErrorKind::InvalidData.exit_code(),
            None if self.mailboxes.iter().any(|m| m.vanished > 0) => 2,
            None => 0,
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mailboxes ({} created), {} messages saved ({}), {} expunged, {} flag changes",
            self.mailboxes,
            self.created,
            self.saved,
            human_bytes(self.bytes),
            self.expunged,
            self.flags_changed
        )?;
        if self.copied_locally > 0 {
            write!(f, "; {} saved from copies already held", self.copied_locally)?;
        }
        Ok(())
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    let mut tenths = 0;
    while value >= 1024 && unit + 1 < UNITS.len() {
        tenths = (value % 1024) * 10 / 1024;
        value /= 1024;
        unit += 1;
    }
    if unit == 0 { format!("{value} B") } else { format!("{value}.{tenths} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_known_answers() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(33 * 1024 * 1024), "33.0 MiB");
    }
}
