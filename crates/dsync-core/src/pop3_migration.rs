//! Which IMAP message is which POP3 message: Dovecot's pop3-migration algorithm
//! (`src/plugins/pop3-migration/pop3-migration-plugin.c`, 2.3), pure and I/O-free.
//!
//! A POP3 user's client remembers messages by their UIDL, in POP3 order. Migrating the
//! mailbox over IMAP loses both unless each IMAP message learns its POP3 UIDL and position;
//! the destination then stores them (Maildir uidlist `P`/`O` fields) and serves the same
//! UIDLs in the same order, so no client downloads everything again.
//!
//! The matching, as the plugin does it:
//! 1. **Known UIDLs** ([`ImapMessage::known_uidl`], e.g. from an earlier run) are joined
//!    with the POP3 UIDLs first.
//! 2. **Order and size**: the i-th IMAP message (UID order) pairs with the i-th POP3
//!    message while their sizes are equal (IMAP `RFC822.SIZE` vs POP3 `LIST` size). The
//!    pass stops at the first size difference, at a known UIDL that differs from the POP3
//!    one at that position, and where two consecutive POP3 messages have the same size
//!    (can't tell them apart). When it pairs everything and both sides have as many
//!    messages, no header is needed at all.
//! 3. **Header hash** for the rest: a SHA-1 over a filtered header ([`header_sha1`]; POP3
//!    `TOP n 0`, IMAP `BODY.PEEK[HEADER]`); equal hashes pair up. Messages with the same
//!    hash pair in POP3 order ↔ UID order (Dovecot's unstable sort leaves that open).
//!
//! Headers are fetched only when step 2 leaves work: [`Matcher::headers_needed`] names the
//! IMAP UIDs and POP3 numbers whose headers are needed, the caller fetches them (pipelined)
//! and hands them in with [`Matcher::add_imap_header`] / [`Matcher::add_pop3_header`], then
//! [`Matcher::finish`] gives the [`MatchOutcome`]: per IMAP UID the POP3 UIDL and order,
//! plus what stayed unmatched. [`MatchOutcome::check`] applies Dovecot's failure rule
//! (POP3 messages without an IMAP match fail the mailbox unless told to ignore them).
//!
//! ```
//! use dsync_core::pop3_migration::{ImapMessage, MatchOptions, Matcher, Pop3Message};
//!
//! let imap = vec![
//!     ImapMessage { uid: 10, size: 120, known_uidl: None },
//!     ImapMessage { uid: 11, size: 300, known_uidl: None },
//! ];
//! // POP3 shows the two in the other order (a stored POP3 order), so sizes do not line up.
//! let pop3 = vec![
//!     Pop3Message { number: 1, size: 300, uidl: "b".into() },
//!     Pop3Message { number: 2, size: 120, uidl: "a".into() },
//! ];
//! let mut matcher = Matcher::new(imap, pop3, MatchOptions::default());
//! let needed = matcher.headers_needed();
//! assert_eq!((needed.imap_uids.as_slice(), needed.pop3_numbers.as_slice()), (&[10, 11][..], &[1, 2][..]));
//! // Fetched with BODY.PEEK[HEADER] and TOP n 0:
//! matcher.add_imap_header(10, b"Message-ID: <a@x>\r\n\r\n");
//! matcher.add_imap_header(11, b"Message-ID: <b@x>\r\n\r\n");
//! matcher.add_pop3_header(1, b"Message-ID: <b@x>\r\n\r\n");
//! matcher.add_pop3_header(2, b"Message-ID: <a@x>\r\n\r\n");
//! let outcome = matcher.finish();
//! outcome.check(Default::default())?;
//! let first = outcome.get(10).expect("matched");
//! assert_eq!((first.uidl.as_str(), first.order), ("a", 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod header;

use std::fmt;

pub use header::{HeaderHash, HeaderHasher, SKIPPED_HEADERS, header_sha1};

/// One message of the IMAP view of INBOX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapMessage {
    /// The UID.
    pub uid: u32,
    /// Its physical size as the IMAP server reports it (`RFC822.SIZE`).
    pub size: u64,
    /// A POP3 UIDL already known for this message (from an earlier run), if any.
    pub known_uidl: Option<String>,
}

/// One message of the POP3 view (`LIST` + `UIDL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Message {
    /// Its number in the POP3 session: its position in the POP3 order, from 1.
    pub number: u32,
    /// Its `LIST` size.
    pub size: u64,
    /// Its `UIDL`. Messages with an empty UIDL are ignored, as Dovecot does.
    pub uidl: String,
}

/// Options, named after Dovecot's `pop3_migration_*` settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// `pop3_migration_skip_size_check`: skip the order-and-size pass (for servers whose
    /// IMAP and POP3 sizes never agree); every message is matched by header.
    pub skip_size_check: bool,
}

/// What to tolerate in [`MatchOutcome::check`], named after Dovecot's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissingPolicy {
    /// `pop3_migration_ignore_missing_uidls`: POP3 messages without an IMAP match only
    /// warn.
    pub ignore_missing_uidls: bool,
    /// `pop3_migration_ignore_extra_uidls`: when every IMAP message was matched and POP3
    /// merely has more (mail delivered meanwhile), only warn.
    pub ignore_extra_uidls: bool,
}

/// How a pair was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The IMAP message's known UIDL.
    KnownUidl,
    /// Same position and same size.
    OrderAndSize,
    /// Same filtered-header hash.
    HeaderHash,
}

/// The POP3 identity an IMAP message gets: write `uidl` and `order` to the destination
/// (Maildir `P<uidl>` and `O<order>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Assignment {
    /// The IMAP UID.
    pub uid: u32,
    /// The POP3 UIDL.
    pub uidl: String,
    /// The POP3 order: the POP3 message number, from 1.
    pub order: u32,
    /// Which pass paired them.
    pub matched_by: MatchedBy,
}

/// Headers [`Matcher`] needs before it can finish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadersNeeded {
    /// IMAP UIDs, ascending: fetch `BODY.PEEK[HEADER]`.
    pub imap_uids: Vec<u32>,
    /// POP3 message numbers, ascending: fetch `TOP n 0`.
    pub pop3_numbers: Vec<u32>,
}

impl HeadersNeeded {
    /// True when no header is needed.
    pub fn is_empty(&self) -> bool {
        self.imap_uids.is_empty() && self.pop3_numbers.is_empty()
    }
}

#[derive(Debug, Clone)]
struct ImapEntry {
    message: ImapMessage,
    /// Index into `Matcher::pop3` and how.
    matched: Option<(usize, MatchedBy)>,
    hash: Option<HeaderHash>,
}

#[derive(Debug, Clone)]
struct Pop3Entry {
    message: Pop3Message,
    matched: bool,
    hash: Option<HeaderHash>,
}

/// The matching in progress. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Matcher {
    imap: Vec<ImapEntry>,
    pop3: Vec<Pop3Entry>,
    without_uidl: Vec<Pop3Message>,
    /// Where the order-and-size pass stopped.
    first_unfound: usize,
    /// The first two passes matched everything.
    complete: bool,
}

impl Matcher {
    /// Takes both views (any order; they are sorted by UID and POP3 number) and runs the
    /// known-UIDL and order-and-size passes.
    pub fn new(
        imap: impl IntoIterator<Item = ImapMessage>,
        pop3: impl IntoIterator<Item = Pop3Message>,
        options: MatchOptions,
    ) -> Matcher {
        let mut imap: Vec<ImapEntry> = imap
            .into_iter()
            .map(|message| ImapEntry { message, matched: None, hash: None })
            .collect();
        imap.sort_by_key(|e| e.message.uid);
        let (pop3, without_uidl): (Vec<Pop3Message>, Vec<Pop3Message>) =
            pop3.into_iter().partition(|m| !m.uidl.is_empty());
        let mut pop3: Vec<Pop3Entry> = pop3
            .into_iter()
            .map(|message| Pop3Entry { message, matched: false, hash: None })
            .collect();
        pop3.sort_by_key(|e| e.message.number);
        let mut matcher = Matcher { imap, pop3, without_uidl, first_unfound: 0, complete: false };
        matcher.join_known_uidls();
        matcher.by_order_and_size(options);
        matcher
    }

    /// `pop3_uidl_assign_cached`: each known UIDL pairs with the POP3 message that has it
    /// (one IMAP message per POP3 message; the lowest UID wins a duplicate).
    fn join_known_uidls(&mut self) {
        let mut by_uidl: Vec<(&str, usize)> =
            self.pop3.iter().enumerate().map(|(i, e)| (e.message.uidl.as_str(), i)).collect();
        by_uidl.sort_unstable();
        let mut pairs = Vec::new();
        for (imap_index, entry) in self.imap.iter().enumerate() {
            let Some(known) = entry.message.known_uidl.as_deref() else { continue };
            let start = by_uidl.partition_point(|(uidl, _)| *uidl < known);
            if let Some(&(uidl, pop3_index)) = by_uidl.get(start)
                && uidl == known
            {
                pairs.push((imap_index, pop3_index));
            }
        }
        for (imap_index, pop3_index) in pairs {
            if !self.pop3[pop3_index].matched {
                self.pop3[pop3_index].matched = true;
                self.imap[imap_index].matched = Some((pop3_index, MatchedBy::KnownUidl));
            }
        }
    }

    /// `pop3_uidl_assign_by_size`.
    fn by_order_and_size(&mut self, options: MatchOptions) {
        let count = self.imap.len().min(self.pop3.len());
        let mut i = 0;
        while i < count {
            if let Some(known) = &self.imap[i].message.known_uidl {
                // Already joined; a different UIDL here means the orders differ.
                if *known == self.pop3[i].message.uidl {
                    i += 1;
                    continue;
                }
                break;
            }
            let size = self.pop3[i].message.size;
            if options.skip_size_check || size != self.imap[i].message.size {
                break;
            }
            if i + 1 < count && size == self.pop3[i + 1].message.size {
                break; // two POP3 messages of one size in a row: ambiguous
            }
            if self.pop3[i].matched {
                // Joined to another IMAP message by a known UIDL (Dovecot would give the
                // UIDL to two messages here): the positions cannot be trusted.
                break;
            }
            self.pop3[i].matched = true;
            self.imap[i].matched = Some((i, MatchedBy::OrderAndSize));
            i += 1;
        }
        self.first_unfound = i;
        self.complete = i == count && self.imap.len() == self.pop3.len();
    }

    /// The headers still needed: unmatched messages from where the order-and-size pass
    /// stopped on. Empty when everything is matched, or once all were added.
    pub fn headers_needed(&self) -> HeadersNeeded {
        if self.complete {
            return HeadersNeeded::default();
        }
        let from = self.first_unfound;
        HeadersNeeded {
            imap_uids: self.imap[from.min(self.imap.len())..]
                .iter()
                .filter(|e| {
                    e.matched.is_none() && e.message.known_uidl.is_none() && e.hash.is_none()
                })
                .map(|e| e.message.uid)
                .collect(),
            pop3_numbers: self.pop3[from.min(self.pop3.len())..]
                .iter()
                .filter(|e| !e.matched && e.hash.is_none())
                .map(|e| e.message.number)
                .collect(),
        }
    }

    /// Hashes the header (or whole message) of IMAP message `uid`. Returns the hash, or
    /// `None` for a UID not in the view. When the hash has no end of header, fetch the
    /// whole message and add it again (the last one added counts), as Dovecot does.
    pub fn add_imap_header(&mut self, uid: u32, header: &[u8]) -> Option<HeaderHash> {
        let hash = header_sha1(header);
        self.set_imap_hash(uid, hash).then_some(hash)
    }

    /// Hashes the `TOP n 0` answer (or whole message) of POP3 message `number`; like
    /// [`add_imap_header`](Self::add_imap_header).
    pub fn add_pop3_header(&mut self, number: u32, header: &[u8]) -> Option<HeaderHash> {
        let hash = header_sha1(header);
        self.set_pop3_hash(number, hash).then_some(hash)
    }

    /// Sets a hash computed with a [`HeaderHasher`] (streamed). False for an unknown UID.
    pub fn set_imap_hash(&mut self, uid: u32, hash: HeaderHash) -> bool {
        match self.imap.binary_search_by_key(&uid, |e| e.message.uid) {
            Ok(index) => {
                self.imap[index].hash = Some(hash);
                true
            }
            Err(_) => false,
        }
    }

    /// Sets a streamed hash for POP3 message `number`. False for an unknown number.
    pub fn set_pop3_hash(&mut self, number: u32, hash: HeaderHash) -> bool {
        match self.pop3.binary_search_by_key(&number, |e| e.message.number) {
            Ok(index) => {
                self.pop3[index].hash = Some(hash);
                true
            }
            Err(_) => false,
        }
    }

    /// Runs the header pass (`pop3_uidl_assign_by_hdr_hash`) and reports.
    pub fn finish(mut self) -> MatchOutcome {
        if !self.complete {
            self.by_header_hash();
        }
        let mut assignments = Vec::new();
        let mut unmatched_imap = Vec::new();
        for entry in &self.imap {
            match entry.matched {
                Some((index, matched_by)) => {
                    let pop3 = &self.pop3[index].message;
                    assignments.push(Pop3Assignment {
                        uid: entry.message.uid,
                        uidl: pop3.uidl.clone(),
                        order: pop3.number,
                        matched_by,
                    });
                }
                None => unmatched_imap.push(entry.message.uid),
            }
        }
        let mut unmatched_pop3 = Vec::new();
        let mut pop3_without_header = Vec::new();
        for (index, entry) in self.pop3.iter().enumerate() {
            if entry.matched {
                continue;
            }
            // Dovecot hashes POP3 messages from the stopping point on; one whose header
            // could not be read is taken as expunged from POP3 meanwhile.
            if index >= self.first_unfound && entry.hash.is_none() {
                pop3_without_header.push(entry.message.clone());
            } else {
                unmatched_pop3.push(entry.message.clone());
            }
        }
        MatchOutcome {
            assignments,
            unmatched_pop3,
            unmatched_imap,
            pop3_without_uidl: self.without_uidl,
            pop3_without_header,
            imap_count: self.imap.len(),
            pop3_count: self.pop3.len(),
        }
    }

    fn by_header_hash(&mut self) {
        let from = self.first_unfound;
        let mut pop3: Vec<([u8; 20], u32, usize)> = self.pop3[from.min(self.pop3.len())..]
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.matched)
            .filter_map(|(i, e)| e.hash.map(|h| (h.sha1, e.message.number, from + i)))
            .collect();
        let mut imap: Vec<([u8; 20], u32, usize)> = self.imap[from.min(self.imap.len())..]
            .iter()
            .enumerate()
            .filter(|(_, e)| e.matched.is_none() && e.message.known_uidl.is_none())
            .filter_map(|(i, e)| e.hash.map(|h| (h.sha1, e.message.uid, from + i)))
            .collect();
        pop3.sort_unstable();
        imap.sort_unstable();
        let (mut p, mut q) = (0, 0);
        while p < pop3.len() && q < imap.len() {
            match pop3[p].0.cmp(&imap[q].0) {
                std::cmp::Ordering::Less => p += 1,
                std::cmp::Ordering::Greater => q += 1,
                std::cmp::Ordering::Equal => {
                    self.pop3[pop3[p].2].matched = true;
                    self.imap[imap[q].2].matched = Some((pop3[p].2, MatchedBy::HeaderHash));
                    p += 1;
                    q += 1;
                }
            }
        }
    }
}

/// The result of a [`Matcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOutcome {
    /// One per matched IMAP message, by UID ascending.
    pub assignments: Vec<Pop3Assignment>,
    /// POP3 messages that no IMAP message matched, in POP3 order. Their UIDLs would be
    /// lost: [`check`](Self::check) fails on them by default.
    pub unmatched_pop3: Vec<Pop3Message>,
    /// IMAP UIDs that got no POP3 identity, ascending (the destination gives them its
    /// own UIDLs, after the others in POP3 order).
    pub unmatched_imap: Vec<u32>,
    /// POP3 messages with an empty UIDL: ignored, as Dovecot does.
    pub pop3_without_uidl: Vec<Pop3Message>,
    /// POP3 messages whose header was needed but not supplied: Dovecot takes them as
    /// expunged from POP3 meanwhile and ignores them.
    pub pop3_without_header: Vec<Pop3Message>,
    imap_count: usize,
    pop3_count: usize,
}

impl MatchOutcome {
    /// The POP3 identity of IMAP message `uid`, if it has one.
    pub fn get(&self, uid: u32) -> Option<&Pop3Assignment> {
        self.assignments.binary_search_by_key(&uid, |a| a.uid).ok().map(|i| &self.assignments[i])
    }

    /// True when every IMAP message was matched.
    pub fn all_imap_matched(&self) -> bool {
        self.unmatched_imap.is_empty()
    }

    /// Dovecot's rule: POP3 messages without an IMAP match fail the mailbox
    /// ("N POP3 messages have no matching IMAP messages") unless `policy` tolerates them.
    /// The error's `Display` is the text to warn with when tolerated.
    pub fn check(&self, policy: MissingPolicy) -> Result<(), UnmatchedPop3> {
        let Some(first) = self.unmatched_pop3.first() else { return Ok(()) };
        let error = UnmatchedPop3 {
            count: self.unmatched_pop3.len(),
            first_number: first.number,
            first_uidl: first.uidl.clone(),
            all_imap_found: self.imap_count + self.unmatched_pop3.len() == self.pop3_count,
        };
        if (error.all_imap_found && policy.ignore_extra_uidls) || policy.ignore_missing_uidls {
            return Ok(());
        }
        Err(error)
    }

    /// The error [`check`](Self::check) would return with the default policy, also when
    /// a policy tolerates it (to warn).
    pub fn unmatched_error(&self) -> Option<UnmatchedPop3> {
        self.check(MissingPolicy::default()).err()
    }
}

/// POP3 messages have no matching IMAP message: migrating now would lose their UIDLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnmatchedPop3 {
    /// How many.
    pub count: usize,
    /// The first one's POP3 number.
    pub first_number: u32,
    /// The first one's UIDL.
    pub first_uidl: String,
    /// Every IMAP message was matched: POP3 simply has more (new mail, or mail outside
    /// INBOX on the IMAP side).
    pub all_imap_found: bool,
}

impl fmt::Display for UnmatchedPop3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} POP3 messages have no matching IMAP messages (first POP3 msg {} UIDL {})",
            self.count, self.first_number, self.first_uidl
        )?;
        if self.all_imap_found {
            f.write_str(" - all IMAP messages were found (POP3 contains more than IMAP INBOX)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
