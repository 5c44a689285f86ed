//! What lands in DynamoDB, read back with the raw SDK; large values in
//! pieces, and what a reader does when pieces are missing; hand-written bad
//! items; bad keys, tables and endpoints.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use bytes::Bytes;
use event_backbone_core::{Fields, KeyValueStore, PutItem};
use event_backbone_dynamodb::item::{EXPIRES_AT, KEY, PAYLOAD, PIECE_PREFIX, SORT};
use event_backbone_dynamodb::piece::PIECE_BYTES;
use event_backbone_dynamodb::{Dynamo, DynamoConfig, DynamoStore, MAX_KEY_BYTES};

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v)))
        .collect()
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<_>>()
        .into()
}

/// A store on a table of the test's own, and the raw client beside it.
struct Table {
    store: DynamoStore,
    client: aws_sdk_dynamodb::Client,
}

impl Table {
    async fn new(prefix: &str) -> Self {
        let store = support::store(prefix).await;
        let dynamo = support::connect(support::config(store.table())).await;
        Self {
            client: dynamo.client().clone(),
            store,
        }
    }

    async fn raw_item(&self, key: &str, sort: &str) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(self.store.table())
            .key(KEY, AttributeValue::S(key.to_owned()))
            .key(SORT, AttributeValue::S(sort.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// The sort keys of every item under a payload key (its own and its
    /// pieces').
    async fn sort_keys(&self, key: &str) -> Vec<String> {
        // A query answers 1 MB at a time: every page.
        let mut sorts = Vec::new();
        let mut start = None;
        loop {
            let answer = self
                .client
                .query()
                .table_name(self.store.table())
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", KEY)
                .expression_attribute_values(":k", AttributeValue::S(key.to_owned()))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            sorts.extend(
                answer
                    .items()
                    .iter()
                    .map(|i| i[SORT].as_s().unwrap().clone()),
            );
            start = answer.last_evaluated_key;
            if start.is_none() {
                return sorts;
            }
        }
    }

    async fn drop(self) {
        drop(&self.client, self.store.table()).await;
    }
}

async fn drop(client: &aws_sdk_dynamodb::Client, table: &str) {
    let _ = client.delete_table().table_name(table).send().await;
}

#[tokio::test(flavor = "current_thread")]
async fn one_item_per_key_with_field_attributes_and_an_expiry() {
    let t = Table::new("layout").await;
    let store = &t.store;
    let key = "shop:orders:placed:v1:normal:1";
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store
        .put(
            key,
            &fields(&[
                ("email", b"ann@example.com"),
                ("名前", b"\xff\x00"),
                ("", b"e"),
            ]),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let item = t.raw_item(key, PAYLOAD).await.expect("the item");
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["expires_at", "f:", "f:email", "f:名前", "pk", "sk"]);
    assert_eq!(item["f:email"].as_b().unwrap().as_ref(), b"ann@example.com");
    assert_eq!(item["f:名前"].as_b().unwrap().as_ref(), b"\xff\x00");
    let at: i64 = item[EXPIRES_AT].as_n().unwrap().parse().unwrap();
    assert!(
        (before + 3600..=before + 3602).contains(&at),
        "expires_at {at}, put at {before} with a TTL of an hour"
    );
    assert_eq!(t.sort_keys(key).await, [PAYLOAD]);
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn large_values_go_to_pieces_round_trip_and_leave_no_pieces_behind() {
    let t = Table::new("pieces").await;
    let store = &t.store;
    let key = "big";
    let one = pattern(1024 * 1024, 1);
    let ten = pattern(10 * 1024 * 1024, 2);
    store
        .put(
            key,
            &fields(&[("one", &one), ("ten", &ten), ("small", b"s")]),
            None,
        )
        .await
        .unwrap();
    let item = t.raw_item(key, PAYLOAD).await.unwrap();
    assert_eq!(item["f:small"].as_b().unwrap().as_ref(), b"s");
    let manifest = item["f:ten"]
        .as_m()
        .expect("a manifest for the 10 MiB value");
    let pieces = (10 * 1024 * 1024usize).div_ceil(PIECE_BYTES);
    assert_eq!(manifest["pieces"].as_n().unwrap(), &pieces.to_string());
    assert_eq!(
        manifest["bytes"].as_n().unwrap(),
        &(10 * 1024 * 1024).to_string()
    );
    let sorts = t.sort_keys(key).await;
    let expected = 1 + pieces + (1024 * 1024usize).div_ceil(PIECE_BYTES);
    assert_eq!(sorts.len(), expected, "{sorts:?}");
    assert!(sorts
        .iter()
        .filter(|s| *s != PAYLOAD)
        .all(|s| s.starts_with(PIECE_PREFIX)));

    let read = store.get(key).await.unwrap().unwrap();
    assert!(
        read["one"] == one && read["ten"] == ten,
        "values came back altered"
    );
    let some = store.get_fields(key, &["ten"]).await.unwrap().unwrap();
    assert_eq!(some.keys().collect::<Vec<_>>(), ["ten"]);
    assert!(some["ten"] == ten);

    // Replaced by a small value: its pieces go.
    store
        .put(key, &fields(&[("ten", b"t")]), None)
        .await
        .unwrap();
    let sorts = t.sort_keys(key).await;
    assert_eq!(
        sorts.len(),
        1 + (1024 * 1024usize).div_ceil(PIECE_BYTES),
        "{sorts:?}"
    );
    assert_eq!(store.get(key).await.unwrap().unwrap()["ten"].as_ref(), b"t");
    // Deleted: every piece goes.
    assert!(store.delete(key).await.unwrap());
    assert!(t.sort_keys(key).await.is_empty());
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn insert_many_writes_the_same_layout_whole() {
    let t = Table::new("insert").await;
    let store = &t.store;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let one = pattern(1024 * 1024, 3);
    // Thousands of small fields: over the item even with nothing in
    // pieces, so this key goes through the merging put (which refuses it,
    // naming it) and nothing of the batch's other keys is lost.
    let mut crowded = Fields::new();
    for i in 0..6000 {
        crowded.insert(format!("field-{i:05}"), Bytes::from(vec![7u8; 90]));
    }
    let items = [
        PutItem {
            key: "new:1".into(),
            fields: fields(&[("email", b"ann@example.com"), ("big", &one)]),
            ttl: Some(Duration::from_secs(3600)),
        },
        PutItem {
            key: "new:2".into(),
            fields: fields(&[("n", b"2")]),
            ttl: None,
        },
    ];
    store.insert_many(&items).await.unwrap();
    let item = t.raw_item("new:1", PAYLOAD).await.expect("the item");
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["expires_at", "f:big", "f:email", "pk", "sk"]);
    assert_eq!(item["f:email"].as_b().unwrap().as_ref(), b"ann@example.com");
    let manifest = item["f:big"]
        .as_m()
        .expect("a manifest for the 1 MiB value");
    assert_eq!(
        manifest["bytes"].as_n().unwrap(),
        &(1024 * 1024).to_string()
    );
    let at: i64 = item[EXPIRES_AT].as_n().unwrap().parse().unwrap();
    assert!(
        (before + 3600..=before + 3602).contains(&at),
        "expires_at {at}"
    );
    let pieces = (1024 * 1024usize).div_ceil(PIECE_BYTES);
    let sorts = t.sort_keys("new:1").await;
    assert_eq!(sorts.len(), 1 + pieces, "{sorts:?}");
    for sort in sorts.iter().filter(|s| *s != PAYLOAD) {
        let piece = t.raw_item("new:1", sort).await.unwrap();
        let at: i64 = piece[EXPIRES_AT].as_n().unwrap().parse().unwrap();
        assert!(
            (before + 3600..=before + 3602).contains(&at),
            "a piece's expires_at {at}"
        );
    }
    assert!(store.get("new:1").await.unwrap().unwrap()["big"] == one);
    // The same batch again (a retry) writes the same pieces: none left
    // behind.
    store.insert_many(&items).await.unwrap();
    assert_eq!(
        t.sort_keys("new:1").await,
        sorts,
        "a retry left pieces behind"
    );
    assert!(store.get("new:1").await.unwrap().unwrap()["big"] == one);
    let without_ttl = t.raw_item("new:2", PAYLOAD).await.unwrap();
    assert!(!without_ttl.contains_key(EXPIRES_AT));

    // An insert replaces what a key held (no merge).
    store
        .put("new:2", &fields(&[("old", b"o")]), None)
        .await
        .unwrap();
    store.insert_many(&items[1..]).await.unwrap();
    assert_eq!(
        store.get("new:2").await.unwrap().unwrap(),
        fields(&[("n", b"2")])
    );

    let crowded = [
        PutItem {
            key: "new:3".into(),
            fields: fields(&[("n", b"3")]),
            ttl: None,
        },
        PutItem {
            key: "crowded".into(),
            fields: crowded,
            ttl: None,
        },
    ];
    let error = store.insert_many(&crowded).await.unwrap_err().to_string();
    assert!(
        error.contains("\"crowded\"") && error.contains("do not fit one item"),
        "{error}"
    );
    assert!(
        store.get("new:3").await.unwrap().is_some(),
        "the batch's other key is lost"
    );
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_value_with_a_missing_piece_is_an_error_never_a_corrupt_value() {
    let t = Table::new("torn").await;
    let (store, client) = (&t.store, &t.client);
    let key = "torn";
    let value = pattern(1024 * 1024, 3);
    store
        .put(key, &fields(&[("blob", &value)]), None)
        .await
        .unwrap();
    let item = t.raw_item(key, PAYLOAD).await.unwrap();
    let write = item["f:blob"].as_m().unwrap()["write"]
        .as_s()
        .unwrap()
        .clone();
    client
        .delete_item()
        .table_name(store.table())
        .key(KEY, AttributeValue::S(key.to_owned()))
        .key(SORT, AttributeValue::S(format!("{PIECE_PREFIX}{write}/1")))
        .send()
        .await
        .unwrap();
    for error in [
        store.get(key).await.unwrap_err(),
        store.get_many(&["other", key]).await.unwrap_err(),
        store.get_fields(key, &["blob"]).await.unwrap_err(),
    ] {
        let message = error.to_string();
        assert!(error.is_transient(), "{message}");
        assert!(
            message.contains("\"torn\"")
                && message.contains("\"blob\"")
                && message.contains("piece 2 of 3"),
            "{message}"
        );
    }
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn fields_beyond_one_item_go_to_pieces_when_a_put_would_overflow_it() {
    let t = Table::new("overflow").await;
    let store = &t.store;
    let key = "wide";
    let batch = |prefix: &str| -> Fields {
        (0..150)
            .map(|i| (format!("{prefix}{i:03}"), pattern(2000, i as u8)))
            .collect()
    };
    // 300 KB in one put: the largest values go to pieces until 256 KB fit.
    store.put(key, &batch("a"), None).await.unwrap();
    // Another 300 KB: the item cannot hold both, so this put's values all
    // go to pieces.
    store.put(key, &batch("b"), None).await.unwrap();
    let read = store.get(key).await.unwrap().unwrap();
    assert_eq!(read.len(), 300);
    for (name, value) in batch("a").into_iter().chain(batch("b")) {
        assert!(read.get(&name) == Some(&value), "field {name}");
    }
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn items_this_store_did_not_write_get_errors_naming_table_key_and_attribute() {
    let t = Table::new("bad").await;
    let (store, client) = (&t.store, &t.client);
    client
        .put_item()
        .table_name(store.table())
        .item(KEY, AttributeValue::S("hand-written".into()))
        .item(SORT, AttributeValue::S(PAYLOAD.into()))
        .item("f:note", AttributeValue::S("a string, not bytes".into()))
        .item("unrelated", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let error = store.get("hand-written").await.unwrap_err();
    let message = error.to_string();
    assert!(!error.is_transient(), "{message}");
    assert!(
        message.contains(store.table())
            && message.contains("\"hand-written\"")
            && message.contains("\"f:note\"")
            && message.contains("neither binary"),
        "{message}"
    );
    // Attributes that are not fields are left alone.
    client
        .put_item()
        .table_name(store.table())
        .item(KEY, AttributeValue::S("extra".into()))
        .item(SORT, AttributeValue::S(PAYLOAD.into()))
        .item("f:ok", AttributeValue::B(Blob::new(b"1".to_vec())))
        .item("audit", AttributeValue::S("by hand".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.get("extra").await.unwrap(),
        Some(fields(&[("ok", b"1")]))
    );
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn keys_dynamodb_cannot_hold_are_refused_naming_them() {
    let t = Table::new("keys").await;
    let store = &t.store;
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    let items = [
        PutItem {
            key: "fine".into(),
            fields: fields(&[("f", b"1")]),
            ttl: None,
        },
        PutItem {
            key: long.clone(),
            fields: fields(&[("f", b"1")]),
            ttl: None,
        },
    ];
    let error = store.put_many(&items).await.unwrap_err();
    let message = error.to_string();
    assert!(!error.is_transient(), "{message}");
    assert!(
        message.contains("2049 bytes") && message.contains("kkkk"),
        "{message}"
    );
    assert_eq!(
        store.get("fine").await.unwrap(),
        None,
        "a refused batch was written"
    );
    let error = store.get("").await.unwrap_err().to_string();
    assert!(error.contains("1 to 2048 bytes"), "{error}");
    // The longest key is fine.
    let longest = "k".repeat(MAX_KEY_BYTES);
    store
        .put(&longest, &fields(&[("f", b"1")]), None)
        .await
        .unwrap();
    assert!(store.get(&longest).await.unwrap().is_some());
    t.drop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_table_with_another_key_schema_is_refused_saying_what_is_needed() {
    let name = support::table("schema");
    let dynamo = support::connect(support::config(&name)).await;
    dynamo
        .client()
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let error = DynamoStore::new(&dynamo).ensure_table().await.unwrap_err();
    let message = error.to_string();
    assert!(!error.is_transient(), "{message}");
    assert!(
        message.contains(&name) && message.contains("\"pk\"") && message.contains("\"sk\""),
        "{message}"
    );
    drop(dynamo.client(), &name).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_endpoint_that_does_not_answer_fails_connect_naming_it() {
    let config = DynamoConfig::new("payloads")
        .unwrap()
        .endpoint("http://127.0.0.1:1")
        .unwrap()
        .credentials("local", "local")
        .region("us-east-1")
        .operation_timeout(Duration::from_secs(3));
    let error = Dynamo::connect(config).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("cannot connect to DynamoDB at http://127.0.0.1:1"),
        "{message}"
    );
    assert!(event_backbone_core::Error::from(error).is_transient());
}
