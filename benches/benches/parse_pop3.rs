//! The POP3 decoder on what a migration reads: a `UIDL` + `LIST` listing of a 100 000
//! message mailbox (framed, unstuffed and parsed line by line), and 8 MiB of message
//! bodies with dot-stuffed lines (framed and unstuffed in chunks).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pop3c::proto::{
    Decoder, Event, Limits, ResponseKind, parse_scan_listing, parse_uidl_listing, write_dot_stuffed,
};
use std::hint::black_box;

fn listings() -> Vec<u8> {
    let mut uidl = Vec::new();
    let mut list = Vec::new();
    for n in 1..=100_000u32 {
        uidl.extend(format!("{n} {n:08x}641c7a9b\r\n").bytes());
        list.extend(format!("{n} {}\r\n", 1000 + n * 7).bytes());
    }
    let mut wire = b"+OK\r\n".to_vec();
    write_dot_stuffed(&uidl, &mut wire);
    wire.extend_from_slice(b"+OK 100000 messages\r\n");
    write_dot_stuffed(&list, &mut wire);
    wire
}

fn bodies() -> Vec<u8> {
    let mut wire = Vec::new();
    for message in 0..32 {
        let mut body = format!("Subject: message {message}\r\n\r\n").into_bytes();
        let mut line = 0u32;
        while body.len() < 256 * 1024 {
            if line.is_multiple_of(20) {
                body.push(b'.');
            }
            body.extend(
                format!("{line:06} The quick brown fox jumps over the lazy dog. 0123456789\r\n")
                    .bytes(),
            );
            line += 1;
        }
        wire.extend_from_slice(b"+OK\r\n");
        write_dot_stuffed(&body, &mut wire);
    }
    wire
}

fn decode(wire: &[u8], kinds: &[ResponseKind], parse_lines: bool) -> usize {
    let mut decoder = Decoder::new(Limits::default());
    for &kind in kinds {
        decoder.expect(kind);
    }
    let mut count = 0;
    // Fed in 16 KiB pieces, as socket reads arrive.
    for piece in wire.chunks(16 * 1024) {
        decoder.feed(piece);
        while let Ok(Some(event)) = decoder.next_event_max(64 * 1024) {
            count += match event {
                Event::Line(line) if parse_lines => usize::from(
                    parse_uidl_listing(line).is_ok() || parse_scan_listing(line).is_ok(),
                ),
                Event::Data(data) => data.len(),
                _ => 1,
            };
        }
    }
    count
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pop3");
    let listing = listings();
    group.throughput(Throughput::Bytes(listing.len() as u64));
    group.bench_function("uidl_and_list_100k_messages", |b| {
        b.iter(|| decode(black_box(&listing), &[ResponseKind::Listing; 2], true));
    });
    let bodies = bodies();
    group.throughput(Throughput::Bytes(bodies.len() as u64));
    group.bench_function("retr_32_dotted_messages_8mib", |b| {
        b.iter(|| decode(black_box(&bodies), &[ResponseKind::Body; 32], false));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
