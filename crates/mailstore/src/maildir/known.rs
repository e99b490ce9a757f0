//! The uidlist as we last left it, remembered between runs: a re-run that changes a few
//! messages of a big mailbox reads a few KiB of its `dovecot-uidlist`, not every line.
//!
//! A whole parse of the uidlist checks what Dovecot checks (ordered UIDs, no base name
//! listed twice, nothing to rewrite) and indexes every base name: at 100 000 messages
//! most of a catch-up run's own work. Within one process the kept list and the file's
//! [`Stamp`] already spare it ([`super::state::locked_cached`]). Between processes,
//! `dsync-rs-uidlist-known` beside the uidlist records the stamp the file had when we
//! released the lock on it, with its complete length and next UID. A later lock that
//! finds the file with that very stamp (device, inode, size, modification and change time
//! to the nanosecond: any append or rewrite by anyone moves the size, the inode or the
//! change time) knows the file is one we checked whole, or one we only appended checked
//! records to since: it takes the header line and those two numbers, and looks records up
//! by UID with a binary search over the file ([`super::uidlist::lookup`]). Any other
//! stamp, a missing or unreadable record, a file that does not read as valid where it is
//! searched: the whole file is parsed and checked as before.
//!
//! Dovecot does the same with its index (the `maildir` extension header keeps the
//! uidlist's mtime and size, and a refresh of an unchanged uidlist reads nothing); it
//! ignores this file, as it ignores our journal (`dsync-rs` names are reserved in a
//! mailbox directory).

use std::collections::HashMap;

use super::state::{Locked, Paths, Stamp};
use super::uidlist::Uidlist;
use super::uidlist::lookup::{BLOCK, Lines, LookupError};
use crate::error::{Error, Result};
use crate::fs::permissions::Permissions;

/// The record's file name in the mailbox directory.
pub(crate) const KNOWN: &str = "dsync-rs-uidlist-known";
const HEADER: &str = "dsync-rs uidlist-known 1\n";

/// What the record says: the uidlist's stamp and what an append to it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    stamp: Stamp,
    complete_len: u64,
    next_uid: u32,
}

impl Known {
    pub(crate) fn encode(&self) -> String {
        format!("{HEADER}{} {} {}\n", self.stamp.encode(), self.complete_len, self.next_uid)
    }

    pub(crate) fn decode(data: &[u8]) -> Option<Known> {
        let text = std::str::from_utf8(data.strip_prefix(HEADER.as_bytes())?).ok()?;
        let line = text.strip_suffix('\n')?;
        let mut fields = line.rsplitn(3, ' ');
        let next_uid = fields.next()?.parse().ok()?;
        let complete_len = fields.next()?.parse().ok()?;
        let stamp = Stamp::decode(fields.next()?)?;
        Some(Known { stamp, complete_len, next_uid })
    }
}

/// The uidlist as the record remembers it, when the file still has the recorded stamp
/// `now`: its header, complete length and next UID, without its records
/// ([`Uidlist::is_whole`] is false). `None`: read the whole file (also when the record
/// or the header cannot be read: they only spare work).
pub(crate) fn open(paths: &Paths, now: Option<Stamp>) -> Option<Uidlist> {
    let now = now?;
    // An unreadable record is no record: the whole file is read instead.
    let data = paths.read_optional(&paths.dir.join(KNOWN)).ok()??;
    let known = Known::decode(&data)?;
    if known.stamp != now || known.complete_len > now.len() {
        return None;
    }
    let mut list = paths.read_uidlist_header().ok()??;
    if list.wants_rewrite || list.version != 3 {
        return None;
    }
    let complete_len = usize::try_from(known.complete_len).ok()?;
    list.assume_checked_tail(complete_len, known.next_uid);
    #[cfg(test)]
    KNOWN_OPENS.set(KNOWN_OPENS.get() + 1);
    Some(list)
}

/// Records that the uidlist has `stamp` as `list` leaves it (under the lock, after a
/// locked section that succeeded). A failure is ignored: without the record the next run
/// reads the whole file.
pub(crate) fn record(paths: &Paths, stamp: Stamp, list: &Uidlist, permissions: &Permissions) {
    let known = Known { stamp, complete_len: list.complete_len as u64, next_uid: list.next_uid() };
    let _ = crate::fs::replace_file(
        &paths.dir.join(KNOWN),
        &paths.dir.join("dsync-rs-uidlist-known.tmp"),
        known.encode().as_bytes(),
        false,
        permissions,
    );
}

#[cfg(test)]
thread_local! {
    /// How many times this thread took a uidlist from its record (tests).
    pub(crate) static KNOWN_OPENS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Locked {
    /// The base file names of the records of `uids` (unknown UIDs are left out): from the
    /// list when it is whole, else looked up in the file (which is, under the lock, as
    /// the list knows it); a file that does not read as valid there is parsed whole.
    pub(crate) fn bases_of(
        &mut self,
        uids: impl Iterator<Item = u32> + Clone,
    ) -> Result<HashMap<u32, String>> {
        if !self.uidlist.is_whole() {
            match self.look_up(uids.clone()) {
                Ok(found) => return Ok(found),
                Err(LookupError::NotValid) => {}
                Err(LookupError::Io(error)) => {
                    return Err(Error::io("read", self.paths.uidlist(), error));
                }
            }
            self.make_whole()?;
        }
        let list = &self.uidlist;
        Ok(uids
            .filter_map(|uid| {
                let record = list.get(list.position_of_uid(uid)?)?;
                Some((uid, record.base().to_string()))
            })
            .collect())
    }

    fn look_up(
        &self,
        uids: impl Iterator<Item = u32>,
    ) -> std::result::Result<HashMap<u32, String>, LookupError> {
        let relative = self.paths.relative(&self.paths.uidlist()).to_path_buf();
        let file = self.paths.tree().open_file(&relative).map_err(|_| LookupError::NotValid)?;
        let end = self.uidlist.complete_len as u64;
        let header = Lines { source: &file, start: 1, end, version: 3, block: BLOCK };
        // The records start after the header line.
        let Some(start) = header.first_line_start()? else { return Ok(HashMap::new()) };
        let lines = Lines { start, version: self.uidlist.version, ..header };
        let mut found = HashMap::new();
        for uid in uids {
            if let Some(record) = lines.find(uid)? {
                found.insert(uid, super::filename::base(&record.filename).to_string());
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::{KNOWN, KNOWN_OPENS};
    use crate::maildir::state::{DIRECTORY_SCANS, UIDLIST_READS};
    use crate::{Error, FileBeliefs, Flags, Location, Mailbox, MailboxName, Maildir, SaveOptions};

    /// INBOX with UIDs 1..=40 (odd ones seen, in `cur/`; even ones in `new/`), as a first
    /// run leaves it.
    fn first_run(dir: &std::path::Path) -> Maildir {
        let maildir = Maildir::open(Location::maildir(dir.join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        for uid in 1..=40u32 {
            let mut pending = mailbox.begin_save().unwrap();
            write!(pending, "Subject: {uid}\r\n\r\nbody\r\n").unwrap();
            let flags = if uid % 2 == 1 { Flags::SEEN } else { Flags::EMPTY };
            mailbox.save(pending, SaveOptions::default().with_uid(uid).with_flags(flags)).unwrap();
            if uid % 10 == 0 {
                mailbox.commit().unwrap();
            }
        }
        maildir
    }

    /// A catch-up run on a new handle (as a new process): flag changes and expunges of
    /// messages whose files are where they are believed to be, then new messages.
    fn catch_up(maildir: &Maildir) -> Mailbox {
        let mut mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        let mut beliefs = FileBeliefs::new();
        for uid in 1..=40u32 {
            beliefs.insert(uid, if uid % 2 == 1 { Flags::SEEN } else { Flags::EMPTY }, vec![]);
        }
        let changes = [(3, Flags::SEEN | Flags::FLAGGED, vec![]), (8, Flags::ANSWERED, vec![])];
        mailbox.set_flags_many_believed(&changes, &beliefs).unwrap();
        mailbox.expunge_believed(&[5, 12, 99], &beliefs).unwrap();
        for uid in [41, 42] {
            let mut pending = mailbox.begin_save().unwrap();
            write!(pending, "Subject: {uid}\r\n\r\nnew\r\n").unwrap();
            mailbox.save(pending, SaveOptions::default().with_uid(uid)).unwrap();
        }
        assert_eq!(mailbox.commit().unwrap(), [41, 42]);
        mailbox
    }

    fn listed(mailbox: &Mailbox) -> Vec<(u32, Flags)> {
        mailbox.messages().unwrap().into_iter().map(|m| (m.uid, m.flags)).collect()
    }

    fn expected() -> Vec<(u32, Flags)> {
        (1..=42u32)
            .filter(|uid| ![5, 12].contains(uid))
            .map(|uid| match uid {
                3 => (uid, Flags::SEEN | Flags::FLAGGED),
                8 => (uid, Flags::ANSWERED),
                41 | 42 => (uid, Flags::EMPTY),
                _ if uid % 2 == 1 => (uid, Flags::SEEN),
                _ => (uid, Flags::EMPTY),
            })
            .collect()
    }

    #[test]
    fn a_catch_up_run_reads_no_whole_uidlist_it_left_itself() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = first_run(dir.path());
        assert!(dir.path().join("Maildir").join(KNOWN).exists());
        let (reads, opens, scans) = (UIDLIST_READS.get(), KNOWN_OPENS.get(), DIRECTORY_SCANS.get());
        let mailbox = catch_up(&maildir);
        assert_eq!(UIDLIST_READS.get(), reads, "no whole read of the uidlist");
        assert_eq!(DIRECTORY_SCANS.get(), scans, "no directory read");
        assert_eq!(KNOWN_OPENS.get(), opens + 1, "one opening from the record, then the kept list");
        assert_eq!(listed(&mailbox), expected());
        // What the file says is what a whole parse of it says, and the record follows it.
        let file = mailbox.paths.read_uidlist().unwrap().unwrap();
        assert_eq!((file.next_uid(), file.len()), (43, 42));
        let again = maildir.mailbox(&MailboxName::inbox()).unwrap();
        let opens = KNOWN_OPENS.get();
        again.set_flags_many(&[(41, Flags::SEEN, vec![])]).unwrap();
        assert_eq!(KNOWN_OPENS.get(), opens + 1);
    }

    #[test]
    fn a_uidlist_changed_since_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = first_run(dir.path());
        let uidlist = dir.path().join("Maildir/dovecot-uidlist");
        // Another writer's append (Dovecot numbering a delivery): the stamp moves.
        let mut file = std::fs::OpenOptions::new().append(true).open(&uidlist).unwrap();
        file.write_all(b"41 :1700000000.M1P1.other\n").unwrap();
        drop(file);
        std::fs::write(dir.path().join("Maildir/new/1700000000.M1P1.other"), b"x\r\n").unwrap();
        let (reads, opens) = (UIDLIST_READS.get(), KNOWN_OPENS.get());
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        mailbox.expunge(&[41]).unwrap();
        assert_eq!((UIDLIST_READS.get(), KNOWN_OPENS.get()), (reads + 1, opens));
        assert_eq!(mailbox.messages().unwrap().len(), 40);
        // A line Dovecot would call broken, appended behind our back: refused as before.
        let mut file = std::fs::OpenOptions::new().append(true).open(&uidlist).unwrap();
        file.write_all(b"3 :1700000000.M2P1.out-of-order\n").unwrap();
        drop(file);
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        let error = mailbox.expunge(&[1]).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    }

    #[test]
    fn a_record_that_does_not_match_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = first_run(dir.path());
        let known = dir.path().join("Maildir").join(KNOWN);
        let text = std::fs::read_to_string(&known).unwrap();
        for damaged in [
            String::new(),
            text.replace("uidlist-known 1", "uidlist-known 2"),
            text.replacen(' ', "  ", 1),
            text[..text.len() - 1].to_string(),
            // Another size.
            {
                let mut fields: Vec<&str> = text.lines().nth(1).unwrap().split(' ').collect();
                let len = (fields[2].parse::<u64>().unwrap() + 1).to_string();
                fields[2] = &len;
                format!("{}\n{}\n", text.lines().next().unwrap(), fields.join(" "))
            },
        ] {
            std::fs::write(&known, &damaged).unwrap();
            let (reads, opens) = (UIDLIST_READS.get(), KNOWN_OPENS.get());
            let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
            mailbox.set_flags_many(&[(1, Flags::SEEN, vec![])]).unwrap();
            assert_eq!((UIDLIST_READS.get(), KNOWN_OPENS.get()), (reads + 1, opens), "{damaged}");
        }
        // The last lock recorded the file again.
        let opens = KNOWN_OPENS.get();
        let mailbox = maildir.mailbox(&MailboxName::inbox()).unwrap();
        mailbox.set_flags_many(&[(1, Flags::SEEN, vec![])]).unwrap();
        assert_eq!(KNOWN_OPENS.get(), opens + 1);
    }
}
