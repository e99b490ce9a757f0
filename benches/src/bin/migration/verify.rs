//! Correctness checks, so that a fast wrong result cannot win: what the source holds (read
//! over IMAP with `imapc`), and what each tool's destination holds.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use imapc::{Client, ConnectOptions, Credentials, Security, SequenceSet};
use mailstore::{Location, Maildir, Options, Sdbox, SdboxLocation};

use crate::Result;

/// One source folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Folder {
    pub(crate) uid_validity: u32,
    pub(crate) uids: Vec<u32>,
}

/// The source account as its server reports it.
#[derive(Debug, Clone)]
pub(crate) struct Truth {
    /// Folder name (UTF-8, `/`-separated) → contents.
    pub(crate) folders: BTreeMap<String, Folder>,
    pub(crate) messages: u64,
    /// Sum of RFC822.SIZE: the bytes every tool has to move.
    pub(crate) bytes: u64,
}

/// Reads UIDVALIDITY, UIDs and sizes of every folder over IMAP.
pub(crate) fn source_truth(port: u16, user: &str, password: &str) -> Result<Truth> {
    let options = ConnectOptions::new("127.0.0.1", port, Security::Plain);
    let client = Client::connect(&options)?;
    let mut session = client.login(&Credentials::new(user, password)).map_err(|(e, _)| e)?;
    let mut truth = Truth { folders: BTreeMap::new(), messages: 0, bytes: 0 };
    for entry in session.list("", "*")? {
        if entry.is_noselect() {
            continue;
        }
        let info = session.examine(&entry.name)?;
        let mut uids = Vec::new();
        if info.exists > 0 {
            session.fetch_metadata(&SequenceSet::all(), false, &mut |meta| {
                uids.push(meta.uid);
                truth.bytes += meta.rfc822_size;
                Ok(())
            })?;
        }
        uids.sort_unstable();
        uids.dedup();
        truth.messages += uids.len() as u64;
        let name = entry.name.display().replace(entry.delimiter.unwrap_or('/'), "/");
        truth.folders.insert(name, Folder { uid_validity: info.uid_validity.get(), uids });
    }
    session.logout()?;
    Ok(truth)
}

/// A Maildir that must equal the source exactly: folders, UIDVALIDITY, UIDs (ours and
/// doveadm's keep them).
pub(crate) fn same_uids(root: &Path, truth: &Truth) -> std::result::Result<(), String> {
    let maildir =
        Maildir::with_options(Location::maildir(root), Options::default().with_read_only(true));
    let mut found = BTreeMap::new();
    let entries = maildir.mailboxes().map_err(|e| e.to_string())?;
    for entry in entries.iter().filter(|e| e.selectable) {
        let mailbox = maildir.mailbox(&entry.name).map_err(|e| e.to_string())?;
        let status = mailbox.status().map_err(|e| e.to_string())?;
        let uids: Vec<u32> =
            mailbox.messages().map_err(|e| e.to_string())?.iter().map(|m| m.uid).collect();
        found.insert(entry.name.to_string(), Folder { uid_validity: status.uid_validity, uids });
    }
    compare(found, truth)
}

/// [`same_uids`] for an sdbox store (read from its index and message files).
pub(crate) fn same_uids_sdbox(root: &Path, truth: &Truth) -> std::result::Result<(), String> {
    let store =
        Sdbox::with_options(SdboxLocation::new(root), Options::default().with_read_only(true));
    let mut found = BTreeMap::new();
    let entries = store.mailboxes().map_err(|e| e.to_string())?;
    for entry in entries.iter().filter(|e| e.selectable) {
        let mailbox = store.mailbox(&entry.name).map_err(|e| e.to_string())?;
        let status = mailbox.status().map_err(|e| e.to_string())?;
        let uids: Vec<u32> =
            mailbox.messages().map_err(|e| e.to_string())?.iter().map(|m| m.uid).collect();
        found.insert(entry.name.to_string(), Folder { uid_validity: status.uid_validity, uids });
    }
    compare(found, truth)
}

/// Folders found against the source's: the same UIDVALIDITYs and UIDs, nothing more.
fn compare(mut found: BTreeMap<String, Folder>, truth: &Truth) -> std::result::Result<(), String> {
    for (name, want) in &truth.folders {
        match found.remove(name) {
            None if want.uids.is_empty() => {}
            None => return Err(format!("folder {name} missing")),
            Some(got) if got.uid_validity != want.uid_validity => {
                return Err(format!(
                    "{name}: UIDVALIDITY {} instead of {}",
                    got.uid_validity, want.uid_validity
                ));
            }
            Some(got) if got.uids != want.uids => {
                return Err(format!(
                    "{name}: {} messages with other UIDs than the source's {} (first difference \
                     at position {})",
                    got.uids.len(),
                    want.uids.len(),
                    got.uids.iter().zip(&want.uids).take_while(|(a, b)| a == b).count()
                ));
            }
            Some(_) => {}
        }
    }
    if let Some((name, extra)) = found.iter().find(|(_, folder)| !folder.uids.is_empty()) {
        return Err(format!(
            "folder {name} with {} messages is not in the source",
            extra.uids.len()
        ));
    }
    Ok(())
}

/// A Maildir++ tree (mbsync's output, UIDs not kept): as many messages as the source, in as
/// many non-empty folders.
pub(crate) fn same_counts(root: &Path, truth: &Truth) -> std::result::Result<(), String> {
    let mut counts = vec![count_maildir(root)];
    let entries = fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') && entry.path().join("cur").is_dir()
        {
            counts.push(count_maildir(&entry.path()));
        }
    }
    counts.retain(|&c| c > 0);
    counts.sort_unstable();
    let mut want: Vec<u64> =
        truth.folders.values().map(|f| f.uids.len() as u64).filter(|&c| c > 0).collect();
    want.sort_unstable();
    if counts == want {
        Ok(())
    } else {
        Err(format!(
            "{} messages in folders of {counts:?}; the source has {} in {want:?}",
            counts.iter().sum::<u64>(),
            truth.messages
        ))
    }
}

/// Files written by the raw baseline: one per message.
pub(crate) fn same_file_count(root: &Path, truth: &Truth) -> std::result::Result<(), String> {
    let count = count_files(root);
    if count == truth.messages {
        Ok(())
    } else {
        Err(format!("{count} files for {} messages", truth.messages))
    }
}

fn count_maildir(dir: &Path) -> u64 {
    ["cur", "new"]
        .iter()
        .map(|sub| fs::read_dir(dir.join(sub)).map_or(0, |d| d.flatten().count() as u64))
        .sum()
}

fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => count_files(&entry.path()),
            Ok(kind) if kind.is_file() => 1,
            _ => 0,
        })
        .sum()
}
