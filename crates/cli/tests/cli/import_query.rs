//! `import` with doveadm's search query and `-U`, next to `doveadm import` on the same
//! source: for every query, the folders, messages (bodies, flags, received dates) and
//! subscriptions that Dovecot serves after ours equal those after doveadm's. UIDs differ
//! by design (import assigns new ones), so messages are compared as a sorted list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{AccountSnapshot, Dovecot, RawImap, chown_to_mail_user, fixtures};

use super::{PASSWORD, dsync, text};

/// (body, flags, received) of every message, sorted.
type Messages = Vec<(Vec<u8>, Vec<String>, i64)>;

/// What an import leaves, UIDs aside: every folder (selectable or not) with its messages,
/// and the subscriptions.
#[derive(Debug, PartialEq, Eq)]
struct Imported {
    folders: BTreeMap<String, (bool, Messages)>,
    subscriptions: BTreeSet<String>,
}

impl Imported {
    fn of(snapshot: &AccountSnapshot) -> Imported {
        let folders = snapshot
            .mailboxes
            .iter()
            .map(|(name, mailbox)| {
                let mut messages: Messages = mailbox
                    .messages
                    .iter()
                    .map(|m| (m.body.clone(), m.flags.clone(), m.internal_date))
                    .collect();
                messages.sort();
                (name.clone(), (mailbox.selectable, messages))
            })
            .collect();
        Imported { folders, subscriptions: snapshot.subscriptions.clone() }
    }

    fn message_count(&self) -> usize {
        self.folders.values().map(|(_, messages)| messages.len()).sum()
    }

    /// Readable differences, for the assertion message.
    fn differences(&self, other: &Imported) -> Vec<String> {
        let mut out = Vec::new();
        if self.subscriptions != other.subscriptions {
            out.push(format!(
                "subscriptions {:?} vs {:?}",
                self.subscriptions, other.subscriptions
            ));
        }
        let names: BTreeSet<&String> = self.folders.keys().chain(other.folders.keys()).collect();
        for name in names {
            match (self.folders.get(name), other.folders.get(name)) {
                (Some(a), Some(b)) if a == b => {}
                (Some((sa, ma)), Some((sb, mb))) => out.push(format!(
                    "{name}: selectable {sa}/{sb}, {} vs {} messages, flags {:?} vs {:?}",
                    ma.len(),
                    mb.len(),
                    ma.iter().map(|m| &m.1).collect::<Vec<_>>(),
                    mb.iter().map(|m| &m.1).collect::<Vec<_>>()
                )),
                (a, b) => out.push(format!("{name}: {} vs {}", a.is_some(), b.is_some())),
            }
        }
        out
    }
}

fn served(dovecot: &Dovecot, user: &str) -> Imported {
    Imported::of(&RawImap::login(dovecot.imap_port(), user, PASSWORD).snapshot())
}

/// A copy of alice's Maildir owned by the mail user, read by both tools.
fn source_copy(dovecot: &Dovecot, under: &Path) -> PathBuf {
    let copy = under.join("alice").join("Maildir");
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(dovecot.home("alice").join("Maildir"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    chown_to_mail_user(under);
    copy
}

/// Queries an operator restoring from a backup would type, and the quirks of doveadm's
/// language (an OR ORs the keys before it too; a Maildir++ source separates levels
/// with `.`). The bool is `-s`.
const QUERIES: &[(&[&str], bool)] = &[
    (&["ALL"], false),
    (&["mailbox", "Archive.2023"], false),
    (&["mailbox", "Arch*"], true),
    (&["mailbox", "INBOX", "SINCE", "2024-07-10"], false),
    (&["SINCE", "10-Jul-2024", "BEFORE", "2024-07-14"], false),
    (&["SEEN"], false),
    (&["LARGER", "1k"], false),
    (&["KEYWORD", "$Label1"], true),
    (
        &[
            "NOT",
            "mailbox",
            "Trash",
            "(",
            "FLAGGED",
            "OR",
            "KEYWORD",
            "junk",
            "OR",
            "BEFORE",
            "1-Jan-2024",
            ")",
        ],
        false,
    ),
    (&["mailbox", "INBOX", "SEEN", "OR", "FLAGGED"], false),
    (&["mailbox", "INBOX", "UID", "4:*", "NOT", "DELETED", "UNANSWERED"], false),
    (&["(", "mailbox", "Empty", "OR", "mailbox", "%", ")", "UNSEEN"], false),
];

fn ours_user(index: usize) -> String {
    format!("ours{index}")
}

fn theirs_user(index: usize) -> String {
    format!("theirs{index}")
}

#[test]
fn import_with_a_query_is_what_doveadm_import_makes_of_it() {
    let mut builder = Dovecot::builder().user("alice", PASSWORD);
    for index in 0..QUERIES.len() {
        builder = builder.user(&ours_user(index), PASSWORD).user(&theirs_user(index), PASSWORD);
    }
    let dovecot = builder.start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    fixtures::populate_standard(&mut imap);
    let total = imap.snapshot().message_count();
    imap.logout();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = format!("maildir:{}", source_copy(&dovecot, dir.path()).display());

    for (index, (query, subscribe)) in QUERIES.iter().enumerate() {
        let theirs = theirs_user(index);
        let mut args = vec!["import", "-u", theirs.as_str()];
        if *subscribe {
            args.push("-s");
        }
        args.extend([source.as_str(), "Restored"]);
        args.extend_from_slice(query);
        dovecot.doveadm_ok(&args);

        let ours_root = dovecot.home(&ours_user(index)).join("Maildir");
        let destination = format!("maildir:{}", ours_root.display());
        let mut args = vec!["import"];
        if *subscribe {
            args.push("-s");
        }
        args.extend([source.as_str(), destination.as_str(), "Restored"]);
        args.extend_from_slice(query);
        let run = dsync(&args, None);
        assert_eq!(run.status.code(), Some(0), "{query:?}: {}", text(&run));
        // Run as root, our files are root's; Dovecot reads them as the mail user.
        chown_to_mail_user(&ours_root);

        let expected = served(&dovecot, &theirs);
        let got = served(&dovecot, &ours_user(index));
        assert!(expected.message_count() > 0, "{query:?} selects nothing: a weak test");
        assert!(
            expected == got,
            "{query:?}: ours differs from doveadm's:\n  {}",
            expected.differences(&got).join("\n  ")
        );
        if *query == ["ALL"] {
            assert_eq!(got.message_count(), total);
        }
    }

    // Running again imports nothing twice.
    for index in [0, 8] {
        let ours_root = dovecot.home(&ours_user(index)).join("Maildir");
        let destination = format!("maildir:{}", ours_root.display());
        let mut args = vec!["import", source.as_str(), destination.as_str(), "Restored"];
        args.extend_from_slice(QUERIES[index].0);
        let before = served(&dovecot, &ours_user(index));
        let again = dsync(&args, None);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again));
        assert!(
            String::from_utf8_lossy(&again.stdout).contains(" 0 messages saved"),
            "{}",
            text(&again)
        );
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("already there and not imported again"),
            "{}",
            text(&again)
        );
        chown_to_mail_user(&ours_root);
        assert_eq!(served(&dovecot, &ours_user(index)), before);
    }
}

#[test]
fn source_user_over_imapc_logs_in_as_that_user_like_doveadm() {
    let dovecot = Dovecot::builder()
        .user("alice", PASSWORD)
        .user("ours", PASSWORD)
        .user("theirs", PASSWORD)
        .start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    fixtures::populate_standard(&mut imap);
    imap.logout();
    let port = dovecot.imap_port().to_string();
    let query = ["(", "mailbox", "INBOX", "OR", "mailbox", "Archive", ")", "SEEN"];

    let host = "imapc_host=127.0.0.1".to_owned();
    let port_setting = format!("imapc_port={port}");
    let password = format!("imapc_password={PASSWORD}");
    let mut args = vec![
        "-o",
        host.as_str(),
        "-o",
        port_setting.as_str(),
        "-o",
        password.as_str(),
        "-o",
        "imapc_features=rfc822.size fetch-headers",
    ];
    args.extend(["import", "-U", "alice", "-u", "theirs", "imapc:", "From alice"]);
    args.extend_from_slice(&query);
    dovecot.doveadm_ok(&args);

    let ours_root = dovecot.home("ours").join("Maildir");
    let destination = format!("maildir:{}", ours_root.display());
    let mut args = vec!["-o", host.as_str(), "-o", port_setting.as_str(), "-o", "imapc_ssl=no"];
    args.extend(["import", "-U", "alice", "imapc:", destination.as_str(), "From alice"]);
    args.extend_from_slice(&query);
    let run = dsync(&args, Some(PASSWORD));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    chown_to_mail_user(&ours_root);

    let expected = served(&dovecot, "theirs");
    let got = served(&dovecot, "ours");
    assert!(expected.message_count() > 0);
    // Only alice has mail: equal contents show that ours logged in as alice.
    assert!(expected == got, "{}", expected.differences(&got).join("\n  "));
}

#[test]
fn source_user_fills_templates_and_the_home_of_tilde() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    imap.append("INBOX", &["\\Seen"], None, &fixtures::message(1, "one", "1"));
    imap.append("INBOX", &[], None, &fixtures::message(2, "two", "2"));
    imap.logout();
    let dir = tempfile::tempdir().expect("temp dir");
    source_copy(&dovecot, dir.path());
    let destination = format!("maildir:{}", dir.path().join("dest").display());

    // %u in the source is the source user's; -u's user only names the destination's.
    let template = format!("maildir:{}/%u/Maildir", dir.path().display());
    let run = dsync(&["import", "-U", "alice", &template, &destination, "", "SEEN"], None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("1 messages saved"), "{}", text(&run));

    // ~ is the source user's home from the passwd entry; none: refused (67).
    let ghost =
        dsync(&["import", "-U", "no-such-user-dsync", "maildir:~/Maildir", &destination], None);
    assert_eq!(ghost.status.code(), Some(67), "{}", text(&ghost));
    assert!(
        String::from_utf8_lossy(&ghost.stderr)
            .contains("no such user in the system's user database"),
        "{}",
        text(&ghost)
    );
    let entry = Command::new("getent").args(["passwd", "nobody"]).output().expect("getent");
    let nobody_home =
        String::from_utf8_lossy(&entry.stdout).split(':').nth(5).unwrap_or_default().to_owned();
    let nobody = dsync(&["import", "-U", "nobody", "maildir:~/Maildir", &destination], None);
    let shown = format!("{nobody_home}/Maildir");
    assert!(String::from_utf8_lossy(&nobody.stderr).contains(&shown), "{shown}: {}", text(&nobody));
}

#[test]
fn queries_we_cannot_decide_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = format!("maildir:{}", dir.path().join("src").display());
    let destination = format!("maildir:{}", dir.path().join("dst").display());
    let cases: &[(&[&str], &str)] = &[
        (&["SUBJECT", "invoice"], "SUBJECT is not supported"),
        (&["mailbox", "INBOX", "BODY", "x"], "BODY is not supported"),
        (&["RECENT"], "RECENT is not supported"),
        (&["OR", "SEEN", "FLAGGED"], "use parentheses when mixing ANDs and ORs"),
        (&["SINCE", "yesterday"], "invalid date"),
        (&["mailbox INBOX"], "do not quote the whole query"),
    ];
    for (query, expected) in cases {
        let mut args = vec!["import", source.as_str(), destination.as_str(), "Restored"];
        args.extend_from_slice(query);
        let run = dsync(&args, None);
        assert_eq!(run.status.code(), Some(64), "{query:?}: {}", text(&run));
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(expected),
            "{query:?}: {}",
            text(&run)
        );
    }
    let help = dsync(&["import", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["Search query", "SINCE d", "MAILBOX name", "-U <SOURCE_USER>", "SUBJECT FROM TO"]
    {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
