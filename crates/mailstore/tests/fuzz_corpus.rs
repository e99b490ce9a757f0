//! Replays every fuzz corpus of this crate (`fuzz/corpus/<target>/`) on stable, so every
//! input a fuzzer ever found stays fixed.

use testkit::replay_corpus;

#[test]
fn replay_maildir_uidlist() {
    replay_corpus("maildir_uidlist", 1, mailstore::fuzzing::uidlist);
}

#[test]
fn replay_maildir_filename() {
    replay_corpus("maildir_filename", 1, mailstore::fuzzing::filename);
}

#[test]
fn replay_maildir_keywords() {
    replay_corpus("maildir_keywords", 1, mailstore::fuzzing::keywords);
}

#[test]
fn replay_maildir_subscriptions() {
    replay_corpus("maildir_subscriptions", 1, mailstore::fuzzing::subscriptions);
}

#[test]
fn replay_maildir_journal() {
    replay_corpus("maildir_journal", 1, mailstore::fuzzing::journal);
}

#[test]
fn replay_mail_location() {
    replay_corpus("mail_location", 1, mailstore::fuzzing::location);
}

#[test]
fn replay_maildir_folder_name() {
    replay_corpus("maildir_folder_name", 1, mailstore::fuzzing::folder_name);
}
