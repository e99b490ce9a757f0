//! The pull role against a real `doveadm dsync-server` (started the way `remote:` starts
//! it, as a child speaking on stdin/stdout): everything the Dovecot side exports arrives,
//! and is what Dovecot itself says it holds.

use std::collections::BTreeMap;
use std::path::Path;

use dsync_proto::proto::{ChangeType, Existence, MailRequest, Mailbox, MailboxState, flags};
use dsync_proto::{ClientError, PullSession, RemoteCommand};
use testkit::{Dovecot, RawImap, fixtures};

const PASSWORD: &str = "alice-pw";

/// Every Maildir file of the account by its base name (Dovecot's message GUID for Maildir).
fn maildir_files(dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            maildir_files(&path, out);
        } else if path.parent().and_then(Path::file_name).is_some_and(|d| d == "cur" || d == "new")
        {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            let base = name.split(':').next().expect("base").to_owned();
            out.insert(base, std::fs::read(&path).expect("read mail"));
        }
    }
}

/// `doveadm mailbox status` of one mailbox as name → value.
fn status(dovecot: &Dovecot, mailbox: &str) -> BTreeMap<String, String> {
    let out = dovecot.doveadm_ok(&[
        "mailbox",
        "status",
        "-u",
        "alice",
        "guid uidvalidity uidnext messages",
        mailbox,
    ]);
    out.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn pull_reads_every_mailbox_mail_flag_and_body_a_dovecot_exports() {
    let dovecot = Dovecot::builder()
        .user("alice", PASSWORD)
        .extra_config("mail_attribute_dict = file:%h/dovecot-attributes")
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    fixtures::populate_standard(&mut imap);
    imap.logout();
    dovecot.doveadm_ok(&[
        "mailbox",
        "metadata",
        "set",
        "-u",
        "alice",
        "INBOX",
        "/private/comment",
        "remember me",
    ]);
    let mut on_disk = BTreeMap::new();
    maildir_files(&dovecot.home("alice").join("Maildir"), &mut on_disk);

    let command =
        RemoteCommand::from_command_line(&dovecot.dsync_server_command("alice")).expect("command");
    let mut session = PullSession::start(&command).expect("handshake");
    let mailboxes: Vec<_> = session
        .tree()
        .iter()
        .filter(|node| node.existence == Existence::Exists && node.mailbox_guid.is_some())
        .cloned()
        .collect();
    let names: Vec<String> = mailboxes.iter().map(|node| node.name.join("/")).collect();
    assert!(
        names.contains(&"INBOX".to_owned()) && names.contains(&"Archive/2023".to_owned()),
        "{names:?}"
    );
    let listed = dovecot.doveadm_ok(&["mailbox", "list", "-u", "alice"]);
    // "Parent" (never created, the parent of Parent/Child) is listed but is no mailbox:
    // in the tree it is a node without GUID.
    assert_eq!(names.len() + 1, listed.lines().count(), "{names:?} vs {listed}");
    assert!(session.tree().iter().any(|n| n.name == ["Parent"] && n.mailbox_guid.is_none()));
    assert!(session.tree().iter().any(|n| n.name == ["Archive"] && n.subscribed));
    assert!(session.tree().iter().any(|n| n.name == ["Hidden"] && !n.subscribed));

    let mut mails_seen = 0;
    let mut inbox_attributes = Vec::new();
    for node in &mailboxes {
        let name = node.name.join("/");
        let dovecot_status = status(&dovecot, &name);
        let guid = node.mailbox_guid.expect("guid");
        assert_eq!(guid.to_string(), dovecot_status["guid"], "{name}");
        let uid_validity = node.uid_validity.expect("uidvalidity");
        assert_eq!(uid_validity.to_string(), dovecot_status["uidvalidity"], "{name}");
        // What a freshly created mailbox of ours would say.
        let ours = Mailbox {
            mailbox_guid: guid,
            uid_validity,
            uid_next: 1,
            first_recent_uid: 1,
            highest_modseq: 1,
            have_guids: true,
            have_save_guids: true,
            ..Mailbox::default()
        };
        let export = session.open(&ours).expect("open").expect("not lost");
        assert_eq!(export.mailbox.uid_next.to_string(), dovecot_status["uidnext"], "{name}");
        // A full export lists every mail (`Cs`) and, from the transaction log, the mails
        // already expunged (`Ce`).
        let saves: Vec<_> =
            export.changes.iter().filter(|c| c.change_type == ChangeType::Save).collect();
        assert_eq!(saves.len().to_string(), dovecot_status["messages"], "{name}");
        if name == "INBOX" {
            inbox_attributes = export.attributes.clone();
        }
        // Dovecot's own view of each mail: uid, guid, flags.
        let fetched = dovecot.doveadm_ok(&[
            "fetch",
            "-u",
            "alice",
            "uid guid flags",
            "mailbox",
            &name,
            "all",
        ]);
        let mut expected = Vec::new();
        for block in fetched.split('\u{c}').filter(|b| !b.trim().is_empty()) {
            let field = |key: &str| {
                block.lines().find_map(|l| l.strip_prefix(key)).map_or("", str::trim).to_owned()
            };
            expected.push((
                field("uid:").parse::<u32>().expect("uid"),
                field("guid:"),
                field("flags:"),
            ));
        }
        // Received dates come with the list (our handshake asks for them) and agree with
        // the ones that come with the bodies.
        let received: BTreeMap<String, u64> = saves
            .iter()
            .map(|c| (c.guid.clone().expect("guid"), c.received_timestamp.expect("received date")))
            .collect();
        let mut requests = Vec::new();
        for (change, (uid, guid, dovecot_flags)) in saves.iter().zip(&expected) {
            assert_eq!((change.uid, change.guid.as_deref()), (*uid, Some(guid.as_str())), "{name}");
            let bits = change.final_flags.unwrap_or(0);
            for (bit, word) in [
                (flags::SEEN, "\\Seen"),
                (flags::ANSWERED, "\\Answered"),
                (flags::FLAGGED, "\\Flagged"),
                (flags::DELETED, "\\Deleted"),
                (flags::DRAFT, "\\Draft"),
            ] {
                assert_eq!(
                    bits & bit != 0,
                    dovecot_flags.split(' ').any(|f| f == word),
                    "{name} {uid}"
                );
            }
            for keyword in
                dovecot_flags.split(' ').filter(|f| !f.is_empty() && !f.starts_with('\\'))
            {
                assert!(
                    change.keyword_changes.iter().any(|k| &k[1..] == keyword),
                    "{name} {uid} {keyword}"
                );
            }
            requests.push(MailRequest { guid: change.guid.clone(), uid: Some(change.uid) });
        }
        assert_eq!(saves.len(), expected.len(), "{name}");
        session
            .fetch(&requests, &mut |mail, body| {
                let guid = mail.guid.clone().expect("guid");
                let mut bytes = Vec::new();
                body.read_to_end(&mut bytes).map_err(|e| ClientError::Handler(e.into()))?;
                assert_eq!(Some(&bytes), on_disk.get(&guid), "body of {guid}");
                let listed = received.get(&guid).and_then(|&t| i64::try_from(t).ok());
                assert_eq!(mail.received_date, listed, "received date of {guid}");
                mails_seen += 1;
                Ok(())
            })
            .expect("fetch");
        let state = MailboxState {
            mailbox_guid: guid,
            last_uidvalidity: uid_validity,
            last_common_uid: export.mailbox.uid_next - 1,
            ..MailboxState::default()
        };
        let theirs = session.close(&state).expect("close");
        assert_eq!(theirs.mailbox_guid, guid);
    }
    session.finish().expect("clean end, exit 0");
    assert_eq!(mails_seen, on_disk.len());
    assert!(
        inbox_attributes
            .iter()
            .any(|(a, v)| a.key == "comment" && v.as_deref() == Some(&b"remember me"[..])),
        "{inbox_attributes:?}"
    );
}

#[test]
fn an_unknown_user_is_exit_67_and_a_missing_program_78() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let command = RemoteCommand::from_command_line(&dovecot.dsync_server_command("nobody-here"))
        .expect("command");
    let error = PullSession::start(&command).expect_err("no such user");
    assert_eq!(error.exit_code(), 67, "{error}");

    let missing =
        RemoteCommand::from_command_line("/nonexistent/doveadm dsync-server").expect("command");
    let error = PullSession::start(&missing).expect_err("no program");
    assert_eq!(error.exit_code(), 78, "{error}");
}

#[test]
fn an_abandoned_session_stops_its_child() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let command =
        RemoteCommand::from_command_line(&dovecot.dsync_server_command("alice")).expect("command");
    let session = PullSession::start(&command).expect("handshake");
    drop(session);
    // Nothing to assert beyond not hanging: Drop closes stdin and reaps the child.
}

#[test]
fn a_remote_that_stops_answering_times_out() {
    // A fake peer, for a fault a real dsync-server does not produce on demand: a command
    // that never says anything.
    let silent = RemoteCommand::from_command_line("sleep 30").expect("command");
    let started = std::time::Instant::now();
    let error = PullSession::start_with_timeout(&silent, std::time::Duration::from_secs(1))
        .expect_err("no handshake");
    assert!(matches!(error, ClientError::Timeout { seconds: 1, .. }), "{error}");
    assert_eq!(error.exit_code(), 75);
    // Dropping the session killed and reaped the child: no 30 s wait.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
