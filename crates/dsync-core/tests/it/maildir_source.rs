//! A Maildir source never hands out a byte from outside its tree and never leaves anything
//! behind in silence: what it will not read is reported in [`Report::skipped`], the run
//! exits 65, and the next run reports it again instead of passing over it as unchanged.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::state::SyncState;
use dsync_core::{Mode, NoObserver, Report, Side, SyncOptions};
use mailstore::{Durability, Flags, Location, MailboxName, Maildir, SaveOptions};

const SECRET: &str = "TOP-SECRET-7d41e9";

fn save(maildir: &Maildir, name: &str, uid_validity: u32, body: &str) {
    let name: MailboxName = name.parse().expect("name");
    let mut mailbox = match maildir.mailbox(&name) {
        Ok(mailbox) => mailbox,
        Err(_) => maildir.create_mailbox(&name, Some(uid_validity), None).expect("create"),
    };
    let mut pending = mailbox.begin_save().expect("begin");
    std::io::Write::write_all(&mut pending, body.as_bytes()).expect("write");
    let options = SaveOptions::default().with_flags(Flags::SEEN).with_received(1_700_000_000);
    mailbox.save(pending, options).expect("save");
    mailbox.commit().expect("commit");
}

/// A source with INBOX and Archive, a symlink to a secret file in Archive/cur, a FIFO in
/// INBOX's new/, a folder that is a symlink to a folder outside, and a folder in raw UTF-8.
fn hostile_source(dir: &Path) -> PathBuf {
    let root = dir.join("source");
    let maildir = Maildir::open(Location::maildir(&root));
    save(&maildir, "INBOX", 11, "Subject: one\n\nONE\n");
    save(&maildir, "Archive", 12, "Subject: two\n\nTWO\n");
    fs::write(dir.join("secret"), format!("Subject: {SECRET}\n\n{SECRET}\n")).expect("secret");
    symlink(dir.join("secret"), root.join(".Archive/cur/1700000009.M9P9.evil:2,S")).expect("link");
    let fifo = root.join("new/1700000010.M10P10.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let outside = dir.join("outside");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(outside.join(sub)).expect("outside");
    }
    fs::write(outside.join("cur/1700000011.M11P11.evil:2,S"), SECRET).expect("outside mail");
    symlink(&outside, root.join(".Linked")).expect("folder link");
    // Made under another name (so that it has a uidlist, as Dovecot leaves one), then given
    // a directory name in raw UTF-8, which is not modified UTF-7.
    save(&maildir, "Cafe", 13, "Subject: cafe\n\nCAFE\n");
    fs::rename(root.join(".Cafe"), root.join(".café")).expect("raw UTF-8 folder");
    root
}

fn backup(source: &Path, destination: &Path, state: Option<SyncState>) -> Report {
    let source = format!("maildir:{}", source.display());
    let destination = format!("maildir:{}", destination.display());
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut source = MaildirStorage::open_read_only(&source).expect("source");
        let mut destination =
            MaildirStorage::open(&destination, Durability::Deferred).expect("destination");
        let options = SyncOptions::new(Mode::Backup).state(state);
        let report = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver);
        let _ = sender.send(report.unwrap_or_else(|failed| panic!("backup failed: {failed}")));
    });
    receiver.recv_timeout(Duration::from_secs(60)).expect("the backup hung")
}

/// Every file below `dir`, read.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.push((path.clone(), fs::read(&path).expect("read")));
        }
    }
    out
}

#[test]
fn a_hostile_maildir_source_is_copied_except_what_it_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = hostile_source(dir.path());
    let destination = dir.path().join("destination");

    let report = backup(&source, &destination, None);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.exit_code(), 65);
    assert_eq!(report.totals().saved, 3, "INBOX, Archive and café are copied");
    let mut skipped: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            format!(
                "source mailbox Archive: .Archive/cur/1700000009.M9P9.evil:2,S: a symlink to {}, \
                 outside the Maildir: not followed",
                dir.path().join("secret").display()
            ),
            "source mailbox INBOX: new/1700000010.M10P10.fifo: a FIFO (named pipe), not a \
             regular file"
                .to_string(),
            format!(
                "source mailbox Linked: .Linked: a symlink to {}, outside the Maildir: not followed",
                dir.path().join("outside").display()
            ),
        ]
    );
    assert!(report.skipped.iter().all(|s| s.side == Side::Source));
    for (path, bytes) in all_bytes(&destination) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "{} holds the secret", path.display());
    }
    let copied = Maildir::open(Location::maildir(&destination));
    let cafe = copied.mailbox(&"café".parse().expect("name")).expect("café is copied");
    assert_eq!(cafe.path(), destination.join(".caf&AOk-"), "stored under the canonical name");
    assert_eq!(cafe.messages().expect("messages").len(), 1);

    // The mailboxes with a skipped entry are not recorded as synced: the next run looks at
    // them again and reports the same entries, rather than passing over them with exit 0.
    let state = report.state.expect("state");
    for name in ["INBOX", "Archive"] {
        let name = dsync_core::MailboxName::split(name, Some('/')).expect("name");
        assert!(!state.mailboxes.contains_key(&name), "{name} recorded as synced");
    }
    let again = backup(&source, &destination, Some(state));
    assert_eq!((again.exit_code(), again.skipped.len(), again.totals().saved), (65, 3, 0));
}

/// A backup compares Maildir folders as they are read ([`Storage::listing`]): that listing
/// must be the folder's contents, with the same status and the same entries left out.
#[test]
fn a_maildir_folder_read_as_it_comes_is_its_contents() {
    use dsync_core::Storage as _;

    let dir = tempfile::tempdir().expect("temp dir");
    let source = hostile_source(dir.path());
    let maildir = Maildir::open(Location::maildir(&source));
    for n in 0..5 {
        save(&maildir, "INBOX", 11, &format!("Subject: {n}\n\nbody {n}\n"));
    }
    let mut storage =
        MaildirStorage::open_read_only(&format!("maildir:{}", source.display())).expect("open");
    for name in ["INBOX", "Archive"] {
        let name = dsync_core::MailboxName::split(name, Some('/')).expect("name");
        let whole = storage.contents(&name).expect("contents");
        let whole_skipped = storage.take_skipped();
        assert_eq!(whole_skipped.len(), 1, "{name}: the FIFO or the symlink is left out");
        let (status, messages) = {
            let listing = storage.listing(&name).expect("listing");
            let messages: Vec<_> = listing.messages.collect::<Result<_, _>>().expect("messages");
            (listing.status, messages)
        };
        assert_eq!(status, whole.status, "{name}");
        assert_eq!(messages, whole.messages, "{name}");
        assert!(messages.windows(2).all(|pair| pair[0].uid < pair[1].uid), "ascending UIDs");
        assert_eq!(storage.take_skipped(), whole_skipped, "{name}");
    }
}

/// Sets the modification time of the directory `dir` to `seconds` ago.
fn age(dir: &Path, seconds: u64) {
    let then = std::time::SystemTime::now() - Duration::from_secs(seconds);
    fs::File::open(dir).expect("open dir").set_modified(then).expect("set mtime");
}

/// A read-only source without `dovecot-uidlist` whose UIDs are kept outside
/// ([`Maildir::keep_uids_in`]) gives a change token once it was listed, the same at the next
/// opening, so an unchanged folder is not listed again; a delivery changes it, and a folder
/// changed within the last second gives none (a second change in the same tick of the
/// directory's mtime would go unseen).
#[test]
fn a_maildir_source_without_uidlist_has_a_change_token_that_follows_its_directories() {
    use dsync_core::Storage as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("source");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).expect("maildir");
    }
    for n in 1..=3 {
        fs::write(root.join(format!("cur/170000000{n}.M{n}P1.mta:2,S")), "Subject: s\n\nb\n")
            .expect("mail");
    }
    age(&root.join("cur"), 60);
    age(&root.join("new"), 60);
    let kept = dir.path().join("state.uidlist");
    let open = || {
        let maildir = Maildir::with_options(
            Location::maildir(&root),
            mailstore::Options::default().with_read_only(true),
        );
        maildir.keep_uids_in(kept.clone(), mailstore::Permissions::private(), true);
        MaildirStorage::from_maildir(maildir)
    };
    let inbox = dsync_core::MailboxName::inbox();
    let listed = open().contents(&inbox).expect("contents");
    assert_eq!(listed.messages.len(), 3);
    let token = listed.status.change_token.clone();
    assert!(token.is_some(), "a settled folder has a token");
    assert_eq!(open().stamp(&inbox).expect("stamp").change_token, token, "same at reopening");

    fs::write(root.join("new/1700000004.M4P1.mta"), "Subject: s\n\nb\n").expect("deliver");
    age(&root.join("new"), 30);
    let after = open().stamp(&inbox).expect("stamp").change_token;
    assert!(after.is_some() && after != token, "a delivery changes it: {after:?}");
    // The listing that numbers the new file saves the token the next run finds.
    let relisted = open().contents(&inbox).expect("contents");
    assert_eq!(relisted.messages.len(), 4);
    let token = relisted.status.change_token;
    assert!(token.is_some());
    assert_eq!(open().stamp(&inbox).expect("stamp").change_token, token, "same after numbering");

    fs::write(root.join("new/1700000005.M5P1.mta"), "Subject: s\n\nb\n").expect("deliver");
    assert_eq!(open().stamp(&inbox).expect("stamp").change_token, None, "just changed");
    assert!(!root.join("dovecot-uidlist").exists(), "nothing written into the source");
}
