//! Benchmarks for dsync-rs. The criterion micro-benchmarks live in `benches/` (run them
//! with `cargo bench -p dsync-benches`); the issue 9 migration benchmark, which times
//! `dsync backup` against `doveadm backup -R imapc:`, `mbsync` and a raw FETCH on a private
//! Dovecot, is the `migration` binary (`cargo run --release -p dsync-benches --bin
//! migration -- --help`). See `README.md` and `RESULTS.md` in this directory.
