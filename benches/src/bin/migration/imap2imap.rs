//! IMAP → IMAP rows: our `dsync backup imap:// imap://`, imapsync and mbsync's IMAP → IMAP
//! channel, from the source Dovecot into a second, empty private Dovecot
//! (`mail_fsync = never`, one fresh account per tool and round), full run and no-op
//! re-run. Each result is read back through the destination Dovecot's IMAP and compared
//! with the source by content (imapsync and mbsync renumber): folders, subscriptions,
//! per-folder messages by their bytes, flags, keywords and INTERNALDATE. What a tool lost
//! is reported, not hidden: it keeps its row, and the loss is printed next to it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::{AccountSnapshot, Dovecot, MessageSnapshot, RawImap};

use crate::measure::{self, Invocation, Sample};
use crate::tools::mib;
use crate::{PASSWORD, Result, USER};

/// One contestant of the IMAP → IMAP rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImapTool {
    /// `dsync backup imap://… imap://…` with a state file, with `--parallel-folders N`
    /// when `parallel` > 1.
    Dsync { parallel: usize },
    /// imapsync (`--imapsync PATH`), its default options, no TLS.
    Imapsync,
    /// mbsync with an IMAP store on both sides (`Sync Pull`, `Create Near`,
    /// `CopyArrivalDate yes` so that it keeps INTERNALDATE).
    Mbsync,
}

impl ImapTool {
    fn label(self) -> String {
        match self {
            ImapTool::Dsync { parallel: 1 } => "dsync backup imap:// → imap://".to_owned(),
            ImapTool::Dsync { parallel } => {
                format!("dsync backup --parallel-folders {parallel} imap:// → imap://")
            }
            ImapTool::Imapsync => "imapsync".to_owned(),
            ImapTool::Mbsync => "mbsync IMAP → IMAP channel".to_owned(),
        }
    }

    fn slug(self) -> String {
        match self {
            ImapTool::Dsync { parallel: 1 } => "dsync".to_owned(),
            ImapTool::Dsync { parallel } => format!("dsyncp{parallel}x"),
            ImapTool::Imapsync => "imapsync".to_owned(),
            ImapTool::Mbsync => "mbsync".to_owned(),
        }
    }
}

/// What a destination lacks against the source, by content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Loss {
    /// Selectable source folders missing on the destination.
    pub(crate) folders_missing: Vec<String>,
    /// Source subscriptions the destination does not have.
    pub(crate) subscriptions_lost: usize,
    /// Source messages with no copy of the same bytes in the same folder.
    pub(crate) messages_missing: usize,
    /// Of those: copies of a message whose bytes occur more than once in the folder.
    pub(crate) duplicates_dropped: usize,
    /// Destination messages beyond the source's (per folder, by bytes).
    pub(crate) messages_extra: usize,
    /// Copies whose bytes differ from the source's by an added `X-TUID:` header line
    /// (mbsync marks what it appends so): matched without it, counted here.
    pub(crate) bytes_altered: usize,
    /// Copied messages whose system flags differ.
    pub(crate) flags_wrong: usize,
    /// Copied messages whose keywords differ.
    pub(crate) keywords_wrong: usize,
    /// Copied messages whose INTERNALDATE differs.
    pub(crate) dates_wrong: usize,
    /// The first few differences, described (for the log, not the table).
    pub(crate) examples: Vec<String>,
}

impl Loss {
    pub(crate) fn is_clean(&self) -> bool {
        Loss { examples: Vec::new(), ..self.clone() } == Loss::default()
    }

    fn note(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < 5 {
            self.examples.push(text());
        }
    }

    fn summary(&self) -> String {
        if self.is_clean() {
            return String::from("✓ nothing lost");
        }
        let mut parts = Vec::new();
        if !self.folders_missing.is_empty() {
            parts.push(format!("folders missing: {}", self.folders_missing.join(", ")));
        }
        if self.subscriptions_lost > 0 {
            parts.push(format!("{} subscriptions lost", self.subscriptions_lost));
        }
        if self.messages_missing > 0 {
            parts.push(format!(
                "{} messages missing ({} of them duplicates dropped)",
                self.messages_missing, self.duplicates_dropped
            ));
        }
        if self.messages_extra > 0 {
            parts.push(format!("{} extra messages", self.messages_extra));
        }
        if self.bytes_altered > 0 {
            parts.push(format!("{} with an X-TUID header added", self.bytes_altered));
        }
        if self.flags_wrong > 0 {
            parts.push(format!("{} with other system flags", self.flags_wrong));
        }
        if self.keywords_wrong > 0 {
            parts.push(format!("{} lost keywords", self.keywords_wrong));
        }
        if self.dates_wrong > 0 {
            parts.push(format!("{} with another INTERNALDATE", self.dates_wrong));
        }
        format!("✗ {}", parts.join("; "))
    }
}

/// Compares a destination with the source by content: UIDs and UIDVALIDITYs are the
/// destination's own; everything else must be the same.
pub(crate) fn compare(source: &AccountSnapshot, destination: &AccountSnapshot) -> Loss {
    let mut loss = Loss {
        subscriptions_lost: source.subscriptions.difference(&destination.subscriptions).count(),
        ..Loss::default()
    };
    for (name, want) in source.mailboxes.iter().filter(|(_, m)| m.selectable) {
        let Some(got) = destination.mailboxes.get(name).filter(|m| m.selectable) else {
            loss.folders_missing.push(name.clone());
            loss.messages_missing += want.messages.len();
            loss.duplicates_dropped += duplicates(&by_body(&want.messages));
            continue;
        };
        let wanted = by_body(&want.messages);
        let unmarked: Vec<MessageSnapshot> = got.messages.iter().map(without_tuid).collect();
        loss.bytes_altered +=
            unmarked.iter().zip(&got.messages).filter(|(a, b)| a.body != b.body).count();
        let found = by_body(&unmarked);
        for (body, copies) in &wanted {
            let there = found.get(body).map_or(&[][..], Vec::as_slice);
            let missing = copies.len().saturating_sub(there.len());
            loss.messages_missing += missing;
            if missing > 0 {
                loss.note(|| format!("{name}: missing {}", describe(copies[0])));
            }
            if copies.len() > 1 {
                loss.duplicates_dropped += missing.min(copies.len() - 1);
            }
            // Same bytes: pair the copies in a fixed order and compare what IMAP carries.
            let mut a: Vec<_> = copies.iter().map(|m| (&m.flags, m.internal_date)).collect();
            let mut b: Vec<_> = there.iter().map(|m| (&m.flags, m.internal_date)).collect();
            a.sort();
            b.sort();
            for ((flags_a, date_a), (flags_b, date_b)) in a.iter().zip(&b) {
                let (system_a, keywords_a) = split_flags(flags_a);
                let (system_b, keywords_b) = split_flags(flags_b);
                loss.flags_wrong += usize::from(system_a != system_b);
                loss.keywords_wrong += usize::from(keywords_a != keywords_b);
                loss.dates_wrong += usize::from(date_a != date_b);
                if date_a != date_b {
                    loss.note(|| {
                        format!(
                            "{name}: INTERNALDATE {date_a} became {date_b}: {}",
                            describe(copies[0])
                        )
                    });
                }
            }
        }
        for (body, copies) in &found {
            let wanted_copies = wanted.get(body).map_or(0, Vec::len);
            let extra = copies.len().saturating_sub(wanted_copies);
            loss.messages_extra += extra;
            if extra > 0 {
                loss.note(|| format!("{name}: extra {}", describe(copies[0])));
            }
        }
    }
    for (name, got) in destination.mailboxes.iter().filter(|(_, m)| m.selectable) {
        if !source.mailboxes.contains_key(name) {
            loss.messages_extra += got.messages.len();
        }
    }
    loss
}

/// A message in a few words: size, date and the start of its subject.
fn describe(message: &MessageSnapshot) -> String {
    let text = String::from_utf8_lossy(&message.body);
    let subject = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("subject:"))
        .unwrap_or_default()
        .chars()
        .take(70)
        .collect::<String>();
    let odd = message.body.iter().filter(|b| **b == 0 || **b == b'\r').count();
    format!(
        "{} bytes, date {}, {subject:?}, {odd} CR/NUL bytes, {} LF",
        message.body.len(),
        message.internal_date,
        text.matches('\n').count()
    )
}

/// The message without the `X-TUID: …` header line mbsync adds to what it appends.
fn without_tuid(message: &MessageSnapshot) -> MessageSnapshot {
    let body = &message.body;
    let header_end = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(body.len());
    let mut start = 0;
    while start < header_end {
        let end = body[start..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(body.len(), |i| start + i + 2);
        if body[start..].len() >= 7 && body[start..start + 7].eq_ignore_ascii_case(b"x-tuid:") {
            let mut stripped = body[..start].to_vec();
            stripped.extend_from_slice(&body[end.min(body.len())..]);
            return MessageSnapshot { body: stripped, ..message.clone() };
        }
        start = end;
    }
    message.clone()
}

fn by_body(messages: &[MessageSnapshot]) -> BTreeMap<&[u8], Vec<&MessageSnapshot>> {
    let mut map: BTreeMap<&[u8], Vec<&MessageSnapshot>> = BTreeMap::new();
    for message in messages {
        map.entry(&message.body[..]).or_default().push(message);
    }
    map
}

fn duplicates(map: &BTreeMap<&[u8], Vec<&MessageSnapshot>>) -> usize {
    map.values().map(|copies| copies.len() - 1).sum()
}

/// System flags (`\…`, case-insensitive) and keywords of a flag list.
fn split_flags(flags: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (system, keywords): (Vec<&String>, Vec<&String>) =
        flags.iter().partition(|f| f.starts_with('\\'));
    (
        system.into_iter().map(|f| f.to_ascii_lowercase()).collect(),
        keywords.into_iter().cloned().collect(),
    )
}

/// The measurements of one tool over all rounds.
#[derive(Debug, Clone)]
pub(crate) struct ImapOutcome {
    tool: ImapTool,
    full: Vec<Sample>,
    noop: Vec<Sample>,
    /// CPU seconds of the source's and the destination's Dovecot processes during each
    /// recorded full run.
    server_cpu: Vec<(f64, f64)>,
    /// What the last verified destination lacked.
    loss: Option<Loss>,
    error: Option<String>,
    command: String,
}

/// Everything the IMAP → IMAP rounds need.
#[derive(Debug)]
pub(crate) struct ImapSetup<'a> {
    pub(crate) source: &'a Dovecot,
    pub(crate) source_snapshot: &'a AccountSnapshot,
    pub(crate) dsync: &'a Path,
    pub(crate) imapsync: Option<&'a Path>,
    pub(crate) work: PathBuf,
    pub(crate) time_limit: Option<Duration>,
}

/// The tools that can run here (imapsync only with `--imapsync`, mbsync when installed);
/// ours once more for each of `parallel` above 1 (`--parallel-folders N`).
pub(crate) fn available_tools(
    imapsync: Option<&Path>,
    skip: &[String],
    parallel: &[usize],
) -> Vec<ImapTool> {
    let mut tools = vec![ImapTool::Dsync { parallel: 1 }];
    for &n in parallel.iter().filter(|&&n| n > 1) {
        if !tools.contains(&ImapTool::Dsync { parallel: n }) {
            tools.push(ImapTool::Dsync { parallel: n });
        }
    }
    match imapsync {
        Some(path) if path.exists() => tools.push(ImapTool::Imapsync),
        Some(path) => eprintln!("imapsync not found at {}: its row is skipped", path.display()),
        None => eprintln!("no --imapsync PATH: the imapsync row is skipped"),
    }
    if Path::new("/usr/bin/mbsync").exists() {
        tools.push(ImapTool::Mbsync);
    } else {
        eprintln!("mbsync not installed (apt-get install isync): its row is skipped");
    }
    tools.retain(|t| !skip.iter().any(|s| *s == format!("imap-{}", t.slug())));
    tools
}

/// The destination account of `tool` in `round`.
fn account(tool: ImapTool, round: usize) -> String {
    format!("{}{round}", tool.slug())
}

/// Starts the destination Dovecot with one empty account per tool and round.
pub(crate) fn destination(work: &Path, tools: &[ImapTool], rounds: usize) -> Dovecot {
    let mut builder = Dovecot::builder().temp_root(work).extra_config("mail_fsync = never");
    for &tool in tools {
        for round in 0..rounds {
            builder = builder.user(&account(tool, round), PASSWORD);
        }
    }
    builder.start()
}

/// Runs every tool `warmup + rounds` times, interleaved.
pub(crate) fn run_all(
    setup: &ImapSetup<'_>,
    destination: &Dovecot,
    tools: &[ImapTool],
    warmup: usize,
    rounds: usize,
) -> Vec<ImapOutcome> {
    let mut outcomes: Vec<ImapOutcome> = tools
        .iter()
        .map(|&tool| ImapOutcome {
            tool,
            full: Vec::new(),
            noop: Vec::new(),
            server_cpu: Vec::new(),
            loss: None,
            error: None,
            command: String::new(),
        })
        .collect();
    for round in 0..warmup + rounds {
        for outcome in &mut outcomes {
            if outcome.error.is_some() {
                continue;
            }
            let recorded = round >= warmup;
            eprint!(
                "  round {round}{} {:<34}",
                if recorded { "" } else { " (warm-up)" },
                outcome.tool.label()
            );
            match run_once(setup, destination, outcome, round, recorded) {
                Ok(text) => eprintln!("{text}"),
                Err(error) => {
                    eprintln!("FAILED: {error}");
                    outcome.error = Some(error.to_string());
                }
            }
        }
    }
    outcomes
}

fn run_once(
    setup: &ImapSetup<'_>,
    destination: &Dovecot,
    outcome: &mut ImapOutcome,
    round: usize,
    recorded: bool,
) -> Result<String> {
    let tool = outcome.tool;
    let user = account(tool, round);
    let log = |what: &str| setup.work.join(format!("imap-{user}-{what}.log"));
    let invocation = prepare(setup, destination, tool, &user)?.time_limit(setup.time_limit);
    outcome.command = invocation.display();
    let (source_before, destination_before) = (server_cpu(setup.source), server_cpu(destination));
    let full = measure::run(&invocation, &log("full"), &[0])?;
    // The servers' session processes end at LOGOUT; their master adds their CPU once it
    // has reaped them.
    std::thread::sleep(Duration::from_millis(300));
    let cpu =
        (server_cpu(setup.source) - source_before, server_cpu(destination) - destination_before);
    let copied = RawImap::login(destination.imap_port(), &user, PASSWORD).snapshot();
    let loss = compare(setup.source_snapshot, &copied);
    let mut text = format!(
        "full {:.3} s (cpu {:.3}, servers {:.2}+{:.2}) {:>5.1} MiB",
        full.seconds,
        full.cpu_seconds,
        cpu.0,
        cpu.1,
        mib(full.max_rss_kib)
    );
    if recorded {
        outcome.full.push(full);
        outcome.server_cpu.push(cpu);
    }
    // A re-run a second later, as a real one would be.
    std::thread::sleep(Duration::from_millis(1100));
    let noop = measure::run(&invocation, &log("noop"), &[0])?;
    let after = RawImap::login(destination.imap_port(), &user, PASSWORD).snapshot();
    let again = compare(setup.source_snapshot, &after);
    let _ = write!(
        text,
        "  no-op {:.3} s {:>5.1} MiB  {}",
        noop.seconds,
        mib(noop.max_rss_kib),
        loss.summary()
    );
    if again != loss {
        let _ = write!(text, "; after the no-op: {}", again.summary());
    }
    for example in &again.examples {
        let _ = write!(text, "\n      {example}");
    }
    if recorded {
        outcome.noop.push(noop);
    }
    outcome.loss = Some(again);
    Ok(text)
}

/// User + system CPU seconds of the reaped children of a Dovecot's master process (its
/// imap, login and auth processes), from `/proc/PID/stat`.
fn server_cpu(dovecot: &Dovecot) -> f64 {
    let ticks = || -> Option<f64> {
        let pid = fs::read_to_string(dovecot.dir().join("run/master.pid")).ok()?;
        let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
        // Fields after the command name `(…)`: state is field 3; cutime, cstime are 16, 17.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cutime: f64 = fields.get(13)?.parse().ok()?;
        let cstime: f64 = fields.get(14)?.parse().ok()?;
        Some(cutime + cstime)
    };
    // Linux reports clock ticks of USER_HZ, 100 per second.
    ticks().map_or(0.0, |t| t / 100.0)
}

/// The command of `tool` copying the source account into `user` on the destination.
fn prepare(
    setup: &ImapSetup<'_>,
    destination: &Dovecot,
    tool: ImapTool,
    user: &str,
) -> Result<Invocation> {
    let (source_port, destination_port) = (setup.source.imap_port(), destination.imap_port());
    let scratch = setup.work.join(format!("imap-{user}"));
    fs::create_dir_all(&scratch)?;
    Ok(match tool {
        ImapTool::Dsync { parallel } => {
            let password_file = scratch.join("destination.pw");
            fs::write(&password_file, format!("{PASSWORD}\n"))?;
            Invocation::new(setup.dsync)
                .arg("-q")
                .arg("backup")
                .arg("--parallel-folders")
                .arg(parallel.to_string())
                .arg("--state-file")
                .arg(scratch.join("state"))
                .arg("--destination-password-file")
                .arg(&password_file)
                .arg(format!("imap://{USER}@127.0.0.1:{source_port}?tls=none"))
                .arg(format!("imap://{user}@127.0.0.1:{destination_port}?tls=none"))
                .env("DSYNC_PASSWORD", PASSWORD)
        }
        ImapTool::Imapsync => Invocation::new(setup.imapsync.ok_or("no --imapsync")?)
            .arg("--host1")
            .arg("127.0.0.1")
            .arg("--port1")
            .arg(source_port.to_string())
            .arg("--user1")
            .arg(USER)
            .arg("--password1")
            .arg(PASSWORD)
            .arg("--nossl1")
            .arg("--notls1")
            .arg("--host2")
            .arg("127.0.0.1")
            .arg("--port2")
            .arg(destination_port.to_string())
            .arg("--user2")
            .arg(user)
            .arg("--password2")
            .arg(PASSWORD)
            .arg("--nossl2")
            .arg("--notls2")
            .arg("--nolog")
            .arg("--pidfile")
            .arg(scratch.join("imapsync.pid"))
            .arg("--tmpdir")
            .arg(&scratch),
        ImapTool::Mbsync => {
            let config = scratch.join("mbsync.conf");
            let state = scratch.join("mbsync-state/");
            fs::create_dir_all(&state)?;
            fs::write(
                &config,
                format!(
                    "IMAPAccount source\nHost 127.0.0.1\nPort {source_port}\nUser {USER}\n\
                     Pass {PASSWORD}\nSSLType None\nAuthMechs LOGIN\n\n\
                     IMAPStore source\nAccount source\n\n\
                     IMAPAccount dest\nHost 127.0.0.1\nPort {destination_port}\nUser {user}\n\
                     Pass {PASSWORD}\nSSLType None\nAuthMechs LOGIN\n\n\
                     IMAPStore dest\nAccount dest\n\n\
                     Channel migrate\nFar :source:\nNear :dest:\nPatterns *\nCreate Near\n\
                     Sync Pull\nCopyArrivalDate yes\nSyncState {}\n",
                    state.display()
                ),
            )?;
            Invocation::new("/usr/bin/mbsync").arg("-q").arg("-c").arg(&config).arg("-a")
        }
    })
}

#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    cpu: f64,
    rss_kib: u64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        f64::midpoint(values[middle - 1], values[middle])
    }
}

fn stat(samples: &[Sample]) -> Option<Stat> {
    if samples.is_empty() {
        return None;
    }
    let seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
    Some(Stat {
        median: median(seconds.clone()),
        min: seconds.iter().copied().fold(f64::INFINITY, f64::min),
        max: seconds.iter().copied().fold(0.0, f64::max),
        cpu: median(samples.iter().map(|s| s.cpu_seconds).collect()),
        rss_kib: samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0),
    })
}

/// The rows of one corpus as Markdown.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn render(
    title: &str,
    description: &str,
    messages: u64,
    bytes: u64,
    outcomes: &[ImapOutcome],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n\n{description}\n");
    out.push_str(
        "| run | median s | min–max s | MB/s | msg/s | client CPU s | source / destination \
         Dovecot CPU s | peak RSS MiB | read back through the destination's IMAP |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for outcome in outcomes {
        let check = match (&outcome.error, &outcome.loss) {
            (Some(_), _) => String::from("✗ failed (below)"),
            (None, Some(loss)) => loss.summary(),
            (None, None) => String::new(),
        };
        if let Some(s) = stat(&outcome.full) {
            let servers = (
                median(outcome.server_cpu.iter().map(|c| c.0).collect()),
                median(outcome.server_cpu.iter().map(|c| c.1).collect()),
            );
            let _ = writeln!(
                out,
                "| {} — full | {:.3} | {:.3}–{:.3} | {:.1} | {:.0} | {:.3} | {:.2} / {:.2} | {:.1} | {check} |",
                outcome.tool.label(),
                s.median,
                s.min,
                s.max,
                bytes as f64 / 1e6 / s.median,
                messages as f64 / s.median,
                s.cpu,
                servers.0,
                servers.1,
                mib(s.rss_kib)
            );
        }
    }
    for outcome in outcomes {
        if let Some(s) = stat(&outcome.noop) {
            let _ = writeln!(
                out,
                "| {} — no-op re-run | {:.3} | {:.3}–{:.3} | – | – | {:.3} | | {:.1} | |",
                outcome.tool.label(),
                s.median,
                s.min,
                s.max,
                s.cpu,
                mib(s.rss_kib)
            );
        }
    }
    for outcome in outcomes.iter().filter(|o| o.error.is_some()) {
        let _ = writeln!(
            out,
            "\n**{} failed:** `{}`\n\n```\n{}\n```",
            outcome.tool.label(),
            outcome.command,
            outcome.error.as_deref().unwrap_or_default()
        );
    }
    let find = |tool: ImapTool| outcomes.iter().find(|o| o.tool == tool && o.error.is_none());
    let ours_all =
        outcomes.iter().filter(|o| matches!(o.tool, ImapTool::Dsync { .. }) && o.error.is_none());
    let mut heading = true;
    for ours in ours_all {
        if heading {
            out.push_str("\nRatios (peer ÷ ours: > 1 means we are faster; RSS: peer ÷ ours):\n\n");
            heading = false;
        }
        let mut peers = vec![ImapTool::Imapsync, ImapTool::Mbsync];
        if ours.tool != (ImapTool::Dsync { parallel: 1 }) {
            peers.insert(0, ImapTool::Dsync { parallel: 1 });
        }
        for peer in peers {
            let Some(them) = find(peer) else { continue };
            let (Some(a), Some(b)) = (stat(&them.full), stat(&ours.full)) else { continue };
            let _ = write!(
                out,
                "- {} vs {}: full {:.2}×, client CPU {:.2}×, peak RSS {:.2}×",
                ours.tool.label(),
                peer.label(),
                a.median / b.median,
                a.cpu / b.cpu.max(1e-9),
                a.rss_kib as f64 / b.rss_kib.max(1) as f64
            );
            if let (Some(x), Some(y)) = (stat(&them.noop), stat(&ours.noop)) {
                let _ = write!(out, ", no-op {:.2}×", x.median / y.median);
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::MailboxSnapshot;

    fn message(body: &str, flags: &[&str], date: i64) -> MessageSnapshot {
        MessageSnapshot {
            uid: 0,
            flags: flags.iter().map(|f| (*f).to_string()).collect(),
            internal_date: date,
            body: body.as_bytes().to_vec(),
        }
    }

    fn account(messages: Vec<MessageSnapshot>, subscribed: &[&str]) -> AccountSnapshot {
        let mut snapshot = AccountSnapshot::default();
        snapshot.mailboxes.insert(
            String::from("INBOX"),
            MailboxSnapshot { selectable: true, uid_validity: 1, uid_next: 9, messages },
        );
        snapshot.subscriptions = subscribed.iter().map(|s| (*s).to_string()).collect();
        snapshot
    }

    #[test]
    fn renumbered_copies_lose_nothing() {
        let source = account(vec![message("a", &["\\Seen"], 1), message("b", &[], 2)], &["INBOX"]);
        let mut copy =
            account(vec![message("b", &[], 2), message("a", &["\\Seen"], 1)], &["INBOX"]);
        copy.mailboxes.get_mut("INBOX").unwrap().uid_validity = 77;
        assert!(compare(&source, &copy).is_clean());
    }

    #[test]
    fn an_added_x_tuid_header_is_matched_and_counted() {
        let source = account(vec![message("A: 1\r\n\r\nbody", &[], 1)], &[]);
        let copy = account(vec![message("A: 1\r\nX-TUID: abc\r\n\r\nbody", &[], 1)], &[]);
        let loss = compare(&source, &copy);
        assert_eq!((loss.messages_missing, loss.messages_extra, loss.bytes_altered), (0, 0, 1));
    }

    #[test]
    fn each_kind_of_loss_is_counted() {
        let source = account(
            vec![
                message("a", &["\\Seen", "$Junk"], 1),
                message("a", &["\\Seen", "$Junk"], 1),
                message("b", &["\\Flagged"], 2),
                message("c", &[], 3),
            ],
            &["INBOX"],
        );
        let copy = account(
            vec![message("a", &["\\Seen"], 1), message("b", &[], 5), message("d", &[], 4)],
            &[],
        );
        let loss = compare(&source, &copy);
        assert_eq!(loss.subscriptions_lost, 1);
        assert_eq!(loss.messages_missing, 2, "one duplicate of a, and c");
        assert_eq!(loss.duplicates_dropped, 1);
        assert_eq!(loss.messages_extra, 1);
        assert_eq!(loss.keywords_wrong, 1);
        assert_eq!(loss.flags_wrong, 1);
        assert_eq!(loss.dates_wrong, 1);
        assert_eq!(loss.bytes_altered, 0);
        assert!(loss.summary().contains("1 subscriptions lost"), "{}", loss.summary());
    }
}
