//! POP3 and IMAP+POP3 sources through the binary: the destination's own POP3 server must
//! list the source's UIDLs in the source's order, and the pair must keep the IMAP view.

use std::path::Path;

use testkit::{Dovecot, RawImap, RawPop3, fixtures};

use super::{PASSWORD, dsync, text};

/// `UIDL` and `LIST` as a POP3 client sees them.
type Pop3Listing = (Vec<(u32, String)>, Vec<(u32, u64)>);

fn pop3_listing(dovecot: &Dovecot, user: &str, password: &str) -> Pop3Listing {
    let mut pop3 = RawPop3::login(dovecot.pop3_port(), user, password);
    let listing = (pop3.uidl(), pop3.list());
    pop3.quit();
    listing
}

/// Dovecot serving a copy of the Maildir at `path`.
fn serve(path: &Path) -> Dovecot {
    Dovecot::builder().user_serving_copy("reader", "readerpw", path, "maildir").start()
}

fn maildir(path: &Path) -> String {
    format!("maildir:{}", path.display())
}

/// Messages with two equal sizes in a row, so matching needs header hashes.
fn populate(dovecot: &Dovecot, user: &str, extra: bool) {
    let mut imap = RawImap::login(dovecot.imap_port(), user, PASSWORD);
    for index in 0..4 {
        imap.append("INBOX", &[], None, &fixtures::message(index, "same size", "body"));
    }
    imap.append("INBOX", &[], None, &fixtures::sized_message(9, 3000));
    if extra {
        imap.append("INBOX", &[], None, &fixtures::sized_message(10, 5000));
    }
    imap.logout();
}

#[test]
fn pop3_and_imap_pop3_sources_keep_what_pop3_clients_cached() {
    let source = Dovecot::builder().user("alice", PASSWORD).pop3_uidl_format("%08Xv%08Xu").start();
    populate(&source, "alice", false);
    let expected_pop3 = pop3_listing(&source, "alice", PASSWORD);
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.store("INBOX", "2", "+FLAGS (\\Flagged $Work)");
    let expected_imap = imap.snapshot();
    imap.logout();
    let pop3 = format!("pop3://alice@127.0.0.1:{}?tls=none", source.pop3_port());
    let pair = format!("imap://alice@127.0.0.1:{}?tls=none,{pop3}", source.imap_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let (only_pop3, paired) = (dir.path().join("pop3"), dir.path().join("pair"));

    // check: the POP3 view as a preflight.
    let check = dsync(&["check", &pop3], Some(PASSWORD));
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("5 messages"), "{}", text(&check));

    // IMAP with POP3 UIDLs: both views survive.
    let paired_run = dsync(&["backup", &pair, &maildir(&paired)], Some(PASSWORD));
    assert_eq!(paired_run.status.code(), Some(0), "{}", text(&paired_run));
    let served = serve(&paired);
    let mut reader = RawImap::login(served.imap_port(), "reader", "readerpw");
    expected_imap.assert_same(&reader.snapshot());
    reader.logout();
    assert_eq!(pop3_listing(&served, "reader", "readerpw"), expected_pop3);
    drop(served);
    // Matching read headers with TOP only: the source is unchanged.
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    expected_imap.assert_same(&imap.snapshot());
    imap.logout();

    // POP3 alone. (Last: Dovecot marks what RETR fetched \Seen when the session ends, as
    // it does for any POP3 client; TOP, all the pair uses, does not.)
    let first = dsync(&["backup", &pop3, &maildir(&only_pop3)], Some(PASSWORD));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let served = serve(&only_pop3);
    assert_eq!(pop3_listing(&served, "reader", "readerpw"), expected_pop3);
    drop(served);
    let verify = dsync(&["verify", "--bodies", &pop3, &maildir(&only_pop3)], Some(PASSWORD));
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    let again = dsync(&["backup", &pop3, &maildir(&only_pop3)], Some(PASSWORD));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 messages saved"),
        "{}",
        text(&again)
    );
}

#[test]
fn unmatched_pop3_mail_fails_with_the_setting_that_lets_it_through() {
    let dovecot = Dovecot::builder().user("alice", PASSWORD).user("bob", PASSWORD).start();
    populate(&dovecot, "alice", false);
    populate(&dovecot, "bob", true);
    let pair = format!(
        "imap://alice@127.0.0.1:{}?tls=none,pop3://bob@127.0.0.1:{}?tls=none",
        dovecot.imap_port(),
        dovecot.pop3_port()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let target = maildir(&dir.path().join("Maildir"));

    let refused = dsync(&["backup", &pair, &target], Some(PASSWORD));
    assert_eq!(refused.status.code(), Some(65), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("1 POP3 messages have no matching IMAP messages")
            && said.contains("pop3_migration_ignore_extra_uidls"),
        "{said}"
    );

    let tolerated = dsync(
        &["backup", "-o", "pop3_migration_ignore_extra_uidls=yes", &pair, &target],
        Some(PASSWORD),
    );
    assert_eq!(tolerated.status.code(), Some(0), "{}", text(&tolerated));
    assert!(
        String::from_utf8_lossy(&tolerated.stderr).contains("POP3 contains more than IMAP INBOX"),
        "the tolerated mismatch is still reported: {}",
        text(&tolerated)
    );
}

#[test]
fn pop3_debug_and_raw_log_show_the_protocol_but_no_password() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    populate(&source, "alice", false);
    let pop3 = format!("pop3://alice@127.0.0.1:{}?tls=none", source.pop3_port());
    let pair = format!("imap://alice@127.0.0.1:{}?tls=none,{pop3}", source.imap_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let rawlogs = dir.path().join("raw");
    let rawlog = rawlogs.to_str().expect("utf-8");
    // The password never appears: `dsync` asserts it for stdout and stderr, and an
    // `AUTH PLAIN` line never shows its argument.
    let no_sasl_payload = |said: &str| {
        for line in said.lines().filter(|line| line.contains("AUTH PLAIN")) {
            assert!(line.ends_with("AUTH PLAIN <redacted>"), "{line}");
        }
    };

    // IMAP with POP3 UIDLs first (TOP only: RETR would mark mail \Seen, see above).
    let paired =
        dsync(&["backup", "-D", &pair, &maildir(&dir.path().join("pair"))], Some(PASSWORD));
    assert_eq!(paired.status.code(), Some(0), "{}", text(&paired));
    let said = String::from_utf8_lossy(&paired.stderr);
    for wanted in ["C: AUTH PLAIN <redacted>", "C: UIDL", "C: TOP 1 0", "S: +OK", "SELECT"] {
        assert!(said.contains(wanted), "{wanted:?} missing: {said}");
    }
    no_sasl_payload(&said);

    let run = dsync(
        &["backup", "-D", "-r", rawlog, &pop3, &maildir(&dir.path().join("pop3"))],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let said = String::from_utf8_lossy(&run.stderr);
    for wanted in
        ["C: AUTH PLAIN <redacted>", "S: +OK Logged in", "C: UIDL", "C: RETR 5", "C: QUIT"]
    {
        assert!(said.contains(wanted), "{wanted:?} missing: {said}");
    }
    no_sasl_payload(&said);
    // Bodies are shown by their length only.
    assert!(!said.contains("Subject: same size"), "{said}");
    assert!(said.contains(" octets)"), "{said}");

    let raw = std::fs::read_to_string(rawlogs.join("alice.rawlog")).expect("raw log");
    for wanted in ["C: AUTH PLAIN <redacted>", "C: UIDL", "C: RETR 1", "S: +OK"] {
        assert!(raw.contains(wanted), "{wanted:?} missing from the raw log: {raw}");
    }
    assert!(!raw.contains(PASSWORD) && !raw.contains("Subject: same size"), "{raw}");
    no_sasl_payload(&raw);
}
