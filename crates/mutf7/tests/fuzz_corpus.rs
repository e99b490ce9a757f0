//! Replays the fuzz corpus (`fuzz/corpus/mutf7_decode/`) on stable, so every input a fuzzer
//! ever found stays fixed.

#[test]
fn replay_mutf7_decode_corpus() {
    testkit::replay_corpus("mutf7_decode", 5, mutf7::fuzz_decode);
}
