//! An unchanged `cur/` taken from the caller instead of read
//! ([`Mailbox::into_messages_knowing_cur`]): a re-run after deliveries into `new/` alone
//! then reads `new/` and the uidlist, not the 100 000 names of `cur/` (issue 23 item 1;
//! Dovecot skips an unchanged `cur/` by its mtime the same way).
//!
//! A caller keeps, from a read whose stream vouched for `cur/` ([`MessageStream::cur_stamp`]),
//! the directory's stamp and, per file of `cur/`, its UID, a hash of its base name and the
//! rest of its name (`:2,S`). When `cur/`'s stamp is the same now, no entry of `cur/` was
//! created, renamed or removed since that read began, and the caller's files are `cur/`'s.
//!
//! [`Mailbox::into_messages_knowing_cur`]: super::Mailbox::into_messages_knowing_cur
//! [`MessageStream::cur_stamp`]: super::MessageStream::cur_stamp

use std::path::Path;

pub use crate::fs::dir_stamp::DirStamp;

impl DirStamp {
    /// The stamp of the directory at `path` now; `None` when it cannot be `stat`ed.
    pub(crate) fn of(path: &Path) -> Option<DirStamp> {
        std::fs::metadata(path).ok().map(|metadata| DirStamp::of_metadata(&metadata))
    }

    /// True when the mtime is older than [`crate::DIRTY_SECS`] at `now` (UNIX seconds):
    /// Dovecot's rule for a directory's mtime (`MAILDIR_SYNC_SECS`). A file system that
    /// stamps times by the second leaves the mtime as it was after a change in the same
    /// second, so a stamp that recent cannot say that nothing changed after it; an older
    /// one moves with any later change of an entry.
    pub(crate) fn trusted_at(&self, now: i64) -> bool {
        let dirty = i64::try_from(crate::DIRTY_SECS).unwrap_or(i64::MAX);
        self.modified().0.saturating_add(dirty) < now
    }
}

/// One file of `cur/` as a caller kept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptCurFile<'a> {
    /// The message's UID (a record of the folder's `dovecot-uidlist`).
    pub uid: u32,
    /// [`KeptCurFiles::base_hash`] of its base name.
    pub base_hash: u64,
    /// Its name after the base name (from the first `:`, or empty).
    pub rest: &'a str,
}

/// The files of an unchanged `cur/`, as the caller kept them from the read its stamp is of.
pub trait KeptCurFiles {
    /// The next file, in ascending UID order; `None` after the last.
    fn next_file(&mut self) -> Option<KeptCurFile<'_>>;

    /// The caller's hash of a base name (the one [`KeptCurFile::base_hash`] holds): each
    /// file's record must have the base name the caller kept, else `cur/` is read.
    fn base_hash(&self, base: &str) -> u64;

    /// Asked once the files were given: false when they are not all the caller kept (its
    /// copy could not be read back whole); `cur/` is then read.
    fn intact(&self) -> bool;

    /// Starts again from the first file (a read that could not decide gives way to
    /// another); false when it cannot, and `cur/` is then read.
    fn rewind(&mut self) -> bool;
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::fs;
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{Location, MailboxName, Maildir, MessageInfo};

    /// INBOX of `count` messages in `cur/` that a `dovecot-uidlist` numbers, its
    /// directories `ago` seconds old; opened read-only (as a backup source).
    fn folder(root: &Path, count: u32) -> Maildir {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        let mut text = format!("3 V1700000000 N{} G{}\n", count + 1, "0123456789abcdef".repeat(2));
        for uid in 1..=count {
            let base = format!("1700000000.M{uid}P1.gen");
            let flags = if uid % 2 == 0 { "S" } else { "" };
            fs::write(root.join("cur").join(format!("{base}:2,{flags}")), format!("S: {uid}\n\n"))
                .unwrap();
            writeln!(text, "{uid} :{base}").unwrap();
        }
        fs::write(root.join("dovecot-uidlist"), text).unwrap();
        // Written before any delivery that follows, as an MTA's come after Dovecot's sync.
        age(root, "dovecot-uidlist", 200);
        age(root, "cur", 100);
        age(root, "new", 100);
        read_only(root)
    }

    fn read_only(root: &Path) -> Maildir {
        Maildir::with_options(
            Location::maildir(root),
            crate::Options::default().with_read_only(true),
        )
    }

    fn age(root: &Path, sub: &str, seconds: u64) {
        let then = SystemTime::now() - Duration::from_secs(seconds);
        fs::File::open(root.join(sub)).unwrap().set_modified(then).unwrap();
    }

    fn hash(base: &str) -> u64 {
        base.bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }

    /// `cur/`'s files as a caller keeps them.
    #[derive(Clone)]
    struct Kept {
        files: Vec<(u32, u64, String)>,
        next: usize,
        intact: bool,
    }

    impl Kept {
        fn of(messages: &[MessageInfo]) -> Kept {
            let files = messages
                .iter()
                .filter(|m| m.in_cur)
                .map(|m| {
                    let (base, rest) =
                        m.file_name.split_at(m.file_name.find(':').unwrap_or(m.file_name.len()));
                    (m.uid, hash(base), rest.to_string())
                })
                .collect();
            Kept { files, next: 0, intact: true }
        }
    }

    impl KeptCurFiles for Kept {
        fn next_file(&mut self) -> Option<KeptCurFile<'_>> {
            let (uid, base_hash, rest) = self.files.get(self.next)?;
            self.next += 1;
            Some(KeptCurFile { uid: *uid, base_hash: *base_hash, rest })
        }

        fn base_hash(&self, base: &str) -> u64 {
            hash(base)
        }

        fn intact(&self) -> bool {
            self.intact
        }

        fn rewind(&mut self) -> bool {
            self.next = 0;
            true
        }
    }

    /// Every message of a stream, and whether it read `cur/`.
    fn listed(mut stream: crate::MessageStream) -> (Vec<MessageInfo>, bool, Option<DirStamp>) {
        let read_cur = stream.read_cur();
        let stamp = stream.cur_stamp().copied();
        let messages = stream.by_ref().collect::<crate::Result<Vec<_>>>().unwrap();
        (messages, read_cur, stamp)
    }

    fn full(root: &Path) -> Vec<MessageInfo> {
        read_only(root).mailbox(&MailboxName::inbox()).unwrap().messages().unwrap()
    }

    /// After deliveries into `new/` alone, `cur/` keeps its stamp: its files are taken
    /// from the caller, not read, and the messages are what a full read gives (the
    /// deliveries numbered after the records); a message of `cur/` opens by its rebuilt
    /// name. After a rename in `cur/`, the same kept files are not taken. (Fails when the
    /// kept files are not used, or used whatever the stamp.)
    #[test]
    fn an_unchanged_cur_is_taken_from_the_caller_and_a_changed_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let maildir = folder(root, 12);
        let inbox = MailboxName::inbox();
        let (first, read_cur, stamp) =
            listed(maildir.mailbox(&inbox).unwrap().into_messages().unwrap());
        assert!(read_cur);
        let stamp = stamp.expect("a settled, numbered cur/ is vouched for");
        let kept = Kept::of(&first);
        assert_eq!(kept.files.len(), 12);
        for n in [2, 1] {
            fs::write(root.join("new").join(format!("1800000000.M{n}P2.mta")), "S: new\n\n")
                .unwrap();
        }
        age(root, "new", 10);
        let mut given = kept.clone();
        let stream = maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
        let stream = stream.unwrap();
        let (messages, read_cur, again) = listed(stream);
        assert!(!read_cur, "cur/ taken from the caller");
        assert_eq!(again, Some(stamp), "and vouched for again");
        assert_eq!(messages, full(root));
        assert_eq!(messages.len(), 14);
        assert_eq!(messages[13].file_name, "1800000000.M2P2.mta");

        let mut given = kept.clone();
        let stream = maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
        let mailbox = stream.unwrap().into_mailbox();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut mailbox.open_message(4).unwrap(), &mut body).unwrap();
        assert_eq!(body, "S: 4\n\n");

        fs::rename(
            root.join("cur/1700000000.M3P1.gen:2,"),
            root.join("cur/1700000000.M3P1.gen:2,F"),
        )
        .unwrap();
        age(root, "cur", 5);
        let mut given = kept.clone();
        let stream = maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
        let (messages, read_cur, _) = listed(stream.unwrap());
        assert!(read_cur, "cur/ changed");
        assert_eq!(messages, full(root));
        assert_eq!(messages[2].file_name, "1700000000.M3P1.gen:2,F");
    }

    /// Deliveries Dovecot numbered (LDA, LMTP: the records appended after the files were
    /// put in `new/`): the uidlist is read line by line (the streamed view), `cur/` taken
    /// from the caller, the messages a full read's; a kept file whose base name is not
    /// its record's reads `cur/` there too; a delivery that read cannot number has the
    /// kept files rewound for the whole read. (Fails when the line-by-line read does not
    /// merge the kept files, does not check them, or the kept files are not rewound.)
    #[test]
    fn after_numbered_deliveries_the_uidlist_is_read_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let maildir = folder(root, 12);
        let inbox = MailboxName::inbox();
        let (first, _, stamp) = listed(maildir.mailbox(&inbox).unwrap().into_messages().unwrap());
        let stamp = stamp.unwrap();
        let kept = Kept::of(&first);
        let mut records = String::new();
        for uid in [13, 14] {
            let base = format!("1800000000.M{uid}P2.lda");
            fs::write(root.join("new").join(&base), "S: lda\n\n").unwrap();
            writeln!(records, "{uid} :{base}").unwrap();
        }
        age(root, "new", 10);
        let mut uidlist = fs::OpenOptions::new().append(true).open(root.join("dovecot-uidlist"));
        std::io::Write::write_all(uidlist.as_mut().unwrap(), records.as_bytes()).unwrap();
        drop(uidlist);
        let mut given = kept.clone();
        let mailbox = maildir.mailbox(&inbox).unwrap();
        let mut stream = mailbox.into_messages_knowing_cur(&stamp, &mut given).unwrap();
        assert!(!stream.read_cur(), "cur/ taken from the caller");
        let messages = stream.by_ref().collect::<crate::Result<Vec<_>>>().unwrap();
        assert_eq!(messages, full(root));
        assert_eq!(messages.len(), 14);
        let mailbox = stream.into_mailbox();
        assert!(mailbox.view_bytes().unwrap().0, "the uidlist read line by line");

        // An MTA's delivery in a `new/` older than the uidlist (a clock set back): the
        // line-by-line read cannot number it, and the kept files are rewound for the
        // whole read.
        fs::write(root.join("new").join("1700000000.M99P3.mta"), "S: mta\n\n").unwrap();
        age(root, "new", 300);
        let mut given = kept.clone();
        let stream = maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
        let (messages, read_cur, _) = listed(stream.unwrap());
        assert!(!read_cur, "cur/ taken from the caller after a rewind");
        assert_eq!(messages, full(root));
        assert_eq!(messages.len(), 15);

        let mut other_base = kept.clone();
        other_base.files[5].1 ^= 1;
        let stream =
            maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut other_base);
        let (messages, read_cur, _) = listed(stream.unwrap());
        assert!(read_cur, "another base name");
        assert_eq!(messages, full(root));
    }

    /// A `cur/` whose mtime is within the second (Dovecot's dirty-second rule) is not
    /// vouched for: a change in the same second would not move it. (Fails without the
    /// rule.)
    #[test]
    fn a_cur_changed_within_the_second_is_not_vouched_for() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = folder(dir.path(), 3);
        age(dir.path(), "cur", 0);
        let stream = maildir.mailbox(&MailboxName::inbox()).unwrap().into_messages().unwrap();
        assert_eq!(stream.cur_stamp(), None);
        age(dir.path(), "cur", 2);
        let stream = maildir.mailbox(&MailboxName::inbox()).unwrap().into_messages().unwrap();
        assert!(stream.cur_stamp().is_some());
    }

    /// Kept files that do not match the folder read `cur/`, and the messages are what a
    /// full read gives: a base name whose hash differs (the uidlist gave the UID to
    /// another file), a UID the uidlist lacks, UIDs out of order, files not all given,
    /// a base name also in `new/`, a store we may write. (Each fails without its check.)
    #[test]
    fn kept_files_that_do_not_match_read_cur() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let maildir = folder(root, 6);
        let inbox = MailboxName::inbox();
        let (first, _, stamp) = listed(maildir.mailbox(&inbox).unwrap().into_messages().unwrap());
        let stamp = stamp.unwrap();
        let kept = Kept::of(&first);
        let mut cases: Vec<(&str, Kept)> = Vec::new();
        let mut other_base = kept.clone();
        other_base.files[2].1 ^= 1;
        cases.push(("another base name", other_base));
        let mut absent = kept.clone();
        absent.files.push((99, hash("1700000000.M99P1.gen"), ":2,".into()));
        cases.push(("a UID not in the uidlist", absent));
        let mut unordered = kept.clone();
        unordered.files.swap(1, 2);
        cases.push(("out of order", unordered));
        let mut torn = kept.clone();
        torn.intact = false;
        cases.push(("not all given", torn));
        let mut info = kept.clone();
        info.files[0].2 = "x:2,".into();
        cases.push(("a rest that is not an info part", info));
        for (case, mut given) in cases {
            let stream =
                maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
            let (messages, read_cur, _) = listed(stream.unwrap());
            assert!(read_cur, "{case}");
            assert_eq!(messages, full(root), "{case}");
        }

        let writable = Maildir::open(Location::maildir(root));
        let mut given = kept.clone();
        let stream =
            writable.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
        assert!(stream.unwrap().read_cur(), "a store we may write");

        // A link of a cur/ file in new/ under its base name (a crash between link and
        // unlink): not given, though cur/ kept its stamp.
        fs::hard_link(
            root.join("cur/1700000000.M5P1.gen:2,"),
            root.join("new/1700000000.M5P1.gen"),
        )
        .unwrap();
        age(root, "new", 10);
        let mut given = kept.clone();
        let stream = maildir.mailbox(&inbox).unwrap().into_messages_knowing_cur(&stamp, &mut given);
        let (messages, read_cur, _) = listed(stream.unwrap());
        assert!(read_cur, "a base name in new/ too");
        assert_eq!(messages, full(root));
    }
}
