//! [`replay_corpus`]: every input a fuzzer kept, run again on stable in `cargo test`.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

/// A crate's fuzzing entry point: what its fuzz target calls with each input.
pub type FuzzEntry = fn(&[u8]);

/// The workspace's fuzz corpora, one folder a target (`fuzz/corpus/<target>/`).
fn corpus_root() -> PathBuf {
    // This crate is crates/testkit/ of the workspace.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    workspace.expect("testkit sits two folders below the workspace root").join("fuzz/corpus")
}

/// Runs `run` on every file of the corpus of fuzz target `target`, so every input a fuzzer
/// ever found stays fixed without a nightly toolchain.
///
/// `run` is the crate's fuzzing entry point (the one the fuzz target calls); it must not
/// panic. `at_least` guards against a corpus gone missing or emptied by a bad move: fewer
/// files fail the test.
///
/// # Panics
///
/// When the corpus cannot be read, has fewer than `at_least` files, or `run` panics on one
/// of them (the file is named on stderr before the panic goes on).
pub fn replay_corpus(target: &str, at_least: usize, run: FuzzEntry) {
    let dir = corpus_root().join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus directory {}: {error}", dir.display()))
    {
        let path = entry.expect("corpus directory entry").path();
        let data = std::fs::read(&path)
            .unwrap_or_else(|error| panic!("corpus file {}: {error}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
            eprintln!("corpus file {} panicked", path.display());
            resume_unwind(panic);
        }
        count += 1;
    }
    assert!(
        count >= at_least,
        "corpus at {} has {count} files, fewer than {at_least}: moved or emptied?",
        dir.display()
    );
}
