//! Sieve scripts next to the mail: a user's named scripts and which one is active, made
//! equal (`backup`) or merged in (`sync -1`) from one [`ScriptStore`] to another — a
//! ManageSieve server, Pigeonhole's file store, or anything else the caller adapts.
//!
//! [`plan`] is a pure function from both sides' script sets to the steps; [`sync_scripts`]
//! reads both sides, plans and carries the steps out. A script the destination refuses (a
//! Sieve extension it lacks, a quota) is recorded with the destination's reason in the
//! [`SieveReport`] and the other steps go on: one bad filter never costs the others, nor
//! the mail.

mod base;
mod two_way;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

pub use base::{ScriptDigest, SieveBase};
pub use two_way::{TwoWayPlan, plan_two_way};

use crate::error::Side;
use crate::{ErrorKind, Mode, StorageError};

/// A user's scripts: name → bytes, and the active script's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptSet {
    /// Every script, by name, with its exact bytes.
    pub scripts: BTreeMap<String, Vec<u8>>,
    /// The active script (one of `scripts`), if any.
    pub active: Option<String>,
    /// Each script's last change, where the store knows it (a file store's mtimes;
    /// ManageSieve has none). Only a two-way conflict looks at it.
    pub modified: BTreeMap<String, SystemTime>,
    /// When the active script was last set, where the store knows it.
    pub active_modified: Option<SystemTime>,
    /// Scripts listed under a name that cannot be used (Pigeonhole's rules refuse it):
    /// neither read nor written, reported.
    pub unusable: Vec<UnusableScript>,
}

/// A script listed under a name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableScript {
    /// The name, escaped for display.
    pub name: String,
    /// Why it cannot be used.
    pub reason: String,
    /// True when it is the active script: then the active script is not known either.
    pub active: bool,
}

/// Where scripts are read and written.
pub trait ScriptStore {
    /// Every script with its bytes, and which one is active.
    fn read_all(&mut self) -> Result<ScriptSet, StorageError>;
    /// Stores (or replaces) a script.
    fn put(&mut self, name: &str, script: &[u8]) -> Result<(), StorageError>;
    /// Makes `name` the active script; `None` deactivates.
    fn activate(&mut self, name: Option<&str>) -> Result<(), StorageError>;
    /// Deletes a script (not the active one).
    fn delete(&mut self, name: &str) -> Result<(), StorageError>;
}

/// One change to the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SieveStep {
    /// Store the source's script of this name (new, or its bytes differ).
    Put(String),
    /// Make this script active (`None`: none active).
    Activate(Option<String>),
    /// Delete the destination's script of this name.
    Delete(String),
}

/// Refuses a mode scripts cannot be synced in: [`Mode::Import`] copies messages only
/// (an error of kind [`ErrorKind::Usage`]).
pub fn check_mode(mode: Mode) -> Result<(), StorageError> {
    match mode {
        Mode::Import => Err(StorageError::new(
            ErrorKind::Usage,
            "import copies messages only; migrate Sieve scripts with backup or sync",
        )),
        Mode::Backup | Mode::OneWay | Mode::TwoWay => Ok(()),
    }
}

/// The steps that bring `destination` to `source` in `mode`: puts first (so that the
/// script to activate exists), then the activation (so that a script to delete is no longer
/// active), then deletions.
///
/// * [`Mode::Backup`]: the destination ends equal — same scripts, same bytes, same active
///   script (or none), extra scripts removed.
/// * [`Mode::OneWay`]: new and changed scripts are stored and the source's active script
///   is activated; nothing is deleted or deactivated.
/// * [`Mode::TwoWay`] writes both sides: see [`plan_two_way`]; here, as [`Mode::Import`],
///   an error of kind [`ErrorKind::Usage`].
pub fn plan(
    mode: Mode,
    source: &ScriptSet,
    destination: &ScriptSet,
) -> Result<Vec<SieveStep>, StorageError> {
    check_mode(mode)?;
    if mode == Mode::TwoWay {
        return Err(StorageError::new(
            ErrorKind::Usage,
            "a two-way sync of scripts writes both sides: see plan_two_way",
        ));
    }
    let mut steps: Vec<SieveStep> = source
        .scripts
        .iter()
        .filter(|(name, bytes)| destination.scripts.get(*name) != Some(*bytes))
        .map(|(name, _)| SieveStep::Put(name.clone()))
        .collect();
    let activate = match mode {
        Mode::Backup => source.active != destination.active,
        _ => source.active.is_some() && source.active != destination.active,
    };
    if activate {
        steps.push(SieveStep::Activate(source.active.clone()));
    }
    if mode == Mode::Backup {
        steps.extend(
            destination
                .scripts
                .keys()
                .filter(|name| !source.scripts.contains_key(*name))
                .map(|name| SieveStep::Delete(name.clone())),
        );
    }
    Ok(steps)
}

/// Every difference between two script sets, as lines for `verify`: scripts on one side
/// only, scripts whose bytes differ, another active script.
pub fn differences(source: &ScriptSet, destination: &ScriptSet) -> Vec<String> {
    let mut out = Vec::new();
    for (name, bytes) in &source.scripts {
        match destination.scripts.get(name) {
            None => out.push(format!("sieve: script {name:?} is missing on the destination")),
            Some(other) if other != bytes => out.push(format!(
                "sieve: script {name:?} differs ({} bytes, {} on the destination)",
                bytes.len(),
                other.len()
            )),
            Some(_) => {}
        }
    }
    for name in destination.scripts.keys().filter(|n| !source.scripts.contains_key(*n)) {
        out.push(format!("sieve: script {name:?} is only on the destination"));
    }
    if source.active != destination.active {
        let shown = |active: &Option<String>| {
            active.as_ref().map_or_else(|| "none".to_owned(), |name| format!("{name:?}"))
        };
        out.push(format!(
            "sieve: active script {}, on the destination {}",
            shown(&source.active),
            shown(&destination.active)
        ));
    }
    out
}

/// A script a side did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedScript {
    /// The script's name.
    pub name: String,
    /// What was refused: `store`, `activate` or `delete`.
    pub action: &'static str,
    /// The side that refused it (the source only in a two-way sync).
    pub side: Side,
    /// The side's reason (for a refused script, its validator's messages).
    pub reason: String,
}

/// What a run did to one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideChanges {
    /// The steps planned (all of them, also in a dry run).
    pub planned: Vec<SieveStep>,
    /// Scripts stored (new or changed).
    pub stored: usize,
    /// Scripts deleted.
    pub deleted: usize,
    /// True when the active script was changed.
    pub activated: bool,
}

/// What a Sieve run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveReport {
    /// Nothing was written: [`planned`](Self::planned) is what a real run would do.
    pub dry_run: bool,
    /// Scripts on the source.
    pub source_scripts: usize,
    /// Scripts on the destination before the run.
    pub destination_scripts: usize,
    /// Scripts stored (new or changed) on the destination.
    pub stored: usize,
    /// Scripts deleted on the destination.
    pub deleted: usize,
    /// True when the destination's active script was changed.
    pub activated: bool,
    /// The steps planned for the destination (all of them, also in a dry run).
    pub planned: Vec<SieveStep>,
    /// A two-way sync: what it did (or would do) to the source.
    pub source_changes: Option<SideChanges>,
    /// A two-way sync: each conflict, which side won and why.
    pub conflicts: Vec<String>,
    /// Steps a side refused, each with its reason.
    pub refused: Vec<RefusedScript>,
    /// Scripts skipped because their names cannot be used, one line each.
    pub skipped: Vec<String>,
}

impl SieveReport {
    /// One line for the run's summary: `sieve: 3 scripts; 2 stored, 1 deleted, active
    /// script set, 0 refused`, or in a dry run what would be done; a two-way sync adds
    /// what the source got.
    pub fn summary(&self) -> String {
        let mut line = if self.dry_run {
            format!("sieve: {} scripts; {} (dry run)", self.source_scripts, would(&self.planned))
        } else {
            format!(
                "sieve: {} scripts; {}, {} refused",
                self.source_scripts,
                done(self.stored, self.deleted, self.activated),
                self.refused.len()
            )
        };
        if !self.skipped.is_empty() {
            let _ = write!(line, ", {} skipped", self.skipped.len());
        }
        if let Some(source) = &self.source_changes {
            let changes = if self.dry_run {
                would(&source.planned)
            } else {
                done(source.stored, source.deleted, source.activated)
            };
            let _ = write!(line, "; on the source {changes}");
            if !self.conflicts.is_empty() {
                let _ = write!(line, ", {} conflicts", self.conflicts.len());
            }
        }
        line
    }

    /// 65 (data error) when a script was refused or skipped, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.refused.is_empty() && self.skipped.is_empty() {
            0
        } else {
            ErrorKind::InvalidData.exit_code()
        }
    }
}

fn done(stored: usize, deleted: usize, activated: bool) -> String {
    format!(
        "{stored} stored, {deleted} deleted{}",
        if activated { ", active script set" } else { "" }
    )
}

fn would(planned: &[SieveStep]) -> String {
    let (mut stores, mut deletes, mut activation) = (0, 0, None);
    for step in planned {
        match step {
            SieveStep::Put(_) => stores += 1,
            SieveStep::Delete(_) => deletes += 1,
            SieveStep::Activate(name) => activation = Some(name.clone()),
        }
    }
    let activation = match activation {
        Some(Some(name)) => format!(", would activate {name:?}"),
        Some(None) => ", would deactivate the active script".to_owned(),
        None => String::new(),
    };
    format!("would store {stores}, delete {deletes}{activation}")
}

/// True for an error about one script (the destination refused it: it does not compile
/// there, a quota, a name it cannot take) rather than about the store: the run goes on.
fn is_per_script(error: &StorageError) -> bool {
    matches!(error.kind(), ErrorKind::InvalidData | ErrorKind::NoSpace | ErrorKind::NotFound)
}

/// Reads both sides, plans for `mode` and, unless `dry_run`, carries the plan out. An
/// error about the store (connection, permission) stops the run and is returned; a
/// refused script is recorded in the report and the rest goes on. A two-way sync is
/// planned without a base (the sides are united): see [`sync_with_base`].
pub fn sync_scripts(
    mode: Mode,
    source: &mut dyn ScriptStore,
    destination: &mut dyn ScriptStore,
    dry_run: bool,
) -> Result<SieveReport, StorageError> {
    sync_with_base(mode, source, destination, None, dry_run).map(|(report, _)| report)
}

/// As [`sync_scripts`], planning a two-way sync against `base` (the last run's
/// agreement), and returning the base for the next run: each script and the active
/// script as both sides now agree on them, and where they still differ (a refused step)
/// what `base` had.
pub fn sync_with_base(
    mode: Mode,
    source: &mut dyn ScriptStore,
    destination: &mut dyn ScriptStore,
    base: Option<&SieveBase>,
    dry_run: bool,
) -> Result<(SieveReport, SieveBase), StorageError> {
    check_mode(mode)?;
    let mut a = source.read_all()?;
    let mut b = destination.read_all()?;
    let (to_source, to_destination, conflicts) = if mode == Mode::TwoWay {
        let plan = plan_two_way(&a, &b, base);
        (Some(plan.source), plan.destination, plan.conflicts)
    } else {
        (None, plan(mode, &a, &b)?, Vec::new())
    };
    // A script whose name cannot be used is reported; while it is active somewhere the
    // active script is left as it is.
    let mut skipped = Vec::new();
    for (set, side) in [(&a, "source"), (&b, "destination")] {
        for script in &set.unusable {
            skipped.push(format!(
                "sieve: script {} on the {side} skipped: {}{}",
                script.name,
                script.reason,
                if script.active {
                    " (it is the active script: activation left alone)"
                } else {
                    ""
                }
            ));
        }
    }
    let keep_active = a.unusable.iter().chain(&b.unusable).any(|s| s.active);
    // Neither the activation nor the deletion of the script that stays active.
    let keeps = |active: Option<String>| {
        move |step: &SieveStep| match step {
            SieveStep::Activate(_) => false,
            SieveStep::Delete(name) => active.as_ref() != Some(name),
            SieveStep::Put(_) => true,
        }
    };
    let (to_source, to_destination) = if keep_active {
        (
            to_source.map(|steps| steps.into_iter().filter(keeps(a.active.clone())).collect()),
            to_destination.into_iter().filter(keeps(b.active.clone())).collect(),
        )
    } else {
        (to_source, to_destination)
    };
    let mut report = SieveReport {
        skipped,
        dry_run,
        source_scripts: a.scripts.len(),
        destination_scripts: b.scripts.len(),
        planned: to_destination.clone(),
        source_changes: to_source
            .as_ref()
            .map(|planned| SideChanges { planned: planned.clone(), ..SideChanges::default() }),
        conflicts,
        ..SieveReport::default()
    };
    if dry_run {
        return Ok((report, base.cloned().unwrap_or_default()));
    }
    let before = (a.clone(), b.clone());
    let mut changes = SideChanges::default();
    apply(
        &to_destination,
        &before.0,
        destination,
        &mut b,
        Side::Destination,
        &mut changes,
        &mut report.refused,
    )?;
    (report.stored, report.deleted, report.activated) =
        (changes.stored, changes.deleted, changes.activated);
    if let Some(steps) = &to_source {
        let mut changes = SideChanges { planned: steps.clone(), ..SideChanges::default() };
        apply(steps, &before.1, source, &mut a, Side::Source, &mut changes, &mut report.refused)?;
        report.source_changes = Some(changes);
    }
    Ok((report, agreement(&a, &b, base)))
}

/// Carries out `steps` on `store`, taking the bytes from `from`; `now` follows what
/// succeeded.
fn apply(
    steps: &[SieveStep],
    from: &ScriptSet,
    store: &mut dyn ScriptStore,
    now: &mut ScriptSet,
    side: Side,
    changes: &mut SideChanges,
    refused: &mut Vec<RefusedScript>,
) -> Result<(), StorageError> {
    let present: Vec<String> = now.scripts.keys().cloned().collect();
    let mut refuse = |name: &str, action, error: StorageError| {
        if is_per_script(&error) {
            refused.push(RefusedScript {
                name: name.to_owned(),
                action,
                side,
                // Server texts end with a line end (a literal's last line).
                reason: error.to_string().trim_end().to_owned(),
            });
            Ok(())
        } else {
            Err(error)
        }
    };
    let mut refused_here: Vec<String> = Vec::new();
    for step in steps {
        match step {
            SieveStep::Put(name) => {
                let bytes = from.scripts.get(name).map_or(&[][..], Vec::as_slice);
                match store.put(name, bytes) {
                    Ok(()) => {
                        changes.stored += 1;
                        now.scripts.insert(name.clone(), bytes.to_vec());
                    }
                    Err(error) => {
                        refused_here.push(name.clone());
                        refuse(name, "store", error)?;
                    }
                }
            }
            SieveStep::Activate(name) => {
                // A refused script that was not there before cannot be activated: that is
                // already reported.
                if let Some(name) = name
                    && refused_here.contains(name)
                    && !present.contains(name)
                {
                    continue;
                }
                match store.activate(name.as_deref()) {
                    Ok(()) => {
                        changes.activated = true;
                        now.active.clone_from(name);
                    }
                    Err(error) => refuse(name.as_deref().unwrap_or(""), "activate", error)?,
                }
            }
            SieveStep::Delete(name) => match store.delete(name) {
                Ok(()) => {
                    changes.deleted += 1;
                    now.scripts.remove(name);
                }
                Err(error) => refuse(name, "delete", error)?,
            },
        }
    }
    Ok(())
}

/// The base after a run: what both sides agree on; where they differ, the old base's.
fn agreement(a: &ScriptSet, b: &ScriptSet, old: Option<&SieveBase>) -> SieveBase {
    let mut base = SieveBase {
        synced_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
        ..SieveBase::default()
    };
    let names =
        a.scripts.keys().chain(b.scripts.keys()).chain(old.iter().flat_map(|o| o.scripts.keys()));
    for name in names {
        let agreed = match (a.scripts.get(name), b.scripts.get(name)) {
            (Some(x), Some(y)) if x == y => Some(ScriptDigest::of(x)),
            (None, None) => None,
            _ => old.and_then(|o| o.scripts.get(name).copied()),
        };
        if let Some(digest) = agreed {
            base.scripts.insert(name.clone(), digest);
        }
    }
    base.active =
        if a.active == b.active { a.active.clone() } else { old.and_then(|o| o.active.clone()) };
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn set(scripts: &[(&str, &str)], active: Option<&str>) -> ScriptSet {
        ScriptSet {
            scripts: scripts
                .iter()
                .map(|(n, b)| ((*n).to_owned(), b.as_bytes().to_vec()))
                .collect(),
            active: active.map(str::to_owned),
            ..ScriptSet::default()
        }
    }

    pub(crate) fn put(name: &str) -> SieveStep {
        SieveStep::Put(name.into())
    }
    pub(crate) fn delete(name: &str) -> SieveStep {
        SieveStep::Delete(name.into())
    }
    pub(crate) fn activate(name: Option<&str>) -> SieveStep {
        SieveStep::Activate(name.map(str::to_owned))
    }

    #[test]
    fn plans_per_mode() {
        let source = set(&[("a", "keep;"), ("b", "discard;")], Some("b"));
        let cases: Vec<(&str, Mode, ScriptSet, Vec<SieveStep>)> = vec![
            (
                "empty destination",
                Mode::Backup,
                set(&[], None),
                vec![put("a"), put("b"), activate(Some("b"))],
            ),
            ("equal", Mode::Backup, source.clone(), vec![]),
            ("equal, sync -1", Mode::OneWay, source.clone(), vec![]),
            (
                "changed bytes, other active, extra script",
                Mode::Backup,
                set(&[("a", "keep;\r\n"), ("b", "discard;"), ("x", "stop;")], Some("x")),
                vec![put("a"), activate(Some("b")), delete("x")],
            ),
            (
                "sync -1 keeps extras and activates the source's",
                Mode::OneWay,
                set(&[("a", "keep;\r\n"), ("x", "stop;")], Some("x")),
                vec![put("a"), put("b"), activate(Some("b"))],
            ),
        ];
        for (what, mode, destination, expected) in cases {
            assert_eq!(plan(mode, &source, &destination).expect(what), expected, "{what}");
        }
        // No active script on the source: backup deactivates, sync -1 leaves it.
        let none_active = set(&[("a", "keep;")], None);
        let destination = set(&[("a", "keep;")], Some("a"));
        assert_eq!(
            plan(Mode::Backup, &none_active, &destination).expect("backup"),
            [activate(None)]
        );
        assert!(plan(Mode::OneWay, &none_active, &destination).expect("sync -1").is_empty());
        for mode in [Mode::TwoWay, Mode::Import] {
            let error = plan(mode, &none_active, &destination).expect_err("refused mode");
            assert_eq!(error.kind(), ErrorKind::Usage);
        }
    }

    /// A store in memory that refuses scripts containing `refuse`.
    #[derive(Default)]
    struct Memory(ScriptSet);

    impl ScriptStore for Memory {
        fn read_all(&mut self) -> Result<ScriptSet, StorageError> {
            Ok(self.0.clone())
        }
        fn put(&mut self, name: &str, script: &[u8]) -> Result<(), StorageError> {
            if script.windows(6).any(|w| w == b"refuse") {
                return Err(StorageError::new(ErrorKind::InvalidData, "unknown extension"));
            }
            self.0.scripts.insert(name.into(), script.to_vec());
            Ok(())
        }
        fn activate(&mut self, name: Option<&str>) -> Result<(), StorageError> {
            if let Some(name) = name
                && !self.0.scripts.contains_key(name)
            {
                return Err(StorageError::new(ErrorKind::NotFound, "no such script"));
            }
            self.0.active = name.map(str::to_owned);
            Ok(())
        }
        fn delete(&mut self, name: &str) -> Result<(), StorageError> {
            self.0.scripts.remove(name);
            Ok(())
        }
    }

    #[test]
    fn backup_converges_and_reports_refusals() {
        let mut source = Memory(set(
            &[("a", "keep;"), ("bad", "require \"refuse\";"), ("c", "stop;")],
            Some("c"),
        ));
        let mut destination = Memory(set(&[("old", "keep;")], Some("old")));
        let report = sync_scripts(Mode::Backup, &mut source, &mut destination, false).expect("run");
        assert_eq!((report.stored, report.deleted, report.activated), (2, 1, true));
        assert_eq!(report.refused.len(), 1);
        assert_eq!((report.refused[0].name.as_str(), report.refused[0].action), ("bad", "store"));
        assert_eq!(report.exit_code(), 65);
        assert_eq!(destination.0, set(&[("a", "keep;"), ("c", "stop;")], Some("c")));
        // A second run does nothing more than retry the refused script.
        let again = sync_scripts(Mode::Backup, &mut source, &mut destination, false).expect("run");
        assert_eq!(again.planned, [put("bad")]);
    }

    #[test]
    fn two_way_converges_with_its_base() {
        let mut a = Memory(set(&[("a", "keep;"), ("x", "stop;")], Some("a")));
        let mut b = Memory(set(&[("b", "discard;")], None));
        // No base: united, the source's active script kept.
        let (report, base) =
            sync_with_base(Mode::TwoWay, &mut a, &mut b, None, false).expect("first run");
        assert_eq!(a.0, b.0);
        assert_eq!(base.scripts.len(), 3);
        assert_eq!(
            report.summary(),
            "sieve: 2 scripts; 2 stored, 0 deleted, active script set, 0 refused; on the source 1 stored, 0 deleted"
        );
        // A change on each side, a deletion on B, and a script B refuses.
        a.0.scripts.insert("a".into(), b"keep; # A".to_vec());
        a.0.scripts.insert("bad".into(), b"refuse".to_vec());
        b.0.scripts.insert("b".into(), b"discard; # B".to_vec());
        b.0.scripts.remove("x");
        let (report, base) =
            sync_with_base(Mode::TwoWay, &mut a, &mut b, Some(&base), false).expect("second run");
        assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
        assert_eq!(report.refused.len(), 1);
        assert_eq!(
            (report.refused[0].side, report.refused[0].name.as_str()),
            (Side::Destination, "bad")
        );
        assert_eq!(a.0.scripts.keys().collect::<Vec<_>>(), ["a", "b", "bad"]);
        assert_eq!(b.0.scripts.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(a.0.scripts["b"], b"discard; # B");
        assert_eq!(b.0.scripts["a"], b"keep; # A");
        // The refused script is not in the base, so it is neither deleted from A nor lost:
        // the next run tries it again.
        assert!(!base.scripts.contains_key("bad"));
        let (again, _) =
            sync_with_base(Mode::TwoWay, &mut a, &mut b, Some(&base), false).expect("third run");
        assert_eq!(again.planned, [put("bad")]);
        assert_eq!(again.source_changes.map(|c| c.planned), Some(vec![]));
    }

    #[test]
    fn an_unusable_name_is_skipped_and_reported() {
        let mut listed = set(&[("a", "keep;")], None);
        listed.unusable.push(UnusableScript {
            name: "\"a/b\"".into(),
            reason: "contains '/'".into(),
            active: true,
        });
        let mut source = Memory(listed);
        let mut destination = Memory(set(&[("old", "stop;")], Some("old")));
        let report = sync_scripts(Mode::Backup, &mut source, &mut destination, false).expect("run");
        assert_eq!(
            report.skipped,
            [
                "sieve: script \"a/b\" on the source skipped: contains '/' (it is the active script: activation left alone)"
            ]
        );
        assert_eq!(report.exit_code(), 65);
        // The rest is done; the active script, unknown, is left alone, and so is the
        // destination's active script.
        assert_eq!(destination.0, set(&[("a", "keep;"), ("old", "stop;")], Some("old")));
        assert!(report.summary().ends_with("0 refused, 1 skipped"), "{}", report.summary());
    }

    #[test]
    fn differences_name_each_script() {
        let a = set(&[("a", "keep;"), ("b", "stop;")], Some("a"));
        let b = set(&[("a", "keep;\r\n"), ("c", "x")], None);
        assert_eq!(
            differences(&a, &b),
            [
                "sieve: script \"a\" differs (5 bytes, 7 on the destination)",
                "sieve: script \"b\" is missing on the destination",
                "sieve: script \"c\" is only on the destination",
                "sieve: active script \"a\", on the destination none",
            ]
        );
        assert!(differences(&a, &a).is_empty());
    }

    #[test]
    fn dry_run_plans_and_writes_nothing() {
        let mut source = Memory(set(&[("a", "keep;")], Some("a")));
        let mut destination = Memory::default();
        let report = sync_scripts(Mode::Backup, &mut source, &mut destination, true).expect("run");
        assert_eq!(report.planned, [put("a"), activate(Some("a"))]);
        assert_eq!(destination.0, ScriptSet::default());
        assert_eq!(
            report.summary(),
            "sieve: 1 scripts; would store 1, delete 0, would activate \"a\" (dry run)"
        );
    }
}
