//! Maildir read and write exactly as Dovecot 2.3 keeps it, so that Dovecot and this crate
//! are interchangeable on the same directory.
//!
//! * Layouts: Maildir++ (`.A.B`, INBOX at the root) and `LAYOUT=fs`; folder names in
//!   modified UTF-7 on disk (or UTF-8 with `:UTF-8`). See [`Location`].
//! * `dovecot-uidlist` v3 with UIDVALIDITY, next UID, mailbox GUID and per-message `G`, `S`,
//!   `W`, `P`, `O` fields; `dovecot-keywords`; `subscriptions` v2; `dovecot-uidvalidity`;
//!   `dovecot-uidlist.lock` taken and honoured the way Dovecot's dotlocks work.
//! * Saves stream into `tmp/` (CRLF → LF as Dovecot stores, `S=`/`W=` computed), get
//!   fsynced, and become visible only at [`Mailbox::commit`]: a kill at any instant leaves a
//!   Maildir Dovecot opens, and a re-run resumes without duplicates.
//! * Mailbox names are validated UTF-8 components ([`MailboxName`]); nothing is ever created
//!   outside the root.
//!
//! ```
//! use std::io::Write;
//! use mailstore::{Flags, Keyword, Location, Maildir, MailboxName, SaveOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let maildir = Maildir::open(Location::maildir(dir.path().join("Maildir")));
//! let archive = MailboxName::new(["Archive", "2023"])?;
//! let mut mailbox = maildir.create_mailbox(&archive, Some(1_700_000_000), None)?;
//!
//! let mut message = mailbox.begin_save()?;
//! message.write_all(b"Subject: hi\r\n\r\nHello\r\n")?;
//! let options = SaveOptions::default()
//!     .with_uid(42)
//!     .with_flags(Flags::SEEN)
//!     .with_keywords(vec![Keyword::new("$Label1")?])
//!     .with_received(1_700_000_123);
//! mailbox.save(message, options)?;
//! assert_eq!(mailbox.commit()?, [42]);
//!
//! let status = mailbox.status()?;
//! assert_eq!((status.uid_validity, status.next_uid, status.messages), (1_700_000_000, 43, 1));
//! let messages = mailbox.messages()?;
//! assert_eq!(messages[0].size, 19); // stored with LF
//! assert_eq!(messages[0].virtual_size, 22); // as IMAP serves it
//! maildir.set_subscriptions(&[archive])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod crlf;
mod error;
mod flags;
mod fs;
#[doc(hidden)]
pub mod fuzzing;
mod guid;
mod location;
mod mailbox_log;
mod maildir;
mod name;
mod subscriptions;
mod uidvalidity;

pub use crlf::{CrlfReader, LineEndings};
pub use error::{Error, Result};
pub use flags::{Flags, Keyword};
pub use guid::Guid;
pub use location::{Layout, Location};
pub use maildir::{
    Durability, Mailbox, MailboxEntry, MailboxStatus, Maildir, MessageInfo, MessageReader, Options,
    PendingMessage, SaveOptions,
};
pub use name::MailboxName;
