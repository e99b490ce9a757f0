//! Replays this crate's fuzz corpora (`fuzz/corpus/<target>/`) on stable, so every input a
//! fuzzer ever found stays fixed.

use testkit::replay_corpus;

#[test]
fn replay_message_headers_corpus() {
    replay_corpus("message_headers", 5, dsync_core::fuzzing::message_headers);
}

#[test]
fn replay_state_files_corpus() {
    replay_corpus("state_files", 5, dsync_core::fuzzing::state_files);
}

#[test]
fn replay_search_query_corpus() {
    replay_corpus("search_query", 5, dsync_core::fuzzing::search_query);
}
