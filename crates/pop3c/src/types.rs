//! Validated value types: message numbers, unique ids, response codes, capabilities.

use std::fmt;
use std::num::NonZeroU32;

/// A message number of the current session (RFC 1939 §3): 1-based, valid only for the
/// session that listed it — another session may number the same message differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageNumber(NonZeroU32);

impl MessageNumber {
    /// `None` for 0, which is never a message number.
    pub fn new(number: u32) -> Option<MessageNumber> {
        NonZeroU32::new(number).map(MessageNumber)
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for MessageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A unique-id listing value (the `UIDL` of a message): what POP3 clients remember to know
/// which messages they already downloaded, so a migration must keep it byte for byte.
///
/// RFC 1939 §7 says 1 to 70 octets in 0x21–0x7E. Real servers exceed 70 (Dovecot with
/// `pop3_uidl_format = %f` uses Maildir file names of 80 octets and more), so the length
/// limit here is [`Uidl::MAX_LEN`]; the character range is enforced.
///
/// ```
/// use pop3c::Uidl;
/// assert_eq!(Uidl::new("00000001641c7a9b")?.as_str(), "00000001641c7a9b");
/// assert!(Uidl::new("has space").is_err());
/// assert!(Uidl::new("").is_err());
/// # Ok::<(), pop3c::InvalidUidl>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uidl(String);

/// A string that is not a valid [`Uidl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UIDL {shown:?}: {reason}")]
pub struct InvalidUidl {
    /// The value (escaped, cut to 80 characters).
    pub shown: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Uidl {
    /// Longest unique id accepted (RFC 1939 says 70; see the type's documentation).
    pub const MAX_LEN: usize = 512;

    /// Validates `value`: 1 to [`Uidl::MAX_LEN`] octets, each in 0x21–0x7E.
    pub fn new(value: impl Into<String>) -> Result<Uidl, InvalidUidl> {
        let value = value.into();
        Uidl::check(value.as_bytes())?;
        Ok(Uidl(value))
    }

    /// Validates raw bytes from the wire.
    pub fn from_bytes(value: &[u8]) -> Result<Uidl, InvalidUidl> {
        Uidl::check(value)?;
        // Checked ASCII above.
        Ok(Uidl(value.iter().map(|&b| char::from(b)).collect()))
    }

    fn check(value: &[u8]) -> Result<(), InvalidUidl> {
        let fail = |reason| InvalidUidl { shown: escape(&value[..value.len().min(80)]), reason };
        if value.is_empty() {
            return Err(fail("empty"));
        }
        if value.len() > Uidl::MAX_LEN {
            return Err(fail("longer than 512 octets"));
        }
        if !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(fail("octets outside 0x21-0x7E"));
        }
        Ok(())
    }

    /// The unique id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The unique id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Uidl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Uidl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An extended response code (RFC 2449 §8, RFC 3206): the bracketed word after `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `[IN-USE]`: another session holds the maildrop lock. Try again later.
    InUse,
    /// `[LOGIN-DELAY]`: logged in too soon after the last session. Try again later.
    LoginDelay,
    /// `[SYS/TEMP]`: a temporary system problem (RFC 3206). Try again later.
    SysTemp,
    /// `[SYS/PERM]`: a permanent system problem (RFC 3206). Retrying will not help.
    SysPerm,
    /// `[AUTH]`: the credentials were wrong (RFC 3206).
    Auth,
    /// Any other code, as sent (hierarchy levels joined by `/`).
    Other(String),
}

impl ResponseCode {
    /// Classifies a code as sent (case-insensitive).
    pub fn from_text(code: &str) -> ResponseCode {
        match code.to_ascii_uppercase().as_str() {
            "IN-USE" => ResponseCode::InUse,
            "LOGIN-DELAY" => ResponseCode::LoginDelay,
            "SYS/TEMP" => ResponseCode::SysTemp,
            "SYS/PERM" => ResponseCode::SysPerm,
            "AUTH" => ResponseCode::Auth,
            _ => ResponseCode::Other(code.to_owned()),
        }
    }

    /// The code as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ResponseCode::InUse => "IN-USE",
            ResponseCode::LoginDelay => "LOGIN-DELAY",
            ResponseCode::SysTemp => "SYS/TEMP",
            ResponseCode::SysPerm => "SYS/PERM",
            ResponseCode::Auth => "AUTH",
            ResponseCode::Other(code) => code,
        }
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `CAPA` line: a tag and its parameters (RFC 2449 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// The capability tag, upper-cased (`TOP`, `SASL`, `PIPELINING` …).
    pub name: String,
    /// Its parameters as sent (`SASL PLAIN LOGIN` → `["PLAIN", "LOGIN"]`).
    pub params: Vec<String>,
}

/// What the server announced in its `CAPA` answer. Empty when it did not answer `CAPA`
/// (an RFC 1939-only server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    entries: Vec<Capability>,
}

impl Capabilities {
    /// From parsed lines.
    pub fn new(entries: Vec<Capability>) -> Capabilities {
        Capabilities { entries }
    }

    /// No capability known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All lines.
    pub fn entries(&self) -> &[Capability] {
        &self.entries
    }

    /// True when the tag `name` was announced (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Parameters of `name`, if announced.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.entries.iter().find(|c| c.name.eq_ignore_ascii_case(name)).map(|c| &c.params[..])
    }

    /// True when SASL mechanism `mechanism` is offered (`SASL PLAIN …`).
    pub fn has_sasl(&self, mechanism: &str) -> bool {
        self.get("SASL").is_some_and(|m| m.iter().any(|p| p.eq_ignore_ascii_case(mechanism)))
    }

    /// `PIPELINING` (RFC 2449 §6.6): commands may be sent without waiting for answers.
    pub fn pipelining(&self) -> bool {
        self.has("PIPELINING")
    }

    /// `LOGIN-DELAY n` in seconds, if announced.
    pub fn login_delay(&self) -> Option<u64> {
        self.get("LOGIN-DELAY")?.first()?.parse().ok()
    }

    /// `IMPLEMENTATION …` text, if announced.
    pub fn implementation(&self) -> Option<String> {
        self.get("IMPLEMENTATION").map(|p| p.join(" "))
    }
}

/// Escapes bytes for error messages (printable ASCII kept, the rest as `\xNN`).
pub(crate) fn escape(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidl_validation() {
        let cases: [(&[u8], bool); 8] = [
            (b"whqtswO00WBw418f9t5JxYwZ", true),
            (b"000000016b0318f3", true),
            (b"!~", true),
            (b"", false),
            (b"a b", false),
            (b"a\x7f", false),
            (b"\xc3\xa9", false),
            (b"x\r", false),
        ];
        for (input, valid) in cases {
            assert_eq!(Uidl::from_bytes(input).is_ok(), valid, "{}", escape(input));
        }
        assert!(Uidl::new("x".repeat(Uidl::MAX_LEN)).is_ok());
        let error = Uidl::new("x".repeat(Uidl::MAX_LEN + 1)).expect_err("too long");
        assert!(error.shown.len() <= 80, "{error}");
    }

    #[test]
    fn response_codes_round_trip() {
        for text in ["IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH", "UTF8", "X/Y/Z"] {
            assert_eq!(ResponseCode::from_text(text).as_str(), text);
        }
        assert_eq!(ResponseCode::from_text("in-use"), ResponseCode::InUse);
    }

    #[test]
    fn capability_queries() {
        let caps = Capabilities::new(vec![
            Capability { name: "SASL".into(), params: vec!["PLAIN".into(), "LOGIN".into()] },
            Capability { name: "PIPELINING".into(), params: vec![] },
            Capability { name: "LOGIN-DELAY".into(), params: vec!["900".into()] },
        ]);
        assert!(caps.has_sasl("plain") && !caps.has_sasl("CRAM-MD5"));
        assert!(caps.pipelining() && caps.has("pipelining") && !caps.has("STLS"));
        assert_eq!(caps.login_delay(), Some(900));
        assert_eq!(MessageNumber::new(0), None);
        assert_eq!(MessageNumber::new(7).map(MessageNumber::get), Some(7));
    }
}
