//! `backup`: the destination is made identical to the source.

use std::collections::BTreeSet;

use super::copy::{apply_reverts, copy_messages};
use super::{Names, Observer, SyncOptions, at, keep_going, local_names};
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{MailboxContents, MailboxName};
use crate::plan::{MailboxAction, plan_mailbox, plan_tree};
use crate::report::{MailboxReport, Report};
use crate::storage::{NewMailbox, Storage, StorageMut};

pub(super) fn run(
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
