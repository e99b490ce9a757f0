//! Side A of a merge: only read in one-way mode, written too in two-way mode.

use std::collections::BTreeMap;

use crate::model::MailboxName;
use crate::plan::merge::MergeMode;
use crate::storage::{Storage, StorageMut};

/// How a merge may touch its source (side A): only read it (`sync -1`) or write it too
/// (`sync`). The destination (side B) is always written.
pub(in crate::execute) enum MergeSource<'a> {
    ReadOnly(&'a mut dyn Storage),
    Writable(&'a mut dyn StorageMut),
}

impl MergeSource<'_> {
    pub(super) fn storage(&mut self) -> &mut dyn Storage {
        match self {
            MergeSource::ReadOnly(storage) => *storage,
            MergeSource::Writable(storage) => *storage,
        }
    }

    pub(super) fn mode(&self) -> MergeMode {
        match self {
            MergeSource::ReadOnly(_) => MergeMode::OneWay,
            MergeSource::Writable(_) => MergeMode::TwoWay,
        }
    }

    /// A's spelling of `name` (a destination-side name): as A listed it (`listed`, where it
    /// differs), else as A would write it.
    pub(super) fn spelling(
        &self,
        listed: &BTreeMap<MailboxName, MailboxName>,
        name: &MailboxName,
    ) -> MailboxName {
        match (listed.get(name), self) {
            (Some(original), _) => original.clone(),
            (None, MergeSource::Writable(a)) => a.local_name(name),
            (None, MergeSource::ReadOnly(_)) => name.clone(),
        }
    }
}
