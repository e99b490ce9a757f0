//! Parsed server responses (RFC 3501 §7, RFC 9051 §7), as plain data.

use chrono::{DateTime, FixedOffset};

use crate::types::{Capabilities, Flag, MailboxName, SequenceSet, Uid, UidValidity};

/// One complete server response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// `<tag> OK|NO|BAD [code] text`: completes the command with that tag.
    Tagged {
        /// The command's tag.
        tag: String,
        /// Result.
        status: Status,
    },
    /// `* …`: data or a status, possibly unsolicited.
    Untagged(Untagged),
    /// `+ …`: the server waits for literal data or a SASL response.
    Continuation {
        /// Response code, if the text started with one.
        code: Option<Code>,
        /// The rest of the line (base64 for SASL challenges).
        text: String,
    },
}

/// `OK`, `NO`, `BAD`, `PREAUTH` or `BYE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// Success / information.
    Ok,
    /// Operational failure.
    No,
    /// Protocol error.
    Bad,
    /// Greeting: already authenticated.
    PreAuth,
    /// The server is closing the connection.
    Bye,
}

/// A status response: `resp-cond-state` / `resp-cond-bye` / `resp-cond-auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The condition.
    pub kind: StatusKind,
    /// `[code]`, if any.
    pub code: Option<Code>,
    /// Human-readable text (may be empty: Gmail omits it after `[HIGHESTMODSEQ n]`).
    pub text: String,
}

impl Status {
    /// True when the server asks us to slow down: a `[THROTTLED]` code, or Gmail's habit of
    /// appending `[THROTTLED]` to the end of the text (comment in Dovecot's
    /// imapc-connection.c), or Exchange's "Request is throttled".
    pub fn is_throttled(&self) -> bool {
        matches!(&self.code, Some(Code::Other { name, .. }) if name.eq_ignore_ascii_case("THROTTLED"))
            || self.text.trim_end().ends_with("[THROTTLED]")
            || self.text.contains("Request is throttled")
    }
}

/// Response codes (RFC 3501 §7.1 and extensions). Unknown codes are kept as data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// `ALERT`: the text must be shown to the user.
    Alert,
    /// `PARSE`.
    Parse,
    /// `READ-ONLY`.
    ReadOnly,
    /// `READ-WRITE`.
    ReadWrite,
    /// `TRYCREATE`.
    TryCreate,
    /// `CAPABILITY …`.
    Capability(Capabilities),
    /// `PERMANENTFLAGS (…)`.
    PermanentFlags(Vec<Flag>),
    /// `UIDVALIDITY n`.
    UidValidity(UidValidity),
    /// `UIDNEXT n`.
    UidNext(Uid),
    /// `UNSEEN n`.
    Unseen(u32),
    /// `HIGHESTMODSEQ n` (RFC 7162).
    HighestModSeq(u64),
    /// `NOMODSEQ` (RFC 7162): the mailbox has no persistent mod-sequences.
    NoModSeq,
    /// `MODIFIED set` (RFC 7162): UIDs a conditional STORE did not change.
    Modified(SequenceSet),
    /// `APPENDUID uidvalidity uid-set` (RFC 4315).
    AppendUid {
        /// The destination's UIDVALIDITY.
        uid_validity: UidValidity,
        /// The new message's UID(s).
        uids: SequenceSet,
    },
    /// `COPYUID uidvalidity source-set destination-set` (RFC 4315).
    CopyUid {
        /// The destination's UIDVALIDITY.
        uid_validity: UidValidity,
        /// Source UIDs.
        source: SequenceSet,
        /// Destination UIDs, in corresponding order.
        destination: SequenceSet,
    },
    /// `UIDNOTSTICKY` (RFC 4315).
    UidNotSticky,
    /// `CLOSED` (RFC 7162): the previously selected mailbox is closed.
    Closed,
    /// `BADCHARSET (…)`.
    BadCharset(Vec<String>),
    /// Any other code, e.g. `AUTHENTICATIONFAILED`, `OVERQUOTA`, `THROTTLED`, kept as data.
    Other {
        /// The code's atom, as sent.
        name: String,
        /// Its argument text, if any.
        data: Option<String>,
    },
}

impl Code {
    /// The code's name in upper case (`"UIDNEXT"`, `"THROTTLED"`, …).
    pub fn name(&self) -> String {
        let name = match self {
            Code::Alert => "ALERT",
            Code::Parse => "PARSE",
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::TryCreate => "TRYCREATE",
            Code::Capability(_) => "CAPABILITY",
            Code::PermanentFlags(_) => "PERMANENTFLAGS",
            Code::UidValidity(_) => "UIDVALIDITY",
            Code::UidNext(_) => "UIDNEXT",
            Code::Unseen(_) => "UNSEEN",
            Code::HighestModSeq(_) => "HIGHESTMODSEQ",
            Code::NoModSeq => "NOMODSEQ",
            Code::Modified(_) => "MODIFIED",
            Code::AppendUid { .. } => "APPENDUID",
            Code::CopyUid { .. } => "COPYUID",
            Code::UidNotSticky => "UIDNOTSTICKY",
            Code::Closed => "CLOSED",
            Code::BadCharset(_) => "BADCHARSET",
            Code::Other { name, .. } => return name.to_ascii_uppercase(),
        };
        name.to_owned()
    }
}

/// Untagged responses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Untagged {
    /// `* OK|NO|BAD|PREAUTH|BYE [code] text`.
    Status(Status),
    /// `* CAPABILITY …`.
    Capability(Capabilities),
    /// `* ENABLED …` (RFC 5161).
    Enabled(Vec<String>),
    /// `* FLAGS (…)`.
    Flags(Vec<Flag>),
    /// `* LIST`, `* LSUB` or `* XLIST`.
    List(ListEntry),
    /// `* STATUS mailbox (…)`.
    MailboxStatus(MailboxStatus),
    /// `* SEARCH n n …` (with `(MODSEQ n)` under CONDSTORE).
    Search {
        /// Matching numbers.
        numbers: Vec<u32>,
        /// Highest mod-sequence of the matches (RFC 7162 §3.1.5).
        modseq: Option<u64>,
    },
    /// `* ESEARCH …` (RFC 4731).
    ESearch(ESearch),
    /// `* n EXISTS`.
    Exists(u32),
    /// `* n RECENT`.
    Recent(u32),
    /// `* n EXPUNGE`.
    Expunge(u32),
    /// `* n FETCH (…)`.
    Fetch(Box<Fetch>),
    /// `* VANISHED [(EARLIER)] uid-set` (RFC 7162).
    Vanished {
        /// `(EARLIER)`: a reply to QRESYNC/VANISHED, not a new expunge.
        earlier: bool,
        /// The expunged UIDs.
        uids: SequenceSet,
    },
    /// `* NAMESPACE …` (RFC 2342).
    Namespace(Namespaces),
    /// `* ID (…)` or `* ID NIL` (RFC 2971).
    Id(Option<Vec<(String, Option<String>)>>),
    /// A response that did not parse, kept raw (after `* `, without CRLF); the session goes
    /// on since the line's end was clear.
    Malformed {
        /// The bytes.
        raw: Vec<u8>,
    },
    /// A response we do not model (`SORT`, `THREAD`, `QUOTA`, …), kept raw.
    Other {
        /// Its first atom, upper-cased.
        name: String,
        /// The whole response line (literals inline).
        raw: Vec<u8>,
    },
}

/// Which command a LIST-family response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `LIST`.
    List,
    /// `LSUB`.
    Lsub,
    /// Gmail's legacy `XLIST`.
    Xlist,
}

/// `mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
/// [SP mbox-list-extended]` (RFC 3501, RFC 5258).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListEntry {
    /// LIST, LSUB or XLIST.
    pub kind: ListKind,
    /// Name attributes and special-use flags.
    pub attributes: Vec<ListAttribute>,
    /// Hierarchy delimiter; `None` for a flat namespace.
    pub delimiter: Option<char>,
    /// The name (raw + decoded).
    pub name: MailboxName,
    /// `CHILDINFO` extended data (RFC 5258), e.g. `["SUBSCRIBED"]`.
    pub child_info: Vec<String>,
    /// `OLDNAME` extended data (RFC 5465).
    pub old_name: Option<MailboxName>,
}

impl ListEntry {
    /// True when the mailbox cannot be selected (`\Noselect` or `\NonExistent`).
    pub fn is_noselect(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| matches!(a, ListAttribute::NoSelect | ListAttribute::NonExistent))
    }

    /// True when `attribute` is present.
    pub fn has(&self, attribute: &ListAttribute) -> bool {
        self.attributes.contains(attribute)
    }

    /// The special-use attribute, if any (`\Sent`, `\Trash`, …).
    pub fn special_use(&self) -> Option<&ListAttribute> {
        self.attributes.iter().find(|a| a.is_special_use())
    }
}

/// Mailbox name attributes (RFC 3501, RFC 5258) and special-use (RFC 6154, RFC 8457).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListAttribute {
    /// `\Noinferiors`.
    NoInferiors,
    /// `\Noselect`.
    NoSelect,
    /// `\NonExistent`.
    NonExistent,
    /// `\HasChildren`.
    HasChildren,
    /// `\HasNoChildren`.
    HasNoChildren,
    /// `\Marked`.
    Marked,
    /// `\Unmarked`.
    Unmarked,
    /// `\Subscribed`.
    Subscribed,
    /// `\Remote`.
    Remote,
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
    /// Anything else, as sent (XLIST's `\AllMail`, `\Spam`, `\Inbox`, …).
    Other(String),
}

impl ListAttribute {
    /// Classifies an attribute atom (case-insensitive).
    pub fn from_atom(atom: &str) -> ListAttribute {
        let mut buf = [0u8; 32];
        let lower = match buf.get_mut(..atom.len()) {
            Some(out) => {
                out.copy_from_slice(atom.as_bytes());
                out.make_ascii_lowercase();
                std::str::from_utf8(out).unwrap_or("")
            }
            None => "",
        };
        match lower {
            "\\noinferiors" => ListAttribute::NoInferiors,
            "\\noselect" => ListAttribute::NoSelect,
            "\\nonexistent" => ListAttribute::NonExistent,
            "\\haschildren" => ListAttribute::HasChildren,
            "\\hasnochildren" => ListAttribute::HasNoChildren,
            "\\marked" => ListAttribute::Marked,
            "\\unmarked" => ListAttribute::Unmarked,
            "\\subscribed" => ListAttribute::Subscribed,
            "\\remote" => ListAttribute::Remote,
            "\\all" => ListAttribute::All,
            "\\archive" => ListAttribute::Archive,
            "\\drafts" => ListAttribute::Drafts,
            "\\flagged" => ListAttribute::Flagged,
            "\\junk" => ListAttribute::Junk,
            "\\sent" => ListAttribute::Sent,
            "\\trash" => ListAttribute::Trash,
            "\\important" => ListAttribute::Important,
            _ => ListAttribute::Other(atom.to_owned()),
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ListAttribute::NoInferiors => "\\Noinferiors",
            ListAttribute::NoSelect => "\\Noselect",
            ListAttribute::NonExistent => "\\NonExistent",
            ListAttribute::HasChildren => "\\HasChildren",
            ListAttribute::HasNoChildren => "\\HasNoChildren",
            ListAttribute::Marked => "\\Marked",
            ListAttribute::Unmarked => "\\Unmarked",
            ListAttribute::Subscribed => "\\Subscribed",
            ListAttribute::Remote => "\\Remote",
            ListAttribute::All => "\\All",
            ListAttribute::Archive => "\\Archive",
            ListAttribute::Drafts => "\\Drafts",
            ListAttribute::Flagged => "\\Flagged",
            ListAttribute::Junk => "\\Junk",
            ListAttribute::Sent => "\\Sent",
            ListAttribute::Trash => "\\Trash",
            ListAttribute::Important => "\\Important",
            ListAttribute::Other(s) => s,
        }
    }

    /// True for the RFC 6154 / RFC 8457 special-use attributes.
    pub fn is_special_use(&self) -> bool {
        matches!(
            self,
            ListAttribute::All
                | ListAttribute::Archive
                | ListAttribute::Drafts
                | ListAttribute::Flagged
                | ListAttribute::Junk
                | ListAttribute::Sent
                | ListAttribute::Trash
                | ListAttribute::Important
        )
    }
}

/// `* STATUS mailbox (…)`: every item the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxStatus {
    /// The mailbox.
    pub name: MailboxName,
    /// `MESSAGES`.
    pub messages: Option<u32>,
    /// `RECENT`.
    pub recent: Option<u32>,
    /// `UIDNEXT`.
    pub uid_next: Option<u32>,
    /// `UIDVALIDITY`.
    pub uid_validity: Option<u32>,
    /// `UNSEEN`.
    pub unseen: Option<u32>,
    /// `DELETED` (RFC 9051).
    pub deleted: Option<u32>,
    /// `HIGHESTMODSEQ` (RFC 7162).
    pub highest_modseq: Option<u64>,
    /// `SIZE` (RFC 8438).
    pub size: Option<u64>,
    /// `MAILBOXID` (RFC 8474).
    pub mailbox_id: Option<String>,
}

/// `* ESEARCH [(TAG "t")] [UID] (MIN n / MAX n / COUNT n / ALL set / MODSEQ n)*` (RFC 4731).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ESearch {
    /// The correlating tag.
    pub tag: Option<String>,
    /// Numbers are UIDs.
    pub uid: bool,
    /// `MIN`.
    pub min: Option<u32>,
    /// `MAX`.
    pub max: Option<u32>,
    /// `COUNT`.
    pub count: Option<u32>,
    /// `ALL`.
    pub all: Option<SequenceSet>,
    /// `MODSEQ`.
    pub modseq: Option<u64>,
}

/// One namespace: `("prefix" "delimiter")`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Namespace {
    /// Prefix, e.g. `""` or `"INBOX."`.
    pub prefix: MailboxName,
    /// Delimiter; `None` for a flat namespace.
    pub delimiter: Option<char>,
}

/// `* NAMESPACE personal other shared` (RFC 2342).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Namespaces {
    /// Personal namespaces.
    pub personal: Vec<Namespace>,
    /// Other users' namespaces.
    pub other_users: Vec<Namespace>,
    /// Shared namespaces.
    pub shared: Vec<Namespace>,
}

/// Which body item a FETCH literal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// `BODY[section]` (answers `BODY.PEEK[…]` too).
    Body,
    /// `BINARY[section]` (RFC 3516).
    Binary,
    /// `RFC822`.
    Rfc822,
    /// `RFC822.HEADER`.
    Rfc822Header,
    /// `RFC822.TEXT`.
    Rfc822Text,
}

/// A body item's name: `BODY[HEADER.FIELDS (DATE)]<0>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BodySection {
    /// Which item.
    pub kind: BodyKind,
    /// The section text between the brackets, as sent (`""` for the whole message).
    pub section: String,
    /// `<origin>` of a partial fetch.
    pub origin: Option<u32>,
}

impl BodySection {
    /// A body item's name without a partial origin: `kind[section]` (`section` as sent,
    /// `""` for the whole message).
    pub fn new(kind: BodyKind, section: impl Into<String>) -> BodySection {
        BodySection { kind, section: section.into(), origin: None }
    }
}

/// A body item's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyData {
    /// `NIL`.
    Nil,
    /// The bytes, when they were parsed from a buffered response.
    Inline(Vec<u8>),
    /// The bytes were streamed to a handler; this many of them.
    Streamed(u64),
}

/// One `BODY[…]`/`BINARY[…]`/`RFC822*` item of a FETCH response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyItem {
    /// Its name.
    pub section: BodySection,
    /// Its value.
    pub data: BodyData,
}

/// `* n FETCH (…)`: the attributes we model; others are parsed and skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Fetch {
    /// Message sequence number.
    pub seq: u32,
    /// `UID`.
    pub uid: Option<Uid>,
    /// `FLAGS`, as sent (`\Recent` included; see [`Fetch::flags_without_recent`]).
    pub flags: Option<Vec<Flag>>,
    /// `INTERNALDATE`.
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// `RFC822.SIZE` (a hint: it can differ from the body's length on some servers).
    pub rfc822_size: Option<u64>,
    /// `MODSEQ (n)` (RFC 7162).
    pub modseq: Option<u64>,
    /// Body items in the order sent.
    pub bodies: Vec<BodyItem>,
    /// `BINARY.SIZE[section]` values (RFC 3516).
    pub binary_sizes: Vec<(String, u64)>,
    /// Gmail `X-GM-MSGID`.
    pub gmail_message_id: Option<u64>,
    /// Gmail `X-GM-THRID`.
    pub gmail_thread_id: Option<u64>,
    /// Gmail `X-GM-LABELS` (astrings as sent; system labels start with `\`).
    pub gmail_labels: Option<Vec<Vec<u8>>>,
    /// `EMAILID (id)` (RFC 8474).
    pub email_id: Option<String>,
    /// Dovecot's `X-GUID`.
    pub x_guid: Option<String>,
    /// Names of items that were parsed but not modelled (`ENVELOPE`, `BODYSTRUCTURE`, …).
    pub skipped: Vec<String>,
    /// Items whose value is well-formed IMAP but not a valid value of that item, as
    /// `(name, value as sent)`: an `INTERNALDATE` that is no date (a malformed zone), `UID 0`.
    /// The response is kept (one bad item must not cost the whole answer); the item's own
    /// field stays `None`.
    pub invalid: Vec<(String, String)>,
}

impl Fetch {
    /// The value sent for `item` when it was invalid (see [`Fetch::invalid`]).
    pub fn invalid(&self, item: &str) -> Option<&str> {
        self.invalid.iter().find(|(name, _)| name == item).map(|(_, value)| value.as_str())
    }

    /// Flags and keywords to copy: `\Recent` removed (it is session state).
    pub fn flags_without_recent(&self) -> Vec<Flag> {
        self.flags.iter().flatten().filter(|f| !f.is_recent()).cloned().collect()
    }
}
