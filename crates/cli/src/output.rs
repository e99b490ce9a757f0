//! What the command prints: for one user a summary line (stdout), for a batch a table, or
//! with `--json` a machine-readable report. Problems go to stderr.
//!
//! The summary counts what the run committed, over every attempt of it (a reconnect does
//! not restart the count), and says first how it ended: a failed run's line starts with
//! `FAILED (exit N)`, and the errors follow it, the one that stopped the run first.

use std::fmt::Write as _;

use dsync_core::filter::{FlagCondition, MessageFilter};
use dsync_core::{FilteredMessages, Report, human_bytes};
use serde::Serialize;

use crate::job::Outcome;
use crate::verify::{Comparison, Difference};

/// At most this many differences of `backup --verify` are printed (all are in the log
/// and in `--json`; `dsync verify` lists them all).
const DIFFERENCES_SHOWN: usize = 20;

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
    /// What the filters (`-m`, `-x`, `-t`, `-e`, `-I`, `-O`) left out of the source: the
    /// operator's choice, not a loss.
    pub(crate) filtered: Filtered,
    /// Messages inside the message filters that a filtered backup could not save without
    /// a full rebuild (their UID is below the destination's UIDNEXT).
    pub(crate) need_rebuild: u64,
    /// `import`: messages the target already held, not imported again.
    pub(crate) already_imported: u64,
    /// The temporary failures after which the run reconnected and went on (`--retries`).
    pub(crate) reconnected_after: Vec<String>,
    /// `backup --verify`: the comparison after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verify: Option<Verification>,
    /// `--sieve-from`/`--sieve-to`: what happened to the Sieve scripts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sieve: Option<SieveResult>,
}

/// The Sieve part of a run for `--json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SieveResult {
    /// `ok`, `refused` (some scripts, exit 65) or `failed` (the part could not run).
    pub(crate) status: &'static str,
    pub(crate) scripts: usize,
    pub(crate) stored: usize,
    pub(crate) deleted: usize,
    pub(crate) activated: bool,
    /// Every refused step: `{script, action, reason}`.
    pub(crate) refused: Vec<RefusedScript>,
    /// Scripts skipped for a name that cannot be used (exit 65), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) skipped: Vec<String>,
    /// A two-way sync: what the source got, `{stored, deleted, activated}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<SourceChanges>,
    /// A two-way sync: each conflict, which side won and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) conflicts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// What a two-way sync did to the source's scripts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SourceChanges {
    pub(crate) stored: usize,
    pub(crate) deleted: usize,
    pub(crate) activated: bool,
}

/// A script the destination refused, with its reason.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RefusedScript {
    pub(crate) script: String,
    pub(crate) action: &'static str,
    pub(crate) reason: String,
}

impl SieveResult {
    /// The table's cell: the source's scripts, and how many were refused or skipped.
    fn cell(&self) -> String {
        let problems = self.refused.len() + self.skipped.len();
        match self.status {
            "failed" => "failed".to_owned(),
            _ if problems > 0 => format!("{}, {problems} not migrated", self.scripts),
            _ => self.scripts.to_string(),
        }
    }

    fn new(result: &Result<dsync_core::sieve::SieveReport, crate::exit::CliError>) -> SieveResult {
        match result {
            Ok(report) => SieveResult {
                status: if report.exit_code() == 0 { "ok" } else { "refused" },
                scripts: report.source_scripts,
                stored: report.stored,
                deleted: report.deleted,
                activated: report.activated,
                refused: report
                    .refused
                    .iter()
                    .map(|r| RefusedScript {
                        script: r.name.clone(),
                        action: r.action,
                        reason: r.reason.clone(),
                    })
                    .collect(),
                skipped: report.skipped.clone(),
                source: report.source_changes.as_ref().map(|c| SourceChanges {
                    stored: c.stored,
                    deleted: c.deleted,
                    activated: c.activated,
                }),
                conflicts: report.conflicts.clone(),
                error: None,
            },
            Err(error) => SieveResult {
                status: "failed",
                scripts: 0,
                stored: 0,
                deleted: 0,
                activated: false,
                refused: Vec::new(),
                skipped: Vec::new(),
                source: None,
                conflicts: Vec::new(),
                error: Some(error.to_string()),
            },
        }
    }
}

/// What the filters left out, by reason.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Filtered {
    /// Source mailboxes outside `-m`/`-x`.
    pub(crate) mailboxes: u64,
    /// Messages received before `-t`.
    pub(crate) received_before: u64,
    /// Messages received after `-e`.
    pub(crate) received_after: u64,
    /// Messages larger than `-I`.
    pub(crate) larger: u64,
    /// Messages left out by `-O`.
    pub(crate) flag: u64,
}

impl Filtered {
    fn new(report: &Report) -> Filtered {
        let messages = report.totals().filtered;
        Filtered {
            mailboxes: report.filtered_mailboxes.len() as u64,
            received_before: messages.received_before,
            received_after: messages.received_after,
            larger: messages.larger,
            flag: messages.flag,
        }
    }
}

/// `backup --verify`'s result for `--json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Verification {
    /// `identical`, `different` or `failed` (it could not be made).
    pub(crate) status: &'static str,
    pub(crate) mailboxes: u64,
    pub(crate) messages: u64,
    /// Contents were compared too (`--verify=bodies`).
    pub(crate) bodies: bool,
    pub(crate) differences: Vec<Difference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Verification {
    fn new(result: &Result<Comparison, crate::exit::CliError>) -> Verification {
        match result {
            Ok(comparison) => Verification {
                status: if comparison.differences.is_empty() { "identical" } else { "different" },
                mailboxes: comparison.mailboxes,
                messages: comparison.messages,
                bodies: comparison.bodies,
                differences: comparison.differences.clone(),
                error: None,
            },
            Err(error) => Verification {
                status: "failed",
                mailboxes: 0,
                messages: 0,
                bodies: false,
                differences: Vec::new(),
                error: Some(error.to_string()),
            },
        }
    }

    /// The table's cell.
    fn cell(&self) -> String {
        match self.status {
            "different" => format!("{} differ", self.differences.len()),
            status => status.to_owned(),
        }
    }
}

impl UserResult {
    pub(crate) fn new(
        verb: &str,
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
            filtered: Filtered::default(),
            need_rebuild: 0,
            already_imported: 0,
            reconnected_after: outcome.reconnects.clone(),
            verify: outcome.verification.as_ref().map(Verification::new),
            sieve: outcome.sieve.as_ref().map(SieveResult::new),
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
            result.filtered = Filtered::new(report);
            let unsaved: u64 = report.mailboxes.iter().map(|m| m.skipped).sum();
            if verb == "import" {
                result.already_imported = unsaved;
            } else {
                result.need_rebuild = unsaved;
            }
        }
        if let Some(error) = &outcome.error {
            result.errors.insert(0, error.to_string());
        }
        if let Some(Err(error)) = &outcome.verification {
            result.errors.push(format!("verify: {error}"));
        }
        result
    }
}

/// `ok`, `run again`, `differs` (`backup --verify`) or `failed`.
pub(crate) fn status(exit_code: u8) -> &'static str {
    match exit_code {
        0 => "ok",
        1 => "differs",
        2 => "run again",
        _ => "failed",
    }
}

/// One run's result as [`print_summary`] prints it.
pub(crate) struct Summary<'a> {
    pub(crate) verb: &'a str,
    pub(crate) source: &'a str,
    pub(crate) destination: &'a str,
    /// The run's message filters, to name the reasons of what they left out.
    pub(crate) message_filter: &'a MessageFilter,
    pub(crate) outcome: &'a Outcome,
    /// `-q`: only problems.
    pub(crate) quiet: bool,
    /// stdout carries a `-s` state: the summary goes to stderr.
    pub(crate) to_stderr: bool,
}

/// Prints how the run ended: the summary line (stdout, or stderr when stdout carries a
/// `-s` state), starting with `FAILED (exit N)` when it failed, then (stderr) the error
/// that stopped it, the mailboxes that failed and the entries left behind, then the
/// verification's verdict and differences (`backup --verify`).
pub(crate) fn print_summary(summary: &Summary<'_>) {
    let outcome = summary.outcome;
    let code = outcome.exit_code();
    let say = |line: &str| {
        if summary.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    if let Some(report) = &outcome.report
        && (!summary.quiet || code != 0)
    {
        say(&summary_line(summary, report, code));
    }
    if let Some(error) = &outcome.error {
        eprintln!("dsync: {error}");
    }
    // The scripts' own line; their refusals and errors were logged as they happened.
    if let Some(Ok(sieve)) = &outcome.sieve
        && (!summary.quiet || sieve.exit_code() != 0)
    {
        say(&sieve.summary());
    }
    let Some(report) = &outcome.report else { return };
    for failure in &report.failures {
        eprintln!("dsync: failed: {failure}");
    }
    for skipped in &report.skipped {
        eprintln!("dsync: skipped: {skipped}");
    }
    let unsaved: u64 = report.mailboxes.iter().map(|m| m.skipped).sum();
    if unsaved > 0 && summary.verb == "import" {
        // import counts what the target already held as skipped: not a problem.
        if !summary.quiet {
            eprintln!("dsync: {unsaved} messages were already there and not imported again");
        }
    } else if unsaved > 0 && !summary.message_filter.is_everything() {
        eprintln!(
            "dsync: warning: {unsaved} messages inside the message filters (-t/-e/-I/-O) were \
             not saved: their UIDs are below the destination's UIDNEXT, which only a full \
             rebuild can assign; run once without the message filters"
        );
    }
    match &outcome.verification {
        Some(Ok(comparison)) => {
            if !summary.quiet || !comparison.differences.is_empty() {
                let mut line = format!(
                    "verify {} <-> {}: {}",
                    summary.source,
                    summary.destination,
                    comparison.verdict()
                );
                if !comparison.differences.is_empty() {
                    line.push_str(" (exit 1)");
                }
                say(&line);
            }
            for difference in comparison.differences.iter().take(DIFFERENCES_SHOWN) {
                eprintln!("dsync: differs: {difference}");
            }
            let more = comparison.differences.len().saturating_sub(DIFFERENCES_SHOWN);
            if more > 0 {
                eprintln!("dsync: … and {more} more differences (dsync verify lists them all)");
            }
        }
        Some(Err(error)) => eprintln!("dsync: verify: not verified: {error}"),
        None => {}
    }
}

/// `backup A -> B: [FAILED (exit N): ]6 mailboxes (…) in 1.00s[ (1 reconnect)][; not copied (filters): …]`.
fn summary_line(summary: &Summary<'_>, report: &Report, code: u8) -> String {
    let totals = report.totals();
    let prefix = if report.dry_run { "dry run, would " } else { "" };
    let status = match code {
        0 | 1 => String::new(),
        2 => String::from("RUN AGAIN (exit 2): "),
        code => format!("FAILED (exit {code}): "),
    };
    let mut line = format!(
        "{prefix}{} {} -> {}: {status}{totals}",
        summary.verb, summary.source, summary.destination
    );
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
    let _ = write!(line, " in {:.2}s", summary.outcome.duration.as_secs_f64());
    match summary.outcome.reconnects.len() {
        0 => {}
        1 => line.push_str(" (1 reconnect)"),
        n => {
            let _ = write!(line, " ({n} reconnects)");
        }
    }
    let left_out = filtered_text(
        report.filtered_mailboxes.len() as u64,
        &totals.filtered,
        summary.message_filter,
    );
    if !left_out.is_empty() {
        let verb = if report.dry_run { "would not copy" } else { "not copied" };
        let _ = write!(line, "; {verb} (filters): {}", left_out.join(", "));
    }
    line
}

/// What the filters left out, one phrase per reason: `3 mailboxes (-m/-x)`,
/// `512 messages larger than 10.0 KiB (-I)`.
fn filtered_text(
    mailboxes: u64,
    messages: &FilteredMessages,
    filter: &MessageFilter,
) -> Vec<String> {
    let mut parts = Vec::new();
    if mailboxes > 0 {
        parts.push(format!("{mailboxes} mailboxes (-m/-x)"));
    }
    if messages.received_before > 0 {
        parts.push(format!("{} messages received before -t", messages.received_before));
    }
    if messages.received_after > 0 {
        parts.push(format!("{} messages received after -e", messages.received_after));
    }
    if messages.larger > 0 {
        let limit = filter.max_size.map(human_bytes).unwrap_or_default();
        parts.push(format!("{} messages larger than {limit} (-I)", messages.larger));
    }
    if messages.flag > 0 {
        let which = match &filter.flag {
            Some(FlagCondition::With(flag)) => format!("without {flag}"),
            Some(FlagCondition::Without(flag)) => format!("with {flag}"),
            None => String::new(),
        };
        parts.push(format!("{} messages {which} (-O)", messages.flag));
    }
    parts
}

/// The final table of a batch (`verb` words its last line: check finds, import imports,
/// the others copy). A VERIFY column appears when the run verified (`backup --verify`).
pub(crate) fn table(verb: &str, results: &[UserResult]) -> String {
    let verified = results.iter().any(|r| r.verify.is_some());
    let scripts = results.iter().any(|r| r.sieve.is_some());
    let mut header = vec!["USER", "STATUS", "EXIT", "MAILBOXES", "MESSAGES", "BYTES", "DURATION"];
    if scripts {
        header.push("SCRIPTS");
    }
    if verified {
        header.push("VERIFY");
    }
    header.push("ERROR");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.user.clone(),
                r.status.to_owned(),
                r.exit_code.to_string(),
                r.mailboxes.to_string(),
                r.messages.to_string(),
                human_bytes(r.bytes),
                format!("{:.1}s", r.duration_secs),
            ];
            if scripts {
                row.push(r.sieve.as_ref().map_or_else(|| "-".to_owned(), SieveResult::cell));
            }
            if verified {
                row.push(r.verify.as_ref().map_or_else(|| "-".to_owned(), Verification::cell));
            }
            row.push(r.errors.first().cloned().unwrap_or_default());
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    for row in &rows {
        line(row);
    }
    let ok = results.iter().filter(|r| r.exit_code == 0).count();
    let differ = results.iter().filter(|r| r.exit_code == 1).count();
    let again = results.iter().filter(|r| r.exit_code == 2).count();
    let failed = results.len() - ok - differ - again;
    let messages: u64 = results.iter().map(|r| r.messages).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let dry_run = results.iter().any(|r| r.dry_run);
    let done = match verb {
        "check" => "found",
        "import" if dry_run => "would be imported",
        "import" => "imported",
        _ if dry_run => "would be copied",
        _ => "copied",
    };
    let differ = if verified { format!("{differ} with differences, ") } else { String::new() };
    let _ = writeln!(
        out,
        "{} users: {ok} ok, {differ}{again} to run again, {failed} failed; {messages} messages ({}) {done}",
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
/// doveadm), else the first other failure's, else 1 if a verification found differences
/// (`backup --verify`), else 2 if any user should run again, else 0.
pub(crate) fn batch_exit_code(codes: &[u8]) -> u8 {
    if codes.contains(&75) {
        return 75;
    }
    if let Some(&code) = codes.iter().find(|&&c| c > 2) {
        return code;
    }
    [1, 2].into_iter().find(|code| codes.contains(code)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn batch_exit_codes() {
        assert_eq!(batch_exit_code(&[]), 0);
        assert_eq!(batch_exit_code(&[0, 0]), 0);
        assert_eq!(batch_exit_code(&[0, 2, 0]), 2);
        assert_eq!(batch_exit_code(&[2, 77, 68]), 77);
        assert_eq!(batch_exit_code(&[77, 75, 0]), 75);
        assert_eq!(batch_exit_code(&[2, 1, 0]), 1, "differences outrank run again");
        assert_eq!(batch_exit_code(&[1, 65]), 65, "a failure outranks differences");
    }

    #[test]
    fn table_aligns_columns() {
        let outcome = Outcome {
            report: Some(Report::default()),
            error: None,
            duration: Duration::from_millis(1500),
            dovecot_state: None,
            reconnects: Vec::new(),
            verification: None,
            sieve: None,
        };
        let results = [
            UserResult::new("backup", "alice", "s", "d", &outcome),
            UserResult::new("backup", "bartholomew", "s", "d", &outcome),
        ];
        let text = table("backup", &results);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER         STATUS"), "{text}");
        assert!(lines[1].starts_with("alice        ok"), "{text}");
        assert!(lines[3].starts_with("2 users: 2 ok"), "{text}");
        assert!(!lines[0].contains("SCRIPTS"), "{text}");
        // With Sieve scripts, a column counts them (and what was refused or skipped).
        let sieve = dsync_core::sieve::SieveReport {
            source_scripts: 3,
            skipped: vec!["sieve: script \"a/b\" on the source skipped".into()],
            ..Default::default()
        };
        let outcome = Outcome { sieve: Some(Ok(sieve)), ..outcome };
        let text = table("backup", &[UserResult::new("backup", "alice", "s", "d", &outcome)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("DURATION  SCRIPTS"), "{text}");
        assert!(lines[1].contains("1.5s      3, 1 not migrated"), "{text}");
    }
}
