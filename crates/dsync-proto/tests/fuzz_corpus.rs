//! Replays the fuzz corpus (`fuzz/corpus/dsync_decode/`) on stable, so every input a
//! fuzzer ever found stays fixed.

#[test]
fn replay_dsync_decode_corpus() {
    testkit::replay_corpus("dsync_decode", 20, dsync_proto::fuzzing::decode);
}
