//! The migration benchmark end to end on a tiny corpus, so `cargo test --workspace` keeps
//! the harness working: every tool runs (mbsync when installed), every destination is
//! checked, with and without the latency proxy. Needs what the other Dovecot tests need
//! (root, Dovecot), and the `dsync` binary that a workspace test run builds.

use std::process::Command;

#[test]
fn migration_harness_runs_on_a_tiny_corpus() {
    let dsync = testkit::cargo_target_dir().join("dsync");
    if !dsync.exists() {
        eprintln!("skipped: {} is not built (run `cargo test --workspace`)", dsync.display());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("RESULTS.md");
    let output = Command::new(env!("CARGO_BIN_EXE_migration"))
        .args(["--messages", "40", "--runs", "1", "--warmup", "0", "--latency-ms", "0", "5"])
        .args(["--folders", "25"])
        .arg("--dsync")
        .arg(&dsync)
        .arg("--work-dir")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run the migration benchmark");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "migration failed:\n{stderr}");
    let results = std::fs::read_to_string(&out).expect("results written");
    assert!(!results.contains("failed"), "{results}\n{stderr}");
    for row in [
        "dsync backup --no-fsync — full",
        "dsync backup --no-fsync — no-op re-run",
        "doveadm backup -R imapc: (mail_fsync=never) — full",
        "raw FETCH + write files — full",
        "Loopback + 5 ms each way",
        "Many folders: 25 subscribed folders",
        "dsync backup --no-fsync, Maildir → Maildir — full",
    ] {
        assert!(results.contains(row), "no {row:?} in\n{results}");
    }
    // Every full run of dsync and doveadm (each storage, each latency, many folders) was
    // verified against the source: folders, UIDVALIDITY and UIDs.
    let full_runs: Vec<&str> = results
        .lines()
        .filter(|line| line.starts_with("| dsync") || line.starts_with("| doveadm"))
        .filter(|line| line.contains("— full"))
        .collect();
    assert!(full_runs.len() >= 16, "{results}");
    for row in full_runs {
        assert!(row.contains("✓ folders, UIDVALIDITY, UIDs"), "not verified: {row}\n{results}");
    }
}

#[test]
fn imap_to_imap_rows_run_and_are_checked_through_the_destination() {
    let dsync = testkit::cargo_target_dir().join("dsync");
    if !dsync.exists() {
        eprintln!("skipped: {} is not built (run `cargo test --workspace`)", dsync.display());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("RESULTS-imap.md");
    // No imapsync here: its row is skipped with a message.
    let output = Command::new(env!("CARGO_BIN_EXE_migration"))
        .args(["--imap-only", "--messages", "40", "--runs", "1", "--warmup", "0"])
        .arg("--dsync")
        .arg(&dsync)
        .arg("--work-dir")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run the migration benchmark");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "migration failed:\n{stderr}");
    assert!(stderr.contains("the imapsync row is skipped"), "{stderr}");
    let results = std::fs::read_to_string(&out).expect("results written");
    let row = |name: &str| {
        results.lines().find(|l| l.starts_with(&format!("| {name}"))).unwrap_or_default()
    };
    assert!(row("dsync backup imap:// → imap:// — full").contains("✓ nothing lost"), "{results}");
    assert!(row("dsync backup imap:// → imap:// — no-op re-run").contains('|'), "{results}");
    if std::path::Path::new("/usr/bin/mbsync").exists() {
        // mbsync's IMAP channel carries no subscriptions: the check must see that.
        let mbsync = row("mbsync IMAP → IMAP channel — full");
        assert!(mbsync.contains("subscriptions lost"), "{results}");
    }
}
