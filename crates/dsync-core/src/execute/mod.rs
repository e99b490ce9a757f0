//! The executor: applies plans through the storage traits, streaming bodies from one side
//! to the other, committing every `commit_interval` saves so that an interrupted run leaves
//! a clean UID prefix and the next run resumes without duplicates or gaps.

mod all_mail;
mod backup;
mod cancel;
mod copy;
mod header_check;
mod import;
mod merge;
mod parallel;
mod uidl;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::filter::{MailboxFilter, MailboxPattern, MessageFilter};
use crate::model::{MailboxInfo, MailboxName, MessageMeta, SpecialUse, Uid};
use crate::pairing::{self, plan::PairMode};
use crate::plan::{MailboxPlan, Mode, TreePlan};
use crate::query::SearchQuery;
use crate::report::{MailboxReport, Report, Skipped};
use crate::state::{SyncState, WrittenBy};
use crate::storage::{Storage, StorageMut};

pub use cancel::Cancel;
pub(crate) use cancel::WithCancel;
pub(crate) use parallel::{CallerSide, Connections, LeftOut, pass_on_result};
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
    /// Stops the run from another thread ([`Cancel`]), as [`Observer::interrupted`] does.
    pub cancel: Option<Cancel>,
    /// A backup into a destination that assigns its own UIDs (an IMAP server): also
    /// delete what dsync did not put there (messages and mailboxes the source lacks,
    /// subscriptions it does not have), making the destination the source's copy exactly.
    /// Without it such a backup only removes its own earlier copies ([`crate::pairing`]).
    pub delete_extra: bool,
    /// How many of a plan's saves the copy decodes at a time ([`crate::plan::SaveList`]),
    /// each batch one `fetch` of the source (default 16 384: a few MB of metadata). Smaller
    /// holds less and asks the source more often.
    pub save_batch: usize,
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
            cancel: None,
            delete_extra: false,
            save_batch: 16_384,
        }
    }
}

impl SyncOptions {
    /// Options for `mode` with defaults otherwise.
    pub fn new(mode: Mode) -> SyncOptions {
        SyncOptions { mode, ..SyncOptions::default() }
    }
    /// Sets [`SyncOptions::save_batch`] (0 behaves as 1).
    #[must_use]
    pub fn save_batch(mut self, messages: usize) -> SyncOptions {
        self.save_batch = messages;
        self
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
    /// Stops the run when `cancel` is cancelled ([`Self::cancel`]).
    #[must_use]
    pub fn cancel(mut self, cancel: Option<Cancel>) -> SyncOptions {
        self.cancel = cancel;
        self
    }
    /// Lets a backup into a destination that assigns UIDs delete what it did not put
    /// there ([`Self::delete_extra`]).
    #[must_use]
    pub fn delete_extra(mut self, delete_extra: bool) -> SyncOptions {
        self.delete_extra = delete_extra;
        self
    }
    /// Restricts the run to some messages.
    #[must_use]
    pub fn message_filter(mut self, filter: MessageFilter) -> SyncOptions {
        self.message_filter = filter;
        self
    }
}

/// Hears about progress, and persists the state at checkpoints; every method has a
/// default that does nothing.
///
/// Every mailbox the run works on gets one [`mailbox_planned`](Self::mailbox_planned)
/// and then, unless it failed (see [`Report::failures`]) or the run stopped, one
/// [`mailbox_finished`](Self::mailbox_finished); a mailbox neither side changed since the
/// state gets an empty plan ([`MailboxPlan::unchanged`]). What a side left out is told to
/// [`skipped`](Self::skipped).
pub trait Observer {
    /// The mailbox tree was planned.
    fn tree_planned(&mut self, _plan: &TreePlan) {}
    /// A mailbox was planned and is about to be applied. In the merge modes (`sync`,
    /// `sync -1`) the plan is side B's (the destination's).
    fn mailbox_planned(&mut self, _plan: &MailboxPlan) {}
    /// One message was saved on the destination.
    fn message_saved(&mut self, _mailbox: &MailboxName, _uid: Uid, _bytes: u64) {}
    /// A mailbox is finished.
    fn mailbox_finished(&mut self, _report: &MailboxReport) {}
    /// A side left something out (a mailbox, a message file it would not read): it is in
    /// [`Report::skipped`] too, and makes the run exit 65. Told at the end of the run.
    fn skipped(&mut self, _skipped: &Skipped) {}
    /// The run is about to make a change after which the state saved before the run would
    /// be wrong (it creates a mailbox, or changes a mailbox's UIDVALIDITY). Persist `state`
    /// now, atomically, to survive a kill ([`StateFile::checkpoint`] does); the final
    /// state comes with the report. An error stops the run before the change (its kind
    /// decides the exit code; one that would otherwise be confined to a mailbox counts as
    /// [`ErrorKind::CannotCreate`]).
    ///
    /// [`StateFile::checkpoint`]: crate::state::StateFile::checkpoint
    fn checkpoint(&mut self, _state: &SyncState) -> Result<(), StorageError> {
        Ok(())
    }
    /// Asked after each saved message and before each mailbox: true stops the run there
    /// (after committing what was saved) with an [`ErrorKind::Interrupted`] error, whose
    /// [`Failed::report`] holds the state of every mailbox finished before. A [`Cancel`]
    /// token in [`SyncOptions::cancel`] does the same from another thread.
    fn interrupted(&mut self) -> bool {
        false
    }

    /// The entry of `mailbox` was just removed from `state`: the run is about to create or
    /// rebuild that mailbox, after which the saved entry would be wrong. Persist the removal
    /// now, atomically. The default persists the whole state with
    /// [`checkpoint`](Self::checkpoint); an observer that keeps the state in a file can
    /// append [`SyncState::forget_record`] instead, one line rather than the whole state
    /// for each of thousands of mailboxes ([`StateFile::checkpoint_forget`]). An error
    /// stops the run as one of [`checkpoint`](Self::checkpoint) does.
    ///
    /// [`StateFile::checkpoint_forget`]: crate::state::StateFile::checkpoint_forget
    fn forget(&mut self, _mailbox: &MailboxName, state: &SyncState) -> Result<(), StorageError> {
        self.checkpoint(state)
    }

    /// A side that assigns its own UIDs (an IMAP destination) confirmed a save, now
    /// paired in `state` ([`crate::pairing`]): persist it before anything else happens, or
    /// a kill now leaves the message there unpaired (the next run still finds it by
    /// content, at the cost of reading headers). `record` is the one line
    /// ([`crate::state::pairs::pair_record`]) that, appended to the saved state, says
    /// it; the default persists the whole state with [`checkpoint`](Self::checkpoint)
    /// (a failure does not stop the run: an unpaired message only costs the next run a
    /// look at its headers).
    fn paired(&mut self, record: &str, state: &SyncState) {
        let _ = (record, self.checkpoint(state));
    }
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// A run stopped early; `report` holds what was done before.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
#[non_exhaustive]
pub struct Failed {
    /// The error that stopped the run.
    #[source]
    pub error: SyncError,
    /// What had been done.
    pub report: Box<Report>,
}

impl Failed {
    /// `error` after what `report` describes.
    pub fn new(error: SyncError, report: Report) -> Failed {
        Failed { error, report: Box::new(report) }
    }

    /// The error and the report, apart.
    pub fn into_parts(self) -> (SyncError, Report) {
        (self.error, *self.report)
    }

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
    run_with(options, source, destination, observer, None)
}

/// [`run`], with `workers` copying several mailboxes at once into a destination that
/// assigns its own UIDs ([`run_parallel`]).
fn run_with(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    workers: Option<&dyn pairing::parallel::Workers>,
) -> Result<Report, Failed> {
    let observer = &mut WithCancel { inner: observer, cancel: options.cancel.as_ref() };
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    let mut state = initial_state(options, source);
    trust_state_of_same_kind(options.mode, &mut state, &mut report);
    let unstable_uids = source.capabilities().unstable_uids;
    let assigns_uids = destination.capabilities().assigns_uids;
    let result = match options.mode {
        Mode::Backup | Mode::OneWay if assigns_uids => {
            let mode = if options.mode == Mode::Backup {
                PairMode::Backup { delete_extra: options.delete_extra }
            } else {
                PairMode::OneWay
            };
            let origin = pairing::Origin::ReadOnly(source);
            let (report, state) = (&mut report, &mut state);
            pairing::run(options, mode, origin, destination, observer, report, state, workers)
        }
        Mode::Backup | Mode::OneWay if unstable_uids => {
            let expunge_missing = options.mode == Mode::Backup;
            uidl::run(options, source, destination, observer, &mut report, expunge_missing)
        }
        Mode::Backup => {
            backup::run(options, source, destination, observer, &mut report, &mut state)
        }
        Mode::OneWay if !options.message_filter.is_everything() => Err(SyncError::usage(
            "message filters (-t, -e, -I, -O) are not supported in a one-way merge (sync -1) \
             from this source: use backup",
        )),
        Mode::OneWay => {
            let source = merge::MergeSource::ReadOnly(source);
            merge::run(options, source, destination, observer, &mut report, &mut state)
        }
        Mode::Import => import::run(options, source, destination, observer, &mut report),
        Mode::TwoWay => Err(SyncError::usage("a two-way sync writes both sides: use run_two_way")),
    };
    collect_skipped(Side::Source, source, &mut report, &mut state);
    collect_skipped(Side::Destination, destination, &mut report, &mut state);
    finish(result, report, state, options, observer)
}

/// A backup trusts only a state a backup wrote: after a merge (`sync -1` keeps the
/// destination's own changes) the change tokens say "unchanged" of mailboxes that differ
/// from the source, so the backup compares every mailbox instead (a state an older version
/// wrote, which does not say, is treated the same). The state is then marked with this
/// run's kind.
fn trust_state_of_same_kind(mode: Mode, state: &mut SyncState, report: &mut Report) {
    let kind = match mode {
        Mode::Backup => WrittenBy::Backup,
        Mode::OneWay | Mode::TwoWay => WrittenBy::Merge,
        Mode::Import => return,
    };
    if kind == WrittenBy::Backup && state.written_by != Some(kind) && !state.mailboxes.is_empty() {
        let by = match state.written_by {
            Some(WrittenBy::Merge) => "a sync",
            _ => "an older version",
        };
        report.warnings.push(format!(
            "the saved state was written by {by}, not a backup: every mailbox is compared"
        ));
        state.mailboxes.clear();
    }
    state.written_by = Some(kind);
}

/// Runs a two-way sync (Dovecot's `sync`) between `a` and `b`; `a` plays the source's part
/// in reports and errors. `options.mode` must be [`Mode::TwoWay`] (other modes go to
/// [`run`]), else the run is refused (exit 64).
pub fn run_two_way(
    options: &SyncOptions,
    a: &mut dyn StorageMut,
    b: &mut dyn StorageMut,
    observer: &mut dyn Observer,
) -> Result<Report, Failed> {
    let observer = &mut WithCancel { inner: observer, cancel: options.cancel.as_ref() };
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    let mut state = initial_state(options, &*a);
    trust_state_of_same_kind(Mode::TwoWay, &mut state, &mut report);
    let assigns_uids = a.capabilities().assigns_uids || b.capabilities().assigns_uids;
    let result = if options.mode != Mode::TwoWay {
        Err(SyncError::usage(format!(
            "run_two_way runs only Mode::TwoWay, not {:?}: use run",
            options.mode
        )))
    } else if assigns_uids {
        let origin = pairing::Origin::Writable(&mut *a);
        let (report, state) = (&mut report, &mut state);
        pairing::run(options, PairMode::TwoWay, origin, b, observer, report, state, None)
    } else if options.message_filter.is_everything() {
        merge::run(options, merge::MergeSource::Writable(a), b, observer, &mut report, &mut state)
    } else {
        Err(SyncError::usage("message filters are not supported in a two-way sync"))
    };
    collect_skipped(Side::Source, a, &mut report, &mut state);
    collect_skipped(Side::Destination, b, &mut report, &mut state);
    finish(result, report, state, options, observer)
}

/// The state a run starts from: the one it was given, tagged with `source`'s description
/// if it names no source.
pub(crate) fn initial_state(options: &SyncOptions, source: &dyn Storage) -> SyncState {
    let mut state = options.state.clone().unwrap_or_default();
    state.source.get_or_insert_with(|| source.describe());
    state
}

/// Takes what `storage` left out of its mailbox list right after the listing, and returns
/// the names of the mailboxes concerned in the other side's spelling (`local`). A mailbox a
/// listing left out (a Maildir folder that became a symlink, a name that cannot be mapped)
/// is not gone from that side: callers never take it for one deleted there, so its copy on
/// the other side is neither deleted by a backup nor by a merge.
pub(crate) fn listing_skips(
    side: Side,
    storage: &mut dyn Storage,
    local: &dyn Fn(&MailboxName) -> MailboxName,
    report: &mut Report,
    state: &mut SyncState,
) -> BTreeSet<MailboxName> {
    let mut names = BTreeSet::new();
    for skip in storage.take_skipped() {
        if let Some(mailbox) = &skip.mailbox {
            let name = local(mailbox);
            state.mailboxes.remove(&name);
            names.insert(name);
        }
        report.skipped.push(Skipped { side, skip });
    }
    names
}

/// Moves what `storage` left out, and its warnings, into the report. A mailbox with a
/// skipped entry loses
/// its state entry, so that the next run lists it again (and reports the entry again)
/// instead of passing over it as unchanged: exit 0 must never follow a run that skipped.
pub(crate) fn collect_skipped(
    side: Side,
    storage: &mut dyn Storage,
    report: &mut Report,
    state: &mut SyncState,
) {
    for skip in storage.take_skipped() {
        if let Some(mailbox) = &skip.mailbox {
            state.mailboxes.remove(mailbox);
        }
        report.skipped.push(Skipped { side, skip });
    }
    report.warnings.extend(storage.take_warnings());
}

fn finish(
    result: Result<(), SyncError>,
    mut report: Report,
    state: SyncState,
    options: &SyncOptions,
    observer: &mut dyn Observer,
) -> Result<Report, Failed> {
    // A mailbox listed twice (a backup that found it must be rebuilt lists the source
    // again) has its left-out entries reported twice: each counts once.
    let mut seen = std::collections::HashSet::new();
    report.skipped.retain(|s| {
        let key = (s.side == Side::Source, s.skip.mailbox.clone(), s.skip.item.clone());
        seen.insert((key, s.skip.reason.clone()))
    });
    for skipped in &report.skipped {
        observer.skipped(skipped);
    }
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
                let error = StorageError::new(ErrorKind::InvalidData, message);
                report.failures.push(SyncError::at(Side::Destination, &info.name)(error));
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

/// A mailbox's sync that failed; what it had committed before still counts.
#[derive(Debug)]
pub(crate) struct MailboxFailed {
    pub(crate) error: SyncError,
    /// The mailbox's report up to its last commit (it was created, messages were saved),
    /// when the failure came after a change.
    pub(crate) partial: Option<Box<MailboxReport>>,
}

impl MailboxFailed {
    /// `error` after the changes `partial` describes.
    pub(crate) fn after(error: SyncError, partial: MailboxReport) -> MailboxFailed {
        MailboxFailed { error, partial: Some(Box::new(partial)) }
    }
}

impl From<SyncError> for MailboxFailed {
    fn from(error: SyncError) -> MailboxFailed {
        MailboxFailed { error, partial: None }
    }
}

/// [`keep_going`] for a mailbox's sync: what a failed mailbox committed goes into the
/// report first, so that the run's totals (and a retry's merged ones) count it.
pub(crate) fn keep_going_mailbox<T>(
    result: Result<T, MailboxFailed>,
    report: &mut Report,
) -> Result<Option<T>, SyncError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(MailboxFailed { error, partial }) => {
            if let Some(partial) = partial.filter(|p| !p.is_unchanged()) {
                report.mailboxes.push(*partial);
            }
            keep_going(Err(error), report)
        }
    }
}

/// Notes what the mailbox filters (`-m`, `-x`) leave out: the source's mailboxes outside
/// them in [`Report::filtered_mailboxes`], and a warning for each `-m` pattern that
/// matches no source mailbox, each `-x` pattern that matches no mailbox on either side,
/// and a filter that leaves none of the source's mailboxes. `source` is what the run
/// copies from (both sides in a two-way sync); `other` lends its roles and names.
pub(crate) fn note_mailbox_filter(
    filter: &MailboxFilter,
    source: &[MailboxInfo],
    other: &[MailboxInfo],
    report: &mut Report,
) {
    if filter.is_everything() {
        return;
    }
    let mut roles: BTreeMap<&MailboxName, Vec<SpecialUse>> = BTreeMap::new();
    for info in source.iter().chain(other) {
        roles.entry(&info.name).or_default().extend(info.special_use.iter().copied());
    }
    let with_roles =
        |list: &[MailboxInfo], selectable_only: bool| -> Vec<(MailboxName, Vec<SpecialUse>)> {
            list.iter()
                .filter(|info| info.selectable || !selectable_only)
                .map(|info| (info.name.clone(), roles.get(&info.name).cloned().unwrap_or_default()))
                .collect()
        };
    let sources = with_roles(source, true);
    let mut everywhere = with_roles(source, false);
    everywhere.extend(with_roles(other, false));
    fn view(list: &[(MailboxName, Vec<SpecialUse>)]) -> Vec<(&MailboxName, &[SpecialUse])> {
        list.iter().map(|(name, roles)| (name, roles.as_slice())).collect()
    }
    let unmatched = filter.unmatched_includes(&view(&sources));
    for pattern in &unmatched {
        report.warnings.push(format!("-m {pattern} matches no mailbox of the source"));
    }
    for pattern in filter.unmatched_excludes(&view(&everywhere)) {
        report.warnings.push(format!("-x {pattern} matches no mailbox: it excludes nothing"));
    }
    let mut wanted = 0;
    for (name, roles) in &sources {
        if filter.wants(name, roles) {
            wanted += 1;
        } else if !report.filtered_mailboxes.contains(name) {
            report.filtered_mailboxes.push(name.clone());
        }
    }
    if wanted == 0 && !sources.is_empty() {
        report.warnings.push(format!(
            "the mailbox filters (-m, -x) leave none of the source's {} mailboxes: nothing to sync",
            sources.len()
        ));
    }
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
        match keep_going(result.map_err(SyncError::global(Side::Destination)), report)? {
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
        report.failures.push(SyncError::at(Side::Destination, &name)(error));
    }
    Ok(())
}

/// What tells `messages` apart across the two sides: their GUIDs when both sides keep
/// comparable ones (`use_guids`, [`crate::plan::ComparableGuids::messages`]), else Dovecot's
/// header hashes, asked of `storage`.
pub(crate) fn message_identities<'m>(
    storage: &mut dyn Storage,
    mailbox: &MailboxName,
    messages: impl IntoIterator<Item = &'m MessageMeta>,
    use_guids: bool,
) -> Result<BTreeMap<Uid, String>, StorageError> {
    if use_guids {
        return Ok(messages.into_iter().filter_map(|m| Some((m.uid, m.guid.clone()?))).collect());
    }
    let uids: Vec<Uid> = messages.into_iter().map(|m| m.uid).collect();
    if uids.is_empty() {
        return Ok(BTreeMap::new());
    }
    storage.header_hashes(mailbox, &uids)
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

/// The error that stops a run whose observer could not persist the state at a checkpoint:
/// never confined to a mailbox, since going on would leave a saved state that misleads.
pub(crate) fn checkpoint_failed(
    mailbox: Option<&MailboxName>,
) -> impl FnOnce(StorageError) -> SyncError {
    move |error| {
        let error = if error.kind().is_confined() {
            StorageError::with_source(ErrorKind::CannotCreate, "saving the sync state", error)
        } else {
            error
        };
        SyncError { side: Side::Destination, mailbox: mailbox.cloned(), error }
    }
}

/// The error that stops a run the observer interrupted.
pub(crate) fn interruption(mailbox: Option<&MailboxName>) -> SyncError {
    SyncError {
        side: Side::Destination,
        mailbox: mailbox.cloned(),
        error: StorageError::new(ErrorKind::Interrupted, "interrupted"),
    }
}

/// Stops the run before the next mailbox if the observer asks to.
pub(crate) fn stop_if_interrupted(
    observer: &mut dyn Observer,
    mailbox: &MailboxName,
) -> Result<(), SyncError> {
    if observer.interrupted() { Err(interruption(Some(mailbox))) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoObserver;
    use crate::memory::MemoryStorage;
    use crate::model::{Flags, UidValidity};

    fn backup(
        source: &mut MemoryStorage,
        destination: &mut MemoryStorage,
        state: Option<SyncState>,
    ) -> Report {
        let options = SyncOptions::new(Mode::Backup).state(state);
        run(&options, source, destination, &mut NoObserver).expect("backup")
    }

    /// Wherever a run is cut (the destination failing at its N-th write, as a full disk or a
    /// killed connection would), its report counts exactly what the destination holds, and
    /// the report of the retry merged into it counts every message and mailbox once.
    #[test]
    fn a_failed_run_reports_what_it_committed_and_a_retry_adds_up() {
        let inbox = MailboxName::inbox();
        let archive = MailboxName::split("Archive", Some('/')).expect("name");
        let mut source = MemoryStorage::new();
        let validity = UidValidity::new(7).expect("nonzero");
        for (name, count) in [(&inbox, 23), (&archive, 9)] {
            let mailbox = source.add_mailbox(name, validity);
            for n in 0..count {
                let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
                mailbox.append(body.as_bytes(), Flags::default(), Some(1_700_000_000));
            }
        }
        let held = |destination: &MemoryStorage| -> u64 {
            destination.all_mailboxes().values().map(|m| m.messages.len() as u64).sum()
        };
        let options = SyncOptions::new(Mode::Backup).commit_interval(5);
        let mut cut = 0;
        for writes in 0..80 {
            let mut destination = MemoryStorage::new();
            destination.fail_after(Some(writes));
            let Err(failed) = run(&options, &mut source, &mut destination, &mut NoObserver) else {
                break;
            };
            cut += 1;
            assert_eq!(failed.report.totals().saved, held(&destination), "cut after {writes}");
            destination.fail_after(None);
            let retry = options.clone().state(failed.report.state.clone());
            let later = run(&retry, &mut source, &mut destination, &mut NoObserver)
                .expect("the retry finishes");
            let merged = failed.report.merge(later);
            let totals = merged.totals();
            assert_eq!((totals.saved, totals.mailboxes), (32, 2), "cut after {writes}");
            assert_eq!(totals.created, 2, "cut after {writes}");
            assert_eq!(merged.exit_code(), 0, "nothing vanished: cut after {writes}");
            assert_eq!(held(&destination), 32);
        }
        assert!(cut > 10, "the run was cut at {cut} places only");
    }

    /// A backup re-run tells the destination what the messages it changes or expunges
    /// carry, from the state (so a Maildir finds their files without reading its
    /// directories); a message whose flags the state does not know gets no belief.
    #[test]
    fn a_backup_rerun_tells_the_destination_what_its_messages_carry() {
        // With the source's change history (planned from its changes and the state's base)
        // and without (both listings compared).
        for history in [true, false] {
            let inbox = MailboxName::inbox();
            let mut source = MemoryStorage::new();
            source.keep_change_history(history);
            let old = |names: &[&str]| Flags::from_imap_names(names.iter().copied());
            let was = old(&["\\Seen", "$Label1"]);
            let mailbox = source.add_mailbox(&inbox, UidValidity::new(7).expect("nonzero"));
            let uids: Vec<Uid> = (0..5)
                .map(|n| {
                    let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
                    mailbox.append(body.as_bytes(), was.clone(), Some(1_700_000_000))
                })
                .collect();
            let mut destination = MemoryStorage::new();
            let state = backup(&mut source, &mut destination, None).state;
            assert!(destination.beliefs().is_empty(), "a first copy changes nothing");
            let mailbox = source.mailbox_mut(&inbox).expect("inbox");
            mailbox.set_flags(uids[1], old(&["\\Flagged"]));
            mailbox.set_flags(uids[3], Flags::default());
            mailbox.expunge(uids[4]);
            let listings = source.listings();
            let report = backup(&mut source, &mut destination, state);
            assert_eq!(source.listings() > listings, !history, "planned from the changes");
            assert_eq!(report.totals().expunged, 1);
            let mut believed: Vec<(Uid, Flags)> =
                destination.beliefs().iter().map(|(_, uid, flags)| (*uid, flags.clone())).collect();
            believed.sort_by_key(|(uid, _)| *uid);
            let expected = [(uids[1], was.clone()), (uids[3], was.clone()), (uids[4], was)];
            assert_eq!(believed, expected, "history: {history}");
            assert_eq!(destination.mailbox(&inbox).expect("inbox").messages.len(), 4);
        }
    }

    /// Refuses every checkpoint, as an observer whose state file cannot be written.
    struct CannotSave(u32);

    impl Observer for CannotSave {
        fn checkpoint(&mut self, _state: &SyncState) -> Result<(), StorageError> {
            self.0 += 1;
            // A kind that alone would only fail its mailbox.
            Err(StorageError::new(ErrorKind::Permission, "state file: permission denied"))
        }
    }

    /// The state names its source, and a checkpoint that cannot be saved stops the run
    /// before the change after which the old state would mislead.
    #[test]
    fn a_failed_checkpoint_stops_the_run_before_the_change() {
        let archive = MailboxName::split("Archive", Some('/')).expect("name");
        let mut source = MemoryStorage::new();
        let old = source.add_mailbox(&archive, UidValidity::new(7).expect("nonzero"));
        old.append(b"Subject: old\r\n\r\nbody\r\n", Flags::default(), None);
        let mut destination = MemoryStorage::new();
        let first = backup(&mut source, &mut destination, None);
        let state = first.state.expect("state");
        assert_eq!(state.source.as_deref(), Some("memory"), "filled from the source");

        // The source's mailbox is a new incarnation: the destination's is to be rebuilt.
        StorageMut::delete_mailbox(&mut source, &archive).expect("delete");
        let new = source.add_mailbox(&archive, UidValidity::new(8).expect("nonzero"));
        new.append(b"Subject: new\r\n\r\nbody\r\n", Flags::default(), None);
        let options = SyncOptions::new(Mode::Backup).state(Some(state));
        let mut observer = CannotSave(0);
        let failed =
            run(&options, &mut source, &mut destination, &mut observer).expect_err("the run stops");
        assert_eq!(observer.0, 1);
        assert_eq!((failed.error.kind(), failed.exit_code()), (ErrorKind::CannotCreate, 73));
        assert!(failed.error.to_string().contains("permission denied"), "{}", failed.error);
        let kept = destination.mailbox(&archive).expect("still there");
        assert_eq!(kept.uid_validity.get(), 7, "not rebuilt");
    }

    /// Counts the callbacks; cancels `cancel` at the `cancel_at`-th saved message.
    #[derive(Default)]
    struct Counting {
        planned: Vec<MailboxName>,
        finished: Vec<MailboxName>,
        skipped: usize,
        saved: u32,
        cancel_at: Option<(u32, Cancel)>,
    }

    impl Observer for Counting {
        fn mailbox_planned(&mut self, plan: &MailboxPlan) {
            self.planned.push(plan.mailbox.clone());
        }
        fn mailbox_finished(&mut self, report: &MailboxReport) {
            self.finished.push(report.mailbox.clone());
        }
        fn skipped(&mut self, _skipped: &Skipped) {
            self.skipped += 1;
        }
        fn message_saved(&mut self, _mailbox: &MailboxName, _uid: Uid, _bytes: u64) {
            self.saved += 1;
            if let Some((at, cancel)) = &self.cancel_at
                && *at == self.saved
            {
                cancel.cancel();
            }
        }
    }

    /// One run of `mode` (two-way through [`run_two_way`]) from `state`.
    fn run_in(
        mode: Mode,
        a: &mut MemoryStorage,
        b: &mut MemoryStorage,
        state: Option<SyncState>,
    ) -> Report {
        let options = SyncOptions::new(mode).state(state);
        if mode == Mode::TwoWay {
            run_two_way(&options, a, b, &mut NoObserver)
        } else {
            run(&options, a, b, &mut NoObserver)
        }
        .expect("sync")
    }

    fn account(mailboxes: &[(&str, u32)]) -> MemoryStorage {
        let mut storage = MemoryStorage::new();
        for (name, count) in mailboxes {
            let name = MailboxName::split(name, Some('/')).expect("name");
            let mailbox = storage.add_mailbox(&name, UidValidity::new(7).expect("nonzero"));
            for n in 0..*count {
                let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
                mailbox.append(body.as_bytes(), Flags::default(), Some(1_700_000_000));
            }
        }
        storage
    }

    /// A cancelled token stops the run after the message being saved: what was saved is
    /// committed and reported, and a run from the partial report's state finishes the rest.
    #[test]
    fn a_cancelled_run_commits_reports_what_it_did_and_resumes() {
        let mut source = account(&[("INBOX", 10), ("Archive", 10)]);
        let mut destination = MemoryStorage::new();
        let cancel = Cancel::new();
        let options = SyncOptions::new(Mode::Backup).cancel(Some(cancel.clone()));
        let mut observer = Counting { cancel_at: Some((13, cancel)), ..Counting::default() };
        let failed =
            run(&options, &mut source, &mut destination, &mut observer).expect_err("cancelled");
        assert_eq!((failed.error.kind(), failed.exit_code()), (ErrorKind::Interrupted, 75));
        assert_eq!(failed.report.totals().saved, 13);
        let held: usize = destination.all_mailboxes().values().map(|m| m.messages.len()).sum();
        assert_eq!(held, 13, "what was saved is committed");

        let resume = SyncOptions::new(Mode::Backup).state(failed.report.state.clone());
        let rest = run(&resume, &mut source, &mut destination, &mut NoObserver).expect("resume");
        assert_eq!(rest.totals().saved, 7);
    }

    /// Every mailbox gets one planned and one finished call, also when nothing changed; a
    /// skipped entry is told to the observer.
    #[test]
    fn callbacks_are_symmetric_and_skips_are_told() {
        for mode in [Mode::Backup, Mode::OneWay, Mode::TwoWay] {
            let mut a = account(&[("INBOX", 2), ("Archive", 1), ("Sent", 0)]);
            let mut b = MemoryStorage::new();
            let mut state = None;
            for round in 0..2 {
                let options = SyncOptions::new(mode).state(state.take());
                let mut observer = Counting::default();
                let report = if mode == Mode::TwoWay {
                    run_two_way(&options, &mut a, &mut b, &mut observer)
                } else {
                    run(&options, &mut a, &mut b, &mut observer)
                }
                .expect("sync");
                assert_eq!(observer.planned.len(), 3, "{mode:?} round {round}");
                assert_eq!(observer.planned, observer.finished, "{mode:?} round {round}");
                assert_eq!(round == 1, report.is_noop(), "{mode:?} round {round}");
                state = report.state;
            }
        }
        let archive = MailboxName::split("Archive", Some('/')).expect("name");
        let mut source = account(&[("Archive", 1)]);
        source.add_unreadable(&archive, "cur/evil", "a symlink that leaves the Maildir");
        let mut observer = Counting::default();
        let options = SyncOptions::new(Mode::Backup);
        run(&options, &mut source, &mut MemoryStorage::new(), &mut observer).expect("backup");
        assert_eq!(observer.skipped, 1);
    }

    /// A merge re-run where neither side changed lists nothing, reports every mailbox as
    /// unchanged and records what the last run recorded (the entry is kept, not rebuilt).
    #[test]
    fn a_merge_rerun_with_nothing_changed_lists_nothing_and_keeps_the_state() {
        for mode in [Mode::OneWay, Mode::TwoWay] {
            let mut a = account(&[("INBOX", 3), ("Archive", 1), ("Sent", 0)]);
            let mut b = MemoryStorage::new();
            let merge =
                |a: &mut MemoryStorage, b: &mut MemoryStorage, state| run_in(mode, a, b, state);
            let first = merge(&mut a, &mut b, None);
            let recorded = first.state.clone().expect("state");
            let listed = (a.listings(), b.listings());
            let again = merge(&mut a, &mut b, first.state);
            assert_eq!((a.listings(), b.listings()), listed, "{mode:?}");
            assert_eq!(again.mailboxes.len(), 3, "{mode:?}: {again:?}");
            assert!(again.mailboxes.iter().all(MailboxReport::is_unchanged), "{mode:?}");
            assert_eq!(again.state, Some(recorded), "{mode:?}");
        }
    }

    /// A re-run from a state file reads the message lines of only the mailboxes that
    /// changed: the others' stay in the file through the run and its report (nothing per
    /// message in memory), and the next save copies them; what is recorded is what a run
    /// from the same state held in memory records.
    #[test]
    fn a_rerun_from_a_state_file_reads_the_records_of_changed_mailboxes_only() {
        use crate::state::StateFile;
        let archive = MailboxName::split("Archive", Some('/')).expect("name");
        for mode in [Mode::Backup, Mode::OneWay, Mode::TwoWay] {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = StateFile::new(dir.path().join("state"), "memory");
            let sync = |a: &mut MemoryStorage, b: &mut MemoryStorage, state| {
                run_in(mode, a, b, Some(state)).state.expect("state")
            };
            let mut a = account(&[("INBOX", 3), ("Archive", 2), ("Sent", 4)]);
            let mut b = MemoryStorage::new();
            file.save(&sync(&mut a, &mut b, file.fresh())).expect("save");
            let body = b"Subject: new\r\n\r\nnew\r\n";
            a.mailbox_mut(&archive).expect("Archive").append(body, Flags::default(), None);
            let (mut a_copy, mut b_copy) = (a.clone(), b.clone());

            let state = sync(&mut a, &mut b, file.load().expect("load"));
            for (name, entry) in &state.mailboxes {
                let stored = entry.base.flags.in_state_file();
                assert_eq!(stored, *name != archive, "{mode:?} {name}: {entry:?}");
            }
            assert_eq!(state.mailboxes[&archive].base.flags.len(), 3, "{mode:?}");
            let text = std::fs::read_to_string(file.path()).expect("read");
            let in_memory = SyncState::decode(&text).expect("decodes");
            assert_eq!(state, sync(&mut a_copy, &mut b_copy, in_memory.clone()), "{mode:?}");
            assert_eq!(b.all_mailboxes(), b_copy.all_mailboxes(), "{mode:?}");
            assert_eq!(a.all_mailboxes(), a_copy.all_mailboxes(), "{mode:?}");
            file.save(&state).expect("save");
            assert_eq!(file.load().expect("load"), state, "{mode:?}");
        }
    }

    /// A merge re-run of a mailbox that changed on each side plans from both sides'
    /// listings read one message at a time with the saved base (none is read whole: issue
    /// 23, benches/RESULTS-memory.md), and carries the changes.
    #[test]
    fn a_merge_rerun_with_changes_streams_both_listings() {
        let inbox = MailboxName::inbox();
        let seen = Flags { system: crate::model::SystemFlags::SEEN, ..Flags::default() };
        for mode in [Mode::OneWay, Mode::TwoWay] {
            let mut a = account(&[("INBOX", 3)]);
            let mut b = MemoryStorage::new();
            let merge =
                |a: &mut MemoryStorage, b: &mut MemoryStorage, state| run_in(mode, a, b, state);
            let first = merge(&mut a, &mut b, None);
            let (one, two) = (Uid::new(1).expect("nonzero"), Uid::new(2).expect("nonzero"));
            a.mailbox_mut(&inbox).expect("INBOX").set_flags(one, seen.clone());
            b.mailbox_mut(&inbox).expect("INBOX").expunge(two);
            let listed = (a.listings(), b.listings());
            let streamed = (a.streamed_listings(), b.streamed_listings());
            let again = merge(&mut a, &mut b, first.state);
            let new = |now: (u64, u64), then: (u64, u64)| (now.0 - then.0, now.1 - then.1);
            assert_eq!(new((a.listings(), b.listings()), listed), (1, 1), "{mode:?}");
            let streamed_now = (a.streamed_listings(), b.streamed_listings());
            assert_eq!(new(streamed_now, streamed), (1, 1), "{mode:?}: a listing read whole");
            let flags = |storage: &mut MemoryStorage| -> Vec<(u32, bool)> {
                let contents = storage.contents(&inbox).expect("INBOX");
                contents.messages.iter().map(|m| (m.uid.get(), m.flags == seen)).collect()
            };
            assert_eq!(flags(&mut b), [(1, true), (3, false)], "{mode:?}: {again:?}");
            let a_expected: &[(u32, bool)] = match mode {
                Mode::TwoWay => &[(1, true), (3, false)],
                _ => &[(1, true), (2, false), (3, false)],
            };
            assert_eq!(flags(&mut a), a_expected, "{mode:?}");
        }
    }

    #[test]
    fn run_two_way_refuses_other_modes() {
        for mode in [Mode::Backup, Mode::OneWay, Mode::Import] {
            let (mut a, mut b) = (account(&[("INBOX", 1)]), MemoryStorage::new());
            let options = SyncOptions::new(mode);
            let failed =
                run_two_way(&options, &mut a, &mut b, &mut NoObserver).expect_err("refused");
            assert_eq!(failed.exit_code(), 64, "{mode:?}");
            assert!(b.all_mailboxes().is_empty(), "{mode:?} wrote");
        }
    }

    /// `sync -1` keeps the destination's own mail; a backup with the state it wrote must
    /// still make the destination equal to the source, not trust the merge's change
    /// tokens ("nothing changed").
    #[test]
    fn a_backup_does_not_trust_a_state_a_merge_wrote() {
        let inbox = MailboxName::inbox();
        let mut source = MemoryStorage::new();
        let mailbox = source.add_mailbox(&inbox, UidValidity::new(7).expect("nonzero"));
        mailbox.append(b"Subject: a\r\n\r\nbody\r\n", Flags::default(), Some(1_700_000_000));
        let mut destination = MemoryStorage::new();
        let first = backup(&mut source, &mut destination, None);
        assert_eq!(first.state.as_ref().and_then(|s| s.written_by), Some(WrittenBy::Backup));

        let own = destination.mailbox_mut(&inbox).expect("INBOX");
        own.append(b"Subject: own\r\n\r\nb\r\n", Flags::default(), Some(1_700_000_001));
        let options = SyncOptions::new(Mode::OneWay).state(first.state);
        let merged =
            run(&options, &mut source, &mut destination, &mut NoObserver).expect("sync -1");
        let count =
            |storage: &MemoryStorage| storage.mailbox(&inbox).expect("INBOX").messages.len();
        assert_eq!(count(&destination), 2, "sync -1 keeps the destination's own mail");
        let state = merged.state.expect("state");
        assert_eq!(state.written_by, Some(WrittenBy::Merge));
        // The kind survives the state file.
        let state = SyncState::decode(&state.encode()).expect("decodes");

        let report = backup(&mut source, &mut destination, Some(state));
        assert_eq!(count(&destination), 1, "the backup makes the destination the source");
        // (Rebuilt, as the destination's UIDNEXT is past the source's.)
        assert_eq!(report.mailboxes.len(), 1, "{report:?}");
        assert!(report.warnings.iter().any(|w| w.contains("written by a sync")), "{report:?}");
        // The backup's own state is trusted again: nothing to do, no warning.
        let again = backup(&mut source, &mut destination, report.state);
        let unchanged = again.mailboxes.iter().all(MailboxReport::is_unchanged);
        assert!(again.warnings.is_empty() && unchanged, "{again:?}");
    }

    #[test]
    fn a_skipped_entry_is_reported_fails_the_run_and_is_looked_at_again() {
        let archive = MailboxName::split("Archive", Some('/')).expect("name");
        let mut source = MemoryStorage::new();
        let mailbox = source.add_mailbox(&archive, UidValidity::new(7).expect("nonzero"));
        mailbox.append(b"Subject: kept\r\n\r\nbody\r\n", Flags::default(), Some(1_700_000_000));
        source.add_unreadable(&archive, "cur/evil", "a symlink that leaves the Maildir");
        let mut destination = MemoryStorage::new();

        let report = backup(&mut source, &mut destination, None);
        assert_eq!(report.totals().saved, 1, "the rest of the mailbox is copied");
        assert_eq!(report.exit_code(), 65);
        let [skipped] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
        assert_eq!(skipped.side, Side::Source);
        assert_eq!(
            skipped.to_string(),
            "source mailbox Archive: cur/evil: a symlink that leaves the Maildir"
        );
        // The mailbox is not recorded as synced: an unchanged re-run still looks at it and
        // still fails, rather than passing over it with exit 0.
        let state = report.state.expect("state");
        assert!(!state.mailboxes.contains_key(&archive), "{state:?}");
        let again = backup(&mut source, &mut destination, Some(state));
        assert_eq!((again.skipped.len(), again.exit_code()), (1, 65));

        // Once the entry is gone, the run is clean and the mailbox recorded again.
        source.clear_unreadable();
        let clean = backup(&mut source, &mut destination, again.state);
        assert_eq!((clean.skipped.len(), clean.exit_code()), (0, 0));
        assert!(clean.state.expect("state").mailboxes.contains_key(&archive));
    }

    /// A mailbox the source's listing leaves out was not deleted there: neither a backup
    /// nor a merge (one-way or two-way) deletes its copy on the other side.
    #[test]
    fn a_mailbox_left_out_of_a_listing_is_not_taken_for_deleted() {
        let archive = MailboxName::split("Archive", Some('/')).expect("name");
        let account = || {
            let mut storage = MemoryStorage::new();
            let inbox = MailboxName::inbox();
            storage.add_mailbox(&inbox, UidValidity::new(5).expect("nonzero"));
            let mailbox = storage.add_mailbox(&archive, UidValidity::new(7).expect("nonzero"));
            mailbox.append(b"Subject: a\r\n\r\nbody\r\n", Flags::default(), None);
            storage
        };
        let mut source = account();
        let mut destination = MemoryStorage::new();
        let first = backup(&mut source, &mut destination, None);
        source.add_unlisted(&archive, "a symlink that leaves the Maildir");
        let report = backup(&mut source, &mut destination, first.state);
        assert!(report.deleted_mailboxes.is_empty(), "{:?}", report.deleted_mailboxes);
        assert!(destination.mailbox(&archive).is_some());
        assert_eq!((report.skipped.len(), report.exit_code()), (1, 65));
        assert!(report.warnings.iter().any(|w| w.contains("is kept on the destination")));

        for mode in [Mode::OneWay, Mode::TwoWay] {
            let (mut a, mut b) = (account(), account());
            let options = SyncOptions::new(mode);
            let first = if mode == Mode::TwoWay {
                run_two_way(&options, &mut a, &mut b, &mut NoObserver)
            } else {
                run(&options, &mut a, &mut b, &mut NoObserver)
            };
            let state = first.expect("first sync").state;
            a.add_unlisted(&archive, "unreadable");
            let options = SyncOptions::new(mode).state(state);
            let report = if mode == Mode::TwoWay {
                run_two_way(&options, &mut a, &mut b, &mut NoObserver)
            } else {
                run(&options, &mut a, &mut b, &mut NoObserver)
            }
            .expect("second sync");
            assert!(b.mailbox(&archive).is_some(), "{mode:?} deleted B's copy");
            assert!(report.deleted_mailboxes.is_empty(), "{mode:?}");
            // Nor is it taken for new on B and written back into A's left-out folder.
            assert!(report.failures.is_empty(), "{mode:?}: {:?}", report.failures);
            assert!(!report.mailboxes.iter().any(|m| m.mailbox == archive), "{mode:?}");
            assert_eq!(report.exit_code(), 65, "{mode:?}");
        }
    }
}
