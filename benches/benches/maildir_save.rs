//! Messages saved per second into a Maildir, with per-message fsync (Dovecot's default
//! durability) and with fsyncs deferred to one sync at the end (`mail_fsync=never`-style).
//! Each iteration saves a batch of 4 KiB CRLF messages with forced UIDs and commits it.
//! The deferred run leaves out the final `sync_to_disk` (a `syncfs` of the whole file
//! system, paid once per migration, not per message).

use std::io::Write;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mailstore::{Durability, Flags, Location, MailboxName, Maildir, Options, SaveOptions};

const BATCH: u32 = 50;

fn message(index: u32) -> Vec<u8> {
    let mut text = format!("Subject: bench {index}\r\nMessage-ID: <{index}@bench>\r\n\r\n");
    while text.len() < 4096 {
        text.push_str("The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    text.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("maildir_save");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.sample_size(10);
    for (label, durability) in [("fsync", Durability::Fsync), ("deferred", Durability::Deferred)] {
        // Under target/: on these machines /tmp is markedly slower for file creation.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let options = Options::default().with_durability(durability);
        let maildir = Maildir::with_options(Location::maildir(dir.path().join("Maildir")), options);
        let mut mailbox =
            maildir.create_mailbox(&MailboxName::inbox(), Some(1), None).expect("create");
        let bodies: Vec<Vec<u8>> = (0..BATCH).map(message).collect();
        let mut next_uid = 1;
        group.bench_function(label, |b| {
            b.iter_batched(
                || (),
                |()| {
                    for body in &bodies {
                        let mut pending = mailbox.begin_save().expect("begin");
                        pending.write_all(body).expect("write");
                        let options =
                            SaveOptions::default().with_uid(next_uid).with_flags(Flags::SEEN);
                        mailbox.save(pending, options).expect("save");
                        next_uid += 1;
                    }
                    mailbox.commit().expect("commit");
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
