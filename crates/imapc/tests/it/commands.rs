//! Every command Dovecot supports, checked through the RawImap oracle where it changes
//! state.

use chrono::DateTime;
use imapc::proto::{
    AppendMessage, FetchItem, ListAttribute, Qresync, SearchKey, StatusItem, StoreAction,
};
use imapc::{Error, Flag, ListOptions, MailboxName, SelectOptions, SequenceSet, Uid};
use testkit::{Dovecot, RawImap, fixtures};

use crate::{Collect, login};

fn uid(n: u32) -> Uid {
    Uid::new(n).expect("non-zero")
}

#[test]
fn session_commands_against_dovecot() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut oracle = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    fixtures::populate_standard(&mut oracle);
    let mut session = login(&dovecot);
    session.noop().expect("NOOP");

    // ID and NAMESPACE.
    let id =
        session.id(Some(&[("name", "dsync-rs"), ("version", "0.1")])).expect("ID").expect("fields");
    assert!(
        id.iter().any(|(k, v)| k.eq_ignore_ascii_case("name") && v.as_deref() == Some("Dovecot")),
        "{id:?}"
    );
    let namespaces = session.namespace().expect("NAMESPACE");
    assert_eq!(namespaces.personal.len(), 1);
    assert_eq!(namespaces.personal[0].delimiter, Some('/'));

    // ENABLE: Dovecot 2.3 has CONDSTORE and QRESYNC, not UTF8=ACCEPT.
    let enabled = session.enable(&["QRESYNC", "CONDSTORE", "UTF8=ACCEPT"]).expect("ENABLE");
    assert!(enabled.iter().any(|c| c == "QRESYNC"), "{enabled:?}");
    assert!(!enabled.iter().any(|c| c == "UTF8=ACCEPT"));

    // LIST-EXTENDED: special-use selection, RETURN (SPECIAL-USE SUBSCRIBED CHILDREN STATUS).
    let special = session
        .list_extended(&ListOptions { special_use_only: true, ..ListOptions::all() })
        .expect("LIST (SPECIAL-USE)");
    let mut special_names: Vec<_> = special.entries.iter().map(|e| e.name.to_string()).collect();
    special_names.sort();
    assert_eq!(special_names, ["Sent", "Trash"]);
    let full = session
        .list_extended(&ListOptions {
            return_special_use: true,
            return_subscribed: true,
            return_children: true,
            return_status: vec![
                StatusItem::Messages,
                StatusItem::UidValidity,
                StatusItem::HighestModSeq,
            ],
            ..ListOptions::all()
        })
        .expect("LIST RETURN");
    let archive = full.entries.iter().find(|e| e.name.as_raw() == b"Archive").expect("Archive");
    assert!(
        archive.has(&ListAttribute::Subscribed) && archive.has(&ListAttribute::HasChildren),
        "{archive:?}"
    );
    let inbox_status = full.statuses.iter().find(|s| s.name.is_inbox()).expect("INBOX status");
    assert_eq!(inbox_status.messages, Some(8));
    assert!(full.statuses.len() >= 9, "a STATUS per selectable mailbox: {:?}", full.statuses.len());

    // SELECT (CONDSTORE): HIGHESTMODSEQ; UID SEARCH (ESEARCH) by keyword and modseq.
    let inbox = MailboxName::from_utf8("INBOX");
    let info = session
        .select_with(&inbox, false, &SelectOptions { condstore: true, qresync: None })
        .expect("SELECT");
    let modseq = info.highest_modseq.expect("HIGHESTMODSEQ");
    assert!(!info.read_only);
    assert_eq!(
        session.uid_search(&[SearchKey::Keyword("$Label1".into())]).expect("SEARCH"),
        [uid(2)]
    );
    assert_eq!(session.uid_search(&[SearchKey::All]).expect("SEARCH ALL").len(), 8);
    assert!(
        session.uid_search(&[SearchKey::ModSeq(modseq + 1)]).expect("SEARCH MODSEQ").is_empty()
    );

    // UID STORE with UNCHANGEDSINCE: refused for a stale modseq, applied otherwise.
    let modified = session
        .uid_store(&SequenceSet::single(uid(1)), StoreAction::Add, &[Flag::Flagged], Some(1))
        .expect("STORE UNCHANGEDSINCE");
    assert_eq!(modified.map(|m| m.to_string()), Some("1".into()));
    session
        .uid_store(
            &SequenceSet::single(uid(1)),
            StoreAction::Add,
            &[Flag::Flagged, Flag::keyword("$Test").expect("atom")],
            Some(modseq),
        )
        .expect("STORE");
    let flags = &oracle.messages("INBOX")[0].flags;
    assert!(flags.contains(&"\\Flagged".into()) && flags.contains(&"$Test".into()), "{flags:?}");

    // UID FETCH (CHANGEDSINCE m VANISHED) after an expunge elsewhere.
    oracle.expunge_uids("INBOX", "4");
    let mut collect = Collect::default();
    session
        .uid_fetch_changed_since(
            &SequenceSet::all(),
            &[FetchItem::Uid, FetchItem::Flags, FetchItem::ModSeq],
            modseq,
            true,
            &mut collect,
        )
        .expect("CHANGEDSINCE");
    assert!(
        collect.messages.contains_key(&1),
        "the flag change is reported: {:?}",
        collect.messages.keys()
    );
    assert!(collect.messages[&1].0.modseq.is_some_and(|m| m > modseq));

    // X-GUID (Dovecot), BINARY with literal8 for the 8-bit message, header fields, partials.
    let mut collect = Collect::default();
    let items = [
        FetchItem::Uid,
        FetchItem::XGuid,
        FetchItem::Binary { section: String::new(), peek: true },
        FetchItem::Body {
            section: "HEADER.FIELDS (Date Message-ID)".into(),
            partial: None,
            peek: true,
        },
        FetchItem::Body { section: String::new(), partial: Some((0, 10)), peek: true },
        FetchItem::Envelope,
        FetchItem::BodyStructure,
    ];
    session.uid_fetch(&SequenceSet::single(uid(7)), &items, &mut collect).expect("extra items");
    let (fetch, bodies) = &collect.messages[&7];
    // On Maildir, Dovecot's X-GUID is the file's base name ("1795428189.M322733P19965.vm,S=343,W=360"),
    // not a 128-bit GUID: Maildir has no GUIDs.
    assert!(fetch.x_guid.as_ref().is_some_and(|g| g.contains(",S=")), "{fetch:?}");
    assert_eq!(fetch.skipped.len(), 2, "ENVELOPE and BODYSTRUCTURE skipped: {:?}", fetch.skipped);
    let oracle_body =
        oracle.messages("INBOX").into_iter().find(|m| m.uid == 7).expect("uid 7").body;
    let binary = bodies.iter().find(|(s, data)| s.is_empty() && data.len() > 10).expect("BINARY[]");
    assert_eq!(binary.1, oracle_body);
    assert!(
        bodies.iter().any(|(s, data)| s.starts_with("HEADER.FIELDS") && data.starts_with(b"Date:"))
    );
    assert!(bodies.iter().any(|(_, data)| data.as_slice() == &oracle_body[..10]));
    assert!(fetch.bodies.iter().any(|b| b.section.kind == imapc::proto::BodyKind::Binary));

    // SELECT (QRESYNC …): VANISHED (EARLIER) and changed messages.
    let qresync = Qresync { uid_validity: info.uid_validity, modseq, known_uids: None };
    let resync = session
        .select_with(&inbox, true, &SelectOptions { condstore: false, qresync: Some(qresync) })
        .expect("SELECT QRESYNC");
    assert_eq!(resync.vanished.map(|v| v.to_string()), Some("4".into()));
    assert!(resync.changed.iter().any(|f| f.uid == Some(uid(1))));

    // APPEND with flags, keyword and INTERNALDATE; MULTIAPPEND; pipelined LITERAL+ APPENDs.
    let archive_name = MailboxName::from_utf8("Archive");
    let date = DateTime::parse_from_rfc3339("2021-03-04T05:06:07+05:30").expect("date");
    let flags = [Flag::Seen, Flag::keyword("$Label7").expect("atom"), Flag::Recent];
    let body = fixtures::message(500, "appended", "via imapc");
    let appended = session
        .append(
            &archive_name,
            &AppendMessage { flags: &flags, internal_date: Some(date), data: &body },
        )
        .expect("APPEND")
        .expect("APPENDUID");
    let stored = oracle.messages("Archive");
    let new = stored.iter().find(|m| m.uid == appended.uids[0].get()).expect("appended message");
    assert_eq!(new.body, body);
    assert_eq!(new.flags, ["$Label7", "\\Seen"]);
    assert_eq!(new.internal_date, date.timestamp());
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| fixtures::message(600 + i, "bulk", "x")).collect();
    let messages: Vec<AppendMessage<'_>> =
        bodies.iter().map(|b| AppendMessage { flags: &[], internal_date: None, data: b }).collect();
    let multi = session.append_many(&archive_name, &messages).expect("MULTIAPPEND");
    let pipelined = session.append_pipelined(&archive_name, &messages).expect("pipelined APPEND");
    assert_eq!(multi.len(), 5);
    assert_eq!(pipelined.len(), 5);
    assert!(
        multi
            .iter()
            .chain(&pipelined)
            .zip(multi.iter().chain(&pipelined).skip(1))
            .all(|(a, b)| a < b)
    );
    // (STATUS of the oracle's own selected mailbox would show its stale view.)
    oracle.select("INBOX");
    assert_eq!(oracle.status("Archive").0, 2 + 1 + 10);
    let refused = session
        .append(&MailboxName::from_utf8("Does/Not/Exist"), &messages[0])
        .expect_err("no such mailbox");
    assert!(
        matches!(&refused, Error::No { code: Some(code), .. } if code.name() == "TRYCREATE"),
        "{refused}"
    );

    // UID EXPUNGE only the given \Deleted UIDs.
    session.select(&archive_name).expect("SELECT Archive");
    let targets = SequenceSet::from_uids(multi.iter().copied());
    session.uid_store(&targets, StoreAction::Add, &[Flag::Deleted], None).expect("STORE \\Deleted");
    session.uid_expunge(&targets).expect("UID EXPUNGE");
    assert_eq!(oracle.status("Archive").0, 2 + 1 + 5);
    session.unselect().expect("UNSELECT");

    // CREATE, RENAME, SUBSCRIBE, UNSUBSCRIBE, DELETE; CREATE-SPECIAL-USE is not offered.
    let fresh = MailboxName::from_utf8("Neu/Übersicht");
    session.create(&fresh).expect("CREATE");
    session.subscribe(&fresh).expect("SUBSCRIBE");
    assert!(oracle.subscriptions().contains(&"Neu/&ANw-bersicht".to_string()));
    let renamed = MailboxName::from_utf8("Neu/Résumé");
    session.rename(&fresh, &renamed).expect("RENAME");
    assert!(oracle.list().iter().any(|(n, _)| n == "Neu/R&AOk-sum&AOk-"));
    session.unsubscribe(&renamed).expect("UNSUBSCRIBE");
    session.delete(&renamed).expect("DELETE");
    assert!(!oracle.list().iter().any(|(n, _)| n.starts_with("Neu/R")));
    assert!(matches!(
        session.create_special_use(&MailboxName::from_utf8("Later"), &[ListAttribute::Archive]),
        Err(Error::Unsupported { .. })
    ));
    let missing = session.delete(&MailboxName::from_utf8("Nope")).expect_err("DELETE missing");
    assert!(matches!(missing, Error::No { command: "DELETE", .. }), "{missing}");

    // CLOSE, then the session is still fine.
    session.select(&archive_name).expect("SELECT");
    session.close().expect("CLOSE");
    session.logout().expect("LOGOUT");
}
