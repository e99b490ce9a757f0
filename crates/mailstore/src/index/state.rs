//! A mailbox index as Dovecot's sync code builds it (`mail-index-sync-update.c`,
//! `mail-index-sync-ext.c`, `mail-index-sync-keywords.c`, `mail-index-modseq.c`): the base
//! header, the messages with flags, keywords and modseqs, the extensions' headers, and the
//! log's modseq, changed record by record as the transaction log is replayed.
//!
//! What Dovecot would take for corruption (an append below the next UID, a modseq update
//! before modseqs exist, an extension update without an introduction, a header write out
//! of range) is an error here: such an index is not read further, and never written to.

use std::collections::HashSet;
use std::sync::Arc;

use super::log::{RawRecord, kind, le16, le32, le64};

/// Size of the base header (`struct mail_index_header`) in index format 7.3.
pub(crate) const BASE_HEADER_SIZE: usize = 120;

/// Offsets of base header fields this crate reads or writes.
pub(crate) mod field {
    /// `uid_validity`.
    pub(crate) const UID_VALIDITY: u16 = 24;
    /// `next_uid`.
    pub(crate) const NEXT_UID: u16 = 28;
    /// `log_file_tail_offset` (internal bookkeeping; header updates never change it).
    pub(crate) const LOG_FILE_TAIL_OFFSET: usize = 64;
}

/// System flag bits as stored (`enum mail_flags`): `\Answered` … `\Draft`.
pub(crate) const FLAGS_MASK: u8 = 0x1f;
/// `MAIL_INDEX_MAIL_FLAG_BACKEND`: sdbox's "this mail is in alternate storage".
pub(crate) const FLAG_BACKEND: u8 = 0x40;

/// Extension names this crate knows.
pub(crate) mod ext {
    /// Keyword names and per-message bitmaps; created only by keyword updates.
    pub(crate) const KEYWORDS: &str = "keywords";
    /// Per-message modseqs and the highest modseq.
    pub(crate) const MODSEQ: &str = "modseq";
    /// sdbox's mailbox header: rebuild count, mailbox GUID, POP3 flags.
    pub(crate) const DBOX_HDR: &str = "dbox-hdr";
    /// The highest UID that has a POP3 UIDL (`struct mailbox_index_pop3_uidl`).
    pub(crate) const POP3_UIDL: &str = "hdr-pop3-uidl";
}

/// One message of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// UID.
    pub(crate) uid: u32,
    /// Flag byte: system flags and backend bits.
    pub(crate) flags: u8,
    /// Indexes into [`IndexState::keywords`], ascending.
    pub(crate) keywords: Vec<u32>,
    /// Its modseq (0: not tracked yet; reads as the highest modseq, as in Dovecot).
    pub(crate) modseq: u64,
}

/// An extension: a named header, and per-message data this model keeps only for modseqs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ext {
    /// Its name.
    pub(crate) name: String,
    /// Changes when the extension's data is invalidated.
    pub(crate) reset_id: u32,
    /// The header bytes (`hdr_size` of them).
    pub(crate) header: Vec<u8>,
    /// Size of the per-message record.
    pub(crate) record_size: u16,
    /// Alignment of the per-message record.
    pub(crate) record_align: u16,
}

/// A message the log says was expunged (an `EXTERNAL` expunge: done, not requested).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expunged {
    /// Its UID.
    pub(crate) uid: u32,
    /// Its GUID as `EXPUNGE_GUID` records carry it (`mail_generate_guid_128_hash`);
    /// `None` for a plain `EXPUNGE` record.
    pub(crate) guid_128: Option<[u8; 16]>,
}

/// Which extension later `EXT_*` records apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    /// None introduced yet.
    None,
    /// This one; `ignore` when its reset id did not match (only resets apply then).
    Ext { index: usize, ignore: bool },
}

/// A mailbox index: what `dovecot.index` holds, brought up to date by log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexState {
    /// The base header's bytes.
    pub(crate) header: [u8; BASE_HEADER_SIZE],
    /// Messages in UID order. Shared between clones (the log reader's cached state, the
    /// state it returns, a mailbox's last view: three copies of every record otherwise)
    /// and copied only when a clone changes them (`Arc::make_mut`).
    pub(crate) messages: Arc<Vec<Message>>,
    /// Keyword names by index.
    pub(crate) keywords: Vec<String>,
    /// Extensions in the order the index knows them.
    pub(crate) exts: Vec<Ext>,
    current: Current,
    /// The log's modseq after the last record read (`mail_transaction_update_modseq`).
    pub(crate) log_modseq: u64,
    /// The messages expunged by the records replayed (not those of a snapshot it started
    /// from), in log order: the history Dovecot's dsync reads to tell an expunge from a
    /// message the other side never had.
    pub(crate) expunged: Vec<Expunged>,
    /// Per UID, where in the log chain (file sequence in the high 32 bits, offset in the
    /// low) the last visible flag change the replayed records made to it is: copies of
    /// one store that diverged share the positions before the split, so the later
    /// position tells which side changed the flags since (what Dovecot's modseqs tell
    /// its dsync).
    pub(crate) flag_changes: std::collections::BTreeMap<u32, u64>,
    /// The sequence of the log file whose records are being replayed.
    pub(crate) file_seq: u32,
    /// True for an index read without its messages ([`IndexState::headers_only`]):
    /// `messages`, `expunged` and `flag_changes` stay empty, everything else is what the
    /// full read has.
    pub(crate) headers_only: bool,
    /// For an index read for a few messages ([`Coverage::Uids`]): their UIDs, ascending.
    /// `messages`, `expunged` and `flag_changes` then hold only those messages, each as
    /// the full read has it; everything else is what the full read has.
    pub(crate) only: Option<Arc<[u32]>>,
}

/// Which messages a read of the index keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Coverage<'a> {
    /// None ([`IndexState::without_messages`]).
    Headers,
    /// Those with these UIDs (ascending) only: what a change to a few messages needs,
    /// without a record of every message.
    Uids(&'a [u32]),
    /// Every message.
    All,
}

impl Default for IndexState {
    fn default() -> IndexState {
        let mut header = [0u8; BASE_HEADER_SIZE];
        // next_uid starts at 1 in a new index.
        header[usize::from(field::NEXT_UID)] = 1;
        IndexState {
            header,
            messages: Arc::new(Vec::new()),
            keywords: Vec::new(),
            exts: Vec::new(),
            current: Current::None,
            log_modseq: 0,
            expunged: Vec::new(),
            flag_changes: std::collections::BTreeMap::new(),
            file_seq: 0,
            headers_only: false,
            only: None,
        }
    }
}

/// The flag update Dovecot counts for modseqs (`MAIL_TRANSACTION_FLAG_UPDATE_IS_INTERNAL`
/// is the opposite): a change of a system flag, or an explicit modseq increase.
fn visible_flag_update(add: u8, remove: u8, modseq_inc: u8) -> bool {
    (add | remove) & FLAGS_MASK != 0 || modseq_inc != 0
}

/// `mail_transaction_update_modseq`: the log's modseq after `record`.
pub(crate) fn modseq_after(record: &RawRecord<'_>, current: u64) -> u64 {
    let payload = record.payload;
    if current == 0 {
        // Not tracked until the modseq extension is introduced.
        let starts = record.base_kind() == kind::EXT_INTRO
            && payload.len() >= 20
            && usize::from(le16(payload, 18)) == ext::MODSEQ.len()
            && payload.get(20..20 + ext::MODSEQ.len()) == Some(ext::MODSEQ.as_bytes());
        return u64::from(starts);
    }
    match record.base_kind() {
        kind::EXPUNGE | kind::EXPUNGE_GUID if !record.external() => current,
        kind::EXPUNGE
        | kind::EXPUNGE_GUID
        | kind::APPEND
        | kind::KEYWORD_UPDATE
        | kind::KEYWORD_RESET
        | kind::ATTRIBUTE_UPDATE => current.saturating_add(1),
        kind::FLAG_UPDATE => {
            let visible = payload
                .chunks_exact(12)
                .any(|entry| visible_flag_update(entry[8], entry[9], entry[10]));
            current.saturating_add(u64::from(visible))
        }
        kind::MODSEQ_UPDATE => payload
            .chunks_exact(12)
            .map(|entry| u64::from(le32(entry, 4)) | (u64::from(le32(entry, 8)) << 32))
            .fold(current, u64::max),
        _ => current,
    }
}

impl IndexState {
    /// An empty index whose log's modseq starts at `log_modseq` (a new log file's
    /// `initial_modseq`).
    pub(crate) fn starting_at(log_modseq: u64) -> IndexState {
        IndexState { log_modseq, ..IndexState::default() }
    }

    /// This index without its messages, and replaying only what is not about them from now
    /// on: the base header, the extensions with their headers, the keyword names and the
    /// log's modseq stay exactly what a full replay makes of them (none of those depends on
    /// the messages), in memory that does not grow with the mailbox.
    pub(crate) fn without_messages(mut self) -> IndexState {
        self.messages = Arc::new(Vec::new());
        self.expunged = Vec::new();
        self.flag_changes = std::collections::BTreeMap::new();
        self.headers_only = true;
        self.only = None;
        self
    }

    /// A new (empty) index that keeps the messages `coverage` says.
    pub(crate) fn covering(self, coverage: Coverage<'_>) -> IndexState {
        match coverage {
            Coverage::Headers => self.without_messages(),
            Coverage::Uids(uids) => IndexState { only: Some(Arc::from(uids)), ..self },
            Coverage::All => self,
        }
    }

    /// True when this index holds every message `coverage` asks for, each as a full read
    /// has it.
    pub(crate) fn covers(&self, coverage: Coverage<'_>) -> bool {
        match (coverage, &self.only) {
            (Coverage::Headers, _) => true,
            _ if self.headers_only => false,
            (_, None) => true,
            (Coverage::All, Some(_)) => false,
            (Coverage::Uids(wanted), Some(kept)) => {
                wanted.iter().all(|uid| kept.binary_search(uid).is_ok())
            }
        }
    }

    /// True when the message `uid` is kept (see [`Self::only`]).
    pub(crate) fn keeps(&self, uid: u32) -> bool {
        !self.headers_only && self.only.as_ref().is_none_or(|only| only.binary_search(&uid).is_ok())
    }

    /// `uid_validity` (0: not set yet).
    pub(crate) fn uid_validity(&self) -> u32 {
        le32(&self.header, usize::from(field::UID_VALIDITY))
    }

    /// `next_uid`.
    pub(crate) fn next_uid(&self) -> u32 {
        le32(&self.header, usize::from(field::NEXT_UID))
    }

    /// The extension named `name`, with its position.
    pub(crate) fn ext(&self, name: &str) -> Option<(usize, &Ext)> {
        self.exts.iter().enumerate().find(|(_, ext)| ext.name == name)
    }

    /// The highest modseq IMAP reports: the modseq extension's when modseqs are tracked
    /// (never below the log's), else the log's.
    pub(crate) fn highest_modseq(&self) -> u64 {
        let header = self
            .ext(ext::MODSEQ)
            .and_then(|(_, ext)| ext.header.get(..8).map(|b| le64(b, 0)))
            .unwrap_or(0);
        header.max(self.log_modseq).max(1)
    }

    /// A message's modseq as Dovecot reports it (an untracked 0 reads as the highest).
    pub(crate) fn modseq_of(&self, message: &Message) -> u64 {
        if message.modseq == 0 { self.highest_modseq() } else { message.modseq }
    }

    /// The position of the message with `uid`, if it exists.
    pub(crate) fn position(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// The positions of the messages with UIDs in `uid1..=uid2`.
    fn range(&self, uid1: u32, uid2: u32) -> std::ops::Range<usize> {
        let start = self.messages.partition_point(|m| m.uid < uid1);
        let end = self.messages.partition_point(|m| m.uid <= uid2);
        start..end.max(start)
    }

    /// Whether modseqs are tracked per message (the modseq extension exists).
    fn tracks_modseqs(&self) -> bool {
        self.ext(ext::MODSEQ).is_some()
    }

    /// Raises the modseq of the messages at `positions` to the log's.
    fn touch(&mut self, positions: std::ops::Range<usize>) {
        if !self.tracks_modseqs() {
            return;
        }
        let modseq = self.log_modseq;
        for message in &mut Arc::make_mut(&mut self.messages)[positions] {
            message.modseq = message.modseq.max(modseq);
        }
    }

    /// Applies one record, as Dovecot's index sync does: the log's modseq first, then the
    /// change.
    pub(crate) fn apply(&mut self, record: &RawRecord<'_>) -> Result<(), String> {
        self.log_modseq = modseq_after(record, self.log_modseq);
        let payload = record.payload;
        if payload.is_empty() {
            return Err(format!("Empty record contents (type=0x{:x})", record.base_kind()));
        }
        match record.base_kind() {
            kind::APPEND => self.append(payload),
            kind::EXPUNGE => {
                if record.kind & kind::EXPUNGE_PROT != kind::EXPUNGE_PROT {
                    return Err(String::from("expunge record missing protection mask"));
                }
                if record.external() {
                    let mut gone = Vec::new();
                    for entry in exact(payload, 8, "expunge")? {
                        gone.push(self.range(le32(entry, 0), le32(entry, 4)));
                    }
                    let mut remove = vec![false; self.messages.len()];
                    for range in gone {
                        for message in &self.messages[range.clone()] {
                            self.expunged.push(Expunged { uid: message.uid, guid_128: None });
                        }
                        remove[range].fill(true);
                    }
                    let mut flags = remove.into_iter();
                    Arc::make_mut(&mut self.messages).retain(|_| !flags.next().unwrap_or(false));
                }
                Ok(())
            }
            kind::EXPUNGE_GUID => {
                if record.kind & kind::EXPUNGE_PROT != kind::EXPUNGE_PROT {
                    return Err(String::from("expunge guid record missing protection mask"));
                }
                let entries = exact(payload, 20, "expunge guid")?;
                if entries.clone().any(|entry| le32(entry, 0) == 0) {
                    return Err(String::from("Expunge guid record with uid=0"));
                }
                if record.external() {
                    let mut uids = HashSet::new();
                    for entry in entries {
                        let uid = le32(entry, 0);
                        if self.position(uid).is_some() && uids.insert(uid) {
                            let mut guid_128 = [0u8; 16];
                            guid_128.copy_from_slice(&entry[4..20]);
                            self.expunged.push(Expunged { uid, guid_128: Some(guid_128) });
                        }
                    }
                    Arc::make_mut(&mut self.messages).retain(|m| !uids.contains(&m.uid));
                }
                Ok(())
            }
            kind::FLAG_UPDATE => {
                for entry in exact(payload, 12, "flag update")? {
                    let (add, remove) = (entry[8], entry[9]);
                    let range = self.range(le32(entry, 0), le32(entry, 4));
                    for message in &mut Arc::make_mut(&mut self.messages)[range.clone()] {
                        message.flags = (message.flags & !remove) | add;
                    }
                    if visible_flag_update(add, remove, entry[10]) {
                        let position = u64::from(self.file_seq) << 32
                            | u64::try_from(record.offset).unwrap_or(u64::from(u32::MAX));
                        for message in &self.messages[range.clone()] {
                            self.flag_changes.insert(message.uid, position);
                        }
                        self.touch(range);
                    }
                }
                Ok(())
            }
            kind::HEADER_UPDATE => self.header_update(payload),
            kind::EXT_INTRO => self.ext_intro(payload),
            kind::EXT_RESET => self.ext_reset(payload),
            kind::EXT_HDR_UPDATE => self.ext_hdr_update(payload, false),
            kind::EXT_HDR_UPDATE32 => self.ext_hdr_update(payload, true),
            kind::EXT_REC_UPDATE => self.ext_rec_update(payload),
            kind::EXT_ATOMIC_INC => self.current_ext("Extension record updated").map(|_| ()),
            kind::KEYWORD_UPDATE => self.keyword_update(payload),
            kind::KEYWORD_RESET => {
                for entry in exact(payload, 8, "keyword reset")? {
                    let range = self.range(le32(entry, 0), le32(entry, 4));
                    for message in &mut Arc::make_mut(&mut self.messages)[range.clone()] {
                        message.keywords.clear();
                    }
                    self.touch(range);
                }
                Ok(())
            }
            kind::MODSEQ_UPDATE => {
                for entry in exact(payload, 12, "modseq update")? {
                    let uid = le32(entry, 0);
                    if uid == 0 {
                        continue;
                    }
                    if !self.tracks_modseqs() {
                        return Err(String::from("modseqs updated before they were enabled"));
                    }
                    let modseq = u64::from(le32(entry, 4)) | (u64::from(le32(entry, 8)) << 32);
                    if let Some(position) = self.position(uid) {
                        let message = &mut Arc::make_mut(&mut self.messages)[position];
                        message.modseq = message.modseq.max(modseq);
                    }
                }
                Ok(())
            }
            kind::INDEX_DELETED
            | kind::INDEX_UNDELETED
            | kind::BOUNDARY
            | kind::ATTRIBUTE_UPDATE => Ok(()),
            other => Err(format!("Unknown transaction record type 0x{other:x}")),
        }
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        for entry in exact(payload, 8, "append")? {
            let uid = le32(entry, 0);
            let next = self.next_uid();
            if uid < next || uid == 0 {
                return Err(format!("Append with UID {uid}, but next_uid = {next}"));
            }
            if uid == u32::MAX {
                // Dovecot's next_uid would wrap to 0 (`rec->uid + 1`).
                return Err(format!("Append with UID {uid}: no next UID after it"));
            }
            if self.keeps(uid) {
                Arc::make_mut(&mut self.messages).push(Message {
                    uid,
                    flags: entry[4],
                    keywords: Vec::new(),
                    modseq: 0,
                });
                let position = self.messages.len() - 1;
                self.touch(position..position + 1);
            }
            self.set_header_u32(field::NEXT_UID, uid.saturating_add(1));
        }
        Ok(())
    }

    fn set_header_u32(&mut self, offset: u16, value: u32) {
        let offset = usize::from(offset);
        self.header[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn header_update(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut at = 0;
        while at + 4 <= payload.len() {
            let offset = usize::from(le16(payload, at));
            let size = usize::from(le16(payload, at + 2));
            let data = payload
                .get(at + 4..at + 4 + size)
                .ok_or_else(|| String::from("header update runs past its record"))?;
            if offset >= BASE_HEADER_SIZE || offset + size > BASE_HEADER_SIZE {
                return Err(format!(
                    "Header update outside range: {offset} + {size} > {BASE_HEADER_SIZE}"
                ));
            }
            let next_uid = self.next_uid();
            let tail =
                self.header[field::LOG_FILE_TAIL_OFFSET..field::LOG_FILE_TAIL_OFFSET + 4].to_vec();
            self.header[offset..offset + size].copy_from_slice(data);
            // next_uid never shrinks (Dovecot ignores such updates); the tail offset is
            // the index's own bookkeeping.
            if self.next_uid() < next_uid {
                self.set_header_u32(field::NEXT_UID, next_uid);
            }
            self.header[field::LOG_FILE_TAIL_OFFSET..field::LOG_FILE_TAIL_OFFSET + 4]
                .copy_from_slice(&tail);
            at = (at + 4 + size + 3) & !3;
        }
        Ok(())
    }

    fn ext_intro(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut at = 0;
        while at + 20 <= payload.len() {
            let ext_id = le32(payload, at);
            let reset_id = le32(payload, at + 4);
            let hdr_size = le32(payload, at + 8);
            let record_size = le16(payload, at + 12);
            let record_align = le16(payload, at + 14);
            let no_shrink = le16(payload, at + 16) & 1 != 0;
            let name_size = usize::from(le16(payload, at + 18));
            let name = payload
                .get(at + 20..at + 20 + name_size)
                .ok_or_else(|| String::from("ext intro: name_size too large"))?;
            at = (at + 20 + name_size + 3) & !3;
            self.current = Current::None;
            let index = if ext_id == u32::MAX {
                if name.is_empty() {
                    return Err(String::from("Extension introduction without id or name"));
                }
                let name = std::str::from_utf8(name)
                    .map_err(|_| String::from("extension name is not UTF-8"))?;
                if name == ext::KEYWORDS {
                    return Err(String::from("Extension introduction for keywords"));
                }
                self.ext(name).map(|(index, _)| index).ok_or(name)
            } else {
                let index = usize::try_from(ext_id).unwrap_or(usize::MAX);
                if index >= self.exts.len() {
                    return Err(format!("Extension introduction for unknown id {ext_id}"));
                }
                if self.exts[index].name == ext::KEYWORDS {
                    return Err(String::from("Extension introduction for keywords"));
                }
                Ok(index)
            };
            let hdr_size = usize::try_from(hdr_size).unwrap_or(usize::MAX);
            if hdr_size > 1 << 24 {
                return Err(format!("Broken extension introduction: header size {hdr_size}"));
            }
            match index {
                Ok(index) => {
                    let ext = &mut self.exts[index];
                    if ext.reset_id == reset_id {
                        resize(ext, hdr_size, record_size, record_align, no_shrink);
                        self.current = Current::Ext { index, ignore: false };
                    } else {
                        self.current = Current::Ext { index, ignore: true };
                    }
                }
                Err(name) => {
                    self.exts.push(Ext {
                        name: name.to_string(),
                        reset_id,
                        header: vec![0; hdr_size],
                        record_size,
                        record_align,
                    });
                    self.current = Current::Ext { index: self.exts.len() - 1, ignore: false };
                }
            }
        }
        Ok(())
    }

    /// The extension `EXT_*` records apply to now; `None` when it is to be ignored.
    fn current_ext(&self, what: &str) -> Result<Option<usize>, String> {
        match self.current {
            Current::None => Err(format!("{what} without intro prefix")),
            Current::Ext { ignore: true, .. } => Ok(None),
            Current::Ext { index, ignore: false } => Ok(Some(index)),
        }
    }

    fn ext_reset(&mut self, payload: &[u8]) -> Result<(), String> {
        let Current::Ext { index, .. } = self.current else {
            return Err(String::from("Extension reset without intro prefix"));
        };
        if payload.len() < 4 {
            return Err(String::from("ext reset: invalid record size"));
        }
        let preserve = payload.get(4).copied().unwrap_or(0) != 0;
        let ext = &mut self.exts[index];
        ext.reset_id = le32(payload, 0);
        if !preserve {
            ext.header.fill(0);
            if ext.name == ext::MODSEQ {
                for message in Arc::make_mut(&mut self.messages).iter_mut() {
                    message.modseq = 0;
                }
            }
        }
        self.current = Current::Ext { index, ignore: false };
        Ok(())
    }

    fn ext_hdr_update(&mut self, payload: &[u8], wide: bool) -> Result<(), String> {
        let head = if wide { 8 } else { 4 };
        let mut at = 0;
        while at < payload.len() {
            if at + head > payload.len() {
                return Err(String::from("ext hdr update: invalid record size"));
            }
            let (offset, size) = if wide {
                (le32(payload, at) as usize, le32(payload, at + 4) as usize)
            } else {
                (usize::from(le16(payload, at)), usize::from(le16(payload, at + 2)))
            };
            let data = payload
                .get(at + head..(at + head).saturating_add(size))
                .ok_or_else(|| String::from("ext hdr update: invalid record size"))?;
            if let Some(index) = self.current_ext("Extension header update")? {
                let header = &mut self.exts[index].header;
                if offset.saturating_add(size) > header.len() {
                    return Err(String::from("Extension header update points outside header size"));
                }
                header[offset..offset + size].copy_from_slice(data);
            }
            at = (at + head + size + 3) & !3;
        }
        Ok(())
    }

    fn ext_rec_update(&mut self, payload: &[u8]) -> Result<(), String> {
        let Some(index) = self.current_ext("Extension record updated")? else { return Ok(()) };
        let record_size = usize::from(self.exts[index].record_size);
        let step = (4 + record_size + 3) & !3;
        if !payload.len().is_multiple_of(step) {
            return Err(String::from("ext rec update: invalid record size"));
        }
        if self.exts[index].name == ext::MODSEQ && record_size == 8 {
            for entry in payload.chunks_exact(step) {
                if let Some(position) = self.position(le32(entry, 0)) {
                    Arc::make_mut(&mut self.messages)[position].modseq = le64(entry, 4);
                }
            }
        }
        Ok(())
    }

    fn keyword_update(&mut self, payload: &[u8]) -> Result<(), String> {
        if payload.len() < 4 {
            return Err(String::from("Invalid keyword update record size"));
        }
        let add = match payload[0] {
            0 => true,
            1 => false,
            other => return Err(format!("keyword update: modify type {other}")),
        };
        let name_size = usize::from(le16(payload, 2));
        if name_size == 0 {
            return Err(String::from("Trying to use empty keyword"));
        }
        let ranges_at = (4 + name_size + 3) & !3;
        if ranges_at > payload.len() {
            return Err(String::from("Invalid keyword update record size"));
        }
        let name = String::from_utf8_lossy(&payload[4..4 + name_size]).into_owned();
        let index = if let Some(index) = self.keywords.iter().position(|k| *k == name) {
            index
        } else {
            // The first keyword creates the `keywords` extension in Dovecot's map
            // (`keywords_header_add`), which takes the next extension id: later records
            // that introduce extensions by id count it.
            if self.ext(ext::KEYWORDS).is_none() {
                self.exts.push(Ext {
                    name: ext::KEYWORDS.to_string(),
                    reset_id: 0,
                    header: Vec::new(),
                    record_size: 0,
                    record_align: 1,
                });
            }
            self.keywords.push(name);
            self.keywords.len() - 1
        };
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        for entry in payload[ranges_at..].chunks_exact(8) {
            let range = self.range(le32(entry, 0), le32(entry, 4));
            for message in &mut Arc::make_mut(&mut self.messages)[range.clone()] {
                match (message.keywords.binary_search(&index), add) {
                    (Err(at), true) => message.keywords.insert(at, index),
                    (Ok(at), false) => {
                        message.keywords.remove(at);
                    }
                    _ => {}
                }
            }
            self.touch(range);
        }
        Ok(())
    }

    /// Empties the index but keeps nothing else: what a log file that resets the index
    /// (`prev_file_seq` 0 after others) does.
    pub(crate) fn reset(&mut self) {
        let log_modseq = self.log_modseq;
        let expunged = std::mem::take(&mut self.expunged);
        let (flag_changes, file_seq) = (std::mem::take(&mut self.flag_changes), self.file_seq);
        let (headers_only, only) = (self.headers_only, self.only.take());
        *self = IndexState {
            log_modseq,
            expunged,
            flag_changes,
            file_seq,
            headers_only,
            only,
            ..IndexState::default()
        };
    }
}

/// Dovecot's `sync_ext_resize`: the new sizes, but never smaller with `no_shrink`.
fn resize(ext: &mut Ext, hdr_size: usize, record_size: u16, record_align: u16, no_shrink: bool) {
    let hdr_size = if no_shrink { hdr_size.max(ext.header.len()) } else { hdr_size };
    ext.header.resize(hdr_size, 0);
    if no_shrink {
        ext.record_size = ext.record_size.max(record_size);
        ext.record_align = ext.record_align.max(record_align);
    } else {
        ext.record_size = record_size;
        ext.record_align = record_align;
    }
}

/// `payload` as entries of `size` bytes; an error when it does not divide evenly.
fn exact<'a>(
    payload: &'a [u8],
    size: usize,
    what: &str,
) -> Result<std::slice::ChunksExact<'a, u8>, String> {
    if payload.is_empty() || !payload.len().is_multiple_of(size) {
        return Err(format!("Invalid {what} record size {}", payload.len()));
    }
    Ok(payload.chunks_exact(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::log::{Transaction, payload, records};

    fn replay(state: &mut IndexState, transaction: &Transaction) -> Result<(), String> {
        let bytes = transaction.encode();
        let (all, end) = records(&bytes, 0).map_err(|c| c.to_string())?;
        assert_eq!(end, bytes.len());
        for record in &all {
            state.apply(record)?;
        }
        Ok(())
    }

    /// What a read without messages must answer exactly as the full read does.
    fn header_fields(state: &IndexState) -> impl PartialEq + std::fmt::Debug + use<> {
        (
            state.header,
            state.exts.clone(),
            state.keywords.clone(),
            state.log_modseq,
            state.highest_modseq(),
            state.file_seq,
            (state.uid_validity(), state.next_uid()),
        )
    }

    /// One record of a random history: appends (also below the next UID), expunges,
    /// flag, keyword and modseq changes, header and extension updates, resets.
    fn any_record() -> impl proptest::strategy::Strategy<Value = (u32, Vec<u8>)> {
        use proptest::prelude::*;
        let ext = kind::EXTERNAL;
        let uid = 0u32..40;
        let names = prop::sample::select(vec!["modseq", "dbox-hdr", "hdr-pop3-uidl", "other"]);
        let keywords = prop::sample::select(vec!["$Label1", "Junk", "k"]);
        prop_oneof![
            (uid.clone(), any::<u8>(), 1u32..4).prop_map(move |(uid, flags, n)| {
                let messages: Vec<(u32, u8)> = (0..n).map(|i| (uid * 3 + i, flags)).collect();
                (kind::APPEND | ext, payload::append(&messages))
            }),
            (uid.clone(), uid.clone(), any::<bool>()).prop_map(move |(a, b, done)| {
                let flag = if done { ext } else { 0 };
                (kind::EXPUNGE | kind::EXPUNGE_PROT | flag, {
                    let mut out = a.to_le_bytes().to_vec();
                    out.extend_from_slice(&(a + b).to_le_bytes());
                    out
                })
            }),
            (uid.clone(), any::<bool>()).prop_map(move |(uid, done)| {
                let flag = if done { ext } else { 0 };
                (
                    kind::EXPUNGE_GUID | kind::EXPUNGE_PROT | flag,
                    payload::expunge_guid(&[(uid, [7; 16])]),
                )
            }),
            (uid.clone(), 0u32..10, any::<u8>(), any::<u8>()).prop_map(move |(a, b, add, rm)| {
                (kind::FLAG_UPDATE | ext, payload::flag_update(&[(a, a + b, add, rm)]))
            }),
            (any::<bool>(), keywords, uid.clone(), 0u32..10).prop_map(move |(add, name, a, b)| {
                (kind::KEYWORD_UPDATE | ext, payload::keyword_update(add, name, &[(a, a + b)]))
            }),
            (uid.clone(), 0u32..10).prop_map(move |(a, b)| {
                let mut out = a.to_le_bytes().to_vec();
                out.extend_from_slice(&(a + b).to_le_bytes());
                (kind::KEYWORD_RESET | ext, out)
            }),
            (prop::sample::select(vec![field::NEXT_UID, field::UID_VALIDITY, 40, 116]), 0u32..200)
                .prop_map(move |(offset, value)| {
                    let bytes = value.to_le_bytes();
                    (kind::HEADER_UPDATE | ext, payload::header_updates(&[(offset, &bytes)]))
                }),
            (names.clone(), 0u32..3, 0u32..30, prop::sample::select(vec![0u16, 4, 8])).prop_map(
                move |(name, reset_id, hdr_size, record_size)| {
                    let intro =
                        payload::ext_intro(name, reset_id, hdr_size, record_size, 8, reset_id != 1);
                    (kind::EXT_INTRO | ext, intro)
                }
            ),
            (0u16..24, prop::collection::vec(any::<u8>(), 1..9)).prop_map(move |(offset, data)| {
                (kind::EXT_HDR_UPDATE | ext, payload::header_update(offset, &data))
            }),
            (0u32..3, any::<bool>()).prop_map(move |(reset_id, preserve)| {
                let mut out = reset_id.to_le_bytes().to_vec();
                out.extend_from_slice(&[u8::from(preserve), 0, 0, 0]);
                (kind::EXT_RESET | ext, out)
            }),
            (uid.clone(), any::<u64>()).prop_map(move |(uid, value)| {
                let mut out = uid.to_le_bytes().to_vec();
                out.extend_from_slice(&value.to_le_bytes());
                (kind::EXT_REC_UPDATE | ext, out)
            }),
            (uid, 0u64..500).prop_map(move |(uid, modseq)| {
                (kind::MODSEQ_UPDATE | ext, payload::modseq_update(&[(uid, modseq)]))
            }),
        ]
    }

    proptest::proptest! {
        /// A replay without messages answers every header question as the full replay
        /// does, and refuses the same records with the same reason, whatever the history.
        #[test]
        fn a_replay_without_messages_keeps_every_header_field(
            history in proptest::collection::vec(any_record(), 1..60),
            split in 0usize..60,
        ) {
            let mut full = IndexState::starting_at(1);
            // Without messages from the start, or from a full state's copy partway.
            let mut without = IndexState::starting_at(1).without_messages();
            let mut later: Option<IndexState> = None;
            for (at, (kind, payload)) in history.into_iter().enumerate() {
                if at == split {
                    later = Some(full.clone().without_messages());
                }
                let mut t = Transaction::new();
                t.push(kind, payload);
                let bytes = t.encode();
                let (all, _) = records(&bytes, 0).unwrap();
                let expected = full.apply(&all[0]);
                proptest::prop_assert_eq!(&without.apply(&all[0]), &expected);
                if let Some(later) = later.as_mut() {
                    proptest::prop_assert_eq!(&later.apply(&all[0]), &expected);
                }
                if expected.is_err() {
                    break;
                }
                proptest::prop_assert_eq!(header_fields(&without), header_fields(&full));
                proptest::prop_assert!(without.messages.is_empty());
                if let Some(later) = &later {
                    proptest::prop_assert_eq!(header_fields(later), header_fields(&full));
                    proptest::prop_assert!(later.messages.is_empty());
                }
            }
        }
    }

    proptest::proptest! {
        /// A replay for a few UIDs keeps each of those messages exactly as the full
        /// replay has it (flags, keywords, modseq), none other, every header field the
        /// same, and refuses the same records with the same reason.
        #[test]
        fn a_replay_for_some_uids_keeps_them_as_the_full_replay_does(
            history in proptest::collection::vec(any_record(), 1..60),
            wanted in proptest::collection::btree_set(0u32..40, 0..6),
        ) {
            let wanted: Vec<u32> = wanted.into_iter().collect();
            let mut full = IndexState::starting_at(1);
            let mut some = IndexState::starting_at(1).covering(Coverage::Uids(&wanted));
            for (kind, payload) in history {
                let mut t = Transaction::new();
                t.push(kind, payload);
                let bytes = t.encode();
                let (all, _) = records(&bytes, 0).unwrap();
                let expected = full.apply(&all[0]);
                proptest::prop_assert_eq!(&some.apply(&all[0]), &expected);
                if expected.is_err() {
                    break;
                }
                proptest::prop_assert_eq!(header_fields(&some), header_fields(&full));
                let kept: Vec<&Message> =
                    full.messages.iter().filter(|m| wanted.contains(&m.uid)).collect();
                proptest::prop_assert_eq!(some.messages.iter().collect::<Vec<_>>(), kept);
                proptest::prop_assert!(some.covers(Coverage::Uids(&wanted)));
                proptest::prop_assert!(!some.covers(Coverage::All));
            }
        }
    }

    #[test]
    fn coverage_says_what_a_read_holds() {
        let all = IndexState::default();
        let some = IndexState::default().covering(Coverage::Uids(&[3, 5]));
        let none = IndexState::default().covering(Coverage::Headers);
        assert!(all.covers(Coverage::All) && all.covers(Coverage::Uids(&[1, 9])));
        assert!(some.covers(Coverage::Uids(&[3, 5])) && some.covers(Coverage::Uids(&[5])));
        assert!(!some.covers(Coverage::Uids(&[3, 4])) && !some.covers(Coverage::All));
        assert!(!none.covers(Coverage::Uids(&[3])) && !none.covers(Coverage::All));
        for state in [&all, &some, &none] {
            assert!(state.covers(Coverage::Headers));
        }
        assert!(some.keeps(3) && !some.keeps(4) && all.keeps(4) && !none.keeps(3));
    }

    #[test]
    fn modseqs_follow_dovecots_accounting() {
        // The E4 recipe of the design notes: modseq intro, appends, keywords, modseq
        // updates last; 3 → 100, 7 → 200, highest 500.
        let mut state = IndexState::starting_at(1);
        let mut t = Transaction::new();
        let ext = kind::EXTERNAL;
        t.push(kind::EXT_INTRO | ext, payload::ext_intro("modseq", 0, 16, 8, 8, true));
        t.push(kind::EXT_HDR_UPDATE | ext, payload::header_update(0, &[1, 0, 0, 0, 0, 0, 0, 0]));
        t.push(
            kind::HEADER_UPDATE | ext,
            payload::header_updates(&[(field::UID_VALIDITY, &1_234_567_890u32.to_le_bytes())]),
        );
        t.push(kind::APPEND | ext, payload::append(&[(3, 0x08), (7, 0x0a), (8, 0x15)]));
        t.push(kind::KEYWORD_UPDATE | ext, payload::keyword_update(true, "$Label1", &[(7, 7)]));
        t.push(kind::KEYWORD_UPDATE | ext, payload::keyword_update(true, "Junk", &[(7, 8)]));
        t.push(
            kind::HEADER_UPDATE | ext,
            payload::header_updates(&[(field::NEXT_UID, &20u32.to_le_bytes())]),
        );
        t.push(kind::MODSEQ_UPDATE | ext, payload::modseq_update(&[(3, 100), (7, 200), (0, 500)]));
        replay(&mut state, &t).unwrap();
        assert_eq!((state.uid_validity(), state.next_uid()), (1_234_567_890, 20));
        let modseqs: Vec<u64> = state.messages.iter().map(|m| state.modseq_of(m)).collect();
        assert_eq!(modseqs, [100, 200, 4]);
        assert_eq!(state.highest_modseq(), 500);
        assert_eq!(state.keywords, ["$Label1", "Junk"]);
        assert_eq!(state.messages[1].keywords, [0, 1]);
        assert_eq!(state.messages[2].keywords, [1]);
    }

    /// Clones share the message records until one of them changes them: the log reader's
    /// cached state, the state it returns and a mailbox's last view are one copy, not three.
    #[test]
    fn clones_share_the_records_until_one_changes_them() {
        let ext = kind::EXTERNAL;
        let mut state = IndexState::default();
        let mut t = Transaction::new();
        t.push(kind::APPEND | ext, payload::append(&[(1, 0), (2, 0)]));
        replay(&mut state, &t).unwrap();
        let kept = state.clone();
        assert!(Arc::ptr_eq(&kept.messages, &state.messages));
        let mut more = Transaction::new();
        more.push(kind::APPEND | ext, payload::append(&[(3, 0)]));
        replay(&mut state, &more).unwrap();
        assert!(!Arc::ptr_eq(&kept.messages, &state.messages));
        let uids = |s: &IndexState| s.messages.iter().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!((uids(&kept), uids(&state)), (vec![1, 2], vec![1, 2, 3]));
    }

    #[test]
    fn what_dovecot_calls_corrupt_is_refused() {
        let ext = kind::EXTERNAL;
        let mut state = IndexState::default();
        let mut t = Transaction::new();
        t.push(kind::APPEND | ext, payload::append(&[(5, 0)]));
        replay(&mut state, &t).unwrap();
        let mut below = Transaction::new();
        below.push(kind::APPEND | ext, payload::append(&[(4, 0)]));
        assert!(replay(&mut state, &below).unwrap_err().contains("next_uid = 6"));
        let mut modseq = Transaction::new();
        modseq.push(kind::MODSEQ_UPDATE | ext, payload::modseq_update(&[(5, 9)]));
        assert!(replay(&mut state, &modseq).unwrap_err().contains("before they were enabled"));
        let mut header = Transaction::new();
        header.push(kind::HEADER_UPDATE | ext, payload::header_updates(&[(118, &[0; 4])]));
        assert!(replay(&mut state, &header).unwrap_err().contains("outside range"));
        let mut orphan = IndexState::default();
        let mut t = Transaction::new();
        t.push(kind::EXT_HDR_UPDATE | ext, payload::header_update(0, &[1]));
        assert!(replay(&mut orphan, &t).unwrap_err().contains("without intro"));
    }

    #[test]
    fn the_first_keyword_takes_an_extension_id() {
        // Dovecot's map gets the `keywords` extension at the first keyword; a later
        // introduction by id counts it (seen in a log Dovecot wrote: id 5 after
        // dbox-hdr, modseq, cache, hdr-pop3-uidl and keywords).
        let ext = kind::EXTERNAL;
        let mut state = IndexState::default();
        let mut t = Transaction::new();
        t.push(kind::EXT_INTRO | ext, payload::ext_intro("dbox-hdr", 0, 24, 0, 0, true));
        t.push(kind::APPEND | ext, payload::append(&[(1, 0)]));
        t.push(kind::KEYWORD_UPDATE | ext, payload::keyword_update(true, "Junk", &[(1, 1)]));
        t.push(kind::EXT_INTRO | ext, payload::ext_intro("cache", 0, 0, 4, 4, true));
        replay(&mut state, &t).unwrap();
        let names: Vec<&str> = state.exts.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dbox-hdr", "keywords", "cache"]);
        let mut by_id = payload::ext_intro("", 0, 0, 4, 4, true);
        by_id[..4].copy_from_slice(&2u32.to_le_bytes());
        let mut t = Transaction::new();
        t.push(kind::EXT_INTRO | ext, by_id);
        replay(&mut state, &t).unwrap();
        let mut keywords = payload::ext_intro("", 0, 0, 4, 4, true);
        keywords[..4].copy_from_slice(&1u32.to_le_bytes());
        let mut t = Transaction::new();
        t.push(kind::EXT_INTRO | ext, keywords);
        assert!(replay(&mut state, &t).unwrap_err().contains("for keywords"));
    }

    #[test]
    fn expunges_apply_only_when_done_and_next_uid_never_shrinks() {
        let ext = kind::EXTERNAL;
        let mut state = IndexState::default();
        let mut t = Transaction::new();
        t.push(kind::APPEND | ext, payload::append(&[(1, 0), (2, 0), (3, 0)]));
        replay(&mut state, &t).unwrap();
        let mut request = Transaction::new();
        request
            .push(kind::EXPUNGE_GUID | kind::EXPUNGE_PROT, payload::expunge_guid(&[(2, [0; 16])]));
        replay(&mut state, &request).unwrap();
        assert_eq!(state.messages.len(), 3);
        let mut done = Transaction::new();
        done.push(
            kind::EXPUNGE_GUID | kind::EXPUNGE_PROT | ext,
            payload::expunge_guid(&[(2, [0; 16])]),
        );
        done.push(
            kind::HEADER_UPDATE | ext,
            payload::header_updates(&[(field::NEXT_UID, &2u32.to_le_bytes())]),
        );
        replay(&mut state, &done).unwrap();
        assert_eq!(state.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(state.expunged, [Expunged { uid: 2, guid_128: Some([0; 16]) }]);
        assert_eq!(state.next_uid(), 4);
    }
}
