//! Mailbox names as the engine sees them: validated UTF-8 components.

use std::fmt;

use crate::error::{Error, Result};

/// A mailbox name as a list of UTF-8 hierarchy components, e.g. `["Archive", "2023"]`.
///
/// `INBOX` (any case) as the first component is normalised to `INBOX`. A component that is
/// empty, `.` or `..`, or contains `/`, NUL or any control character is refused with an
/// error naming the folder, so a name can never reach outside the store's root. Separators
/// that only some layouts reserve (`.` in Maildir++) are checked when the name is mapped to
/// a directory.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxName {
    components: Vec<String>,
}

impl MailboxName {
    /// Validates and builds a name from its components.
    pub fn new<I, S>(components: I) -> Result<MailboxName>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut components: Vec<String> = components.into_iter().map(Into::into).collect();
        let display = components.join("/");
        if components.is_empty() {
            return Err(Error::InvalidName { name: display, reason: "no components" });
        }
        for component in &components {
            validate_component(component)
                .map_err(|reason| Error::InvalidName { name: display.clone(), reason })?;
        }
        if components[0].eq_ignore_ascii_case("INBOX") {
            components[0] = String::from("INBOX");
        }
        Ok(MailboxName { components })
    }

    /// Splits `name` at `separator` and validates the parts (`"Archive/2023"`, `'/'`).
    pub fn parse(name: &str, separator: char) -> Result<MailboxName> {
        MailboxName::new(name.split(separator))
    }

    /// Decodes a modified UTF-7 name (as IMAP servers and Dovecot's disk names spell it)
    /// split at `separator`. Invalid modified UTF-7 is refused with an error naming the
    /// folder, like any other invalid name.
    pub fn from_modified_utf7(name: &str, separator: char) -> Result<MailboxName> {
        let components: std::result::Result<Vec<String>, _> =
            name.split(separator).map(mutf7::decode).collect();
        let Ok(components) = components else {
            return Err(Error::InvalidName {
                name: name.to_string(),
                reason: "invalid modified UTF-7",
            });
        };
        // Name the folder as it was given, not as it decoded.
        MailboxName::new(components).map_err(|error| match error {
            Error::InvalidName { reason, .. } => {
                Error::InvalidName { name: name.to_string(), reason }
            }
            other => other,
        })
    }

    /// `INBOX`.
    pub fn inbox() -> MailboxName {
        MailboxName { components: vec![String::from("INBOX")] }
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// True for `INBOX` itself (not for `INBOX/child`).
    pub fn is_inbox(&self) -> bool {
        self.components.len() == 1 && self.components[0] == "INBOX"
    }

    /// The parent name, if this is not a top-level name.
    pub fn parent(&self) -> Option<MailboxName> {
        (self.components.len() > 1).then(|| MailboxName {
            components: self.components[..self.components.len() - 1].to_vec(),
        })
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &MailboxName) -> bool {
        self.components.starts_with(&other.components)
    }

    /// The components joined with `separator`.
    pub fn join(&self, separator: &str) -> String {
        self.components.join(separator)
    }
}

fn validate_component(component: &str) -> std::result::Result<(), &'static str> {
    match component {
        "" => Err("empty component"),
        "." | ".." => Err("component `.` or `..`"),
        _ if component.contains('/') => Err("component contains `/`"),
        _ if component.contains('\0') => Err("component contains NUL"),
        _ if component.chars().any(char::is_control) => {
            Err("component contains a control character")
        }
        _ => Ok(()),
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

impl fmt::Debug for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MailboxName({:?})", self.components.join("/"))
    }
}

impl std::str::FromStr for MailboxName {
    type Err = Error;
    /// Parses a `/`-separated name.
    fn from_str(s: &str) -> Result<MailboxName> {
        MailboxName::parse(s, '/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let ok: &[(&[&str], &str)] = &[
            (&["inbox"], "INBOX"),
            (&["Inbox", "Sub"], "INBOX/Sub"),
            (&["Archive", "inbox"], "Archive/inbox"),
            (&["Entwürfe"], "Entwürfe"),
            (&["a.b"], "a.b"),
            (&["..."], "..."),
        ];
        for (components, display) in ok {
            assert_eq!(MailboxName::new(components.iter().copied()).unwrap().to_string(), *display);
        }
        let bad: &[&[&str]] = &[
            &[],
            &[""],
            &["."],
            &[".."],
            &["a", ".."],
            &["a/b"],
            &["a\0b"],
            &["a\tb"],
            &["\u{85}"],
        ];
        for components in bad {
            let err = MailboxName::new(components.iter().copied()).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{components:?}");
        }
    }

    #[test]
    fn modified_utf7() {
        let name = MailboxName::from_modified_utf7("Entw&APw-rfe/R&-D", '/').unwrap();
        assert_eq!(name.components(), ["Entwürfe", "R&D"]);
        for bad in ["&Jjo", "bad&", "x&AGE-y", "a/&AC8-b", "&AAA-"] {
            let error = MailboxName::from_modified_utf7(bad, '/').unwrap_err();
            assert!(error.to_string().contains(bad.split('/').next().unwrap()), "{bad}: {error}");
        }
    }

    #[test]
    fn parent_and_prefix() {
        let name: MailboxName = "Archive/2023/Q1".parse().unwrap();
        assert_eq!(name.parent().unwrap().to_string(), "Archive/2023");
        assert!(name.starts_with(&"Archive".parse().unwrap()));
        assert!(!name.starts_with(&"Arch".parse().unwrap()));
        assert!(MailboxName::inbox().is_inbox());
    }
}
