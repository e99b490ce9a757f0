//! Issue 16 items 8 and 11 through the binary: one bad item from the source costs that
//! item, never its folder or the account, and the exit code says what was left behind.
//! The IMAP sources are `testkit::FakeImap` where Dovecot cannot be made to answer so:
//! Dovecot 2.3.19.1 lists a Maildir folder `.café` as `caf&AOk-` and `.&AGE-bad` as
//! `&-AGE-bad` (always canonical modified UTF-7), refuses `EXAMINE "café"` ("Mailbox name
//! is not valid mUTF-7"), has no UTF8=ACCEPT, refuses a keyword over 50 bytes
//! (`mail_max_keyword_length`), and never sends UID 0, a bad INTERNALDATE or two messages
//! under one UID. The destination is judged by Dovecot serving it.

use testkit::{Dovecot, FakeImap, FakeMailbox, FakeMessage, RawImap, fixtures};

use crate::{PASSWORD, dsync, served, text};

fn backup_from(server: &FakeImap, destination: &std::path::Path) -> std::process::Output {
    let source = format!("imap://alice@127.0.0.1:{}?tls=none", server.port());
    let target = format!("maildir:{}", destination.display());
    dsync(&["backup", &source, &target], Some(PASSWORD))
}

fn one_message(raw_name: &[u8], index: u32) -> FakeMailbox {
    let body = fixtures::message(index, "hostile", "x");
    FakeMailbox::new(raw_name, 100 + index, vec![FakeMessage::new(1, &body)])
}

#[test]
fn names_a_server_lists_are_used_as_listed_and_only_unmappable_ones_are_left_out() {
    let server = FakeImap::start(
        '/',
        vec![
            one_message(b"INBOX", 1),
            one_message(b"Inbox/Sub", 2),
            one_message("café".as_bytes(), 3),
            one_message(b"&AGE-bad", 4),
            one_message(b"ctl\x01x", 5),
            one_message(b"a//b", 6),
            one_message(b"/abs", 7),
            one_message(b"", 8),
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let output = backup_from(&server, &destination);
    // Exit 65: three folders are left out, and say so; the rest of the account is there.
    assert_eq!(output.status.code(), Some(65), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["\"a//b\"", "\"/abs\"", "\"\""] {
        assert!(stderr.contains(&format!("skipped: source: {name}")), "{name}: {stderr}");
    }
    assert!(stderr.contains("is stored as ctl_x"), "{stderr}");
    let snapshot = served(&destination);
    let names: Vec<&str> = snapshot.mailboxes.keys().map(String::as_str).collect();
    assert_eq!(names, ["&-AGE-bad", "INBOX", "INBOX/Sub", "caf&AOk-", "ctl_x"]);
    for (name, mailbox) in &snapshot.mailboxes {
        assert_eq!(mailbox.messages.len(), 1, "{name}");
    }
}

#[test]
fn bad_message_data_costs_only_that_message() {
    let message = |uid: u32, index: u32| FakeMessage::new(uid, &fixtures::message(index, "m", "x"));
    let mut bad_date = message(2, 2);
    bad_date.internal_date = String::from("01-Jan-2024 10:00:00 +01:00");
    let mut twin = message(3, 33);
    twin.flags = String::from("\\Seen");
    let mut many_keywords = message(4, 4);
    many_keywords.flags = (0..28).map(|i| format!("kw{i}")).collect::<Vec<_>>().join(" ");
    let mut long_keyword = message(5, 5);
    long_keyword.flags = format!("\\Flagged short {}", "k".repeat(2000));
    let inbox = FakeMailbox::new(
        b"INBOX",
        7,
        vec![
            message(1, 1),
            bad_date,
            message(0, 9),
            message(3, 3),
            twin,
            many_keywords,
            long_keyword,
        ],
    );
    let mut descending =
        FakeMailbox::new(b"Descending", 8, vec![message(1, 11), message(2, 12), message(5, 15)]);
    descending.descending = true;
    let server = FakeImap::start('/', vec![inbox, descending]);
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");

    let output = backup_from(&server, &destination);
    // UID 0 and the second UID 3 are left out (exit 65); the rest is copied, with warnings.
    assert_eq!(output.status.code(), Some(65), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("skipped: source mailbox INBOX: UID 0:"), "{stderr}");
    assert!(stderr.contains("skipped: source mailbox INBOX: UID 3:"), "{stderr}");
    assert!(stderr.contains("INTERNALDATE \"01-Jan-2024 10:00:00 +01:00\""), "{stderr}");
    // Keywords go in sorted order (kw0, kw1, kw10, …): kw8 and kw9 find no letter, and
    // then neither does UID 5's `short`; the 2 000-byte one is no keyword a Maildir holds.
    for dropped in [
        "UID 4: keyword \"kw8\" not stored",
        "UID 4: keyword \"kw9\" not stored",
        "UID 5: keyword \"short\" not stored",
        "longer than 255 bytes",
    ] {
        assert!(stderr.contains(dropped), "{dropped}: {stderr}");
    }
    let snapshot = served(&destination);
    let inbox = &snapshot.mailboxes["INBOX"];
    assert_eq!(inbox.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(inbox.messages[2].body, fixtures::message(3, "m", "x"), "the first UID 3");
    let date = dsync_core::message_date::received_date(&fixtures::message(2, "m", "x"));
    assert_eq!(Some(inbox.messages[1].internal_date), date, "the Date: header's");
    assert_eq!(inbox.messages[3].flags.len(), 26, "{:?}", inbox.messages[3].flags);
    assert_eq!(inbox.messages[4].flags, ["\\Flagged"]);
    let descending = &snapshot.mailboxes["Descending"];
    assert_eq!(descending.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 5]);
    assert_eq!(descending.messages[2].body, fixtures::message(15, "m", "x"));
}

/// A Dovecot source can hold 27 keywords on a message (the 27th in its index): the
/// destination Maildir keeps 26, as a Dovecot destination would, and the run says which
/// one it could not keep; the run succeeds.
#[test]
fn a_27th_keyword_from_dovecot_is_left_out_with_a_warning() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    let keywords: Vec<String> = (0..27).map(|i| format!("kw{i}")).collect();
    let flags: Vec<&str> = keywords.iter().map(String::as_str).collect();
    imap.append("INBOX", &flags, None, &fixtures::message(1, "keywords", "k"));
    imap.append("INBOX", &["kw0"], None, &fixtures::message(2, "keywords", "k"));
    let dir = tempfile::tempdir().expect("temp dir");
    let destination = dir.path().join("Maildir");
    let source = format!("imap://alice@127.0.0.1:{}?tls=none", dovecot.imap_port());
    let output =
        dsync(&["backup", &source, &format!("maildir:{}", destination.display())], Some(PASSWORD));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // In sorted order (kw0, kw1, kw10, …, kw26, kw3, …), kw9 is the 27th.
    assert!(stderr.contains("UID 1: keyword \"kw9\" not stored"), "{stderr}");
    let inbox = &served(&destination).mailboxes["INBOX"];
    assert_eq!(inbox.messages.len(), 2);
    assert_eq!(inbox.messages[0].flags.len(), 26);
    assert_eq!(inbox.messages[1].flags, ["kw0"]);
}
