//! The records a mailbox's view holds: a whole parsed uidlist, or one read line by line
//! whose text stays in the file ([`super::uidlist::streamed`]).

use std::fs::File;

use super::uidlist::streamed::{Changed, Streamed};
use super::uidlist::{Record, Uidlist};

/// A view's uidlist.
#[derive(Debug)]
pub(crate) enum Records {
    /// Parsed whole, its text held: a folder that needed a sync, a uidlist numbered in
    /// memory, or one only the whole parse reads (a name listed twice).
    Whole(Uidlist),
    /// Read line by line: of each record its UID and where its line is (12 bytes).
    Streamed(Streamed<File>),
}

impl Records {
    /// The header's fields (UIDVALIDITY, GUID, the origin field); records are asked for
    /// through [`Self::with_record`].
    pub(crate) fn header(&self) -> &Uidlist {
        match self {
            Records::Whole(list) => list,
            Records::Streamed(list) => list.header(),
        }
    }

    /// The next UID: the larger of the header's `N` and the last record's UID + 1.
    pub(crate) fn next_uid(&self) -> u32 {
        match self {
            Records::Whole(list) => list.next_uid(),
            Records::Streamed(list) => list.next_uid(),
        }
    }

    /// How many records.
    pub(crate) fn len(&self) -> usize {
        match self {
            Records::Whole(list) => list.len(),
            Records::Streamed(list) => list.len(),
        }
    }

    /// The position of the record of `uid`.
    pub(crate) fn position_of_uid(&self, uid: u32) -> Option<usize> {
        match self {
            Records::Whole(list) => list.position_of_uid(uid),
            Records::Streamed(list) => list.position_of_uid(uid),
        }
    }

    /// Calls `f` with the record at `position`; `Ok(None)` past the last one, `Err` when
    /// the line read again is no longer the one the view read (see [`Changed`]).
    pub(crate) fn with_record<T>(
        &self,
        position: usize,
        f: impl FnOnce(Record<'_>) -> T,
    ) -> Result<Option<T>, Changed> {
        match self {
            Records::Whole(list) => Ok(list.get(position).map(f)),
            Records::Streamed(list) => list.with_record(position, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::fs;
    use std::path::Path;

    use crate::{Error, Location, MailboxName, Maildir};

    /// INBOX of `count` messages as `benches/scripts/maildir-folder.py` makes it (links of
    /// one file, a uidlist that numbers them all, sizes in the names).
    fn folder(root: &Path, count: u32) -> Maildir {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        let body = b"Subject: x\n\nbody\n";
        let seed = root.join("tmp").join("seed");
        fs::write(&seed, body).unwrap();
        let mut text = format!("3 V1700000000 N{} G{}\n", count + 1, "0123456789abcdef".repeat(2));
        for uid in 1..=count {
            let base = format!("1700000000.M{uid}P1.gen,S=17,W=20");
            fs::hard_link(&seed, root.join("cur").join(format!("{base}:2,S"))).unwrap();
            writeln!(text, "{uid} :{base}").unwrap();
        }
        fs::remove_file(seed).unwrap();
        fs::write(root.join("dovecot-uidlist"), text).unwrap();
        Maildir::open(Location::maildir(root))
    }

    /// The view of a folder that needs no sync keeps 16 bytes a message or less (its
    /// uidlist's text stays in the file): the whole list's text and 24-byte spans, held
    /// before, took ~70 (benches/RESULTS-memory.md, Round 11).
    #[test]
    fn a_clean_folders_view_keeps_no_text() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = folder(dir.path(), 5000);
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        let messages = mailbox.messages().unwrap();
        let uids: Vec<u32> = messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, (1..=5000).collect::<Vec<_>>());
        assert_eq!(messages[4321].file_name, "1700000000.M4322P1.gen,S=17,W=20:2,S");
        assert_eq!(messages[4321].guid, "1700000000.M4322P1.gen,S=17,W=20");
        let (streamed, bytes) = mailbox.view_bytes().unwrap();
        assert!(streamed, "read line by line");
        // 16 a message, and the block read last (64 KiB).
        assert!(bytes <= 16 * 5000 + 70_000, "{bytes} bytes for 5000 messages");
        let mut body = String::new();
        std::io::Read::read_to_string(&mut mailbox.open_message(17).unwrap(), &mut body).unwrap();
        assert_eq!(body, "Subject: x\n\nbody\n");
    }

    /// A file put in `new/` after the uidlist was written (a delivery no record names)
    /// sends the read to the whole parse at once: the uidlist is read once, not line by
    /// line first in vain; the delivery is numbered after the records. A dot file there (a
    /// client's temporary), or a numbered file (the uidlist written after it, as Dovecot
    /// and we save mail without flags), keeps the read line by line. (Fails when the
    /// line-by-line read is tried first: two reads; or when any file in `new/` counts:
    /// the numbered one is not read line by line.)
    #[test]
    fn a_delivery_in_new_reads_the_uidlist_once() {
        use crate::maildir::state::UIDLIST_READS;
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let maildir = folder(dir.path(), 300);
        let (new, uidlist) = (dir.path().join("new"), dir.path().join("dovecot-uidlist"));
        let stamp = |path: &Path, ago: u64| {
            let then = SystemTime::now() - Duration::from_secs(ago);
            fs::File::open(path).unwrap().set_modified(then).unwrap();
        };
        // Message 300 saved into new/, then numbered; a dot file.
        let name = "1700000000.M300P1.gen,S=17,W=20";
        fs::rename(dir.path().join("cur").join(format!("{name}:2,S")), new.join(name)).unwrap();
        fs::write(new.join(".hidden"), "x").unwrap();
        stamp(&new, 100);
        stamp(&uidlist, 50);
        let reads = UIDLIST_READS.get();
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        assert_eq!(mailbox.messages().unwrap().len(), 300);
        assert_eq!(UIDLIST_READS.get(), reads + 1);
        assert!(mailbox.view_bytes().unwrap().0, "read line by line");

        fs::write(new.join("1800000000.M1P2.mta"), "Subject: y\n\ny\n").unwrap();
        stamp(&new, 10);
        let maildir = Maildir::with_options(
            Location::maildir(dir.path()),
            crate::Options::default().with_read_only(true),
        );
        let reads = UIDLIST_READS.get();
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        let messages = mailbox.messages().unwrap();
        assert_eq!(UIDLIST_READS.get(), reads + 1, "one read of the uidlist");
        assert_eq!(messages.len(), 301);
        assert_eq!((messages[300].uid, messages[300].guid.as_str()), (301, "1800000000.M1P2.mta"));
    }

    /// A uidlist rewritten (a new file renamed over it, as Dovecot and we rewrite) while a
    /// stream reads the folder does not change what the stream reads: the view keeps the
    /// file it read open. A line changed in place (no Maildir writer does that) is an
    /// error, never another message under the UID. (Lines past the first block the
    /// stream read, so that they are read from the file again.)
    #[test]
    fn a_view_reads_the_uidlist_it_read_and_refuses_one_changed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = folder(dir.path(), 5000);
        let uidlist = dir.path().join("dovecot-uidlist");
        let original = fs::read(&uidlist).unwrap();
        let mut stream = maildir.mailbox(&MailboxName::inbox()).unwrap().into_messages().unwrap();
        assert_eq!(stream.next().unwrap().unwrap().uid, 1);
        // UID 4000 now names message 4001's file, and 4001 message 4000's.
        let swapped = String::from_utf8(original.clone()).unwrap().replace(
            "4000 :1700000000.M4000P1.gen,S=17,W=20\n4001 :1700000000.M4001P1",
            "4000 :1700000000.M4001P1.gen,S=17,W=20\n4001 :1700000000.M4000P1",
        );
        assert_ne!(swapped.as_bytes(), original);
        let tmp = dir.path().join("dovecot-uidlist.tmp");
        fs::write(&tmp, &swapped).unwrap();
        fs::rename(&tmp, &uidlist).unwrap();
        let read: Vec<_> = stream.map(|m| m.unwrap()).collect();
        assert_eq!(read.len(), 4999);
        assert_eq!(
            (read[3998].uid, read[3998].guid.as_str()),
            (4000, "1700000000.M4000P1.gen,S=17,W=20")
        );

        // The same change made in place, after a stream read the file.
        fs::write(&uidlist, &original).unwrap();
        let mut stream = maildir.mailbox(&MailboxName::inbox()).unwrap().into_messages().unwrap();
        assert_eq!(stream.next().unwrap().unwrap().uid, 1);
        fs::OpenOptions::new()
            .write(true)
            .open(&uidlist)
            .and_then(|mut file| std::io::Write::write_all(&mut file, swapped.as_bytes()))
            .unwrap();
        for uid in 2..4000 {
            assert_eq!(stream.next().unwrap().unwrap().uid, uid);
        }
        match stream.next() {
            Some(Err(Error::Corrupt { line, .. })) => assert_eq!(line, 4001),
            other => panic!("{other:?}"),
        }
        assert!(stream.next().is_none());
    }
}
