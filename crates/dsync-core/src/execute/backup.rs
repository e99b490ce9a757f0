//! `backup`: the destination is made identical to the source.

use std::collections::{BTreeMap, BTreeSet};

use super::all_mail::AllMail;
use super::copy::{apply_reverts, copy_save_list_from_source};
use super::header_check::differing_messages;
use super::{
    MailboxFailed, Names, Observer, SyncOptions, apply_subscriptions, checkpoint_failed,
    keep_going, keep_going_mailbox, listing_skips, local_names, note_mailbox_filter,
};
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::model::{Flags, MailboxContents, MailboxName, MailboxStamp, MailboxStatus, Uid};
use crate::plan::backup::plan_delta_in;
use crate::plan::backup::streamed::{
    Compared, Identity, Listed, compare_listed, rebuild_listed, settle,
};
use crate::plan::merge::MergeBase;
use crate::plan::{ComparableGuids, MailboxAction, MailboxPlan, TreePlan, plan_mailbox, plan_tree};
use crate::report::{FilteredMessages, MailboxReport, Report};
use crate::state::{BaseFlags, MailboxState, SyncState};
use crate::storage::{NewMailbox, Storage, StorageMut};

pub(super) fn run(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
    state: &mut SyncState,
) -> Result<(), SyncError> {
    let prepared = prepare(options, source, destination, observer, report, state)?;
    let mut all_mail = prepared.all_mail.clone().map(AllMail::new);
    for (index, job) in prepared.pending.iter().enumerate() {
        // The next mailbox's listing, started ahead when its sync begins with it.
        let next =
            prepared.pending.get(index + 1).filter(|next| listed_first(options, next, state));
        let list_ahead = next.map(|next| &next.source);
        let result = sync_pending(
            options,
            source,
            destination,
            observer,
            job,
            state,
            all_mail.as_mut(),
            list_ahead,
        );
        record(job, result, observer, report, state)?;
    }
    finish(options, destination, &prepared.tree, report)
}

/// A mailbox that changed since the last run (or has no state), to be listed and synced.
#[derive(Debug, Clone)]
pub(super) struct PendingMailbox {
    /// Its name on the source.
    pub(super) source: MailboxName,
    /// Its name on the destination (the key of its state).
    pub(super) destination: MailboxName,
    /// It exists on the destination.
    pub(super) exists: bool,
}

/// The tree is planned and applied up to the per-mailbox work.
pub(super) struct Prepared {
    /// The tree plan (subscriptions are applied by [`finish`]).
    pub(super) tree: TreePlan,
    /// The mailboxes still to sync, in tree order (the all-mail mailbox first); unchanged
    /// ones are already reported.
    pub(super) pending: Vec<PendingMailbox>,
    /// The destination's all-mail mailbox ([`SyncOptions::all_mail`]), when it exists on
    /// either side.
    pub(super) all_mail: Option<MailboxName>,
}

/// Lists both trees, deletes the destination's extra mailboxes and reports every mailbox
/// neither side changed since the last run (two cheap stamps each, no listing).
pub(super) fn prepare(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
    state: &mut SyncState,
) -> Result<Prepared, SyncError> {
    let (source_mailboxes, source_names) = local_names(
        source.mailboxes().map_err(SyncError::global(Side::Source))?,
        destination,
        report,
    );
    let left_out =
        listing_skips(Side::Source, source, &|name| destination.local_name(name), report, state);
    let source_subscriptions: BTreeSet<MailboxName> = source
        .subscriptions()
        .map_err(SyncError::global(Side::Source))?
        .iter()
        .map(|name| destination.local_name(name))
        .collect();
    let destination_mailboxes =
        destination.mailboxes().map_err(SyncError::global(Side::Destination))?;
    let destination_subscriptions =
        destination.subscriptions().map_err(SyncError::global(Side::Destination))?;
    note_mailbox_filter(&options.mailbox_filter, &source_mailboxes, &destination_mailboxes, report);
    let tree = plan_tree(
        &source_mailboxes,
        &source_subscriptions,
        &destination_mailboxes,
        &destination_subscriptions,
        &options.mailbox_filter,
    );
    observer.tree_planned(&tree);
    let all_mail = options.all_mail.as_ref().and_then(|pattern| {
        let found = AllMail::resolve(pattern, &source_mailboxes, &destination_mailboxes);
        if found.is_none() {
            report.warnings.push(format!(
                "-a {pattern}: no such mailbox on either side; every message is transferred"
            ));
        }
        found
    });
    let existing: BTreeSet<MailboxName> =
        destination_mailboxes.into_iter().filter(|m| m.selectable).map(|m| m.name).collect();

    for mailbox in &tree.delete {
        if left_out.contains(mailbox) {
            report.warnings.push(format!(
                "mailbox {mailbox} is kept on the destination: the source left it out (see \
                 skipped), it did not delete it"
            ));
            continue;
        }
        if !options.dry_run {
            let result = destination.delete_mailbox(mailbox);
            if keep_going(result.map_err(SyncError::at(Side::Destination, mailbox)), report)?
                .is_none()
            {
                continue;
            }
        }
        report.deleted_mailboxes.push(mailbox.clone());
        state.mailboxes.remove(mailbox);
    }

    let mut pending = Vec::new();
    for mailbox in &tree.sync {
        let source_name = source_names.get(mailbox).unwrap_or(mailbox);
        let names = Names { source: source_name, destination: mailbox };
        let previous = state.mailboxes.get(mailbox);
        let exists = existing.contains(mailbox);
        if exists && unchanged(source, destination, &names, previous)? {
            observer.mailbox_planned(&MailboxPlan::unchanged(mailbox.clone()));
            let mailbox_report = MailboxReport::new(mailbox.clone(), MailboxAction::Update);
            observer.mailbox_finished(&mailbox_report);
            report.mailboxes.push(mailbox_report);
        } else {
            pending.push(PendingMailbox {
                source: source_name.clone(),
                destination: mailbox.clone(),
                exists,
            });
        }
    }
    // The all-mail mailbox goes first: the others then find their messages in it.
    if let Some(index) = pending.iter().position(|job| Some(&job.destination) == all_mail.as_ref())
    {
        let job = pending.remove(index);
        pending.insert(0, job);
    }
    Ok(Prepared { tree, pending, all_mail })
}

/// Syncs one changed mailbox; `state` holds at least its previous entry. `list_ahead`:
/// the source mailbox whose listing the next sync starts with ([`listed_first`]), for
/// [`Storage::list_ahead`] once this mailbox's messages are copied.
#[allow(clippy::too_many_arguments)]
pub(super) fn sync_pending(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    job: &PendingMailbox,
    state: &mut SyncState,
    all_mail: Option<&mut AllMail>,
    list_ahead: Option<&MailboxName>,
) -> Result<(MailboxReport, Option<MailboxState>), MailboxFailed> {
    super::stop_if_interrupted(observer, &job.destination)?;
    sync_mailbox(options, source, destination, observer, job, state, all_mail, list_ahead)
}

/// The sync of `job` asks the source for its listing first: [`plan_from_changes`] will not
/// plan it from the source's changes (no state for it, a token missing, a mailbox the
/// destination lacks, message filters, a rebuild pending), so [`plan_from_streams`] lists
/// it. Tested before touching either side, as `plan_from_changes` tests it.
fn listed_first(options: &SyncOptions, job: &PendingMailbox, state: &SyncState) -> bool {
    let Some(previous) = state.mailboxes.get(&job.destination) else { return true };
    previous.source_token.is_none()
        || previous.destination_token.is_none()
        || !job.exists
        || !options.message_filter.is_everything()
        || previous.rebuild.is_some()
}

/// Takes a mailbox's outcome into the report and the state; stops the run on an error
/// that is not confined to the mailbox.
pub(super) fn record(
    job: &PendingMailbox,
    result: Result<(MailboxReport, Option<MailboxState>), MailboxFailed>,
    observer: &mut dyn Observer,
    report: &mut Report,
    state: &mut SyncState,
) -> Result<(), SyncError> {
    if let Some((mut mailbox_report, mailbox_state)) = keep_going_mailbox(result, report)? {
        report.warnings.append(&mut mailbox_report.warnings);
        observer.mailbox_finished(&mailbox_report);
        report.mailboxes.push(mailbox_report);
        if let Some(mailbox_state) = mailbox_state {
            state.mailboxes.insert(job.destination.clone(), mailbox_state);
        }
    }
    Ok(())
}

/// Applies the subscription changes and puts the mailbox reports in tree order.
pub(super) fn finish(
    options: &SyncOptions,
    destination: &mut dyn StorageMut,
    tree: &TreePlan,
    report: &mut Report,
) -> Result<(), SyncError> {
    let order: BTreeMap<&MailboxName, usize> =
        tree.sync.iter().enumerate().map(|(index, name)| (name, index)).collect();
    report.mailboxes.sort_by_key(|m| order.get(&m.mailbox).copied().unwrap_or(usize::MAX));
    let changes: Vec<(MailboxName, bool)> = tree
        .subscribe
        .iter()
        .map(|name| (name.clone(), true))
        .chain(tree.unsubscribe.iter().map(|name| (name.clone(), false)))
        .collect();
    apply_subscriptions(options, destination, &changes, report)
}

#[allow(clippy::too_many_arguments)]
fn sync_mailbox(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    job: &PendingMailbox,
    state: &mut SyncState,
    mut all_mail: Option<&mut AllMail>,
    list_ahead: Option<&MailboxName>,
) -> Result<(MailboxReport, Option<MailboxState>), MailboxFailed> {
    let names = &Names { source: &job.source, destination: &job.destination };
    let mailbox = names.destination;
    let planned = match plan_from_changes(options, source, destination, job, state)? {
        Some(planned) => planned,
        None => match plan_from_streams(options, source, destination, job, state)? {
            Some(planned) => planned,
            None => plan_from_listings(options, source, destination, job, state)?,
        },
    };
    let Planned { plan, source_status, base, listed_destination, filtered_messages, believed } =
        planned;
    // What the run records: the source as listed (a change during the copy then shows
    // next time), the destination as listed when nothing is written to it.
    let source_stamp = MailboxStamp::from(&source_status);
    observer.mailbox_planned(&plan);

    if let MailboxAction::Blocked(reason) = &plan.action {
        let message = format!(
            "needs a full rebuild ({reason}), which a run with message filters never does \
             (it would delete mail outside the filter); run once without -t/-e/-I/-O"
        );
        let error = StorageError::new(ErrorKind::InvalidData, message);
        return Err(MailboxFailed::from(SyncError::at(Side::Destination, mailbox)(error)));
    }
    let mut mailbox_report = MailboxReport::new(mailbox.clone(), plan.action.clone());
    mailbox_report.skipped = plan.skipped.len() as u64;
    mailbox_report.filtered = filtered_messages;
    if options.dry_run {
        mailbox_report.count_planned(&plan.save, plan.expunge.len(), plan.set_flags.len());
        return Ok((mailbox_report, None));
    }
    // A run with message filters leaves messages alone on both sides, so its stamps must
    // not let the next run pass over the mailbox as unchanged: that run (without the
    // filters, or with others) has to list it again.
    let filtered = !options.message_filter.is_everything();
    if plan.is_empty() {
        let destination_stamp = match listed_destination {
            Some(stamp) => stamp,
            None => {
                destination.stamp(mailbox).map_err(SyncError::at(Side::Destination, mailbox))?
            }
        };
        let entry = state_entry(base, source_stamp, destination_stamp, filtered);
        return Ok((mailbox_report, Some(entry)));
    }

    let source_uid_validity = source_status.uid_validity;
    let new = if plan.new_uid_validity {
        mailbox_report.warnings.push(format!(
            "mailbox {mailbox}: rebuilt ({}) under a new UIDVALIDITY rather than the \
             source's {source_uid_validity}, under which the destination holds other \
             messages: a UID would otherwise name two different messages; mail clients \
             re-read the folder once",
            rebuild_reason(&plan.action)
        ));
        NewMailbox {
            uid_validity: None,
            guid: source_status.guid,
            source_uid_validity: Some(source_uid_validity),
        }
    } else {
        NewMailbox {
            uid_validity: Some(source_uid_validity),
            guid: source_status.guid,
            source_uid_validity: None,
        }
    };
    // A created or rebuilt mailbox is a new incarnation: its old state entry goes first, so
    // an interrupted run cannot leave a base that no longer describes it.
    if plan.action != MailboxAction::Update && state.mailboxes.remove(mailbox).is_some() {
        observer.forget(mailbox, state).map_err(checkpoint_failed(Some(mailbox)))?;
    }
    let at_destination = SyncError::at(Side::Destination, mailbox);
    let result = match &plan.action {
        MailboxAction::Update => Ok(()),
        MailboxAction::Create => destination.create_mailbox(mailbox, &new),
        MailboxAction::Recreate(_) => destination.recreate_mailbox(mailbox, &new),
        MailboxAction::Blocked(_) => unreachable!("returned above"),
    };
    result.map_err(at_destination)?;
    let source_highest_modseq = source_status.highest_modseq;
    // From here on the mailbox exists as planned: a failure reports what was committed.
    let mut partial = MailboxReport { saved: 0, bytes: 0, ..mailbox_report.clone() };
    let failed =
        |error: SyncError, partial: &MailboxReport| MailboxFailed::after(error, partial.clone());

    let local = match all_mail.as_deref_mut() {
        Some(all_mail) => all_mail
            .find(destination, Side::Destination, plan.save.iter())
            .map_err(|error| failed(error, &partial))?,
        None => None,
    };
    let at_mailbox = |error| SyncError::at(Side::Destination, mailbox)(error);
    let mut writer =
        destination.writer(mailbox).map_err(|error| failed(at_mailbox(error), &partial))?;
    if let Some(guid) = plan.set_guid {
        writer.set_guid(guid).map_err(|error| failed(at_mailbox(error), &partial))?;
    }
    // What the destination's messages carry, so a storage that searches for a message's
    // file (a Maildir) looks under the right name first.
    for (uid, flags) in &believed {
        writer.believe_flags(*uid, flags);
    }
    apply_reverts(&mut *writer, &plan, &mut mailbox_report)
        .map_err(|error| failed(at_mailbox(error), &partial))?;
    partial.expunged = mailbox_report.expunged;
    partial.flags_changed = mailbox_report.flags_changed;
    // The next mailbox's listing may go behind the last fetch when the copy is one
    // fetch (one batch, none of it copied from the all-mail mailbox); not when the run
    // stops before the next mailbox.
    if let Some(next) = list_ahead
        && local.is_none()
        && plan.save.len() <= options.save_batch.max(1)
        && !observer.interrupted()
    {
        source.list_ahead(next, true);
    }
    let copied = copy_save_list_from_source(
        source,
        names,
        &mut *writer,
        observer,
        &plan.save,
        (options.commit_interval, options.save_batch),
        local,
    )
    .map_err(|copy| {
        copy.copied.record_committed_in(&mut partial);
        failed(copy.error, &partial)
    })?;
    // The source is done with this mailbox: it may start the next one's listing (if it
    // did not behind the last fetch) while the destination commits this one.
    if let Some(next) = list_ahead
        && !observer.interrupted()
    {
        source.list_ahead(next, false);
    }
    copied.record_committed_in(&mut partial);
    copied.record_in(&mut mailbox_report);
    // A message that went from the source during the copy is in `base` but not on the
    // destination: the next run must not plan from `base` alone (no source token).
    let vanished = mailbox_report.vanished > 0;
    if let Some(uid_next) = plan.uid_next {
        writer.raise_uid_next(uid_next).map_err(|error| failed(at_mailbox(error), &partial))?;
    }
    if let Some(modseq) = source_highest_modseq {
        writer.raise_highest_modseq(modseq).map_err(|error| failed(at_mailbox(error), &partial))?;
    }
    writer.commit().map_err(|error| failed(at_mailbox(error), &partial))?;
    drop(writer);
    if let Some(all_mail) = all_mail {
        all_mail.changed(mailbox);
    }
    let destination_stamp =
        destination.stamp(mailbox).map_err(|error| failed(at_mailbox(error), &mailbox_report))?;
    let entry = state_entry(base, source_stamp, destination_stamp, filtered || vanished);
    Ok((mailbox_report, Some(entry)))
}

/// A mailbox's plan and what the run records of the listings it came from.
struct Planned {
    plan: MailboxPlan,
    /// The source's status as listed.
    source_status: MailboxStatus,
    /// The base the run records once the plan is applied.
    base: MergeBase,
    /// The destination's stamp as listed, when it was.
    listed_destination: Option<MailboxStamp>,
    filtered_messages: FilteredMessages,
    /// What the messages the plan changes or expunges carry at the destination: as
    /// listed, or as the last run's base recorded them ([`MailboxWriter::believe_flags`]).
    believed: Vec<(Uid, Flags)>,
}

/// Plans from the source's changes since the last run alone, without listing either side
/// ([`plan_delta`]): when the last run was a backup of this mailbox without message filters
/// that left the destination holding its base, the destination has not changed since
/// (its change token), and the source can say what changed ([`Storage::changes_since`]).
/// `None`: plan from the full listings.
fn plan_from_changes(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    job: &PendingMailbox,
    state: &SyncState,
) -> Result<Option<Planned>, MailboxFailed> {
    let mailbox = &job.destination;
    if listed_first(options, job, state) {
        return Ok(None);
    }
    let Some(previous) = state.mailboxes.get(mailbox) else { return Ok(None) };
    let (Some(source_token), Some(destination_token)) =
        (&previous.source_token, &previous.destination_token)
    else {
        return Ok(None);
    };
    let stamp = destination.stamp(mailbox).map_err(SyncError::at(Side::Destination, mailbox))?;
    if stamp.change_token.as_ref() != Some(destination_token) {
        return Ok(None);
    }
    let Some(changes) = source
        .changes_since(&job.source, source_token)
        .map_err(SyncError::at(Side::Source, &job.source))?
    else {
        return Ok(None);
    };
    // Records the state file no longer holds as loaded: planned from the listings, which
    // do not need them.
    // Looked up where they are (stored records are read, not decoded): the few changed
    // UIDs, not every record.
    let Ok(view) = previous.base.flags.view() else { return Ok(None) };
    let numbers = (previous.base.uid_validity, previous.base.last_common_uid);
    let Some(plan) = plan_delta_in(mailbox, numbers, &view, &changes, stamp.guid) else {
        return Ok(None);
    };
    let changed = plan.expunge.iter().chain(plan.set_flags.iter().map(|(uid, _)| uid));
    let mut believed = Vec::new();
    for uid in changed {
        match view.get(*uid) {
            Ok(Some(flags)) => believed.push((*uid, flags)),
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
    }
    // What `base_after` makes of the last base: the vanished records gone, the changed
    // ones as listed.
    let mut patch = BTreeMap::new();
    for &(first, last) in &changes.vanished {
        patch.extend(view.range(first, last).into_iter().map(|uid| (uid, None)));
    }
    patch.extend(changes.changed.iter().map(|meta| (meta.uid, Some(meta.flags.clone()))));
    let Ok(flags) = previous.base.flags.patched(patch, &view) else { return Ok(None) };
    let base = MergeBase {
        uid_validity: changes.status.uid_validity.get(),
        last_common_uid: plan.uid_next.unwrap_or(changes.status.uid_next).get() - 1,
        flags,
    };
    Ok(Some(Planned {
        plan,
        source_status: changes.status,
        base,
        listed_destination: Some(stamp),
        filtered_messages: FilteredMessages::default(),
        believed,
    }))
}

/// Plans from both sides' listings compared as they are read ([`compare_listed`]), so
/// that neither is held whole. `None` when a listing was not in ascending UID order: plan
/// from the whole listings then.
fn plan_from_streams(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    job: &PendingMailbox,
    state: &SyncState,
) -> Result<Option<Planned>, MailboxFailed> {
    let names = &Names { source: &job.source, destination: &job.destination };
    let mailbox = names.destination;
    let guids = ComparableGuids::between(source.capabilities(), destination.capabilities());
    let identity = Identity {
        guids,
        check_hashes: !guids.messages,
        previous: state.mailboxes.get(mailbox).map(|entry| &entry.base),
    };
    let filter = &options.message_filter;
    let (compared, listed_destination) = {
        let from_source = |error| SyncError::at(Side::Source, names.source)(error);
        let from_destination = |error| SyncError::at(Side::Destination, mailbox)(error);
        let theirs = source.listing(names.source).map_err(&from_source)?;
        let ours = if job.exists {
            Some(destination.listing(mailbox).map_err(&from_destination)?)
        } else {
            None
        };
        let listed_destination = ours.as_ref().map(|ours| MailboxStamp::from(&ours.status));
        let theirs = Listed {
            status: theirs.status,
            messages: theirs.messages.map(|m| m.map_err(&from_source)),
        };
        let ours = ours.map(|ours| Listed {
            status: ours.status,
            messages: ours.messages.map(|m| m.map_err(&from_destination)),
        });
        (compare_listed(mailbox, theirs, ours, filter, identity)?, listed_destination)
    };
    let Some(mut compared) = compared else { return Ok(None) };
    if !compared.suspects.is_empty() {
        let differing = differing_messages(source, destination, names, &compared.suspects)?;
        settle(&mut compared, &differing, filter);
    }
    if compared.relist {
        // A rebuild found while comparing: it saves every source message, which the
        // comparison did not keep.
        let from_source = |error| SyncError::at(Side::Source, names.source)(error);
        let listing = source.listing(names.source).map_err(&from_source)?;
        let theirs = Listed {
            status: listing.status,
            messages: listing.messages.map(|m| m.map_err(&from_source)),
        };
        let action = compared.plan.action.clone();
        let new_uid_validity = compared.plan.new_uid_validity;
        match rebuild_listed(mailbox, theirs, action, new_uid_validity, filter)? {
            Some(rebuilt) => compared = rebuilt,
            None => return Ok(None),
        }
    }
    let Compared { plan, source_status, flags, filtered, believed, .. } = compared;
    // After a backup the destination holds the source's messages: that is the base a
    // later `sync -1` starts from. With message filters only part of them, so no base.
    let base = MergeBase {
        uid_validity: source_status.uid_validity.get(),
        last_common_uid: plan.uid_next.unwrap_or(source_status.uid_next).get() - 1,
        flags,
    };
    let filtered_messages = filtered;
    Ok(Some(Planned { plan, source_status, base, listed_destination, filtered_messages, believed }))
}

/// Plans from both sides' full listings ([`plan_mailbox`]).
fn plan_from_listings(
    options: &SyncOptions,
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    job: &PendingMailbox,
    state: &SyncState,
) -> Result<Planned, MailboxFailed> {
    let names = &Names { source: &job.source, destination: &job.destination };
    let mailbox = names.destination;
    let source_contents =
        source.contents(names.source).map_err(SyncError::at(Side::Source, names.source))?;
    let destination_contents: Option<MailboxContents> = if job.exists {
        Some(destination.contents(mailbox).map_err(SyncError::at(Side::Destination, mailbox))?)
    } else {
        None
    };
    let guids = ComparableGuids::between(source.capabilities(), destination.capabilities());
    let differing = match &destination_contents {
        Some(destination_contents) if !guids.messages => {
            let previous = state.mailboxes.get(mailbox).map(|entry| &entry.base);
            let suspects = unconfirmed_uids(
                &source_contents,
                destination_contents,
                previous,
                &options.message_filter,
            );
            differing_messages(source, destination, names, &suspects)?
        }
        _ => BTreeSet::new(),
    };
    let plan = plan_mailbox(
        mailbox,
        &source_contents,
        destination_contents.as_ref(),
        &options.message_filter,
        guids,
        &differing,
    );
    let listed_destination = destination_contents.as_ref().map(|c| MailboxStamp::from(&c.status));
    // The destination's own flags for what the plan changes: exact beliefs.
    let believed = destination_contents.as_ref().map_or_else(Vec::new, |contents| {
        let changed: BTreeSet<Uid> =
            plan.expunge.iter().chain(plan.set_flags.iter().map(|(uid, _)| uid)).copied().collect();
        let listed = contents.messages.iter().filter(|m| changed.contains(&m.uid));
        listed.map(|m| (m.uid, m.flags.clone())).collect()
    });
    drop(destination_contents);
    // After a backup the destination holds the source's messages: that is the base a
    // later `sync -1` starts from. With message filters only part of them, so no base.
    let mut base = MergeBase {
        uid_validity: source_contents.status.uid_validity.get(),
        last_common_uid: plan.uid_next.unwrap_or(source_contents.status.uid_next).get() - 1,
        flags: BaseFlags::new(),
    };
    if options.message_filter.is_everything() {
        base.flags =
            BaseFlags::packed_from(source_contents.messages.iter().map(|m| (m.uid, &m.flags)));
    }
    let filtered_messages =
        FilteredMessages::of(&options.message_filter, &source_contents.messages);
    Ok(Planned {
        plan,
        source_status: source_contents.status,
        base,
        listed_destination,
        filtered_messages,
        believed,
    })
}

fn rebuild_reason(action: &MailboxAction) -> String {
    match action {
        MailboxAction::Recreate(reason) | MailboxAction::Blocked(reason) => reason.to_string(),
        MailboxAction::Update | MailboxAction::Create => String::from("no reason"),
    }
}

/// UIDs both sides hold that no earlier run saw holding the same message: above the last
/// UID the previous run left in common (every common UID without a previous run). Within
/// one UIDVALIDITY a UID names one message, but the destination may have given a UID to
/// a message of its own (a mail client appending to the new server) that the source gave
/// to another: Dovecot compares such messages by their header hash, and so does this.
fn unconfirmed_uids(
    source: &MailboxContents,
    destination: &MailboxContents,
    previous: Option<&MergeBase>,
    filter: &crate::filter::MessageFilter,
) -> Vec<Uid> {
    if !crate::plan::holds_uids_of(&destination.status, &source.status) {
        return Vec::new();
    }
    let confirmed = previous
        .filter(|base| base.uid_validity == source.status.uid_validity.get())
        .map_or(0, |base| base.last_common_uid);
    let held: BTreeSet<Uid> = destination.messages.iter().map(|m| m.uid).collect();
    source
        .messages
        .iter()
        .filter(|m| m.uid.get() > confirmed && held.contains(&m.uid) && filter.wants(m))
        .map(|m| m.uid)
        .collect()
}

/// The state to remember for a synced mailbox: its base and both sides' stamps. With
/// `filtered` (the run had message filters) the source's stamp is left out, so that the
/// next run lists the mailbox again instead of taking it as unchanged.
fn state_entry(
    base: MergeBase,
    source: MailboxStamp,
    destination: MailboxStamp,
    filtered: bool,
) -> MailboxState {
    MailboxState {
        base,
        source_token: if filtered { None } else { source.change_token },
        destination_token: destination.change_token,
        source_guid: source.guid,
        destination_guid: destination.guid,
        rebuild: None,
    }
}

/// True when neither side changed this mailbox since the last run (both change tokens as
/// recorded) and both sides' GUIDs agree: then it needs no listing at all. A destination
/// written by an older version holds a random GUID where the source now derives one from
/// the name; the GUIDs differ until the plan has the destination adopt the source's.
fn unchanged(
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    names: &Names<'_>,
    previous: Option<&MailboxState>,
) -> Result<bool, SyncError> {
    let Some(previous) = previous else { return Ok(false) };
    let (Some(source_token), Some(destination_token)) =
        (&previous.source_token, &previous.destination_token)
    else {
        return Ok(false);
    };
    let now = source.stamp(names.source).map_err(SyncError::at(Side::Source, names.source))?;
    if now.change_token.as_ref() != Some(source_token) {
        return Ok(false);
    }
    let source_guid = now.guid;
    let now = destination
        .stamp(names.destination)
        .map_err(SyncError::at(Side::Destination, names.destination))?;
    let guids_differ = matches!((source_guid, now.guid), (Some(a), Some(b)) if a != b);
    Ok(now.change_token.as_ref() == Some(destination_token) && !guids_differ)
}
