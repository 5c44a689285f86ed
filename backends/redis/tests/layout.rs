//! What the backend writes, checked with plain Redis commands; and what the
//! consumer does with entries written by hand.

mod support;

use std::time::Duration;

use event_backbone_core::consumer::HEADER_DEAD_LETTER_REASON;
use event_backbone_core::envelope::decode_metadata;
use event_backbone_core::{
    Consumer, ConsumerContext, HandlerError, Producer, SegmentLocation, StreamChannel,
    StreamPosition,
};
use event_backbone_redis::{RedisBuilderExt, RedisStreamChannel};
use redis::AsyncCommands;
use std::collections::HashMap;

#[tokio::test]
async fn the_stream_holds_metadata_and_the_hash_holds_the_payload() {
    let redis = support::redis().await;
    let uri = support::unique("layout");
    let producer = Producer::builder()
        .redis(&redis)
        .uri(&uri)
        .environment("test")
        .build()
        .unwrap();
    let payload = "a payload that must not be in the stream";
    let receipt = producer
        .message("order_placed")
        .version(2)
        .segment("product", payload)
        .unwrap()
        .segment("quantity", &3u32)
        .unwrap()
        .segment("note", "gift wrap")
        .unwrap()
        .send()
        .await
        .unwrap();

    let mut raw = support::raw().await;
    let stream = format!("test:{uri}");
    let entries: redis::streams::StreamRangeReply = raw.xrange_all(&stream).await.unwrap();
    assert_eq!(entries.ids.len(), 1);
    let entry = &entries.ids[0];
    assert_eq!(entry.id, receipt.entry_id().as_str());
    let text = |field: &str| -> String { entry.get(field).unwrap() };
    assert_eq!(text("message_id"), receipt.message_id.to_string());
    assert_eq!(text("operation"), "order_placed");
    let encoded: Vec<u8> = entry.get("metadata").unwrap();
    let metadata = decode_metadata(&encoded).unwrap();
    assert_eq!(metadata.message_id, receipt.message_id);
    for (field, value) in &entry.map {
        let bytes: Vec<u8> = redis::from_redis_value(value.clone()).unwrap();
        let found = bytes
            .windows(payload.len())
            .any(|w| w == payload.as_bytes());
        assert!(!found, "payload bytes in stream field {field}");
    }

    let key = format!("test:{uri}:order_placed:v2:normal:{}", receipt.message_id);
    let hash: HashMap<String, Vec<u8>> = raw.hgetall(&key).await.unwrap();
    let mut fields: Vec<&str> = hash.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["note", "product", "quantity"]);
    for s in &metadata.segments {
        assert_eq!(s.location, SegmentLocation::Standard);
        assert_eq!(metadata.standard_payload_key(&s.class), key);
    }
    let _: () = raw.del(&[&stream, &key]).await.unwrap();
}

#[tokio::test]
async fn payload_ttl_and_stream_trimming_reach_redis() {
    let redis = support::redis().await;
    let uri = support::unique("ttl");
    let producer = Producer::builder()
        .redis(&redis)
        .uri(&uri)
        .payload_ttl(Duration::from_secs(120))
        .build()
        .unwrap();
    let receipt = producer
        .message("m")
        .segment("x", &1u8)
        .unwrap()
        .send()
        .await
        .unwrap();
    let mut raw = support::raw().await;
    let ttl: i64 = raw
        .pttl(format!("{uri}:m:v0:normal:{}", receipt.message_id))
        .await
        .unwrap();
    assert!((100_000..=120_000).contains(&ttl), "PTTL {ttl}");

    let trimmed = event_backbone_redis::Redis::connect(support::config().max_stream_length(10))
        .await
        .unwrap();
    let producer = Producer::builder()
        .redis(&trimmed)
        .uri(&uri)
        .build()
        .unwrap();
    for i in 0..500u32 {
        producer
            .message("m")
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
    }
    let len: u64 = raw.xlen(&uri).await.unwrap();
    assert!(len < 300, "MAXLEN ~ 10 left {len} entries");
    let _: () = raw.del(&uri).await.unwrap();
}

#[tokio::test]
async fn garbage_and_orphan_entries_go_to_the_dead_letter_stream_and_the_consumer_goes_on() {
    let redis = support::redis().await;
    let uri = support::unique("bad-input");
    let producer = Producer::builder().redis(&redis).uri(&uri).build().unwrap();
    let mut raw = support::raw().await;

    producer
        .message("ok")
        .segment("i", &1u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    // Written by hand: garbage metadata, no metadata at all, and valid
    // metadata whose payload key was never written.
    let _: String = raw
        .xadd(
            &uri,
            "*",
            &[("message_id", "x"), ("metadata", "\u{1}garbage")],
        )
        .await
        .unwrap();
    let _: String = raw
        .xadd(&uri, "*", &[("operation", "no metadata")])
        .await
        .unwrap();
    let orphan_receipt = producer
        .message("ok")
        .segment("i", &2u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let orphan_key = format!("{uri}:ok:v0:normal:{}", orphan_receipt.message_id);
    let _: () = raw.del(&orphan_key).await.unwrap();
    producer
        .message("ok")
        .segment("i", &3u32)
        .unwrap()
        .send()
        .await
        .unwrap();

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let stats = Consumer::builder()
        .redis(&redis)
        .uri(&uri)
        .concurrency(1)
        .stop_after(5)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(ctx.segment::<u32>("i")?);
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 3]);
    assert_eq!(stats.dead_lettered, 3);

    let channel = RedisStreamChannel::new(&redis);
    let info = channel.info(&uri).await.unwrap();
    assert_eq!(
        info.group("default").unwrap().pending,
        0,
        "everything was acknowledged"
    );
    let dead = channel
        .read_range(
            &format!("{uri}:dead-letter"),
            &StreamPosition::Start,
            None,
            10,
        )
        .await
        .unwrap();
    let reasons: Vec<String> = dead
        .iter()
        .map(|e| e.body.as_ref().unwrap().headers[HEADER_DEAD_LETTER_REASON].clone())
        .collect();
    assert!(reasons[0].contains("malformed metadata"), "{reasons:?}");
    assert!(reasons[1].contains("no \"metadata\" field"), "{reasons:?}");
    assert!(
        reasons[2].contains(&orphan_key) && reasons[2].contains("missing"),
        "{reasons:?}"
    );
    let _: () = raw
        .del(&[&uri, &format!("{uri}:dead-letter")])
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_entry_ids_and_missing_groups_are_clear_errors() {
    let redis = support::redis().await;
    let channel = RedisStreamChannel::new(&redis);
    let uri = support::unique("errors");
    let err = channel
        .get(&uri, &event_backbone_core::EntryId::new("not-an-id"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"not-an-id\"") && err.contains("1700000000000-0"),
        "{err}"
    );
    let err = channel
        .read_group(&uri, "nobody", "c", 1, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, event_backbone_core::Error::NoSuchGroup { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("\"nobody\""), "{err}");
}

#[tokio::test]
async fn a_block_longer_than_the_response_timeout_is_not_an_error() {
    let config = support::config().response_timeout(Duration::from_millis(200));
    let redis = event_backbone_redis::Redis::connect(config).await.unwrap();
    let channel = RedisStreamChannel::new(&redis);
    let uri = support::unique("long-block");
    channel
        .ensure_group(&uri, "g", event_backbone_core::GroupStart::Beginning)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let read = channel
        .read_group(&uri, "g", "c", 10, Duration::from_millis(1200))
        .await
        .expect("a 1.2 s block with a 200 ms response timeout");
    assert!(read.is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    // Ordinary commands still answer while another read blocks.
    let blocked = {
        let channel = channel.clone();
        let uri = uri.clone();
        tokio::spawn(async move {
            channel
                .read_group(&uri, "g", "c2", 10, Duration::from_millis(1500))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = std::time::Instant::now();
    channel.info(&uri).await.unwrap();
    assert!(
        quick.elapsed() < Duration::from_millis(500),
        "info waited {:?} behind a blocking read",
        quick.elapsed()
    );
    assert!(blocked.await.unwrap().unwrap().is_empty());
    let mut raw = support::raw().await;
    let _: () = raw.del(&uri).await.unwrap();
}

/// With a maximum length, a stream is trimmed to about that length, but
/// never below what a group has not read or not acknowledged: a slow group
/// loses nothing. Without groups it is trimmed by length.
#[tokio::test]
async fn trimming_keeps_what_a_group_has_not_read_or_acknowledged() {
    let redis = event_backbone_redis::Redis::connect(support::config().max_stream_length(100))
        .await
        .unwrap();
    let channel = RedisStreamChannel::new(&redis);
    let mut raw = support::raw().await;
    let (grouped, alone) = (support::unique("trim"), support::unique("trim-alone"));
    channel
        .ensure_group(&grouped, "slow", event_backbone_core::GroupStart::Beginning)
        .await
        .unwrap();
    let append = |stream: String| {
        let producer = Producer::builder()
            .channel(std::sync::Arc::new(channel.clone()))
            .uri(stream)
            .build()
            .unwrap();
        async move {
            for i in 0..1_000u32 {
                producer
                    .message("n")
                    .segment("i", &i)
                    .unwrap()
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    append(grouped.clone()).await;
    append(alone.clone()).await;
    let len = |stream: String| {
        let mut raw = raw.clone();
        async move { raw.xlen::<_, u64>(stream).await.unwrap() }
    };
    assert_eq!(
        len(grouped.clone()).await,
        1_000,
        "the group has read nothing: all kept"
    );
    let trimmed = len(alone.clone()).await;
    assert!(
        (100..1_000).contains(&trimmed),
        "no group: trimmed to about 100, kept {trimmed}"
    );

    // The group reads 600 and acknowledges 500: the 100 pending and the
    // 400 unread stay.
    let read = channel
        .read_group(&grouped, "slow", "c", 600, Duration::ZERO)
        .await
        .unwrap();
    let ids: Vec<_> = read.iter().take(500).map(|d| d.entry.id.clone()).collect();
    channel.ack(&grouped, "slow", &ids).await.unwrap();
    append(grouped.clone()).await;
    let kept = len(grouped.clone()).await;
    assert!(
        (1_500..2_000).contains(&kept),
        "entries 501 to 2000 are needed by the group (1,500); kept {kept}"
    );
    let oldest_pending = &read[500].entry.id;
    assert!(
        channel
            .get(&grouped, oldest_pending)
            .await
            .unwrap()
            .is_some(),
        "the oldest pending entry {oldest_pending} is kept"
    );
    let _: () = raw.del(&[&grouped, &alone]).await.unwrap();
}
