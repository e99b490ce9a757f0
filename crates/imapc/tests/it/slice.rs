//! The engine's slice: login, LIST, subscriptions, EXAMINE, metadata and body fetch,
//! against Dovecot and compared with the RawImap oracle.

use imapc::proto::{BodyData, FetchItem, ListAttribute, StatusItem};
use imapc::{Client, Credentials, Error, Flag, ListOptions, MailboxName, SequenceSet, Uid};
use testkit::{Dovecot, RawImap, fixtures};

use crate::{Collect, login, plain, populated};

#[test]
fn login_ok_and_wrong_password_hands_the_client_back() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let client = Client::connect(&plain(&dovecot)).expect("connect");
    assert!(client.capabilities().has("IMAP4rev1"));
    let (error, client) =
        client.login(&Credentials::new("alice", "wrong")).expect_err("a wrong password must fail");
    assert!(matches!(error, Error::AuthenticationFailed { .. }), "{error}");
    assert!(!format!("{error} {error:?}").contains("wrong"), "no password in errors");
    // The same client can retry.
    let session =
        client.login(&Credentials::new("alice", "alicepw")).map_err(|(e, _)| e).expect("retry");
    assert!(
        session.has_capability("UIDPLUS"),
        "post-login capabilities: {:?}",
        session.capabilities()
    );
    session.logout().expect("logout");
}

#[test]
fn list_subscriptions_examine_and_fetch_match_the_oracle() {
    let dovecot = populated();
    let mut session = login(&dovecot);

    // LIST: nested and non-ASCII names, delimiter, \Noselect parent.
    let entries = session.list("", "*").expect("LIST");
    let names: Vec<String> = entries.iter().map(|e| e.name.display().into_owned()).collect();
    for expected in
        ["INBOX", "Archive", "Archive/2023", "Entwürfe", "R&D", "Project Notes", "Parent/Child"]
    {
        assert!(names.contains(&expected.to_owned()), "{expected} missing from {names:?}");
    }
    let drafts = entries.iter().find(|e| e.name.decoded() == Some("Entwürfe")).expect("Entwürfe");
    assert_eq!(drafts.name.as_raw(), fixtures::NON_ASCII_FOLDER.as_bytes());
    assert!(entries.iter().all(|e| e.delimiter == Some('/')));
    let parent = entries.iter().find(|e| e.name.as_raw() == b"Parent").expect("Parent");
    assert!(parent.is_noselect(), "{parent:?}");
    let sent = entries.iter().find(|e| e.name.as_raw() == b"Sent").expect("Sent");
    assert_eq!(sent.special_use(), Some(&ListAttribute::Sent));

    // Subscriptions, both ways.
    let mut oracle = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let mut expected_subscriptions = oracle.subscriptions();
    expected_subscriptions.sort();
    let mut listed: Vec<String> = session
        .list_subscribed()
        .expect("LIST (SUBSCRIBED)")
        .iter()
        .map(|e| String::from_utf8_lossy(e.name.as_raw()).into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, expected_subscriptions);
    let mut lsub: Vec<String> = session
        .lsub("", "*")
        .expect("LSUB")
        .iter()
        .map(|e| String::from_utf8_lossy(e.name.as_raw()).into_owned())
        .collect();
    lsub.sort();
    assert_eq!(lsub, expected_subscriptions);

    // The same two LISTs in one round trip give the same answers.
    let options = ListOptions {
        return_special_use: true,
        return_status: vec![StatusItem::Messages, StatusItem::UidNext, StatusItem::UidValidity],
        ..ListOptions::all()
    };
    let alone = session.list_extended(&options).expect("LIST-STATUS");
    let (together, subscribed) = session.list_with_subscribed(&options).expect("both LISTs");
    assert_eq!(together, alone);
    let mut subscribed: Vec<String> =
        subscribed.iter().map(|e| String::from_utf8_lossy(e.name.as_raw()).into_owned()).collect();
    subscribed.sort();
    assert_eq!(subscribed, expected_subscriptions);
    let (root, enabled) = session.list_and_enable("", "", &["CONDSTORE"]).expect("LIST + ENABLE");
    assert_eq!(root, session.list("", "").expect("LIST"));
    assert_eq!(enabled, ["CONDSTORE"]);

    // Every selectable mailbox: EXAMINE values and fetched messages equal the oracle's.
    for (raw_name, attributes) in oracle.list() {
        if attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect")) {
            continue;
        }
        let name = MailboxName::from_mutf7(raw_name.as_bytes());
        let (messages, uid_next, uid_validity) = oracle.status(&raw_name);
        let info = session.examine(&name).expect("EXAMINE");
        assert_eq!(info.uid_validity.get(), uid_validity, "{raw_name}");
        assert_eq!(info.uid_next.map(Uid::get), Some(uid_next), "{raw_name}");
        assert_eq!(info.exists, messages, "{raw_name}");
        assert!(info.read_only);
        assert!(info.permanent_flags.is_empty() || info.permanent_flags.contains(&Flag::MayCreate));

        let status = session
            .status(
                &name,
                &[
                    StatusItem::Messages,
                    StatusItem::UidNext,
                    StatusItem::UidValidity,
                    StatusItem::HighestModSeq,
                ],
            )
            .expect("STATUS");
        assert_eq!(
            (status.messages, status.uid_next, status.uid_validity),
            (Some(messages), Some(uid_next), Some(uid_validity))
        );
        assert!(status.highest_modseq.is_some());

        let expected = oracle.messages(&raw_name);
        let metadata = session.fetch_metadata_all().expect("metadata");
        assert_eq!(metadata.len(), expected.len(), "{raw_name}");
        let mut collect = Collect::default();
        let items = [
            FetchItem::Uid,
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
            FetchItem::whole_message(),
        ];
        let uids = SequenceSet::from_uids(metadata.iter().filter_map(|m| Uid::new(m.uid)));
        if !uids.is_empty() {
            session.uid_fetch(&uids, &items, &mut collect).expect("UID FETCH");
        }
        assert_eq!(collect.messages.len(), expected.len(), "{raw_name}");
        for (meta, oracle_message) in metadata.iter().zip(&expected) {
            assert_eq!(meta.uid, oracle_message.uid);
            let mut flags: Vec<String> = meta.flags.iter().map(ToString::to_string).collect();
            flags.sort();
            assert_eq!(flags, oracle_message.flags, "{raw_name} uid {}", meta.uid);
            assert_eq!(
                meta.internal_date.map(|d| d.timestamp()),
                Some(oracle_message.internal_date)
            );
            let (fetch, bodies) = &collect.messages[&oracle_message.uid];
            assert_eq!(bodies.len(), 1);
            assert_eq!(bodies[0].0, "");
            assert!(
                bodies[0].1 == oracle_message.body,
                "{raw_name} uid {}: body differs",
                meta.uid
            );
            assert_eq!(fetch.bodies[0].data, BodyData::Streamed(oracle_message.body.len() as u64));
            assert_eq!(fetch.rfc822_size, Some(meta.rfc822_size));
            assert_eq!(fetch.internal_date, meta.internal_date);
        }
    }
    session.logout().expect("logout");
}

#[test]
fn examine_with_metadata_and_streamed_equal_examine_then_fetch_and_survive_a_missing_mailbox() {
    let dovecot = populated();
    let mut session = login(&dovecot);
    for entry in session.list("", "*").expect("LIST") {
        if entry.is_noselect() {
            continue;
        }
        let info = session.examine(&entry.name).expect("EXAMINE");
        let metadata = session.fetch_metadata_all().expect("metadata");
        let (pipelined_info, pipelined) =
            session.examine_with_metadata(&entry.name, false).expect("pipelined");
        assert_eq!(pipelined_info, info, "{}", entry.name);
        assert_eq!(pipelined, metadata, "{}", entry.name);
        assert_eq!(session.selected(), Some(&entry.name));
        // Streamed: Dovecot answers in ascending UID order, so the same listing as read.
        let (streamed_info, listing) =
            session.examine_listing(&entry.name, false).expect("streamed");
        assert_eq!(streamed_info, info, "{}", entry.name);
        let streamed: Vec<_> = listing.collect::<Result<_, _>>().expect("streamed listing");
        assert_eq!(streamed, metadata, "{}", entry.name);
        // Stopped after the first answer: the rest is read when it is dropped.
        let (_, mut listing) = session.examine_listing(&entry.name, false).expect("again");
        let first = listing.next().transpose().expect("first answer");
        assert_eq!(first.as_ref(), metadata.first(), "{}", entry.name);
        drop(listing);
        assert_eq!(session.examine(&entry.name).expect("EXAMINE after").exists, info.exists);
        // Not read at all: the next command reads it first, and it is gone.
        session.examine_then_list(&entry.name, false).expect("started");
        assert_eq!(session.examine(&entry.name).expect("EXAMINE after").exists, info.exists);
        assert_eq!(session.listing().count(), 0, "{}", entry.name);
    }
    let missing = MailboxName::from_utf8("Does not exist");
    let error = session.examine_with_metadata(&missing, true).expect_err("missing mailbox");
    assert!(matches!(error, Error::No { .. }), "{error}");
    assert_eq!(session.selected(), None);
    // Both answers were read: the session goes on.
    let inbox = MailboxName::from_utf8("INBOX");
    let (info, metadata) = session.examine_with_metadata(&inbox, true).expect("INBOX");
    assert_eq!(metadata.len(), info.exists as usize);
    assert!(metadata.iter().all(|m| m.modseq.is_some()));
    session.logout().expect("logout");
}
