//! The dsync-rs engine: synchronise two mail storages with Dovecot's `doveadm backup`,
//! `sync -1`, `sync` and `import` semantics, preserving what mail clients cache —
//! UIDVALIDITY, UIDs, flags, keywords, received dates, folders and subscriptions.
//!
//! * [`Storage`] / [`StorageMut`] are the seam: an IMAP server ([`adapters::imap`]), a
//!   Maildir ([`adapters::maildir`]), an sdbox store ([`adapters::sdbox`]) or your own
//!   backend (see `examples/custom_storage.rs`) becomes a sync side by implementing them;
//!   [`memory::MemoryStorage`] is the reference implementation.
//! * [`plan`] is pure: from both sides' state it decides what to change. [`Mode`] picks the
//!   rules: `Backup` (the destination becomes identical to the source), `OneWay` (the
//!   source's changes merge into the destination, which keeps its own), `TwoWay` (both
//!   merge; [`run_two_way`]), `Import` (copy under a parent folder with new UIDs).
//! * [`run`] applies the plans, streaming bodies from source to destination, committing
//!   every [`SyncOptions::commit_interval`] messages in ascending UID order, and returns a
//!   [`Report`] whose [`Report::exit_code`] is doveadm's.
//! * Identity: message GUIDs when both sides keep comparable ones, else Dovecot's header
//!   hash ([`header_hash`], checked against Dovecot itself).
//! * [`state::SyncState`] is what a run remembers for the next one (pass
//!   [`Report::state`] back in [`SyncOptions::state`]): a mailbox neither side changed is
//!   skipped without listing, and merges know what was expunged and which side changed a
//!   flag. [`Observer::checkpoint`] asks the caller to persist it before changes after
//!   which the old state would mislead, so a kill at any instant resumes safely.
//! * [`filter`]: `-m`/`-x` mailbox patterns and `-t`/`-e`/`-I`/`-O` message filters;
//!   nothing outside the filters is ever deleted or expunged.
//! * [`query`]: doveadm's search query (`import`'s mailbox and message selection).
//!
//! # Embedding
//!
//! An IMAP account backed up into a Maildir, with progress and a state that makes the next
//! run cost only what changed; everything comes from this crate (its re-exports of
//! [`imapc`], [`mailstore`], [`pop3c`] and [`mailnet`] included):
//!
//! ```no_run
//! use dsync_core::adapters::{imap::ImapStorage, maildir::MaildirStorage};
//! use dsync_core::imapc::{ConnectOptions, Credentials, Security};
//! use dsync_core::mailstore::Durability;
//! use dsync_core::state::{StateFile, SyncState};
//! use dsync_core::{MailboxReport, Mode, Observer, StorageError, SyncOptions};
//!
//! /// Prints each mailbox as it finishes and persists the state when the engine asks.
//! struct Progress<'a>(&'a StateFile);
//!
//! impl Observer for Progress<'_> {
//!     fn mailbox_finished(&mut self, report: &MailboxReport) {
//!         println!("{}: {} saved", report.mailbox, report.saved);
//!     }
//!     fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
//!         self.0.checkpoint(state)
//!     }
//! }
//!
//! let server = ConnectOptions::new("mail.example.com", 993, Security::Tls);
//! let mut source = ImapStorage::connect(&server, &Credentials::new("alice", "secret"))?;
//! let mut backup = MaildirStorage::open_path("/srv/backup/alice", Durability::Fsync);
//! let file = StateFile::new("/srv/backup/alice.state", "imaps://alice@mail.example.com");
//! let state = file.load().unwrap_or_else(|_| file.fresh());
//! let options = SyncOptions::new(Mode::Backup).state(Some(state));
//! let report = dsync_core::run(&options, &mut source, &mut backup, &mut Progress(&file))?;
//! file.save(report.state.as_ref().expect("a run that finished has a state"))?;
//! println!("{} (exit code {})", report.totals(), report.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A run that fails returns [`Failed`], whose [`report`](Failed::report) holds what was
//! done and a state to save as well. The crate's `examples/` directory has runnable
//! programs: `imap_backup` (the above), `two_way` (Maildir ⇄ Maildir), `pop3` (POP3 →
//! Maildir), `custom_storage` (a backend of your own) and `cancellation` ([`Cancel`]).
//!
//! # Threads and async
//!
//! The engine is blocking, and everything it hands out is [`Send`]: the storages, the
//! options, the report and the errors. Run it on a thread of its own, or from async code on
//! the runtime's blocking pool. With tokio (not a dependency of this crate, hence not
//! compiled here):
//!
//! ```ignore
//! let report = tokio::task::spawn_blocking(move || {
//!     let mut source = ImapStorage::connect(&server, &credentials)?;
//!     let mut backup = MaildirStorage::open_path(&path, Durability::Fsync);
//!     dsync_core::run(&options, &mut source, &mut backup, &mut NoObserver)
//!         .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
//! })
//! .await??;
//! ```
//!
//! A [`Cancel`] token (in [`SyncOptions::cancel`]) stops such a run from the async side.
//! Why there is no async facade: `docs/design.md`, "Threads and async".
//!
//! # Without a server
//!
//! [`memory::MemoryStorage`] runs the same engine in memory:
//!
//! ```
//! use dsync_core::memory::MemoryStorage;
//! use dsync_core::{Flags, MailboxName, Mode, NoObserver, SyncOptions, UidValidity};
//!
//! // A source account with one message in "Archive/2023", subscribed.
//! let mut source = MemoryStorage::new();
//! let archive = MailboxName::new(["Archive", "2023"])?;
//! let mailbox = source.add_mailbox(&archive, UidValidity::new(1_700_000_000).unwrap());
//! mailbox.append(b"Subject: hi\r\n\r\nhello\r\n", Flags::from_imap_names(["\\Seen"]), Some(1_700_000_000));
//! source.subscribe(&archive);
//!
//! // Make an empty destination identical to it.
//! let mut destination = MemoryStorage::with_guids();
//! let report = dsync_core::run(&SyncOptions::new(Mode::Backup), &mut source, &mut destination, &mut NoObserver)?;
//! assert_eq!(report.totals().saved, 1);
//! assert_eq!(destination.mailbox(&archive).unwrap().uid_validity.get(), 1_700_000_000);
//!
//! // Running again finds nothing to do.
//! let again = dsync_core::run(&SyncOptions::new(Mode::Backup), &mut source, &mut destination, &mut NoObserver)?;
//! assert!(again.is_noop());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
// docs.rs labels the items each cargo feature gates (`--cfg docsrs`, nightly rustdoc).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapters;
pub mod derived_guid;
mod error;
mod execute;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod header_hash;
pub mod history;
pub mod memory;
pub mod message_date;
mod model;
mod packed;
pub mod pairing;
pub mod plan;
pub mod pop3_migration;
pub mod query;
mod report;
pub mod sieve;
mod spool;
pub mod state;
mod storage;
mod worker_pool;

// The crates this one's public API speaks in, so that an embedder depends on dsync-core
// alone and never has to keep their versions in step with it.
#[cfg(feature = "imap")]
#[cfg_attr(docsrs, doc(cfg(feature = "imap")))]
pub use imapc;
#[cfg(any(feature = "imap", feature = "pop3"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "imap", feature = "pop3"))))]
pub use mailnet;
#[cfg(feature = "maildir")]
#[cfg_attr(docsrs, doc(cfg(feature = "maildir")))]
pub use mailstore;
#[cfg(feature = "pop3")]
#[cfg_attr(docsrs, doc(cfg(feature = "pop3")))]
pub use pop3c;

pub use error::{ErrorKind, Side, StorageError, SyncError};
pub use execute::{
    Cancel, Connector, Failed, MAX_PARALLEL_MAILBOXES, NoObserver, Observer, SyncOptions, run,
    run_parallel, run_two_way,
};
pub use model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStamp, MailboxStatus,
    MessageMeta, NameError, SpecialUse, SystemFlags, Uid, UidValidity,
};
pub use plan::{MailboxAction, MailboxPlan, Mode, RecreateReason, SaveList, TreePlan};
pub use report::{
    FilteredMessages, MailboxRename, MailboxReport, Report, Skipped, Totals, human_bytes,
};
pub use storage::{
    Assigned, Capabilities, CopiedWithin, Delivered, MailboxAttribute, MailboxChanges,
    MailboxWriter, MessageListing, MessageSink, NewMailbox, NotApplied, Skip, Storage, StorageMut,
};
