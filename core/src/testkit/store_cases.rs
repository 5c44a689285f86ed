//! The store suite: what every [`crate::KeyValueStore`] must do.

use std::time::Duration;

use bytes::Bytes;

use super::case::{ensure, CaseFailure, CaseResult, StoreCase};
use super::harness::StoreHarness;
use crate::capabilities::StoreCapabilities;
use crate::store::{Fields, PutItem};

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
        .collect()
}

fn always(_: &StoreCapabilities) -> Result<(), &'static str> {
    Ok(())
}

fn needs_ttl(c: &StoreCapabilities) -> Result<(), &'static str> {
    if c.ttl {
        Ok(())
    } else {
        Err("the store does not declare TTL support")
    }
}

macro_rules! store_case {
    ($name:ident, $applies:expr) => {
        StoreCase {
            name: stringify!($name),
            applies: $applies,
            run: |h| Box::pin(async move { $name(&h).await }),
        }
    };
}

/// Every case of the store suite, in order.
pub fn store_cases() -> Vec<StoreCase> {
    vec![
        store_case!(put_then_get, always),
        store_case!(get_some_fields, always),
        store_case!(missing_key_is_none, always),
        store_case!(overwrite_replaces_named_fields, always),
        store_case!(delete_removes_the_key, always),
        store_case!(delete_of_missing_key_is_fine, always),
        store_case!(put_many_get_many_500, always),
        store_case!(one_mib_value, always),
        store_case!(ttl_expires_the_key, needs_ttl),
        store_case!(binary_keys_and_values, always),
        store_case!(delete_many_counts_existing, always),
        store_case!(concurrent_writers, always),
    ]
}

/// A put is read back whole.
pub async fn put_then_get(h: &StoreHarness) -> CaseResult {
    let key = h.key("put-get");
    let written = fields(&[("user", b"ann"), ("product", b"\x01\x02"), ("time", b"")]);
    h.store.put(&key, &written, None).await?;
    let read = h.store.get(&key).await?;
    ensure!(
        read.as_ref() == Some(&written),
        "get({key:?}) returned {read:?}, expected {written:?}"
    );
    Ok(())
}

/// `get_fields` returns only the named fields that exist.
pub async fn get_some_fields(h: &StoreHarness) -> CaseResult {
    let key = h.key("partial");
    h.store
        .put(
            &key,
            &fields(&[("a", b"1"), ("b", b"2"), ("c", b"3")]),
            None,
        )
        .await?;
    let read = h.store.get_fields(&key, &["a", "c", "absent"]).await?;
    let expected = fields(&[("a", b"1"), ("c", b"3")]);
    ensure!(
        read.as_ref() == Some(&expected),
        "get_fields returned {read:?}, expected {expected:?}"
    );
    let none = h.store.get_fields(&h.key("nobody"), &["a"]).await?;
    ensure!(
        none.is_none(),
        "get_fields of a missing key returned {none:?}"
    );
    Ok(())
}

/// A missing key is `None`, also inside `get_many`.
pub async fn missing_key_is_none(h: &StoreHarness) -> CaseResult {
    let present = h.key("present");
    let missing = h.key("missing");
    ensure!(
        h.store.get(&missing).await?.is_none(),
        "get of a missing key was not None"
    );
    h.store.put(&present, &fields(&[("f", b"v")]), None).await?;
    let many = h.store.get_many(&[&missing, &present, &missing]).await?;
    ensure!(
        many.len() == 3,
        "get_many of 3 keys returned {} results",
        many.len()
    );
    ensure!(
        many[0].is_none() && many[2].is_none(),
        "missing keys were not None: {many:?}"
    );
    ensure!(many[1].is_some(), "the present key was None");
    Ok(())
}

/// A second put replaces the fields it names and keeps the others.
pub async fn overwrite_replaces_named_fields(h: &StoreHarness) -> CaseResult {
    let key = h.key("overwrite");
    h.store
        .put(&key, &fields(&[("a", b"old"), ("b", b"keep")]), None)
        .await?;
    h.store.put(&key, &fields(&[("a", b"new")]), None).await?;
    let read = h.store.get(&key).await?;
    let expected = fields(&[("a", b"new"), ("b", b"keep")]);
    ensure!(
        read.as_ref() == Some(&expected),
        "after overwrite: {read:?}, expected {expected:?}"
    );
    Ok(())
}

/// Delete removes the key and says it existed.
pub async fn delete_removes_the_key(h: &StoreHarness) -> CaseResult {
    let key = h.key("delete");
    h.store
        .put(&key, &fields(&[("email", b"ann@example.com")]), None)
        .await?;
    ensure!(
        h.store.delete(&key).await?,
        "delete of an existing key returned false"
    );
    ensure!(
        h.store.get(&key).await?.is_none(),
        "the key is still there after delete"
    );
    Ok(())
}

/// Deleting a key that is not there is not an error.
pub async fn delete_of_missing_key_is_fine(h: &StoreHarness) -> CaseResult {
    let existed = h.store.delete(&h.key("never-written")).await?;
    ensure!(!existed, "delete of a missing key returned true");
    let count = h.store.delete_many(&[]).await?;
    ensure!(count == 0, "delete_many of no keys returned {count}");
    Ok(())
}

/// 500 keys written in one batch come back in one batch, in order.
pub async fn put_many_get_many_500(h: &StoreHarness) -> CaseResult {
    let items: Vec<PutItem> = (0..500)
        .map(|i| PutItem {
            key: h.key(&format!("bulk-{i}")),
            fields: fields(&[("n", i.to_string().as_bytes()), ("fixed", b"x")]),
            ttl: None,
        })
        .collect();
    h.store.put_many(&items).await?;
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let read = h.store.get_many(&keys).await?;
    ensure!(
        read.len() == 500,
        "get_many returned {} results for 500 keys",
        read.len()
    );
    for (i, (item, got)) in items.iter().zip(&read).enumerate() {
        ensure!(
            got.as_ref() == Some(&item.fields),
            "key #{i} {:?}: got {got:?}, expected {:?}",
            item.key,
            item.fields
        );
    }
    Ok(())
}

/// A 1 MiB value round-trips byte for byte.
pub async fn one_mib_value(h: &StoreHarness) -> CaseResult {
    let key = h.key("big");
    let value: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    h.store
        .put(&key, &fields(&[("blob", &value)]), None)
        .await?;
    let read = h.store.get(&key).await?;
    let got = read.as_ref().and_then(|f| f.get("blob"));
    ensure!(
        got.map(|b| b.len()) == Some(value.len()),
        "1 MiB value came back as {:?} bytes",
        got.map(|b| b.len())
    );
    ensure!(
        got.map(|b| &b[..]) == Some(&value[..]),
        "1 MiB value came back altered"
    );
    Ok(())
}

/// A key written with a TTL disappears after it; one without stays.
pub async fn ttl_expires_the_key(h: &StoreHarness) -> CaseResult {
    let short = h.key("ttl-short");
    let kept = h.key("ttl-none");
    h.store
        .put(
            &short,
            &fields(&[("f", b"v")]),
            Some(Duration::from_millis(400)),
        )
        .await?;
    h.store.put(&kept, &fields(&[("f", b"v")]), None).await?;
    ensure!(
        h.store.get(&short).await?.is_some(),
        "the key expired at once"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure!(
        h.store.get(&short).await?.is_none(),
        "the key outlived its 400 ms TTL by 1.1 s"
    );
    ensure!(
        h.store.get(&kept).await?.is_some(),
        "a key without TTL disappeared"
    );
    Ok(())
}

/// Keys and field names in any script, with separators and spaces; values
/// with every byte value, including invalid UTF-8.
pub async fn binary_keys_and_values(h: &StoreHarness) -> CaseResult {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let keys = [
        h.key("ключ:名前 with space"),
        h.key("emoji🎉/slash\\back"),
        h.key("quote\"'and{braces}[]"),
    ];
    for key in &keys {
        let written = fields(&[
            ("данные", &all_bytes),
            ("名前", b"\xff\xfe\x00\x80"),
            ("plain", b"\x00"),
        ]);
        h.store.put(key, &written, None).await?;
        let read = h.store.get(key).await?;
        ensure!(
            read.as_ref() == Some(&written),
            "key {key:?}: read {read:?}, expected {written:?}"
        );
    }
    Ok(())
}

/// `delete_many` counts only the keys that existed.
pub async fn delete_many_counts_existing(h: &StoreHarness) -> CaseResult {
    let a = h.key("dm-a");
    let b = h.key("dm-b");
    let missing = h.key("dm-missing");
    h.store.put(&a, &fields(&[("f", b"1")]), None).await?;
    h.store.put(&b, &fields(&[("f", b"2")]), None).await?;
    let count = h.store.delete_many(&[&a, &missing, &b]).await?;
    ensure!(
        count == 2,
        "delete_many of 2 existing + 1 missing returned {count}"
    );
    let left = h.store.get_many(&[&a, &b]).await?;
    ensure!(
        left.iter().all(Option::is_none),
        "keys left after delete_many: {left:?}"
    );
    Ok(())
}

/// 20 tasks writing 50 keys each: every write is there afterwards.
pub async fn concurrent_writers(h: &StoreHarness) -> CaseResult {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20 {
        let store = h.store.clone();
        let ns = h.key(&format!("cw-{t}"));
        tasks.spawn(async move {
            for i in 0..50 {
                store
                    .put(
                        &format!("{ns}-{i}"),
                        &fields(&[("v", format!("{t}/{i}").as_bytes())]),
                        None,
                    )
                    .await?;
            }
            Ok::<_, crate::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| CaseFailure::new(format!("writer task failed: {e}")))??;
    }
    for t in 0..20 {
        let ns = h.key(&format!("cw-{t}"));
        let keys: Vec<String> = (0..50).map(|i| format!("{ns}-{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let read = h.store.get_many(&refs).await?;
        for (i, got) in read.iter().enumerate() {
            let expected = fields(&[("v", format!("{t}/{i}").as_bytes())]);
            ensure!(
                got.as_ref() == Some(&expected),
                "writer {t} key {i}: {got:?}"
            );
        }
    }
    Ok(())
}
