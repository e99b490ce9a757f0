//! Replays this crate's fuzz corpora (`fuzz/corpus/<target>/`) on stable, so every input a
//! fuzzer ever found stays fixed.

use dsync_core::fuzzing;
use testkit::FuzzEntry;

/// Each fuzz target of this crate and its entry point.
const TARGETS: [(&str, FuzzEntry); 4] = [
    ("message_headers", fuzzing::message_headers),
    ("state_files", fuzzing::state_files),
    ("search_query", fuzzing::search_query),
    ("maildir_listing_cache", fuzzing::maildir_listing_cache),
];

#[test]
fn replay_every_corpus() {
    for (target, run) in TARGETS {
        testkit::replay_corpus(target, 5, run);
    }
}
