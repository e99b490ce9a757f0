//! Item types and their key schemas (`dsync-ibc-stream.c`, `items[]`).
//!
//! At the start each side sends one line per item type listing the keys of that type in
//! the order its values will follow; a receiver decodes each item by the *sender's* keys.
//! [`SchemaSet::dovecot_2_3`] are Dovecot 2.3's lines, byte for byte, which is what we
//! send.

use std::fmt;
use std::sync::Arc;

use super::escape;

/// The kinds of items (one byte each on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ItemKind {
    /// `H`: the handshake settings.
    Handshake,
    /// `S`: the saved state of one mailbox.
    MailboxState,
    /// `N`: one node of the mailbox tree.
    TreeNode,
    /// `D`: the mailbox deletion log and the hierarchy separator.
    MailboxDelete,
    /// `B`: one mailbox's status.
    Mailbox,
    /// `A`: one mailbox attribute (metadata; Sieve scripts travel as these).
    Attribute,
    /// `C`: one mail change (save, expunge, flag change).
    MailChange,
    /// `R`: a request for a mail body.
    MailRequest,
    /// `M`: one mail with its body.
    Mail,
    /// `F`: the end of the conversation, with the slave's error if any.
    Finish,
    /// `c`: one cache field (only nested inside `B`).
    CacheField,
}

impl ItemKind {
    /// Every kind, in the order Dovecot sends the schema lines.
    pub const ALL: [ItemKind; 11] = [
        ItemKind::Handshake,
        ItemKind::MailboxState,
        ItemKind::TreeNode,
        ItemKind::MailboxDelete,
        ItemKind::Mailbox,
        ItemKind::Attribute,
        ItemKind::MailChange,
        ItemKind::MailRequest,
        ItemKind::Mail,
        ItemKind::Finish,
        ItemKind::CacheField,
    ];

    /// The kind's byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            ItemKind::Handshake => b'H',
            ItemKind::MailboxState => b'S',
            ItemKind::TreeNode => b'N',
            ItemKind::MailboxDelete => b'D',
            ItemKind::Mailbox => b'B',
            ItemKind::Attribute => b'A',
            ItemKind::MailChange => b'C',
            ItemKind::MailRequest => b'R',
            ItemKind::Mail => b'M',
            ItemKind::Finish => b'F',
            ItemKind::CacheField => b'c',
        }
    }

    /// The kind a byte stands for.
    pub fn from_byte(byte: u8) -> Option<ItemKind> {
        ItemKind::ALL.into_iter().find(|kind| kind.byte() == byte)
    }

    /// Dovecot's name of the kind (used in its error messages).
    pub const fn name(self) -> &'static str {
        match self {
            ItemKind::Handshake => "handshake",
            ItemKind::MailboxState => "mailbox_state",
            ItemKind::TreeNode => "mailbox_tree_node",
            ItemKind::MailboxDelete => "mailbox_delete",
            ItemKind::Mailbox => "mailbox",
            ItemKind::Attribute => "mailbox_attribute",
            ItemKind::MailChange => "mail_change",
            ItemKind::MailRequest => "mail_request",
            ItemKind::Mail => "mail",
            ItemKind::Finish => "finish",
            ItemKind::CacheField => "mailbox_cache_field",
        }
    }

    /// Keys that must be present (not NULL) in every item of this kind.
    pub const fn required_keys(self) -> &'static [&'static str] {
        match self {
            ItemKind::Handshake => &["hostname"],
            ItemKind::MailboxState => &[
                "mailbox_guid",
                "last_uidvalidity",
                "last_common_uid",
                "last_common_modseq",
                "last_common_pvt_modseq",
            ],
            ItemKind::TreeNode => &["name", "existence"],
            ItemKind::MailboxDelete => &["hierarchy_sep"],
            ItemKind::Mailbox => &[
                "mailbox_guid",
                "uid_validity",
                "uid_next",
                "messages_count",
                "first_recent_uid",
                "highest_modseq",
                "highest_pvt_modseq",
            ],
            ItemKind::Attribute => &["type", "key"],
            ItemKind::MailChange => &["type", "uid"],
            ItemKind::MailRequest | ItemKind::Mail | ItemKind::Finish => &[],
            ItemKind::CacheField => &["name", "decision"],
        }
    }

    /// The other keys Dovecot 2.3 knows, in its order.
    pub const fn optional_keys(self) -> &'static [&'static str] {
        match self {
            ItemKind::Handshake => &[
                "sync_ns_prefix",
                "sync_box",
                "sync_box_guid",
                "sync_type",
                "debug",
                "sync_visible_namespaces",
                "exclude_mailboxes",
                "send_mail_requests",
                "backup_send",
                "backup_recv",
                "lock_timeout",
                "no_mail_sync",
                "no_backup_overwrite",
                "purge_remote",
                "no_notify",
                "sync_since_timestamp",
                "sync_max_size",
                "sync_flags",
                "sync_until_timestamp",
                "virtual_all_box",
                "empty_hdr_workaround",
                "import_commit_msgs_interval",
                "hashed_headers",
                "alt_char",
            ],
            ItemKind::MailboxState => &["last_messages_count", "changes_during_sync"],
            ItemKind::TreeNode => &[
                "mailbox_guid",
                "uid_validity",
                "uid_next",
                "last_renamed_or_created",
                "subscribed",
                "last_subscription_change",
            ],
            ItemKind::MailboxDelete => &["escape_char", "mailboxes", "dirs", "unsubscribes"],
            ItemKind::Mailbox => &[
                "mailbox_lost",
                "mailbox_ignore",
                "cache_fields",
                "have_guids",
                "have_save_guids",
                "have_only_guid128",
            ],
            ItemKind::Attribute => &["value", "stream", "deleted", "last_change", "modseq"],
            ItemKind::MailChange => &[
                "guid",
                "hdr_hash",
                "modseq",
                "pvt_modseq",
                "add_flags",
                "remove_flags",
                "final_flags",
                "keywords_reset",
                "keyword_changes",
                "received_timestamp",
                "virtual_size",
            ],
            ItemKind::MailRequest => &["guid", "uid"],
            ItemKind::Mail => {
                &["guid", "uid", "pop3_uidl", "pop3_order", "received_date", "saved_date", "stream"]
            }
            ItemKind::Finish => &["error", "mail_error", "require_full_resync"],
            ItemKind::CacheField => &["last_used"],
        }
    }

    /// The lowest protocol minor version in which the kind exists: a peer speaking at
    /// least that version must announce its schema.
    pub const fn min_minor_version(self) -> u32 {
        match self {
            ItemKind::Attribute => 1,
            ItemKind::Finish => 3,
            _ => 0,
        }
    }

    /// Items of this kind may be followed by a dot-stuffed stream (when their `stream`
    /// key is present).
    pub const fn may_have_stream(self) -> bool {
        matches!(self, ItemKind::Attribute | ItemKind::Mail)
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keys of one item kind, in the order a sender puts their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    kind: ItemKind,
    keys: Vec<Box<str>>,
}

impl Schema {
    /// A schema with `keys` in that order.
    pub fn new<I, S>(kind: ItemKind, keys: I) -> Schema
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        Schema { kind, keys: keys.into_iter().map(Into::into).collect() }
    }

    /// Dovecot 2.3's schema for `kind`: required keys, then optional ones.
    pub fn dovecot_2_3(kind: ItemKind) -> Schema {
        Schema::new(kind, kind.required_keys().iter().chain(kind.optional_keys()).copied())
    }

    /// The item kind.
    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(AsRef::as_ref)
    }

    /// The position of `key`, if the schema has it.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.as_ref() == key)
    }

    /// Reads a schema line (without its kind byte and line end): tab-escaped keys. A
    /// required key missing from it is an error, as in Dovecot.
    pub fn parse(kind: ItemKind, line: &[u8]) -> Result<Schema, String> {
        let keys: Vec<Box<str>> = escape::split_tabescaped(line)
            .into_iter()
            .map(|key| String::from_utf8_lossy(&key).into_owned().into_boxed_str())
            .collect();
        let schema = Schema { kind, keys };
        for required in kind.required_keys() {
            if schema.position(required).is_none() {
                return Err(format!("Header missing required field {required}"));
            }
        }
        Ok(schema)
    }

    /// Appends the schema line: kind byte, tab-escaped keys, LF.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind.byte());
        out.extend_from_slice(&escape::join_tabescaped(self.keys()));
        out.push(b'\n');
    }
}

/// One schema per item kind: ours (what we send by) or the peer's (what we decode by).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaSet {
    schemas: Vec<Arc<Schema>>,
}

impl SchemaSet {
    /// No schemas yet.
    pub fn empty() -> SchemaSet {
        SchemaSet::default()
    }

    /// Dovecot 2.3's schemas for every kind.
    pub fn dovecot_2_3() -> SchemaSet {
        let mut set = SchemaSet::empty();
        for kind in ItemKind::ALL {
            set.insert(Schema::dovecot_2_3(kind));
        }
        set
    }

    /// Adds or replaces the schema of its kind.
    pub fn insert(&mut self, schema: Schema) {
        let schema = Arc::new(schema);
        match self.schemas.iter_mut().find(|s| s.kind == schema.kind) {
            Some(slot) => *slot = schema,
            None => self.schemas.push(schema),
        }
    }

    /// The schema of `kind`, if known.
    pub fn get(&self, kind: ItemKind) -> Option<&Arc<Schema>> {
        self.schemas.iter().find(|s| s.kind == kind)
    }

    /// The kinds a peer speaking protocol minor `minor` must have announced but did not
    /// (Dovecot's "Remote didn't handshake deserializer for …").
    pub fn missing_for(&self, minor: u32) -> Vec<ItemKind> {
        ItemKind::ALL
            .into_iter()
            .filter(|kind| minor >= kind.min_minor_version() && self.get(*kind).is_none())
            .collect()
    }

    /// Appends the schema lines in Dovecot's order, then the `.` line that ends them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for kind in ItemKind::ALL {
            if let Some(schema) = self.get(kind) {
                schema.encode(out);
            }
        }
        out.extend_from_slice(b".\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_schema_lines_are_byte_identical() {
        let mut out = Vec::new();
        SchemaSet::dovecot_2_3().encode(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(
            lines[6],
            "Ctype\tuid\tguid\thdr_hash\tmodseq\tpvt_modseq\tadd_flags\tremove_flags\tfinal_flags\tkeywords_reset\tkeyword_changes\treceived_timestamp\tvirtual_size"
        );
        assert_eq!(lines[10], "cname\tdecision\tlast_used");
        assert_eq!(lines[11], ".");
    }

    #[test]
    fn a_schema_without_a_required_key_is_refused() {
        assert_eq!(
            Schema::parse(ItemKind::MailChange, b"uid\tguid"),
            Err("Header missing required field type".to_owned())
        );
        let schema = Schema::parse(ItemKind::MailChange, b"uid\ttype\tnew_key").expect("valid");
        assert_eq!(schema.position("type"), Some(1));
        assert!(SchemaSet::empty().missing_for(0).contains(&ItemKind::Mail));
        assert!(!SchemaSet::empty().missing_for(0).contains(&ItemKind::Finish));
    }
}
