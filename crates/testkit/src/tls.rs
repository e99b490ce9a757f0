//! Throw-away certificates made with the `openssl` command that Dovecot's Debian packages
//! already pull in: a CA and a server certificate for `localhost` / `127.0.0.1` (the
//! default), or a self-signed server certificate as operators' old servers have.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub(crate) struct TestCertificates {
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
}

impl TestCertificates {
    /// Writes a self-signed `server.pem` / `server.key` for `CN=localhost` into `dir`, as
    /// [`self_signed_certificate`] makes it.
    pub(crate) fn generate_self_signed(dir: &Path) -> TestCertificates {
        let (server_cert, server_key) = self_signed_certificate(dir, "server", "localhost");
        TestCertificates { server_cert, server_key }
    }

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

/// Makes a self-signed certificate the way `openssl req -x509 -newkey rsa:2048 -nodes
/// -subj /CN=<common_name>` does with OpenSSL's default configuration, as operators (and
/// Dovecot's packaging) do for a mail server: `basicConstraints=critical,CA:TRUE` (spelled
/// out here so the result does not depend on the system's openssl.cnf) and no
/// subjectAltName, so only the common name names the server. Writes `<stem>.pem` and
/// `<stem>.key` into `dir` and returns their paths.
pub fn self_signed_certificate(dir: &Path, stem: &str, common_name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3",
        "-subj",
        &format!("/CN={common_name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-keyout",
        path(&key),
        "-out",
        path(&cert),
    ]);
    // Dovecot's login processes read the key after dropping privileges on config reloads.
    let _ = Command::new("chmod").arg("644").arg(&key).status();
    (cert, key)
}

/// The SHA-256 fingerprint of a PEM certificate as `openssl x509 -noout -fingerprint
/// -sha256` prints it, spelled `sha256:AB:CD:…` — what an operator reads off a server.
pub fn sha256_fingerprint(certificate: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", path(certificate)])
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "openssl x509 -fingerprint failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let hex = text.trim().split_once('=').expect("openssl prints NAME=FINGERPRINT").1;
    format!("sha256:{hex}")
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
