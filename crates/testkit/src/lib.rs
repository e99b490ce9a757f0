//! Test harness for dsync-rs: real Dovecot 2.3 instances on 127.0.0.1 and an independent
//! IMAP oracle.
//!
//! * [`Dovecot`] starts a private Dovecot (IMAP, IMAPS, STARTTLS, POP3, POP3S, master
//!   user) with config, state and mail in a temp dir, on free loopback ports, and stops it
//!   by pid when dropped. Its certificate is signed by a private test CA, or self-signed
//!   ([`self_signed_certificate`]); TLS can be switched off, and extra listeners on
//!   127.0.0.2 make Dovecot treat connections as not secured (LOGINDISABLED). It installs nothing: when Dovecot is missing it fails with a
//!   message saying how to install it.
//! * [`RawImap`] is a deliberately small, separate IMAP client used to *populate* sources and
//!   to *check* results. It shares no code with `imapc`, so a bug in our client cannot hide
//!   itself in the tests.
//! * [`RawPop3`] is the same for POP3: a small, separate client that checks what `pop3c`
//!   reads.
//! * [`AccountSnapshot`] captures everything a mail client caches about an account, read
//!   through Dovecot's IMAP server, and prints readable differences.
//! * [`FakeServer`] plays a script of raw bytes on one loopback connection, for hostile or
//!   malformed server behaviour that Dovecot cannot produce.
//! * [`CuttingProxy`] sits in front of a real server and cuts the first connection after
//!   a chosen number of bytes: a connection lost mid-transfer, on demand.
//! * [`FakeImap`] answers a sync's IMAP commands from a model account, for mailbox names
//!   and message data Dovecot cannot be made to serve.
//! * [`FakeStore`] is a writable account for what a destination server says that Dovecot
//!   cannot: `[THROTTLED]`/`[UNAVAILABLE]` at a chosen APPEND, and Gmail's `X-GM-EXT-1`.
//! * [`fixtures`] builds the standard source mailbox used across the workspace's tests.
//! * [`replay_corpus`] runs a fuzz target's corpus on stable, in `cargo test`.
//! * [`LeaveUnread`] stops reading one body early, for checking that a client drops the
//!   rest and stays in step.
//! * [`MemoryProbe`] measures a client's peak memory while it streams a large body, in a
//!   child process that holds nothing else.
//!
//! ```no_run
//! use testkit::{Dovecot, RawImap};
//! let dovecot = Dovecot::builder().user("alice", "alicepw").start();
//! let mut imap = RawImap::login(dovecot.imap_port(), "alice", "alicepw");
//! imap.create("Archive");
//! let snapshot = imap.snapshot();
//! assert!(snapshot.mailboxes.contains_key("Archive"));
//! ```
#![deny(missing_docs)]
// A test harness reports broken environments by panicking with a clear message.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod dovecot;
mod fake;
mod fake_imap;
mod fake_store;
pub mod fixtures;
mod fuzz;
mod imap;
mod memory;
mod pop3;
mod proxy;
mod snapshot;
mod tls;
mod unread;

pub use dovecot::{
    Dovecot, DovecotBuilder, MAIL_GID, MAIL_UID, UNSECURED_ADDRESS, chown_to_mail_user,
};
pub use fake::{FakeServer, Step};
pub use fake_imap::{FakeImap, FakeMailbox, FakeMessage};
pub use fake_store::{
    FakeStore, FakeStoreBuilder, GMAIL_ALL_MAIL, GMAIL_SPAM, GMAIL_TRASH, StoredMessage,
};
pub use fuzz::{FuzzEntry, replay_corpus};
pub use imap::{RawImap, Response, Token};
pub use memory::{BodyDigest, ChildReport, MemoryProbe};
pub use pop3::RawPop3;
pub use proxy::CuttingProxy;
pub use snapshot::{AccountSnapshot, MailboxSnapshot, MessageSnapshot, parse_internal_date};
pub use tls::{self_signed_certificate, sha256_fingerprint};
pub use unread::LeaveUnread;

/// Directory where binaries built by cargo live, for tests that run the `dsync` binary.
pub fn cargo_target_dir() -> std::path::PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").to_path_buf()
}
