//! The Maildir and sdbox adapters keep the view of the mailbox they fetched from last
//! between fetches (a backup reads header hashes in chunks), let it go on any write and
//! when another mailbox is read, and still find a message whose file moved since.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::adapters::sdbox::SdboxStorage;
use dsync_core::mailstore::Durability;
use dsync_core::{
    ErrorKind, Flags, MailboxName, MessageMeta, MessageSink, NewMailbox, Storage, StorageError,
    StorageMut, Uid, UidValidity,
};

/// The bodies a fetch delivered, by UID.
#[derive(Default)]
struct Bodies {
    done: Vec<(Uid, Vec<u8>)>,
    pending: Vec<u8>,
}

impl MessageSink for Bodies {
    fn body(&mut self, body: &mut dyn Read) -> Result<(), StorageError> {
        self.pending.clear();
        body.read_to_end(&mut self.pending)
            .map_err(|e| StorageError::new(ErrorKind::from_io(&e), "read"))?;
        Ok(())
    }

    fn done(&mut self, uid: Uid) -> Result<(), StorageError> {
        self.done.push((uid, std::mem::take(&mut self.pending)));
        Ok(())
    }
}

fn uid(n: u32) -> Uid {
    Uid::new(n).expect("nonzero")
}

fn body(n: u32) -> String {
    format!("Subject: message {n}\r\n\r\nbody {n}\r\n")
}

/// What `fetch` of `uids` delivers: (UID, body) each.
fn fetch(
    storage: &mut dyn StorageMut,
    mailbox: &MailboxName,
    uids: &[u32],
) -> Result<Vec<(u32, String)>, StorageError> {
    let uids: Vec<Uid> = uids.iter().map(|&n| uid(n)).collect();
    let mut bodies = Bodies::default();
    storage.fetch(mailbox, &uids, &mut bodies)?;
    Ok(bodies
        .done
        .into_iter()
        .map(|(uid, bytes)| (uid.get(), String::from_utf8(bytes).expect("UTF-8")))
        .collect())
}

/// Creates `mailbox` in `storage` with messages 1..=`count`.
fn fill(storage: &mut dyn StorageMut, mailbox: &MailboxName, count: u32) {
    let new =
        NewMailbox { uid_validity: UidValidity::new(42), guid: None, source_uid_validity: None };
    storage.create_mailbox(mailbox, &new).expect("create");
    let mut writer = storage.writer(mailbox).expect("writer");
    for n in 1..=count {
        writer.save_body(&mut body(n).as_bytes()).expect("body");
        let mut meta = MessageMeta::new(uid(n), Flags::default());
        meta.received = Some(1_700_000_000);
        writer.save_finish(&meta).expect("save");
    }
    writer.commit().expect("commit");
}

fn archive() -> MailboxName {
    MailboxName::new(["Archive"]).expect("name")
}

/// The Maildir `root` with INBOX (messages 1–3) and Archive (1).
fn maildir(root: &Path) -> MaildirStorage {
    let mut storage = MaildirStorage::open_path(root, Durability::Deferred);
    fill(&mut storage, &MailboxName::inbox(), 3);
    fill(&mut storage, &archive(), 1);
    storage
}

/// A file an MTA delivered into INBOX's `new/`, which the uidlist does not know yet: the
/// next read of the folder's view gives it a UID (and writes it into the uidlist).
const DELIVERED: &str = "1700000100.M1P1.mta";

fn deliver(root: &Path) {
    fs::write(root.join("new").join(DELIVERED), body(4)).expect("deliver");
}

/// True when the uidlist holds the delivered file: the view was read again since.
fn read_again(root: &Path) -> bool {
    fs::read_to_string(root.join("dovecot-uidlist")).expect("uidlist").contains(DELIVERED)
}

#[test]
fn a_maildir_keeps_its_view_between_fetches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("mail");
    let mut storage = maildir(&root);
    let inbox = MailboxName::inbox();
    assert_eq!(fetch(&mut storage, &inbox, &[1]).expect("fetch"), [(1, body(1))]);
    deliver(&root);
    assert_eq!(fetch(&mut storage, &inbox, &[2, 3]).expect("fetch"), [(2, body(2)), (3, body(3))]);
    assert!(!read_again(&root), "the second fetch read the folder again");
    // A UID the kept view does not know is looked for in a fresh read.
    assert_eq!(fetch(&mut storage, &inbox, &[4]).expect("fetch"), [(4, body(4))]);
    assert!(read_again(&root));
}

#[test]
fn a_maildir_lets_its_view_go_on_a_write_and_on_another_mailbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("mail");
    let mut storage = maildir(&root);
    let inbox = MailboxName::inbox();

    // A write through the storage, even to another mailbox.
    fetch(&mut storage, &inbox, &[1]).expect("fetch");
    deliver(&root);
    drop(storage.writer(&archive()).expect("writer"));
    fetch(&mut storage, &inbox, &[1]).expect("fetch");
    assert!(read_again(&root), "a writer left the view kept");

    // A fetch from another mailbox: only one view is kept.
    let root = dir.path().join("other");
    let mut storage = maildir(&root);
    fetch(&mut storage, &inbox, &[1]).expect("fetch");
    deliver(&root);
    assert_eq!(fetch(&mut storage, &archive(), &[1]).expect("fetch"), [(1, body(1))]);
    fetch(&mut storage, &inbox, &[1]).expect("fetch");
    assert!(read_again(&root), "INBOX's view was kept beside Archive's");

    // Each kind of write.
    type Write = fn(&mut MaildirStorage);
    let writes: [(&str, Write); 4] = [
        ("subscribe", |s| s.set_subscribed(&archive(), true).expect("subscribe")),
        ("create", |s| {
            let name = MailboxName::new(["New"]).expect("name");
            let new = NewMailbox { uid_validity: None, guid: None, source_uid_validity: None };
            s.create_mailbox(&name, &new).expect("create");
        }),
        ("delete", |s| s.delete_mailbox(&archive()).expect("delete")),
        ("rename", |s| {
            let to = MailboxName::new(["Renamed"]).expect("name");
            s.rename_mailbox(&archive(), &to).expect("rename");
        }),
    ];
    for (n, (what, write)) in writes.into_iter().enumerate() {
        let root = dir.path().join(format!("write{n}"));
        let mut storage = maildir(&root);
        fetch(&mut storage, &inbox, &[1]).expect("fetch");
        deliver(&root);
        write(&mut storage);
        fetch(&mut storage, &inbox, &[1]).expect("fetch");
        assert!(read_again(&root), "{what} left the view kept");
    }
}

/// Every message file of the Maildir folder at `folder`.
fn message_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        for entry in fs::read_dir(folder.join(sub)).expect("read dir") {
            files.push(entry.expect("entry").path());
        }
    }
    files.sort();
    files
}

/// A message whose file was renamed since the view was kept (a flag change by Dovecot or
/// a mail client) is still found, by a fresh read; one whose file is gone is passed over.
#[test]
fn a_maildir_finds_a_message_renamed_since_its_view_was_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("mail");
    let mut storage = maildir(&root);
    let inbox = MailboxName::inbox();
    assert_eq!(fetch(&mut storage, &inbox, &[1]).expect("fetch"), [(1, body(1))]);
    let files = message_files(&root);
    assert_eq!(files.len(), 3);
    for file in &files {
        let text = fs::read_to_string(file).expect("read");
        let name = file.file_name().expect("name").to_string_lossy().into_owned();
        let base = name.split(':').next().expect("base");
        if text.contains("body 2") {
            // Flagged \Seen and moved to cur/, as a client's flag change does.
            fs::rename(file, root.join("cur").join(format!("{base}:2,S"))).expect("rename");
        } else if text.contains("body 3") {
            fs::remove_file(file).expect("expunge");
        }
    }
    assert_eq!(fetch(&mut storage, &inbox, &[2, 3]).expect("fetch"), [(2, body(2))]);
    assert_eq!(fetch(&mut storage, &inbox, &[1, 2]).expect("fetch"), [(1, body(1)), (2, body(2))]);
}

/// The files of `folder` whose names start `dovecot.index` (the index and its logs).
fn index_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(folder)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dovecot.index"))
        })
        .collect();
    files.sort();
    files
}

/// Moves the index of the sdbox folder `folder` away (`away`) or back.
fn move_index(folder: &Path, aside: &Path, away: bool) {
    let (from, to) = if away { (folder, aside) } else { (aside, folder) };
    fs::create_dir_all(to).expect("aside");
    for file in index_files(from) {
        fs::rename(&file, to.join(file.file_name().expect("name"))).expect("move");
    }
}

#[test]
fn an_sdbox_keeps_its_index_between_fetches_until_a_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("mail");
    let mut storage = SdboxStorage::open_path(&root, Durability::Deferred);
    let inbox = MailboxName::inbox();
    fill(&mut storage, &inbox, 3);
    fill(&mut storage, &archive(), 1);
    let folder = root.join("mailboxes/INBOX/dbox-Mails");
    assert!(!index_files(&folder).is_empty(), "no index in {}", folder.display());
    let aside = dir.path().join("aside");

    assert_eq!(fetch(&mut storage, &inbox, &[1]).expect("fetch"), [(1, body(1))]);
    // Not read again: the kept index finds the messages without the index files.
    move_index(&folder, &aside, true);
    assert_eq!(fetch(&mut storage, &inbox, &[2, 3]).expect("fetch"), [(2, body(2)), (3, body(3))]);
    // Another mailbox, then INBOX again: read afresh.
    fetch(&mut storage, &archive(), &[1]).expect("fetch");
    assert!(fetch(&mut storage, &inbox, &[2]).is_err(), "INBOX's index was kept beside Archive's");
    move_index(&folder, &aside, false);

    // A write lets it go.
    fetch(&mut storage, &inbox, &[1]).expect("fetch");
    storage.set_subscribed(&archive(), true).expect("subscribe");
    move_index(&folder, &aside, true);
    assert!(fetch(&mut storage, &inbox, &[2]).is_err(), "a write left the index kept");
    move_index(&folder, &aside, false);

    // An expunge through the writer: the message is gone for the next fetch.
    fetch(&mut storage, &inbox, &[1, 2]).expect("fetch");
    let mut writer = storage.writer(&inbox).expect("writer");
    writer.expunge(&[uid(2)]).expect("expunge");
    writer.commit().expect("commit");
    drop(writer);
    assert_eq!(
        fetch(&mut storage, &inbox, &[1, 2, 3]).expect("fetch"),
        [(1, body(1)), (3, body(3))]
    );
}

/// A kept sdbox mailbox deleted and created again under its name between two fetches
/// (another UIDVALIDITY, other messages in the same `u.<uid>` files) serves none of the new
/// incarnation's messages for the UIDs it listed, also after a first refusal; the same
/// incarnation in a new log file (Dovecot rotated it) still serves; listing the mailbox
/// reads the new incarnation on purpose.
#[test]
fn an_sdbox_replaced_between_fetches_serves_nothing_of_the_new_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("mail");
    let mut storage = SdboxStorage::open_path(&root, Durability::Deferred);
    fill(&mut storage, &archive(), 3);
    assert_eq!(fetch(&mut storage, &archive(), &[1]).expect("fetch"), [(1, body(1))]);

    // Rotated: the same log in another file.
    let log = root.join("mailboxes/Archive/dbox-Mails/dovecot.index.log");
    let rotated = log.with_extension("rotated");
    fs::copy(&log, &rotated).expect("copy");
    fs::rename(&rotated, &log).expect("rename");
    assert_eq!(fetch(&mut storage, &archive(), &[2]).expect("fetch"), [(2, body(2))]);

    // Another process deletes Archive and creates it again with other messages, one more.
    let mut other = SdboxStorage::open_path(&root, Durability::Deferred);
    other.delete_mailbox(&archive()).expect("delete");
    refill(&mut other, 43, 100, 4, false);
    // One the view does not list (looked for in a fresh read, which is not kept), then
    // ones it lists.
    assert_eq!(fetch(&mut storage, &archive(), &[4]).expect("fetch"), []);
    assert_eq!(fetch(&mut storage, &archive(), &[2, 3]).expect("fetch"), []);
    assert_eq!(fetch(&mut storage, &archive(), &[1]).expect("fetch"), []);
    // Listed on purpose: the new incarnation.
    let listed = storage.contents(&archive()).expect("contents");
    assert_eq!(listed.status.uid_validity, UidValidity::new(43).expect("nonzero"));
    assert_eq!(fetch(&mut storage, &archive(), &[1]).expect("fetch"), [(1, body(101))]);

    // Emptied in place under a new UIDVALIDITY (the same directory, a new log).
    refill(&mut other, 44, 200, 2, true);
    assert_eq!(fetch(&mut storage, &archive(), &[2]).expect("fetch"), []);
    assert_eq!(fetch(&mut storage, &archive(), &[1]).expect("fetch"), []);
}

/// Archive created (or emptied in place: `reset`) under `uid_validity` with messages
/// 1..=`count` whose bodies are `body(base + n)`.
fn refill(storage: &mut SdboxStorage, uid_validity: u32, base: u32, count: u32, reset: bool) {
    let new = NewMailbox {
        uid_validity: UidValidity::new(uid_validity),
        guid: None,
        source_uid_validity: None,
    };
    if reset {
        storage.recreate_mailbox(&archive(), &new).expect("recreate");
    } else {
        storage.create_mailbox(&archive(), &new).expect("create");
    }
    let mut writer = storage.writer(&archive()).expect("writer");
    for n in 1..=count {
        writer.save_body(&mut body(base + n).as_bytes()).expect("body");
        let mut meta = MessageMeta::new(uid(n), Flags::default());
        meta.received = Some(1_700_000_000);
        writer.save_finish(&meta).expect("save");
    }
    writer.commit().expect("commit");
}

/// UID of the `n`th generated message: with gaps.
pub(super) fn gen_uid(n: u32) -> u32 {
    n + n / 97
}

/// The generated message `n`: (file base name, body).
pub(super) fn generated(n: u32) -> (String, String) {
    let body = format!("From: a@example.org\nSubject: message {n}\n\nbody {n}\n");
    let (size, vsize) = (body.len(), body.len() + body.matches('\n').count());
    (format!("{}.M{n}P1.gen,S={size},W={vsize}", 1_700_000_000 + n), body)
}

/// An INBOX of `count` distinct messages at `root` (UIDs with gaps, one received date
/// each, `\Seen` or not), with the uidlist Dovecot would have written.
pub(super) fn generated_maildir(root: &Path, count: u32) {
    use std::fmt::Write as _;
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).expect("mkdir");
    }
    let mut uidlist = format!("3 V1700000003 N{} G{}\n", gen_uid(count) + 1, "b3".repeat(16));
    for n in 1..=count {
        let (base, body) = generated(n);
        let info = if n % 3 == 0 { "" } else { "S" };
        let path = root.join("cur").join(format!("{base}:2,{info}"));
        fs::write(&path, body).expect("write message");
        let date = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(1_600_000_000 + u64::from(n) * 61);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(date))
            .expect("received date");
        let _ = writeln!(uidlist, "{} :{base}", gen_uid(n));
    }
    fs::write(root.join("dovecot-uidlist"), uidlist).expect("uidlist");
}

/// While a backup's copy saves UID `at`, changes the source as a mail client would:
/// message `renamed` gets other flags (its file renamed), message `removed` is expunged.
struct ChangeSourceDuringCopy {
    root: PathBuf,
    at: Uid,
    renamed: u32,
    removed: u32,
    done: bool,
}

impl dsync_core::Observer for ChangeSourceDuringCopy {
    fn message_saved(&mut self, _mailbox: &MailboxName, uid: Uid, _bytes: u64) {
        if uid != self.at {
            return;
        }
        let (renamed, _) = generated(self.renamed);
        let from = self.root.join("cur").join(format!("{renamed}:2,S"));
        fs::rename(&from, self.root.join("cur").join(format!("{renamed}:2,FS"))).expect("rename");
        let (removed, _) = generated(self.removed);
        fs::remove_file(self.root.join("cur").join(format!("{removed}:2,S"))).expect("remove");
        self.done = true;
    }
}

/// What one Dovecot serves of INBOX from copies of `theirs` and `ours`: status, then each
/// message's UID, flags, received date, GUID and body, as `doveadm` prints them.
fn served_inbox(dir: &Path, theirs: &Path, ours: &Path) -> [String; 2] {
    let dovecot = testkit::Dovecot::builder()
        .temp_root(dir)
        .user_serving_copy("theirs", "pw", theirs, "maildir")
        .user_serving_copy("ours", "pw", ours, "maildir")
        .start();
    ["theirs", "ours"].map(|user| {
        let status = ["mailbox", "status", "-u", user, "messages uidvalidity uidnext", "INBOX"];
        let fields = "uid flags date.received.unixtime guid body";
        let fetch = ["-f", "pager", "fetch", "-u", user, fields, "mailbox", "INBOX", "all"];
        let served = dovecot.doveadm_ok(&status) + &dovecot.doveadm_ok(&fetch);
        // A message saved without flags goes to `new/`: `\Recent` for the first session.
        served.replace("flags: \\Recent", "flags: ").replace(" \\Recent", "")
    })
}

/// The save batch of the tests that cross one (`SyncOptions::save_batch`; 16 384 by
/// default): small, so that a folder of a little more than one batch copies in seconds.
const BATCH: u32 = 1_000;

/// A backup from `from` into the Maildir at `target`, saves copied `BATCH` at a time.
fn batched_backup(
    from: &mut dyn Storage,
    target: &Path,
    observer: &mut dyn dsync_core::Observer,
    state: Option<dsync_core::state::SyncState>,
) -> dsync_core::Report {
    let mut to = MaildirStorage::open_path(target, Durability::Deferred);
    let options = dsync_core::SyncOptions::new(dsync_core::Mode::Backup)
        .state(state)
        .save_batch(BATCH as usize);
    dsync_core::run(&options, from, &mut to, observer).expect("backup")
}

/// The backup copies a folder bigger than one save batch ([`BATCH`] messages, each batch
/// one fetch of the source) while a mail client changes the source: between the fetches
/// a message of the second batch gets other flags (its file renamed) and another is
/// expunged. The view the Maildir adapter kept from the first fetch still finds the
/// renamed one (a fresh read), passes over the expunged one, and gives no message another
/// one's body; the next backup makes the copy what Dovecot serves from the source.
#[test]
fn a_backup_reads_past_files_renamed_and_removed_between_its_fetches() {
    const MESSAGES: u32 = BATCH + 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let (source, target) = (dir.path().join("source"), dir.path().join("target"));
    generated_maildir(&source, MESSAGES);
    // Both changed messages are `\Seen` (their files end `:2,S`) and in the second batch.
    let (renamed, removed) = (BATCH + 6, BATCH + 16);
    let mut observer = ChangeSourceDuringCopy {
        root: source.clone(),
        at: uid(gen_uid(BATCH - 400)),
        renamed,
        removed,
        done: false,
    };
    let run = |observer: &mut dyn dsync_core::Observer, state| {
        let mut from = MaildirStorage::open_path(&source, Durability::Deferred);
        batched_backup(&mut from, &target, observer, state)
    };
    let first = run(&mut observer, None);
    assert!(observer.done, "the source was not changed during the copy");
    let inbox = &first.mailboxes[0];
    assert_eq!((inbox.saved, inbox.vanished), (u64::from(MESSAGES) - 1, 1), "{inbox:?}");
    let second = run(&mut dsync_core::NoObserver, first.state);
    let inbox = &second.mailboxes[0];
    assert_eq!((inbox.saved, inbox.flags_changed), (0, 1), "{inbox:?}");

    let [theirs, ours] = served_inbox(dir.path(), &source, &target);
    assert!(theirs.contains(&format!(" messages={} ", MESSAGES - 1)), "{}", &theirs[..100]);
    let (base, _) = generated(renamed);
    let renamed_served = format!("uid: {}\nflags: \\Flagged \\Seen\n", gen_uid(renamed));
    assert!(theirs.contains(&renamed_served) && theirs.contains(&base), "{}", &theirs[..100]);
    assert!(!theirs.contains(&format!("uid: {}\n", gen_uid(removed))));
    let differing = theirs.lines().zip(ours.lines()).find(|(a, b)| a != b);
    assert_eq!(differing, None, "the first line Dovecot serves differently");
    assert_eq!(theirs.lines().count(), ours.lines().count());
}

/// While a backup's copy saves UID `at`, another handle of the sdbox at `root` expunges
/// message `uid` (its index updated, its file unlinked), as Dovecot would.
struct ExpungeInSdboxDuringCopy {
    root: PathBuf,
    at: Uid,
    uid: Uid,
    done: bool,
}

impl dsync_core::Observer for ExpungeInSdboxDuringCopy {
    fn message_saved(&mut self, _mailbox: &MailboxName, uid: Uid, _bytes: u64) {
        if uid != self.at {
            return;
        }
        let mut other = SdboxStorage::open_path(&self.root, Durability::Deferred);
        let mut writer = other.writer(&MailboxName::inbox()).expect("writer");
        writer.expunge(&[self.uid]).expect("expunge");
        writer.commit().expect("commit");
        self.done = true;
    }
}

/// An sdbox source bigger than one save batch: the index the adapter kept from the first
/// fetch still lists a message another process expunged before the second; the copy
/// passes over it (a fresh read), and the next backup leaves the copy what Dovecot serves
/// from the sdbox.
#[test]
fn a_backup_from_sdbox_passes_over_a_message_expunged_between_its_fetches() {
    const MESSAGES: u32 = BATCH + 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let (generated, sdbox, target) =
        (dir.path().join("generated"), dir.path().join("sdbox"), dir.path().join("target"));
    generated_maildir(&generated, MESSAGES);
    let backup = dsync_core::SyncOptions::new(dsync_core::Mode::Backup);
    dsync_core::run(
        &backup,
        &mut MaildirStorage::open_path(&generated, Durability::Deferred),
        &mut SdboxStorage::open_path(&sdbox, Durability::Deferred),
        &mut dsync_core::NoObserver,
    )
    .expect("the sdbox source");
    let gone = uid(gen_uid(BATCH + 16));
    let mut observer = ExpungeInSdboxDuringCopy {
        root: sdbox.clone(),
        at: uid(gen_uid(BATCH - 400)),
        uid: gone,
        done: false,
    };
    let run = |observer: &mut dyn dsync_core::Observer, state| {
        let mut from = SdboxStorage::open_path(&sdbox, Durability::Deferred);
        batched_backup(&mut from, &target, observer, state)
    };
    let first = run(&mut observer, None);
    assert!(observer.done, "the source was not changed during the copy");
    let inbox = &first.mailboxes[0];
    assert_eq!((inbox.saved, inbox.vanished), (u64::from(MESSAGES) - 1, 1), "{inbox:?}");
    let second = run(&mut dsync_core::NoObserver, first.state);
    assert_eq!(second.mailboxes[0].saved, 0, "{:?}", second.mailboxes[0]);

    let dovecot = testkit::Dovecot::builder()
        .temp_root(dir.path())
        .user_serving_copy("theirs", "pw", &sdbox, "sdbox")
        .user_serving_copy("ours", "pw", &target, "maildir")
        .start();
    let [theirs, ours] = ["theirs", "ours"].map(|user| {
        let status = ["mailbox", "status", "-u", user, "messages uidvalidity uidnext", "INBOX"];
        let fields = "uid flags date.received.unixtime body";
        let fetch = ["-f", "pager", "fetch", "-u", user, fields, "mailbox", "INBOX", "all"];
        let served = dovecot.doveadm_ok(&status).replace(user, "") + &dovecot.doveadm_ok(&fetch);
        served.replace("flags: \\Recent", "flags: ").replace(" \\Recent", "")
    });
    let log = dovecot.log();
    assert!(!log.contains("Error") && !log.contains("rebuild"), "{log}");
    assert!(theirs.contains(&format!(" messages={} ", MESSAGES - 1)), "{}", &theirs[..100]);
    assert!(!theirs.contains(&format!("uid: {}\n", gone.get())));
    let differing = theirs.lines().zip(ours.lines()).find(|(a, b)| a != b);
    assert_eq!(differing, None, "the first line Dovecot serves differently");
    assert_eq!(theirs.lines().count(), ours.lines().count());
}
