//! Syncing with a side that cannot take forced UIDs (an IMAP server as destination:
//! APPEND gives each message a UID of the server's choosing, and nothing sets a
//! UIDVALIDITY). [`crate::run`] and [`crate::run_two_way`] come here when a side declares
//! [`Capabilities::assigns_uids`](crate::Capabilities::assigns_uids).
//!
//! Identity is a mapping kept in the state ([`crate::state::pairs`]): per mailbox, each
//! source message (UIDVALIDITY, UID) with its destination message (UIDVALIDITY, UID),
//! recorded the moment the destination confirms a save ([`Observer::paired`]). Messages
//! no pair covers are matched by content ([`plan`]: header hash, size, received date), so
//! a run after a kill, a lost connection or a lost state finds what reached the
//! destination instead of storing it twice.
//!
//! What a backup deletes on the destination (see the README for doveadm's and imapsync's
//! rules): only what the state says this tool put there, unless
//! [`SyncOptions::delete_extra`] gives consent. A message is expunged when the source
//! expunged its pair; a mailbox is deleted when the source no longer has it, the state
//! has an entry for it, and every message in it is one of ours (else our messages are
//! expunged and the mailbox stays, with a warning). Subscriptions: what the source
//! changed since the last run travels; the destination's own stay.

mod copy;
mod follow;
mod held;
pub mod plan;
pub mod renames;
mod within;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use self::copy::{Copied, CopyStopped, Fetch, Stored, Target};
use self::plan::PairMode;
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::execute::{
    MailboxFailed, Observer, SyncOptions, keep_going, keep_going_mailbox, listing_skips,
    local_names, note_mailbox_filter, stop_if_interrupted,
};
use crate::model::{
    Flags, MailboxContents, MailboxInfo, MailboxName, MailboxStatus, MessageMeta, SpecialUse, Uid,
    UidValidity,
};
use crate::plan::{MailboxAction, TreePlan};
use crate::report::{MailboxReport, Report, Skipped};
use crate::state::SyncState;
use crate::state::pairs::{MailboxPairs, Pair, WRITING, entry_record, pair_record};
use crate::storage::{NewMailbox, NotApplied, Skip, Storage, StorageMut};

/// Rounds of retrying saves the destination asked to slow down for, before the run stops.
const RETRY_ROUNDS: u32 = 5;
/// The longest wait between two rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The side a one-way run reads, or side A of a two-way run.
pub(crate) enum Origin<'a> {
    /// Read only (`backup`, `sync -1`).
    ReadOnly(&'a mut dyn Storage),
    /// Written too (two-way).
    Writable(&'a mut dyn StorageMut),
}

impl Origin<'_> {
    fn storage(&mut self) -> &mut dyn Storage {
        match self {
            Origin::ReadOnly(storage) => &mut **storage,
            Origin::Writable(storage) => &mut **storage,
        }
    }

    fn writable(&mut self) -> Option<&mut dyn StorageMut> {
        match self {
            Origin::ReadOnly(_) => None,
            Origin::Writable(storage) => Some(&mut **storage),
        }
    }
}

/// One mailbox to sync: its names and where it exists.
#[derive(Clone)]
struct Job {
    /// Its name on the destination (the key of its state).
    name: MailboxName,
    /// Its name on the source.
    source_name: MailboxName,
    on_source: bool,
    on_destination: bool,
    roles: Vec<SpecialUse>,
}

/// Runs a backup or one-way sync (`mode`), or with a writable `source` a two-way sync,
/// between sides of which at least one assigns its own UIDs.
pub(crate) fn run(
    options: &SyncOptions,
    mode: PairMode,
    mut source: Origin<'_>,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    report: &mut Report,
    state: &mut SyncState,
) -> Result<(), SyncError> {
    if mode != (PairMode::Backup { delete_extra: options.delete_extra })
        && !options.message_filter.is_everything()
    {
        return Err(SyncError::usage(
            "message filters (-t, -e, -I, -O) are only supported in a backup to this \
             destination",
        ));
    }
    let listed = source.storage().mailboxes().map_err(SyncError::global(Side::Source))?;
    let (mut source_mailboxes, source_names) = local_names(listed, destination, report);
    let left_out = listing_skips(
        Side::Source,
        source.storage(),
        &|name| destination.local_name(name),
        report,
        state,
    );
    let source_subscriptions: BTreeSet<MailboxName> = source
        .storage()
        .subscriptions()
        .map_err(SyncError::global(Side::Source))?
        .iter()
        .map(|name| destination.local_name(name))
        .collect();
    let mut destination_mailboxes =
        destination.mailboxes().map_err(SyncError::global(Side::Destination))?;
    let destination_left_out =
        listing_skips(Side::Destination, destination, &Clone::clone, report, state);
    let destination_subscriptions =
        destination.subscriptions().map_err(SyncError::global(Side::Destination))?;
    let mut listings = follow::Listings {
        two_way: mode == PairMode::TwoWay,
        dry_run: options.dry_run,
        source: &mut source_mailboxes,
        destination: &mut destination_mailboxes,
        source_names: &source_names,
    };
    follow::follow_renames(&mut source, destination, state, report, &mut listings, observer);
    let mut considered = source_mailboxes.clone();
    if mode == PairMode::TwoWay {
        considered.extend(destination_mailboxes.iter().cloned());
    }
    note_mailbox_filter(&options.mailbox_filter, &considered, &destination_mailboxes, report);

    let roles = roles_of(&source_mailboxes, &destination_mailboxes);
    let wanted_name = |name: &MailboxName| {
        options.mailbox_filter.wants(name, roles.get(name).map_or(&[][..], Vec::as_slice))
    };
    let selectable = |list: &[MailboxInfo]| -> BTreeSet<MailboxName> {
        list.iter()
            .filter(|m| m.selectable && wanted_name(&m.name))
            .map(|m| m.name.clone())
            .collect()
    };
    let on_source = selectable(&source_mailboxes);
    let on_destination = selectable(&destination_mailboxes);
    // Gmail: its mailboxes are labels of one message, its all-mail mailbox is every
    // message (README, "Gmail as a destination").
    let labels = destination.labels_as_mailboxes();
    let all_mail = destination_mailboxes
        .iter()
        .find(|m| m.special_use.contains(&SpecialUse::All))
        .map(|m| m.name.clone());
    let inbox = MailboxName::inbox();
    let can_copy = matches!(destination.copy_within(&inbox, &[], &inbox), Ok(Some(_)));
    let mut held = held::Held::new(can_copy && !options.dry_run, labels, &destination_mailboxes);

    let mut jobs = Vec::new();
    let mut delete_destination = Vec::new();
    let mut delete_source = Vec::new();
    for name in on_source.union(&on_destination) {
        let (a, b) = (on_source.contains(name), on_destination.contains(name));
        let known = state.pairs.contains_key(name);
        let source_name = source_names.get(name).cloned().unwrap_or_else(|| name.clone());
        let job = Job {
            name: name.clone(),
            source_name,
            on_source: a,
            on_destination: b,
            roles: roles.get(name).cloned().unwrap_or_default(),
        };
        match (a, b, mode) {
            (true, _, _) if !(mode == PairMode::TwoWay && !b && known) => jobs.push(job),
            // Two-way: gone from B since the last run: deleted there.
            (true, false, PairMode::TwoWay) => delete_source.push(job),
            (false, true, PairMode::TwoWay) if !known => jobs.push(job),
            (false, true, _) if name.is_inbox() => {}
            // Gmail's own folders (all mail, sent, trash, starred…) are not the source's
            // to delete.
            (false, true, _) if labels && !job.roles.is_empty() => {}
            (false, true, _) if left_out.contains(name) => report.warnings.push(format!(
                "mailbox {name} is kept on the destination: the source left it out (see \
                 skipped), it did not delete it"
            )),
            (false, true, _) => delete_destination.push(job),
            _ => {}
        }
    }
    observer.tree_planned(&TreePlan {
        delete: delete_destination.iter().map(|job| job.name.clone()).collect(),
        sync: jobs.iter().map(|job| job.name.clone()).collect(),
        subscribe: Vec::new(),
        unsubscribe: Vec::new(),
    });

    // Children before parents.
    delete_destination.reverse();
    for job in &delete_destination {
        let ours = state.pairs.get(&job.name).cloned();
        let consent = mode == (PairMode::Backup { delete_extra: true });
        if ours.is_none() && !consent {
            if matches!(mode, PairMode::Backup { .. }) {
                report.warnings.push(format!(
                    "mailbox {} is kept on the destination: the source does not have it, but \
                     dsync did not create it (--delete-extra deletes it)",
                    job.name
                ));
            }
            continue;
        }
        if destination_left_out.contains(&job.name) {
            continue;
        }
        let result = delete_if_ours(
            options,
            destination,
            &job.name,
            ours.as_ref(),
            consent,
            Side::Destination,
        );
        let two_way = mode == PairMode::TwoWay;
        if apply_deletion(result, &job.name, Side::Destination, two_way, report, state)? && two_way
        {
            // Kept for the mail only it has: that mail goes back to the side that deleted
            // the mailbox, in this run, so that both sides end the same.
            jobs.push(job.clone());
        }
    }
    delete_source.reverse();
    for job in &delete_source {
        let Some(writable) = source.writable() else { continue };
        let ours = state.pairs.get(&job.name).map(swap_sides);
        let result =
            delete_if_ours(options, writable, &job.source_name, ours.as_ref(), false, Side::Source);
        if apply_deletion(result, &job.name, Side::Source, true, report, state)? {
            jobs.push(job.clone());
        }
    }

    if labels {
        // All mail last: by then every label has had its expunges (so that what is
        // expunged there is only what no label keeps) and its saves (so that all mail
        // only copies what they stored).
        jobs.sort_by_key(|job| Some(&job.name) == all_mail.as_ref());
    }
    for job in &jobs {
        stop_if_interrupted(observer, &job.name)?;
        let result =
            sync_mailbox(options, mode, &mut source, destination, observer, job, state, &mut held);
        let result = result.map(|(mailbox_report, skipped)| {
            report.skipped.extend(skipped);
            mailbox_report
        });
        if let Some(mut mailbox_report) = keep_going_mailbox(result, report)? {
            report.warnings.append(&mut mailbox_report.warnings);
            observer.mailbox_finished(&mailbox_report);
            report.mailboxes.push(mailbox_report);
        }
    }

    sync_subscriptions(
        options,
        mode,
        &mut source,
        destination,
        report,
        state,
        &source_subscriptions,
        &destination_subscriptions,
        &source_names,
        &wanted_name,
    )
}

/// Special-use roles by name, from either side.
fn roles_of(
    source: &[MailboxInfo],
    destination: &[MailboxInfo],
) -> BTreeMap<MailboxName, Vec<SpecialUse>> {
    let mut roles: BTreeMap<MailboxName, Vec<SpecialUse>> = BTreeMap::new();
    for info in source.iter().chain(destination) {
        let entry = roles.entry(info.name.clone()).or_default();
        for role in &info.special_use {
            if !entry.contains(role) {
                entry.push(*role);
            }
        }
    }
    roles
}

/// The same pairs seen from the other side (destination UIDs as keys).
fn swap_sides(entry: &MailboxPairs) -> MailboxPairs {
    MailboxPairs {
        source_uid_validity: entry.destination_uid_validity,
        destination_uid_validity: entry.source_uid_validity,
        source_token: entry.destination_token.clone(),
        destination_token: entry.source_token.clone(),
        pairs: entry
            .pairs
            .iter()
            .map(|(a, pair)| {
                (pair.destination, Pair { destination: *a, flags: pair.flags.clone() })
            })
            .collect(),
    }
}

/// What became of a mailbox the other side no longer has.
enum Deletion {
    Deleted,
    /// It holds messages that are not ours: ours were expunged, these stay.
    Kept {
        foreign: usize,
        expunged: usize,
    },
}

/// Deletes `name` from `storage` when every message in it is ours (`ours`, seen from
/// `storage`'s side: its UIDs are the pairs' destinations), or with `consent`; otherwise
/// expunges ours and keeps it.
fn delete_if_ours(
    options: &SyncOptions,
    storage: &mut dyn StorageMut,
    name: &MailboxName,
    ours: Option<&MailboxPairs>,
    consent: bool,
    side: Side,
) -> Result<Deletion, SyncError> {
    let contents = storage.contents(name).map_err(SyncError::at(side, name))?;
    let mine: BTreeSet<Uid> = ours
        .filter(|entry| entry.destination_uid_validity == contents.status.uid_validity.get())
        .map(|entry| entry.pairs.values().map(|pair| pair.destination).collect())
        .unwrap_or_default();
    let (own, foreign): (Vec<&MessageMeta>, Vec<&MessageMeta>) =
        contents.messages.iter().partition(|meta| mine.contains(&meta.uid));
    if foreign.is_empty() || consent {
        if !options.dry_run {
            storage.delete_mailbox(name).map_err(SyncError::at(side, name))?;
        }
        return Ok(Deletion::Deleted);
    }
    if !own.is_empty() && !options.dry_run {
        let uids: Vec<Uid> = own.iter().map(|meta| meta.uid).collect();
        let mut writer = storage.writer(name).map_err(SyncError::at(side, name))?;
        writer.expunge(&uids).map_err(SyncError::at(side, name))?;
        writer.commit().map_err(SyncError::at(side, name))?;
    }
    Ok(Deletion::Kept { foreign: foreign.len(), expunged: own.len() })
}

/// Records what became of a deletion; true when the mailbox was kept (for mail that is
/// not ours).
fn apply_deletion(
    result: Result<Deletion, SyncError>,
    name: &MailboxName,
    side: Side,
    two_way: bool,
    report: &mut Report,
    state: &mut SyncState,
) -> Result<bool, SyncError> {
    match keep_going(result, report)? {
        Some(Deletion::Deleted) => {
            report.deleted_mailboxes.push(name.clone());
            state.pairs.remove(name);
        }
        Some(Deletion::Kept { foreign, expunged }) => {
            let where_ = if side == Side::Source { "source" } else { "destination" };
            let then = if two_way {
                "they are copied back to the side that deleted it"
            } else {
                "--delete-extra deletes it"
            };
            report.warnings.push(format!(
                "mailbox {name} is kept on the {where_}: it holds {foreign} message(s) dsync did \
                 not put there ({expunged} of its own expunged; {then})"
            ));
            state.pairs.remove(name);
            return Ok(true);
        }
        None => {}
    }
    Ok(false)
}

fn side_error(side: Side, mailbox: &MailboxName) -> impl Fn(StorageError) -> SyncError + '_ {
    move |error| SyncError { side, mailbox: Some(mailbox.clone()), error }
}

/// Contents of a mailbox that may not exist (yet): empty then, with `like`'s status.
fn contents_or_empty(
    storage: &mut dyn Storage,
    name: &MailboxName,
    exists: bool,
) -> Result<Option<MailboxContents>, StorageError> {
    if exists { storage.contents(name).map(Some) } else { Ok(None) }
}

fn empty_contents() -> MailboxContents {
    MailboxContents {
        status: MailboxStatus {
            uid_validity: UidValidity::MIN,
            uid_next: Uid::MIN,
            messages: 0,
            highest_modseq: None,
            guid: None,
            change_token: None,
            source_uid_validity: None,
        },
        messages: Vec::new(),
    }
}

fn new_mailbox() -> NewMailbox {
    NewMailbox { uid_validity: None, guid: None, source_uid_validity: None }
}

/// True when both sides still show the change tokens recorded after the last run.
fn unchanged(
    source: &mut dyn Storage,
    source_name: &MailboxName,
    destination: &mut dyn Storage,
    name: &MailboxName,
    entry: Option<&MailboxPairs>,
) -> bool {
    let Some(entry) = entry else { return false };
    let (Some(a), Some(b)) = (&entry.source_token, &entry.destination_token) else {
        return false;
    };
    let token = |storage: &mut dyn Storage, name: &MailboxName| {
        storage.stamp(name).ok().and_then(|stamp| stamp.change_token)
    };
    token(source, source_name).as_ref() == Some(a) && token(destination, name).as_ref() == Some(b)
}

#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
fn sync_mailbox(
    options: &SyncOptions,
    mode: PairMode,
    source: &mut Origin<'_>,
    destination: &mut dyn StorageMut,
    observer: &mut dyn Observer,
    job: &Job,
    state: &mut SyncState,
    held: &mut held::Held,
) -> Result<(MailboxReport, Vec<Skipped>), MailboxFailed> {
    let name = &job.name;
    let source_name = &job.source_name;
    let mut report = MailboxReport::new(name.clone(), MailboxAction::Update);
    if job.on_source
        && job.on_destination
        && unchanged(source.storage(), source_name, destination, name, state.pairs.get(name))
    {
        return Ok((report, Vec::new()));
    }
    let to_destination = side_error(Side::Destination, name);
    let to_source = side_error(Side::Source, source_name);

    // Create what is missing.
    if !job.on_destination {
        report.action = MailboxAction::Create;
        if !options.dry_run {
            destination
                .create_mailbox_with_roles(name, &new_mailbox(), &job.roles)
                .map_err(&to_destination)?;
        }
    }
    if !job.on_source {
        report.action = MailboxAction::Create;
        if !options.dry_run
            && let Some(writable) = source.writable()
        {
            writable
                .create_mailbox_with_roles(source_name, &new_mailbox(), &job.roles)
                .map_err(&to_source)?;
        }
    }
    let exists_now = |on: bool| on || !options.dry_run;
    let writing = |token: Option<&String>| token.map(String::as_str) == Some(WRITING);
    if job.on_destination
        && writing(state.pairs.get(name).and_then(|e| e.destination_token.as_ref()))
    {
        settle(destination, name, observer);
    }
    if job.on_source && writing(state.pairs.get(name).and_then(|e| e.source_token.as_ref())) {
        settle(source.storage(), source_name, observer);
    }
    let a = contents_or_empty(source.storage(), source_name, exists_now(job.on_source))
        .map_err(&to_source)?
        .unwrap_or_else(empty_contents);
    let b = contents_or_empty(destination, name, exists_now(job.on_destination))
        .map_err(&to_destination)?
        .unwrap_or_else(empty_contents);

    let filter = &options.message_filter;
    let wanted = |meta: &MessageMeta| filter.wants(meta);
    report.filtered = crate::report::FilteredMessages::of(filter, a.messages.iter());
    let previous = state.pairs.get(name);
    let needed = plan::unpaired(mode, &a, &b, previous, &wanted);
    let (mut a_ids, mut b_ids) = (BTreeMap::new(), BTreeMap::new());
    if needed.needs_identities() {
        a_ids = source.storage().header_hashes(source_name, &needed.source).map_err(&to_source)?;
        b_ids = destination.header_hashes(name, &needed.destination).map_err(&to_destination)?;
    }
    let plan = plan::plan(mode, &a, &b, previous, &a_ids, &b_ids, &wanted);
    // Gmail's all mail shows what its labels stored this run: found there, as expected.
    let labels_all_mail = held.is_all_mail(name);
    if plan.rematched > 0 && !labels_all_mail {
        report.warnings.push(format!(
            "mailbox {name}: {} message(s) already on the {} were recognised by content and \
             not copied again",
            plan.rematched,
            if mode == PairMode::TwoWay { "other side" } else { "destination" }
        ));
    }
    report.expunged = plan.destination_expunge.len() as u64;
    report.flags_changed = plan.destination_flags.len() as u64;
    report.source_changes = (plan.source_expunge.len() + plan.source_flags.len()) as u64;
    if options.dry_run {
        report.saved = plan.to_destination.len() as u64;
        report.bytes = sizes(&a, &plan.to_destination);
        report.source_changes += plan.to_source.len() as u64;
        return Ok((report, Vec::new()));
    }

    // The new entry: the pairs that hold, and every confirmed save from here on. Until
    // both sides' changes are applied it keeps the last run's flags and the pairs whose
    // expunge is pending, so that a failure in between leaves nothing misremembered.
    let (a_validity, b_validity) = (a.status.uid_validity.get(), b.status.uid_validity.get());
    let last: BTreeMap<Uid, Pair> = previous
        .filter(|e| (e.source_uid_validity, e.destination_uid_validity) == (a_validity, b_validity))
        .map(|e| e.pairs.clone())
        .unwrap_or_default();
    let mut entry = MailboxPairs::new(a_validity, b_validity);
    entry.pairs = plan::pairs_unless_applied(&plan, &last, &plan::Undone::all(&plan));
    state.pairs.insert(name.clone(), entry);

    let partial =
        |error: SyncError, report: &MailboxReport| MailboxFailed::after(error, report.clone());
    let mut undone = plan::Undone::default();
    let mut expunge = plan.destination_expunge.clone();
    if labels_all_mail && !expunge.is_empty() {
        // Expunged from Gmail's all mail, a message is gone from every label: only what
        // no label keeps goes (a label the source removed was expunged before).
        let labelled = destination
            .still_labelled(name, &expunge)
            .map_err(|e| partial(to_destination(e), &report))?;
        if !labelled.is_empty() {
            expunge.retain(|uid| !labelled.contains(uid));
            undone.destination_expunge.extend(labelled.iter().copied());
            report.expunged = expunge.len() as u64;
        }
    }
    let left = apply_changes(
        destination,
        name,
        &plan.destination_flags,
        &expunge,
        b.status.highest_modseq,
    )
    .map_err(|e| partial(to_destination(e), &report))?;
    undone.destination_flags.extend(left.flags);
    undone.destination_expunge.extend(left.expunges);
    let mut not_kept = left.not_kept;
    if let Some(writable) = source.writable() {
        let left = apply_changes(
            writable,
            source_name,
            &plan.source_flags,
            &plan.source_expunge,
            a.status.highest_modseq,
        )
        .map_err(|e| partial(to_source(e), &report))?;
        undone.source_flags.extend(left.flags);
        undone.source_expunge.extend(left.expunges);
        add_flags(&mut not_kept, left.not_kept);
    }
    let pairs = plan::pairs_unless_applied(&plan, &last, &undone);
    if !undone.is_empty() {
        report.warnings.push(format!(
            "mailbox {name}: {} flag change(s) and {} expunge(s) were left for the next run \
             (changed meanwhile by a mail client, or withheld by a server without UIDPLUS)",
            undone.source_flags.len() + undone.destination_flags.len(),
            undone.source_expunge.len() + undone.destination_expunge.len(),
        ));
    }
    let writing_destination = !plan.to_destination.is_empty();
    let writing_source = !plan.to_source.is_empty() && source.writable().is_some();
    if let Some(entry) = state.pairs.get_mut(name) {
        entry.pairs = pairs;
        // Until the mailbox is done, the saved state says which side is being written.
        if writing_destination {
            entry.destination_token = Some(WRITING.to_owned());
        }
        if writing_source {
            entry.source_token = Some(WRITING.to_owned());
        }
        if writing_destination || writing_source {
            let record = entry_record(name, entry);
            observer.paired(&record, state);
        }
    }
    let mut skipped = Vec::new();
    // Saves stored under a UID the storage could not tell (no UIDPLUS).
    let mut unknown = 0_u64;
    // Source → destination: what the destination holds elsewhere is copied there, the
    // rest sent.
    let a_metas: BTreeMap<Uid, &MessageMeta> = a.messages.iter().map(|m| (m.uid, m)).collect();
    let here = within::Mailbox { name, source_name, validities: (a_validity, b_validity) };
    let split = within::split(
        held,
        source.storage(),
        destination,
        &here,
        &plan.to_destination,
        &a_metas,
        &a_ids,
        &mut report.warnings,
    )
    .map_err(|e| partial(to_source(e), &report))?;
    let copied_here = within::copy(
        held,
        destination,
        &here,
        &split,
        &a_metas,
        observer,
        &mut |observer, origin, uid, _| {
            unknown += u64::from(uid.is_none());
            let validities = (a_validity, b_validity);
            record_pair(state, observer, name, validities, origin, uid, &a_metas, false);
        },
    )
    .map_err(|e| partial(to_destination(e), &report))?;
    report.copied_locally = copied_here.copied;
    let mut sends = split.sends;
    sends.extend(copied_here.sends);
    sends.sort_by_key(|(uid, _)| *uid);
    let send_flags: BTreeMap<Uid, &Flags> =
        sends.iter().map(|(uid, flags)| (*uid, flags)).collect();
    let assigns = destination.capabilities().assigns_uids;
    let excluded = held.excluded(name);
    let outcome = {
        let mut fetch = |uids: &[Uid], sink: &mut dyn crate::storage::MessageSink| {
            source.storage().fetch(source_name, uids, sink)
        };
        transfer(
            options,
            &mut fetch,
            destination,
            name,
            assigns,
            b.status.uid_next,
            observer,
            &sends,
            &a_metas,
            &mut not_kept,
            &mut |observer, origin, uid, hash| {
                unknown += u64::from(uid.is_none());
                let validities = (a_validity, b_validity);
                record_pair(state, observer, name, validities, origin, uid, &a_metas, false);
                if let (Some(uid), false, Some(meta)) = (uid, excluded, a_metas.get(&origin)) {
                    let flags = send_flags.get(&origin).copied();
                    held.insert(meta, hash, name, uid, flags);
                }
            },
        )
    };
    match outcome {
        Ok(copied) => {
            skipped.extend(refusals(&copied, name, &a_metas, Side::Destination));
            report.saved = copied.stored + copied_here.copied;
            report.bytes = copied.bytes;
            report.vanished = copied.vanished;
        }
        Err(stopped) => {
            report.saved = stopped.copied.stored + copied_here.copied;
            report.bytes = stopped.copied.bytes;
            let side = if stopped.written { Side::Destination } else { Side::Source };
            let mailbox = if stopped.written { name } else { source_name };
            return Err(partial(side_error(side, mailbox)(stopped.error), &report));
        }
    }

    // Destination → source (two-way).
    if !plan.to_source.is_empty()
        && let Some(writable) = source.writable()
    {
        let b_metas: BTreeMap<Uid, &MessageMeta> = b.messages.iter().map(|m| (m.uid, m)).collect();
        let assigns = writable.capabilities().assigns_uids;
        let mut fetch = |uids: &[Uid], sink: &mut dyn crate::storage::MessageSink| {
            destination.fetch(name, uids, sink)
        };
        let outcome = transfer(
            options,
            &mut fetch,
            writable,
            source_name,
            assigns,
            a.status.uid_next,
            observer,
            &plan.to_source,
            &b_metas,
            &mut not_kept,
            &mut |observer, origin, uid, _| {
                unknown += u64::from(uid.is_none());
                let validities = (a_validity, b_validity);
                record_pair(state, observer, name, validities, origin, uid, &b_metas, true);
            },
        );
        match outcome {
            Ok(copied) => {
                skipped.extend(refusals(&copied, source_name, &b_metas, Side::Source));
                report.source_changes += copied.stored;
            }
            Err(stopped) => {
                report.source_changes += stopped.copied.stored;
                let side = if stopped.written { Side::Source } else { Side::Destination };
                let mailbox = if stopped.written { source_name } else { name };
                return Err(partial(side_error(side, mailbox)(stopped.error), &report));
            }
        }
    }

    // What the next run compares with, unless something is left to do (a message left
    // out, a save whose UID is to be found by content, foreign mail a backup with
    // consent would delete, a change left undone).
    if mode == PairMode::TwoWay
        && let Some(entry) = state.pairs.get_mut(name)
    {
        plan::forget_not_kept(&mut entry.pairs, &not_kept);
    }
    let foreign_kept = matches!(mode, PairMode::Backup { .. }) && plan.kept_foreign > 0;
    if skipped.is_empty() && unknown == 0 && !foreign_kept && undone.is_empty() {
        // A side whose changes travel keeps the token of the listing the plan was made
        // from: a change a client makes during the run (new mail, a flag) then shows at
        // the next run, instead of hiding in a token taken afterwards. The price: a
        // mailbox this run wrote is listed once more. A one-way run's destination keeps
        // its own changes, and takes the token after the run.
        let a_token = a.status.change_token.clone();
        let b_token = if mode == PairMode::TwoWay {
            b.status.change_token.clone()
        } else {
            destination.stamp(name).ok().and_then(|stamp| stamp.change_token)
        };
        if let Some(entry) = state.pairs.get_mut(name) {
            entry.source_token = a_token;
            entry.destination_token = b_token;
        }
    } else if let Some(entry) = state.pairs.get_mut(name) {
        entry.source_token = None;
        entry.destination_token = None;
    }
    Ok((report, skipped))
}

fn sizes(contents: &MailboxContents, saves: &[(Uid, Flags)]) -> u64 {
    let wanted: BTreeSet<Uid> = saves.iter().map(|(uid, _)| *uid).collect();
    contents
        .messages
        .iter()
        .filter(|m| wanted.contains(&m.uid))
        .filter_map(|m| m.virtual_size)
        .sum()
}

/// Flag changes and expunges on one side, committed before any copy; flag changes only
/// to messages unchanged since `modseq` (the listing's HIGHESTMODSEQ) where the storage
/// can tell. Returns what the storage left undone.
fn apply_changes(
    storage: &mut dyn StorageMut,
    name: &MailboxName,
    flags: &[(Uid, Flags)],
    expunge: &[Uid],
    modseq: Option<u64>,
) -> Result<NotApplied, StorageError> {
    if flags.is_empty() && expunge.is_empty() {
        return Ok(NotApplied::default());
    }
    let mut writer = storage.writer(name)?;
    if let Some(modseq) = modseq {
        writer.unchanged_since(modseq);
    }
    for (uid, new) in flags {
        writer.set_flags(*uid, new)?;
    }
    if !expunge.is_empty() {
        writer.expunge(expunge)?;
    }
    writer.commit()?;
    Ok(writer.take_not_applied())
}

/// Records a confirmed save as a pair, in the state and (one appended line) the saved
/// state. `reverse`: the save went from the destination to the source (two-way).
#[allow(clippy::too_many_arguments)]
fn record_pair(
    state: &mut SyncState,
    observer: &mut dyn Observer,
    name: &MailboxName,
    (a_validity, b_validity): (u32, u32),
    origin: Uid,
    uid: Option<Uid>,
    metas: &BTreeMap<Uid, &MessageMeta>,
    reverse: bool,
) {
    let Some(uid) = uid else {
        // Stored, UID unknown (no UIDPLUS): the next run finds it by content.
        if let Some(entry) = state.pairs.get_mut(name) {
            entry.source_token = None;
            entry.destination_token = None;
        }
        return;
    };
    let flags = metas.get(&origin).map(|meta| meta.flags.clone()).unwrap_or_default();
    let (source, destination) = if reverse { (uid, origin) } else { (origin, uid) };
    let pair = Pair { destination, flags };
    let record = pair_record(name, a_validity, b_validity, source, &pair);
    let entry = state
        .pairs
        .entry(name.clone())
        .or_insert_with(|| MailboxPairs::new(a_validity, b_validity));
    entry.pairs.insert(source, pair);
    observer.paired(&record, state);
}

/// What a copy could not store, for good (too big for the server): left out and
/// reported (the run ends with exit 65, and the next run tries again).
fn refusals(
    copied: &Copied,
    name: &MailboxName,
    metas: &BTreeMap<Uid, &MessageMeta>,
    side: Side,
) -> Vec<Skipped> {
    copied
        .refused
        .iter()
        .map(|(uid, error)| {
            let size = metas.get(uid).and_then(|meta| meta.virtual_size);
            let item = match size {
                Some(size) => format!("UID {uid} ({})", crate::report::human_bytes(size)),
                None => format!("UID {uid}"),
            };
            let reason = format!("the {} refused it: {error}", side_word(side));
            Skipped { side, skip: Skip::new(Some(name.clone()), item, reason) }
        })
        .collect()
}

fn side_word(side: Side) -> &'static str {
    if side == Side::Source { "source" } else { "destination" }
}

/// Copies `saves` from `fetch` into `storage`'s mailbox `name`, retrying what the storage
/// asked to slow down for (waiting as it said, or 1, 2, 4… seconds), then stopping the run
/// with a temporary error when it keeps asking.
#[allow(clippy::too_many_arguments)]
fn transfer(
    options: &SyncOptions,
    fetch: &mut Fetch<'_>,
    storage: &mut dyn StorageMut,
    name: &MailboxName,
    assigns: bool,
    uid_next: Uid,
    observer: &mut dyn Observer,
    saves: &[(Uid, Flags)],
    metas: &BTreeMap<Uid, &MessageMeta>,
    not_kept: &mut Flags,
    stored: &mut Stored<'_>,
) -> Result<Copied, Box<CopyStopped>> {
    let mut total = Copied::default();
    if saves.is_empty() {
        return Ok(total);
    }
    let mut pending: Vec<(Uid, Flags)> = saves.to_vec();
    let mut next_uid = uid_next;
    for round in 0..=RETRY_ROUNDS {
        let mut writer = match storage.writer(name) {
            Ok(writer) => writer,
            Err(error) => {
                return Err(Box::new(CopyStopped { error, written: true, copied: total }));
            }
        };
        let mut target = Target {
            mailbox: name,
            writer: &mut *writer,
            assigns,
            next_uid,
            commit_interval: options.commit_interval,
        };
        let result = copy::copy(fetch, &mut target, observer, &pending, metas, stored);
        next_uid = target.next_uid;
        add_flags(not_kept, writer.take_not_applied().not_kept);
        drop(writer);
        let copied = match result {
            Ok(copied) => copied,
            Err(mut stopped) => {
                add(&mut total, std::mem::take(&mut stopped.copied));
                stopped.copied = total;
                return Err(stopped);
            }
        };
        let later = copied.later.clone();
        add(&mut total, copied);
        if later.is_empty() {
            return Ok(total);
        }
        if round == RETRY_ROUNDS {
            let error = StorageError::new(
                ErrorKind::Temporary,
                format!(
                    "the server keeps asking to slow down: {} message(s) of {name} not copied \
                     after {RETRY_ROUNDS} waits; run again later",
                    later.len()
                ),
            );
            return Err(Box::new(CopyStopped { error, written: true, copied: total }));
        }
        // A zero wait: the storage asked to slow down without saying how long.
        let asked = later.iter().filter_map(|(_, wait)| *wait).filter(|w| !w.is_zero()).max();
        let wait = asked.unwrap_or(Duration::from_secs(1 << round)).min(MAX_BACKOFF);
        if !sleep_unless_interrupted(observer, wait) {
            let error = StorageError::new(ErrorKind::Interrupted, "interrupted");
            return Err(Box::new(CopyStopped { error, written: true, copied: total }));
        }
        let retry: BTreeSet<Uid> = later.iter().map(|(uid, _)| *uid).collect();
        pending.retain(|(uid, _)| retry.contains(uid));
    }
    Ok(total)
}

/// Adds `more` to `flags`.
fn add_flags(flags: &mut Flags, more: Flags) {
    flags.system = flags.system.union(more.system);
    flags.keywords.extend(more.keywords);
}

fn add(total: &mut Copied, more: Copied) {
    total.stored += more.stored;
    total.bytes += more.bytes;
    total.vanished += more.vanished;
    total.refused.extend(more.refused);
    total.later = more.later;
}

/// Waits until `name`'s UIDNEXT on `storage` stays the same for a second (at most ten
/// seconds): a run that stopped while copying into it may have left a server session
/// that still saves the messages it was sent, and listing the mailbox before they land
/// would copy them again.
fn settle(storage: &mut dyn Storage, name: &MailboxName, observer: &mut dyn Observer) {
    let uid_next = |storage: &mut dyn Storage| storage.status(name).ok().map(|s| s.uid_next);
    let mut last = uid_next(storage);
    for _ in 0..10 {
        if !sleep_unless_interrupted(observer, Duration::from_secs(1)) {
            return;
        }
        let now = uid_next(storage);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Waits `duration`, asking the observer every quarter second whether to stop; false when
/// it says so.
fn sleep_unless_interrupted(observer: &mut dyn Observer, duration: Duration) -> bool {
    let step = Duration::from_millis(250);
    let mut left = duration;
    while !left.is_zero() {
        if observer.interrupted() {
            return false;
        }
        let now = left.min(step);
        std::thread::sleep(now);
        left -= now;
    }
    !observer.interrupted()
}

/// What a side subscribed or unsubscribed since the last run travels to the other side
/// (two-way: both ways; one-way and backup: only the source's, the destination's own
/// subscriptions stay, unless a backup's `delete_extra` makes it the source's exactly).
#[allow(clippy::too_many_arguments)]
fn sync_subscriptions(
    options: &SyncOptions,
    mode: PairMode,
    source: &mut Origin<'_>,
    destination: &mut dyn StorageMut,
    report: &mut Report,
    state: &mut SyncState,
    a_now: &BTreeSet<MailboxName>,
    b_now: &BTreeSet<MailboxName>,
    source_names: &BTreeMap<MailboxName, MailboxName>,
    wanted: &dyn Fn(&MailboxName) -> bool,
) -> Result<(), SyncError> {
    let names: BTreeSet<&MailboxName> = a_now
        .iter()
        .chain(b_now)
        .chain(&state.subscribed_source)
        .chain(&state.subscribed_destination)
        .filter(|name| wanted(name))
        .collect();
    let (mut a_final, mut b_final) = (a_now.clone(), b_now.clone());
    let (mut a_changes, mut b_changes) = (Vec::new(), Vec::new());
    for name in names {
        let (in_a, in_b) = (a_now.contains(name), b_now.contains(name));
        if in_a == in_b {
            continue;
        }
        let a_changed = in_a != state.subscribed_source.contains(name);
        let b_changed = in_b != state.subscribed_destination.contains(name);
        let target = match mode {
            PairMode::Backup { delete_extra: true } => in_a,
            PairMode::Backup { .. } | PairMode::OneWay if a_changed => in_a,
            PairMode::Backup { .. } | PairMode::OneWay => continue,
            PairMode::TwoWay => match (a_changed, b_changed) {
                (true, false) => in_a,
                (false, true) => in_b,
                _ => true,
            },
        };
        if in_b != target {
            b_changes.push((name.clone(), target));
        }
        if in_a != target && mode == PairMode::TwoWay {
            a_changes.push((name.clone(), target));
        }
    }
    if !options.dry_run && !b_changes.is_empty() {
        let refused = destination
            .update_subscriptions(&b_changes)
            .map_err(SyncError::global(Side::Destination))?;
        drop_refused(&mut b_changes, refused, Side::Destination, report);
    }
    if !options.dry_run
        && !a_changes.is_empty()
        && let Some(writable) = source.writable()
    {
        let sent: Vec<(MailboxName, bool)> = a_changes
            .iter()
            .map(|(name, on)| {
                (source_names.get(name).cloned().unwrap_or_else(|| name.clone()), *on)
            })
            .collect();
        let refused =
            writable.update_subscriptions(&sent).map_err(SyncError::global(Side::Source))?;
        let refused_names: BTreeSet<MailboxName> =
            refused.iter().map(|(name, _)| name.clone()).collect();
        let mut kept = sent.iter().map(|(name, _)| !refused_names.contains(name));
        a_changes.retain(|_| kept.next().unwrap_or(true));
        for (name, error) in refused {
            report.failures.push(SyncError { side: Side::Source, mailbox: Some(name), error });
        }
    }
    for (name, on) in &b_changes {
        if *on {
            report.subscribed += 1;
            b_final.insert(name.clone());
        } else {
            report.unsubscribed += 1;
            b_final.remove(name);
        }
    }
    for (name, on) in &a_changes {
        if *on {
            a_final.insert(name.clone());
        } else {
            a_final.remove(name);
        }
    }
    if !options.dry_run {
        let record = |recorded: &BTreeSet<MailboxName>, now: BTreeSet<MailboxName>| {
            recorded
                .iter()
                .filter(|name| !wanted(name))
                .cloned()
                .chain(now.into_iter().filter(|name| wanted(name)))
                .collect()
        };
        state.subscribed_source = record(&state.subscribed_source, a_final);
        state.subscribed_destination = record(&state.subscribed_destination, b_final);
    }
    Ok(())
}

fn drop_refused(
    changes: &mut Vec<(MailboxName, bool)>,
    refused: Vec<(MailboxName, StorageError)>,
    side: Side,
    report: &mut Report,
) {
    let refused_names: BTreeSet<&MailboxName> = refused.iter().map(|(name, _)| name).collect();
    changes.retain(|(name, _)| !refused_names.contains(name));
    for (name, error) in refused {
        report.failures.push(SyncError { side, mailbox: Some(name), error });
    }
}
