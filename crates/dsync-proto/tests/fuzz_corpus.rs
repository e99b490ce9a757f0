//! Replays the fuzz corpus (`fuzz/corpus/dsync_decode/`) on stable, so every input a
//! fuzzer ever found stays fixed.

#[test]
fn replay_dsync_decode_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dsync_decode");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        dsync_proto::fuzzing::decode(&data);
        count += 1;
    }
    assert!(count >= 20, "corpus at {} looks empty", dir.display());
}
