//! `--incremental`: what a catch-up re-run costs after a small change in a big folder
//! (issue 23 item 1). A folder of 100 000 messages is copied once by each tool; then, per
//! round, the source gets 10 flag changes, 5 new messages and 3 expunges in that folder,
//! and each tool re-runs. Our re-run is set against our no-op run (goal < 3×) and against
//! doveadm's and mbsync's re-runs of the same change (goal ≥ 20× faster).
//!
//! The source Dovecot stores the mail in a Maildir (2.3 re-reads the folder's 100 000
//! file names in every session after a change, which the re-runs all wait for) or in sdbox
//! (its index answers without reading the files): the second shows what the tools cost
//! when the server is not the bottleneck.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use testkit::{Dovecot, RawImap, fixtures};

use crate::measure::{self, Sample};
use crate::tools::{self, Setup, Tool};
use crate::{Cli, PASSWORD, Result, USER, corpus, verify};

/// The tools compared: ours without fsync (into a Maildir, and into sdbox, whose index
/// spares a flag change or expunge the folder's uidlist and directory), doveadm with
/// mail_fsync=never, mbsync.
const TOOLS: [Tool; 4] =
    [Tool::Dsync { fsync: false }, Tool::DsyncSdbox, Tool::Doveadm { fsync: false }, Tool::Mbsync];

/// Ours (and `--compare-dsync`'s build): timed no-op in every round, and set against its
/// own no-op.
fn is_ours(tool: Tool) -> bool {
    matches!(tool, Tool::Dsync { fsync: false } | Tool::DsyncSdbox | Tool::DsyncOther)
}

/// How the source Dovecot stores the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SourceStorage {
    /// `mail_location = maildir:~/Maildir`.
    Maildir,
    /// `mail_location = sdbox:~/sdbox`, converted from the generated Maildir by
    /// `doveadm backup -R` before the runs.
    Sdbox,
}

impl SourceStorage {
    fn label(self) -> &'static str {
        match self {
            SourceStorage::Maildir => "Maildir",
            SourceStorage::Sdbox => "sdbox",
        }
    }
}

/// One tool's samples.
#[derive(Debug, Default)]
struct Rows {
    full: Option<Sample>,
    noop: Vec<Sample>,
    rerun: Vec<Sample>,
    error: Option<String>,
    command: String,
}

/// Runs the scenario and returns its Markdown section; `dsync_other` (`--compare-dsync`,
/// e.g. a build from before a change) re-runs on the same changes as a row of its own.
pub(crate) fn run(
    storage: SourceStorage,
    dsync: &Path,
    dsync_other: Option<&Path>,
    work: &Path,
    cli: &Cli,
) -> Result<String> {
    let (messages, rounds, seed) = (cli.memory_messages, cli.incremental_runs, cli.seed);
    let (time_limit, skip) = (crate::time_limit(cli), &cli.skip);
    let builder = Dovecot::builder().temp_root(work);
    let dovecot = match storage {
        SourceStorage::Maildir => builder.user(USER, PASSWORD),
        SourceStorage::Sdbox => builder.user_with_mail(USER, PASSWORD, "sdbox:~/sdbox"),
    }
    .start();
    let maildir = dovecot.home(USER).join("Maildir");
    let started = Instant::now();
    corpus::generate_memory(&maildir, messages, 1, seed)?;
    testkit::chown_to_mail_user(&maildir);
    if storage == SourceStorage::Sdbox {
        // Dovecot's own conversion; the Maildir goes afterwards (tmpfs is memory).
        let location = format!("maildir:{}", maildir.display());
        dovecot.doveadm_ok(&["-o", "mail_fsync=never", "backup", "-R", "-u", USER, &location]);
        fs::remove_dir_all(&maildir)?;
    }
    let mut truth = verify::source_truth(dovecot.imap_port(), USER, PASSWORD)?;
    eprintln!(
        "incremental corpus ({}) ready in {:.1} s: {} messages",
        storage.label(),
        started.elapsed().as_secs_f64(),
        truth.messages
    );
    let scratch = work.join(format!("incremental-{}", storage.label()));
    fs::create_dir_all(&scratch)?;
    let mut tools: Vec<Tool> = TOOLS.to_vec();
    if dsync_other.is_some() {
        tools.insert(1, Tool::DsyncOther);
    }
    let tools: Vec<Tool> = tools
        .into_iter()
        .filter(|t| !skip.iter().any(|s| s == t.slug()))
        .filter(|t| *t != Tool::Mbsync || Path::new("/usr/bin/mbsync").exists())
        .collect();
    let mut rows: Vec<Rows> = tools.iter().map(|_| Rows::default()).collect();
    let mut imap = RawImap::login(dovecot.imap_port(), USER, PASSWORD);
    let mut present: Vec<u32> = (1..=messages).collect();
    for round in 0..=rounds {
        if round > 0 {
            change(&mut imap, &mut present, round)?;
            truth = verify::source_truth(dovecot.imap_port(), USER, PASSWORD)?;
            // A re-run a second later, as with the no-op runs: tools that trust
            // directory mtimes would otherwise wait for the clock.
            std::thread::sleep(Duration::from_millis(1100));
        }
        // Each round starts with another tool: the first one after a change meets a
        // server that has not re-read its Maildir yet.
        let count = tools.len();
        for index in (0..count).map(|i| (i + round) % count) {
            let (tool, row) = (&tools[index], &mut rows[index]);
            if row.error.is_some() {
                continue;
            }
            let setup = Setup {
                dovecot: &dovecot,
                dsync,
                dsync_other,
                work: scratch.clone(),
                port: dovecot.imap_port(),
                truth: &truth,
                source_maildir: maildir.clone(),
                time_limit,
            };
            if let Err(error) = step(&setup, *tool, row, round) {
                eprintln!("  {} FAILED: {error}", tool.label());
                row.error = Some(error.to_string());
            }
        }
    }
    Ok(render(storage, &tools, &rows, messages, rounds))
}

/// Round 0: the full copy and a no-op; later rounds: the re-run after the change, checked,
/// then (ours) a no-op in the same round.
fn step(setup: &Setup<'_>, tool: Tool, row: &mut Rows, round: usize) -> Result<()> {
    let dest = setup.work.join(format!("dest-{}", tool.slug()));
    let log = |what: &str| setup.work.join(format!("{}-{what}-{round}.log", tool.slug()));
    let invocation = tools::prepare(setup, tool, &dest)?.time_limit(setup.time_limit);
    if tool == Tool::Mbsync {
        // Expunges too are part of the change: mbsync removes them only when told.
        let config = setup.work.join("mbsync-dest-mbsync.conf");
        let mut text = fs::read_to_string(&config)?;
        if !text.contains("Expunge Near") {
            text.push_str("Expunge Near\n");
            fs::write(&config, text)?;
        }
    }
    row.command = invocation.display();
    let sample = measure::run(&invocation, &log("run"), &[0])?;
    tools::check(setup, tool, &dest)?;
    if round == 0 {
        eprintln!("  {:<46} full {:.2} s", tool.label(), sample.seconds);
        row.full = Some(sample);
    } else {
        eprintln!(
            "  round {round} {:<46} re-run {:.3} s (CPU {:.3} s)",
            tool.label(),
            sample.seconds,
            sample.cpu_seconds
        );
        row.rerun.push(sample);
    }
    if is_ours(tool) || round == 0 {
        std::thread::sleep(Duration::from_millis(1100));
        let noop = measure::run(&invocation, &log("noop"), &[0])?;
        eprintln!(
            "  round {round} {:<46} no-op {:.3} s (CPU {:.3} s)",
            tool.label(),
            noop.seconds,
            noop.cpu_seconds
        );
        row.noop.push(noop);
    }
    Ok(())
}

/// 10 flag changes, 5 new messages and 3 expunges in the big folder.
fn change(imap: &mut RawImap, present: &mut Vec<u32>, round: usize) -> Result<()> {
    let pick = |present: &[u32], i: usize| present[(round * 7919 + i * 9973) % present.len()];
    let flagged: Vec<String> = (0..10).map(|i| pick(present, i).to_string()).collect();
    imap.store("Bulk", &flagged.join(","), &format!("+FLAGS (\\Flagged $Round{round})"));
    for i in 0..5 {
        let body = fixtures::message(u32::try_from(round * 10 + i)?, "catch-up", "new mail");
        imap.append("Bulk", &[], None, &body);
    }
    let mut gone = Vec::new();
    for i in 10..13 {
        let uid = pick(present, i);
        present.retain(|&u| u != uid);
        gone.push(uid.to_string());
    }
    imap.expunge_uids("Bulk", &gone.join(","));
    Ok(())
}

fn median(samples: &[Sample]) -> Option<f64> {
    median_of(samples, |s| s.seconds)
}

fn median_of(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> Option<f64> {
    let mut seconds: Vec<f64> = samples.iter().map(value).collect();
    seconds.sort_by(f64::total_cmp);
    seconds.get(seconds.len() / 2).copied()
}

fn render(
    storage: SourceStorage,
    tools: &[Tool],
    rows: &[Rows],
    messages: u32,
    rounds: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Source in {}: re-run after 10 flag changes + 5 new + 3 expunged in a folder of \
         {messages}\n\n\
         Median of {rounds} rounds (a new change set each round; every tool re-runs on the \
         same change). Wall seconds (server included); the re-run's own CPU (user + system, the \
         server's not in it) and peak RSS. Our rows' re-run is set against their own no-op, \
         the others' against our no-op into a Maildir; \"tool's re-run / ours\" against our \
         re-run into a Maildir.\n\n\
         | tool | full copy | no-op | re-run | re-run / no-op (goal < 3×) | tool's re-run / ours (goal ≥ 20×) | re-run CPU | re-run peak RSS |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|",
        storage.label()
    );
    let ours = tools.iter().position(|t| *t == Tool::Dsync { fsync: false });
    let our_noop = ours.and_then(|i| median(&rows[i].noop));
    let our_rerun = ours.and_then(|i| median(&rows[i].rerun));
    for (tool, row) in tools.iter().zip(rows) {
        if let Some(error) = &row.error {
            let _ = writeln!(
                out,
                "| {} | failed: {} | | | | | | |",
                tool.label(),
                error.lines().next().unwrap_or("")
            );
            continue;
        }
        let rerun = median(&row.rerun);
        let noop = if is_ours(*tool) { median(&row.noop) } else { our_noop };
        let fmt = |v: Option<f64>| v.map_or_else(|| String::from("–"), |v| format!("{v:.3} s"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
            _ => String::from("–"),
        };
        let rss = row.rerun.iter().map(|s| s.max_rss_kib).max().map_or(0.0, tools::mib);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {rss:.1} MiB |",
            tool.label(),
            fmt(row.full.map(|s| s.seconds)),
            fmt(median(&row.noop)),
            fmt(rerun),
            ratio(rerun, noop),
            ratio(rerun, our_rerun),
            fmt(median_of(&row.rerun, |s| s.cpu_seconds)),
        );
    }
    let _ = writeln!(out, "\nCommands:\n");
    for (tool, row) in tools.iter().zip(rows) {
        let _ = writeln!(out, "- {}: `{}`", tool.label(), row.command);
    }
    out
}
