//! Progress: on a terminal, an indicatif bar per user showing the current folder, its
//! messages, bytes/s and ETA; elsewhere a plain line every few seconds; with `-q` nothing.
//! With `--parallel-folders` the counts are those of every folder being copied.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
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
    /// The batch this user is of, and the user's place in it.
    batch: Option<(Arc<BatchProgress>, usize)>,
}

impl UserProgress {
    /// The progress of user `index` of `batch`, which hears of the bytes too.
    pub(crate) fn in_batch(
        display: &Display,
        label: &str,
        batch: Arc<BatchProgress>,
        index: usize,
    ) -> UserProgress {
        let mut progress = UserProgress::new(display, label);
        progress.batch = Some((batch, index));
        progress
    }

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
            batch: None,
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
        let bytes = plan.save.virtual_bytes();
        self.bytes_total += bytes;
        if let Some((batch, index)) = &self.batch {
            batch.planned(*index, bytes);
        }
        if let Some(bar) = &self.bar {
            bar.set_length(self.bytes_total);
        }
        self.update_message();
    }

    pub(crate) fn message_saved(&mut self, bytes: u64) {
        self.messages_done += 1;
        self.bytes_done += bytes;
        if let Some((batch, index)) = &self.batch {
            batch.saved(*index, bytes);
        }
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

    /// The Sieve part's news (its scripts, after the mail): a progress line, at most one
    /// per interval as for the folders (the bar is gone by then; the summary line
    /// follows anyway).
    pub(crate) fn sieve(&mut self, news: &str) {
        let Some(interval) = self.interval else { return };
        if self.last_line.elapsed() >= interval {
            self.last_line = Instant::now();
            eprintln!("dsync: {}: {news}", self.label);
        }
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

/// The bar of a whole batch: users done, and (for runs that copy) bytes copied against an
/// estimate of all the batch's bytes, so that the ETA follows the bytes, not the number of
/// users (one large mailbox among small ones no longer wrecks it).
#[derive(Debug)]
pub(crate) struct BatchProgress {
    bar: Option<ProgressBar>,
    by_bytes: bool,
    tally: Mutex<Tally>,
}

/// Per user and summed up: what was planned and copied.
#[derive(Debug, Default)]
struct Tally {
    users: Vec<UserBytes>,
    started: usize,
    finished: usize,
    /// Σ over started users of max(planned, copied).
    started_bytes: u64,
    /// Σ over finished users of what they copied.
    finished_bytes: u64,
    copied: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct UserBytes {
    planned: u64,
    copied: u64,
}

impl UserBytes {
    fn size(self) -> u64 {
        self.planned.max(self.copied)
    }
}

impl Tally {
    /// The whole batch's bytes as far as they can be told: what the started users planned
    /// (or copied, if more), plus as much for each user not started as a finished user
    /// copied on average (before any finished, as a started one planned).
    fn estimate(&self) -> u64 {
        let average = if self.finished > 0 {
            self.finished_bytes / self.finished as u64
        } else if self.started > 0 {
            self.started_bytes / self.started as u64
        } else {
            0
        };
        let waiting = self.users.len().saturating_sub(self.started) as u64;
        self.started_bytes.saturating_add(average.saturating_mul(waiting))
    }

    /// Applies `change` to user `index`, keeping the sums.
    fn update(&mut self, index: usize, change: impl FnOnce(&mut UserBytes)) {
        let Some(user) = self.users.get_mut(index) else { return };
        let before = *user;
        change(user);
        let after = *user;
        self.started_bytes = self.started_bytes - before.size() + after.size();
        self.copied += after.copied - before.copied;
    }
}

impl BatchProgress {
    /// A bar for `users` users (on a terminal), by bytes when `by_bytes` (backup, sync,
    /// import), else by users (check).
    pub(crate) fn new(display: &Display, users: usize, by_bytes: bool) -> Arc<BatchProgress> {
        let bar = display.bars().map(|bars| {
            let (length, template) = if by_bytes {
                (0, "users {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {elapsed} ETA {eta}")
            } else {
                (users as u64, "users {pos}/{len} [{bar:30}] {elapsed} ETA {eta}")
            };
            let bar = bars.add(ProgressBar::new(length));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(format!("0/{users}"));
            bar
        });
        let tally = Tally { users: vec![UserBytes::default(); users], ..Tally::default() };
        Arc::new(BatchProgress { bar, by_bytes, tally: Mutex::new(tally) })
    }

    fn with_tally(&self, change: impl FnOnce(&mut Tally)) {
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut tally);
        let Some(bar) = &self.bar else { return };
        if self.by_bytes {
            bar.set_length(tally.estimate().max(tally.copied));
            bar.set_position(tally.copied);
            bar.set_message(format!("{}/{}", tally.finished, tally.users.len()));
        } else {
            bar.set_position(tally.finished as u64);
        }
    }

    /// User `index` starts.
    pub(crate) fn started(&self, _index: usize) {
        self.with_tally(|tally| tally.started += 1);
    }

    /// User `index` planned to copy `bytes` more.
    pub(crate) fn planned(&self, index: usize, bytes: u64) {
        self.with_tally(|tally| tally.update(index, |user| user.planned += bytes));
    }

    /// User `index` copied `bytes` more.
    pub(crate) fn saved(&self, index: usize, bytes: u64) {
        self.with_tally(|tally| tally.update(index, |user| user.copied += bytes));
    }

    /// User `index` is done.
    pub(crate) fn finished(&self, index: usize) {
        self.with_tally(|tally| {
            tally.finished += 1;
            tally.finished_bytes += tally.users.get(index).map_or(0, |user| user.copied);
        });
    }

    /// Removes the bar.
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_estimate_follows_bytes_not_users() {
        let batch = BatchProgress::new(&Display::Quiet, 4, true);
        let estimate = || batch.tally.lock().expect("tally").estimate();
        assert_eq!(estimate(), 0);
        // The first user plans 1 000 bytes: the three others are guessed alike.
        batch.started(0);
        batch.planned(0, 1_000);
        assert_eq!(estimate(), 4_000);
        // It copies more than planned (sizes are estimates), and finishes at 1 200; the
        // second user plans a mailbox of 100 000 bytes: the two waiting ones count as the
        // finished user's 1 200 each.
        batch.saved(0, 1_200);
        batch.finished(0);
        batch.started(1);
        batch.planned(1, 100_000);
        assert_eq!(estimate(), 1_200 + 100_000 + 2 * 1_200);
        batch.saved(1, 50_000);
        let tally = batch.tally.lock().expect("tally");
        assert_eq!(tally.copied, 51_200);
        assert_eq!((tally.started, tally.finished), (2, 1));
    }
}
