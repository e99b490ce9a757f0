//! The verbs: who to run for (one pair of locations, `-u`, `-A`, `-F`), building each
//! user's job from the command line, the config file and the user list, and running
//! them alone or as a batch.

use std::path::PathBuf;
use std::time::Instant;

use dsync_core::filter::MailboxPattern;
use dsync_core::query::{SearchQuery, TimeZone};
use dsync_core::{ErrorKind, MailboxName, Mode};

use crate::args::{
    BatchArgs, CheckArgs, FilterArgs, ImportArgs, MailboxListArgs, RunArgs, StateArgs, VerifyArgs,
};
use crate::batch::{self, LogSetup};
use crate::config::ConfigFile;
use crate::credentials::SecretSource;
use crate::exit::CliError;
use crate::filters;
use crate::home;
use crate::inspect;
use crate::interrupt;
use crate::job::{self, Job, Outcome, Task};
use crate::location::{self, Location, expand};
use crate::logging::{self, Stderr, Verbosity};
use crate::open::{self, Access};
use crate::output::{self, JsonReport, UserResult};
use crate::progress::{BatchProgress, Display, UserProgress};
use crate::settings::{CliGroups, Settings};
use crate::verify;

/// What every verb gets.
pub(crate) struct Context {
    pub(crate) verbosity: Verbosity,
    pub(crate) display: Display,
    pub(crate) stderr: Stderr,
    pub(crate) config: ConfigFile,
    pub(crate) settings: Vec<String>,
}

/// Whom a run is for.
#[derive(Debug, Clone)]
struct Who {
    /// The user put into templates.
    user: Option<String>,
    /// The config account to take settings from.
    account: Option<String>,
    /// A source given by the user list.
    source: Option<String>,
    credential: Option<SecretSource>,
}

/// True when the run is a batch (several users, table at the end).
fn is_batch(batch: &BatchArgs) -> bool {
    batch.all_users || batch.user_file.is_some()
}

fn whom(context: &Context, batch: &BatchArgs) -> Result<Vec<Who>, CliError> {
    let account_user = |name: &str| {
        context
            .config
            .accounts
            .get(name)
            .and_then(|a| a.user.clone())
            .unwrap_or_else(|| name.to_owned())
    };
    let mut list = if let Some(path) = &batch.user_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::Usage(format!("cannot read the user list {}: {e}", path.display()))
        })?;
        let entries = batch::parse_user_list(&text)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        // Most likely the wrong file (or one not written yet): nothing done is no success.
        if entries.is_empty() {
            return Err(CliError::Usage(format!(
                "the user list {} names no user (only blank lines and comments): nothing to do",
                path.display()
            )));
        }
        entries
            .into_iter()
            .map(|entry| Who {
                user: Some(account_user(&entry.user)),
                account: Some(entry.user),
                source: entry.source,
                credential: entry.credential,
            })
            .collect()
    } else if batch.all_users {
        if context.config.accounts.is_empty() {
            return Err(CliError::Usage(
                "-A runs every account of the config file, and it has none ([accounts.NAME])"
                    .into(),
            ));
        }
        context
            .config
            .accounts
            .keys()
            .map(|name| Who {
                user: Some(account_user(name)),
                account: Some(name.clone()),
                source: None,
                credential: None,
            })
            .collect()
    } else if let Some(user) = &batch.user {
        vec![Who {
            user: Some(account_user(user)),
            account: Some(user.clone()),
            source: None,
            credential: None,
        }]
    } else {
        vec![Who { user: None, account: None, source: None, credential: None }]
    };
    if let Some(spec) = &batch.shard {
        let all = list.len();
        list = batch::shard(list, spec).map_err(CliError::Usage)?;
        if list.is_empty() {
            tracing::warn!("--shard {spec} of {all} users takes none of them: nothing to do");
        }
    }
    Ok(list)
}

/// A positional location, `-` meaning "not given".
fn given(text: Option<&String>) -> Option<String> {
    text.filter(|t| t.as_str() != "-").cloned()
}

fn settings_for(context: &Context, who: &Who, groups: CliGroups<'_>) -> Result<Settings, CliError> {
    let profile = context.config.profile(who.account.as_deref());
    Settings::resolve(&profile, groups)
}

/// Parses `template` for `user`: `~` and `%h` of a Maildir become the user's home, then
/// `%u`, `%n` and `%d` are replaced.
fn parse_for(
    template: &str,
    user: Option<&str>,
    settings: &Settings,
) -> Result<Location, CliError> {
    let template = home::expand_home(template, user, settings)?;
    let text = match user {
        Some(user) => expand(&template, user),
        None => template,
    };
    location::parse(&text).map_err(CliError::Location)
}

fn secret_for(who: &Who, settings: &Settings) -> Option<SecretSource> {
    let secret = who.credential.clone().or_else(|| settings.secret.clone())?;
    Some(match &who.user {
        Some(user) => secret.for_user(user),
        None => secret,
    })
}

/// The label of a user that could not even be planned.
fn label_of(who: &Who, fallback: &str) -> String {
    who.user.clone().unwrap_or_else(|| fallback.to_owned())
}

/// `backup`, `sync` and `import`.
pub(crate) fn sync(
    context: &Context,
    task: &Task,
    positional: (Option<&String>, Option<&String>),
    reverse: bool,
    run: &RunArgs,
) -> Result<u8, CliError> {
    let groups = CliGroups {
        settings: &context.settings,
        connection: Some(&run.connection),
        write: Some(&run.write),
        batch: Some(&run.batch),
        output: Some(&run.output),
    };
    if task.verify.is_some() && task.dry_run {
        return Err(CliError::Usage(
            "--verify with --dry-run: a dry run writes nothing, so there is nothing to verify"
                .into(),
        ));
    }
    let users = whom(context, &run.batch)?;
    let batch_mode = is_batch(&run.batch);
    if batch_mode && task.dovecot_state.is_some() {
        return Err(CliError::Usage(
            "-s prints one state: use it for one user, not with -A/-F".into(),
        ));
    }
    let plan = |who: &Who| -> Result<Job, CliError> {
        let settings = settings_for(context, who, groups)?;
        let profile = context.config.profile(who.account.as_deref());
        let sieve_profile = profile.clone();
        let source = who
            .source
            .clone()
            .or_else(|| given(positional.0))
            .or(profile.source)
            .ok_or_else(|| CliError::Usage("the source location is missing".into()))?;
        let destination = given(positional.1)
            .or(profile.destination)
            .ok_or_else(|| CliError::Usage("the destination location is missing".into()))?;
        let (source, destination) =
            if reverse { (destination, source) } else { (source, destination) };
        let user = who.user.as_deref();
        // import -U: the source is that user's (templates, ~, imapc login, credential).
        let source = match &task.source_user {
            Some(owner) => parse_for(&source, Some(owner), &settings)?,
            None => parse_for(&source, user, &settings)?,
        };
        // A one-way merge reads UIDs and flags, not only new mail: only from a POP3 source
        // (matched by UIDL) does it apply the message filters.
        if task.mode == Mode::OneWay
            && !task.message_filter.is_everything()
            && !matches!(source, Location::Pop3(_))
        {
            return Err(CliError::Usage(
                "-t, -e, -O and -I are not supported in sync -1 (they would be ignored): use backup"
                    .into(),
            ));
        }
        let secret_owner =
            Who { user: task.source_user.clone().or_else(|| who.user.clone()), ..who.clone() };
        let destination = parse_for(&destination, user, &settings)?;
        let local = crate::sieve::LocalSides::of(&source, &destination);
        Ok(Job {
            user: who.user.clone(),
            source_user: task.source_user.clone(),
            sieve: crate::sieve::task_locations(
                &run.sieve,
                &sieve_profile,
                task,
                user,
                &settings,
                local,
            )?,
            source,
            destination,
            secret: secret_for(&secret_owner, &settings),
            settings,
        })
    };

    if !batch_mode {
        let who = &users[0];
        let job = plan(who)?;
        for warning in &job.settings.warnings {
            tracing::warn!("{warning}");
        }
        return run_single(context, &job, task, &run.output);
    }

    let base = settings_for(
        context,
        &Who { user: None, account: None, source: None, credential: None },
        groups,
    )?;
    for warning in &base.warnings {
        tracing::warn!("{warning}");
    }
    if users.is_empty() {
        return Ok(0);
    }
    let planned: Vec<(String, Result<Job, CliError>)> =
        users.iter().map(|who| (label_of(who, "?"), plan(who))).collect();
    refuse_shared_paths(&planned, task)?;
    let logs = LogSetup {
        log_dir: Some(base.log_dir.clone().unwrap_or_else(|| PathBuf::from("dsync-logs"))),
        rawlog_dir: base.rawlog_dir.clone(),
    };
    let started = Instant::now();
    let batch_progress = BatchProgress::new(&context.display, planned.len(), true);
    let outcomes =
        batch::run_parallel(&planned, base.jobs, &batch_progress, |index, (label, job)| {
            // After Ctrl-C no user starts; the running ones stop after their current message.
            if interrupt::requested() {
                let error = dsync_core::StorageError::new(ErrorKind::Interrupted, "not started");
                return failed_outcome(CliError::Storage { side: "destination", error });
            }
            let user_logs = logs.open(label);
            let (file, rawlog) = match user_logs {
                Ok(user_logs) => (user_logs.file, user_logs.rawlog),
                Err(error) => return failed_outcome(error),
            };
            logging::with_user_log(
                context.verbosity,
                Some(label),
                file,
                context.stderr.clone(),
                || {
                    let outcome = match job {
                        Ok(job) => {
                            let mut progress = UserProgress::in_batch(
                                &context.display,
                                label,
                                batch_progress.clone(),
                                index,
                            );
                            job::run(
                                job,
                                task,
                                &mut progress,
                                context.verbosity.debug,
                                rawlog.as_ref(),
                            )
                        }
                        Err(error) => failed_outcome(clone_error(error)),
                    };
                    if let Some(error) = &outcome.error {
                        tracing::error!("{error}");
                    }
                    let code = outcome.exit_code();
                    tracing::info!(
                        "finished: {} (exit {code}) in {:.2}s",
                        output::status(code),
                        outcome.duration.as_secs_f64()
                    );
                    outcome
                },
            )
        });
    let results: Vec<UserResult> = planned
        .iter()
        .zip(&outcomes)
        .map(|((label, job), outcome)| {
            let (source, destination) = match job {
                Ok(job) => (job.source.to_string(), job.destination.to_string()),
                Err(_) => (String::new(), String::new()),
            };
            UserResult::new(task.verb, label, &source, &destination, outcome)
        })
        .collect();
    Ok(finish_batch(context, task.verb, &results, started, run.output.json))
}

/// Refuses a batch in which two users would write one destination (a template without
/// `%u`, `%n` or `%d`, or homes that coincide) or one state file, before any user starts:
/// they would mix their mail and rebuild each other's folders.
fn refuse_shared_paths(
    planned: &[(String, Result<Job, CliError>)],
    task: &Task,
) -> Result<(), CliError> {
    let mut destinations: std::collections::HashMap<String, &str> =
        std::collections::HashMap::new();
    for (label, job) in planned {
        let Ok(job) = job else { continue };
        let key = job.destination.to_string();
        if let Some(first) = destinations.insert(key.clone(), label) {
            if first == label {
                return Err(CliError::Usage(format!(
                    "{label} is listed twice (both would write {key}); nothing was done"
                )));
            }
            return Err(CliError::Usage(format!(
                "{key} would be the destination of both {first} and {label}: each user needs \
                 their own (put %u, %n or %d in the destination template, or ~ for their \
                 home); nothing was done"
            )));
        }
    }
    if let Some(template) = &task.state_file {
        let text = template.to_string_lossy();
        if destinations.len() > 1 && !["%u", "%n", "%d"].iter().any(|k| text.contains(k)) {
            return Err(CliError::Usage(format!(
                "--state-file {text} would be every user's state file: put %u, %n or %d in it \
                 (e.g. /var/lib/dsync/%u.state); nothing was done"
            )));
        }
    }
    Ok(())
}

fn finish_batch(
    context: &Context,
    verb: &str,
    results: &[UserResult],
    started: Instant,
    json: bool,
) -> u8 {
    let codes: Vec<u8> = results.iter().map(|r| r.exit_code).collect();
    let exit_code = output::batch_exit_code(&codes);
    if json {
        output::print_json(&JsonReport {
            verb,
            exit_code,
            duration_secs: started.elapsed().as_secs_f64(),
            users: results,
        });
    } else if !context.verbosity.quiet || exit_code != 0 {
        print!("{}", output::table(verb, results));
    }
    exit_code
}

fn failed_outcome(error: CliError) -> Outcome {
    Outcome::without_report(Some(error), std::time::Duration::ZERO)
}

/// Planning errors are kept per user and reported once; they are cheap to rebuild.
fn clone_error(error: &CliError) -> CliError {
    match error {
        CliError::Location(error) => CliError::Location(error.clone()),
        CliError::Config(message) => CliError::Config(message.clone()),
        CliError::Output(message) => CliError::Output(message.clone()),
        CliError::UnknownUser(message) => CliError::UnknownUser(message.clone()),
        other => CliError::Usage(other.to_string()),
    }
}

fn run_single(
    context: &Context,
    job: &Job,
    task: &Task,
    output_args: &crate::args::OutputArgs,
) -> Result<u8, CliError> {
    let label = job.label();
    let logs = LogSetup {
        log_dir: job.settings.log_dir.clone(),
        rawlog_dir: job.settings.rawlog_dir.clone(),
    }
    .open(&label)?;
    let outcome =
        logging::with_user_log(context.verbosity, None, logs.file, context.stderr.clone(), || {
            let mut progress = UserProgress::new(&context.display, &label);
            job::run(job, task, &mut progress, context.verbosity.debug, logs.rawlog.as_ref())
        });
    let code = outcome.exit_code();
    let (source, destination) = (job.source.to_string(), job.destination.to_string());
    if output_args.json {
        let result = UserResult::new(task.verb, &label, &source, &destination, &outcome);
        output::print_json(&JsonReport {
            verb: task.verb,
            exit_code: code,
            duration_secs: outcome.duration.as_secs_f64(),
            users: std::slice::from_ref(&result),
        });
        if let Some(error) = &outcome.error {
            eprintln!("dsync: {error}");
        }
    } else {
        output::print_summary(&output::Summary {
            verb: task.verb,
            source: &source,
            destination: &destination,
            message_filter: &task.message_filter,
            outcome: &outcome,
            quiet: context.verbosity.quiet,
            to_stderr: task.dovecot_state.is_some(),
        });
    }
    if let Some(state) = &outcome.dovecot_state {
        println!("{state}");
    }
    Ok(code)
}

/// Builds the task of `backup` and `sync` (state options apply).
pub(crate) fn task(
    verb: &'static str,
    mode: Mode,
    state: &StateArgs,
    run: &RunArgs,
) -> Result<Task, CliError> {
    if state.purge {
        return Err(CliError::Usage(
            "-P: purging applies to mdbox storage only; Maildir has nothing to purge".into(),
        ));
    }
    let mut task = base_task(verb, mode, &run.filters, run.write.dry_run)?;
    task.state = !state.no_state;
    task.state_file.clone_from(&state.state_file);
    task.delete_extra = state.delete_extra;
    task.full = state.full;
    task.dovecot_state.clone_from(&state.dovecot_state);
    task.all_mail = state
        .all_mail
        .as_deref()
        .map(MailboxPattern::parse)
        .transpose()
        .map_err(|error| CliError::Usage(format!("-a: {error}")))?;
    if task.dovecot_state.is_some() && state.no_state {
        tracing::warn!(
            "-s with --no-state: Dovecot's string alone cannot locate mailboxes; doing a full sync"
        );
    }
    Ok(task)
}

/// Builds the task of `import`.
pub(crate) fn import_task(args: &ImportArgs) -> Result<Task, CliError> {
    let run = &args.run;
    let mut task = base_task("import", Mode::Import, &run.filters, run.write.dry_run)?;
    task.import_parent = match args.parent.as_deref().filter(|p| !p.is_empty()) {
        Some(parent) => Some(
            MailboxName::split(parent, Some('/'))
                .map_err(|e| CliError::Usage(format!("import parent {parent:?}: {e}")))?,
        ),
        None => None,
    };
    task.subscribe_imported = args.subscribe;
    if !args.query.is_empty() {
        let parsed = SearchQuery::parse(&args.query, unix_now())
            .map_err(|error| CliError::Usage(error.to_string()))?;
        for warning in &parsed.warnings {
            tracing::warn!("{warning}");
        }
        // Dovecot compares days in its local time zone; so do we.
        task.search = Some(parsed.query.in_time_zone(TimeZone::Local));
    }
    if let Some(owner) = &args.source_user {
        if owner.is_empty() {
            return Err(CliError::Usage("-U needs a user name".into()));
        }
        task.source_user = Some(owner.clone());
    }
    Ok(task)
}

/// The current UNIX time.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn base_task(
    verb: &'static str,
    mode: Mode,
    filters: &FilterArgs,
    dry_run: bool,
) -> Result<Task, CliError> {
    let now = unix_now();
    let mailbox_filter =
        filters::mailbox_filter(&filters.mailboxes, &filters.exclude, &filters.namespaces)
            .map_err(CliError::Usage)?;
    let message_filter = filters::message_filter(filters, now).map_err(CliError::Usage)?;
    if mode == Mode::TwoWay && !message_filter.is_everything() {
        return Err(CliError::Usage(
            "-t, -e, -O and -I are not supported in a two-way sync (use sync -1 or backup)".into(),
        ));
    }
    Ok(Task {
        verb,
        mode,
        dry_run,
        mailbox_filter,
        message_filter,
        state: false,
        state_file: None,
        full: false,
        dovecot_state: None,
        import_parent: None,
        subscribe_imported: false,
        search: None,
        source_user: None,
        all_mail: None,
        verify: None,
        delete_extra: false,
    })
}

/// `dsync verify`.
pub(crate) fn verify(context: &Context, args: &VerifyArgs) -> Result<u8, CliError> {
    let groups = CliGroups {
        settings: &context.settings,
        connection: Some(&args.connection),
        ..CliGroups::default()
    };
    let settings = Settings::resolve(&context.config.profile(None), groups)?;
    let filter =
        filters::mailbox_filter(&args.mailboxes, &args.exclude, &[]).map_err(CliError::Usage)?;
    let source = open::resolve(parse_for(&args.source, None, &settings)?, &settings, None)?;
    let destination =
        open::resolve(parse_for(&args.destination, None, &settings)?, &settings, None)?;
    let access = Access {
        settings: &settings,
        secret: settings.secret.clone(),
        debug: context.verbosity.debug,
        rawlog: None,
        message_guids: false,
        source_uids: open::default_source_uids(&destination),
        source_listings: None,
    };
    let mut a = open::open_source(&source, &access, "source")?;
    let mut b = open::open_destination_to_read(&destination, &access)?;
    let every_message = dsync_core::filter::MessageFilter::default();
    let result =
        verify::compare(a.as_storage(), b.as_storage(), &filter, &every_message, args.bodies);
    warn_about(&mut a);
    warn_about(&mut b);
    a.close();
    b.close();
    let mut comparison = result.map_err(|e| CliError::Storage { side: e.side, error: e.error })?;
    // The Sieve scripts too, when named: their differences join the mail's.
    let profile = context.config.profile(None);
    let local = crate::sieve::LocalSides::of(&source, &destination);
    if let Some(pair) = crate::sieve::locations(&args.sieve, &profile, None, &settings, local)? {
        let lines = crate::sieve::compare(&pair, &access)?;
        comparison.differences.extend(lines.into_iter().map(|text| verify::Difference {
            mailbox: None,
            uid: None,
            text,
        }));
    }
    if args.json {
        match serde_json::to_string_pretty(&comparison) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("dsync: cannot encode the JSON report: {error}"),
        }
    } else {
        for difference in &comparison.differences {
            println!("{difference}");
        }
        if !context.verbosity.quiet {
            eprintln!("dsync: verify {source} <-> {destination}: {}", comparison.verdict());
        }
    }
    // A verification that compared nothing must not pass: a -m that matches no mailbox
    // (a typo, a folder neither side has) or filters that leave nothing are "not found".
    let not_found = ErrorKind::NotFound.exit_code();
    for pattern in &comparison.unmatched {
        eprintln!(
            "dsync: verify: -m {pattern} matches no mailbox on either side: nothing was compared for it"
        );
    }
    if !comparison.unmatched.is_empty() {
        return Ok(not_found);
    }
    if comparison.mailboxes == 0 && comparison.differences.is_empty() {
        eprintln!("dsync: verify: the mailbox filters leave no mailbox to compare");
        return Ok(not_found);
    }
    Ok(u8::from(!comparison.differences.is_empty()))
}

/// `dsync check`.
pub(crate) fn check(context: &Context, args: &CheckArgs) -> Result<u8, CliError> {
    let groups = CliGroups {
        settings: &context.settings,
        connection: Some(&args.connection),
        batch: Some(&args.batch),
        output: Some(&args.output),
        ..CliGroups::default()
    };
    let users = whom(context, &args.batch)?;
    let plan = |who: &Who| -> Result<CheckPlan, CliError> {
        let settings = settings_for(context, who, groups)?;
        let profile = context.config.profile(who.account.as_deref());
        let template = who
            .source
            .clone()
            .or_else(|| given(args.location.as_ref()))
            .or(profile.source)
            .ok_or_else(|| CliError::Usage("the location to check is missing".into()))?;
        let location = open::resolve(
            parse_for(&template, who.user.as_deref(), &settings)?,
            &settings,
            who.user.as_deref(),
        )?;
        let secret = secret_for(who, &settings);
        let sieve = args
            .sieve
            .as_ref()
            .map(|template| crate::sieve::parse(template, who.user.as_deref(), &settings))
            .transpose()?;
        Ok((location, settings, secret, sieve))
    };
    // The mail's report, and the scripts' listing when --sieve names them.
    let run_one = |planned: &Result<CheckPlan, CliError>, rawlog| {
        let started = Instant::now();
        let (location, settings, secret, sieve) = match planned {
            Ok(planned) => planned,
            Err(error) => return (Err(clone_error(error)), None, started.elapsed()),
        };
        let access = Access {
            settings,
            secret: secret.clone(),
            debug: context.verbosity.debug,
            rawlog,
            message_guids: false,
            source_uids: None,
            source_listings: None,
        };
        let result = open::open_source(location, &access, "source").and_then(|mut opened| {
            let report = inspect::check(opened.as_storage())
                .map_err(|error| CliError::Storage { side: "source", error });
            warn_about(&mut opened);
            opened.close();
            report
        });
        let scripts = sieve.as_ref().map(|sieve| crate::sieve::list(sieve, &access));
        (result, scripts, started.elapsed())
    };
    if !is_batch(&args.batch) {
        let planned = plan(&users[0]);
        let label = match &planned {
            Ok((location, ..)) => location.to_string(),
            Err(_) => String::new(),
        };
        let (result, scripts, _) =
            logging::with_user_log(context.verbosity, None, None, context.stderr.clone(), || {
                run_one(&planned, None)
            });
        let report = result?;
        if !context.verbosity.quiet {
            print!("{}", report.table(&label));
        }
        let Some(scripts) = scripts else { return Ok(0) };
        let (listing, sieve) = scripts?;
        if !context.verbosity.quiet {
            print!("{listing}");
        }
        for skipped in &sieve.skipped {
            eprintln!("dsync: {skipped}");
        }
        return Ok(sieve.exit_code());
    }
    let base = settings_for(
        context,
        &Who { user: None, account: None, source: None, credential: None },
        groups,
    )?;
    if users.is_empty() {
        return Ok(0);
    }
    let planned: Vec<(String, Result<_, CliError>)> =
        users.iter().map(|who| (label_of(who, "?"), plan(who))).collect();
    let logs = LogSetup { log_dir: base.log_dir.clone(), rawlog_dir: base.rawlog_dir.clone() };
    let started = Instant::now();
    let users_progress = BatchProgress::new(&context.display, planned.len(), false);
    let outcomes =
        batch::run_parallel(&planned, base.jobs, &users_progress, |_, (label, planned)| {
            let (file, rawlog) = match logs.open(label) {
                Ok(user_logs) => (user_logs.file, user_logs.rawlog),
                Err(error) => return ((Err(error), None), std::time::Duration::ZERO),
            };
            logging::with_user_log(
                context.verbosity,
                Some(label),
                file,
                context.stderr.clone(),
                || {
                    let (result, scripts, duration) = run_one(planned, rawlog);
                    if let Err(error) = &result {
                        tracing::error!("{error}");
                    }
                    // The user's log lists the scripts; the table counts them.
                    let scripts = scripts.map(|scripts| {
                        scripts.map(|(listing, report)| {
                            for line in listing.lines() {
                                tracing::info!("{line}");
                            }
                            for skipped in &report.skipped {
                                tracing::error!("{skipped}");
                            }
                            report
                        })
                    });
                    if let Some(Err(error)) = &scripts {
                        tracing::error!("sieve: {error}");
                    }
                    ((result, scripts), duration)
                },
            )
        });
    let results: Vec<UserResult> = planned
        .iter()
        .zip(outcomes)
        .map(|((label, planned), ((result, scripts), duration))| {
            let location = planned.as_ref().map(|(l, ..)| l.to_string()).unwrap_or_default();
            let (report, error) = match result {
                Ok(report) => (Some(report), None),
                Err(error) => (None, Some(error)),
            };
            let mut outcome = Outcome::without_report(error, duration);
            outcome.sieve = scripts;
            let mut line = UserResult::new("check", label, &location, "", &outcome);
            if let Some(report) = report {
                line.mailboxes = report.folders.len() as u64;
                line.messages = report.messages();
                line.bytes = report.bytes();
            }
            line
        })
        .collect();
    Ok(finish_batch(context, "check", &results, started, args.output.json))
}

/// What `check` does for one user: the location, its settings and credential, and the
/// Sieve location of `--sieve`.
type CheckPlan = (Location, Settings, Option<SecretSource>, Option<crate::sieve::SieveLocation>);

/// Logs what an opened storage has to say (e.g. the `imapc_list_prefix` folder left out).
fn warn_about(opened: &mut open::Opened) {
    for warning in opened.take_warnings() {
        tracing::warn!("{warning}");
    }
}

/// `dsync mailbox list`.
pub(crate) fn mailbox_list(context: &Context, args: &MailboxListArgs) -> Result<u8, CliError> {
    let groups = CliGroups {
        settings: &context.settings,
        connection: Some(&args.connection),
        ..CliGroups::default()
    };
    let settings = Settings::resolve(&context.config.profile(None), groups)?;
    let location = open::resolve(parse_for(&args.location, None, &settings)?, &settings, None)?;
    let access = Access {
        settings: &settings,
        secret: settings.secret.clone(),
        debug: context.verbosity.debug,
        rawlog: None,
        message_guids: false,
        source_uids: None,
        source_listings: None,
    };
    let mut opened = open::open_source(&location, &access, "source")?;
    let names = inspect::list(opened.as_storage(), &args.patterns, args.subscribed)
        .map_err(|error| CliError::Storage { side: "source", error });
    warn_about(&mut opened);
    opened.close();
    for name in names? {
        println!("{name}");
    }
    Ok(0)
}
