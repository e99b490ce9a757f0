//! Message GUIDs in the metadata listings ([`Session::set_message_guids`]): Dovecot's
//! `X-GUID` survives a `COPY`, so a message and its copy report the same GUID; a server that
//! does not know the item refuses the whole `UID FETCH`, and the session stays usable.

use std::time::Duration;

use imapc::{
    Client, ConnectOptions, Credentials, Error, GuidItem, MailboxName, MessageMeta, Security,
    SequenceSet, Session, Timeouts, Uid,
};
use testkit::{Dovecot, FakeServer, RawImap, Step, fixtures};

use crate::login;

fn guids(metas: &[MessageMeta]) -> Vec<(u32, Option<String>)> {
    metas.iter().map(|m| (m.uid, m.guid.clone())).collect()
}

/// `X-GUID` of every message of `mailbox`, read by the independent oracle.
fn oracle_guids(oracle: &mut RawImap, mailbox: &str) -> Vec<String> {
    oracle.command_ok(&format!("EXAMINE \"{mailbox}\""));
    let response = oracle.command_ok("UID FETCH 1:* (UID X-GUID)");
    let mut found = Vec::new();
    for untagged in &response.untagged {
        let Some(testkit::Token::List(items)) = untagged.get(2) else { continue };
        let at = items.iter().position(|t| t.text().eq_ignore_ascii_case("X-GUID"));
        if let Some(at) = at {
            found.push(items[at + 1].text());
        }
    }
    found
}

#[test]
fn x_guid_is_listed_and_kept_by_copy() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut oracle = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    oracle.create("Copies");
    let first = oracle.append("INBOX", &["\\Seen"], None, &fixtures::message(1, "one", "first"));
    let second = oracle.append("INBOX", &[], None, &fixtures::message(2, "two", "second"));
    oracle.select("INBOX");
    oracle.command_ok(&format!("UID COPY {first} Copies"));
    let inbox_oracle = oracle_guids(&mut oracle, "INBOX");
    let copies_oracle = oracle_guids(&mut oracle, "Copies");

    let mut session = login(&dovecot);
    assert_eq!(session.message_guids(), None, "off by default");
    let item = GuidItem::for_capabilities(session.capabilities());
    assert_eq!(item, GuidItem::XGuid, "Dovecot announces no X-GM-EXT-1");
    session.set_message_guids(Some(item));
    assert_eq!(session.message_guids(), Some(GuidItem::XGuid));

    let inbox = MailboxName::from_utf8("INBOX");
    let copies = MailboxName::from_utf8("Copies");
    let (_, in_inbox) = session.examine_with_metadata(&inbox, false).expect("INBOX listing");
    assert_eq!(in_inbox.len(), 2);
    let first_guid = in_inbox[0].guid.clone().expect("X-GUID of the first message");
    let second_guid = in_inbox[1].guid.clone().expect("X-GUID of the second message");
    assert!(!first_guid.is_empty() && !second_guid.is_empty());
    assert_ne!(first_guid, second_guid, "different messages, different GUIDs");
    assert_eq!(inbox_oracle, [first_guid.clone(), second_guid.clone()], "what Dovecot says");
    assert_eq!(in_inbox[0].uid, first);
    assert_eq!(in_inbox[1].uid, second);

    // The other listings ask for it too.
    let all = session.fetch_metadata_all().expect("fetch_metadata_all");
    assert_eq!(guids(&all), guids(&in_inbox));
    let mut one = Vec::new();
    session
        .fetch_metadata(&SequenceSet::single(Uid::new(second).expect("uid")), true, &mut |m| {
            one.push(m);
            Ok(())
        })
        .expect("fetch_metadata");
    assert_eq!(guids(&one), [(second, Some(second_guid.clone()))]);

    // The copy in the other folder has the original's GUID.
    let (_, in_copies) = session.examine_with_metadata(&copies, false).expect("Copies listing");
    assert_eq!(in_copies.len(), 1);
    assert_eq!(in_copies[0].guid.as_deref(), Some(first_guid.as_str()), "COPY keeps X-GUID");
    assert_eq!(copies_oracle, [first_guid]);

    // Off again: no GUIDs.
    session.set_message_guids(None);
    let (_, plain) = session.examine_with_metadata(&inbox, false).expect("plain listing");
    assert_eq!(guids(&plain), [(first, None), (second, None)]);
    session.logout().expect("LOGOUT");
}

#[test]
fn a_refused_guid_item_fails_the_listing_and_the_session_goes_on() {
    // Dovecot does not know Gmail's X-GM-MSGID: its BAD is what a server without X-GUID
    // answers.
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut oracle = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    oracle.append("INBOX", &[], None, &fixtures::message(1, "one", "first"));
    let mut session = login(&dovecot);
    session.set_message_guids(Some(GuidItem::GmailMessageId));
    let inbox = MailboxName::from_utf8("INBOX");
    let refused = session.examine_with_metadata(&inbox, false).expect_err("X-GM-MSGID refused");
    assert!(
        matches!(refused, Error::Bad { command: "UID FETCH", .. }),
        "a BAD to the UID FETCH: {refused:?}"
    );
    assert!(!refused.is_fatal());
    assert!(session.fetch_metadata_all().is_err(), "still asked for");
    session.set_message_guids(None);
    let (_, listed) = session.examine_with_metadata(&inbox, false).expect("without GUIDs");
    assert_eq!(guids(&listed), [(1, None)]);
}

fn open_fake(server: &FakeServer) -> Session {
    let options =
        ConnectOptions::new("127.0.0.1", server.port(), Security::Plain).timeouts(Timeouts {
            connect: Duration::from_secs(2),
            read: Some(Duration::from_secs(2)),
            write: Some(Duration::from_secs(2)),
        });
    Client::connect(&options)
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .map_err(|(e, _)| e)
        .expect("login")
}

#[test]
fn gmail_message_id_is_the_guid_in_decimal() {
    // A fake: no Gmail can be run here. It answers as Gmail does, X-GM-MSGID among the
    // metadata items.
    const CAPABILITIES: &str = "IMAP4rev1 SASL-IR UIDPLUS X-GM-EXT-1 AUTH=PLAIN";
    let server = FakeServer::start(vec![
        Step::send(&format!("* OK [CAPABILITY {CAPABILITIES}] Gimap ready\r\n")),
        Step::Read,
        Step::send(&format!("{{tag}} OK [CAPABILITY {CAPABILITIES}] alice authenticated\r\n")),
        // EXAMINE and UID FETCH, back to back.
        Step::Read,
        Step::Read,
        Step::send(
            "* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 3] UIDs valid.\r\n* 1 EXISTS\r\n\
             * OK [UIDNEXT 9] Predicted next UID.\r\nA2 OK [READ-ONLY] INBOX selected.\r\n\
             * 1 FETCH (X-GM-MSGID 1278455344230334865 UID 8 FLAGS (\\Seen) \
             INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" RFC822.SIZE 120)\r\n\
             A3 OK Success\r\n",
        ),
    ]);
    let mut session = open_fake(&server);
    let item = GuidItem::for_capabilities(session.capabilities());
    assert_eq!(item, GuidItem::GmailMessageId);
    session.set_message_guids(Some(item));
    let (_, listed) =
        session.examine_with_metadata(&MailboxName::from_utf8("INBOX"), false).expect("listing");
    assert_eq!(guids(&listed), [(8, Some("1278455344230334865".to_owned()))]);
    drop(session);
    let lines = server.finish();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE X-GM-MSGID)")),
        "{lines:?}"
    );
}
