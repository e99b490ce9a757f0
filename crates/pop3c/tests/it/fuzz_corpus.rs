//! Replays the fuzz corpus (`fuzz/corpus/pop3_response/`) on stable, so every input a
//! fuzzer ever found stays fixed.

#[test]
fn replay_pop3_response_corpus() {
    testkit::replay_corpus("pop3_response", 20, pop3c::fuzzing::decode);
}
