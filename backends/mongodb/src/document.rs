//! How a payload key looks in MongoDB: one document per key.
//!
//! ```text
//! { _id: "<payload key>",
//!   f: { "<field name>": BinData(0, <bytes>), ... },
//!   expires_at: ISODate(...) }        // only with a TTL
//! ```
//!
//! Field names live under [`FIELDS`] so that no segment name can collide
//! with `_id` or [`EXPIRES_AT`]. A segment name may hold any character, but
//! a BSON field name cannot hold NUL, MongoDB treats `.` as a path and `$`
//! as an operator: those three and the escape character `%` are written as
//! `%00`, `%2E`, `%24` and `%25` ([`encode_name`]), everything else as it
//! is, so that ordinary names read as themselves in `mongosh` and every name
//! round-trips exactly ([`decode_name`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use event_backbone_core::{Fields, Result};
use mongodb::bson::{Bson, Document};

use crate::error::protocol;

/// The sub-document holding the fields.
pub const FIELDS: &str = "f";
/// The date after which the document counts as missing; a TTL index on it
/// (`expireAfterSeconds: 0`) lets the server delete it, within a minute or
/// so.
pub const EXPIRES_AT: &str = "expires_at";
/// The name of the TTL index the store creates.
pub const TTL_INDEX: &str = "expires_at_ttl";

/// A field name as stored: `%`, `.`, `$` and NUL escaped.
///
/// ```
/// use event_backbone_mongodb::document::{decode_name, encode_name};
/// assert_eq!(encode_name("customer"), "customer");
/// assert_eq!(encode_name("a.b$c%\0"), "a%2Eb%24c%25%00");
/// assert_eq!(decode_name("a%2Eb%24c%25%00").as_deref(), Some("a.b$c%\0"));
/// ```
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' => out.push_str("%24"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

/// The field name an encoded one stands for; `None` for an escape this
/// store never writes.
pub fn decode_name(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "%25" => '%',
            "%2E" => '.',
            "%24" => '$',
            "%00" => '\0',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The whole document of a key written new: `_id`, the fields, and the
/// expiry date `expires_at` when it has one.
pub(crate) fn whole(
    key: &str,
    fields: &Fields,
    expires_at: Option<mongodb::bson::DateTime>,
) -> Document {
    let mut stored = Document::new();
    for (name, bytes) in fields {
        stored.insert(
            encode_name(name),
            mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: bytes.to_vec(),
            },
        );
    }
    let mut doc = Document::new();
    doc.insert("_id", key);
    doc.insert(FIELDS, stored);
    if let Some(at) = expires_at {
        doc.insert(EXPIRES_AT, at);
    }
    doc
}

/// The path of a field inside the document: `f.<encoded name>`.
pub(crate) fn field_path(name: &str) -> String {
    format!("{FIELDS}.{}", encode_name(name))
}

/// The fields of a document read back; `key` and `collection` name it in
/// errors.
pub(crate) fn fields_of(doc: &Document, collection: &str, key: &str) -> Result<Fields> {
    let action = || format!("reading key {key:?} of collection {collection:?}");
    let Some(stored) = doc.get(FIELDS) else {
        return Ok(Fields::new());
    };
    let Bson::Document(stored) = stored else {
        return Err(protocol(
            action(),
            format!("field {FIELDS:?} is not a document: {stored}"),
        ));
    };
    let mut fields = BTreeMap::new();
    for (encoded, value) in stored {
        let name = decode_name(encoded).ok_or_else(|| {
            protocol(
                action(),
                format!("field name {encoded:?} has an escape other than %25 %2E %24 %00"),
            )
        })?;
        let Bson::Binary(binary) = value else {
            return Err(protocol(
                action(),
                format!("field {name:?} is not binary data"),
            ));
        };
        fields.insert(name, Bytes::copy_from_slice(&binary.bytes));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for name in [
            "",
            "plain",
            "with space",
            "%",
            "%25",
            "..",
            "$set",
            "a\0b",
            "é🚀",
            "%2",
            "100%",
        ] {
            let encoded = encode_name(name);
            assert!(!encoded.contains(['.', '$', '\0']), "{encoded:?}");
            assert_eq!(decode_name(&encoded).as_deref(), Some(name), "{name:?}");
        }
        assert_eq!(decode_name("%zz"), None);
        assert_eq!(decode_name("trailing%2"), None);
    }
}
