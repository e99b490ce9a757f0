//! A real `doveadm dsync-server` as a read-only source through `adapters::remote`.

use dsync_core::adapters::remote::{RemoteCommand, RemoteStorage};
use dsync_core::{MailboxName, Storage};
use testkit::{Dovecot, RawImap};

#[test]
fn attributes_and_mail_of_a_remote_dovecot_reach_the_engine() {
    let dovecot = Dovecot::builder()
        .user("alice", "alice-pw")
        .extra_config("mail_attribute_dict = file:%h/dovecot-attributes")
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alice-pw");
    imap.create("Archive");
    imap.append("Archive", &["\\Seen", "Work"], None, b"Subject: a\r\n\r\nbody\r\n");
    imap.logout();
    let set = |mailbox: &str, key: &str, value: &str| {
        dovecot.doveadm_ok(&["mailbox", "metadata", "set", "-u", "alice", mailbox, key, value]);
    };
    set("INBOX", "/private/comment", "inbox note");
    set("Archive", "/shared/comment", "shared note");

    let command =
        RemoteCommand::from_command_line(&dovecot.dsync_server_command("alice")).expect("command");
    let mut remote = RemoteStorage::connect(command).expect("connect");
    let archive = MailboxName::new(["Archive"]).expect("name");
    // Attributes first, then the mail list of the same mailbox (one visit), then another
    // mailbox's attributes: the adapter follows the engine's order.
    let archive_attributes = remote.attributes(&archive).expect("attributes");
    let contents = remote.contents(&archive).expect("contents");
    assert_eq!(contents.messages.len(), 1);
    assert!(contents.messages[0].flags.keywords.contains("Work"));
    assert!(contents.messages[0].received.is_some());
    let inbox_attributes = remote.attributes(&MailboxName::inbox()).expect("attributes");
    remote.finish().expect("clean end");

    let find = |list: &[dsync_core::MailboxAttribute], private: bool| {
        list.iter()
            .find(|a| a.key == "comment" && a.private == private)
            .and_then(|a| a.value.clone())
    };
    assert_eq!(find(&inbox_attributes, true).as_deref(), Some(&b"inbox note"[..]));
    assert_eq!(find(&archive_attributes, false).as_deref(), Some(&b"shared note"[..]));
}
