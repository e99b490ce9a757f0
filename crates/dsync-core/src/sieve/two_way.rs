//! Two-way `sync` of scripts: what changed on one side only goes to the other; what
//! changed on both is a conflict, decided by change times where a side has them (a file
//! store's mtimes) and else for the source, with a warning that names the script.
//!
//! "Changed" is against the [`SieveBase`] the last run left. Without one (the first run,
//! `-f`, other locations) the sides are united: a script on one side only is copied, and
//! a script on both with other bytes is a conflict.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{ScriptDigest, ScriptSet, SieveBase, SieveStep};

/// The steps for both sides, and the conflicts decided on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwoWayPlan {
    /// Steps for the source (side A): puts, then the activation, then deletions.
    pub source: Vec<SieveStep>,
    /// Steps for the destination (side B), in the same order.
    pub destination: Vec<SieveStep>,
    /// One warning per conflict: the script, and which side's version won and why.
    pub conflicts: Vec<String>,
}

/// Which side's version of a script (or of the active setting) is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Source,
    Destination,
}

/// Plans a two-way sync of `source` and `destination` against `base` (the last run's
/// agreement; `None`: unite the sides).
///
/// A conflict (changed on both sides since `base`, or on both sides with other bytes and
/// no base) is decided thus: a change wins over a deletion; between two changes, when both
/// sides know the change times (file stores) the later wins; when only one side knows its
/// time, that side wins if it changed after the last sync (`base.synced_at`) and the other
/// side wins if the file is older than that (put back from an old copy); without times the
/// source wins. Each conflict is named in [`TwoWayPlan::conflicts`].
pub fn plan_two_way(
    source: &ScriptSet,
    destination: &ScriptSet,
    base: Option<&SieveBase>,
) -> TwoWayPlan {
    let mut plan = TwoWayPlan::default();
    let synced_at =
        base.and_then(|b| b.synced_at).map(|s| UNIX_EPOCH + std::time::Duration::from_secs(s));

    // The active script first: the script it names must survive on both sides.
    let active = decide_active(source, destination, base, synced_at, &mut plan.conflicts);

    let mut names: Vec<&String> = source.scripts.keys().chain(destination.scripts.keys()).collect();
    if let Some(base) = base {
        names.extend(base.scripts.keys());
    }
    names.sort();
    names.dedup();
    let (mut to_source_deletes, mut to_destination_deletes) = (Vec::new(), Vec::new());
    for name in names {
        let a = source.scripts.get(name);
        let b = destination.scripts.get(name);
        if a == b {
            continue;
        }
        let winner = match base {
            Some(base) => {
                let old = base.scripts.get(name);
                let changed =
                    |now: Option<&Vec<u8>>| now.map(|b| ScriptDigest::of(b)).as_ref() != old;
                match (changed(a), changed(b)) {
                    (true, false) => Winner::Source,
                    (false, true) => Winner::Destination,
                    // Unchanged on both yet different: a step of the last run was refused;
                    // the side that has the script tries again.
                    (false, false) => {
                        if a.is_some() {
                            Winner::Source
                        } else {
                            Winner::Destination
                        }
                    }
                    (true, true) => {
                        conflict(name, source, destination, synced_at, &mut plan.conflicts)
                    }
                }
            }
            None if b.is_none() => Winner::Source,
            None if a.is_none() => Winner::Destination,
            None => conflict(name, source, destination, None, &mut plan.conflicts),
        };
        // The script to be active stays on both sides.
        let winner = match (winner, a, b) {
            (Winner::Source, None, Some(_)) if active.as_ref() == Some(name) => Winner::Destination,
            (Winner::Destination, Some(_), None) if active.as_ref() == Some(name) => Winner::Source,
            _ => winner,
        };
        match (winner, a, b) {
            (Winner::Source, Some(_), _) => plan.destination.push(SieveStep::Put(name.clone())),
            (Winner::Source, None, _) => {
                to_destination_deletes.push(SieveStep::Delete(name.clone()));
            }
            (Winner::Destination, _, Some(_)) => plan.source.push(SieveStep::Put(name.clone())),
            (Winner::Destination, _, None) => {
                to_source_deletes.push(SieveStep::Delete(name.clone()));
            }
        }
    }
    if source.active != active {
        plan.source.push(SieveStep::Activate(active.clone()));
    }
    if destination.active != active {
        plan.destination.push(SieveStep::Activate(active));
    }
    plan.source.extend(to_source_deletes);
    plan.destination.extend(to_destination_deletes);
    plan
}

/// The active script both sides end with.
fn decide_active(
    source: &ScriptSet,
    destination: &ScriptSet,
    base: Option<&SieveBase>,
    synced_at: Option<SystemTime>,
    conflicts: &mut Vec<String>,
) -> Option<String> {
    let (a, b) = (&source.active, &destination.active);
    if a == b {
        return a.clone();
    }
    let changed = |now: &Option<String>| base.is_none_or(|base| *now != base.active);
    let winner = match (changed(a), changed(b)) {
        (true, false) => Winner::Source,
        (false, true) => Winner::Destination,
        // Without a base: an active script wins over none.
        _ if base.is_none() && b.is_none() => Winner::Source,
        _ if base.is_none() && a.is_none() => Winner::Destination,
        _ => {
            let (winner, why) =
                by_time(source.active_modified, destination.active_modified, synced_at);
            conflicts.push(format!(
                "sieve: the active script changed on both sides ({} on the source, {} on the destination); the {} wins ({why})",
                shown(a.as_ref()),
                shown(b.as_ref()),
                side_name(winner)
            ));
            winner
        }
    };
    match winner {
        Winner::Source => a.clone(),
        Winner::Destination => b.clone(),
    }
}

fn shown(active: Option<&String>) -> String {
    active.map_or_else(|| "none".to_owned(), |name| format!("{name:?}"))
}

fn side_name(winner: Winner) -> &'static str {
    match winner {
        Winner::Source => "source",
        Winner::Destination => "destination",
    }
}

/// A script changed on both sides (or, without a base, on both with other bytes).
fn conflict(
    name: &str,
    source: &ScriptSet,
    destination: &ScriptSet,
    synced_at: Option<SystemTime>,
    conflicts: &mut Vec<String>,
) -> Winner {
    let (winner, why) =
        match (source.scripts.contains_key(name), destination.scripts.contains_key(name)) {
            (true, false) => (Winner::Source, "a change wins over a deletion"),
            (false, true) => (Winner::Destination, "a change wins over a deletion"),
            _ => by_time(
                source.modified.get(name).copied(),
                destination.modified.get(name).copied(),
                synced_at,
            ),
        };
    conflicts.push(format!(
        "sieve: script {name:?} changed on both sides; the {}'s version wins ({why})",
        side_name(winner)
    ));
    winner
}

/// Decides between two changes by their times, where known (see [`plan_two_way`]).
fn by_time(
    source: Option<SystemTime>,
    destination: Option<SystemTime>,
    synced_at: Option<SystemTime>,
) -> (Winner, &'static str) {
    match (source, destination, synced_at) {
        (Some(a), Some(b), _) if b > a => (Winner::Destination, "changed later"),
        (Some(_), Some(_), _) => (Winner::Source, "changed later or at the same time"),
        (Some(a), None, Some(last)) if a > last => (Winner::Source, "changed since the last sync"),
        (Some(_), None, Some(_)) => {
            (Winner::Destination, "the source's file predates the last sync")
        }
        (None, Some(b), Some(last)) if b > last => {
            (Winner::Destination, "changed since the last sync")
        }
        (None, Some(_), Some(_)) => {
            (Winner::Source, "the destination's file predates the last sync")
        }
        _ => (Winner::Source, "no change times: the source wins"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::sieve::tests::{activate, delete, put, set};

    fn base(scripts: &[(&str, &str)], active: Option<&str>) -> SieveBase {
        SieveBase {
            pair: String::new(),
            synced_at: Some(1000),
            scripts: scripts
                .iter()
                .map(|(n, b)| ((*n).to_owned(), ScriptDigest::of(b.as_bytes())))
                .collect(),
            active: active.map(str::to_owned),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn dated(mut set: ScriptSet, times: &[(&str, u64)]) -> ScriptSet {
        set.modified =
            times.iter().map(|(n, t)| ((*n).to_owned(), at(*t))).collect::<BTreeMap<_, _>>();
        set
    }

    /// (what, source, destination, base, source steps, destination steps, conflicts).
    type Case = (
        &'static str,
        ScriptSet,
        ScriptSet,
        Option<SieveBase>,
        Vec<SieveStep>,
        Vec<SieveStep>,
        usize,
    );

    #[test]
    fn plans_two_way() {
        let common = base(&[("a", "1"), ("b", "2")], Some("a"));
        let equal = set(&[("a", "1"), ("b", "2")], Some("a"));
        let cases: Vec<Case> = vec![
            (
                "nothing changed",
                equal.clone(),
                equal.clone(),
                Some(common.clone()),
                vec![],
                vec![],
                0,
            ),
            (
                "changed on the source",
                set(&[("a", "1x"), ("b", "2")], Some("a")),
                equal.clone(),
                Some(common.clone()),
                vec![],
                vec![put("a")],
                0,
            ),
            (
                "changed and added on the destination",
                equal.clone(),
                set(&[("a", "1"), ("b", "2y"), ("c", "3")], Some("a")),
                Some(common.clone()),
                vec![put("b"), put("c")],
                vec![],
                0,
            ),
            (
                "deleted on the destination",
                equal.clone(),
                set(&[("a", "1")], Some("a")),
                Some(common.clone()),
                vec![delete("b")],
                vec![],
                0,
            ),
            (
                "activated on the destination, deactivated on the source... source changed only",
                set(&[("a", "1"), ("b", "2")], None),
                equal.clone(),
                Some(common.clone()),
                vec![],
                vec![activate(None)],
                0,
            ),
            (
                "activated other on the destination",
                equal.clone(),
                set(&[("a", "1"), ("b", "2")], Some("b")),
                Some(common.clone()),
                vec![activate(Some("b"))],
                vec![],
                0,
            ),
            (
                "changed on both, no times: the source wins",
                set(&[("a", "1x"), ("b", "2")], Some("a")),
                set(&[("a", "1y"), ("b", "2")], Some("a")),
                Some(common.clone()),
                vec![],
                vec![put("a")],
                1,
            ),
            (
                "deleted on the source, changed on the destination: the change wins",
                set(&[("a", "1")], Some("a")),
                set(&[("a", "1"), ("b", "2y")], Some("a")),
                Some(common.clone()),
                vec![put("b")],
                vec![],
                1,
            ),
            (
                "deleted the active script on the source, activated it again... the destination keeps it",
                set(&[("b", "2")], Some("b")),
                equal.clone(),
                Some(common.clone()),
                vec![],
                vec![activate(Some("b")), delete("a")],
                0,
            ),
            (
                "a script the destination refused last time is tried again",
                set(&[("a", "1"), ("b", "2"), ("c", "3")], Some("a")),
                equal.clone(),
                Some(common.clone()),
                vec![],
                vec![put("c")],
                0,
            ),
            (
                "no base: union, active script kept, source wins the conflict",
                set(&[("a", "1"), ("x", "s")], None),
                set(&[("b", "2"), ("x", "d")], Some("b")),
                None,
                vec![put("b"), activate(Some("b"))],
                vec![put("a"), put("x")],
                1,
            ),
        ];
        for (what, a, b, base, to_a, to_b, conflicts) in cases {
            let plan = plan_two_way(&a, &b, base.as_ref());
            assert_eq!((&plan.source, &plan.destination), (&to_a, &to_b), "{what}");
            assert_eq!(plan.conflicts.len(), conflicts, "{what}: {:?}", plan.conflicts);
        }
    }

    #[test]
    fn change_times_decide_conflicts() {
        let common = base(&[("a", "1")], None);
        let changed_a = set(&[("a", "A")], None);
        let changed_b = set(&[("a", "B")], None);
        // Both file stores: the later change.
        let plan = plan_two_way(
            &dated(changed_a.clone(), &[("a", 2000)]),
            &dated(changed_b.clone(), &[("a", 3000)]),
            Some(&common),
        );
        assert_eq!((plan.source, plan.destination), (vec![put("a")], vec![]));
        assert!(
            plan.conflicts[0].contains("\"a\"")
                && plan.conflicts[0].contains("destination's version wins (changed later)"),
            "{:?}",
            plan.conflicts
        );
        // Only the destination is a file store, changed after the last sync: it wins.
        let plan =
            plan_two_way(&changed_a, &dated(changed_b.clone(), &[("a", 2000)]), Some(&common));
        assert_eq!((plan.source, plan.destination), (vec![put("a")], vec![]));
        // Its file predates the last sync (put back from a copy): the server's change wins.
        let plan = plan_two_way(&changed_a, &dated(changed_b, &[("a", 500)]), Some(&common));
        assert_eq!((plan.source, plan.destination), (vec![], vec![put("a")]));
    }
}
