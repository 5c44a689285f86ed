//! Values too large for DynamoDB's 400 KB item: split over piece items and
//! reassembled on read.
//!
//! A put writes the pieces first, under a write id of its own, then the
//! payload item whose field names them (a [`Manifest`]: write id, piece
//! count, length). A reader follows the manifest it read; a piece that is
//! not there (the put has not finished, or another put replaced the value
//! and removed the old pieces) makes the read fail with a transient error
//! that says so, never a shorter or mixed value. Old pieces are removed
//! after the payload item no longer names them.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::{Bytes, BytesMut};
use event_backbone_core::{Error as CoreError, Fields};

use crate::item::{field_attribute, piece_key, seconds, Item, EXPIRES_AT, PIECE_VALUE};
use crate::BACKEND;

/// DynamoDB's item limit: 400 KB, attribute names and values together.
pub const ITEM_LIMIT: usize = 400 * 1024;
/// The bytes of one piece item: what is left of [`ITEM_LIMIT`] after a
/// partition key of the largest size (2048 bytes) and the other attributes.
pub const PIECE_BYTES: usize = ITEM_LIMIT - 8 * 1024;
/// What the fields of one put may take in the payload item before the
/// largest ones go to pieces (room is left for the fields already there).
pub(crate) const INLINE_BUDGET: usize = 256 * 1024;
/// What one field's manifest takes in the payload item, at most.
const MANIFEST_BYTES: usize = 96;

const WRITE: &str = "write";
const PIECES: &str = "pieces";
const LENGTH: &str = "bytes";

/// Where a large value's bytes are: `pieces` items of write `write`,
/// `bytes` long together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The write id, unique to the put and the field.
    pub write: String,
    /// How many pieces.
    pub pieces: u32,
    /// The value's length.
    pub bytes: u64,
}

impl Manifest {
    fn new(value_len: usize) -> Self {
        Self {
            write: format!("{:016x}", fastrand::u64(..)),
            pieces: value_len.div_ceil(PIECE_BYTES).max(1) as u32,
            bytes: value_len as u64,
        }
    }

    /// The map attribute the payload item holds for the field.
    pub(crate) fn attribute(&self) -> AttributeValue {
        AttributeValue::M(HashMap::from([
            (WRITE.to_owned(), AttributeValue::S(self.write.clone())),
            (
                PIECES.to_owned(),
                AttributeValue::N(self.pieces.to_string()),
            ),
            (LENGTH.to_owned(), AttributeValue::N(self.bytes.to_string())),
        ]))
    }

    /// The manifest a map attribute holds, if it is one.
    pub(crate) fn from_map(map: &HashMap<String, AttributeValue>) -> Option<Self> {
        let number = |name: &str| match map.get(name) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        let write = match map.get(WRITE) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => return None,
        };
        Some(Self {
            write,
            pieces: u32::try_from(number(PIECES)?).ok()?,
            bytes: number(LENGTH)?,
        })
    }

    /// The primary keys of its pieces under `key`.
    pub(crate) fn piece_keys(&self, key: &str) -> Vec<Item> {
        (0..self.pieces)
            .map(|n| piece_key(key, &self.write, n))
            .collect()
    }
}

/// The fields of one put, split: those written in the payload item, and
/// those whose bytes go to pieces (with their manifests).
pub(crate) struct Plan<'a> {
    pub(crate) inline: Vec<(&'a str, &'a Bytes)>,
    pub(crate) spilled: Vec<(&'a str, &'a Bytes, Manifest)>,
    /// What the payload item's key and fields take, about: the inline
    /// values and names, and a manifest per spilled field.
    pub(crate) bytes: usize,
}

/// Splits a put's fields: the largest go to pieces until the rest fit the
/// payload item's budget (`spill_all`: every field goes, when the item
/// with the fields already there was too large).
pub(crate) fn plan<'a>(key: &str, fields: &'a Fields, spill_all: bool) -> Plan<'a> {
    let mut by_size: Vec<(&str, &Bytes)> = fields.iter().map(|(n, v)| (n.as_str(), v)).collect();
    by_size.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut total: usize = key.len()
        + by_size
            .iter()
            .map(|(n, v)| field_attribute(n).len() + v.len())
            .sum::<usize>();
    let mut spilled = Vec::new();
    let mut rest = by_size.into_iter().peekable();
    while let Some(&(name, value)) = rest.peek() {
        if !spill_all && total <= INLINE_BUDGET {
            break;
        }
        if !spill_all && value.len() <= MANIFEST_BYTES {
            break;
        }
        total = total - value.len() + MANIFEST_BYTES;
        spilled.push((name, value, Manifest::new(value.len())));
        rest.next();
    }
    Plan {
        inline: rest.collect(),
        spilled,
        bytes: total,
    }
}

/// The piece items of a value.
pub(crate) fn piece_items(
    key: &str,
    manifest: &Manifest,
    value: &Bytes,
    expires_at: Option<i64>,
) -> Vec<Item> {
    let mut items = Vec::with_capacity(manifest.pieces as usize);
    for (n, mut item) in manifest.piece_keys(key).into_iter().enumerate() {
        let start = (n * PIECE_BYTES).min(value.len());
        let end = ((n + 1) * PIECE_BYTES).min(value.len());
        item.insert(
            PIECE_VALUE.to_owned(),
            AttributeValue::B(Blob::new(value[start..end].to_vec())),
        );
        if let Some(at) = expires_at {
            item.insert(EXPIRES_AT.to_owned(), seconds(at));
        }
        items.push(item);
    }
    items
}

/// The value of `field` of `key` from its pieces (by sort key), or a
/// transient error naming what is missing: the value was replaced or
/// removed while it was read, or its put has not finished.
pub(crate) fn assemble(
    key: &str,
    field: &str,
    manifest: &Manifest,
    pieces: &HashMap<String, Bytes>,
) -> event_backbone_core::Result<Bytes> {
    let mut value = BytesMut::with_capacity(manifest.bytes as usize);
    for (n, k) in manifest.piece_keys(key).iter().enumerate() {
        let sort = crate::item::string(k, crate::item::SORT).unwrap_or_default();
        let Some(piece) = pieces.get(sort) else {
            return Err(CoreError::transient(
                BACKEND,
                format!("reading field {field:?} of key {key:?}"),
                format!(
                    "piece {} of {} of write {} is missing: the value was replaced or deleted \
                     while it was read, or its put has not finished; read it again",
                    n + 1,
                    manifest.pieces,
                    manifest.write
                ),
            ));
        };
        value.extend_from_slice(piece);
    }
    if value.len() as u64 != manifest.bytes {
        return Err(CoreError::permanent(
            BACKEND,
            format!("reading field {field:?} of key {key:?}"),
            format!(
                "its {} pieces hold {} bytes, the manifest says {}",
                manifest.pieces,
                value.len(),
                manifest.bytes
            ),
        ));
    }
    Ok(value.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(sizes: &[(&str, usize)]) -> Fields {
        sizes
            .iter()
            .map(|&(n, s)| (n.to_owned(), Bytes::from(vec![7u8; s])))
            .collect()
    }

    #[test]
    fn small_fields_stay_in_the_item_and_the_largest_go_first() {
        let small = fields(&[("a", 10), ("b", 1000)]);
        let p = plan("k", &small, false);
        assert_eq!((p.inline.len(), p.spilled.len()), (2, 0));
        let mixed = fields(&[("a", 10), ("big", 300 * 1024), ("mid", 100 * 1024)]);
        let p = plan("k", &mixed, false);
        let spilled: Vec<&str> = p.spilled.iter().map(|(n, ..)| *n).collect();
        assert_eq!(spilled, ["big"]);
        let p = plan("k", &mixed, true);
        assert_eq!(p.spilled.len(), 3);
        assert!(p.inline.is_empty());
    }

    #[test]
    fn pieces_cover_the_value_and_reassemble() {
        let value = Bytes::from(
            (0..(PIECE_BYTES * 2 + 5))
                .map(|i| i as u8)
                .collect::<Vec<_>>(),
        );
        let m = Manifest::new(value.len());
        assert_eq!(m.pieces, 3);
        let items = piece_items("k", &m, &value, Some(42));
        let mut pieces = HashMap::new();
        for item in &items {
            let sort = crate::item::string(item, crate::item::SORT)
                .unwrap()
                .to_owned();
            let AttributeValue::B(b) = &item[PIECE_VALUE] else {
                panic!("not binary")
            };
            pieces.insert(sort, Bytes::from(b.clone().into_inner()));
        }
        assert_eq!(assemble("k", "f", &m, &pieces).unwrap(), value);
        let AttributeValue::M(map) = m.attribute() else {
            panic!("not a map")
        };
        assert_eq!(Manifest::from_map(&map), Some(m.clone()));
        pieces.remove(&format!("piece/{}/1", m.write));
        let err = assemble("k", "f", &m, &pieces).unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("piece 2 of 3"), "{err}");
    }
}
