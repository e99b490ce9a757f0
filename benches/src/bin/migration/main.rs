//! `migration`: the issue 9 benchmark. Starts a private Dovecot on tmpfs, fills it with a
//! reproducible corpus (or a Maildir you give it), and times on the same data, in the same
//! run, destinations on tmpfs: our `dsync backup` (with and without `--no-fsync`, full and
//! no-op), `doveadm backup -R imapc:` (Dovecot's migration settings, full and no-op),
//! `mbsync` (full and no-op) and the raw `imapc` FETCH baseline, optionally behind a proxy
//! that adds latency. Every destination is checked against the source. Prints Markdown
//! tables (medians, MB/s, messages/s, peak RSS, ratios) and can write them to a file.
//!
//! ```text
//! cargo run --release -p dsync-benches --bin migration -- \
//!     --runs 5 --latency-ms 0 50 --memory --out benches/RESULTS.md
//! ```
//!
//! Needs root (Dovecot switches to the mail user), Dovecot 2.3 with doveadm, and mbsync
//! (`apt-get install dovecot-imapd isync`); a missing peer is skipped with a note.

// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod corpus;
mod imap2imap;
mod incremental;
mod measure;
mod proxy;
mod rawfetch;
mod report;
mod tools;
mod verify;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use testkit::Dovecot;

use crate::report::Scenario;
use crate::tools::{Setup, Tool};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "alicepw";

/// The issue 9 migration benchmark: dsync vs doveadm vs mbsync vs a raw FETCH.
#[derive(Debug, Parser)]
#[command(name = "migration")]
struct Cli {
    /// Messages in the generated corpus (~5.5 KB each on average).
    #[arg(long, default_value_t = 6000)]
    messages: u32,

    /// Serve this Maildir (Maildir++ root with cur/ new/ .Folder/) instead of generating.
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,

    /// Extra huge messages (sizes in MiB) added to the generated INBOX.
    #[arg(long, value_name = "MIB", num_args = 1..)]
    huge: Vec<u64>,

    /// Added latency in ms, each direction (like netem on lo); one table per value.
    #[arg(long, value_name = "MS", num_args = 1.., default_values_t = [0u64])]
    latency_ms: Vec<u64>,

    /// Timed rounds per tool (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,

    /// Timed rounds with added latency (they are long and depend little on CPU noise;
    /// no warm-up: the loopback rounds before them warmed Dovecot up).
    #[arg(long, default_value_t = 1)]
    latency_runs: usize,

    /// Untimed warm-up rounds before them (Dovecot builds its caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,

    /// Also run the memory mode: a 50 MiB message and a folder of 100 000 small ones.
    #[arg(long)]
    memory: bool,

    /// Run only the memory mode.
    #[arg(long)]
    memory_only: bool,

    /// Run only the incremental mode (issue 23): a folder of `--memory-messages`
    /// messages copied once, then per round 10 flag changes, 5 new and 3 expunged, and
    /// each tool's re-run timed (dsync --no-fsync, doveadm, mbsync).
    #[arg(long)]
    incremental_only: bool,

    /// Rounds of the incremental mode.
    #[arg(long, default_value_t = 3)]
    incremental_runs: usize,

    /// How the incremental mode's source Dovecot stores the mail: a Maildir (Dovecot
    /// re-reads the folder after each change) and sdbox (its index answers), each a
    /// section of its own.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "maildir,sdbox")]
    incremental_sources: Vec<incremental::SourceStorage>,

    /// Messages in the memory mode's big folder.
    #[arg(long, default_value_t = 100_000)]
    memory_messages: u32,

    /// Size of the memory mode's big message, MiB.
    #[arg(long, default_value_t = 50)]
    memory_big_mib: u64,

    /// Also run the many-folders mode once per count: that many subscribed folders with
    /// one message each, with our Maildir → Maildir path as one more row.
    #[arg(long, value_name = "N", num_args = 1..)]
    folders: Vec<u32>,

    /// Run only the many-folders mode.
    #[arg(long)]
    folders_only: bool,

    /// Timed rounds per count in the many-folders mode (no warm-up: reading the source's
    /// truth over IMAP has indexed every folder).
    #[arg(long, default_value_t = 1)]
    folders_runs: usize,

    /// Stop a timed command after this many seconds; it then counts as failed ("did not
    /// finish"). 0: no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    time_limit: u64,

    /// Leave these tools out (dsync, dsync-nofsync, dsync-parallel, dsync-maildir,
    /// dsync-remote, dsync-sdbox, doveadm, doveadm-fsync, doveadm-remote, doveadm-sdbox,
    /// mbsync, raw-discard, raw-write, raw-maildir; for `--imap`: imap-dsync,
    /// imap-imapsync, imap-mbsync).
    #[arg(long, value_name = "TOOL", num_args = 1..)]
    skip: Vec<String>,

    /// Where the server, corpus and destinations live (tmpfs).
    #[arg(long, default_value = "/dev/shm")]
    work_dir: PathBuf,

    /// The dsync binary (default: built with cargo next to this one).
    #[arg(long)]
    dsync: Option<PathBuf>,

    /// Also time this other dsync build (`--no-fsync`, full and no-op; with
    /// `--incremental-only` its re-runs), e.g. one from before a change, in the same rounds.
    #[arg(long, value_name = "PATH")]
    compare_dsync: Option<PathBuf>,

    /// Corpus seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Only generate the corpus, serve it for this many seconds (printing the port, user
    /// and password) and exit: for profiling a client by hand.
    #[arg(long, value_name = "SECONDS")]
    serve: Option<u64>,

    /// Also time IMAP → IMAP (into a second, empty Dovecot): ours, imapsync (with
    /// `--imapsync`) and mbsync's IMAP → IMAP channel, each result read back over IMAP.
    #[arg(long)]
    imap: bool,

    /// Run only the IMAP → IMAP rows.
    #[arg(long)]
    imap_only: bool,

    /// The imapsync script for the IMAP → IMAP rows (its row is skipped without it).
    #[arg(long, value_name = "PATH")]
    imapsync: Option<PathBuf>,

    /// IMAP → IMAP: also time ours with `--parallel-folders N` for each N given (N > 1;
    /// N = 1 is the plain row), in the same rounds.
    #[arg(long, value_name = "N", num_args = 1..)]
    imap_parallel: Vec<usize>,

    /// Write the results (Markdown) here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("__measure") => return measure::wrapper_main(&args[2..]),
        Some("__rawfetch") => return rawfetch::main(&args[2..]),
        _ => {}
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("migration: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let dsync = match &cli.dsync {
        Some(path) => path.clone(),
        None => build_dsync()?,
    };
    let work = tempfile::Builder::new().prefix("dsync-bench-").tempdir_in(&cli.work_dir)?;
    // Dovecot's auth process (user `dovecot`) must traverse it.
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))?;
    let bin = work.path().join("bin");
    fs::create_dir_all(&bin)?;
    measure::pin_self(&bin)?;
    let dsync = measure::pin(&dsync, &bin)?;
    let other_bin = bin.join("other");
    fs::create_dir_all(&other_bin)?;
    let dsync_other =
        cli.compare_dsync.as_ref().map(|path| measure::pin(path, &other_bin)).transpose()?;
    let mut tools: Vec<Tool> =
        Tool::ALL.into_iter().filter(|t| !cli.skip.iter().any(|s| s == t.slug())).collect();
    if dsync_other.is_some() {
        tools.insert(2, Tool::DsyncOther);
    }
    if !Path::new("/usr/bin/mbsync").exists() {
        eprintln!("mbsync not installed (apt-get install isync): skipped");
        tools.retain(|t| *t != Tool::Mbsync);
    }
    let load_before = load_average();
    let started = Instant::now();
    if cli.incremental_only {
        let mut sections = Vec::new();
        for storage in &cli.incremental_sources {
            sections.push(incremental::run(
                *storage,
                &dsync,
                dsync_other.as_deref(),
                work.path(),
                cli,
            )?);
        }
        let section = sections.join("\n");
        let text = format!(
            "{section}\n{}\nRun: `{}` in {:.0} s, load average before {load_before}, after {}.\n",
            machine(&cli.work_dir),
            command_line(),
            started.elapsed().as_secs_f64(),
            load_average()
        );
        print!("{text}");
        if let Some(out) = &cli.out {
            fs::write(out, text)?;
        }
        return Ok(());
    }
    let mut scenarios = Vec::new();
    let mut imap_text = String::new();
    if cli.imap || cli.imap_only {
        imap_text = imap_rows(cli, &dsync, work.path())?;
    }
    if !cli.memory_only && !cli.folders_only && !cli.imap_only {
        scenarios.extend(normal(cli, &dsync, dsync_other.as_deref(), work.path(), &tools)?);
    }
    if (cli.memory || cli.memory_only) && !cli.folders_only && !cli.imap_only {
        scenarios.push(memory(cli, &dsync, dsync_other.as_deref(), work.path(), &tools)?);
    }
    if !cli.memory_only && !cli.imap_only {
        let mut tools = tools.clone();
        if !cli.skip.iter().any(|s| s == Tool::DsyncMaildir.slug()) {
            let after = tools.iter().position(|t| *t == Tool::Dsync { fsync: false });
            tools.insert(after.map_or(0, |i| i + 1), Tool::DsyncMaildir);
        }
        for &count in &cli.folders {
            scenarios.push(folders(
                cli,
                count,
                &dsync,
                dsync_other.as_deref(),
                work.path(),
                &tools,
            )?);
        }
    }
    let mut text = String::from("# Migration benchmark (issue 9)\n\n");
    let _ = writeln!(text, "Command: `{}`\n", command_line());
    let _ = writeln!(text, "{}", machine(&cli.work_dir));
    let _ = writeln!(
        text,
        "Load average before: {load_before}; after: {}; total time {:.0} s.\n",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    text.push_str(
        "Times are medians of the timed rounds (wall clock of the child process, started and \
         reaped by a wrapper); MB/s and msg/s are the source's RFC822.SIZE total and message \
         count over that time; peak RSS is the child's `ru_maxrss` (max over rounds). All \
         tools read the same Dovecot over plain IMAP on 127.0.0.1 and write into the work \
         dir, where the served Maildir lives too.\n\n",
    );
    for scenario in &scenarios {
        text.push_str(&scenario.render());
        text.push('\n');
    }
    text.push_str(&imap_text);
    println!("{text}");
    if let Some(out) = &cli.out {
        fs::write(out, &text)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// The default (or given) corpus, once per latency.
fn normal(
    cli: &Cli,
    dsync: &Path,
    dsync_other: Option<&Path>,
    work: &Path,
    tools: &[Tool],
) -> Result<Vec<Scenario>> {
    let (dovecot, corpus_text, truth) = source_server(cli, work)?;
    let maildir = dovecot.home(USER).join("Maildir");
    if let Some(seconds) = cli.serve {
        println!(
            "serving imap://{USER}@127.0.0.1:{}?tls=none (password {PASSWORD}) for {seconds} s; \
             Dovecot config {}",
            dovecot.imap_port(),
            dovecot.config_file().display()
        );
        let mut proxies = Vec::new();
        for &latency in cli.latency_ms.iter().filter(|&&l| l > 0) {
            let proxy = proxy::Proxy::start(dovecot.imap_port(), Duration::from_millis(latency))?;
            println!("  +{latency} ms each way: port {}", proxy.port());
            proxies.push(proxy);
        }
        std::thread::sleep(Duration::from_secs(seconds));
        return Ok(Vec::new());
    }
    let mut scenarios = Vec::new();
    for &latency in &cli.latency_ms {
        let proxy = (latency > 0)
            .then(|| proxy::Proxy::start(dovecot.imap_port(), Duration::from_millis(latency)))
            .transpose()?;
        let port = proxy.as_ref().map_or(dovecot.imap_port(), proxy::Proxy::port);
        eprintln!("latency +{latency} ms each way:");
        let scratch = work.join(format!("latency-{latency}"));
        fs::create_dir_all(&scratch)?;
        let setup = Setup {
            dovecot: &dovecot,
            dsync,
            dsync_other,
            work: scratch,
            port,
            truth: &truth,
            source_maildir: maildir.clone(),
            time_limit: time_limit(cli),
        };
        let (warmup, runs) =
            if latency == 0 { (cli.warmup, cli.runs.max(1)) } else { (0, cli.latency_runs.max(1)) };
        let outcomes = tools::run_all(&setup, tools, warmup, runs);
        scenarios.push(Scenario {
            title: if latency == 0 {
                String::from("Loopback, no added latency")
            } else {
                format!("Loopback + {latency} ms each way (RTT + {} ms)", 2 * latency)
            },
            description: format!(
                "{corpus_text}: {} messages, {:.1} MB (RFC822.SIZE), {} folders. {} timed rounds after {} warm-up.",
                truth.messages,
                to_mb(truth.bytes),
                truth.folders.len(),
                runs,
                warmup
            ),
            messages: truth.messages,
            bytes: truth.bytes,
            outcomes,
            goals: latency == 0 && cli.corpus.is_none() && cli.huge.is_empty(),
        });
    }
    Ok(scenarios)
}

/// The source Dovecot serving the corpus (generated or `--corpus`), its description and
/// what it holds.
fn source_server(cli: &Cli, work: &Path) -> Result<(Dovecot, String, verify::Truth)> {
    let dovecot = Dovecot::builder().user(USER, PASSWORD).temp_root(work).start();
    let maildir = dovecot.home(USER).join("Maildir");
    let started = Instant::now();
    let corpus_text = if let Some(dir) = &cli.corpus {
        corpus::copy(dir, &maildir)?;
        format!("Corpus: a copy of `{}`", dir.display())
    } else {
        let summary = corpus::generate(&maildir, cli.messages, &cli.huge, cli.seed)?;
        format!(
            "Corpus: generated (seed {}), {} messages in {} folders{}",
            cli.seed,
            summary.messages,
            summary.folders,
            if cli.huge.is_empty() {
                String::new()
            } else {
                format!(", with huge messages of {:?} MiB", cli.huge)
            }
        )
    };
    testkit::chown_to_mail_user(&maildir);
    let truth = verify::source_truth(dovecot.imap_port(), USER, PASSWORD)?;
    eprintln!(
        "corpus ready in {:.1} s: {} messages, {:.1} MB in {} folders",
        started.elapsed().as_secs_f64(),
        truth.messages,
        to_mb(truth.bytes),
        truth.folders.len()
    );
    Ok((dovecot, corpus_text, truth))
}

/// The IMAP → IMAP rows on the corpus, loopback, as Markdown.
fn imap_rows(cli: &Cli, dsync: &Path, work: &Path) -> Result<String> {
    let (source, corpus_text, truth) = source_server(cli, work)?;
    let snapshot = testkit::RawImap::login(source.imap_port(), USER, PASSWORD).snapshot();
    let tools = imap2imap::available_tools(cli.imapsync.as_deref(), &cli.skip, &cli.imap_parallel);
    let (warmup, runs) = (cli.warmup, cli.runs.max(1));
    let destination = imap2imap::destination(work, &tools, warmup + runs);
    let scratch = work.join("imap");
    fs::create_dir_all(&scratch)?;
    let setup = imap2imap::ImapSetup {
        source: &source,
        source_snapshot: &snapshot,
        dsync,
        imapsync: cli.imapsync.as_deref(),
        work: scratch,
        time_limit: time_limit(cli),
    };
    eprintln!("IMAP → IMAP:");
    let outcomes = imap2imap::run_all(&setup, &destination, &tools, warmup, runs);
    let subscriptions = snapshot.subscriptions.len();
    Ok(imap2imap::render(
        "IMAP → IMAP: into a second, empty Dovecot (mail_fsync = never)",
        &format!(
            "{corpus_text}: {} messages, {:.1} MB (RFC822.SIZE), {} folders, {subscriptions} \
             subscriptions. Each tool copies the source account into an empty account of a \
             second private Dovecot on loopback (plain IMAP both sides), then runs again \
             1.1 s later (no-op). Each result is read back through the destination's IMAP \
             and compared with the source by content: folders, subscriptions, per-folder \
             messages by their bytes (duplicates counted), system flags, keywords, \
             INTERNALDATE. Dovecot CPU: user+system time of the source's and the \
             destination's server processes during the full run. {runs} timed rounds after \
             {warmup} warm-up.",
            truth.messages,
            to_mb(truth.bytes),
            truth.folders.len(),
        ),
        truth.messages,
        truth.bytes,
        &outcomes,
    ))
}

/// `count` subscribed folders of one message each: costs that grow with the number of
/// mailboxes show here.
fn folders(
    cli: &Cli,
    count: u32,
    dsync: &Path,
    dsync_other: Option<&Path>,
    work: &Path,
    tools: &[Tool],
) -> Result<Scenario> {
    let dovecot = Dovecot::builder().user(USER, PASSWORD).temp_root(work).start();
    let maildir = dovecot.home(USER).join("Maildir");
    let started = Instant::now();
    corpus::generate_folders(&maildir, count, cli.seed)?;
    testkit::chown_to_mail_user(&maildir);
    let truth = verify::source_truth(dovecot.imap_port(), USER, PASSWORD)?;
    eprintln!(
        "{count} folders ready in {:.1} s: {} messages, {:.1} MB",
        started.elapsed().as_secs_f64(),
        truth.messages,
        to_mb(truth.bytes)
    );
    if let Some(seconds) = cli.serve {
        println!(
            "serving imap://{USER}@127.0.0.1:{}?tls=none (password {PASSWORD}) for {seconds} s",
            dovecot.imap_port()
        );
        std::thread::sleep(Duration::from_secs(seconds));
    }
    let scratch = work.join(format!("folders-{count}"));
    fs::create_dir_all(&scratch)?;
    let setup = Setup {
        dovecot: &dovecot,
        dsync,
        dsync_other,
        work: scratch,
        port: dovecot.imap_port(),
        truth: &truth,
        source_maildir: maildir,
        time_limit: time_limit(cli),
    };
    eprintln!("{count} folders:");
    let outcomes = tools::run_all(&setup, tools, 0, cli.folders_runs.max(1));
    Ok(Scenario {
        title: format!("Many folders: {count} subscribed folders"),
        description: format!(
            "INBOX and {count} folders with one message of 2–4 KiB each, every one subscribed: \
             {} messages, {:.1} MB. {} timed round(s), no warm-up (reading the source over \
             IMAP first has indexed every folder). A command still running after {} is \
             stopped; its row then says so.",
            truth.messages,
            to_mb(truth.bytes),
            cli.folders_runs.max(1),
            time_limit(cli)
                .map_or_else(|| String::from("(no limit)"), |l| format!("{} s", l.as_secs()))
        ),
        messages: truth.messages,
        bytes: truth.bytes,
        outcomes,
        goals: false,
    })
}

fn time_limit(cli: &Cli) -> Option<Duration> {
    (cli.time_limit > 0).then(|| Duration::from_secs(cli.time_limit))
}

/// A 50 MiB message and a folder of 100 000 small ones: peak RSS matters here.
fn memory(
    cli: &Cli,
    dsync: &Path,
    dsync_other: Option<&Path>,
    work: &Path,
    tools: &[Tool],
) -> Result<Scenario> {
    // Dovecot's imap process indexes the whole folder in memory: its default 256 MiB
    // address-space limit ends the connection at 1 000 000 messages.
    let dovecot = Dovecot::builder()
        .user(USER, PASSWORD)
        .temp_root(work)
        .extra_config("service imap {\n  vsz_limit = 4G\n}")
        .start();
    let maildir = dovecot.home(USER).join("Maildir");
    let started = Instant::now();
    corpus::generate_memory(&maildir, cli.memory_messages, cli.memory_big_mib, cli.seed)?;
    testkit::chown_to_mail_user(&maildir);
    let truth = verify::source_truth(dovecot.imap_port(), USER, PASSWORD)?;
    eprintln!(
        "memory corpus ready in {:.1} s: {} messages, {:.1} MB",
        started.elapsed().as_secs_f64(),
        truth.messages,
        to_mb(truth.bytes)
    );
    if let Some(seconds) = cli.serve {
        println!(
            "serving imap://{USER}@127.0.0.1:{}?tls=none (password {PASSWORD}) for {seconds} s",
            dovecot.imap_port()
        );
        std::thread::sleep(Duration::from_secs(seconds));
    }
    let scratch = work.join("memory");
    fs::create_dir_all(&scratch)?;
    let setup = Setup {
        dovecot: &dovecot,
        dsync,
        dsync_other,
        work: scratch,
        port: dovecot.imap_port(),
        truth: &truth,
        source_maildir: maildir,
        time_limit: time_limit(cli),
    };
    eprintln!("memory mode:");
    // One warm-up (Dovecot indexes 100 000 files) and one timed round.
    let outcomes = tools::run_all(&setup, tools, 1, 1);
    Ok(Scenario {
        title: String::from("Memory mode"),
        description: format!(
            "INBOX with one {} MiB message between two small ones, and a folder of {} messages of 1–3 KiB: {} messages, {:.1} MB. Target: our peak RSS < 64 MiB. One timed round after one warm-up.",
            cli.memory_big_mib,
            cli.memory_messages,
            truth.messages,
            to_mb(truth.bytes)
        ),
        messages: truth.messages,
        bytes: truth.bytes,
        outcomes,
        goals: false,
    })
}

/// Builds `dsync` with the profile this binary was built with, next to it.
fn build_dsync() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no parent directory")?;
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("release");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let profile_arg = if profile == "debug" { "dev" } else { profile };
    eprintln!("building dsync ({profile_arg})…");
    let status = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "-q",
            "-p",
            "dsync-cli",
            "--bin",
            "dsync",
            "--profile",
            profile_arg,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .status()?;
    if !status.success() {
        return Err("building dsync failed".into());
    }
    Ok(dir.join("dsync"))
}

#[allow(clippy::cast_precision_loss)]
fn to_mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p dsync-benches --bin migration -- {}", args.join(" "))
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU, memory, kernel, the work dir's file system and tool versions.
fn machine(work_dir: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse::<u64>().ok())
        .unwrap_or(0)
        >> 20;
    let output = |program: &str, args: &[&str]| {
        Command::new(program).args(args).output().map_or_else(
            |_| String::from("not installed"),
            |o| {
                let text = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
                text.lines().next().unwrap_or_default().trim().to_string()
            },
        )
    };
    format!(
        "Machine: {cpu}, {cores} cores, {memory} GiB RAM, Linux {}; work dir {} ({}). \
         Dovecot {}, {}, {}.\n",
        output("uname", &["-r"]),
        work_dir.display(),
        output("stat", &["-f", "-c", "%T", &work_dir.to_string_lossy()]),
        output("/usr/sbin/dovecot", &["--version"]),
        output("/usr/bin/mbsync", &["--version"]),
        output("rustc", &["--version"]),
    )
}
