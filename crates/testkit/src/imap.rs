//! A tiny IMAP client for tests, independent of `imapc`: it reads whole responses into
//! memory (literals included) and tokenises them just enough for LIST, LSUB, STATUS, FETCH.
//! Mailbox names are passed and returned as raw (modified UTF-7) strings.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::snapshot::{AccountSnapshot, MailboxSnapshot, MessageSnapshot, parse_internal_date};

/// One token of a server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom, number or flag (`OK`, `42`, `\Seen`, `BODY[]`).
    Atom(String),
    /// A quoted string or literal.
    String(Vec<u8>),
    /// A parenthesised list.
    List(Vec<Token>),
    /// `NIL`.
    Nil,
}

impl Token {
    /// The atom's or string's text (lossy for strings).
    pub fn text(&self) -> String {
        match self {
            Token::Atom(a) => a.clone(),
            Token::String(s) => String::from_utf8_lossy(s).into_owned(),
            Token::List(_) => String::from("(list)"),
            Token::Nil => String::from("NIL"),
        }
    }
    fn list(&self) -> &[Token] {
        match self {
            Token::List(items) => items,
            _ => &[],
        }
    }
}

/// The answer to one command.
#[derive(Debug, Clone)]
pub struct Response {
    /// Untagged responses, tokenised, without the leading `*`.
    pub untagged: Vec<Vec<Token>>,
    /// The tagged completion line without the tag, e.g. `OK [APPENDUID 1 5] Append completed.`
    pub completion: String,
}

impl Response {
    /// True for a tagged `OK`.
    pub fn is_ok(&self) -> bool {
        self.completion.starts_with("OK")
    }
}

/// A logged-in raw IMAP connection to 127.0.0.1.
#[derive(Debug)]
pub struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

impl RawImap {
    /// Connects to `127.0.0.1:port` and logs in with LOGIN; panics on failure.
    pub fn login(port: u16, user: &str, password: &str) -> RawImap {
        let mut imap = RawImap::connect(port);
        let response = imap.command(&format!("LOGIN {} {}", quote(user), quote(password)));
        assert!(response.is_ok(), "LOGIN {user} failed: {}", response.completion);
        imap
    }

    /// Connects and reads the greeting, without logging in.
    pub fn connect(port: u16) -> RawImap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to test dovecot");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("set timeout");
        let writer = stream.try_clone().expect("clone stream");
        let mut imap = RawImap { reader: BufReader::new(stream), writer, next_tag: 1 };
        loop {
            let line = imap.read_raw_response();
            let text = String::from_utf8_lossy(&line);
            if text.contains("[CAPABILITY") || text.starts_with("* PREAUTH") {
                break;
            }
        }
        imap
    }

    /// Sends one command line (tag added) and reads until its tagged completion.
    pub fn command(&mut self, command: &str) -> Response {
        self.command_bytes(command.as_bytes(), None)
    }

    /// Sends a command; panics unless the completion is `OK`.
    pub fn command_ok(&mut self, command: &str) -> Response {
        let response = self.command(command);
        assert!(response.is_ok(), "{command} failed: {}", response.completion);
        response
    }

    fn command_bytes(&mut self, command: &[u8], literal: Option<&[u8]>) -> Response {
        let tag = format!("T{}", self.next_tag);
        self.next_tag += 1;
        let mut out = Vec::with_capacity(command.len() + 16);
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(command);
        if let Some(body) = literal {
            // LITERAL+ (Dovecot always offers it): no continuation round trip.
            out.extend_from_slice(format!(" {{{}+}}\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        out.extend_from_slice(b"\r\n");
        self.writer.write_all(&out).expect("write command");
        let mut untagged = Vec::new();
        loop {
            let raw = self.read_raw_response();
            if let Some(rest) = raw.strip_prefix(b"* ") {
                untagged.push(tokenize(rest));
            } else if let Some(rest) = raw.strip_prefix(format!("{tag} ").as_bytes()) {
                let completion = String::from_utf8_lossy(rest).trim_end().to_string();
                return Response { untagged, completion };
            } else if raw.starts_with(b"+") {
                panic!("unexpected continuation request: {}", String::from_utf8_lossy(&raw));
            }
        }
    }

    /// Reads one whole response (line plus any literals it announces).
    fn read_raw_response(&mut self) -> Vec<u8> {
        let mut response = Vec::new();
        loop {
            let start = response.len();
            let n = self.reader.read_until(b'\n', &mut response).expect("read from dovecot");
            assert!(n > 0, "dovecot closed the connection");
            let line = &response[start..];
            if let Some(len) = literal_length(line) {
                let at = response.len();
                response.resize(at + len, 0);
                self.reader.read_exact(&mut response[at..]).expect("read literal");
            } else {
                let line_end = if response.ends_with(b"\r\n") { 2 } else { 1 };
                response.truncate(response.len() - line_end);
                return response;
            }
        }
    }

    /// `APPEND` a message; returns the UID from `APPENDUID`.
    pub fn append(
        &mut self,
        mailbox: &str,
        flags: &[&str],
        internal_date: Option<&str>,
        body: &[u8],
    ) -> u32 {
        let mut command = format!("APPEND {}", quote(mailbox));
        if !flags.is_empty() {
            let _ = write!(command, " ({})", flags.join(" "));
        }
        if let Some(date) = internal_date {
            let _ = write!(command, " \"{date}\"");
        }
        let response = self.command_bytes(command.as_bytes(), Some(body));
        assert!(response.is_ok(), "APPEND to {mailbox} failed: {}", response.completion);
        let code = response.completion.split("APPENDUID ").nth(1).expect("APPENDUID in reply");
        code.split([' ', ']']).nth(1).and_then(|uid| uid.parse().ok()).expect("uid in APPENDUID")
    }

    /// `CREATE` a mailbox.
    pub fn create(&mut self, mailbox: &str) {
        self.command_ok(&format!("CREATE {}", quote(mailbox)));
    }

    /// `SUBSCRIBE` to a mailbox.
    pub fn subscribe(&mut self, mailbox: &str) {
        self.command_ok(&format!("SUBSCRIBE {}", quote(mailbox)));
    }

    /// `UNSUBSCRIBE` from a mailbox.
    pub fn unsubscribe(&mut self, mailbox: &str) {
        self.command_ok(&format!("UNSUBSCRIBE {}", quote(mailbox)));
    }

    /// `SELECT` a mailbox.
    pub fn select(&mut self, mailbox: &str) -> Response {
        self.command_ok(&format!("SELECT {}", quote(mailbox)))
    }

    /// Marks `uids` (an IMAP set like `2,4:5`) `\Deleted` and expunges them from `mailbox`.
    pub fn expunge_uids(&mut self, mailbox: &str, uids: &str) {
        self.select(mailbox);
        self.command_ok(&format!("UID STORE {uids} +FLAGS.SILENT (\\Deleted)"));
        self.command_ok(&format!("UID EXPUNGE {uids}"));
    }

    /// `UID STORE` with a raw action such as `+FLAGS (\Seen)` in `mailbox`.
    pub fn store(&mut self, mailbox: &str, uids: &str, action: &str) {
        self.select(mailbox);
        self.command_ok(&format!("UID STORE {uids} {action}"));
    }

    /// Names (raw mUTF-7) and attributes of every mailbox, from `LIST "" "*"`.
    pub fn list(&mut self) -> Vec<(String, Vec<String>)> {
        let response = self.command_ok("LIST \"\" \"*\"");
        response
            .untagged
            .iter()
            .filter(|t| t.first() == Some(&Token::Atom("LIST".into())))
            .map(|t| (t[3].text(), t[1].list().iter().map(Token::text).collect()))
            .collect()
    }

    /// Subscribed names from `LSUB "" "*"`.
    pub fn subscriptions(&mut self) -> Vec<String> {
        let response = self.command_ok("LSUB \"\" \"*\"");
        response
            .untagged
            .iter()
            .filter(|t| t.first() == Some(&Token::Atom("LSUB".into())))
            .map(|t| t[3].text())
            .collect()
    }

    /// `(MESSAGES, UIDNEXT, UIDVALIDITY)` from `STATUS`.
    pub fn status(&mut self, mailbox: &str) -> (u32, u32, u32) {
        let response =
            self.command_ok(&format!("STATUS {} (MESSAGES UIDNEXT UIDVALIDITY)", quote(mailbox)));
        let items = response
            .untagged
            .iter()
            .find(|t| t.first() == Some(&Token::Atom("STATUS".into())))
            .map(|t| t[2].list().to_vec())
            .expect("STATUS response");
        let get = |name: &str| -> u32 {
            let index = items.iter().position(|t| t.text().eq_ignore_ascii_case(name)).expect(name);
            items[index + 1].text().parse().expect("number")
        };
        (get("MESSAGES"), get("UIDNEXT"), get("UIDVALIDITY"))
    }

    /// `(uid, MODSEQ)` of every message of `mailbox` (UID order) and its HIGHESTMODSEQ
    /// (CONDSTORE; the FETCH enables it for the session).
    pub fn modseqs(&mut self, mailbox: &str) -> (Vec<(u32, u64)>, u64) {
        let _ = self.command("UNSELECT");
        let status = self.command_ok(&format!("STATUS {} (HIGHESTMODSEQ)", quote(mailbox)));
        let items = status
            .untagged
            .iter()
            .find(|t| t.first() == Some(&Token::Atom("STATUS".into())))
            .map(|t| t[2].list().to_vec())
            .expect("STATUS response");
        let highest = items[1].text().parse().expect("HIGHESTMODSEQ");
        self.command_ok(&format!("EXAMINE {}", quote(mailbox)));
        let fetched = self.command_ok("UID FETCH 1:* (MODSEQ)");
        let mut modseqs = Vec::new();
        for untagged in &fetched.untagged {
            let Some(Token::List(items)) = untagged.get(2) else { continue };
            let value =
                |key: &str| items.iter().position(|t| t.text() == key).map(|i| &items[i + 1]);
            let uid = value("UID").expect("UID").text().parse().expect("uid");
            let modseq = value("MODSEQ").expect("MODSEQ").list()[0].text().parse().expect("modseq");
            modseqs.push((uid, modseq));
        }
        modseqs.sort_unstable();
        let _ = self.command("UNSELECT");
        (modseqs, highest)
    }

    /// Every message of `mailbox` with UID, flags (without `\Recent`, sorted), INTERNALDATE
    /// and the raw `BODY[]` bytes.
    pub fn messages(&mut self, mailbox: &str) -> Vec<MessageSnapshot> {
        self.command_ok(&format!("EXAMINE {}", quote(mailbox)));
        let response = self.command_ok("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
        let mut messages: Vec<MessageSnapshot> = response
            .untagged
            .iter()
            .filter(|t| t.get(1) == Some(&Token::Atom("FETCH".into())))
            .map(|t| fetch_to_message(t[2].list()))
            .collect();
        messages.sort_by_key(|m| m.uid);
        messages
    }

    /// Everything a client caches about the account, read through this connection.
    pub fn snapshot(&mut self) -> AccountSnapshot {
        let mut snapshot = AccountSnapshot::default();
        // STATUS of the selected mailbox may answer from this session's view without
        // syncing (RFC 3501 §6.3.10 says not to use it so; Dovecot 2.3 then reported a
        // UIDNEXT below UIDs another process had appended). Leave it first (a NO when
        // nothing is selected is fine); each mailbox's STATUS below then precedes its own
        // EXAMINE.
        let _ = self.command("UNSELECT");
        for name in self.subscriptions() {
            snapshot.subscriptions.insert(name);
        }
        for (name, attributes) in self.list() {
            let selectable = !attributes.iter().any(|a| {
                a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
            });
            let mailbox = if selectable {
                let (_, mut uid_next, mut uid_validity) = self.status(&name);
                let messages = self.messages(&name);
                if uid_validity == 0 {
                    // Seen about once in twenty loaded runs: Dovecot 2.3.19.1 answered the
                    // very first STATUS of a Maildir it had no index for yet with
                    // UIDVALIDITY 0 and UIDNEXT 1 (not reproduced by hand; the messages
                    // were all there). No mailbox has UIDVALIDITY 0 (RFC 3501 §2.3.1.1):
                    // ask again now that EXAMINE has built the index, and say so.
                    eprintln!("testkit: STATUS {name} said UIDVALIDITY 0; asked again");
                    let _ = self.command("UNSELECT");
                    (_, uid_next, uid_validity) = self.status(&name);
                }
                MailboxSnapshot { selectable, uid_validity, uid_next, messages }
            } else {
                MailboxSnapshot { selectable, uid_validity: 0, uid_next: 0, messages: Vec::new() }
            };
            snapshot.mailboxes.insert(name, mailbox);
        }
        snapshot
    }

    /// `LOGOUT`.
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }
}

fn fetch_to_message(items: &[Token]) -> MessageSnapshot {
    let mut message = MessageSnapshot::default();
    let mut index = 0;
    while index + 1 < items.len() {
        let name = items[index].text().to_ascii_uppercase();
        let value = &items[index + 1];
        match name.as_str() {
            "UID" => message.uid = value.text().parse().expect("uid"),
            "FLAGS" => {
                message.flags = value
                    .list()
                    .iter()
                    .map(Token::text)
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .collect();
                message.flags.sort();
            }
            "INTERNALDATE" => {
                message.internal_date = parse_internal_date(&value.text()).expect("INTERNALDATE");
            }
            "BODY[]" => {
                if let Token::String(bytes) = value {
                    message.body.clone_from(bytes);
                }
            }
            _ => {}
        }
        index += 2;
    }
    message
}

/// Quotes a string for IMAP (`"` and `\` escaped).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `{n}\r\n` at the end of a line announces a literal of n octets.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Tokenises a whole response (literals inline as `{n}\r\n<bytes>`).
fn tokenize(input: &[u8]) -> Vec<Token> {
    let mut position = 0;
    let mut tokens = Vec::new();
    while position < input.len() {
        if let Some(token) = next_token(input, &mut position) {
            tokens.push(token);
        } else {
            break;
        }
    }
    tokens
}

fn next_token(input: &[u8], position: &mut usize) -> Option<Token> {
    while *position < input.len() && input[*position] == b' ' {
        *position += 1;
    }
    let &first = input.get(*position)?;
    match first {
        b'(' => {
            *position += 1;
            let mut items = Vec::new();
            loop {
                while *position < input.len() && input[*position] == b' ' {
                    *position += 1;
                }
                match input.get(*position) {
                    None => return Some(Token::List(items)),
                    Some(b')') => {
                        *position += 1;
                        return Some(Token::List(items));
                    }
                    Some(_) => items.push(next_token(input, position)?),
                }
            }
        }
        b')' => None,
        b'"' => {
            *position += 1;
            let mut bytes = Vec::new();
            while let Some(&b) = input.get(*position) {
                *position += 1;
                match b {
                    b'\\' => {
                        if let Some(&escaped) = input.get(*position) {
                            bytes.push(escaped);
                            *position += 1;
                        }
                    }
                    b'"' => break,
                    _ => bytes.push(b),
                }
            }
            Some(Token::String(bytes))
        }
        b'{' => {
            let close = input[*position..].iter().position(|&b| b == b'}')? + *position;
            let digits = std::str::from_utf8(&input[*position + 1..close]).ok()?;
            let len: usize = digits.trim_end_matches('+').parse().ok()?;
            let start = close + 3; // "}\r\n"
            let end = (start + len).min(input.len());
            *position = end;
            Some(Token::String(input[start.min(end)..end].to_vec()))
        }
        _ => {
            let start = *position;
            let mut depth = 0;
            while let Some(&b) = input.get(*position) {
                match b {
                    b'[' => depth += 1,
                    b']' => depth -= 1,
                    b' ' | b'(' | b')' if depth == 0 => break,
                    _ => {}
                }
                *position += 1;
            }
            let atom = String::from_utf8_lossy(&input[start..*position]).into_owned();
            Some(if atom.eq_ignore_ascii_case("NIL") { Token::Nil } else { Token::Atom(atom) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_fetch_with_literal() {
        let tokens = tokenize(b"1 FETCH (UID 7 FLAGS (\\Seen $Label1) BODY[] {5}\r\nab\r\nc INTERNALDATE \"07-Jul-2024 10:00:00 +0200\")");
        assert_eq!(tokens[1], Token::Atom("FETCH".into()));
        let items = tokens[2].list();
        assert_eq!(items[1], Token::Atom("7".into()));
        assert_eq!(items[5], Token::String(b"ab\r\nc".to_vec()));
        assert_eq!(items[7], Token::String(b"07-Jul-2024 10:00:00 +0200".to_vec()));
    }

    #[test]
    fn literal_length_detects_announcements() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_length(b"* OK done\r\n"), None);
        assert_eq!(literal_length(b"* LIST () \"/\" {3+}\r\n"), Some(3));
    }
}
