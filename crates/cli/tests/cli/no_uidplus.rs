//! An IMAP destination without UIDPLUS: a Dovecot whose `imap_capability` leaves UIDPLUS
//! out, behind a proxy that also removes the `[APPENDUID …]` codes Dovecot sends anyway
//! (a fault Dovecot cannot be configured into: servers without UIDPLUS exist, and then an
//! APPEND says nothing of the UID it gave). Saves are paired by content at the next
//! listing, never stored twice, and an expunge never removes a message someone else
//! marked `\Deleted`: with such a message present it is left for a later run.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use testkit::{Dovecot, RawImap, fixtures};

use super::imap_destination::{
    DESTINATION_PASSWORD, Servers, assert_carried, pairs_hold, run_into_bob, uid_nexts,
};
use super::{PASSWORD, text};

/// Forwards every connection to `target`, dropping `[APPENDUID …] ` from what the server
/// says. Runs until the test process ends.
fn strip_appenduid_proxy(target: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            std::thread::spawn(move || forward(client, target));
        }
    });
    port
}

fn forward(client: TcpStream, target: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { return };
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut from_server = BufReader::new(server);
    let mut to_client = client;
    let mut line = Vec::new();
    loop {
        line.clear();
        match from_server.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let marker = b"[APPENDUID ";
        if let Some(start) = line.windows(marker.len()).position(|w| w == marker)
            && let Some(end) = line[start..].iter().position(|&b| b == b']')
        {
            let end = (start + end + 2).min(line.len());
            line.drain(start..end);
        }
        if to_client.write_all(&line).is_err() {
            break;
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
}

#[test]
fn without_uidplus_saves_pair_by_content_and_expunges_spare_others_deleted_mail() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    for index in 1..=5 {
        imap.append("INBOX", &["\\Seen"], None, &fixtures::message(index, "m", "from A"));
    }
    drop(imap);
    let destination = Dovecot::builder()
        .user("bob", DESTINATION_PASSWORD)
        .extra_config("imap_capability = IMAP4rev1 SASL-IR ID ENABLE LITERAL+ CONDSTORE ESEARCH\n")
        .start();
    let proxy = strip_appenduid_proxy(destination.imap_port());
    let mut theirs = RawImap::login(destination.imap_port(), "bob", DESTINATION_PASSWORD);
    theirs.append("INBOX", &[], None, &fixtures::message(50, "theirs", "not ours"));
    drop(theirs);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bob.pw"), format!("{DESTINATION_PASSWORD}\n")).expect("pw");
    let servers = Servers { source, destination, dir };
    let source = format!("imap://alice@127.0.0.1:{}?tls=none", servers.source.imap_port());
    let target = format!("imap://bob@127.0.0.1:{proxy}?tls=none");
    let locations = [source.as_str(), target.as_str()];
    let run = || run_into_bob(servers.dir.path(), &["backup"], &[], locations, Some(PASSWORD));

    // The saves' UIDs are unknown; the next run finds them by content, stores nothing.
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let after_first = servers.destination_imap().snapshot();
    assert_eq!(after_first.mailboxes["INBOX"].messages.len(), 6);
    let second = run();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let after_second = servers.destination_imap().snapshot();
    assert_eq!(uid_nexts(&after_second), uid_nexts(&after_first), "nothing stored twice");
    let expected = servers.source_imap().snapshot();
    assert_eq!(pairs_hold(&servers.state(), &expected, &after_second), 5, "paired by content");

    // A expunges one of ours; a mail client on B marked its own message \Deleted.
    let gone = expected.mailboxes["INBOX"].messages[0].uid.to_string();
    servers.source_imap().expunge_uids("INBOX", &gone);
    let theirs_uid = after_second.mailboxes["INBOX"]
        .messages
        .iter()
        .find(|m| m.body.windows(8).any(|w| w == b"not ours"))
        .expect("their message")
        .uid
        .to_string();
    servers.destination_imap().store("INBOX", &theirs_uid, "+FLAGS (\\Deleted)");
    let withheld = run();
    assert_eq!(withheld.status.code(), Some(0), "{}", text(&withheld));
    assert!(text(&withheld).contains("no UIDPLUS"), "{}", text(&withheld));
    let now = servers.destination_imap().snapshot();
    let inbox = &now.mailboxes["INBOX"].messages;
    assert_eq!(inbox.len(), 6, "nothing expunged while their message is marked");
    let marked: Vec<String> = inbox
        .iter()
        .filter(|m| m.flags.iter().any(|f| f == "\\Deleted"))
        .map(|m| m.uid.to_string())
        .collect();
    assert_eq!(marked, std::slice::from_ref(&theirs_uid), "ours not left marked \\Deleted");

    // Once nobody else's message is marked, the expunge the state remembered happens.
    servers.destination_imap().store("INBOX", &theirs_uid, "-FLAGS (\\Deleted)");
    let done = run();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    let now = servers.destination_imap().snapshot();
    assert_eq!(now.mailboxes["INBOX"].messages.len(), 5, "ours expunged, theirs kept");
    let source_now = servers.source_imap().snapshot();
    let mut ours_only = now.clone();
    if let Some(inbox) = ours_only.mailboxes.get_mut("INBOX") {
        inbox.messages.retain(|m| !m.body.windows(8).any(|w| w == b"not ours"));
    }
    assert_carried(&source_now, &ours_only);
}
