//! LIST / LSUB / STATUS / SELECT / EXAMINE: mailbox-level reads.

use crate::error::{Error, Result};
use crate::proto::{
    Code, Command, Fetch, ListEntry, ListKind, ListReturn, ListSelection, MailboxStatus, Qresync,
    StatusItem, Untagged,
};
use crate::types::{Flag, MailboxName, SequenceSet, Uid, UidValidity};

use super::conn::Conn;

/// What SELECT / EXAMINE reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The mailbox.
    pub name: MailboxName,
    /// UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// UIDNEXT (Courier omits it).
    pub uid_next: Option<Uid>,
    /// Number of messages (EXISTS).
    pub exists: u32,
    /// RECENT, when sent (not in IMAP4rev2).
    pub recent: Option<u32>,
    /// First unseen sequence number, when sent.
    pub unseen: Option<u32>,
    /// HIGHESTMODSEQ (RFC 7162) when the server keeps mod-sequences.
    pub highest_modseq: Option<u64>,
    /// `[NOMODSEQ]`: the mailbox has no persistent mod-sequences.
    pub no_modseq: bool,
    /// FLAGS: flags defined in the mailbox.
    pub flags: Vec<Flag>,
    /// PERMANENTFLAGS: flags that can be stored (`\*`: new keywords allowed).
    pub permanent_flags: Vec<Flag>,
    /// The server sent PERMANENTFLAGS (without it, RFC 3501 §7.1 says every flag can be
    /// stored permanently).
    pub permanent_flags_sent: bool,
    /// `[READ-ONLY]`.
    pub read_only: bool,
    /// `[UIDNOTSTICKY]` (RFC 4315): UIDs do not persist.
    pub uid_not_sticky: bool,
    /// QRESYNC: `VANISHED (EARLIER)` UIDs.
    pub vanished: Option<SequenceSet>,
    /// QRESYNC: FETCH responses for messages changed since the given mod-sequence.
    pub changed: Vec<Fetch>,
}

impl MailboxInfo {
    /// True when `flag` can be stored permanently in this mailbox (RFC 3501 §7.1): it is
    /// in PERMANENTFLAGS, or is a keyword and PERMANENTFLAGS has `\*` (new keywords may
    /// be created), or the server sent no PERMANENTFLAGS at all. Keywords compare
    /// case-insensitively, as servers treat them.
    pub fn can_store(&self, flag: &Flag) -> bool {
        if !self.permanent_flags_sent {
            return true;
        }
        if matches!(flag, Flag::Keyword(_)) && self.permanent_flags.contains(&Flag::MayCreate) {
            return true;
        }
        self.permanent_flags
            .iter()
            .any(|allowed| allowed.as_str().eq_ignore_ascii_case(flag.as_str()))
    }
}

/// Parameters of SELECT / EXAMINE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// `(CONDSTORE)`: turn on mod-sequences (RFC 7162).
    pub condstore: bool,
    /// `(QRESYNC (…))`: resynchronise (needs `ENABLE QRESYNC` first).
    pub qresync: Option<Qresync>,
}

/// LIST-EXTENDED options (RFC 5258, RFC 6154, RFC 5819).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Reference name (usually empty).
    pub reference: String,
    /// Pattern, `*` for everything.
    pub pattern: String,
    /// Only subscribed mailboxes (`SUBSCRIBED` selection).
    pub subscribed_only: bool,
    /// Only special-use mailboxes (`SPECIAL-USE` selection).
    pub special_use_only: bool,
    /// `RETURN (SUBSCRIBED)`.
    pub return_subscribed: bool,
    /// `RETURN (SPECIAL-USE)`.
    pub return_special_use: bool,
    /// `RETURN (CHILDREN)`.
    pub return_children: bool,
    /// `RETURN (STATUS (…))` (LIST-STATUS).
    pub return_status: Vec<StatusItem>,
}

impl ListOptions {
    /// Every mailbox (`""`, `"*"`), nothing extra.
    pub fn all() -> ListOptions {
        ListOptions { pattern: "*".into(), ..ListOptions::default() }
    }
}

/// LIST answers: entries and, with LIST-STATUS, a STATUS per mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// LIST entries in server order.
    pub entries: Vec<ListEntry>,
    /// STATUS responses (LIST-STATUS).
    pub statuses: Vec<MailboxStatus>,
}

/// A LIST command's arguments, checked against the server's capabilities.
pub(crate) struct ListArgs {
    reference: MailboxName,
    pattern: MailboxName,
    selection: Vec<ListSelection>,
    returns: Vec<ListReturn>,
}

impl ListArgs {
    pub(crate) fn command(&self) -> Command<'_> {
        Command::List {
            reference: &self.reference,
            pattern: &self.pattern,
            selection: &self.selection,
            returns: &self.returns,
        }
    }
}

/// Most mailboxes one LIST answer may name: far above any account (Dovecot's own tests
/// go to 100 000), and a server that lists forever is cut off before memory runs out.
pub(crate) const MAX_LISTED: usize = 1 << 20;

pub(crate) fn list(conn: &mut Conn, options: &ListOptions) -> Result<ListResult> {
    let args = list_args(conn, options)?;
    let mut result = ListResult::default();
    conn.run(&args.command(), &mut |untagged| result.take(untagged))?;
    Ok(result)
}

/// The error for a listing that grew beyond [`MAX_LISTED`].
pub(crate) fn too_many_listed(command: &str) -> Error {
    Error::Protocol(format!("{command} answers with more than {MAX_LISTED} mailboxes"))
}

impl ListResult {
    /// Keeps what belongs to a LIST answer; more than [`MAX_LISTED`] entries are refused.
    pub(crate) fn take(&mut self, untagged: Untagged) -> Result<()> {
        match untagged {
            Untagged::List(entry) if entry.kind == ListKind::List => {
                if self.entries.len() >= MAX_LISTED {
                    return Err(too_many_listed("LIST"));
                }
                self.entries.push(entry);
            }
            Untagged::MailboxStatus(status) => {
                if self.statuses.len() >= MAX_LISTED {
                    return Err(too_many_listed("LIST-STATUS"));
                }
                self.statuses.push(status);
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) fn list_args(conn: &Conn, options: &ListOptions) -> Result<ListArgs> {
    let mut selection = Vec::new();
    let mut returns = Vec::new();
    let extended = options.subscribed_only
        || options.special_use_only
        || options.return_subscribed
        || options.return_special_use
        || options.return_children
        || !options.return_status.is_empty();
    if extended && !conn.capabilities.has("LIST-EXTENDED") && !conn.capabilities.has("IMAP4rev2") {
        // `RETURN (SPECIAL-USE)` alone is allowed with just SPECIAL-USE (RFC 6154 §5.1).
        let special_use_only_request = options.return_special_use
            && !options.subscribed_only
            && !options.special_use_only
            && !options.return_subscribed
            && !options.return_children
            && options.return_status.is_empty();
        if !(special_use_only_request && conn.capabilities.has("SPECIAL-USE")) {
            return Err(Error::Unsupported { capability: "LIST-EXTENDED" });
        }
    }
    if options.subscribed_only {
        selection.push(ListSelection::Subscribed);
    }
    if options.special_use_only {
        selection.push(ListSelection::SpecialUse);
    }
    if options.return_subscribed {
        returns.push(ListReturn::Subscribed);
    }
    if options.return_special_use {
        returns.push(ListReturn::SpecialUse);
    }
    if options.return_children {
        returns.push(ListReturn::Children);
    }
    if !options.return_status.is_empty() {
        if !conn.capabilities.has("LIST-STATUS") && !conn.capabilities.has("IMAP4rev2") {
            return Err(Error::Unsupported { capability: "LIST-STATUS" });
        }
        returns.push(ListReturn::Status(options.return_status.clone()));
    }
    Ok(ListArgs {
        reference: MailboxName::from_utf8(&options.reference),
        pattern: MailboxName::from_utf8(&options.pattern),
        selection,
        returns,
    })
}

pub(crate) fn lsub(conn: &mut Conn, reference: &str, pattern: &str) -> Result<Vec<ListEntry>> {
    let reference = MailboxName::from_utf8(reference);
    let pattern = MailboxName::from_utf8(pattern);
    let mut entries = Vec::new();
    conn.run(&Command::Lsub { reference: &reference, pattern: &pattern }, &mut |untagged| {
        if let Untagged::List(entry) = untagged
            && entry.kind == ListKind::Lsub
        {
            if entries.len() >= MAX_LISTED {
                return Err(too_many_listed("LSUB"));
            }
            entries.push(entry);
        }
        Ok(())
    })?;
    Ok(entries)
}

pub(crate) fn status(
    conn: &mut Conn,
    mailbox: &MailboxName,
    items: &[StatusItem],
) -> Result<MailboxStatus> {
    let mut found = None;
    conn.run(&Command::Status { mailbox, items }, &mut |untagged| {
        if let Untagged::MailboxStatus(status) = untagged
            && (status.name.as_raw() == mailbox.as_raw()
                || (status.name.is_inbox() && mailbox.is_inbox()))
        {
            found = Some(status);
        }
        Ok(())
    })?;
    found.ok_or_else(|| Error::Protocol(format!("no STATUS response for {mailbox}")))
}

pub(crate) fn select(
    conn: &mut Conn,
    mailbox: &MailboxName,
    read_only: bool,
    options: &SelectOptions,
) -> Result<MailboxInfo> {
    select_then(conn, mailbox, read_only, options, &mut |_| Ok(()))
}

/// SELECT / EXAMINE; `pipelined` sends further commands right after it, before its answer
/// is read (they run on the newly selected mailbox: the server finishes a SELECT before
/// it starts the next command). Their answers are left for the caller to read.
pub(crate) fn select_then(
    conn: &mut Conn,
    mailbox: &MailboxName,
    read_only: bool,
    options: &SelectOptions,
    pipelined: &mut dyn FnMut(&mut Conn) -> Result<()>,
) -> Result<MailboxInfo> {
    let tag = select_send(conn, mailbox, read_only, options)?;
    pipelined(conn)?;
    select_finish(conn, &tag, mailbox, read_only)
}

/// Sends SELECT / EXAMINE without reading its answer ([`select_finish`] reads it); its tag.
pub(crate) fn select_send(
    conn: &mut Conn,
    mailbox: &MailboxName,
    read_only: bool,
    options: &SelectOptions,
) -> Result<String> {
    if options.qresync.is_some() && !conn.capabilities.has("QRESYNC") {
        return Err(Error::Unsupported { capability: "QRESYNC" });
    }
    if options.condstore && !conn.capabilities.has("CONDSTORE") {
        return Err(Error::Unsupported { capability: "CONDSTORE" });
    }
    let command = Command::Select {
        mailbox,
        read_only,
        condstore: options.condstore,
        qresync: options.qresync.as_ref(),
    };
    // Answers of earlier commands still unread belong to the mailbox selected before.
    conn.drain_unread()?;
    // EXISTS from now on is the new mailbox's.
    conn.exists = None;
    conn.send(&command)
}

/// Reads the answer of the SELECT / EXAMINE [`select_send`] sent under `tag`.
pub(crate) fn select_finish(
    conn: &mut Conn,
    tag: &str,
    mailbox: &MailboxName,
    read_only: bool,
) -> Result<MailboxInfo> {
    let name = if read_only { "EXAMINE" } else { "SELECT" };
    let mut uid_validity = None;
    let mut info = MailboxInfo {
        name: mailbox.clone(),
        uid_validity: UidValidity::new(1).unwrap_or_else(|| unreachable!("1 is not zero")),
        uid_next: None,
        exists: 0,
        recent: None,
        unseen: None,
        highest_modseq: None,
        no_modseq: false,
        flags: Vec::new(),
        permanent_flags: Vec::new(),
        permanent_flags_sent: false,
        read_only,
        uid_not_sticky: false,
        vanished: None,
        changed: Vec::new(),
    };
    let status = conn.finish(tag, name, &mut |untagged| {
        match untagged {
            Untagged::Exists(n) => info.exists = n,
            Untagged::Recent(n) => info.recent = Some(n),
            Untagged::Flags(flags) => info.flags = flags,
            Untagged::Vanished { uids, .. } => info.vanished = Some(uids),
            Untagged::Fetch(fetch) => {
                // QRESYNC reports each changed message once: never more than exist.
                if info.changed.len() >= info.exists.max(1) as usize {
                    return Err(Error::Protocol(format!(
                        "more changed messages than the {} {mailbox} has (EXISTS)",
                        info.exists
                    )));
                }
                info.changed.push(*fetch);
            }
            Untagged::Status(status) => match status.code {
                Some(Code::UidValidity(v)) => uid_validity = Some(v),
                Some(Code::UidNext(v)) => info.uid_next = Some(v),
                Some(Code::Unseen(v)) => info.unseen = Some(v),
                Some(Code::HighestModSeq(v)) => info.highest_modseq = Some(v),
                Some(Code::NoModSeq) => info.no_modseq = true,
                Some(Code::PermanentFlags(flags)) => {
                    info.permanent_flags = flags;
                    info.permanent_flags_sent = true;
                }
                Some(Code::UidNotSticky) => info.uid_not_sticky = true,
                _ => {}
            },
            _ => {}
        }
        Ok(())
    })?;
    match status.code {
        Some(Code::ReadOnly) => info.read_only = true,
        Some(Code::ReadWrite) => info.read_only = false,
        _ => {}
    }
    info.uid_validity = uid_validity
        .ok_or_else(|| Error::Protocol(format!("no UIDVALIDITY when selecting {mailbox}")))?;
    Ok(info)
}
