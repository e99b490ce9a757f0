//! What the command prints: for one user a summary line (stdout), for a batch a table, or
//! with `--json` a machine-readable report. Problems go to stderr.

use std::fmt::Write as _;
use std::time::Duration;

use dsync_core::{Report, human_bytes};
use serde::Serialize;

use crate::job::Outcome;

/// One user's line of the final report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UserResult {
    pub(crate) user: String,
    pub(crate) source: String,
    pub(crate) destination: String,
    /// `ok`, `run again` (exit 2) or `failed`.
    pub(crate) status: &'static str,
    pub(crate) exit_code: u8,
    pub(crate) dry_run: bool,
    pub(crate) mailboxes: u64,
    pub(crate) mailboxes_created: u64,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    /// Of `messages`, copied from a body the destination already held (`-a`).
    pub(crate) copied_locally: u64,
    pub(crate) expunged: u64,
    pub(crate) flag_changes: u64,
    pub(crate) mailboxes_deleted: u64,
    pub(crate) mailboxes_renamed: u64,
    pub(crate) subscription_changes: u64,
    pub(crate) duration_secs: f64,
    pub(crate) errors: Vec<String>,
    /// Entries left behind, with the reason (the run then exits 65).
    pub(crate) skipped: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

impl UserResult {
    pub(crate) fn new(
        user: &str,
        source: &str,
        destination: &str,
        outcome: &Outcome,
    ) -> UserResult {
        let exit_code = outcome.exit_code();
        let mut result = UserResult {
            user: user.to_owned(),
            source: source.to_owned(),
            destination: destination.to_owned(),
            status: status(exit_code),
            exit_code,
            dry_run: false,
            mailboxes: 0,
            mailboxes_created: 0,
            messages: 0,
            bytes: 0,
            copied_locally: 0,
            expunged: 0,
            flag_changes: 0,
            mailboxes_deleted: 0,
            mailboxes_renamed: 0,
            subscription_changes: 0,
            duration_secs: (outcome.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            errors: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
        };
        if let Some(report) = &outcome.report {
            let totals = report.totals();
            result.dry_run = report.dry_run;
            result.mailboxes = totals.mailboxes;
            result.mailboxes_created = totals.created;
            result.messages = totals.saved;
            result.bytes = totals.bytes;
            result.copied_locally = totals.copied_locally;
            result.expunged = totals.expunged;
            result.flag_changes = totals.flags_changed;
            result.mailboxes_deleted = report.deleted_mailboxes.len() as u64;
            result.mailboxes_renamed = report.renamed_mailboxes.len() as u64;
            result.subscription_changes = report.subscribed + report.unsubscribed;
            result.errors.extend(report.failures.iter().map(ToString::to_string));
            result.skipped.extend(report.skipped.iter().map(ToString::to_string));
            result.warnings.clone_from(&report.warnings);
        }
        if let Some(error) = &outcome.error {
            result.errors.insert(0, error.to_string());
        }
        result
    }
}

/// `ok`, `run again` or `failed`.
pub(crate) fn status(exit_code: u8) -> &'static str {
    match exit_code {
        0 => "ok",
        2 => "run again",
        _ => "failed",
    }
}

/// Prints mailbox failures (stderr) and the summary line (stdout, or stderr when stdout
/// carries a `-s` state).
pub(crate) fn print_summary(
    report: &Report,
    verb: &str,
    source: &str,
    destination: &str,
    elapsed: Duration,
    quiet: bool,
    summary_to_stderr: bool,
) {
    for failure in &report.failures {
        eprintln!("dsync: failed: {failure}");
    }
    for skipped in &report.skipped {
        eprintln!("dsync: skipped: {skipped}");
    }
    if quiet {
        return;
    }
    let skipped: u64 = report.mailboxes.iter().map(|m| m.skipped).sum();
    if skipped > 0 && verb == "import" {
        // import counts what the target already held as skipped: not a problem.
        eprintln!("dsync: {skipped} messages were already there and not imported again");
    } else if skipped > 0 {
        eprintln!(
            "dsync: warning: {skipped} messages inside the filters could not be saved without a full rebuild"
        );
    }
    let totals = report.totals();
    let prefix = if report.dry_run { "dry run, would " } else { "" };
    let mut line = format!("{prefix}{verb} {source} -> {destination}: {totals}");
    if !report.deleted_mailboxes.is_empty() {
        let _ = write!(line, ", {} mailboxes deleted", report.deleted_mailboxes.len());
    }
    if !report.renamed_mailboxes.is_empty() {
        let _ = write!(line, ", {} mailboxes renamed", report.renamed_mailboxes.len());
    }
    if report.subscribed + report.unsubscribed > 0 {
        let _ = write!(line, ", {} subscription changes", report.subscribed + report.unsubscribed);
    }
    if !report.failures.is_empty() {
        let _ = write!(line, ", {} mailboxes failed", report.failures.len());
    }
    if !report.skipped.is_empty() {
        let _ = write!(line, ", {} entries skipped", report.skipped.len());
    }
    let _ = write!(line, " in {:.2}s", elapsed.as_secs_f64());
    if summary_to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// The final table of a batch.
pub(crate) fn table(results: &[UserResult]) -> String {
    let header = ["USER", "STATUS", "EXIT", "MAILBOXES", "MESSAGES", "BYTES", "DURATION", "ERROR"];
    let rows: Vec<[String; 8]> = results
        .iter()
        .map(|r| {
            [
                r.user.clone(),
                r.status.to_owned(),
                r.exit_code.to_string(),
                r.mailboxes.to_string(),
                r.messages.to_string(),
                human_bytes(r.bytes),
                format!("{:.1}s", r.duration_secs),
                r.errors.first().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    let ok = results.iter().filter(|r| r.exit_code == 0).count();
    let again = results.iter().filter(|r| r.exit_code == 2).count();
    let failed = results.len() - ok - again;
    let messages: u64 = results.iter().map(|r| r.messages).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let _ = writeln!(
        out,
        "{} users: {ok} ok, {again} to run again, {failed} failed; {messages} messages ({}) copied",
        results.len(),
        human_bytes(bytes)
    );
    out
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub(crate) struct JsonReport<'a> {
    pub(crate) verb: &'a str,
    pub(crate) exit_code: u8,
    pub(crate) duration_secs: f64,
    pub(crate) users: &'a [UserResult],
}

/// Prints the `--json` document on stdout.
pub(crate) fn print_json(report: &JsonReport<'_>) {
    match serde_json::to_string_pretty(report) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("dsync: cannot encode the JSON report: {error}"),
    }
}

/// The exit code of a batch: 75 when any user failed temporarily (it wins, as in
/// doveadm), else the first other failure's, else 2 if any user should run again, else 0.
pub(crate) fn batch_exit_code(codes: &[u8]) -> u8 {
    if codes.contains(&75) {
        return 75;
    }
    if let Some(&code) = codes.iter().find(|&&c| c != 0 && c != 2) {
        return code;
    }
    if codes.contains(&2) { 2 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_exit_codes() {
        assert_eq!(batch_exit_code(&[]), 0);
        assert_eq!(batch_exit_code(&[0, 0]), 0);
        assert_eq!(batch_exit_code(&[0, 2, 0]), 2);
        assert_eq!(batch_exit_code(&[2, 77, 68]), 77);
        assert_eq!(batch_exit_code(&[77, 75, 0]), 75);
    }

    #[test]
    fn table_aligns_columns() {
        let outcome = Outcome {
            report: Some(Report::default()),
            error: None,
            duration: Duration::from_millis(1500),
            dovecot_state: None,
        };
        let results = [
            UserResult::new("alice", "s", "d", &outcome),
            UserResult::new("bartholomew", "s", "d", &outcome),
        ];
        let text = table(&results);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER         STATUS"), "{text}");
        assert!(lines[1].starts_with("alice        ok"), "{text}");
        assert!(lines[3].starts_with("2 users: 2 ok"), "{text}");
    }
}
