//! `--parallel-folders N` from a `maildir:` source: each worker lists its folders as the
//! run's first connection does, through the source's streamed listing, so that the folder
//! is never held whole and its listing is kept beside the state for the next run.

use std::fs;
use std::path::Path;

use mailstore::{Location, Maildir};

use super::maildir_source::save;
use super::{output_within_a_minute, text};

/// The listings kept beside the state in `destination` (`dsync-rs-state.listing.*`).
fn kept_listings(destination: &Path) -> usize {
    fs::read_dir(destination)
        .expect("destination")
        .filter(|entry| {
            entry.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains("state.listing"))
        })
        .count()
}

/// Every folder a worker copies is listed through the source's own listing: one kept
/// listing a folder, as in a run without workers. (A worker's source that answered the
/// listing with its whole contents instead kept none, and held every folder whole.)
#[test]
fn parallel_folder_workers_list_a_maildir_source_as_the_first_connection_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("source");
    let maildir = Maildir::open(Location::maildir(&root));
    let folders = ["INBOX", "Archive", "Sent", "Lists", "Lists/Rust"];
    for (n, folder) in folders.iter().enumerate() {
        for m in 0..3 {
            save(&maildir, folder, &format!("Subject: {folder} {m}\r\n\r\nbody {n} {m}\r\n"));
        }
    }
    let source = format!("maildir:{}", root.display());
    for parallel in ["1", "3"] {
        let destination = dir.path().join(format!("destination-{parallel}"));
        let target = format!("maildir:{}", destination.display());
        let output =
            output_within_a_minute(std::process::Command::new(env!("CARGO_BIN_EXE_dsync")).args([
                "backup",
                "--parallel-folders",
                parallel,
                &source,
                &target,
            ]));
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(
            kept_listings(&destination),
            folders.len(),
            "--parallel-folders {parallel}: one listing kept a folder"
        );
    }
}
