//! The table's layout, as public constants, and the conversions between
//! payload fields and DynamoDB items.
//!
//! One item per payload key holds its fields: partition key [`KEY`] = the
//! payload key, sort key [`SORT`] = [`PAYLOAD`], one binary attribute per
//! field named [`FIELD_PREFIX`] + the field's name (`f:email`), and
//! [`EXPIRES_AT`] (epoch seconds, DynamoDB's TTL attribute) when the key
//! has a time to live. A value too large for the item is a map attribute
//! instead (a [`Manifest`](crate::piece::Manifest)), and its bytes are in
//! piece items beside it: same partition key, sort key
//! [`PIECE_PREFIX`]`{write}/{n}`, the bytes in [`PIECE_VALUE`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

/// The partition key attribute (a string): the payload key.
pub const KEY: &str = "pk";
/// The sort key attribute (a string): [`PAYLOAD`] or a piece's.
pub const SORT: &str = "sk";
/// The sort key of the item that holds a payload key's fields.
pub const PAYLOAD: &str = "payload";
/// The start of a piece item's sort key: `piece/{write}/{n}`.
pub const PIECE_PREFIX: &str = "piece/";
/// The bytes of a piece item (binary).
pub const PIECE_VALUE: &str = "v";
/// When the key expires, in seconds since the Unix epoch (a number): the
/// table's TTL attribute, also filtered on read.
pub const EXPIRES_AT: &str = "expires_at";
/// The start of every field's attribute name: `f:` + the field's name.
pub const FIELD_PREFIX: &str = "f:";

/// An item, as the SDK has it.
pub type Item = HashMap<String, AttributeValue>;

/// The attribute of field `name`: [`FIELD_PREFIX`] + `name`, so that no
/// field meets [`KEY`], [`SORT`] or [`EXPIRES_AT`], and the empty name is a
/// name too. Field names are Rust strings, hence UTF-8, which is what
/// DynamoDB takes for attribute names: every name round-trips as it is,
/// readable in the console.
///
/// ```
/// use event_backbone_dynamodb::item::{field_attribute, field_name};
/// assert_eq!(field_attribute("email"), "f:email");
/// assert_eq!(field_name("f:名前"), Some("名前"));
/// assert_eq!(field_name("expires_at"), None);
/// ```
pub fn field_attribute(name: &str) -> String {
    format!("{FIELD_PREFIX}{name}")
}

/// The field an attribute holds, if it is a field's.
pub fn field_name(attribute: &str) -> Option<&str> {
    attribute.strip_prefix(FIELD_PREFIX)
}

/// The primary key of the item that holds `key`'s fields.
pub(crate) fn payload_key(key: &str) -> Item {
    HashMap::from([
        (KEY.to_owned(), AttributeValue::S(key.to_owned())),
        (SORT.to_owned(), AttributeValue::S(PAYLOAD.to_owned())),
    ])
}

/// The primary key of piece `n` of write `write` of `key`.
pub(crate) fn piece_key(key: &str, write: &str, n: u32) -> Item {
    HashMap::from([
        (KEY.to_owned(), AttributeValue::S(key.to_owned())),
        (
            SORT.to_owned(),
            AttributeValue::S(format!("{PIECE_PREFIX}{write}/{n}")),
        ),
    ])
}

/// A string attribute of an item.
pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The expiry of a key put at `now_ms` with `ttl`, in whole seconds,
/// rounded up: a key never expires early, and at most a second late.
pub(crate) fn expiry(now_ms: i64, ttl: Duration) -> i64 {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    now_ms.saturating_add(ttl_ms).saturating_add(999) / 1000
}

/// An epoch-seconds number attribute.
pub(crate) fn seconds(at: i64) -> AttributeValue {
    AttributeValue::N(at.to_string())
}

/// Whether an item has not expired at `now_ms`: no [`EXPIRES_AT`], or one
/// still ahead. DynamoDB deletes expired items late (within days): reads
/// leave them out themselves.
pub(crate) fn is_live(item: &Item, now_ms: i64) -> bool {
    match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(n)) => n
            .parse::<i64>()
            .map_or(true, |at| at.saturating_mul(1000) > now_ms),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up_to_the_second() {
        assert_eq!(expiry(10_000, Duration::from_millis(400)), 11);
        assert_eq!(expiry(10_600, Duration::from_millis(400)), 11);
        assert_eq!(expiry(10_601, Duration::from_millis(400)), 12);
        let item = HashMap::from([(EXPIRES_AT.to_owned(), seconds(11))]);
        assert!(is_live(&item, 10_999));
        assert!(!is_live(&item, 11_000));
        assert!(is_live(&Item::new(), i64::MAX));
    }

    #[test]
    fn fields_never_meet_the_table_s_own_attributes() {
        for name in ["", "pk", "sk", "expires_at", "f:", "v"] {
            let attribute = field_attribute(name);
            assert!(![KEY, SORT, EXPIRES_AT, PIECE_VALUE].contains(&attribute.as_str()));
            assert_eq!(field_name(&attribute), Some(name));
        }
        assert_eq!(field_name(KEY), None);
    }
}
