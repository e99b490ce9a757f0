//! Issue 16 item 2: the destination, served by Dovecot, gets mail from a client between
//! backups (a new server receiving mail before the switch-over). A backup must never make
//! a UID name a second message under the same UIDVALIDITY — Dovecot's own `doveadm backup`
//! recreates such a folder under the same UIDVALIDITY (the client's next APPEND then gets a
//! UID that already named another message) and, for INBOX, fails with exit 65 on every run
//! while new mail stops being copied. Ours rebuilds under a new UIDVALIDITY and converges.

use std::collections::BTreeMap;
use std::path::Path;

use testkit::{AccountSnapshot, Dovecot, RawImap, fixtures};

use crate::{PASSWORD, dsync, text};

/// What a mail client of the destination learnt: (mailbox, UIDVALIDITY, UID) → body.
#[derive(Default)]
struct Client {
    seen: BTreeMap<(String, u32, u32), Vec<u8>>,
}

impl Client {
    /// Records everything `snapshot` shows; panics when a UID names another message than
    /// it did before under the same UIDVALIDITY.
    fn watch(&mut self, snapshot: &AccountSnapshot, after: &str) {
        for (name, mailbox) in &snapshot.mailboxes {
            for message in &mailbox.messages {
                let key = (name.clone(), mailbox.uid_validity, message.uid);
                let earlier = self.seen.entry(key).or_insert_with(|| message.body.clone());
                assert!(
                    *earlier == message.body,
                    "{name} UIDVALIDITY {} UID {} named {:?} and now {:?} (after {after})",
                    mailbox.uid_validity,
                    message.uid,
                    String::from_utf8_lossy(earlier),
                    String::from_utf8_lossy(&message.body),
                );
            }
        }
    }
}

fn backup(source: &str, target: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["backup"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[source, target]);
    dsync(&args, Some(PASSWORD))
}

/// The source's messages as (UID, body), per mailbox.
fn contents(snapshot: &AccountSnapshot) -> BTreeMap<String, Vec<(u32, Vec<u8>)>> {
    snapshot
        .mailboxes
        .iter()
        .filter(|(_, m)| m.selectable)
        .map(|(name, m)| {
            (name.clone(), m.messages.iter().map(|x| (x.uid, x.body.clone())).collect())
        })
        .collect()
}

#[test]
fn client_appends_between_backups_never_reuse_a_uid_and_runs_converge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("dest");
    std::fs::create_dir(&destination).expect("mkdir");
    // Dovecot (the mail user) and dsync (root) both write it: the mail user owns it, and
    // dsync gives what it creates the root's owner.
    testkit::chown_to_mail_user(&destination);
    let location = format!("maildir:{}", destination.display());
    let dovecot = Dovecot::builder()
        .user("alice", PASSWORD)
        .user_with_mail("bob", "bobpw", &location)
        .start();
    let source = format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port());
    let mut alice = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    alice.create("Folder");
    for index in 0..3 {
        alice.append("INBOX", &[], None, &fixtures::message(index, "inbox", "i"));
        alice.append("Folder", &["\\Seen"], None, &fixtures::message(10 + index, "folder", "f"));
    }
    let mut client = Client::default();
    let bob = |dovecot: &Dovecot| RawImap::login(dovecot.imap_port(), "bob", "bobpw");

    let first = backup(&source, &location, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let original = bob(&dovecot).snapshot();
    client.watch(&original, "the first backup");
    let (inbox_validity, folder_validity) =
        (original.mailboxes["INBOX"].uid_validity, original.mailboxes["Folder"].uid_validity);

    // A client saves mail on the new server: UIDs 4 of both folders are now its messages.
    let mut session = bob(&dovecot);
    assert_eq!(session.append("INBOX", &[], None, &fixtures::message(20, "client", "c")), 4);
    assert_eq!(session.append("Folder", &[], None, &fixtures::message(21, "client", "c")), 4);
    client.watch(&session.snapshot(), "the client's first appends");

    // The backup reverts the destination to the source: both folders rebuilt under new
    // UIDVALIDITYs (not the ones UID 4 was given out under), INBOX included.
    let second = backup(&source, &location, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(
        text(&second).contains("under a new UIDVALIDITY rather than the source's"),
        "{}",
        text(&second)
    );
    let rebuilt = session.snapshot();
    client.watch(&rebuilt, "the second backup");
    assert_ne!(rebuilt.mailboxes["INBOX"].uid_validity, inbox_validity);
    assert_ne!(rebuilt.mailboxes["Folder"].uid_validity, folder_validity);
    assert_eq!(contents(&rebuilt), contents(&alice.snapshot()));

    // The client appends again (UID 4 under the new UIDVALIDITY), new mail reaches the
    // source; the next backup rebuilds once more and copies the new mail.
    session.append("INBOX", &[], None, &fixtures::message(22, "client", "c"));
    session.append("Folder", &[], None, &fixtures::message(23, "client", "c"));
    client.watch(&session.snapshot(), "the client's second appends");
    alice.append("INBOX", &[], None, &fixtures::message(30, "new", "n"));
    let third = backup(&source, &location, &[]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    let served = session.snapshot();
    client.watch(&served, "the third backup");
    let expected = alice.snapshot();
    assert_eq!(contents(&served), contents(&expected));

    // Converged: with nobody writing, a run (also a full one, -f) changes nothing, and the
    // destination keeps the UIDVALIDITYs of its own.
    for extra in [&[][..], &["-f"][..]] {
        let again = backup(&source, &location, extra);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again));
        assert!(
            String::from_utf8_lossy(&again.stdout)
                .contains("0 messages saved (0 B), 0 expunged, 0 flag changes"),
            "{}",
            text(&again)
        );
        let now = session.snapshot();
        client.watch(&now, "a run without changes");
        assert_eq!(now, served);
    }
    // New source mail still arrives, under the source's UIDs.
    alice.append("Folder", &[], None, &fixtures::message(31, "new", "n"));
    let fourth = backup(&source, &location, &[]);
    assert_eq!(fourth.status.code(), Some(0), "{}", text(&fourth));
    let last = session.snapshot();
    client.watch(&last, "the fourth backup");
    assert_eq!(contents(&last), contents(&alice.snapshot()));
    assert_eq!(last.mailboxes["Folder"].uid_validity, served.mailboxes["Folder"].uid_validity);
    // `verify` still names the UIDVALIDITY a client moving over notices, and why.
    let verified = dsync(&["verify", &source, &location], Some(PASSWORD));
    assert_eq!(verified.status.code(), Some(1), "{}", text(&verified));
    assert!(
        text(&verified).contains("standing for the source's: a backup rebuilt it"),
        "{}",
        text(&verified)
    );
    let log = dovecot.log();
    assert!(!log.contains("Error"), "Dovecot complained:\n{log}");
    assert!(Path::new(&destination).join("dsync-rs-state").exists());
}
