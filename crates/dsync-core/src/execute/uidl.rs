//! `backup` and `sync -1` from a source whose UIDs are only positions (POP3): messages are
//! matched by UIDL ([`crate::plan::uidl`]), and each saved message records its UIDL and
//! POP3 order so the destination's POP3 server lists the same UIDLs in the same order.

use std::collections::BTreeSet;

use super::copy::copy_from_source;
use super::{
    MailboxFailed, Names, Observer, SyncOptions, apply_subscriptions, keep_going_mailbox,
    local_names, note_mailbox_filter,
};
use crate::error::{Side, StorageError, SyncError};
use crate::model::{MailboxName, MessageMeta, Uid};
use crate::plan::MailboxAction;
use crate::plan::uidl::{duplicate_uidls, plan_by_uidl};
use crate::report::{FilteredMessages, MailboxReport, Report};
use crate::storage::{NewMailbox, Storage, StorageMut};

pub(super) fn run(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
    expunge_missing: bool,
) -> Result<(), SyncError> {
    let (mailboxes, source_names) = local_names(
        source.mailboxes().map_err(SyncError::global(Side::Source))?,
        destination,
        report,
    );
    let destination_mailboxes =
        destination.mailboxes().map_err(SyncError::global(Side::Destination))?;
    note_mailbox_filter(&options.mailbox_filter, &mailboxes, &destination_mailboxes, report);
    let existing: BTreeSet<MailboxName> =
        destination_mailboxes.into_iter().filter(|m| m.selectable).map(|m| m.name).collect();
    for info in mailboxes
        .iter()
        .filter(|m| m.selectable && options.mailbox_filter.wants(&m.name, &m.special_use))
    {
        super::stop_if_interrupted(observer, &info.name)?;
        let source_name = source_names.get(&info.name).unwrap_or(&info.name);
        let names = Names { source: source_name, destination: &info.name };
        let exists = existing.contains(&info.name);
        let result =
            sync_mailbox(options, source, destination, observer, &names, exists, expunge_missing);
        if let Some(mut mailbox_report) = keep_going_mailbox(result, report)? {
            report.warnings.append(&mut mailbox_report.warnings);
            observer.mailbox_finished(&mailbox_report);
            report.mailboxes.push(mailbox_report);
        }
    }
    let wanted_subscriptions = source.subscriptions().map_err(SyncError::global(Side::Source))?;
    let have = destination.subscriptions().map_err(SyncError::global(Side::Destination))?;
    let subscribe: Vec<(MailboxName, bool)> = wanted_subscriptions
        .iter()
        .map(|name| destination.local_name(name))
        .filter(|name| !have.contains(name) && options.mailbox_filter.wants(name, &[]))
        .map(|name| (name, true))
        .collect();
    apply_subscriptions(options, destination, &subscribe, report)
}

fn sync_mailbox(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    names: &Names<'_>,
    exists: bool,
    expunge_missing: bool,
) -> Result<MailboxReport, MailboxFailed> {
    let (source_name, target) = (names.source, names.destination);
    let source_contents =
        source.contents(source_name).map_err(SyncError::at(Side::Source, source_name))?;
    let destination_contents = if exists {
        Some(destination.contents(target).map_err(SyncError::at(Side::Destination, target))?)
    } else {
        None
    };
    let (plan, origins) = plan_by_uidl(
        target,
        &source_contents,
        destination_contents.as_ref(),
        &options.message_filter,
        expunge_missing,
    );
    observer.mailbox_planned(&plan);
    let mut report = MailboxReport::new(target.clone(), plan.action.clone());
    report.filtered = FilteredMessages::of(&options.message_filter, &source_contents.messages);
    for (uidl, count) in duplicate_uidls(&source_contents) {
        report.warnings.push(format!(
            "mailbox {target}: the source lists {count} messages with the POP3 UIDL {uidl:?}; \
             all are kept (as Dovecot does), matched with the destination's in their order"
        ));
    }
    if options.dry_run {
        report.count_planned(&plan.save, plan.expunge.len(), plan.set_flags.len());
        return Ok(report);
    }
    if plan.action == MailboxAction::Create {
        // No UIDVALIDITY to keep: POP3 clients never saw one. The destination allocates it.
        // The GUID is the one Dovecot's pop3c derives, so doveadm agrees with it.
        let new = NewMailbox {
            uid_validity: None,
            guid: source_contents.status.guid,
            source_uid_validity: None,
        };
        destination
            .create_mailbox(target, &new)
            .map_err(SyncError::at(Side::Destination, target))?;
    }
    // From here on a failure reports what was committed (the mailbox exists).
    let failed = |error: StorageError, partial: &MailboxReport| {
        MailboxFailed::after(SyncError::at(Side::Destination, target)(error), partial.clone())
    };
    let mut writer = destination.writer(target).map_err(|error| failed(error, &report))?;
    if let Some(guid) = plan.set_guid {
        writer.set_guid(guid).map_err(|error| failed(error, &report))?;
    }
    if !plan.expunge.is_empty() {
        writer.expunge(&plan.expunge).map_err(|error| failed(error, &report))?;
        writer.commit().map_err(|error| failed(error, &report))?;
        report.expunged = plan.expunge.len() as u64;
    }
    // Saves ascend by destination UID; their source positions ascend with POP3 order.
    let saves: Vec<MessageMeta> = plan.save.iter().collect();
    let run: Vec<(Uid, &MessageMeta)> = origins.iter().copied().zip(&saves).collect();
    let copied = copy_from_source(
        source,
        names,
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
    Ok(report)
}
