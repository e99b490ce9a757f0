//! What a run did (or, in a dry run, would do), per mailbox and in total.

use std::borrow::Borrow;
use std::fmt;

use crate::error::{ErrorKind, Side, SyncError};
use crate::filter::{FilterReason, MessageFilter};
use crate::model::{MailboxName, MessageMeta};
use crate::plan::MailboxAction;
use crate::storage::Skip;

/// The result of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Source messages the message filters left out, by reason (as listed by this run).
    pub filtered: FilteredMessages,
}

/// Source messages a run left alone because the message filters (`-t`, `-e`, `-I`, `-O`)
/// say so: the operator's choice, not a loss, so counted apart from
/// [`Report::skipped`]. Each message counts once, for the first filter it fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilteredMessages {
    /// Received before `-t`.
    pub received_before: u64,
    /// Received after `-e`.
    pub received_after: u64,
    /// Larger than `-I`.
    pub larger: u64,
    /// Left out by `-O`.
    pub flag: u64,
}

impl FilteredMessages {
    /// Counts the `messages` that `filter` leaves out.
    pub fn of<'a>(
        filter: &MessageFilter,
        messages: impl IntoIterator<Item = &'a MessageMeta>,
    ) -> FilteredMessages {
        let mut counts = FilteredMessages::default();
        if filter.is_everything() {
            return counts;
        }
        for meta in messages {
            match filter.excluded_by(meta) {
                Some(FilterReason::ReceivedBefore) => counts.received_before += 1,
                Some(FilterReason::ReceivedAfter) => counts.received_after += 1,
                Some(FilterReason::Larger) => counts.larger += 1,
                Some(FilterReason::Flag) => counts.flag += 1,
                None => {}
            }
        }
        counts
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.received_before + self.received_after + self.larger + self.flag
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: FilteredMessages) {
        self.received_before += other.received_before;
        self.received_after += other.received_after;
        self.larger += other.larger;
        self.flag += other.flag;
    }

    /// Each count the larger of the two (two listings of the same mailbox).
    fn max(self, other: FilteredMessages) -> FilteredMessages {
        FilteredMessages {
            received_before: self.received_before.max(other.received_before),
            received_after: self.received_after.max(other.received_after),
            larger: self.larger.max(other.larger),
            flag: self.flag.max(other.flag),
        }
    }
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
            filtered: FilteredMessages::default(),
            warnings: Vec::new(),
        }
    }

    /// Counts what a dry run would do: `saves` saved (their sizes as the bytes), `expunged`
    /// messages expunged and `flags_changed` re-flagged.
    pub(crate) fn count_planned<M: Borrow<MessageMeta>>(
        &mut self,
        saves: impl IntoIterator<Item = M>,
        expunged: usize,
        flags_changed: usize,
    ) {
        (self.saved, self.bytes) = (0, 0);
        for meta in saves {
            self.saved += 1;
            self.bytes += meta.borrow().virtual_size.unwrap_or(0);
        }
        self.expunged = expunged as u64;
        self.flags_changed = flags_changed as u64;
    }

    /// Adds what a later attempt of the same run did to this mailbox ([`Report::merge`]).
    /// Work is summed: each attempt reports only what it committed. Counts that describe a
    /// listing (filtered, skipped) are the larger of the two, as both attempts listed the
    /// same mailbox. A mailbox created by the first attempt stays created.
    fn merge(&mut self, later: MailboxReport) {
        if self.action == MailboxAction::Update {
            self.action = later.action;
        }
        self.saved += later.saved;
        self.bytes += later.bytes;
        self.copied_locally += later.copied_locally;
        self.expunged += later.expunged;
        self.flags_changed += later.flags_changed;
        self.vanished += later.vanished;
        self.source_changes += later.source_changes;
        self.skipped = self.skipped.max(later.skipped);
        self.filtered = self.filtered.max(later.filtered);
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
#[non_exhaustive]
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
    /// Source mailboxes the mailbox filters (`-m`, `-x`) left out.
    pub filtered_mailboxes: Vec<MailboxName>,
    /// What to pass to the next run ([`crate::SyncOptions::state`]).
    pub state: Option<crate::state::SyncState>,
}

/// Totals over every mailbox of a [`Report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Source messages the message filters left out.
    pub filtered: FilteredMessages,
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
            totals.filtered.add(mailbox.filtered);
        }
        totals
    }

    /// The report of a run that was retried (reconnected after a temporary failure):
    /// `self` is what the earlier attempts did (a failed attempt's
    /// [`crate::Failed::report`]), `later` the next attempt's report. Everything both
    /// committed counts: per mailbox the work is summed, mailboxes only one attempt
    /// reached are kept. Failures and skipped entries are the later attempt's alone: an
    /// earlier attempt's failure was retried, and a mailbox that failed or skipped an
    /// entry is looked at again by the next attempt, which reports it again.
    #[must_use]
    pub fn merge(mut self, later: Report) -> Report {
        for mailbox in later.mailboxes {
            match self.mailboxes.iter_mut().find(|m| m.mailbox == mailbox.mailbox) {
                Some(earlier) => earlier.merge(mailbox),
                None => self.mailboxes.push(mailbox),
            }
        }
        for name in later.deleted_mailboxes {
            if !self.deleted_mailboxes.contains(&name) {
                self.deleted_mailboxes.push(name);
            }
        }
        self.renamed_mailboxes.extend(later.renamed_mailboxes);
        self.subscribed += later.subscribed;
        self.unsubscribed += later.unsubscribed;
        self.failures = later.failures;
        self.skipped = later.skipped;
        for warning in later.warnings {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        for name in later.filtered_mailboxes {
            if !self.filtered_mailboxes.contains(&name) {
                self.filtered_mailboxes.push(name);
            }
        }
        self.dry_run = later.dry_run;
        if later.state.is_some() {
            self.state = later.state;
        }
        self
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
    fn a_retry_adds_to_what_the_failed_attempt_did() {
        let inbox = MailboxName::inbox();
        let archive = MailboxName::new(["Archive"]).expect("name");
        let sent = MailboxName::new(["Sent"]).expect("name");
        let mut first = Report::default();
        let mut created = MailboxReport::new(inbox.clone(), MailboxAction::Create);
        (created.saved, created.bytes) = (600, 60_000);
        created.filtered.larger = 4;
        first.mailboxes.push(created);
        first.subscribed = 2;
        first.deleted_mailboxes.push(sent.clone());
        first.warnings.push("once".into());
        let mut later = Report::default();
        let mut resumed = MailboxReport::new(inbox.clone(), MailboxAction::Update);
        (resumed.saved, resumed.bytes) = (400, 40_000);
        resumed.filtered.larger = 4;
        later.mailboxes.push(resumed);
        later.mailboxes.push(MailboxReport::new(archive.clone(), MailboxAction::Create));
        later.deleted_mailboxes.push(sent);
        later.warnings.extend(["once".to_owned(), "twice".to_owned()]);
        let merged = first.merge(later);
        let totals = merged.totals();
        assert_eq!((totals.mailboxes, totals.created), (2, 2), "INBOX stays created");
        assert_eq!((totals.saved, totals.bytes), (1000, 100_000));
        assert_eq!(totals.filtered.larger, 4, "one listing's count, not the sum");
        assert_eq!((merged.subscribed, merged.deleted_mailboxes.len()), (2, 1));
        assert_eq!(merged.warnings, ["once", "twice"]);
    }

    #[test]
    fn human_bytes_known_answers() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(33 * 1024 * 1024), "33.0 MiB");
    }
}
