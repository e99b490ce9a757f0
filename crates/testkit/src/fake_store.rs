//! A small writable IMAP account, for what a real Dovecot cannot be made to say to a
//! client that writes: `[THROTTLED]` (Gmail, Exchange), `[UNAVAILABLE]` and other refusals
//! of one APPEND at a chosen moment, and Gmail's `X-GM-EXT-1` (`X-GM-MSGID`,
//! `X-GM-LABELS`, one message shown in every label's folder and in `[Gmail]/All Mail`).
//! Everything else should be tested against [`crate::Dovecot`].
//!
//! It understands what a sync sends to a destination (LOGIN, LIST, LSUB, STATUS,
//! SELECT/EXAMINE, CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE, APPEND with flags and date,
//! UID FETCH of metadata, header fields and bodies, UID STORE, UID COPY, UID EXPUNGE,
//! LOGOUT) and answers any number of connections, one shared account. Mailbox names are
//! compared as bytes, the hierarchy delimiter is `/`.
//!
//! In Gmail mode a message appended to a label's folder is also shown in
//! `[Gmail]/All Mail` (the same message: one `X-GM-MSGID`, as Gmail keeps one copy per
//! message), and `UID COPY` to a label's folder adds that label to it instead of storing
//! the message again (a copy into a folder that already shows it answers with the UID it
//! has there). Flags belong to the message, seen alike in every folder. `[Gmail]/Trash`
//! and `[Gmail]/Spam` are not labels: a message appended there is in no other folder, and
//! a COPY there moves the message out of every other folder. Expunging a
//! message from a label's folder removes that label (its `\Deleted` goes with it: Gmail
//! keeps that one per folder); expunging it from All Mail deletes it from every folder.
//! [`FakeStore::stored_messages`] counts what Gmail would store. Gmail itself cannot be
//! reached from the tests: this models only the behaviour our side relies on.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Gmail's all-mail folder.
pub const GMAIL_ALL_MAIL: &str = "[Gmail]/All Mail";
/// Gmail's trash (`\Trash`): what is there is in no other folder, not even All Mail.
pub const GMAIL_TRASH: &str = "[Gmail]/Trash";
/// Gmail's spam folder (`\Junk`), like the trash.
pub const GMAIL_SPAM: &str = "[Gmail]/Spam";

/// One message of the account (in Gmail mode, one per `X-GM-MSGID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Gmail's message id (also given in plain mode, unused there).
    pub id: u64,
    /// Flags and keywords as sent, in order.
    pub flags: Vec<String>,
    /// INTERNALDATE as sent (or the fake's fixed date).
    pub internal_date: String,
    /// The message bytes.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Mailbox {
    name: Vec<u8>,
    uid_validity: u32,
    uid_next: u32,
    subscribed: bool,
    /// UID → message id.
    uids: BTreeMap<u32, u64>,
}

#[derive(Debug, Default)]
struct Account {
    mailboxes: Vec<Mailbox>,
    messages: BTreeMap<u64, StoredMessage>,
    next_id: u64,
    next_uid_validity: u32,
    /// Answers for the next APPENDs instead of storing them (`NO [THROTTLED] …`).
    append_refusals: VecDeque<String>,
    /// Refuse every APPEND with this answer.
    refuse_all_appends: Option<String>,
    /// Messages stored at most; then `NO [OVERQUOTA]`.
    quota: Option<usize>,
    gmail: bool,
    commands: Vec<String>,
    /// `BODY[]` items sent.
    bodies_sent: usize,
    /// The `UID COPY` after which the server stops answering (it is carried out) until
    /// [`FakeStore::release`]: 1 for the first.
    hang_after_copy: Option<usize>,
    /// A connection is hanging.
    hanging: bool,
    /// `UID COPY` answers without `COPYUID`.
    no_copyuid: bool,
}

impl Account {
    fn find(&self, name: &[u8]) -> Option<usize> {
        self.mailboxes.iter().position(|m| m.name == name)
    }

    fn create(&mut self, name: &[u8]) -> usize {
        self.next_uid_validity += 1;
        self.mailboxes.push(Mailbox {
            name: name.to_vec(),
            uid_validity: 1000 + self.next_uid_validity,
            uid_next: 1,
            subscribed: false,
            uids: BTreeMap::new(),
        });
        self.mailboxes.len() - 1
    }

    /// Shows message `id` in mailbox `index`; its new UID.
    fn add(&mut self, index: usize, id: u64) -> u32 {
        let mailbox = &mut self.mailboxes[index];
        let uid = mailbox.uid_next;
        mailbox.uid_next += 1;
        mailbox.uids.insert(uid, id);
        uid
    }

    /// Gmail's trash or spam folder (Gmail mode).
    fn is_bin(&self, name: &[u8]) -> bool {
        self.gmail && (name == GMAIL_TRASH.as_bytes() || name == GMAIL_SPAM.as_bytes())
    }

    /// The labels of message `id` (Gmail mode): the folders it is shown in but All Mail.
    fn labels(&self, id: u64) -> Vec<String> {
        self.mailboxes
            .iter()
            .filter(|m| m.name != GMAIL_ALL_MAIL.as_bytes() && m.uids.values().any(|v| *v == id))
            .map(|m| String::from_utf8_lossy(&m.name).into_owned())
            .collect()
    }
}

/// Sets up a [`FakeStore`].
#[derive(Debug, Default)]
#[must_use]
pub struct FakeStoreBuilder {
    account: Account,
}

impl FakeStoreBuilder {
    /// Answers the next APPEND with `answer` (e.g. `NO [THROTTLED] Slow down`) instead of
    /// storing it; repeatable, answers are used in order.
    pub fn refuse_next_append(mut self, answer: &str) -> Self {
        self.account.append_refusals.push_back(answer.to_owned());
        self
    }

    /// Answers every APPEND with `answer`.
    pub fn refuse_every_append(mut self, answer: &str) -> Self {
        self.account.refuse_all_appends = Some(answer.to_owned());
        self
    }

    /// Stores at most `messages`; the next APPEND is `NO [OVERQUOTA]`.
    pub fn quota(mut self, messages: usize) -> Self {
        self.account.quota = Some(messages);
        self
    }

    /// Says it is Gmail: `X-GM-EXT-1`, `[Gmail]/All Mail` (`\All`), labels.
    pub fn gmail(mut self) -> Self {
        self.account.gmail = true;
        for name in [GMAIL_ALL_MAIL, GMAIL_TRASH, GMAIL_SPAM] {
            if self.account.find(name.as_bytes()).is_none() {
                self.account.create(name.as_bytes());
            }
        }
        self
    }

    /// A mailbox that exists from the start, subscribed.
    pub fn mailbox(mut self, name: &str) -> Self {
        let index = self.account.create(name.as_bytes());
        self.account.mailboxes[index].subscribed = true;
        self
    }

    /// A message in `mailbox` (created when missing); in Gmail mode it is also in All
    /// Mail, and a message with the same `id` is the same message in another label.
    pub fn message(mut self, mailbox: &str, id: u64, flags: &[&str], body: &[u8]) -> Self {
        let account = &mut self.account;
        let index = account.find(mailbox.as_bytes()).unwrap_or_else(|| {
            let index = account.create(mailbox.as_bytes());
            account.mailboxes[index].subscribed = true;
            index
        });
        account.messages.entry(id).or_insert_with(|| StoredMessage {
            id,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            internal_date: String::from("01-Jan-2024 10:00:00 +0000"),
            body: body.to_vec(),
        });
        account.next_id = account.next_id.max(id + 1);
        account.add(index, id);
        if account.gmail && mailbox != GMAIL_ALL_MAIL && !account.is_bin(mailbox.as_bytes()) {
            let all = account.find(GMAIL_ALL_MAIL.as_bytes()).expect("All Mail exists");
            if !account.mailboxes[all].uids.values().any(|v| *v == id) {
                account.add(all, id);
            }
        }
        self
    }

    /// Carries out the `n`-th `UID COPY` (1: the first) and then answers nothing on that
    /// connection until [`FakeStore::release`], as a server does when the client is
    /// killed right after sending it.
    pub fn hang_after_copy(mut self, n: usize) -> Self {
        self.account.hang_after_copy = Some(n);
        self
    }

    /// Answers `UID COPY` without `COPYUID`, as a server without UIDPLUS does.
    pub fn without_copyuid(mut self) -> Self {
        self.account.no_copyuid = true;
        self
    }

    /// Starts serving on a free loopback port.
    pub fn start(mut self) -> FakeStore {
        if self.account.find(b"INBOX").is_none() {
            let index = self.account.create(b"INBOX");
            self.account.mailboxes[index].subscribed = true;
        }
        if self.account.gmail && self.account.find(GMAIL_ALL_MAIL.as_bytes()).is_none() {
            self.account.create(GMAIL_ALL_MAIL.as_bytes());
        }
        self.account.next_id = self.account.next_id.max(1);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let account = Arc::new(Mutex::new(self.account));
        let shared = Arc::clone(&account);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let account = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &account);
                });
            }
        });
        FakeStore { port, account }
    }
}

/// A running writable fake IMAP account on 127.0.0.1 (any user name and password log in).
#[derive(Debug)]
pub struct FakeStore {
    port: u16,
    account: Arc<Mutex<Account>>,
}

impl FakeStore {
    /// A builder: INBOX only, nothing refused.
    pub fn builder() -> FakeStoreBuilder {
        FakeStoreBuilder::default()
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every command line received so far (literals left out), in order.
    pub fn commands(&self) -> Vec<String> {
        self.account.lock().expect("lock").commands.clone()
    }

    /// The messages shown in `mailbox`, in UID order (empty when it does not exist).
    pub fn messages(&self, mailbox: &str) -> Vec<StoredMessage> {
        let account = self.account.lock().expect("lock");
        let Some(index) = account.find(mailbox.as_bytes()) else { return Vec::new() };
        account.mailboxes[index].uids.values().map(|id| account.messages[id].clone()).collect()
    }

    /// How many message bodies (`BODY[]`) the server has sent.
    pub fn bodies_sent(&self) -> usize {
        self.account.lock().expect("lock").bodies_sent
    }

    /// Names of the mailboxes, in creation order.
    pub fn mailboxes(&self) -> Vec<String> {
        let account = self.account.lock().expect("lock");
        account.mailboxes.iter().map(|m| String::from_utf8_lossy(&m.name).into_owned()).collect()
    }

    /// Names of the subscribed mailboxes.
    pub fn subscriptions(&self) -> Vec<String> {
        let account = self.account.lock().expect("lock");
        account
            .mailboxes
            .iter()
            .filter(|m| m.subscribed)
            .map(|m| String::from_utf8_lossy(&m.name).into_owned())
            .collect()
    }

    /// Messages the account stores: one per message however many folders show it (in
    /// Gmail mode: per `X-GM-MSGID`, as Gmail counts storage).
    pub fn stored_messages(&self) -> usize {
        let account = self.account.lock().expect("lock");
        let mut shown: Vec<u64> =
            account.mailboxes.iter().flat_map(|m| m.uids.values().copied()).collect();
        shown.sort_unstable();
        shown.dedup();
        shown.len()
    }

    /// True while a connection hangs ([`FakeStoreBuilder::hang_after_copy`]).
    pub fn hanging(&self) -> bool {
        self.account.lock().expect("lock").hanging
    }

    /// Ends a hang: the hanging connection is closed, the others answer as usual.
    pub fn release(&self) {
        let mut account = self.account.lock().expect("lock");
        account.hanging = false;
        account.hang_after_copy = None;
    }

    /// How many `APPEND`s and how many messages `UID COPY` was asked to copy, so far.
    pub fn appends_and_copies(&self) -> (usize, usize) {
        let account = self.account.lock().expect("lock");
        let word = |line: &str, n: usize| line.split(' ').nth(n).map(str::to_ascii_uppercase);
        let appends =
            account.commands.iter().filter(|c| word(c, 1).as_deref() == Some("APPEND")).count();
        let copies = account
            .commands
            .iter()
            .filter(|c| {
                word(c, 1).as_deref() == Some("UID") && word(c, 2).as_deref() == Some("COPY")
            })
            .filter_map(|c| c.split(' ').nth(3).map(set_size))
            .sum();
        (appends, copies)
    }

    /// The labels of the message shown as `uid` in `mailbox` (Gmail mode).
    pub fn labels(&self, mailbox: &str, uid: u32) -> Vec<String> {
        let account = self.account.lock().expect("lock");
        let Some(index) = account.find(mailbox.as_bytes()) else { return Vec::new() };
        account.mailboxes[index].uids.get(&uid).map(|id| account.labels(*id)).unwrap_or_default()
    }
}

fn capabilities(account: &Account) -> String {
    let mut caps = String::from("IMAP4rev1 LITERAL+ UIDPLUS");
    if account.gmail {
        caps.push_str(" X-GM-EXT-1");
    }
    caps
}

/// A command line (literals replaced by `{}`) and its literals.
type Command = (Vec<u8>, Vec<Vec<u8>>);

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    selected: Option<Vec<u8>>,
}

/// Waits until the hang is released.
fn hang(account: &Mutex<Account>) {
    while account.lock().expect("lock").hanging {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many UIDs a set such as `1,3:5` names.
fn set_size(set: &str) -> usize {
    set.split(',')
        .map(|part| match part.split_once(':') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) => a.abs_diff(b) + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

fn serve(stream: TcpStream, account: &Mutex<Account>) -> std::io::Result<()> {
    let account_ref = account;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let writer = stream.try_clone()?;
    let mut connection = Connection { reader: BufReader::new(stream), writer, selected: None };
    let caps = capabilities(&account.lock().expect("lock"));
    connection.writer.write_all(format!("* OK [CAPABILITY {caps}] fake store\r\n").as_bytes())?;
    loop {
        let Some((line, literals)) = connection.read_command()? else { return Ok(()) };
        let mut account = account.lock().expect("lock");
        account.commands.push(String::from_utf8_lossy(&line).into_owned());
        let answer = connection.answer(&mut account, &line, literals);
        let copy = line.to_ascii_uppercase().split(|b| *b == b' ').nth(2) == Some(b"COPY");
        if copy && let Some(n) = account.hang_after_copy {
            if n <= 1 {
                account.hang_after_copy = None;
                account.hanging = true;
                drop(account);
                hang(account_ref);
                return Ok(());
            }
            account.hang_after_copy = Some(n - 1);
        }
        drop(account);
        connection.writer.write_all(&answer)?;
        if answer.starts_with(b"* BYE") {
            return Ok(());
        }
    }
}

impl Connection {
    /// One command line (literals replaced by `{}`) and its literals.
    fn read_command(&mut self) -> std::io::Result<Option<Command>> {
        let mut command = Vec::new();
        let mut literals = Vec::new();
        loop {
            let mut line = Vec::new();
            if self.reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(None);
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            let Some((length, synchronising, open)) = literal_length(&line) else {
                command.extend_from_slice(&line);
                return Ok(Some((command, literals)));
            };
            command.extend_from_slice(&line[..open]);
            command.extend_from_slice(b"{}");
            if synchronising {
                self.writer.write_all(b"+ OK\r\n")?;
            }
            let mut data = vec![0u8; length];
            self.reader.read_exact(&mut data)?;
            literals.push(data);
        }
    }

    fn answer(&mut self, account: &mut Account, line: &[u8], literals: Vec<Vec<u8>>) -> Vec<u8> {
        let mut words = Words { rest: line, literals: literals.into() };
        let tag = String::from_utf8_lossy(&words.atom()).into_owned();
        let mut command = words.atom().to_ascii_uppercase();
        if command == b"UID" {
            command = [b"UID ".as_slice(), &words.atom().to_ascii_uppercase()].concat();
        }
        let ok = |text: &str| format!("{tag} OK {text}\r\n").into_bytes();
        let caps = capabilities(account);
        match command.as_slice() {
            b"CAPABILITY" => format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n").into_bytes(),
            b"LOGIN" => format!("{tag} OK [CAPABILITY {caps}] Logged in\r\n").into_bytes(),
            b"NOOP" | b"CHECK" | b"ENABLE" => ok("done"),
            b"ID" => format!("* ID NIL\r\n{tag} OK done\r\n").into_bytes(),
            b"NAMESPACE" => {
                format!("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n{tag} OK done\r\n").into_bytes()
            }
            b"LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n").into_bytes(),
            b"LIST" | b"LSUB" => list(account, &mut words, &tag, command == b"LSUB"),
            b"STATUS" => status(account, &mut words, &tag),
            b"SELECT" | b"EXAMINE" => self.select(account, &mut words, &tag, command == b"EXAMINE"),
            b"UNSELECT" | b"CLOSE" => {
                self.selected = None;
                ok("done")
            }
            b"CREATE" => {
                let name = words.astring();
                if account.find(&name).is_some() {
                    format!("{tag} NO [ALREADYEXISTS] Mailbox exists\r\n").into_bytes()
                } else {
                    account.create(&name);
                    ok("Created")
                }
            }
            b"DELETE" => {
                let name = words.astring();
                match account.find(&name) {
                    Some(index) => {
                        account.mailboxes.remove(index);
                        ok("Deleted")
                    }
                    None => nonexistent(&tag),
                }
            }
            b"SUBSCRIBE" | b"UNSUBSCRIBE" => {
                let name = words.astring();
                match account.find(&name) {
                    Some(index) => {
                        account.mailboxes[index].subscribed = command == b"SUBSCRIBE";
                        ok("done")
                    }
                    None => nonexistent(&tag),
                }
            }
            b"APPEND" => append(account, &mut words, &tag),
            b"UID FETCH" => self.uid_fetch(account, &mut words, &tag),
            b"UID STORE" => self.uid_store(account, &mut words, &tag),
            b"UID COPY" => self.uid_copy(account, &mut words, &tag),
            b"UID EXPUNGE" | b"EXPUNGE" => self.expunge(account, &mut words, &tag),
            b"UID SEARCH" => format!("* SEARCH\r\n{tag} OK done\r\n").into_bytes(),
            _ => format!("{tag} BAD unknown command\r\n").into_bytes(),
        }
    }

    fn selected_index(&self, account: &Account) -> Option<usize> {
        account.find(self.selected.as_deref()?)
    }

    fn select(
        &mut self,
        account: &Account,
        words: &mut Words<'_>,
        tag: &str,
        read_only: bool,
    ) -> Vec<u8> {
        let name = words.astring();
        let Some(index) = account.find(&name) else {
            self.selected = None;
            return nonexistent(tag);
        };
        self.selected = Some(name);
        let mailbox = &account.mailboxes[index];
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags\r\n\
             * {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {}] UIDs valid\r\n\
             * OK [UIDNEXT {}] Predicted next UID\r\n{tag} OK [{}] Selected\r\n",
            mailbox.uids.len(),
            mailbox.uid_validity,
            mailbox.uid_next,
            if read_only { "READ-ONLY" } else { "READ-WRITE" }
        )
        .into_bytes()
    }

    fn uid_fetch(&mut self, account: &mut Account, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let Some(index) = self.selected_index(account) else {
            return format!("{tag} BAD No mailbox selected\r\n").into_bytes();
        };
        let mailbox = &account.mailboxes[index];
        let set = String::from_utf8_lossy(&words.atom()).into_owned();
        let items = String::from_utf8_lossy(words.rest).to_ascii_uppercase();
        let mut out = Vec::new();
        let mut sent = 0;
        for (position, (&uid, id)) in mailbox.uids.iter().enumerate() {
            if !in_set(&set, uid, mailbox.uid_next) {
                continue;
            }
            let message = &account.messages[id];
            let mut line = format!("* {} FETCH (UID {uid}", position + 1).into_bytes();
            if items.contains("FLAGS") {
                let _ = write!(Sink(&mut line), " FLAGS ({})", message.flags.join(" "));
            }
            if items.contains("INTERNALDATE") {
                let _ = write!(Sink(&mut line), " INTERNALDATE \"{}\"", message.internal_date);
            }
            if items.contains("RFC822.SIZE") {
                let _ = write!(Sink(&mut line), " RFC822.SIZE {}", message.body.len());
            }
            if items.contains("X-GM-MSGID") && account.gmail {
                let _ = write!(Sink(&mut line), " X-GM-MSGID {}", message.id);
            }
            if items.contains("X-GM-LABELS") && account.gmail {
                let labels: Vec<String> =
                    account.labels(message.id).iter().map(|l| format!("\"{l}\"")).collect();
                let _ = write!(Sink(&mut line), " X-GM-LABELS ({})", labels.join(" "));
            }
            if let Some(start) = items.find("HEADER.FIELDS (") {
                let rest = &items[start + "HEADER.FIELDS (".len()..];
                let fields: Vec<&str> = rest[..rest.find(')').unwrap_or(0)].split(' ').collect();
                let selected = header_fields(&message.body, &fields);
                let _ = write!(Sink(&mut line), " BODY[HEADER.FIELDS ({})] ", fields.join(" "));
                line.extend_from_slice(&literal(&selected));
            } else if items.contains("BODY.PEEK[]") || items.contains("BODY[]") {
                sent += 1;
                line.extend_from_slice(b" BODY[] ");
                line.extend_from_slice(&literal(&message.body));
            }
            line.extend_from_slice(b")\r\n");
            out.extend_from_slice(&line);
        }
        account.bodies_sent += sent;
        out.extend_from_slice(format!("{tag} OK Fetch completed\r\n").as_bytes());
        out
    }

    fn uid_store(&mut self, account: &mut Account, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let Some(index) = self.selected_index(account) else {
            return format!("{tag} BAD No mailbox selected\r\n").into_bytes();
        };
        let set = String::from_utf8_lossy(&words.atom()).into_owned();
        let mut action = words.atom().to_ascii_uppercase();
        if action.starts_with(b"(") {
            // A modifier such as (UNCHANGEDSINCE n): not kept by this fake.
            while !action.ends_with(b")") && !words.rest.is_empty() {
                action = words.atom();
            }
            action = words.atom().to_ascii_uppercase();
        }
        let flags = words.flag_list();
        let mailbox = &account.mailboxes[index];
        let ids: Vec<u64> = mailbox
            .uids
            .iter()
            .filter(|(uid, _)| in_set(&set, **uid, mailbox.uid_next))
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            let Some(message) = account.messages.get_mut(&id) else { continue };
            if action.starts_with(b"+") {
                for flag in &flags {
                    if !message.flags.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
                        message.flags.push(flag.clone());
                    }
                }
            } else if action.starts_with(b"-") {
                message.flags.retain(|f| !flags.iter().any(|g| g.eq_ignore_ascii_case(f)));
            } else {
                message.flags.clone_from(&flags);
            }
        }
        format!("{tag} OK Store completed\r\n").into_bytes()
    }

    fn uid_copy(&mut self, account: &mut Account, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let Some(from) = self.selected_index(account) else {
            return format!("{tag} BAD No mailbox selected\r\n").into_bytes();
        };
        let set = String::from_utf8_lossy(&words.atom()).into_owned();
        let target = words.astring();
        let Some(to) = account.find(&target) else {
            return format!("{tag} NO [TRYCREATE] Mailbox doesn't exist\r\n").into_bytes();
        };
        let source = &account.mailboxes[from];
        let picked: Vec<(u32, u64)> = source
            .uids
            .iter()
            .filter(|(uid, _)| in_set(&set, **uid, source.uid_next))
            .map(|(uid, id)| (*uid, *id))
            .collect();
        let (mut old, mut new) = (Vec::new(), Vec::new());
        let bin = account.is_bin(&target);
        for (uid, id) in picked {
            if bin {
                // Gmail: into the trash is out of every label and All Mail.
                for mailbox in &mut account.mailboxes {
                    mailbox.uids.retain(|_, shown| *shown != id);
                }
            }
            let id = if account.gmail {
                // Gmail: the same message gets one more label.
                match account.mailboxes[to].uids.iter().find(|(_, v)| **v == id) {
                    Some((existing, _)) => {
                        old.push(uid.to_string());
                        new.push(existing.to_string());
                        continue;
                    }
                    None => id,
                }
            } else {
                let copy = account.messages[&id].clone();
                let fresh = account.next_id;
                account.next_id += 1;
                account.messages.insert(fresh, StoredMessage { id: fresh, ..copy });
                fresh
            };
            old.push(uid.to_string());
            new.push(account.add(to, id).to_string());
        }
        if account.no_copyuid {
            return format!("{tag} OK Copy completed\r\n").into_bytes();
        }
        format!(
            "{tag} OK [COPYUID {} {} {}] Copy completed\r\n",
            account.mailboxes[to].uid_validity,
            old.join(","),
            new.join(",")
        )
        .into_bytes()
    }

    fn expunge(&mut self, account: &mut Account, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
        let Some(index) = self.selected_index(account) else {
            return format!("{tag} BAD No mailbox selected\r\n").into_bytes();
        };
        let set = String::from_utf8_lossy(&words.atom()).into_owned();
        let uid_next = account.mailboxes[index].uid_next;
        let mut out = Vec::new();
        let deleted: Vec<u32> = account.mailboxes[index]
            .uids
            .iter()
            .filter(|(uid, id)| {
                (set.is_empty() || in_set(&set, **uid, uid_next))
                    && account.messages[*id]
                        .flags
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case("\\Deleted"))
            })
            .map(|(uid, _)| *uid)
            .collect();
        let all_mail = account.gmail && account.mailboxes[index].name == GMAIL_ALL_MAIL.as_bytes();
        for uid in deleted.iter().rev() {
            let position = account.mailboxes[index].uids.keys().position(|u| u == uid);
            let Some(id) = account.mailboxes[index].uids.remove(uid) else { continue };
            if let Some(position) = position {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", position + 1).as_bytes());
            }
            if !account.gmail {
                continue;
            }
            if all_mail {
                // Gmail: gone from All Mail is gone from every label.
                for mailbox in &mut account.mailboxes {
                    mailbox.uids.retain(|_, shown| *shown != id);
                }
                account.messages.remove(&id);
            } else if let Some(message) = account.messages.get_mut(&id) {
                // Only this label went; `\Deleted` was this folder's.
                message.flags.retain(|f| !f.eq_ignore_ascii_case("\\Deleted"));
            }
        }
        out.extend_from_slice(format!("{tag} OK Expunge completed\r\n").as_bytes());
        out
    }
}

fn list(account: &Account, words: &mut Words<'_>, tag: &str, lsub: bool) -> Vec<u8> {
    let _reference = words.astring();
    let pattern = words.astring();
    let verb = if lsub { "LSUB" } else { "LIST" };
    let mut out = String::new();
    if pattern.is_empty() {
        let _ = write!(out, "* {verb} (\\Noselect) \"/\" \"\"\r\n");
    } else {
        for mailbox in account.mailboxes.iter().filter(|m| !lsub || m.subscribed) {
            let role = match mailbox.name.as_slice() {
                _ if !account.gmail => "",
                name if name == GMAIL_ALL_MAIL.as_bytes() => " \\All",
                name if name == GMAIL_TRASH.as_bytes() => " \\Trash",
                name if name == GMAIL_SPAM.as_bytes() => " \\Junk",
                _ => "",
            };
            let _ = write!(
                out,
                "* {verb} (\\HasNoChildren{role}) \"/\" \"{}\"\r\n",
                String::from_utf8_lossy(&mailbox.name)
            );
        }
    }
    let _ = write!(out, "{tag} OK {verb} done\r\n");
    out.into_bytes()
}

fn status(account: &Account, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
    let name = words.astring();
    let Some(index) = account.find(&name) else { return nonexistent(tag) };
    let mailbox = &account.mailboxes[index];
    format!(
        "* STATUS \"{}\" (MESSAGES {} UIDNEXT {} UIDVALIDITY {} UNSEEN 0)\r\n{tag} OK done\r\n",
        String::from_utf8_lossy(&mailbox.name),
        mailbox.uids.len(),
        mailbox.uid_next,
        mailbox.uid_validity
    )
    .into_bytes()
}

fn append(account: &mut Account, words: &mut Words<'_>, tag: &str) -> Vec<u8> {
    let name = words.astring();
    let flags = if words.peek() == Some(b'(') { words.flag_list() } else { Vec::new() };
    let date = if words.peek() == Some(b'"') {
        Some(String::from_utf8_lossy(&words.astring()).into_owned())
    } else {
        None
    };
    let body = words.astring();
    if let Some(answer) = account.append_refusals.pop_front() {
        return format!("{tag} {answer}\r\n").into_bytes();
    }
    if let Some(answer) = &account.refuse_all_appends {
        return format!("{tag} {answer}\r\n").into_bytes();
    }
    let Some(index) = account.find(&name) else {
        return format!("{tag} NO [TRYCREATE] Mailbox doesn't exist\r\n").into_bytes();
    };
    if account.quota.is_some_and(|quota| account.messages.len() >= quota) {
        return format!("{tag} NO [OVERQUOTA] Quota exceeded (fake)\r\n").into_bytes();
    }
    let id = account.next_id;
    account.next_id += 1;
    account.messages.insert(
        id,
        StoredMessage {
            id,
            flags,
            internal_date: date.unwrap_or_else(|| String::from("01-Jan-2024 10:00:00 +0000")),
            body,
        },
    );
    let uid = account.add(index, id);
    if account.gmail && name != GMAIL_ALL_MAIL.as_bytes() && !account.is_bin(&name) {
        let all = account.find(GMAIL_ALL_MAIL.as_bytes()).expect("All Mail exists");
        account.add(all, id);
    }
    format!(
        "{tag} OK [APPENDUID {} {uid}] Append completed\r\n",
        account.mailboxes[index].uid_validity
    )
    .into_bytes()
}

fn nonexistent(tag: &str) -> Vec<u8> {
    format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist\r\n").into_bytes()
}

/// `{n}` or `{n+}` at the end of a line: (n, synchronising, where the `{` is).
fn literal_length(line: &[u8]) -> Option<(usize, bool, usize)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let (digits, synchronising) = match inner[open + 1..].strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (&inner[open + 1..], true),
    };
    std::str::from_utf8(digits).ok()?.parse().ok().map(|n| (n, synchronising, open))
}

fn literal(bytes: &[u8]) -> Vec<u8> {
    [format!("{{{}}}\r\n", bytes.len()).as_bytes(), bytes].concat()
}

/// The header lines of `body` named in `fields` (upper case), and the empty line.
fn header_fields(body: &[u8], fields: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let header = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut out = String::new();
    for line in header.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().to_ascii_uppercase();
        if fields.iter().any(|f| f.trim_matches('"') == name) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Whether `uid` is in the UID set `set` (`*` is the highest UID).
fn in_set(set: &str, uid: u32, uid_next: u32) -> bool {
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

/// Writes formatted text into a byte vector.
struct Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Reads the arguments of a command; literals (`{}` in the line) come from `literals`.
struct Words<'a> {
    rest: &'a [u8],
    literals: VecDeque<Vec<u8>>,
}

impl Words<'_> {
    fn skip_spaces(&mut self) {
        while self.rest.first() == Some(&b' ') {
            self.rest = &self.rest[1..];
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.rest.first().copied()
    }

    /// Up to the next space.
    fn atom(&mut self) -> Vec<u8> {
        self.skip_spaces();
        let end = self.rest.iter().position(|b| *b == b' ').unwrap_or(self.rest.len());
        let atom = self.rest[..end].to_vec();
        self.rest = &self.rest[end..];
        atom
    }

    /// `(a b c)` as its words.
    fn flag_list(&mut self) -> Vec<String> {
        self.skip_spaces();
        let Some(rest) = self.rest.strip_prefix(b"(") else {
            return vec![String::from_utf8_lossy(&self.atom()).into_owned()];
        };
        let end = rest.iter().position(|b| *b == b')').unwrap_or(rest.len());
        let flags =
            String::from_utf8_lossy(&rest[..end]).split_whitespace().map(str::to_owned).collect();
        self.rest = &rest[(end + 1).min(rest.len())..];
        flags
    }

    /// A quoted string, a literal or an atom.
    fn astring(&mut self) -> Vec<u8> {
        self.skip_spaces();
        if let Some(rest) = self.rest.strip_prefix(b"{}") {
            self.rest = rest;
            return self.literals.pop_front().unwrap_or_default();
        }
        if self.rest.first() != Some(&b'"') {
            return self.atom();
        }
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
}
