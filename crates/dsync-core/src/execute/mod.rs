//! The executor: applies plans through the storage traits, streaming bodies from one side
//! to the other, committing every `commit_interval` saves so that an interrupted run leaves
//! a clean UID prefix and the next run resumes without duplicates or gaps.

mod all_mail;
mod backup;
mod copy;
mod import;
mod merge;
mod parallel;
mod rename;
mod uidl;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::filter::{MailboxFilter, MailboxPattern, MessageFilter};
use crate::model::{MailboxInfo, MailboxName, Uid};
use crate::plan::{MailboxPlan, Mode, TreePlan};
use crate::query::SearchQuery;
use crate::report::{MailboxReport, Report};
use crate::state::SyncState;
use crate::storage::{Storage, StorageMut};

pub use parallel::{Connector, MAX_PARALLEL_MAILBOXES, run_parallel};

/// How a run behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncOptions {
    /// What to do.
    pub mode: Mode,
    /// Commit after this many saved messages (Dovecot's `dsync_commit_msgs_interval`,
    /// default 100). Saves are in ascending UID order, so every commit is a clean prefix.
    pub commit_interval: u32,
    /// Plan and report without writing anything.
    pub dry_run: bool,
    /// Which mailboxes the run is about (`-m`, `-x`).
    pub mailbox_filter: MailboxFilter,
    /// Which messages the run copies and compares (`-t`, `-e`, `-I`, `-O`).
    pub message_filter: MessageFilter,
    /// What the previous run left behind ([`Report::state`] of that run). Without it a run
    /// lists every mailbox in full and a two-way sync cannot tell an expunge from new mail.
    pub state: Option<SyncState>,
    /// Import: the folder the source's tree goes under (`None`: the top level).
    pub import_parent: Option<MailboxName>,
    /// Import: subscribe to the mailboxes imported into (`doveadm import -s`).
    pub subscribe_imported: bool,
    /// Import: doveadm's search query, which mailboxes and messages to copy (on top of
    /// the filters). A mailbox in which nothing matches is not created.
    pub search: Option<SearchQuery>,
    /// doveadm's `-a`: the destination mailbox that holds every message (an "all mail"
    /// folder, e.g. Gmail's `\All`). A message to save whose GUID is already there is
    /// copied from it on the destination instead of transferred again (a Maildir then
    /// stores the body once, hard-linked). Only messages whose source has GUIDs qualify.
    /// `backup` and `sync -1` use it; that mailbox is synced first.
    pub all_mail: Option<MailboxPattern>,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            mode: Mode::Backup,
            commit_interval: 100,
            dry_run: false,
            mailbox_filter: MailboxFilter::default(),
            message_filter: MessageFilter::default(),
            state: None,
            import_parent: None,
            subscribe_imported: false,
            search: None,
            all_mail: None,
        }
    }
}

impl SyncOptions {
    /// Options for `mode` with defaults otherwise.
    pub fn new(mode: Mode) -> SyncOptions {
        SyncOptions { mode, ..SyncOptions::default() }
    }
    /// Sets the commit interval (0 behaves as 1: commit after every message).
    #[must_use]
    pub fn commit_interval(mut self, messages: u32) -> SyncOptions {
        self.commit_interval = messages;
        self
    }
    /// Turns dry-run on or off.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> SyncOptions {
        self.dry_run = dry_run;
        self
    }
    /// Restricts the run to some mailboxes.
    #[must_use]
    pub fn mailbox_filter(mut self, filter: MailboxFilter) -> SyncOptions {
        self.mailbox_filter = filter;
        self
    }
    /// Starts from the state a previous run returned.
    #[must_use]
    pub fn state(mut self, state: Option<SyncState>) -> SyncOptions {
        self.state = state;
        self
    }
    /// Import under `parent` (`None`: at the top level).
    #[must_use]
    pub fn import_parent(mut self, parent: Option<MailboxName>) -> SyncOptions {
        self.import_parent = parent;
        self
    }
    /// Subscribes the mailboxes an import creates (`doveadm import -s`).
    #[must_use]
    pub fn subscribe_imported(mut self, subscribe: bool) -> SyncOptions {
        self.subscribe_imported = subscribe;
        self
    }
    /// Imports only what `query` selects ([`Self::search`]).
    #[must_use]
    pub fn search(mut self, query: Option<SearchQuery>) -> SyncOptions {
        self.search = query;
        self
    }
    /// Copies by GUID from this all-mail mailbox of the destination ([`Self::all_mail`]).
    #[must_use]
    pub fn all_mail(mut self, mailbox: Option<MailboxPattern>) -> SyncOptions {
        self.all_mail = mailbox;
        self
    }
    /// Restricts the run to some messages.
    #[must_use]
    pub fn message_filter(mut self, filter: MessageFilter) -> SyncOptions {
        self.message_filter = filter;
        self
    }
}

/// Hears about progress; every method has an empty default.
pub trait Observer {
    /// The mailbox tree was planned.
    fn tree_planned(&mut self, _plan: &TreePlan) {}
    /// A mailbox was planned and is about to be applied.
    fn mailbox_planned(&mut self, _plan: &MailboxPlan) {}
    /// One message was saved on the destination.
    fn message_saved(&mut self, _mailbox: &MailboxName, _uid: Uid, _bytes: u64) {}
    /// A mailbox is finished.
    fn mailbox_finished(&mut self, _report: &MailboxReport) {}
    /// The run is about to make a change after which the state saved before the run would
    /// be wrong (it creates a mailbox, or changes a mailbox's UIDVALIDITY). Persist `state`
    /// now, atomically, to survive a kill; the final state comes with the report.
    fn checkpoint(&mut self, _state: &SyncState) {}
    /// The entry of `mailbox` was just removed from `state`: the run is about to create or
    /// rebuild that mailbox, after which the saved entry would be wrong. Persist the removal
    /// now, atomically. The default persists the whole state with
    /// [`checkpoint`](Self::checkpoint); an observer that keeps the state in a file can
    /// append [`SyncState::forget_record`] instead, one line rather than the whole state
    /// for each of thousands of mailboxes.
    fn forget(&mut self, _mailbox: &MailboxName, state: &SyncState) {
        self.checkpoint(state);
    }
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// A run stopped early; `report` holds what was done before.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failed {
    /// The error that stopped the run.
    #[source]
    pub error: SyncError,
    /// What had been done.
    pub report: Box<Report>,
}

impl Failed {
    /// doveadm's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        self.error.exit_code()
    }
}

/// Runs a sync from `source` to `destination`.
///
/// Errors confined to one mailbox (a name the destination cannot represent, a mailbox
/// deleted meanwhile, a permission problem) are recorded in [`Report::failures`] and the
/// run goes on; errors that make further work pointless (connection lost, authentication,
/// disk full) stop it with [`Failed`].
pub fn run(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
) -> Result<Report, Failed> {
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    let mut state = options.state.clone().unwrap_or_default();
    let unstable_uids = source.capabilities().unstable_uids;
    let result = match options.mode {
        Mode::Backup | Mode::OneWay if unstable_uids => {
            let expunge_missing = options.mode == Mode::Backup;
            uidl::run(options, source, destination, observer, &mut report, expunge_missing)
        }
        Mode::Backup => {
            backup::run(options, source, destination, observer, &mut report, &mut state)
        }
        Mode::OneWay => {
            let side_a = merge::SideA::ReadOnly(source);
            merge::run(options, side_a, destination, observer, &mut report, &mut state)
        }
        Mode::Import => import::run(options, source, destination, observer, &mut report),
        Mode::TwoWay => Err(SyncError {
            side: Side::Source,
            mailbox: None,
            error: StorageError::new(
                ErrorKind::Usage,
                "a two-way sync writes both sides: use run_two_way",
            ),
        }),
    };
    finish(result, report, state, options)
}

/// Runs a two-way sync (Dovecot's `sync`) between `a` and `b`; `a` plays the source's part
/// in reports and errors.
pub fn run_two_way(
    options: &SyncOptions,
    a: &mut dyn StorageMut,
    b: &mut dyn StorageMut,
    observer: &mut dyn Observer,
) -> Result<Report, Failed> {
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    let mut state = options.state.clone().unwrap_or_default();
    let result = if options.message_filter.is_everything() {
        merge::run(options, merge::SideA::Writable(a), b, observer, &mut report, &mut state)
    } else {
        Err(SyncError {
            side: Side::Source,
            mailbox: None,
            error: StorageError::new(
                ErrorKind::Usage,
                "message filters are not supported in a two-way sync",
            ),
        })
    };
    finish(result, report, state, options)
}

fn finish(
    result: Result<(), SyncError>,
    mut report: Report,
    state: SyncState,
    options: &SyncOptions,
) -> Result<Report, Failed> {
    // A dry run leaves the state as it was; a failed run returns what it has, since every
    // mailbox recorded in it was synced completely.
    report.state = if options.dry_run { options.state.clone() } else { Some(state) };
    match result {
        Ok(()) => Ok(report),
        Err(error) => Err(Failed { error, report: Box::new(report) }),
    }
}

/// Translates source mailbox names into the destination's spelling. Two source names that
/// end up the same are a mailbox-local failure for the second one; the map leads back from
/// destination names to source names.
pub(crate) fn local_names(
    mailboxes: Vec<MailboxInfo>,
    destination: &dyn StorageMut,
    report: &mut Report,
) -> (Vec<MailboxInfo>, BTreeMap<MailboxName, MailboxName>) {
    let mut source_names: BTreeMap<MailboxName, MailboxName> = BTreeMap::new();
    let mut translated = Vec::with_capacity(mailboxes.len());
    for info in mailboxes {
        let local = destination.local_name(&info.name);
        if let Some(first) = source_names.get(&local) {
            if first != &info.name {
                let message =
                    format!("its name on the destination, {local}, is also that of {first}");
                report.failures.push(SyncError {
                    side: Side::Destination,
                    mailbox: Some(info.name.clone()),
                    error: StorageError::new(ErrorKind::InvalidData, message),
                });
            }
            continue;
        }
        if local != info.name {
            report
                .warnings
                .push(format!("mailbox {} is stored as {local} on the destination", info.name));
        }
        source_names.insert(local.clone(), info.name.clone());
        translated.push(MailboxInfo { name: local, ..info });
    }
    (translated, source_names)
}

/// A mailbox's name on each side.
pub(crate) struct Names<'a> {
    pub(crate) source: &'a MailboxName,
    pub(crate) destination: &'a MailboxName,
}

/// Applies subscription changes to the destination in one go, counting those made and
/// recording those refused as failures of their names.
pub(crate) fn apply_subscriptions(
    options: &SyncOptions,
    destination: &mut dyn StorageMut,
    changes: &[(MailboxName, bool)],
    report: &mut Report,
) -> Result<(), SyncError> {
    let refused = if options.dry_run || changes.is_empty() {
        Vec::new()
    } else {
        let result = destination.update_subscriptions(changes);
        match keep_going(result.map_err(at(Side::Destination, None)), report)? {
            Some(refused) => refused,
            // Refused as a whole: nothing to count.
            None => return Ok(()),
        }
    };
    let refused_names: BTreeSet<&MailboxName> = refused.iter().map(|(name, _)| name).collect();
    for (name, subscribed) in changes {
        if refused_names.contains(name) {
            continue;
        }
        if *subscribed {
            report.subscribed += 1;
        } else {
            report.unsubscribed += 1;
        }
    }
    for (name, error) in refused {
        report.failures.push(SyncError { side: Side::Destination, mailbox: Some(name), error });
    }
    Ok(())
}

/// Records a mailbox-local error and continues, or stops the run on a global one.
pub(crate) fn keep_going<T>(
    result: Result<T, SyncError>,
    report: &mut Report,
) -> Result<Option<T>, SyncError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if is_mailbox_local(&error) => {
            report.failures.push(error);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// True for an error confined to its mailbox: the run records it and goes on.
pub(crate) fn is_mailbox_local(error: &SyncError) -> bool {
    error.kind().is_confined()
}

pub(crate) fn at(
    side: Side,
    mailbox: Option<&MailboxName>,
) -> impl FnOnce(StorageError) -> SyncError {
    let mailbox = mailbox.cloned();
    move |error| SyncError { side, mailbox, error }
}
