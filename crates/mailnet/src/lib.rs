//! Blocking transport shared by the mail protocol clients of dsync-rs (`imapc`, `pop3c`):
//!
//! * [`Stream`] — a TCP connection that is plain or TLS, tries every address a host name
//!   resolves to, and has a connect timeout plus per-read and per-write timeouts, so a
//!   stalled server gives [`Error::Timeout`] rather than a hang. [`Stream::start_tls`]
//!   upgrades a plain stream in place for STARTTLS / STLS.
//! * [`TlsConnector`] / [`TlsOptions`] — rustls with the webpki roots plus an optional extra
//!   CA file, SNI, and certificate verification that is always on unless the caller asks for
//!   [`TlsOptions::dangerous_accept_invalid_certs`] by name.
//! * [`Secret`] — a value whose `Debug` and `Display` print `<redacted>` in every build.
//! * [`Trace`] — the protocol trace callback of both clients (credentials masked).
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

mod error;
mod secret;
mod stream;
mod tls;
mod trace;

pub use error::{Error, is_timeout};
pub use secret::Secret;
pub use stream::{Stream, Timeouts};
pub use tls::{TlsConnector, TlsOptions};
pub use trace::{Trace, TraceDirection};
