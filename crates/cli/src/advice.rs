//! What to do when a server was refused for safety (its certificate is not trusted, or
//! logging in would send the password in clear text) or the location is wrong (the port
//! speaks another protocol, TLS where plain text was meant, or the host does not exist).
//! The libraries say what happened; this names the dsync options that fix it. Errors that
//! need no advice get none: a hint belongs to the error it fits.

use std::error::Error as StdError;

use dsync_core::StorageError;
use mailnet::{CertificateProblem, Service};

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
            return net_advice(net, None);
        }
        cause = match error.downcast_ref::<StorageError>() {
            Some(storage) => storage.cause().map(|c| c as _),
            None => error.source(),
        };
    }
    None
}

/// The two protocols, for naming their schemes, settings and ports.
#[derive(Clone, Copy)]
enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    fn scheme(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "IMAP",
            Protocol::Pop3 => "POP3",
        }
    }

    /// The usual plain (STARTTLS) and implicit-TLS ports.
    fn ports(self) -> (u16, u16) {
        match self {
            Protocol::Imap => (143, 993),
            Protocol::Pop3 => (110, 995),
        }
    }
}

/// The port speaks TLS from the first byte, where plain text (or STARTTLS) was asked for.
fn implicit_tls_port(protocol: Protocol) -> String {
    let scheme = protocol.scheme();
    let (plain, _) = protocol.ports();
    format!(
        "this port speaks TLS: use {scheme}s://… (-o {scheme}c_ssl={scheme}s with {scheme}c:), \
         or {scheme}://… at the STARTTLS port, usually {plain}"
    )
}

/// What a port that answered in another protocol needs, as seen from `protocol`.
fn wrong_service(protocol: Protocol, found: Service, tls: bool) -> String {
    let other = match found {
        Service::Imap => Some(Protocol::Imap),
        Service::Pop3 => Some(Protocol::Pop3),
        _ => None,
    };
    match other {
        Some(other) => {
            let scheme = other.scheme();
            let url = if tls { format!("{scheme}s://") } else { format!("{scheme}://") };
            let article = if matches!(other, Protocol::Imap) { "an" } else { "a" };
            let (plain, tls) = protocol.ports();
            format!(
                "this is {article} {} server: use {url}…, or the {} port: usually {plain}, \
                 {tls} for {}s://",
                other.name(),
                protocol.name(),
                protocol.scheme()
            )
        }
        None => format!(
            "this port speaks {found}, not {}: check the port: {} is usually {}, {} for {}s://",
            protocol.name(),
            protocol.name(),
            protocol.ports().0,
            protocol.ports().1,
            protocol.scheme()
        ),
    }
}

fn imap_advice(error: &imapc::Error) -> Option<String> {
    match error {
        imapc::Error::Net(net) => net_advice(net, Some(Protocol::Imap)),
        imapc::Error::ImplicitTlsPort { .. } => Some(implicit_tls_port(Protocol::Imap)),
        imapc::Error::WrongService { found, tls, .. } => {
            Some(wrong_service(Protocol::Imap, *found, *tls))
        }
        imapc::Error::StartTlsUnavailable | imapc::Error::StartTlsRefused { .. } => {
            Some(clear_text_refused("imap", "STARTTLS"))
        }
        imapc::Error::PreauthWithoutTls => Some(
            "the server logs in without credentials (PREAUTH) and so cannot start TLS: use \
             imaps:// if it has it, or, only on a network you trust, add ?tls=none"
                .into(),
        ),
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
        pop3c::Error::Net(net) => net_advice(net, Some(Protocol::Pop3)),
        pop3c::Error::ImplicitTlsPort { .. } => Some(implicit_tls_port(Protocol::Pop3)),
        pop3c::Error::WrongService { found, tls, .. } => {
            Some(wrong_service(Protocol::Pop3, *found, *tls))
        }
        pop3c::Error::StlsUnavailable | pop3c::Error::StlsRefused { .. } => {
            Some(clear_text_refused("pop3", "STLS"))
        }
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

fn net_advice(error: &mailnet::Error, protocol: Option<Protocol>) -> Option<String> {
    let Some(rejection) = error.certificate_rejection() else {
        return match error {
            mailnet::Error::NotTls { service, .. } => Some(not_tls(protocol, *service)),
            _ if error.is_tls_incompatibility() => Some(
                "the server and dsync share no TLS version or cipher suite (dsync speaks TLS \
                 1.2 and 1.3 with current ciphers only): update the server's TLS settings"
                    .into(),
            ),
            _ if error.is_unknown_host() => Some("check the host name".into()),
            _ => None,
        };
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

/// The port answered implicit TLS in plain text.
fn not_tls(protocol: Option<Protocol>, service: Option<Service>) -> String {
    let protocol = protocol.unwrap_or(Protocol::Imap);
    let (plain, tls) = protocol.ports();
    let scheme = protocol.scheme();
    match service {
        Some(Service::Imap) if matches!(protocol, Protocol::Imap) => format!(
            "this port speaks plain IMAP: use imap://… for STARTTLS (-o imapc_ssl=starttls with \
             imapc:), or imaps://… at the imaps port, usually {tls}"
        ),
        Some(Service::Pop3) if matches!(protocol, Protocol::Pop3) => format!(
            "this port speaks plain POP3: use pop3://… for STLS (-o pop3c_ssl=starttls with \
             pop3c:), or pop3s://… at the pop3s port, usually {tls}"
        ),
        Some(found @ (Service::Imap | Service::Pop3)) => wrong_service(protocol, found, false),
        _ => format!(
            "this port does not speak TLS: check the port: usually {tls} for {scheme}s://, \
             {plain} for {scheme}://"
        ),
    }
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

    #[test]
    fn wrong_ports_and_hosts_name_the_way_out() {
        let waited = std::time::Duration::from_secs(15);
        let imap_tls = advice(&storage(imapc::Error::ImplicitTlsPort { waited })).expect("advice");
        assert!(imap_tls.starts_with("this port speaks TLS: use imaps://"), "{imap_tls}");
        let pop3_tls = advice(&storage(pop3c::Error::ImplicitTlsPort { waited })).expect("advice");
        assert!(pop3_tls.starts_with("this port speaks TLS: use pop3s://"), "{pop3_tls}");
        let pop3_server =
            imapc::Error::WrongService { found: Service::Pop3, greeting: "+OK".into(), tls: true };
        let advice_text = advice(&storage(pop3_server)).expect("advice");
        assert!(advice_text.starts_with("this is a POP3 server: use pop3s://"), "{advice_text}");
        let smtp = pop3c::Error::WrongService {
            found: Service::Smtp,
            greeting: "220 hi".into(),
            tls: false,
        };
        let advice_text = advice(&storage(smtp)).expect("advice");
        assert!(advice_text.starts_with("this port speaks SMTP, not POP3"), "{advice_text}");
        let plain =
            |service| mailnet::Error::NotTls { host: "h".into(), service, received: String::new() };
        let advice_text =
            advice(&storage(imapc::Error::Net(plain(Some(Service::Imap))))).expect("advice");
        assert!(
            advice_text.starts_with("this port speaks plain IMAP: use imap://"),
            "{advice_text}"
        );
        let advice_text =
            advice(&storage(pop3c::Error::Net(plain(Some(Service::Imap))))).expect("advice");
        assert!(advice_text.starts_with("this is an IMAP server: use imap://"), "{advice_text}");
        let unknown = mailnet::Error::Resolve {
            host: "mail.invalid".into(),
            source: std::io::Error::other("Name or service not known"),
        };
        assert_eq!(
            advice(&storage(imapc::Error::Net(unknown))).as_deref(),
            Some("check the host name")
        );
        // Not every TLS-ish error is about certificates: none gets a --ca-file hint.
        let ca_file =
            mailnet::Error::CaFile { path: "/x.pem".into(), reason: "no certificate".into() };
        assert_eq!(advice(&storage(imapc::Error::Net(ca_file))), None);
        let refused = imapc::Error::StartTlsRefused { code: None, text: "no".into() };
        assert!(advice(&storage(refused)).expect("advice").contains("?tls=none"));
    }
}
