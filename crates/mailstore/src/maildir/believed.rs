//! Flag changes and expunges that find a message's file by the name it is believed to
//! have, instead of reading the mailbox's directories.
//!
//! A Maildir file's name carries its flags (`base:2,FS`), and the uidlist knows only the
//! base: changing or removing one message normally means reading `cur/` and `new/` whole
//! to learn its current name (100 000 names, ~65 ms on ext4, for a re-run that changes
//! ten flags). A caller that knows what it last wrote there (a sync's state) says so with
//! [`FileBeliefs`]; the believed name is tried first, and only the messages whose file is
//! not there under it are looked for in the directories. A wrong belief costs nothing but
//! that search: a rename or unlink of a name that does not exist fails with `ENOENT` and
//! touches nothing.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;

use super::filename;
use super::keywords::KeywordTable;
use super::mailbox::Mailbox;
use super::state::{self, Locked, Scan, Sub};
use crate::error::{IoContext, Result};
use crate::flags::{Flags, Keyword};

/// What the caller believes some messages' files carry now: the flags and keywords it
/// last stored there. See [`Mailbox::set_flags_many_believed`].
#[derive(Debug, Clone, Default)]
pub struct FileBeliefs {
    by_uid: HashMap<u32, (Flags, Vec<Keyword>)>,
}

impl FileBeliefs {
    /// No beliefs: every message is looked for in the directories.
    pub fn new() -> FileBeliefs {
        FileBeliefs::default()
    }

    /// Believes that message `uid` carries `flags` and `keywords`.
    pub fn insert(&mut self, uid: u32, flags: Flags, keywords: Vec<Keyword>) {
        self.by_uid.insert(uid, (flags, keywords));
    }

    /// Number of messages with a belief.
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// True without any belief.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// Where the file of the message with `base` is believed to be, most likely first:
    /// its name in `cur/`, and for a message without flags or keywords also its bare name
    /// in `new/` (where a message saved without flags stays until a client sees it).
    /// Nothing when a believed keyword has no letter (it cannot be in the name).
    fn places(&self, table: &KeywordTable, uid: u32, base: &str) -> Vec<(Sub, String)> {
        let Some((flags, keywords)) = self.by_uid.get(&uid) else { return Vec::new() };
        let letters: Option<Vec<u8>> =
            keywords.iter().map(|k| table.index_of(k.as_str())).collect();
        let Some(letters) = letters else { return Vec::new() };
        let mut places = vec![(Sub::Cur, filename::with_flags(base, *flags, &letters))];
        if *flags == Flags::EMPTY && letters.is_empty() {
            places.push((Sub::New, base.to_string()));
        }
        places
    }
}

impl Mailbox {
    /// [`Mailbox::set_flags_many`], trying each message's believed file name first.
    pub fn set_flags_many_believed(
        &self,
        changes: &[(u32, Flags, Vec<Keyword>)],
        beliefs: &FileBeliefs,
    ) -> Result<()> {
        self.locked_with_cache(|locked| {
            let mut table = self.paths.read_keywords()?;
            let mut indexes = Vec::with_capacity(changes.len());
            let mut changed = false;
            for (uid, _, keywords) in changes {
                let (letters, added) = self.keyword_indexes(&mut table, *uid, keywords);
                changed |= added;
                indexes.push(letters);
            }
            if changed {
                locked.write_keywords(&table)?;
            }
            let bases = locked.bases_of(changes.iter().map(|(uid, _, _)| *uid))?;
            let names: HashSet<&str> = bases.values().map(String::as_str).collect();
            // Read only when a file is not where it is believed to be; in order, so that
            // a failure keeps the changes before it, as `set_flags_many` promises.
            let mut scan: Option<Scan> = None;
            let mut renamed = false;
            for ((uid, flags, _), letters) in changes.iter().zip(&indexes) {
                let base = bases.get(uid).ok_or_else(|| self.uid_not_found(*uid))?;
                let mut found = None;
                for (sub, name) in beliefs.places(&table, *uid, base) {
                    found = self.rename_believed(sub, &name, *flags, letters)?;
                    if found.is_some() {
                        break;
                    }
                }
                if let Some(did_rename) = found {
                    renamed |= did_rename;
                    continue;
                }
                let scan = match &mut scan {
                    Some(scan) => scan,
                    None => scan.insert(self.paths.scan_bases(&names)?),
                };
                renamed |= self.rename_with_flags(scan, &names, base, *uid, *flags, letters)?;
            }
            if renamed && locked.fsync {
                crate::fs::fsync_dir(&self.paths.sub(Sub::Cur))?;
            }
            Ok(())
        })
    }

    /// [`Mailbox::expunge`], trying each message's believed file name first.
    pub fn expunge_believed(&self, uids: &[u32], beliefs: &FileBeliefs) -> Result<()> {
        self.locked_with_cache(|locked| {
            let table = if beliefs.is_empty() { None } else { Some(self.paths.read_keywords()?) };
            let bases = locked.bases_of(uids.iter().copied())?;
            let mut touched = [false, false];
            let mut searched: HashSet<&str> = HashSet::new();
            for (uid, base) in &bases {
                let places = table.as_ref().map(|t| beliefs.places(t, *uid, base));
                let mut removed = false;
                for (sub, name) in places.unwrap_or_default() {
                    let path = self.paths.sub(sub).join(&name);
                    match fs::remove_file(&path) {
                        Ok(()) => {
                            touched[usize::from(sub == Sub::Cur)] = true;
                            removed = true;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).ctx("unlink", &path),
                    }
                }
                if !removed {
                    searched.insert(base);
                }
            }
            if !searched.is_empty() {
                let scan = self.paths.scan_bases(&searched)?;
                for base in &searched {
                    if let Some(file) = scan.get(base) {
                        crate::fs::remove_if_exists(&self.paths.file(&file))?;
                        touched[usize::from(file.sub == Sub::Cur)] = true;
                    }
                }
            }
            if locked.fsync {
                for (sub, touched) in [Sub::New, Sub::Cur].into_iter().zip(touched) {
                    if touched {
                        crate::fs::fsync_dir(&self.paths.sub(sub))?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Renames `sub/name` into `cur/` carrying `flags`: `Some(true)` renamed,
    /// `Some(false)` already there with them, `None` no such file (the belief was wrong).
    fn rename_believed(
        &self,
        sub: Sub,
        name: &str,
        flags: Flags,
        letters: &[u8],
    ) -> Result<Option<bool>> {
        let from = self.paths.sub(sub).join(name);
        let to_name = filename::with_flags(name, flags, letters);
        if sub == Sub::Cur && to_name == name {
            return match fs::symlink_metadata(&from) {
                Ok(_) => Ok(Some(false)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).ctx("stat", &from),
            };
        }
        let to = self.paths.sub(Sub::Cur).join(&to_name);
        match fs::rename(&from, &to) {
            Ok(()) => Ok(Some(true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("rename", &from),
        }
    }

    /// [`state::locked_cached`] with this mailbox's kept uidlist: the expunges, flag
    /// changes and saves of one run parse the uidlist once, not once each.
    pub(crate) fn locked_with_cache<T>(
        &self,
        f: impl FnOnce(&mut Locked) -> Result<T>,
    ) -> Result<T> {
        let mut cache =
            self.uidlist_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state::locked_cached(&self.store, &self.paths, &mut cache, f)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::FileBeliefs;
    use crate::maildir::state::DIRECTORY_SCANS;
    use crate::{Error, Flags, Keyword, Location, MailboxName, Maildir, SaveOptions};

    /// A message's UID, flags and keywords.
    type Carried = (u32, Flags, Vec<Keyword>);

    fn label() -> Keyword {
        Keyword::new("$Label1").unwrap()
    }

    /// INBOX with UIDs 1..=5, each seen and labelled, and 6 and 7 without flags (in `new/`).
    fn inbox(dir: &std::path::Path) -> crate::Mailbox {
        let maildir = Maildir::open(Location::maildir(dir.join("Maildir")));
        let mut mailbox = maildir.create_mailbox(&MailboxName::inbox(), Some(7), None).unwrap();
        for uid in 1..=5 {
            let mut pending = mailbox.begin_save().unwrap();
            write!(pending, "Subject: {uid}\r\n\r\nbody\r\n").unwrap();
            let options = SaveOptions::default()
                .with_uid(uid)
                .with_flags(Flags::SEEN)
                .with_keywords(vec![label()]);
            mailbox.save(pending, options).unwrap();
        }
        for uid in 6..=7 {
            let mut pending = mailbox.begin_save().unwrap();
            write!(pending, "Subject: {uid}\r\n\r\nnew\r\n").unwrap();
            mailbox.save(pending, SaveOptions::default().with_uid(uid)).unwrap();
        }
        mailbox.commit().unwrap();
        mailbox
    }

    fn flags_of(mailbox: &crate::Mailbox) -> Vec<Carried> {
        let listed = mailbox.messages().unwrap();
        listed.into_iter().map(|m| (m.uid, m.flags, m.keywords)).collect()
    }

    /// The info part (`:2,…`) of every name in `cur/` (bases differ between mailboxes).
    fn cur_names(mailbox: &crate::Mailbox) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(mailbox.path().join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .map(|name| name[name.find(':').unwrap()..].to_string())
            .collect();
        names.sort();
        names
    }

    fn changes() -> Vec<Carried> {
        vec![
            (2, Flags::SEEN | Flags::FLAGGED, vec![label(), Keyword::new("Junk").unwrap()]),
            (3, Flags::EMPTY, vec![]),
            (5, Flags::SEEN, vec![label()]),
            (6, Flags::FLAGGED, vec![]),
        ]
    }

    /// What the same changes leave without any belief (the directories searched).
    fn expected() -> (Vec<Carried>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = inbox(dir.path());
        mailbox.set_flags_many(&changes()).unwrap();
        mailbox.expunge(&[4, 7, 99]).unwrap();
        (flags_of(&mailbox), cur_names(&mailbox))
    }

    #[test]
    fn right_beliefs_change_and_expunge_without_reading_the_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = inbox(dir.path());
        let mut beliefs = FileBeliefs::new();
        for uid in 1..=5 {
            beliefs.insert(uid, Flags::SEEN, vec![label()]);
        }
        for uid in 6..=7 {
            beliefs.insert(uid, Flags::EMPTY, vec![]);
        }
        assert!(mailbox.path().join("new").read_dir().unwrap().count() == 2);
        let before = DIRECTORY_SCANS.get();
        mailbox.set_flags_many_believed(&changes(), &beliefs).unwrap();
        mailbox.expunge_believed(&[4, 7, 99], &beliefs).unwrap();
        assert_eq!(DIRECTORY_SCANS.get(), before, "every file was where it was believed");
        assert_eq!((flags_of(&mailbox), cur_names(&mailbox)), expected());
    }

    #[test]
    fn wrong_or_missing_beliefs_fall_back_to_the_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = inbox(dir.path());
        let mut beliefs = FileBeliefs::new();
        beliefs.insert(2, Flags::EMPTY, vec![]); // wrong flags
        beliefs.insert(3, Flags::SEEN, vec![Keyword::new("NeverStored").unwrap()]); // no letter
        beliefs.insert(4, Flags::DRAFT, vec![label()]); // wrong flags
        beliefs.insert(5, Flags::SEEN, vec![label()]); // right, and already as asked
        let before = DIRECTORY_SCANS.get();
        mailbox.set_flags_many_believed(&changes(), &beliefs).unwrap();
        assert_eq!(DIRECTORY_SCANS.get(), before + 1, "one search for the two wrong ones");
        mailbox.expunge_believed(&[4, 7, 99], &beliefs).unwrap();
        assert_eq!(DIRECTORY_SCANS.get(), before + 2);
        assert_eq!((flags_of(&mailbox), cur_names(&mailbox)), expected());
    }

    #[test]
    fn an_unknown_uid_fails_keeping_the_changes_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = inbox(dir.path());
        let mut beliefs = FileBeliefs::new();
        beliefs.insert(1, Flags::SEEN, vec![label()]);
        let changes = vec![
            (1, Flags::ANSWERED, vec![]), // believed
            (2, Flags::DRAFT, vec![]),    // searched
            (77, Flags::FLAGGED, vec![]),
            (3, Flags::FLAGGED, vec![]),
        ];
        let error = mailbox.set_flags_many_believed(&changes, &beliefs).unwrap_err();
        assert!(matches!(error, Error::UidNotFound { uid: 77, .. }), "{error}");
        let flags: Vec<(u32, Flags)> =
            flags_of(&mailbox).into_iter().map(|(uid, flags, _)| (uid, flags)).collect();
        assert_eq!(flags[..3], [(1, Flags::ANSWERED), (2, Flags::DRAFT), (3, Flags::SEEN)]);
    }
}
