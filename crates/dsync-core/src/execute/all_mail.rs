//! doveadm's `-a`: the destination's all-mail mailbox, read by GUID, so that a message the
//! destination already holds is copied there instead of transferred again (Dovecot reads
//! the GUIDs of its virtual `\All` mailbox the same way, in
//! `dsync_mailbox_import_find_virtual_uids`). Gmail shows one message in every label's
//! folder and in `[Gmail]/All Mail`: with this, each body crosses the network once.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use super::copy::LocalCopies;
use crate::error::{ErrorKind, Side, SyncError};
use crate::filter::MailboxPattern;
use crate::model::{MailboxInfo, MailboxName, MessageMeta, Uid};
use crate::storage::Storage;

/// The all-mail mailbox of the written side and, once needed, its messages by GUID.
#[derive(Debug)]
pub(super) struct AllMail {
    /// Its name on the written side.
    mailbox: MailboxName,
    /// GUID → UID; `None` until a save has a GUID, and again after the mailbox changed.
    by_guid: Option<HashMap<String, Uid>>,
}

impl AllMail {
    /// The mailbox `pattern` names: the first source mailbox it matches (names already
    /// in the destination's spelling; a `\All`-style role is the source's), else the first
    /// destination mailbox.
    pub(super) fn resolve(
        pattern: &MailboxPattern,
        source: &[MailboxInfo],
        destination: &[MailboxInfo],
    ) -> Option<MailboxName> {
        source
            .iter()
            .chain(destination)
            .find(|m| m.selectable && pattern.matches(&m.name, &m.special_use))
            .map(|m| m.name.clone())
    }

    /// Reads `mailbox` of the written side when first needed.
    pub(super) fn new(mailbox: MailboxName) -> AllMail {
        AllMail { mailbox, by_guid: None }
    }

    /// The mailbox, as the written side names it.
    pub(super) fn mailbox(&self) -> &MailboxName {
        &self.mailbox
    }

    /// Which of `saves` the written side (`written`, which is `side`) already holds,
    /// listing the all-mail mailbox the first time a save has a GUID. A missing mailbox
    /// holds nothing.
    pub(super) fn find<'a, M: Borrow<MessageMeta>>(
        &'a mut self,
        written: &mut dyn Storage,
        side: Side,
        saves: impl Iterator<Item = M> + Clone,
    ) -> Result<Option<LocalCopies<'a>>, SyncError> {
        if !saves.clone().any(|m| m.borrow().guid.is_some()) {
            return Ok(None);
        }
        let by_guid = match &mut self.by_guid {
            Some(by_guid) => by_guid,
            empty => empty.insert(match written.contents(&self.mailbox) {
                Ok(contents) => {
                    contents.messages.into_iter().filter_map(|m| Some((m.guid?, m.uid))).collect()
                }
                Err(error) if error.kind() == ErrorKind::NotFound => HashMap::new(),
                Err(error) => {
                    return Err(SyncError::at(side, &self.mailbox)(error));
                }
            }),
        };
        let uids: BTreeMap<Uid, Uid> = saves
            .filter_map(|m| {
                let m = m.borrow();
                Some((m.uid, *by_guid.get(m.guid.as_deref()?)?))
            })
            .collect();
        Ok((!uids.is_empty()).then_some(LocalCopies { mailbox: &self.mailbox, uids }))
    }

    /// `mailbox` of the written side was changed: if it is the all-mail mailbox, it is
    /// listed again when next needed.
    pub(super) fn changed(&mut self, mailbox: &MailboxName) {
        if *mailbox == self.mailbox {
            self.by_guid = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpecialUse;

    fn name(text: &str) -> MailboxName {
        MailboxName::split(text, Some('/')).expect("valid name")
    }

    #[test]
    fn a_role_is_looked_up_on_the_source_and_a_name_on_either_side() {
        let mut all = MailboxInfo::new(name("[Gmail]/All Mail"));
        all.special_use = vec![SpecialUse::All];
        let source = [MailboxInfo::new(name("INBOX")), all];
        let destination = [MailboxInfo::new(name("Virtual/All"))];
        let role = MailboxPattern::parse("\\All").expect("role");
        assert_eq!(AllMail::resolve(&role, &source, &destination), Some(name("[Gmail]/All Mail")));
        let named = MailboxPattern::parse("Virtual/All").expect("name");
        assert_eq!(AllMail::resolve(&named, &source, &destination), Some(name("Virtual/All")));
        let missing = MailboxPattern::parse("Nowhere").expect("name");
        assert_eq!(AllMail::resolve(&missing, &source, &destination), None);
    }
}
