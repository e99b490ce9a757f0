//! A logged-in connection: the script commands.

use crate::error::{Error, Result};
use crate::proto::{
    Capabilities, Command, InvalidScriptName, Response, ResponseCode, ScriptName, Token,
};

use super::conn::Conn;

/// One entry of `LISTSCRIPTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// The script's name.
    pub name: ScriptName,
    /// True for the active script (at most one).
    pub active: bool,
}

/// A `LISTSCRIPTS` entry whose name Pigeonhole's rules refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableScript {
    /// The name (escaped) and why it is refused.
    pub name: InvalidScriptName,
    /// True when it is the active script.
    pub active: bool,
}

/// What `LISTSCRIPTS` answered, usable names and the others apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptListing {
    /// The scripts with valid names.
    pub scripts: Vec<ScriptInfo>,
    /// The scripts whose names Pigeonhole would refuse.
    pub unusable: Vec<UnusableScript>,
}

/// A logged-in ManageSieve connection.
#[derive(Debug)]
pub struct Session {
    conn: Box<Conn>,
}

impl Session {
    pub(crate) fn new(conn: Box<Conn>) -> Session {
        Session { conn }
    }

    /// The capabilities as read after login.
    pub fn capabilities(&self) -> &Capabilities {
        &self.conn.capabilities
    }

    /// Reads the capabilities again (`CAPABILITY`).
    pub fn refresh_capabilities(&mut self) -> Result<&Capabilities> {
        self.conn.send(&Command::Capability)?;
        self.conn.read_capabilities("CAPABILITY")?;
        Ok(&self.conn.capabilities)
    }

    /// True when the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.stream.is_tls()
    }

    /// `LISTSCRIPTS`: every script, and which one is active. A name that is not valid
    /// UTF-8 or not a script name Pigeonhole accepts is a protocol error (see
    /// [`list_scripts_leniently`](Self::list_scripts_leniently) to go on without it).
    pub fn list_scripts(&mut self) -> Result<Vec<ScriptInfo>> {
        let listing = self.list_scripts_leniently()?;
        match listing.unusable.into_iter().next() {
            Some(unusable) => Err(Error::Protocol(format!("LISTSCRIPTS: {}", unusable.name))),
            None => Ok(listing.scripts),
        }
    }

    /// `LISTSCRIPTS`, keeping apart the names Pigeonhole's rules refuse (not UTF-8, a
    /// control character, `/`, too long): such a script can be neither read nor written
    /// by name, so a caller reports it and goes on with the others.
    pub fn list_scripts_leniently(&mut self) -> Result<ScriptListing> {
        let (lines, _) = self.conn.run(&Command::ListScripts, None)?;
        let mut listing = ScriptListing::default();
        for tokens in &lines {
            let (name, active) = match tokens.as_slice() {
                [Token::String(name)] => (name, false),
                [Token::String(name), flag] if flag.is_atom("ACTIVE") => (name, true),
                _ => return Err(Error::Protocol("LISTSCRIPTS: malformed script line".into())),
            };
            match ScriptName::from_bytes(name) {
                Ok(name) => listing.scripts.push(ScriptInfo { name, active }),
                Err(name) => listing.unusable.push(UnusableScript { name, active }),
            }
        }
        let active = listing.scripts.iter().filter(|s| s.active).count()
            + listing.unusable.iter().filter(|s| s.active).count();
        if active > 1 {
            return Err(Error::Protocol("LISTSCRIPTS: more than one active script".into()));
        }
        Ok(listing)
    }

    /// `GETSCRIPT`: the script's bytes, exactly as stored.
    pub fn get_script(&mut self, name: &ScriptName) -> Result<Vec<u8>> {
        let (mut lines, _) = self.conn.run(&Command::GetScript(name), Some(name.as_str()))?;
        match lines.pop() {
            Some(tokens) if lines.is_empty() => match <[Token; 1]>::try_from(tokens) {
                Ok([Token::String(script)]) => Ok(script),
                _ => Err(Error::Protocol("GETSCRIPT: the answer is not one string".into())),
            },
            _ => Err(Error::Protocol("GETSCRIPT: expected exactly one script".into())),
        }
    }

    /// `PUTSCRIPT`: stores (or replaces) a script; the server validates it first and
    /// refuses it ([`Error::Refused`] with its reasons) when it does not compile there.
    /// Returns the validator's warnings, if any.
    pub fn put_script(&mut self, name: &ScriptName, script: &[u8]) -> Result<Option<String>> {
        let (_, response) =
            self.conn.run(&Command::PutScript { name, script }, Some(name.as_str()))?;
        Ok(warnings(response))
    }

    /// `CHECKSCRIPT`: validates a script without storing it; its warnings, if any.
    pub fn check_script(&mut self, script: &[u8]) -> Result<Option<String>> {
        if self.conn.capabilities.version().is_none() {
            return Err(Error::Unsupported { capability: "CHECKSCRIPT (VERSION 1.0)" });
        }
        let (_, response) = self.conn.run(&Command::CheckScript(script), None)?;
        Ok(warnings(response))
    }

    /// `SETACTIVE`: makes `name` the active script; `None` deactivates every script.
    pub fn set_active(&mut self, name: Option<&ScriptName>) -> Result<()> {
        self.conn.run(&Command::SetActive(name), name.map(ScriptName::as_str))?;
        Ok(())
    }

    /// `DELETESCRIPT` (the active script cannot be deleted: `NO (ACTIVE)`).
    pub fn delete_script(&mut self, name: &ScriptName) -> Result<()> {
        self.conn.run(&Command::DeleteScript(name), Some(name.as_str()))?;
        Ok(())
    }

    /// `RENAMESCRIPT` (`NO (ALREADYEXISTS)` when `to` exists).
    pub fn rename_script(&mut self, from: &ScriptName, to: &ScriptName) -> Result<()> {
        if self.conn.capabilities.version().is_none() {
            return Err(Error::Unsupported { capability: "RENAMESCRIPT (VERSION 1.0)" });
        }
        self.conn.run(&Command::RenameScript { from, to }, Some(from.as_str()))?;
        Ok(())
    }

    /// `HAVESPACE`: `Ok(())` when a script of `size` bytes could be stored as `name`; a
    /// quota refusal is [`Error::Refused`] with a `QUOTA` code.
    pub fn have_space(&mut self, name: &ScriptName, size: u64) -> Result<()> {
        self.conn.run(&Command::HaveSpace { name, size }, Some(name.as_str()))?;
        Ok(())
    }

    /// `NOOP`: keeps the connection alive.
    pub fn noop(&mut self) -> Result<()> {
        self.conn.run(&Command::Noop, None)?;
        Ok(())
    }

    /// `LOGOUT` and close.
    pub fn logout(mut self) -> Result<()> {
        logout(&mut self.conn)
    }
}

/// The text of an `OK (WARNINGS)`.
fn warnings(response: Response) -> Option<String> {
    (response.code == Some(ResponseCode::Warnings)).then_some(response.text)
}

/// `LOGOUT`: the server answers `OK` (or `BYE`) and closes.
pub(crate) fn logout(conn: &mut Conn) -> Result<()> {
    match conn.run(&Command::Logout, None) {
        Ok(_) | Err(Error::Bye { .. }) => {}
        Err(error) => return Err(error),
    }
    conn.stream.shutdown();
    Ok(())
}
