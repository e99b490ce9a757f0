//! Files Dovecot keeps that IMAP does not show, next to what `doveadm backup` leaves for the
//! same source: mail without flags in `new/` under its bare name (clients see it
//! `\Recent`), and `dovecot-uidvalidity` with its marker, whose next value is above every
//! UIDVALIDITY we wrote.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use testkit::{Dovecot, MAIL_GID, MAIL_UID, RawImap, Token, fixtures};

use super::{PASSWORD, dsync, text};

/// A directory owned by the mail user, for doveadm (which runs as the mail user) and for
/// Dovecot serving our output in place.
fn mail_users_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::os::unix::fs::chown(path, Some(MAIL_UID), Some(MAIL_GID)).expect("chown");
}

/// `doveadm backup -R` of alice's mail over imapc into `destination`.
fn doveadm_backup(source: &Dovecot, destination: &Path) {
    let settings = [
        "imapc_host=127.0.0.1".to_owned(),
        format!("imapc_port={}", source.imap_port()),
        "imapc_user=alice".to_owned(),
        format!("imapc_password={PASSWORD}"),
        format!("mail_location=maildir:{}", destination.display()),
    ];
    let mut args: Vec<&str> = Vec::new();
    for setting in &settings {
        args.extend_from_slice(&["-o", setting]);
    }
    args.extend_from_slice(&["backup", "-R", "-u", "alice", "imapc:"]);
    let output = source.doveadm(&args);
    assert!(output.status.success(), "doveadm backup: {}", String::from_utf8_lossy(&output.stderr));
}

fn our_backup(source: &Dovecot, destination: &Path) -> String {
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let run = dsync(
        &["backup", &location, &format!("maildir:{}", destination.display())],
        Some(PASSWORD),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    String::from_utf8_lossy(&run.stdout).into_owned()
}

/// (folder, UID) → (`new` or `cur`, the file name's info after the base: `""` or `:2,…`).
fn placement(root: &Path) -> BTreeMap<(String, u32), (&'static str, String)> {
    let maildir = mailstore::Maildir::with_options(
        format!("maildir:{}", root.display()).parse().expect("location"),
        mailstore::Options::default().with_read_only(true),
    );
    let mut found = BTreeMap::new();
    for entry in maildir.mailboxes().expect("mailboxes") {
        if !entry.selectable {
            continue;
        }
        let mailbox = maildir.mailbox(&entry.name).expect("mailbox");
        for message in mailbox.messages().expect("messages") {
            let sub = if mailbox.path().join("new").join(&message.file_name).exists() {
                "new"
            } else {
                "cur"
            };
            let info = message.file_name.find(':').map_or("", |at| &message.file_name[at..]);
            found.insert((entry.name.to_string(), message.uid), (sub, info.to_owned()));
        }
    }
    found
}

/// The items of a parenthesised list (nothing for other tokens).
fn list(token: &Token) -> &[Token] {
    match token {
        Token::List(items) => items,
        _ => &[],
    }
}

/// UID → FLAGS (with `\Recent`, sorted) of `mailbox`, from a session that SELECTs it.
fn flags_with_recent(imap: &mut RawImap, mailbox: &str) -> BTreeMap<u32, Vec<String>> {
    imap.select(mailbox);
    let response = imap.command_ok("UID FETCH 1:* (UID FLAGS)");
    let mut found = BTreeMap::new();
    for untagged in &response.untagged {
        if untagged.get(1) != Some(&Token::Atom("FETCH".into())) {
            continue;
        }
        let items = list(&untagged[2]);
        let value = |name: &str| {
            items
                .iter()
                .position(|t| t.text().eq_ignore_ascii_case(name))
                .and_then(|i| items.get(i + 1))
        };
        let uid = value("UID").expect("UID").text().parse().expect("number");
        let mut flags: Vec<String> =
            list(value("FLAGS").expect("FLAGS")).iter().map(Token::text).collect();
        flags.sort();
        found.insert(uid, flags);
    }
    found
}

#[test]
fn mail_without_flags_is_in_new_and_recent_as_doveadm_leaves_it() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.create("Folder");
    for (index, flags) in [
        (1, &[][..]),
        (2, &["\\Seen"][..]),
        (3, &["$Label1"][..]),
        (4, &["\\Flagged", "\\Answered"][..]),
        (5, &[][..]),
    ] {
        imap.append("INBOX", flags, None, &fixtures::message(index, "placed", "where?"));
    }
    imap.append("Folder", &[], None, &fixtures::message(6, "folder", "unflagged"));
    imap.append("Folder", &["\\Deleted"], None, &fixtures::message(7, "folder", "deleted"));
    imap.logout();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (theirs, ours, later) =
        (dir.path().join("theirs"), dir.path().join("ours"), dir.path().join("later"));
    for root in [&theirs, &ours, &later] {
        mail_users_dir(root);
    }
    // doveadm first: mail nobody has selected yet is \Recent for its imapc session, which
    // it keeps in new/ (maildir-save.c: no keywords and flags exactly \Recent).
    doveadm_backup(&source, &theirs);
    our_backup(&source, &ours);
    let expected = placement(&theirs);
    assert_eq!(expected[&("INBOX".into(), 1)], ("new", String::new()));
    assert_eq!(expected[&("INBOX".into(), 2)], ("cur", ":2,S".into()));
    assert_eq!(placement(&ours), expected);

    // Dovecot serving each shows the same flags. \Recent: Dovecot reads it from the uidlist
    // as "after the last message that was in cur/" (maildir-sync-index.c), so our last
    // INBOX message, in new/, is recent and carries nothing else. doveadm also writes
    // Dovecot's index, where every message it copied is recent (its imapc session saw them
    // so); we write no index.
    let reader = Dovecot::builder()
        .user_with_mail("ours", "pw", &format!("maildir:{}", ours.display()))
        .user_with_mail("theirs", "pw", &format!("maildir:{}", theirs.display()))
        .start();
    let mut seen = Vec::new();
    for user in ["ours", "theirs"] {
        let mut imap = RawImap::login(reader.imap_port(), user, "pw");
        seen.push((flags_with_recent(&mut imap, "INBOX"), flags_with_recent(&mut imap, "Folder")));
    }
    let without_recent = |flags: &BTreeMap<u32, Vec<String>>| {
        let mut flags = flags.clone();
        for flags in flags.values_mut() {
            flags.retain(|flag| flag != "\\Recent");
        }
        flags
    };
    for (ours, theirs) in [(&seen[0].0, &seen[1].0), (&seen[0].1, &seen[1].1)] {
        assert_eq!(without_recent(ours), without_recent(theirs));
    }
    assert_eq!(seen[0].0[&5], ["\\Recent"]);
    assert_eq!(seen[1].0[&5], ["\\Recent"]);

    // A later flag change moves the file to cur/ with its info; the next run has nothing
    // to do (the incremental state copes with the move).
    our_backup(&source, &later);
    assert_eq!(placement(&later)[&("INBOX".into(), 5)], ("new", String::new()));
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    imap.store("INBOX", "5", "+FLAGS (\\Seen)");
    let summary = our_backup(&source, &later);
    assert!(summary.contains("1 flag changes"), "{summary}");
    assert_eq!(placement(&later)[&("INBOX".into(), 5)], ("cur", ":2,S".into()));
    let summary = our_backup(&source, &later);
    assert!(summary.contains("0 messages saved (0 B), 0 expunged, 0 flag changes"), "{summary}");
    imap.snapshot().assert_same(
        &RawImap::login(
            Dovecot::builder()
                .user_with_mail("later", "pw", &format!("maildir:{}", later.display()))
                .start()
                .imap_port(),
            "later",
            "pw",
        )
        .snapshot(),
    );
}

/// The `dovecot-uidvalidity*` files of a root: name → (contents, mode).
fn uidvalidity_files(root: &Path) -> BTreeMap<String, (String, u32)> {
    std::fs::read_dir(root)
        .expect("read root")
        .map(|entry| entry.expect("entry"))
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("dovecot-uidvalidity"))
        .map(|entry| {
            let contents = std::fs::read_to_string(entry.path()).expect("read");
            let mode = entry.metadata().expect("stat").mode() & 0o777;
            (entry.file_name().to_string_lossy().into_owned(), (contents, mode))
        })
        .collect()
}

/// The value the allocator of `root` holds, checking the files have Dovecot's shape: the
/// main file holds 8 lowercase hex digits, and one empty 0444 marker carries the same.
fn allocator(root: &Path) -> u32 {
    let files = uidvalidity_files(root);
    assert_eq!(files.len(), 2, "{}: {files:?}", root.display());
    let (value, _) = &files["dovecot-uidvalidity"];
    assert!(value.len() == 8 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(files[&format!("dovecot-uidvalidity.{value}")], (String::new(), 0o444));
    u32::from_str_radix(value, 16).expect("hex")
}

#[test]
fn dovecot_uidvalidity_is_written_as_dovecot_does_and_stays_above_ours() {
    let source = Dovecot::builder().user("alice", PASSWORD).start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    for folder in ["Archive", "Future"] {
        imap.create(folder);
        imap.append(folder, &["\\Seen"], None, &fixtures::message(1, folder, "body"));
    }
    imap.append("INBOX", &[], None, &fixtures::message(2, "inbox", "body"));
    imap.logout();
    // A server whose UIDVALIDITYs run ahead of the clock (counters, another host's time).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let future = u32::try_from(now).expect("32-bit time") + 1_000_000;
    source.doveadm_ok(&[
        "mailbox",
        "update",
        "-u",
        "alice",
        "--uid-validity",
        &future.to_string(),
        "Future",
    ]);

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (theirs, ours) = (dir.path().join("theirs"), dir.path().join("ours"));
    for root in [&theirs, &ours] {
        mail_users_dir(root);
    }
    doveadm_backup(&source, &theirs);
    our_backup(&source, &ours);
    // The same files in the same shape; doveadm's value is its first allocation (the
    // clock), which does not know the values it copied: `future` is above it.
    let theirs_value = allocator(&theirs);
    let ours_value = allocator(&ours);
    assert!(theirs_value < future, "doveadm: {theirs_value:08x}");
    assert_eq!(ours_value, future);

    // A folder Dovecot creates later gets a value above every one we wrote.
    let reader = Dovecot::builder()
        .user_with_mail("ours", "pw", &format!("maildir:{}", ours.display()))
        .start();
    let mut imap = RawImap::login(reader.imap_port(), "ours", "pw");
    let written: Vec<u32> =
        imap.snapshot().mailboxes.values().map(|mailbox| mailbox.uid_validity).collect();
    assert!(written.contains(&future), "{written:?}");
    imap.create("Created by Dovecot");
    let (_, _, created) = imap.status("Created by Dovecot");
    assert!(written.iter().all(|&value| created > value), "{created} vs {written:?}");
    assert_eq!(allocator(&ours), created);
}
