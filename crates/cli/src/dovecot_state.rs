//! `-s STATE`: Dovecot's incremental state string, mapped to and from our state as far as
//! it goes.
//!
//! Dovecot's string holds, per mailbox GUID, the UIDVALIDITY, the last common UID and
//! modseq and a message count. Our state file holds more (per mailbox the common UIDs with
//! their flags, and change tokens), so it stays the main mechanism. With `-s`:
//! * `''` (or Dovecot's empty state) starts from nothing, like `-f`;
//! * an invalid string is warned about and also means a full sync (as in doveadm);
//! * a valid string restricts our saved state to the mailboxes it names with the same
//!   UIDVALIDITY: what Dovecot would sync in full is synced in full here too;
//! * after the run the new state is printed in Dovecot's format: one record per synced
//!   mailbox that has a GUID (a Maildir's, on the destination), with its UIDVALIDITY, last
//!   common UID and message count (modseqs 0: Maildir has none).

use dsync_core::state::SyncState;
use dsync_core::state::dovecot::{DovecotMailboxState, DovecotState};

/// What a `-s` argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Start from nothing.
    Full,
    /// The string is damaged: full sync, with this warning.
    Invalid(String),
    /// Use the saved state for these mailboxes only.
    Known(DovecotState),
}

/// Reads a `-s` argument.
pub(crate) fn parse_input(text: &str) -> Input {
    match DovecotState::decode(text) {
        Ok(state) if state.mailboxes.is_empty() => Input::Full,
        Ok(state) => Input::Known(state),
        Err(error) => Input::Invalid(format!(
            "saved sync state is invalid ({error}), falling back to full sync"
        )),
    }
}

/// Keeps the mailboxes of `ours` that `theirs` knows with the same UIDVALIDITY.
pub(crate) fn restrict(mut ours: SyncState, theirs: &DovecotState) -> SyncState {
    ours.mailboxes.retain(|_, state| {
        [state.destination_guid, state.source_guid].into_iter().flatten().any(|guid| {
            theirs
                .mailboxes
                .get(&guid)
                .is_some_and(|record| record.last_uid_validity == state.base.uid_validity)
        })
    });
    ours
}

/// Our state in Dovecot's format.
pub(crate) fn export(ours: &SyncState) -> DovecotState {
    let mut theirs = DovecotState::empty();
    for state in ours.mailboxes.values() {
        let Some(guid) = state.destination_guid.or(state.source_guid) else { continue };
        theirs.mailboxes.insert(
            guid,
            DovecotMailboxState {
                mailbox_guid: guid,
                last_uid_validity: state.base.uid_validity,
                last_common_uid: state.base.last_common_uid,
                last_common_modseq: 0,
                last_common_private_modseq: 0,
                last_messages_count: u32::try_from(state.base.flags.len()).unwrap_or(u32::MAX),
            },
        );
    }
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_core::state::MailboxState;
    use dsync_core::{MailboxGuid, MailboxName};

    fn ours() -> SyncState {
        let mut state = SyncState::default();
        for (name, guid, validity) in
            [("INBOX", 1u8, 100u32), ("Archive", 2, 200), ("NoGuid", 0, 300)]
        {
            let mut mailbox = MailboxState::default();
            mailbox.base.uid_validity = validity;
            mailbox.base.last_common_uid = 7;
            mailbox.destination_guid = (guid != 0).then_some(MailboxGuid([guid; 16]));
            state.mailboxes.insert(MailboxName::new([name]).expect("name"), mailbox);
        }
        state
    }

    #[test]
    fn inputs() {
        assert_eq!(parse_input(""), Input::Full);
        assert_eq!(parse_input("AQAAAHm4+Jk="), Input::Full);
        assert!(matches!(parse_input("garbage!"), Input::Invalid(_)));
    }

    #[test]
    fn export_then_restrict_keeps_what_dovecot_would_keep() {
        let exported = export(&ours());
        assert_eq!(exported.mailboxes.len(), 2, "mailboxes without a GUID cannot be expressed");
        let record = exported.mailboxes[&MailboxGuid([1; 16])];
        assert_eq!((record.last_uid_validity, record.last_common_uid), (100, 7));
        let Input::Known(decoded) = parse_input(&exported.encode()) else { panic!("valid") };
        let mut changed = decoded.clone();
        changed.mailboxes.get_mut(&MailboxGuid([2; 16])).expect("archive").last_uid_validity = 999;
        let kept = restrict(ours(), &changed);
        let names: Vec<String> = kept.mailboxes.keys().map(ToString::to_string).collect();
        assert_eq!(names, ["INBOX"]);
        assert_eq!(restrict(ours(), &decoded).mailboxes.len(), 2);
    }
}
