//! `import` (Dovecot's `doveadm import`): which selected source messages go into the
//! target folder, and under which UIDs.
//!
//! Unlike `doveadm import`, a message the target already holds (same identity: GUID when
//! both sides have comparable ones, else Dovecot's header hash) is not imported again, so
//! running an import twice does not duplicate mail. Identity is counted: two source copies
//! of a message whose target holds one give one more.

use std::collections::BTreeMap;

use crate::model::{MailboxContents, MessageMeta, Uid};
use crate::plan::effective_uid_next;

/// What to save in one target folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPlan {
    /// The source UID of each message to save, with its metadata under its new UID; both
    /// ascend together.
    pub saves: Vec<(Uid, MessageMeta)>,
    /// Candidates left out because the target holds them already.
    pub present: u64,
}

/// Plans the import of `candidates` (the source messages the query and the filters
/// selected, ascending by UID) into `target` (`None`: not created yet, so empty).
/// `identities` and `target_identities` give each message's identity by UID; a message
/// without one is always imported. New UIDs follow the target's UIDNEXT.
pub fn plan_import(
    candidates: &[&MessageMeta],
    identities: &BTreeMap<Uid, String>,
    target: Option<&MailboxContents>,
    target_identities: &BTreeMap<Uid, String>,
) -> ImportPlan {
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for identity in target_identities.values() {
        *held.entry(identity).or_default() += 1;
    }
    let mut uid_next = target.map_or(Uid::MIN, effective_uid_next);
    let mut plan = ImportPlan::default();
    for meta in candidates {
        if let Some(identity) = identities.get(&meta.uid)
            && let Some(count) = held.get_mut(identity.as_str())
            && *count > 0
        {
            *count -= 1;
            plan.present += 1;
            continue;
        }
        let mut copy = (*meta).clone();
        copy.uid = uid_next;
        uid_next = uid_next.next().unwrap_or(uid_next);
        plan.saves.push((meta.uid, copy));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, MailboxStatus, UidValidity};

    fn uid(n: u32) -> Uid {
        Uid::new(n).expect("non-zero")
    }

    fn message(n: u32) -> MessageMeta {
        MessageMeta::new(uid(n), Flags::default())
    }

    fn target(uid_next: u32, held: &[(u32, &str)]) -> MailboxContents {
        MailboxContents {
            status: MailboxStatus {
                uid_validity: UidValidity::MIN,
                uid_next: uid(uid_next),
                messages: u32::try_from(held.len()).expect("small"),
                highest_modseq: None,
                guid: None,
                change_token: None,
                source_uid_validity: None,
            },
            messages: held.iter().map(|&(n, _)| message(n)).collect(),
        }
    }

    type Listing<'a> = &'a [(u32, &'a str)];

    /// Source candidates and their identities ("" for none), the target's UIDNEXT and
    /// messages if it exists → (source UID, new UID) of each save, and how many the
    /// target held already.
    struct Case<'a> {
        source: Listing<'a>,
        target: Option<(u32, Listing<'a>)>,
        saves: &'a [(u32, u32)],
        present: u64,
    }

    #[test]
    fn saves_what_the_target_lacks_counted_by_identity_under_its_next_uids() {
        let x_y = &[(3, "x"), (7, "y")];
        let cases = [
            // A target to create: everything, from UID 1.
            Case { source: x_y, target: None, saves: &[(3, 1), (7, 2)], present: 0 },
            // One already there; the other under the target's UIDNEXT.
            Case { source: x_y, target: Some((5, &[(1, "x")])), saves: &[(7, 5)], present: 1 },
            // Two source copies, one in the target: one more.
            Case {
                source: &[(3, "x"), (7, "x")],
                target: Some((2, &[(1, "x")])),
                saves: &[(7, 2)],
                present: 1,
            },
            // A UIDNEXT at or below an existing UID is not trusted.
            Case {
                source: &[(3, "x")],
                target: Some((4, &[(9, "z")])),
                saves: &[(3, 10)],
                present: 0,
            },
            // Without an identity a message is always imported.
            Case {
                source: &[(3, ""), (7, "")],
                target: Some((2, &[(1, "x")])),
                saves: &[(3, 2), (7, 3)],
                present: 0,
            },
        ];
        for Case { source, target: listed, saves: expected, present } in cases {
            let candidates: Vec<MessageMeta> = source.iter().map(|&(n, _)| message(n)).collect();
            let candidates: Vec<&MessageMeta> = candidates.iter().collect();
            let identities = |listing: Listing<'_>| -> BTreeMap<Uid, String> {
                listing
                    .iter()
                    .filter(|(_, id)| !id.is_empty())
                    .map(|&(n, id)| (uid(n), id.to_owned()))
                    .collect()
            };
            let contents = listed.map(|(uid_next, held)| target(uid_next, held));
            let plan = plan_import(
                &candidates,
                &identities(source),
                contents.as_ref(),
                &identities(listed.map_or(&[][..], |(_, held)| held)),
            );
            let saves: Vec<(u32, u32)> =
                plan.saves.iter().map(|(origin, meta)| (origin.get(), meta.uid.get())).collect();
            assert_eq!((saves.as_slice(), plan.present), (expected, present), "{source:?}");
        }
    }
}
