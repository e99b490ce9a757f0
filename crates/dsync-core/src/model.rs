//! The values the engine reasons about: mailbox names, UIDs, flags, message and mailbox
//! metadata. Storage-neutral: every adapter maps its own representation to these.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;

/// A mailbox named by its UTF-8 hierarchy components, e.g. `["Archive", "2023"]`.
///
/// Components, not a joined string, because the two sides of a sync may use different
/// hierarchy separators (`/` on one IMAP server, `.` on another and in Maildir++). The
/// first component `INBOX` is case-insensitive and normalised to upper case.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxName(Vec<String>);

/// Why a mailbox name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// No components at all.
    #[error("empty mailbox name")]
    Empty,
    /// A component is the empty string (e.g. `a//b`).
    #[error("mailbox name {0:?} has an empty hierarchy level")]
    EmptyComponent(String),
}

impl MailboxName {
    /// Builds a name from components; INBOX is normalised.
    pub fn new<I, S>(components: I) -> Result<MailboxName, NameError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut components: Vec<String> = components.into_iter().map(Into::into).collect();
        if components.is_empty() {
            return Err(NameError::Empty);
        }
        if components.iter().any(String::is_empty) {
            return Err(NameError::EmptyComponent(components.join("/")));
        }
        if components[0].eq_ignore_ascii_case("INBOX") {
            components[0] = String::from("INBOX");
        }
        Ok(MailboxName(components))
    }

    /// Splits `name` on `separator` (`None`: a flat name with one component).
    pub fn split(name: &str, separator: Option<char>) -> Result<MailboxName, NameError> {
        match separator {
            Some(separator) => MailboxName::new(name.split(separator)),
            None => MailboxName::new([name]),
        }
    }

    /// The INBOX.
    pub fn inbox() -> MailboxName {
        MailboxName(vec![String::from("INBOX")])
    }

    /// True for the INBOX itself (not its children).
    pub fn is_inbox(&self) -> bool {
        self.0.len() == 1 && self.0[0] == "INBOX"
    }

    /// The hierarchy components.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// Joins the components with `separator`.
    pub fn join(&self, separator: char) -> String {
        let mut out = String::new();
        for (index, component) in self.0.iter().enumerate() {
            if index > 0 {
                out.push(separator);
            }
            out.push_str(component);
        }
        out
    }

    /// The parent mailbox name, if this is not a top-level mailbox.
    pub fn parent(&self) -> Option<MailboxName> {
        (self.0.len() > 1).then(|| MailboxName(self.0[..self.0.len() - 1].to_vec()))
    }

    /// True when `self` is `other` or one of its descendants.
    pub fn is_within(&self, other: &MailboxName) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join('/'))
    }
}

impl fmt::Debug for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.join('/'))
    }
}

macro_rules! nonzero_u32_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(NonZeroU32);

        impl $name {
            /// Wraps a non-zero value; zero is not a valid
            #[doc = $what]
            pub const fn new(value: u32) -> Option<$name> {
                match NonZeroU32::new(value) {
                    Some(value) => Some($name(value)),
                    None => None,
                }
            }
            /// The numeric value.
            pub const fn get(self) -> u32 {
                self.0.get()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

nonzero_u32_newtype!(
    /// A message UID (RFC 3501 §2.3.1.1): non-zero, strictly ascending within a UIDVALIDITY.
    Uid,
    "UID."
);
nonzero_u32_newtype!(
    /// A mailbox's UIDVALIDITY: non-zero; when it changes, every cached UID is void.
    UidValidity,
    "UIDVALIDITY."
);

impl Uid {
    /// UID 1.
    pub const MIN: Uid = match Uid::new(1) {
        Some(uid) => uid,
        None => unreachable!(),
    };

    /// The UID after this one, `None` at `u32::MAX`.
    pub fn next(self) -> Option<Uid> {
        self.get().checked_add(1).and_then(Uid::new)
    }
}

impl UidValidity {
    /// UIDVALIDITY 1.
    pub const MIN: UidValidity = match UidValidity::new(1) {
        Some(value) => value,
        None => unreachable!(),
    };
}

/// The five IMAP system flags that storages keep (`\Recent` is session state and never
/// copied).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemFlags(u8);

impl SystemFlags {
    /// `\Seen`.
    pub const SEEN: SystemFlags = SystemFlags(0x01);
    /// `\Answered`.
    pub const ANSWERED: SystemFlags = SystemFlags(0x02);
    /// `\Flagged`.
    pub const FLAGGED: SystemFlags = SystemFlags(0x04);
    /// `\Deleted`.
    pub const DELETED: SystemFlags = SystemFlags(0x08);
    /// `\Draft`.
    pub const DRAFT: SystemFlags = SystemFlags(0x10);
    /// Every flag, with its IMAP name, in a fixed order.
    pub const ALL: [(SystemFlags, &'static str); 5] = [
        (SystemFlags::ANSWERED, "\\Answered"),
        (SystemFlags::FLAGGED, "\\Flagged"),
        (SystemFlags::DELETED, "\\Deleted"),
        (SystemFlags::SEEN, "\\Seen"),
        (SystemFlags::DRAFT, "\\Draft"),
    ];

    /// No flags.
    pub const fn empty() -> SystemFlags {
        SystemFlags(0)
    }
    /// True when every flag of `other` is set.
    pub const fn contains(self, other: SystemFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// The union.
    #[must_use]
    pub const fn union(self, other: SystemFlags) -> SystemFlags {
        SystemFlags(self.0 | other.0)
    }
    /// `self` without `other`.
    #[must_use]
    pub const fn difference(self, other: SystemFlags) -> SystemFlags {
        SystemFlags(self.0 & !other.0)
    }
    /// Raw bits (`SEEN` = 1, `ANSWERED` = 2, `FLAGGED` = 4, `DELETED` = 8, `DRAFT` = 16).
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// From raw bits; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> SystemFlags {
        SystemFlags(bits & 0x1f)
    }
    /// The flag named `name` (case-insensitive, with the backslash), if it is one of the five.
    pub fn from_imap_name(name: &str) -> Option<SystemFlags> {
        SystemFlags::ALL.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(f, _)| *f)
    }
    /// IMAP names of the flags that are set.
    pub fn imap_names(self) -> impl Iterator<Item = &'static str> {
        SystemFlags::ALL.into_iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| n)
    }
}

impl fmt::Debug for SystemFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.imap_names()).finish()
    }
}

/// System flags plus keywords: the complete flag state of a message.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// The system flags.
    pub system: SystemFlags,
    /// Keywords (`$Label1`, `Junk`, …), exactly as the storage spells them.
    pub keywords: BTreeSet<String>,
}

impl Flags {
    /// Flags from IMAP flag names: `\`-names become system flags (unknown ones and
    /// `\Recent` are dropped), everything else is a keyword.
    pub fn from_imap_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Flags {
        let mut flags = Flags::default();
        for name in names {
            if let Some(flag) = SystemFlags::from_imap_name(name) {
                flags.system = flags.system.union(flag);
            } else if !name.starts_with('\\') {
                flags.keywords.insert(name.to_owned());
            }
        }
        flags
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.system.imap_names()).entries(&self.keywords).finish()
    }
}

/// A 128-bit mailbox GUID (Dovecot keeps one per mailbox; IMAP servers have none).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxGuid(pub [u8; 16]);

impl fmt::Display for MailboxGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for MailboxGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl MailboxGuid {
    /// Parses 32 hex digits.
    pub fn from_hex(text: &str) -> Option<MailboxGuid> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut guid = [0u8; 16];
        for (index, pair) in bytes.chunks_exact(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            guid[index] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(MailboxGuid(guid))
    }
}

/// Everything the engine knows about one message without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageMeta {
    /// UID in its mailbox.
    pub uid: Uid,
    /// Flags and keywords.
    pub flags: Flags,
    /// Received date (IMAP INTERNALDATE) as UNIX seconds, when known.
    pub received: Option<i64>,
    /// Size with CRLF line ends (IMAP RFC822.SIZE), when known. Informational: servers
    /// are known to report it wrongly, so the engine never uses it to judge identity.
    pub virtual_size: Option<u64>,
    /// A persistent message GUID, when the storage has one (Dovecot GUID, X-GM-MSGID).
    pub guid: Option<String>,
    /// The message's POP3 UIDL, when known.
    pub pop3_uidl: Option<String>,
    /// The message's position in the POP3 listing (1-based), when known.
    pub pop3_order: Option<u32>,
    /// The message's modification sequence (RFC 7162 MODSEQ), when the storage keeps
    /// them (an IMAP server with CONDSTORE, Dovecot's index). A destination that keeps
    /// them stores it, so a client that cached the source's modseqs sees none go back.
    pub modseq: Option<u64>,
}

impl MessageMeta {
    /// Metadata with just a UID and flags.
    pub fn new(uid: Uid, flags: Flags) -> MessageMeta {
        MessageMeta {
            uid,
            flags,
            received: None,
            virtual_size: None,
            guid: None,
            pop3_uidl: None,
            pop3_order: None,
            modseq: None,
        }
    }
}

/// The state of one mailbox that decides whether and how it must be synced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxStatus {
    /// UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// The next UID the mailbox will assign (at least 1 above every UID ever used).
    pub uid_next: Uid,
    /// Number of messages.
    pub messages: u32,
    /// HIGHESTMODSEQ, when the storage keeps modification sequences.
    pub highest_modseq: Option<u64>,
    /// The mailbox GUID: a persistent one where the storage keeps them
    /// ([`Capabilities::mailbox_guids`](crate::Capabilities::mailbox_guids)), else the one
    /// Dovecot would derive from the name (IMAP, POP3: [`crate::derived_guid`]), else none.
    pub guid: Option<MailboxGuid>,
    /// An opaque value that changes whenever anything in the mailbox changes (messages,
    /// flags, keywords): lets a later run skip the mailbox when neither side changed.
    /// `None` when the storage cannot tell (e.g. an IMAP server without CONDSTORE).
    pub change_token: Option<String>,
    /// A backup destination that had to be rebuilt under a UIDVALIDITY of its own (the
    /// source's was the one it had already given out other UIDs under): the source's
    /// UIDVALIDITY, whose UIDs it holds. A backup then takes the two values as one. `None`
    /// for every other mailbox (and whenever the storage cannot remember it).
    pub source_uid_validity: Option<UidValidity>,
}

impl MailboxStatus {
    /// A status with its UIDVALIDITY, UIDNEXT and message count; the optional parts
    /// (HIGHESTMODSEQ, GUID, change token, the source's UIDVALIDITY) are `None` until set.
    pub fn new(uid_validity: UidValidity, uid_next: Uid, messages: u32) -> MailboxStatus {
        MailboxStatus {
            uid_validity,
            uid_next,
            messages,
            highest_modseq: None,
            guid: None,
            change_token: None,
            source_uid_validity: None,
        }
    }
}

/// What a run records about a mailbox after syncing it, and compares next time: its change
/// token and GUID (see [`MailboxStatus`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxStamp {
    /// [`MailboxStatus::change_token`].
    pub change_token: Option<String>,
    /// [`MailboxStatus::guid`].
    pub guid: Option<MailboxGuid>,
}

impl From<&MailboxStatus> for MailboxStamp {
    fn from(status: &MailboxStatus) -> MailboxStamp {
        MailboxStamp { change_token: status.change_token.clone(), guid: status.guid }
    }
}

/// SPECIAL-USE roles (RFC 6154 and RFC 8457), for filters and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SpecialUse {
    /// `\All`.
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged`.
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
    /// `\Important`.
    Important,
}

impl SpecialUse {
    /// Parses an attribute such as `\Sent` (case-insensitive).
    pub fn from_attribute(attribute: &str) -> Option<SpecialUse> {
        let name = attribute.strip_prefix('\\')?;
        Some(match name.to_ascii_lowercase().as_str() {
            "all" => SpecialUse::All,
            "archive" => SpecialUse::Archive,
            "drafts" => SpecialUse::Drafts,
            "flagged" => SpecialUse::Flagged,
            "junk" => SpecialUse::Junk,
            "sent" => SpecialUse::Sent,
            "trash" => SpecialUse::Trash,
            "important" => SpecialUse::Important,
            _ => return None,
        })
    }
}

/// One entry of a storage's mailbox list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The mailbox.
    pub name: MailboxName,
    /// False for a `\Noselect` placeholder that only holds children.
    pub selectable: bool,
    /// SPECIAL-USE roles.
    pub special_use: Vec<SpecialUse>,
}

impl MailboxInfo {
    /// A selectable mailbox without special use.
    pub fn new(name: MailboxName) -> MailboxInfo {
        MailboxInfo { name, selectable: true, special_use: Vec::new() }
    }
}

/// A mailbox's status and message list, read together so they are consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxContents {
    /// Status at the time of listing.
    pub status: MailboxStatus,
    /// Messages in ascending UID order.
    pub messages: Vec<MessageMeta>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_normalised_and_names_order_parents_first() {
        let inbox = MailboxName::new(["inbox"]).expect("valid");
        assert!(inbox.is_inbox());
        let child = MailboxName::new(["Inbox", "Sub"]).expect("valid");
        assert_eq!(child.components(), ["INBOX", "Sub"]);
        assert!(inbox < child && child.is_within(&inbox));
        assert_eq!(child.parent(), Some(inbox));
        assert_eq!(MailboxName::split("a.b", Some('.')).expect("valid").join('/'), "a/b");
        assert_eq!(
            MailboxName::split("a//b", Some('/')),
            Err(NameError::EmptyComponent("a//b".into()))
        );
        assert_eq!(MailboxName::new(Vec::<String>::new()), Err(NameError::Empty));
    }

    #[test]
    fn flags_from_imap_names() {
        let flags =
            Flags::from_imap_names(["\\Seen", "\\recent", "$Label1", "\\Draft", "\\Unknown"]);
        assert_eq!(flags.system, SystemFlags::SEEN.union(SystemFlags::DRAFT));
        assert_eq!(flags.keywords.iter().collect::<Vec<_>>(), ["$Label1"]);
        assert_eq!(format!("{flags:?}"), r#"["\\Seen", "\\Draft", "$Label1"]"#);
    }

    #[test]
    fn mailbox_guid_hex_round_trip() {
        let guid = MailboxGuid::from_hex("58049b2934ff036bb01c000083ecc375").expect("hex");
        assert_eq!(guid.to_string(), "58049b2934ff036bb01c000083ecc375");
        assert_eq!(MailboxGuid::from_hex("xyz"), None);
    }
}
