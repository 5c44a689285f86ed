//! The layout as the raw SDK sees it, and the refusals: what the store
//! writes, what it does with documents it did not write or that expired by
//! their own clock, and what connect says when it cannot connect.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use event_backbone_core::{Fields, KeyValueStore};
use event_backbone_couchbase::document::{Payload, BINARY_FLAGS};
use event_backbone_couchbase::{Couchbase, CouchbaseConfig, CouchbaseStore, Error};

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), Bytes::copy_from_slice(v)))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn connect() -> (Couchbase, CouchbaseStore) {
    let couchbase = Couchbase::connect(support::config())
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-couchbase"));
    let store = CouchbaseStore::new(&couchbase);
    (couchbase, store)
}

#[tokio::test]
async fn one_binary_document_per_key_with_its_fields_and_expiry() {
    let (couchbase, store) = connect().await;
    let key = support::unique("layout");
    let before = now_ms();
    store
        .put(
            &key,
            &fields(&[("a", b"1"), ("b", b"\x00\xff")]),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    store
        .put(&key, &fields(&[("c", b"3")]), None)
        .await
        .unwrap();
    let raw = couchbase.collection().get(&key, None).await.unwrap();
    let (bytes, flags) = raw.content_as_raw();
    assert_eq!(flags, BINARY_FLAGS, "binary common flags");
    let payload = Payload::decode(bytes).unwrap();
    assert_eq!(
        payload.fields,
        fields(&[("a", b"1"), ("b", b"\x00\xff"), ("c", b"3")]),
        "merged"
    );
    let expires = payload
        .expires_at_ms
        .expect("the TTL of the first put is kept");
    assert!(
        (before + 60_000..=now_ms() + 60_000).contains(&expires),
        "expires at {expires}, expected 60 s after the put"
    );
}

#[tokio::test]
async fn the_documents_own_expiry_decides_to_the_millisecond() {
    let (couchbase, store) = connect().await;
    let key = support::unique("expired");
    // Expired by its own clock, still on the server (no server expiry).
    let stale = Payload {
        expires_at_ms: Some(now_ms() - 1),
        fields: fields(&[("old", b"x")]),
    };
    couchbase
        .collection()
        .upsert_raw(&key, &stale.encode(), BINARY_FLAGS, None)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert_eq!(store.get_many(&[&key]).await.unwrap(), vec![None]);
    assert_eq!(store.get_fields(&key, &["old"]).await.unwrap(), None);
    store
        .put(&key, &fields(&[("new", b"y")]), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        Some(fields(&[("new", b"y")])),
        "a put to an expired key starts it again"
    );
}

#[tokio::test]
async fn documents_it_did_not_write_and_bad_keys_are_errors_naming_them() {
    let (couchbase, store) = connect().await;
    let key = support::unique("foreign");
    couchbase
        .collection()
        .upsert(&key, serde_json::json!({"hello": "world"}), None)
        .await
        .unwrap();
    let e = store.get(&key).await.unwrap_err();
    let text = e.to_string();
    assert!(!e.is_transient(), "{text}");
    assert!(
        text.contains(&key) && text.contains("event-backbone.app.payloads"),
        "{text}"
    );
    assert!(text.contains("not an event-backbone payload"), "{text}");
    let e = store
        .put(&key, &fields(&[("f", b"v")]), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not an event-backbone payload"),
        "a put does not overwrite it: {e}"
    );

    let long = "k".repeat(251);
    let e = store
        .put(&long, &fields(&[("f", b"v")]), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("1 to 250 bytes; this one has 251"),
        "{e}"
    );
    assert!(store.get(&long).await.is_err() && store.delete(&long).await.is_err());
}

#[tokio::test]
async fn connect_fails_in_time_with_what_it_tried_and_no_password() {
    let wrong = support::config()
        .credentials("event-backbone", "not-the-password")
        .connect_timeout(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let e = Couchbase::connect(wrong).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let text = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{text}");
    assert!(
        text.contains("event-backbone.app.payloads") && !text.contains("not-the-password"),
        "{text}"
    );
    let core: event_backbone_core::Error = e.into();
    assert!(core.is_transient());

    let e = Couchbase::connect(CouchbaseConfig::from_url(support::LOCAL).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoBucket), "{e}");
}
