//! A small IMAP server that answers from a model of an account, for what Dovecot cannot be
//! made to serve: mailbox names that are not canonical modified UTF-7 (raw UTF-8, broken
//! `&…` sequences, control characters, `a//b`), INTERNALDATEs with a malformed zone, UID 0,
//! two messages under one UID, FETCH answers in descending UID order. Unlike
//! [`crate::FakeServer`] it is not a script: it understands the commands a sync sends
//! (LOGIN, LIST, LSUB, STATUS, EXAMINE/SELECT, UID FETCH of metadata, bodies and header
//! fields, LOGOUT) and answers any number of connections in any order, so tests run the
//! real engine against it. EXAMINE, SELECT and STATUS find a mailbox only by its exact
//! bytes (`NO [NONEXISTENT]` otherwise), as servers do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message of a [`FakeMailbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    /// The UID sent (0 and duplicates are allowed: that is what the fake is for).
    pub uid: u32,
    /// The text inside `FLAGS (…)`.
    pub flags: String,
    /// The text inside the quotes of `INTERNALDATE "…"`, sent as it is.
    pub internal_date: String,
    /// `BODY[]`.
    pub body: Vec<u8>,
}

impl FakeMessage {
    /// A message without flags, received on 1 January 2024.
    pub fn new(uid: u32, body: &[u8]) -> FakeMessage {
        FakeMessage {
            uid,
            flags: String::new(),
            internal_date: String::from("01-Jan-2024 10:00:00 +0000"),
            body: body.to_vec(),
        }
    }
}

/// One mailbox of a [`FakeImap`] account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMailbox {
    /// The name exactly as the server lists it and expects it back.
    pub name: Vec<u8>,
    /// The LIST attributes, e.g. `\HasNoChildren` (`\Noselect` makes it a placeholder).
    pub attributes: String,
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT.
    pub uid_next: u32,
    /// Messages in sequence order.
    pub messages: Vec<FakeMessage>,
    /// Answer `UID FETCH` in descending UID order (legal: RFC 3501 sets no order).
    pub descending: bool,
}

impl FakeMailbox {
    /// A selectable mailbox with these messages, UIDNEXT after the last.
    pub fn new(name: &[u8], uid_validity: u32, messages: Vec<FakeMessage>) -> FakeMailbox {
        let uid_next = messages.iter().map(|m| m.uid).max().unwrap_or(0) + 1;
        FakeMailbox {
            name: name.to_vec(),
            attributes: String::new(),
            uid_validity,
            uid_next,
            messages,
            descending: false,
        }
    }
}

/// A running fake IMAP server on 127.0.0.1 (any user name and password log in).
#[derive(Debug)]
pub struct FakeImap {
    port: u16,
    commands: Arc<Mutex<Vec<Vec<u8>>>>,
}

const CAPABILITIES: &str = "IMAP4rev1 LITERAL+ UIDPLUS";

impl FakeImap {
    /// Serves `mailboxes` with hierarchy `delimiter`, on every connection until dropped
    /// (the threads end with the test process or when a client goes away).
    pub fn start(delimiter: char, mailboxes: Vec<FakeMailbox>) -> FakeImap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let account = Arc::new((delimiter, mailboxes));
        let log = Arc::clone(&commands);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (account, log) = (Arc::clone(&account), Arc::clone(&log));
                std::thread::spawn(move || {
                    let _ = serve(stream, account.0, &account.1, &log);
                });
            }
        });
        FakeImap { port, commands }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every command line received so far (literals inline), shown lossily.
    pub fn commands(&self) -> Vec<String> {
        self.commands
            .lock()
            .expect("lock")
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }
}

struct Connection<'a> {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    delimiter: char,
    mailboxes: &'a [FakeMailbox],
    selected: Option<&'a FakeMailbox>,
}

fn serve(
    stream: TcpStream,
    delimiter: char,
    mailboxes: &[FakeMailbox],
    log: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let writer = stream.try_clone()?;
    let mut connection =
        Connection { reader: BufReader::new(stream), writer, delimiter, mailboxes, selected: None };
    connection.send(format!("* OK [CAPABILITY {CAPABILITIES}] fake model ready\r\n").as_bytes())?;
    loop {
        let Some(line) = connection.read_command()? else { return Ok(()) };
        log.lock().expect("lock").push(line.clone());
        let mut words = Words { rest: &line };
        let tag = String::from_utf8_lossy(&words.atom()).into_owned();
        let mut command = words.atom().to_ascii_uppercase();
        if command == b"UID" {
            command = [b"UID ".as_slice(), &words.atom().to_ascii_uppercase()].concat();
        }
        let ok = |text: &str| format!("{tag} OK {text}\r\n");
        let answer: Vec<u8> = match command.as_slice() {
            b"CAPABILITY" => format!("* CAPABILITY {CAPABILITIES}\r\n{}", ok("done")).into_bytes(),
            b"LOGIN" | b"AUTHENTICATE" => {
                format!("{tag} OK [CAPABILITY {CAPABILITIES}] Logged in\r\n").into_bytes()
            }
            b"NOOP" | b"CHECK" | b"ENABLE" | b"ID" => ok("done").into_bytes(),
            b"LOGOUT" => {
                connection.send(format!("* BYE bye\r\n{}", ok("done")).as_bytes())?;
                return Ok(());
            }
            b"LIST" => connection.list(&mut words, &tag),
            b"LSUB" => ok("LSUB done").into_bytes(),
            b"STATUS" => connection.status(&mut words, &tag),
            b"EXAMINE" | b"SELECT" => connection.select(&mut words, &tag),
            b"UID FETCH" => connection.uid_fetch(&mut words, &tag),
            _ => format!("{tag} BAD unknown command\r\n").into_bytes(),
        };
        connection.send(&answer)?;
    }
}

impl<'a> Connection<'a> {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// One command with its literals inline; `None` at the end of the connection.
    fn read_command(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut command = Vec::new();
        loop {
            let mut line = Vec::new();
            if self.reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(None);
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            let literal = literal_length(&line);
            command.extend_from_slice(&line);
            let Some((length, synchronising)) = literal else { return Ok(Some(command)) };
            if synchronising {
                self.send(b"+ OK\r\n")?;
            }
            let mut data = vec![0u8; length];
            self.reader.read_exact(&mut data)?;
            command.extend_from_slice(b"\r\n");
            command.extend_from_slice(&data);
        }
    }

    fn find(&self, name: &[u8]) -> Option<&'a FakeMailbox> {
        self.mailboxes.iter().find(|m| m.name == name)
    }

    fn list(&mut self, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let _reference = words.astring();
        let pattern = words.astring();
        let mut out = Vec::new();
        if pattern.is_empty() {
            out.extend_from_slice(
                format!("* LIST (\\Noselect) \"{}\" \"\"\r\n", self.delimiter).as_bytes(),
            );
        } else {
            for mailbox in self.mailboxes {
                out.extend_from_slice(
                    format!("* LIST ({}) \"{}\" ", mailbox.attributes, self.delimiter).as_bytes(),
                );
                out.extend_from_slice(&string(&mailbox.name));
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(format!("{tag} OK LIST done\r\n").as_bytes());
        out
    }

    fn status(&mut self, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let name = words.astring();
        let Some(mailbox) = self.find(&name) else { return nonexistent(tag) };
        let mut out = b"* STATUS ".to_vec();
        out.extend_from_slice(&string(&mailbox.name));
        out.extend_from_slice(
            format!(
                " (MESSAGES {} UIDNEXT {} UIDVALIDITY {})\r\n{tag} OK STATUS done\r\n",
                mailbox.messages.len(),
                mailbox.uid_next,
                mailbox.uid_validity
            )
            .as_bytes(),
        );
        out
    }

    fn select(&mut self, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let name = words.astring();
        let Some(mailbox) = self.find(&name) else {
            self.selected = None;
            return nonexistent(tag);
        };
        self.selected = Some(mailbox);
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* {} EXISTS\r\n\
             * OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n\
             {tag} OK [READ-ONLY] Examined\r\n",
            mailbox.messages.len(),
            mailbox.uid_validity,
            mailbox.uid_next
        )
        .into_bytes()
    }

    fn uid_fetch(&mut self, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let Some(mailbox) = self.selected else {
            return format!("{tag} BAD No mailbox selected\r\n").into_bytes();
        };
        let set = String::from_utf8_lossy(&words.atom()).into_owned();
        let items = String::from_utf8_lossy(words.rest).to_ascii_uppercase();
        let mut indexes: Vec<usize> = (0..mailbox.messages.len())
            .filter(|&i| in_set(&set, mailbox.messages[i].uid, mailbox.uid_next))
            .collect();
        if mailbox.descending {
            indexes.reverse();
        }
        let mut out = Vec::new();
        for index in indexes {
            let message = &mailbox.messages[index];
            let mut line = format!("* {} FETCH (UID {}", index + 1, message.uid).into_bytes();
            if items.contains("BODY.PEEK[HEADER.FIELDS") {
                let fields = header_fields(&message.body);
                line.extend_from_slice(b" BODY[HEADER.FIELDS (DATE MESSAGE-ID)] ");
                line.extend_from_slice(&literal(&fields));
            } else if items.contains("BODY.PEEK[]") || items.contains("BODY[]") {
                line.extend_from_slice(b" BODY[] ");
                line.extend_from_slice(&literal(&message.body));
            } else {
                line.extend_from_slice(
                    format!(
                        " FLAGS ({}) INTERNALDATE \"{}\" RFC822.SIZE {}",
                        message.flags,
                        message.internal_date,
                        message.body.len()
                    )
                    .as_bytes(),
                );
            }
            line.extend_from_slice(b")\r\n");
            out.extend_from_slice(&line);
        }
        out.extend_from_slice(format!("{tag} OK Fetch completed\r\n").as_bytes());
        out
    }
}

fn nonexistent(tag: &str) -> Vec<u8> {
    format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist\r\n").into_bytes()
}

/// `{n}` or `{n+}` at the end of a line: (n, synchronising).
fn literal_length(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let (digits, synchronising) = match inner[open + 1..].strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (&inner[open + 1..], true),
    };
    std::str::from_utf8(digits).ok()?.parse().ok().map(|n| (n, synchronising))
}

/// A quoted string when the bytes allow it, else a literal.
fn string(bytes: &[u8]) -> Vec<u8> {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\') {
        [b"\"".as_slice(), bytes, b"\""].concat()
    } else {
        literal(bytes)
    }
}

fn literal(bytes: &[u8]) -> Vec<u8> {
    [format!("{{{}}}\r\n", bytes.len()).as_bytes(), bytes].concat()
}

/// The `Date:` and `Message-ID:` lines of `body`'s header and the empty line.
fn header_fields(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let header = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut out = String::new();
    for line in header.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("date:") || lower.starts_with("message-id:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Whether `uid` is in the UID set `set` (`*` is the highest UID, here `uid_next - 1`).
/// `1:*` is every message, whatever UID it claims (0 included: the fake is hostile).
fn in_set(set: &str, uid: u32, uid_next: u32) -> bool {
    if set == "1:*" {
        return true;
    }
    let value = |text: &str| {
        if text == "*" { Some(uid_next.saturating_sub(1).max(1)) } else { text.parse().ok() }
    };
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => match (value(a), value(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => value(part) == Some(uid),
    })
}

/// Reads the arguments of a command.
struct Words<'a> {
    rest: &'a [u8],
}

impl Words<'_> {
    fn skip_spaces(&mut self) {
        while self.rest.first() == Some(&b' ') {
            self.rest = &self.rest[1..];
        }
    }

    /// Up to the next space.
    fn atom(&mut self) -> Vec<u8> {
        self.skip_spaces();
        let end = self.rest.iter().position(|b| *b == b' ').unwrap_or(self.rest.len());
        let atom = self.rest[..end].to_vec();
        self.rest = &self.rest[end..];
        atom
    }

    /// A quoted string, a literal (inline after its `{n}` line) or an atom.
    fn astring(&mut self) -> Vec<u8> {
        self.skip_spaces();
        match self.rest.first() {
            Some(b'"') => {
                let mut out = Vec::new();
                let mut index = 1;
                while let Some(&byte) = self.rest.get(index) {
                    index += 1;
                    match byte {
                        b'\\' => {
                            if let Some(&next) = self.rest.get(index) {
                                out.push(next);
                                index += 1;
                            }
                        }
                        b'"' => break,
                        _ => out.push(byte),
                    }
                }
                self.rest = &self.rest[index.min(self.rest.len())..];
                out
            }
            Some(b'{') => {
                let close = self.rest.iter().position(|b| *b == b'}').unwrap_or(0);
                let digits = String::from_utf8_lossy(&self.rest[1..close]).replace('+', "");
                let length: usize = digits.parse().unwrap_or(0);
                let start = (close + 3).min(self.rest.len());
                let end = (start + length).min(self.rest.len());
                let out = self.rest[start..end].to_vec();
                self.rest = &self.rest[end..];
                out
            }
            _ => self.atom(),
        }
    }
}
