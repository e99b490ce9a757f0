//! Parsing of storage locations given on the command line:
//! `imap://user@host[:port]`, `imaps://…`, `imap://…?tls=starttls`, and Dovecot-style
//! mail locations such as `maildir:PATH[:LAYOUT=fs][:UTF-8]`.

use std::fmt;

/// How an IMAP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Plain TCP (loopback or trusted networks only; the user asked for it by `imap://`).
    Plain,
    /// TLS from the first byte (`imaps://`).
    Tls,
    /// STARTTLS on the plain port (`imap://…?tls=starttls`); refused if not offered.
    StartTls,
}

/// An IMAP server account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImapLocation {
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) transport: Transport,
}

/// Where mail is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// An IMAP account.
    Imap(ImapLocation),
    /// A Maildir, with the location string kept whole for the storage's own parser.
    Maildir(String),
}

/// A location that could not be understood, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocationError {
    pub(crate) location: String,
    pub(crate) reason: String,
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid location {:?}: {}", self.location, self.reason)
    }
}

impl std::error::Error for LocationError {}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Imap(imap) => {
                let scheme = if imap.transport == Transport::Tls { "imaps" } else { "imap" };
                let host = if imap.host.contains(':') {
                    format!("[{}]", imap.host)
                } else {
                    imap.host.clone()
                };
                write!(f, "{scheme}://{}@{host}:{}", imap.user, imap.port)?;
                if imap.transport == Transport::StartTls {
                    f.write_str("?tls=starttls")?;
                }
                Ok(())
            }
            Location::Maildir(location) => f.write_str(location),
        }
    }
}

/// Parses a location argument.
pub(crate) fn parse(text: &str) -> Result<Location, LocationError> {
    let error =
        |reason: &str| LocationError { location: text.to_owned(), reason: reason.to_owned() };
    if let Some(rest) = text.strip_prefix("imap://") {
        return parse_imap(rest, false).map(Location::Imap).map_err(|r| error(&r));
    }
    if let Some(rest) = text.strip_prefix("imaps://") {
        return parse_imap(rest, true).map(Location::Imap).map_err(|r| error(&r));
    }
    if let Some(rest) = text.strip_prefix("maildir:") {
        if rest.is_empty() || rest.starts_with(':') {
            return Err(error("the Maildir path is missing (maildir:PATH)"));
        }
        return Ok(Location::Maildir(text.to_owned()));
    }
    Err(error("expected imap://user@host[:port], imaps://user@host[:port] or maildir:PATH"))
}

fn parse_imap(rest: &str, implicit_tls: bool) -> Result<ImapLocation, String> {
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('/') {
        return Err("a path after the host is not supported".into());
    }
    // The user name may itself contain '@' (user@example.com): the last '@' separates it.
    let (user, host_port) =
        authority.rsplit_once('@').ok_or("the user name is missing (imap://user@host)")?;
    let user = percent_decode(user)?;
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    if user.contains(':') && !user.contains('%') {
        // `user:password@host` would put a secret on the command line.
        return Err(
            "passwords are not accepted in the location; use --password-file or DSYNC_PASSWORD"
                .into(),
        );
    }
    let (host, port) = split_host_port(host_port)?;
    let mut transport = if implicit_tls { Transport::Tls } else { Transport::Plain };
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", "starttls")) if !implicit_tls => transport = Transport::StartTls,
            Some(("tls", "none")) if !implicit_tls => transport = Transport::Plain,
            Some(("tls", value)) => {
                return Err(format!(
                    "tls={value} is not valid here (starttls or none with imap://)"
                ));
            }
            _ => return Err(format!("unknown option {pair:?}")),
        }
    }
    let default_port = if implicit_tls { 993 } else { 143 };
    Ok(ImapLocation { user, host, port: port.unwrap_or(default_port), transport })
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unclosed '[' in IPv6 address")?;
        match after {
            "" => (host, None),
            port => (host, Some(port.strip_prefix(':').ok_or("expected ':' after ']'")?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let port = port
        .map(|p| {
            p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("invalid port {p:?}"))
        })
        .transpose()?;
    Ok((host.to_owned(), port))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex =
                text.get(index + 1..index + 3).ok_or("truncated %-escape in the user name")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid %-escape in the user name")?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user name is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imap(user: &str, host: &str, port: u16, transport: Transport) -> Location {
        Location::Imap(ImapLocation { user: user.into(), host: host.into(), port, transport })
    }

    #[test]
    fn parses_locations() {
        let cases = [
            ("imap://alice@127.0.0.1:1143", imap("alice", "127.0.0.1", 1143, Transport::Plain)),
            ("imap://alice@localhost", imap("alice", "localhost", 143, Transport::Plain)),
            (
                "imaps://alice@mail.example.com",
                imap("alice", "mail.example.com", 993, Transport::Tls),
            ),
            (
                "imap://a@b@host:10143/?tls=starttls",
                imap("a@b", "host", 10143, Transport::StartTls),
            ),
            ("imap://a%40b@[::1]:143", imap("a@b", "::1", 143, Transport::Plain)),
            ("imap://alice*master@host", imap("alice*master", "host", 143, Transport::Plain)),
            (
                "maildir:/var/mail/alice:LAYOUT=fs",
                Location::Maildir("maildir:/var/mail/alice:LAYOUT=fs".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).as_ref(), Ok(&expected), "{text}");
        }
    }

    #[test]
    fn rejects_bad_locations_with_reasons() {
        let cases = [
            ("imap://host", "user name is missing"),
            ("imap://@host", "user name is empty"),
            ("imap://alice:secret@host", "passwords are not accepted"),
            ("imap://alice@host:0", "invalid port"),
            ("imap://alice@host:99999", "invalid port"),
            ("imap://alice@:143", "host is missing"),
            ("imaps://alice@host?tls=starttls", "tls=starttls is not valid"),
            ("imap://alice@host?foo=bar", "unknown option"),
            ("imap://alice@host/INBOX", "path after the host"),
            ("maildir:", "path is missing"),
            ("mbox:/x", "expected imap://"),
            ("imap://a%4@host", "%-escape"),
            ("imap://a%zz@host", "invalid %-escape"),
        ];
        for (text, reason) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.to_string().contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn display_round_trips_and_shows_no_secret() {
        for text in
            ["imap://alice@127.0.0.1:1143", "imaps://bob@[::1]:993", "imap://c@h:143?tls=starttls"]
        {
            let location = parse(text).expect(text);
            assert_eq!(location.to_string(), text);
        }
    }
}
