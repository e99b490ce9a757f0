//! `users`: the many-users benchmark (issue 23 item 3). One private Dovecot per account
//! size (1 000 small accounts, 100 medium ones by default) on tmpfs, and per `-j` value,
//! in the same run: `dsync backup -F users.txt -j N` over IMAP and over imaps (master-user
//! login), `doveadm backup -R -u USER imapc:` run per user by `xargs -P N` and with `-A`,
//! and `mbsync` with one channel per user (N processes, each with its share of channels).
//! For each: wall time, users per second, our CPU and the server's per user. Then where a
//! user's fixed cost goes: the `timing:` lines of dsync's per-user logs, and connect / TLS
//! / login / LIST measured in this process with `imapc` (TLS with a connector per
//! connection, shared without resumption, shared with resumption).
//!
//! ```text
//! cargo run --release -p dsync-benches --bin users -- --out benches/RESULTS-users.md
//! ```
//!
//! Needs root (Dovecot switches to the mail user), Dovecot 2.3 with doveadm, and mbsync.

// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[allow(dead_code)]
#[path = "../migration/corpus.rs"]
mod corpus;
mod fixed;
#[allow(dead_code)]
#[path = "../migration/measure.rs"]
mod measure;
mod peers;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::Parser;
use testkit::Dovecot;

use crate::peers::{Peer, Row, Set};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The many-users benchmark: dsync -j N vs doveadm per user vs mbsync per channel.
#[derive(Debug, Parser)]
#[command(name = "users")]
struct Cli {
    /// Small accounts (11 folders, --small-messages messages).
    #[arg(long, default_value_t = 1000)]
    small: usize,

    /// Messages per small account.
    #[arg(long, default_value_t = 20)]
    small_messages: u32,

    /// Medium accounts (11 folders, --medium-messages messages).
    #[arg(long, default_value_t = 100)]
    medium: usize,

    /// Messages per medium account.
    #[arg(long, default_value_t = 500)]
    medium_messages: u32,

    /// Users in parallel (-j for dsync, -P for xargs, mbsync processes); one row each.
    #[arg(long, value_name = "N", num_args = 1.., default_values_t = [1usize, 4, 16])]
    jobs: Vec<usize>,

    /// Leave these peers out (dsync, dsync-tls, dsync-other-tls, doveadm, doveadm-all, mbsync).
    #[arg(long, value_name = "PEER", num_args = 1..)]
    skip: Vec<String>,

    /// Users measured one by one in this process for the connect/TLS/login/LIST breakdown.
    #[arg(long, default_value_t = 200)]
    breakdown_users: usize,

    /// Where the servers and destinations live (tmpfs).
    #[arg(long, default_value = "/dev/shm")]
    work_dir: PathBuf,

    /// The dsync binary (default: built with cargo next to this one).
    #[arg(long)]
    dsync: Option<PathBuf>,

    /// Also time this other dsync build over imaps (e.g. one from before TLS sessions were
    /// shared), in the same rounds.
    #[arg(long, value_name = "PATH")]
    compare_dsync: Option<PathBuf>,

    /// Stop a timed command after this many seconds (it then counts as failed).
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    time_limit: u64,

    /// Keep the work dir (servers' logs, destinations' logs) for a look afterwards.
    #[arg(long)]
    keep: bool,

    /// Write the results (Markdown) here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).and_then(|a| a.to_str()) == Some("__measure") {
        return measure::wrapper_main(&args[2..]);
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("users: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let dsync = match &cli.dsync {
        Some(path) => path.clone(),
        None => build_dsync()?,
    };
    let work = tempfile::Builder::new().prefix("dsync-users-").tempdir_in(&cli.work_dir)?;
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))?;
    let bin = work.path().join("bin");
    fs::create_dir_all(&bin)?;
    measure::pin_self(&bin)?;
    let dsync = measure::pin(&dsync, &bin)?;
    let other_bin = bin.join("other");
    fs::create_dir_all(&other_bin)?;
    let other = cli.compare_dsync.as_ref().map(|p| measure::pin(p, &other_bin)).transpose()?;
    let mut peers: Vec<Peer> = Peer::ALL
        .into_iter()
        .filter(|p| !cli.skip.iter().any(|s| s == p.slug()))
        .filter(|p| *p != Peer::DsyncOtherTls || other.is_some())
        .collect();
    if !Path::new("/usr/bin/mbsync").exists() {
        eprintln!("mbsync not installed (apt-get install isync): skipped");
        peers.retain(|p| *p != Peer::Mbsync);
    }
    let started = Instant::now();
    let load_before = load_average();
    let mut markdown = String::new();
    let mut breakdowns = String::new();
    for (name, count, messages) in
        [("small", cli.small, cli.small_messages), ("medium", cli.medium, cli.medium_messages)]
    {
        if count == 0 {
            continue;
        }
        eprintln!("== {count} {name} accounts of {messages} messages: generating");
        let set = Set::start(work.path(), name, count, messages, "")?;
        eprintln!(
            "   {} messages, {:.1} MiB in all; server on port {}",
            set.messages,
            mib(set.bytes),
            set.dovecot.imap_port()
        );
        let rows = peers::run_all(&set, &peers, &cli.jobs, &dsync, other.as_deref(), cli)?;
        markdown.push_str(&report_set(&set, &rows, messages));
        if name == "small" {
            breakdowns.push_str(&fixed::dsync_phases(&set)?);
            breakdowns.push_str("### The protocol steps, measured in-process\n\n");
            breakdowns
                .push_str("Dovecot's default login mode (a new `imap-login` per connection):\n\n");
            breakdowns.push_str(&fixed::in_process(&set, cli.breakdown_users)?);
        }
        if cli.keep {
            eprintln!("kept: {}", set.dovecot.dir().display());
            std::mem::forget(set);
        } else {
            set.cleanup();
        }
    }
    if cli.breakdown_users > 0 && cli.small > 0 {
        // Dovecot's high-performance login mode: one imap-login serves many connections,
        // so a TLS session it ticketed can be resumed (each login process has its own
        // ticket key: in the default mode nothing resumes).
        let count = cli.breakdown_users;
        eprintln!("== {count} small accounts, imap-login serving many connections");
        let set = Set::start(work.path(), "reuse", count, cli.small_messages, REUSED_LOGINS)?;
        let tls_peers: Vec<Peer> = peers
            .iter()
            .copied()
            .filter(|p| matches!(p, Peer::Dsync | Peer::DsyncTls | Peer::DsyncOtherTls))
            .collect();
        let rows = peers::run_all(&set, &tls_peers, &[1], &dsync, other.as_deref(), cli)?;
        let _ = write!(
            markdown,
            "With imap-login in high-performance mode (`{}`), where TLS sessions can be \
             resumed:\n\n",
            REUSED_LOGINS.replace('\n', " ")
        );
        markdown.push_str(&report_set(&set, &rows, cli.small_messages));
        breakdowns.push_str("imap-login in high-performance mode (TLS sessions resumable):\n\n");
        breakdowns.push_str(&fixed::in_process(&set, count)?);
        set.cleanup();
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Run of {} (`users {}`), {:.0} s; load average before {load_before}, after {}.\n",
        unix_date(),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        started.elapsed().as_secs_f64(),
        load_average()
    );
    text.push_str(&markdown);
    text.push_str(&breakdowns);
    println!("{text}");
    if let Some(out) = &cli.out {
        fs::write(out, &text)?;
        eprintln!("written to {}", out.display());
    }
    if cli.keep {
        eprintln!("kept: {}", work.keep().display());
    }
    Ok(())
}

/// The table of one account size: per peer and -j, full and no-op.
fn report_set(set: &Set, rows: &[Row], messages: u32) -> String {
    let mut text = String::new();
    let users = set.users.len();
    let _ = writeln!(
        text,
        "### {users} {} accounts ({messages} messages in 11 folders each, {:.1} MiB in all)\n",
        set.name,
        mib(set.bytes)
    );
    let _ = writeln!(
        text,
        "| peer | -j | run | wall s | users/s | our CPU ms/user | server CPU ms/user | vs dsync |"
    );
    let _ = writeln!(text, "|---|--:|---|--:|--:|--:|--:|--:|");
    for row in rows {
        let reference = rows
            .iter()
            .find(|r| r.peer == Peer::Dsync && r.jobs == row.jobs && r.noop == row.noop)
            .and_then(|r| r.result.as_ref().ok())
            .map(|s| s.seconds);
        let run = if row.noop { "no-op" } else { "full" };
        match &row.result {
            Ok(sample) => {
                #[allow(clippy::cast_precision_loss)]
                let per_user = |seconds: f64| seconds * 1e3 / users as f64;
                let ratio = reference
                    .map_or(String::from("–"), |r| format!("{:.2}×", sample.seconds / r));
                #[allow(clippy::cast_precision_loss)]
                let rate = users as f64 / sample.seconds;
                let _ = writeln!(
                    text,
                    "| {} | {} | {run} | {:.2} | {rate:.0} | {:.2} | {:.2} | {ratio} |",
                    row.peer.label(),
                    row.jobs,
                    sample.seconds,
                    per_user(sample.cpu_seconds),
                    per_user(row.server_cpu),
                );
            }
            Err(error) => {
                let first = error.lines().next().unwrap_or_default();
                let _ = writeln!(
                    text,
                    "| {} | {} | {run} | failed: {first} | | | | |",
                    row.peer.label(),
                    row.jobs
                );
            }
        }
    }
    text.push_str("\nCommands (first user list / -j of each):\n\n```text\n");
    for row in rows.iter().filter(|r| !r.noop) {
        if rows.iter().any(|r| r.peer == row.peer && !r.noop && r.jobs < row.jobs) {
            continue;
        }
        let _ = writeln!(text, "{}", row.command);
    }
    text.push_str("```\n\n");
    text
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn build_dsync() -> Result<PathBuf> {
    eprintln!("building dsync (release)…");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "-p", "dsync-cli", "--bin", "dsync"])
        .status()?;
    if !status.success() {
        return Err("cargo build of dsync failed".into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no parent dir")?;
    Ok(dir.join("dsync"))
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn unix_date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Login processes that serve many connections (Dovecot's "high-performance mode").
const REUSED_LOGINS: &str = "service imap-login {\n  service_count = 0\n  process_min_avail = 2\n}";

/// Makes `Dovecot` usable from the other modules without naming testkit everywhere.
pub(crate) type Server = Dovecot;
