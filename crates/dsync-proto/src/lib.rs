//! Dovecot's dsync wire protocol: what `doveadm sync|backup … remote:HOST` and
//! `doveadm dsync-server` speak over ssh (protocol 3.5, Dovecot 2.3).
//!
//! This crate knows the bytes and nothing of syncing decisions:
//!
//! * [`proto`] is the sans-IO codec: the version and schema lines, item lines with
//!   Dovecot's escaping and NULL values, typed items, list ends and dot-stuffed streams.
//!   What Dovecot 2.3 sends decodes and encodes back byte for byte.
//! * [`PullSession`] is a blocking conversation with a child process (`ssh … doveadm
//!   dsync-server`, built by [`RemoteCommand`] the way doveadm builds it) in the pull
//!   role: the remote exports its tree, mailboxes, attributes, mails and bodies; we ask.
//! * [`PushSession`] is the push role: we export, the remote imports what we describe
//!   and asks us for the bodies it lacks.
//!
//! ```
//! use dsync_proto::proto::{Decoder, Encoder, Event, Item, Limits, MailChange, SchemaSet};
//!
//! // A change record as Dovecot sends it: UID 1, flags \Seen \Recent, keyword Work.
//! let wire = b"Cs\t1\tb80ef5205ba4146b5341000083ecc375\t\x02\t3\t\x02\t\x02\t\x02\t28\t\x02\t&Work\n";
//! let mut decoder = Decoder::after_handshake(SchemaSet::dovecot_2_3(), 5, Limits::default());
//! decoder.feed(wire);
//! let Some(Event::Item(record)) = decoder.next_event()? else { panic!("an item") };
//! let change = MailChange::from_record(&record)?;
//! assert_eq!((change.uid, change.final_flags), (1, Some(0x28)));
//!
//! let mut out = Vec::new();
//! Encoder::new().item(&change, &mut out);
//! assert_eq!(out, wire);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod command;
mod connection;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
mod pull;
mod push;

pub use command::{DEFAULT_REMOTE_CMD, RemoteCommand};
pub use error::ClientError;
pub use pull::{DEFAULT_TIMEOUT, MailboxExport, PullSession, needs_sync};
pub use push::PushSession;
