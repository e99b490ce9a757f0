//! Replays the fuzz corpus (`fuzz/corpus/mutf7_decode/`) on stable, so every input a fuzzer
//! ever found stays fixed.

#[test]
fn replay_mutf7_decode_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mutf7_decode");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        mutf7::fuzz_decode(&data);
        count += 1;
    }
    assert!(count >= 5, "corpus at {} looks empty", dir.display());
}
