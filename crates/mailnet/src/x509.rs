//! The few facts about a certificate that webpki does not hand out but that matter when an
//! operator trusts one certificate by name, or is told why one was refused: the names it
//! carries (subject common names, DNS and IP subject alternative names), whether it is
//! self-signed and whether it says `CA:TRUE`.
//!
//! Only read from certificates webpki has already parsed; still, every read is bounds
//! checked and a malformed certificate simply yields "nothing known".

/// What [`inspect`] learned from a DER certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CertificateFacts {
    /// The subject's common names (OID 2.5.4.3) that are text.
    pub(crate) common_names: Vec<String>,
    /// True when the subjectAltName extension holds at least one dNSName.
    pub(crate) has_dns_alt_name: bool,
    /// The subjectAltName dNSNames that are text.
    pub(crate) dns_names: Vec<String>,
    /// The subjectAltName iPAddresses.
    pub(crate) ip_addresses: Vec<IpAddr>,
    /// True when issuer and subject are the same name.
    pub(crate) self_signed: bool,
    /// True when basicConstraints says `CA:TRUE`.
    pub(crate) is_ca: bool,
    /// The X.509 version: 1 (no extensions), 2 or 3.
    pub(crate) version: u8,
}

use std::net::IpAddr;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
/// `[0]` EXPLICIT: the version of the TBSCertificate.
const VERSION: u8 = 0xA0;
/// `[3]` EXPLICIT: the extensions of the TBSCertificate.
const EXTENSIONS: u8 = 0xA3;
/// `[2]` IMPLICIT IA5String in a GeneralName.
const DNS_NAME: u8 = 0x82;
/// `[7]` IMPLICIT OCTET STRING in a GeneralName.
const IP_ADDRESS: u8 = 0x87;
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];

/// Reads the facts from a DER certificate; `None` when it does not parse.
pub(crate) fn inspect(certificate: &[u8]) -> Option<CertificateFacts> {
    let certificate = Der::new(certificate).expect(SEQUENCE)?;
    let mut tbs = Der::new(Der::new(certificate).expect(SEQUENCE)?);
    let (tag, value) = tbs.next()?;
    // The version is `[0] EXPLICIT INTEGER` (0 for version 1, …), absent for version 1.
    let version = if tag == VERSION {
        let _serial_number = tbs.next()?;
        Der::new(value).expect(INTEGER)?.first()?.saturating_add(1)
    } else {
        1
    };
    let _signature_algorithm = tbs.expect(SEQUENCE)?;
    let issuer = tbs.expect(SEQUENCE)?;
    let _validity = tbs.expect(SEQUENCE)?;
    let subject = tbs.expect(SEQUENCE)?;
    let _public_key = tbs.expect(SEQUENCE)?;
    let mut facts = CertificateFacts {
        common_names: common_names(subject)?,
        self_signed: issuer == subject,
        version,
        ..CertificateFacts::default()
    };
    // The optional issuer and subject unique IDs, then the extensions.
    while let Some((tag, value)) = tbs.next() {
        if tag == EXTENSIONS {
            read_extensions(value, &mut facts)?;
        }
    }
    Some(facts)
}

fn common_names(subject: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut relative_names = Der::new(subject);
    while !relative_names.is_empty() {
        let mut attributes = Der::new(relative_names.expect(SET)?);
        while !attributes.is_empty() {
            let mut attribute = Der::new(attributes.expect(SEQUENCE)?);
            let oid = attribute.expect(OID)?;
            let (tag, value) = attribute.next()?;
            // UTF8String, PrintableString, TeletexString, IA5String: text a host name can be.
            if oid == COMMON_NAME
                && matches!(tag, 0x0C | 0x13 | 0x14 | 0x16)
                && let Ok(text) = std::str::from_utf8(value)
            {
                names.push(text.to_owned());
            }
        }
    }
    Some(names)
}

fn read_extensions(extensions: &[u8], facts: &mut CertificateFacts) -> Option<()> {
    let mut list = Der::new(Der::new(extensions).expect(SEQUENCE)?);
    while !list.is_empty() {
        let mut extension = Der::new(list.expect(SEQUENCE)?);
        let oid = extension.expect(OID)?;
        let (mut tag, mut value) = extension.next()?;
        if tag == BOOLEAN {
            (tag, value) = extension.next()?; // the critical flag
        }
        if tag != OCTET_STRING {
            return None;
        }
        if oid == SUBJECT_ALT_NAME {
            let mut names = Der::new(Der::new(value).expect(SEQUENCE)?);
            while let Some((tag, name)) = names.next() {
                match tag {
                    DNS_NAME => {
                        facts.has_dns_alt_name = true;
                        if let Ok(name) = std::str::from_utf8(name) {
                            facts.dns_names.push(name.to_owned());
                        }
                    }
                    IP_ADDRESS => {
                        if let Ok(v4) = <[u8; 4]>::try_from(name) {
                            facts.ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(name) {
                            facts.ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        } else if oid == BASIC_CONSTRAINTS {
            let mut constraints = Der::new(Der::new(value).expect(SEQUENCE)?);
            if let Some((BOOLEAN, flag)) = constraints.next() {
                facts.is_ca = flag.first().is_some_and(|&byte| byte != 0);
            }
        }
    }
    Some(())
}

impl CertificateFacts {
    /// The names a client can connect by, for a message: the subjectAltNames, or the
    /// common names (marked so) when there is no DNS subjectAltName.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names = self.dns_names.clone();
        if !self.has_dns_alt_name {
            names.extend(self.common_names.iter().map(|name| format!("{name} (common name)")));
        }
        names.extend(self.ip_addresses.iter().map(IpAddr::to_string));
        names
    }
}

/// Matches a host name against a certificate name the way OpenSSL's `X509_check_host` does
/// for a common name (which Dovecot uses): case-insensitive, and `*.example.com` stands
/// for exactly one whole leftmost label below a name of at least two labels.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let host = host.strip_suffix('.').unwrap_or(host);
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix("*.") else { return false };
    suffix.contains('.')
        && !suffix.contains('*')
        && host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
}

/// A cursor over DER elements with single-byte tags and definite lengths (all X.509 uses).
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag and contents.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1F == 0x1F {
            return None; // multi-byte tags do not occur in certificates
        }
        let (&first, mut rest) = rest.split_first()?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7F);
            if count == 0 || count > 4 {
                return None;
            }
            let (bytes, after) = rest.split_at_checked(count)?;
            rest = after;
            bytes.iter().fold(0usize, |length, &byte| (length << 8) | usize::from(byte))
        };
        let (value, after) = rest.split_at_checked(length)?;
        self.rest = after;
        Some((tag, value))
    }

    /// The next element's contents if it has `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (found, value) if found == tag => Some(value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_match_like_openssl_common_names() {
        for (pattern, host, expected) in [
            ("imap.example.com", "IMAP.Example.com", true),
            ("imap.example.com.", "imap.example.com", true),
            ("imap.example.com", "pop.example.com", false),
            ("*.example.com", "imap.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("*.com", "example.com", false),
            ("i*.example.com", "imap.example.com", false),
            ("*.*.example.com", "a.b.example.com", false),
            ("", "", true),
            ("localhost", "localhost", true),
        ] {
            assert_eq!(host_matches(pattern, host), expected, "{pattern} vs {host}");
        }
    }

    #[test]
    fn garbage_yields_nothing_and_does_not_panic() {
        assert_eq!(inspect(b""), None);
        assert_eq!(inspect(&[0x30]), None);
        assert_eq!(inspect(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(inspect(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        assert_eq!(inspect(&[0x1F, 0x00]), None);
        // Every prefix of a real certificate is refused cleanly.
        let certificate = include_bytes!("../tests/data/self-signed-ca.der");
        for end in 0..certificate.len() {
            assert_eq!(inspect(&certificate[..end]), None, "prefix of {end} bytes");
        }
    }

    #[test]
    fn reads_an_openssl_req_x509_certificate() {
        // `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
        //  -subj /CN=imap.example.com` (CA:TRUE, no subjectAltName), stored as DER.
        let facts = inspect(include_bytes!("../tests/data/self-signed-ca.der")).expect("parses");
        assert_eq!(facts.common_names, ["imap.example.com"]);
        assert!(facts.self_signed && facts.is_ca && !facts.has_dns_alt_name, "{facts:?}");
        assert_eq!(facts.names(), ["imap.example.com (common name)"]);
        // The same with subjectAltName=DNS:mail.example.com,IP:192.0.2.1.
        let facts = inspect(include_bytes!("../tests/data/self-signed-san.der")).expect("parses");
        assert!(facts.has_dns_alt_name && facts.is_ca, "{facts:?}");
        assert_eq!(facts.names(), ["mail.example.com", "192.0.2.1"]);
        // Dovecot's mkcert.sh: OU, CN and emailAddress, nsCertType only, no basicConstraints.
        let facts = inspect(include_bytes!("../tests/data/dovecot-mkcert.der")).expect("parses");
        assert_eq!(facts.common_names, ["imap.example.com"]);
        assert!(facts.self_signed && !facts.is_ca && !facts.has_dns_alt_name, "{facts:?}");
        assert_eq!(
            (facts.version, facts.names()),
            (3, vec!["imap.example.com (common name)".to_owned()])
        );
        // `openssl x509 -req -signkey` without extensions: version 1.
        let facts = inspect(include_bytes!("../tests/data/self-signed-v1.der")).expect("parses");
        assert_eq!((facts.version, facts.self_signed), (1, true), "{facts:?}");
        assert_eq!(facts.common_names, ["localhost"]);
    }
}
