//! Command-line words to a query, by Dovecot 2.3's rules (`mail-search-build.c`,
//! `mail-search-parser-cmdline.c`, `mail-search-register-human.c` and `-imap.c`):
//!
//! * every word is one token; `(` and `)` are words of their own;
//! * keys are case-insensitive; a word starting with a digit or `*` is a message set;
//! * keys in a row are ANDed; `a OR b OR c` is one OR list, and an `OR` turns the whole
//!   list it is in into an OR list (`a b OR c` is `a OR b OR c`); after that, a key
//!   without `OR` before it is an error ("use parentheses");
//! * `NOT` negates the key after it, which may be a parenthesised list.

use crate::model::SystemFlags;

use super::values::{DateValue, SequenceSet, parse_date, parse_size};
use super::{Key, Node, QueryError, Relation};

/// How a list combines its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    /// Not decided yet (Dovecot's `SEARCH_SUB` before an `OR` shows up): AND.
    Undecided,
    Or,
}

pub(super) struct Parser<'a, S> {
    words: &'a [S],
    position: usize,
    depth: usize,
    /// `NOT`/`OR` waiting for their key (`NOT NOT NOT …` recurses).
    pending: usize,
    now: i64,
    pub(super) warnings: Vec<String>,
}

/// Lists nest at most this deep: a query is typed by a person, and the evaluation is
/// recursive.
const MAX_DEPTH: usize = 64;

/// At most this many `NOT`/`OR` in a row.
const MAX_PENDING: usize = 256;

impl<'a, S: AsRef<str>> Parser<'a, S> {
    pub(super) fn new(words: &'a [S], now: i64) -> Parser<'a, S> {
        Parser { words, position: 0, depth: 0, pending: 0, now, warnings: Vec::new() }
    }

    /// The whole query: a list up to the end of the words; true for an OR list.
    pub(super) fn query(&mut self) -> Result<(Vec<Node>, bool), QueryError> {
        self.list()
    }

    /// Items up to the end or a `)`; the bool is true for an OR list.
    fn list(&mut self) -> Result<(Vec<Node>, bool), QueryError> {
        let mut items = Vec::new();
        let mut combine = Combine::Undecided;
        loop {
            let mut parent = Combine::Undecided;
            let Some(node) = self.key(&mut parent)? else { break };
            match (combine, parent) {
                (Combine::Undecided, Combine::Or) => {
                    if items.len() >= 2 {
                        self.warnings.push(format!(
                            "search query: an OR after {} keys makes them all alternatives \
                             (`A B OR C` is `A OR B OR C`, as in doveadm); put parentheses \
                             around keys that must all match",
                            items.len()
                        ));
                    }
                    combine = Combine::Or;
                }
                (Combine::Or, Combine::Undecided) => {
                    return Err(QueryError::Invalid(
                        "use parentheses when mixing ANDs and ORs".into(),
                    ));
                }
                _ => {}
            }
            items.push(node);
        }
        Ok((items, combine == Combine::Or))
    }

    fn next_word(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.position)?.as_ref();
        self.position += 1;
        Some(word)
    }

    /// The argument of `key`.
    fn value(&mut self, key: &str) -> Result<&'a str, QueryError> {
        self.next_word().ok_or_else(|| QueryError::Invalid(format!("{key} needs a value")))
    }

    /// One key (with its arguments), `None` at the end of the list. `parent` becomes
    /// [`Combine::Or`] when the key was introduced by `OR`.
    fn key(&mut self, parent: &mut Combine) -> Result<Option<Node>, QueryError> {
        let Some(word) = self.next_word() else {
            if self.depth > 0 {
                return Err(QueryError::Invalid("missing ')'".into()));
            }
            return Ok(None);
        };
        if word == ")" {
            if self.depth == 0 {
                return Err(QueryError::Invalid("unexpected ')'".into()));
            }
            self.depth -= 1;
            return Ok(None);
        }
        if word == "(" {
            if self.depth >= MAX_DEPTH {
                return Err(QueryError::Invalid(format!(
                    "parentheses nest more than {MAX_DEPTH} deep"
                )));
            }
            self.depth += 1;
            let (items, or) = self.list()?;
            if items.is_empty() {
                return Err(QueryError::Invalid("no search keys inside ( )".into()));
            }
            let key = if or { Key::Or(items) } else { Key::And(items) };
            return Ok(Some(Node::new(key)));
        }
        let upper = word.to_ascii_uppercase();
        let node = match upper.as_str() {
            "OR" => {
                *parent = Combine::Or;
                return self.required_key(parent, "OR").map(Some);
            }
            "NOT" => {
                let mut node = self.required_key(parent, "NOT")?;
                node.negated = !node.negated;
                node
            }
            "ALL" => Node::new(Key::All),
            "OLDESTONLY" => Node::new(Key::OldestOnly),
            "ANSWERED" => flag(SystemFlags::ANSWERED, false),
            "UNANSWERED" => flag(SystemFlags::ANSWERED, true),
            "DELETED" => flag(SystemFlags::DELETED, false),
            "UNDELETED" => flag(SystemFlags::DELETED, true),
            "DRAFT" => flag(SystemFlags::DRAFT, false),
            "UNDRAFT" => flag(SystemFlags::DRAFT, true),
            "FLAGGED" => flag(SystemFlags::FLAGGED, false),
            "UNFLAGGED" => flag(SystemFlags::FLAGGED, true),
            "SEEN" => flag(SystemFlags::SEEN, false),
            "UNSEEN" => flag(SystemFlags::SEEN, true),
            "KEYWORD" => Node::new(Key::Keyword(self.value("KEYWORD")?.to_owned())),
            "UNKEYWORD" => {
                Node { key: Key::Keyword(self.value("UNKEYWORD")?.to_owned()), negated: true }
            }
            "BEFORE" => self.date(Relation::Before, "BEFORE")?,
            "ON" => self.date(Relation::On, "ON")?,
            "SINCE" => self.date(Relation::Since, "SINCE")?,
            "OLDER" | "YOUNGER" => {
                let text = self.value(&upper)?;
                let seconds = within_interval(text).ok_or_else(|| {
                    QueryError::Invalid(format!(
                        "{upper} {text}: expected a number of seconds above 0"
                    ))
                })?;
                // WITHIN (RFC 5032): OLDER n is "received at least n seconds ago".
                let ago = self.now.saturating_sub(i64::from(seconds));
                let (relation, at) = if upper == "OLDER" {
                    (Relation::Before, ago.saturating_add(1))
                } else {
                    (Relation::Since, ago)
                };
                Node::new(Key::Received { relation, date: DateValue::Instant(at) })
            }
            "LARGER" | "SMALLER" => {
                let text = self.value(&upper)?;
                let size = parse_size(text).map_err(QueryError::Invalid)?;
                Node::new(if upper == "LARGER" { Key::Larger(size) } else { Key::Smaller(size) })
            }
            "UID" => {
                let text = self.value("UID")?;
                let set = SequenceSet::parse(text)
                    .map_err(|e| QueryError::Invalid(format!("UID {e}")))?;
                Node::new(Key::Uid(set))
            }
            "GUID" | "X-GUID" => Node::new(Key::Guid(self.value(&upper)?.to_owned())),
            "MAILBOX" => {
                let name = self.value("MAILBOX")?.to_owned();
                Node::new(if name.contains(['*', '%']) {
                    Key::MailboxGlob(name)
                } else {
                    Key::Mailbox(name)
                })
            }
            "MAILBOX-GUID" => Node::new(Key::MailboxGuid(self.value("MAILBOX-GUID")?.to_owned())),
            _ if word.starts_with(|c: char| c == '*' || c.is_ascii_digit()) => {
                let set = SequenceSet::parse(word).map_err(QueryError::Invalid)?;
                Node::new(Key::Sequence(set))
            }
            _ => return Err(refused(word, &upper)),
        };
        Ok(Some(node))
    }

    /// The key after `OR` or `NOT`, which must be there.
    fn required_key(&mut self, parent: &mut Combine, after: &str) -> Result<Node, QueryError> {
        if self.pending >= MAX_PENDING {
            return Err(QueryError::Invalid(format!("more than {MAX_PENDING} NOT/OR in a row")));
        }
        self.pending += 1;
        let key = self.key(parent);
        self.pending -= 1;
        match key? {
            Some(node) => Ok(node),
            None => Err(QueryError::Invalid(format!("{after} needs a search key after it"))),
        }
    }

    fn date(&mut self, relation: Relation, key: &str) -> Result<Node, QueryError> {
        let text = self.value(key)?;
        let date =
            parse_date(text, self.now).map_err(|e| QueryError::Invalid(format!("{key}: {e}")))?;
        Ok(Node::new(Key::Received { relation, date }))
    }
}

fn flag(flag: SystemFlags, negated: bool) -> Node {
    Node { key: Key::Flag(flag), negated }
}

/// `OLDER`/`YOUNGER` take plain seconds (RFC 5032), not Dovecot's interval units.
fn within_interval(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|&seconds| seconds > 0)
}

/// The error for a word that is not a key we evaluate: Dovecot's keys that need what a
/// listing does not show say why; anything else is unknown.
fn refused(word: &str, upper: &str) -> QueryError {
    let reason = match upper {
        "BCC" | "CC" | "FROM" | "TO" | "SUBJECT" | "HEADER" | "SENTBEFORE" | "SENTON"
        | "SENTSINCE" => {
            "it searches the message headers, which dsync does not download to select messages"
        }
        "BODY" | "TEXT" | "MIMEPART" | "FUZZY" => {
            "it searches message contents, which dsync does not download to select messages"
        }
        "RECENT" | "NEW" | "OLD" => {
            "\\Recent is session state kept in Dovecot's index, which dsync does not read"
        }
        "SAVEDBEFORE" | "SAVEDON" | "SAVEDSINCE" | "X-SAVEDBEFORE" | "X-SAVEDON"
        | "X-SAVEDSINCE" | "SAVEDATESUPPORTED" => {
            "dsync does not know when a message was saved: use BEFORE/ON/SINCE (received date)"
        }
        "MODSEQ" => "dsync does not read per-message modification sequences",
        "INTHREAD" => "dsync does not thread messages",
        "X-MAILBOX" => "use MAILBOX with a UTF-8 name instead",
        "X-REAL-UID" | "$" => "it only means something inside an IMAP session",
        _ => {
            let hint = if word.contains(char::is_whitespace) {
                ": every key and value of the query is a word of its own (do not quote the whole query)"
            } else if word.starts_with('(') || word.ends_with(')') {
                ": parentheses are words of their own: '(' SEEN ')'"
            } else {
                ""
            };
            return QueryError::Invalid(format!("unknown search key {word:?}{hint}"));
        }
    };
    QueryError::Unsupported { key: upper.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::super::values::parse_interval;
    use super::*;

    #[test]
    fn within_takes_plain_seconds() {
        assert_eq!(within_interval("3600"), Some(3600));
        assert_eq!(within_interval("0"), None);
        assert_eq!(within_interval("1h"), None);
        assert_eq!(within_interval(""), None);
        // `parse_interval` is for dates, `within_interval` for OLDER/YOUNGER.
        assert_eq!(parse_interval("1h"), Ok(3600));
    }
}
