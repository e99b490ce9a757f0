//! `import` (Dovecot's `doveadm import`): copy the source's messages into the destination
//! under a parent folder, keeping flags, keywords and received dates, with new UIDs.
//!
//! As in doveadm, a search query ([`SyncOptions::search`]) selects mailboxes and
//! messages, a mailbox the query names without wildcards must exist, and a target folder
//! is only created for a mailbox with at least one message to import.
//!
//! Unlike `doveadm import`, a message already in the target folder (same identity: GUID
//! when both sides have comparable ones, else Dovecot's header hash) is not imported
//! again, so running an import twice does not duplicate mail. Identity is counted: two
//! source copies of a message whose target holds one give one more.

use std::collections::{BTreeMap, BTreeSet};

use super::copy::copy_from_source;
use super::{
    MailboxFailed, Observer, SyncOptions, apply_subscriptions, keep_going_mailbox, local_names,
    note_mailbox_filter,
};
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{MailboxInfo, MailboxName, MessageMeta, Uid};
use crate::plan::MailboxAction;
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
    let use_guids = source.capabilities().message_guids && destination.capabilities().message_guids;
    // What the target holds already, by identity (counted).
    let mut present: BTreeMap<String, usize> = BTreeMap::new();
    let mut uid_next = Uid::MIN;
    if exists || !options.dry_run {
        let target_contents =
            destination.contents(target).map_err(SyncError::at(Side::Destination, target))?;
        uid_next = next_uid(&target_contents);
        for identity in identities(destination, target, &target_contents.messages, use_guids)
            .map_err(SyncError::at(Side::Destination, target))?
            .into_values()
        {
            *present.entry(identity).or_default() += 1;
        }
    }
    let source_identities = identities(
        source,
        source_name,
        &candidates.iter().map(|m| (*m).clone()).collect::<Vec<_>>(),
        use_guids,
    )
    .map_err(SyncError::at(Side::Source, source_name))?;

    // (source UID, metadata under its new UID): both ascend together.
    let mut saves: Vec<(Uid, MessageMeta)> = Vec::new();
    for meta in candidates {
        if let Some(identity) = source_identities.get(&meta.uid)
            && let Some(count) = present.get_mut(identity)
            && *count > 0
        {
            *count -= 1;
            report.skipped += 1;
            continue;
        }
        let mut copy = meta.clone();
        copy.uid = uid_next;
        uid_next = uid_next.next().unwrap_or(uid_next);
        saves.push((meta.uid, copy));
    }
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
        source_name,
        target,
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

fn next_uid(contents: &crate::model::MailboxContents) -> Uid {
    let after_last = contents.messages.iter().map(|m| m.uid).max().and_then(Uid::next);
    after_last.map_or(contents.status.uid_next, |after| contents.status.uid_next.max(after))
}

fn identities(
    storage: &mut dyn Storage,
    mailbox: &MailboxName,
    messages: &[MessageMeta],
    use_guids: bool,
) -> Result<BTreeMap<Uid, String>, StorageError> {
    if use_guids {
        return Ok(messages.iter().filter_map(|m| Some((m.uid, m.guid.clone()?))).collect());
    }
    let uids: Vec<Uid> = messages.iter().map(|m| m.uid).collect();
    if uids.is_empty() {
        return Ok(BTreeMap::new());
    }
    storage.header_hashes(mailbox, &uids)
}
