//! `dsync verify SOURCE DEST`: what a mail client would notice between two locations —
//! folders, subscriptions, UIDVALIDITY, UIDNEXT, UIDs, sizes, flags, keywords, received
//! dates, POP3 UIDLs and order (where both sides keep them), and with `--bodies` the
//! message contents. Every difference is printed; any difference makes the exit code 1.
//! `backup --verify` runs the same comparison after the copy ([`after_run`]).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher as _;
use std::io::Read;

use dsync_core::filter::{MailboxFilter, MessageFilter};
use dsync_core::{
    ErrorKind, Flags, MailboxInfo, MailboxName, MessageMeta, MessageSink, SpecialUse, Storage,
    StorageError, Uid,
};
use serde::Serialize;

use crate::exit::CliError;
use crate::job::{Job, Task};
use crate::open::{self, Access};

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Difference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mailbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<u32>,
    #[serde(rename = "difference")]
    pub(crate) text: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.mailbox, self.uid) {
            (Some(mailbox), Some(uid)) => write!(f, "{mailbox}: UID {uid}: {}", self.text),
            (Some(mailbox), None) => write!(f, "{mailbox}: {}", self.text),
            _ => f.write_str(&self.text),
        }
    }
}

/// What was compared.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Comparison {
    pub(crate) mailboxes: u64,
    pub(crate) messages: u64,
    /// Message contents were compared too (`--bodies`).
    pub(crate) bodies: bool,
    pub(crate) differences: Vec<Difference>,
    /// `-m` patterns that match no mailbox on either side: nothing was compared for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) unmatched: Vec<String>,
}

impl Comparison {
    /// The verdict line: what was compared and how many differences.
    pub(crate) fn verdict(&self) -> String {
        let what = if self.bodies { "metadata and contents" } else { "metadata" };
        format!(
            "{} mailboxes and {} messages compared ({what}), {} differences",
            self.mailboxes,
            self.messages,
            self.differences.len()
        )
    }
}

/// How `backup --verify` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Level {
    /// Folders, subscriptions, UIDVALIDITY, UIDNEXT, UIDs, sizes, flags, keywords, dates.
    Metadata,
    /// The same, and every message's contents (reads every message on both sides again).
    Bodies,
}

/// Compares what a finished `job` left behind (`backup --verify`): the source with the
/// destination, each opened once more, within the run's mailbox and message filters.
/// `source_uids`: where the run kept the UIDs of a Maildir source without
/// `dovecot-uidlist` (read, not written).
pub(crate) fn after_run(
    job: &Job,
    task: &Task,
    level: Level,
    debug: bool,
    source_uids: Option<(std::path::PathBuf, mailstore::Permissions, bool)>,
) -> Result<Comparison, CliError> {
    let user = job.user.as_deref();
    let source = open::resolve(job.source.clone(), &job.settings, user)?;
    let destination = open::resolve(job.destination.clone(), &job.settings, user)?;
    let access = Access {
        settings: &job.settings,
        secret: job.secret.clone(),
        debug,
        rawlog: None,
        message_guids: false,
        source_uids,
        source_listings: None,
    };
    tracing::info!("verifying {source} <-> {destination}");
    let mut a = open::open_source(&source, &access, "source")?;
    let mut b = match open::open_destination_to_read(&destination, &access) {
        Ok(opened) => opened,
        Err(error) => {
            a.close();
            return Err(error);
        }
    };
    let result = compare(
        a.as_storage(),
        b.as_storage(),
        &task.mailbox_filter,
        &task.message_filter,
        level == Level::Bodies,
    );
    a.close();
    b.close();
    result.map_err(|e| CliError::Storage { side: e.side, error: e.error })
}

/// A storage error and the side it came from.
#[derive(Debug)]
pub(crate) struct SideError {
    pub(crate) side: &'static str,
    pub(crate) error: StorageError,
}

/// Compares `source` with `destination`.
pub(crate) fn compare(
    source: &mut dyn Storage,
    destination: &mut dyn Storage,
    filter: &MailboxFilter,
    messages: &MessageFilter,
    bodies: bool,
) -> Result<Comparison, SideError> {
    let on = |side: &'static str| move |error: StorageError| SideError { side, error };
    let mut result = Comparison { bodies, ..Comparison::default() };
    let a_list = source.mailboxes().map_err(on("source"))?;
    let b_list = destination.mailboxes().map_err(on("destination"))?;
    let roles = |list: &[MailboxInfo]| -> BTreeMap<MailboxName, MailboxInfo> {
        list.iter().map(|info| (info.name.clone(), info.clone())).collect()
    };
    let (a_map, b_map) = (roles(&a_list), roles(&b_list));
    let wanted = |name: &MailboxName| {
        let mut special = Vec::new();
        for map in [&a_map, &b_map] {
            if let Some(info) = map.get(name) {
                special.extend(info.special_use.iter().copied());
            }
        }
        filter.wants(name, &special)
    };
    let selectable = |map: &BTreeMap<MailboxName, MailboxInfo>| -> BTreeSet<MailboxName> {
        map.values().filter(|i| i.selectable).map(|i| i.name.clone()).filter(&wanted).collect()
    };
    let (a_names, b_names) = (selectable(&a_map), selectable(&b_map));
    let listed: Vec<(MailboxName, Vec<SpecialUse>)> = a_map
        .values()
        .chain(b_map.values())
        .filter(|info| info.selectable)
        .map(|info| &info.name)
        .map(|name| {
            let roles = [&a_map, &b_map]
                .iter()
                .filter_map(|map| map.get(name))
                .flat_map(|info| info.special_use.iter().copied())
                .collect();
            (name.clone(), roles)
        })
        .collect();
    let listed: Vec<(&MailboxName, &[SpecialUse])> =
        listed.iter().map(|(name, roles)| (name, roles.as_slice())).collect();
    result.unmatched = filter.unmatched_includes(&listed).iter().map(ToString::to_string).collect();
    let global = |text: String| Difference { mailbox: None, uid: None, text };
    for name in a_names.difference(&b_names) {
        result.differences.push(global(format!("mailbox {name} is only in the source")));
    }
    for name in b_names.difference(&a_names) {
        result.differences.push(global(format!("mailbox {name} is only in the destination")));
    }

    let a_subscriptions = source.subscriptions().map_err(on("source"))?;
    let b_subscriptions = destination.subscriptions().map_err(on("destination"))?;
    for name in a_subscriptions.difference(&b_subscriptions).filter(|n| wanted(n)) {
        result.differences.push(global(format!("{name} is subscribed only in the source")));
    }
    for name in b_subscriptions.difference(&a_subscriptions).filter(|n| wanted(n)) {
        result.differences.push(global(format!("{name} is subscribed only in the destination")));
    }

    let by_uidl = source.capabilities().unstable_uids;
    // An IMAP server as destination chose its own UIDs: messages are paired by content.
    let by_content = !by_uidl && destination.capabilities().assigns_uids;
    for name in a_names.intersection(&b_names) {
        result.mailboxes += 1;
        let mut a = source.contents(name).map_err(on("source"))?;
        let mut b = destination.contents(name).map_err(on("destination"))?;
        // Messages outside the run's message filters were left alone on both sides.
        a.messages.retain(|m| messages.wants(m));
        b.messages.retain(|m| messages.wants(m));
        let mut say = |uid: Option<Uid>, text: String| {
            result.differences.push(Difference {
                mailbox: Some(name.to_string()),
                uid: uid.map(Uid::get),
                text,
            });
        };
        if by_uidl {
            // POP3: numbers are positions, so compare what a POP3 client caches instead.
            let pairs = compare_pop3_views(&a.messages, &b.messages, &mut say);
            result.messages += pairs.len() as u64;
            if bodies && !pairs.is_empty() {
                let a_uids: Vec<Uid> = pairs.iter().map(|(x, _)| *x).collect();
                let b_uids: Vec<Uid> = pairs.iter().map(|(_, y)| *y).collect();
                let a_hashes = hashes(source, name, &a_uids).map_err(on("source"))?;
                let b_hashes = hashes(destination, name, &b_uids).map_err(on("destination"))?;
                for (x, y) in &pairs {
                    if a_hashes.get(x) != b_hashes.get(y) {
                        say(Some(*y), "contents differ".into());
                    }
                }
            }
            continue;
        }
        if by_content {
            let a_ids = source.header_hashes(name, &uids(&a.messages)).map_err(on("source"))?;
            let b_ids =
                destination.header_hashes(name, &uids(&b.messages)).map_err(on("destination"))?;
            let pairs = pair_by_content(&a.messages, &b.messages, &a_ids, &b_ids, &mut say);
            result.messages += pairs.len() as u64;
            for (x, y) in &pairs {
                for text in message_differences(x, y) {
                    say(Some(y.uid), format!("(source UID {}) {text}", x.uid));
                }
            }
            if bodies && !pairs.is_empty() {
                let a_uids: Vec<Uid> = pairs.iter().map(|(x, _)| x.uid).collect();
                let b_uids: Vec<Uid> = pairs.iter().map(|(_, y)| y.uid).collect();
                let a_hashes = hashes(source, name, &a_uids).map_err(on("source"))?;
                let b_hashes = hashes(destination, name, &b_uids).map_err(on("destination"))?;
                for (x, y) in &pairs {
                    if a_hashes.get(&x.uid) != b_hashes.get(&y.uid) {
                        say(Some(y.uid), format!("(source UID {}) contents differ", x.uid));
                    }
                }
            }
            continue;
        }
        if a.status.uid_validity != b.status.uid_validity {
            // A backup that would otherwise have given out a UID twice rebuilt it under a
            // UIDVALIDITY of its own: the UIDs are the source's, but a client moving over
            // still re-reads the folder.
            let why = if b.status.source_uid_validity == Some(a.status.uid_validity) {
                " (the destination's own, standing for the source's: a backup rebuilt it \
                 rather than give out a UID twice)"
            } else {
                ""
            };
            say(
                None,
                format!(
                    "UIDVALIDITY differs: source {}, destination {}{why}",
                    a.status.uid_validity, b.status.uid_validity
                ),
            );
        }
        if a.status.uid_next != b.status.uid_next {
            say(
                None,
                format!(
                    "UIDNEXT differs: source {}, destination {}",
                    a.status.uid_next, b.status.uid_next
                ),
            );
        }
        let a_messages: BTreeMap<Uid, &MessageMeta> =
            a.messages.iter().map(|m| (m.uid, m)).collect();
        let b_messages: BTreeMap<Uid, &MessageMeta> =
            b.messages.iter().map(|m| (m.uid, m)).collect();
        for uid in a_messages.keys().filter(|u| !b_messages.contains_key(u)) {
            say(Some(*uid), "only in the source".into());
        }
        for uid in b_messages.keys().filter(|u| !a_messages.contains_key(u)) {
            say(Some(*uid), "only in the destination".into());
        }
        let common: Vec<Uid> =
            a_messages.keys().filter(|u| b_messages.contains_key(u)).copied().collect();
        for uid in &common {
            result.messages += 1;
            for text in message_differences(a_messages[uid], b_messages[uid]) {
                say(Some(*uid), text);
            }
        }
        if bodies && !common.is_empty() {
            let a_hashes = hashes(source, name, &common).map_err(on("source"))?;
            let b_hashes = hashes(destination, name, &common).map_err(on("destination"))?;
            for uid in &common {
                if a_hashes.get(uid) != b_hashes.get(uid) {
                    say(Some(*uid), "contents differ".into());
                }
            }
        }
    }
    // What a side could not read was not compared: a verification that passed over it
    // must not pass.
    let skipped = source.take_skipped().into_iter().map(|skip| ("source", skip));
    let skipped = skipped.chain(destination.take_skipped().into_iter().map(|s| ("destination", s)));
    for (side, skip) in skipped {
        result.differences.push(Difference {
            mailbox: skip.mailbox.as_ref().map(ToString::to_string),
            uid: None,
            text: format!("{side}: {} was not read: {}", skip.item, skip.reason),
        });
    }
    Ok(result)
}

fn uids(messages: &[MessageMeta]) -> Vec<Uid> {
    messages.iter().map(|m| m.uid).collect()
}

/// Pairs the messages of two sides whose UIDs have nothing in common (an IMAP server as
/// destination): by Dovecot's header hash, one for one in UID order; the unpaired are
/// reported. Returns the pairs, to be compared for flags, sizes and dates.
fn pair_by_content<'m>(
    source: &'m [MessageMeta],
    destination: &'m [MessageMeta],
    a_ids: &BTreeMap<Uid, String>,
    b_ids: &BTreeMap<Uid, String>,
    say: &mut dyn FnMut(Option<Uid>, String),
) -> Vec<(&'m MessageMeta, &'m MessageMeta)> {
    let mut waiting: BTreeMap<&str, std::collections::VecDeque<&MessageMeta>> = BTreeMap::new();
    let mut sorted: Vec<&MessageMeta> = destination.iter().collect();
    sorted.sort_by_key(|m| m.uid);
    for meta in sorted {
        let id = b_ids.get(&meta.uid).map_or("", String::as_str);
        waiting.entry(id).or_default().push_back(meta);
    }
    let mut listed: Vec<&MessageMeta> = source.iter().collect();
    listed.sort_by_key(|m| m.uid);
    let mut pairs = Vec::new();
    for a in listed {
        let id = a_ids.get(&a.uid).map_or("", String::as_str);
        match waiting.get_mut(id).and_then(std::collections::VecDeque::pop_front) {
            Some(b) => pairs.push((a, b)),
            None => say(None, format!("source UID {} is only in the source", a.uid)),
        }
    }
    for b in waiting.values().flatten() {
        say(Some(b.uid), "only in the destination".into());
    }
    pairs
}

/// A POP3 source against a destination that stores POP3 UIDLs and order: the UIDL list in
/// POP3 order and the sizes must be the same. The destination's POP3 order is Dovecot's:
/// messages with a stored order first, by it, then the rest by UID. Returns the pairs
/// (source position, destination UID) that were compared.
fn compare_pop3_views(
    source: &[MessageMeta],
    destination: &[MessageMeta],
    say: &mut dyn FnMut(Option<Uid>, String),
) -> Vec<(Uid, Uid)> {
    let mut listed: Vec<&MessageMeta> = source.iter().collect();
    listed.sort_by_key(|m| m.uid);
    let mut served: Vec<&MessageMeta> = destination.iter().collect();
    served.sort_by_key(|m| (m.pop3_order.unwrap_or(u32::MAX), m.uid));
    let mut pairs = Vec::new();
    for (position, (a, b)) in listed.iter().zip(&served).enumerate() {
        let number = position + 1;
        match (&a.pop3_uidl, &b.pop3_uidl) {
            (Some(x), Some(y)) if x == y => pairs.push((a.uid, b.uid)),
            (Some(x), Some(y)) => {
                say(
                    Some(b.uid),
                    format!("POP3 message {number}: UIDL {x} in the source, {y} here"),
                );
            }
            (Some(x), None) => say(
                Some(b.uid),
                format!("POP3 message {number}: UIDL {x} in the source, none stored here"),
            ),
            (None, _) => {}
        }
        if let (Some(x), Some(y)) = (a.virtual_size, b.virtual_size)
            && x != y
        {
            say(Some(b.uid), format!("POP3 message {number}: size {x} in the source, {y} here"));
        }
    }
    for a in listed.iter().skip(served.len()) {
        let uidl = a.pop3_uidl.as_deref().unwrap_or("?");
        say(None, format!("POP3 message {} (UIDL {uidl}) is only in the source", a.uid));
    }
    for b in served.iter().skip(listed.len()) {
        say(Some(b.uid), "only in the destination (an extra POP3 message)".into());
    }
    pairs
}

fn message_differences(a: &MessageMeta, b: &MessageMeta) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(x), Some(y)) = (a.virtual_size, b.virtual_size)
        && x != y
    {
        out.push(format!("size differs: source {x}, destination {y}"));
    }
    if a.flags != b.flags {
        out.push(format!(
            "flags differ: source ({}), destination ({})",
            flag_text(&a.flags),
            flag_text(&b.flags)
        ));
    }
    if let (Some(x), Some(y)) = (a.received, b.received)
        && x != y
    {
        out.push(format!("received date differs: source {x}, destination {y} (UNIX times)"));
    }
    if let (Some(x), Some(y)) = (&a.pop3_uidl, &b.pop3_uidl)
        && x != y
    {
        out.push(format!("POP3 UIDL differs: source {x}, destination {y}"));
    }
    if let (Some(x), Some(y)) = (a.pop3_order, b.pop3_order)
        && x != y
    {
        out.push(format!("POP3 order differs: source {x}, destination {y}"));
    }
    out
}

fn flag_text(flags: &Flags) -> String {
    let mut names: Vec<&str> = flags.system.imap_names().collect();
    names.extend(flags.keywords.iter().map(String::as_str));
    names.join(" ")
}

/// A content hash per UID (SipHash with fixed keys: comparing two sides in one process).
fn hashes(
    storage: &mut dyn Storage,
    mailbox: &MailboxName,
    uids: &[Uid],
) -> Result<BTreeMap<Uid, (u64, u64)>, StorageError> {
    struct HashSink {
        pending: Option<(u64, u64)>,
        hashes: BTreeMap<Uid, (u64, u64)>,
    }
    impl MessageSink for HashSink {
        fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
            let mut hasher = std::hash::DefaultHasher::new();
            let mut length = 0u64;
            let mut buffer = [0u8; 16 * 1024];
            loop {
                let n = body.read(&mut buffer).map_err(|e| {
                    StorageError::with_source(ErrorKind::Temporary, "reading a message", e)
                })?;
                if n == 0 {
                    break;
                }
                hasher.write(&buffer[..n]);
                length += n as u64;
            }
            self.pending = Some((hasher.finish(), length));
            Ok(())
        }
        fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
            if let Some(hash) = self.pending.take() {
                self.hashes.insert(uid, hash);
            }
            Ok(())
        }
    }
    let mut sink = HashSink { pending: None, hashes: BTreeMap::new() };
    storage.fetch(mailbox, uids, &mut sink)?;
    Ok(sink.hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_core::memory::MemoryStorage;
    use dsync_core::{Mode, NoObserver, SyncOptions, UidValidity};

    #[test]
    fn finds_every_kind_of_difference() {
        let mut source = MemoryStorage::new();
        let inbox = MailboxName::inbox();
        let archive = MailboxName::new(["Archive"]).expect("name");
        let validity = UidValidity::new(7).expect("nonzero");
        let mailbox = source.add_mailbox(&inbox, validity);
        mailbox.append(b"Subject: a\r\n\r\none\r\n", Flags::from_imap_names(["\\Seen"]), Some(100));
        mailbox.append(b"Subject: b\r\n\r\ntwo\r\n", Flags::default(), Some(200));
        source.add_mailbox(&archive, validity);
        source.subscribe(&archive);
        let mut destination = MemoryStorage::with_guids();
        dsync_core::run(
            &SyncOptions::new(Mode::Backup),
            &mut source,
            &mut destination,
            &mut NoObserver,
        )
        .expect("backup");
        let everything = MailboxFilter::default();
        let all = MessageFilter::default();
        let same =
            compare(&mut source, &mut destination, &everything, &all, true).expect("compare");
        assert_eq!(same.differences, [], "a fresh backup is identical");
        assert_eq!((same.mailboxes, same.messages), (2, 2));

        // Change the source: a flag, a new message, an unsubscription, a new folder.
        let mailbox = source.mailbox_mut(&inbox).expect("inbox");
        mailbox.append(b"Subject: c\r\n\r\nthree\r\n", Flags::default(), Some(300));
        source.add_mailbox(&MailboxName::new(["New"]).expect("name"), validity);
        source.unsubscribe(&archive);
        let found =
            compare(&mut source, &mut destination, &everything, &all, false).expect("compare");
        let lines: Vec<String> = found.differences.iter().map(ToString::to_string).collect();
        assert!(lines.contains(&"mailbox New is only in the source".to_owned()), "{lines:?}");
        assert!(
            lines.contains(&"Archive is subscribed only in the destination".to_owned()),
            "{lines:?}"
        );
        assert!(lines.contains(&"INBOX: UID 3: only in the source".to_owned()), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("INBOX: UIDNEXT differs")), "{lines:?}");
    }
}
