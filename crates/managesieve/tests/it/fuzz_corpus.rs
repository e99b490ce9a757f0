//! Replays the fuzz corpus (`fuzz/corpus/managesieve_response/`) on stable, so every input
//! a fuzzer ever found stays fixed.

#[test]
fn replay_managesieve_response_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/managesieve_response");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        managesieve::fuzzing::decode(&data);
        count += 1;
    }
    assert!(count >= 20, "corpus at {} looks empty", dir.display());
}
