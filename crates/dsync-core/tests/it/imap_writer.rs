//! The IMAP destination's writer against Dovecot: flag changes sent with CONDSTORE's
//! `UNCHANGEDSINCE` leave a message a mail client changed after the listing as the client
//! left it, and say which (the engine then keeps its last base for that pair).

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::{Flags, MailboxName, Storage, StorageMut, Uid};
use imapc::{ConnectOptions, Credentials, Security};
use testkit::{Dovecot, RawImap, fixtures};

#[test]
fn flag_changes_spare_messages_changed_since_the_listing() {
    let dovecot = Dovecot::builder().start();
    let mut oracle = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    for index in 1..=3 {
        oracle.append("INBOX", &[], None, &fixtures::message(index, "m", "x"));
    }
    let options = ConnectOptions::new("127.0.0.1", dovecot.imap_port(), Security::Plain);
    let mut storage =
        ImapStorage::connect(&options, &Credentials::new("alice", "alicepw")).expect("log in");
    let inbox = MailboxName::inbox();
    let listed = storage.contents(&inbox).expect("listing");
    let modseq = listed.status.highest_modseq.expect("Dovecot has CONDSTORE");

    // After the listing a mail client flags message 2.
    oracle.store("INBOX", "2", "+FLAGS (\\Flagged)");

    let uid = |n: u32| Uid::new(n).expect("non-zero");
    let seen = Flags::from_imap_names(["\\Seen"]);
    let mut writer = storage.writer(&inbox).expect("writer");
    writer.unchanged_since(modseq);
    for n in 1..=3 {
        writer.set_flags(uid(n), &seen).expect("staged");
    }
    writer.commit().expect("stored");
    let left = writer.take_not_applied();
    assert_eq!(left.flags, [uid(2)], "only the message changed since the listing");
    drop(writer);
    let flags: Vec<Vec<String>> = oracle.messages("INBOX").into_iter().map(|m| m.flags).collect();
    assert_eq!(flags, [vec!["\\Seen"], vec!["\\Flagged"], vec!["\\Seen"]]);
}
