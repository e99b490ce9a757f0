//! `sync -1` (one-way merge into B) and `sync` (two-way): see [`crate::plan::merge`].
//!
//! Mailbox tree rules: a mailbox on both sides is merged. One that only A has is created
//! on B, unless saved state shows B had it and deleted it (one-way: B's delete stays;
//! two-way: the delete travels to A, but only if A did not change the mailbox since, else
//! it is recreated on B so no mail is lost). One that only B has: if saved state shows A
//! had it, A deleted it and the delete travels to B under the same condition (both
//! modes); otherwise it is B's own, kept in one-way mode and created on A in two-way mode.
//! A mailbox renamed on one side since the last merge is renamed on the other too (see
//! [`super::rename`]). Subscriptions: each side's changes since the last merge travel (see
//! [`sync_subscriptions`]). INBOX is never deleted.

use std::collections::{BTreeMap, BTreeSet};

use super::all_mail::AllMail;
use super::copy::{Copied, CopyFailed, CopyRoute, Fetch, LocalCopies, copy_messages};
use super::rename::{ListedMailboxes, follow_renames};
use super::{
    MailboxFailed, Observer, SyncOptions, keep_going_mailbox, local_names, message_identities,
    note_mailbox_filter,
};
use crate::error::{Side, StorageError, SyncError};
use crate::model::{
    MailboxContents, MailboxGuid, MailboxName, MailboxStamp, MessageMeta, SpecialUse, Uid,
};
use crate::plan::merge::{
    MergeBase, MergeMode, MergeSave, MergeView, Origin, SidePlan, plan_merge,
};
use crate::plan::{ComparableGuids, MailboxAction, RecreateReason};
use crate::report::{MailboxReport, Report};
use crate::state::{MailboxState, SyncState};
use crate::storage::{MessageSink, NewMailbox, Storage, StorageMut};

/// How a merge may touch its source (side A): only read it (`sync -1`) or write it too
/// (`sync`). The destination (side B) is always written.
pub(super) enum MergeSource<'a> {
    ReadOnly(&'a mut dyn Storage),
    Writable(&'a mut dyn StorageMut),
}

impl MergeSource<'_> {
    pub(super) fn storage(&mut self) -> &mut dyn Storage {
        match self {
            MergeSource::ReadOnly(storage) => *storage,
            MergeSource::Writable(storage) => *storage,
        }
    }

    pub(super) fn mode(&self) -> MergeMode {
        match self {
            MergeSource::ReadOnly(_) => MergeMode::OneWay,
            MergeSource::Writable(_) => MergeMode::TwoWay,
        }
    }
}

pub(super) fn run(
    options: &SyncOptions,
    mut a: MergeSource<'_>,
    b: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
    state: &mut SyncState,
) -> Result<(), SyncError> {
    let (a_mailboxes, a_names) =
        local_names(a.storage().mailboxes().map_err(SyncError::global(Side::Source))?, &*b, report);
    let a_subscriptions: BTreeSet<MailboxName> = a
        .storage()
        .subscriptions()
        .map_err(SyncError::global(Side::Source))?
        .iter()
        .map(|n| b.local_name(n))
        .collect();
    let a_left_out = {
        let local = |name: &MailboxName| b.local_name(name);
        super::listing_skips(Side::Source, a.storage(), &local, report, state)
    };
    let b_mailboxes = b.mailboxes().map_err(SyncError::global(Side::Destination))?;
    let b_left_out = super::listing_skips(Side::Destination, b, &MailboxName::clone, report, state);
    let b_subscriptions = b.subscriptions().map_err(SyncError::global(Side::Destination))?;
    if a.mode() == MergeMode::TwoWay {
        // Both sides are sources of a two-way merge.
        let mut both = a_mailboxes.clone();
        both.extend(
            b_mailboxes.iter().filter(|m| !a_mailboxes.iter().any(|a| a.name == m.name)).cloned(),
        );
        note_mailbox_filter(&options.mailbox_filter, &both, &[], report);
    } else {
        note_mailbox_filter(&options.mailbox_filter, &a_mailboxes, &b_mailboxes, report);
    }

    // Special-use roles by name, from both sides, looked up per name (a scan of both
    // lists per name made thousands of mailboxes quadratic).
    let mut roles: BTreeMap<&MailboxName, Vec<SpecialUse>> = BTreeMap::new();
    for info in a_mailboxes.iter().chain(&b_mailboxes) {
        roles.entry(&info.name).or_default().extend(info.special_use.iter().copied());
    }
    let wanted = |name: &MailboxName| {
        options.mailbox_filter.wants(name, roles.get(name).map_or(&[][..], Vec::as_slice))
    };
    let selectable = |list: &[crate::model::MailboxInfo]| -> BTreeSet<MailboxName> {
        list.iter().filter(|m| m.selectable && wanted(&m.name)).map(|m| m.name.clone()).collect()
    };
    let (mut in_a, mut in_b) = (selectable(&a_mailboxes), selectable(&b_mailboxes));
    let mode = a.mode();
    let mut listed = ListedMailboxes { in_a: &mut in_a, in_b: &mut in_b, a_names: &a_names };
    follow_renames(options, &mut a, b, &mut listed, state, report, observer);

    let mut all_mail = options
        .all_mail
        .as_ref()
        .and_then(|pattern| AllMail::resolve(pattern, &a_mailboxes, &b_mailboxes))
        .map(AllMail::new);
    // The all-mail mailbox goes first: the others then find their messages in it.
    let mut names: Vec<MailboxName> = in_a.union(&in_b).cloned().collect();
    if let Some(index) =
        all_mail.as_ref().and_then(|all| names.iter().position(|n| n == all.mailbox()))
    {
        let all = names.remove(index);
        names.insert(0, all);
    }
    for name in &names {
        super::stop_if_interrupted(observer, name)?;
        let a_name = match (a_names.get(name), &a) {
            (Some(original), _) => original.clone(),
            (None, MergeSource::Writable(a)) => a.local_name(name),
            (None, MergeSource::ReadOnly(_)) => name.clone(),
        };
        // A side whose listing left the mailbox out did not delete it: nothing is done
        // about it until it is listed again.
        if a_left_out.contains(name) || b_left_out.contains(name) {
            continue;
        }
        let previous = state.mailboxes.get(name).cloned();
        let result = match (in_a.contains(name), in_b.contains(name)) {
            (true, true) => merge_mailbox(
                options,
                &mut a,
                b,
                observer,
                &a_name,
                name,
                previous.as_ref(),
                None,
                state,
                all_mail.as_mut(),
            ),
            (true, false) => {
                // B lacks it. Deleted there since the last sync, or new on A?
                match (&previous, mode) {
                    // An interrupted rebuild of B left it missing: create it.
                    (Some(seen), _) if seen.rebuild.is_some() => merge_mailbox(
                        options,
                        &mut a,
                        b,
                        observer,
                        &a_name,
                        name,
                        None,
                        Some(Side::Destination),
                        state,
                        all_mail.as_mut(),
                    ),
                    (Some(_), MergeMode::OneWay) => continue, // B's delete stays
                    (Some(seen), MergeMode::TwoWay)
                        if !name.is_inbox()
                            && unchanged(a.storage(), &a_name, seen.source_token.as_deref()) =>
                    {
                        delete(&mut a, &a_name, report, state, name, options.dry_run);
                        continue;
                    }
                    _ => merge_mailbox(
                        options,
                        &mut a,
                        b,
                        observer,
                        &a_name,
                        name,
                        None,
                        Some(Side::Destination),
                        state,
                        all_mail.as_mut(),
                    ),
                }
            }
            (false, true) => match (&previous, &mut a) {
                // An interrupted rebuild of A left it missing: create it.
                (Some(seen), MergeSource::Writable(_)) if seen.rebuild.is_some() => merge_mailbox(
                    options,
                    &mut a,
                    b,
                    observer,
                    &a_name,
                    name,
                    None,
                    Some(Side::Source),
                    state,
                    all_mail.as_mut(),
                ),
                // Synced before and gone from A since: A deleted it. The delete travels if
                // B did not change the mailbox meanwhile (else nothing of B's is lost).
                (Some(seen), _)
                    if !name.is_inbox()
                        && unchanged(b, name, seen.destination_token.as_deref()) =>
                {
                    if !options.dry_run {
                        if let Err(error) = b.delete_mailbox(name) {
                            report.failures.push(SyncError::at(Side::Destination, name)(error));
                            continue;
                        }
                        state.mailboxes.remove(name);
                    }
                    report.deleted_mailboxes.push(name.clone());
                    continue;
                }
                (_, MergeSource::ReadOnly(_)) => continue, // a destination-only mailbox stays
                _ => merge_mailbox(
                    options,
                    &mut a,
                    b,
                    observer,
                    &a_name,
                    name,
                    None,
                    Some(Side::Source),
                    state,
                    all_mail.as_mut(),
                ),
            },
            (false, false) => continue,
        };
        if let Some((mailbox_report, mailbox_state)) = keep_going_mailbox(result, report)? {
            observer.mailbox_finished(&mailbox_report);
            report.mailboxes.push(mailbox_report);
            state.mailboxes.insert(name.clone(), mailbox_state);
        }
    }

    sync_subscriptions(
        options,
        &mut a,
        b,
        report,
        state,
        &a_subscriptions,
        &b_subscriptions,
        &wanted,
    )
}

/// What a side subscribed or unsubscribed since the last merge travels to the other side
/// (one-way: only A's changes, B's own stay). Both sides changed a name differently, or it
/// differs for no recorded reason (no state yet): subscribed wins — a hidden folder is
/// worse than an extra one in a folder list.
#[allow(clippy::too_many_arguments)]
fn sync_subscriptions(
    options: &SyncOptions,
    a: &mut MergeSource<'_>,
    b: &mut dyn StorageMut,
    report: &mut Report,
    state: &mut SyncState,
    a_now: &BTreeSet<MailboxName>,
    b_now: &BTreeSet<MailboxName>,
    wanted: &dyn Fn(&MailboxName) -> bool,
) -> Result<(), SyncError> {
    let mode = a.mode();
    let (mut a_final, mut b_final) = (a_now.clone(), b_now.clone());
    let names: BTreeSet<&MailboxName> = a_now
        .iter()
        .chain(b_now)
        .chain(&state.subscribed_source)
        .chain(&state.subscribed_destination)
        .filter(|n| wanted(n))
        .collect();
    let (mut a_changes, mut b_changes) = (Vec::new(), Vec::new());
    for name in names {
        let (in_a, in_b) = (a_now.contains(name), b_now.contains(name));
        if in_a == in_b {
            continue;
        }
        let a_changed = in_a != state.subscribed_source.contains(name);
        let b_changed = in_b != state.subscribed_destination.contains(name);
        let target = match (a_changed, b_changed, mode) {
            (true, false, _) => in_a,
            (false, true, _) => in_b,
            // One-way and nothing new on A: B's difference is B's own.
            (false, false, MergeMode::OneWay) => continue,
            _ => true,
        };
        if in_b != target {
            b_changes.push((name.clone(), target));
        }
        if in_a != target && matches!(a, MergeSource::Writable(_)) {
            a_changes.push((name.clone(), target));
        }
    }
    // All of a side's changes in one go (one write of a Maildir's file, not one per name).
    if !options.dry_run {
        let sent = b_changes.clone();
        let refused =
            b.update_subscriptions(&sent).map_err(SyncError::global(Side::Destination))?;
        drop_refused(&mut b_changes, &sent, refused, Side::Destination, report);
        if let MergeSource::Writable(a) = a {
            let sent: Vec<(MailboxName, bool)> =
                a_changes.iter().map(|(name, on)| (a.local_name(name), *on)).collect();
            let refused = a.update_subscriptions(&sent).map_err(SyncError::global(Side::Source))?;
            drop_refused(&mut a_changes, &sent, refused, Side::Source, report);
        }
    }
    for (name, target) in &b_changes {
        count(report, *target);
        set_member(&mut b_final, name, *target);
    }
    for (name, target) in &a_changes {
        count(report, *target);
        set_member(&mut a_final, name, *target);
    }
    if !options.dry_run {
        // Names outside the filter keep what was recorded for them.
        let record = |recorded: &BTreeSet<MailboxName>, now: BTreeSet<MailboxName>| {
            recorded
                .iter()
                .filter(|n| !wanted(n))
                .cloned()
                .chain(now.into_iter().filter(|n| wanted(n)))
                .collect()
        };
        state.subscribed_source = record(&state.subscribed_source, a_final);
        state.subscribed_destination = record(&state.subscribed_destination, b_final);
    }
    Ok(())
}

/// Leaves out of `changes` those whose name as `sent` to the storage (same order) was
/// refused, and records each refusal as a failure of its name on `side`.
fn drop_refused(
    changes: &mut Vec<(MailboxName, bool)>,
    sent: &[(MailboxName, bool)],
    refused: Vec<(MailboxName, StorageError)>,
    side: Side,
    report: &mut Report,
) {
    let refused_names: BTreeSet<&MailboxName> = refused.iter().map(|(name, _)| name).collect();
    let mut kept = sent.iter().map(|(name, _)| !refused_names.contains(name));
    changes.retain(|_| kept.next().unwrap_or(true));
    for (name, error) in refused {
        report.failures.push(SyncError::at(side, &name)(error));
    }
}

fn count(report: &mut Report, subscribed: bool) {
    if subscribed {
        report.subscribed += 1;
    } else {
        report.unsubscribed += 1;
    }
}

fn set_member(set: &mut BTreeSet<MailboxName>, name: &MailboxName, member: bool) {
    if member {
        set.insert(name.clone());
    } else {
        set.remove(name);
    }
}

/// True when `storage`'s mailbox has the change token recorded at the last sync.
fn unchanged(storage: &mut dyn Storage, mailbox: &MailboxName, recorded: Option<&str>) -> bool {
    let Some(recorded) = recorded else { return false };
    storage.stamp(mailbox).ok().and_then(|s| s.change_token).as_deref() == Some(recorded)
}

fn delete(
    a: &mut MergeSource<'_>,
    a_name: &MailboxName,
    report: &mut Report,
    state: &mut SyncState,
    name: &MailboxName,
    dry_run: bool,
) {
    if dry_run {
        report.deleted_mailboxes.push(a_name.clone());
        return;
    }
    if let MergeSource::Writable(a) = a {
        match a.delete_mailbox(a_name) {
            Ok(()) => {
                report.deleted_mailboxes.push(a_name.clone());
                state.mailboxes.remove(name);
            }
            Err(error) => {
                report.failures.push(SyncError::at(Side::Source, a_name)(error));
            }
        }
    }
}

/// Merges one mailbox; `create_on` names the side where it does not exist yet.
#[allow(clippy::too_many_arguments)]
fn merge_mailbox(
    options: &SyncOptions,
    a: &mut MergeSource<'_>,
    b: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    a_name: &MailboxName,
    b_name: &MailboxName,
    previous: Option<&MailboxState>,
    create_on: Option<Side>,
    state: &mut SyncState,
    all_mail: Option<&mut AllMail>,
) -> Result<(MailboxReport, MailboxState), MailboxFailed> {
    // Creating or re-creating a mailbox on a side, or changing a side's UIDVALIDITY, starts
    // a new incarnation that the saved base does not describe. Its entry goes first, so a
    // run that dies halfway cannot leave a base that makes the next run take missing mail
    // for expunged mail. (A half-applied ordinary merge leaves a base that stays true.)
    let forget = |state: &mut SyncState, observer: &mut dyn Observer| {
        if !options.dry_run && state.mailboxes.remove(b_name).is_some() {
            observer.forget(b_name, state);
        }
    };
    let mode = a.mode();
    // Neither side changed since the last sync: nothing to list.
    if let Some(previous) = previous
        && create_on.is_none()
        && unchanged(a.storage(), a_name, previous.source_token.as_deref())
        && unchanged(b, b_name, previous.destination_token.as_deref())
    {
        return Ok((MailboxReport::new(b_name.clone(), MailboxAction::Update), previous.clone()));
    }
    let mut action = MailboxAction::Update;
    if create_on.is_some() {
        forget(state, observer);
    }
    match create_on {
        Some(Side::Destination) => {
            let status = a.storage().status(a_name).map_err(SyncError::at(Side::Source, a_name))?;
            if !options.dry_run {
                let new = NewMailbox {
                    uid_validity: Some(status.uid_validity),
                    guid: status.guid,
                    source_uid_validity: None,
                };
                b.create_mailbox(b_name, &new).map_err(SyncError::at(Side::Destination, b_name))?;
            }
            action = MailboxAction::Create;
        }
        Some(Side::Source) => {
            let status = b.status(b_name).map_err(SyncError::at(Side::Destination, b_name))?;
            if let MergeSource::Writable(a) = a
                && !options.dry_run
            {
                let new = NewMailbox {
                    uid_validity: Some(status.uid_validity),
                    guid: status.guid,
                    source_uid_validity: None,
                };
                a.create_mailbox(a_name, &new).map_err(SyncError::at(Side::Source, a_name))?;
            }
            action = MailboxAction::Create;
        }
        None => {}
    }
    let mut a_contents = contents_or_empty(
        a.storage(),
        a_name,
        options.dry_run && create_on == Some(Side::Source),
        b,
        b_name,
    )
    .map_err(SyncError::at(Side::Source, a_name))?;
    let mut b_contents = match (create_on, options.dry_run) {
        (Some(Side::Destination), true) => empty_like(&a_contents),
        _ => b.contents(b_name).map_err(SyncError::at(Side::Destination, b_name))?,
    };
    // A side a backup rebuilt under a UIDVALIDITY of its own holds the other side's UIDs:
    // it is merged as if it had the other's (going back to it would give UIDs out twice).
    stand_in(&mut b_contents, &a_contents.status);
    stand_in(&mut a_contents, &b_contents.status);
    // A new incarnation on one side (deleted and created again since the last sync: its
    // UIDVALIDITY or GUID changed) replaces the other side's copy if that side did not
    // change since; when both changed they are merged, so nothing is lost. A rebuild is
    // announced in the saved state first (a checkpoint), so a run killed halfway finishes
    // it next time instead of reading a half-rebuilt mailbox.
    // Only persistent GUIDs tell incarnations apart: one an IMAP source derives from the
    // name stays the same when the mailbox is deleted and created again (its UIDVALIDITY
    // tells then), and changes with the derivation's inputs (the server's separator), not
    // with the mailbox.
    let (a_keeps, b_keeps) =
        (a.storage().capabilities().mailbox_guids, b.capabilities().mailbox_guids);
    let a_guid = a_contents.status.guid.filter(|_| a_keeps);
    let b_guid = b_contents.status.guid.filter(|_| b_keeps);
    let mut rebuild: Option<Side> = None;
    if let Some(previous) = previous
        && !options.dry_run
    {
        let old = previous.base.uid_validity;
        let (a_validity, b_validity) =
            (a_contents.status.uid_validity, b_contents.status.uid_validity);
        if let Some(side) = previous.rebuild {
            // An interrupted rebuild: finish it while its source is still the same.
            let (from, to) = match side {
                Side::Destination => (a_validity, b_validity),
                Side::Source => (b_validity, a_validity),
            };
            if from.get() == old && to.get() != old {
                rebuild = Some(side);
            }
        } else {
            let a_new = a_validity.get() != old || changed_guid(previous.source_guid, a_guid);
            let b_new = b_validity.get() != old || changed_guid(previous.destination_guid, b_guid);
            let untouched = |token: &Option<String>, recorded: &Option<String>| {
                token.is_some() && token == recorded
            };
            let a_untouched = untouched(&a_contents.status.change_token, &previous.source_token);
            let b_untouched =
                untouched(&b_contents.status.change_token, &previous.destination_token);
            if a_new && !b_new && b_untouched {
                rebuild = Some(Side::Destination);
            } else if mode == MergeMode::TwoWay && b_new && !a_new && a_untouched {
                rebuild = Some(Side::Source);
            }
        }
    }
    if let Some(side) = rebuild {
        let (model, new_validity) = match side {
            Side::Destination => (&a_contents.status, a_contents.status.uid_validity),
            Side::Source => (&b_contents.status, b_contents.status.uid_validity),
        };
        let new = NewMailbox {
            uid_validity: Some(new_validity),
            guid: model.guid,
            source_uid_validity: None,
        };
        let announced = MailboxState {
            base: MergeBase { uid_validity: new_validity.get(), ..MergeBase::default() },
            rebuild: Some(side),
            ..MailboxState::default()
        };
        state.mailboxes.insert(b_name.clone(), announced);
        observer.checkpoint(state);
        action = MailboxAction::Recreate(RecreateReason::UidValidityChanged {
            source: a_contents.status.uid_validity,
            destination: b_contents.status.uid_validity,
        });
        match (side, &mut *a) {
            (Side::Destination, _) => {
                b.recreate_mailbox(b_name, &new)
                    .map_err(SyncError::at(Side::Destination, b_name))?;
                b_contents =
                    b.contents(b_name).map_err(SyncError::at(Side::Destination, b_name))?;
            }
            (Side::Source, MergeSource::Writable(a)) => {
                a.recreate_mailbox(a_name, &new).map_err(SyncError::at(Side::Source, a_name))?;
                a_contents = a.contents(a_name).map_err(SyncError::at(Side::Source, a_name))?;
            }
            (Side::Source, MergeSource::ReadOnly(_)) => {}
        }
    }
    let previous = previous.filter(|p| rebuild.is_none() && p.rebuild.is_none());
    // The saved base applies only to the same incarnations it was made with.
    let base = previous
        .filter(|p| {
            !changed_guid(p.source_guid, a_guid) && !changed_guid(p.destination_guid, b_guid)
        })
        .map(|p| &p.base)
        .filter(|base| {
            base.uid_validity == a_contents.status.uid_validity.get()
                && base.uid_validity == b_contents.status.uid_validity.get()
        });

    // Identities: GUIDs when both sides keep comparable ones, else Dovecot header hashes,
    // needed only for messages not already known to be common.
    let guids = ComparableGuids::between(a.storage().capabilities(), b.capabilities());
    let known = |uid: &Uid| base.is_some_and(|base| base.flags.contains_key(uid));
    let wanted = |meta: &&MessageMeta| guids.messages || !known(&meta.uid);
    let a_identities = message_identities(
        a.storage(),
        a_name,
        a_contents.messages.iter().filter(wanted),
        guids.messages,
    )
    .map_err(SyncError::at(Side::Source, a_name))?;
    let b_identities =
        message_identities(b, b_name, b_contents.messages.iter().filter(wanted), guids.messages)
            .map_err(SyncError::at(Side::Destination, b_name))?;
    let plan = plan_merge(
        mode,
        MergeView { contents: &a_contents, identities: &a_identities },
        MergeView { contents: &b_contents, identities: &b_identities },
        base,
    );
    drop((a_identities, b_identities));

    if plan.a.set_uid_validity.is_some() || plan.b.set_uid_validity.is_some() {
        forget(state, observer);
    }
    let mut report = MailboxReport::new(b_name.clone(), action);
    if options.dry_run {
        let saves = plan.b.save.iter().map(|save| &save.meta);
        report.count_planned(saves, plan.b.expunge.len(), plan.b.set_flags.len());
        report.source_changes =
            (plan.a.save.len() + plan.a.expunge.len() + plan.a.set_flags.len()) as u64;
        let state = previous.cloned().unwrap_or_default();
        return Ok((report, state));
    }

    // B first (in one-way mode the only side), then A. A's copies name B's messages by
    // their UIDs before the sync; B's renumbering has moved some of them since.
    let commit_interval = options.commit_interval;
    let no_moves = BTreeMap::new();
    {
        let a_storage = a.storage();
        let counts = apply_side(
            b,
            b_name,
            Side::Destination,
            a_storage,
            a_name,
            Side::Source,
            &plan.b,
            &no_moves,
            observer,
            commit_interval,
            all_mail,
        )
        .map_err(|failed| {
            failed.copied.record_committed_in(&mut report);
            MailboxFailed::after(failed.error, report.clone())
        })?;
        counts.record_in(&mut report);
        report.expunged = plan.b.expunge.len() as u64;
        report.flags_changed = plan.b.set_flags.len() as u64;
    }
    if let MergeSource::Writable(a) = a
        && !plan.a.is_empty()
    {
        let b_moves: BTreeMap<Uid, Uid> = plan
            .b
            .save
            .iter()
            .filter_map(|s| match s.origin {
                Origin::SameSide(old) => Some((old, s.meta.uid)),
                Origin::OtherSide(_) => None,
            })
            .collect();
        let counts = apply_side(
            *a,
            a_name,
            Side::Source,
            b,
            b_name,
            Side::Destination,
            &plan.a,
            &b_moves,
            observer,
            commit_interval,
            None,
        )
        .map_err(|failed| MailboxFailed::after(failed.error, report.clone()))?;
        report.source_changes =
            counts.saved + plan.a.expunge.len() as u64 + plan.a.set_flags.len() as u64;
    }

    // A side this merge did not write is recorded as listed, so a change by someone else
    // during the run still shows next time; a written side as it is now.
    let a_written = matches!(a, MergeSource::Writable(_)) && !plan.a.is_empty();
    let a_stamp = if a_written {
        a.storage().stamp(a_name).map_err(SyncError::at(Side::Source, a_name))?
    } else {
        MailboxStamp::from(&a_contents.status)
    };
    let b_stamp = if plan.b.is_empty() {
        MailboxStamp::from(&b_contents.status)
    } else {
        b.stamp(b_name).map_err(SyncError::at(Side::Destination, b_name))?
    };
    let state = MailboxState {
        base: plan.next_base,
        source_token: a_stamp.change_token,
        destination_token: b_stamp.change_token,
        source_guid: a_stamp.guid,
        destination_guid: b_stamp.guid,
        rebuild: None,
    };
    Ok((report, state))
}

/// True when both GUIDs are known and differ.
fn changed_guid(recorded: Option<MailboxGuid>, now: Option<MailboxGuid>) -> bool {
    matches!((recorded, now), (Some(recorded), Some(now)) if recorded != now)
}

fn contents_or_empty(
    a: &mut dyn Storage,
    a_name: &MailboxName,
    missing: bool,
    b: &mut dyn StorageMut,
    b_name: &MailboxName,
) -> Result<MailboxContents, StorageError> {
    if missing {
        // Dry run: the mailbox that would be created on A is empty, like B's status says.
        let status = b.status(b_name)?;
        return Ok(MailboxContents {
            status: crate::model::MailboxStatus { messages: 0, change_token: None, ..status },
            messages: Vec::new(),
        });
    }
    a.contents(a_name)
}

/// Shows `contents` under `other`'s UIDVALIDITY when it holds `other`'s UIDs under one of
/// its own ([`crate::MailboxStatus::source_uid_validity`]).
fn stand_in(contents: &mut MailboxContents, other: &crate::model::MailboxStatus) {
    if contents.status.source_uid_validity == Some(other.uid_validity) {
        contents.status.uid_validity = other.uid_validity;
    }
}

fn empty_like(other: &MailboxContents) -> MailboxContents {
    MailboxContents {
        status: crate::model::MailboxStatus {
            uid_next: Uid::MIN,
            messages: 0,
            highest_modseq: None,
            change_token: None,
            ..other.status.clone()
        },
        messages: Vec::new(),
    }
}

/// Applies one side's plan: its UIDVALIDITY, then the saves in ascending UID order (bodies
/// from the other side, or spooled from this side for moves), flags, expunges, UIDNEXT.
#[allow(clippy::too_many_arguments)]
fn apply_side(
    target: &mut dyn StorageMut,
    target_name: &MailboxName,
    target_side: Side,
    other: &mut dyn Storage,
    other_name: &MailboxName,
    other_side: Side,
    plan: &SidePlan,
    other_moves: &BTreeMap<Uid, Uid>,
    observer: &mut dyn Observer,
    commit_interval: u32,
    all_mail: Option<&mut AllMail>,
) -> Result<Copied, Box<CopyFailed>> {
    let mut total = Copied::default();
    if plan.is_empty() {
        return Ok(total);
    }
    let sides = ApplyRoute { target, target_name, target_side, other, other_name, other_side };
    match apply_plan(sides, plan, other_moves, observer, commit_interval, all_mail, &mut total) {
        Ok(()) => Ok(total),
        Err(error) => Err(Box::new(CopyFailed { error, copied: total })),
    }
}

/// The two sides of [`apply_side`].
struct ApplyRoute<'a, 'n> {
    target: &'a mut dyn StorageMut,
    target_name: &'n MailboxName,
    target_side: Side,
    other: &'a mut dyn Storage,
    other_name: &'n MailboxName,
    other_side: Side,
}

/// [`apply_side`], adding what it copies (and commits) to `total` as it goes.
fn apply_plan(
    sides: ApplyRoute<'_, '_>,
    plan: &SidePlan,
    other_moves: &BTreeMap<Uid, Uid>,
    observer: &mut dyn Observer,
    commit_interval: u32,
    mut all_mail: Option<&mut AllMail>,
    total: &mut Copied,
) -> Result<(), SyncError> {
    let ApplyRoute { target, target_name, target_side, other, other_name, other_side } = sides;
    if let Some(uid_validity) = plan.set_uid_validity {
        let mut writer =
            target.writer(target_name).map_err(SyncError::at(target_side, target_name))?;
        writer.set_uid_validity(uid_validity).map_err(SyncError::at(target_side, target_name))?;
        writer.commit().map_err(SyncError::at(target_side, target_name))?;
    }
    // Consecutive saves with the same kind of origin form one run (one pipelined fetch).
    // Saves go in ascending UID order. Consecutive saves with the same kind of origin form
    // one run (one pipelined fetch), as long as their origin UIDs ascend too: a fetch
    // returns bodies in origin order, and a message keeping its (lower) UID can follow one
    // that got a fresh (higher) UID.
    let origin = |save: &MergeSave| match save.origin {
        Origin::OtherSide(uid) => other_moves.get(&uid).copied().unwrap_or(uid),
        Origin::SameSide(uid) => uid,
    };
    let mut start = 0;
    while start < plan.save.len() {
        let same_side = matches!(plan.save[start].origin, Origin::SameSide(_));
        let mut end = start + 1;
        while end < plan.save.len()
            && matches!(plan.save[end].origin, Origin::SameSide(_)) == same_side
            && origin(&plan.save[end]) > origin(&plan.save[end - 1])
        {
            end += 1;
        }
        let run: Vec<(Uid, &MessageMeta)> =
            plan.save[start..end].iter().map(|s| (origin(s), &s.meta)).collect();
        let copied = if same_side {
            // A move on this side: the storage renumbers (atomically where it can).
            let moves: Vec<(Uid, MessageMeta)> =
                run.iter().map(|(old, meta)| (*old, (*meta).clone())).collect();
            target
                .renumber(target_name, &moves)
                .map_err(SyncError::at(target_side, target_name))?;
            Copied::default()
        } else {
            let mut fetch =
                |uids: &[Uid], sink: &mut dyn MessageSink| other.fetch(other_name, uids, sink);
            let local = match all_mail.as_deref_mut() {
                Some(all_mail) => {
                    all_mail.find(target, target_side, run.iter().map(|(_, meta)| *meta))?
                }
                None => None,
            };
            let copied = copy_run(
                target,
                target_name,
                target_side,
                &mut fetch,
                other_name,
                other_side,
                &run,
                observer,
                commit_interval,
                local,
            );
            match copied {
                Ok(copied) => copied,
                Err(failed) => {
                    total.add(failed.copied);
                    return Err(failed.error);
                }
            }
        };
        total.add(copied);
        start = end;
    }
    let mut writer = target.writer(target_name).map_err(SyncError::at(target_side, target_name))?;
    for (uid, flags) in &plan.set_flags {
        writer.set_flags(*uid, flags).map_err(SyncError::at(target_side, target_name))?;
    }
    if !plan.expunge.is_empty() {
        writer.expunge(&plan.expunge).map_err(SyncError::at(target_side, target_name))?;
    }
    if let Some(uid_next) = plan.uid_next {
        writer.raise_uid_next(uid_next).map_err(SyncError::at(target_side, target_name))?;
    }
    writer.commit().map_err(SyncError::at(target_side, target_name))?;
    if let Some(all_mail) = all_mail {
        all_mail.changed(target_name);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn copy_run(
    target: &mut dyn StorageMut,
    target_name: &MailboxName,
    target_side: Side,
    fetch: &mut Fetch<'_>,
    from_name: &MailboxName,
    from_side: Side,
    run: &[(Uid, &MessageMeta)],
    observer: &mut dyn Observer,
    commit_interval: u32,
    local: Option<LocalCopies<'_>>,
) -> Result<Copied, Box<CopyFailed>> {
    let mut writer = target.writer(target_name).map_err(|error| {
        Box::new(CopyFailed {
            error: SyncError::at(target_side, target_name)(error),
            copied: Copied::default(),
        })
    })?;
    let mut route = CopyRoute {
        from: fetch,
        from_name,
        from_side,
        to_name: target_name,
        to_side: target_side,
        local,
    };
    let mut copied = copy_messages(&mut route, &mut *writer, observer, run, commit_interval)?;
    writer.commit().map_err(|error| {
        Box::new(CopyFailed { error: SyncError::at(target_side, target_name)(error), copied })
    })?;
    copied.all_committed();
    // A message that vanished meanwhile was expunged there; the saved base lists it as
    // common, so the next run expunges it on this side too. The report says "run again".
    Ok(copied)
}
