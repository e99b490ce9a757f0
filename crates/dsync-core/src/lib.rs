//! The dsync-rs engine: synchronise two mail storages with Dovecot's `doveadm backup` /
//! `doveadm sync` semantics, preserving what mail clients cache — UIDVALIDITY, UIDs, flags,
//! keywords, received dates, folders and subscriptions.
//!
//! * [`Storage`] / [`StorageMut`] are the seam: an IMAP server, a Maildir, or your own
//!   backend becomes a sync side by implementing them ([`memory::MemoryStorage`] is the
//!   reference implementation).
//! * [`plan`] is pure: from both sides' state it decides what to change.
//! * [`run`] applies the plans, streaming bodies from source to destination and committing
//!   every [`SyncOptions::commit_interval`] messages, and returns a [`Report`].
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

pub mod adapters;
mod error;
mod execute;
pub mod filter;
pub mod header_hash;
pub mod memory;
mod model;
pub mod plan;
pub mod pop3_migration;
mod report;
pub mod state;
mod storage;

pub use error::{ErrorKind, Side, StorageError, SyncError};
pub use execute::{Failed, NoObserver, Observer, SyncOptions, run};
pub use model::{
    Flags, MailboxContents, MailboxGuid, MailboxInfo, MailboxName, MailboxStatus, MessageMeta,
    NameError, SpecialUse, SystemFlags, Uid, UidValidity,
};
pub use plan::{MailboxAction, MailboxPlan, Mode, RecreateReason, TreePlan};
pub use report::{MailboxReport, Report, Totals, human_bytes};
pub use storage::{Capabilities, MailboxWriter, MessageSink, NewMailbox, Storage, StorageMut};
