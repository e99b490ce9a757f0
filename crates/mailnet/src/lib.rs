//! Blocking transport shared by the mail protocol clients of dsync-rs (`imapc`, `pop3c`):
//!
//! * [`Stream`] — a TCP connection that is plain or TLS, tries every address a host name
//!   resolves to, and has a connect timeout plus per-read and per-write timeouts, so a
//!   stalled server gives [`Error::Timeout`] rather than a hang; a stall limit
//!   ([`Stream::set_stall_limit`]) also ends a server that trickles a byte now and then,
//!   and a deadline ([`Stream::set_deadline`]) bounds a phase such as the greeting.
//!   [`Stream::start_tls`] upgrades a plain stream in place for STARTTLS / STLS.
//! * [`Service`] — what a server speaks, from its first bytes: a client at the wrong port
//!   can say "this is a POP3 server" or "this port speaks TLS" ([`Error::NotTls`],
//!   [`Stream::answers_tls`]).
//! * [`Opening`] — the start of a client connection: connect, implicit TLS, the greeting
//!   deadline within the connect budget, and [`WrongPort`] when no greeting of ours comes.
//! * [`TlsConnector`] / [`TlsOptions`] — rustls with the webpki roots plus an optional CA
//!   file or directory, SNI, and certificate verification that is always on unless the
//!   caller asks for [`TlsOptions::dangerous_accept_invalid_certs`] by name. A self-signed
//!   server certificate can be trusted exactly: by putting it in the CA file (its names are
//!   still checked) or by its SHA-256 [`Fingerprint`]; a refused one comes back as
//!   [`Error::Certificate`] with a [`CertificateRejection`] saying why and which it was.
//!   TLS uses the rustls provider the application installed, else the one the `aws-lc-rs`
//!   (default) or `ring` feature selects ([`crypto_provider`]).
//! * [`Secret`] — a value whose `Debug` and `Display` print `<redacted>` in every build;
//!   [`Credentials`] — user, password, master user and mechanism, printed the same way.
//! * [`Trace`] — the protocol trace callback of both clients (credentials masked).
//! * [`ReceiveBuffer`] — what a sans-IO decoder received and has not decoded yet, read
//!   into without copying and searched for lines within a limit; [`drain`] reads the rest
//!   of a body a handler left unread.
//!
//! ```no_run
//! use std::io::Read;
//! use mailnet::{Stream, Timeouts, TlsConnector, TlsOptions};
//!
//! let tls = TlsConnector::new(&TlsOptions::new().ca_file("/etc/ssl/private-ca.pem"))?;
//! let mut stream = Stream::connect_tls("imap.example.com", 993, &Timeouts::default(), &tls)?;
//! let mut greeting = [0u8; 512];
//! let n = stream.read_some(&mut greeting)?;
//! println!("{}", String::from_utf8_lossy(&greeting[..n]));
//!
//! // STARTTLS: connect in plaintext, negotiate, then upgrade the same stream.
//! let mut plain = Stream::connect("imap.example.com", 143, &Timeouts::default())?;
//! // … send "a STARTTLS", read "a OK", discard anything read ahead …
//! plain.start_tls(&tls)?;
//! assert!(plain.is_tls());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod buffer;
mod credentials;
mod drain;
mod error;
mod fingerprint;
mod opening;
mod provider;
mod secret;
mod service;
mod stream;
mod tls;
mod trace;
mod trust;
mod verify;
mod x509;

pub use buffer::{LineTooLong, ReceiveBuffer};
pub use credentials::Credentials;
pub use drain::drain;
pub use error::{Error, is_timeout};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use opening::{DEFAULT_GREETING_TIMEOUT, Opening, WrongPort, greeting_line};
pub use provider::crypto_provider;
pub use secret::{Secret, SecretMask};
pub use service::Service;
pub use stream::{Stream, Timeouts};
pub use tls::{TlsConnector, TlsOptions};
pub use trace::{Trace, TraceDirection};
pub use verify::{CertificateProblem, CertificateRejection};
