//! Decoding and encoding a LIST-sized batch of mailbox names (a large account's folder tree).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn names() -> Vec<String> {
    let stems = ["Archive", "Entwürfe", "Отправленные", "送信済み", "Projects & Ideas", "INBOX"];
    (0..10_000)
        .map(|i| format!("{}/{}/{i}", stems[i % stems.len()], stems[(i / 7) % stems.len()]))
        .collect()
}

fn bench(c: &mut Criterion) {
    let names = names();
    let encoded: Vec<String> = names.iter().map(|n| mutf7::encode(n)).collect();
    let bytes: u64 = encoded.iter().map(|e| e.len() as u64).sum();
    let mut group = c.benchmark_group("mutf7");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("decode_10k_names", |b| {
        b.iter(|| {
            encoded
                .iter()
                .map(|e| mutf7::decode(black_box(e)).map_or(0, |d| d.len()))
                .sum::<usize>()
        });
    });
    group.bench_function("encode_10k_names", |b| {
        b.iter(|| names.iter().map(|n| mutf7::encode(black_box(n)).len()).sum::<usize>());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
