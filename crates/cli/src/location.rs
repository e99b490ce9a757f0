//! Parsing of storage locations given on the command line:
//! `imap://user@host[:port]` (STARTTLS), `imap://…?tls=none` (clear text), `imaps://…`,
//! `pop3://…` (STLS), `pop3://…?tls=none`, `pop3s://…`,
//! an IMAP and a POP3 URL joined by a comma (UIDL-preserving migration), Dovecot's
//! `imapc:`/`pop3c:` (server taken from `-o imapc_*`/`pop3c_*` settings), and Dovecot-style
//! mail locations such as `maildir:PATH[:LAYOUT=fs][:UTF-8]` and `sdbox:PATH`.
//!
//! In batch runs a location is a template: `%u` (the user), `%n` (its part before `@`),
//! `%d` (its domain) and `%%` are replaced before parsing ([`expand`]).

use std::fmt;

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Clear text, credentials included: only when asked for by name (`…?tls=none`,
    /// `-o imapc_ssl=no`), never by default, loopback included.
    Plain,
    /// TLS from the first byte (`imaps://`, `pop3s://`).
    Tls,
    /// STARTTLS (STLS for POP3) on the plain port, the certificate checked before anything
    /// else is sent: what `imap://` and `pop3://` mean (as in mbsync). Refused, without
    /// sending credentials, when the server does not offer it.
    StartTls,
}

/// Which protocol a server location speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// IMAP.
    Imap,
    /// POP3.
    Pop3,
    /// ManageSieve (`--sieve-from`/`--sieve-to`).
    Sieve,
}

impl Protocol {
    fn scheme(self, transport: Transport) -> &'static str {
        match (self, transport) {
            (Protocol::Imap, Transport::Tls) => "imaps",
            (Protocol::Imap, _) => "imap",
            (Protocol::Pop3, Transport::Tls) => "pop3s",
            (Protocol::Pop3, _) => "pop3",
            (Protocol::Sieve, _) => "sieve",
        }
    }

    fn default_port(self, transport: Transport) -> u16 {
        match (self, transport) {
            (Protocol::Imap, Transport::Tls) => 993,
            (Protocol::Imap, _) => 143,
            (Protocol::Pop3, Transport::Tls) => 995,
            (Protocol::Pop3, _) => 110,
            (Protocol::Sieve, _) => 4190,
        }
    }
}

/// An account on an IMAP or POP3 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerLocation {
    pub(crate) protocol: Protocol,
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) transport: Transport,
}

/// The IMAP flavour of [`ServerLocation`] (most code only deals with IMAP).
pub(crate) type ImapLocation = ServerLocation;

/// Where mail is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// An IMAP account.
    Imap(ImapLocation),
    /// A POP3 account (needs the engine's POP3 adapter).
    Pop3(ServerLocation),
    /// The same account over IMAP (folders, flags) and POP3 (UIDLs and their order), as
    /// Dovecot's pop3_migration plugin pairs them.
    ImapPop3 {
        /// The IMAP side.
        imap: ImapLocation,
        /// The POP3 side.
        pop3: ServerLocation,
    },
    /// `imapc:` or `pop3c:`: the server comes from `-o imapc_*`/`pop3c_*` settings.
    FromSettings(Protocol),
    /// A Maildir, with the location string kept whole for the storage's own parser.
    Maildir(String),
    /// A single-dbox store (not written by the storage layer yet).
    Sdbox(String),
    /// `remote:[LOGIN@]HOST`: a Dovecot reached through dsync's wire protocol, by running
    /// `dsync_remote_cmd` (by default `ssh -l%{login} %{host} doveadm dsync-server -u%u -U`).
    Remote {
        /// The ssh login (`LOGIN@`), empty without one.
        login: String,
        /// The host.
        host: String,
        /// The user whose mail it is (`-u`; `%u` of the command), filled in by
        /// `open::resolve`; empty until then.
        user: String,
    },
    /// A location containing a space: the command line that starts `doveadm
    /// dsync-server` (split on single spaces, as doveadm splits it).
    RemoteCommand(String),
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

impl fmt::Display for ServerLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let scheme = self.protocol.scheme(self.transport);
        write!(f, "{scheme}://{}@{host}:{}", self.user, self.port)?;
        if self.transport == Transport::Plain {
            f.write_str("?tls=none")?;
        }
        Ok(())
    }
}

impl ServerLocation {
    /// The account without how it is reached (`?tls=…` dropped).
    fn identity(&self) -> String {
        let shown = self.to_string();
        match shown.split_once('?') {
            Some((account, _)) => account.to_owned(),
            None => shown,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Imap(server) | Location::Pop3(server) => server.fmt(f),
            Location::ImapPop3 { imap, pop3 } => write!(f, "{imap},{pop3}"),
            Location::FromSettings(Protocol::Imap | Protocol::Sieve) => f.write_str("imapc:"),
            Location::FromSettings(Protocol::Pop3) => f.write_str("pop3c:"),
            Location::Maildir(location) | Location::Sdbox(location) => f.write_str(location),
            Location::Remote { login, host, .. } if login.is_empty() => write!(f, "remote:{host}"),
            Location::Remote { login, host, .. } => write!(f, "remote:{login}@{host}"),
            Location::RemoteCommand(command) => f.write_str(command),
        }
    }
}

impl Location {
    /// What a saved sync state belongs to: the location without how its connection is
    /// protected, so the same account reached over STARTTLS or (`?tls=none`) in clear text
    /// keeps its state — and states saved when `imap://` still meant clear text match.
    pub(crate) fn state_identity(&self) -> String {
        match self {
            Location::Imap(server) | Location::Pop3(server) => server.identity(),
            Location::ImapPop3 { imap, pop3 } => format!("{},{}", imap.identity(), pop3.identity()),
            other => other.to_string(),
        }
    }

    /// True for a Dovecot reached through dsync's wire protocol.
    pub(crate) fn is_remote_dsync(&self) -> bool {
        matches!(self, Location::Remote { .. } | Location::RemoteCommand(_))
    }

    /// True for a location on a mail server (IMAP, POP3 or both).
    pub(crate) fn is_server(&self) -> bool {
        matches!(
            self,
            Location::Imap(_)
                | Location::Pop3(_)
                | Location::ImapPop3 { .. }
                | Location::FromSettings(_)
        )
    }
}

const EXPECTED: &str = "expected imap://user@host[:port][?tls=none], imaps://…, pop3://…, pop3s://…, \
    IMAP,POP3 (imaps://user@host,pop3s://user@host), imapc:, remote:[LOGIN@]HOST, a command line \
    starting doveadm dsync-server, maildir:PATH or sdbox:PATH";

/// Parses a location argument.
pub(crate) fn parse(text: &str) -> Result<Location, LocationError> {
    let error = |reason: &str| LocationError { location: redact(text), reason: reason.to_owned() };
    // An IMAP URL and a POP3 URL for the same account, joined by a comma.
    for marker in [",pop3://", ",pop3s://"] {
        if let Some(at) = text.find(marker) {
            let (imap, pop3) = (&text[..at], &text[at + 1..]);
            let Location::Imap(imap) = parse(imap)? else {
                return Err(error("the first half of a pair must be an imap:// or imaps:// URL"));
            };
            let Location::Pop3(pop3) = parse(pop3)? else {
                return Err(error("the second half of a pair must be a pop3:// or pop3s:// URL"));
            };
            return Ok(Location::ImapPop3 { imap, pop3 });
        }
    }
    let schemes = [
        ("imap://", Protocol::Imap, false),
        ("imaps://", Protocol::Imap, true),
        ("pop3://", Protocol::Pop3, false),
        ("pop3s://", Protocol::Pop3, true),
    ];
    for (scheme, protocol, implicit_tls) in schemes {
        if let Some(rest) = text.strip_prefix(scheme) {
            let server = parse_server(rest, protocol, implicit_tls).map_err(|r| error(&r))?;
            return Ok(match protocol {
                Protocol::Imap | Protocol::Sieve => Location::Imap(server),
                Protocol::Pop3 => Location::Pop3(server),
            });
        }
    }
    match text {
        "imapc:" => return Ok(Location::FromSettings(Protocol::Imap)),
        "pop3c:" => return Ok(Location::FromSettings(Protocol::Pop3)),
        _ => {}
    }
    for (prefix, what) in [("maildir:", "Maildir"), ("sdbox:", "sdbox")] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with(':') {
                return Err(error(&format!("the {what} path is missing ({prefix}PATH)")));
            }
            return Ok(if prefix == "maildir:" {
                Location::Maildir(text.to_owned())
            } else {
                Location::Sdbox(text.to_owned())
            });
        }
    }
    if text.starts_with("imapc:") || text.starts_with("pop3c:") {
        return Err(error("imapc: and pop3c: take no path; give the server with -o imapc_host=…"));
    }
    if let Some(rest) = text.strip_prefix("remote:") {
        let (login, host) = rest.rsplit_once('@').unwrap_or(("", rest));
        if host.is_empty() || host.contains(' ') {
            return Err(error("the host is missing (remote:[LOGIN@]HOST)"));
        }
        return Ok(Location::Remote {
            login: login.to_owned(),
            host: host.to_owned(),
            user: String::new(),
        });
    }
    if text.starts_with("tcp:") || text.starts_with("tcps:") || text.starts_with("remoteprefix:") {
        return Err(error(
            "doveadm-server connections (tcp:, tcps:) and remoteprefix: are not supported: use \
             remote:[LOGIN@]HOST (ssh) or a command line",
        ));
    }
    // As doveadm: a location with a space (and no `scheme:` of a mail location, handled
    // above) is the command line of the remote side.
    if text.contains(' ') {
        return Ok(Location::RemoteCommand(text.to_owned()));
    }
    if text.contains("://") || text.contains(':') {
        return Err(error(EXPECTED));
    }
    Err(error(&format!("{EXPECTED} (a bare path needs the maildir: prefix)")))
}

/// `scheme://user:secret@host` → `scheme://user:<redacted>@host`: a password typed into a
/// location by mistake is never echoed back in an error.
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_owned() };
    let authority_end = rest.find(['/', '?', ',']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:<redacted>@{host}{}", redact_tail(tail))
        }
        _ => format!("{scheme}://{authority}{}", redact_tail(tail)),
    }
}

fn redact_tail(tail: &str) -> String {
    // The second URL of an IMAP,POP3 pair.
    match tail.split_once(',') {
        Some((before, after)) => format!("{before},{}", redact(after)),
        None => tail.to_owned(),
    }
}

/// Replaces `%u` (user), `%n` (user without domain), `%d` (domain), `%{user}`,
/// `%{username}`, `%{domain}` and `%%` in a location or path template. Other `%`
/// sequences (percent-escapes in URLs) are left alone.
pub(crate) fn expand(template: &str, user: &str) -> String {
    let (name, domain) = match user.rsplit_once('@') {
        Some((name, domain)) => (name, domain),
        None => (user, ""),
    };
    let mut out = String::with_capacity(template.len() + user.len());
    let mut rest = template;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let replacements: [(&str, &str); 7] = [
            ("{username}", name),
            ("{domain}", domain),
            ("{user}", user),
            ("u", user),
            ("n", name),
            ("d", domain),
            ("%", "%"),
        ];
        if let Some((key, value)) = replacements.iter().find(|(key, _)| after.starts_with(key)) {
            out.push_str(value);
            rest = &after[key.len()..];
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The part after `sieve://` of a ManageSieve location: `USER@HOST[:PORT][?tls=none]`,
/// STARTTLS by default (there is no implicit-TLS ManageSieve scheme).
pub(crate) fn parse_sieve_server(rest: &str) -> Result<ServerLocation, String> {
    parse_server(rest, Protocol::Sieve, false)
}

fn parse_server(
    rest: &str,
    protocol: Protocol,
    implicit_tls: bool,
) -> Result<ServerLocation, String> {
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('/') {
        return Err("a path after the host is not supported".into());
    }
    let scheme = protocol.scheme(if implicit_tls { Transport::Tls } else { Transport::Plain });
    // The user name may itself contain '@' (user@example.com): the last '@' separates it.
    let (user, host_port) = authority
        .rsplit_once('@')
        .ok_or_else(|| format!("the user name is missing ({scheme}://user@host)"))?;
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
    // imap:// and pop3:// mean STARTTLS/STLS unless told `tls=none`.
    let mut transport = if implicit_tls { Transport::Tls } else { Transport::StartTls };
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", "starttls")) if !implicit_tls => transport = Transport::StartTls,
            Some(("tls", "none")) if !implicit_tls => transport = Transport::Plain,
            Some(("tls", value)) => {
                return Err(format!(
                    "tls={value} is not valid here (starttls or none with {scheme}://)"
                ));
            }
            _ => return Err(format!("unknown option {pair:?}")),
        }
    }
    Ok(ServerLocation {
        protocol,
        user,
        host,
        port: port.unwrap_or(protocol.default_port(transport)),
        transport,
    })
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

    fn server(
        protocol: Protocol,
        user: &str,
        host: &str,
        port: u16,
        transport: Transport,
    ) -> ServerLocation {
        ServerLocation { protocol, user: user.into(), host: host.into(), port, transport }
    }

    fn imap(user: &str, host: &str, port: u16, transport: Transport) -> Location {
        Location::Imap(server(Protocol::Imap, user, host, port, transport))
    }

    #[test]
    fn parses_locations() {
        let cases = [
            ("imap://alice@127.0.0.1:1143", imap("alice", "127.0.0.1", 1143, Transport::StartTls)),
            ("imap://alice@localhost", imap("alice", "localhost", 143, Transport::StartTls)),
            ("imap://alice@localhost?tls=none", imap("alice", "localhost", 143, Transport::Plain)),
            (
                "imaps://alice@mail.example.com",
                imap("alice", "mail.example.com", 993, Transport::Tls),
            ),
            (
                "imap://a@b@host:10143/?tls=starttls",
                imap("a@b", "host", 10143, Transport::StartTls),
            ),
            ("imap://a%40b@[::1]:143", imap("a@b", "::1", 143, Transport::StartTls)),
            ("imap://alice*master@host", imap("alice*master", "host", 143, Transport::StartTls)),
            (
                "maildir:/var/mail/alice:LAYOUT=fs",
                Location::Maildir("maildir:/var/mail/alice:LAYOUT=fs".into()),
            ),
            ("sdbox:/var/mail/alice", Location::Sdbox("sdbox:/var/mail/alice".into())),
            ("imapc:", Location::FromSettings(Protocol::Imap)),
            ("pop3c:", Location::FromSettings(Protocol::Pop3)),
            (
                "remote:mx",
                Location::Remote { login: String::new(), host: "mx".into(), user: String::new() },
            ),
            (
                "remote:root@a@mx.example",
                Location::Remote {
                    login: "root@a".into(),
                    host: "mx.example".into(),
                    user: String::new(),
                },
            ),
            (
                "ssh mx doveadm dsync-server -u alice",
                Location::RemoteCommand("ssh mx doveadm dsync-server -u alice".into()),
            ),
            (
                "pop3s://alice@mail.example.com",
                Location::Pop3(server(
                    Protocol::Pop3,
                    "alice",
                    "mail.example.com",
                    995,
                    Transport::Tls,
                )),
            ),
            (
                "pop3://alice@h?tls=starttls",
                Location::Pop3(server(Protocol::Pop3, "alice", "h", 110, Transport::StartTls)),
            ),
            (
                "pop3://alice@h",
                Location::Pop3(server(Protocol::Pop3, "alice", "h", 110, Transport::StartTls)),
            ),
            (
                "pop3://alice@h:1110?tls=none",
                Location::Pop3(server(Protocol::Pop3, "alice", "h", 1110, Transport::Plain)),
            ),
            (
                "imaps://alice@h,pop3s://alice@h:1995",
                Location::ImapPop3 {
                    imap: server(Protocol::Imap, "alice", "h", 993, Transport::Tls),
                    pop3: server(Protocol::Pop3, "alice", "h", 1995, Transport::Tls),
                },
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
            ("pop3s://alice@host?tls=none", "tls=none is not valid"),
            ("imap://alice@host?tls=yes", "tls=yes is not valid"),
            ("imap://alice@host?foo=bar", "unknown option"),
            ("imap://alice@host/INBOX", "path after the host"),
            ("maildir:", "path is missing"),
            ("mbox:/x", "expected imap://"),
            ("/srv/mail/alice", "needs the maildir: prefix"),
            ("sdbox:", "sdbox path is missing"),
            ("imapc:/x", "take no path"),
            ("imaps://a@h,imap://b@h", "path after the host"),
            ("pop3s://a@h,pop3s://b@h", "first half of a pair"),
            ("pop3://host", "user name is missing (pop3://user@host)"),
            ("imap://a%4@host", "%-escape"),
            ("imap://a%zz@host", "invalid %-escape"),
            ("remote:", "host is missing"),
            ("remote:root@", "host is missing"),
            ("tcp:mx:2000", "tcp:, tcps:) and remoteprefix: are not supported"),
        ];
        for (text, reason) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.to_string().contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn display_round_trips_and_shows_no_secret() {
        for text in [
            "imap://alice@127.0.0.1:1143",
            "imap://alice@127.0.0.1:1143?tls=none",
            "imaps://bob@[::1]:993",
            "pop3://d@h:110",
            "pop3://d@h:110?tls=none",
            "pop3s://d@h:995",
            "imaps://e@h:993,pop3s://e@h:995",
            "imap://e@h:143?tls=none,pop3://e@h:110?tls=none",
        ] {
            let location = parse(text).expect(text);
            assert_eq!(location.to_string(), text);
            assert_eq!(parse(&location.to_string()).as_ref(), Ok(&location), "{text}");
        }
        // STARTTLS is the default, so the explicit spelling is shown without the query.
        let explicit = parse("imap://c@h:143?tls=starttls").expect("starttls");
        assert_eq!(explicit.to_string(), "imap://c@h:143");
    }

    #[test]
    fn the_state_belongs_to_the_account_however_it_is_reached() {
        for (text, identity) in [
            ("imap://a@h:143?tls=none", "imap://a@h:143"),
            ("imap://a@h:143", "imap://a@h:143"),
            ("imap://a@h:143?tls=starttls", "imap://a@h:143"),
            ("imaps://a@h", "imaps://a@h:993"),
            ("imap://a@h?tls=none,pop3://a@h", "imap://a@h:143,pop3://a@h:110"),
            ("maildir:/srv/a", "maildir:/srv/a"),
        ] {
            assert_eq!(parse(text).expect(text).state_identity(), identity, "{text}");
        }
    }

    #[test]
    fn passwords_in_locations_are_not_echoed() {
        let error = parse("imap://alice:hunter2@host").expect_err("password");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(error.to_string().contains("alice:<redacted>@host"), "{error}");
        let pair = parse("imaps://a@h,pop3s://a:hunter2@h").expect_err("password");
        assert!(!pair.to_string().contains("hunter2"), "{pair}");
    }

    #[test]
    fn templates_expand_user_parts() {
        let cases = [
            (
                "imaps://%u@old.example.com",
                "alice@example.com",
                "imaps://alice@example.com@old.example.com",
            ),
            (
                "maildir:/srv/%d/%n/Maildir",
                "alice@example.com",
                "maildir:/srv/example.com/alice/Maildir",
            ),
            ("maildir:/srv/%{domain}/%{username}", "bob@x.org", "maildir:/srv/x.org/bob"),
            ("maildir:/srv/%n%d", "carol", "maildir:/srv/carol"),
            ("imap://a%40b@h/%%", "u", "imap://a%40b@h/%"),
            ("100%", "u", "100%"),
        ];
        for (template, user, expected) in cases {
            assert_eq!(expand(template, user), expected, "{template}");
        }
    }
}
