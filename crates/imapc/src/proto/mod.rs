//! The sans-IO protocol core: it never touches a socket.
//!
//! * [`ResponseDecoder`] frames the server's byte stream (lines, literals, limits) and
//!   yields [`Event`]s: complete [`Response`]s, and FETCH body literals in chunks.
//! * [`parse_response`] parses one buffered response (streaming nom parsers: a prefix of a
//!   valid response is [`ParseError::Incomplete`], never an error).
//! * [`encode`] turns a [`Command`] into bytes, with pauses for synchronising literals.

mod command;
mod decoder;
mod encode;
pub(crate) mod parse;
mod response;
mod write;

#[cfg(test)]
mod tests;

pub use command::{
    AppendMessage, Command, FetchItem, ListReturn, ListSelection, Qresync, SearchKey, StatusItem,
    StoreAction,
};
pub use decoder::{BodyStart, DecodeError, Event, Limits, ResponseDecoder};
pub use encode::{
    AppendStart, EncodeOptions, Encoded, Part, encode, encode_append_next, encode_append_start,
    sasl_challenge, sasl_response,
};
pub use parse::{ParseError, ParseOptions, parse_response};
pub use response::{
    BodyData, BodyItem, BodyKind, BodySection, Code, ESearch, Fetch, ListAttribute, ListEntry,
    ListKind, MailboxStatus, Namespace, Namespaces, Response, Status, StatusKind, Untagged,
};
pub use write::write_response;
pub(crate) use write::write_response_for_trace;
