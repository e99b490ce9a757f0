//! doveadm's search query (`doveadm-search-query(7)`), for `import`: which mailboxes and
//! messages to copy, decided from what a listing shows (mailbox names and GUIDs, flags,
//! keywords, received dates, sizes, UIDs), without downloading any message.
//!
//! The grammar and meaning are Dovecot 2.3.19's (`mail-search-register-human.c` on top of
//! `mail-search-register-imap.c`), word for word as doveadm takes them on its command
//! line:
//!
//! | keys | match |
//! |---|---|
//! | `ALL` | every message |
//! | `SEEN` `ANSWERED` `FLAGGED` `DELETED` `DRAFT`, `UN…` | a system flag set / not set |
//! | `KEYWORD k`, `UNKEYWORD k` | a keyword (case-insensitive) |
//! | `SINCE d`, `BEFORE d`, `ON d` | received date: `2024-01-31` or `31-Jan-2024` (a day in the local time zone), a UNIX time, or an interval back from now (`30d`, `12h`, `2w`, `90mins`) |
//! | `OLDER n`, `YOUNGER n` | received at least / less than n seconds ago |
//! | `LARGER n`, `SMALLER n` | size (with CRLF line ends) above / below n: `10k`, `5M`, `1G` |
//! | `UID set`, `set` | UIDs / sequence numbers: `1:5,7,10:*` |
//! | `MAILBOX name` | the mailbox, with `*` and `%` wildcards; `/` or `.` between levels |
//! | `MAILBOX-GUID g` | the mailbox with this GUID |
//! | `GUID g` | the message with this GUID |
//! | `NOT k`, `k OR k`, `( … )` | negation, alternatives, grouping; keys in a row are ANDed |
//!
//! As in doveadm, an `OR` makes its whole list an OR list (`A B OR C` means
//! `A OR B OR C`, reported as a warning), and in a `UID` set `*` is the highest possible
//! UID (`UID *` matches nothing), while a sequence set's `*` is the last message.
//! Keys that need the message headers or bodies (`SUBJECT`, `FROM`, `HEADER`, `BODY`,
//! `TEXT`, `SENTSINCE`…), Dovecot's index state (`RECENT`, `NEW`, `OLD`, `MODSEQ`,
//! `SAVEDSINCE`…) or an IMAP session (`$`) are refused with the reason.
//!
//! ```
//! use dsync_core::query::SearchQuery;
//! let parsed = SearchQuery::parse(&["mailbox", "Archive*", "SINCE", "2024-01-01", "NOT", "SEEN"], 0)?;
//! assert!(parsed.warnings.is_empty());
//! assert_eq!(parsed.query.to_string(), "MAILBOX Archive* SINCE 2024-01-01 NOT SEEN");
//! # Ok::<(), dsync_core::query::QueryError>(())
//! ```

mod eval;
mod parse;
mod values;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::model::SystemFlags;

pub use eval::TimeZone;
use values::{DateValue, SequenceSet};

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The top-level list (never negated).
    root: Node,
    zone: TimeZone,
}

/// A query and what an operator should know about how it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    /// The query.
    pub query: SearchQuery,
    /// Readings that are doveadm's but may surprise (e.g. `A B OR C`).
    pub warnings: Vec<String>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No words at all.
    #[error("empty search query (ALL matches every message)")]
    Empty,
    /// Not a valid query.
    #[error("search query: {0}")]
    Invalid(String),
    /// A key Dovecot knows that cannot be decided from a listing.
    #[error("search query: {key} is not supported: {reason}")]
    Unsupported {
        /// The key, upper case.
        key: String,
        /// Why.
        reason: &'static str,
    },
}

/// One key, possibly negated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    key: Key,
    negated: bool,
}

impl Node {
    fn new(key: Key) -> Node {
        Node { key, negated: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    All,
    /// `OLDESTONLY`: matches, and stops a mailbox's search at its first non-match.
    OldestOnly,
    Flag(SystemFlags),
    Keyword(String),
    Received {
        relation: Relation,
        date: DateValue,
    },
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    Sequence(SequenceSet),
    Guid(String),
    Mailbox(String),
    MailboxGlob(String),
    MailboxGuid(String),
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Before,
    On,
    Since,
}

impl SearchQuery {
    /// Parses the words of a query as doveadm takes them (one key or value per word,
    /// parentheses as words of their own). `now` (UNIX time) anchors intervals such as
    /// `30d`. Dates are compared in UTC until [`SearchQuery::in_time_zone`] says otherwise.
    pub fn parse<S: AsRef<str>>(words: &[S], now: i64) -> Result<ParsedQuery, QueryError> {
        if words.is_empty() {
            return Err(QueryError::Empty);
        }
        let mut parser = parse::Parser::new(words, now);
        let (items, or) = parser.query()?;
        if items.is_empty() {
            return Err(QueryError::Empty);
        }
        let root = Node::new(if or { Key::Or(items) } else { Key::And(items) });
        Ok(ParsedQuery {
            query: SearchQuery { root, zone: TimeZone::Utc },
            warnings: parser.warnings,
        })
    }

    /// Compares day dates (`SINCE 2024-01-01`) with the day a message arrived in `zone`,
    /// as Dovecot does in its local time zone.
    #[must_use]
    pub fn in_time_zone(mut self, zone: TimeZone) -> SearchQuery {
        self.zone = zone;
        self
    }

    /// The query as words that parse back to it.
    pub fn to_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        match &self.root.key {
            Key::Or(items) => list_words(items, true, &mut words),
            Key::And(items) => list_words(items, false, &mut words),
            _ => node_words(&self.root, &mut words),
        }
        words
    }
}

impl fmt::Display for SearchQuery {
    /// The words separated by spaces, quoted where a shell would need it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, word) in self.to_words().iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            let plain = !word.is_empty()
                && (word == "("
                    || word == ")"
                    || !word.contains(|c: char| c.is_whitespace() || "'\"()\\".contains(c)));
            if plain { f.write_str(word)? } else { write!(f, "{word:?}")? }
        }
        Ok(())
    }
}

fn list_words(items: &[Node], or: bool, words: &mut Vec<String>) {
    if or && items.len() == 1 {
        words.push("OR".into());
    }
    for (index, item) in items.iter().enumerate() {
        if or && index > 0 {
            words.push("OR".into());
        }
        node_words(item, words);
    }
}

fn node_words(node: &Node, words: &mut Vec<String>) {
    if node.negated {
        words.push("NOT".into());
    }
    let mut push = |key: &str, value: String| {
        words.push(key.into());
        words.push(value);
    };
    match &node.key {
        Key::All => words.push("ALL".into()),
        Key::OldestOnly => words.push("OLDESTONLY".into()),
        Key::Flag(flag) => {
            let name = flag.imap_names().next().unwrap_or("\\Seen");
            words.push(name.trim_start_matches('\\').to_ascii_uppercase());
        }
        Key::Keyword(keyword) => push("KEYWORD", keyword.clone()),
        Key::Received { relation, date } => {
            let key = match relation {
                Relation::Before => "BEFORE",
                Relation::On => "ON",
                Relation::Since => "SINCE",
            };
            let value = match date {
                DateValue::Day(day) => {
                    let (year, month, day) = values::civil_from_day(*day);
                    format!("{year:04}-{month:02}-{day:02}")
                }
                DateValue::Instant(at) => at.to_string(),
            };
            push(key, value);
        }
        Key::Larger(size) => push("LARGER", size.to_string()),
        Key::Smaller(size) => push("SMALLER", size.to_string()),
        Key::Uid(set) => push("UID", set.to_string()),
        Key::Sequence(set) => words.push(set.to_string()),
        Key::Guid(guid) => push("GUID", guid.clone()),
        Key::Mailbox(name) | Key::MailboxGlob(name) => push("MAILBOX", name.clone()),
        Key::MailboxGuid(guid) => push("MAILBOX-GUID", guid.clone()),
        Key::And(items) => {
            words.push("(".into());
            list_words(items, false, words);
            words.push(")".into());
        }
        Key::Or(items) => {
            words.push("(".into());
            list_words(items, true, words);
            words.push(")".into());
        }
    }
}
