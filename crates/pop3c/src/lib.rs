//! A POP3 client library built for mailbox migration: it reads what POP3 mail clients
//! remember — unique ids (`UIDL`), message order, the exact message bytes — from real and
//! hostile servers, and never deletes anything unless asked by name.
//!
//! * [`proto`] is the sans-IO core: a framer ([`proto::Decoder`]) that enforces limits,
//!   removes dot-stuffing and streams bodies in chunks; nom parsers for status lines
//!   (with RFC 2449/3206 response codes), listings and capabilities; commands as data
//!   ([`proto::Command`]).
//! * [`Client`] (AUTHORIZATION) → [`Client::login`] → [`Session`] (TRANSACTION) is the
//!   blocking client on [`mailnet`]'s plain / TLS / `STLS` stream with timeouts.
//!   `USER`/`PASS`, `APOP`, `AUTH PLAIN` with initial response; Dovecot master users as
//!   PLAIN authzid or `user*master`. A failed login hands the `Client` back.
//! * Bodies never sit whole in memory: [`Session::retr_many`] / [`Session::top_many`]
//!   hand each message to a [`MessageHandler`] as a `Read`, pipelining the commands when
//!   the server announces `PIPELINING`.
//! * Errors say what to do: [`Error::kind`] is [`ErrorKind::Retryable`] for `[IN-USE]`,
//!   `[LOGIN-DELAY]`, `[SYS/TEMP]` and dropped connections, [`ErrorKind::Credentials`]
//!   for `[AUTH]`, [`ErrorKind::Permanent`] otherwise.
//! * An optional [`Trace`] ([`ConnectOptions::trace`]) sees every command and status line;
//!   `PASS`, the `APOP` digest and SASL payloads show as `<redacted>`, bodies as their
//!   length.
//!
//! ```no_run
//! use std::io::Read;
//! use pop3c::{Client, ConnectOptions, Credentials, MessageNumber, Security, TlsOptions};
//!
//! let options = ConnectOptions::new("pop.example.com", 995, Security::Tls)
//!     .tls(TlsOptions::new().ca_file("/etc/ssl/private-ca.pem"));
//! let mut session = Client::connect(&options)?
//!     .login(&Credentials::new("alice", "secret"))
//!     .map_err(|(error, _client)| error)?;
//!
//! // The POP3 view: number (= POP3 order), size and unique id of every message.
//! let messages = session.messages()?;
//! for message in &messages {
//!     println!("#{} {} octets, UIDL {}", message.number, message.size, message.uidl);
//! }
//!
//! // Headers only (TOP n 0), then whole messages, streamed and pipelined.
//! let mut header = Vec::new();
//! if let Some(first) = MessageNumber::new(1) {
//!     session.top(first, 0, &mut header)?;
//! }
//! let numbers: Vec<MessageNumber> = messages.iter().map(|m| m.number).collect();
//! session.retr_many(&numbers, &mut |number: MessageNumber, body: &mut dyn Read| {
//!     let copied = std::io::copy(body, &mut std::io::sink())?;
//!     println!("message {number}: {copied} bytes");
//!     Ok(())
//! })?;
//! session.quit()?; // no DELE was sent, so nothing is deleted
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
mod types;

pub use client::{
    AuthMechanism, Client, ConnectOptions, Credentials, DEFAULT_GREETING_TIMEOUT, MessageHandler,
    MessageInfo, Security, Session, Stat,
};
pub use error::{Error, ErrorKind, Result};
pub use mailnet::{Secret, Timeouts, TlsOptions, Trace, TraceDirection};
pub use types::{Capabilities, Capability, InvalidUidl, MessageNumber, ResponseCode, Uidl};
