//! Typed items: what each kind's keys mean, decoded from a [`Record`] and encoded back
//! (`dsync-ibc-stream.c`, `dsync_ibc_stream_send_*` / `recv_*`).
//!
//! Absent and present-but-empty are kept apart (Dovecot uses `""` for "flag set"), and
//! numbers keep Dovecot's bases (decimal, but hexadecimal for flags, received timestamps
//! and virtual sizes in `C`), so that what Dovecot sends encodes back byte for byte.

use std::fmt;

use super::escape;
use super::record::Record;
use super::schema::ItemKind;

/// A typed item kind.
pub trait Item: Sized {
    /// The kind.
    const KIND: ItemKind;
    /// Reads the item from a decoded record of its kind.
    fn from_record(record: &Record) -> Result<Self, ItemError>;
    /// The present values by key (what [`super::Encoder::item`] writes).
    fn fields(&self) -> Vec<(&'static str, Vec<u8>)>;
}

/// An item whose values do not mean what its kind needs (an invalid number, GUID, type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct ItemError {
    /// The item kind.
    pub kind: ItemKind,
    /// What is wrong, in Dovecot's words where it has them ("Invalid uid").
    pub reason: String,
}

impl ItemError {
    pub(crate) fn new(kind: ItemKind, reason: impl Into<String>) -> ItemError {
        ItemError { kind, reason: reason.into() }
    }
}

/// A 128-bit GUID (mailbox GUIDs; 32 hex digits on the wire).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid128(pub [u8; 16]);

impl Guid128 {
    /// Parses exactly 32 hex digits (either case), as `guid_128_from_string`.
    pub fn from_hex(text: &[u8]) -> Option<Guid128> {
        if text.len() != 32 {
            return None;
        }
        let mut guid = [0u8; 16];
        for (index, pair) in text.chunks_exact(2).enumerate() {
            let high = hex_digit(pair[0])?;
            let low = hex_digit(pair[1])?;
            guid[index] = high << 4 | low;
        }
        Some(Guid128(guid))
    }

    /// True for the all-zero GUID (Dovecot's "no GUID").
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Guid128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Reading values of one record, with errors in Dovecot's words.
struct Reader<'a> {
    record: &'a Record,
    kind: ItemKind,
}

impl<'a> Reader<'a> {
    fn new(record: &'a Record, kind: ItemKind) -> Result<Reader<'a>, ItemError> {
        if record.kind() != kind {
            return Err(ItemError::new(kind, format!("not a {} item", record.kind())));
        }
        Ok(Reader { record, kind })
    }

    fn invalid(&self, key: &str) -> ItemError {
        ItemError::new(self.kind, format!("Invalid {key}"))
    }

    fn bytes(&self, key: &str) -> Option<&'a [u8]> {
        self.record.get(key)
    }

    fn required(&self, key: &str) -> Result<&'a [u8], ItemError> {
        self.record
            .get(key)
            .ok_or_else(|| ItemError::new(self.kind, format!("Missing required field {key}")))
    }

    fn flag(&self, key: &str) -> bool {
        self.record.has(key)
    }

    fn text(&self, key: &str) -> Result<Option<String>, ItemError> {
        self.bytes(key)
            .map(|value| String::from_utf8(value.to_vec()).map_err(|_| self.invalid(key)))
            .transpose()
    }

    fn required_text(&self, key: &str) -> Result<String, ItemError> {
        String::from_utf8(self.required(key)?.to_vec()).map_err(|_| self.invalid(key))
    }

    fn decimal<T: TryFrom<u64>>(&self, key: &str, value: &[u8]) -> Result<T, ItemError> {
        parse_decimal(value).and_then(|n| T::try_from(n).ok()).ok_or_else(|| self.invalid(key))
    }

    fn number<T: TryFrom<u64>>(&self, key: &str) -> Result<Option<T>, ItemError> {
        self.bytes(key).map(|value| self.decimal(key, value)).transpose()
    }

    fn required_number<T: TryFrom<u64>>(&self, key: &str) -> Result<T, ItemError> {
        let value = self.required(key)?;
        self.decimal(key, value)
    }

    fn time(&self, key: &str) -> Result<Option<i64>, ItemError> {
        self.bytes(key).map(|value| parse_time(value).ok_or_else(|| self.invalid(key))).transpose()
    }

    fn hex<T: TryFrom<u64>>(&self, key: &str) -> Result<Option<T>, ItemError> {
        self.bytes(key)
            .map(|value| {
                parse_hex(value).and_then(|n| T::try_from(n).ok()).ok_or_else(|| self.invalid(key))
            })
            .transpose()
    }

    fn guid(&self, key: &str) -> Result<Option<Guid128>, ItemError> {
        self.bytes(key)
            .map(|value| Guid128::from_hex(value).ok_or_else(|| self.invalid(key)))
            .transpose()
    }

    fn required_guid(&self, key: &str) -> Result<Guid128, ItemError> {
        Guid128::from_hex(self.required(key)?).ok_or_else(|| self.invalid(key))
    }
}

/// Digits only, at least one, no overflow (`str_to_uint64`).
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

/// A decimal UNIX time, possibly negative (`str_to_time`).
fn parse_time(value: &[u8]) -> Option<i64> {
    match value.strip_prefix(b"-") {
        Some(digits) => i64::try_from(parse_decimal(digits)?).ok()?.checked_neg(),
        None => i64::try_from(parse_decimal(value)?).ok(),
    }
}

/// Hex digits only, at least one, no overflow (`str_to_uint_hex`).
fn parse_hex(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| n.checked_mul(16)?.checked_add(u64::from(hex_digit(b)?)))
}

/// Collects present values by key.
#[derive(Default)]
struct Fields(Vec<(&'static str, Vec<u8>)>);

impl Fields {
    fn put(&mut self, key: &'static str, value: impl Into<Vec<u8>>) {
        self.0.push((key, value.into()));
    }
    fn opt(&mut self, key: &'static str, value: Option<impl Into<Vec<u8>>>) {
        if let Some(value) = value {
            self.put(key, value);
        }
    }
    fn flag(&mut self, key: &'static str, set: bool) {
        if set {
            self.put(key, Vec::new());
        }
    }
    fn num(&mut self, key: &'static str, value: Option<impl fmt::Display>) {
        if let Some(value) = value {
            self.put(key, value.to_string());
        }
    }
    fn hex(&mut self, key: &'static str, value: Option<impl fmt::LowerHex>) {
        if let Some(value) = value {
            self.put(key, format!("{value:x}"));
        }
    }
}

/// `sync_type`: how the slave decides which mailboxes to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncType {
    /// `f`: every mailbox, every message.
    Full,
    /// `c`: mailboxes whose status differs between the sides.
    Changed,
    /// `s`: changes since the saved state (`S` items).
    State,
}

impl SyncType {
    fn byte(self) -> u8 {
        match self {
            SyncType::Full => b'f',
            SyncType::Changed => b'c',
            SyncType::State => b's',
        }
    }
}

/// `H`: the settings of a conversation. The master's handshake tells the slave what to
/// do; **its flags are written from the slave's point of view** (a master that pulls sends
/// `backup_send`: the slave sends). The slave's own handshake carries only its hostname.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handshake {
    /// The sender's host name (used in the peer's error messages).
    pub hostname: String,
    /// `-n` namespace prefixes.
    pub sync_ns_prefix: Option<String>,
    /// `-m` mailbox.
    pub sync_box: Option<String>,
    /// `-g` mailbox GUID (kept as sent).
    pub sync_box_guid: Option<String>,
    /// Full, changed or state sync.
    pub sync_type: Option<SyncType>,
    /// `-D`.
    pub debug: bool,
    /// `-N`.
    pub sync_visible_namespaces: bool,
    /// `-x` masks, each tab-escaped and joined by TAB (kept as sent).
    pub exclude_mailboxes: Option<Vec<u8>>,
    /// Mails are sent only when asked for with `R` items (doveadm always sets it).
    pub send_mail_requests: bool,
    /// The receiver of this handshake exports (is the backup's source).
    pub backup_send: bool,
    /// The receiver of this handshake imports and reverts its own changes.
    pub backup_recv: bool,
    /// `-l` seconds.
    pub lock_timeout: Option<u32>,
    /// Tree only, no mails.
    pub no_mail_sync: bool,
    /// `-1`: the importer merges instead of reverting.
    pub no_backup_overwrite: bool,
    /// `-P`.
    pub purge_remote: bool,
    /// Do not notify (replicator).
    pub no_notify: bool,
    /// `-t`; also makes exporters send received timestamps in `C` items.
    pub sync_since_timestamp: Option<i64>,
    /// `-I`; also makes exporters send virtual sizes in `C` items.
    pub sync_max_size: Option<u64>,
    /// `-O` flag.
    pub sync_flags: Option<String>,
    /// `-e` (Dovecot 2.3.19 sends the `-t` value here: do not rely on a 2.3 master's).
    pub sync_until_timestamp: Option<i64>,
    /// `-a` virtual all-mail box.
    pub virtual_all_box: Option<String>,
    /// `dsync_features = empty-header-workaround`.
    pub empty_hdr_workaround: bool,
    /// `dsync_commit_msgs_interval`.
    pub import_commit_msgs_interval: Option<u32>,
    /// `dsync_hashed_headers` (Dovecot sends each name followed by TAB; the slave `""`).
    pub hashed_headers: Option<Vec<String>>,
    /// `dsync_alt_char` (one character).
    pub alt_char: Option<String>,
}

impl Item for Handshake {
    const KIND: ItemKind = ItemKind::Handshake;

    fn from_record(record: &Record) -> Result<Handshake, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        let sync_type = match r.bytes("sync_type") {
            None => None,
            Some(value) => Some(match value.first() {
                Some(b'f') => SyncType::Full,
                Some(b'c') => SyncType::Changed,
                Some(b's') => SyncType::State,
                _ => {
                    let shown = String::from_utf8_lossy(value);
                    return Err(ItemError::new(Self::KIND, format!("Unknown sync_type: {shown}")));
                }
            }),
        };
        let hashed_headers = match r.bytes("hashed_headers") {
            None => None,
            Some(value) => {
                let value = value.strip_suffix(b"\t").unwrap_or(value);
                let names = escape::split_tabescaped(value)
                    .into_iter()
                    .map(|name| String::from_utf8(name).map_err(|_| r.invalid("hashed_headers")))
                    .collect::<Result<Vec<String>, ItemError>>()?;
                Some(names)
            }
        };
        Ok(Handshake {
            hostname: r.required_text("hostname")?,
            sync_ns_prefix: r.text("sync_ns_prefix")?,
            sync_box: r.text("sync_box")?,
            sync_box_guid: r.text("sync_box_guid")?,
            sync_type,
            debug: r.flag("debug"),
            sync_visible_namespaces: r.flag("sync_visible_namespaces"),
            exclude_mailboxes: r.bytes("exclude_mailboxes").map(<[u8]>::to_vec),
            send_mail_requests: r.flag("send_mail_requests"),
            backup_send: r.flag("backup_send"),
            backup_recv: r.flag("backup_recv"),
            lock_timeout: r.number("lock_timeout")?,
            no_mail_sync: r.flag("no_mail_sync"),
            no_backup_overwrite: r.flag("no_backup_overwrite"),
            purge_remote: r.flag("purge_remote"),
            no_notify: r.flag("no_notify"),
            sync_since_timestamp: r.time("sync_since_timestamp")?,
            sync_max_size: r.number("sync_max_size")?,
            sync_flags: r.text("sync_flags")?,
            sync_until_timestamp: r.time("sync_until_timestamp")?,
            virtual_all_box: r.text("virtual_all_box")?,
            empty_hdr_workaround: r.flag("empty_hdr_workaround"),
            import_commit_msgs_interval: r.number("import_commit_msgs_interval")?,
            hashed_headers,
            alt_char: r.text("alt_char")?,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put("hostname", self.hostname.as_bytes());
        f.opt("sync_ns_prefix", self.sync_ns_prefix.as_deref());
        f.opt("sync_box", self.sync_box.as_deref());
        f.opt("sync_box_guid", self.sync_box_guid.as_deref());
        f.opt("sync_type", self.sync_type.map(|t| vec![t.byte()]));
        f.flag("debug", self.debug);
        f.flag("sync_visible_namespaces", self.sync_visible_namespaces);
        f.opt("exclude_mailboxes", self.exclude_mailboxes.as_deref());
        f.flag("send_mail_requests", self.send_mail_requests);
        f.flag("backup_send", self.backup_send);
        f.flag("backup_recv", self.backup_recv);
        f.num("lock_timeout", self.lock_timeout);
        f.flag("no_mail_sync", self.no_mail_sync);
        f.flag("no_backup_overwrite", self.no_backup_overwrite);
        f.flag("purge_remote", self.purge_remote);
        f.flag("no_notify", self.no_notify);
        f.num("sync_since_timestamp", self.sync_since_timestamp);
        f.num("sync_max_size", self.sync_max_size);
        f.opt("sync_flags", self.sync_flags.as_deref());
        f.num("sync_until_timestamp", self.sync_until_timestamp);
        f.opt("virtual_all_box", self.virtual_all_box.as_deref());
        f.flag("empty_hdr_workaround", self.empty_hdr_workaround);
        f.num("import_commit_msgs_interval", self.import_commit_msgs_interval);
        if let Some(names) = &self.hashed_headers {
            let mut value = Vec::new();
            for name in names {
                escape::append_tabescaped(&mut value, name.as_bytes());
                value.push(b'\t');
            }
            f.put("hashed_headers", value);
        }
        f.opt("alt_char", self.alt_char.as_deref());
        f.0
    }
}

/// `S`: what the last sync of one mailbox ended with (both sides send their new one at
/// the end of each mailbox; a stateful master sends the saved ones first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxState {
    /// The mailbox.
    pub mailbox_guid: Guid128,
    /// Its UIDVALIDITY then.
    pub last_uidvalidity: u32,
    /// The highest UID both sides had.
    pub last_common_uid: u32,
    /// The modseq both sides had.
    pub last_common_modseq: u64,
    /// The private modseq both sides had.
    pub last_common_pvt_modseq: u64,
    /// The message count then.
    pub last_messages_count: Option<u32>,
    /// Something changed during the sync (run again).
    pub changes_during_sync: bool,
}

impl Item for MailboxState {
    const KIND: ItemKind = ItemKind::MailboxState;

    fn from_record(record: &Record) -> Result<MailboxState, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        Ok(MailboxState {
            mailbox_guid: r.required_guid("mailbox_guid")?,
            last_uidvalidity: r.required_number("last_uidvalidity")?,
            last_common_uid: r.required_number("last_common_uid")?,
            last_common_modseq: r.required_number("last_common_modseq")?,
            last_common_pvt_modseq: r.required_number("last_common_pvt_modseq")?,
            last_messages_count: r.number("last_messages_count")?,
            changes_during_sync: r.flag("changes_during_sync"),
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put("mailbox_guid", self.mailbox_guid.to_string());
        f.num("last_uidvalidity", Some(self.last_uidvalidity));
        f.num("last_common_uid", Some(self.last_common_uid));
        f.num("last_common_modseq", Some(self.last_common_modseq));
        f.num("last_common_pvt_modseq", Some(self.last_common_pvt_modseq));
        f.num("last_messages_count", self.last_messages_count);
        f.flag("changes_during_sync", self.changes_during_sync);
        f.0
    }
}

/// Whether a tree node is a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existence {
    /// `n`: only a path to children (any unknown letter reads as this, as in Dovecot).
    #[default]
    Nonexistent,
    /// `y`: exists (a mailbox when it has a GUID, else a `\Noselect` directory).
    Exists,
    /// `d`: deleted.
    Deleted,
}

/// `N`: one node of the sender's mailbox tree (parents before children).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeNode {
    /// The hierarchy components (UTF-8 names, any separator).
    pub name: Vec<String>,
    /// Mailbox, directory, or path only.
    pub existence: Existence,
    /// The mailbox GUID (mailboxes only).
    pub mailbox_guid: Option<Guid128>,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// UIDNEXT.
    pub uid_next: Option<u32>,
    /// When the mailbox was last renamed or created (UNIX time).
    pub last_renamed_or_created: Option<i64>,
    /// Subscribed.
    pub subscribed: bool,
    /// When the subscription last changed (UNIX time).
    pub last_subscription_change: Option<i64>,
}

impl Item for TreeNode {
    const KIND: ItemKind = ItemKind::TreeNode;

    fn from_record(record: &Record) -> Result<TreeNode, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        let raw = r.required("name")?;
        if raw.is_empty() {
            return Err(ItemError::new(Self::KIND, "Empty name"));
        }
        let name = escape::split_tabescaped(raw)
            .into_iter()
            .map(|component| String::from_utf8(component).map_err(|_| r.invalid("name")))
            .collect::<Result<Vec<String>, ItemError>>()?;
        let existence = match r.required("existence")?.first() {
            Some(b'y') => Existence::Exists,
            Some(b'd') => Existence::Deleted,
            _ => Existence::Nonexistent,
        };
        Ok(TreeNode {
            name,
            existence,
            mailbox_guid: r.guid("mailbox_guid")?,
            uid_validity: r.number("uid_validity")?,
            uid_next: r.number("uid_next")?,
            last_renamed_or_created: r.time("last_renamed_or_created")?,
            subscribed: r.flag("subscribed"),
            last_subscription_change: r.time("last_subscription_change")?,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put("name", escape::join_tabescaped(&self.name));
        f.put(
            "existence",
            match self.existence {
                Existence::Nonexistent => "n",
                Existence::Exists => "y",
                Existence::Deleted => "d",
            },
        );
        f.opt("mailbox_guid", self.mailbox_guid.map(|g| g.to_string()));
        f.num("uid_validity", self.uid_validity);
        f.num("uid_next", self.uid_next);
        f.num("last_renamed_or_created", self.last_renamed_or_created);
        f.num("last_subscription_change", self.last_subscription_change);
        f.flag("subscribed", self.subscribed);
        f.0
    }
}

/// One entry of the deletion log: the GUID of what was deleted and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Mailbox GUID (for directories and unsubscriptions: a hash of the name).
    pub guid: Guid128,
    /// UNIX time.
    pub timestamp: i64,
}

/// `D`: the sender's hierarchy separator and its deletion log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxDeletes {
    /// The hierarchy separator.
    pub hierarchy_sep: u8,
    /// The vname escape character (`None`: none).
    pub escape_char: Option<u8>,
    /// Deleted mailboxes.
    pub mailboxes: Vec<Deleted>,
    /// Deleted directories.
    pub dirs: Vec<Deleted>,
    /// Unsubscriptions.
    pub unsubscribes: Vec<Deleted>,
}

impl Default for MailboxDeletes {
    fn default() -> MailboxDeletes {
        MailboxDeletes {
            hierarchy_sep: b'/',
            escape_char: None,
            mailboxes: Vec::new(),
            dirs: Vec::new(),
            unsubscribes: Vec::new(),
        }
    }
}

impl MailboxDeletes {
    fn list(r: &Reader<'_>, key: &str) -> Result<Vec<Deleted>, ItemError> {
        let Some(value) = r.bytes(key) else { return Ok(Vec::new()) };
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let words: Vec<&[u8]> = value.split(|&b| b == b' ').collect();
        words
            .chunks(2)
            .map(|pair| {
                let guid = Guid128::from_hex(pair[0]).ok_or_else(|| r.invalid(key))?;
                let timestamp =
                    pair.get(1).and_then(|t| parse_time(t)).ok_or_else(|| r.invalid(key))?;
                Ok(Deleted { guid, timestamp })
            })
            .collect()
    }

    fn encode_list(f: &mut Fields, key: &'static str, list: &[Deleted]) {
        if list.is_empty() {
            return;
        }
        let text: Vec<String> =
            list.iter().map(|d| format!("{} {}", d.guid, d.timestamp)).collect();
        f.put(key, text.join(" "));
    }
}

impl Item for MailboxDeletes {
    const KIND: ItemKind = ItemKind::MailboxDelete;

    fn from_record(record: &Record) -> Result<MailboxDeletes, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        let hierarchy_sep = match r.required("hierarchy_sep")? {
            [sep] => *sep,
            _ => return Err(r.invalid("hierarchy_sep")),
        };
        let escape_char = match r.bytes("escape_char") {
            None | Some([]) => None,
            Some([escape]) => Some(*escape),
            Some(other) => {
                let shown = String::from_utf8_lossy(other);
                return Err(ItemError::new(Self::KIND, format!("Invalid escape_char '{shown}'")));
            }
        };
        Ok(MailboxDeletes {
            hierarchy_sep,
            escape_char,
            mailboxes: MailboxDeletes::list(&r, "mailboxes")?,
            dirs: MailboxDeletes::list(&r, "dirs")?,
            unsubscribes: MailboxDeletes::list(&r, "unsubscribes")?,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put("hierarchy_sep", vec![self.hierarchy_sep]);
        f.put("escape_char", self.escape_char.map(|c| vec![c]).unwrap_or_default());
        MailboxDeletes::encode_list(&mut f, "mailboxes", &self.mailboxes);
        MailboxDeletes::encode_list(&mut f, "dirs", &self.dirs);
        MailboxDeletes::encode_list(&mut f, "unsubscribes", &self.unsubscribes);
        f.0
    }
}

/// `B`: one mailbox's status; the master's opens the mailbox's sync, the slave answers
/// with its own (or `mailbox_lost`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// The mailbox.
    pub mailbox_guid: Guid128,
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT.
    pub uid_next: u32,
    /// Message count.
    pub messages_count: u32,
    /// First `\Recent` UID.
    pub first_recent_uid: u32,
    /// HIGHESTMODSEQ (0: not permanent).
    pub highest_modseq: u64,
    /// Private HIGHESTMODSEQ.
    pub highest_pvt_modseq: u64,
    /// The slave does not have this mailbox.
    pub mailbox_lost: bool,
    /// The slave ignores this mailbox (`sync -1` and a missing mailbox).
    pub mailbox_ignore: bool,
    /// Cache decisions: `c` items joined by LF (kept as sent; `""` for none).
    pub cache_fields: Option<Vec<u8>>,
    /// Messages have GUIDs.
    pub have_guids: bool,
    /// GUIDs can be given to saved messages.
    pub have_save_guids: bool,
    /// GUIDs are 128-bit only.
    pub have_only_guid128: bool,
}

impl Mailbox {
    /// The status of a mailbox just created with `guid` and `uid_validity`: nothing in
    /// common with the peer yet, so the peer's side of the sync exchanges every mail.
    pub fn fresh(mailbox_guid: Guid128, uid_validity: u32) -> Mailbox {
        Mailbox {
            mailbox_guid,
            uid_validity,
            uid_next: 1,
            first_recent_uid: 1,
            highest_modseq: 1,
            have_guids: true,
            have_save_guids: true,
            ..Mailbox::default()
        }
    }
}

impl Item for Mailbox {
    const KIND: ItemKind = ItemKind::Mailbox;

    fn from_record(record: &Record) -> Result<Mailbox, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        Ok(Mailbox {
            mailbox_guid: r.required_guid("mailbox_guid")?,
            uid_validity: r.required_number("uid_validity")?,
            uid_next: r.required_number("uid_next")?,
            messages_count: r.required_number("messages_count")?,
            first_recent_uid: r.required_number("first_recent_uid")?,
            highest_modseq: r.required_number("highest_modseq")?,
            highest_pvt_modseq: r.required_number("highest_pvt_modseq")?,
            mailbox_lost: r.flag("mailbox_lost"),
            mailbox_ignore: r.flag("mailbox_ignore"),
            cache_fields: r.bytes("cache_fields").map(<[u8]>::to_vec),
            have_guids: r.flag("have_guids"),
            have_save_guids: r.flag("have_save_guids"),
            have_only_guid128: r.flag("have_only_guid128"),
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put("mailbox_guid", self.mailbox_guid.to_string());
        f.flag("mailbox_lost", self.mailbox_lost);
        f.flag("mailbox_ignore", self.mailbox_ignore);
        f.flag("have_guids", self.have_guids);
        f.flag("have_save_guids", self.have_save_guids);
        f.flag("have_only_guid128", self.have_only_guid128);
        f.num("uid_validity", Some(self.uid_validity));
        f.num("uid_next", Some(self.uid_next));
        f.num("messages_count", Some(self.messages_count));
        f.num("first_recent_uid", Some(self.first_recent_uid));
        f.num("highest_modseq", Some(self.highest_modseq));
        f.num("highest_pvt_modseq", Some(self.highest_pvt_modseq));
        f.opt("cache_fields", self.cache_fields.as_deref());
        f.0
    }
}

/// Private (per user) or shared attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AttributeType {
    /// `p`.
    #[default]
    Private,
    /// `s`.
    Shared,
}

/// `A`: one mailbox attribute (IMAP METADATA; Sieve scripts are INBOX's private
/// `vendor/vendor.dovecot/pvt/server/sieve/…` attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    /// Private or shared.
    pub attribute_type: AttributeType,
    /// The key.
    pub key: String,
    /// A short value sent inline.
    pub value: Option<Vec<u8>>,
    /// The value follows as a dot-stuffed stream.
    pub stream: bool,
    /// The attribute was deleted.
    pub deleted: bool,
    /// When it last changed (UNIX time).
    pub last_change: Option<i64>,
    /// Its modseq.
    pub modseq: Option<u64>,
}

impl Item for Attribute {
    const KIND: ItemKind = ItemKind::Attribute;

    fn from_record(record: &Record) -> Result<Attribute, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        let attribute_type = match r.required("type")? {
            b"p" => AttributeType::Private,
            b"s" => AttributeType::Shared,
            other => {
                let shown = String::from_utf8_lossy(other);
                return Err(ItemError::new(Self::KIND, format!("Invalid type: {shown}")));
            }
        };
        Ok(Attribute {
            attribute_type,
            key: r.required_text("key")?,
            value: r.bytes("value").map(<[u8]>::to_vec),
            stream: r.flag("stream"),
            deleted: r.flag("deleted"),
            last_change: r.time("last_change")?,
            modseq: r.number("modseq")?,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put(
            "type",
            match self.attribute_type {
                AttributeType::Private => "p",
                AttributeType::Shared => "s",
            },
        );
        f.put("key", self.key.as_bytes());
        f.opt("value", self.value.as_deref());
        f.flag("stream", self.stream);
        f.flag("deleted", self.deleted);
        f.num("last_change", self.last_change);
        f.num("modseq", self.modseq);
        f.0
    }
}

/// What a `C` item says happened to a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeType {
    /// `s`: the mail exists (saved since the last sync, or every mail in a full one).
    #[default]
    Save,
    /// `e`: expunged.
    Expunge,
    /// `f`: flags changed.
    FlagChange,
}

/// `C`: one mail of the exporter's mailbox, or a change to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailChange {
    /// Save, expunge or flag change.
    pub change_type: ChangeType,
    /// The UID.
    pub uid: u32,
    /// The mail GUID (any string; `""` when the storage has none).
    pub guid: Option<String>,
    /// Dovecot's header hash (when GUIDs are not used; `""` when not computed).
    pub hdr_hash: Option<String>,
    /// The mail's modseq.
    pub modseq: Option<u64>,
    /// Its private modseq.
    pub pvt_modseq: Option<u64>,
    /// Flags added since the last sync (bits, see [`crate::proto::flags`]).
    pub add_flags: Option<u8>,
    /// Flags removed since the last sync.
    pub remove_flags: Option<u8>,
    /// The flags now (may include `\Recent`).
    pub final_flags: Option<u8>,
    /// Keywords are replaced rather than changed.
    pub keywords_reset: bool,
    /// Keyword changes: `+kw` added, `-kw` removed, `=kw` present, `&kw` added and
    /// present.
    pub keyword_changes: Vec<String>,
    /// Received date (only with `sync_since_timestamp`/`sync_until_timestamp`).
    pub received_timestamp: Option<u64>,
    /// Virtual size (`u64::MAX`: unknown).
    pub virtual_size: Option<u64>,
}

impl Item for MailChange {
    const KIND: ItemKind = ItemKind::MailChange;

    fn from_record(record: &Record) -> Result<MailChange, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        let change_type = match r.required("type")?.first() {
            Some(b's') => ChangeType::Save,
            Some(b'e') => ChangeType::Expunge,
            Some(b'f') => ChangeType::FlagChange,
            _ => {
                let shown = String::from_utf8_lossy(r.required("type")?).into_owned();
                return Err(ItemError::new(Self::KIND, format!("Invalid type: {shown}")));
            }
        };
        let keyword_changes = match r.bytes("keyword_changes") {
            None | Some([]) => Vec::new(),
            Some(value) => escape::split_tabescaped(value)
                .into_iter()
                .map(|kw| String::from_utf8(kw).map_err(|_| r.invalid("keyword_changes")))
                .collect::<Result<Vec<String>, ItemError>>()?,
        };
        Ok(MailChange {
            change_type,
            uid: r.required_number("uid")?,
            guid: r.text("guid")?,
            hdr_hash: r.text("hdr_hash")?,
            modseq: r.number("modseq")?,
            pvt_modseq: r.number("pvt_modseq")?,
            add_flags: r.hex("add_flags")?,
            remove_flags: r.hex("remove_flags")?,
            final_flags: r.hex("final_flags")?,
            keywords_reset: r.flag("keywords_reset"),
            keyword_changes,
            received_timestamp: r.hex("received_timestamp")?,
            virtual_size: r.hex("virtual_size")?,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.put(
            "type",
            match self.change_type {
                ChangeType::Save => "s",
                ChangeType::Expunge => "e",
                ChangeType::FlagChange => "f",
            },
        );
        f.num("uid", Some(self.uid));
        f.opt("guid", self.guid.as_deref());
        f.opt("hdr_hash", self.hdr_hash.as_deref());
        f.num("modseq", self.modseq);
        f.num("pvt_modseq", self.pvt_modseq);
        f.hex("add_flags", self.add_flags);
        f.hex("remove_flags", self.remove_flags);
        f.hex("final_flags", self.final_flags);
        f.flag("keywords_reset", self.keywords_reset);
        if !self.keyword_changes.is_empty() {
            f.put("keyword_changes", escape::join_tabescaped(&self.keyword_changes));
        }
        f.hex("received_timestamp", self.received_timestamp);
        f.hex("virtual_size", self.virtual_size);
        f.0
    }
}

/// `R`: the importer asks for a mail, by GUID or by UID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailRequest {
    /// The mail GUID.
    pub guid: Option<String>,
    /// The UID (used when `guid` is absent).
    pub uid: Option<u32>,
}

impl Item for MailRequest {
    const KIND: ItemKind = ItemKind::MailRequest;

    fn from_record(record: &Record) -> Result<MailRequest, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        Ok(MailRequest { guid: r.text("guid")?, uid: r.number("uid")? })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.opt("guid", self.guid.as_deref());
        f.num("uid", self.uid);
        f.0
    }
}

/// `M`: one mail; its body follows as a dot-stuffed stream when `stream` is set. A mail
/// asked for by UID comes with its `uid` (and `guid` `""`), one asked for by GUID with its
/// `guid` and no UID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mail {
    /// The mail GUID.
    pub guid: Option<String>,
    /// The UID.
    pub uid: Option<u32>,
    /// POP3 UIDL (`""`: none).
    pub pop3_uidl: Option<String>,
    /// Position in the POP3 listing.
    pub pop3_order: Option<u32>,
    /// Received date (UNIX time).
    pub received_date: Option<i64>,
    /// Save date (UNIX time).
    pub saved_date: Option<i64>,
    /// The body follows.
    pub stream: bool,
}

impl Item for Mail {
    const KIND: ItemKind = ItemKind::Mail;

    fn from_record(record: &Record) -> Result<Mail, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        Ok(Mail {
            guid: r.text("guid")?,
            uid: r.number("uid")?,
            pop3_uidl: r.text("pop3_uidl")?,
            pop3_order: r.number("pop3_order")?,
            received_date: r.time("received_date")?,
            saved_date: r.time("saved_date")?,
            stream: r.flag("stream"),
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.opt("guid", self.guid.as_deref());
        f.num("uid", self.uid);
        f.opt("pop3_uidl", self.pop3_uidl.as_deref());
        f.num("pop3_order", self.pop3_order);
        f.num("received_date", self.received_date);
        f.num("saved_date", self.saved_date);
        f.flag("stream", self.stream);
        f.0
    }
}

/// `F`: how the slave's side ended (bare `F`: success).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Finish {
    /// The error text.
    pub error: Option<String>,
    /// Dovecot's `enum mail_error` (1 temp, 2 unavailable, 3 not possible, 4 params,
    /// 5 perm, 6 no quota, 7 not found, 8 exists, 9 expunged, 10 in use, 11 conversion,
    /// 12 invalid data, 13 limit, 14 lookup aborted).
    pub mail_error: Option<i32>,
    /// The next run must be a full one.
    pub require_full_resync: bool,
}

impl Item for Finish {
    const KIND: ItemKind = ItemKind::Finish;

    fn from_record(record: &Record) -> Result<Finish, ItemError> {
        let r = Reader::new(record, Self::KIND)?;
        let mail_error = match r.bytes("mail_error") {
            None => None,
            Some(value) => Some(
                parse_time(value)
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| r.invalid("mail_error"))?,
            ),
        };
        Ok(Finish {
            error: r.bytes("error").map(|e| String::from_utf8_lossy(e).into_owned()),
            mail_error,
            require_full_resync: r.flag("require_full_resync"),
        })
    }

    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut f = Fields::default();
        f.opt("error", self.error.as_deref());
        f.num("mail_error", self.mail_error.filter(|&e| e != 0));
        f.flag("require_full_resync", self.require_full_resync);
        f.0
    }
}

/// Mail flag bits of `C` items (`enum mail_flags`).
pub mod flags {
    /// `\Answered`.
    pub const ANSWERED: u8 = 0x01;
    /// `\Flagged`.
    pub const FLAGGED: u8 = 0x02;
    /// `\Deleted`.
    pub const DELETED: u8 = 0x04;
    /// `\Seen`.
    pub const SEEN: u8 = 0x08;
    /// `\Draft`.
    pub const DRAFT: u8 = 0x10;
    /// `\Recent` (session state: never copy it).
    pub const RECENT: u8 = 0x20;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::proto::schema::Schema;

    fn record(kind: ItemKind, line: &[u8]) -> Record {
        Record::decode(Arc::new(Schema::dovecot_2_3(kind)), line).expect("decodes")
    }

    #[test]
    fn numbers_follow_dovecot() {
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_time(b"-5"), Some(-5));
        assert_eq!(parse_hex(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex(b"2A"), Some(42));
        assert_eq!(parse_hex(b"x"), None);
    }

    #[test]
    fn a_change_from_t1() {
        let line = b"s\t2\t28e5ea205ba4146b5341000083ecc375\t\x02\t6\t\x02\t\x02\t\x02\t2a\t\x02\t&$Label1\x01t&Junk\t\x02\tffffffffffffffff";
        let change = MailChange::from_record(&record(ItemKind::MailChange, line)).expect("valid");
        assert_eq!(change.uid, 2);
        assert_eq!(change.final_flags, Some(flags::SEEN | flags::FLAGGED | 0x20));
        assert_eq!(change.keyword_changes, ["&$Label1", "&Junk"]);
        assert_eq!(change.virtual_size, Some(u64::MAX));
        assert_eq!(change.hdr_hash, None);
    }

    #[test]
    fn bad_values_are_item_errors() {
        let bad_uid = MailChange::from_record(&record(ItemKind::MailChange, b"s\tx"));
        assert_eq!(bad_uid.map_err(|e| e.to_string()), Err("mail_change: Invalid uid".into()));
        let bad_type = MailChange::from_record(&record(ItemKind::MailChange, b"q\t1"));
        assert!(bad_type.is_err());
        let big_flags = MailChange::from_record(&record(
            ItemKind::MailChange,
            b"s\t1\t\x02\t\x02\t\x02\t\x02\t\x02\t\x02\t100",
        ));
        assert_eq!(big_flags.map_err(|e| e.reason), Err("Invalid final_flags".into()));
        let bad_sync =
            Handshake::from_record(&record(ItemKind::Handshake, b"h\t\x02\t\x02\t\x02\tz"));
        assert_eq!(bad_sync.map_err(|e| e.reason), Err("Unknown sync_type: z".into()));
        let node = TreeNode::from_record(&record(ItemKind::TreeNode, b"\x01\x01\ty"));
        assert!(node.is_ok(), "an escaped byte that stands for itself");
        let deletes =
            MailboxDeletes::from_record(&record(ItemKind::MailboxDelete, b"/\t%\tnot-a-guid 1"));
        assert_eq!(deletes.map_err(|e| e.reason), Err("Invalid mailboxes".into()));
    }

    #[test]
    fn tree_names_are_components() {
        let node =
            TreeNode::from_record(&record(ItemKind::TreeNode, b"Foo\x01tBar\ty")).expect("valid");
        assert_eq!(node.name, ["Foo", "Bar"]);
        assert_eq!(node.existence, Existence::Exists);
        assert_eq!(node.mailbox_guid, None);
    }
}
