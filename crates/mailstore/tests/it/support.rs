//! Helpers shared by the integration tests.

use std::io::{Read, Write};

use mailstore::{Flags, Keyword, MailboxName, Maildir, SaveOptions};
use testkit::{AccountSnapshot, MailboxSnapshot, MessageSnapshot};

/// The IMAP (raw, modified UTF-7, `/`-separated) name of a mailbox.
pub(crate) fn imap_name(name: &MailboxName) -> String {
    name.components().iter().map(|c| mutf7::encode(c)).collect::<Vec<_>>().join("/")
}

/// Everything a client would see, read with our reader (bodies as IMAP serves them).
pub(crate) fn our_snapshot(maildir: &Maildir) -> AccountSnapshot {
    let mut snapshot = AccountSnapshot::default();
    for name in maildir.subscriptions().unwrap() {
        snapshot.subscriptions.insert(imap_name(&name));
    }
    for entry in maildir.mailboxes().unwrap() {
        if !entry.selectable {
            continue;
        }
        let mailbox = maildir.mailbox(&entry.name).unwrap();
        let status = mailbox.status().unwrap();
        let mut messages = Vec::new();
        for info in mailbox.messages().unwrap() {
            let mut flags: Vec<String> = info.flags.imap_names().map(str::to_string).collect();
            flags.extend(info.keywords.iter().map(ToString::to_string));
            flags.sort();
            let mut body = Vec::new();
            mailbox.open_message(info.uid).unwrap().crlf().read_to_end(&mut body).unwrap();
            assert_eq!(
                body.len() as u64,
                info.virtual_size,
                "{} uid {}: W= vs served bytes",
                entry.name,
                info.uid
            );
            messages.push(MessageSnapshot {
                uid: info.uid,
                flags,
                internal_date: info.received,
                body,
            });
        }
        assert_eq!(status.messages as usize, messages.len());
        snapshot.mailboxes.insert(
            imap_name(&entry.name),
            MailboxSnapshot {
                selectable: true,
                uid_validity: status.uid_validity,
                uid_next: status.next_uid,
                messages,
            },
        );
    }
    snapshot
}

/// Drops `\Noselect` entries (parents that only exist in IMAP's view of Maildir++).
pub(crate) fn selectable_only(mut snapshot: AccountSnapshot) -> AccountSnapshot {
    snapshot.mailboxes.retain(|_, m| m.selectable);
    snapshot
}

/// Saves one message with the given attributes.
pub(crate) fn save(
    mailbox: &mut mailstore::Mailbox,
    uid: u32,
    flags: Flags,
    keywords: &[&str],
    received: i64,
    body: &[u8],
) {
    let mut pending = mailbox.begin_save().unwrap();
    // Write in small pieces: conversion must not depend on chunking.
    for chunk in body.chunks(7) {
        pending.write_all(chunk).unwrap();
    }
    let keywords = keywords.iter().map(|k| Keyword::new(*k).unwrap()).collect();
    let options = SaveOptions::default()
        .with_uid(uid)
        .with_flags(flags)
        .with_keywords(keywords)
        .with_received(received);
    mailbox.save(pending, options).unwrap();
}

/// `name` parsed with `/`.
pub(crate) fn name(text: &str) -> MailboxName {
    text.parse().unwrap()
}
