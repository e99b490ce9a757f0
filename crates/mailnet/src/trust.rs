//! Reading the operator's CA certificates: a PEM file (Dovecot's `ssl_client_ca_file`) or
//! a directory of them (`ssl_client_ca_dir`).

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

/// Every certificate in a PEM file; an error when there is none or one is damaged.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let fail = |reason: String| Error::CaFile { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certificates = certificates_in(&bytes).map_err(fail)?;
    if certificates.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(certificates)
}

/// Every certificate in the PEM files of a directory. OpenSSL (so Dovecot) looks up
/// `c_rehash` names (`<hash>.0`, usually links to the real files); reading every file
/// finds those and plain `*.pem` files alike. Files without a certificate (CRLs, keys,
/// READMEs) are skipped; a damaged certificate is an error naming its file.
pub(crate) fn read_ca_dir(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let fail = |reason: String| Error::CaFile { path: path.to_path_buf(), reason };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| fail(e.to_string()))? {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        // Follows links: the c_rehash names are links.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut certificates = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
        let found =
            certificates_in(&bytes).map_err(|e| fail(format!("{}: {e}", file.display())))?;
        for certificate in found {
            // The hash link and the file it points to hold the same certificate.
            if !certificates.contains(&certificate) {
                certificates.push(certificate);
            }
        }
    }
    if certificates.is_empty() {
        return Err(fail("no PEM certificate in any file of the directory".into()));
    }
    Ok(certificates)
}

fn certificates_in(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_directory_yields_each_certificate_once_and_skips_other_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("server.pem"), PEM).expect("write");
        std::os::unix::fs::symlink("server.pem", dir.path().join("0a1b2c3d.0")).expect("link");
        std::fs::write(dir.path().join("README"), "not a certificate\n").expect("write");
        std::fs::write(
            dir.path().join("0a1b2c3d.r0"),
            "-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n",
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("subdir")).expect("mkdir");
        let found = read_ca_dir(dir.path()).expect("one certificate");
        assert_eq!(found, vec![CertificateDer::from(vec![0x30, 0x00])]);
    }

    #[test]
    fn empty_missing_or_damaged_directories_are_clear_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = read_ca_dir(dir.path()).expect_err("no certificate");
        assert!(empty.to_string().contains("no PEM certificate"), "{empty}");
        let missing = read_ca_dir(&dir.path().join("nope")).expect_err("missing");
        assert!(matches!(missing, Error::CaFile { .. }), "{missing}");
        std::fs::write(dir.path().join("bad.pem"), "-----BEGIN CERTIFICATE-----\n!!!\n")
            .expect("write");
        let damaged = read_ca_dir(dir.path()).expect_err("damaged");
        assert!(damaged.to_string().contains("bad.pem"), "{damaged}");
    }
}
