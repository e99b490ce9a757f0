//! An IMAP destination that asks to slow down. A real Dovecot never answers an APPEND with
//! `[THROTTLED]` or `[UNAVAILABLE]` (Gmail and Exchange do), so these tests write into
//! testkit's [`FakeStore`], a fake server, and only for that: the source is a real Dovecot.
//! (A full quota *is* something Dovecot says, `[OVERQUOTA]` from its quota plugin: that is
//! tested against Dovecot in `imap_destination.rs`.)

use testkit::{Dovecot, FakeStore, RawImap, fixtures};

use super::{PASSWORD, dsync, text};

/// A source with three messages in INBOX; their bodies.
fn source() -> (Dovecot, Vec<Vec<u8>>) {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(dovecot.imap_port(), "alice", PASSWORD);
    let bodies: Vec<Vec<u8>> =
        (1..=3).map(|i| fixtures::message(i, &format!("Message {i}"), "text")).collect();
    for body in &bodies {
        imap.append("INBOX", &["\\Seen"], None, body);
    }
    (dovecot, bodies)
}

fn backup(
    source: &Dovecot,
    destination: &FakeStore,
    dir: &std::path::Path,
) -> std::process::Output {
    let password_file = dir.join("bob.pw");
    std::fs::write(&password_file, "bob-pw\n").expect("password file");
    let state = dir.join("state");
    dsync(
        &[
            "backup",
            "--state-file",
            state.to_str().expect("utf-8"),
            "--destination-password-file",
            password_file.to_str().expect("utf-8"),
            &format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port()),
            &format!("imap://bob@127.0.0.1:{}?tls=none", destination.port()),
        ],
        Some(PASSWORD),
    )
}

fn appends(destination: &FakeStore) -> usize {
    destination.commands().iter().filter(|c| c.contains(" APPEND ")).count()
}

#[test]
fn throttled_and_unavailable_appends_are_retried_after_the_wait_and_the_run_succeeds() {
    let (source, bodies) = source();
    // Exchange's wording (imapsync#198), with a wait short enough for a test, then an
    // `[UNAVAILABLE]` (retried after the same round's wait).
    let destination = FakeStore::builder()
        .refuse_next_append(
            "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 50 milliseconds",
        )
        .refuse_next_append("NO [UNAVAILABLE] Backend is down (fake)")
        .start();
    let dir = tempfile::tempdir().expect("temp dir");

    let run = backup(&source, &destination, dir.path());
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // Retried within the run, on the same connection: not by starting the run again.
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("reconnecting"), "{}", text(&run));
    assert!(!String::from_utf8_lossy(&run.stdout).contains("reconnect"), "{}", text(&run));
    let stored: Vec<Vec<u8>> = destination.messages("INBOX").into_iter().map(|m| m.body).collect();
    assert_eq!(stored.len(), 3, "each message once: {}", text(&run));
    for body in &bodies {
        assert!(stored.contains(body), "a message is missing: {}", text(&run));
    }
    assert_eq!(appends(&destination), 5, "three APPENDs, two of them sent again");
    // Nothing left to do: a re-run appends nothing.
    let again = backup(&source, &destination, dir.path());
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(appends(&destination), 5, "{}", text(&again));
}

#[test]
fn a_server_that_keeps_throttling_stops_the_run_with_exit_75_saying_so() {
    let (source, _) = source();
    let destination = FakeStore::builder()
        .refuse_every_append(
            "NO Too many requests. Suggested Backoff Time: 10 milliseconds [THROTTLED]",
        )
        .start();
    let dir = tempfile::tempdir().expect("temp dir");

    let run = backup(&source, &destination, dir.path());
    assert_eq!(run.status.code(), Some(75), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("keeps asking to slow down"), "{}", text(&run));
    assert!(stderr.contains("INBOX"), "{}", text(&run));
    assert!(destination.messages("INBOX").is_empty());
    // Per attempt the first round and five retries, of each of the three messages; the
    // run reconnects once after a temporary failure (`--retries`), so twice that.
    assert!(stderr.contains("retry 1 of 1"), "{}", text(&run));
    assert_eq!(appends(&destination), 2 * 6 * 3, "{}", text(&run));
}
