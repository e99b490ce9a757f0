//! Replays every fuzz corpus of this crate (`fuzz/corpus/<target>/`) on stable, so every
//! input a fuzzer ever found stays fixed.
#![allow(clippy::unwrap_used)]

fn replay(target: &str, check: fn(&[u8])) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        check(&data);
        count += 1;
    }
    assert!(count >= 1, "corpus at {} looks empty", dir.display());
}

#[test]
fn replay_maildir_uidlist() {
    replay("maildir_uidlist", mailstore::fuzzing::uidlist);
}

#[test]
fn replay_maildir_filename() {
    replay("maildir_filename", mailstore::fuzzing::filename);
}

#[test]
fn replay_maildir_keywords() {
    replay("maildir_keywords", mailstore::fuzzing::keywords);
}

#[test]
fn replay_maildir_subscriptions() {
    replay("maildir_subscriptions", mailstore::fuzzing::subscriptions);
}

#[test]
fn replay_maildir_journal() {
    replay("maildir_journal", mailstore::fuzzing::journal);
}

#[test]
fn replay_mail_location() {
    replay("mail_location", mailstore::fuzzing::location);
}

#[test]
fn replay_maildir_folder_name() {
    replay("maildir_folder_name", mailstore::fuzzing::folder_name);
}

#[test]
fn replay_sdbox_index_log() {
    replay("sdbox_index_log", mailstore::fuzzing::index_log);
}

#[test]
fn replay_sdbox_index_snapshot() {
    replay("sdbox_index_snapshot", mailstore::fuzzing::index_snapshot);
}

#[test]
fn replay_sdbox_dbox_file() {
    replay("sdbox_dbox_file", mailstore::fuzzing::dbox_file);
}
