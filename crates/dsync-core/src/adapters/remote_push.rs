//! Push: one of our storages (a Maildir, an sdbox) into a Dovecot reached through dsync's
//! wire protocol, the way `doveadm backup maildir:… remote:HOST` does it: we are the
//! master and the exporter, the remote `dsync-server` is a backup *receiver*.
//!
//! Who decides what. A backup receiver is a whole Dovecot brain: it never tells us what it
//! holds (no mail list comes back, only requests for bodies), it takes a description of
//! the source — mailbox tree, per mailbox its status and complete mail list — and makes
//! its side equal to it (creates, renames, deletes mailboxes; saves, reverts flags,
//! expunges). So in this role there is no destination-side plan for our engine to make:
//! what the engine's planner does for a writable destination, Dovecot's importer does on
//! its side, from the same facts. What remains ours is deciding what the source *is*
//! (its listing through the ordinary [`Storage`] trait, exactly what a local backup
//! reads) and one safety decision Dovecot gets wrong: whether the push may go ahead at
//! all (`inbox_refusal`).
//!
//! The safety decision. When Dovecot's importer cannot reach our description of a
//! mailbox by saves and expunges (one of its mails has a UID at or above our UIDNEXT; one
//! of ours with a UID below its UIDNEXT is missing there or is another mail) it deletes
//! the mailbox and fails, for a later run to rebuild it. For INBOX the delete itself fails
//! ("INBOX can't be deleted") *after* the mail files were unlinked (trap T6 of the
//! notes): mail gone, run failed, and a two-way sync afterwards spreads the loss. Before
//! the push conversation starts, a short pull conversation lists the remote INBOX; when
//! our INBOX cannot be imported without that delete, nothing is pushed and the run fails
//! with the reason (exit 65). The push then checks that the remote INBOX is still what
//! was listed before it sends INBOX's mail list, and INBOX goes first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Duration;

use dsync_proto::proto::{
    ChangeType, Existence, Guid128, Mail, MailChange, MailRequest, Mailbox, MailboxDeletes,
    MailboxState, TreeNode,
};
use dsync_proto::{PullSession, PushSession, RemoteCommand};

use super::remote::convert;
use crate::error::{ErrorKind, Side, StorageError, SyncError};
use crate::execute::Failed;
use crate::model::{MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MessageMeta};
use crate::plan::MailboxAction;
use crate::report::{MailboxReport, Report};
use crate::storage::{MessageSink, Storage};

/// One of our mailboxes as the push describes it.
#[derive(Debug, Clone)]
struct Described {
    name: MailboxName,
    guid: MailboxGuid,
    contents: MailboxContents,
}

/// Pushes everything `source` holds into the Dovecot that `command` reaches (a
/// `doveadm dsync-server` at the other end), as `doveadm backup` does: afterwards the
/// remote's mailboxes, subscriptions, mailbox and message GUIDs, UIDVALIDITY, UIDNEXT,
/// UIDs, flags, keywords, received dates and POP3 data are the source's. Only mails the
/// remote lacks travel. `timeout` is the I/O timeout (doveadm's `-T`).
pub fn push(
    source: &mut dyn Storage,
    command: &RemoteCommand,
    timeout: Duration,
) -> Result<Report, Failed> {
    let mut report = Report::default();
    let fail_source =
        |error| Failed::new(SyncError::global(Side::Source)(error), Report::default());
    let listed = source.mailboxes().map_err(fail_source)?;
    let subscriptions = source.subscriptions().map_err(fail_source)?;
    let mut described = Vec::new();
    for info in listed.iter().filter(|info| info.selectable) {
        let contents = source.contents(&info.name).map_err(|error| {
            Failed::new(SyncError::at(Side::Source, &info.name)(error), Report::default())
        })?;
        let guid = contents.status.guid.unwrap_or_else(|| fallback_guid(&info.name));
        described.push(Described { name: info.name.clone(), guid, contents });
    }
    // INBOX first: its safety is checked before any mailbox's mails are imported.
    described.sort_by(|a, b| (!a.name.is_inbox(), &a.name).cmp(&(!b.name.is_inbox(), &b.name)));
    for skip in source.take_skipped() {
        report.skipped.push(crate::report::Skipped { side: Side::Source, skip });
    }

    let fail_remote = |error: StorageError, report: &mut Report| {
        Failed::new(SyncError::global(Side::Destination)(error), std::mem::take(report))
    };
    let inbox = described.iter().find(|d| d.name.is_inbox());
    let listed_inbox = match inbox {
        Some(ours) => {
            preflight_inbox(command, timeout, ours).map_err(|e| fail_remote(e, &mut report))?
        }
        None => None,
    };

    let tree = tree_nodes(&listed, &described, &subscriptions);
    let mut session = PushSession::start(command, timeout, &tree, &MailboxDeletes::default())
        .map_err(|error| fail_remote(convert(error), &mut report))?;
    for ours in &described {
        match push_mailbox(&mut session, source, ours, listed_inbox.as_ref()) {
            Ok(Some(done)) => report.mailboxes.push(done),
            Ok(None) => report.warnings.push(format!(
                "{}: the remote did not take the mailbox (it reported it lost or ignored)",
                ours.name
            )),
            Err(error) => {
                return Err(Failed::new(
                    SyncError::at(Side::Destination, &ours.name)(error),
                    report,
                ));
            }
        }
    }
    session.finish().map_err(|error| fail_remote(convert(error), &mut report))?;
    Ok(report)
}

/// A GUID for a mailbox whose storage keeps none (Dovecot gives every mailbox one, and
/// the protocol names mailboxes by it): derived from the name, so every push gives the
/// same one.
fn fallback_guid(name: &MailboxName) -> MailboxGuid {
    crate::derived_guid::hash_guid(
        format!("dsync-rs push {}", name.components().join("\t")).as_bytes(),
    )
}

/// The remote INBOX as the preflight listed it: its status and its mails by UID.
#[derive(Debug, Clone)]
struct ListedInbox {
    status: Mailbox,
    mails: BTreeMap<u32, String>,
}

/// Lists the remote INBOX (a short pull conversation) and applies [`inbox_refusal`].
fn preflight_inbox(
    command: &RemoteCommand,
    timeout: Duration,
    ours: &Described,
) -> Result<Option<ListedInbox>, StorageError> {
    let mut session = PullSession::start_with_timeout(command, timeout).map_err(convert)?;
    let node = session.tree().iter().find(|node| {
        node.name.len() == 1
            && node.name[0].eq_ignore_ascii_case("INBOX")
            && node.existence == Existence::Exists
    });
    let Some((guid, uid_validity)) = node.and_then(|node| node.mailbox_guid.zip(node.uid_validity))
    else {
        session.finish().map_err(convert)?;
        return Ok(None);
    };
    let fresh = Mailbox::fresh(guid, uid_validity);
    let Some(export) = session.open(&fresh).map_err(convert)? else {
        session.finish().map_err(convert)?;
        return Ok(None);
    };
    let mut mails = BTreeMap::new();
    for change in &export.changes {
        match change.change_type {
            ChangeType::Save => {
                mails.insert(change.uid, change.guid.clone().unwrap_or_default());
            }
            ChangeType::Expunge => {
                mails.remove(&change.uid);
            }
            ChangeType::FlagChange => {}
        }
    }
    let listed = ListedInbox { status: export.mailbox.clone(), mails };
    if !export.unchanged {
        session
            .close(&MailboxState {
                mailbox_guid: guid,
                last_uidvalidity: uid_validity,
                ..MailboxState::default()
            })
            .map_err(convert)?;
    }
    session.finish().map_err(convert)?;
    if let Some(reason) = inbox_refusal(&ours.contents, &listed.status, &listed.mails) {
        return Err(StorageError::new(
            ErrorKind::InvalidData,
            format!(
                "push refused, nothing was changed on the remote: {reason}. Dovecot would have to \
                 delete and recreate its INBOX, and it unlinks the mail before it finds that INBOX \
                 cannot be deleted. Empty the remote INBOX (or the whole remote store) first"
            ),
        ));
    }
    Ok(Some(listed))
}

/// Why Dovecot's importer (a backup receiver: `dsync-mailbox-import.c`, reverting local
/// changes) could not make the remote mailbox `remote` with `remote_mails` (UID → GUID)
/// equal to `ours` without deleting the mailbox, or `None` when it can: every remote mail
/// at or above our UIDNEXT, and every one of ours below the remote's UIDNEXT that the
/// remote lacks or holds as another mail, makes it delete the whole mailbox.
fn inbox_refusal(
    ours: &MailboxContents,
    remote: &Mailbox,
    remote_mails: &BTreeMap<u32, String>,
) -> Option<String> {
    if remote_mails.is_empty()
        && remote.uid_next <= ours.messages.first().map_or(u32::MAX, |m| m.uid.get())
    {
        return None;
    }
    if remote.uid_validity != ours.status.uid_validity.get() && !remote_mails.is_empty() {
        return Some(format!(
            "the remote INBOX has UIDVALIDITY {} and mail, ours has UIDVALIDITY {}",
            remote.uid_validity,
            ours.status.uid_validity.get()
        ));
    }
    let our_uid_next = ours.status.uid_next.get();
    if let Some((&uid, _)) = remote_mails.range(our_uid_next..).next() {
        return Some(format!(
            "the remote INBOX holds UID {uid}, at or above our UIDNEXT {our_uid_next}"
        ));
    }
    for meta in ours.messages.iter().filter(|m| m.uid.get() < remote.uid_next) {
        let guid = meta.guid.as_deref().unwrap_or_default();
        match remote_mails.get(&meta.uid.get()) {
            Some(theirs) if guid.is_empty() || theirs == guid => {}
            Some(_) => {
                return Some(format!("the remote INBOX holds another mail under UID {}", meta.uid));
            }
            None => {
                return Some(format!(
                    "the remote INBOX lacks our UID {} below its UIDNEXT {} (it cannot save it \
                     under that UID)",
                    meta.uid, remote.uid_next
                ));
            }
        }
    }
    None
}

/// Our tree as `N` items, parents before children: every mailbox with its GUID,
/// UIDVALIDITY and UIDNEXT, `\Noselect` ones and missing parents as paths only
/// (existence `n`: a `y` directory would become a mailbox in a Maildir++ store, trap 7),
/// subscriptions on their nodes (a subscribed name that is no mailbox as a node that does
/// not exist).
fn tree_nodes(
    listed: &[MailboxInfo],
    described: &[Described],
    subscriptions: &BTreeSet<MailboxName>,
) -> Vec<TreeNode> {
    let mut nodes: BTreeMap<Vec<String>, TreeNode> = BTreeMap::new();
    let add_parents = |nodes: &mut BTreeMap<Vec<String>, TreeNode>, name: &[String]| {
        for depth in 1..name.len() {
            nodes.entry(name[..depth].to_vec()).or_insert_with(|| TreeNode {
                name: name[..depth].to_vec(),
                ..TreeNode::default()
            });
        }
    };
    for info in listed.iter().filter(|info| !info.selectable) {
        add_parents(&mut nodes, info.name.components());
        nodes.insert(
            info.name.components().to_vec(),
            TreeNode { name: info.name.components().to_vec(), ..TreeNode::default() },
        );
    }
    for mailbox in described {
        add_parents(&mut nodes, mailbox.name.components());
        let status = &mailbox.contents.status;
        nodes.insert(
            mailbox.name.components().to_vec(),
            TreeNode {
                name: mailbox.name.components().to_vec(),
                existence: Existence::Exists,
                mailbox_guid: Some(Guid128(mailbox.guid.0)),
                uid_validity: Some(status.uid_validity.get()),
                uid_next: Some(status.uid_next.get()),
                ..TreeNode::default()
            },
        );
    }
    for name in subscriptions {
        add_parents(&mut nodes, name.components());
        nodes
            .entry(name.components().to_vec())
            .or_insert_with(|| TreeNode { name: name.components().to_vec(), ..TreeNode::default() })
            .subscribed = true;
    }
    // INBOX spelled as Dovecot spells it.
    nodes
        .into_values()
        .map(|mut node| {
            if node.name.len() == 1 && node.name[0].eq_ignore_ascii_case("INBOX") {
                node.name[0] = "INBOX".into();
            }
            node
        })
        .collect()
}

/// Our status of a mailbox as a `B` item.
fn mailbox_item(ours: &Described) -> Mailbox {
    let status = &ours.contents.status;
    let have_guids =
        ours.contents.messages.iter().all(|m| m.guid.as_deref().is_some_and(|g| !g.is_empty()));
    Mailbox {
        mailbox_guid: Guid128(ours.guid.0),
        uid_validity: status.uid_validity.get(),
        uid_next: status.uid_next.get(),
        messages_count: u32::try_from(ours.contents.messages.len()).unwrap_or(u32::MAX),
        first_recent_uid: status.uid_next.get(),
        highest_modseq: highest_modseq(ours),
        have_guids,
        have_save_guids: have_guids,
        ..Mailbox::default()
    }
}

fn highest_modseq(ours: &Described) -> u64 {
    ours.contents.status.highest_modseq.unwrap_or(1).max(1)
}

/// One mail of ours as a `C` item: saved, with its final flags and keywords.
fn change_item(meta: &MessageMeta, modseq: u64) -> MailChange {
    MailChange {
        change_type: ChangeType::Save,
        uid: meta.uid.get(),
        guid: meta.guid.clone(),
        modseq: Some(modseq),
        final_flags: Some(super::remote::protocol_flags(meta.flags.system)),
        keyword_changes: meta.flags.keywords.iter().map(|k| format!("&{k}")).collect(),
        ..MailChange::default()
    }
}

/// One mailbox's part of the conversation; `None` when the remote does not take it.
fn push_mailbox(
    session: &mut PushSession,
    source: &mut dyn Storage,
    ours: &Described,
    listed_inbox: Option<&ListedInbox>,
) -> Result<Option<MailboxReport>, StorageError> {
    let remote = session.offer(&mailbox_item(ours)).map_err(convert)?;
    if remote.mailbox_lost || remote.mailbox_ignore {
        return Ok(None);
    }
    if let (true, Some(listed)) = (ours.name.is_inbox(), listed_inbox) {
        let same = |b: &Mailbox| (b.uid_validity, b.uid_next, b.messages_count, b.highest_modseq);
        if same(&remote) != same(&listed.status) {
            return Err(StorageError::new(
                ErrorKind::Temporary,
                "the remote INBOX changed while the push started; nothing of it was changed: run again",
            ));
        }
    }
    let created = remote.messages_count == 0 && remote.uid_next <= 1;
    let modseq = highest_modseq(ours);
    let changes: Vec<MailChange> =
        ours.contents.messages.iter().map(|m| change_item(m, modseq)).collect();
    let requests = session.describe(&[], &changes).map_err(convert)?;
    let by_uid: BTreeMap<u32, &MessageMeta> =
        ours.contents.messages.iter().map(|m| (m.uid.get(), m)).collect();
    let by_guid: BTreeMap<&str, u32> = ours
        .contents
        .messages
        .iter()
        .filter_map(|m| m.guid.as_deref().map(|g| (g, m.uid.get())))
        .collect();
    let wanted: BTreeSet<u32> = requests
        .iter()
        .filter_map(|request: &MailRequest| match (request.uid, request.guid.as_deref()) {
            (Some(uid), _) if by_uid.contains_key(&uid) => Some(uid),
            (_, Some(guid)) => by_guid.get(guid).copied(),
            _ => None,
        })
        .collect();
    let uids: Vec<crate::model::Uid> =
        wanted.iter().filter_map(|&uid| crate::model::Uid::new(uid)).collect();
    let mut sink =
        PushSink { session, by_uid: &by_uid, body: Vec::new(), sent: 0, bytes: 0, error: None };
    let fetched = source.fetch(&ours.name, &uids, &mut sink);
    let (sent, bytes, send_error) = (sink.sent, sink.bytes, sink.error.take());
    if let Some(error) = send_error {
        return Err(convert(error));
    }
    fetched?;
    let state = MailboxState {
        mailbox_guid: Guid128(ours.guid.0),
        last_uidvalidity: ours.contents.status.uid_validity.get(),
        last_common_uid: ours.contents.status.uid_next.get().saturating_sub(1),
        last_common_modseq: modseq,
        last_common_pvt_modseq: 0,
        last_messages_count: Some(u32::try_from(ours.contents.messages.len()).unwrap_or(u32::MAX)),
        changes_during_sync: false,
    };
    session.close(&state).map_err(convert)?;
    let action = if created { MailboxAction::Create } else { MailboxAction::Update };
    let mut done = MailboxReport::new(ours.name.clone(), action);
    done.saved = sent;
    done.bytes = bytes;
    let after = u64::from(remote.messages_count) + sent;
    done.expunged = after.saturating_sub(ours.contents.messages.len() as u64);
    Ok(Some(done))
}

/// Answers the remote's requests with the bodies the source streams: each body is held
/// until the source names its UID, then sent with the mail's item.
struct PushSink<'a> {
    session: &'a mut PushSession,
    by_uid: &'a BTreeMap<u32, &'a MessageMeta>,
    body: Vec<u8>,
    sent: u64,
    bytes: u64,
    error: Option<dsync_proto::ClientError>,
}

impl MessageSink for PushSink<'_> {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        self.body.clear();
        body.read_to_end(&mut self.body).map_err(|error| {
            StorageError::with_source(ErrorKind::Temporary, "reading a message", error)
        })?;
        Ok(())
    }

    fn done(&mut self, uid: crate::model::Uid) -> Result<(), StorageError> {
        let Some(meta) = self.by_uid.get(&uid.get()) else { return Ok(()) };
        let mail = Mail {
            guid: meta.guid.clone(),
            uid: Some(uid.get()),
            pop3_uidl: meta.pop3_uidl.clone(),
            pop3_order: meta.pop3_order,
            received_date: meta.received,
            saved_date: meta.received,
            stream: true,
        };
        let body = std::mem::take(&mut self.body);
        let stream = for_dovecot_save(&body);
        if let Err(error) = self.session.send_mail(&mail, &mut &stream[..]) {
            let message = error.to_string();
            self.error = Some(error);
            return Err(StorageError::new(ErrorKind::Temporary, message));
        }
        self.sent += 1;
        self.bytes += body.len() as u64;
        self.body = body;
        Ok(())
    }
}

/// The stream that makes Dovecot store a message it then serves as `body` (IMAP form).
///
/// Dovecot's Maildir and dbox saves read the stream through `i_stream_create_lf`, which
/// drops the CR in front of every LF (`\r\n` → `\n`, and also `\r\r\n` → `\r\n`).
/// Serving adds a CR to every LF without one. A CRLF line end survives that round trip;
/// a CR that stands right before a CRLF (spam has lines ending `\r\r\n`) would be lost,
/// as it is when doveadm copies such a message between two Dovecots. One extra CR in
/// front of such a line end keeps it.
fn for_dovecot_save(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memmem::find(body, b"\r\r\n").is_none() {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    for (index, &byte) in body.iter().enumerate() {
        if byte == b'\n' && index >= 2 && &body[index - 2..index] == b"\r\r" {
            out.push(b'\r');
        }
        out.push(byte);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, MailboxStatus, Uid, UidValidity};

    fn contents(uid_next: u32, mails: &[(u32, &str)]) -> MailboxContents {
        let status = MailboxStatus::new(
            UidValidity::new(7).expect("nonzero"),
            Uid::new(uid_next).expect("nonzero"),
            u32::try_from(mails.len()).expect("few"),
        );
        let messages = mails
            .iter()
            .map(|&(uid, guid)| {
                let mut meta = MessageMeta::new(Uid::new(uid).expect("nonzero"), Flags::default());
                meta.guid = Some(guid.into());
                meta
            })
            .collect();
        MailboxContents { status, messages }
    }

    fn remote(uid_next: u32, count: u32) -> Mailbox {
        Mailbox { uid_validity: 7, uid_next, messages_count: count, ..Mailbox::default() }
    }

    #[test]
    fn an_inbox_dovecot_must_delete_is_refused_and_one_it_can_update_is_not() {
        let ours = contents(5, &[(1, "a"), (2, "b"), (4, "d")]);
        let remote_mails = |list: &[(u32, &str)]| -> BTreeMap<u32, String> {
            list.iter().map(|&(uid, guid)| (uid, guid.to_owned())).collect()
        };
        // Fresh, or what we pushed before (plus our later mails, minus our expunges).
        assert_eq!(inbox_refusal(&ours, &remote(1, 0), &BTreeMap::new()), None);
        assert_eq!(
            inbox_refusal(&ours, &remote(4, 3), &remote_mails(&[(1, "a"), (2, "b"), (3, "c")])),
            None
        );
        // A mail Dovecot got on its own (UID 5 ≥ our UIDNEXT).
        let above = inbox_refusal(
            &ours,
            &remote(6, 4),
            &remote_mails(&[(1, "a"), (2, "b"), (4, "d"), (5, "x")]),
        );
        assert!(above.is_some_and(|r| r.contains("UID 5")));
        // One of ours expunged there, one replaced, another UIDVALIDITY.
        let missing = inbox_refusal(&ours, &remote(5, 2), &remote_mails(&[(1, "a"), (4, "d")]));
        assert!(missing.is_some_and(|r| r.contains("lacks our UID 2")));
        let other =
            inbox_refusal(&ours, &remote(5, 3), &remote_mails(&[(1, "a"), (2, "z"), (4, "d")]));
        assert!(other.is_some_and(|r| r.contains("another mail under UID 2")));
        let uidvalidity = Mailbox { uid_validity: 8, ..remote(5, 3) };
        assert!(
            inbox_refusal(&ours, &uidvalidity, &remote_mails(&[(1, "a"), (2, "b"), (4, "d")]))
                .is_some()
        );
        // An empty remote INBOX whose UIDNEXT is past our first UID cannot take it either.
        assert!(inbox_refusal(&ours, &remote(3, 0), &BTreeMap::new()).is_some());
    }

    #[test]
    fn a_cr_before_a_line_end_gets_one_more_for_dovecots_lf_stream() {
        assert_eq!(&*for_dovecot_save(b"a\r\nb\r\n"), b"a\r\nb\r\n");
        assert_eq!(&*for_dovecot_save(b"x\r\r\r\ny\r\r"), b"x\r\r\r\r\ny\r\r");
    }

    #[test]
    fn the_tree_has_parents_before_children_and_subscriptions_on_their_nodes() {
        let name = |s: &str| MailboxName::split(s, Some('/')).expect("valid");
        let described = vec![Described {
            name: name("Archive/2024"),
            guid: MailboxGuid([1; 16]),
            contents: contents(3, &[(1, "a")]),
        }];
        let listed = vec![MailboxInfo::new(name("Archive/2024"))];
        let subscriptions = BTreeSet::from([name("Archive/2024"), name("Gone")]);
        let tree = tree_nodes(&listed, &described, &subscriptions);
        let names: Vec<String> = tree.iter().map(|n| n.name.join("/")).collect();
        assert_eq!(names, ["Archive", "Archive/2024", "Gone"]);
        assert_eq!((tree[0].existence, tree[0].mailbox_guid), (Existence::Nonexistent, None));
        assert_eq!(
            (tree[1].uid_validity, tree[1].uid_next, tree[1].subscribed),
            (Some(7), Some(3), true)
        );
        assert_eq!((tree[2].existence, tree[2].subscribed), (Existence::Nonexistent, true));
    }
}
