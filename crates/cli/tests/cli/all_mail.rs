//! `-a`: Gmail's shape on a real Dovecot. Labels are folders, and every message is also in
//! an "all mail" folder with the `\All` role. The copies there have the same X-GUID,
//! because Dovecot's COPY hard-links them. Proofs come from Dovecot itself:
//! * its logout lines (`body_count`) show that each body was downloaded once;
//! * a Dovecot serving the destination shows the source's mailboxes, UIDs, flags and
//!   bodies, and `doveadm fetch` shows the source's GUIDs;
//! * in the Maildir, the folder copies share their file with the all-mail copy.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use testkit::{Dovecot, RawImap, fixtures};

use super::{PASSWORD, dsync, served, text};

/// Gmail's all-mail folder, with its role.
const ALL_MAIL_ROLE: &str = r#"namespace inbox {
  mailbox "Gmail/All Mail" {
    special_use = \All
  }
}"#;

/// Messages whose body Dovecot sent (BODY[] fetches) in the sessions logged after `from`.
fn bodies_sent(dovecot: &Dovecot, from: usize) -> u64 {
    dovecot
        .settled_log(from)
        .lines()
        .filter_map(|line| line.split("body_count=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .sum()
}

/// Message files (`cur/` and `new/`) with more than one link, and all message files, of
/// one folder.
fn linked_files(folder: &Path) -> (usize, usize) {
    let entries: Vec<_> = ["cur", "new"]
        .into_iter()
        .flat_map(|sub| std::fs::read_dir(folder.join(sub)).expect("cur/ and new/"))
        .map(|entry| entry.expect("entry").metadata().expect("stat"))
        .collect();
    (entries.iter().filter(|m| m.nlink() >= 2).count(), entries.len())
}

/// `mailbox uid guid` of every message, as doveadm shows them.
fn guids(dovecot: &Dovecot, user: &str) -> BTreeMap<(String, u32), String> {
    let out = dovecot.doveadm_ok(&["fetch", "-u", user, "mailbox uid guid", "all"]);
    let mut found = BTreeMap::new();
    let (mut mailbox, mut uid) = (String::new(), 0);
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("mailbox: ") {
            name.clone_into(&mut mailbox);
        } else if let Some(number) = line.strip_prefix("uid: ") {
            uid = number.trim().parse().expect("uid");
        } else if let Some(guid) = line.strip_prefix("guid: ") {
            found.insert((mailbox.clone(), uid), guid.trim().to_owned());
        }
    }
    found
}

#[test]
fn all_mail_downloads_each_body_once_and_dovecot_serves_linked_copies() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).extra_config(ALL_MAIL_ROLE).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    for folder in ["Gmail/All Mail", "Work", "Family"] {
        imap.create(folder);
    }
    for index in 0..6 {
        let flags: &[&str] = if index % 2 == 0 { &["\\Seen"] } else { &[] };
        imap.append("Gmail/All Mail", flags, None, &fixtures::message(index, "all", "body"));
    }
    imap.select("Gmail/All Mail");
    imap.command_ok("UID COPY 1:4 Work");
    imap.command_ok("UID COPY 3:6 Family");
    // Labels have flags of their own, and one message is only in a label.
    imap.store("Work", "1", "+FLAGS (\\Flagged)");
    imap.append("Work", &[], None, &fixtures::message(10, "only in work", "w"));
    let expected = imap.snapshot();

    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port());
    let target = format!("maildir:{}", destination.display());

    let mark = dovecot.log().len();
    let first = dsync(&["backup", "-a", "\\All", &location, &target], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains("15 messages saved"), "{summary}");
    assert!(summary.contains("8 saved from copies already held"), "{summary}");
    // All Mail's six and Work's own: seven bodies crossed the network, not fifteen.
    assert_eq!(bodies_sent(&dovecot, mark), 7, "{}", dovecot.log());
    expected.assert_same(&served(&destination));
    assert_eq!(linked_files(&destination.join(".Work")), (4, 5));
    assert_eq!(linked_files(&destination.join(".Family")), (4, 4));
    let reader =
        Dovecot::builder().user_serving_copy("reader", "readerpw", &destination, "maildir");
    let reader = reader.start();
    assert_eq!(guids(&reader, "reader"), guids(&dovecot, "alice"));

    // A new message in All Mail and in a label: the next run downloads it once.
    let uid = imap.append("Gmail/All Mail", &[], None, &fixtures::message(20, "new", "n"));
    imap.select("Gmail/All Mail");
    imap.command_ok(&format!("UID COPY {uid} Family"));
    let expected = imap.snapshot();
    let mark = dovecot.log().len();
    let second = dsync(&["backup", "-a", "\\All", &location, &target], Some(PASSWORD));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(summary.contains("2 messages saved"), "{summary}");
    assert!(summary.contains("1 saved from copies already held"), "{summary}");
    assert_eq!(bodies_sent(&dovecot, mark), 1, "{}", dovecot.log());
    expected.assert_same(&served(&destination));

    // Folders in parallel: the all-mail folder is synced first, then the workers link.
    let parallel = dir.path().join("Parallel");
    let target = format!("maildir:{}", parallel.display());
    let mark = dovecot.log().len();
    let run = dsync(
        &["backup", "-a", "Gmail/All Mail", "--parallel-folders", "3", &location, &target],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("9 saved from copies already held"));
    assert_eq!(bodies_sent(&dovecot, mark), 8, "{}", dovecot.log());
    expected.assert_same(&served(&parallel));
    assert_eq!(linked_files(&parallel.join(".Family")), (5, 5));
}

#[test]
fn an_all_mail_folder_that_exists_nowhere_is_a_warning() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    imap.append("INBOX", &[], None, &fixtures::message(1, "hello", "h"));
    let expected = imap.snapshot();
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port());
    let target = format!("maildir:{}", destination.display());
    let run = dsync(&["backup", "-a", "\\All", &location, &target], Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no such mailbox"), "{}", text(&run));
    expected.assert_same(&served(&destination));
}
