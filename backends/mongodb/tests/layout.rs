//! What lands in MongoDB, read back with the raw driver: one document per
//! key, binary fields under `f` with escaped names, the expiry date and the
//! TTL index; hand-written bad documents give errors naming the collection
//! and the key; bad addresses and unreachable servers are clear errors.

mod support;

use std::time::Duration;

use bytes::Bytes;
use event_backbone_core::{Error as CoreError, Fields, KeyValueStore};
use event_backbone_mongodb::document::{EXPIRES_AT, FIELDS, TTL_INDEX};
use event_backbone_mongodb::{Error, Mongo, MongoConfig, MongoStore};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use support::{config, connect, unique};

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), Bytes::copy_from_slice(v)))
        .collect()
}

async fn store(mongo: &Mongo, name: &str) -> MongoStore {
    MongoStore::with_collection(mongo, &unique(name).replace('.', "_")).unwrap()
}

async fn raw(mongo: &Mongo, store: &MongoStore, key: &str) -> Document {
    mongo
        .database()
        .collection::<Document>(store.collection_name())
        .find_one(doc! { "_id": key })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no document {key:?}"))
}

#[tokio::test]
async fn one_document_per_key_with_binary_fields_under_f() {
    let mongo = connect(config()).await;
    let store = store(&mongo, "layout").await;
    store
        .put(
            "order:1",
            &fields(&[("product", b"tea"), ("a.b$c", b"\x00\x01"), ("%", b"p")]),
            None,
        )
        .await
        .unwrap();
    let d = raw(&mongo, &store, "order:1").await;
    assert_eq!(d.get_str("_id").unwrap(), "order:1");
    assert!(d.get(EXPIRES_AT).is_none(), "no TTL, no expiry: {d}");
    let f = d.get_document(FIELDS).unwrap();
    let names: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 3, "{d}");
    for name in ["product", "a%2Eb%24c", "%25"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    match f.get("a%2Eb%24c") {
        Some(Bson::Binary(b)) => assert_eq!(b.bytes, b"\x00\x01"),
        other => panic!("expected binary, found {other:?}"),
    }
    assert_eq!(
        store.get("order:1").await.unwrap().unwrap(),
        fields(&[("product", b"tea"), ("a.b$c", b"\x00\x01"), ("%", b"p")])
    );
}

#[tokio::test]
async fn a_ttl_writes_the_expiry_date_and_the_store_makes_the_ttl_index() {
    let mongo = connect(config()).await;
    let store = store(&mongo, "ttl").await;
    let before = mongodb::bson::DateTime::now().timestamp_millis();
    store
        .put("k", &fields(&[("x", b"1")]), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let d = raw(&mongo, &store, "k").await;
    let at = d.get_datetime(EXPIRES_AT).unwrap().timestamp_millis();
    assert!(
        (before + 59_000..=before + 61_000 + 5_000).contains(&at),
        "expires_at {at}, put at {before}"
    );
    let indexes: Vec<Document> = mongo
        .database()
        .collection::<Document>(store.collection_name())
        .list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|i| mongodb::bson::to_document(&i).unwrap())
        .collect();
    let ttl = indexes
        .iter()
        .find(|i| i.get_str("name") == Ok(TTL_INDEX))
        .unwrap_or_else(|| panic!("no {TTL_INDEX} among {indexes:?}"));
    assert_eq!(ttl.get_document("key").unwrap(), &doc! { EXPIRES_AT: 1 });
    let seconds = ttl
        .get("expireAfterSeconds")
        .and_then(|b| b.as_i32().or_else(|| b.as_i64().map(|v| v as i32)));
    assert_eq!(seconds, Some(0), "{ttl}");
}

#[tokio::test]
async fn hand_written_bad_documents_name_the_collection_and_the_key() {
    let mongo = connect(config()).await;
    let store = store(&mongo, "bad").await;
    let raw = mongo
        .database()
        .collection::<Document>(store.collection_name());
    raw.insert_many([
        doc! { "_id": "not-a-doc", FIELDS: "text" },
        doc! { "_id": "not-binary", FIELDS: { "x": 42 } },
        doc! { "_id": "bad-escape", FIELDS: { "a%zz": Bson::Binary(mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Generic, bytes: vec![1] }) } },
    ])
    .await
    .unwrap();
    for (key, expected) in [
        ("not-a-doc", "is not a document"),
        ("not-binary", "is not binary data"),
        ("bad-escape", "escape"),
    ] {
        let err = store.get(key).await.unwrap_err();
        let text = err.to_string();
        assert!(!err.is_transient(), "{text}");
        assert!(
            text.contains(expected)
                && text.contains(&format!("{key:?}"))
                && text.contains(store.collection_name()),
            "{key}: {text}"
        );
    }
}

#[tokio::test]
async fn bad_addresses_and_unreachable_servers_are_clear_errors() {
    for bad in ["http://h", "mongodb://", "mongodb://u:hunter2@h:port"] {
        let err = MongoConfig::from_url(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }), "{bad}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    // Nothing listens on port 1.
    let config = MongoConfig::from_url("mongodb://u:hunter2@127.0.0.1:1/?directConnection=true")
        .unwrap()
        .server_selection_timeout(Duration::from_millis(500));
    let err = Mongo::connect(config).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{text}");
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("hunter2"),
        "{text}"
    );
    let core: CoreError = err.into();
    assert!(core.is_transient(), "{core}");
}

#[tokio::test]
async fn insert_many_writes_the_same_documents_and_starts_an_expired_key_afresh() {
    use event_backbone_core::PutItem;
    let mongo = connect(config()).await;
    let store = store(&mongo, "insert").await;
    let item = |key: &str, pairs: &[(&str, &[u8])], ttl: Option<Duration>| PutItem {
        key: key.to_owned(),
        fields: fields(pairs),
        ttl,
    };
    // The layout of a put.
    store
        .insert_many(&[item(
            "order:2",
            &[("a.b$c", b"\x00\x01")],
            Some(Duration::from_secs(60)),
        )])
        .await
        .unwrap();
    let d = raw(&mongo, &store, "order:2").await;
    let f = d.get_document(FIELDS).unwrap();
    assert!(
        matches!(f.get("a%2Eb%24c"), Some(Bson::Binary(b)) if b.bytes == b"\x00\x01"),
        "{d}"
    );
    assert!(matches!(d.get(EXPIRES_AT), Some(Bson::DateTime(_))), "{d}");

    // An expired document the server has not removed yet: the insert
    // meets its key, and the key starts again with only the new fields.
    store
        .insert_many(&[item(
            "order:3",
            &[("old", b"1")],
            Some(Duration::from_millis(1)),
        )])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .insert_many(&[item("order:3", &[("new", b"2")], None)])
        .await
        .unwrap();
    assert_eq!(
        store.get("order:3").await.unwrap(),
        Some(fields(&[("new", b"2")]))
    );
}
