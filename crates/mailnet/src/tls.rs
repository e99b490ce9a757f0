//! TLS client configuration: webpki roots plus the operator's CA file or directory, with
//! certificates pinned by the CA file or by fingerprint ([`crate::verify`]); verification
//! on unless the caller asks for [`TlsOptions::dangerous_accept_invalid_certs`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::provider::crypto_provider;
use crate::verify::PinningVerifier;
use crate::{Error, Fingerprint, trust};

/// How to set up TLS. The default trusts the webpki (Mozilla) roots, verifies the
/// certificate against the host name connected to, and sends that name as SNI.
///
/// A server's own certificate can also be trusted exactly, which is what self-signed ones
/// need:
///
/// * **In the CA file or directory.** A server certificate byte-identical to one there is
///   accepted whatever its chain, `CA:TRUE` flag, signature algorithm or dates (WebPKI
///   alone refuses a self-signed `CA:TRUE` certificate as a server's with
///   `CaUsedAsEndEntity`; OpenSSL, so doveadm, accepts it) — but only for the names it
///   carries: its DNS/IP subjectAltNames, or its common name when it has no DNS
///   subjectAltName (OpenSSL's `X509_check_host` rule, which Dovecot's own certificates
///   need).
/// * **By SHA-256 fingerprint.** The one certificate with that digest is accepted under
///   any name: a fingerprint is an exact identity that only the holder of the
///   certificate's private key can present (the handshake signature is still verified),
///   and the certificates it is for (an old server's self-signed one for `localhost` or an
///   internal name, reached by IP during a migration) rarely name the host dialled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    extra_ca_file: Option<PathBuf>,
    extra_ca_dir: Option<PathBuf>,
    fingerprints: Vec<Fingerprint>,
    server_name: Option<String>,
    accept_invalid_certs: bool,
    no_resumption: bool,
}

impl TlsOptions {
    /// The defaults: webpki roots, verification on.
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// Also trusts every certificate in this PEM file (Dovecot's `ssl_client_ca_file`): as
    /// CAs, and each as a server's own certificate for the names it carries, even a
    /// self-signed `CA:TRUE` one (see above).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> TlsOptions {
        self.extra_ca_file = Some(path.into());
        self
    }

    /// Also trusts every certificate in the PEM files of this directory (Dovecot's
    /// `ssl_client_ca_dir`, `c_rehash`ed or not), as [`ca_file`](Self::ca_file) does.
    pub fn ca_dir(mut self, path: impl Into<PathBuf>) -> TlsOptions {
        self.extra_ca_dir = Some(path.into());
        self
    }

    /// Also accepts the one certificate with this SHA-256 fingerprint, for any name and
    /// whatever its issuer and dates (see above). May be given several times.
    pub fn pin_fingerprint(mut self, fingerprint: Fingerprint) -> TlsOptions {
        if !self.fingerprints.contains(&fingerprint) {
            self.fingerprints.push(fingerprint);
        }
        self
    }

    /// Verifies (and sends as SNI) this name instead of the host connected to, e.g. when
    /// connecting to an IP address of a server whose certificate names a host.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_name = Some(name.into());
        self
    }

    /// **Dangerous**: accepts any certificate, for any name, from anyone — an active
    /// attacker can read and change everything, passwords included. Only for test servers
    /// with throw-away certificates. Signatures of the handshake are still checked.
    pub fn dangerous_accept_invalid_certs(mut self, accept: bool) -> TlsOptions {
        self.accept_invalid_certs = accept;
        self
    }

    /// Resumes TLS sessions (the default: `true`): a connector keeps the tickets servers
    /// give it, and a later connection to the same server name resumes with one, which
    /// spares both sides the certificate signature and its verification. With `false`
    /// every handshake is a full one.
    pub fn session_resumption(mut self, resume: bool) -> TlsOptions {
        self.no_resumption = !resume;
        self
    }

    /// The extra CA file, if any.
    pub fn extra_ca_file(&self) -> Option<&Path> {
        self.extra_ca_file.as_deref()
    }

    /// The extra CA directory, if any.
    pub fn extra_ca_dir(&self) -> Option<&Path> {
        self.extra_ca_dir.as_deref()
    }

    /// The pinned fingerprints.
    pub fn fingerprints(&self) -> &[Fingerprint] {
        &self.fingerprints
    }

    /// True when certificate verification is turned off.
    pub fn accepts_invalid_certs(&self) -> bool {
        self.accept_invalid_certs
    }
}

/// A ready TLS client configuration (roots loaded once), cheap to clone and share.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl TlsConnector {
    /// Loads the roots, the CA file and the CA directory.
    pub fn new(options: &TlsOptions) -> Result<TlsConnector, Error> {
        let provider = crypto_provider().ok_or(Error::NoCryptoProvider)?;
        let setup_error = |source| Error::Tls { host: String::new(), source };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(setup_error)?
            .dangerous();
        let verifier: Arc<dyn ServerCertVerifier> = if options.accept_invalid_certs {
            Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            })
        } else {
            let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let mut pinned = Vec::new();
            if let Some(path) = &options.extra_ca_file {
                for certificate in trust::read_ca_file(path)? {
                    roots
                        .add(certificate.clone())
                        .map_err(|e| Error::CaFile { path: path.clone(), reason: e.to_string() })?;
                    pinned.push(certificate);
                }
            }
            if let Some(path) = &options.extra_ca_dir {
                let certificates = trust::read_ca_dir(path)?;
                // System directories hold a few certificates webpki cannot use as anchors;
                // skip those as OpenSSL would never pick them, but insist on one.
                let (added, _ignored) = roots.add_parsable_certificates(certificates.clone());
                if added == 0 {
                    return Err(Error::CaFile {
                        path: path.clone(),
                        reason: "no usable CA certificate in the directory".into(),
                    });
                }
                pinned.extend(certificates);
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| setup_error(rustls::Error::General(e.to_string())))?;
            Arc::new(PinningVerifier::new(webpki, pinned, options.fingerprints.clone()))
        };
        let mut config = builder.with_custom_certificate_verifier(verifier).with_no_client_auth();
        if options.no_resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(TlsConnector { config: Arc::new(config), server_name: options.server_name.clone() })
    }

    /// The connector of this process for `options`, made once by [`TlsConnector::new`] and
    /// handed out again while the options and the CA file's and directory's modification
    /// times stay the same. Connections made through one connector share its session
    /// store (see [`TlsOptions::session_resumption`]): the thousand users of one batch
    /// against one server then pay one full handshake, not a thousand, and the roots and
    /// CA files are loaded once. The clients (`imapc`, `pop3c`, `managesieve`) connect
    /// through this.
    pub fn shared(options: &TlsOptions) -> Result<TlsConnector, Error> {
        /// A handful of distinct option sets per process at most (one per server and CA);
        /// the oldest goes when more come.
        const KEPT: usize = 16;
        static CONNECTORS: Mutex<Vec<(SharedKey, TlsConnector)>> = Mutex::new(Vec::new());
        let key = SharedKey {
            options: options.clone(),
            ca_file: options.extra_ca_file.as_deref().and_then(modified),
            ca_dir: options.extra_ca_dir.as_deref().and_then(modified),
        };
        // A poisoned cache only means another thread panicked while holding it: its
        // entries are whole connectors, still good.
        let mut connectors = CONNECTORS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return Ok(connector.clone());
        }
        let connector = TlsConnector::new(options)?;
        if connectors.len() >= KEPT {
            connectors.remove(0);
        }
        connectors.push((key, connector.clone()));
        Ok(connector)
    }

    /// The name to verify for a connection to `host`.
    pub(crate) fn server_name(&self, host: &str) -> Result<ServerName<'static>, Error> {
        let name = self.server_name.as_deref().unwrap_or(host);
        // `[::1]` style literals are written with brackets in URLs but not in certificates.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|_| Error::InvalidServerName { name: name.to_owned() })
    }

    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

/// What decides whether a shared connector still fits: the options, and when the CA file
/// and directory last changed (a renewed CA file is read again).
#[derive(Debug, PartialEq, Eq)]
struct SharedKey {
    options: TlsOptions,
    ca_file: Option<SystemTime>,
    ca_dir: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The verifier behind `dangerous_accept_invalid_certs`: any certificate chain and name,
/// but handshake signatures must still match the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Built with neither provider feature, TLS setup names the two ways out.
#[cfg(all(test, not(any(feature = "aws-lc-rs", feature = "ring"))))]
mod without_provider {
    use super::*;

    #[test]
    fn tls_setup_without_a_provider_says_what_to_do() {
        let error = TlsConnector::new(&TlsOptions::new()).expect_err("no provider");
        assert!(matches!(error, Error::NoCryptoProvider), "{error}");
        assert!(error.to_string().contains("install_default"), "{error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_accept_hosts_and_ips_and_reject_garbage() {
        let connector = TlsConnector::new(&TlsOptions::new()).expect("default roots load");
        assert!(connector.server_name("imap.example.com").is_ok());
        assert!(connector.server_name("127.0.0.1").is_ok());
        assert!(connector.server_name("[::1]").is_ok());
        assert!(matches!(connector.server_name("bad name!"), Err(Error::InvalidServerName { .. })));
        let overridden =
            TlsConnector::new(&TlsOptions::new().server_name("localhost")).expect("connector");
        assert_eq!(
            overridden.server_name("127.0.0.1").expect("name"),
            ServerName::try_from("localhost").expect("dns name")
        );
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_clear_error() {
        let missing = TlsOptions::new().ca_file("/nonexistent/ca.pem");
        assert!(matches!(TlsConnector::new(&missing), Err(Error::CaFile { .. })));
        let dir = std::env::temp_dir().join(format!("mailnet-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").expect("write temp file");
        let empty = TlsOptions::new().ca_file(&dir);
        let result = TlsConnector::new(&empty);
        let _ = std::fs::remove_file(&dir);
        assert!(matches!(result, Err(Error::CaFile { .. })), "{result:?}");
    }
}
