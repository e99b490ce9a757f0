//! Commands as data, and their encoding (RFC 5804 §2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mailnet::Secret;

use super::types::ScriptName;

/// A ManageSieve command. Script names are [`ScriptName`]s, so every name sent is one
/// Pigeonhole accepts.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `CAPABILITY`.
    Capability,
    /// `STARTTLS`.
    StartTls,
    /// `AUTHENTICATE "MECH" ["initial response"]`.
    Authenticate {
        /// The SASL mechanism.
        mechanism: &'a str,
        /// The initial response (base64-encoded on the wire).
        initial_response: Option<&'a Secret<Vec<u8>>>,
    },
    /// A SASL response to a server challenge (a base64 string).
    SaslResponse(&'a Secret<Vec<u8>>),
    /// `"*"`: cancels a SASL exchange.
    SaslCancel,
    /// `LISTSCRIPTS`.
    ListScripts,
    /// `GETSCRIPT name`.
    GetScript(&'a ScriptName),
    /// `PUTSCRIPT name {n+}` + the script.
    PutScript {
        /// The name to store under.
        name: &'a ScriptName,
        /// The script bytes.
        script: &'a [u8],
    },
    /// `CHECKSCRIPT {n+}` + the script.
    CheckScript(&'a [u8]),
    /// `SETACTIVE name`; `None` sends `""`, which deactivates.
    SetActive(Option<&'a ScriptName>),
    /// `DELETESCRIPT name`.
    DeleteScript(&'a ScriptName),
    /// `RENAMESCRIPT old new`.
    RenameScript {
        /// The current name.
        from: &'a ScriptName,
        /// The new name.
        to: &'a ScriptName,
    },
    /// `HAVESPACE name size`.
    HaveSpace {
        /// The name the script would have.
        name: &'a ScriptName,
        /// Its size in bytes.
        size: u64,
    },
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
}

/// Longest string sent quoted (RFC 5804's `quoted` holds at most 1024 characters);
/// longer ones go as literals.
const MAX_QUOTED: usize = 1024;

impl Command<'_> {
    /// The command's name, for errors and traces (never its arguments).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capability => "CAPABILITY",
            Command::StartTls => "STARTTLS",
            Command::Authenticate { .. } | Command::SaslResponse(_) | Command::SaslCancel => {
                "AUTHENTICATE"
            }
            Command::ListScripts => "LISTSCRIPTS",
            Command::GetScript(_) => "GETSCRIPT",
            Command::PutScript { .. } => "PUTSCRIPT",
            Command::CheckScript(_) => "CHECKSCRIPT",
            Command::SetActive(_) => "SETACTIVE",
            Command::DeleteScript(_) => "DELETESCRIPT",
            Command::RenameScript { .. } => "RENAMESCRIPT",
            Command::HaveSpace { .. } => "HAVESPACE",
            Command::Noop => "NOOP",
            Command::Logout => "LOGOUT",
        }
    }

    /// Appends the command, line end included, to `out`. Client literals are always
    /// non-synchronising (`{n+}`): RFC 5804 §4 defines no other client literal, and no
    /// ManageSieve server sends a continuation to wait for.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Authenticate { mechanism, initial_response } => {
                out.extend_from_slice(b"AUTHENTICATE ");
                string(out, mechanism.as_bytes());
                if let Some(response) = initial_response {
                    out.push(b' ');
                    string(out, BASE64.encode(response.expose()).as_bytes());
                }
            }
            Command::SaslResponse(response) => {
                string(out, BASE64.encode(response.expose()).as_bytes());
            }
            Command::SaslCancel => string(out, b"*"),
            Command::GetScript(name) | Command::DeleteScript(name) => {
                words(out, self.name(), &[name.as_str().as_bytes()]);
            }
            Command::PutScript { name, script } => {
                words(out, self.name(), &[name.as_str().as_bytes()]);
                out.push(b' ');
                literal(out, script);
            }
            Command::CheckScript(script) => {
                out.extend_from_slice(b"CHECKSCRIPT ");
                literal(out, script);
            }
            Command::SetActive(name) => {
                let name = name.map_or(&b""[..], |n| n.as_str().as_bytes());
                words(out, self.name(), &[name]);
            }
            Command::RenameScript { from, to } => {
                words(out, self.name(), &[from.as_str().as_bytes(), to.as_str().as_bytes()]);
            }
            Command::HaveSpace { name, size } => {
                words(out, self.name(), &[name.as_str().as_bytes()]);
                out.extend_from_slice(format!(" {size}").as_bytes());
            }
            Command::Capability
            | Command::StartTls
            | Command::ListScripts
            | Command::Noop
            | Command::Logout => out.extend_from_slice(self.name().as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The command as a trace shows it: SASL data as `<redacted>`, scripts as their
    /// length.
    pub fn redacted(&self) -> String {
        match self {
            Command::Authenticate { mechanism, initial_response } => format!(
                "AUTHENTICATE \"{mechanism}\"{}",
                if initial_response.is_some() { " <redacted>" } else { "" }
            ),
            Command::SaslResponse(_) => "<redacted>".to_owned(),
            Command::PutScript { name, script } => {
                format!("PUTSCRIPT {:?} {{{}+}} <script>", name.as_str(), script.len())
            }
            Command::CheckScript(script) => format!("CHECKSCRIPT {{{}+}} <script>", script.len()),
            _ => {
                let mut out = Vec::new();
                self.encode(&mut out);
                let line = out.strip_suffix(b"\r\n").unwrap_or(&out);
                super::types::escape(line)
            }
        }
    }
}

/// `NAME arg…` with each argument a string.
fn words(out: &mut Vec<u8>, name: &str, args: &[&[u8]]) {
    out.extend_from_slice(name.as_bytes());
    for arg in args {
        out.push(b' ');
        string(out, arg);
    }
}

/// A string: quoted when it can be, else a literal.
pub(crate) fn string(out: &mut Vec<u8>, value: &[u8]) {
    let quotable =
        value.len() <= MAX_QUOTED && !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    if !quotable {
        literal(out, value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if matches!(b, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// `{n+}` CRLF and the bytes.
fn literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}+}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}
