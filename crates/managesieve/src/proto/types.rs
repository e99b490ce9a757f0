//! What the protocol is made of: tokens, responses, response codes, capabilities, script
//! names.

use std::fmt::{self, Write as _};

/// One element of a server line (RFC 5804 §4): a bare word, a string (quoted or literal,
/// already unescaped) or a parenthesised list (response codes and their arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word: `OK`, `ACTIVE`, a number, a referral URL.
    Atom(Vec<u8>),
    /// A quoted string (without its escapes) or a literal's bytes.
    String(Vec<u8>),
    /// `( … )`.
    List(Vec<Token>),
}

impl Token {
    /// The bytes of an atom or a string.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Token::Atom(bytes) | Token::String(bytes) => Some(bytes),
            Token::List(_) => None,
        }
    }

    /// The bytes of a string (not of an atom).
    pub fn string(&self) -> Option<&[u8]> {
        match self {
            Token::String(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// True for an atom equal to `word`, ASCII case ignored.
    pub fn is_atom(&self, word: &str) -> bool {
        matches!(self, Token::Atom(bytes) if bytes.eq_ignore_ascii_case(word.as_bytes()))
    }
}

/// The verdict of a response line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`: the command succeeded.
    Ok,
    /// `NO`: the command failed; the connection stays usable.
    No,
    /// `BYE`: the server closes the connection (also with a `REFERRAL`).
    Bye,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bye => "BYE",
        })
    }
}

/// A response line: `OK|NO|BYE [(CODE …)] [text]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// OK, NO or BYE.
    pub status: Status,
    /// The response code, when sent.
    pub code: Option<ResponseCode>,
    /// The human-readable text (possibly several lines, e.g. a script's compile errors),
    /// invalid UTF-8 replaced.
    pub text: String,
}

/// A response code (RFC 5804 §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `AUTH-TOO-WEAK`: the mechanism is too weak for this user.
    AuthTooWeak,
    /// `ENCRYPT-NEEDED`: the mechanism needs TLS first.
    EncryptNeeded,
    /// `QUOTA`: some quota would be exceeded.
    Quota,
    /// `QUOTA/MAXSCRIPTS`: too many scripts.
    QuotaMaxScripts,
    /// `QUOTA/MAXSIZE`: the script (or all scripts together) too large.
    QuotaMaxSize,
    /// `REFERRAL sieve://…`: the user's scripts live on another server.
    Referral(String),
    /// `SASL "…"`: the last SASL step's data.
    Sasl(Vec<u8>),
    /// `TRANSITION-NEEDED`: the password must be migrated first.
    TransitionNeeded,
    /// `TRYLATER`: a temporary failure.
    TryLater,
    /// `ACTIVE`: the script is active (and so cannot be deleted).
    Active,
    /// `NONEXISTENT`: no such script.
    Nonexistent,
    /// `ALREADYEXISTS`: a script of that name exists.
    AlreadyExists,
    /// `WARNINGS`: stored, but the validator has warnings (in the text).
    Warnings,
    /// `TAG "…"`: the tag of a `NOOP`.
    Tag(Vec<u8>),
    /// Anything else: the name and its arguments as the server sent them.
    Other {
        /// The code's name.
        name: String,
        /// Its arguments.
        args: Vec<Token>,
    },
}

impl ResponseCode {
    /// Builds a code from the tokens of its parenthesised list.
    pub fn from_tokens(tokens: &[Token]) -> Option<ResponseCode> {
        let (Token::Atom(name), args) = tokens.split_first()? else { return None };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let string_arg = || args.first().and_then(Token::bytes).map(<[u8]>::to_vec);
        Some(match name.as_str() {
            "AUTH-TOO-WEAK" => ResponseCode::AuthTooWeak,
            "ENCRYPT-NEEDED" => ResponseCode::EncryptNeeded,
            "QUOTA" => ResponseCode::Quota,
            "QUOTA/MAXSCRIPTS" => ResponseCode::QuotaMaxScripts,
            "QUOTA/MAXSIZE" => ResponseCode::QuotaMaxSize,
            "TRANSITION-NEEDED" => ResponseCode::TransitionNeeded,
            "TRYLATER" => ResponseCode::TryLater,
            "ACTIVE" => ResponseCode::Active,
            "NONEXISTENT" => ResponseCode::Nonexistent,
            "ALREADYEXISTS" => ResponseCode::AlreadyExists,
            "WARNINGS" => ResponseCode::Warnings,
            "REFERRAL" if string_arg().is_some() => ResponseCode::Referral(
                String::from_utf8_lossy(&string_arg().unwrap_or_default()).into_owned(),
            ),
            "SASL" if string_arg().is_some() => {
                ResponseCode::Sasl(string_arg().unwrap_or_default())
            }
            "TAG" if string_arg().is_some() => ResponseCode::Tag(string_arg().unwrap_or_default()),
            _ => ResponseCode::Other { name, args: args.to_vec() },
        })
    }

    /// True for the `QUOTA` codes.
    pub fn is_quota(&self) -> bool {
        matches!(
            self,
            ResponseCode::Quota | ResponseCode::QuotaMaxScripts | ResponseCode::QuotaMaxSize
        )
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseCode::AuthTooWeak => f.write_str("AUTH-TOO-WEAK"),
            ResponseCode::EncryptNeeded => f.write_str("ENCRYPT-NEEDED"),
            ResponseCode::Quota => f.write_str("QUOTA"),
            ResponseCode::QuotaMaxScripts => f.write_str("QUOTA/MAXSCRIPTS"),
            ResponseCode::QuotaMaxSize => f.write_str("QUOTA/MAXSIZE"),
            ResponseCode::Referral(url) => write!(f, "REFERRAL {}", escape(url.as_bytes())),
            ResponseCode::Sasl(_) => f.write_str("SASL"),
            ResponseCode::TransitionNeeded => f.write_str("TRANSITION-NEEDED"),
            ResponseCode::TryLater => f.write_str("TRYLATER"),
            ResponseCode::Active => f.write_str("ACTIVE"),
            ResponseCode::Nonexistent => f.write_str("NONEXISTENT"),
            ResponseCode::AlreadyExists => f.write_str("ALREADYEXISTS"),
            ResponseCode::Warnings => f.write_str("WARNINGS"),
            ResponseCode::Tag(tag) => write!(f, "TAG {}", escape(tag)),
            ResponseCode::Other { name, .. } => f.write_str(&escape(name.as_bytes())),
        }
    }
}

/// The capability list (RFC 5804 §1.7): the greeting's, re-read after STARTTLS and after
/// login. Names compare without ASCII case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    entries: Vec<(String, Option<String>)>,
}

impl Capabilities {
    /// Adds one capability line.
    pub fn push(&mut self, name: String, value: Option<String>) {
        self.entries.push((name, value));
    }

    /// True when `name` is listed.
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The value of `name` (`None` when absent or sent without one).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?.1.as_deref()
    }

    /// `IMPLEMENTATION`: the server's name.
    pub fn implementation(&self) -> Option<&str> {
        self.get("IMPLEMENTATION")
    }

    /// `SIEVE`: the extensions a script may `require`.
    pub fn sieve_extensions(&self) -> Vec<&str> {
        self.get("SIEVE").map(|v| v.split_ascii_whitespace().collect()).unwrap_or_default()
    }

    /// `SASL`: the mechanisms offered (none after login).
    pub fn sasl(&self) -> Vec<&str> {
        self.get("SASL").map(|v| v.split_ascii_whitespace().collect()).unwrap_or_default()
    }

    /// True when SASL `mechanism` is offered.
    pub fn has_sasl(&self, mechanism: &str) -> bool {
        self.sasl().iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// True when `STARTTLS` is offered.
    pub fn starttls(&self) -> bool {
        self.has("STARTTLS")
    }

    /// `VERSION` (`1.0` for RFC 5804 servers).
    pub fn version(&self) -> Option<&str> {
        self.get("VERSION")
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every capability with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }
}

/// A script name as Pigeonhole accepts it (`sieve_script_name_is_valid`): 1 to 256
/// Unicode characters, none of them a control character (C0, DEL, C1), `/`, or a Unicode
/// line or paragraph separator. Every name the server lists is one, so are the files of a
/// file store; a name that is not cannot be sent, nor become a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptName(String);

/// The longest script name, in characters (Pigeonhole's `SIEVE_MAX_SCRIPT_NAME_LEN`).
pub const MAX_SCRIPT_NAME_CHARS: usize = 256;

/// A name [`ScriptName::new`] refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Sieve script name {name:?}: {reason}")]
pub struct InvalidScriptName {
    /// The name, escaped.
    pub name: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl ScriptName {
    /// Checks `name`.
    pub fn new(name: impl Into<String>) -> Result<ScriptName, InvalidScriptName> {
        let name = name.into();
        let refuse = |reason| Err(InvalidScriptName { name: escape(name.as_bytes()), reason });
        if name.is_empty() {
            return refuse("empty");
        }
        if name.chars().count() > MAX_SCRIPT_NAME_CHARS {
            return refuse("longer than 256 characters");
        }
        if name.chars().any(|c| c.is_control() || matches!(c, '/' | '\u{2028}' | '\u{2029}')) {
            return refuse("contains '/' or a control character");
        }
        Ok(ScriptName(name))
    }

    /// Checks a name received as bytes (it must be UTF-8).
    pub fn from_bytes(bytes: &[u8]) -> Result<ScriptName, InvalidScriptName> {
        match std::str::from_utf8(bytes) {
            Ok(name) => ScriptName::new(name),
            Err(_) => Err(InvalidScriptName { name: escape(bytes), reason: "not UTF-8" }),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScriptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ScriptName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ScriptName {
    type Err = InvalidScriptName;
    fn from_str(name: &str) -> Result<ScriptName, InvalidScriptName> {
        ScriptName::new(name)
    }
}

/// Bytes for an error message: UTF-8 kept, control characters and invalid bytes escaped.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}
