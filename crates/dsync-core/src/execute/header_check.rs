//! Which of the UIDs both sides hold name different messages, by their header hashes:
//! a backup's check where message GUIDs cannot tell messages apart (an IMAP source, a
//! `--no-state` run).

use std::collections::BTreeSet;

use super::Names;
use crate::error::{Side, SyncError};
use crate::model::Uid;
use crate::storage::{Storage, StorageMut};

/// How many UIDs' hashes are asked for at once: both sides' hashes of one chunk are held
/// (~110 B a message), not of every suspect (2 × 5.6 MB at 100 000; benches/RESULTS-memory.md,
/// Round 9). The Maildir and sdbox adapters keep their view between the calls, so more
/// chunks cost no more reads of the folder.
const CHUNK: usize = 4096;

/// Of `uids` (ascending), those whose header hashes differ between the two sides, asked
/// for [`CHUNK`] UIDs at a time.
pub(super) fn differing_messages(
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    names: &Names<'_>,
    uids: &[Uid],
) -> Result<BTreeSet<Uid>, SyncError> {
    differing_in_chunks(source, destination, names, uids, CHUNK)
}

/// [`differing_messages`] `chunk` UIDs at a time. A UID's hashes depend on that UID
/// alone, so the answer does not depend on `chunk`.
fn differing_in_chunks(
    source: &mut dyn Storage,
    destination: &mut dyn StorageMut,
    names: &Names<'_>,
    uids: &[Uid],
    chunk: usize,
) -> Result<BTreeSet<Uid>, SyncError> {
    let mut differing = BTreeSet::new();
    for uids in uids.chunks(chunk.max(1)) {
        let theirs = source
            .header_hashes(names.source, uids)
            .map_err(SyncError::at(Side::Source, names.source))?;
        if theirs.is_empty() {
            continue;
        }
        // Only what the source still holds: a UID it no longer has cannot differ.
        let held: Vec<Uid> = theirs.keys().copied().collect();
        let ours = destination
            .header_hashes(names.destination, &held)
            .map_err(SyncError::at(Side::Destination, names.destination))?;
        differing.extend(
            theirs
                .iter()
                .filter(|(uid, hash)| ours.get(uid).is_some_and(|own| own != *hash))
                .map(|(uid, _)| *uid),
        );
    }
    Ok(differing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;
    use crate::model::{Flags, MailboxName, UidValidity};

    /// Two mailboxes of `count` UIDs: the destination's message differs from the source's
    /// at every UID `differs` picks, and each side lacks a few the other holds.
    fn sides(count: u32, differs: impl Fn(u32) -> bool) -> (MemoryStorage, MemoryStorage) {
        let inbox = MailboxName::inbox();
        let validity = UidValidity::new(9).expect("nonzero");
        let mut source = MemoryStorage::new();
        let mut destination = MemoryStorage::new();
        let theirs = source.add_mailbox(&inbox, validity);
        let ours = destination.add_mailbox(&inbox, validity);
        for n in 1..=count {
            let body = format!("Message-ID: <{n}@example.org>\r\nSubject: {n}\r\n\r\nbody\r\n");
            let other = format!("Message-ID: <{n}@elsewhere>\r\nSubject: {n}\r\n\r\nbody\r\n");
            let uid = theirs.append(body.as_bytes(), Flags::default(), Some(1_700_000_000));
            let own = if differs(n) { &other } else { &body };
            ours.append(own.as_bytes(), Flags::default(), Some(1_700_000_000));
            if n.is_multiple_of(997) {
                theirs.expunge(uid);
            }
            if n.is_multiple_of(1009) {
                ours.expunge(uid);
            }
        }
        (source, destination)
    }

    /// The chunked check gives the set the whole one gives, with chunks that end at every
    /// interesting place: 1 and 2 UIDs, and around [`CHUNK`].
    #[test]
    fn chunks_find_what_the_whole_check_finds() {
        let chunk = u32::try_from(CHUNK).expect("a small chunk");
        let count = 2 * chunk + 5;
        let differs = |n: u32| n.is_multiple_of(7) || n == 1 || n == count || n % chunk <= 1;
        let (mut source, mut destination) = sides(count, differs);
        let inbox = MailboxName::inbox();
        let names = Names { source: &inbox, destination: &inbox };
        let uids: Vec<Uid> = (1..=count + 3).filter_map(Uid::new).collect();
        let whole = differing_in_chunks(&mut source, &mut destination, &names, &uids, usize::MAX)
            .expect("whole");
        let expected: BTreeSet<Uid> = (1..=count)
            .filter(|&n| differs(n) && !n.is_multiple_of(997) && !n.is_multiple_of(1009))
            .filter_map(Uid::new)
            .collect();
        assert_eq!(whole, expected);
        for chunk in [1, 2, 3, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let chunked = differing_in_chunks(&mut source, &mut destination, &names, &uids, chunk)
                .expect("chunked");
            assert_eq!(chunked, whole, "chunks of {chunk}");
        }
        let default =
            differing_messages(&mut source, &mut destination, &names, &uids).expect("default");
        assert_eq!(default, whole);
    }
}
