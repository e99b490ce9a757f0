//! Commands sent back to back (`list_with_subscribed`, `list_and_enable`): a server may run
//! them concurrently and interleave their answers, which Dovecot does only under load, so
//! the interleaving is scripted here with the fake server; the real Dovecot checks the
//! results equal those of the commands run one by one (in `slice.rs`).

use std::time::Duration;

use imapc::proto::StatusItem;
use imapc::{Client, ConnectOptions, Credentials, Error, ListOptions, Security, Timeouts};
use testkit::{FakeServer, Step};

const CAPABILITIES: &str =
    "IMAP4rev1 SASL-IR AUTH=PLAIN LIST-EXTENDED LIST-STATUS ENABLE CONDSTORE";

fn open(server: &FakeServer) -> imapc::Session {
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
fn interleaved_answers_of_back_to_back_commands_are_told_apart() {
    let server = FakeServer::start(vec![
        Step::send(&format!("* OK [CAPABILITY {CAPABILITIES}] fake ready\r\n")),
        Step::Read,
        Step::send(&format!("{{tag}} OK [CAPABILITY {CAPABILITIES}] Logged in\r\n")),
        // LIST-STATUS and LIST (SUBSCRIBED): answers mixed, the second finishing first.
        Step::Read,
        Step::Read,
        Step::send(
            "* LIST () \"/\" INBOX\r\n\
             * LIST (\\Subscribed) \"/\" INBOX\r\n\
             * STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7)\r\n\
             * LIST (\\Subscribed \\NonExistent) \"/\" Gone\r\n\
             A3 OK List completed\r\n\
             * LIST (\\HasNoChildren) \"/\" Archive\r\n\
             * STATUS Archive (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8)\r\n\
             A2 OK List completed\r\n",
        ),
        // LIST "" "" and ENABLE, the ENABLED answer before the LIST's.
        Step::Read,
        Step::Read,
        Step::send(
            "* ENABLED CONDSTORE\r\n\
             * LIST (\\Noselect) \"/\" \"\"\r\n\
             A4 OK List completed\r\n\
             A5 OK Enabled\r\n",
        ),
        // Again, the ENABLE refused: the error comes after both answers are read.
        Step::Read,
        Step::Read,
        Step::send("* LIST (\\Noselect) \"/\" \"\"\r\nA6 OK done\r\nA7 BAD not now\r\n"),
        Step::Read,
        Step::send("{tag} OK NOOP completed\r\n"),
    ]);
    let mut session = open(&server);

    let options = ListOptions {
        return_status: vec![StatusItem::Messages, StatusItem::UidNext, StatusItem::UidValidity],
        ..ListOptions::all()
    };
    let (listed, subscribed) = session.list_with_subscribed(&options).expect("pipelined LISTs");
    let names = |entries: &[imapc::proto::ListEntry]| {
        entries.iter().map(|e| e.name.display().into_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(&listed.entries), ["INBOX", "Archive"]);
    assert_eq!(listed.statuses.len(), 2);
    assert_eq!(names(&subscribed), ["INBOX", "Gone"]);

    let (root, enabled) = session.list_and_enable("", "", &["CONDSTORE"]).expect("LIST + ENABLE");
    assert_eq!(root.first().and_then(|e| e.delimiter), Some('/'));
    assert_eq!(enabled, ["CONDSTORE"]);

    let error = session.list_and_enable("", "", &["CONDSTORE"]).expect_err("ENABLE refused");
    assert!(matches!(error, Error::Bad { command: "ENABLE", .. }), "{error}");
    session.noop().expect("the session goes on");

    let sent = server.finish();
    assert!(sent[1].starts_with("A2 LIST \"\" \"*\" RETURN"), "{sent:?}");
    assert!(sent[2].starts_with("A3 LIST (SUBSCRIBED) \"\" \"*\""), "{sent:?}");
    assert_eq!(sent[3], "A4 LIST \"\" \"\"");
    assert_eq!(sent[4], "A5 ENABLE CONDSTORE");
}
