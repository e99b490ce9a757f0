//! The IMAP response decoder on realistic FETCH streams, fed in 64 KiB reads as from a
//! socket: many small messages with bodies, a few huge ones, and a metadata-only listing.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imapc::proto::{Event, Limits, ResponseDecoder};
use std::hint::black_box;

fn body(size: usize, seed: usize) -> Vec<u8> {
    let mut out = format!(
        "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: a{seed}@example.com\r\nSubject: message {seed}\r\nMessage-ID: <{seed}@example.com>\r\n\r\n"
    )
    .into_bytes();
    let line =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    while out.len() < size {
        out.extend_from_slice(line);
    }
    out.truncate(size);
    out
}

fn fetch_stream(count: usize, size: usize) -> Vec<u8> {
    let mut stream = Vec::with_capacity(count * (size + 160));
    for n in 1..=count {
        let body = body(size, n);
        stream.extend_from_slice(
            format!(
                "* {n} FETCH (UID {} FLAGS (\\Seen $Label1) INTERNALDATE \" 7-Jul-2024 10:00:00 +0200\" RFC822.SIZE {} BODY[] {{{}}}\r\n",
                n * 3,
                body.len(),
                body.len()
            )
            .as_bytes(),
        );
        stream.extend_from_slice(&body);
        stream.extend_from_slice(b")\r\n");
    }
    stream.extend_from_slice(b"A1 OK Fetch completed.\r\n");
    stream
}

fn metadata_stream(count: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for n in 1..=count {
        stream.extend_from_slice(
            format!("* {n} FETCH (UID {n} FLAGS (\\Seen \\Answered $Forwarded) INTERNALDATE \"08-Jul-2024 11:30:00 +0000\" RFC822.SIZE {})\r\n", 1000 + n)
                .as_bytes(),
        );
    }
    stream.extend_from_slice(b"A1 OK Fetch completed.\r\n");
    stream
}

/// Decodes `stream` as a client would: 64 KiB reads into the decoder's buffer.
fn decode(stream: &[u8]) -> (usize, u64) {
    let mut decoder = ResponseDecoder::new(Limits::default());
    let mut responses = 0;
    let mut body_bytes = 0u64;
    let mut position = 0;
    loop {
        loop {
            match decoder.next_event() {
                Ok(Some(Event::Response(response))) => {
                    black_box(&response);
                    responses += 1;
                }
                Ok(Some(Event::BodyData(data))) => body_bytes += black_box(data).len() as u64,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => panic!("{error}"),
            }
        }
        if position == stream.len() {
            return (responses, body_bytes);
        }
        let spare = decoder.spare_mut();
        let n = spare.len().min(64 * 1024).min(stream.len() - position);
        spare[..n].copy_from_slice(&stream[position..position + n]);
        decoder.filled(n);
        position += n;
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("fetch_10k_messages_of_4k", fetch_stream(10_000, 4 * 1024)),
        ("fetch_2k_messages_of_64k", fetch_stream(2_000, 64 * 1024)),
        ("fetch_4_messages_of_16m", fetch_stream(4, 16 << 20)),
        ("metadata_100k_messages", metadata_stream(100_000)),
    ];
    let mut group = c.benchmark_group("imap_decode");
    group.sample_size(10);
    for (name, stream) in &cases {
        assert!(decode(stream).0 > 1);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(*name, |b| b.iter(|| decode(black_box(stream))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
