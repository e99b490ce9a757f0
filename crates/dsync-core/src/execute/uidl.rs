//! `backup` and `sync -1` from a source whose UIDs are only positions (POP3): messages are
//! matched by UIDL ([`crate::plan::identity`]), and each saved message records its UIDL and
//! POP3 order so the destination's POP3 server lists the same UIDLs in the same order.

use std::collections::BTreeSet;

use super::copy::copy_from_source;
use super::{Observer, SyncOptions, apply_subscriptions, keep_going, local_names};
use crate::error::{Side, StorageError, SyncError};
use crate::model::{MailboxName, MessageMeta, Uid};
use crate::plan::MailboxAction;
use crate::plan::identity::{origins, plan_by_uidl};
use crate::report::{MailboxReport, Report};
use crate::storage::{NewMailbox, Storage, StorageMut};

fn at(side: Side, mailbox: &MailboxName) -> impl FnOnce(StorageError) -> SyncError + '_ {
    move |error| SyncError { side, mailbox: Some(mailbox.clone()), error }
}

pub(super) fn run(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
    expunge_missing: bool,
) -> Result<(), SyncError> {
    let global = |side: Side| move |error: StorageError| SyncError { side, mailbox: None, error };
    let (mailboxes, source_names) =
        local_names(source.mailboxes().map_err(global(Side::Source))?, destination, report);
    let existing: BTreeSet<MailboxName> = destination
        .mailboxes()
        .map_err(global(Side::Destination))?
        .into_iter()
        .filter(|m| m.selectable)
        .map(|m| m.name)
        .collect();
    for info in mailboxes
        .iter()
        .filter(|m| m.selectable && options.mailbox_filter.wants(&m.name, &m.special_use))
    {
        let source_name = source_names.get(&info.name).unwrap_or(&info.name);
        let result = sync_mailbox(
            options,
            source,
            destination,
            observer,
            source_name,
            &info.name,
            existing.contains(&info.name),
            expunge_missing,
        );
        if let Some(mailbox_report) = keep_going(result, report)? {
            observer.mailbox_finished(&mailbox_report);
            report.mailboxes.push(mailbox_report);
        }
    }
    let wanted_subscriptions = source.subscriptions().map_err(global(Side::Source))?;
    let have = destination.subscriptions().map_err(global(Side::Destination))?;
    let subscribe: Vec<(MailboxName, bool)> = wanted_subscriptions
        .iter()
        .map(|name| destination.local_name(name))
        .filter(|name| !have.contains(name) && options.mailbox_filter.wants(name, &[]))
        .map(|name| (name, true))
        .collect();
    apply_subscriptions(options, destination, &subscribe, report)
}

#[allow(clippy::too_many_arguments)]
fn sync_mailbox(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    source_name: &MailboxName,
    target: &MailboxName,
    exists: bool,
    expunge_missing: bool,
) -> Result<MailboxReport, SyncError> {
    let source_contents = source.contents(source_name).map_err(at(Side::Source, source_name))?;
    let destination_contents = if exists {
        Some(destination.contents(target).map_err(at(Side::Destination, target))?)
    } else {
        None
    };
    let plan = plan_by_uidl(
        target,
        &source_contents,
        destination_contents.as_ref(),
        &options.message_filter,
        expunge_missing,
    );
    observer.mailbox_planned(&plan);
    let mut report = MailboxReport::new(target.clone(), plan.action.clone());
    if options.dry_run {
        report.saved = plan.save.len() as u64;
        report.bytes = plan.save.iter().filter_map(|m| m.virtual_size).sum();
        report.expunged = plan.expunge.len() as u64;
        return Ok(report);
    }
    if plan.action == MailboxAction::Create {
        // No UIDVALIDITY to keep: POP3 clients never saw one. The destination allocates it.
        // The GUID is the one Dovecot's pop3c derives, so doveadm agrees with it.
        let new = NewMailbox { uid_validity: None, guid: source_contents.status.guid };
        destination.create_mailbox(target, &new).map_err(at(Side::Destination, target))?;
    }
    let origins = origins(&plan, &source_contents);
    let mut writer = destination.writer(target).map_err(at(Side::Destination, target))?;
    if let Some(guid) = plan.set_guid {
        writer.set_guid(guid).map_err(at(Side::Destination, target))?;
    }
    if !plan.expunge.is_empty() {
        writer.expunge(&plan.expunge).map_err(at(Side::Destination, target))?;
        writer.commit().map_err(at(Side::Destination, target))?;
        report.expunged = plan.expunge.len() as u64;
    }
    // Saves ascend by destination UID; their source positions ascend with POP3 order.
    let run: Vec<(Uid, &MessageMeta)> = origins.iter().copied().zip(plan.save.iter()).collect();
    let copied = copy_from_source(
        source,
        source_name,
        target,
        &mut *writer,
        observer,
        &run,
        options.commit_interval,
        None,
    )?;
    writer.commit().map_err(at(Side::Destination, target))?;
    copied.record_in(&mut report);
    Ok(report)
}
