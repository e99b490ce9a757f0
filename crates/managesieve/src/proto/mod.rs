//! The sans-IO core: a framer that finds where a server line ends after its literals and
//! enforces limits ([`Decoder`]), nom parsers for lines, response codes and capabilities
//! ([`parse_line`]), and commands as data ([`Command`]). No sockets: feed bytes, take
//! [`Line`]s.

mod command;
mod decoder;
mod parse;
mod types;

#[cfg(test)]
mod tests;

pub use command::Command;
pub use decoder::{DecodeError, Decoder, Limits};
pub use parse::{Line, ParseError, parse_line, tokens};
pub(crate) use types::escape;
pub use types::{
    Capabilities, InvalidScriptName, MAX_SCRIPT_NAME_CHARS, Response, ResponseCode, ScriptName,
    Status, Token,
};
