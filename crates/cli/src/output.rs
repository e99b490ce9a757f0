//! What the command prints: problems on stderr, one summary line on stdout.

use std::fmt::Write as _;
use std::time::Duration;

use dsync_core::state::SyncState;
use dsync_core::{Observer, Report};

use crate::state_file::StateFile;

use crate::location::Location;

/// Hears about progress (the place for progress bars; silent for now) and persists the
/// state at the engine's checkpoints.
pub(crate) struct Progress<'a> {
    quiet: bool,
    state_file: Option<&'a StateFile>,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(quiet: bool, state_file: Option<&'a StateFile>) -> Progress<'a> {
        Progress { quiet, state_file }
    }
}

impl Observer for Progress<'_> {
    fn checkpoint(&mut self, state: &SyncState) {
        if let Some(file) = self.state_file
            && let Err(error) = file.save(state)
        {
            eprintln!("dsync: warning: cannot save the sync state: {error}");
        }
    }

    fn mailbox_finished(&mut self, report: &dsync_core::MailboxReport) {
        if !self.quiet && report.vanished > 0 {
            eprintln!(
                "dsync: {}: {} messages were expunged on the source while copying",
                report.mailbox, report.vanished
            );
        }
    }
}

/// Prints failures and warnings (stderr) and the summary line (stdout, unless quiet).
pub(crate) fn print_report(
    report: &Report,
    verb: &str,
    source: &Location,
    destination: &Location,
    elapsed: Duration,
    quiet: bool,
) {
    for failure in &report.failures {
        eprintln!("dsync: failed: {failure}");
    }
    if !quiet {
        for warning in &report.warnings {
            eprintln!("dsync: warning: {warning}");
        }
        let skipped: u64 = report.mailboxes.iter().map(|m| m.skipped).sum();
        if skipped > 0 {
            eprintln!(
                "dsync: warning: {skipped} messages inside the filters could not be saved without a full rebuild"
            );
        }
    }
    if quiet {
        return;
    }
    let totals = report.totals();
    let prefix = if report.dry_run { "dry run, would " } else { "" };
    let mut line = format!("{prefix}{verb} {source} -> {destination}: {totals}");
    if !report.deleted_mailboxes.is_empty() {
        let _ = write!(line, ", {} mailboxes deleted", report.deleted_mailboxes.len());
    }
    if report.subscribed + report.unsubscribed > 0 {
        let _ = write!(line, ", {} subscription changes", report.subscribed + report.unsubscribed);
    }
    if !report.failures.is_empty() {
        let _ = write!(line, ", {} mailboxes failed", report.failures.len());
    }
    println!("{line} in {:.2}s", elapsed.as_secs_f64());
}
