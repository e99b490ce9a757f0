//! [`Service`]: what a server speaks, told from the first bytes it sends, so that a client
//! pointed at the wrong port can say which one it reached instead of "malformed line".

use std::fmt;

/// A protocol recognised from a server's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// A TLS record (a handshake message or an alert): the port expects TLS from the first
    /// byte (imaps, pop3s).
    Tls,
    /// An IMAP greeting or status (`* OK`, `* PREAUTH`, `* BYE`).
    Imap,
    /// A POP3 status line (`+OK`, `-ERR`).
    Pop3,
    /// A three-digit reply code, as SMTP (and FTP) servers greet.
    Smtp,
    /// An SSH identification string (`SSH-`).
    Ssh,
    /// An HTTP status line (`HTTP/`).
    Http,
}

impl Service {
    /// The service whose greeting (or answer) starts `first`, if any is recognised. Needs
    /// only the first few bytes; case does not matter for the text protocols.
    ///
    /// ```
    /// use mailnet::Service;
    /// assert_eq!(Service::recognise(b"* OK [CAPABILITY IMAP4rev1] ready\r\n"), Some(Service::Imap));
    /// assert_eq!(Service::recognise(b"+OK Dovecot ready.\r\n"), Some(Service::Pop3));
    /// assert_eq!(Service::recognise(&[0x16, 0x03, 0x03, 0x00, 0x7a]), Some(Service::Tls));
    /// assert_eq!(Service::recognise(b"hello"), None);
    /// ```
    pub fn recognise(first: &[u8]) -> Option<Service> {
        // A TLS record: content type change_cipher_spec (20) … heartbeat (24), then the
        // major version 3 of SSL 3.0 and every TLS version.
        if let [kind, 3, ..] = first
            && (20..=24).contains(kind)
        {
            return Some(Service::Tls);
        }
        let starts = |prefix: &[u8]| {
            first.len() >= prefix.len() && first[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        if starts(b"* OK") || starts(b"* PREAUTH") || starts(b"* BYE") {
            return Some(Service::Imap);
        }
        if starts(b"+OK") || starts(b"-ERR") {
            return Some(Service::Pop3);
        }
        if starts(b"SSH-") {
            return Some(Service::Ssh);
        }
        if starts(b"HTTP/") {
            return Some(Service::Http);
        }
        if let [a, b, c, separator, ..] = first
            && [a, b, c].iter().all(|d| d.is_ascii_digit())
            && matches!(separator, b' ' | b'-')
        {
            return Some(Service::Smtp);
        }
        None
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Tls => "TLS",
            Service::Imap => "IMAP",
            Service::Pop3 => "POP3",
            Service::Smtp => "SMTP",
            Service::Ssh => "SSH",
            Service::Http => "HTTP",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Service;

    #[test]
    fn first_bytes_name_the_service() {
        let table: &[(&[u8], Option<Service>)] = &[
            (b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n", Some(Service::Imap)),
            (b"* ok hello", Some(Service::Imap)),
            (b"* PREAUTH welcome", Some(Service::Imap)),
            (b"* BYE too many connections", Some(Service::Imap)),
            (b"+OK Dovecot ready.\r\n", Some(Service::Pop3)),
            (b"-ERR [SYS/TEMP] busy", Some(Service::Pop3)),
            (b"220 mail.example.com ESMTP\r\n", Some(Service::Smtp)),
            (b"421-busy", Some(Service::Smtp)),
            (b"SSH-2.0-OpenSSH_9.2\r\n", Some(Service::Ssh)),
            (b"HTTP/1.1 400 Bad Request\r\n", Some(Service::Http)),
            // ServerHello (handshake, TLS 1.2 record version) and an alert.
            (&[0x16, 0x03, 0x03, 0x00, 0x5a, 0x02], Some(Service::Tls)),
            (&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], Some(Service::Tls)),
            (&[0x16], None),
            (&[0x16, 0x04], None),
            (b"", None),
            (b"*", None),
            (b"+ go ahead", None),
            (b"12", None),
            (b"1234 x", None),
            (b"hello\r\n", None),
        ];
        for (bytes, expected) in table {
            assert_eq!(
                Service::recognise(bytes),
                *expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(Service::Pop3.to_string(), "POP3");
    }
}
