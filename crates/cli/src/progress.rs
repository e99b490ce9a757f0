//! Progress: on a terminal, an indicatif bar per user showing the current folder, its
//! messages, bytes/s and ETA; elsewhere a plain line every few seconds; with `-q` nothing.
//! With `--parallel-folders` the counts are those of every folder being copied.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use dsync_core::{MailboxPlan, MailboxReport, TreePlan, human_bytes};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown for the whole run.
#[derive(Debug, Clone)]
pub(crate) enum Display {
    /// Bars on a terminal.
    Bars(MultiProgress),
    /// A plain line per user every `interval`.
    Lines(Duration),
    /// Nothing.
    Quiet,
}

impl Display {
    /// Bars when stderr is a terminal (and no debug output competes with them), lines
    /// otherwise, nothing when quiet.
    pub(crate) fn choose(quiet: bool, chatty: bool, interval_secs: u64) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() && !chatty {
            Display::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Display::Lines(Duration::from_secs(interval_secs))
        }
    }

    /// The bars, if any (log lines must suspend them while printing).
    pub(crate) fn bars(&self) -> Option<MultiProgress> {
        match self {
            Display::Bars(bars) => Some(bars.clone()),
            _ => None,
        }
    }
}

/// Progress of one user's run.
#[derive(Debug)]
pub(crate) struct UserProgress {
    label: String,
    bar: Option<ProgressBar>,
    interval: Option<Duration>,
    last_line: Instant,
    /// The folders being copied now (several with `--parallel-folders`).
    active: BTreeSet<String>,
    mailboxes_total: usize,
    mailboxes_done: usize,
    messages_total: u64,
    messages_done: u64,
    bytes_total: u64,
    bytes_done: u64,
    mailbox_started: Instant,
}

impl UserProgress {
    pub(crate) fn new(display: &Display, label: &str) -> UserProgress {
        let (bar, interval) = match display {
            Display::Bars(bars) => {
                let bar = bars.add(ProgressBar::new(0));
                let style = ProgressStyle::with_template(
                    "{prefix:.bold} {wide_msg} [{bar:20}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(label.to_owned());
                bar.set_message("connecting");
                bar.enable_steady_tick(Duration::from_millis(250));
                (Some(bar), None)
            }
            Display::Lines(interval) => (None, Some(*interval)),
            Display::Quiet => (None, None),
        };
        UserProgress {
            label: label.to_owned(),
            bar,
            interval,
            last_line: Instant::now(),
            active: BTreeSet::new(),
            mailboxes_total: 0,
            mailboxes_done: 0,
            messages_total: 0,
            messages_done: 0,
            bytes_total: 0,
            bytes_done: 0,
            mailbox_started: Instant::now(),
        }
    }

    pub(crate) fn tree_planned(&mut self, plan: &TreePlan) {
        self.mailboxes_total = plan.sync.len();
        self.mailboxes_done = 0;
        self.update_message();
    }

    pub(crate) fn mailbox_planned(&mut self, plan: &MailboxPlan) {
        if self.active.is_empty() {
            self.messages_total = 0;
            self.messages_done = 0;
            self.bytes_total = 0;
            self.bytes_done = 0;
            self.mailbox_started = Instant::now();
            if let Some(bar) = &self.bar {
                bar.reset();
            }
        }
        self.active.insert(plan.mailbox.to_string());
        self.messages_total += plan.save.len() as u64;
        self.bytes_total += plan.save.iter().filter_map(|m| m.virtual_size).sum::<u64>();
        if let Some(bar) = &self.bar {
            bar.set_length(self.bytes_total);
        }
        self.update_message();
    }

    pub(crate) fn message_saved(&mut self, bytes: u64) {
        self.messages_done += 1;
        self.bytes_done += bytes;
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            if self.messages_done.is_multiple_of(16) || self.messages_done == self.messages_total {
                self.update_message();
            }
        }
        self.maybe_line();
    }

    pub(crate) fn mailbox_finished(&mut self, report: &MailboxReport) {
        self.active.remove(&report.mailbox.to_string());
        self.mailboxes_done += 1;
        self.update_message();
        self.maybe_line();
    }

    /// Removes the bar.
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn update_message(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} ({}/{} folders) {}/{} msgs",
                self.folders(),
                self.mailboxes_done.min(self.mailboxes_total),
                self.mailboxes_total,
                self.messages_done,
                self.messages_total
            ));
        }
    }

    /// The folder being copied, or how many and the first of them.
    fn folders(&self) -> String {
        let mut active = self.active.iter();
        match (active.next(), self.active.len()) {
            (None, _) => String::new(),
            (Some(only), 1) => only.clone(),
            (Some(first), n) => format!("{n} folders: {first}, ..."),
        }
    }

    fn maybe_line(&mut self) {
        let Some(interval) = self.interval else { return };
        if self.last_line.elapsed() < interval {
            return;
        }
        self.last_line = Instant::now();
        let elapsed = self.mailbox_started.elapsed().as_secs_f64().max(0.001);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let (rate, eta) = {
            let rate = self.bytes_done as f64 / elapsed;
            let left = self.bytes_total.saturating_sub(self.bytes_done) as f64;
            (rate as u64, if rate > 0.0 { (left / rate) as u64 } else { 0 })
        };
        eprintln!(
            "dsync: {}: {} ({}/{} folders): {}/{} messages, {}/{}, {}/s, ETA {}s",
            self.label,
            self.folders(),
            self.mailboxes_done,
            self.mailboxes_total,
            self.messages_done,
            self.messages_total,
            human_bytes(self.bytes_done),
            human_bytes(self.bytes_total),
            human_bytes(rate),
            eta
        );
    }
}

impl Drop for UserProgress {
    fn drop(&mut self) {
        self.finish();
    }
}
