//! A stream spread over partitions on a real Redis Cluster (and one on a
//! single server), checked with plain commands: where the partitions are,
//! where messages go, how a blocked read wakes, and what replay sees.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_backbone_core::{GroupStart, Producer, Receiver, Replay, StreamChannel, StreamPosition};
use event_backbone_redis::{Redis, RedisHashStore, RedisStreamChannel};
use futures_util::StreamExt;

async fn cluster() -> Redis {
    Redis::connect(support::cluster_config())
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-redis-cluster"))
}

/// The address of the master that serves a key, as the cluster says.
async fn master_of(raw: &mut redis::cluster_async::ClusterConnection, key: &str) -> String {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(raw)
        .await
        .unwrap();
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(raw)
        .await
        .unwrap();
    for range in slots {
        let range: Vec<redis::Value> = redis::from_redis_value(range).unwrap();
        let lo: i64 = redis::from_redis_value(range[0].clone()).unwrap();
        let hi: i64 = redis::from_redis_value(range[1].clone()).unwrap();
        if (lo..=hi).contains(&slot) {
            let master: Vec<redis::Value> = redis::from_redis_value(range[2].clone()).unwrap();
            let port: i64 = redis::from_redis_value(master[1].clone()).unwrap();
            return format!("port {port}");
        }
    }
    panic!("no master serves slot {slot}")
}

#[tokio::test]
async fn three_partitions_land_on_the_three_masters() {
    let redis = cluster().await;
    let channel = RedisStreamChannel::new(&redis).partitions(3).unwrap();
    let mut raw = support::raw_cluster().await;
    for stream in ["orders", "payments", &support::unique("spread")] {
        let keys = channel.stream_keys(stream).unwrap();
        let mut masters = BTreeSet::new();
        for key in keys.iter() {
            masters.insert(master_of(&mut raw, key).await);
        }
        assert_eq!(masters.len(), 3, "{stream}: {keys:?} on {masters:?}");
    }
}

#[tokio::test]
async fn a_key_keeps_to_one_partition_and_keyless_messages_spread() {
    let redis = cluster().await;
    let channel = Arc::new(RedisStreamChannel::new(&redis).partitions(4).unwrap());
    let uri = support::unique("routing");
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(Arc::new(RedisHashStore::new(&redis)))
        .uri(&uri)
        .build()
        .unwrap();
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut keyless = BTreeSet::new();
    for i in 0..120u32 {
        let key = format!("customer-{}", i % 6);
        let receipt = producer
            .message("placed")
            .partition_key(&key)
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
        let partition = receipt.entry_id().as_str().split(':').next().unwrap();
        by_key.entry(key).or_default().insert(partition.to_owned());
        let receipt = producer.message("noted").send().await.unwrap();
        keyless.insert(
            receipt
                .entry_id()
                .as_str()
                .split(':')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    for (key, partitions) in &by_key {
        assert_eq!(partitions.len(), 1, "{key} went to {partitions:?}");
    }
    assert_eq!(keyless.len(), 4, "keyless messages went to {keyless:?}");
    // The stream keys hold them: one stream for readers, four keys in Redis.
    let info = channel.info(&uri).await.unwrap();
    assert_eq!(info.length, 240);
    let mut raw = support::raw_cluster().await;
    let mut total = 0;
    for key in channel.stream_keys(&uri).unwrap().iter() {
        let length: u64 = redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut raw)
            .await
            .unwrap();
        total += length;
    }
    assert_eq!(total, 240);
}

#[tokio::test]
async fn a_blocked_read_wakes_when_any_partition_gets_an_entry() {
    let redis = cluster().await;
    let channel = Arc::new(RedisStreamChannel::new(&redis).partitions(4).unwrap());
    let uri = support::unique("wake");
    channel
        .ensure_group(&uri, "g", GroupStart::Beginning)
        .await
        .unwrap();
    for round in 0..3 {
        let reader = {
            let channel = channel.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let read = channel
                    .read_group(&uri, "g", "c", 10, Duration::from_secs(10))
                    .await
                    .unwrap();
                (read, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let producer = Producer::builder()
            .channel(channel.clone())
            .store(Arc::new(RedisHashStore::new(&redis)))
            .uri(&uri)
            .build()
            .unwrap();
        producer.message("ping").send().await.unwrap();
        let (read, waited) = reader.await.unwrap();
        // The read on the partition that got it answers; the three others
        // are woken rather than left to their 10 s.
        assert_eq!(read.len(), 1, "round {round}");
        assert!(
            waited < Duration::from_secs(3),
            "round {round}: the read took {waited:?}"
        );
        channel
            .ack(&uri, "g", &[read[0].entry.id.clone()])
            .await
            .unwrap();
    }
}

/// The (time, sequence, partition) of a partitioned entry id.
fn order(id: &str) -> (u64, u64, u32) {
    let (p, redis_id) = id.split_once(':').unwrap();
    let (ms, seq) = redis_id.split_once('-').unwrap();
    (
        ms.parse().unwrap(),
        seq.parse().unwrap(),
        p.parse().unwrap(),
    )
}

#[tokio::test]
async fn replay_merges_the_partitions_by_time_and_pages_exactly() {
    let redis = cluster().await;
    let channel = Arc::new(RedisStreamChannel::new(&redis).partitions(4).unwrap());
    let store = Arc::new(RedisHashStore::new(&redis));
    let uri = support::unique("replay");
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    let mut receipts = Vec::new();
    for i in 0..50u32 {
        receipts.push(
            producer
                .message("step")
                .partition_key(format!("k{}", i % 5))
                .segment("i", &i)
                .unwrap()
                .send()
                .await
                .unwrap(),
        );
        if i == 24 {
            // A time between the halves (ids are in milliseconds).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let replay = |from: StreamPosition| {
        Replay::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(&uri)
            .from(from)
            .page_size(7)
            .messages()
            .unwrap()
            .map(|m| {
                let m = m.unwrap();
                (m.entry_id().to_string(), m.segment::<u32>("i").unwrap())
            })
            .collect::<Vec<_>>()
    };
    let replayed = replay(StreamPosition::Start).await;
    assert_eq!(replayed.len(), 50, "pages of 7 lost or repeated entries");
    // In the order of the entries' ids across partitions (time, then the
    // partition within a millisecond), every message once.
    let orders: Vec<_> = replayed.iter().map(|(id, _)| order(id)).collect();
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "{orders:?}");
    let mut numbers: Vec<u32> = replayed.iter().map(|(_, i)| *i).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..50).collect::<Vec<_>>());

    // From a time: every partition from there, over every page.
    let half = receipts[25].entry_id().as_str();
    let (ms, _, _) = order(half);
    let later = replay(StreamPosition::Time(ms)).await;
    let mut numbers: Vec<u32> = later.iter().map(|(_, i)| *i).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (25..50).collect::<Vec<_>>());

    // A message found by its id, whatever its partition.
    let receiver = Receiver::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    for receipt in [&receipts[3], &receipts[41], &receipts[49]] {
        let found = receiver.find(receipt.message_id).await.unwrap();
        assert_eq!(
            found.map(|m| m.entry_id().clone()),
            Some(receipt.entry_id().clone())
        );
    }

    // Up to an entry: all that come before it, and it.
    let middle = receipts[30].entry_id();
    let upto = channel
        .read_range(&uri, &StreamPosition::Start, Some(middle), 100)
        .await
        .unwrap();
    let before = orders
        .iter()
        .filter(|o| **o <= order(middle.as_str()))
        .count();
    assert_eq!(upto.len(), before);
    assert_eq!(&upto.last().unwrap().id, middle);
    // One entry by its id.
    let got = channel.get(&uri, middle).await.unwrap().unwrap();
    assert_eq!(&got.id, middle);
}

#[tokio::test]
async fn a_read_smaller_than_the_partitions_still_reaches_every_one() {
    let redis = support::redis().await;
    let channel = Arc::new(RedisStreamChannel::new(&redis).partitions(4).unwrap());
    let uri = support::unique("small-reads");
    channel
        .ensure_group(&uri, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(Arc::new(RedisHashStore::new(&redis)))
        .uri(&uri)
        .build()
        .unwrap();
    for i in 0..12u32 {
        producer
            .message("one")
            .partition_key(format!("k{i}"))
            .send()
            .await
            .unwrap();
    }
    let mut read = BTreeSet::new();
    for _ in 0..12 {
        let got = channel
            .read_group(&uri, "g", "c", 1, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "a read of one returned {}", got.len());
        read.insert(got[0].entry.id.to_string());
    }
    assert_eq!(read.len(), 12);
    let partitions: BTreeSet<&str> = read
        .iter()
        .map(|id| id.split(':').next().unwrap())
        .collect();
    assert!(partitions.len() > 1, "{partitions:?}");
}

#[tokio::test]
async fn on_one_server_a_batch_writes_payloads_and_entries_of_every_partition_in_one_go() {
    // The channel and the store share the connection: the producer's
    // combined write (every payload, then every entry to its partition).
    let redis = support::redis().await;
    let channel = Arc::new(RedisStreamChannel::new(&redis).partitions(4).unwrap());
    let store = Arc::new(RedisHashStore::new(&redis));
    let uri = support::unique("one-server-partitions");
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    let sends = (0..80u32).map(|i| {
        let producer = producer.clone();
        async move {
            producer
                .message("step")
                .partition_key(format!("k{}", i % 8))
                .segment("i", &i)?
                .send()
                .await
        }
    });
    futures_util::future::try_join_all(sends).await.unwrap();
    let mut seen: Vec<u32> = Replay::builder()
        .channel(channel.clone())
        .store(store)
        .uri(&uri)
        .messages()
        .unwrap()
        .map(|m| m.unwrap().segment::<u32>("i").unwrap())
        .collect()
        .await;
    seen.sort_unstable();
    assert_eq!(seen, (0..80).collect::<Vec<_>>());
    let mut raw = support::raw().await;
    let mut used = 0;
    for key in channel.stream_keys(&uri).unwrap().iter() {
        let length: u64 = redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut raw)
            .await
            .unwrap();
        used += usize::from(length > 0);
    }
    assert_eq!(used, 4, "the batch did not reach every partition");
}

#[tokio::test]
async fn a_partition_that_fails_its_recovery_is_taken_back_later_once() {
    let redis = support::redis().await;
    let channel = Arc::new(RedisStreamChannel::new(&redis).partitions(4).unwrap());
    let uri = support::unique("owed");
    let keys = channel.stream_keys(&uri).unwrap();
    channel
        .ensure_group(&uri, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(Arc::new(RedisHashStore::new(&redis)))
        .uri(&uri)
        .build()
        .unwrap();
    for i in 0..16u32 {
        producer
            .message("one")
            .partition_key(format!("k{i}"))
            .send()
            .await
            .unwrap();
    }
    let read = channel
        .read_group(&uri, "g", "c", 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(read.len(), 16);
    let in_2 = read
        .iter()
        .filter(|d| d.entry.id.as_str().starts_with("2:"))
        .count();
    assert!(in_2 > 0, "no entry in partition 2");

    // Partition 2 fails (its group is gone): the others' pending entries
    // are taken back all the same.
    let mut raw = support::raw().await;
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&keys[2])
        .arg("g")
        .query_async(&mut raw)
        .await
        .unwrap();
    let back = channel.read_pending(&uri, "g", "c", 100).await.unwrap();
    assert_eq!(back.len(), 16 - in_2, "the healthy partitions' entries");
    assert!(back.iter().all(|d| d.delivery_count == 2));

    // Partition 2 works again, with entries pending for the consumer whose
    // reply it never saw: the next read takes them back first, once.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys[2])
        .arg("g")
        .arg("0")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("STREAMS")
        .arg(&keys[2])
        .arg(">")
        .query_async(&mut raw)
        .await
        .unwrap();
    let owed = channel
        .read_group(&uri, "g", "c", 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(owed.len(), in_2);
    assert!(owed.iter().all(|d| d.entry.id.as_str().starts_with("2:")));
    assert!(owed.iter().all(|d| d.delivery_count == 2));
    // Once: the next read has nothing.
    let next = channel
        .read_group(&uri, "g", "c", 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(next.is_empty(), "{} more", next.len());
}
