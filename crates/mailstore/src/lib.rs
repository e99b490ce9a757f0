//! Maildir and sdbox read and written exactly as Dovecot 2.3 keeps them, so that Dovecot
//! and this crate are interchangeable on the same directory.
//!
//! sdbox ([`Sdbox`], [`SdboxLocation`]) keeps one `u.<uid>` file per message and every
//! other piece of a mailbox's state (UIDVALIDITY, UIDs, flags, keywords, modseqs, the
//! mailbox GUID) in Dovecot's index: this crate reads `dovecot.index` plus the transaction
//! log and writes by appending transactions to `dovecot.index.log` under Dovecot's `fcntl`
//! lock. The rest of this page describes Maildir.
//!
//! * Layouts: Maildir++ (`.A.B`, INBOX at the root) and `LAYOUT=fs`; folder names in
//!   modified UTF-7 on disk (or UTF-8 with `:UTF-8`). See [`Location`].
//! * `dovecot-uidlist` v3 with UIDVALIDITY, next UID, mailbox GUID and per-message `G`, `S`,
//!   `W`, `P`, `O` fields; `dovecot-keywords`; `subscriptions` v2; `dovecot-uidvalidity`;
//!   `dovecot-uidlist.lock` taken and honoured the way Dovecot's dotlocks work.
//! * Saves stream into `tmp/` (CRLF → LF as Dovecot stores, `S=`/`W=` computed), get
//!   fsynced, and become visible only at [`Mailbox::commit`]: a kill at any instant leaves a
//!   Maildir Dovecot opens, and a re-run resumes without duplicates.
//! * Copies of messages the store already holds are hard links, as Dovecot makes them
//!   ([`Mailbox::save_copy`]): one body on disk, a byte copy only when a link cannot be.
//! * Mailbox names are validated UTF-8 components ([`MailboxName`]); nothing is ever created
//!   outside the root.
//! * Nothing is ever read outside the root either: every file below it is opened component by
//!   component without following a symlink that leaves it, and only regular files are read
//!   (a FIFO is never opened). [`Maildir::list_mailboxes`] and [`Mailbox::list_messages`]
//!   return what they leave out ([`LeftOut`]) with the reason, so that a caller copying mail
//!   can say what it did not copy; folders whose directory names are not canonical modified
//!   UTF-7 are listed and read under the names Dovecot gives them.
//! * New directories and files get the owner, group and mode bits Dovecot would give them,
//!   derived from the root ([`Permissions`], [`Maildir::permissions`]); run as root, they
//!   belong to the root's owner, so a Dovecot running as the mail user serves them.
//! * Mail without flags and keywords is saved to `new/` under its bare base name, as
//!   Dovecot saves it, so that mail clients see it `\Recent`.
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
//!
//! # Dovecot behaviour this crate relies on
//!
//! Checked against Dovecot 2.3.19.1 by the integration tests (`tests/it`), beyond what
//! `maildir-uidlist.c`, `maildir-filename*.c`, `maildir-keywords.c`, `subscription-file.c`,
//! `mailbox-uidvalidity.c` and `file-dotlock.c` say:
//!
//! * A Maildir we write (forced UIDs with gaps, raised next UID, keywords, dates, LF or
//!   CRLF storage, Maildir++, `LAYOUT=fs`, `UTF-8`) is served by a fresh Dovecot with
//!   exactly our UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, INTERNALDATEs, subscriptions,
//!   bytes, mailbox and message GUIDs, POP3 UIDLs and POP3 order.
//! * Files the uidlist does not know get the same UIDs from us as from Dovecot, and a folder
//!   without `dovecot-uidlist` gets the same UIDVALIDITY (both allocate from
//!   `dovecot-uidvalidity`).
//! * Dovecot appending and changing flags in a mailbox while we commit into it: every
//!   message once, no warnings in Dovecot's log (both sides hold `dovecot-uidlist.lock`).
//! * Changing UIDVALIDITY (uidlist rewrite) of a mailbox Dovecot has indexed makes it log
//!   `Warning: … UIDVALIDITY changed (old -> new)` and rebuild its index: new sessions see
//!   our values; a raised next UID is taken as is.
//! * Folders created, renamed or deleted behind a running Dovecot's back are seen by its
//!   next session; `dovecot.list.index` need not be deleted.
//! * Dovecot lists a folder directory that is not valid modified UTF-7 (`.café`, `.&AGE`,
//!   `.&AGE-&AGI-`) under its bytes, and one whose bytes are not UTF-8 under the name it
//!   renames it to (U+FFFD for each broken sequence): [`Maildir::list_mailboxes`] gives the
//!   same names. It cannot open them, nor `.a..b` (`a//b`) or a name with a control
//!   character, which we report as left out.
//! * After a `kill -9` of our writer Dovecot opens the Maildir without errors, overriding
//!   the dead process's lock. Files renamed into `cur/` or `new/` whose uidlist records were not yet
//!   appended are numbered by Dovecot from the uidlist's next UID if Dovecot gets there
//!   first; otherwise our next lock completes the commit from `dsync-rs-journal` with the
//!   intended UIDs (see `maildir::journal`).
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod crlf;
mod dbox;
mod error;
mod flags;
mod fs;
#[doc(hidden)]
pub mod fuzzing;
mod guid;
mod index;
mod left_out;
mod location;
mod mailbox_log;
mod maildir;
mod name;
mod pending;
mod subscriptions;
mod uidvalidity;

pub use crlf::{CrlfReader, LineEndings};
pub use dbox::location::SdboxLocation;
pub use dbox::{Sdbox, SdboxMailbox};
pub use error::{Error, Result};
pub use flags::{Flags, Keyword};
pub use fs::DIRTY_SECS;
pub use fs::permissions::Permissions;
pub use guid::Guid;
pub use left_out::{FileKind, LeftOut, LeftOutReason, Listing};
pub use location::{Layout, Location};
pub use mailbox_log::{MailboxChange, MailboxChangeKind};
pub use maildir::{
    CopyOutcome, DirStamp, DovecotExpunges, DroppedKeyword, Durability, ExpungedMessage,
    FileBeliefs, FileLookup, KeptCurFile, KeptCurFiles, KnownFile, KnownFiles, Mailbox,
    MailboxEntry, MailboxStatus, Maildir, MessageInfo, MessageReader, MessageStream, NothingKnown,
    Options, SaveOptions,
};
pub use name::MailboxName;
pub use pending::PendingMessage;
