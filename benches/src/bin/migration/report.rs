//! Tables of medians, throughput, peak RSS, ratios to each peer, and the issue 9 goals.

use std::fmt::Write as _;

use crate::measure::Sample;
use crate::tools::{Outcome, Tool, mib};

/// One measured scenario (a corpus at one latency).
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) outcomes: Vec<Outcome>,
    /// Compare against the issue 9 goals (the default corpus, no added latency).
    pub(crate) goals: bool,
}

#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    rss_kib: u64,
    cpu: f64,
}

fn stat(samples: &[Sample]) -> Option<Stat> {
    if samples.is_empty() {
        return None;
    }
    let median_of = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        if values.len() % 2 == 1 {
            values[middle]
        } else {
            f64::midpoint(values[middle - 1], values[middle])
        }
    };
    let mut seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    Some(Stat {
        median: median_of(seconds.clone()),
        cpu: median_of(samples.iter().map(|s| s.cpu_seconds).collect()),
        min: seconds[0],
        max: seconds[seconds.len() - 1],
        rss_kib: samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0),
    })
}

impl Scenario {
    fn find(&self, tool: Tool) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.tool == tool && o.error.is_none())
    }

    fn full(&self, tool: Tool) -> Option<Stat> {
        self.find(tool).and_then(|o| stat(&o.full))
    }

    fn noop(&self, tool: Tool) -> Option<Stat> {
        self.find(tool).and_then(|o| stat(&o.noop))
    }

    /// The scenario as Markdown.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n\n{}\n", self.title, self.description);
        let _ = writeln!(
            out,
            "| run | median s | min–max s | MB/s | msg/s | client CPU s | peak RSS MiB | check |\n|---|--:|--:|--:|--:|--:|--:|---|"
        );
        let row =
            |out: &mut String, name: &str, stat: Option<Stat>, throughput: bool, check: &str| {
                let Some(s) = stat else { return };
                let (mbs, mps) = if throughput {
                    (
                        format!("{:.1}", self.bytes as f64 / 1e6 / s.median),
                        format!("{:.0}", self.messages as f64 / s.median),
                    )
                } else {
                    (String::from("–"), String::from("–"))
                };
                let _ = writeln!(
                    out,
                    "| {name} | {:.3} | {:.3}–{:.3} | {mbs} | {mps} | {:.3} | {:.1} | {check} |",
                    s.median,
                    s.min,
                    s.max,
                    s.cpu,
                    mib(s.rss_kib)
                );
            };
        for outcome in &self.outcomes {
            let check = match (&outcome.error, outcome.tool) {
                (Some(_), _) => "✗ failed (below)",
                (
                    None,
                    Tool::Dsync { .. }
                    | Tool::DsyncParallel
                    | Tool::DsyncOther
                    | Tool::DsyncMaildir
                    | Tool::DsyncRemote
                    | Tool::DoveadmRemote
                    | Tool::DsyncSdbox
                    | Tool::Doveadm { .. }
                    | Tool::DoveadmSdbox,
                ) => "✓ folders, UIDVALIDITY, UIDs",
                (None, Tool::Mbsync) => "✓ message counts",
                (None, Tool::RawWrite | Tool::RawMaildir) => "✓ file count",
                (None, Tool::RawDiscard) => "–",
            };
            row(
                &mut out,
                &format!("{} — full", outcome.tool.label()),
                stat(&outcome.full),
                true,
                check,
            );
        }
        for outcome in &self.outcomes {
            row(
                &mut out,
                &format!("{} — no-op re-run", outcome.tool.label()),
                stat(&outcome.noop),
                false,
                "",
            );
            row(
                &mut out,
                &format!("{} — no-op re-run with --no-state", outcome.tool.label()),
                stat(&outcome.noop_stateless),
                false,
                "",
            );
        }
        for outcome in self.outcomes.iter().filter(|o| o.error.is_some()) {
            let _ = writeln!(
                out,
                "\n**{} failed:** `{}`\n\n```\n{}\n```",
                outcome.tool.label(),
                outcome.command,
                outcome.error.as_deref().unwrap_or_default()
            );
        }
        out.push_str(&self.ratios());
        out
    }

    fn ratios(&self) -> String {
        let mut out = String::from(
            "\nRatios (peer time ÷ our time: > 1 means we are faster; RSS: peer ÷ ours):\n\n",
        );
        let ours = [
            Tool::Dsync { fsync: true },
            Tool::Dsync { fsync: false },
            Tool::DsyncParallel,
            Tool::DsyncRemote,
        ];
        let peers = [
            Tool::DsyncOther,
            Tool::DoveadmRemote,
            Tool::Doveadm { fsync: false },
            Tool::Doveadm { fsync: true },
            Tool::Mbsync,
            Tool::RawWrite,
            Tool::RawMaildir,
            Tool::RawDiscard,
        ];
        // Each of ours against every peer, and the sdbox row against doveadm into sdbox.
        let pairs = ours
            .into_iter()
            .flat_map(|our| peers.into_iter().map(move |peer| (our, peer)))
            .chain([(Tool::DsyncSdbox, Tool::DoveadmSdbox)]);
        for (our, peer) in pairs {
            let Some(us) = self.full(our) else { continue };
            let our_noop = self.noop(our);
            let Some(them) = self.full(peer) else { continue };
            let mut line = format!(
                "- {} vs {}: full {:.2}×, peak RSS {:.2}×",
                our.label(),
                peer.label(),
                them.median / us.median,
                ratio(them.rss_kib, us.rss_kib),
            );
            if let (Some(a), Some(b)) = (self.noop(peer), our_noop) {
                let _ = write!(line, ", no-op {:.2}×", a.median / b.median);
            }
            out.push_str(&line);
            out.push('\n');
        }
        if self.goals {
            out.push_str(&self.goal_lines());
        }
        out
    }

    fn goal_lines(&self) -> String {
        let mut out = String::from(
            "\nIssue 9 goals (with `--no-fsync`, as Dovecot's migration docs configure doveadm):\n\n",
        );
        let us = Tool::Dsync { fsync: false };
        let mut goal = |text: &str, value: Option<f64>, pass: &dyn Fn(f64) -> bool| {
            if let Some(value) = value {
                let mark = if pass(value) { "✓" } else { "✗" };
                let _ = writeln!(out, "- {mark} {text}: {value:.2}");
            }
        };
        let full = |peer: Tool| Some(self.full(peer)?.median / self.full(us)?.median);
        goal(
            "full ≥ 2× faster than doveadm (mail_fsync=never)",
            full(Tool::Doveadm { fsync: false }),
            &|v| v >= 2.0,
        );
        goal("full ≥ 1.5× faster than mbsync", full(Tool::Mbsync), &|v| v >= 1.5);
        goal(
            "full within 10 % of raw FETCH + write (our time ÷ baseline)",
            full(Tool::RawWrite).map(|r| 1.0 / r),
            &|v| v <= 1.10,
        );
        goal(
            "issue 23: full within 1.25× of raw FETCH + write (our time ÷ baseline)",
            full(Tool::RawWrite).map(|r| 1.0 / r),
            &|v| v <= 1.25,
        );
        // No goal of its own: how much of the gap to `raw-write` the format asks for.
        goal(
            "full ÷ raw FETCH + Maildir delivery, the format's floor (≤ 1.25)",
            full(Tool::RawMaildir).map(|r| 1.0 / r),
            &|v| v <= 1.25,
        );
        goal(
            "no-op ≥ 10× faster than doveadm's",
            (|| Some(self.noop(Tool::Doveadm { fsync: false })?.median / self.noop(us)?.median))(),
            &|v| v >= 10.0,
        );
        out
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}
