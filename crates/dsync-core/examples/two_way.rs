//! Two-way sync of two Maildirs (`doveadm sync`): changes on either side — new mail,
//! flags, expunges, new and deleted folders — reach the other; the state file tells an
//! expunge on one side from new mail on the other.
//!
//! `cargo run -p dsync-core --example two_way -- ~/Maildir /mnt/laptop/Maildir`

use std::path::PathBuf;

use dsync_core::adapters::maildir::MaildirStorage;
use dsync_core::mailstore::Durability;
use dsync_core::state::StateFile;
use dsync_core::{Mode, NoObserver, SyncOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(a_path), Some(b_path)) = (args.next(), args.next()) else {
        return Err("usage: two_way MAILDIR_A MAILDIR_B".into());
    };
    let mut a = MaildirStorage::open_path(&a_path, Durability::Fsync);
    let mut b = MaildirStorage::open_path(&b_path, Durability::Fsync);
    // The state belongs to the pair: kept in B's root, tagged with A.
    let file = StateFile::new(b_path.join("dsync-rs-example.state"), a_path.display().to_string());
    let state = file.load().unwrap_or_else(|_| file.fresh());
    let options = SyncOptions::new(Mode::TwoWay).state(Some(state));
    let report = dsync_core::run_two_way(&options, &mut a, &mut b, &mut NoObserver)?;
    if let Some(state) = &report.state {
        file.save(state)?;
    }
    println!("{}", report.totals());
    Ok(())
}
