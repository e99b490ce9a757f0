//! What the model tests share: mailbox names, message bodies that carry their id, and
//! Maildirs in temporary directories.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::memory::{MemoryMailbox, MemoryMessage, MemoryStorage};
use dsync_core::{
    Flags, MailboxContents, MailboxName, MailboxStatus, MessageMeta, MessageSink, Storage,
    StorageError, Uid,
};
use mailstore::Durability;

/// A mailbox name written with `/` between its levels.
pub(crate) fn name(path: &str) -> MailboxName {
    MailboxName::split(path, Some('/')).expect("valid name")
}

/// A message body that carries `id` in its Message-ID (`<id@tag>`), so that it can be
/// told apart by its header hash and recognised again by [`id_of`].
pub(crate) fn body(id: u32, tag: &str) -> Vec<u8> {
    format!(
        "Date: day {id}\r\nMessage-ID: <{id}@{tag}>\r\nSubject: {tag} {id}\r\n\r\nbody {id}\r\n"
    )
    .into_bytes()
}

/// The id a [`body`] carries.
pub(crate) fn id_of(message: &MemoryMessage) -> u32 {
    let text = String::from_utf8_lossy(&message.body);
    let start = text.find("Message-ID: <").expect("model body") + "Message-ID: <".len();
    text[start..].split('@').next().and_then(|n| n.parse().ok()).expect("model id")
}

/// Appends message `id` (a [`body`] tagged `tag`, GUID `guid-{id}`, received at a time
/// that grows with the id) to `mailbox` at its UIDNEXT.
pub(crate) fn append(
    storage: &mut MemoryStorage,
    mailbox: &MailboxName,
    id: u32,
    tag: &str,
    flags: Flags,
) {
    let stored = storage.mailbox_mut(mailbox).expect("mailbox exists");
    let uid = stored.uid_next;
    let mut meta = MessageMeta::new(uid, flags);
    meta.received = Some(1_700_000_000 + i64::from(id));
    meta.guid = Some(format!("guid-{id}"));
    let bytes = body(id, tag);
    meta.virtual_size = Some(bytes.len() as u64);
    stored.messages.insert(uid, MemoryMessage { meta, body: bytes });
    stored.uid_next = uid.next().expect("room");
}

/// Expunges the `pick`th message of `mailbox` (counting round), returning the id it
/// carried; `None` when the mailbox is empty.
pub(crate) fn expunge_nth(mailbox: &mut MemoryMailbox, pick: usize) -> Option<u32> {
    let uid = mailbox.messages.keys().nth(pick % mailbox.messages.len().max(1)).copied()?;
    let id = id_of(&mailbox.messages[&uid]);
    mailbox.expunge(uid);
    Some(id)
}

/// The Maildir at `path`, saving without waiting for the disk (tests need no durability).
pub(crate) fn maildir(path: &Path) -> MaildirStorage {
    MaildirStorage::open(&format!("maildir:{}", path.display()), Durability::Deferred)
        .expect("location")
}

/// A sink that collects the bodies it is given, by UID.
#[derive(Default)]
struct Bodies {
    pending: Vec<u8>,
    by_uid: BTreeMap<Uid, Vec<u8>>,
}

impl MessageSink for Bodies {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        self.pending.clear();
        body.read_to_end(&mut self.pending).expect("read body");
        Ok(())
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        self.by_uid.insert(uid, std::mem::take(&mut self.pending));
        Ok(())
    }
}

/// Each message of a mailbox with its body (`None` where the storage sent none).
pub(crate) type MessagesRead = Vec<(MessageMeta, Option<Vec<u8>>)>;

/// A mailbox as a client reads it: its status and its messages.
pub(crate) fn read_mailbox(
    storage: &mut dyn Storage,
    mailbox: &MailboxName,
) -> (MailboxStatus, MessagesRead) {
    let MailboxContents { status, messages } = storage.contents(mailbox).expect("contents");
    let uids: Vec<Uid> = messages.iter().map(|m| m.uid).collect();
    let mut bodies = Bodies::default();
    storage.fetch(mailbox, &uids, &mut bodies).expect("fetch");
    let messages = messages
        .into_iter()
        .map(|meta| {
            let body = bodies.by_uid.remove(&meta.uid);
            (meta, body)
        })
        .collect();
    (status, messages)
}
