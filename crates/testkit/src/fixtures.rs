//! The standard source account used across the workspace's integration tests, built through
//! IMAP APPEND so that Dovecot assigns UIDs, UIDVALIDITY and stores everything its own way.

use crate::{Dovecot, RawImap};

/// Raw (modified UTF-7) name of the non-ASCII folder, `Entwürfe`.
pub const NON_ASCII_FOLDER: &str = "Entw&APw-rfe";

/// A plain-text message with CRLF line ends. `index` makes Date and Message-ID unique.
pub fn message(index: u32, subject: &str, body: &str) -> Vec<u8> {
    let mut text = format!(
        "Date: Mon, 1 Jan 2024 10:{:02}:{:02} +0000\r\nFrom: Sender {index} <sender{index}@example.com>\r\n\
         To: alice@example.com\r\nSubject: {subject}\r\nMessage-ID: <msg{index}@example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        (index / 60) % 60,
        index % 60
    );
    for line in body.lines() {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.into_bytes()
}

/// A message of roughly `size` bytes (base64-looking lines), for bulk and size tests.
pub fn sized_message(index: u32, size: usize) -> Vec<u8> {
    let mut bytes = message(index, &format!("Sized message {index}"), "");
    let mut state = u64::from(index).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while bytes.len() < size {
        for _ in 0..76 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            bytes.push(ALPHABET[(state >> 58) as usize]);
        }
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// A Dovecot with user `alice` (password `alicepw`) whose INBOX holds [`sized_message`]s 1
/// to `count`, of about `size` bytes each (no flags, the server's date), and those
/// messages in that order.
pub fn alice_with_sized(count: u32, size: usize) -> (Dovecot, Vec<Vec<u8>>) {
    let dovecot = Dovecot::builder().user("alice", "alicepw").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
    let messages: Vec<Vec<u8>> = (1..=count).map(|index| sized_message(index, size)).collect();
    for message in &messages {
        imap.append("INBOX", &[], None, message);
    }
    imap.logout();
    (dovecot, messages)
}

/// Builds the standard account on a logged-in connection:
///
/// * folders `INBOX`, `Archive`, `Archive/2023`, `Entwürfe` (non-ASCII), `R&D`,
///   `Project Notes`, `Sent`, `Trash`, `Empty` (no messages), `Hidden` (unsubscribed),
///   `Parent/Child` (its parent is never created, so Dovecot lists it `\Noselect`);
/// * system flags and keywords (`$Label1`, `Junk`, `$Forwarded`, `NonJunk`), explicit
///   INTERNALDATEs in several zones, expunged messages leaving UID gaps, a message
///   without Message-ID, one without a final newline, an 8-bit body, lines starting with
///   `.` and `From `, a 300 KiB message;
/// * subscriptions for some folders but not all.
pub fn populate_standard(imap: &mut RawImap) {
    for folder in [
        "Archive",
        "Archive/2023",
        NON_ASCII_FOLDER,
        "R&-D",
        "Project Notes",
        "Sent",
        "Trash",
        "Empty",
        "Hidden",
        "Parent/Child",
    ] {
        imap.create(folder);
    }
    for folder in ["INBOX", "Archive", NON_ASCII_FOLDER, "Sent", "Parent/Child", "Empty"] {
        imap.subscribe(folder);
    }

    // INBOX: UIDs 1..=8, then 3 and 6 expunged.
    let inbox: Vec<(Vec<u8>, &[&str], &str)> = vec![
        (message(1, "Hello", "First message."), &["\\Seen"], " 7-Jul-2024 10:00:00 +0200"),
        (
            message(2, "Re: Hello", "Answered and labelled."),
            &["\\Seen", "\\Answered", "$Label1"],
            "08-Jul-2024 11:30:00 +0000",
        ),
        (
            message(3, "Flagged, expunged later", "gone"),
            &["\\Flagged"],
            "09-Jul-2024 12:00:00 -0500",
        ),
        (
            message(4, "Draft with keywords", "A draft."),
            &["\\Draft", "\\Seen", "Junk", "$Forwarded"],
            "10-Jul-2024 00:00:01 +0000",
        ),
        (no_message_id(), &[], "11-Jul-2024 09:15:00 +0100"),
        (
            message(6, "Deleted but kept", "deleted flag, not expunged"),
            &["\\Deleted"],
            "12-Jul-2024 09:15:00 +0000",
        ),
        (edge_case_body(), &["\\Seen", "NonJunk"], "13-Jul-2024 23:59:59 +1400"),
        (no_final_newline(), &["\\Flagged", "\\Seen"], "14-Jul-2024 06:00:00 +0000"),
    ];
    for (body, flags, date) in &inbox {
        imap.append("INBOX", flags, Some(date), body);
    }
    // Message 6 keeps its \Deleted flag: expunge only UIDs 3 and 5 explicitly.
    imap.expunge_uids("INBOX", "3");
    imap.append(
        "INBOX",
        &["\\Seen"],
        Some("15-Jul-2024 08:00:00 +0000"),
        &message(9, "After the gap", "UID 9"),
    );

    imap.append(
        "Archive",
        &["\\Seen"],
        Some("01-Jan-2023 00:00:00 +0000"),
        &message(20, "Old", "archived"),
    );
    imap.append(
        "Archive",
        &[],
        Some("02-Jan-2023 00:00:00 +0000"),
        &message(21, "Old unseen", "archived"),
    );
    for index in 0..5 {
        imap.append(
            "Archive/2023",
            &["\\Seen"],
            Some("03-Mar-2023 03:03:03 +0000"),
            &message(30 + index, "2023", "year folder"),
        );
    }
    imap.expunge_uids("Archive/2023", "2:3");
    imap.append(
        NON_ASCII_FOLDER,
        &["\\Draft"],
        Some("05-May-2024 05:05:05 +0000"),
        &message(40, "Entwurf", "Grüße aus Köln"),
    );
    imap.append(
        "R&-D",
        &["$Label1"],
        Some("06-Jun-2024 06:06:06 +0000"),
        &message(50, "R&D", "research"),
    );
    imap.append(
        "Sent",
        &["\\Seen"],
        Some("07-Jun-2024 07:07:07 +0000"),
        &message(60, "Sent mail", "sent"),
    );
    imap.append(
        "Trash",
        &["\\Seen", "\\Deleted"],
        Some("08-Jun-2024 08:08:08 +0000"),
        &message(70, "Trashed", "trash"),
    );
    imap.append(
        "Hidden",
        &[],
        Some("09-Jun-2024 09:09:09 +0000"),
        &message(80, "Hidden", "unsubscribed folder"),
    );
    imap.append(
        "Parent/Child",
        &[],
        Some("10-Jun-2024 10:10:10 +0000"),
        &message(90, "Child", "under a noselect parent"),
    );
    imap.append(
        "Project Notes",
        &[],
        Some("11-Jun-2024 11:11:11 +0000"),
        &sized_message(100, 300 * 1024),
    );
}

fn no_message_id() -> Vec<u8> {
    b"Date: Tue, 2 Jan 2024 08:00:00 +0000\r\nFrom: nobody@example.com\r\nSubject: No Message-ID\r\n\r\nThis message has no Message-ID header.\r\n".to_vec()
}

fn no_final_newline() -> Vec<u8> {
    b"Date: Wed, 3 Jan 2024 08:00:00 +0000\r\nMessage-ID: <nonl@example.com>\r\nSubject: no final newline\r\n\r\nlast line without CRLF".to_vec()
}

fn edge_case_body() -> Vec<u8> {
    let mut body = message(7, "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "");
    body.extend_from_slice(
        ".leading dot\r\n..two dots\r\n.\r\nFrom the start of a line\r\n8-bit: Grüße, 日本語\r\n\ttab-indented\r\n\r\n\r\ntrailing blank lines above\r\n"
            .as_bytes(),
    );
    body
}
