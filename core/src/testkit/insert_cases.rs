//! The store cases of [`KeyValueStore::insert_many`](crate::KeyValueStore::insert_many),
//! the producer's write of new payload keys.

use std::time::Duration;

use bytes::Bytes;

use super::case::{ensure, CaseFailure, CaseResult};
use super::harness::StoreHarness;
use crate::store::{Fields, PutItem};

/// 1 MiB: the large value of [`insert_many_takes_large_values`], which
/// runs on stores that take one (as the store suite's `one_mib_value`).
const MIB: usize = 1024 * 1024;

fn batch(h: &StoreHarness, name: &str, n: usize) -> Vec<PutItem> {
    (0..n)
        .map(|i| PutItem {
            key: h.key(&format!("{name}-{i}")),
            fields: Fields::from([
                ("n".to_owned(), Bytes::from(i.to_string())),
                ("blob".to_owned(), Bytes::from(vec![(i % 251) as u8; 100])),
            ]),
            // Some with a TTL long enough not to pass during the case.
            ttl: (i % 3 == 0).then_some(Duration::from_secs(600)),
        })
        .collect()
}

async fn read_back(h: &StoreHarness, items: &[PutItem], what: &str) -> CaseResult {
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let read = h.store.get_many(&keys).await?;
    ensure!(
        read.len() == items.len(),
        "{what}: get_many returned {} results for {} keys",
        read.len(),
        items.len()
    );
    for (item, got) in items.iter().zip(&read) {
        ensure!(
            got.as_ref() == Some(&item.fields),
            "{what}: key {:?} read {:?}, expected {:?}",
            item.key,
            got.as_ref().map(|f| f.keys().collect::<Vec<_>>()),
            item.fields.keys().collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// New keys written in one batch are read back whole.
pub async fn insert_many_then_get_many(h: &StoreHarness) -> CaseResult {
    let items = batch(h, "insert", 300);
    h.store.insert_many(&items).await?;
    read_back(h, &items, "after insert_many").await
}

/// The same batch written again (a retry after a failure that hid its
/// success) succeeds and leaves the same values.
pub async fn insert_many_again_is_harmless(h: &StoreHarness) -> CaseResult {
    let items = batch(h, "again", 60);
    h.store.insert_many(&items).await?;
    h.store
        .insert_many(&items)
        .await
        .map_err(|e| CaseFailure::new(format!("the same batch again failed: {e}")))?;
    read_back(h, &items, "after the same batch twice").await?;
    // A retry of part of it, in another order, too.
    let mut part: Vec<PutItem> = items.iter().step_by(7).cloned().collect();
    part.reverse();
    h.store
        .insert_many(&part)
        .await
        .map_err(|e| CaseFailure::new(format!("part of the batch again failed: {e}")))?;
    read_back(h, &items, "after part of the batch again").await
}

/// A batch with a value over the store's limit is refused whole, before
/// anything of it is written, with a permanent error naming the key.
pub async fn insert_many_refuses_a_value_over_the_limit(h: &StoreHarness) -> CaseResult {
    let limit = h
        .store
        .capabilities()
        .max_value_bytes
        .expect("the case applies to stores with a limit");
    let mut items = batch(h, "insert-limit", 3);
    let big = items[2].key.clone();
    items[2]
        .fields
        .insert("scan".to_owned(), Bytes::from(vec![0u8; limit + 1]));
    let error = match h.store.insert_many(&items).await {
        Ok(()) => {
            return Err(CaseFailure::new(format!(
                "insert_many took a value of {} bytes, over the store's limit of {limit}",
                limit + 1
            )))
        }
        Err(e) => e,
    };
    ensure!(
        !error.is_transient() && error.to_string().contains(&big),
        "the refusal is transient or does not name the key {big:?}: {error}"
    );
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let left = h.store.get_many(&keys).await?;
    ensure!(
        left.iter().all(Option::is_none),
        "a refused batch was written (in part)"
    );
    Ok(())
}

/// Large values (1 MiB and a byte, over what many stores keep inline) among
/// small ones, in a batch of more than one request's worth, read back whole.
pub async fn insert_many_takes_large_values(h: &StoreHarness) -> CaseResult {
    let mut items = batch(h, "insert-large", 40);
    for (i, size) in [(3, MIB + 1), (31, 300 * 1024)] {
        let value: Vec<u8> = (0..size).map(|b| (b % 253) as u8).collect();
        items[i]
            .fields
            .insert("scan".to_owned(), Bytes::from(value));
    }
    h.store.insert_many(&items).await?;
    read_back(h, &items, "after insert_many with large values").await?;
    h.store.insert_many(&items).await?;
    read_back(h, &items, "after the same batch again").await
}

/// A key inserted with a TTL reads as missing once it has passed (give or
/// take a second: a store may round its expiry up to the second); one
/// without stays. A TTL of a second leaves a loaded machine time for the
/// first read.
pub async fn insert_many_ttl_expires_the_key(h: &StoreHarness) -> CaseResult {
    let mut items = batch(h, "insert-ttl", 2);
    items[0].ttl = Some(Duration::from_secs(1));
    items[1].ttl = None;
    h.store.insert_many(&items).await?;
    let keys = [items[0].key.as_str(), items[1].key.as_str()];
    let read = h.store.get_many(&keys).await?;
    ensure!(
        read.iter().all(Option::is_some),
        "a key inserted with a TTL of 1 s expired at once: {:?}",
        read.iter().map(Option::is_some).collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let read = h.store.get_many(&keys).await?;
    ensure!(read[0].is_none(), "the key outlived its 1 s TTL by 1.5 s");
    ensure!(
        read[1].as_ref() == Some(&items[1].fields),
        "the key without a TTL did not stay: {:?}",
        read[1].as_ref().map(|f| f.keys().collect::<Vec<_>>())
    );
    Ok(())
}

/// A key named twice in one batch holds the later put's values afterwards
/// (whether the store merges the two or the later replaces the first), and
/// the other keys of the batch are written.
pub async fn insert_many_names_a_key_twice(h: &StoreHarness) -> CaseResult {
    let mut items = batch(h, "insert-twice", 30);
    let mut later = items[4].clone();
    later.fields = Fields::from([
        ("n".to_owned(), Bytes::from_static(b"later")),
        ("extra".to_owned(), Bytes::from_static(b"x")),
    ]);
    // Next to the first: in the same request of a store that sends a few.
    items.insert(5, later.clone());
    h.store.insert_many(&items).await?;
    let read = h.store.get(&later.key).await?.unwrap_or_default();
    for (name, value) in &later.fields {
        ensure!(
            read.get(name) == Some(value),
            "field {name:?} of key {:?}, named twice in one batch, reads {:?}: not the later \
             put's value",
            later.key,
            read.get(name)
        );
    }
    let others: Vec<PutItem> = items
        .iter()
        .filter(|i| i.key != later.key)
        .cloned()
        .collect();
    read_back(h, &others, "the other keys of the batch").await
}
