//! Writing our side: the version and schema lines, items by our schema, list ends and
//! streams.

use super::dot::DotEncoder;
use super::items::Item;
use super::record::{UnknownKey, encode_fields};
use super::schema::{ItemKind, Schema, SchemaSet};
use super::{PROTOCOL_MAJOR, PROTOCOL_MINOR};

/// Encodes our side of a conversation by our schemas (Dovecot 2.3's by default).
#[derive(Debug, Clone)]
pub struct Encoder {
    schemas: SchemaSet,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder with Dovecot 2.3's schemas.
    pub fn new() -> Encoder {
        Encoder { schemas: SchemaSet::dovecot_2_3() }
    }

    /// Our schemas.
    pub fn schemas(&self) -> &SchemaSet {
        &self.schemas
    }

    /// Appends what each side sends first: the version line, the schema lines and `.`.
    pub fn start(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!("VERSION\tdsync\t{PROTOCOL_MAJOR}\t{PROTOCOL_MINOR}\n").as_bytes(),
        );
        self.schemas.encode(out);
    }

    /// Appends one item line. Typed items only use keys of Dovecot 2.3's schemas, which
    /// are ours, so this cannot fail.
    pub fn item<I: Item>(&self, item: &I, out: &mut Vec<u8>) {
        let fields = item.fields();
        let borrowed: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let schema = Schema::dovecot_2_3(I::KIND);
        let schema = self.schemas.get(I::KIND).map_or(&schema, |ours| ours.as_ref());
        // Unreachable: every key of a typed item is in Dovecot 2.3's schema of its kind.
        let _ = encode_fields(schema, &borrowed, out);
    }

    /// Appends one item line from named values (keys our schema lacks are an error).
    pub fn fields(
        &self,
        kind: ItemKind,
        fields: &[(&str, Vec<u8>)],
        out: &mut Vec<u8>,
    ) -> Result<(), UnknownKey> {
        let schema = self
            .schemas
            .get(kind)
            .ok_or_else(|| UnknownKey { kind, key: String::from("(no schema)") })?;
        let borrowed: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        encode_fields(schema, &borrowed, out)
    }

    /// Appends `.`, the end of a list.
    pub fn end_of_list(out: &mut Vec<u8>) {
        out.extend_from_slice(b".\n");
    }

    /// Appends `X`: we are closing.
    pub fn done(out: &mut Vec<u8>) {
        out.extend_from_slice(b"X\n");
    }

    /// A stream encoder for the body that follows an item with `stream` set.
    pub fn stream() -> DotEncoder {
        DotEncoder::new()
    }
}
