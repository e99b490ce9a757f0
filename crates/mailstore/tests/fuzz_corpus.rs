//! Replays every fuzz corpus of this crate (`fuzz/corpus/<target>/`) on stable, so every
//! input a fuzzer ever found stays fixed.

use mailstore::fuzzing;
use testkit::FuzzEntry;

/// Each fuzz target of this crate and its entry point.
const TARGETS: [(&str, FuzzEntry); 11] = [
    ("maildir_uidlist", fuzzing::uidlist),
    ("maildir_filename", fuzzing::filename),
    ("maildir_keywords", fuzzing::keywords),
    ("maildir_subscriptions", fuzzing::subscriptions),
    ("maildir_journal", fuzzing::journal),
    ("mail_location", fuzzing::location),
    ("maildir_folder_name", fuzzing::folder_name),
    ("sdbox_index_log", fuzzing::index_log),
    ("sdbox_index_snapshot", fuzzing::index_snapshot),
    ("sdbox_dbox_file", fuzzing::dbox_file),
    ("sdbox_clean_stamp", fuzzing::clean_stamp),
];

#[test]
fn replay_every_corpus() {
    for (target, run) in TARGETS {
        testkit::replay_corpus(target, 1, run);
    }
}
