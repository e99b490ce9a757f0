//! `import` (Dovecot's `doveadm import`): copy the source's messages into the destination
//! under a parent folder, keeping flags, keywords and received dates, with new UIDs.
//!
//! As in doveadm, a search query ([`SyncOptions::search`]) selects mailboxes and
//! messages, a mailbox the query names without wildcards must exist, and a target folder
//! is only created for a mailbox with at least one message to import.
//!
//! Which messages go in, under which UIDs: [`crate::plan::import`].

use std::collections::{BTreeMap, BTreeSet};

use super::copy::copy_from_source;
use super::{
    MailboxFailed, Names, Observer, SyncOptions, apply_subscriptions, keep_going_mailbox,
    local_names, message_identities, note_mailbox_filter,
};
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{MailboxInfo, MailboxName, MessageMeta, Uid};
use crate::plan::import::{ImportPlan, plan_import};
use crate::plan::{ComparableGuids, MailboxAction, MailboxPlan};
use crate::query::SearchQuery;
use crate::report::{FilteredMessages, MailboxReport, Report};
use crate::storage::{Capabilities, NewMailbox, Storage, StorageMut};

pub(super) fn run(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
) -> Result<(), SyncError> {
    if let Some(query) = &options.search {
        check_query(query, source.capabilities())?;
    }
    let source_mailboxes = source.mailboxes().map_err(SyncError::global(Side::Source))?;
    if let Some(query) = &options.search {
        report_missing_named(query, &source_mailboxes, report);
    }
    // The destination's names are under the parent: only the source's own count here.
    note_mailbox_filter(&options.mailbox_filter, &source_mailboxes, &[], report);
    let wanted: Vec<_> = source_mailboxes
        .into_iter()
        .filter(|m| m.selectable && options.mailbox_filter.wants(&m.name, &m.special_use))
        .filter(|m| options.search.as_ref().is_none_or(|q| q.may_match_mailbox(&m.name, None)))
        .collect();
    // Target names: the parent's components, then the source's, in the destination's
    // spelling.
    let targets: Vec<_> = wanted
        .into_iter()
        .map(|mut info| {
            let source_name = info.name.clone();
            let mut components: Vec<String> =
                options.import_parent.as_ref().map(|p| p.components().to_vec()).unwrap_or_default();
            components.extend(source_name.components().iter().cloned());
            if let Ok(target) = MailboxName::new(components) {
                info.name = target;
            }
            (source_name, info)
        })
        .collect();
    let (source_names, target_names): (Vec<_>, Vec<_>) = targets.into_iter().unzip();
    let (translated, _) = local_names(target_names, destination, report);
    let existing: BTreeSet<MailboxName> = destination
        .mailboxes()
        .map_err(SyncError::global(Side::Destination))?
        .into_iter()
        .filter(|m| m.selectable)
        .map(|m| m.name)
        .collect();

    let mut subscribe = Vec::new();
    let mut stopped = None;
    for (source_name, target) in source_names.iter().zip(&translated) {
        super::stop_if_interrupted(observer, &target.name)?;
        let result = import_mailbox(
            options,
            source,
            destination,
            observer,
            source_name,
            &target.name,
            existing.contains(&target.name),
        );
        match keep_going_mailbox(result, report) {
            Ok(Some(Some(mailbox_report))) => {
                observer.mailbox_finished(&mailbox_report);
                report.mailboxes.push(mailbox_report);
                if options.subscribe_imported {
                    subscribe.push((target.name.clone(), true));
                }
            }
            Ok(_) => {}
            Err(error) => {
                stopped = Some(error);
                break;
            }
        }
    }
    // Subscribed all at once, also when the run stops: what was imported is subscribed.
    let subscribed = apply_subscriptions(options, destination, &subscribe, report);
    match stopped {
        Some(error) => Err(error),
        None => subscribed,
    }
}

fn import_mailbox(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    source_name: &MailboxName,
    target: &MailboxName,
    exists: bool,
) -> Result<Option<MailboxReport>, MailboxFailed> {
    let mut report = MailboxReport::new(target.clone(), MailboxAction::Update);
    let source_contents =
        source.contents(source_name).map_err(SyncError::at(Side::Source, source_name))?;
    let selected = match &options.search {
        Some(query) => query.select(source_name, &source_contents),
        None => source_contents.messages.iter().collect(),
    };
    report.filtered = FilteredMessages::of(&options.message_filter, selected.iter().copied());
    let candidates: Vec<&MessageMeta> =
        selected.into_iter().filter(|m| options.message_filter.wants(m)).collect();
    if candidates.is_empty() {
        // doveadm opens (and creates, and subscribes) a target only for a match.
        return Ok(None);
    }
    if !exists {
        report.action = MailboxAction::Create;
        if !options.dry_run {
            let new = NewMailbox { uid_validity: None, guid: None, source_uid_validity: None };
            destination
                .create_mailbox(target, &new)
                .map_err(SyncError::at(Side::Destination, target))?;
        }
    }
    let guids = ComparableGuids::between(source.capabilities(), destination.capabilities());
    // What the target holds already: its next UID and its messages' identities.
    let mut target_contents = None;
    let mut target_identities = BTreeMap::new();
    if exists || !options.dry_run {
        let at_target = SyncError::at(Side::Destination, target);
        let contents = destination.contents(target).map_err(at_target)?;
        target_identities =
            message_identities(destination, target, &contents.messages, guids.messages)
                .map_err(SyncError::at(Side::Destination, target))?;
        target_contents = Some(contents);
    }
    let identities =
        message_identities(source, source_name, candidates.iter().copied(), guids.messages)
            .map_err(SyncError::at(Side::Source, source_name))?;
    let ImportPlan { saves, present } =
        plan_import(&candidates, &identities, target_contents.as_ref(), &target_identities);
    drop(target_contents);
    observer.mailbox_planned(&MailboxPlan {
        save: saves.iter().map(|(_, meta)| meta.clone()).collect(),
        ..MailboxPlan::unchanged(target.clone())
    });
    report.skipped = present;
    if options.dry_run || saves.is_empty() {
        report.count_planned(saves.iter().map(|(_, meta)| meta), 0, 0);
        return Ok(Some(report));
    }
    let run: Vec<(Uid, &MessageMeta)> =
        saves.iter().map(|(origin, meta)| (*origin, meta)).collect();
    let failed = |error: StorageError, partial: &MailboxReport| {
        MailboxFailed::after(SyncError::at(Side::Destination, target)(error), partial.clone())
    };
    let mut writer = destination.writer(target).map_err(|error| failed(error, &report))?;
    let copied = copy_from_source(
        source,
        &Names { source: source_name, destination: target },
        &mut *writer,
        observer,
        &run,
        options.commit_interval,
        None,
    )
    .map_err(|copy| {
        copy.copied.record_committed_in(&mut report);
        MailboxFailed::after(copy.error, report.clone())
    })?;
    copied.record_committed_in(&mut report);
    writer.commit().map_err(|error| failed(error, &report))?;
    copied.record_in(&mut report);
    Ok(Some(report))
}

/// Refuses a query that compares GUIDs the source does not report: it would silently
/// match nothing.
fn check_query(query: &SearchQuery, capabilities: Capabilities) -> Result<(), SyncError> {
    let missing = if query.uses_message_guids() && !capabilities.message_guids {
        "GUID compares message GUIDs"
    } else if query.uses_mailbox_guids() && !capabilities.mailbox_guids {
        "MAILBOX-GUID compares mailbox GUIDs"
    } else {
        return Ok(());
    };
    Err(SyncError::usage(format!("search query: {missing}, which this source does not report")))
}

/// A mailbox the query names without wildcards is opened directly by doveadm, which fails
/// ("Mailbox doesn't exist", exit 68) when there is none: the same failure here, and the
/// other mailboxes are still imported.
fn report_missing_named(query: &SearchQuery, mailboxes: &[MailboxInfo], report: &mut Report) {
    for named in query.named_mailboxes() {
        let exists =
            mailboxes.iter().any(|m| m.selectable && SearchQuery::names_mailbox(named, &m.name));
        if !exists {
            report.failures.push(SyncError {
                side: Side::Source,
                mailbox: MailboxName::split(named, Some('/')).ok(),
                error: StorageError::new(
                    ErrorKind::NotFound,
                    format!("search query names mailbox {named:?}, which the source does not have"),
                ),
            });
        }
    }
}
