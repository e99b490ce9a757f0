//! Thousands of folders (issue 16 item 9): every cost of a run must stay linear in the
//! number of mailboxes. Before the fix, 3 000 subscribed folders took 55 s Maildir to
//! Maildir in a release build and minutes in a debug one (each subscription rewrote the
//! whole file, each duplicate check scanned a list: cubic; a debug build took 86 s for
//! 2 000), and re-creating them with a saved state took 86 s (the whole state written per
//! folder). Now a debug build takes about 8 s and 12 s, so the bound only catches a return
//! of the quadratic terms. (That the state is appended to, not rewritten, is also checked
//! exactly by the state file's unit test.)

use std::path::Path;
use std::time::{Duration, Instant};

use mailstore::{Durability, Location, MailboxName, Maildir, Options};
use testkit::{Dovecot, RawImap};

use super::{dsync, text};

const FOLDERS: u32 = 3_000;
const BOUND: Duration = Duration::from_secs(60);

fn source(root: &Path) -> Vec<MailboxName> {
    let options = Options::default().with_durability(Durability::Deferred);
    let maildir = Maildir::with_options(Location::maildir(root), options);
    let mut names = vec![MailboxName::inbox()];
    names
        .extend((1..=FOLDERS).map(|i| MailboxName::new([format!("Folder {i:05}")]).expect("name")));
    for (index, name) in (1u32..).zip(&names) {
        maildir.create_mailbox(name, Some(index), None).expect("create");
    }
    maildir.set_subscriptions(&names).expect("subscribe");
    names
}

#[test]
fn thousands_of_subscribed_folders_take_linear_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source_root = dir.path().join("source");
    let names = source(&source_root);
    let destination = dir.path().join("destination");
    let source_location = format!("maildir:{}", source_root.display());
    let target = format!("maildir:{}", destination.display());

    let started = Instant::now();
    let first = dsync(&["backup", "--no-fsync", &source_location, &target], None);
    let took = started.elapsed();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(took < BOUND, "{FOLDERS} folders took {took:?}");
    let mut written = Maildir::open(Location::maildir(&destination)).subscriptions().expect("read");
    written.sort();
    let mut wanted = names.clone();
    wanted.sort();
    assert!(written == wanted, "{} subscriptions written for {}", written.len(), wanted.len());

    // Folders gone from the destination while the state remembers them: each is created
    // again, after its state entry is dropped (one appended line each, not the whole state).
    for index in 1..=FOLDERS {
        std::fs::remove_dir_all(destination.join(format!(".Folder {index:05}"))).expect("remove");
    }
    let started = Instant::now();
    let again = dsync(&["backup", "--no-fsync", &source_location, &target], None);
    let took = started.elapsed();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(took < BOUND, "re-creating {FOLDERS} folders took {took:?}");
    assert!(text(&again).contains(&format!("({FOLDERS} created)")), "{}", text(&again));

    let dovecot =
        Dovecot::builder().user_serving_copy("reader", "readerpw", &destination, "maildir").start();
    let mut imap = RawImap::login(dovecot.imap_port(), "reader", "readerpw");
    assert_eq!(imap.subscriptions().len(), names.len());
    assert_eq!(imap.list().len(), names.len());
}
