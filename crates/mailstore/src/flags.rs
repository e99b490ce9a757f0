//! IMAP system flags and keywords.

use std::fmt;

use crate::error::{Error, Result};

/// The IMAP system flags a Maildir stores (`\Recent` is session state, not stored).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No flags.
    pub const EMPTY: Flags = Flags(0);
    /// `\Answered` (Maildir letter `R`).
    pub const ANSWERED: Flags = Flags(0x01);
    /// `\Flagged` (`F`).
    pub const FLAGGED: Flags = Flags(0x02);
    /// `\Deleted` (`T`, trashed).
    pub const DELETED: Flags = Flags(0x04);
    /// `\Seen` (`S`).
    pub const SEEN: Flags = Flags(0x08);
    /// `\Draft` (`D`).
    pub const DRAFT: Flags = Flags(0x10);

    /// Every flag with its IMAP name and Maildir letter, in letter order.
    pub const ALL: [(Flags, &'static str, u8); 5] = [
        (Flags::DRAFT, "\\Draft", b'D'),
        (Flags::FLAGGED, "\\Flagged", b'F'),
        (Flags::ANSWERED, "\\Answered", b'R'),
        (Flags::SEEN, "\\Seen", b'S'),
        (Flags::DELETED, "\\Deleted", b'T'),
    ];

    /// True if every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flag for a Maildir info letter, if it is one of `DFRST`.
    pub fn from_maildir_letter(letter: u8) -> Option<Flags> {
        Flags::ALL.iter().find(|(_, _, l)| *l == letter).map(|(f, _, _)| *f)
    }

    /// The flag for an IMAP name such as `\Seen` (case-insensitive).
    pub fn from_imap_name(name: &str) -> Option<Flags> {
        Flags::ALL.iter().find(|(_, n, _)| n.eq_ignore_ascii_case(name)).map(|(f, _, _)| *f)
    }

    /// IMAP names of the set flags, in Maildir letter order.
    pub fn imap_names(self) -> impl Iterator<Item = &'static str> {
        Flags::ALL.into_iter().filter(move |(f, _, _)| self.contains(*f)).map(|(_, n, _)| n)
    }

    /// Maildir letters of the set flags, sorted.
    pub fn maildir_letters(self) -> impl Iterator<Item = u8> {
        Flags::ALL.into_iter().filter(move |(f, _, _)| self.contains(*f)).map(|(_, _, l)| l)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.imap_names()).finish()
    }
}

/// An IMAP keyword (user flag) such as `$Label1` or `Junk`: a non-empty IMAP atom that does
/// not start with `\`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Keyword(String);

impl Keyword {
    /// Validates a keyword.
    pub fn new(keyword: impl Into<String>) -> Result<Keyword> {
        let keyword = keyword.into();
        let reason = if keyword.is_empty() {
            Some("empty")
        } else if keyword.starts_with('\\') {
            Some("starts with `\\` (system flags are not keywords)")
        } else if keyword.len() > 255 {
            Some("longer than 255 bytes")
        } else if !keyword.bytes().all(is_atom_char) {
            Some("not an IMAP atom (space, control, 8-bit or one of `(){%*\"\\]`)")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidKeyword { keyword, reason }),
            None => Ok(Keyword(keyword)),
        }
    }

    /// A keyword read from disk, kept as Dovecot keeps it even if it is not a valid atom
    /// (Dovecot's `dovecot-keywords` accepts any name without LF).
    pub(crate) fn from_disk(keyword: String) -> Keyword {
        Keyword(keyword)
    }

    /// The keyword text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `ATOM-CHAR` of RFC 3501: any CHAR except atom-specials.
fn is_atom_char(byte: u8) -> bool {
    (0x21..0x7f).contains(&byte) && !b"(){%*\"\\]".contains(&byte)
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyword({:?})", self.0)
    }
}

impl AsRef<str> for Keyword {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_names() {
        let flags = Flags::SEEN | Flags::DRAFT | Flags::DELETED;
        assert_eq!(flags.maildir_letters().collect::<Vec<_>>(), b"DST");
        assert_eq!(flags.imap_names().collect::<Vec<_>>(), ["\\Draft", "\\Seen", "\\Deleted"]);
        assert_eq!(Flags::from_maildir_letter(b'R'), Some(Flags::ANSWERED));
        assert_eq!(Flags::from_maildir_letter(b'P'), None);
        assert_eq!(Flags::from_imap_name("\\FLAGGED"), Some(Flags::FLAGGED));
    }

    #[test]
    fn keywords() {
        for good in ["$Label1", "Junk", "NonJunk", "$Forwarded", "a[b"] {
            assert_eq!(Keyword::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "\\Seen", "two words", "x\ny", "Grüße", "a]b", "50%"] {
            assert!(Keyword::new(bad).is_err(), "{bad:?}");
        }
    }
}
