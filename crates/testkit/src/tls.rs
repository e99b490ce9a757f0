//! A throw-away CA and a server certificate for `localhost` / `127.0.0.1`, made with the
//! `openssl` command that Dovecot's Debian packages already pull in.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub(crate) struct TestCertificates {
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
}

impl TestCertificates {
    /// Writes `ca.pem`, `ca.key`, `server.pem`, `server.key` into `dir`.
    pub(crate) fn generate(dir: &Path) -> TestCertificates {
        let ca_key = dir.join("ca.key");
        let ca_pem = dir.join("ca.pem");
        let server_key = dir.join("server.key");
        let server_csr = dir.join("server.csr");
        let server_cert = dir.join("server.pem");
        let extensions = dir.join("server.ext");
        std::fs::write(
            &extensions,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3",
            "-subj",
            "/CN=dsync-rs test CA",
            "-keyout",
            path(&ca_key),
            "-out",
            path(&ca_pem),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            path(&server_key),
            "-out",
            path(&server_csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&server_csr),
            "-CA",
            path(&ca_pem),
            "-CAkey",
            path(&ca_key),
            "-CAcreateserial",
            "-days",
            "3",
            "-out",
            path(&server_cert),
            "-extfile",
            path(&extensions),
        ]);
        // Dovecot reads the key as root before dropping privileges, but keep it readable
        // for the login processes' config reload as well.
        let _ = Command::new("chmod").arg("644").arg(&server_key).status();
        TestCertificates { server_cert, server_key }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl").args(args).output().expect(
        "the `openssl` command is needed to make test certificates (apt-get install -y openssl)",
    );
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
