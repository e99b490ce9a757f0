//! The sync state file: what reading and writing it costs a re-run of a big folder
//! (issue 23 item 1). A state shaped as a backup of `INBOX` (3 messages) and `Bulk` (N
//! messages, most seen, some answered or flagged, a few with keywords) leaves it.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsync_core::state::{MailboxState, MergeBase, StateFile, SyncState};
use dsync_core::{Flags, MailboxGuid, MailboxName, Uid};

fn flags(uid: u32) -> Flags {
    let names: &[&str] = match uid % 10 {
        0 => &[],
        1 => &["\\Seen", "\\Answered"],
        2 => &["\\Seen", "\\Flagged", "$Label1"],
        _ => &["\\Seen"],
    };
    Flags::from_imap_names(names.iter().copied())
}

fn mailbox(messages: u32) -> MailboxState {
    let flags: BTreeMap<Uid, Flags> =
        (1..=messages).filter_map(|uid| Some((Uid::new(uid)?, flags(uid)))).collect();
    MailboxState {
        base: MergeBase {
            uid_validity: 1_700_000_000,
            last_common_uid: messages,
            flags: flags.into(),
        },
        source_token: Some(format!("1700000000/{}/{messages}/{}", messages + 1, messages + 7)),
        destination_token: Some(String::from("1700000000:12345:987654")),
        source_guid: MailboxGuid::from_hex("58049b2934ff036bb01c000083ecc375"),
        destination_guid: MailboxGuid::from_hex("68049b2934ff036bb01c000083ecc375"),
        rebuild: None,
    }
}

fn state(messages: u32) -> SyncState {
    let mut state =
        SyncState { source: Some("imap://alice@127.0.0.1:143".into()), ..SyncState::default() };
    state.mailboxes.insert(MailboxName::inbox(), mailbox(3));
    state.mailboxes.insert(MailboxName::new(["Bulk"]).expect("valid"), mailbox(messages));
    state
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("state");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, messages) in [("100k", 100_000), ("1m", 1_000_000)] {
        let state = state(messages);
        let text = state.encode();
        assert_eq!(SyncState::decode(&text).as_ref(), Ok(&state));
        group.throughput(Throughput::Elements(u64::from(messages)));
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| SyncState::decode(black_box(&text)));
        });
        group.bench_function(format!("encode_{name}"), |b| b.iter(|| black_box(&state).encode()));
        let file = StateFile::new(dir.path().join(name), "imap://alice@127.0.0.1:143");
        file.save(&state).expect("save");
        group.bench_function(format!("load_{name}"), |b| b.iter(|| file.load().expect("load")));
        group.bench_function(format!("save_{name}"), |b| b.iter(|| file.save(black_box(&state))));
        // A re-run that changed nothing saves what it loaded: message lines copied.
        let loaded = file.load().expect("load");
        let copy = StateFile::new(dir.path().join(format!("{name}-copy")), file.source());
        group.bench_function(format!("save_loaded_{name}"), |b| {
            b.iter(|| copy.save(black_box(&loaded)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
