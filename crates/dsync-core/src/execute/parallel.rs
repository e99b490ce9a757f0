//! Several mailboxes at once: a backup whose changed mailboxes are synced by workers, each
//! with its own connections to both sides, while this thread keeps the observer, the
//! report and the state (a worker's checkpoint waits until it is persisted here).
//!
//! Over a network most of a mailbox's time is waiting for round trips (SELECT, the
//! listing, the first FETCH answer); other mailboxes' transfers fill those waits.
//!
//! The threads, their queue and their messages are [`crate::worker_pool`]'s; this module
//! says what a worker does with a mailbox and what the coordinating thread does with its
//! messages, and holds what the IMAP destination's workers ([`crate::pairing::parallel`])
//! share with these: their connections and the caller's side ([`CallerSide`]).

use std::collections::{BTreeMap, VecDeque};

use super::all_mail::AllMail;
use super::backup::{self, PendingMailbox};
use super::{Failed, MailboxFailed, Observer, SyncOptions, WithCancel, collect_skipped, finish};
use crate::error::{Side, StorageError, SyncError};
use crate::model::{MailboxName, Uid};
use crate::plan::{MailboxPlan, Mode};
use crate::report::{MailboxReport, Report, Skipped};
use crate::state::{MailboxState, SyncState};
use crate::storage::{Storage, StorageMut};
use crate::worker_pool::{self, AfterJob, Link, Reply};

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
                None,
            );
            backup::record(&job, result, observer, &mut report, &mut state)?;
        }
        let left = if options.dry_run || pending.len() <= 1 {
            pending
        } else {
            let previous = previous_entries(&state, &pending);
            let worker = BackupWorker {
                connector,
                options,
                previous: &previous,
                all_mail: prepared.all_mail.as_ref(),
            };
            let mut caller = CallerSide { observer, report: &mut report, state: &mut state };
            worker_pool::run(&worker, workers, pending, &mut caller)?
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
                None,
            );
            backup::record(job, result, observer, &mut report, &mut state)?;
        }
        backup::finish(options, destination, &prepared.tree, &mut report)
    })();
    collect_skipped(Side::Source, source, &mut report, &mut state);
    collect_skipped(Side::Destination, destination, &mut report, &mut state);
    finish(result, report, state, options, observer)
}

/// What the last run left for the workers' mailboxes: their entries change only through
/// the coordinator; unchanged mailboxes' entries are not copied.
fn previous_entries(
    state: &SyncState,
    pending: &VecDeque<PendingMailbox>,
) -> BTreeMap<MailboxName, MailboxState> {
    pending
        .iter()
        .filter_map(|job| {
            let entry = state.mailboxes.get(&job.destination)?;
            Some((job.destination.clone(), entry.clone()))
        })
        .collect()
}

/// A worker's own connections to both sides, opened through a [`Connector`].
pub(crate) struct Connections<C: Connector> {
    pub(crate) source: C::Source,
    pub(crate) destination: C::Destination,
}

impl<C: Connector> Connections<C> {
    /// Opens the source, then the destination; the error names the side that failed.
    pub(crate) fn open(connector: &C) -> Result<Connections<C>, SyncError> {
        let source = connector.open_source().map_err(SyncError::global(Side::Source))?;
        let destination =
            connector.open_destination().map_err(SyncError::global(Side::Destination))?;
        Ok(Connections { source, destination })
    }

    /// What the two storages left out and warned about since they were last asked.
    pub(crate) fn take_left_out(&mut self) -> LeftOut {
        let source = self.source.take_skipped().into_iter().map(|skip| (Side::Source, skip));
        let destination =
            self.destination.take_skipped().into_iter().map(|skip| (Side::Destination, skip));
        let skipped =
            source.chain(destination).map(|(side, skip)| Skipped { side, skip }).collect();
        let mut warnings = self.source.take_warnings();
        warnings.extend(self.destination.take_warnings());
        LeftOut { skipped, warnings }
    }

    /// Ends both ([`Connector::close`]).
    pub(crate) fn close(self, connector: &C) {
        connector.close(self.source, self.destination);
    }
}

/// What a worker's storages left out ([`Storage::take_skipped`]) and warned about
/// ([`Storage::take_warnings`]) while it synced a mailbox: passed on with the mailbox's
/// result, and taken into the report after it.
pub(crate) struct LeftOut {
    pub(crate) skipped: Vec<Skipped>,
    warnings: Vec<String>,
}

impl LeftOut {
    /// Adds the entries and the warnings to `report`.
    pub(crate) fn add_to(self, report: &mut Report) {
        report.skipped.extend(self.skipped);
        report.warnings.extend(self.warnings);
    }
}

/// What only the coordinating thread touches while workers sync mailboxes: the caller's
/// observer, report and state (each kind of run handles its workers' messages with it,
/// [`worker_pool::Coordinator`]).
pub(crate) struct CallerSide<'a, 'o> {
    pub(crate) observer: &'a mut (dyn Observer + 'o),
    pub(crate) report: &'a mut Report,
    pub(crate) state: &'a mut SyncState,
}

impl CallerSide<'_, '_> {
    /// Notes a worker whose connections could not be opened: the run goes on with the
    /// others (or, with none, over the first connections).
    pub(crate) fn one_connection_fewer(&mut self, error: &SyncError) {
        let warning = format!("one connection fewer for syncing mailboxes at once: {error}");
        self.report.warnings.push(warning);
    }
}

/// Passes a mailbox's `result` on in the message `finished` makes of it, and says whether
/// the worker takes another mailbox: not after an error that is not confined to the
/// mailbox (a lost connection, which also stops the run), nor when nobody listens.
pub(crate) fn pass_on_result<T, M>(
    link: &Link<'_, M>,
    result: Result<T, MailboxFailed>,
    finished: impl FnOnce(Result<T, MailboxFailed>) -> M,
) -> AfterJob {
    let confined =
        result.as_ref().err().is_none_or(|failed| super::is_mailbox_local(&failed.error));
    if link.send(finished(result)) && confined { AfterJob::TakeNext } else { AfterJob::EndThread }
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
    /// goes on (it is about to create or rebuild the mailbox).
    Forget(MailboxName, Reply<Result<(), StorageError>>),
    /// A mailbox is done.
    Finished(Box<PendingMailbox>, Box<MailboxResult>, LeftOut),
}

impl worker_pool::Coordinator<Event> for CallerSide<'_, '_> {
    type Error = SyncError;

    fn handle(&mut self, event: Event) -> Result<(), SyncError> {
        match event {
            Event::Unavailable(error) => self.one_connection_fewer(&error),
            Event::Planned(plan) => self.observer.mailbox_planned(&plan),
            Event::Saved(mailbox, uid, bytes) => self.observer.message_saved(&mailbox, uid, bytes),
            Event::Forget(mailbox, done) => {
                let persisted = if self.state.mailboxes.remove(&mailbox).is_some() {
                    self.observer.forget(&mailbox, self.state)
                } else {
                    Ok(())
                };
                // The worker stops that mailbox (and the run) on an error.
                done.send(persisted);
            }
            Event::Finished(job, result, left_out) => {
                let recorded =
                    backup::record(&job, *result, &mut *self.observer, self.report, self.state);
                // After the record, so that a skipped entry's mailbox loses the state entry
                // the job just wrote.
                for skipped in &left_out.skipped {
                    if let Some(mailbox) = &skipped.skip.mailbox {
                        self.state.mailboxes.remove(mailbox);
                    }
                }
                left_out.add_to(self.report);
                return recorded;
            }
        }
        Ok(())
    }

    /// The caller's observer: the workers hear it through the pool ([`Link::interrupted`]).
    fn interrupted(&mut self) -> bool {
        self.observer.interrupted()
    }
}

/// The workers' side: what each needs to sync a mailbox on connections of its own.
struct BackupWorker<'a, C> {
    connector: &'a C,
    options: &'a SyncOptions,
    /// [`previous_entries`].
    previous: &'a BTreeMap<MailboxName, MailboxState>,
    /// The destination's all-mail mailbox (`-a`), already synced.
    all_mail: Option<&'a MailboxName>,
}

/// What one worker keeps from one mailbox to the next.
struct BackupThread<C: Connector> {
    connections: Connections<C>,
    all_mail: Option<AllMail>,
}

impl<C: Connector> worker_pool::Worker for BackupWorker<'_, C> {
    type Job = PendingMailbox;
    type Message = Event;
    type ThreadState = BackupThread<C>;

    fn start(&self) -> Result<BackupThread<C>, Event> {
        let connections = Connections::open(self.connector).map_err(Event::Unavailable)?;
        Ok(BackupThread { connections, all_mail: self.all_mail.cloned().map(AllMail::new) })
    }

    fn run(
        &self,
        thread: &mut BackupThread<C>,
        job: PendingMailbox,
        link: &Link<'_, Event>,
    ) -> AfterJob {
        let mut state = SyncState::default();
        // Only this mailbox's entry matters to its sync; the coordinator holds the rest.
        if let Some(previous) = self.previous.get(&job.destination) {
            state.mailboxes.insert(job.destination.clone(), previous.clone());
        }
        let mut observer = Forward { link, mailbox: &job.destination };
        let connections = &mut thread.connections;
        let result = backup::sync_pending(
            self.options,
            &mut connections.source,
            &mut connections.destination,
            &mut observer,
            &job,
            &mut state,
            thread.all_mail.as_mut(),
            None,
        );
        let left_out = connections.take_left_out();
        pass_on_result(link, result, |result| {
            Event::Finished(Box::new(job), Box::new(result), left_out)
        })
    }

    fn end(&self, thread: BackupThread<C>) {
        thread.connections.close(self.connector);
    }
}

/// A worker's observer: passes everything to the coordinating thread.
struct Forward<'a> {
    link: &'a Link<'a, Event>,
    mailbox: &'a MailboxName,
}

impl Observer for Forward<'_> {
    fn mailbox_planned(&mut self, plan: &MailboxPlan) {
        self.link.send(Event::Planned(Box::new(plan.clone())));
    }

    fn message_saved(&mut self, mailbox: &MailboxName, uid: Uid, bytes: u64) {
        self.link.send(Event::Saved(mailbox.clone(), uid, bytes));
    }

    fn interrupted(&mut self) -> bool {
        self.link.interrupted()
    }

    fn checkpoint(&mut self, _state: &SyncState) -> Result<(), StorageError> {
        // Persisted, or not (or the coordinator is gone, and nothing will be recorded
        // anyway).
        let forget = |done| Event::Forget(self.mailbox.clone(), done);
        self.link.ask(forget).unwrap_or(Ok(()))
    }
}
