//! Deciding a query: first per mailbox (three-valued: the mailbox keys are known, the
//! message keys not yet), then per message of the mailboxes that may match.

use chrono::{DateTime, Offset, TimeZone as _};

use crate::model::{MailboxContents, MailboxGuid, MailboxName, MessageMeta};

use super::values::DateValue;
use super::{Key, Node, Relation, SearchQuery};

/// The time zone in which a day (`SINCE 2024-01-01`) begins and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZone {
    /// UTC.
    #[default]
    Utc,
    /// The system's local time zone (`TZ`, `/etc/localtime`), as Dovecot uses.
    Local,
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
}

impl TimeZone {
    fn offset_at(self, at: i64) -> i64 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::Fixed(seconds) => i64::from(seconds),
            TimeZone::Local => DateTime::from_timestamp(at, 0).map_or(0, |utc| {
                i64::from(
                    chrono::Local
                        .offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc(),
                )
            }),
        }
    }
}

/// Hierarchy separators a `MAILBOX` name may use: ours (`/`) and Maildir++'s (`.`, which
/// doveadm shows for a `maildir:` source).
const SEPARATORS: [char; 2] = ['/', '.'];

impl SearchQuery {
    /// Whether any message of mailbox `name` (whose GUID is `guid`, when known) can match:
    /// false only when the mailbox keys alone rule it out.
    pub fn may_match_mailbox(&self, name: &MailboxName, guid: Option<MailboxGuid>) -> bool {
        mailbox_verdict(&self.root, name, guid) != Some(false)
    }

    /// The messages of `mailbox` (listed as `contents`, in UID order) that match, in UID
    /// order. Sequence numbers count every message of `contents`.
    pub fn select<'m>(
        &self,
        mailbox: &MailboxName,
        contents: &'m MailboxContents,
    ) -> Vec<&'m MessageMeta> {
        let context = Context {
            name: mailbox,
            guid: contents.status.guid,
            messages: u32::try_from(contents.messages.len()).unwrap_or(u32::MAX),
            zone: self.zone,
        };
        let stop_at_first_miss = self.contains(&|key| matches!(key, Key::OldestOnly));
        let mut selected = Vec::new();
        for (index, meta) in contents.messages.iter().enumerate() {
            let sequence = u32::try_from(index + 1).unwrap_or(u32::MAX);
            if message_matches(&self.root, &context, meta, sequence) {
                selected.push(meta);
            } else if stop_at_first_miss {
                break;
            }
        }
        selected
    }

    /// The names doveadm opens directly instead of listing: `MAILBOX` names without
    /// wildcards ANDed at the top level (when there is any with wildcards, or a negated
    /// one, doveadm lists everything and nothing is opened directly). A name here that
    /// the source does not have is an error, as in doveadm ("Mailbox doesn't exist").
    pub fn named_mailboxes(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut wildcards = false;
        if !collect_names(&self.root, &mut names, &mut wildcards) || wildcards {
            return Vec::new();
        }
        names
    }

    /// Whether `name` is the mailbox a [`SearchQuery::named_mailboxes`] entry names.
    pub fn names_mailbox(named: &str, name: &MailboxName) -> bool {
        name_matches(named, false, name)
    }

    /// True when the query compares message GUIDs (`GUID`), which the source must report.
    pub fn uses_message_guids(&self) -> bool {
        self.contains(&|key| matches!(key, Key::Guid(_)))
    }

    /// True when the query compares mailbox GUIDs (`MAILBOX-GUID`).
    pub fn uses_mailbox_guids(&self) -> bool {
        self.contains(&|key| matches!(key, Key::MailboxGuid(_)))
    }

    fn contains(&self, wanted: &dyn Fn(&Key) -> bool) -> bool {
        fn walk(node: &Node, wanted: &dyn Fn(&Key) -> bool) -> bool {
            match &node.key {
                Key::And(items) | Key::Or(items) => items.iter().any(|item| walk(item, wanted)),
                key => wanted(key),
            }
        }
        walk(&self.root, wanted)
    }
}

/// doveadm's `search_args_get_mailbox_patterns`: false when a negated `MAILBOX` makes
/// it list everything. Unlike doveadm, a negated list is not looked into (doveadm takes
/// `NOT ( MAILBOX x )` as naming `x`, then finds nothing in it).
fn collect_names<'q>(node: &'q Node, names: &mut Vec<&'q str>, wildcards: &mut bool) -> bool {
    match &node.key {
        Key::And(items) if !node.negated => {
            items.iter().all(|item| collect_names(item, names, wildcards))
        }
        Key::Mailbox(name) | Key::MailboxGlob(name) => {
            if node.negated {
                names.clear();
                return false;
            }
            *wildcards |= matches!(node.key, Key::MailboxGlob(_));
            names.push(name);
            true
        }
        _ => true,
    }
}

/// The node's value when only the mailbox is known: `None` when it depends on messages.
fn mailbox_verdict(node: &Node, name: &MailboxName, guid: Option<MailboxGuid>) -> Option<bool> {
    let value = match &node.key {
        Key::All | Key::OldestOnly => Some(true),
        Key::Mailbox(_) | Key::MailboxGlob(_) | Key::MailboxGuid(_) => {
            mailbox_key(&node.key, name, guid)
        }
        Key::And(items) => {
            let verdicts: Vec<_> = items.iter().map(|i| mailbox_verdict(i, name, guid)).collect();
            if verdicts.contains(&Some(false)) {
                Some(false)
            } else if verdicts.iter().all(|v| *v == Some(true)) {
                Some(true)
            } else {
                None
            }
        }
        Key::Or(items) => {
            let verdicts: Vec<_> = items.iter().map(|i| mailbox_verdict(i, name, guid)).collect();
            if verdicts.contains(&Some(true)) {
                Some(true)
            } else if verdicts.iter().all(|v| *v == Some(false)) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    };
    value.map(|value| value != node.negated)
}

/// A mailbox key's value (`None`: the GUID it compares is unknown).
fn mailbox_key(key: &Key, name: &MailboxName, guid: Option<MailboxGuid>) -> Option<bool> {
    match key {
        Key::Mailbox(pattern) => Some(name_matches(pattern, false, name)),
        Key::MailboxGlob(pattern) => Some(name_matches(pattern, true, name)),
        Key::MailboxGuid(wanted) => guid.map(|guid| guid.to_string() == *wanted),
        _ => None,
    }
}

struct Context<'a> {
    name: &'a MailboxName,
    guid: Option<MailboxGuid>,
    /// Messages in the mailbox: the sequence number `*` stands for.
    messages: u32,
    zone: TimeZone,
}

fn message_matches(node: &Node, context: &Context<'_>, meta: &MessageMeta, sequence: u32) -> bool {
    let value = match &node.key {
        Key::All | Key::OldestOnly => true,
        Key::Flag(flag) => meta.flags.system.contains(*flag),
        Key::Keyword(keyword) => {
            meta.flags.keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
        }
        Key::Received { relation, date } => {
            meta.received.is_some_and(|at| received_matches(*relation, *date, at, context.zone))
        }
        // Dovecot: LARGER is strictly larger, SMALLER strictly smaller.
        Key::Larger(size) => meta.virtual_size.is_some_and(|s| s > *size),
        Key::Smaller(size) => meta.virtual_size.is_some_and(|s| s < *size),
        Key::Uid(set) => set.contains(meta.uid.get()),
        Key::Sequence(set) => {
            set.contains(sequence) || (set.has_star() && sequence == context.messages)
        }
        Key::Guid(guid) => meta.guid.as_deref() == Some(guid.as_str()),
        Key::Mailbox(_) | Key::MailboxGlob(_) | Key::MailboxGuid(_) => {
            mailbox_key(&node.key, context.name, context.guid) == Some(true)
        }
        Key::And(items) => items.iter().all(|item| message_matches(item, context, meta, sequence)),
        Key::Or(items) => items.iter().any(|item| message_matches(item, context, meta, sequence)),
    };
    value != node.negated
}

/// Dovecot's date comparison: a day is compared with the local day the message arrived
/// on; an instant with the received time itself.
fn received_matches(relation: Relation, date: DateValue, at: i64, zone: TimeZone) -> bool {
    // i128: dates come from the command line and storages, and may be anything.
    let (value, start, length) = match date {
        DateValue::Day(day) => (
            (i128::from(at) + i128::from(zone.offset_at(at))).div_euclid(86_400),
            i128::from(day),
            1,
        ),
        DateValue::Instant(instant) => (i128::from(at), i128::from(instant), 86_400),
    };
    match relation {
        Relation::Before => value < start,
        Relation::Since => value >= start,
        Relation::On => value >= start && value - start < length,
    }
}

/// Whether mailbox `name` is what `pattern` names. A name matches with either separator;
/// the INBOX at its start in any case, as IMAP's INBOX is.
fn name_matches(pattern: &str, glob: bool, name: &MailboxName) -> bool {
    let inbox_prefix = if name.components().first().is_some_and(|c| c == "INBOX") { 5 } else { 0 };
    SEPARATORS.iter().any(|&separator| {
        let text = name.join(separator);
        glob_match(pattern.as_bytes(), text.as_bytes(), separator, inbox_prefix, glob)
    })
}

/// `*` any sequence, `%` any sequence without the separator (when `glob`), other bytes
/// themselves; the first `inbox_prefix` bytes of `text` compare case-insensitively.
/// Dynamic programming over (pattern, text) positions: no exponential backtracking.
fn glob_match(
    pattern: &[u8],
    text: &[u8],
    separator: char,
    inbox_prefix: usize,
    glob: bool,
) -> bool {
    let separator = u8::try_from(separator).unwrap_or(b'/');
    // matches[j]: pattern[..i] matches text[..j], for the current i.
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if glob && (p == b'*' || p == b'%') {
            for j in 0..=text.len() {
                next[j] =
                    matches[j] || (j > 0 && next[j - 1] && (p == b'*' || text[j - 1] != separator));
            }
        } else {
            for j in 1..=text.len() {
                let t = text[j - 1];
                let same = p == t || (j <= inbox_prefix && p.to_ascii_uppercase() == t);
                next[j] = matches[j - 1] && same;
            }
        }
        matches = next;
    }
    matches[text.len()]
}
