//! One user's sync: open both sides, load the state, run the engine with progress and
//! checkpoints, save the state, and retry (reconnecting, re-reading credentials) after a
//! temporary failure. Single runs and every worker of a batch go through [`run`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dsync_core::filter::{MailboxFilter, MailboxPattern, MessageFilter};
use dsync_core::query::SearchQuery;
use dsync_core::state::SyncState;
use dsync_core::{
    ErrorKind, MailboxName, MailboxPlan, MailboxReport, Mode, Observer, Report, SyncOptions,
    TreePlan, Uid,
};

use crate::credentials::SecretSource;
use crate::dovecot_state::{self, Input};
use crate::exit::CliError;
use crate::location::{Location, expand};
use crate::logging::RawLog;
use crate::open::{self, Access};
use crate::progress::UserProgress;
use crate::settings::Settings;
use crate::state_file::StateFile;
use crate::workers::Workers;

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
    pub(crate) report: Option<Report>,
    pub(crate) error: Option<CliError>,
    pub(crate) duration: Duration,
    /// The new state in Dovecot's format (with `-s`).
    pub(crate) dovecot_state: Option<String>,
}

impl Outcome {
    /// The exit code of this job.
    pub(crate) fn exit_code(&self) -> u8 {
        match (&self.error, &self.report) {
            (Some(error), _) => error.exit_code(),
            (None, Some(report)) => report.exit_code(),
            (None, None) => 0,
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
    loop {
        attempt += 1;
        let result = attempt_once(job, task, progress, debug, rawlog.cloned());
        let temporary = matches!(&result, Err(failure) if failure.0.exit_code() == ErrorKind::Temporary.exit_code());
        if temporary && attempt <= job.settings.retries {
            if let Err(failure) = &result {
                let error = &failure.0;
                tracing::warn!(
                    "{error}; reconnecting in {:.1}s (retry {attempt} of {})",
                    Duration::from_millis(job.settings.retry_interval_ms).as_secs_f64(),
                    job.settings.retries
                );
            }
            std::thread::sleep(Duration::from_millis(job.settings.retry_interval_ms));
            continue;
        }
        let duration = started.elapsed();
        let result = result.map_err(|failure| *failure);
        return match result {
            Ok((report, dovecot_state)) => {
                Outcome { report: Some(report), error: None, duration, dovecot_state }
            }
            Err((CliError::Sync(failed), _)) => {
                let failed = *failed;
                let report = *failed.report;
                let error = CliError::Sync(Box::new(dsync_core::Failed {
                    error: failed.error,
                    report: Box::default(),
                }));
                Outcome { report: Some(report), error: Some(error), duration, dovecot_state: None }
            }
            Err((error, report)) => {
                Outcome { report, error: Some(error), duration, dovecot_state: None }
            }
        };
    }
}

type Attempt = Result<(Report, Option<String>), Box<(CliError, Option<Report>)>>;

fn attempt_once(
    job: &Job,
    task: &Task,
    progress: &mut UserProgress,
    debug: bool,
    rawlog: Option<RawLog>,
) -> Attempt {
    let fail = |error: CliError| Box::new((error, None));
    let user = job.user.as_deref();
    let source_user = job.source_user.as_deref().or(user);
    let source = open::resolve(job.source.clone(), &job.settings, source_user).map_err(fail)?;
    let destination = open::resolve(job.destination.clone(), &job.settings, user).map_err(fail)?;
    for location in [&source, &destination] {
        if let Some(error) = open::not_yet(location) {
            return Err(fail(error));
        }
    }
    if task.mode == Mode::TwoWay && source.is_server() {
        return Err(fail(CliError::Usage(format!(
            "{source}: a two-way sync writes both sides, and IMAP is read-only here: use sync -1 or backup"
        ))));
    }
    open::check_distinct(&source, &destination).map_err(fail)?;
    let access = Access {
        settings: &job.settings,
        secret: job.secret.clone(),
        debug,
        rawlog,
        message_guids: task.all_mail.is_some(),
    };

    let mut destination_store =
        open::open_destination(&destination, &job.settings, "destination").map_err(fail)?;
    let root = destination_store.maildir_root();
    // What the store creates gets the mail's owner and modes, and so do our own files in
    // its root (decided before anything creates the root).
    let permissions =
        destination_store.maildir_permissions("destination").transpose().map_err(fail)?;
    if !task.dry_run {
        repair_reserved_names(&destination_store, "destination").map_err(fail)?;
    }
    let _lock = match (job.settings.lock_timeout, &root, &permissions) {
        (Some(seconds), Some(root), Some(permissions)) if !task.dry_run => Some(
            open::lock_destination(root, permissions, Duration::from_secs(seconds))
                .map_err(fail)?,
        ),
        _ => None,
    };
    let mut source_store = if task.mode == Mode::TwoWay {
        let store = open::open_destination(&source, &job.settings, "source").map_err(fail)?;
        if !task.dry_run {
            repair_reserved_names(&store, "source").map_err(fail)?;
        }
        store
    } else {
        open::open_source(&source, &access, "source").map_err(fail)?
    };

    let state_file = match (&root, &permissions) {
        (Some(root), Some(permissions)) if task.state && task.mode != Mode::Import => {
            let path = task.state_file.as_ref().map_or_else(
                || root.join("dsync-rs-state"),
                |p| PathBuf::from(expand(&p.to_string_lossy(), user.unwrap_or(""))),
            );
            // In the mail root it is the mail user's like the rest; elsewhere only ours.
            // Never more readable than the mail either way.
            let permissions = if path.starts_with(root) {
                permissions.clone()
            } else {
                mailstore::Permissions::private()
            };
            Some(StateFile::new(path, source.state_identity(), permissions))
        }
        _ => None,
    };
    let state = load_state(task, state_file.as_ref());

    let options = SyncOptions::new(task.mode)
        .commit_interval(job.settings.commit_interval)
        .dry_run(task.dry_run)
        .mailbox_filter(task.mailbox_filter.clone())
        .message_filter(task.message_filter.clone())
        .state(state)
        .import_parent(task.import_parent.clone())
        .subscribe_imported(task.subscribe_imported)
        .search(task.search.clone())
        .all_mail(task.all_mail.clone());

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
        } else if task.mode == Mode::Backup
            && job.settings.parallel_folders > 1
            && matches!(source, Location::Imap(_) | Location::Maildir(_))
        {
            let workers = Workers { source: &source, destination: &destination, access };
            dsync_core::run_parallel(
                &options,
                source_store.as_storage(),
                destination_mut,
                &mut observer,
                &workers,
                job.settings.parallel_folders,
            )
        } else {
            dsync_core::run(&options, source_store.as_storage(), destination_mut, &mut observer)
        }
    };
    observer.progress.finish();
    let finish = destination_store.finish();
    let source_finish = if task.mode == Mode::TwoWay { source_store.finish() } else { Ok(()) };
    let mut source_warnings = source_store.take_warnings();
    if task.all_mail.is_some() && source_store.refused_message_guids() {
        source_warnings.push(format!(
            "-a: {source} reports no message GUIDs (X-GUID, X-GM-MSGID): every message was downloaded"
        ));
    }
    source_store.close();
    // Whatever was synced is recorded, also after a failure: each recorded mailbox was
    // synced completely.
    let new_state = match &result {
        Ok(report) => report.state.as_ref(),
        Err(failed) => failed.report.state.as_ref(),
    };
    if let (Some(file), Some(new_state), false) = (&state_file, new_state, task.dry_run)
        && let Err(error) = file.save(new_state)
    {
        tracing::warn!("cannot save the sync state to {}: {error}", file.path().display());
    }
    match result {
        Ok(mut report) => {
            report.warnings.extend(source_warnings);
            if let Err(error) = finish.and(source_finish) {
                return Err(Box::new((
                    CliError::Storage { side: "destination", error },
                    Some(report),
                )));
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
    let fresh = || file.load_fresh();
    if task.full {
        return Some(fresh());
    }
    match task.dovecot_state.as_deref().map(dovecot_state::parse_input) {
        None => Some(file.load()),
        Some(Input::Full) => Some(fresh()),
        Some(Input::Invalid(warning)) => {
            tracing::warn!("{warning}");
            Some(fresh())
        }
        Some(Input::Known(theirs)) => Some(dovecot_state::restrict(file.load(), &theirs)),
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

    fn checkpoint(&mut self, state: &SyncState) {
        if let Some(file) = self.state_file
            && let Err(error) = file.save(state)
        {
            tracing::warn!("cannot save the sync state: {error}");
        }
    }

    fn forget(&mut self, mailbox: &MailboxName, state: &SyncState) {
        if let Some(file) = self.state_file
            && let Err(error) = file.forget(mailbox, state)
        {
            tracing::warn!("cannot save the sync state: {error}");
        }
    }
}
