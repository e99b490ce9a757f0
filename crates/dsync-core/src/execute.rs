//! The executor: applies plans through the storage traits, streaming bodies from source to
//! destination, committing every `commit_interval` saves so that an interrupted run leaves
//! a clean UID prefix and the next run resumes without duplicates or gaps.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::filter::{MailboxFilter, MessageFilter};
use crate::model::{MailboxContents, MailboxInfo, MailboxName, MessageMeta, Uid};
use crate::plan::{MailboxAction, MailboxPlan, Mode, TreePlan, plan_mailbox, plan_tree};
use crate::report::{MailboxReport, Report};
use crate::storage::{MailboxWriter, MessageSink, NewMailbox, Storage, StorageMut};

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
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            mode: Mode::Backup,
            commit_interval: 100,
            dry_run: false,
            mailbox_filter: MailboxFilter::default(),
            message_filter: MessageFilter::default(),
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
    match run_inner(options, source, destination, observer, &mut report) {
        Ok(()) => Ok(report),
        Err(error) => Err(Failed { error, report: Box::new(report) }),
    }
}

fn run_inner(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
) -> Result<(), SyncError> {
    let (source_mailboxes, source_names) =
        local_names(source.mailboxes().map_err(at(Side::Source, None))?, destination, report);
    let source_subscriptions: BTreeSet<MailboxName> = source
        .subscriptions()
        .map_err(at(Side::Source, None))?
        .iter()
        .map(|name| destination.local_name(name))
        .collect();
    let destination_mailboxes = destination.mailboxes().map_err(at(Side::Destination, None))?;
    let destination_subscriptions =
        destination.subscriptions().map_err(at(Side::Destination, None))?;
    let tree = plan_tree(
        options.mode,
        &source_mailboxes,
        &source_subscriptions,
        &destination_mailboxes,
        &destination_subscriptions,
        &options.mailbox_filter,
    );
    observer.tree_planned(&tree);
    let existing: BTreeSet<MailboxName> =
        destination_mailboxes.into_iter().filter(|m| m.selectable).map(|m| m.name).collect();

    for mailbox in &tree.delete {
        if !options.dry_run {
            let result = destination.delete_mailbox(mailbox);
            if keep_going(result.map_err(at(Side::Destination, Some(mailbox))), report)?.is_none() {
                continue;
            }
        }
        report.deleted_mailboxes.push(mailbox.clone());
    }

    for mailbox in &tree.sync {
        let source_name = source_names.get(mailbox).unwrap_or(mailbox);
        let names = Names { source: source_name, destination: mailbox };
        let result = sync_mailbox(
            options,
            source,
            destination,
            observer,
            &names,
            existing.contains(mailbox),
        );
        if let Some(mailbox_report) = keep_going(result, report)? {
            observer.mailbox_finished(&mailbox_report);
            report.mailboxes.push(mailbox_report);
        }
    }

    for (names, subscribed) in [(&tree.subscribe, true), (&tree.unsubscribe, false)] {
        for mailbox in names {
            if !options.dry_run {
                let result = destination.set_subscribed(mailbox, subscribed);
                if keep_going(result.map_err(at(Side::Destination, Some(mailbox))), report)?
                    .is_none()
                {
                    continue;
                }
            }
            if subscribed {
                report.subscribed += 1;
            } else {
                report.unsubscribed += 1;
            }
        }
    }
    Ok(())
}

/// Translates source mailbox names into the destination's spelling. Two source names that
/// end up the same are a mailbox-local failure for the second one; the map leads back from
/// destination names to source names.
fn local_names(
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
struct Names<'a> {
    source: &'a MailboxName,
    destination: &'a MailboxName,
}

/// Records a mailbox-local error and continues, or stops the run on a global one.
fn keep_going<T>(
    result: Result<T, SyncError>,
    report: &mut Report,
) -> Result<Option<T>, SyncError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) => match error.kind() {
            ErrorKind::NotFound | ErrorKind::InvalidData | ErrorKind::Permission => {
                report.failures.push(error);
                Ok(None)
            }
            _ => Err(error),
        },
    }
}

fn at(side: Side, mailbox: Option<&MailboxName>) -> impl FnOnce(StorageError) -> SyncError {
    let mailbox = mailbox.cloned();
    move |error| SyncError { side, mailbox, error }
}

fn sync_mailbox(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    names: &Names<'_>,
    exists_on_destination: bool,
) -> Result<MailboxReport, SyncError> {
    let mailbox = names.destination;
    let source_contents =
        source.contents(names.source).map_err(at(Side::Source, Some(names.source)))?;
    let destination_contents: Option<MailboxContents> = if exists_on_destination {
        Some(destination.contents(mailbox).map_err(at(Side::Destination, Some(mailbox)))?)
    } else {
        None
    };
    let plan = plan_mailbox(
        options.mode,
        mailbox,
        &source_contents,
        destination_contents.as_ref(),
        &options.message_filter,
    );
    drop(destination_contents);
    observer.mailbox_planned(&plan);

    if let MailboxAction::Blocked(reason) = &plan.action {
        let message = format!(
            "needs a full rebuild ({reason}), which a run with message filters never does \
             (it would delete mail outside the filter); run once without -t/-e/-I/-O"
        );
        return Err(SyncError {
            side: Side::Destination,
            mailbox: Some(mailbox.clone()),
            error: StorageError::new(ErrorKind::InvalidData, message),
        });
    }
    let mut mailbox_report = MailboxReport::new(mailbox.clone(), plan.action.clone());
    mailbox_report.skipped = plan.skipped.len() as u64;
    if options.dry_run {
        mailbox_report.saved = plan.save.len() as u64;
        mailbox_report.bytes = plan.save.iter().filter_map(|m| m.virtual_size).sum();
        mailbox_report.expunged = plan.expunge.len() as u64;
        mailbox_report.flags_changed = plan.set_flags.len() as u64;
        return Ok(mailbox_report);
    }
    if plan.is_empty() {
        return Ok(mailbox_report);
    }

    let new = NewMailbox {
        uid_validity: source_contents.status.uid_validity,
        guid: source_contents.status.guid,
    };
    let at_destination = at(Side::Destination, Some(mailbox));
    let result = match &plan.action {
        MailboxAction::Update => Ok(()),
        MailboxAction::Create => destination.create_mailbox(mailbox, &new),
        MailboxAction::Recreate(_) => destination.recreate_mailbox(mailbox, &new),
        MailboxAction::Blocked(_) => unreachable!("returned above"),
    };
    result.map_err(at_destination)?;
    drop(source_contents);

    let mut writer = destination.writer(mailbox).map_err(at(Side::Destination, Some(mailbox)))?;
    apply_reverts(&mut *writer, &plan, &mut mailbox_report)
        .map_err(at(Side::Destination, Some(mailbox)))?;
    copy_messages(
        options,
        source,
        names.source,
        &mut *writer,
        observer,
        &plan,
        &mut mailbox_report,
    )?;
    if let Some(uid_next) = plan.uid_next {
        writer.raise_uid_next(uid_next).map_err(at(Side::Destination, Some(mailbox)))?;
    }
    writer.commit().map_err(at(Side::Destination, Some(mailbox)))?;
    Ok(mailbox_report)
}

fn apply_reverts(
    writer: &mut dyn MailboxWriter,
    plan: &MailboxPlan,
    report: &mut MailboxReport,
) -> Result<(), StorageError> {
    if !plan.expunge.is_empty() {
        writer.expunge(&plan.expunge)?;
        report.expunged = plan.expunge.len() as u64;
    }
    for (uid, flags) in &plan.set_flags {
        writer.set_flags(*uid, flags)?;
        report.flags_changed += 1;
    }
    if !plan.expunge.is_empty() || !plan.set_flags.is_empty() {
        writer.commit()?;
    }
    Ok(())
}

fn copy_messages(
    options: &SyncOptions,
    source: &mut dyn Storage,
    source_name: &MailboxName,
    writer: &mut dyn MailboxWriter,
    observer: &mut dyn Observer,
    plan: &MailboxPlan,
    report: &mut MailboxReport,
) -> Result<(), SyncError> {
    if plan.save.is_empty() {
        return Ok(());
    }
    let wanted: BTreeMap<Uid, &MessageMeta> = plan.save.iter().map(|m| (m.uid, m)).collect();
    let uids: Vec<Uid> = wanted.keys().copied().collect();
    let mut sink = CopySink {
        writer,
        observer,
        mailbox: &plan.mailbox,
        wanted,
        commit_interval: options.commit_interval.max(1),
        since_commit: 0,
        staged_bytes: None,
        last_saved: None,
        saved: 0,
        bytes: 0,
        destination_error: None,
    };
    let result = source.fetch(source_name, &uids, &mut sink);
    report.saved = sink.saved;
    report.bytes = sink.bytes;
    report.vanished = uids.len() as u64 - sink.saved;
    if let Some(error) = sink.destination_error.take() {
        return Err(SyncError {
            side: Side::Destination,
            mailbox: Some(plan.mailbox.clone()),
            error,
        });
    }
    result.map_err(at(Side::Source, Some(source_name)))
}

/// Forwards fetched bodies into the destination writer, in ascending UID order.
struct CopySink<'a> {
    writer: &'a mut dyn MailboxWriter,
    observer: &'a mut dyn Observer,
    mailbox: &'a MailboxName,
    wanted: BTreeMap<Uid, &'a MessageMeta>,
    commit_interval: u32,
    since_commit: u32,
    staged_bytes: Option<u64>,
    last_saved: Option<Uid>,
    saved: u64,
    bytes: u64,
    /// The real error when the destination failed, so the run blames the right side
    /// (the source adapter only sees that its sink refused).
    destination_error: Option<StorageError>,
}

impl CopySink<'_> {
    fn fail(&mut self, error: StorageError) -> StorageError {
        let reply = StorageError::new(error.kind(), "destination refused the message");
        self.destination_error = Some(error);
        reply
    }

    fn finish(&mut self, uid: Uid) -> Result<(), StorageError> {
        let Some(bytes) = self.staged_bytes.take() else {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("source reported UID {uid} without a body"),
            ));
        };
        let Some(meta) = self.wanted.remove(&uid) else {
            // Not asked for (a server answering more than requested): drop the staged body.
            return Ok(());
        };
        if self.last_saved.is_some_and(|last| uid <= last) {
            return Err(StorageError::new(
                ErrorKind::InvalidData,
                format!("source returned UID {uid} out of ascending order"),
            ));
        }
        if let Err(error) = self.writer.save_finish(meta) {
            return Err(self.fail(error));
        }
        self.last_saved = Some(uid);
        self.saved += 1;
        self.bytes += bytes;
        self.since_commit += 1;
        self.observer.message_saved(self.mailbox, uid, bytes);
        if self.since_commit >= self.commit_interval {
            if let Err(error) = self.writer.commit() {
                return Err(self.fail(error));
            }
            self.since_commit = 0;
        }
        Ok(())
    }
}

impl MessageSink for CopySink<'_> {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        let mut counting = CountingReader { inner: body, count: 0 };
        match self.writer.save_body(&mut counting) {
            Ok(()) => {
                self.staged_bytes = Some(counting.count);
                Ok(())
            }
            Err(error) => Err(self.fail(error)),
        }
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        self.finish(uid)
    }
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
