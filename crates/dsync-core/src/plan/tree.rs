//! Mailbox-tree planning: which mailboxes exist where, and subscriptions.

use std::collections::BTreeSet;

use super::{Mode, TreePlan};
use crate::model::{MailboxInfo, MailboxName};

/// Plans the mailbox tree for `mode`.
///
/// Backup rules (Dovecot's, `dovecot-formats.md` §5.3, with one deliberate difference):
/// * every selectable source mailbox is synced (created when missing);
/// * every selectable destination mailbox the source lacks, or has only as a `\Noselect`
///   placeholder, is deleted — except INBOX, which is never deleted;
/// * a source `\Noselect` placeholder is **not** created as a real mailbox (Dovecot's dsync
///   does create one); the destination shows it as `\Noselect` through its children, which
///   is what the source shows;
/// * the destination's subscriptions become the source's.
pub fn plan_tree(
    mode: Mode,
    source: &[MailboxInfo],
    source_subscriptions: &BTreeSet<MailboxName>,
    destination: &[MailboxInfo],
    destination_subscriptions: &BTreeSet<MailboxName>,
) -> TreePlan {
    match mode {
        Mode::Backup => {
            backup(source, source_subscriptions, destination, destination_subscriptions)
        }
    }
}

fn backup(
    source: &[MailboxInfo],
    source_subscriptions: &BTreeSet<MailboxName>,
    destination: &[MailboxInfo],
    destination_subscriptions: &BTreeSet<MailboxName>,
) -> TreePlan {
    let selectable = |list: &[MailboxInfo]| -> BTreeSet<MailboxName> {
        list.iter().filter(|m| m.selectable).map(|m| m.name.clone()).collect()
    };
    let source_selectable = selectable(source);
    let destination_selectable = selectable(destination);

    let sync: Vec<MailboxName> = source_selectable.iter().cloned().collect();
    let mut delete: Vec<MailboxName> = destination_selectable
        .iter()
        .filter(|name| !source_selectable.contains(*name) && !name.is_inbox())
        .cloned()
        .collect();
    // Children first, so a parent is never deleted while it still has a child we delete.
    delete.reverse();

    TreePlan {
        delete,
        sync,
        subscribe: source_subscriptions.difference(destination_subscriptions).cloned().collect(),
        unsubscribe: destination_subscriptions.difference(source_subscriptions).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(path: &str) -> MailboxName {
        MailboxName::split(path, Some('/')).expect("valid test name")
    }

    fn info(path: &str, selectable: bool) -> MailboxInfo {
        MailboxInfo { selectable, ..MailboxInfo::new(name(path)) }
    }

    fn names(paths: &[&str]) -> BTreeSet<MailboxName> {
        paths.iter().map(|p| name(p)).collect()
    }

    #[test]
    fn backup_tree_creates_deletes_and_copies_subscriptions() {
        let source = [
            info("INBOX", true),
            info("A", true),
            info("A/B", true),
            info("P", false),
            info("P/C", true),
        ];
        let destination = [
            info("INBOX", true),
            info("A", true),
            info("Old", true),
            info("Old/Deeper", true),
            info("P", true),
        ];
        let plan = plan_tree(
            Mode::Backup,
            &source,
            &names(&["INBOX", "A/B", "Ghost"]),
            &destination,
            &names(&["INBOX", "Old"]),
        );
        assert_eq!(plan.sync, [name("A"), name("A/B"), name("INBOX"), name("P/C")]);
        // P is only a placeholder on the source: the real destination mailbox P goes.
        assert_eq!(plan.delete, [name("P"), name("Old/Deeper"), name("Old")]);
        assert_eq!(plan.subscribe, [name("A/B"), name("Ghost")]);
        assert_eq!(plan.unsubscribe, [name("Old")]);
    }

    #[test]
    fn inbox_is_never_deleted() {
        let plan = plan_tree(
            Mode::Backup,
            &[info("A", true)],
            &BTreeSet::new(),
            &[info("INBOX", true)],
            &BTreeSet::new(),
        );
        assert!(plan.delete.is_empty());
    }
}
