//! Sieve scripts next to the mail: a user's named scripts and which one is active, made
//! equal (`backup`) or merged in (`sync -1`) from one [`ScriptStore`] to another — a
//! ManageSieve server, Pigeonhole's file store, or anything else the caller adapts.
//!
//! [`plan`] is a pure function from both sides' script sets to the steps; [`sync_scripts`]
//! reads both sides, plans and carries the steps out. A script the destination refuses (a
//! Sieve extension it lacks, a quota) is recorded with the destination's reason in the
//! [`SieveReport`] and the other steps go on: one bad filter never costs the others, nor
//! the mail.

use std::collections::BTreeMap;

use crate::{ErrorKind, Mode, StorageError};

/// A user's scripts: name → bytes, and the active script's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptSet {
    /// Every script, by name, with its exact bytes.
    pub scripts: BTreeMap<String, Vec<u8>>,
    /// The active script (one of `scripts`), if any.
    pub active: Option<String>,
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

/// The steps that bring `destination` to `source` in `mode`: puts first (so that the
/// script to activate exists), then the activation (so that a script to delete is no longer
/// active), then deletions.
///
/// * [`Mode::Backup`]: the destination ends equal — same scripts, same bytes, same active
///   script (or none), extra scripts removed.
/// * [`Mode::OneWay`]: new and changed scripts are stored and the source's active script
///   is activated; nothing is deleted or deactivated.
/// * [`Mode::TwoWay`] has no plan yet (it needs the last change of each script on both
///   sides), and [`Mode::Import`] copies messages only: errors of kind
///   [`ErrorKind::Usage`].
pub fn plan(
    mode: Mode,
    source: &ScriptSet,
    destination: &ScriptSet,
) -> Result<Vec<SieveStep>, StorageError> {
    match mode {
        Mode::Backup | Mode::OneWay => {}
        Mode::TwoWay => {
            return Err(StorageError::new(
                ErrorKind::Usage,
                "Sieve scripts are migrated by backup and sync -1; two-way sync of scripts is not supported yet",
            ));
        }
        Mode::Import => {
            return Err(StorageError::new(
                ErrorKind::Usage,
                "import copies messages only; migrate Sieve scripts with backup or sync -1",
            ));
        }
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

/// A script the destination did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedScript {
    /// The script's name.
    pub name: String,
    /// What was refused: `store`, `activate` or `delete`.
    pub action: &'static str,
    /// The destination's reason (for a refused script, its validator's messages).
    pub reason: String,
}

/// What a Sieve run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveReport {
    /// Nothing was written: [`planned`](Self::planned) is what a real run would do.
    pub dry_run: bool,
    /// Scripts on the source.
    pub source_scripts: usize,
    /// Scripts stored (new or changed).
    pub stored: usize,
    /// Scripts deleted.
    pub deleted: usize,
    /// True when the active script was changed.
    pub activated: bool,
    /// The steps planned (all of them, also in a dry run).
    pub planned: Vec<SieveStep>,
    /// Steps the destination refused, each with its reason.
    pub refused: Vec<RefusedScript>,
}

impl SieveReport {
    /// One line for the run's summary: `sieve: 3 scripts; 2 stored, 1 deleted, active
    /// script set, 0 refused`, or in a dry run what would be done.
    pub fn summary(&self) -> String {
        if self.dry_run {
            let (mut stores, mut deletes, mut activation) = (0, 0, None);
            for step in &self.planned {
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
            return format!(
                "sieve: {} scripts; would store {stores}, delete {deletes}{activation} (dry run)",
                self.source_scripts
            );
        }
        format!(
            "sieve: {} scripts; {} stored, {} deleted{}, {} refused",
            self.source_scripts,
            self.stored,
            self.deleted,
            if self.activated { ", active script set" } else { "" },
            self.refused.len()
        )
    }

    /// 65 (data error) when a script was refused, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.refused.is_empty() { 0 } else { ErrorKind::InvalidData.exit_code() }
    }
}

/// True for an error about one script (the destination refused it: it does not compile
/// there, a quota, a name it cannot take) rather than about the store: the run goes on.
fn is_per_script(error: &StorageError) -> bool {
    matches!(error.kind(), ErrorKind::InvalidData | ErrorKind::NoSpace | ErrorKind::NotFound)
}

/// Reads both sides, plans for `mode` and, unless `dry_run`, carries the plan out. An
/// error about the store (connection, permission) stops the run and is returned; a
/// refused script is recorded in the report and the rest goes on.
pub fn sync_scripts(
    mode: Mode,
    source: &mut dyn ScriptStore,
    destination: &mut dyn ScriptStore,
    dry_run: bool,
) -> Result<SieveReport, StorageError> {
    let wanted = source.read_all()?;
    let present = destination.read_all()?;
    let steps = plan(mode, &wanted, &present)?;
    let mut report = SieveReport {
        dry_run,
        source_scripts: wanted.scripts.len(),
        planned: steps.clone(),
        ..SieveReport::default()
    };
    if dry_run {
        return Ok(report);
    }
    let refuse = |report: &mut SieveReport, name: &str, action, error: StorageError| {
        if is_per_script(&error) {
            report.refused.push(RefusedScript {
                name: name.to_owned(),
                action,
                // Server texts end with a line end (a literal's last line).
                reason: error.to_string().trim_end().to_owned(),
            });
            Ok(())
        } else {
            Err(error)
        }
    };
    for step in steps {
        match step {
            SieveStep::Put(name) => {
                let bytes = wanted.scripts.get(&name).map_or(&[][..], Vec::as_slice);
                match destination.put(&name, bytes) {
                    Ok(()) => report.stored += 1,
                    Err(error) => refuse(&mut report, &name, "store", error)?,
                }
            }
            SieveStep::Activate(name) => {
                // A refused script that was not there before cannot be activated: that is
                // already reported.
                if let Some(name) = &name
                    && report.refused.iter().any(|r| &r.name == name)
                    && !present.scripts.contains_key(name)
                {
                    continue;
                }
                match destination.activate(name.as_deref()) {
                    Ok(()) => report.activated = true,
                    Err(error) => {
                        refuse(&mut report, name.as_deref().unwrap_or(""), "activate", error)?;
                    }
                }
            }
            SieveStep::Delete(name) => match destination.delete(&name) {
                Ok(()) => report.deleted += 1,
                Err(error) => refuse(&mut report, &name, "delete", error)?,
            },
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(scripts: &[(&str, &str)], active: Option<&str>) -> ScriptSet {
        ScriptSet {
            scripts: scripts
                .iter()
                .map(|(n, b)| ((*n).to_owned(), b.as_bytes().to_vec()))
                .collect(),
            active: active.map(str::to_owned),
        }
    }

    fn put(name: &str) -> SieveStep {
        SieveStep::Put(name.into())
    }
    fn delete(name: &str) -> SieveStep {
        SieveStep::Delete(name.into())
    }
    fn activate(name: Option<&str>) -> SieveStep {
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
