//! `dsync check` (a preflight: connect, log in, list folders with counts and sizes) and
//! `dsync mailbox list`.

use std::fmt::Write as _;

use dsync_core::filter::{MailboxFilter, MailboxPattern};
use dsync_core::{SpecialUse, Storage, StorageError, human_bytes};

/// One folder as `check` shows it.
#[derive(Debug, Clone)]
pub(crate) struct FolderLine {
    pub(crate) name: String,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) uid_validity: u32,
    pub(crate) uid_next: u32,
    pub(crate) subscribed: bool,
    pub(crate) special_use: Vec<SpecialUse>,
}

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub(crate) struct CheckReport {
    pub(crate) folders: Vec<FolderLine>,
}

impl CheckReport {
    pub(crate) fn messages(&self) -> u64 {
        self.folders.iter().map(|f| f.messages).sum()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.folders.iter().map(|f| f.bytes).sum()
    }

    /// The folder table and a total line.
    pub(crate) fn table(&self, location: &str) -> String {
        let mut out = String::new();
        let width = self.folders.iter().map(|f| f.name.chars().count()).max().unwrap_or(6).max(6);
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>10}  {:>11}  {:>8}  SUBSCRIBED  SPECIAL-USE",
            "FOLDER", "MESSAGES", "SIZE", "UIDVALIDITY", "UIDNEXT"
        );
        for folder in &self.folders {
            let roles: Vec<String> = folder.special_use.iter().map(|r| format!("{r:?}")).collect();
            let line = format!(
                "{:<width$}  {:>8}  {:>10}  {:>11}  {:>8}  {:<10}  {}",
                folder.name,
                folder.messages,
                human_bytes(folder.bytes),
                folder.uid_validity,
                folder.uid_next,
                if folder.subscribed { "yes" } else { "no" },
                roles.join(" ")
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(
            out,
            "{location}: {} folders, {} messages, {}",
            self.folders.len(),
            self.messages(),
            human_bytes(self.bytes())
        );
        out
    }
}

/// Lists every selectable folder with its status and total size.
pub(crate) fn check(storage: &mut dyn Storage) -> Result<CheckReport, StorageError> {
    let subscriptions = storage.subscriptions()?;
    let mut report = CheckReport::default();
    for info in storage.mailboxes()? {
        if !info.selectable {
            continue;
        }
        let contents = storage.contents(&info.name)?;
        report.folders.push(FolderLine {
            name: info.name.to_string(),
            messages: contents.messages.len() as u64,
            bytes: contents.messages.iter().filter_map(|m| m.virtual_size).sum(),
            uid_validity: contents.status.uid_validity.get(),
            uid_next: contents.status.uid_next.get(),
            subscribed: subscriptions.contains(&info.name),
            special_use: info.special_use.clone(),
        });
    }
    Ok(report)
}

/// Folder names (one per line, `/` as separator) matching `patterns` (all when empty).
pub(crate) fn list(
    storage: &mut dyn Storage,
    patterns: &[String],
    subscribed_only: bool,
) -> Result<Vec<String>, StorageError> {
    let include = patterns.iter().filter_map(|p| MailboxPattern::parse(p).ok()).collect();
    let filter = MailboxFilter { include, exclude: Vec::new() };
    let subscriptions = if subscribed_only { Some(storage.subscriptions()?) } else { None };
    let mut names: Vec<String> = storage
        .mailboxes()?
        .into_iter()
        .filter(|info| filter.wants(&info.name, &info.special_use))
        .filter(|info| subscriptions.as_ref().is_none_or(|s| s.contains(&info.name)))
        .map(|info| info.name.to_string())
        .collect();
    if let Some(subscriptions) = &subscriptions {
        // Subscribed names need not exist (doveadm mailbox list -s shows them too).
        for name in subscriptions {
            if filter.wants(name, &[]) && !names.contains(&name.to_string()) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}
