//! `ImapStorage::fetch_message_guids`: listings of a Dovecot source carry its `X-GUID`s
//! (the same for a message and its `COPY`); a server that refuses the item is listed
//! without GUIDs, and the storage says so.

use std::time::Duration;

use dsync_core::adapters::imap::ImapStorage;
use dsync_core::{MailboxName, MessageMeta, Storage};
use imapc::{Client, ConnectOptions, Credentials, Security, Timeouts};
use testkit::{Dovecot, FakeServer, RawImap, Step, fixtures};

fn name(text: &str) -> MailboxName {
    MailboxName::split(text, Some('/')).expect("mailbox name")
}

fn guids(messages: &[MessageMeta]) -> Vec<(u32, Option<String>)> {
    messages.iter().map(|m| (m.uid.get(), m.guid.clone())).collect()
}

/// Base names of the Maildir files under `dir`'s `cur/` and `new/` (up to the `:2,` part).
fn maildir_base_names(dir: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("Maildir subdirectory") {
            let file = entry.expect("entry").file_name().to_string_lossy().into_owned();
            names.push(file.split(':').next().unwrap_or_default().to_owned());
        }
    }
    names
}

#[test]
fn dovecot_guids_are_listed_and_equal_across_a_copy() {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut oracle = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    oracle.create("Copies");
    let first = oracle.append("INBOX", &["\\Seen"], None, &fixtures::message(1, "one", "first"));
    let second = oracle.append("INBOX", &[], None, &fixtures::message(2, "two", "second"));
    oracle.select("INBOX");
    oracle.command_ok(&format!("UID COPY {first} Copies"));
    oracle.logout();

    let options = ConnectOptions::new("127.0.0.1", dovecot.imap_port(), Security::Plain);
    let credentials = Credentials::new("alice", "alicepw");

    // Not asked for: no GUIDs.
    let mut plain = ImapStorage::connect(&options, &credentials).expect("log in");
    let listed = plain.contents(&name("INBOX")).expect("INBOX");
    assert_eq!(guids(&listed.messages), [(first, None), (second, None)]);
    assert_eq!(plain.message_guids(), None);
    plain.logout().expect("LOGOUT");

    let mut source = ImapStorage::connect(&options, &credentials).expect("log in");
    source.fetch_message_guids();
    assert_eq!(source.message_guids(), None, "nothing listed yet");
    let inbox = source.contents(&name("INBOX")).expect("INBOX");
    assert_eq!(source.message_guids(), Some(true));
    let [one, two] = &inbox.messages[..] else { panic!("two messages: {:?}", inbox.messages) };
    let one_guid = one.guid.clone().expect("GUID of the first message");
    let two_guid = two.guid.clone().expect("GUID of the second message");
    assert!(!one_guid.is_empty() && !two_guid.is_empty());
    assert_ne!(one_guid, two_guid, "different messages, different GUIDs");
    assert_eq!((one.uid.get(), two.uid.get()), (first, second));
    // Dovecot's Maildir GUID is the file's base name.
    let inbox_files = maildir_base_names(&dovecot.home("alice").join("Maildir"));
    assert!(inbox_files.contains(&one_guid) && inbox_files.contains(&two_guid), "{inbox_files:?}");

    let copies = source.contents(&name("Copies")).expect("Copies");
    assert_eq!(copies.messages.len(), 1);
    assert_eq!(copies.messages[0].guid.as_deref(), Some(one_guid.as_str()), "COPY keeps it");
    assert_eq!(source.message_guids(), Some(true));
    // Identity stays UID + header hash: a destination written without GUIDs holds others.
    assert!(!source.capabilities().message_guids);
    source.logout().expect("LOGOUT");
}

#[test]
fn a_server_that_refuses_x_guid_is_listed_without_guids() {
    // A fake server: a real server that lacks X-GUID cannot be run here (Dovecot knows
    // it). It answers the UID FETCH asking for X-GUID with BAD, as such servers do.
    const CAPABILITIES: &str = "IMAP4rev1 SASL-IR UIDPLUS AUTH=PLAIN";
    let examined = "* FLAGS (\\Seen)\r\n* 1 EXISTS\r\n* OK [UIDVALIDITY 5] UIDs valid\r\n\
                    * OK [UIDNEXT 4] Predicted next UID\r\n";
    let message = "* 1 FETCH (UID 3 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" \
                   RFC822.SIZE 120)\r\n";
    let server = FakeServer::start(vec![
        Step::send(&format!("* OK [CAPABILITY {CAPABILITIES}] fake ready\r\n")),
        Step::Read,
        Step::send(&format!("{{tag}} OK [CAPABILITY {CAPABILITIES}] Logged in\r\n")),
        // LIST "" "" for the delimiter.
        Step::Read,
        Step::send("* LIST (\\Noselect) \"/\" \"\"\r\n{tag} OK List completed\r\n"),
        // EXAMINE + UID FETCH with X-GUID: refused.
        Step::Read,
        Step::Read,
        Step::send(&format!(
            "{examined}A3 OK [READ-ONLY] Examined\r\n\
             A4 BAD Error in IMAP command UID FETCH: Unknown attribute X-GUID\r\n"
        )),
        // The same listing without it.
        Step::Read,
        Step::Read,
        Step::send(&format!("{examined}A5 OK [READ-ONLY] Examined\r\n{message}A6 OK Fetched\r\n")),
        // A later listing, after another fetch_message_guids: still without.
        Step::Read,
        Step::Read,
        Step::send(&format!("{examined}A7 OK [READ-ONLY] Examined\r\n{message}A8 OK Fetched\r\n")),
    ]);
    let options =
        ConnectOptions::new("127.0.0.1", server.port(), Security::Plain).timeouts(Timeouts {
            connect: Duration::from_secs(2),
            read: Some(Duration::from_secs(2)),
            write: Some(Duration::from_secs(2)),
        });
    let session = Client::connect(&options)
        .expect("connect")
        .login(&Credentials::new("alice", "pw"))
        .map_err(|(error, _)| error)
        .expect("login");
    let mut source = ImapStorage::from_session(session, "fake".into()).expect("storage");
    source.fetch_message_guids();

    let listed = source.contents(&name("INBOX")).expect("listed without GUIDs");
    assert_eq!(guids(&listed.messages), [(3, None)]);
    assert_eq!(listed.status.uid_validity.get(), 5);
    assert_eq!(source.message_guids(), Some(false), "the server refused them");

    source.fetch_message_guids();
    let again = source.contents(&name("INBOX")).expect("listed again");
    assert_eq!(guids(&again.messages), [(3, None)]);
    assert_eq!(source.message_guids(), Some(false));
    drop(source);

    let fetches: Vec<String> =
        server.finish().into_iter().filter(|line| line.contains("UID FETCH")).collect();
    assert_eq!(fetches.len(), 3, "{fetches:?}");
    assert!(fetches[0].ends_with("(UID FLAGS INTERNALDATE RFC822.SIZE X-GUID)"), "{fetches:?}");
    assert!(fetches[1..].iter().all(|line| !line.contains("X-GUID")), "{fetches:?}");
}
