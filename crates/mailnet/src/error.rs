//! The one error type of this crate.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::{CertificateRejection, Service};

/// Everything that can go wrong while connecting, handshaking, reading or writing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host as given.
        host: String,
        /// Resolver error.
        #[source]
        source: io::Error,
    },
    /// The host name resolved to no address.
    #[error("{host} resolved to no address")]
    NoAddress {
        /// Host as given.
        host: String,
    },
    /// No resolved address accepted the connection; the error is the last address's.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// Host as given.
        host: String,
        /// Port.
        port: u16,
        /// The last address's error (a timeout shows as [`io::ErrorKind::TimedOut`]).
        #[source]
        source: io::Error,
    },
    /// A read or write did not complete within its timeout (the peer stalled), or a phase
    /// with a deadline ([`Stream::set_deadline`](crate::Stream::set_deadline)) did not end
    /// in time.
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        /// `"read"`, `"write"`, `"TLS handshake"`, or the phase (`"waiting for the
        /// greeting"`).
        operation: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The peer kept sending now and then but made no progress (no complete answer line,
    /// not 16 KiB of data) for the stall limit
    /// ([`Stream::set_stall_limit`](crate::Stream::set_stall_limit)).
    #[error(
        "the server made no progress for {timeout:?} (no complete answer line, not 16 KiB of data): giving up"
    )]
    Stalled {
        /// The stall limit.
        timeout: Duration,
    },
    /// The peer answered a TLS handshake in plain text: the port does not speak TLS from
    /// the first byte (it is, say, a plain IMAP port where `imaps` was meant).
    #[error("{host} answered the TLS handshake in plain text{}: {received:?}", spoken(*service))]
    NotTls {
        /// The host connected to.
        host: String,
        /// What the answer looks like, when recognised.
        service: Option<Service>,
        /// Its first line, escaped.
        received: String,
    },
    /// The peer closed the connection.
    #[error("connection closed by the server during {operation}")]
    Closed {
        /// What we were doing.
        operation: &'static str,
    },
    /// Any other socket error.
    #[error("{operation} failed: {source}")]
    Io {
        /// What we were doing.
        operation: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The server's certificate was refused: why, and which certificate it was.
    #[error("TLS failed with {host}: {rejection}")]
    Certificate {
        /// The host connected to.
        host: String,
        /// What was wrong, the certificate's fingerprint, whether it is self-signed.
        rejection: Box<CertificateRejection>,
    },
    /// The TLS handshake or session failed for another reason (no common protocol version
    /// or cipher, a bad handshake signature, …).
    #[error("TLS failed with {host}: {source}")]
    Tls {
        /// The server name we verified against.
        host: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The name given for verification is neither a DNS name nor an IP address.
    #[error("{name:?} is not a valid TLS server name")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// The extra CA file or directory could not be read or holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// [`Stream::start_tls`](crate::Stream::start_tls) on a stream that is already TLS.
    #[error("the connection already uses TLS")]
    AlreadyTls,
    /// TLS was asked for, but the application installed no rustls crypto provider and the
    /// crate was built without one (neither the `aws-lc-rs` nor the `ring` feature).
    #[error(
        "no TLS crypto provider: install one with rustls::crypto::CryptoProvider::install_default \
         or build mailnet with the `aws-lc-rs` or `ring` feature"
    )]
    NoCryptoProvider,
}

impl Error {
    /// Maps an I/O error from a read or write to [`Error::Timeout`] when it is one (the
    /// standard library reports socket timeouts as `WouldBlock` or `TimedOut`), to
    /// [`Error::Closed`] for an unexpected end of stream, and to [`Error::Io`] otherwise.
    pub fn from_io(operation: &'static str, timeout: Option<Duration>, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Error::Timeout { operation, timeout: timeout.unwrap_or_default() }
            }
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::Closed { operation },
            _ => Error::Io { operation, source },
        }
    }

    /// True for [`Error::Timeout`] and [`Error::Stalled`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Stalled { .. })
    }

    /// True when retrying cannot help because the TLS setup or the server's certificate is
    /// wrong, or the port does not speak TLS: [`Error::Certificate`], [`Error::Tls`],
    /// [`Error::NotTls`], [`Error::CaFile`], [`Error::InvalidServerName`].
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Error::Certificate { .. }
                | Error::Tls { .. }
                | Error::NotTls { .. }
                | Error::CaFile { .. }
                | Error::InvalidServerName { .. }
        )
    }

    /// True when the TLS handshake failed because the two sides share no protocol version
    /// or cipher suite (an old server offering only TLS 1.0, say), not because of the
    /// certificate.
    pub fn is_tls_incompatibility(&self) -> bool {
        use rustls::AlertDescription as Alert;
        matches!(
            self,
            Error::Tls {
                source: rustls::Error::PeerIncompatible(_)
                    | rustls::Error::AlertReceived(
                        Alert::ProtocolVersion
                            | Alert::HandshakeFailure
                            | Alert::InsufficientSecurity
                    ),
                ..
            }
        )
    }

    /// True when the host name does not exist (or has no address): a typo or a wrong
    /// name, which no retry mends. A resolver that could not answer for now (`EAI_AGAIN`,
    /// "Temporary failure in name resolution") is not that.
    pub fn is_unknown_host(&self) -> bool {
        match self {
            Error::NoAddress { .. } => true,
            Error::Resolve { source, .. } => {
                let text = source.to_string().to_ascii_lowercase();
                !(text.contains("temporary failure") || text.contains("try again"))
            }
            _ => false,
        }
    }

    /// The certificate rejection, for [`Error::Certificate`].
    pub fn certificate_rejection(&self) -> Option<&CertificateRejection> {
        match self {
            Error::Certificate { rejection, .. } => Some(rejection),
            _ => None,
        }
    }
}

fn spoken(service: Option<Service>) -> String {
    service.map(|s| format!(" (it speaks {s})")).unwrap_or_default()
}

/// True when an I/O error is a socket timeout (`WouldBlock` or `TimedOut`).
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
