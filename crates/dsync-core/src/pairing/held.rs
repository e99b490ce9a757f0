//! What the destination already holds, by the source's identity of each message, so that
//! a message the source keeps in several mailboxes is stored once and then copied within
//! the destination (IMAP `UID COPY`) into the others instead of being sent again.
//!
//! A source message's identity is its GUID when the source has one (Dovecot's `X-GUID`,
//! Gmail's `X-GM-MSGID`, a Maildir uidlist GUID), otherwise its content: Dovecot's header
//! hash; with either, its size and received date (all must agree, as a copy keeps the
//! date of the message it is made from; without a size there is no content identity, and
//! the message is sent as usual). Only a 16-byte digest of it is kept, with
//! where the destination holds the message: about 50 bytes per message saved in the run.
//! The header hash of a message sent is taken from its body on the way
//! ([`super::copy::Stored`]); a save is asked for its header hash beforehand only when a
//! message of the same size and received date is held, so that a run without duplicates
//! costs no extra round trip.
//!
//! On a destination whose mailboxes are labels of one message (Gmail) this is what keeps
//! the account from holding a message once per label; there the all-mail mailbox is read
//! too (lazily, the first time a mailbox has something to save), by content, so that a
//! message a killed run stored in one label is copied, not stored again, into the next.
//! `\Trash` and `\Junk` take no part there: Gmail keeps what is in them out of every
//! other label, so a copy into or out of them would move the message, not label it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use md5::{Digest, Md5};

use crate::header_hash::EMPTY_HEADER_HASH;
use crate::model::{Flags, MailboxInfo, MailboxName, MessageMeta, SpecialUse, Uid};

/// A message identity's digest.
pub(super) type Identity = [u8; 16];

/// Where the destination holds a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    /// Index into [`Held::mailboxes`].
    mailbox: u32,
    pub(super) uid: Uid,
    /// A digest of the flags it was stored with (`0`: unknown).
    flags: u64,
}

/// The run's map of held messages.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Off when the destination cannot copy within itself.
    enabled: bool,
    /// The destination's mailboxes are labels of one message (Gmail).
    labels: bool,
    /// The all-mail mailbox of a label destination, read once.
    all_mail: Option<(MailboxName, bool)>,
    /// A label destination's `\Trash` and `\Junk` mailboxes.
    excluded: BTreeSet<MailboxName>,
    mailboxes: Vec<MailboxName>,
    by_identity: HashMap<Identity, Place>,
    /// [`size_key`]s of the held messages.
    sizes: HashSet<u64>,
}

impl Held {
    /// A map for a destination that may copy (`enabled`), whose mailboxes may be labels,
    /// listed as `mailboxes` (a label destination's roles say which is all mail, `\All`,
    /// and which take no part, `\Trash` and `\Junk`: the destination's roles, not the
    /// source's, as a label named Trash is only a label there).
    pub(super) fn new(enabled: bool, labels: bool, mailboxes: &[MailboxInfo]) -> Held {
        let having = |role: SpecialUse| {
            mailboxes.iter().filter(move |m| labels && m.special_use.contains(&role))
        };
        Held {
            enabled,
            labels,
            all_mail: having(SpecialUse::All).next().map(|m| (m.name.clone(), false)),
            excluded: having(SpecialUse::Trash)
                .chain(having(SpecialUse::Junk))
                .map(|m| m.name.clone())
                .collect(),
            ..Held::default()
        }
    }

    /// True while copies are tried.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The destination said it cannot copy: saves go the usual way from now on.
    pub(super) fn disable(&mut self) {
        self.enabled = false;
        self.by_identity = HashMap::new();
        self.sizes = HashSet::new();
    }

    /// True when the destination's mailboxes are labels (Gmail).
    pub(super) fn labels(&self) -> bool {
        self.labels
    }

    /// The label destination's all-mail mailbox when it has not been read yet.
    pub(super) fn all_mail_to_read(&self) -> Option<&MailboxName> {
        self.all_mail.as_ref().filter(|(_, read)| !read).map(|(name, _)| name)
    }

    /// True when `mailbox` is the label destination's all-mail mailbox.
    pub(super) fn is_all_mail(&self, mailbox: &MailboxName) -> bool {
        self.all_mail.as_ref().is_some_and(|(name, _)| name == mailbox)
    }

    /// The all-mail mailbox was read (or could not be).
    pub(super) fn all_mail_read(&mut self) {
        if let Some((_, read)) = &mut self.all_mail {
            *read = true;
        }
    }

    /// Whether `mailbox` takes no part in copies (a label destination's `\Trash`,
    /// `\Junk`).
    pub(super) fn excluded(&self, mailbox: &MailboxName) -> bool {
        self.excluded.contains(mailbox)
    }

    fn mailbox_index(&mut self, name: &MailboxName) -> u32 {
        let index = if let Some(index) = self.mailboxes.iter().position(|m| m == name) {
            index
        } else {
            self.mailboxes.push(name.clone());
            self.mailboxes.len() - 1
        };
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// Remembers that `mailbox` holds the message `meta` (with `header_hash`, if known)
    /// as `uid`, stored with `flags` (`None`: unknown). The first place found stays.
    pub(super) fn insert(
        &mut self,
        meta: &MessageMeta,
        header_hash: Option<&str>,
        mailbox: &MailboxName,
        uid: Uid,
        flags: Option<&Flags>,
    ) {
        if !self.enabled {
            return;
        }
        let identities = identities(meta, header_hash);
        if identities.is_empty() {
            return;
        }
        let mailbox = self.mailbox_index(mailbox);
        let flags = flags.map_or(0, flags_digest);
        for identity in identities {
            self.by_identity.entry(identity).or_insert(Place { mailbox, uid, flags });
        }
        if let Some(key) = size_key(meta) {
            self.sizes.insert(key);
        }
    }

    /// True when a message of `meta`'s size and received date is held: only then is its
    /// header hash worth asking for.
    pub(super) fn may_hold(&self, meta: &MessageMeta) -> bool {
        self.enabled && size_key(meta).is_some_and(|key| self.sizes.contains(&key))
    }

    /// Where the message is held outside `not_in`, if anywhere.
    pub(super) fn find(&self, identities: &[Identity], not_in: &MailboxName) -> Option<Place> {
        if !self.enabled {
            return None;
        }
        identities
            .iter()
            .filter_map(|identity| self.by_identity.get(identity))
            .find(|place| self.mailbox(place) != Some(not_in))
            .copied()
    }

    /// The mailbox of `place`.
    pub(super) fn mailbox(&self, place: &Place) -> Option<&MailboxName> {
        self.mailboxes.get(usize::try_from(place.mailbox).ok()?)
    }

    /// True when a copy of `place` must have its flags set to `flags` afterwards.
    pub(super) fn flags_differ(place: &Place, flags: &Flags) -> bool {
        place.flags == 0 || place.flags != flags_digest(flags)
    }
}

/// The identities of a source message: its GUID's, then its content's (`header_hash` with
/// size and received date), as far as known. The GUID's includes the size and received
/// date too: a copy keeps the bytes and the INTERNALDATE of the message it is made from,
/// and one GUID may be seen with another date (a Maildir file copied into another folder
/// under the same name by `cp`, which does not keep the time).
pub(super) fn identities(meta: &MessageMeta, header_hash: Option<&str>) -> Vec<Identity> {
    let mut out = Vec::with_capacity(2);
    if let Some(guid) = meta.guid.as_deref().filter(|g| !g.is_empty()) {
        let size = meta.virtual_size.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default();
        let received = meta.received.map(|r| r.to_be_bytes().to_vec()).unwrap_or_default();
        out.push(digest(&[b"guid", guid.as_bytes(), &size, &received]));
    }
    if let Some(content) = content_identity(meta, header_hash) {
        out.push(content);
    }
    out
}

/// The content identity of a message: header hash, size and received date. None for a
/// message with neither `Date` nor `Message-ID` ([`EMPTY_HEADER_HASH`]): every such
/// message hashes alike, and two of one size and date are not one message.
pub(super) fn content_identity(meta: &MessageMeta, header_hash: Option<&str>) -> Option<Identity> {
    let hash = header_hash.filter(|hash| *hash != EMPTY_HEADER_HASH)?;
    let size = meta.virtual_size?;
    let received = meta.received.map(|r| r.to_string()).unwrap_or_default();
    Some(digest(&[b"content", hash.as_bytes(), &size.to_be_bytes(), received.as_bytes()]))
}

/// Size and received date, the cheap half of a content identity.
fn size_key(meta: &MessageMeta) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    (meta.virtual_size?, meta.received).hash(&mut hasher);
    Some(hasher.finish())
}

fn digest(parts: &[&[u8]]) -> Identity {
    let mut md5 = Md5::new();
    for part in parts {
        // Lengths first, so that no two different part lists hash alike.
        md5.update((part.len() as u64).to_be_bytes());
        md5.update(part);
    }
    md5.finalize().into()
}

fn flags_digest(flags: &Flags) -> u64 {
    let mut hasher = DefaultHasher::new();
    flags.hash(&mut hasher);
    hasher.finish() | 1
}

/// A save that is a copy of a held message.
#[derive(Debug)]
pub(super) struct Copy {
    /// The held message's UID (in the mailbox it is copied from).
    pub(super) held: Uid,
    /// The origin (source) UID.
    pub(super) origin: Uid,
    /// The flags the copy must have.
    pub(super) flags: Flags,
    /// They may differ from the held message's: set them after the copy.
    pub(super) differ: bool,
    /// The save's header hash, when it was read.
    pub(super) hash: Option<String>,
}

/// Saves of one mailbox split into copies within the destination (by the mailbox that
/// holds the message) and saves that send the body.
#[derive(Debug, Default)]
pub(super) struct Split {
    /// By the mailbox that holds them.
    pub(super) copies: BTreeMap<MailboxName, Vec<Copy>>,
    /// Saves that send the body.
    pub(super) sends: Vec<(Uid, Flags)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpecialUse, SystemFlags};

    fn meta(uid: u32, guid: Option<&str>, size: Option<u64>, received: Option<i64>) -> MessageMeta {
        let mut meta = MessageMeta::new(Uid::new(uid).expect("uid"), Flags::default());
        meta.guid = guid.map(str::to_owned);
        meta.virtual_size = size;
        meta.received = received;
        meta
    }

    fn name(text: &str) -> MailboxName {
        MailboxName::new([text]).expect("name")
    }

    #[test]
    fn identities_are_the_guid_then_the_content_as_far_as_known() {
        let both = identities(&meta(1, Some("g1"), Some(10), Some(5)), Some("h"));
        assert_eq!(both.len(), 2);
        // The GUID with size and received date identifies, whatever the UID or the
        // header hash; the same GUID with another date or size is another message.
        assert_eq!(identities(&meta(9, Some("g1"), Some(10), Some(5)), None), both[..1]);
        assert_ne!(identities(&meta(1, Some("g1"), Some(10), Some(6)), None), both[..1]);
        assert_ne!(identities(&meta(1, Some("g1"), Some(11), Some(5)), None), both[..1]);
        assert_ne!(identities(&meta(1, Some("g1"), None, Some(5)), None), both[..1]);
        // No size: no content identity (and an empty GUID is none).
        assert!(identities(&meta(1, Some(""), None, Some(5)), Some("h")).is_empty());
        // Size and received date are part of the content.
        let content =
            |size, received| content_identity(&meta(1, None, Some(size), received), Some("h"));
        assert_eq!(content(10, Some(5)), Some(both[1]));
        assert_ne!(content(11, Some(5)), Some(both[1]));
        assert_ne!(content(10, Some(6)), Some(both[1]));
        assert_ne!(content(10, None), Some(both[1]));
        // No Date, no Message-ID: no content identity.
        let bare = meta(1, None, Some(10), Some(5));
        assert_eq!(content_identity(&bare, Some(EMPTY_HEADER_HASH)), None);
    }

    #[test]
    fn a_held_message_is_found_outside_its_own_mailbox_only_while_enabled() {
        let mut held = Held::new(true, false, &[]);
        let message = meta(1, Some("g"), None, None);
        let id = identities(&message, None);
        let seen = Flags { system: SystemFlags::SEEN, ..Flags::default() };
        held.insert(&message, None, &name("A"), Uid::new(7).expect("uid"), Some(&seen));
        // The first place stays.
        held.insert(&message, None, &name("B"), Uid::new(8).expect("uid"), None);
        let place = held.find(&id, &name("C")).expect("held in A");
        assert_eq!((held.mailbox(&place), place.uid.get()), (Some(&name("A")), 7));
        assert!(held.find(&id, &name("A")).is_none(), "not copied into its own mailbox");
        assert!(!Held::flags_differ(&place, &seen));
        assert!(Held::flags_differ(&place, &Flags::default()));
        held.disable();
        assert!(held.find(&id, &name("C")).is_none());
        held.insert(&message, None, &name("A"), Uid::new(7).expect("uid"), None);
        assert!(held.find(&id, &name("C")).is_none());
    }

    #[test]
    fn header_hashes_are_worth_asking_for_only_when_size_and_date_are_held() {
        let mut held = Held::new(true, false, &[]);
        let stored = meta(1, None, Some(100), Some(5));
        held.insert(&stored, Some("h"), &name("A"), Uid::new(1).expect("uid"), None);
        assert!(held.may_hold(&meta(2, None, Some(100), Some(5))));
        assert!(!held.may_hold(&meta(2, None, Some(101), Some(5))));
        assert!(!held.may_hold(&meta(2, None, Some(100), None)));
        assert!(!held.may_hold(&meta(2, None, None, Some(5))));
        let id = identities(&meta(2, None, Some(100), Some(5)), Some("h"));
        assert!(held.find(&id, &name("B")).is_some());
    }

    #[test]
    fn trash_and_junk_take_no_part_on_labels_only() {
        let with = |text: &str, role: Option<SpecialUse>| MailboxInfo {
            special_use: role.into_iter().collect(),
            ..MailboxInfo::new(name(text))
        };
        let listed = [
            with("All", Some(SpecialUse::All)),
            with("Bin", Some(SpecialUse::Trash)),
            with("Spam", Some(SpecialUse::Junk)),
            with("Sent", Some(SpecialUse::Sent)),
            with("Trash", None),
        ];
        let labels = Held::new(true, true, &listed);
        let plain = Held::new(true, false, &listed);
        assert!(labels.excluded(&name("Bin")) && labels.excluded(&name("Spam")));
        assert!(!labels.excluded(&name("Sent")) && !labels.excluded(&name("Trash")));
        assert!(!plain.excluded(&name("Bin")));
        // All mail is read on a label destination only.
        assert_eq!(labels.all_mail_to_read(), Some(&name("All")));
        assert!(labels.is_all_mail(&name("All")) && !labels.is_all_mail(&name("Sent")));
        assert_eq!(plain.all_mail_to_read(), None);
        assert!(!plain.is_all_mail(&name("All")));
    }
}
