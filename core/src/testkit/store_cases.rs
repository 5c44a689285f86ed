//! The store suite: what every [`crate::KeyValueStore`] must do.

use std::time::Duration;

use bytes::Bytes;

use super::case::{ensure, CaseFailure, CaseResult, StoreCase};
use super::harness::StoreHarness;
use super::insert_cases::{
    insert_many_again_is_harmless, insert_many_names_a_key_twice,
    insert_many_refuses_a_value_over_the_limit, insert_many_takes_large_values,
    insert_many_then_get_many, insert_many_ttl_expires_the_key,
};
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

/// 1 MiB.
const MIB: usize = 1024 * 1024;

/// The largest value the kit writes and reads back (a store may accept
/// more).
pub const LARGEST_VALUE_TESTED: usize = 16 * MIB;

/// The largest limit whose overstep the kit tries (a value one byte over
/// it is allocated, not filled: a store checks its size before it sends it).
pub const LARGEST_LIMIT_TESTED: usize = 1024 * MIB;

fn takes_one_mib(c: &StoreCapabilities) -> Result<(), &'static str> {
    match c.max_value_bytes {
        Some(max) if max < MIB => Err("the store declares a value limit under 1 MiB"),
        _ => Ok(()),
    }
}

fn has_value_limit(c: &StoreCapabilities) -> Result<(), &'static str> {
    match c.max_value_bytes {
        None => Err("the store declares no value limit"),
        Some(max) if max > LARGEST_LIMIT_TESTED => {
            Err("the store's value limit is above what the kit allocates (1 GiB)")
        }
        Some(_) => Ok(()),
    }
}

/// The size of the largest value the kit writes to a store: its limit, or
/// [`LARGEST_VALUE_TESTED`] if that is less.
pub fn largest_value_size(c: &StoreCapabilities) -> usize {
    c.max_value_bytes
        .map_or(LARGEST_VALUE_TESTED, |max| max.min(LARGEST_VALUE_TESTED))
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
        store_case!(one_mib_value, takes_one_mib),
        store_case!(largest_value_round_trips, always),
        store_case!(value_over_the_limit_is_refused, has_value_limit),
        store_case!(ttl_expires_the_key, needs_ttl),
        store_case!(binary_keys_and_values, always),
        store_case!(delete_many_counts_existing, always),
        store_case!(concurrent_writers, always),
        store_case!(key_vault_on_the_store, always),
        store_case!(insert_many_then_get_many, always),
        store_case!(insert_many_again_is_harmless, always),
        store_case!(insert_many_refuses_a_value_over_the_limit, has_value_limit),
        store_case!(insert_many_takes_large_values, takes_one_mib),
        store_case!(insert_many_ttl_expires_the_key, needs_ttl),
        store_case!(insert_many_names_a_key_twice, always),
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

/// A 1 MiB value round-trips byte for byte (stores that take one).
pub async fn one_mib_value(h: &StoreHarness) -> CaseResult {
    round_trip(h, "big", MIB).await
}

/// A value as large as the store declares it takes (up to
/// [`LARGEST_VALUE_TESTED`]) round-trips byte for byte.
pub async fn largest_value_round_trips(h: &StoreHarness) -> CaseResult {
    round_trip(h, "largest", largest_value_size(&h.store.capabilities())).await
}

async fn round_trip(h: &StoreHarness, name: &str, size: usize) -> CaseResult {
    let key = h.key(name);
    let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    h.store
        .put(&key, &fields(&[("blob", &value)]), None)
        .await?;
    let read = h.store.get(&key).await?;
    let got = read.as_ref().and_then(|f| f.get("blob"));
    ensure!(
        got.map(|b| b.len()) == Some(value.len()),
        "a value of {size} bytes came back as {:?} bytes",
        got.map(|b| b.len())
    );
    ensure!(
        got.map(|b| &b[..]) == Some(&value[..]),
        "a value of {size} bytes came back altered"
    );
    Ok(())
}

/// A value one byte over the declared limit is refused with a permanent
/// error naming the key, the field and the limit; nothing of its batch is
/// written, nothing is truncated.
pub async fn value_over_the_limit_is_refused(h: &StoreHarness) -> CaseResult {
    let limit = h
        .store
        .capabilities()
        .max_value_bytes
        .expect("the case applies to stores with a limit");
    let fine = h.key("under-limit");
    let big = h.key("over-limit");
    // Zeroed pages from the allocator: not touched unless the store reads
    // them.
    let oversized = Bytes::from(vec![0u8; limit + 1]);
    let items = [
        PutItem {
            key: fine.clone(),
            fields: fields(&[("small", b"fits")]),
            ttl: None,
        },
        PutItem {
            key: big.clone(),
            fields: Fields::from([
                ("note".to_owned(), Bytes::from_static(b"fits")),
                ("scan".to_owned(), oversized),
            ]),
            ttl: None,
        },
    ];
    let error = match h.store.put_many(&items).await {
        Ok(()) => {
            return Err(CaseFailure::new(format!(
                "a value of {} bytes was accepted by a store that declares a limit of {limit}",
                limit + 1
            )))
        }
        Err(e) => e,
    };
    let message = error.to_string();
    ensure!(
        !error.is_transient(),
        "the refusal is transient, so callers would retry it for ever: {message}"
    );
    ensure!(
        message.contains(&big) && message.contains(&limit.to_string()) && message.contains("scan"),
        "the refusal does not name the key {big:?}, the field \"scan\" and the limit {limit}: {message}"
    );
    let left = h.store.get_many(&[&fine, &big]).await?;
    ensure!(
        left.iter().all(Option::is_none),
        "a refused batch was written (in part): {:?}",
        left.iter()
            .map(|f| f.as_ref().map(|f| f.keys().cloned().collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// A key written with a TTL reads as missing once it has passed (give or
/// take a second of resolution: no waiting for a lazy server to delete it),
/// through every read; one without a TTL stays; a put after the expiry
/// starts a new key.
pub async fn ttl_expires_the_key(h: &StoreHarness) -> CaseResult {
    let short = h.key("ttl-short");
    // Not read after it expires: a put finds it as the server left it.
    let again = h.key("ttl-again");
    let kept = h.key("ttl-none");
    for key in [&short, &again] {
        h.store
            .put(
                key,
                &fields(&[("f", b"v"), ("g", b"w")]),
                Some(Duration::from_millis(400)),
            )
            .await?;
    }
    h.store.put(&kept, &fields(&[("f", b"v")]), None).await?;
    ensure!(
        h.store.get(&short).await?.is_some(),
        "the key expired at once"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure!(
        h.store.get(&short).await?.is_none(),
        "get: the key outlived its 400 ms TTL by 1.1 s"
    );
    let partial = h.store.get_fields(&short, &["f"]).await?;
    ensure!(
        partial.is_none(),
        "get_fields: the key outlived its 400 ms TTL by 1.1 s: {partial:?}"
    );
    let many = h.store.get_many(&[&short, &kept]).await?;
    ensure!(
        many.len() == 2 && many[0].is_none() && many[1].is_some(),
        "get_many of the expired and the kept key: {many:?}"
    );
    let fresh = fields(&[("f", b"new")]);
    h.store.put(&again, &fresh, None).await?;
    let read = h.store.get(&again).await?;
    ensure!(
        read.as_ref() == Some(&fresh),
        "a put after the expiry brought expired fields back: {read:?}"
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

/// A [`StoreKeyVault`](crate::privacy::StoreKeyVault) on the store: eight
/// producers making one subject's first key at once lose none of them (a
/// put merges fields), a batch lookup answers in order, erasure writes a
/// tombstone and empties the subject's record alone, is idempotent, and
/// returns only when producers elsewhere (other vault instances, as other
/// processes) seal with a new key; a record lost without a tombstone is
/// told apart from an erasure; keys wrapped by a previous master key open
/// while new ones are wrapped by the current, a rotation rewraps them all
/// so that the previous one can be retired; another master key opens
/// nothing.
pub async fn key_vault_on_the_store(h: &StoreHarness) -> CaseResult {
    use crate::privacy::{KeyVault, MasterKey, StoreKeyVault, SubjectKey};
    use std::collections::BTreeSet;
    use std::time::Duration;

    let master = MasterKey::generate();
    let prefix = h.namespace.replace(':', ".") + ".vault";
    // Short cache times keep the erasure's wait short; every instance has
    // the same, as the processes of one system must.
    let vault = |master: &MasterKey| {
        StoreKeyVault::new(h.store.clone(), master.clone())
            .key_prefix(&prefix)
            .expect("a valid prefix")
            .cache_ttl(Duration::from_millis(300))
            .reader_cache_ttl(Duration::from_millis(300))
    };
    let subjects = SubjectKey::generate();
    let (ann, bob, nobody, cid) = (
        subjects.hash("ann"),
        subjects.hash("bob"),
        subjects.hash("nobody"),
        subjects.hash("cid"),
    );

    let producers: Vec<StoreKeyVault> = (0..8).map(|_| vault(&master)).collect();
    let made =
        futures_util::future::try_join_all(producers.iter().map(|v| v.sealing_key(&ann))).await?;
    let made: BTreeSet<_> = made.iter().map(|k| k.id()).collect();
    vault(&master).sealing_key(&bob).await?;

    let reader = vault(&master);
    let keys = reader.opening_keys(&[ann, nobody, bob]).await?;
    ensure!(
        keys.len() == 3,
        "opening_keys of 3 subjects returned {} lists",
        keys.len()
    );
    let ann_ids: BTreeSet<_> = keys[0].keys().iter().map(|k| k.id()).collect();
    ensure!(
        made.is_subset(&ann_ids),
        "keys made by concurrent producers were lost: made {made:?}, the vault has {ann_ids:?}"
    );
    ensure!(
        keys[1].keys().is_empty() && !keys[1].is_erased(),
        "a subject the vault never saw has {:?}",
        keys[1]
    );
    ensure!(
        keys[2].keys().len() == 1 && !keys[2].is_erased(),
        "bob has {:?}, expected 1 key and no tombstone",
        keys[2]
    );

    let wrong = vault(&MasterKey::generate()).opening_keys(&[ann]).await;
    ensure!(
        matches!(wrong, Err(crate::Error::KeyVault { .. })),
        "another master key opened the vault: {wrong:?}"
    );

    let before = crate::clock::now_ms();
    ensure!(reader.erase(&ann).await?, "erasing ann found no key");
    ensure!(!reader.erase(&ann).await?, "a second erasure found a key");
    let after = reader.fresh_opening_keys(&[ann, bob]).await?;
    ensure!(
        after[0].keys().is_empty(),
        "ann still has {} keys after erasure",
        after[0].keys().len()
    );
    ensure!(
        after[0].erased_at_ms().is_some_and(|at| at >= before),
        "ann's erasure left no tombstone with its time: {:?}",
        after[0]
    );
    ensure!(
        after[1].keys().len() == 1 && !after[1].is_erased(),
        "erasing ann touched bob: {:?}",
        after[1]
    );
    // The producers cached ann's key before the erasure; it has returned,
    // so each of them seals with a new key now, and readers open it.
    for producer in &producers {
        let renewed = producer.sealing_key(&ann).await?;
        ensure!(
            !ann_ids.contains(&renewed.id()),
            "a producer elsewhere sealed with an erased key after the erasure returned: {:?}",
            renewed.id()
        );
        let readable = vault(&master).fresh_opening_keys(&[ann]).await?;
        ensure!(
            readable[0].key(renewed.id()).is_some(),
            "the key made after the erasure does not open: {:?}",
            readable[0]
        );
    }

    // A record lost behind the vault's back is not an erasure.
    vault(&master).sealing_key(&cid).await?;
    h.store.delete(&reader.record_key(&cid)).await?;
    let lost = vault(&master).fresh_opening_keys(&[cid]).await?;
    ensure!(
        lost[0].keys().is_empty() && !lost[0].is_erased(),
        "a lost record reads as {:?}, expected no key and no tombstone",
        lost[0]
    );

    // A new master key: keys of the previous one still open through it,
    // new keys are wrapped by the new one, and without the previous one
    // the error names the master key needed.
    let next = MasterKey::generate();
    let rotated = vault(&next).previous_master_key(master.clone());
    let bobs = rotated.opening_keys(&[bob]).await?;
    ensure!(
        bobs[0].keys().len() == 1,
        "a key of the previous master key does not open: {:?}",
        bobs[0]
    );
    let dan = subjects.hash("dan");
    rotated.sealing_key(&dan).await?;
    let record = h.store.get(&rotated.record_key(&dan)).await?;
    ensure!(record.is_some(), "dan's record was not written");
    let record = record.unwrap_or_default();
    for wrapped in record.values() {
        ensure!(
            MasterKey::wrapped_by(wrapped)? == Some(next.id()),
            "a new key is not wrapped by the new master key"
        );
    }
    let missing = vault(&next).opening_keys(&[bob]).await;
    ensure!(
        matches!(&missing, Err(e) if e.to_string().contains(&master.id().to_string())),
        "without the previous master key the error does not name it: {missing:?}"
    );

    // Rotation rewraps every key under the new master key, reporting its
    // progress; then the previous one can be retired.
    let mut reports = 0;
    let rotation = rotated.rotate_master_key(|_| reports += 1).await?;
    ensure!(
        rotation.is_complete() && reports == 64,
        "rotation walked {} of {} buckets in {reports} reports",
        rotation.buckets_done,
        rotation.buckets
    );
    // Bob's key, ann's made after her erasure (cid's record is lost, dan's
    // is current already).
    ensure!(
        rotation.rewrapped >= 2 && rotation.current >= 1,
        "rotation rewrapped {} keys and found {} current, expected at least 2 and 1",
        rotation.rewrapped,
        rotation.current
    );
    let retired = vault(&next).opening_keys(&[bob, ann]).await?;
    ensure!(
        retired[0].keys().len() == 1 && !retired[1].keys().is_empty(),
        "after rotation, the new master key alone does not open every key: {retired:?}"
    );
    let again = rotated.rotate_master_key(|_| {}).await?;
    ensure!(
        again.rewrapped == 0,
        "a second rotation rewrapped {} keys",
        again.rewrapped
    );
    Ok(())
}
