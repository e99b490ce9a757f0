//! Several mailboxes at once into a destination that assigns its own UIDs (an IMAP
//! server): workers, each with its own connections to both sides, copy the messages of
//! the changed mailboxes, while this thread keeps the observer, the report and the state.
//!
//! The destination's APPEND is what a copy into an IMAP server waits for (Dovecot parses
//! and indexes each message as it arrives); a second connection writing another mailbox
//! makes the server work on two at once. The threads are [`crate::worker_pool`]'s, as in a
//! backup into a Maildir ([`crate::execute::run_parallel`]).
//!
//! What stays safe with several writers:
//! - Every confirmed save reaches the observer ([`Observer::paired`]) from this thread
//!   only, in the order the workers report them: one writer appends the state's records.
//!   The first record of a mailbox (the mark that it is being written, sent before any
//!   APPEND) comes with the worker's whole entry, so a state saved whole at that moment
//!   (no state file yet) holds it, and the worker waits until it is passed on, so a kill
//!   after the first APPENDs finds the mark as it does without workers.
//! - Missing mailboxes are created here, before any worker starts and in name order, so a
//!   parent exists before its child (two sessions creating `A` and `A/B` at once could
//!   otherwise race on the hierarchy).
//! - A mailbox both sides left unchanged since the last run is recognised here (its
//!   change tokens), so a re-run that finds nothing to do opens no extra connection.
//! - The workers take the biggest mailboxes (by the source's message count) first, so
//!   that no worker is left copying a big one alone at the end.

use std::collections::VecDeque;

use super::held::Held;
use super::plan::PairMode;
use super::{Job, Origin, new_mailbox, side_error, sync_mailbox, unchanged};
use crate::error::{Side, StorageError, SyncError};
use crate::execute::{
    CallerSide, Cancel, Connections, Connector, LeftOut, MailboxFailed, Observer, SyncOptions,
    keep_going_mailbox, pass_on_result, stop_if_interrupted,
};
use crate::model::{MailboxName, Uid};
use crate::plan::MailboxAction;
use crate::report::{MailboxReport, Report, Skipped};
use crate::state::SyncState;
use crate::state::pairs::MailboxPairs;
use crate::storage::StorageMut;
use crate::worker_pool::{self, AfterJob, Link, Reply};

/// Copies the messages of a run's mailboxes several at once ([`Pool`]).
pub(crate) trait Workers {
    /// Syncs `jobs` (their deletions and renames are done) and returns the jobs left for
    /// the caller to sync one after another over `source` and `destination`: all of them
    /// when workers would not help (a dry run, at most one changed mailbox), none
    /// otherwise. `held` is the run's map of what the destination holds: the caller's
    /// connections use it; each worker keeps its own, so a message of two mailboxes
    /// that two workers copy is sent twice, once to each (as without the map).
    #[allow(clippy::too_many_arguments)]
    fn sync_jobs(
        &self,
        options: &SyncOptions,
        mode: PairMode,
        source: &mut Origin<'_>,
        destination: &mut dyn StorageMut,
        observer: &mut dyn Observer,
        report: &mut Report,
        state: &mut SyncState,
        held: &mut Held,
        jobs: Vec<Job>,
    ) -> Result<Vec<Job>, SyncError>;
}

/// Up to `workers` workers on connections from `connector`.
pub(crate) struct Pool<'c, C> {
    connector: &'c C,
    workers: usize,
}

impl<'c, C: Connector> Pool<'c, C> {
    /// A pool of `workers` workers opening their connections through `connector`.
    pub(crate) fn new(connector: &'c C, workers: usize) -> Self {
        Pool { connector, workers }
    }
}

/// A mailbox handed to a worker: the job, whether this thread created it on the
/// destination, and its state entry from the last run.
struct Task {
    job: Job,
    created: bool,
    entry: Option<MailboxPairs>,
}

type MailboxResult = Result<(MailboxReport, Vec<Skipped>), MailboxFailed>;

/// What a worker tells the coordinating thread.
enum Event {
    /// Its connections could not be opened: it takes no mailbox.
    Unavailable(SyncError),
    /// [`Observer::message_saved`].
    Saved(MailboxName, Uid, u64),
    /// [`Observer::paired`]: the record, and with the mailbox's first one the worker's
    /// whole entry for it and the reply that lets the worker go on once it is passed on.
    Paired(MailboxName, String, Option<(Box<MailboxPairs>, Reply<()>)>),
    /// [`Observer::checkpoint`] with the worker's entry.
    Checkpoint(MailboxName, Option<Box<MailboxPairs>>, Reply<Result<(), StorageError>>),
    /// A mailbox is done: its result and the worker's entry for it.
    Finished(Box<Task>, Box<MailboxResult>, Option<Box<MailboxPairs>>, LeftOut),
}

impl<C: Connector> Workers for Pool<'_, C> {
    fn sync_jobs(
        &self,
        options: &SyncOptions,
        mode: PairMode,
        source: &mut Origin<'_>,
        destination: &mut dyn StorageMut,
        observer: &mut dyn Observer,
        report: &mut Report,
        state: &mut SyncState,
        held: &mut Held,
        jobs: Vec<Job>,
    ) -> Result<Vec<Job>, SyncError> {
        if options.dry_run || self.workers <= 1 || jobs.len() <= 1 {
            return Ok(jobs);
        }
        let mut tasks = Vec::new();
        for mut job in jobs {
            stop_if_interrupted(observer, &job.name)?;
            if job.on_source
                && job.on_destination
                && unchanged(mode, source.storage(), &job.source_name, destination, &job.name, {
                    state.pairs.get(&job.name)
                })
            {
                let unchanged = MailboxReport::new(job.name.clone(), MailboxAction::Update);
                finish(Ok((unchanged, Vec::new())), false, observer, report)?;
                continue;
            }
            let mut created = false;
            if !job.on_destination {
                let roles = &job.roles;
                let made = destination.create_mailbox_with_roles(&job.name, &new_mailbox(), roles);
                if let Err(error) = made {
                    let error = side_error(Side::Destination, &job.name)(error);
                    keep_going_mailbox::<()>(Err(error.into()), report)?;
                    continue;
                }
                job.on_destination = true;
                created = true;
            }
            let entry = state.pairs.get(&job.name).cloned();
            // How much there is to copy, roughly: the source's message count (an IMAP
            // listing's status, answered without asking again where it came along).
            let size = source.storage().status(&job.source_name).map_or(0, |s| s.messages);
            tasks.push((size, Task { job, created, entry }));
        }
        // The biggest first: a big mailbox taken last would leave the other workers idle
        // while one copies it.
        tasks.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        let tasks: VecDeque<Task> = tasks.into_iter().map(|(_, task)| task).collect();
        let left = if tasks.len() <= 1 {
            tasks
        } else {
            let worker =
                PairingWorker { connector: self.connector, options, mode, copies: held.enabled() };
            let mut caller = CallerSide { observer, report, state };
            worker_pool::run(&worker, self.workers, tasks, &mut caller)?
        };
        for task in left {
            stop_if_interrupted(observer, &task.job.name)?;
            let result =
                sync_mailbox(options, mode, source, destination, observer, &task.job, state, held);
            finish(result, task.created, observer, report)?;
        }
        Ok(Vec::new())
    }
}

/// Records how a mailbox's sync ended, as the one-after-another loop does; `created`: the
/// mailbox was created for it (before the worker listed it).
fn finish(
    result: MailboxResult,
    created: bool,
    observer: &mut dyn Observer,
    report: &mut Report,
) -> Result<(), SyncError> {
    let created = |mailbox: &mut MailboxReport| {
        if created {
            mailbox.action = MailboxAction::Create;
        }
    };
    let result = match result {
        Ok((mut mailbox, skipped)) => {
            report.skipped.extend(skipped);
            created(&mut mailbox);
            Ok(mailbox)
        }
        Err(mut failed) => {
            if let Some(partial) = failed.partial.as_deref_mut() {
                created(partial);
            }
            Err(failed)
        }
    };
    if let Some(mut mailbox) = keep_going_mailbox(result, report)? {
        report.warnings.append(&mut mailbox.warnings);
        observer.mailbox_finished(&mailbox);
        report.mailboxes.push(mailbox);
    }
    Ok(())
}

impl worker_pool::Coordinator<Event> for CallerSide<'_, '_> {
    type Error = SyncError;

    fn handle(&mut self, event: Event) -> Result<(), SyncError> {
        match event {
            Event::Unavailable(error) => self.one_connection_fewer(&error),
            Event::Saved(mailbox, uid, bytes) => self.observer.message_saved(&mailbox, uid, bytes),
            Event::Paired(mailbox, record, first) => {
                let passed_on = first.map(|(entry, passed_on)| {
                    self.state.pairs.insert(mailbox, *entry);
                    passed_on
                });
                self.observer.paired(&record, self.state);
                if let Some(passed_on) = passed_on {
                    passed_on.send(());
                }
            }
            Event::Checkpoint(mailbox, entry, done) => {
                set_entry(self.state, mailbox, entry);
                // The worker stops that mailbox (and the run) on an error.
                done.send(self.observer.checkpoint(self.state));
            }
            Event::Finished(task, result, entry, left_out) => {
                set_entry(self.state, task.job.name.clone(), entry);
                let finished = finish(*result, task.created, &mut *self.observer, self.report);
                left_out.add_to(self.report);
                return finished;
            }
        }
        Ok(())
    }

    /// The caller's observer: the workers hear it through the pool ([`Link::interrupted`]).
    fn interrupted(&mut self) -> bool {
        self.observer.interrupted()
    }
}

/// Puts a worker's entry for `mailbox` in the run's state (or takes the mailbox's out).
fn set_entry(state: &mut SyncState, mailbox: MailboxName, entry: Option<Box<MailboxPairs>>) {
    match entry {
        Some(entry) => state.pairs.insert(mailbox, *entry),
        None => state.pairs.remove(&mailbox),
    };
}

/// The workers' side: what each needs to copy a mailbox on connections of its own.
struct PairingWorker<'a, C> {
    connector: &'a C,
    options: &'a SyncOptions,
    mode: PairMode,
    /// The destination copies within itself: each worker keeps its own [`Held`].
    copies: bool,
}

/// What one worker keeps from one mailbox to the next.
struct PairingThread<C: Connector> {
    connections: Connections<C>,
    held: Held,
}

impl<C: Connector> worker_pool::Worker for PairingWorker<'_, C> {
    type Job = Task;
    type Message = Event;
    type ThreadState = PairingThread<C>;

    fn start(&self) -> Result<PairingThread<C>, Event> {
        let connections = Connections::open(self.connector).map_err(Event::Unavailable)?;
        // No listing here: a worker spells names as its storage computes them (the
        // separator comes with the login), and a listing's statuses would stand in for the
        // STATUS taken after the copy, which the next run compares with.
        Ok(PairingThread { connections, held: Held::new(self.copies, false, &[]) })
    }

    fn run(&self, thread: &mut PairingThread<C>, task: Task, link: &Link<'_, Event>) -> AfterJob {
        let name = task.job.name.clone();
        let mut state = SyncState::default();
        if let Some(entry) = &task.entry {
            state.pairs.insert(name.clone(), entry.clone());
        }
        let mut observer = Forward {
            link,
            mailbox: &name,
            cancel: self.options.cancel.as_ref(),
            first_record: true,
        };
        let connections = &mut thread.connections;
        let result = sync_mailbox(
            self.options,
            self.mode,
            &mut Origin::ReadOnly(&mut connections.source),
            &mut connections.destination,
            &mut observer,
            &task.job,
            &mut state,
            &mut thread.held,
        );
        let left_out = connections.take_left_out();
        let entry = state.pairs.remove(&name).map(Box::new);
        pass_on_result(link, result, |result| {
            Event::Finished(Box::new(task), Box::new(result), entry, left_out)
        })
    }

    fn end(&self, thread: PairingThread<C>) {
        thread.connections.close(self.connector);
    }
}

/// A worker's observer: passes everything to the coordinating thread.
struct Forward<'a> {
    link: &'a Link<'a, Event>,
    mailbox: &'a MailboxName,
    cancel: Option<&'a Cancel>,
    /// No record of this mailbox was passed on yet.
    first_record: bool,
}

impl Forward<'_> {
    fn entry(&self, state: &SyncState) -> Option<Box<MailboxPairs>> {
        state.pairs.get(self.mailbox).cloned().map(Box::new)
    }
}

impl Observer for Forward<'_> {
    fn message_saved(&mut self, mailbox: &MailboxName, uid: Uid, bytes: u64) {
        self.link.send(Event::Saved(mailbox.clone(), uid, bytes));
    }

    fn interrupted(&mut self) -> bool {
        // The token is read here too: the pool hears of it only from the coordinator,
        // which asks after each message it handles.
        self.link.interrupted() || self.cancel.is_some_and(Cancel::is_cancelled)
    }

    fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
        let checkpoint = |done| Event::Checkpoint(self.mailbox.clone(), self.entry(state), done);
        self.link.ask(checkpoint).unwrap_or(Ok(()))
    }

    /// The mailbox's first record (the entry that marks it as being written, before any
    /// message is sent) is persisted before the worker goes on, as without workers: a
    /// kill right after the first APPENDs must find the mark. Later ones (confirmed
    /// saves) are passed on without waiting: a kill that loses some leaves messages the
    /// next run finds by content.
    fn paired(&mut self, record: &str, state: &SyncState) {
        let first_entry = if self.first_record { self.entry(state) } else { None };
        self.first_record = false;
        let (mailbox, record) = (self.mailbox.clone(), record.to_owned());
        match first_entry {
            Some(entry) => {
                self.link.ask(|passed_on| Event::Paired(mailbox, record, Some((entry, passed_on))));
            }
            None => {
                self.link.send(Event::Paired(mailbox, record, None));
            }
        }
    }
}
