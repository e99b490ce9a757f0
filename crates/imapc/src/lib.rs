//! An IMAP4rev1/IMAP4rev2 client library built for mailbox migration: everything a mail
//! client caches (bytes, UIDs, UIDVALIDITY, flags, keywords, INTERNALDATE, folders,
//! subscriptions) read exactly, from real and hostile servers, fast.
//!
//! * [`proto`] is the sans-IO core: a framer ([`proto::ResponseDecoder`]) that enforces
//!   size limits and streams body literals, streaming nom parsers for every response, and a
//!   command encoder (commands are data: [`proto::Command`]).
//! * [`Client`] → [`Client::login`] → [`Session`] is the blocking client on
//!   [`mailnet`]'s plain/TLS/STARTTLS stream with timeouts. A failed login hands the
//!   `Client` back.
//! * Bodies never sit whole in memory: [`Session::uid_fetch`] hands each body literal to a
//!   [`FetchHandler`] as a `Read` of exactly its length, pipelining `UID FETCH` commands
//!   in batches ([`ConnectOptions::prefetch_count`]).
//!
//! ## Notes for callers
//!
//! * **Limits** ([`proto::Limits`], in [`ConnectOptions::limits`]): line length (4 MiB),
//!   non-body literals (1 MiB), body literals (1 GiB, streamed), whole buffered response
//!   (16 MiB), list nesting (64). Exceeding one is [`Error::Decode`] and the connection is
//!   then refused for further use; a malformed *untagged* response whose end is clear is
//!   skipped instead ([`proto::Untagged::Malformed`]), and a FETCH among them fails only
//!   that fetch.
//! * **Pipelining**: [`Session::uid_fetch`] splits an explicit UID set (ascending) into
//!   commands of [`ConnectOptions::prefetch_count`] UIDs (default 1 000), keeps
//!   [`ConnectOptions::pipeline_depth`] of them in flight (default 1: Dovecot executes
//!   pipelined FETCHes concurrently and interleaves their answers, so more than one breaks
//!   the UID order of bodies; at most 32 KiB of command text is ever unanswered) and
//!   matches answers by tag; every command line stays under
//!   [`ConnectOptions::max_command_len`] (8000). A set with `*` goes as one command.
//!   Metadata ([`Session::fetch_metadata`]) is streamed to a callback per message.
//! * **Message GUIDs**: [`Session::set_message_guids`] adds a [`GuidItem`] (Dovecot's
//!   `X-GUID`, Gmail's `X-GM-MSGID`) to the metadata listings, filling
//!   [`MessageMeta::guid`]. No capability announces `X-GUID`: other servers answer `BAD`.
//! * **Item order**: servers may send `UID` after `BODY[]`. [`FetchHandler::body`] gets the
//!   sequence number and whatever came before the literal; the [`FetchHandler::fetch`] that
//!   follows (same sequence number) has everything else. Dovecot sends `UID` first.
//! * **Writing**: [`Session::append_streamed`] streams a message from a reader into a
//!   pipelined APPEND (non-synchronising literals under `LITERAL+`, `LITERAL-` up to
//!   4 KiB, else each literal waits for `+`), at most 64 KiB of it in memory and
//!   [`MAX_APPENDS_IN_FLIGHT`] unanswered; each message's outcome (its `APPENDUID`, or
//!   its own refusal) comes with [`Session::finish_appends`]. A message over `APPENDLIMIT` is
//!   refused without being sent. [`Session::expunge_uids`] removes exactly the UIDs given
//!   (`UID EXPUNGE`; without UIDPLUS a plain `EXPUNGE` only when no other message is
//!   marked `\Deleted`). [`MailboxInfo::can_store`] reads PERMANENTFLAGS.
//! * **Errors**: `NO`/`BAD` keep the response code ([`Error::No`]); throttling
//!   (`[THROTTLED]`, also Gmail's trailing form) is [`Error::is_throttled`], and
//!   [`Error::refusal`] types what a program can act on (throttled with the server's
//!   backoff, `LIMIT`, `UNAVAILABLE`, `INUSE`, `OVERQUOTA`, `TOOBIG`); a stalled
//!   server is [`Error::is_timeout`]. A failed login returns the `Client`.
//! * **Secrets**: passwords are [`Secret`]s, [`Credentials`] print `<redacted>`, and the
//!   optional [`Trace`] masks LOGIN/AUTHENTICATE arguments and SASL responses.
//!
//! ```no_run
//! use std::io::Read;
//! use imapc::proto::{BodyStart, Fetch, FetchItem};
//! use imapc::{Client, ConnectOptions, Credentials, FetchHandler, MailboxName, Security, SequenceSet, TlsOptions};
//!
//! let options = ConnectOptions::new("imap.example.com", 993, Security::Tls)
//!     .tls(TlsOptions::new().ca_file("/etc/ssl/private-ca.pem"));
//! let mut session = Client::connect(&options)?
//!     .login(&Credentials::new("alice", "secret"))
//!     .map_err(|(error, _client)| error)?;
//!
//! for entry in session.list("", "*")? {
//!     println!("{} (delimiter {:?}, {:?})", entry.name, entry.delimiter, entry.attributes);
//! }
//!
//! let inbox = session.examine(&MailboxName::from_utf8("INBOX"))?;
//! println!("UIDVALIDITY {}, {} messages", inbox.uid_validity, inbox.exists);
//!
//! struct Print;
//! impl FetchHandler for Print {
//!     fn body(&mut self, start: &BodyStart, body: &mut dyn Read) -> std::io::Result<()> {
//!         let copied = std::io::copy(body, &mut std::io::sink())?;
//!         println!("message #{}: {copied} bytes", start.fetch.seq);
//!         Ok(())
//!     }
//!     fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
//!         println!("UID {:?} flags {:?}", fetch.uid, fetch.flags_without_recent());
//!         Ok(())
//!     }
//! }
//! // UID 0 is what a broken server may send: no message can be fetched by it.
//! if let Some(first) = session.fetch_metadata_all()?.first().and_then(|m| imapc::Uid::new(m.uid)) {
//!     let items = FetchItem::message_with_metadata();
//!     session.uid_fetch(&SequenceSet::single(first), &items, &mut Print)?;
//! }
//! session.logout()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
pub mod types;

pub use client::{
    AppendOutcome, AppendUid, AuthMechanism, Client, ConnectOptions, CopyUids, Credentials,
    DEFAULT_GREETING_TIMEOUT, Expunged, FetchHandler, GuidItem, IdFields, ListOptions, ListResult,
    MAX_APPENDS_IN_FLIGHT, MailboxInfo, MessageMeta, MetadataListing, Security, SelectOptions,
    Session, Trace, TraceDirection,
};
pub use error::{Error, Refusal, Result};
pub use mailnet::{Secret, Timeouts, TlsOptions};
pub use types::{
    Capabilities, Flag, MailboxName, SeqBound, SeqRange, SequenceSet, Uid, UidValidity,
};
