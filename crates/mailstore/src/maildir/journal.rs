//! The commit journal that makes "files renamed into `cur/` or `new/`" and "records appended
//! to `dovecot-uidlist`" one unit.
//!
//! Dovecot's save order (rename under the lock, then append) is right for concurrent
//! readers, but a crash between the two leaves files without UIDs, which the next sync
//! numbers anew — duplicates for a migration that then re-copies them with the source's
//! UIDs. Before renaming, a commit writes `dsync-rs-journal` in the mailbox directory with
//! one line per message: `<tmp name>/<final name>/<uidlist record line>` (`/` never occurs
//! in a file name; a final name without `:2,` info goes to `new/`, as Dovecot saves mail
//! without flags). The next time we take the uidlist lock on that mailbox, each entry is
//! completed (rename if still in `tmp/`, append the record if missing) and the journal
//! removed. Dovecot ignores the file. If Dovecot numbered the orphans first (it overrides
//! the dead process's lock), their entries are dropped: the files keep Dovecot's UIDs.

use super::filename;
use super::state::{Locked, Sub};
use super::uidlist::{RecordBuf, Uidlist};
use crate::error::{IoContext, Result};

pub(crate) const JOURNAL: &str = "dsync-rs-journal";
const HEADER: &str = "dsync-rs journal 1\n";

/// One message of a commit.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) tmp_name: String,
    pub(crate) final_name: String,
    pub(crate) record: RecordBuf,
}

/// Writes the journal for `entries` (fsynced when `fsync`).
pub(crate) fn write(locked: &Locked, entries: &[Entry]) -> Result<()> {
    let length: usize = entries
        .iter()
        .map(|e| e.tmp_name.len() + e.final_name.len() + e.record.filename.len() + 32)
        .sum();
    let mut text = String::with_capacity(HEADER.len() + length);
    text.push_str(HEADER);
    for entry in entries {
        text.push_str(&entry.tmp_name);
        text.push('/');
        text.push_str(&entry.final_name);
        text.push('/');
        super::uidlist::push_record_line(&mut text, &entry.record);
    }
    let dir = &locked.paths.dir;
    crate::fs::replace_file(
        &dir.join(JOURNAL),
        &dir.join("dsync-rs-journal.tmp"),
        text.as_bytes(),
        locked.fsync,
        &locked.permissions,
    )
}

/// Removes the journal after a completed commit.
pub(crate) fn remove(locked: &Locked) -> Result<()> {
    crate::fs::remove_if_exists(&locked.paths.dir.join(JOURNAL))
}

/// Parses a journal; malformed or torn lines are skipped (they were never acted on: the
/// journal is complete and synced before the first rename).
pub(crate) fn parse(data: &[u8]) -> Vec<Entry> {
    let Some(body) = data.strip_prefix(HEADER.as_bytes()) else { return Vec::new() };
    let Ok(body) = std::str::from_utf8(body) else { return Vec::new() };
    let mut entries = Vec::new();
    for line in body.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut parts = line.splitn(3, '/');
        let (Some(tmp_name), Some(final_name), Some(record_line)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let text = format!("3 V1 N1\n{record_line}");
        let Ok(Some(mut list)) = Uidlist::parse(text.as_bytes()) else { continue };
        let Some(record) = list.pop() else { continue };
        if tmp_name.is_empty()
            || final_name.is_empty()
            || filename::base(final_name) != record.filename
        {
            continue;
        }
        entries.push(Entry {
            tmp_name: tmp_name.to_string(),
            final_name: final_name.to_string(),
            record,
        });
    }
    entries
}

/// Completes an interrupted commit, if a journal exists.
pub(crate) fn replay(locked: &mut Locked) -> Result<()> {
    let path = locked.paths.dir.join(JOURNAL);
    let Some(data) = locked.paths.read_optional(&path)? else { return Ok(()) };
    // Which records the uidlist has already: all of them, not only a writer's tail.
    locked.make_whole()?;
    let scan = locked.paths.scan()?;
    let mut records = Vec::new();
    let mut renamed = [false, false];
    for entry in parse(&data) {
        let next_uid = records.last().map_or(locked.uidlist.next_uid(), |r: &RecordBuf| r.uid + 1);
        if locked.uidlist.contains_base(&entry.record.filename) || entry.record.uid < next_uid {
            continue;
        }
        if !scan.contains_key(&entry.record.filename) {
            let from = locked.paths.tmp().join(&entry.tmp_name);
            let sub = filename::sub_for(&entry.final_name);
            let to = locked.paths.sub(sub).join(&entry.final_name);
            match std::fs::rename(&from, &to) {
                Ok(()) => renamed[usize::from(sub == Sub::Cur)] = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx("rename", &to),
            }
        }
        records.push(entry.record);
    }
    if locked.fsync {
        for (sub, renamed) in [Sub::New, Sub::Cur].into_iter().zip(renamed) {
            if renamed {
                crate::fs::fsync_dir(&locked.paths.sub(sub))?;
            }
        }
    }
    locked.append(records.iter())?;
    remove(locked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_known_answers() {
        let text = "dsync-rs journal 1\n\
            1.M1P2.h/1.M1P2.h,S=5,W=6:2,S/7 G abc :1.M1P2.h,S=5,W=6\n\
            bad line\n\
            2.M1P2.h/other:2,/8 :2.M1P2.h\n\
            3.M1P2.h/3.M1P2.h:2,/9 :3.M1P2.h";
        let entries = parse(text.as_bytes());
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].record.uid, 7);
        assert_eq!(entries[0].final_name, "1.M1P2.h,S=5,W=6:2,S");
        assert!(parse(b"garbage").is_empty());
    }
}
