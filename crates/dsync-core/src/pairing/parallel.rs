//! Several mailboxes at once into a destination that assigns its own UIDs (an IMAP
//! server): workers, each with its own connections to both sides, copy the messages of
//! the changed mailboxes, while this thread keeps the observer, the report and the state.
//!
//! The destination's APPEND is what a copy into an IMAP server waits for (Dovecot parses
//! and indexes each message as it arrives); a second connection writing another mailbox
//! makes the server work on two at once.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

use super::held::Held;
use super::plan::PairMode;
use super::{Job, Origin, new_mailbox, side_error, sync_mailbox, unchanged};
use crate::error::{Side, StorageError, SyncError};
use crate::execute::{
    Cancel, Connector, MailboxFailed, Observer, SyncOptions, keep_going_mailbox,
    stop_if_interrupted,
};
use crate::model::{MailboxName, Uid};
use crate::plan::MailboxAction;
use crate::report::{MailboxReport, Report, Skipped};
use crate::state::SyncState;
use crate::state::pairs::MailboxPairs;
use crate::storage::{Skip, Storage, StorageMut};

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
    /// whole entry for it and a channel to say it was passed on.
    Paired(MailboxName, String, Option<(Box<MailboxPairs>, mpsc::Sender<()>)>),
    /// [`Observer::checkpoint`] with the worker's entry; answered on the channel.
    Checkpoint(MailboxName, Option<Box<MailboxPairs>>, mpsc::Sender<Result<(), StorageError>>),
    /// A mailbox is done: its result and the worker's entry for it.
    Finished(Box<Task>, Box<MailboxResult>, Option<Box<MailboxPairs>>),
    /// Entries the worker's storages left out ([`crate::Storage::take_skipped`]).
    Skipped(Vec<(Side, Skip)>),
    /// The worker's storages' warnings ([`crate::Storage::take_warnings`]).
    Warnings(Vec<String>),
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
            let mut run = Coordinator { observer, report, state, error: None };
            let copies = held.enabled();
            let left = run.with_workers(self.connector, options, mode, self.workers, copies, tasks);
            if let Some(error) = run.error {
                return Err(error);
            }
            left
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

/// The coordinating thread's side: the caller's observer, report and state.
struct Coordinator<'a, 'o> {
    observer: &'a mut (dyn Observer + 'o),
    report: &'a mut Report,
    state: &'a mut SyncState,
    /// The first error that stopped the run.
    error: Option<SyncError>,
}

impl Coordinator<'_, '_> {
    /// Syncs `tasks` with up to `workers` threads and returns the tasks none of them took;
    /// `copies`: the destination copies within itself ([`Held::enabled`]).
    #[allow(clippy::too_many_arguments)]
    fn with_workers<C: Connector>(
        &mut self,
        connector: &C,
        options: &SyncOptions,
        mode: PairMode,
        workers: usize,
        copies: bool,
        tasks: VecDeque<Task>,
    ) -> VecDeque<Task> {
        let workers = workers.min(tasks.len());
        let queue = Mutex::new(tasks);
        let stop = AtomicBool::new(false);
        let interrupted = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (events, received) = mpsc::channel();
            for _ in 0..workers {
                let events = events.clone();
                let shared = Shared {
                    options,
                    mode,
                    copies,
                    queue: &queue,
                    stop: &stop,
                    interrupted: &interrupted,
                };
                scope.spawn(move || work(connector, &shared, &events));
            }
            drop(events);
            for event in received {
                self.handle(event, &stop);
                if self.observer.interrupted() {
                    interrupted.store(true, Ordering::SeqCst);
                }
            }
        });
        let left = queue.into_inner().unwrap_or_else(PoisonError::into_inner);
        if self.error.is_some() { VecDeque::new() } else { left }
    }

    fn handle(&mut self, event: Event, stop: &AtomicBool) {
        match event {
            Event::Unavailable(error) => {
                self.report
                    .warnings
                    .push(format!("one connection fewer for syncing mailboxes at once: {error}"));
            }
            Event::Saved(mailbox, uid, bytes) => self.observer.message_saved(&mailbox, uid, bytes),
            Event::Paired(mailbox, record, first) => {
                let done = first.map(|(entry, done)| {
                    self.state.pairs.insert(mailbox, *entry);
                    done
                });
                self.observer.paired(&record, self.state);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Event::Checkpoint(mailbox, entry, done) => {
                self.set_entry(mailbox, entry);
                // The worker stops that mailbox (and the run) on an error.
                let _ = done.send(self.observer.checkpoint(self.state));
            }
            Event::Finished(task, result, entry) => {
                self.set_entry(task.job.name.clone(), entry);
                let finished = finish(*result, task.created, &mut *self.observer, self.report);
                if let Err(error) = finished {
                    stop.store(true, Ordering::SeqCst);
                    self.error.get_or_insert(error);
                }
            }
            Event::Skipped(skipped) => {
                for (side, skip) in skipped {
                    self.report.skipped.push(Skipped { side, skip });
                }
            }
            Event::Warnings(warnings) => self.report.warnings.extend(warnings),
        }
    }

    fn set_entry(&mut self, mailbox: MailboxName, entry: Option<Box<MailboxPairs>>) {
        match entry {
            Some(entry) => self.state.pairs.insert(mailbox, *entry),
            None => self.state.pairs.remove(&mailbox),
        };
    }
}

/// What the workers share.
struct Shared<'a> {
    options: &'a SyncOptions,
    mode: PairMode,
    /// The destination copies within itself: each worker keeps its own [`Held`].
    copies: bool,
    queue: &'a Mutex<VecDeque<Task>>,
    stop: &'a AtomicBool,
    /// The caller's observer asked the run to stop ([`Observer::interrupted`]).
    interrupted: &'a AtomicBool,
}

/// One worker: opens its connections, then syncs mailboxes from the queue until it is
/// empty, the run stops, or an error that is not confined to a mailbox ends the worker.
fn work<C: Connector>(connector: &C, shared: &Shared<'_>, events: &mpsc::Sender<Event>) {
    let mut source = match connector.open_source() {
        Ok(source) => source,
        Err(error) => {
            let _ = events.send(Event::Unavailable(SyncError::global(Side::Source)(error)));
            return;
        }
    };
    let mut destination = match connector.open_destination() {
        Ok(destination) => destination,
        Err(error) => {
            let _ = events.send(Event::Unavailable(SyncError::global(Side::Destination)(error)));
            return;
        }
    };
    // No listing here: a worker spells names as its storage computes them (the
    // separator comes with the login), and a listing's statuses would stand in for the
    // STATUS taken after the copy, which the next run compares with.
    let mut held = Held::new(shared.copies, false, &[]);
    while !shared.stop.load(Ordering::SeqCst) {
        let next = shared.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        let Some(task) = next else { break };
        let name = task.job.name.clone();
        let mut state = SyncState::default();
        if let Some(entry) = &task.entry {
            state.pairs.insert(name.clone(), entry.clone());
        }
        let mut observer = Forward {
            events,
            mailbox: &name,
            interrupted: shared.interrupted,
            cancel: shared.options.cancel.as_ref(),
            first_record: true,
        };
        let result = {
            let mut origin = Origin::ReadOnly(&mut source);
            let (options, mode, job) = (shared.options, shared.mode, &task.job);
            sync_mailbox(
                options,
                mode,
                &mut origin,
                &mut destination,
                &mut observer,
                job,
                &mut state,
                &mut held,
            )
        };
        let fatal =
            matches!(&result, Err(failed) if !crate::execute::is_mailbox_local(&failed.error));
        let skipped: Vec<(Side, Skip)> = (source.take_skipped().into_iter())
            .map(|skip| (Side::Source, skip))
            .chain(destination.take_skipped().into_iter().map(|skip| (Side::Destination, skip)))
            .collect();
        let entry = state.pairs.remove(&name).map(Box::new);
        let finished = events.send(Event::Finished(Box::new(task), Box::new(result), entry));
        if !skipped.is_empty() {
            let _ = events.send(Event::Skipped(skipped));
        }
        let mut warnings = source.take_warnings();
        warnings.extend(destination.take_warnings());
        if !warnings.is_empty() {
            let _ = events.send(Event::Warnings(warnings));
        }
        if finished.is_err() || fatal {
            break;
        }
    }
    connector.close(source, destination);
}

/// A worker's observer: passes everything to the coordinating thread.
struct Forward<'a> {
    events: &'a mpsc::Sender<Event>,
    mailbox: &'a MailboxName,
    interrupted: &'a AtomicBool,
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
        let _ = self.events.send(Event::Saved(mailbox.clone(), uid, bytes));
    }

    fn interrupted(&mut self) -> bool {
        self.interrupted.load(Ordering::SeqCst) || self.cancel.is_some_and(Cancel::is_cancelled)
    }

    fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
        let (done, wait) = mpsc::channel();
        let event = Event::Checkpoint(self.mailbox.clone(), self.entry(state), done);
        if self.events.send(event).is_ok() {
            return wait.recv().unwrap_or(Ok(()));
        }
        Ok(())
    }

    /// The mailbox's first record (the entry that marks it as being written, before any
    /// message is sent) is persisted before the worker goes on, as without workers: a
    /// kill right after the first APPENDs must find the mark. Later ones (confirmed
    /// saves) are passed on without waiting: a kill that loses some leaves messages the
    /// next run finds by content.
    fn paired(&mut self, record: &str, state: &SyncState) {
        let (done, wait) = mpsc::channel();
        let first = if self.first_record { self.entry(state).map(|e| (e, done)) } else { None };
        let waits = first.is_some();
        self.first_record = false;
        let event = Event::Paired(self.mailbox.clone(), record.to_owned(), first);
        if self.events.send(event).is_ok() && waits {
            let _ = wait.recv();
        }
    }
}
