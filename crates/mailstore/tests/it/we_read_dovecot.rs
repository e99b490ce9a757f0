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
