//! Merging one mailbox on both sides: create it where it is missing, rebuild a side's copy
//! ([`plan_rebuild`]), read both, plan with [`plan_merge`] and apply the plan, B first.
//! With a saved base that applies, both listings are compared with it as they are read
//! ([`streamed`]) and neither is held whole.

use std::collections::BTreeMap;

use super::source::MergeSource;
use crate::error::{Side, StorageError, SyncError};
use crate::execute::all_mail::AllMail;
use crate::execute::copy::{Copied, CopyFailed, CopyRoute, copy_messages};
use crate::execute::{MailboxFailed, Observer, SyncOptions, checkpoint_failed, message_identities};
use crate::model::{MailboxContents, MailboxName, MailboxStamp, MailboxStatus, MessageMeta, Uid};
use crate::plan::backup::streamed::Listed;
use crate::plan::merge::{
    Incarnation, MergeBase, MergeMode, MergePlan, MergeSave, MergeView, Origin, SidePlan,
    changed_guid, plan_merge, plan_rebuild, streamed,
};
use crate::plan::{ComparableGuids, MailboxAction, MailboxPlan, RecreateReason};
use crate::report::MailboxReport;
use crate::state::{MailboxState, StateError, SyncState};
use crate::storage::{MessageSink, NewMailbox, Storage, StorageMut};

/// What merging a mailbox works with: both sides and the run's options, observer, state
/// and all-mail lookup.
pub(super) struct MailboxMerge<'r, 's> {
    pub(super) options: &'r SyncOptions,
    pub(super) a: &'r mut MergeSource<'s>,
    pub(super) b: &'r mut dyn StorageMut,
    pub(super) observer: &'r mut dyn Observer,
    pub(super) state: &'r mut SyncState,
    pub(super) all_mail: Option<&'r mut AllMail>,
}

/// The mailbox to merge.
pub(super) struct MailboxJob<'n> {
    /// Its name on A (A's spelling).
    pub(super) a_name: &'n MailboxName,
    /// Its name on B, which the state is keyed by.
    pub(super) b_name: &'n MailboxName,
    /// The last run recorded it: its entry in the state, under [`MailboxJob::b_name`], is
    /// read there rather than copied (it holds a flag record per message). False when it
    /// is created now.
    pub(super) recorded: bool,
    /// The side where it does not exist yet.
    pub(super) create_on: Option<Side>,
}

impl MailboxMerge<'_, '_> {
    /// Merges one mailbox: its report, and what to record for it.
    pub(super) fn merge(
        self,
        job: &MailboxJob<'_>,
    ) -> Result<(MailboxReport, MailboxState), MailboxFailed> {
        let MailboxMerge { options, a, b, observer, state, all_mail } = self;
        let &MailboxJob { a_name, b_name, create_on, .. } = job;
        // Creating or re-creating a mailbox on a side, or changing a side's UIDVALIDITY, starts
        // a new incarnation that the saved base does not describe. Its entry goes first, so a
        // run that dies halfway cannot leave a base that makes the next run take missing mail
        // for expunged mail. (A half-applied ordinary merge leaves a base that stays true.)
        let forget = |state: &mut SyncState, observer: &mut dyn Observer| {
            if !options.dry_run && state.mailboxes.remove(b_name).is_some() {
                observer.forget(b_name, state).map_err(checkpoint_failed(Some(b_name)))?;
            }
            Ok::<(), SyncError>(())
        };
        let mode = a.mode();
        let mut action = MailboxAction::Update;
        if create_on.is_some() {
            forget(state, observer)?;
        }
        match create_on {
            Some(Side::Destination) => {
                let status =
                    a.storage().status(a_name).map_err(SyncError::at(Side::Source, a_name))?;
                if !options.dry_run {
                    let new = NewMailbox {
                        uid_validity: Some(status.uid_validity),
                        guid: status.guid,
                        source_uid_validity: None,
                    };
                    b.create_mailbox(b_name, &new)
                        .map_err(SyncError::at(Side::Destination, b_name))?;
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
        let mut planner = MailboxMerge {
            options,
            a: &mut *a,
            b: &mut *b,
            observer: &mut *observer,
            state: &mut *state,
            all_mail: None,
        };
        let planned = match planner.plan_streamed(job, mode)? {
            Some(planned) => planned,
            None => planner.plan_whole(job, mode, action)?,
        };
        let Planned { plan, a_status, b_status, action, keeps_previous, unreadable_base } = planned;
        // The observer hears B's side (the destination's, the only one in one-way mode).
        observer.mailbox_planned(&MailboxPlan {
            action: action.clone(),
            expunge: plan.b.expunge.clone(),
            set_flags: plan.b.set_flags.clone(),
            save: plan.b.save.iter().map(|save| save.meta.clone()).collect(),
            uid_next: plan.b.uid_next,
            ..MailboxPlan::unchanged(b_name.clone())
        });

        if plan.a.set_uid_validity.is_some() || plan.b.set_uid_validity.is_some() {
            forget(state, observer)?;
        }
        let mut report = MailboxReport::new(b_name.clone(), action);
        if let Some(error) = unreadable_base {
            report.warnings.push(format!(
                "{b_name}: the saved state no longer holds this mailbox's messages ({error}): \
                 merged as without a saved state"
            ));
        }
        if plan.unproven > 0 {
            report.warnings.push(format!(
                "{b_name}: no sync state and no Dovecot history tells whether {} message(s) \
                 missing on one side were expunged there; they are copied back",
                plan.unproven
            ));
        }
        if options.dry_run {
            let saves = plan.b.save.iter().map(|save| &save.meta);
            report.count_planned(saves, plan.b.expunge.len(), plan.b.set_flags.len());
            report.source_changes =
                (plan.a.save.len() + plan.a.expunge.len() + plan.a.set_flags.len()) as u64;
            let previous = state.mailboxes.get(b_name).filter(|_| keeps_previous);
            let state = previous.cloned().unwrap_or_default();
            return Ok((report, state));
        }

        // B first (in one-way mode the only side), then A. A's copies name B's messages by
        // their UIDs before the sync; B's renumbering has moved some of them since.
        let commit_interval = options.commit_interval;
        let no_moves = BTreeMap::new();
        {
            let a_storage = a.storage();
            let write = SideWrite {
                target: b,
                target_name: b_name,
                target_side: Side::Destination,
                other: a_storage,
                other_name: a_name,
                plan: &plan.b,
                other_moves: &no_moves,
                commit_interval,
                all_mail,
            };
            let counts = apply_side(write, observer).map_err(|failed| {
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
            let write = SideWrite {
                target: *a,
                target_name: a_name,
                target_side: Side::Source,
                other: b,
                other_name: b_name,
                plan: &plan.a,
                other_moves: &b_moves,
                commit_interval,
                all_mail: None,
            };
            let counts = apply_side(write, observer)
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
            MailboxStamp::from(&a_status)
        };
        let b_stamp = if plan.b.is_empty() {
            MailboxStamp::from(&b_status)
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
}

/// A mailbox's merge plan, and what it was planned from.
struct Planned {
    plan: MergePlan,
    /// Side A's status as listed (as B's UIDVALIDITY when it stands in for it).
    a_status: MailboxStatus,
    /// Side B's status as listed, likewise.
    b_status: MailboxStatus,
    /// What happens to the mailbox as a whole.
    action: MailboxAction,
    /// The last run's entry still describes the mailbox (it was recorded and this run
    /// rebuilt no side).
    keeps_previous: bool,
    /// The saved base's records could not be read from the state file (it no longer holds
    /// them as loaded): planned as without a saved state.
    unreadable_base: Option<StateError>,
}

impl MailboxMerge<'_, '_> {
    /// Plans from both sides' listings and the saved base compared as they are read
    /// ([`streamed::compare_listed`]), so that neither listing is held whole. `None` when
    /// that does not apply: a new mailbox, no base that applies to both sides' copies, a
    /// rebuild, a listing not in ascending UID order. The caller then plans from the whole
    /// listings ([`Self::plan_whole`]), which reads both again.
    fn plan_streamed(
        &mut self,
        job: &MailboxJob<'_>,
        mode: MergeMode,
    ) -> Result<Option<Planned>, MailboxFailed> {
        let &MailboxJob { a_name, b_name, recorded, create_on } = job;
        let (options, a, b) = (self.options, &mut *self.a, &mut *self.b);
        let previous = self.state.mailboxes.get(b_name).filter(|_| recorded);
        let Some(previous) = previous.filter(|p| create_on.is_none() && p.rebuild.is_none()) else {
            return Ok(None);
        };
        let guids = ComparableGuids::between(a.storage().capabilities(), b.capabilities());
        let (a_keeps, b_keeps) =
            (a.storage().capabilities().mailbox_guids, b.capabilities().mailbox_guids);
        let from_a = |error| SyncError::at(Side::Source, a_name)(error);
        let from_b = |error| SyncError::at(Side::Destination, b_name)(error);
        let compared = {
            let a_listing = a.storage().listing(a_name).map_err(from_a)?;
            let b_listing = b.listing(b_name).map_err(from_b)?;
            let (mut a_status, mut b_status) = (a_listing.status, b_listing.status);
            // As `plan_whole` does: a side rebuilt under a UIDVALIDITY of its own stands in.
            stand_in_status(&mut b_status, &a_status);
            stand_in_status(&mut a_status, &b_status);
            let a_guid = a_status.guid.filter(|_| a_keeps);
            let b_guid = b_status.guid.filter(|_| b_keeps);
            let a_copy = Incarnation {
                uid_validity: a_status.uid_validity,
                guid: a_guid,
                change_token: a_status.change_token.as_deref(),
            };
            let b_copy = Incarnation {
                uid_validity: b_status.uid_validity,
                guid: b_guid,
                change_token: b_status.change_token.as_deref(),
            };
            if !options.dry_run && plan_rebuild(mode, previous, a_copy, b_copy).is_some() {
                return Ok(None);
            }
            // The saved base applies only to the same incarnations it was made with.
            let same = !changed_guid(previous.source_guid, a_guid)
                && !changed_guid(previous.destination_guid, b_guid);
            if !same {
                return Ok(None);
            }
            let a_listed = Listed {
                status: a_status,
                messages: a_listing.messages.map(|m| m.map_err(from_a)),
            };
            let b_listed = Listed {
                status: b_status,
                messages: b_listing.messages.map(|m| m.map_err(from_b)),
            };
            // Records still in the state file are read as the comparison goes; if the file
            // no longer holds them, the whole-listing path plans as without a saved state
            // (and says so).
            streamed::compare_listed(mode, a_listed, b_listed, &previous.base, guids.messages)?
        };
        let Some(compared) = compared else { return Ok(None) };
        // Identities of the new mail only: the base's UIDs are decided without them.
        let a_identities = message_identities(a.storage(), a_name, &compared.a_new, guids.messages)
            .map_err(from_a)?;
        let b_identities =
            message_identities(b, b_name, &compared.b_new, guids.messages).map_err(from_b)?;
        let (a_status, b_status) = (compared.a_status.clone(), compared.b_status.clone());
        let plan = streamed::finish(compared, a_identities, b_identities);
        let action = MailboxAction::Update;
        let unreadable_base = None;
        Ok(Some(Planned {
            plan,
            a_status,
            b_status,
            action,
            keeps_previous: true,
            unreadable_base,
        }))
    }

    /// Plans from both sides' whole listings ([`Storage::contents`]), rebuilding a side's
    /// copy first when [`plan_rebuild`] says so.
    fn plan_whole(
        &mut self,
        job: &MailboxJob<'_>,
        mode: MergeMode,
        mut action: MailboxAction,
    ) -> Result<Planned, MailboxFailed> {
        let &MailboxJob { a_name, b_name, recorded, create_on } = job;
        let (options, a, b) = (self.options, &mut *self.a, &mut *self.b);
        let (observer, state) = (&mut *self.observer, &mut *self.state);
        let previous = state.mailboxes.get(b_name).filter(|_| recorded);
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
        // Whether a side's copy is rebuilt from the other's: [`plan_rebuild`]. A rebuild is
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
        let rebuild = previous.filter(|_| !options.dry_run).and_then(|previous| {
            let a_copy = Incarnation {
                uid_validity: a_contents.status.uid_validity,
                guid: a_guid,
                change_token: a_contents.status.change_token.as_deref(),
            };
            let b_copy = Incarnation {
                uid_validity: b_contents.status.uid_validity,
                guid: b_guid,
                change_token: b_contents.status.change_token.as_deref(),
            };
            plan_rebuild(mode, previous, a_copy, b_copy)
        });
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
            observer.checkpoint(state).map_err(checkpoint_failed(Some(b_name)))?;
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
                    a.recreate_mailbox(a_name, &new)
                        .map_err(SyncError::at(Side::Source, a_name))?;
                    a_contents = a.contents(a_name).map_err(SyncError::at(Side::Source, a_name))?;
                }
                (Side::Source, MergeSource::ReadOnly(_)) => {}
            }
        }
        // (Looked up again: announcing a rebuild replaced the entry.)
        let previous = state.mailboxes.get(b_name).filter(|_| recorded);
        let previous = previous.filter(|p| rebuild.is_none() && p.rebuild.is_none());
        // The saved base applies only to the same incarnations it was made with. Its
        // records are read from the state file now when they are still there; if the file
        // no longer holds them, the mailbox is merged as without a saved state.
        let mut unreadable_base = None;
        let base = previous
            .filter(|p| {
                !changed_guid(p.source_guid, a_guid) && !changed_guid(p.destination_guid, b_guid)
            })
            .map(|p| &p.base)
            .filter(|base| {
                base.uid_validity == a_contents.status.uid_validity.get()
                    && base.uid_validity == b_contents.status.uid_validity.get()
            })
            .and_then(|base| base.read().map_err(|error| unreadable_base = Some(error)).ok());
        let base = base.as_deref();

        // Identities: GUIDs when both sides keep comparable ones, else Dovecot header hashes,
        // needed only for messages not already known to be common.
        let guids = ComparableGuids::between(a.storage().capabilities(), b.capabilities());
        let known = |uid: &Uid| {
            base.and_then(|base| base.flags.decoded()).is_some_and(|flags| flags.contains_key(uid))
        };
        let wanted = |meta: &&MessageMeta| guids.messages || !known(&meta.uid);
        let a_identities = message_identities(
            a.storage(),
            a_name,
            a_contents.messages.iter().filter(wanted),
            guids.messages,
        )
        .map_err(SyncError::at(Side::Source, a_name))?;
        let b_identities = message_identities(
            b,
            b_name,
            b_contents.messages.iter().filter(wanted),
            guids.messages,
        )
        .map_err(SyncError::at(Side::Destination, b_name))?;
        // Without a base, each side's own history (Dovecot's index log) tells its
        // expunges from mail it never had, and which side changed a message's flags. A history that cannot be read counts as none:
        // the plan then copies (and warns), it never expunges on a guess.
        let (a_history, b_history) = if base.is_none() && create_on.is_none() {
            (
                a.storage().message_history(a_name).ok().flatten(),
                b.message_history(b_name).ok().flatten(),
            )
        } else {
            (None, None)
        };
        let plan = plan_merge(
            mode,
            MergeView {
                contents: &a_contents,
                identities: &a_identities,
                history: a_history.as_ref(),
            },
            MergeView {
                contents: &b_contents,
                identities: &b_identities,
                history: b_history.as_ref(),
            },
            base,
        );
        drop((a_identities, b_identities));
        let (a_status, b_status) = (a_contents.status, b_contents.status);
        let keeps_previous = previous.is_some();
        Ok(Planned { plan, a_status, b_status, action, keeps_previous, unreadable_base })
    }
}

/// True when neither side's copy of the mailbox changed since the last run recorded
/// `previous` (both change tokens as recorded): there is nothing to list or merge, and the
/// recorded entry stays as it is. Checked before [`MailboxMerge::merge`], which works on a
/// copy of the entry (a flag record per message).
pub(super) fn unchanged(
    a: &mut dyn Storage,
    a_name: &MailboxName,
    b: &mut dyn Storage,
    b_name: &MailboxName,
    previous: &MailboxState,
) -> bool {
    token_as_recorded(a, a_name, previous.source_token.as_deref())
        && token_as_recorded(b, b_name, previous.destination_token.as_deref())
}

/// True when `storage`'s mailbox has the change token recorded at the last run.
fn token_as_recorded(
    storage: &mut dyn Storage,
    mailbox: &MailboxName,
    recorded: Option<&str>,
) -> bool {
    let Some(recorded) = recorded else { return false };
    storage.stamp(mailbox).ok().and_then(|s| s.change_token).as_deref() == Some(recorded)
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
            status: MailboxStatus { messages: 0, change_token: None, ..status },
            messages: Vec::new(),
        });
    }
    a.contents(a_name)
}

/// Shows `contents` under `other`'s UIDVALIDITY when it holds `other`'s UIDs under one of
/// its own ([`crate::MailboxStatus::source_uid_validity`]).
fn stand_in(contents: &mut MailboxContents, other: &MailboxStatus) {
    stand_in_status(&mut contents.status, other);
}

/// [`stand_in`] for a status alone.
fn stand_in_status(status: &mut MailboxStatus, other: &MailboxStatus) {
    if status.source_uid_validity == Some(other.uid_validity) {
        status.uid_validity = other.uid_validity;
    }
}

fn empty_like(other: &MailboxContents) -> MailboxContents {
    MailboxContents {
        status: MailboxStatus {
            uid_next: Uid::MIN,
            messages: 0,
            highest_modseq: None,
            change_token: None,
            ..other.status.clone()
        },
        messages: Vec::new(),
    }
}

/// One side's plan to apply, and where its bodies come from.
struct SideWrite<'a, 'n> {
    /// The side written.
    target: &'a mut dyn StorageMut,
    /// The mailbox written, in the target's spelling.
    target_name: &'n MailboxName,
    /// Which side that is.
    target_side: Side,
    /// The other side, which bodies are read from.
    other: &'a mut dyn Storage,
    /// The mailbox there, in its spelling.
    other_name: &'n MailboxName,
    /// The changes.
    plan: &'n SidePlan,
    /// Where the other side's plan moves its messages (old UID to new): bodies are read
    /// from there after it was applied.
    other_moves: &'n BTreeMap<Uid, Uid>,
    /// [`SyncOptions::commit_interval`].
    commit_interval: u32,
    /// Bodies the target side holds already (`-a`).
    all_mail: Option<&'a mut AllMail>,
}

/// Applies one side's plan: its UIDVALIDITY, then the saves in ascending UID order (bodies
/// from the other side, or spooled from this side for moves), flags, expunges, UIDNEXT.
fn apply_side(
    write: SideWrite<'_, '_>,
    observer: &mut dyn Observer,
) -> Result<Copied, Box<CopyFailed>> {
    let mut total = Copied::default();
    if write.plan.is_empty() {
        return Ok(total);
    }
    match apply_plan(write, observer, &mut total) {
        Ok(()) => Ok(total),
        Err(error) => Err(Box::new(CopyFailed { error, copied: total })),
    }
}

/// [`apply_side`], adding what it copies (and commits) to `total` as it goes.
fn apply_plan(
    write: SideWrite<'_, '_>,
    observer: &mut dyn Observer,
    total: &mut Copied,
) -> Result<(), SyncError> {
    let SideWrite {
        target,
        target_name,
        target_side,
        other,
        other_name,
        plan,
        other_moves,
        commit_interval,
        mut all_mail,
    } = write;
    let other_side = match target_side {
        Side::Source => Side::Destination,
        Side::Destination => Side::Source,
    };
    if let Some(uid_validity) = plan.set_uid_validity {
        let mut writer =
            target.writer(target_name).map_err(SyncError::at(target_side, target_name))?;
        writer.set_uid_validity(uid_validity).map_err(SyncError::at(target_side, target_name))?;
        writer.commit().map_err(SyncError::at(target_side, target_name))?;
    }
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
            let route = CopyRoute {
                from: &mut fetch,
                from_name: other_name,
                from_side: other_side,
                to_name: target_name,
                to_side: target_side,
                local,
            };
            let copied = copy_run(target, route, &run, observer, commit_interval);
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

/// Copies one run of saves along `route` into `target` and commits them.
fn copy_run(
    target: &mut dyn StorageMut,
    mut route: CopyRoute<'_, '_>,
    run: &[(Uid, &MessageMeta)],
    observer: &mut dyn Observer,
    commit_interval: u32,
) -> Result<Copied, Box<CopyFailed>> {
    let (target_side, target_name) = (route.to_side, route.to_name);
    let mut writer = target.writer(target_name).map_err(|error| {
        Box::new(CopyFailed {
            error: SyncError::at(target_side, target_name)(error),
            copied: Copied::default(),
        })
    })?;
    let mut copied = copy_messages(&mut route, &mut *writer, observer, run, commit_interval)?;
    writer.commit().map_err(|error| {
        Box::new(CopyFailed { error: SyncError::at(target_side, target_name)(error), copied })
    })?;
    copied.all_committed();
    // A message that vanished meanwhile was expunged there; the saved base lists it as
    // common, so the next run expunges it on this side too. The report says "run again".
    Ok(copied)
}
