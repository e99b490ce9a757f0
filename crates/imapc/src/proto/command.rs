//! Commands as data (RFC 3501 §6 and extensions). [`encode`](crate::proto::encode) turns
//! them into bytes; nothing builds command strings by hand.

use chrono::{DateTime, FixedOffset, NaiveDate};
use mailnet::Secret;

use crate::proto::response::ListAttribute;
use crate::types::{Flag, MailboxName, SequenceSet, UidValidity};

/// One command.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `STARTTLS`.
    StartTls,
    /// `LOGIN user password`.
    Login {
        /// User name (with `*master` appended for a Dovecot master-user login).
        username: &'a str,
        /// Password.
        password: &'a Secret<String>,
    },
    /// `AUTHENTICATE mechanism [initial-response]` (SASL-IR, RFC 4959).
    Authenticate {
        /// SASL mechanism name (`PLAIN`, `XOAUTH2`, `OAUTHBEARER`).
        mechanism: &'a str,
        /// Initial response, base64-encoded by the encoder; `None` without SASL-IR.
        initial_response: Option<&'a Secret<Vec<u8>>>,
    },
    /// `ID (…)` or `ID NIL` (RFC 2971).
    Id(Option<&'a [(&'a str, &'a str)]>),
    /// `NAMESPACE` (RFC 2342).
    Namespace,
    /// `ENABLE cap…` (RFC 5161).
    Enable(&'a [&'a str]),
    /// `LIST [(selection)] reference pattern [RETURN (…)]` (RFC 3501, RFC 5258, RFC 5819).
    List {
        /// Reference name (usually empty).
        reference: &'a MailboxName,
        /// Pattern with `*` / `%` wildcards.
        pattern: &'a MailboxName,
        /// Selection options (LIST-EXTENDED).
        selection: &'a [ListSelection],
        /// Return options (LIST-EXTENDED, SPECIAL-USE, LIST-STATUS).
        returns: &'a [ListReturn],
    },
    /// `LSUB reference pattern`.
    Lsub {
        /// Reference name.
        reference: &'a MailboxName,
        /// Pattern.
        pattern: &'a MailboxName,
    },
    /// `STATUS mailbox (items)`.
    Status {
        /// Mailbox.
        mailbox: &'a MailboxName,
        /// Items.
        items: &'a [StatusItem],
    },
    /// `SELECT` / `EXAMINE` with CONDSTORE / QRESYNC parameters (RFC 7162).
    Select {
        /// Mailbox.
        mailbox: &'a MailboxName,
        /// `EXAMINE` when true.
        read_only: bool,
        /// `(CONDSTORE)`.
        condstore: bool,
        /// `(QRESYNC (…))`.
        qresync: Option<&'a Qresync>,
    },
    /// `UNSELECT` (RFC 3691).
    Unselect,
    /// `CLOSE`.
    Close,
    /// `EXPUNGE`.
    Expunge,
    /// `UID FETCH set (items) [(CHANGEDSINCE n [VANISHED])]`.
    UidFetch {
        /// UIDs.
        set: &'a SequenceSet,
        /// Items.
        items: &'a [FetchItem],
        /// `CHANGEDSINCE` (RFC 7162).
        changed_since: Option<u64>,
        /// `VANISHED` (RFC 7162, needs QRESYNC and CHANGEDSINCE).
        vanished: bool,
    },
    /// `UID SEARCH [RETURN (…)] criteria`.
    UidSearch {
        /// Criteria, ANDed.
        criteria: &'a [SearchKey],
        /// Ask for `ESEARCH` results (`RETURN (ALL)`, RFC 4731).
        esearch: bool,
    },
    /// `UID STORE set [(UNCHANGEDSINCE n)] ±FLAGS[.SILENT] (flags)`.
    UidStore {
        /// UIDs.
        set: &'a SequenceSet,
        /// Add, remove or replace.
        action: StoreAction,
        /// `.SILENT`: no untagged FETCH back.
        silent: bool,
        /// Flags and keywords.
        flags: &'a [Flag],
        /// `UNCHANGEDSINCE` (RFC 7162).
        unchanged_since: Option<u64>,
    },
    /// `UID EXPUNGE set` (RFC 4315).
    UidExpunge(&'a SequenceSet),
    /// `UID COPY set mailbox`.
    UidCopy {
        /// UIDs of the selected mailbox.
        set: &'a SequenceSet,
        /// Where the copies go.
        mailbox: &'a MailboxName,
    },
    /// `APPEND mailbox (flags) "date" literal` — several messages make a MULTIAPPEND
    /// (RFC 3502).
    Append {
        /// Destination.
        mailbox: &'a MailboxName,
        /// Messages.
        messages: &'a [AppendMessage<'a>],
    },
    /// `CREATE mailbox [(USE (attrs))]` (RFC 6154).
    Create {
        /// Mailbox.
        mailbox: &'a MailboxName,
        /// Special-use attributes.
        special_use: &'a [ListAttribute],
    },
    /// `DELETE mailbox`.
    Delete(&'a MailboxName),
    /// `RENAME from to`.
    Rename {
        /// Existing name.
        from: &'a MailboxName,
        /// New name.
        to: &'a MailboxName,
    },
    /// `SUBSCRIBE mailbox`.
    Subscribe(&'a MailboxName),
    /// `UNSUBSCRIBE mailbox`.
    Unsubscribe(&'a MailboxName),
}

impl Command<'_> {
    /// The command's name for errors and traces (never its arguments).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capability => "CAPABILITY",
            Command::Noop => "NOOP",
            Command::Logout => "LOGOUT",
            Command::StartTls => "STARTTLS",
            Command::Login { .. } => "LOGIN",
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::Id(_) => "ID",
            Command::Namespace => "NAMESPACE",
            Command::Enable(_) => "ENABLE",
            Command::List { .. } => "LIST",
            Command::Lsub { .. } => "LSUB",
            Command::Status { .. } => "STATUS",
            Command::Select { read_only: false, .. } => "SELECT",
            Command::Select { read_only: true, .. } => "EXAMINE",
            Command::Unselect => "UNSELECT",
            Command::Close => "CLOSE",
            Command::Expunge => "EXPUNGE",
            Command::UidFetch { .. } => "UID FETCH",
            Command::UidSearch { .. } => "UID SEARCH",
            Command::UidStore { .. } => "UID STORE",
            Command::UidExpunge(_) => "UID EXPUNGE",
            Command::UidCopy { .. } => "UID COPY",
            Command::Append { .. } => "APPEND",
            Command::Create { .. } => "CREATE",
            Command::Delete(_) => "DELETE",
            Command::Rename { .. } => "RENAME",
            Command::Subscribe(_) => "SUBSCRIBE",
            Command::Unsubscribe(_) => "UNSUBSCRIBE",
        }
    }
}

/// LIST-EXTENDED selection options (RFC 5258, RFC 6154).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSelection {
    /// `SUBSCRIBED`.
    Subscribed,
    /// `REMOTE`.
    Remote,
    /// `RECURSIVEMATCH`.
    RecursiveMatch,
    /// `SPECIAL-USE`.
    SpecialUse,
}

/// LIST return options (RFC 5258, RFC 6154, RFC 5819).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    /// `SUBSCRIBED`.
    Subscribed,
    /// `CHILDREN`.
    Children,
    /// `SPECIAL-USE`.
    SpecialUse,
    /// `STATUS (…)` (LIST-STATUS).
    Status(Vec<StatusItem>),
}

/// STATUS items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// `MESSAGES`.
    Messages,
    /// `RECENT`.
    Recent,
    /// `UIDNEXT`.
    UidNext,
    /// `UIDVALIDITY`.
    UidValidity,
    /// `UNSEEN`.
    Unseen,
    /// `DELETED` (RFC 9051).
    Deleted,
    /// `HIGHESTMODSEQ` (RFC 7162).
    HighestModSeq,
    /// `SIZE` (RFC 8438).
    Size,
    /// `MAILBOXID` (RFC 8474).
    MailboxId,
}

impl StatusItem {
    /// The item's name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::Recent => "RECENT",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::Size => "SIZE",
            StatusItem::MailboxId => "MAILBOXID",
        }
    }
}

/// QRESYNC parameters of SELECT (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    /// The UIDVALIDITY we last saw.
    pub uid_validity: UidValidity,
    /// The HIGHESTMODSEQ we last saw.
    pub modseq: u64,
    /// UIDs we know, to limit VANISHED.
    pub known_uids: Option<SequenceSet>,
}

/// Items of UID FETCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    /// `UID`.
    Uid,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822.SIZE`.
    Rfc822Size,
    /// `MODSEQ` (RFC 7162).
    ModSeq,
    /// `ENVELOPE`.
    Envelope,
    /// `BODYSTRUCTURE`.
    BodyStructure,
    /// `BODY.PEEK[section]<partial>` (or `BODY[…]`, which sets `\Seen`, when `peek` is false).
    Body {
        /// Section text, `""` for the whole message.
        section: String,
        /// `<origin.count>`.
        partial: Option<(u32, u32)>,
        /// `.PEEK`: do not set `\Seen`.
        peek: bool,
    },
    /// `BINARY.PEEK[section]` (RFC 3516).
    Binary {
        /// Section text.
        section: String,
        /// `.PEEK`.
        peek: bool,
    },
    /// `BINARY.SIZE[section]`.
    BinarySize(String),
    /// Gmail `X-GM-MSGID`.
    GmailMessageId,
    /// Gmail `X-GM-THRID`.
    GmailThreadId,
    /// Gmail `X-GM-LABELS`.
    GmailLabels,
    /// `EMAILID` (RFC 8474).
    EmailId,
    /// Dovecot `X-GUID`.
    XGuid,
}

impl FetchItem {
    /// `UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]`: everything a migration copies
    /// for a message, bytes included.
    pub fn message_with_metadata() -> Vec<FetchItem> {
        vec![
            FetchItem::Uid,
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
            FetchItem::whole_message(),
        ]
    }

    /// `BODY.PEEK[]`: the whole raw message without setting `\Seen`.
    pub fn whole_message() -> FetchItem {
        FetchItem::Body { section: String::new(), partial: None, peek: true }
    }
}

/// How UID STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    /// `+FLAGS`.
    Add,
    /// `-FLAGS`.
    Remove,
    /// `FLAGS`.
    Replace,
}

/// UID SEARCH criteria (a useful subset of RFC 3501 §6.4.4 plus `MODSEQ`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// `ALL`.
    All,
    /// `UID set`.
    Uid(SequenceSet),
    /// `MODSEQ n` (RFC 7162): changed since.
    ModSeq(u64),
    /// `SINCE date` (internal date, day resolution).
    Since(NaiveDate),
    /// `BEFORE date`.
    Before(NaiveDate),
    /// `SEEN`.
    Seen,
    /// `UNSEEN`.
    Unseen,
    /// `DELETED`.
    Deleted,
    /// `UNDELETED`.
    Undeleted,
    /// `KEYWORD k`.
    Keyword(String),
    /// `UNKEYWORD k`.
    Unkeyword(String),
    /// `HEADER field value`.
    Header(String, String),
    /// `LARGER n`.
    Larger(u32),
    /// `SMALLER n`.
    Smaller(u32),
    /// `NOT key`.
    Not(Box<SearchKey>),
    /// `OR a b`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `(a b …)`: all of them.
    And(Vec<SearchKey>),
}

/// One message to APPEND.
#[derive(Debug, Clone)]
pub struct AppendMessage<'a> {
    /// Flags and keywords (`\Recent` is dropped: it cannot be stored).
    pub flags: &'a [Flag],
    /// INTERNALDATE to keep, if any.
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// The raw message.
    pub data: &'a [u8],
}
