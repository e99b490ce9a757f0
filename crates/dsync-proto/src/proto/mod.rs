//! The sans-IO core: it never touches a pipe or socket.
//!
//! * [`Decoder`] frames the peer's bytes — version line, schema lines, items, list ends,
//!   dot-stuffed streams — and decodes each item line by the peer's schema into a
//!   [`Record`]; [`Item::from_record`] turns it into a typed item ([`Handshake`],
//!   [`TreeNode`], [`MailChange`], …).
//! * [`Encoder`] writes our side by Dovecot 2.3's schemas; [`DotEncoder`] stuffs streams.
//! * The escaping ([`escape`]) and the dot-stream reader ([`DotDecoder`]) reproduce
//!   Dovecot's `strescape.c` and `istream-dot.c` exactly, quirks included.

mod decoder;
mod dot;
mod encoder;
pub mod escape;
mod items;
mod record;
mod schema;

pub use decoder::{DecodeError, Decoder, Event, Limits};
pub use dot::{DotDecoder, DotEncoder, encode_stream};
pub use encoder::Encoder;
pub use items::{
    Attribute, AttributeType, ChangeType, Deleted, Existence, Finish, Guid128, Handshake, Item,
    ItemError, Mail, MailChange, MailRequest, Mailbox, MailboxDeletes, MailboxState, SyncType,
    TreeNode, flags,
};
pub use record::{Record, UnknownKey, encode_fields};
pub use schema::{ItemKind, Schema, SchemaSet};

/// The protocol's major version: peers with another one cannot talk.
pub const PROTOCOL_MAJOR: &str = "3";
/// The minor version we speak (Dovecot 2.3's).
pub const PROTOCOL_MINOR: u32 = 5;
