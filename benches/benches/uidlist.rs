//! `dovecot-uidlist` parsing: what opening a big Maildir folder costs before any message is
//! touched. Files shaped as Dovecot writes them after a migration: plain records, and
//! records with `G` (GUID), `P`/`O` (POP3 UIDL and order) extension fields.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn uidlist(records: u32, extensions: bool) -> Vec<u8> {
    let mut text = String::from("3 V1700000000 N1 G0123456789abcdef0123456789abcdef\n");
    for uid in 1..=records {
        let _ = write!(text, "{uid} ");
        if extensions {
            let _ = write!(text, "G{uid:032x} P{uid:08x} O{uid} ");
        }
        let _ = writeln!(
            text,
            ":{}.M{}P{}.bench,S={},W={}",
            1_700_000_000 + uid / 10,
            uid * 7 % 1_000_000,
            4242,
            2000 + uid % 5000,
            2040 + uid % 5000
        );
    }
    text.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("uidlist_parse");
    group.sample_size(20);
    for (name, data, records) in [
        ("10k_records", uidlist(10_000, false), 10_000),
        ("100k_records", uidlist(100_000, false), 100_000),
        ("100k_records_guid_pop3", uidlist(100_000, true), 100_000),
    ] {
        assert_eq!(mailstore::fuzzing::uidlist_parse(data.clone()), records);
        group.throughput(Throughput::Bytes(data.len() as u64));
        // The parse takes the file's bytes as read (and keeps them): the copy handed to each
        // iteration is made outside the timing.
        group.bench_function(name, |b| {
            b.iter_batched(
                || data.clone(),
                |data| mailstore::fuzzing::uidlist_parse(black_box(data)),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
