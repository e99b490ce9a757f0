//! Mailbox-tree planning: which mailboxes exist where, and subscriptions.

use std::collections::{BTreeMap, BTreeSet};

use crate::filter::MailboxFilter;
use crate::model::{MailboxInfo, MailboxName, SpecialUse};
use crate::plan::TreePlan;

/// Plans the mailbox tree for `backup`.
///
/// Backup rules (Dovecot's `dsync-mailbox-tree-sync.c`, with one deliberate difference):
/// * every selectable source mailbox is synced (created when missing);
/// * every selectable destination mailbox the source lacks, or has only as a `\Noselect`
///   placeholder, is deleted — except INBOX, which is never deleted;
/// * a source `\Noselect` placeholder is **not** created as a real mailbox (Dovecot's dsync
///   does create one); the destination shows it as `\Noselect` through its children, which
///   is what the source shows;
/// * the destination's subscriptions become the source's.
///
/// Only names the `filter` wants are considered, on both sides: a filtered run never
/// deletes, creates or (un)subscribes anything outside it. A special-use role on either
/// side counts (a Maildir destination has no roles of its own).
pub fn plan_tree(
    source: &[MailboxInfo],
    source_subscriptions: &BTreeSet<MailboxName>,
    destination: &[MailboxInfo],
    destination_subscriptions: &BTreeSet<MailboxName>,
    filter: &MailboxFilter,
) -> TreePlan {
    let mut roles: BTreeMap<&MailboxName, Vec<SpecialUse>> = BTreeMap::new();
    for info in source.iter().chain(destination) {
        roles.entry(&info.name).or_default().extend(info.special_use.iter().copied());
    }
    let wanted =
        |name: &MailboxName| filter.wants(name, roles.get(name).map_or(&[][..], Vec::as_slice));
    backup(source, source_subscriptions, destination, destination_subscriptions, &wanted)
}

fn backup(
    source: &[MailboxInfo],
    source_subscriptions: &BTreeSet<MailboxName>,
    destination: &[MailboxInfo],
    destination_subscriptions: &BTreeSet<MailboxName>,
    wanted: &dyn Fn(&MailboxName) -> bool,
) -> TreePlan {
    let selectable = |list: &[MailboxInfo]| -> BTreeSet<MailboxName> {
        list.iter().filter(|m| m.selectable && wanted(&m.name)).map(|m| m.name.clone()).collect()
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
        subscribe: source_subscriptions
            .difference(destination_subscriptions)
            .filter(|name| wanted(name))
            .cloned()
            .collect(),
        unsubscribe: destination_subscriptions
            .difference(source_subscriptions)
            .filter(|name| wanted(name))
            .cloned()
            .collect(),
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

    fn backup(
        source: &[MailboxInfo],
        source_subscriptions: &[&str],
        destination: &[MailboxInfo],
        destination_subscriptions: &[&str],
        filter: &MailboxFilter,
    ) -> TreePlan {
        plan_tree(
            source,
            &names(source_subscriptions),
            destination,
            &names(destination_subscriptions),
            filter,
        )
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
        let plan = backup(
            &source,
            &["INBOX", "A/B", "Ghost"],
            &destination,
            &["INBOX", "Old"],
            &MailboxFilter::default(),
        );
        assert_eq!(plan.sync, [name("A"), name("A/B"), name("INBOX"), name("P/C")]);
        // P is only a placeholder on the source: the real destination mailbox P goes.
        assert_eq!(plan.delete, [name("P"), name("Old/Deeper"), name("Old")]);
        assert_eq!(plan.subscribe, [name("A/B"), name("Ghost")]);
        assert_eq!(plan.unsubscribe, [name("Old")]);
    }

    #[test]
    fn inbox_is_never_deleted() {
        let plan =
            backup(&[info("A", true)], &[], &[info("INBOX", true)], &[], &MailboxFilter::default());
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn filters_keep_everything_outside_untouched() {
        use crate::filter::MailboxPattern;
        let mut sent = info("Gesendet", true);
        sent.special_use = vec![SpecialUse::Sent];
        let source = [info("INBOX", true), info("Archive", true), sent];
        let destination =
            [info("INBOX", true), info("Old", true), info("Gesendet", true), info("Spam", true)];
        let filter = MailboxFilter {
            include: vec![MailboxPattern::parse("*").expect("valid")],
            exclude: vec![
                MailboxPattern::parse("Old").expect("valid"),
                MailboxPattern::parse("\\Sent").expect("valid"),
            ],
        };
        let plan =
            backup(&source, &["Old", "Archive"], &destination, &["Gesendet", "Spam"], &filter);
        assert_eq!(plan.sync, [name("Archive"), name("INBOX")]);
        assert_eq!(
            plan.delete,
            [name("Spam")],
            "Old is excluded by name, Gesendet by its source role"
        );
        assert_eq!(plan.subscribe, [name("Archive")]);
        assert_eq!(plan.unsubscribe, [name("Spam")]);

        let only_archive = MailboxFilter {
            include: vec![MailboxPattern::parse("Arch*").expect("valid")],
            exclude: vec![],
        };
        let plan = backup(&source, &[], &destination, &["Spam"], &only_archive);
        assert_eq!(
            (plan.sync, plan.delete, plan.unsubscribe),
            (vec![name("Archive")], vec![], vec![])
        );
    }
}
