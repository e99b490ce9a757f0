//! Several mailboxes at once: a backup whose changed mailboxes are synced by workers, each
//! with its own connections to both sides, while this thread keeps the observer, the
//! report and the state (a worker's checkpoint waits until it is persisted here).
//!
//! Over a network most of a mailbox's time is waiting for round trips (SELECT, the
//! listing, the first FETCH answer); other mailboxes' transfers fill those waits.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

use super::all_mail::AllMail;
use super::backup::{self, PendingMailbox};
use super::{Failed, MailboxFailed, Observer, SyncOptions, WithCancel, collect_skipped, finish};
use crate::error::{Side, StorageError, SyncError};
use crate::model::{MailboxName, Uid};
use crate::plan::{MailboxPlan, Mode};
use crate::report::{MailboxReport, Report, Skipped};
use crate::state::{MailboxState, SyncState};
use crate::storage::{Skip, Storage, StorageMut};

/// The most mailboxes [`run_parallel`] syncs at once, whatever the caller asks: each costs
/// a connection to the server, and Dovecot's default `mail_max_userip_connections` is 10
/// per user and address (the run's first connection is one of them, a mail client of the
/// user may hold another).
pub const MAX_PARALLEL_MAILBOXES: usize = 8;

/// Opens more connections to the two sides of a run, one pair per worker of
/// [`run_parallel`]. Called from the workers' threads.
pub trait Connector: Sync {
    /// The source as a worker reads it.
    type Source: Storage + Send;
    /// The destination as a worker writes it.
    type Destination: StorageMut + Send;

    /// Opens (connects and logs in to) the source once more.
    fn open_source(&self) -> Result<Self::Source, StorageError>;

    /// Opens the destination once more.
    fn open_destination(&self) -> Result<Self::Destination, StorageError>;

    /// Ends a worker's connections (an IMAP server is told LOGOUT). The default drops them.
    fn close(&self, source: Self::Source, destination: Self::Destination) {
        drop((source, destination));
    }
}

/// Runs a backup like [`super::run`], syncing up to `workers` changed mailboxes at once
/// (at most [`MAX_PARALLEL_MAILBOXES`]), each worker on connections from `connector`.
///
/// `source` and `destination` list the trees, check which mailboxes are unchanged and
/// apply subscriptions; the workers list and copy the rest. A worker whose connection
/// cannot be opened is left out with a warning in the report; mailboxes no worker took are
/// synced over `source` and `destination` at the end. A destination that assigns its own
/// UIDs (an IMAP server) is written this way in a backup and a one-way sync (`sync -1`)
/// too: the workers copy the messages of changed mailboxes, the first connections list
/// the trees, create the missing mailboxes (parents first), and this thread records
/// every confirmed save ([`Observer::paired`]) in the order they arrive. Other modes, a
/// source with unstable UIDs (POP3) and `workers` ≤ 1 run exactly as [`super::run`].
pub fn run_parallel<C: Connector>(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    connector: &C,
    workers: usize,
) -> Result<Report, Failed> {
    let workers = workers.min(MAX_PARALLEL_MAILBOXES);
    if workers <= 1 || source.capabilities().unstable_uids {
        return super::run(options, source, destination, observer);
    }
    // A destination that assigns UIDs (an IMAP server) is written by the pairing engine,
    // its workers each on connections of their own ([`crate::pairing::parallel`]).
    if destination.capabilities().assigns_uids
        && matches!(options.mode, Mode::Backup | Mode::OneWay)
    {
        let pool = crate::pairing::parallel::Pool::new(connector, workers);
        return super::run_with(options, source, destination, observer, Some(&pool));
    }
    if options.mode != Mode::Backup {
        return super::run(options, source, destination, observer);
    }
    let observer = &mut WithCancel { inner: observer, cancel: options.cancel.as_ref() };
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    let mut state = super::initial_state(options, source);
    let result = (|| {
        let prepared =
            backup::prepare(options, source, destination, observer, &mut report, &mut state)?;
        let mut pending = VecDeque::from(prepared.pending);
        let mut all_mail = prepared.all_mail.clone().map(AllMail::new);
        // The all-mail mailbox (first in line) is synced before the workers start, so that
        // every one of them finds the messages it already holds.
        if let Some(name) = &prepared.all_mail
            && pending.front().is_some_and(|job| job.destination == *name)
            && let Some(job) = pending.pop_front()
        {
            let result = backup::sync_pending(
                options,
                source,
                destination,
                observer,
                &job,
                &mut state,
                all_mail.as_mut(),
            );
            backup::record(&job, result, observer, &mut report, &mut state)?;
        }
        let left = if options.dry_run || pending.len() <= 1 {
            pending
        } else {
            let mut run =
                Coordinator { observer, report: &mut report, state: &mut state, error: None };
            let shared_all_mail = prepared.all_mail.as_ref();
            let left = run.with_workers(options, connector, workers, pending, shared_all_mail);
            if let Some(error) = run.error {
                return Err(error);
            }
            left
        };
        for job in &left {
            let result = backup::sync_pending(
                options,
                source,
                destination,
                observer,
                job,
                &mut state,
                all_mail.as_mut(),
            );
            backup::record(job, result, observer, &mut report, &mut state)?;
        }
        backup::finish(options, destination, &prepared.tree, &mut report)
    })();
    collect_skipped(Side::Source, source, &mut report, &mut state);
    collect_skipped(Side::Destination, destination, &mut report, &mut state);
    finish(result, report, state, options, observer)
}

/// How one mailbox's sync ended.
type MailboxResult = Result<(MailboxReport, Option<MailboxState>), MailboxFailed>;

/// What a worker tells the coordinating thread.
enum Event {
    /// Its connections could not be opened: it takes no mailbox.
    Unavailable(SyncError),
    /// [`Observer::mailbox_planned`].
    Planned(Box<MailboxPlan>),
    /// [`Observer::message_saved`].
    Saved(MailboxName, Uid, u64),
    /// The mailbox's state entry must go and the state be persisted before the worker
    /// goes on (it is about to create or rebuild the mailbox); answered on the channel.
    Forget(MailboxName, mpsc::Sender<Result<(), StorageError>>),
    /// A mailbox is done.
    Finished(Box<PendingMailbox>, Box<MailboxResult>),
    /// Entries the worker's storages left out ([`crate::Storage::take_skipped`]).
    Skipped(Vec<(Side, Skip)>),
    /// The worker's storages' warnings ([`crate::Storage::take_warnings`]).
    Warnings(Vec<String>),
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
    /// Syncs `pending` with `workers` threads and returns the mailboxes none of them took.
    fn with_workers<C: Connector>(
        &mut self,
        options: &SyncOptions,
        connector: &C,
        workers: usize,
        pending: VecDeque<PendingMailbox>,
        all_mail: Option<&MailboxName>,
    ) -> VecDeque<PendingMailbox> {
        let workers = workers.min(pending.len());
        // What the last run left for the workers' mailboxes (their entries change only
        // through the events below); unchanged mailboxes' entries are not copied.
        let previous: BTreeMap<MailboxName, MailboxState> = pending
            .iter()
            .filter_map(|job| {
                let entry = self.state.mailboxes.get(&job.destination)?;
                Some((job.destination.clone(), entry.clone()))
            })
            .collect();
        let queue = Mutex::new(pending);
        let stop = AtomicBool::new(false);
        let interrupted = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (events, received) = mpsc::channel();
            for _ in 0..workers {
                let events = events.clone();
                let shared = Shared {
                    options,
                    previous: &previous,
                    queue: &queue,
                    stop: &stop,
                    interrupted: &interrupted,
                    all_mail,
                };
                scope.spawn(move || work(connector, &shared, &events));
            }
            drop(events);
            for event in received {
                self.handle(event, &stop);
                // The workers ask the caller's observer through this flag.
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
            Event::Planned(plan) => self.observer.mailbox_planned(&plan),
            Event::Saved(mailbox, uid, bytes) => self.observer.message_saved(&mailbox, uid, bytes),
            Event::Forget(mailbox, done) => {
                let persisted = if self.state.mailboxes.remove(&mailbox).is_some() {
                    self.observer.forget(&mailbox, self.state)
                } else {
                    Ok(())
                };
                // The worker stops that mailbox (and the run) on an error.
                let _ = done.send(persisted);
            }
            Event::Finished(job, result) => {
                let recorded =
                    backup::record(&job, *result, &mut *self.observer, self.report, self.state);
                if let Err(error) = recorded {
                    stop.store(true, Ordering::SeqCst);
                    self.error.get_or_insert(error);
                }
            }
            Event::Skipped(skipped) => {
                for (side, skip) in skipped {
                    if let Some(mailbox) = &skip.mailbox {
                        self.state.mailboxes.remove(mailbox);
                    }
                    self.report.skipped.push(Skipped { side, skip });
                }
            }
            Event::Warnings(warnings) => self.report.warnings.extend(warnings),
        }
    }
}

/// One worker: opens its connections, then syncs mailboxes from `queue` until it is empty,
/// the run stops, or an error that is not confined to a mailbox ends the worker.
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
    let mut all_mail = shared.all_mail.cloned().map(AllMail::new);
    while !shared.stop.load(Ordering::SeqCst) {
        let next = shared.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        let Some(job) = next else { break };
        let mut state = SyncState::default();
        // Only this mailbox's entry matters to its sync; the coordinator holds the rest.
        if let Some(previous) = shared.previous.get(&job.destination) {
            state.mailboxes.insert(job.destination.clone(), previous.clone());
        }
        let mut observer =
            Forward { events, mailbox: &job.destination, interrupted: shared.interrupted };
        let result = backup::sync_pending(
            shared.options,
            &mut source,
            &mut destination,
            &mut observer,
            &job,
            &mut state,
            all_mail.as_mut(),
        );
        let fatal = matches!(&result, Err(failed) if !super::is_mailbox_local(&failed.error));
        // The job is recorded first, so that a skipped entry's mailbox loses the state entry
        // the job just wrote.
        let skipped: Vec<(Side, Skip)> = (source.take_skipped().into_iter())
            .map(|skip| (Side::Source, skip))
            .chain(destination.take_skipped().into_iter().map(|skip| (Side::Destination, skip)))
            .collect();
        let finished = events.send(Event::Finished(Box::new(job), Box::new(result)));
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

/// What the workers share.
struct Shared<'a> {
    options: &'a SyncOptions,
    previous: &'a BTreeMap<MailboxName, MailboxState>,
    queue: &'a Mutex<VecDeque<PendingMailbox>>,
    stop: &'a AtomicBool,
    /// The caller's observer asked the run to stop ([`Observer::interrupted`]).
    interrupted: &'a AtomicBool,
    /// The destination's all-mail mailbox (`-a`), already synced.
    all_mail: Option<&'a MailboxName>,
}

/// A worker's observer: passes everything to the coordinating thread.
struct Forward<'a> {
    events: &'a mpsc::Sender<Event>,
    mailbox: &'a MailboxName,
    interrupted: &'a AtomicBool,
}

impl Observer for Forward<'_> {
    fn mailbox_planned(&mut self, plan: &MailboxPlan) {
        let _ = self.events.send(Event::Planned(Box::new(plan.clone())));
    }

    fn message_saved(&mut self, mailbox: &MailboxName, uid: Uid, bytes: u64) {
        let _ = self.events.send(Event::Saved(mailbox.clone(), uid, bytes));
    }

    fn interrupted(&mut self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    fn checkpoint(&mut self, _state: &SyncState) -> Result<(), StorageError> {
        let (done, wait) = mpsc::channel();
        if self.events.send(Event::Forget(self.mailbox.clone(), done)).is_ok() {
            // Persisted, or not (or the coordinator is gone, and nothing will be recorded
            // anyway).
            return wait.recv().unwrap_or(Ok(()));
        }
        Ok(())
    }
}
