//! Server certificate verification: rustls's WebPKI verifier, plus the two ways an operator
//! can trust one certificate by name instead of by a CA.
//!
//! * **Pinned by the CA file or directory.** Dovecot's and `openssl req -x509`'s default
//!   self-signed certificates say `CA:TRUE`, which WebPKI refuses as a server's own
//!   certificate (`CaUsedAsEndEntity`) even when it is the very certificate in the CA file;
//!   OpenSSL (doveadm, mbsync) accepts it. A certificate byte-identical to one of the CA
//!   file's is therefore accepted whatever WebPKI says about its chain, CA flag or dates —
//!   but only for the server's name: its DNS/IP subjectAltNames, or, when it has no DNS
//!   subjectAltName, its common name (as OpenSSL's `X509_check_host` does for Dovecot).
//! * **Pinned by SHA-256 fingerprint.** The certificate with exactly that digest is
//!   accepted, nothing else is checked about it: a fingerprint is an exact identity, which
//!   only the holder of the certificate's private key can present (the handshake signature
//!   is still verified against it). Its name is not checked, because the certificates this
//!   is for (an old server's self-signed one, often for `localhost` or an internal name,
//!   reached by IP during a migration) rarely name the host dialled, and a name check would
//!   add nothing an attacker without the key could get past.
//!
//! Everything else goes through WebPKI unchanged. A refusal carries a
//! [`CertificateRejection`]: what was wrong, the certificate's fingerprint, and whether it
//! is self-signed, so the caller can say which of the options above applies.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::Fingerprint;
use crate::x509;

/// Why a server's certificate was refused, and what the operator needs to trust it
/// knowingly: its fingerprint and whether it is self-signed.
#[derive(Debug, Clone)]
pub struct CertificateRejection {
    reason: CertificateError,
    problem: CertificateProblem,
    fingerprint: Fingerprint,
    /// The name verified against.
    server_name: String,
    /// The names the certificate carries, for the message.
    names: Vec<String>,
    self_signed: bool,
    in_ca_file: bool,
    fingerprints_given: usize,
}

/// The kind of [`CertificateRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// Not issued by a trusted CA: self-signed, or signed by a private CA not given.
    Untrusted,
    /// Trusted, but not for the name connected to.
    WrongName,
    /// Expired or not yet valid.
    OutsideValidity,
    /// An X.509 version 1 certificate (no extensions): rustls cannot use it at all, not
    /// even to check the handshake signature, however it is trusted.
    Version1,
    /// Refused for another reason (encoding, algorithm, purpose, revocation).
    Invalid,
}

impl CertificateRejection {
    /// What was wrong.
    pub fn problem(&self) -> CertificateProblem {
        self.problem
    }

    /// rustls's detailed reason.
    pub fn reason(&self) -> &CertificateError {
        &self.reason
    }

    /// The SHA-256 fingerprint of the certificate the server presented.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The host names and addresses the certificate carries (a common name is marked
    /// `(common name)`; it counts only without DNS subjectAltNames).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when the presented certificate is self-signed (issuer = subject).
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// True when the certificate is in the CA file or directory (so only its name failed).
    pub fn is_in_ca_file(&self) -> bool {
        self.in_ca_file
    }

    /// How many fingerprints were pinned (none of which matched).
    pub fn fingerprints_given(&self) -> usize {
        self.fingerprints_given
    }
}

impl fmt::Display for CertificateRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server's certificate was refused: ")?;
        match self.problem {
            CertificateProblem::Untrusted if self.self_signed => {
                f.write_str(
                    "it is self-signed, and neither a CA file nor a fingerprint trusts it",
                )?;
            }
            CertificateProblem::Untrusted => {
                write!(f, "it is not issued by a trusted CA ({})", self.reason)?;
            }
            CertificateProblem::Version1 => f.write_str(
                "it is an X.509 version 1 certificate, which cannot be used here even when \
                 trusted (version 3 is needed)",
            )?,
            CertificateProblem::WrongName if self.names.is_empty() => {
                write!(f, "it is not valid for {} and names no host", self.server_name)?;
            }
            CertificateProblem::WrongName => {
                let names = self.names.join(", ");
                write!(f, "it is not valid for {}, only for {names}", self.server_name)?;
            }
            _ => write!(f, "{}", self.reason)?,
        }
        write!(f, "; its fingerprint is {}", self.fingerprint)?;
        match self.fingerprints_given {
            0 => Ok(()),
            1 => f.write_str(", not the pinned one"),
            _ => f.write_str(", none of the pinned ones"),
        }
    }
}

impl std::error::Error for CertificateRejection {}

/// WebPKI plus certificates pinned by the CA file/directory or by fingerprint.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of the CA file and directory, accepted as the server's own.
    pinned: Vec<CertificateDer<'static>>,
    fingerprints: Vec<Fingerprint>,
}

impl PinningVerifier {
    pub(crate) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
        fingerprints: Vec<Fingerprint>,
    ) -> PinningVerifier {
        PinningVerifier { webpki, pinned, fingerprints }
    }

    fn reject(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        fingerprint: Fingerprint,
        reason: CertificateError,
        in_ca_file: bool,
    ) -> rustls::Error {
        let facts = x509::inspect(end_entity).unwrap_or_default();
        let problem = match &reason {
            _ if facts.version == 1 => CertificateProblem::Version1,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateProblem::WrongName
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => CertificateProblem::OutsideValidity,
            // WebPKI reports CaUsedAsEndEntity (a self-signed CA:TRUE certificate) as Other.
            CertificateError::UnknownIssuer | CertificateError::Other(_) => {
                CertificateProblem::Untrusted
            }
            _ => CertificateProblem::Invalid,
        };
        let rejection = CertificateRejection {
            reason,
            problem,
            fingerprint,
            server_name: server_name.to_str().into_owned(),
            names: facts.names(),
            self_signed: facts.self_signed,
            in_ca_file,
            fingerprints_given: self.fingerprints.len(),
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejection))))
    }
}

/// Checks the name of a pinned certificate: what WebPKI checks, and the common name when
/// the certificate has no DNS subjectAltName (OpenSSL's rule, which Dovecot relies on).
fn check_pinned_name(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), CertificateError> {
    let parsed = ParsedCertificate::try_from(end_entity).map_err(|error| match error {
        rustls::Error::InvalidCertificate(reason) => reason,
        _ => CertificateError::BadEncoding,
    })?;
    let reason = match verify_server_name(&parsed, server_name) {
        Ok(()) => return Ok(()),
        Err(rustls::Error::InvalidCertificate(reason)) => reason,
        Err(_) => CertificateError::NotValidForName,
    };
    if let ServerName::DnsName(host) = server_name
        && let Some(facts) = x509::inspect(end_entity)
        && !facts.has_dns_alt_name
        && facts.common_names.iter().any(|name| x509::host_matches(name, host.as_ref()))
    {
        return Ok(());
    }
    Err(reason)
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = Fingerprint::of(end_entity);
        if self.fingerprints.contains(&fingerprint) {
            // Still a certificate rustls can take the key from for the handshake signature.
            return match ParsedCertificate::try_from(end_entity) {
                Ok(_) => Ok(ServerCertVerified::assertion()),
                Err(rustls::Error::InvalidCertificate(reason)) => {
                    Err(self.reject(end_entity, server_name, fingerprint, reason, false))
                }
                Err(other) => Err(other),
            };
        }
        let reason = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(rustls::Error::InvalidCertificate(reason)) => reason,
            Err(other) => return Err(other),
        };
        let pinned = self.pinned.iter().any(|certificate| certificate == end_entity);
        if !pinned {
            return Err(self.reject(end_entity, server_name, fingerprint, reason, false));
        }
        match check_pinned_name(end_entity, server_name) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(reason) => Err(self.reject(end_entity, server_name, fingerprint, reason, true)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The rejection inside a rustls error, if our verifier made it.
pub(crate) fn rejection_of(error: &rustls::Error) -> Option<&CertificateRejection> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<CertificateRejection>()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::RootCertStore;

    const SELF_SIGNED_CA: &[u8] = include_bytes!("../tests/data/self-signed-ca.der");
    const OTHER_SELF_SIGNED_CA: &[u8] = include_bytes!("../tests/data/self-signed-ca-other.der");
    const WITH_ALT_NAMES: &[u8] = include_bytes!("../tests/data/self-signed-san.der");
    const DOVECOT_MKCERT: &[u8] = include_bytes!("../tests/data/dovecot-mkcert.der");
    const VERSION_1: &[u8] = include_bytes!("../tests/data/self-signed-v1.der");

    fn der(bytes: &'static [u8]) -> CertificateDer<'static> {
        CertificateDer::from(bytes)
    }

    fn verifier(pinned: &[&'static [u8]], fingerprints: Vec<Fingerprint>) -> PinningVerifier {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for certificate in pinned {
            roots.add(der(certificate)).expect("test certificate is a valid anchor");
        }
        let provider =
            crate::provider::crypto_provider().expect("a provider feature is on in tests");
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        PinningVerifier::new(webpki, pinned.iter().map(|c| der(c)).collect(), fingerprints)
    }

    fn verify(
        verifier: &PinningVerifier,
        certificate: &'static [u8],
        name: &str,
    ) -> Result<(), rustls::Error> {
        // The test certificates are valid from December 2026 for a hundred years.
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(4_000_000_000));
        let name = ServerName::try_from(name.to_owned()).expect("server name");
        verifier.verify_server_cert(&der(certificate), &[], &name, &[], now).map(|_| ())
    }

    fn rejection(result: Result<(), rustls::Error>) -> CertificateRejection {
        let error = result.expect_err("must be refused");
        rejection_of(&error).cloned().unwrap_or_else(|| panic!("not a rejection: {error:?}"))
    }

    #[test]
    fn webpki_alone_refuses_a_self_signed_ca_even_when_it_is_the_anchor() {
        // The bug this module exists for: the CA file holds exactly the server certificate.
        let plain = verifier(&[SELF_SIGNED_CA], Vec::new());
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(4_000_000_000));
        let name = ServerName::try_from("imap.example.com").expect("name");
        let error = plain
            .webpki
            .verify_server_cert(&der(SELF_SIGNED_CA), &[], &name, &[], now)
            .expect_err("webpki refuses CA:TRUE as end entity");
        assert!(format!("{error:?}").contains("CaUsedAsEndEntity"), "{error:?}");
    }

    #[test]
    fn a_certificate_from_the_ca_file_is_accepted_for_its_own_names_only() {
        let pinned = verifier(&[SELF_SIGNED_CA, WITH_ALT_NAMES, DOVECOT_MKCERT], Vec::new());
        // CA:TRUE, no subjectAltName: the common name counts.
        verify(&pinned, SELF_SIGNED_CA, "imap.example.com").expect("pinned, CN matches");
        verify(&pinned, SELF_SIGNED_CA, "IMAP.example.COM").expect("case-insensitive");
        // Dovecot's mkcert.sh: no basicConstraints, no subjectAltName.
        verify(&pinned, DOVECOT_MKCERT, "imap.example.com").expect("mkcert certificate");
        // With subjectAltNames those decide and the common name does not count.
        verify(&pinned, WITH_ALT_NAMES, "mail.example.com").expect("DNS alt name");
        verify(&pinned, WITH_ALT_NAMES, "192.0.2.1").expect("IP alt name");
        let wrong = rejection(verify(&pinned, WITH_ALT_NAMES, "imap.example.com"));
        assert_eq!(wrong.problem(), CertificateProblem::WrongName);
        assert!(wrong.is_in_ca_file() && wrong.is_self_signed());
        assert!(
            wrong.to_string().contains(
                "it is not valid for imap.example.com, only for mail.example.com, 192.0.2.1"
            ),
            "{wrong}"
        );
        for name in ["pop.example.com", "127.0.0.1", "example.com"] {
            let wrong = rejection(verify(&pinned, SELF_SIGNED_CA, name));
            assert_eq!(wrong.problem(), CertificateProblem::WrongName, "{name}");
            assert_eq!(wrong.fingerprint(), Fingerprint::of(SELF_SIGNED_CA));
            assert_eq!(wrong.names(), ["imap.example.com (common name)"]);
        }
    }

    #[test]
    fn a_different_self_signed_certificate_is_untrusted() {
        let pinned = verifier(&[SELF_SIGNED_CA], Vec::new());
        let other = rejection(verify(&pinned, OTHER_SELF_SIGNED_CA, "imap.example.com"));
        assert_eq!(other.problem(), CertificateProblem::Untrusted);
        assert!(other.is_self_signed() && !other.is_in_ca_file());
        assert_eq!(other.fingerprint(), Fingerprint::of(OTHER_SELF_SIGNED_CA));
        let text = other.to_string();
        assert!(text.contains("self-signed"), "{text}");
        assert!(text.contains(&Fingerprint::of(OTHER_SELF_SIGNED_CA).to_string()), "{text}");
        // No CA file at all: the same.
        let none =
            rejection(verify(&verifier(&[], Vec::new()), SELF_SIGNED_CA, "imap.example.com"));
        assert_eq!(none.problem(), CertificateProblem::Untrusted);
    }

    #[test]
    fn a_pinned_fingerprint_accepts_exactly_that_certificate_under_any_name() {
        let pinned = verifier(&[], vec![Fingerprint::of(SELF_SIGNED_CA)]);
        for name in ["imap.example.com", "127.0.0.1", "other.example.net"] {
            verify(&pinned, SELF_SIGNED_CA, name).expect(name);
        }
        let other = rejection(verify(&pinned, OTHER_SELF_SIGNED_CA, "imap.example.com"));
        assert_eq!(other.fingerprints_given(), 1);
        assert!(other.to_string().contains("not the pinned one"), "{other}");
    }

    #[test]
    fn a_version_1_certificate_is_refused_clearly_however_it_is_trusted() {
        // `openssl x509 -req -signkey` without extensions: rustls cannot parse it as a
        // server certificate, so not even the handshake signature could be checked.
        for pinned in [
            verifier(&[VERSION_1], Vec::new()),
            verifier(&[], vec![Fingerprint::of(VERSION_1)]),
            verifier(&[], Vec::new()),
        ] {
            let refused = rejection(verify(&pinned, VERSION_1, "localhost"));
            assert_eq!(refused.problem(), CertificateProblem::Version1);
            assert!(refused.to_string().contains("X.509 version 1"), "{refused}");
        }
    }

    #[test]
    fn pinning_never_applies_to_certificates_that_are_not_pinned() {
        // A certificate in the CA file vouches for itself, not for others with its names.
        let pinned = verifier(&[WITH_ALT_NAMES], vec![Fingerprint::of(DOVECOT_MKCERT)]);
        let other = rejection(verify(&pinned, OTHER_SELF_SIGNED_CA, "imap.example.com"));
        assert_eq!(other.problem(), CertificateProblem::Untrusted);
        assert_eq!(other.fingerprints_given(), 1);
    }
}
