//! Command encoder: [`Command`] → bytes, choosing atom, quoted string or literal for each
//! string and synchronising or non-synchronising literals per the server's capabilities.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::proto::command::{
    AppendMessage, Command, FetchItem, ListReturn, ListSelection, SearchKey, StatusItem,
    StoreAction,
};
use crate::types::{Flag, MailboxName, format_internal_date, is_atom_char};

/// What the server allows for client literals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// `LITERAL+` (RFC 7888): every literal may be non-synchronising (`{n+}`).
    pub literal_plus: bool,
    /// `LITERAL-` (RFC 7888, and IMAP4rev2): non-synchronising literals up to 4096 bytes.
    pub literal_minus: bool,
    /// Strings may carry UTF-8 in quoted form (`UTF8=ACCEPT` enabled).
    pub utf8: bool,
}

/// One piece of an encoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    /// Bytes to send.
    Data(Cow<'a, [u8]>),
    /// Send nothing more until the server answers `+` (a synchronising literal follows).
    AwaitContinuation,
}

/// An encoded command: data parts, with pauses where a synchronising literal needs the
/// server's go-ahead. `sensitive` commands (LOGIN, AUTHENTICATE) must not be traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded<'a> {
    /// The pieces in order; the last ends with CRLF.
    pub parts: Vec<Part<'a>>,
    /// Carries credentials.
    pub sensitive: bool,
}

impl Encoded<'_> {
    /// All bytes, ignoring pauses (for tests and traces).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &self.parts {
            if let Part::Data(data) = part {
                out.extend_from_slice(data);
            }
        }
        out
    }

    /// Total length of the first line (up to the first literal or CRLF).
    pub fn first_line_len(&self) -> usize {
        match self.parts.first() {
            Some(Part::Data(data)) => memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1),
            _ => 0,
        }
    }
}

/// Literals up to this size may be non-synchronising under `LITERAL-` (RFC 7888 §5).
const LITERAL_MINUS_MAX: usize = 4096;
/// Longer strings go as literals even when they could be quoted.
const MAX_QUOTED: usize = 1024;

struct Writer<'a> {
    options: EncodeOptions,
    parts: Vec<Part<'a>>,
    current: Vec<u8>,
}

impl<'a> Writer<'a> {
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.current.extend_from_slice(bytes);
        self
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.raw(text.as_bytes())
    }

    fn sp(&mut self) -> &mut Self {
        self.raw(b" ")
    }

    fn number(&mut self, n: impl std::fmt::Display) -> &mut Self {
        let text = n.to_string();
        self.raw(text.as_bytes())
    }

    /// `astring`: atom when possible, else quoted, else literal.
    fn astring(&mut self, bytes: &[u8]) -> &mut Self {
        let atom = !bytes.is_empty()
            && bytes.len() <= MAX_QUOTED
            && bytes.iter().all(|&b| is_atom_char(b) || b == b']')
            && !bytes.eq_ignore_ascii_case(b"NIL");
        if atom { self.raw(bytes) } else { self.string(bytes) }
    }

    /// `string`: quoted when possible, else literal.
    fn string(&mut self, bytes: &[u8]) -> &mut Self {
        let quotable = bytes.len() <= MAX_QUOTED
            && bytes
                .iter()
                .all(|&b| b != 0 && b != b'\r' && b != b'\n' && (b < 0x80 || self.options.utf8));
        if quotable {
            self.current.push(b'"');
            for &b in bytes {
                if b == b'"' || b == b'\\' {
                    self.current.push(b'\\');
                }
                self.current.push(b);
            }
            self.current.push(b'"');
            self
        } else {
            self.literal(Cow::Owned(bytes.to_vec()))
        }
    }

    fn literal(&mut self, data: Cow<'a, [u8]>) -> &mut Self {
        let non_sync = self.options.literal_plus
            || (self.options.literal_minus && data.len() <= LITERAL_MINUS_MAX);
        let header = if non_sync {
            format!("{{{}+}}\r\n", data.len())
        } else {
            format!("{{{}}}\r\n", data.len())
        };
        self.current.extend_from_slice(header.as_bytes());
        self.flush();
        if !non_sync {
            self.parts.push(Part::AwaitContinuation);
        }
        self.parts.push(Part::Data(data));
        self
    }

    fn mailbox(&mut self, name: &MailboxName) -> &mut Self {
        self.astring(name.as_raw())
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.parts.push(Part::Data(Cow::Owned(std::mem::take(&mut self.current))));
        }
    }

    fn flags(&mut self, flags: &[Flag]) -> &mut Self {
        self.raw(b"(");
        let mut first = true;
        for flag in flags.iter().filter(|f| !f.is_recent() && **f != Flag::MayCreate) {
            if !first {
                self.sp();
            }
            first = false;
            self.text(flag.as_str());
        }
        self.raw(b")")
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.raw(b"(");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.sp();
            }
            each(self, item);
        }
        self.raw(b")")
    }
}

/// Encodes `command` with `tag`.
pub fn encode<'a>(tag: &str, command: &Command<'a>, options: EncodeOptions) -> Encoded<'a> {
    let mut w = Writer { options, parts: Vec::new(), current: Vec::with_capacity(64) };
    w.text(tag).sp();
    let mut sensitive = false;
    match command {
        Command::Capability
        | Command::Noop
        | Command::Logout
        | Command::StartTls
        | Command::Namespace
        | Command::Unselect
        | Command::Close
        | Command::Expunge => {
            w.text(command.name());
        }
        Command::Login { username, password } => {
            sensitive = true;
            w.text("LOGIN ")
                .astring(username.as_bytes())
                .sp()
                .astring(password.expose().as_bytes());
        }
        Command::Authenticate { mechanism, initial_response } => {
            sensitive = true;
            w.text("AUTHENTICATE ").text(mechanism);
            if let Some(response) = initial_response {
                w.sp().text(&sasl_response(response.expose()));
            }
        }
        Command::Id(fields) => {
            w.text("ID ");
            match fields {
                // Exchange rejects `ID ()`: an empty list goes as NIL.
                Some(fields) if !fields.is_empty() => {
                    w.list(fields, |w, (name, value)| {
                        w.string(name.as_bytes()).sp().string(value.as_bytes());
                    });
                }
                _ => {
                    w.text("NIL");
                }
            }
        }
        Command::Enable(capabilities) => {
            w.text("ENABLE");
            for capability in *capabilities {
                w.sp().text(capability);
            }
        }
        Command::List { reference, pattern, selection, returns } => {
            w.text("LIST ");
            if !selection.is_empty() {
                w.list(selection, |w, s| {
                    w.text(match s {
                        ListSelection::Subscribed => "SUBSCRIBED",
                        ListSelection::Remote => "REMOTE",
                        ListSelection::RecursiveMatch => "RECURSIVEMATCH",
                        ListSelection::SpecialUse => "SPECIAL-USE",
                    });
                })
                .sp();
            }
            w.string(reference.as_raw()).sp().string(pattern.as_raw());
            if !returns.is_empty() {
                w.text(" RETURN ").list(returns, |w, r| match r {
                    ListReturn::Subscribed => {
                        w.text("SUBSCRIBED");
                    }
                    ListReturn::Children => {
                        w.text("CHILDREN");
                    }
                    ListReturn::SpecialUse => {
                        w.text("SPECIAL-USE");
                    }
                    ListReturn::Status(items) => {
                        w.text("STATUS ").list(items, |w, i| {
                            w.text(i.as_str());
                        });
                    }
                });
            }
        }
        Command::Lsub { reference, pattern } => {
            w.text("LSUB ").string(reference.as_raw()).sp().string(pattern.as_raw());
        }
        Command::Status { mailbox, items } => {
            w.text("STATUS ").mailbox(mailbox).sp().list(items, |w, i: &StatusItem| {
                w.text(i.as_str());
            });
        }
        Command::Select { mailbox, read_only, condstore, qresync } => {
            w.text(if *read_only { "EXAMINE " } else { "SELECT " }).mailbox(mailbox);
            if let Some(q) = qresync {
                w.text(" (QRESYNC (").number(q.uid_validity).sp().number(q.modseq);
                if let Some(known) = &q.known_uids {
                    w.sp().text(&known.to_string());
                }
                w.text("))");
            } else if *condstore {
                w.text(" (CONDSTORE)");
            }
        }
        Command::UidFetch { set, items, changed_since, vanished } => {
            w.text("UID FETCH ").text(&set.to_string()).sp().list(items, fetch_item);
            if let Some(modseq) = changed_since {
                w.text(" (CHANGEDSINCE ").number(modseq);
                if *vanished {
                    w.text(" VANISHED");
                }
                w.text(")");
            }
        }
        Command::UidSearch { criteria, esearch } => {
            w.text("UID SEARCH");
            if *esearch {
                w.text(" RETURN (ALL)");
            }
            if criteria.is_empty() {
                w.text(" ALL");
            }
            for key in *criteria {
                w.sp();
                search_key(&mut w, key);
            }
        }
        Command::UidStore { set, action, silent, flags, unchanged_since } => {
            w.text("UID STORE ").text(&set.to_string()).sp();
            if let Some(modseq) = unchanged_since {
                w.text("(UNCHANGEDSINCE ").number(modseq).text(") ");
            }
            w.text(match action {
                StoreAction::Add => "+FLAGS",
                StoreAction::Remove => "-FLAGS",
                StoreAction::Replace => "FLAGS",
            });
            if *silent {
                w.text(".SILENT");
            }
            w.sp().flags(flags);
        }
        Command::UidExpunge(set) => {
            w.text("UID EXPUNGE ").text(&set.to_string());
        }
        Command::UidCopy { set, mailbox } => {
            w.text("UID COPY ").text(&set.to_string()).sp().mailbox(mailbox);
        }
        Command::Append { mailbox, messages } => {
            w.text("APPEND ").mailbox(mailbox);
            for message in *messages {
                append_message(&mut w, message);
            }
        }
        Command::Create { mailbox, special_use } => {
            w.text("CREATE ").mailbox(mailbox);
            if !special_use.is_empty() {
                w.text(" (USE ").list(special_use, |w, a| {
                    w.text(a.as_str());
                });
                w.text(")");
            }
        }
        Command::Delete(mailbox) => {
            w.text("DELETE ").mailbox(mailbox);
        }
        Command::Rename { from, to } => {
            w.text("RENAME ").mailbox(from).sp().mailbox(to);
        }
        Command::Subscribe(mailbox) => {
            w.text("SUBSCRIBE ").mailbox(mailbox);
        }
        Command::Unsubscribe(mailbox) => {
            w.text("UNSUBSCRIBE ").mailbox(mailbox);
        }
    }
    w.raw(b"\r\n");
    w.flush();
    Encoded { parts: w.parts, sensitive }
}

/// The start of an `APPEND` whose message is streamed afterwards
/// ([`encode_append_start`]): everything up to and including the literal's announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendStart {
    /// `tag APPEND mailbox (flags) "date" {len}` or `{len+}`, with its CRLF.
    pub line: Vec<u8>,
    /// A synchronising literal: the message may only follow the server's `+`.
    pub synchronising: bool,
}

/// Encodes the beginning of `APPEND mailbox (flags) ["date"] {len}` for a message of
/// `len` bytes that the caller streams after it (then CRLF ends the command). The literal
/// is non-synchronising (`{len+}`) under `LITERAL+`, and under `LITERAL-` up to 4096
/// bytes (RFC 7888); otherwise the caller waits for `+` first.
///
/// `None` when the mailbox name itself would need a literal (CR, LF, or 8-bit bytes
/// without `UTF8=ACCEPT`): a streamed APPEND has no place to wait for a second `+`.
pub fn encode_append_start(
    tag: &str,
    mailbox: &MailboxName,
    flags: &[Flag],
    internal_date: Option<&chrono::DateTime<chrono::FixedOffset>>,
    len: u64,
    options: EncodeOptions,
) -> Option<AppendStart> {
    let mut w = Writer { options, parts: Vec::new(), current: Vec::with_capacity(96) };
    w.text(tag).text(" APPEND ").mailbox(mailbox).sp().flags(flags);
    if let Some(date) = internal_date {
        w.text(" \"").text(&format_internal_date(date)).text("\"");
    }
    w.flush();
    // The name went as an atom or quoted string: one part, no pause.
    let [Part::Data(head)] = w.parts.as_slice() else { return None };
    let non_sync =
        options.literal_plus || (options.literal_minus && len <= LITERAL_MINUS_MAX as u64);
    let mut line = head.to_vec();
    let announcement =
        if non_sync { format!(" {{{len}+}}\r\n") } else { format!(" {{{len}}}\r\n") };
    line.extend_from_slice(announcement.as_bytes());
    Some(AppendStart { line, synchronising: !non_sync })
}

/// Encodes the part of a MULTIAPPEND (RFC 3502) that announces one more message after the
/// first: ` (flags) ["date"] {len+}` with its CRLF, always a non-synchronising literal
/// (the caller sends a batch only under `LITERAL+`). The message's bytes follow it, and the
/// command ends with a CRLF after the last message.
pub fn encode_append_next(
    flags: &[Flag],
    internal_date: Option<&chrono::DateTime<chrono::FixedOffset>>,
    len: u64,
) -> Vec<u8> {
    let mut w =
        Writer { options: EncodeOptions::default(), parts: Vec::new(), current: Vec::new() };
    w.sp().flags(flags);
    if let Some(date) = internal_date {
        w.text(" \"").text(&format_internal_date(date)).text("\"");
    }
    w.flush();
    let mut line: Vec<u8> = w
        .parts
        .iter()
        .flat_map(|part| match part {
            Part::Data(data) => data.to_vec(),
            Part::AwaitContinuation => Vec::new(),
        })
        .collect();
    line.extend_from_slice(format!(" {{{len}+}}\r\n").as_bytes());
    line
}

fn append_message<'a>(w: &mut Writer<'a>, message: &AppendMessage<'a>) {
    w.sp().flags(message.flags);
    if let Some(date) = &message.internal_date {
        w.text(" \"").text(&format_internal_date(date)).text("\"");
    }
    w.sp().literal(Cow::Borrowed(message.data));
}

fn fetch_item(w: &mut Writer<'_>, item: &FetchItem) {
    match item {
        FetchItem::Uid => w.text("UID"),
        FetchItem::Flags => w.text("FLAGS"),
        FetchItem::InternalDate => w.text("INTERNALDATE"),
        FetchItem::Rfc822Size => w.text("RFC822.SIZE"),
        FetchItem::ModSeq => w.text("MODSEQ"),
        FetchItem::Envelope => w.text("ENVELOPE"),
        FetchItem::BodyStructure => w.text("BODYSTRUCTURE"),
        FetchItem::Body { section, partial, peek } => {
            w.text(if *peek { "BODY.PEEK[" } else { "BODY[" }).text(section).text("]");
            if let Some((origin, count)) = partial {
                w.text("<").number(origin).text(".").number(count).text(">");
            }
            w
        }
        FetchItem::Binary { section, peek } => {
            w.text(if *peek { "BINARY.PEEK[" } else { "BINARY[" }).text(section).text("]")
        }
        FetchItem::BinarySize(section) => w.text("BINARY.SIZE[").text(section).text("]"),
        FetchItem::GmailMessageId => w.text("X-GM-MSGID"),
        FetchItem::GmailThreadId => w.text("X-GM-THRID"),
        FetchItem::GmailLabels => w.text("X-GM-LABELS"),
        FetchItem::EmailId => w.text("EMAILID"),
        FetchItem::XGuid => w.text("X-GUID"),
    };
}

fn search_key(w: &mut Writer<'_>, key: &SearchKey) {
    let date = |d: &chrono::NaiveDate| d.format("%-d-%b-%Y").to_string();
    match key {
        SearchKey::All => {
            w.text("ALL");
        }
        SearchKey::Uid(set) => {
            w.text("UID ").text(&set.to_string());
        }
        SearchKey::ModSeq(modseq) => {
            w.text("MODSEQ ").number(modseq);
        }
        SearchKey::Since(d) => {
            w.text("SINCE ").text(&date(d));
        }
        SearchKey::Before(d) => {
            w.text("BEFORE ").text(&date(d));
        }
        SearchKey::Seen => {
            w.text("SEEN");
        }
        SearchKey::Unseen => {
            w.text("UNSEEN");
        }
        SearchKey::Deleted => {
            w.text("DELETED");
        }
        SearchKey::Undeleted => {
            w.text("UNDELETED");
        }
        SearchKey::Keyword(k) => {
            w.text("KEYWORD ").astring(k.as_bytes());
        }
        SearchKey::Unkeyword(k) => {
            w.text("UNKEYWORD ").astring(k.as_bytes());
        }
        SearchKey::Header(field, value) => {
            w.text("HEADER ").astring(field.as_bytes()).sp().string(value.as_bytes());
        }
        SearchKey::Larger(n) => {
            w.text("LARGER ").number(n);
        }
        SearchKey::Smaller(n) => {
            w.text("SMALLER ").number(n);
        }
        SearchKey::Not(inner) => {
            w.text("NOT ");
            search_key(w, inner);
        }
        SearchKey::Or(a, b) => {
            w.text("OR ");
            search_key(w, a);
            w.sp();
            search_key(w, b);
        }
        SearchKey::And(keys) => {
            w.raw(b"(");
            for (index, k) in keys.iter().enumerate() {
                if index > 0 {
                    w.sp();
                }
                search_key(w, k);
            }
            w.raw(b")");
        }
    }
}

/// A SASL response line: base64, or `=` for an empty response (RFC 4959).
pub fn sasl_response(data: &[u8]) -> String {
    if data.is_empty() { String::from("=") } else { BASE64.encode(data) }
}

/// Decodes a SASL challenge from a continuation line (empty when it is not base64).
pub fn sasl_challenge(text: &str) -> Vec<u8> {
    BASE64.decode(text.trim()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::Qresync;
    use crate::proto::response::ListAttribute;
    use crate::types::{SequenceSet, Uid, UidValidity};
    use mailnet::Secret;

    fn bytes(command: &Command<'_>, options: EncodeOptions) -> String {
        String::from_utf8_lossy(&encode("A1", command, options).to_bytes()).into_owned()
    }

    fn uids(values: &[u32]) -> SequenceSet {
        SequenceSet::from_uids(values.iter().filter_map(|&v| Uid::new(v)))
    }

    #[test]
    fn known_answers() {
        let plain = EncodeOptions::default();
        let inbox = MailboxName::from_utf8("inbox");
        let drafts = MailboxName::from_utf8("Entwürfe");
        let spaced = MailboxName::from_utf8("Project Notes");
        let empty = MailboxName::from_utf8("");
        let star = MailboxName::from_utf8("*");
        let password = Secret::new(String::from("p\"w\\d"));
        let set = uids(&[9, 1, 2, 3]);
        let all_mail = MailboxName::from_utf8("All Mail");
        let flags = [Flag::Seen, Flag::Recent, Flag::Keyword("$Label1".into())];
        let qresync = Qresync {
            uid_validity: UidValidity::new(67_890_007).expect("nz"),
            modseq: 20_010_715_194_045_000,
            known_uids: Some(uids(&[41, 43, 44])),
        };
        let returns = [
            ListReturn::SpecialUse,
            ListReturn::Status(vec![StatusItem::Messages, StatusItem::UidNext]),
        ];
        let body_items = [
            FetchItem::Uid,
            FetchItem::whole_message(),
            FetchItem::Body { section: "HEADER".into(), partial: Some((0, 1024)), peek: true },
        ];
        let all = SequenceSet::all();
        let criteria = [
            SearchKey::Or(
                Box::new(SearchKey::Keyword("$Label1".into())),
                Box::new(SearchKey::Not(Box::new(SearchKey::Seen))),
            ),
            SearchKey::Since(chrono::NaiveDate::from_ymd_opt(2024, 7, 1).expect("date")),
        ];
        let nil = MailboxName::from_utf8("NIL");
        let table: Vec<(Command<'_>, &str)> = vec![
            (Command::Capability, "A1 CAPABILITY\r\n"),
            (
                Command::Login { username: "alice*master", password: &password },
                "A1 LOGIN \"alice*master\" \"p\\\"w\\\\d\"\r\n",
            ),
            (Command::Id(None), "A1 ID NIL\r\n"),
            (Command::Id(Some(&[])), "A1 ID NIL\r\n"),
            (Command::Id(Some(&[("name", "dsync-rs")])), "A1 ID (\"name\" \"dsync-rs\")\r\n"),
            (Command::Enable(&["CONDSTORE", "QRESYNC"]), "A1 ENABLE CONDSTORE QRESYNC\r\n"),
            (
                Command::List { reference: &empty, pattern: &star, selection: &[], returns: &[] },
                "A1 LIST \"\" \"*\"\r\n",
            ),
            (
                Command::List {
                    reference: &empty,
                    pattern: &star,
                    selection: &[ListSelection::Subscribed],
                    returns: &returns,
                },
                "A1 LIST (SUBSCRIBED) \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT))\r\n",
            ),
            (
                Command::Status { mailbox: &drafts, items: &[StatusItem::HighestModSeq] },
                "A1 STATUS Entw&APw-rfe (HIGHESTMODSEQ)\r\n",
            ),
            (
                Command::Select {
                    mailbox: &inbox,
                    read_only: true,
                    condstore: true,
                    qresync: None,
                },
                "A1 EXAMINE INBOX (CONDSTORE)\r\n",
            ),
            (
                Command::Select {
                    mailbox: &spaced,
                    read_only: false,
                    condstore: false,
                    qresync: Some(&qresync),
                },
                "A1 SELECT \"Project Notes\" (QRESYNC (67890007 20010715194045000 41,43:44))\r\n",
            ),
            (
                Command::UidFetch {
                    set: &set,
                    items: &body_items,
                    changed_since: None,
                    vanished: false,
                },
                "A1 UID FETCH 1:3,9 (UID BODY.PEEK[] BODY.PEEK[HEADER]<0.1024>)\r\n",
            ),
            (
                Command::UidFetch {
                    set: &all,
                    items: &[FetchItem::Flags, FetchItem::ModSeq],
                    changed_since: Some(12345),
                    vanished: true,
                },
                "A1 UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n",
            ),
            (
                Command::UidSearch { criteria: &criteria, esearch: true },
                "A1 UID SEARCH RETURN (ALL) OR KEYWORD $Label1 NOT SEEN SINCE 1-Jul-2024\r\n",
            ),
            (
                Command::UidStore {
                    set: &set,
                    action: StoreAction::Add,
                    silent: true,
                    flags: &flags,
                    unchanged_since: Some(99),
                },
                "A1 UID STORE 1:3,9 (UNCHANGEDSINCE 99) +FLAGS.SILENT (\\Seen $Label1)\r\n",
            ),
            (Command::UidExpunge(&set), "A1 UID EXPUNGE 1:3,9\r\n"),
            (
                Command::UidCopy { set: &set, mailbox: &all_mail },
                "A1 UID COPY 1:3,9 \"All Mail\"\r\n",
            ),
            (
                Command::Create { mailbox: &spaced, special_use: &[ListAttribute::Archive] },
                "A1 CREATE \"Project Notes\" (USE (\\Archive))\r\n",
            ),
            (Command::Rename { from: &drafts, to: &inbox }, "A1 RENAME Entw&APw-rfe INBOX\r\n"),
            (Command::Subscribe(&nil), "A1 SUBSCRIBE \"NIL\"\r\n"),
        ];
        for (command, expected) in table {
            assert_eq!(bytes(&command, plain), expected, "{}", command.name());
        }
    }

    #[test]
    fn streamed_append_starts_follow_the_server_capabilities() {
        let date = chrono::DateTime::parse_from_rfc3339("2024-07-07T10:00:00+02:00").expect("date");
        let inbox = MailboxName::from_utf8("Entwürfe");
        let flags = [Flag::Seen, Flag::Recent, Flag::Keyword("$Label1".into())];
        let start = |len, options| {
            encode_append_start("A7", &inbox, &flags, Some(&date), len, options).expect("start")
        };
        let plain = start(5000, EncodeOptions::default());
        assert_eq!(
            String::from_utf8_lossy(&plain.line),
            "A7 APPEND Entw&APw-rfe (\\Seen $Label1) \" 7-Jul-2024 10:00:00 +0200\" {5000}\r\n"
        );
        assert!(plain.synchronising);
        let plus = start(5000, EncodeOptions { literal_plus: true, ..EncodeOptions::default() });
        assert!(!plus.synchronising && plus.line.ends_with(b" {5000+}\r\n"));
        let minus = EncodeOptions { literal_minus: true, ..EncodeOptions::default() };
        assert!(!start(4096, minus).synchronising);
        assert!(start(4097, minus).synchronising);
        let broken = MailboxName::from_utf8_wire(b"a\r\nb");
        assert!(encode_append_start("A8", &broken, &[], None, 1, minus).is_none());
    }

    #[test]
    fn literals_follow_the_server_capabilities() {
        let date = chrono::DateTime::parse_from_rfc3339("2024-07-07T10:00:00+02:00").expect("date");
        let message =
            AppendMessage { flags: &[Flag::Seen], internal_date: Some(date), data: b"hello" };
        let inbox = MailboxName::from_utf8("INBOX");
        let append = Command::Append { mailbox: &inbox, messages: std::slice::from_ref(&message) };
        let sync = encode("A1", &append, EncodeOptions::default());
        assert_eq!(
            sync.parts,
            [
                Part::Data(Cow::Borrowed(
                    &b"A1 APPEND INBOX (\\Seen) \" 7-Jul-2024 10:00:00 +0200\" {5}\r\n"[..]
                )),
                Part::AwaitContinuation,
                Part::Data(Cow::Borrowed(&b"hello"[..])),
                Part::Data(Cow::Borrowed(&b"\r\n"[..])),
            ]
        );
        let plus =
            encode("A1", &append, EncodeOptions { literal_plus: true, ..EncodeOptions::default() });
        assert!(!plus.parts.contains(&Part::AwaitContinuation));
        assert!(plus.to_bytes().ends_with(b"{5+}\r\nhello\r\n"));
        // LITERAL-: non-synchronising only up to 4096 bytes.
        let minus = EncodeOptions { literal_minus: true, ..EncodeOptions::default() };
        assert!(!encode("A1", &append, minus).parts.contains(&Part::AwaitContinuation));
        let big = vec![b'x'; 5000];
        let large = AppendMessage { flags: &[], internal_date: None, data: &big };
        let append_large =
            Command::Append { mailbox: &inbox, messages: std::slice::from_ref(&large) };
        assert!(encode("A1", &append_large, minus).parts.contains(&Part::AwaitContinuation));
        // MULTIAPPEND: one command, one literal per message.
        let two = [message.clone(), message];
        let multi = encode(
            "A1",
            &Command::Append { mailbox: &inbox, messages: &two },
            EncodeOptions { literal_plus: true, ..EncodeOptions::default() },
        );
        assert_eq!(multi.to_bytes().windows(4).filter(|w| w == b"{5+}").count(), 2);
        // Strings that cannot be quoted become literals; 8-bit only quoted under UTF8=ACCEPT.
        let password = Secret::new(String::from("pä\r\nss"));
        let login = Command::Login { username: "alice", password: &password };
        let encoded = encode("A1", &login, EncodeOptions::default());
        assert!(encoded.sensitive);
        assert_eq!(encoded.parts[0], Part::Data(Cow::Borrowed(&b"A1 LOGIN alice {7}\r\n"[..])));
        let utf8_name = MailboxName::from_utf8_wire("Grüße".as_bytes());
        let utf8 = encode(
            "A1",
            &Command::Delete(&utf8_name),
            EncodeOptions { utf8: true, ..EncodeOptions::default() },
        );
        assert_eq!(utf8.to_bytes(), "A1 DELETE \"Grüße\"\r\n".as_bytes());
        assert_eq!(sasl_response(b""), "=");
        assert_eq!(sasl_challenge(&sasl_response(b"\0alice\0pw")), b"\0alice\0pw");
    }
}
