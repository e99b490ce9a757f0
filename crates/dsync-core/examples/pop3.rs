//! Copies a POP3 account's mail into a Maildir, each message keeping its UIDL (so a POP3
//! server on the Maildir lists the same UIDLs in the same order, and clients download
//! nothing twice). Nothing is deleted on the server.
//!
//! `DSYNC_PASSWORD=secret cargo run -p dsync-core --example pop3 -- pop.example.com alice /srv/mail/alice`
//! (implicit TLS on port 995).

use std::path::PathBuf;

use dsync_core::adapters::{maildir::MaildirStorage, pop3::Pop3Storage};
use dsync_core::mailstore::Durability;
use dsync_core::pop3c::{ConnectOptions, Credentials, Security};
use dsync_core::{Mode, NoObserver, SyncOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(host), Some(user), Some(maildir)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: pop3 HOST USER MAILDIR (password in DSYNC_PASSWORD)".into());
    };
    let password = std::env::var("DSYNC_PASSWORD")?;
    let server = ConnectOptions::new(host.as_str(), 995, Security::Tls);
    let mut source = Pop3Storage::connect(&server, &Credentials::new(user.as_str(), password))?;
    let mut destination = MaildirStorage::open_path(PathBuf::from(maildir), Durability::Fsync);
    // `OneWay` adds what is new and keeps what the Maildir has of its own; `Backup` would
    // also expunge there what the server no longer lists.
    let options = SyncOptions::new(Mode::OneWay);
    let report = dsync_core::run(&options, &mut source, &mut destination, &mut NoObserver)?;
    // QUIT releases the server's maildrop lock at once.
    source.quit()?;
    println!("{}", report.totals());
    Ok(())
}
