//! An EXAMINE and its metadata listing sent ahead, against Dovecot: behind a body fetch
//! (`uid_fetch_then_list`) or on their own (`send_examine_then_list`), read later as
//! `examine_then_list` reads them, or dropped by the next command; a mailbox that does not
//! exist fails where the listing is asked for, and the session goes on.

use imapc::proto::FetchItem;
use imapc::{Error, MailboxName, SequenceSet};

use crate::{Collect, login, populated};

#[test]
fn a_listing_sent_behind_a_fetch_reads_as_one_sent_alone() {
    let dovecot = populated();
    let mut session = login(&dovecot);
    let inbox = MailboxName::from_utf8("INBOX");
    let archive = MailboxName::from_utf8("Archive");
    // The first MODSEQ item turns CONDSTORE on (RFC 7162 §3.1): EXAMINEs report
    // HIGHESTMODSEQ from then on, so the reference is the second listing.
    session.examine_with_metadata(&archive, true).expect("alone");
    let (expected_info, expected) = session.examine_with_metadata(&archive, true).expect("alone");

    let info = session.examine(&inbox).expect("EXAMINE INBOX");
    let mut bodies = Collect::default();
    let items = [FetchItem::Uid, FetchItem::whole_message()];
    session
        .uid_fetch_then_list(&SequenceSet::all(), &items, &mut bodies, &archive, true)
        .expect("fetch");
    // The bodies are INBOX's, all of them.
    assert_eq!(bodies.messages.len(), info.exists as usize);
    assert_eq!(session.selected(), None, "Archive is not read yet");
    assert!(session.examine_sent(&archive));
    let info = session.finish_examine_then_list(&archive).expect("sent").expect("EXAMINE");
    assert_eq!(info, expected_info);
    assert_eq!(session.selected(), Some(&archive));
    let mut listed: Vec<_> = session.listing().collect::<Result<_, _>>().expect("listing");
    listed.sort_by_key(|m| m.uid);
    assert_eq!(listed, expected);
    session.noop().expect("in step");
    session.logout().expect("logout");
}

#[test]
fn a_listing_sent_ahead_and_not_asked_for_is_dropped_by_the_next_command() {
    let dovecot = populated();
    let mut session = login(&dovecot);
    let inbox = MailboxName::from_utf8("INBOX");
    let archive = MailboxName::from_utf8("Archive");
    let expected = session.examine(&inbox).expect("EXAMINE INBOX");

    session.send_examine_then_list(&archive, false);
    // Another mailbox's listing: Archive's answers are read and dropped first.
    assert!(session.finish_examine_then_list(&inbox).is_none());
    let (info, metadata) = session.examine_with_metadata(&inbox, false).expect("INBOX");
    assert_eq!(info, expected);
    assert_eq!(metadata.len(), info.exists as usize);
    assert!(!session.examine_sent(&archive));
    assert!(session.finish_examine_then_list(&archive).is_none(), "dropped");

    // Any command drops them, not only a SELECT.
    session.send_examine_then_list(&archive, false);
    session.noop().expect("NOOP");
    assert!(session.finish_examine_then_list(&archive).is_none(), "dropped");
    assert_eq!(session.examine(&inbox).expect("again"), expected);
    session.logout().expect("logout");
}

#[test]
fn a_missing_mailbox_sent_ahead_fails_when_its_listing_is_asked_for() {
    let dovecot = populated();
    let mut session = login(&dovecot);
    let inbox = MailboxName::from_utf8("INBOX");
    let missing = MailboxName::from_utf8("Does not exist");
    let info = session.examine(&inbox).expect("EXAMINE INBOX");

    let mut bodies = Collect::default();
    let items = [FetchItem::Uid, FetchItem::whole_message()];
    session
        .uid_fetch_then_list(&SequenceSet::all(), &items, &mut bodies, &missing, false)
        .expect("the fetch itself succeeds");
    assert_eq!(bodies.messages.len(), info.exists as usize);
    let error = session.finish_examine_then_list(&missing).expect("sent").expect_err("NO");
    assert!(matches!(error, Error::No { .. }), "{error}");
    assert_eq!(session.selected(), None);
    assert_eq!(session.listing().count(), 0);
    // Both answers were read: the session goes on.
    let (info, metadata) = session.examine_with_metadata(&inbox, true).expect("INBOX");
    assert_eq!(metadata.len(), info.exists as usize);
    session.logout().expect("logout");
}
