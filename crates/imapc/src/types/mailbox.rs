//! Mailbox names: the raw bytes a server uses, and their UTF-8 meaning.

use std::borrow::Cow;
use std::fmt;

/// A mailbox name as the server spells it (`raw`: modified UTF-7 in IMAP4rev1, UTF-8 once
/// `UTF8=ACCEPT` is enabled) together with its decoded UTF-8 form.
///
/// A name that fails strict mUTF-7 decoding (servers do keep such names) is still usable:
/// [`MailboxName::decoded`] is `None`, and commands send the raw bytes back unchanged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxName {
    raw: Vec<u8>,
    decoded: Option<String>,
}

impl MailboxName {
    /// A name given in UTF-8, encoded to modified UTF-7 for the wire. `INBOX` is
    /// case-insensitive (RFC 3501 §5.1) and normalised to upper case.
    pub fn from_utf8(name: &str) -> MailboxName {
        let name = if name.eq_ignore_ascii_case("INBOX") { "INBOX" } else { name };
        MailboxName { raw: mutf7::encode(name).into_bytes(), decoded: Some(name.to_owned()) }
    }

    /// A name as received from a server speaking modified UTF-7.
    pub fn from_mutf7(raw: &[u8]) -> MailboxName {
        let decoded = mutf7::decode_bytes(raw).ok();
        MailboxName { raw: raw.to_vec(), decoded }
    }

    /// A name as received after `ENABLE UTF8=ACCEPT` (or IMAP4rev2): UTF-8 on the wire.
    pub fn from_utf8_wire(raw: &[u8]) -> MailboxName {
        let decoded = std::str::from_utf8(raw).ok().map(str::to_owned);
        MailboxName { raw: raw.to_vec(), decoded }
    }

    /// The bytes sent on the wire.
    pub fn as_raw(&self) -> &[u8] {
        &self.raw
    }

    /// The UTF-8 name, `None` when the raw name is not valid modified UTF-7.
    pub fn decoded(&self) -> Option<&str> {
        self.decoded.as_deref()
    }

    /// The decoded name, or the raw bytes shown lossily when they do not decode.
    pub fn display(&self) -> Cow<'_, str> {
        match &self.decoded {
            Some(name) => Cow::Borrowed(name),
            None => String::from_utf8_lossy(&self.raw),
        }
    }

    /// True for INBOX in any case.
    pub fn is_inbox(&self) -> bool {
        self.raw.eq_ignore_ascii_case(b"INBOX")
    }

    /// Splits the decoded name into hierarchy components at `delimiter`.
    pub fn components(&self, delimiter: Option<char>) -> Vec<Cow<'_, str>> {
        let name = self.display();
        match (name, delimiter) {
            (Cow::Borrowed(s), Some(d)) => s.split(d).map(Cow::Borrowed).collect(),
            (Cow::Owned(s), Some(d)) => s.split(d).map(|c| Cow::Owned(c.to_owned())).collect(),
            (name, None) => vec![name],
        }
    }
}

impl fmt::Debug for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.decoded {
            Some(name) if name.as_bytes() == self.raw.as_slice() => write!(f, "{name:?}"),
            Some(name) => write!(f, "{name:?} ({:?})", String::from_utf8_lossy(&self.raw)),
            None => write!(f, "raw {:?}", mutf7::escape_for_display(&self.raw)),
        }
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl From<&str> for MailboxName {
    fn from(name: &str) -> MailboxName {
        MailboxName::from_utf8(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_decodes_and_keeps_broken_names() {
        let name = MailboxName::from_utf8("Entwürfe");
        assert_eq!(name.as_raw(), b"Entw&APw-rfe");
        assert_eq!(MailboxName::from_mutf7(b"Entw&APw-rfe"), name);
        let broken = MailboxName::from_mutf7(b"&AGE-bad");
        assert_eq!(broken.decoded(), None);
        assert_eq!(broken.as_raw(), b"&AGE-bad");
        assert_eq!(broken.display(), "&AGE-bad");
        assert!(MailboxName::from_utf8("inbox").is_inbox());
        assert_eq!(MailboxName::from_utf8("inbox").as_raw(), b"INBOX");
        assert_eq!(MailboxName::from_utf8("A/B/C").components(Some('/')), ["A", "B", "C"]);
        assert_eq!(format!("{name:?}"), "\"Entwürfe\" (\"Entw&APw-rfe\")");
    }
}
