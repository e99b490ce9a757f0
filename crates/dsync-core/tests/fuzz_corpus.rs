//! Replays this crate's fuzz corpora (`fuzz/corpus/<target>/`) on stable, so every input a
//! fuzzer ever found stays fixed.

fn replay(target: &str, run: fn(&[u8])) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        run(&data);
        count += 1;
    }
    assert!(count >= 5, "corpus at {} looks empty", dir.display());
}

#[test]
fn replay_message_headers_corpus() {
    replay("message_headers", dsync_core::fuzzing::message_headers);
}

#[test]
fn replay_state_files_corpus() {
    replay("state_files", dsync_core::fuzzing::state_files);
}

#[test]
fn replay_search_query_corpus() {
    replay("search_query", dsync_core::fuzzing::search_query);
}
