//! Dovecot's `imapc_list_prefix` (`src/lib-storage/index/imapc/imapc-list.c`, 2.3.19.1):
//! servers such as Courier and Cyrus keep every folder below `INBOX.`; with the prefix
//! `INBOX` the remote `INBOX.Sent` is the local `Sent`.
//!
//! The rules, as Dovecot's imapc applies them:
//! * the listing asks for `PREFIX*` (so also the prefix's own flags come along);
//! * a remote name `PREFIX<sep>REST` is the local `REST`;
//! * INBOX is INBOX on both sides, whatever the prefix, and always exists;
//! * the prefix mailbox itself has no local name (Dovecot's name for it is empty): it is
//!   neither listed nor copied, nor is anything outside the prefix;
//! * every name sent to the server (SELECT, EXAMINE, STATUS, FETCH) is `PREFIX<sep>NAME`,
//!   except INBOX;
//! * subscriptions map the same way (Dovecot asks `LSUB "" PREFIX*`).
//!
//! Dovecot refuses a prefix that ends with the separator; so does this.

use crate::error::{ErrorKind, StorageError};

/// The prefix and the server's hierarchy separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListPrefix {
    prefix: String,
    separator: char,
}

/// Where a remote name falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Local<'a> {
    /// The remote INBOX.
    Inbox,
    /// Below the prefix: the local name, separated by the server's separator.
    Below(&'a str),
    /// The prefix mailbox itself.
    Prefix,
    /// Outside the prefix.
    Outside,
}

impl ListPrefix {
    /// `prefix` on a server whose separator is `separator`.
    pub(super) fn new(prefix: &str, separator: char) -> Result<ListPrefix, StorageError> {
        if prefix.ends_with(separator) {
            let trimmed = prefix.trim_end_matches(separator);
            // A bad setting: doveadm's usage error.
            return Err(StorageError::new(
                ErrorKind::Usage,
                format!(
                    "imapc_list_prefix={prefix}: must not end with the server's hierarchy \
                     separator {separator:?} (Dovecot refuses it too): use {trimmed}"
                ),
            ));
        }
        Ok(ListPrefix { prefix: prefix.to_owned(), separator })
    }

    /// The prefix as given.
    pub(super) fn as_str(&self) -> &str {
        &self.prefix
    }

    /// The LIST pattern: `PREFIX*`.
    pub(super) fn pattern(&self) -> String {
        format!("{}*", self.prefix)
    }

    /// The remote name of the local mailbox `joined` (already joined with the server's
    /// separator); INBOX is not prefixed.
    pub(super) fn to_remote(&self, joined: &str, is_inbox: bool) -> String {
        if is_inbox {
            joined.to_owned()
        } else {
            format!("{}{}{joined}", self.prefix, self.separator)
        }
    }

    /// Where the remote name `remote` falls.
    pub(super) fn to_local<'a>(&self, remote: &'a str) -> Local<'a> {
        if remote.eq_ignore_ascii_case("INBOX") {
            return Local::Inbox;
        }
        let Some(rest) = self.strip(remote) else { return Local::Outside };
        if rest.is_empty() {
            return Local::Prefix;
        }
        match rest.strip_prefix(self.separator) {
            Some(below) if !below.is_empty() => Local::Below(below),
            // `PREFIXfoo` matched the pattern `PREFIX*` but is a sibling, not a child.
            _ => Local::Outside,
        }
    }

    /// `remote` without the prefix. INBOX is case-insensitive (RFC 3501 §5.1), so is a
    /// leading `INBOX` in the prefix: `inbox` finds Courier's `INBOX.Sent`.
    fn strip<'a>(&self, remote: &'a str) -> Option<&'a str> {
        let head = remote.get(..self.prefix.len())?;
        let rest = &remote[self.prefix.len()..];
        let same = match (self.prefix.get(..5), head.get(..5)) {
            (Some(ours), Some(theirs)) if ours.eq_ignore_ascii_case("INBOX") => {
                theirs.eq_ignore_ascii_case("INBOX") && self.prefix[5..] == head[5..]
            }
            _ => head == self.prefix,
        };
        same.then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn courier_inbox_prefix() {
        let prefix = ListPrefix::new("INBOX", '.').expect("valid");
        assert_eq!(prefix.pattern(), "INBOX*");
        assert_eq!(prefix.to_local("INBOX"), Local::Inbox);
        assert_eq!(prefix.to_local("inbox"), Local::Inbox);
        assert_eq!(prefix.to_local("INBOX.Sent"), Local::Below("Sent"));
        assert_eq!(prefix.to_local("Inbox.Archive.2023"), Local::Below("Archive.2023"));
        assert_eq!(prefix.to_local("INBOXfoo"), Local::Outside);
        assert_eq!(prefix.to_local("INBOX."), Local::Outside);
        assert_eq!(prefix.to_local("Shared.x"), Local::Outside);
        assert_eq!(prefix.to_remote("Archive.2023", false), "INBOX.Archive.2023");
        assert_eq!(prefix.to_remote("INBOX", true), "INBOX");
    }

    #[test]
    fn other_prefixes() {
        let prefix = ListPrefix::new("Old/Mail", '/').expect("valid");
        assert_eq!(prefix.pattern(), "Old/Mail*");
        assert_eq!(prefix.to_local("Old/Mail"), Local::Prefix);
        assert_eq!(prefix.to_local("Old/Mail/Sent"), Local::Below("Sent"));
        assert_eq!(prefix.to_local("old/mail/Sent"), Local::Outside);
        assert_eq!(prefix.to_local("Old"), Local::Outside);
        assert_eq!(prefix.to_local("INBOX"), Local::Inbox);
        assert_eq!(prefix.to_remote("Sent", false), "Old/Mail/Sent");
        let accented = ListPrefix::new("Entwürfe", '.').expect("valid");
        assert_eq!(accented.to_local("Entwürfe.x"), Local::Below("x"));
        assert_eq!(accented.to_local("Entw"), Local::Outside);
    }

    #[test]
    fn a_trailing_separator_is_refused_with_the_fix() {
        let error = ListPrefix::new("INBOX.", '.').expect_err("trailing separator");
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(error.to_string().contains("use INBOX"), "{error}");
    }
}
