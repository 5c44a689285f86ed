//! What lands in PostgreSQL, read back with plain SQL: an entry row per
//! message (stamped with its transaction, metadata only), a payload row per
//! field under the standard key, expiry on every row and the sweep;
//! wake-ups by notification; garbage in the stream dead-lettered; clear
//! errors for bad ids, names and addresses.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_backbone_core::envelope::decode_metadata;
use event_backbone_core::{Fields, GroupStart, KeyValueStore, Producer, StreamChannel};
use event_backbone_postgres::{
    Error, Postgres, PostgresConfig, PostgresStore, PostgresStreamChannel,
};
use sqlx::Row;

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), Bytes::copy_from_slice(v)))
        .collect()
}

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

async fn done(pg: Postgres, schema: String) {
    drop(pg);
    tokio::task::spawn_blocking(move || support::drop_schemas(&[&schema]))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_entry_row_per_message_and_a_payload_row_per_field() {
    let schema = support::unique_schema("layout");
    let pg = support::postgres(&schema).await;
    let producer = Producer::builder()
        .channel(Arc::new(PostgresStreamChannel::new(&pg)))
        .store(Arc::new(PostgresStore::new(&pg)))
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
    let raw = support::raw().await;

    let rows = sqlx::query(sql(format!(
        "SELECT xid, seq, metadata FROM \"{schema}\".entries WHERE stream = 'shop.orders'"
    )))
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let (xid, seq): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(receipt.entry_id().as_str(), format!("{xid}-{seq}"));
    let metadata: Vec<u8> = rows[0].get(2);
    let metadata = decode_metadata(&metadata).unwrap();
    assert_eq!(metadata.message_id, receipt.message_id);
    assert!(
        !metadata.segments.is_empty()
            && !String::from_utf8_lossy(&rows[0].get::<Vec<u8>, _>(2)).contains("tea"),
        "the payload is not in the stream"
    );

    let key = event_backbone_core::address::payload_key(
        "shop.orders",
        "order_placed",
        metadata.version,
        &event_backbone_core::SegmentClass::NORMAL,
        &receipt.message_id,
    );
    let payload = sqlx::query(sql(format!(
        "SELECT field, expires_ms FROM \"{schema}\".payloads WHERE key = $1 ORDER BY field"
    )))
    .bind(&key)
    .fetch_all(&raw)
    .await
    .unwrap();
    let names: Vec<String> = payload.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["product", "quantity"], "rows under {key}");
    assert!(payload.iter().all(|r| r.get::<Option<i64>, _>(1).is_none()));
    done(pg, schema).await;
}

#[tokio::test]
async fn expiry_is_on_every_row_of_a_key_and_the_sweep_deletes_them() {
    let schema = support::unique_schema("sweep");
    let pg = Postgres::connect(support::config(&schema).sweep_interval(None))
        .await
        .unwrap();
    let store = PostgresStore::new(&pg);
    store
        .put("k", &fields(&[("a", b"1"), ("b", b"2")]), None)
        .await
        .unwrap();
    // A put with a TTL sets the expiry of the fields it does not name too.
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
    let raw = support::raw().await;
    let count = |key: &'static str| {
        let (raw, schema) = (raw.clone(), schema.clone());
        async move {
            sqlx::query_scalar::<_, i64>(sql(format!(
                "SELECT count(*) FROM \"{schema}\".payloads WHERE key = $1 AND expires_ms IS NOT NULL"
            )))
            .bind(key)
            .fetch_one(&raw)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        count("k").await,
        3,
        "every row of the key carries its expiry"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get("k").await.unwrap(), None);
    assert_eq!(count("k").await, 3, "expired rows wait for the sweep");
    assert_eq!(store.sweep().await.unwrap(), 3);
    assert_eq!(count("k").await, 0);
    assert!(store.get("kept").await.unwrap().is_some());
    done(pg, schema).await;
}

#[tokio::test]
async fn a_blocked_read_is_woken_by_the_append_not_the_poll() {
    let schema = support::unique_schema("wake");
    let pg = Postgres::connect(support::config(&schema).poll_interval(Duration::from_secs(30)))
        .await
        .unwrap();
    let channel = PostgresStreamChannel::new(&pg);
    channel
        .ensure_group("s", "g", GroupStart::Beginning)
        .await
        .unwrap();
    // Listening starts with the first blocked read; give it a moment.
    let _ = channel
        .read_group("s", "g", "c", 1, Duration::from_millis(300))
        .await
        .unwrap();
    let reader = {
        let channel = channel.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let got = channel
                .read_group("s", "g", "c", 1, Duration::from_secs(20))
                .await
                .unwrap();
            (got.len(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Appended through another connection (pool) of the same schema.
    let other = support::postgres(&schema).await;
    let sample = support::sample("s", 1);
    PostgresStreamChannel::new(&other)
        .append("s", &sample)
        .await
        .unwrap();
    let (got, waited) = reader.await.unwrap();
    assert_eq!(got, 1);
    assert!(
        waited < Duration::from_secs(5),
        "the read waited {waited:?}: woken by the poll, not the notification"
    );
    drop(other);
    done(pg, schema).await;
}

#[tokio::test]
async fn a_blocked_read_leaves_the_pool_to_the_rest() {
    let schema = support::unique_schema("pool1");
    let config = support::config(&schema)
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2));
    let pg = Postgres::connect(config).await.unwrap();
    let channel = PostgresStreamChannel::new(&pg);
    channel
        .ensure_group("s", "g", GroupStart::Beginning)
        .await
        .unwrap();
    let reader = {
        let channel = channel.clone();
        tokio::spawn(async move {
            channel
                .read_group("s", "g", "c", 1, Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The pool's one connection is free: the listener has its own.
    channel.append("s", &support::sample("s", 1)).await.unwrap();
    let got = reader.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    done(pg, schema).await;
}

#[tokio::test]
async fn garbage_in_the_stream_is_dead_lettered_and_the_consumer_goes_on() {
    let schema = support::unique_schema("garbage");
    let pg = support::postgres(&schema).await;
    let channel: Arc<dyn StreamChannel> = Arc::new(PostgresStreamChannel::new(&pg));
    let raw = support::raw().await;
    sqlx::query(sql(format!(
        "INSERT INTO \"{schema}\".entries (stream, metadata) VALUES ('g', '\\x00ff')"
    )))
    .execute(&raw)
    .await
    .unwrap();
    let consumer = event_backbone_core::Consumer::builder()
        .channel(channel.clone())
        .store(Arc::new(PostgresStore::new(&pg)))
        .uri("g")
        .group("readers")
        .block(Duration::from_millis(100))
        .stop_when_empty()
        .subscribe_fn(|_ctx| async { Ok(()) })
        .unwrap();
    consumer.completion().await.unwrap();
    let dead = channel.info("g:dead-letter").await.unwrap();
    assert_eq!(
        dead.length, 1,
        "the garbage entry went to the dead-letter stream"
    );
    let pending = channel
        .info("g")
        .await
        .unwrap()
        .group("readers")
        .unwrap()
        .pending;
    assert_eq!(pending, 0);
    done(pg, schema).await;
}

#[tokio::test]
async fn bad_ids_names_and_addresses_are_clear_errors() {
    let schema = support::unique_schema("errors");
    let pg = support::postgres(&schema).await;
    let channel = PostgresStreamChannel::new(&pg);
    let err = channel
        .get("s", &event_backbone_core::EntryId::new("1700000000000-0-1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1700000000000-0-1") && err.contains("7391-42"),
        "{err}"
    );

    let store = PostgresStore::new(&pg);
    let err = store
        .put("a\0b", &fields(&[("f", b"v")]), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NUL") && err.contains("a\\0b"), "{err}");
    let err = PostgresStore::with_table(&pg, "Bad-Name")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("table name \"Bad-Name\""), "{err}");

    let unreachable = PostgresConfig::from_url("postgres://app:hunter2@127.0.0.1:1/db")
        .unwrap()
        .acquire_timeout(Duration::from_secs(2));
    let err = Postgres::connect(unreachable).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("cannot connect to PostgreSQL at postgres://app:***@127.0.0.1:1/db"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    done(pg, schema).await;
}
