//! What to do when a server was refused for safety: its certificate is not trusted, or
//! logging in would send the password in clear text. The libraries say what happened;
//! this names the dsync options that fix it.

use std::error::Error as StdError;

use dsync_core::StorageError;
use mailnet::CertificateProblem;

/// How to check a fingerprint on the server, spelled as openssl prints it.
const CHECK_FINGERPRINT: &str =
    "after comparing it with `openssl x509 -noout -fingerprint -sha256 -in CERT.pem` on the server";

/// Advice for a security refusal somewhere in `error`'s causes, if it is one.
pub(crate) fn advice(error: &StorageError) -> Option<String> {
    let mut cause: Option<&(dyn StdError + 'static)> = error.cause().map(|c| c as _);
    while let Some(error) = cause {
        if let Some(imap) = error.downcast_ref::<imapc::Error>() {
            return imap_advice(imap);
        }
        if let Some(pop3) = error.downcast_ref::<pop3c::Error>() {
            return pop3_advice(pop3);
        }
        if let Some(net) = error.downcast_ref::<mailnet::Error>() {
            return net_advice(net);
        }
        cause = match error.downcast_ref::<StorageError>() {
            Some(storage) => storage.cause().map(|c| c as _),
            None => error.source(),
        };
    }
    None
}

fn imap_advice(error: &imapc::Error) -> Option<String> {
    match error {
        imapc::Error::Net(net) => net_advice(net),
        imapc::Error::StartTlsUnavailable => Some(clear_text_refused("imap", "STARTTLS")),
        imapc::Error::LoginDisabled => Some(
            "the server takes no password without TLS: use imap:// (STARTTLS) or imaps:// \
             instead of ?tls=none or -o imapc_ssl=no"
                .into(),
        ),
        _ => None,
    }
}

fn pop3_advice(error: &pop3c::Error) -> Option<String> {
    match error {
        pop3c::Error::Net(net) => net_advice(net),
        pop3c::Error::StlsUnavailable => Some(clear_text_refused("pop3", "STLS")),
        pop3c::Error::LoginDisabled => Some(
            "the server takes no password without TLS: use pop3:// (STLS) or pop3s:// \
             instead of ?tls=none or -o pop3c_ssl=no"
                .into(),
        ),
        _ => None,
    }
}

fn clear_text_refused(scheme: &str, command: &str) -> String {
    format!(
        "the server does not offer {command}, and logging in without it would send the \
         password in clear text: use {scheme}s:// if the server has it, or, only on a network \
         you trust, add ?tls=none to the location ({scheme}://USER@HOST?tls=none, or -o \
         {scheme}c_ssl=no for {scheme}c:)"
    )
}

fn net_advice(error: &mailnet::Error) -> Option<String> {
    let Some(rejection) = error.certificate_rejection() else {
        return error
            .is_configuration()
            .then(|| "check the TLS settings: --ca-file, --ca-dir, --fingerprint".to_owned());
    };
    let pin = format!("pin its fingerprint with --fingerprint ({CHECK_FINGERPRINT})");
    Some(match rejection.problem() {
        _ if rejection.fingerprints_given() > 0 => format!(
            "the server's certificate is not the one pinned with --fingerprint: if it was \
             replaced on purpose, {pin}; if not, someone may be in the way"
        ),
        CertificateProblem::Untrusted if rejection.is_self_signed() => format!(
            "if it is the server's own self-signed certificate, trust exactly it: --ca-file \
             with a copy of it (the server's ssl_cert file), or {pin}"
        ),
        CertificateProblem::Untrusted => format!(
            "if the server's certificate comes from a private CA, give that CA with --ca-file \
             or --ca-dir; or, to trust exactly this certificate, {pin}"
        ),
        CertificateProblem::WrongName => format!(
            "connect with a name the certificate carries; or, to trust exactly this \
             certificate under any name, {pin}"
        ),
        CertificateProblem::Version1 => "give the server a version 3 certificate (`openssl \
             req -x509` makes one): rustls cannot use version 1 certificates at all, not even \
             with -o imapc_ssl_verify=no"
            .to_owned(),
        CertificateProblem::OutsideValidity => format!(
            "renew the server's certificate; or, to trust exactly this certificate whatever \
             its dates, {pin}"
        ),
        _ => format!("to trust exactly this certificate, {pin}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_core::ErrorKind;

    fn storage(error: impl StdError + Send + Sync + 'static) -> StorageError {
        StorageError::with_source(ErrorKind::Config, "IMAP connecting", error)
    }

    #[test]
    fn clear_text_refusals_name_the_way_out() {
        let imap = advice(&storage(imapc::Error::StartTlsUnavailable)).expect("advice");
        assert!(imap.contains("?tls=none") && imap.contains("imaps://"), "{imap}");
        assert!(imap.contains("-o imapc_ssl=no"), "{imap}");
        let pop3 = advice(&storage(pop3c::Error::StlsUnavailable)).expect("advice");
        assert!(pop3.contains("?tls=none") && pop3.contains("pop3s://"), "{pop3}");
        assert!(pop3.contains("-o pop3c_ssl=no"), "{pop3}");
        let disabled = advice(&storage(imapc::Error::LoginDisabled)).expect("advice");
        assert!(disabled.contains("instead of ?tls=none"), "{disabled}");
        // Wrapped once more (the IMAP+POP3 pair): still found.
        let nested = storage(storage(pop3c::Error::LoginDisabled));
        assert!(advice(&nested).expect("advice").contains("pop3s://"));
        assert_eq!(advice(&storage(imapc::Error::Protocol("x".into()))), None);
    }
}
