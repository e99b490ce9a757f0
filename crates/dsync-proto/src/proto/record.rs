//! An item as named values, decoded by the sender's schema, and the encoding of named
//! values by our schema (`dsync-serializer.c`, `dsync-deserializer.c`).

use std::fmt;
use std::sync::Arc;

use super::escape;
use super::schema::{ItemKind, Schema};

/// One item as the sender's schema names its values.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    schema: Arc<Schema>,
    values: Vec<Option<Vec<u8>>>,
}

impl Record {
    /// Decodes the values of an item line (after its kind byte, without the line end) by
    /// `schema`. A required key that is missing or NULL is an error, as in Dovecot; values
    /// beyond the schema's keys are ignored.
    pub fn decode(schema: Arc<Schema>, line: &[u8]) -> Result<Record, String> {
        let values = escape::decode_values(line);
        let record = Record { schema, values };
        for key in record.kind().required_keys() {
            if record.get(key).is_none() {
                return Err(format!("Missing required field {key}"));
            }
        }
        Ok(record)
    }

    /// The item kind.
    pub fn kind(&self) -> ItemKind {
        self.schema.kind()
    }

    /// The schema the values were decoded by.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The value of `key`: `None` when the sender's schema lacks the key, the line ended
    /// before it, or it is NULL.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let position = self.schema.position(key)?;
        self.values.get(position)?.as_deref()
    }

    /// True when `key` has a value (possibly empty: many flags are "present and empty").
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Every key with its value, in the sender's order (NULL and missing values left out).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.schema
            .keys()
            .zip(&self.values)
            .filter_map(|(key, value)| Some((key, value.as_deref()?)))
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"kind", &self.kind());
        for (key, value) in self.fields() {
            map.entry(&key, &String::from_utf8_lossy(value));
        }
        map.finish()
    }
}

/// A key that our schema for the item kind does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} has no key {key:?} in the schema used to encode it")]
pub struct UnknownKey {
    /// The item kind.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
}

/// Appends one item line: the kind byte, the values in `schema`'s order (keys not given
/// are NULL; nothing after the last given one), LF.
pub fn encode_fields(
    schema: &Schema,
    fields: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), UnknownKey> {
    let mut values: Vec<Option<&[u8]>> = Vec::new();
    for &(key, value) in fields {
        let position = schema
            .position(key)
            .ok_or_else(|| UnknownKey { kind: schema.kind(), key: key.to_owned() })?;
        if values.len() <= position {
            values.resize(position + 1, None);
        }
        values[position] = Some(value);
    }
    out.push(schema.kind().byte());
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b'\t');
        }
        escape::append_value(out, *value);
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_go_by_position_and_trailing_nulls_are_left_out() {
        let schema = Schema::dovecot_2_3(ItemKind::MailRequest);
        let mut out = Vec::new();
        encode_fields(&schema, &[("uid", b"7")], &mut out).expect("known keys");
        assert_eq!(out, b"R\x02\t7\n");
        out.clear();
        encode_fields(&schema, &[("guid", b"g")], &mut out).expect("known keys");
        assert_eq!(out, b"Rg\n");
        let unknown = encode_fields(&schema, &[("size", b"1")], &mut out);
        assert_eq!(unknown.map_err(|e| e.key), Err("size".to_owned()));
    }

    #[test]
    fn decoding_follows_the_senders_order() {
        let schema = Arc::new(Schema::new(ItemKind::MailRequest, ["uid", "guid"]));
        let record = Record::decode(schema, b"5\tabc\textra").expect("decodes");
        assert_eq!(record.get("guid"), Some(&b"abc"[..]));
        assert_eq!(record.get("uid"), Some(&b"5"[..]));
        assert_eq!(record.get("nothing"), None);
        let change = Arc::new(Schema::dovecot_2_3(ItemKind::MailChange));
        assert_eq!(Record::decode(change, b"s"), Err("Missing required field uid".to_owned()));
    }
}
