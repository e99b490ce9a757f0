//! A source account whose POP3 view differs from its IMAP view the way a long-lived POP3
//! mailbox's does: some messages carry UIDLs from an older server (uidlist `P`), the POP3
//! order differs from UID order (`O`), and the rest get UIDLs from a non-default
//! `pop3_uidl_format`. Sizes are chosen so the order-and-size pass cannot settle it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use testkit::{Dovecot, RawImap, chown_to_mail_user};

/// (id, size) of the source's messages, in UID order.
pub(crate) const MESSAGES: [(&str, usize); 9] = [
    ("one", 300),
    ("eq-a", 500),
    ("eq-b", 500),
    ("duplicate", 700),
    ("duplicate", 700),
    ("six", 900),
    ("seven", 1100),
    ("sz-c", 1300),
    ("sz-d", 1300),
];

/// The day of January 2024 on which message `id` was received (its `Received:` date).
pub(crate) fn received_day(id: &str) -> u32 {
    10 + id.bytes().map(u32::from).sum::<u32>() % 18
}

/// `received_day` as UNIX time (10:00 UTC that day).
pub(crate) fn received_time(id: &str) -> i64 {
    // 2024-01-01T10:00:00Z
    1_704_103_200 + i64::from(received_day(id) - 1) * 86_400
}

/// A message whose size depends only on `body_len` and the length of `id`. Its
/// `Received:` date differs from its `Date:`, so the received date a POP3-only migration
/// gives it shows where it came from.
pub(crate) fn message(id: &str, body_len: usize) -> Vec<u8> {
    let day = received_day(id);
    let mut bytes = format!(
        "Received: from relay.example by mx.example with ESMTP id {id};\r\n\
         \t{day} Jan 2024 10:00:00 +0000\r\n\
         Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nFrom: pop3 user <u@example.com>\r\n\
         Subject: message {id}\r\nMessage-ID: <{id}@example.com>\r\n\r\n"
    )
    .into_bytes();
    while bytes.len() < body_len {
        bytes.extend_from_slice(b"line of the body, the same in every message\r\n");
    }
    bytes
}

/// UID → (stored UIDL `P`, stored POP3 order `O`).
pub(crate) fn stored_pop3_fields() -> BTreeMap<u32, (Option<&'static str>, u32)> {
    // POP3 order 1 3 2 4 5 7 6 9 8: swaps of equal-size neighbours (2/3, 8/9), of
    // different sizes (6/7), and an exact duplicate pair (4/5) that keeps its order.
    BTreeMap::from([
        (1, (Some("legacy-0001"), 1)),
        (2, (None, 3)),
        (3, (None, 2)),
        (4, (Some("dup-a"), 4)),
        (5, (Some("dup-b"), 5)),
        (6, (None, 7)),
        (7, (Some("Mixed.Case_~!"), 6)),
        (8, (None, 9)),
        (9, (None, 8)),
    ])
}

/// The running source: user `alice` (password `alicepw`) over IMAP and POP3.
pub(crate) struct Pop3Source {
    /// The serving Dovecot.
    pub(crate) dovecot: Dovecot,
    _edited: tempfile::TempDir,
}

impl Pop3Source {
    /// Writes [`MESSAGES`] through IMAP into a throw-away instance, adds the stored POP3
    /// fields to a copy of the Maildir, and serves that copy with `pop3_uidl_format`.
    pub(crate) fn start(pop3_uidl_format: &str) -> Pop3Source {
        let populate = Dovecot::builder().user("alice", "alicepw").start();
        let mut raw = RawImap::login(populate.imap_port(), "alice", "alicepw");
        for (id, size) in MESSAGES {
            raw.append("INBOX", &[], None, &message(id, size));
        }
        raw.logout();
        let edited = tempfile::tempdir().expect("tempdir");
        let maildir = edited.path().join("Maildir");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(populate.home("alice").join("Maildir"))
            .arg(&maildir)
            .status()
            .expect("cp");
        assert!(copied.success());
        drop(populate);
        write_pop3_fields(&maildir);
        chown_to_mail_user(&maildir);
        let dovecot = Dovecot::builder()
            .user_serving_copy("alice", "alicepw", &maildir, "maildir")
            .pop3_uidl_format(pop3_uidl_format)
            .start();
        Pop3Source { dovecot, _edited: edited }
    }
}

/// Adds ` P<uidl> O<order>` to each record of `dovecot-uidlist`, and drops Dovecot's index
/// so that the serving instance reads them.
fn write_pop3_fields(maildir: &Path) {
    let path = maildir.join("dovecot-uidlist");
    let text = std::fs::read_to_string(&path).expect("dovecot-uidlist");
    let fields = stored_pop3_fields();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().expect("header line"));
    let mut edited = 0;
    for line in lines {
        let (uid, rest) = line.split_once(' ').expect("record");
        let uid: u32 = uid.parse().expect("uid");
        let (uidl, order) = fields[&uid];
        let uidl = uidl.map(|u| format!(" P{u}")).unwrap_or_default();
        writeln!(out, "{uid}{uidl} O{order} {rest}").expect("write to string");
        edited += 1;
    }
    assert_eq!(edited, fields.len(), "every message has a uidlist record:\n{text}");
    std::fs::write(&path, out).expect("write uidlist");
    for entry in std::fs::read_dir(maildir).expect("maildir") {
        let entry = entry.expect("entry");
        if entry.file_name().to_string_lossy().starts_with("dovecot.index") {
            std::fs::remove_file(entry.path()).expect("remove index");
        }
    }
}
