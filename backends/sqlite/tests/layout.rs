//! What lands in the SQLite file, read back with plain SQL: an entry row
//! per message (metadata only), a payload row per field under the standard
//! key, expiry on every row and the sweep; garbage in the stream
//! dead-lettered; clear errors for bad ids and paths.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_backbone_core::envelope::decode_metadata;
use event_backbone_core::{Consumer, EntryId, Fields, KeyValueStore, Producer, StreamChannel};
use event_backbone_sqlite::{Error, Sqlite, SqliteConfig, SqliteStore, SqliteStreamChannel};
use sqlx::Row;

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), Bytes::copy_from_slice(v)))
        .collect()
}

#[tokio::test]
async fn an_entry_row_per_message_and_a_payload_row_per_field() {
    let dir = support::dir();
    let sqlite = support::open(&dir, "layout.db").await;
    let producer = Producer::builder()
        .channel(Arc::new(SqliteStreamChannel::new(&sqlite)))
        .store(Arc::new(SqliteStore::new(&sqlite)))
        .uri("shop.orders")
        .build()
        .unwrap();
    let receipt = producer
        .message("order_placed")
        .segment("product", "tea")
        .unwrap()
        .segment("quantity", &3u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let rows = sqlx::query("SELECT seq, metadata FROM eb_entries WHERE stream = 'shop.orders'")
        .fetch_all(sqlite.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        receipt.entry_id().as_str(),
        rows[0].get::<i64, _>(0).to_string()
    );
    let raw: Vec<u8> = rows[0].get(1);
    let metadata = decode_metadata(&raw).unwrap();
    assert_eq!(metadata.message_id, receipt.message_id);
    assert!(
        !String::from_utf8_lossy(&raw).contains("tea"),
        "the payload is not in the stream"
    );
    let key = event_backbone_core::address::payload_key(
        "shop.orders",
        "order_placed",
        metadata.version,
        &event_backbone_core::SegmentClass::NORMAL,
        &receipt.message_id,
    );
    let names: Vec<String> =
        sqlx::query_scalar("SELECT field FROM eb_payloads WHERE key = ?1 ORDER BY field")
            .bind(&key)
            .fetch_all(sqlite.pool())
            .await
            .unwrap();
    assert_eq!(names, ["product", "quantity"], "rows under {key}");
    sqlite.close().await;
    support::remove(&dir);
}

#[tokio::test]
async fn expiry_is_on_every_row_of_a_key_and_the_sweep_deletes_them() {
    let dir = support::dir();
    let sqlite = Sqlite::open(SqliteConfig::file(dir.join("sweep.db")).sweep_interval(None))
        .await
        .unwrap();
    let store = SqliteStore::new(&sqlite);
    store
        .put("k", &fields(&[("a", b"1"), ("b", b"2")]), None)
        .await
        .unwrap();
    store
        .put(
            "k",
            &fields(&[("c", b"3")]),
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    store
        .put("kept", &fields(&[("a", b"1")]), None)
        .await
        .unwrap();
    let expiring = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM eb_payloads WHERE key = 'k' AND expires_ms IS NOT NULL",
        )
        .fetch_one(sqlite.pool())
        .await
        .unwrap()
    };
    assert_eq!(
        expiring().await,
        3,
        "every row of the key carries its expiry"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get("k").await.unwrap(), None);
    assert_eq!(expiring().await, 3, "expired rows wait for the sweep");
    assert_eq!(store.sweep().await.unwrap(), 3);
    assert_eq!(expiring().await, 0);
    assert!(store.get("kept").await.unwrap().is_some());
    sqlite.close().await;
    support::remove(&dir);
}

#[tokio::test]
async fn garbage_in_the_stream_is_dead_lettered_and_the_consumer_goes_on() {
    let dir = support::dir();
    let sqlite = support::open(&dir, "garbage.db").await;
    let channel: Arc<dyn StreamChannel> = Arc::new(SqliteStreamChannel::new(&sqlite));
    sqlx::query("INSERT INTO eb_entries (stream, appended_ms, metadata) VALUES ('g', 0, x'00ff')")
        .execute(sqlite.pool())
        .await
        .unwrap();
    Consumer::builder()
        .channel(channel.clone())
        .store(Arc::new(SqliteStore::new(&sqlite)))
        .uri("g")
        .group("readers")
        .block(Duration::from_millis(100))
        .stop_when_empty()
        .subscribe_fn(|_ctx| async { Ok(()) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(channel.info("g:dead-letter").await.unwrap().length, 1);
    assert_eq!(
        channel
            .info("g")
            .await
            .unwrap()
            .group("readers")
            .unwrap()
            .pending,
        0
    );
    sqlite.close().await;
    support::remove(&dir);
}

#[tokio::test]
async fn bad_ids_and_paths_are_clear_errors() {
    let dir = support::dir();
    let sqlite = support::open(&dir, "errors.db").await;
    let err = SqliteStreamChannel::new(&sqlite)
        .get("s", &EntryId::new("1700000000000-0"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1700000000000-0") && err.contains("decimal sequence number"),
        "{err}"
    );
    sqlite.close().await;

    let blocked = dir.join("not-a-dir");
    std::fs::write(&blocked, b"a file").unwrap();
    let err = Sqlite::open(SqliteConfig::file(blocked.join("events.db")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir/events.db"), "{err}");
    support::remove(&dir);
}
