//! Dovecot writes (APPEND, STORE, EXPUNGE); we read its Maildir and must see what its IMAP
//! shows.

use mailstore::{Location, Maildir};
use testkit::{Dovecot, RawImap, fixtures};

use crate::support::{our_snapshot, selectable_only};

#[test]
fn we_read_what_dovecot_wrote() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut imap);
    imap.store("INBOX", "2", "-FLAGS ($Label1)");
    imap.store("INBOX", "4", "+FLAGS (\\Flagged $Label1)");
    let theirs = selectable_only(imap.snapshot());
    assert!(theirs.message_count() > 10);

    let maildir = Maildir::open(Location::maildir(dovecot.home("alice").join("Maildir")));
    let ours = our_snapshot(&maildir);
    theirs.assert_same(&ours);
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
}

#[test]
fn dovecot_expunges_are_read_from_its_maildir_index() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    imap.create("Work");
    for index in 0..5 {
        imap.append("Work", &[], None, &fixtures::message(index, "work", "w"));
    }
    imap.expunge_uids("Work", "2,4");
    imap.logout();

    let maildir = Maildir::open(Location::maildir(dovecot.home("alice").join("Maildir")));
    let work = maildir.mailbox(&"Work".parse().unwrap()).unwrap();
    let history = work.dovecot_expunges().unwrap().expect("Dovecot indexed Work");
    assert_eq!(history.uid_validity, work.status().unwrap().uid_validity);
    let uids: Vec<u32> = history.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [2, 4], "{history:?}");
    // Dovecot 2.3.19.1's Maildir writes EXPUNGE_GUID records with an empty GUID.
    assert!(history.messages.iter().all(|m| m.guid_128.is_none()), "{history:?}");
    // A folder Dovecot never opened has no history.
    let fresh = maildir.create_mailbox(&"Fresh".parse().unwrap(), None, None).unwrap();
    assert_eq!(fresh.dovecot_expunges().unwrap(), None);
}

#[test]
fn dovecot_mailbox_deletes_and_renames_are_read_from_its_mailbox_log() {
    use mailstore::MailboxChangeKind;
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    for folder in ["Doomed", "Moving"] {
        imap.create(folder);
        imap.append(folder, &[], None, &fixtures::message(1, folder, "x"));
    }
    let maildir = Maildir::open(Location::maildir(dovecot.home("alice").join("Maildir")));
    let guid_of = |name: &str| {
        let mailbox = maildir.mailbox(&name.parse().unwrap()).unwrap();
        *mailbox.status().unwrap().guid.unwrap().as_bytes()
    };
    let (doomed, moving) = (guid_of("Doomed"), guid_of("Moving"));
    imap.command_ok("DELETE Doomed");
    imap.command_ok("RENAME Moving Moved");
    imap.logout();

    let changes = maildir.dovecot_mailbox_changes().unwrap();
    assert!(
        changes.iter().any(|c| c.kind == MailboxChangeKind::DeleteMailbox && c.guid == doomed),
        "{changes:?}"
    );
    // A rename is logged under the new name (a hash of it), not the mailbox GUID.
    assert!(
        changes.iter().any(|c| c.kind == MailboxChangeKind::Rename && c.names("Moved")),
        "{changes:?}"
    );
    assert!(!changes.iter().any(|c| c.guid == moving), "{changes:?}");
}
