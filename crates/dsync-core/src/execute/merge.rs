//! `sync -1` (one-way merge into B) and `sync` (two-way): lists both trees, follows the
//! renames [`next_rename`] finds, applies one step per folder from [`plan_folders`] (a
//! merge is [`mailbox::MailboxMerge`]), then the subscription changes
//! [`plan_subscriptions`] plans. The rules are in [`crate::plan::merge`].

mod mailbox;
mod source;

use std::collections::{BTreeMap, BTreeSet};

use super::all_mail::AllMail;
use super::{
    Observer, SyncOptions, checkpoint_failed, keep_going_mailbox, local_names, note_mailbox_filter,
};
use crate::error::{Side, StorageError, SyncError};
use crate::history::FolderHistory;
use crate::model::{MailboxName, SpecialUse};
use crate::plan::merge::{
    FolderInput, FolderStep, Listed, MergeMode, Rename, Subscribed, move_state,
    next_history_rename, next_rename, plan_folders, plan_subscriptions, record_subscriptions,
    token_needed,
};
use crate::plan::{ComparableGuids, MailboxAction, MailboxPlan};
use crate::report::{MailboxRename, MailboxReport, Report};
use crate::state::SyncState;
use crate::storage::StorageMut;
use mailbox::{MailboxJob, MailboxMerge};

pub(super) use source::MergeSource;

/// A merge run: both sides and what the run keeps track of.
struct Merge<'r, 's> {
    options: &'r SyncOptions,
    a: MergeSource<'s>,
    b: &'r mut dyn StorageMut,
    observer: &'r mut dyn Observer,
    report: &'r mut Report,
    state: &'r mut SyncState,
    /// A's own spelling of names (destination-side) where it differs, and A's mailboxes a
    /// one-way merge reads under B's new name after B renamed them.
    a_names: BTreeMap<MailboxName, MailboxName>,
    /// One-way: B's renames A's mailboxes were merged into, `(A's old name, B's new
    /// name)` (destination-side spellings); a subscription of the old name on A counts
    /// for the new name too, as Dovecot's dsync keeps it with the mailbox.
    aliases: Vec<(MailboxName, MailboxName)>,
    /// What each side's own history (Dovecot's mailbox log) says of deletes and renames,
    /// for mailboxes the state does not know: A's, then B's.
    history: (FolderHistory, FolderHistory),
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
    let mut listed = Listed { on_a: selectable(&a_mailboxes), on_b: selectable(&b_mailboxes) };
    let all_mail = options
        .all_mail
        .as_ref()
        .and_then(|pattern| AllMail::resolve(pattern, &a_mailboxes, &b_mailboxes))
        .map(AllMail::new);
    // A history that cannot be read counts as none: mailboxes are then kept or copied,
    // never deleted on a guess.
    let history =
        (a.storage().folder_history().unwrap_or_default(), b.folder_history().unwrap_or_default());
    let aliases = Vec::new();
    let mut merge = Merge { options, a, b, observer, report, state, a_names, aliases, history };
    merge.follow_renames(&mut listed)?;
    merge.folders(&listed, (&a_left_out, &b_left_out), all_mail)?;
    merge.subscriptions(&a_subscriptions, &b_subscriptions, &wanted)
}

impl Merge<'_, '_> {
    /// Follows every rename [`next_rename`] finds, updating `listed` and the state. A rename
    /// the storage refuses becomes a warning and the merge copies instead. Dry runs rename
    /// nothing (they show the delete and the copy).
    fn follow_renames(&mut self, listed: &mut Listed) -> Result<(), SyncError> {
        let guids =
            ComparableGuids::between(self.a.storage().capabilities(), self.b.capabilities());
        if self.options.dry_run || !guids.mailboxes {
            return Ok(());
        }
        let mode = self.a.mode();
        let mut refused: BTreeSet<MailboxName> = BTreeSet::new();
        loop {
            let (a, b, a_names) = (&mut self.a, &mut *self.b, &self.a_names);
            let mut guid = |side: Side, name: &MailboxName| {
                let stamp = match side {
                    Side::Source => {
                        let spelled = a.spelling(a_names, name);
                        a.storage().stamp(&spelled)
                    }
                    Side::Destination => b.stamp(name),
                };
                stamp.ok()?.guid
            };
            let history = &self.history;
            let renamed_to = |side: Side, name: &MailboxName| match side {
                Side::Source => history.0.renamed_to(name),
                Side::Destination => history.1.renamed_to(name),
            };
            let found = next_rename(mode, listed, self.state, &refused, &mut guid).or_else(|| {
                next_history_rename(mode, listed, self.state, &refused, &renamed_to, &mut guid)
            });
            let Some(found) = found else { return Ok(()) };
            let (side, old, new) = match found {
                Rename::StateOnly { old, new } => {
                    move_state(self.state, &old, &new);
                    self.observer.checkpoint(self.state).map_err(checkpoint_failed(Some(&new)))?;
                    continue;
                }
                Rename::Alias { old, new } => {
                    self.alias(listed, &old, &new);
                    continue;
                }
                Rename::Follow { side, old, new } => (side, old, new),
            };
            let result = match (side, &mut self.a) {
                (Side::Destination, _) => self.b.rename_mailbox(&old, &new),
                (Side::Source, MergeSource::Writable(a)) => {
                    let from =
                        self.a_names.get(&old).cloned().unwrap_or_else(|| a.local_name(&old));
                    a.rename_mailbox(&from, &a.local_name(&new))
                }
                // One-way merges follow only A's renames (on B).
                (Side::Source, MergeSource::ReadOnly(_)) => return Ok(()),
            };
            if let Err(error) = result {
                self.report.warnings.push(format!(
                    "{old} was renamed to {new}, but renaming it on the {side} failed ({error}): \
                     its mail is copied under the new name instead"
                ));
                refused.insert(new);
                continue;
            }
            listed.rename(side, &old, &new);
            move_state(self.state, &old, &new);
            self.observer.checkpoint(self.state).map_err(checkpoint_failed(Some(&new)))?;
            self.report.renamed_mailboxes.push(MailboxRename { side, from: old, to: new });
        }
    }

    /// One-way: A's `old` (and its children) are read as B's `new` from now on.
    fn alias(&mut self, listed: &mut Listed, old: &MailboxName, new: &MailboxName) {
        let moving: Vec<MailboxName> =
            listed.on_a.iter().filter(|name| name.is_within(old)).cloned().collect();
        for name in moving {
            let tail = &name.components()[old.components().len()..];
            let Ok(target) = MailboxName::new(new.components().iter().chain(tail).cloned()) else {
                continue;
            };
            let spelled = self.a.spelling(&self.a_names, &name);
            self.a_names.insert(target, spelled);
        }
        listed.rename(Side::Source, old, new);
        self.aliases.push((old.clone(), new.clone()));
    }

    /// Plans the folders and applies each step. `left_out`: what A's and B's listings left
    /// out.
    fn folders(
        &mut self,
        listed: &Listed,
        left_out: (&BTreeSet<MailboxName>, &BTreeSet<MailboxName>),
        mut all_mail: Option<AllMail>,
    ) -> Result<(), SyncError> {
        let mode = self.a.mode();
        // The change tokens the plan needs: of a mailbox one side deleted, on the other.
        let mut tokens = BTreeMap::new();
        for name in listed.on_a.union(&listed.on_b) {
            if left_out.0.contains(name) || left_out.1.contains(name) {
                continue;
            }
            let previous = self.state.mailboxes.get(name);
            let stamp = match token_needed(mode, name, &listed.on_a, &listed.on_b, previous) {
                None => continue,
                Some(Side::Source) => {
                    let spelled = self.a.spelling(&self.a_names, name);
                    self.a.storage().stamp(&spelled)
                }
                Some(Side::Destination) => self.b.stamp(name),
            };
            if let Some(token) = stamp.ok().and_then(|stamp| stamp.change_token) {
                tokens.insert(name.clone(), token);
            }
        }
        let deleted_elsewhere = self.deleted_elsewhere(listed, left_out);
        let input = FolderInput {
            mode,
            on_a: &listed.on_a,
            on_b: &listed.on_b,
            left_out_a: left_out.0,
            left_out_b: left_out.1,
            state: &self.state.mailboxes,
            tokens: &tokens,
            deleted_elsewhere: &deleted_elsewhere,
            first: all_mail.as_ref().map(AllMail::mailbox),
        };
        let steps = plan_folders(&input);
        for (name, step) in steps {
            super::stop_if_interrupted(self.observer, &name)?;
            let a_name = self.a.spelling(&self.a_names, &name);
            let (recorded, create_on) = match step {
                FolderStep::Keep(_) => continue,
                FolderStep::Delete(side) => {
                    self.delete(side, &a_name, &name);
                    continue;
                }
                FolderStep::Merge => {
                    let previous = self.state.mailboxes.get(&name);
                    // Neither side changed since the last sync: nothing to list, and the
                    // entry is kept as it is. (A merge reads it in place too.)
                    if previous.is_some_and(|previous| {
                        mailbox::unchanged(self.a.storage(), &a_name, &mut *self.b, &name, previous)
                    }) {
                        self.observer.mailbox_planned(&MailboxPlan::unchanged(name.clone()));
                        let mailbox_report = MailboxReport::new(name, MailboxAction::Update);
                        self.observer.mailbox_finished(&mailbox_report);
                        self.report.mailboxes.push(mailbox_report);
                        continue;
                    }
                    (previous.is_some(), None)
                }
                FolderStep::Create(side) => (false, Some(side)),
            };
            let job = MailboxJob { a_name: &a_name, b_name: &name, recorded, create_on };
            let merge = MailboxMerge {
                options: self.options,
                a: &mut self.a,
                b: &mut *self.b,
                observer: &mut *self.observer,
                state: &mut *self.state,
                all_mail: all_mail.as_mut(),
            };
            let result = merge.merge(&job);
            if let Some((mut mailbox_report, mailbox_state)) =
                keep_going_mailbox(result, self.report)?
            {
                self.report.warnings.append(&mut mailbox_report.warnings);
                self.observer.mailbox_finished(&mailbox_report);
                self.report.mailboxes.push(mailbox_report);
                self.state.mailboxes.insert(name.clone(), mailbox_state);
            }
        }
        Ok(())
    }

    /// The mailboxes one side has, the state does not know and the other side's history
    /// records as deleted (by persistent mailbox GUID).
    fn deleted_elsewhere(
        &mut self,
        listed: &Listed,
        left_out: (&BTreeSet<MailboxName>, &BTreeSet<MailboxName>),
    ) -> BTreeSet<MailboxName> {
        let mut deleted = BTreeSet::new();
        let guids =
            ComparableGuids::between(self.a.storage().capabilities(), self.b.capabilities());
        if !guids.mailboxes {
            return deleted;
        }
        let unknown = |name: &&MailboxName| {
            !self.state.mailboxes.contains_key(*name)
                && !left_out.0.contains(*name)
                && !left_out.1.contains(*name)
        };
        if !self.history.1.deleted.is_empty() {
            for name in listed.on_a.difference(&listed.on_b).filter(unknown) {
                let spelled = self.a.spelling(&self.a_names, name);
                let guid = self.a.storage().stamp(&spelled).ok().and_then(|s| s.guid);
                if guid.is_some_and(|guid| self.history.1.deleted.contains(&guid)) {
                    deleted.insert(name.clone());
                }
            }
        }
        if !self.history.0.deleted.is_empty() {
            for name in listed.on_b.difference(&listed.on_a).filter(unknown) {
                let guid = self.b.stamp(name).ok().and_then(|s| s.guid);
                if guid.is_some_and(|guid| self.history.0.deleted.contains(&guid)) {
                    deleted.insert(name.clone());
                }
            }
        }
        deleted
    }

    /// Deletes mailbox `name` (`a_name` on A) on `side`; a refusal is the mailbox's failure.
    fn delete(&mut self, side: Side, a_name: &MailboxName, name: &MailboxName) {
        let (spelled, result) = match (side, &mut self.a) {
            (Side::Source, _) if self.options.dry_run => (a_name, Ok(())),
            (Side::Source, MergeSource::Writable(a)) => (a_name, a.delete_mailbox(a_name)),
            (Side::Source, MergeSource::ReadOnly(_)) => return,
            (Side::Destination, _) if self.options.dry_run => (name, Ok(())),
            (Side::Destination, _) => (name, self.b.delete_mailbox(name)),
        };
        match result {
            Ok(()) => {
                if !self.options.dry_run {
                    self.state.mailboxes.remove(name);
                }
                self.report.deleted_mailboxes.push(spelled.clone());
            }
            Err(error) => self.report.failures.push(SyncError::at(side, spelled)(error)),
        }
    }

    /// Applies the subscription changes [`plan_subscriptions`] plans (one-way: only A's
    /// travel), each side's in one go (one write of a Maildir's file, not one per name),
    /// and records what both sides have for the names the filters want.
    fn subscriptions(
        &mut self,
        a_now: &BTreeSet<MailboxName>,
        b_now: &BTreeSet<MailboxName>,
        wanted: &dyn Fn(&MailboxName) -> bool,
    ) -> Result<(), SyncError> {
        let mut a_aliased = a_now.clone();
        for (old, new) in &self.aliases {
            if a_now.contains(old) {
                a_aliased.insert(new.clone());
            }
        }
        let a_now = &a_aliased;
        let plan = plan_subscriptions(
            self.a.mode(),
            Subscribed { now: a_now, recorded: &self.state.subscribed_source },
            Subscribed { now: b_now, recorded: &self.state.subscribed_destination },
            wanted,
        );
        let (mut a_changes, mut b_changes) = (plan.source, plan.destination);
        if !self.options.dry_run {
            let sent = b_changes.clone();
            let refused =
                self.b.update_subscriptions(&sent).map_err(SyncError::global(Side::Destination))?;
            drop_refused(&mut b_changes, &sent, refused, Side::Destination, self.report);
            if let MergeSource::Writable(a) = &mut self.a {
                let sent: Vec<(MailboxName, bool)> =
                    a_changes.iter().map(|(name, on)| (a.local_name(name), *on)).collect();
                let refused =
                    a.update_subscriptions(&sent).map_err(SyncError::global(Side::Source))?;
                drop_refused(&mut a_changes, &sent, refused, Side::Source, self.report);
            }
        }
        let (mut a_final, mut b_final) = (a_now.clone(), b_now.clone());
        for (name, target) in &b_changes {
            count(self.report, *target);
            set_member(&mut b_final, name, *target);
        }
        for (name, target) in &a_changes {
            count(self.report, *target);
            set_member(&mut a_final, name, *target);
        }
        if !self.options.dry_run {
            let state = &mut *self.state;
            state.subscribed_source =
                record_subscriptions(&state.subscribed_source, a_final, wanted);
            state.subscribed_destination =
                record_subscriptions(&state.subscribed_destination, b_final, wanted);
        }
        Ok(())
    }
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
