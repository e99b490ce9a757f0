//! Subscriptions in the merge modes: what a side subscribed or unsubscribed since the last
//! merge travels to the other side (one-way: only A's changes, B's own stay). When both
//! sides changed a name differently, or it differs for no recorded reason (no state yet),
//! subscribed wins: a hidden folder is worse than an extra one in a folder list.

use std::collections::BTreeSet;

use super::MergeMode;
use crate::model::MailboxName;

/// One side's subscriptions as a merge sees them (destination-side names).
#[derive(Debug, Clone, Copy)]
pub struct Subscribed<'a> {
    /// What the side has subscribed now.
    pub now: &'a BTreeSet<MailboxName>,
    /// What it had after the last merge ([`crate::state::SyncState::subscribed_source`] or
    /// `subscribed_destination`).
    pub recorded: &'a BTreeSet<MailboxName>,
}

/// Subscription changes for both sides: each a name (destination-side spelling) and
/// whether to subscribe (true) or unsubscribe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionPlan {
    /// Changes on side A (none in one-way mode).
    pub source: Vec<(MailboxName, bool)>,
    /// Changes on side B.
    pub destination: Vec<(MailboxName, bool)>,
}

/// Plans the subscription changes of a merge, for the names the mailbox filters `wanted`.
pub fn plan_subscriptions(
    mode: MergeMode,
    source: Subscribed<'_>,
    destination: Subscribed<'_>,
    wanted: &dyn Fn(&MailboxName) -> bool,
) -> SubscriptionPlan {
    let names: BTreeSet<&MailboxName> = source
        .now
        .iter()
        .chain(destination.now)
        .chain(source.recorded)
        .chain(destination.recorded)
        .filter(|name| wanted(name))
        .collect();
    let mut plan = SubscriptionPlan::default();
    for name in names {
        let (in_a, in_b) = (source.now.contains(name), destination.now.contains(name));
        if in_a == in_b {
            continue;
        }
        let a_changed = in_a != source.recorded.contains(name);
        let b_changed = in_b != destination.recorded.contains(name);
        let target = match (a_changed, b_changed, mode) {
            (true, false, _) => in_a,
            (false, true, _) => in_b,
            // One-way and nothing new on A: B's difference is B's own.
            (false, false, MergeMode::OneWay) => continue,
            _ => true,
        };
        if in_b != target {
            plan.destination.push((name.clone(), target));
        }
        if in_a != target && mode == MergeMode::TwoWay {
            plan.source.push((name.clone(), target));
        }
    }
    plan
}

/// What to record of a side's subscriptions for the next merge: `now` (after the changes
/// made) for the names the filters want; names outside them keep what was `recorded`.
pub fn record_subscriptions(
    recorded: &BTreeSet<MailboxName>,
    now: BTreeSet<MailboxName>,
    wanted: &dyn Fn(&MailboxName) -> bool,
) -> BTreeSet<MailboxName> {
    recorded
        .iter()
        .filter(|name| !wanted(name))
        .cloned()
        .chain(now.into_iter().filter(|name| wanted(name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::merge::test_names::names;

    fn changes(list: &[(MailboxName, bool)]) -> String {
        let shown: Vec<String> = list
            .iter()
            .map(|(name, on)| format!("{}{name}", if *on { '+' } else { '-' }))
            .collect();
        shown.join(" ")
    }

    /// (mode, A now, A recorded, B now, B recorded) → changes on A, changes on B.
    #[test]
    fn each_sides_changes_travel_and_subscribed_wins_a_conflict() {
        use MergeMode::{OneWay, TwoWay};
        let cases = [
            // A subscribed X, B unsubscribed Y: both travel (one-way: only A's).
            (TwoWay, "X Y", "Y", "", "Y", "-Y", "+X"),
            (OneWay, "X Y", "Y", "", "Y", "", "+X"),
            // A unsubscribed X: it travels both ways.
            (TwoWay, "", "X", "X", "X", "", "-X"),
            (OneWay, "", "X", "X", "X", "", "-X"),
            // No state: a difference is kept as subscribed (one-way: B's own stays).
            (TwoWay, "X", "", "Y", "", "+Y", "+X"),
            (OneWay, "X", "", "Y", "", "", "+X"),
            // Both changed X differently: subscribed wins.
            (TwoWay, "X", "", "", "X", "", "+X"),
            (OneWay, "X", "", "", "X", "", "+X"),
            // Only B changed: in one-way mode too, B keeps its change and A is not written.
            (OneWay, "X", "X", "", "X", "", ""),
            (TwoWay, "X", "X", "", "X", "-X", ""),
        ];
        for (mode, a_now, a_recorded, b_now, b_recorded, on_a, on_b) in cases {
            let (a_now, a_recorded) = (names(a_now), names(a_recorded));
            let (b_now, b_recorded) = (names(b_now), names(b_recorded));
            let plan = plan_subscriptions(
                mode,
                Subscribed { now: &a_now, recorded: &a_recorded },
                Subscribed { now: &b_now, recorded: &b_recorded },
                &|_| true,
            );
            let case = format!("{mode:?} A {a_now:?}/{a_recorded:?} B {b_now:?}/{b_recorded:?}");
            assert_eq!(
                (changes(&plan.source), changes(&plan.destination)),
                (on_a.into(), on_b.into()),
                "{case}"
            );
        }
    }

    #[test]
    fn names_outside_the_filters_are_neither_changed_nor_recorded_anew() {
        let (a_now, b_now, recorded) = (names("In Out"), names(""), names("Out Old"));
        let wanted = |name: &MailboxName| !name.to_string().starts_with('O');
        let plan = plan_subscriptions(
            MergeMode::TwoWay,
            Subscribed { now: &a_now, recorded: &BTreeSet::new() },
            Subscribed { now: &b_now, recorded: &BTreeSet::new() },
            &wanted,
        );
        assert_eq!(changes(&plan.destination), "+In");
        assert!(plan.source.is_empty());
        assert_eq!(
            record_subscriptions(&recorded, names("In Other"), &wanted),
            names("In Out Old")
        );
    }
}
