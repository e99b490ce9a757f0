//! Sieve scripts for mailbox migration: a ManageSieve (RFC 5804) client that reads and
//! writes a user's scripts on a server such as Dovecot's Pigeonhole.
//!
//! * [`proto`] is the sans-IO core: a framer ([`proto::Decoder`]) that finds where a
//!   server line ends after its literals, within limits; nom parsers for responses,
//!   response codes and capabilities; commands as data ([`proto::Command`]).
//! * [`Client`] → [`Client::login`] → [`Session`] is the blocking client on [`mailnet`]'s
//!   plain / STARTTLS / TLS stream with timeouts. STARTTLS checks the certificate and
//!   takes the capabilities the server re-sends over TLS. `AUTHENTICATE PLAIN` (a Dovecot
//!   master user as authentication identity, the user as authorization identity),
//!   `LOGIN`, `XOAUTH2` or `OAUTHBEARER` — the mechanisms `imapc` has.
//! * Script names are [`ScriptName`]s, valid by Pigeonhole's rules; scripts are bytes,
//!   sent as non-synchronising literals and returned exactly as stored (CRLF, non-ASCII).
//! * [`FileStore`] reads and writes Pigeonhole's `file` storage exactly as Pigeonhole
//!   does (`NAME.sieve`, atomic saves through `tmp/`, modes, the relative active link), so
//!   a migration can go from a server to files, or from files to a server.
//! * A refusal is typed: [`Error::Refused`] carries the `NO` response code (`QUOTA`,
//!   `ACTIVE`, `NONEXISTENT` …) and the server's text — for a script that does not
//!   compile there, the validator's messages; [`Error::Referral`] the `sieve://` URL.
//!
//! ```no_run
//! use managesieve::{Client, ConnectOptions, Credentials, ScriptName, Security, TlsOptions};
//!
//! let options = ConnectOptions::new("mail.example.com", 4190, Security::StartTls)
//!     .tls(TlsOptions::new().ca_file("/etc/ssl/private-ca.pem"));
//! let mut session = Client::connect(&options)?
//!     .login(&Credentials::master("alice", "admin", "master-secret"))
//!     .map_err(|(error, _client)| error)?;
//!
//! for script in session.list_scripts()? {
//!     let bytes = session.get_script(&script.name)?;
//!     println!("{}{}: {} bytes", script.name, if script.active { " (active)" } else { "" }, bytes.len());
//! }
//!
//! let name = ScriptName::new("vacation")?;
//! match session.put_script(&name, b"require \"vacation\";\r\nvacation \"Away\";\r\n") {
//!     Ok(_warnings) => session.set_active(Some(&name))?,
//!     Err(managesieve::Error::Refused { text, .. }) => eprintln!("refused: {text}"),
//!     Err(other) => return Err(other.into()),
//! }
//! session.logout()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod client;
mod error;
pub mod file_store;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;

pub use client::{
    AuthMechanism, Client, ConnectOptions, Credentials, DEFAULT_PORT, ScriptInfo, ScriptListing,
    Security, Session, UnusableScript,
};
pub use error::{Error, ErrorKind, Result};
pub use file_store::{ActiveScript, FileStore, StoredScript};
pub use mailnet::{Secret, Timeouts, TlsOptions, Trace, TraceDirection};
pub use proto::{Capabilities, InvalidScriptName, ResponseCode, ScriptName};
