//! Message flags (RFC 3501 §2.3.2): system flags and keywords.

use std::fmt;

/// A message flag as a server sends it in FLAGS or PERMANENTFLAGS.
///
/// System flags are matched case-insensitively; keywords keep the server's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// `\Seen`.
    Seen,
    /// `\Answered`.
    Answered,
    /// `\Flagged`.
    Flagged,
    /// `\Deleted`.
    Deleted,
    /// `\Draft`.
    Draft,
    /// `\Recent`: session state, never to be copied (it cannot be stored, RFC 3501 §2.3.2).
    Recent,
    /// `\*` in PERMANENTFLAGS: new keywords may be created.
    MayCreate,
    /// Another `\`-flag (flag-extension).
    Extension(String),
    /// A keyword such as `$Forwarded` or `Junk`.
    Keyword(String),
}

impl Flag {
    /// Classifies a flag atom as received (`\Seen`, `$Label1`, …).
    pub fn from_atom(atom: &str) -> Flag {
        if let Some(name) = atom.strip_prefix('\\') {
            let is = |known: &str| name.eq_ignore_ascii_case(known);
            if is("seen") {
                Flag::Seen
            } else if is("answered") {
                Flag::Answered
            } else if is("flagged") {
                Flag::Flagged
            } else if is("deleted") {
                Flag::Deleted
            } else if is("draft") {
                Flag::Draft
            } else if is("recent") {
                Flag::Recent
            } else if name == "*" {
                Flag::MayCreate
            } else {
                Flag::Extension(atom.to_owned())
            }
        } else {
            Flag::Keyword(atom.to_owned())
        }
    }

    /// A keyword, checked to be a valid IMAP atom (no `( ) { SP CTL % * " \ ]`, not empty).
    pub fn keyword(name: &str) -> Option<Flag> {
        let valid = !name.is_empty() && !name.starts_with('\\') && name.bytes().all(is_atom_char);
        valid.then(|| Flag::Keyword(name.to_owned()))
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Recent => "\\Recent",
            Flag::MayCreate => "\\*",
            Flag::Extension(s) | Flag::Keyword(s) => s,
        }
    }

    /// True for `\Recent`, which describes the session rather than the message.
    pub fn is_recent(&self) -> bool {
        matches!(self, Flag::Recent)
    }
}

/// `ATOM-CHAR = <any CHAR except atom-specials>` (RFC 3501 §9).
pub(crate) const fn is_atom_char(byte: u8) -> bool {
    byte > 0x20
        && byte < 0x7f
        && !matches!(byte, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_answers() {
        let table: &[(&str, Flag)] = &[
            ("\\Seen", Flag::Seen),
            ("\\SEEN", Flag::Seen),
            ("\\answered", Flag::Answered),
            ("\\Recent", Flag::Recent),
            ("\\*", Flag::MayCreate),
            ("\\Important", Flag::Extension("\\Important".into())),
            ("$Forwarded", Flag::Keyword("$Forwarded".into())),
        ];
        for (atom, flag) in table {
            assert_eq!(&Flag::from_atom(atom), flag, "{atom}");
        }
        assert_eq!(Flag::Seen.to_string(), "\\Seen");
        assert!(Flag::keyword("$Label1").is_some());
        assert!(Flag::keyword("with space").is_none());
        assert!(Flag::keyword("").is_none());
        assert!(Flag::keyword("a]b").is_none());
    }
}
