//! Which mailboxes and messages a run is about (doveadm's `-m`, `-x`, `-t`, `-e`, `-I`,
//! `-O`). Everything outside the filters is left alone on **both** sides: a filtered
//! backup never deletes a mailbox or expunges a message it was told not to look at.

use crate::model::{Flags, MailboxName, MessageMeta, SpecialUse, SystemFlags};

/// A mailbox selector: a name with wildcards or a SPECIAL-USE role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxPattern {
    /// A name with `/` as the hierarchy separator; `*` matches anything, `%` anything
    /// but `/`, `?` one character. An initial `INBOX` is matched case-insensitively.
    Name(String),
    /// A SPECIAL-USE role, e.g. `\Sent`; matches when either side gives the mailbox that
    /// role (a Maildir has no roles of its own).
    SpecialUse(SpecialUse),
}

impl MailboxPattern {
    /// Parses `-m`/`-x` syntax: `\Role` or a name pattern.
    pub fn parse(text: &str) -> Result<MailboxPattern, String> {
        if text.starts_with('\\') {
            SpecialUse::from_attribute(text)
                .map(MailboxPattern::SpecialUse)
                .ok_or_else(|| format!("unknown special-use flag {text}"))
        } else if text.is_empty() {
            Err(String::from("empty mailbox pattern"))
        } else {
            Ok(MailboxPattern::Name(text.to_owned()))
        }
    }

    pub(crate) fn matches(&self, name: &MailboxName, special_use: &[SpecialUse]) -> bool {
        match self {
            MailboxPattern::SpecialUse(role) => special_use.contains(role),
            MailboxPattern::Name(pattern) => {
                let name = name.join('/');
                let (pattern, name) = normalise_inbox(pattern, &name);
                wildcard_match(pattern.as_bytes(), name.as_bytes())
            }
        }
    }
}

impl std::fmt::Display for MailboxPattern {
    /// The pattern as `-m` takes it: the name, or the role as `\Role`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailboxPattern::Name(name) => f.write_str(name),
            MailboxPattern::SpecialUse(role) => write!(f, "\\{role:?}"),
        }
    }
}

/// `-m` (include; several are a union; none = everything) and `-x` (exclude).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxFilter {
    /// Only these mailboxes (empty: all).
    pub include: Vec<MailboxPattern>,
    /// Never these mailboxes.
    pub exclude: Vec<MailboxPattern>,
}

impl MailboxFilter {
    /// True when nothing is filtered out.
    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether the run is about `name`, whose roles on either side are `special_use`.
    pub fn wants(&self, name: &MailboxName, special_use: &[SpecialUse]) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name, special_use)))
            && !self.exclude.iter().any(|p| p.matches(name, special_use))
    }

    /// The `-m` patterns that match none of `mailboxes` (each a name and its roles): a
    /// typo, or a folder the account does not have.
    pub fn unmatched_includes<'a>(
        &'a self,
        mailboxes: &[(&MailboxName, &[SpecialUse])],
    ) -> Vec<&'a MailboxPattern> {
        unmatched(&self.include, mailboxes)
    }

    /// The `-x` patterns that match none of `mailboxes`: they exclude nothing.
    pub fn unmatched_excludes<'a>(
        &'a self,
        mailboxes: &[(&MailboxName, &[SpecialUse])],
    ) -> Vec<&'a MailboxPattern> {
        unmatched(&self.exclude, mailboxes)
    }
}

fn unmatched<'a>(
    patterns: &'a [MailboxPattern],
    mailboxes: &[(&MailboxName, &[SpecialUse])],
) -> Vec<&'a MailboxPattern> {
    patterns
        .iter()
        .filter(|pattern| !mailboxes.iter().any(|(name, roles)| pattern.matches(name, roles)))
        .collect()
}

/// Which flag `-O` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagCondition {
    /// Only messages with this flag or keyword (`-O \Seen`, `-O $Label1`).
    With(String),
    /// Only messages without it (`-O -\Seen`).
    Without(String),
}

/// Why a message is outside a [`MessageFilter`]: the first of its conditions the message
/// fails, in the order `-t`, `-e`, `-I`, `-O` (so each message has one reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterReason {
    /// Received before `-t`.
    ReceivedBefore,
    /// Received after `-e`.
    ReceivedAfter,
    /// Larger than `-I`.
    Larger,
    /// Without (or, with `-O -FLAG`, with) the `-O` flag.
    Flag,
}

/// `-t`, `-e`, `-I`, `-O`: which messages a run copies and compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only messages received at or after this UNIX time (`-t`).
    pub received_since: Option<i64>,
    /// Only messages received at or before this UNIX time (`-e`).
    pub received_until: Option<i64>,
    /// Only messages of at most this many bytes (`-I`).
    pub max_size: Option<u64>,
    /// Only messages with (or without) one flag or keyword (`-O`).
    pub flag: Option<FlagCondition>,
}

impl MessageFilter {
    /// True when every message passes.
    pub fn is_everything(&self) -> bool {
        *self == MessageFilter::default()
    }

    /// Whether `meta` is inside the filter. Unknown dates and sizes pass: a filter never
    /// excludes a message for lack of information.
    pub fn wants(&self, meta: &MessageMeta) -> bool {
        self.excluded_by(meta).is_none()
    }

    /// Why `meta` is outside the filter (`None`: it is inside).
    pub fn excluded_by(&self, meta: &MessageMeta) -> Option<FilterReason> {
        if let Some(received) = meta.received {
            if self.received_since.is_some_and(|since| received < since) {
                return Some(FilterReason::ReceivedBefore);
            }
            if self.received_until.is_some_and(|until| received > until) {
                return Some(FilterReason::ReceivedAfter);
            }
        }
        if let (Some(max), Some(size)) = (self.max_size, meta.virtual_size)
            && size > max
        {
            return Some(FilterReason::Larger);
        }
        let flag_ok = match &self.flag {
            None => true,
            Some(FlagCondition::With(flag)) => has_flag(&meta.flags, flag),
            Some(FlagCondition::Without(flag)) => !has_flag(&meta.flags, flag),
        };
        (!flag_ok).then_some(FilterReason::Flag)
    }
}

fn has_flag(flags: &Flags, name: &str) -> bool {
    match SystemFlags::from_imap_name(name) {
        Some(system) => flags.system.contains(system),
        None => flags.keywords.iter().any(|k| k.eq_ignore_ascii_case(name)),
    }
}

/// Lets `inbox/*` match `INBOX/x`: the INBOX component is case-insensitive everywhere.
fn normalise_inbox(pattern: &str, name: &str) -> (String, String) {
    let fix = |text: &str| {
        let first = text.split('/').next().unwrap_or("");
        if first.eq_ignore_ascii_case("INBOX") {
            format!("INBOX{}", &text[first.len()..])
        } else {
            text.to_owned()
        }
    };
    (fix(pattern), fix(name))
}

/// `*` any sequence, `%` any sequence without `/`, `?` one byte. Dynamic programming over
/// (pattern, text) positions: O(|pattern| × |text|), no exponential backtracking.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    // matches[j]: pattern[..i] matches text[..j], for the current i.
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        match p {
            b'*' | b'%' => {
                for j in 0..=text.len() {
                    next[j] =
                        matches[j] || (j > 0 && next[j - 1] && (p == b'*' || text[j - 1] != b'/'));
                }
            }
            _ => {
                for j in 1..=text.len() {
                    next[j] = matches[j - 1] && (p == b'?' || p == text[j - 1]);
                }
            }
        }
        matches = next;
    }
    matches[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(path: &str) -> MailboxName {
        MailboxName::split(path, Some('/')).expect("valid")
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "anything/at/all", true),
            ("Archive*", "Archive/2023", true),
            ("Archive%", "Archive/2023", false),
            ("Archive/%", "Archive/2023", true),
            ("Archive/%", "Archive/2023/Q1", false),
            ("A?chive", "Archive", true),
            ("Archive", "Archive/2023", false),
            ("inbox", "INBOX", true),
            ("INBOX/*", "inbox/Sub", true),
            ("*e", "Trash/Recycle", true),
            ("%/%", "a/b", true),
            ("", "a", false),
            ("*/%", "a/b/c", true),
            ("%/*", "a/b/c", true),
            ("%/%", "a/b/c", false),
            ("*%*?", "x", true),
        ];
        for (pattern, mailbox, expected) in cases {
            let filter = MailboxFilter {
                include: vec![MailboxPattern::Name(pattern.into())],
                exclude: vec![],
            };
            assert_eq!(filter.wants(&name(mailbox), &[]), expected, "{pattern} vs {mailbox}");
        }
    }

    #[test]
    fn include_exclude_and_special_use() {
        let filter = MailboxFilter {
            include: vec![MailboxPattern::parse("*").expect("valid")],
            exclude: vec![
                MailboxPattern::parse("\\Trash").expect("valid"),
                MailboxPattern::parse("Spam*").expect("valid"),
            ],
        };
        assert!(filter.wants(&name("INBOX"), &[]));
        assert!(!filter.wants(&name("Deleted Items"), &[SpecialUse::Trash]));
        assert!(!filter.wants(&name("Spam/Old"), &[]));
        assert!(MailboxPattern::parse("\\Bogus").is_err());
        let only_sent = MailboxFilter {
            include: vec![MailboxPattern::SpecialUse(SpecialUse::Sent)],
            exclude: vec![],
        };
        assert!(only_sent.wants(&name("Gesendet"), &[SpecialUse::Sent]));
        assert!(!only_sent.wants(&name("INBOX"), &[]));
    }

    #[test]
    fn message_filter() {
        let mut meta =
            MessageMeta::new(crate::model::Uid::MIN, Flags::from_imap_names(["\\Seen", "$Work"]));
        meta.received = Some(1000);
        meta.virtual_size = Some(500);
        let cases = [
            (MessageFilter { received_since: Some(1000), ..MessageFilter::default() }, true),
            (MessageFilter { received_since: Some(1001), ..MessageFilter::default() }, false),
            (MessageFilter { received_until: Some(999), ..MessageFilter::default() }, false),
            (MessageFilter { max_size: Some(500), ..MessageFilter::default() }, true),
            (MessageFilter { max_size: Some(499), ..MessageFilter::default() }, false),
            (
                MessageFilter {
                    flag: Some(FlagCondition::With("\\seen".into())),
                    ..MessageFilter::default()
                },
                true,
            ),
            (
                MessageFilter {
                    flag: Some(FlagCondition::With("$work".into())),
                    ..MessageFilter::default()
                },
                true,
            ),
            (
                MessageFilter {
                    flag: Some(FlagCondition::Without("\\Seen".into())),
                    ..MessageFilter::default()
                },
                false,
            ),
            (
                MessageFilter {
                    flag: Some(FlagCondition::Without("\\Flagged".into())),
                    ..MessageFilter::default()
                },
                true,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(filter.wants(&meta), expected, "{filter:?}");
        }
        meta.received = None;
        assert!(
            MessageFilter { received_since: Some(5000), ..MessageFilter::default() }.wants(&meta)
        );
    }

    #[test]
    fn the_first_failed_condition_is_the_reason() {
        let mut meta = MessageMeta::new(crate::model::Uid::MIN, Flags::default());
        meta.received = Some(1000);
        meta.virtual_size = Some(500);
        let all = MessageFilter {
            received_since: Some(2000),
            received_until: Some(3000),
            max_size: Some(100),
            flag: Some(FlagCondition::With("\\Seen".into())),
        };
        assert_eq!(all.excluded_by(&meta), Some(FilterReason::ReceivedBefore));
        meta.received = Some(4000);
        assert_eq!(all.excluded_by(&meta), Some(FilterReason::ReceivedAfter));
        meta.received = Some(2500);
        assert_eq!(all.excluded_by(&meta), Some(FilterReason::Larger));
        meta.virtual_size = Some(50);
        assert_eq!(all.excluded_by(&meta), Some(FilterReason::Flag));
        meta.flags = Flags::from_imap_names(["\\Seen"]);
        assert_eq!(all.excluded_by(&meta), None);
        assert!(all.wants(&meta));
    }

    #[test]
    fn patterns_that_match_nothing() {
        let filter = MailboxFilter {
            include: vec![
                MailboxPattern::parse("INBOX").expect("valid"),
                MailboxPattern::parse("NoSuch*").expect("valid"),
                MailboxPattern::parse("\\Sent").expect("valid"),
            ],
            exclude: vec![
                MailboxPattern::parse("Spam").expect("valid"),
                MailboxPattern::parse("Trsh").expect("valid"),
            ],
        };
        let (inbox, spam) = (name("INBOX"), name("Spam"));
        let list: [(&MailboxName, &[SpecialUse]); 2] = [(&inbox, &[]), (&spam, &[])];
        let shown = |patterns: Vec<&MailboxPattern>| -> Vec<String> {
            patterns.iter().map(ToString::to_string).collect()
        };
        assert_eq!(shown(filter.unmatched_includes(&list)), ["NoSuch*", "\\Sent"]);
        assert_eq!(shown(filter.unmatched_excludes(&list)), ["Trsh"]);
        let sent = name("Gesendet");
        let list: [(&MailboxName, &[SpecialUse]); 1] = [(&sent, &[SpecialUse::Sent])];
        assert_eq!(shown(filter.unmatched_includes(&list)), ["INBOX", "NoSuch*"]);
    }
}
