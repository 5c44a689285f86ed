//! The write of new keys ([`KeyValueStore::insert_many`]): whole items in
//! `BatchWriteItem`s, 25 to a request, `concurrency` requests at once,
//! what the server left unprocessed sent again.
//!
//! A producer's payload keys are named after its fresh message id, so
//! there is nothing in the table to merge with and no condition to check:
//! the fastest write DynamoDB has. A `PutRequest` replaces whatever the key
//! held, so writing the same batch again (a retry) leaves the same values.
//!
//! [`KeyValueStore::insert_many`]: event_backbone_core::KeyValueStore::insert_many

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use event_backbone_core::store::merge_repeated_keys;
use event_backbone_core::{PutItem, Result};

use crate::batch::Write;
use crate::item::{expiry, field_attribute, now_ms, payload_key, seconds, EXPIRES_AT};
use crate::piece::{piece_items, plan, INLINE_BUDGET};
use crate::store::DynamoStore;

impl DynamoStore {
    /// Writes `items` (checked) as whole items. Large values' pieces go
    /// first, under write ids made from the key and the field (a retry
    /// writes the same pieces again, and leaves none behind), then the
    /// payload items that name them: an item is never there without its
    /// pieces. An item whose fields do not fit one item even with its
    /// large values in pieces (thousands of small fields) goes through the
    /// merging put, which says so. A key named twice is written once, its
    /// puts merged in order.
    pub(crate) async fn insert(&self, items: &[PutItem]) -> Result<()> {
        let now = now_ms();
        let mut pieces = Vec::new();
        let mut writes = Vec::with_capacity(items.len());
        let mut too_many_fields = Vec::new();
        for item in merge_repeated_keys(items).iter() {
            let expires_at = item.ttl.map(|ttl| expiry(now, ttl));
            let mut plan = plan(&item.key, &item.fields, false);
            if plan.bytes > INLINE_BUDGET {
                too_many_fields.push(item.clone());
                continue;
            }
            let mut whole = payload_key(&item.key);
            whole.reserve(item.fields.len() + 1);
            for (name, value) in &plan.inline {
                whole.insert(
                    field_attribute(name),
                    AttributeValue::B(Blob::new(value.to_vec())),
                );
            }
            for (name, value, manifest) in &mut plan.spilled {
                manifest.write = insert_write_id(&item.key, name);
                whole.insert(field_attribute(name), manifest.attribute());
                pieces.extend(
                    piece_items(&item.key, manifest, value, expires_at)
                        .into_iter()
                        .map(Write::Put),
                );
            }
            if let Some(at) = expires_at {
                whole.insert(EXPIRES_AT.to_owned(), seconds(at));
            }
            writes.push(Write::Put(whole));
        }
        if !pieces.is_empty() {
            self.batch().write(pieces).await?;
        }
        if !writes.is_empty() {
            self.batch().write(writes).await?;
        }
        if !too_many_fields.is_empty() {
            self.put_checked(&too_many_fields).await?;
        }
        Ok(())
    }
}

/// The write id of an inserted large value: the same for the same key and
/// field (FNV-1a of both), so that a retried insert writes the same piece
/// items again instead of new ones beside them.
fn insert_write_id(key: &str, field: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain([0xff]).chain(field.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::insert_write_id;

    #[test]
    fn write_ids_are_the_same_for_a_key_and_field_and_differ_otherwise() {
        assert_eq!(insert_write_id("k", "f"), insert_write_id("k", "f"));
        assert_ne!(insert_write_id("k", "f"), insert_write_id("k", "g"));
        assert_ne!(insert_write_id("kf", ""), insert_write_id("k", "f"));
        assert_eq!(insert_write_id("k", "f").len(), 16);
    }
}
