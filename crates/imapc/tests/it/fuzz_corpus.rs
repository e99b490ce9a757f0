//! Replays the fuzz corpus (`fuzz/corpus/imap_response/`) on stable, so every input a
//! fuzzer ever found stays fixed.

#[test]
fn replay_imap_response_corpus() {
    testkit::replay_corpus("imap_response", 20, imapc::fuzzing::decode);
}
