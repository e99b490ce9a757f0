//! One user's sync: open both sides, load the state, run the engine with progress and
//! checkpoints, save the state, and retry (reconnecting, re-reading credentials) after a
//! temporary failure, counting what every attempt committed; then, with
//! `backup --verify`, compare both sides. Single runs and every worker of a batch go
//! through [`run`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dsync_core::filter::{MailboxFilter, MailboxPattern, MessageFilter};
use dsync_core::query::SearchQuery;
use dsync_core::state::{StateFile, SyncState};
use dsync_core::{
    ErrorKind, MailboxName, MailboxPlan, MailboxReport, Mode, Observer, Report, StorageError,
    SyncOptions, TreePlan, Uid,
};

use crate::credentials::SecretSource;
use crate::dovecot_state::{self, Input};
use crate::exit::CliError;
use crate::interrupt;
use crate::location::{Location, expand};
use crate::logging::RawLog;
use crate::open::{self, Access};
use crate::progress::UserProgress;
use crate::settings::Settings;
use crate::timing::PhaseTimer;
use crate::verify::{self, Comparison};

/// What every user of a run does (the verb and its options).
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) verb: &'static str,
    pub(crate) mode: Mode,
    pub(crate) dry_run: bool,
    pub(crate) mailbox_filter: MailboxFilter,
    pub(crate) message_filter: MessageFilter,
    /// Keep a state file.
    pub(crate) state: bool,
    /// Where (a template; `None`: `dsync-rs-state` in the destination root).
    pub(crate) state_file: Option<PathBuf>,
    /// Ignore the saved state (`-f`).
    pub(crate) full: bool,
    /// `-s`: Dovecot's state string in, and printed out.
    pub(crate) dovecot_state: Option<String>,
    pub(crate) import_parent: Option<MailboxName>,
    pub(crate) subscribe_imported: bool,
    /// Import: the search query.
    pub(crate) search: Option<SearchQuery>,
    /// Import `-U`: the user whose mail the source is.
    pub(crate) source_user: Option<String>,
    /// `-a`: the destination's all-mail folder, copied from by GUID.
    pub(crate) all_mail: Option<MailboxPattern>,
    /// `backup --verify`: compare both sides after the run.
    pub(crate) verify: Option<verify::Level>,
    /// `--delete-extra`: a backup into an IMAP server deletes what dsync did not put there.
    pub(crate) delete_extra: bool,
}

/// One user's run.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The user of a batch or `-u` (`None` for a plain two-location run).
    pub(crate) user: Option<String>,
    /// The user the source is opened as (`import -U`; `None`: [`Job::user`]).
    pub(crate) source_user: Option<String>,
    pub(crate) source: Location,
    pub(crate) destination: Location,
    pub(crate) settings: Settings,
    pub(crate) secret: Option<SecretSource>,
    /// `--sieve-from`/`--sieve-to`: the scripts migrated after the mail.
    pub(crate) sieve: Option<crate::sieve::SievePair>,
}

impl Job {
    /// The name in logs, progress and reports: the user, also of a POP3 or IMAP+POP3
    /// source (its log files are `USER.log` / `USER.rawlog` like an IMAP source's).
    pub(crate) fn label(&self) -> String {
        self.user.clone().unwrap_or_else(|| match &self.source {
            Location::Imap(server) | Location::Pop3(server) => server.user.clone(),
            Location::ImapPop3 { imap, .. } => imap.user.clone(),
            other => other.to_string(),
        })
    }
}

/// What a job came to.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// What every attempt did, merged (see [`Report::merge`]).
    pub(crate) report: Option<Report>,
    /// What stopped the last attempt.
    pub(crate) error: Option<CliError>,
    pub(crate) duration: Duration,
    /// The new state in Dovecot's format (with `-s`).
    pub(crate) dovecot_state: Option<String>,
    /// The temporary failures after which the job reconnected and went on.
    pub(crate) reconnects: Vec<String>,
    /// `backup --verify`: the comparison after the run, or why it could not be made.
    pub(crate) verification: Option<Result<Comparison, CliError>>,
    /// `--sieve-from`/`--sieve-to`: what the Sieve part did, or why it could not run.
    pub(crate) sieve: Option<Result<dsync_core::sieve::SieveReport, CliError>>,
}

impl Outcome {
    /// A job without a report: it failed before it started (or only checked).
    pub(crate) fn without_report(error: Option<CliError>, duration: Duration) -> Outcome {
        Outcome {
            report: None,
            error,
            duration,
            dovecot_state: None,
            reconnects: Vec::new(),
            verification: None,
            sieve: None,
        }
    }

    /// The exit code of this job: the run's, else the verification's (1 for differences,
    /// as `dsync verify`; a verification that could not be made, its error's).
    pub(crate) fn exit_code(&self) -> u8 {
        let run = match (&self.error, &self.report) {
            (Some(error), _) => error.exit_code(),
            (None, Some(report)) => report.exit_code(),
            (None, None) => 0,
        };
        // Sieve scripts: their store's failure, else 65 for a refused script.
        let sieve = match &self.sieve {
            Some(Ok(report)) => report.exit_code(),
            Some(Err(error)) => error.exit_code(),
            None => 0,
        };
        match &self.verification {
            _ if run != 0 => run,
            _ if sieve != 0 => sieve,
            Some(Ok(comparison)) => u8::from(!comparison.differences.is_empty()),
            Some(Err(error)) => error.exit_code(),
            None => 0,
        }
    }
}

/// Runs `job`, retrying after temporary failures.
pub(crate) fn run(
    job: &Job,
    task: &Task,
    progress: &mut UserProgress,
    debug: bool,
    rawlog: Option<&RawLog>,
) -> Outcome {
    let started = Instant::now();
    let mut attempt = 0;
    // What the attempts before the last one committed.
    let mut earlier: Option<Report> = None;
    let mut reconnects = Vec::new();
    // Where the state file is (the Sieve base lives next to it), once an attempt knows.
    let mut state_path = None;
    let mut outcome = loop {
        attempt += 1;
        let result = attempt_once(job, task, progress, debug, rawlog.cloned(), &mut state_path);
        let (report, error, dovecot_state) = match result {
            Ok((report, dovecot_state)) => (Some(report), None, dovecot_state),
            Err(failure) => {
                let (error, report) = *failure;
                let (error, report) = take_report(error, report);
                (report, Some(error), None)
            }
        };
        let report = match (earlier.take(), report) {
            (Some(before), Some(now)) => Some(before.merge(now)),
            (before, now) => now.or(before),
        };
        let temporary = error
            .as_ref()
            .is_some_and(|error| error.exit_code() == ErrorKind::Temporary.exit_code());
        // Ctrl-C is not a failure to retry: the run ends here, to be run again later; nor is
        // a destination another dsync is writing.
        let busy = matches!(&error, Some(CliError::Busy(_)));
        if let Some(error) = &error
            && temporary
            && !busy
            && attempt <= job.settings.retries
            && !interrupt::requested()
        {
            tracing::warn!(
                "{error}; reconnecting in {:.1}s (retry {attempt} of {})",
                Duration::from_millis(job.settings.retry_interval_ms).as_secs_f64(),
                job.settings.retries
            );
            reconnects.push(error.to_string());
            earlier = report;
            interrupt::sleep(Duration::from_millis(job.settings.retry_interval_ms));
            continue;
        }
        break Outcome {
            report,
            error,
            duration: Duration::ZERO,
            dovecot_state,
            reconnects,
            verification: None,
            sieve: None,
        };
    };
    // The scripts after the mail: whatever happens to them, the mail stays as synced.
    if let Some(pair) = &job.sieve
        && !interrupt::requested()
    {
        let base = state_path.as_ref().map(|(path, permissions): &(PathBuf, _)| {
            crate::sieve::BaseFile::next_to(path, permissions.clone())
        });
        progress.sieve(&format!("sieve: scripts {} -> {}", pair.from, pair.to));
        let result = crate::sieve::run(job, pair, task, base.as_ref(), debug, rawlog);
        match &result {
            Ok(report) => progress.sieve(&report.summary()),
            Err(error) => tracing::error!("sieve: {error}"),
        }
        outcome.sieve = Some(result);
    }
    if let Some(level) = task.verify
        && outcome.error.is_none()
        && !task.dry_run
    {
        let source_uids = state_path.as_ref().map(|(path, permissions)| {
            (open::source_uids_prefix(path), permissions.clone(), false)
        });
        let verification = verify::after_run(job, task, level, debug, source_uids);
        // In the log (a batch user's file) every difference; the summary shows the first.
        match &verification {
            Ok(comparison) => {
                tracing::info!("verify: {}", comparison.verdict());
                for difference in &comparison.differences {
                    tracing::info!("verify: differs: {difference}");
                }
            }
            Err(error) => tracing::info!("verify: not verified: {error}"),
        }
        outcome.verification = Some(verification);
    }
    outcome.duration = started.elapsed();
    outcome
}

/// Separates a failed attempt's report from its error (the engine's [`dsync_core::Failed`]
/// carries it), so that the next attempt's report can be added to it.
fn take_report(error: CliError, report: Option<Report>) -> (CliError, Option<Report>) {
    match error {
        CliError::Sync(failed) => {
            let (error, report) = failed.into_parts();
            let error = CliError::Sync(Box::new(dsync_core::Failed::new(error, Report::default())));
            (error, Some(report))
        }
        error => (error, report),
    }
}

type Attempt = Result<(Report, Option<String>), Box<(CliError, Option<Report>)>>;

fn attempt_once(
    job: &Job,
    task: &Task,
    progress: &mut UserProgress,
    debug: bool,
    rawlog: Option<RawLog>,
    state_path: &mut Option<(PathBuf, mailstore::Permissions)>,
) -> Attempt {
    let fail = |error: CliError| Box::new((error, None));
    let mut timer = PhaseTimer::start();
    let user = job.user.as_deref();
    let source_user = job.source_user.as_deref().or(user);
    let source = open::resolve(job.source.clone(), &job.settings, source_user).map_err(fail)?;
    let destination = open::resolve(job.destination.clone(), &job.settings, user).map_err(fail)?;
    if task.mode == Mode::TwoWay && (source.is_remote_dsync() || destination.is_remote_dsync()) {
        return Err(fail(CliError::Usage(format!(
            "{source} -> {destination}: a two-way sync over dsync's protocol is refused: both \
             sides would decide independently, and ours are not proven to match Dovecot's (tree \
             renames, UID renumbering, modseq flag merges), so they could diverge. Pull with \
             backup or sync -1, or run doveadm sync on the Dovecot side"
        ))));
    }
    if destination.is_remote_dsync() {
        return push_to_remote(job, task, &source, &destination).map_err(fail);
    }
    if task.mode == Mode::TwoWay && source.is_server() && !matches!(source, Location::Imap(_)) {
        return Err(fail(CliError::Usage(format!(
            "{source}: a two-way sync writes both sides, and this source is read-only here: use \
             sync -1 or backup"
        ))));
    }
    open::check_distinct(&source, &destination).map_err(fail)?;
    let mut access = Access {
        settings: &job.settings,
        secret: job.secret.clone(),
        debug,
        rawlog,
        message_guids: task.all_mail.is_some(),
        source_uids: None,
        source_listings: None,
    };

    let imap_destination = match &destination {
        Location::Imap(imap) if matches!(task.mode, Mode::Backup | Mode::OneWay | Mode::TwoWay) => {
            Some(imap)
        }
        _ => None,
    };
    let wait = Duration::from_secs(job.settings.lock_timeout.unwrap_or(0));
    // An IMAP destination has no root of ours: the state goes where --state-file says, or
    // under the invoking user's state directory, and is locked there against a second
    // dsync before anything is asked of either server (a dry run writes nothing).
    let imap_state_path = match imap_destination {
        Some(_) if task.state => Some(match &task.state_file {
            Some(p) => PathBuf::from(expand(&p.to_string_lossy(), user.unwrap_or(""))),
            None => open::default_state_path(&source, &destination).map_err(fail)?,
        }),
        _ => None,
    };
    let _state_lock = match &imap_state_path {
        Some(path) if !task.dry_run => {
            Some(crate::lock::lock_state(path, wait, &interrupt::requested).map_err(fail)?)
        }
        _ => None,
    };
    let mut destination_store = match imap_destination {
        Some(imap) => open::open_imap_destination(imap, &access).map_err(fail)?,
        None => open::open_destination(&destination, &job.settings, "destination").map_err(fail)?,
    };
    let root = destination_store.maildir_root();
    // What the store creates gets the mail's owner and modes, and so do our own files in
    // its root (decided before anything creates the root).
    let permissions =
        destination_store.maildir_permissions("destination").transpose().map_err(fail)?;
    // A folder an older version created in the place of our lock or state file (LAYOUT=fs)
    // moves aside first, or the lock below could not be taken.
    if !task.dry_run {
        repair_reserved_names(&destination_store, "destination").map_err(fail)?;
    }
    // Before the source is read, the destination is locked against a second dsync (`-l`
    // waits for one), or shown creatable: a destination that cannot be written fails
    // here, once, and no server is asked anything. A dry run writes nothing and locks
    // nothing.
    let lockable = |root: &Option<PathBuf>, permissions: &Option<mailstore::Permissions>| match (
        root,
        permissions,
    ) {
        (Some(root), Some(permissions)) if !task.dry_run => {
            Some((root.clone(), permissions.clone()))
        }
        _ => None,
    };
    let destination_lock = lockable(&root, &permissions)
        .map(|(root, permissions)| {
            open::prepare_destination(&root, &permissions, wait, &interrupt::requested)
                .map(|prepared| (root, permissions, prepared))
        })
        .transpose()
        .map_err(fail)?;
    timer.lap("destination");
    let mut source_store = if task.mode == Mode::TwoWay && matches!(source, Location::Imap(_)) {
        // An IMAP server is written through the session it is read with.
        open::open_source(&source, &access, "source").map_err(fail)?
    } else if task.mode == Mode::TwoWay {
        let store = open::open_destination(&source, &job.settings, "source").map_err(fail)?;
        if !task.dry_run {
            repair_reserved_names(&store, "source").map_err(fail)?;
        }
        store
    } else {
        open::open_source(&source, &access, "source").map_err(fail)?
    };
    timer.lap("source");
    // The source could be opened: now a missing destination root is created and locked.
    let _destination_lock = match destination_lock {
        Some((root, permissions, open::Prepared::Creatable)) => Some(
            open::lock_destination(&root, &permissions, wait, &interrupt::requested)
                .map_err(fail)?,
        ),
        Some((_, _, open::Prepared::Locked(lock))) => Some(lock),
        None => None,
    };
    // A two-way sync writes its first side as well.
    let source_permissions = if task.mode == Mode::TwoWay {
        source_store.maildir_permissions("source").transpose().map_err(fail)?
    } else {
        None
    };
    let _source_lock = lockable(&source_store.maildir_root(), &source_permissions)
        .map(|(root, permissions)| {
            open::lock_destination(&root, &permissions, wait, &interrupt::requested)
        })
        .transpose()
        .map_err(fail)?;

    let state_file = match (&root, &permissions) {
        (Some(root), Some(permissions)) if task.state && task.mode != Mode::Import => {
            let path = task.state_file.as_ref().map_or_else(
                || root.join(open::STATE_FILE),
                |p| PathBuf::from(expand(&p.to_string_lossy(), user.unwrap_or(""))),
            );
            // In the mail root it is the mail user's like the rest; elsewhere only ours.
            // Never more readable than the mail either way.
            let permissions = if path.starts_with(root) {
                permissions.clone()
            } else {
                mailstore::Permissions::private()
            };
            *state_path = Some((path.clone(), permissions.clone()));
            Some(StateFile::new(path, source.state_identity()).with_permissions(permissions))
        }
        _ if imap_state_path.is_some() => imap_state_path.clone().map(|path| {
            StateFile::new(path, source.state_identity())
                .with_permissions(mailstore::Permissions::private())
        }),
        _ => None,
    };
    // A Maildir source without dovecot-uidlist keeps its UIDs beside the state (also for
    // the workers' own openings of it); a two-way run's first side is written instead.
    if let Some(file) = state_file.as_ref().filter(|_| task.mode != Mode::TwoWay) {
        let permissions = match state_path {
            Some((path, permissions)) if path == file.path() => permissions.clone(),
            _ => mailstore::Permissions::private(),
        };
        let uids = (open::source_uids_prefix(file.path()), permissions, !task.dry_run);
        source_store.keep_source_uids(&uids);
        // And its folders' last listings: not read in a full run (`-f`).
        let listings =
            (open::source_listings_prefix(file.path()), uids.1.clone(), !task.dry_run, !task.full);
        source_store.keep_source_listings(&listings);
        access.source_listings = Some(listings);
        access.source_uids = Some(uids);
    }
    timer.lap("lock");
    let state = load_state(task, state_file.as_ref());
    if let Some(state) = &state {
        source_store.remember_source_tokens(state);
    }
    timer.lap("state-load");

    let mut options = SyncOptions::new(task.mode)
        .commit_interval(job.settings.commit_interval)
        .dry_run(task.dry_run)
        .mailbox_filter(task.mailbox_filter.clone())
        .message_filter(task.message_filter.clone())
        .state(state)
        .import_parent(task.import_parent.clone())
        .subscribe_imported(task.subscribe_imported)
        .search(task.search.clone())
        .all_mail(task.all_mail.clone())
        .delete_extra(task.delete_extra)
        .cancel(interrupt::token());
    if let Some(batch) = job.settings.save_batch {
        options = options.save_batch(batch);
    }

    tracing::info!("{} {source} -> {destination}", task.verb);
    let mut observer = JobObserver { state_file: state_file.as_ref(), progress };
    let result = {
        let Some(destination_mut) = destination_store.as_storage_mut() else {
            return Err(fail(CliError::Usage("the destination is not writable".into())));
        };
        if task.mode == Mode::TwoWay {
            match source_store.as_storage_mut() {
                Some(source_mut) => {
                    dsync_core::run_two_way(&options, source_mut, destination_mut, &mut observer)
                }
                None => return Err(fail(CliError::Usage("the source is not writable".into()))),
            }
        } else if job.settings.parallel_folders > 1
            && crate::workers::supported(task.mode, &source, &destination)
        {
            crate::workers::run(
                &options,
                (source_store.as_storage(), destination_mut),
                &mut observer,
                (&source, &destination),
                access,
                job.settings.parallel_folders,
            )
        } else {
            dsync_core::run(&options, source_store.as_storage(), destination_mut, &mut observer)
        }
    };
    observer.progress.finish();
    timer.lap("sync");
    let finish = destination_store.finish();
    let source_finish = if task.mode == Mode::TwoWay { source_store.finish() } else { Ok(()) };
    // A remote source's last word (its F item, its exit status) comes after the run.
    let source_end = if result.is_ok() { source_store.end_source() } else { Ok(()) };
    let mut source_warnings = source_store.take_warnings();
    if task.all_mail.is_some() && source_store.refused_message_guids() {
        source_warnings.push(format!(
            "-a: {source} reports no message GUIDs (X-GUID, X-GM-MSGID): every message was downloaded"
        ));
    }
    source_store.close();
    timer.lap("finish");
    // Whatever was synced is recorded, also after a failure: each recorded mailbox was
    // synced completely.
    let new_state = match &result {
        Ok(report) => report.state.as_ref(),
        Err(failed) => failed.report.state.as_ref(),
    };
    // A run that wrote nothing (its filters left nothing to sync) leaves no directory
    // behind either: not one holding only a state file, which is no Maildir.
    let written = root.as_ref().is_none_or(|root| root.exists());
    if let (Some(file), Some(new_state), false, true) =
        (&state_file, new_state, task.dry_run, written)
        && let Err(error) = file.save(new_state)
    {
        tracing::warn!("cannot save the sync state to {}: {error}", file.path().display());
    }
    timer.lap("state-save");
    tracing::info!("{}", timer.line());
    match result {
        Ok(mut report) => {
            report.warnings.extend(source_warnings);
            if let Err(error) = finish.and(source_finish) {
                return Err(Box::new((
                    CliError::Storage { side: "destination", error },
                    Some(report),
                )));
            }
            if let Err(error) = source_end {
                return Err(Box::new((CliError::Storage { side: "source", error }, Some(report))));
            }
            for warning in &report.warnings {
                tracing::warn!("{warning}");
            }
            let dovecot = task.dovecot_state.as_ref().and_then(|_| {
                (report.failures.is_empty())
                    .then(|| report.state.as_ref().map(|s| dovecot_state::export(s).encode()))
                    .flatten()
            });
            Ok((report, dovecot))
        }
        Err(failed) => Err(Box::new((CliError::Sync(Box::new(failed)), None))),
    }
}

/// `backup SOURCE remote:…`: Dovecot's importer at the other end makes its side what we
/// describe ([`dsync_core::adapters::remote_push`]). Only a whole backup can be described
/// that way: Dovecot reverts whatever the description leaves out.
fn push_to_remote(
    job: &Job,
    task: &Task,
    source: &Location,
    destination: &Location,
) -> Result<(Report, Option<String>), CliError> {
    let refused = |what: &str| {
        CliError::Usage(format!(
            "{source} -> {destination}: {what} is not supported when pushing into a Dovecot \
             through dsync's protocol: its importer makes the remote a copy of everything we \
             send (doveadm backup semantics)"
        ))
    };
    if task.mode != Mode::Backup {
        return Err(refused("sync -1 (use backup)"));
    }
    if task.dry_run {
        return Err(refused("a dry run"));
    }
    if !task.mailbox_filter.is_everything()
        || !task.message_filter.is_everything()
        || task.search.is_some()
        || task.all_mail.is_some()
        || task.import_parent.is_some()
    {
        return Err(refused("a filter (-m, -x, -t, -e, -I, -O, -a, --search)"));
    }
    if !matches!(source, Location::Maildir(_) | Location::Sdbox(_)) {
        return Err(refused("a source other than maildir: or sdbox:"));
    }
    let access = Access {
        settings: &job.settings,
        secret: job.secret.clone(),
        debug: false,
        rawlog: None,
        message_guids: false,
        source_uids: None,
        source_listings: None,
    };
    let mut store = open::open_source(source, &access, "source")?;
    let command = open::remote_command(destination, &job.settings)?;
    let timeout = Duration::from_secs(job.settings.timeout.max(1));
    tracing::info!("{} {source} -> {destination}", task.verb);
    let result = dsync_core::adapters::remote_push::push(store.as_storage(), &command, timeout);
    store.close();
    match result {
        Ok(report) => {
            for warning in &report.warnings {
                tracing::warn!("{warning}");
            }
            Ok((report, None))
        }
        Err(failed) => Err(CliError::Sync(Box::new(failed))),
    }
}

/// The state to start from: the state file's, unless `-f`, `-s ''` or an invalid `-s`
/// say to start afresh; a valid `-s` restricts it to what Dovecot's string knows.
/// Before anything reads a Maildir's own files (its subscriptions, our state and lock),
/// folders that older versions created under those names in `LAYOUT=fs` are moved aside.
fn repair_reserved_names(store: &open::Opened, side: &'static str) -> Result<(), CliError> {
    let moved = store.repair_reserved_names().map_err(|error| CliError::Storage { side, error })?;
    for line in moved {
        tracing::warn!("{side}: {line}");
    }
    Ok(())
}

fn load_state(task: &Task, state_file: Option<&StateFile>) -> Option<SyncState> {
    let file = state_file?;
    let fresh = || file.fresh();
    // A missing, unreadable, damaged or foreign state only costs a full run.
    let load = || {
        file.load().unwrap_or_else(|error| {
            tracing::warn!("{error}; doing a full run");
            file.fresh()
        })
    };
    if task.full {
        return Some(fresh());
    }
    match task.dovecot_state.as_deref().map(dovecot_state::parse_input) {
        None => Some(load()),
        Some(Input::Full) => Some(fresh()),
        Some(Input::Invalid(warning)) => {
            tracing::warn!("{warning}");
            Some(fresh())
        }
        Some(Input::Known(theirs)) => Some(dovecot_state::restrict(load(), &theirs)),
    }
}

/// Persists the state at the engine's checkpoints and drives the progress display.
struct JobObserver<'a> {
    state_file: Option<&'a StateFile>,
    progress: &'a mut UserProgress,
}

impl Observer for JobObserver<'_> {
    fn tree_planned(&mut self, plan: &TreePlan) {
        tracing::info!(
            "{} mailboxes to sync, {} to delete, {} subscription changes",
            plan.sync.len(),
            plan.delete.len(),
            plan.subscribe.len() + plan.unsubscribe.len()
        );
        self.progress.tree_planned(plan);
    }

    fn mailbox_planned(&mut self, plan: &MailboxPlan) {
        self.progress.mailbox_planned(plan);
    }

    fn message_saved(&mut self, _mailbox: &MailboxName, _uid: Uid, bytes: u64) {
        self.progress.message_saved(bytes);
    }

    fn mailbox_finished(&mut self, report: &MailboxReport) {
        if report.vanished > 0 {
            tracing::warn!(
                "{}: {} messages were expunged on the source while copying",
                report.mailbox,
                report.vanished
            );
        }
        if !report.is_unchanged() {
            tracing::info!(
                "{}: {:?}, {} saved ({} bytes), {} expunged, {} flag changes",
                report.mailbox,
                report.action,
                report.saved,
                report.bytes,
                report.expunged,
                report.flags_changed
            );
        }
        self.progress.mailbox_finished(report);
    }

    // A state that cannot be saved before a change after which the old one misleads stops
    // the run there.
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
        self.state_file.map_or(Ok(()), |file| file.checkpoint(state))
    }

    fn forget(&mut self, mailbox: &MailboxName, state: &SyncState) -> Result<(), StorageError> {
        self.state_file.map_or(Ok(()), |file| file.checkpoint_forget(mailbox, state))
    }

    fn paired(&mut self, record: &str, state: &SyncState) {
        if let Some(file) = self.state_file
            && let Err(error) = file.append_pair(record, state)
        {
            tracing::warn!("cannot save the sync state: {error}");
        }
    }
}
