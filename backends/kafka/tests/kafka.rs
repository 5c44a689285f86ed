//! What only Kafka has: partitions, keys, committed offsets and rebalances,
//! against the real broker (`KAFKA_EVENT_SOURCE_BROKERS` or 127.0.0.1:9092).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::memory::MemoryStore;
use event_backbone_core::{
    Consumer, ConsumerContext, Error, GroupStart, HandlerError, KeyValueStore, Producer,
    StreamChannel,
};
use event_backbone_kafka::entry::PARTITION_KEY;
use event_backbone_kafka::KafkaStreamChannel;
use support::{config, unique};

async fn channel(partitions: u16) -> Arc<KafkaStreamChannel> {
    support::channel(config().partitions(partitions)).await
}

fn producer(channel: &Arc<KafkaStreamChannel>, store: &Arc<MemoryStore>, uri: &str) -> Producer {
    Producer::builder()
        .channel(channel.clone())
        .store(store.clone() as Arc<dyn KeyValueStore>)
        .uri(uri)
        .build()
        .unwrap()
}

/// Handled (key, i) pairs, in handling order.
type Ledger = Arc<Mutex<Vec<(String, u32)>>>;

fn consumer(
    channel: &Arc<KafkaStreamChannel>,
    store: &Arc<MemoryStore>,
    uri: &str,
    name: &str,
) -> event_backbone_core::ConsumerBuilder {
    Consumer::builder()
        .channel(channel.clone() as Arc<dyn StreamChannel>)
        .store(store.clone() as Arc<dyn KeyValueStore>)
        .uri(uri)
        .group("workers")
        .consumer_name(name)
        .block(Duration::from_millis(100))
}

fn recording(
    ledger: &Ledger,
) -> impl Fn(ConsumerContext) -> futures_util::future::BoxFuture<'static, Result<(), HandlerError>>
       + Send
       + Sync
       + 'static {
    let ledger = ledger.clone();
    move |ctx: ConsumerContext| {
        let ledger = ledger.clone();
        Box::pin(async move {
            let key: String = ctx.segment("key")?;
            let i: u32 = ctx.segment("i")?;
            ledger.lock().unwrap().push((key, i));
            Ok(())
        })
    }
}

async fn send_keyed(producer: &Producer, keys: &[&str], steps: std::ops::Range<u32>) {
    for i in steps {
        for key in keys {
            producer
                .message("step")
                .header(PARTITION_KEY, *key)
                .segment("key", key)
                .unwrap()
                .segment("i", &i)
                .unwrap()
                .send()
                .await
                .unwrap();
        }
    }
}

/// With four partitions and several keys, each key's messages arrive in
/// the order they were sent, and each key stays on one partition.
#[tokio::test]
async fn order_holds_per_partition_key() {
    let (channel, store) = (channel(4).await, Arc::new(MemoryStore::new()));
    let uri = unique("per-key");
    let producer = producer(&channel, &store, &uri);
    let keys = ["alpha", "beta", "gamma", "delta", "epsilon"];
    send_keyed(&producer, &keys, 0..40).await;

    let ledger = Ledger::default();
    let stats = consumer(&channel, &store, &uri, "reader")
        .concurrency(1)
        .stop_after(200)
        .subscribe_fn(recording(&ledger))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, 200);
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (key, i) in ledger.lock().unwrap().iter() {
        per_key.entry(key.clone()).or_default().push(*i);
    }
    for (key, seen) in &per_key {
        assert_eq!(*seen, (0..40).collect::<Vec<_>>(), "key {key} out of order");
    }

    // Every entry of a key is on the same partition.
    let entries = channel
        .read_range(
            &uri,
            &event_backbone_core::StreamPosition::Start,
            None,
            1000,
        )
        .await
        .unwrap();
    let mut partitions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in entries {
        let m = e.body.unwrap();
        let partition = e.id.as_str().split(':').next().unwrap().to_owned();
        partitions
            .entry(m.headers[PARTITION_KEY].clone())
            .or_default()
            .insert(partition);
    }
    assert_eq!(partitions.len(), keys.len());
    for (key, ps) in partitions {
        assert_eq!(ps.len(), 1, "key {key} is on partitions {ps:?}");
    }
}

/// A group that resumes reads from the committed offset, even when it lies
/// inside what the producer wrote as one batch: the first member handles 5
/// of a 10-entry batch and leaves, the next one gets exactly the other 5.
#[tokio::test]
async fn a_group_resumes_from_a_commit_inside_a_producer_batch() {
    let channel = channel(1).await;
    let stream = unique("resume");
    channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let batch: Vec<_> = (0..10u32)
        .map(|i| {
            let mut m = sample(&stream);
            m.headers.insert("n".into(), i.to_string());
            m
        })
        .collect();
    let ids = channel.append_many(&stream, &batch).await.unwrap();
    assert_eq!(ids.len(), 10);

    let first = read_n(&channel, &stream, "first", 5).await;
    let acked: Vec<_> = first.iter().map(|d| d.entry.id.clone()).collect();
    channel.ack(&stream, "g", &acked).await.unwrap();
    channel.leave_group(&stream, "g", "first").await.unwrap();

    let mut rest = Vec::new();
    loop {
        let read = channel
            .read_group(&stream, "g", "second", 100, Duration::from_secs(2))
            .await
            .unwrap();
        if read.is_empty() {
            break;
        }
        rest.extend(read);
    }
    let n = |d: &event_backbone_core::Delivery| -> u32 {
        d.entry.body.as_ref().unwrap().headers["n"].parse().unwrap()
    };
    assert_eq!(first.iter().map(n).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(
        rest.iter().map(n).collect::<Vec<_>>(),
        [5, 6, 7, 8, 9],
        "the second member must resume at the commit, inside the batch"
    );
}

/// Acknowledged out of order (concurrency), the commit never passes an
/// entry still in progress: a member that leaves with entry 2 unfinished
/// hands 2 (and what follows it) to the next, never loses it.
#[tokio::test]
async fn the_commit_never_passes_an_unfinished_entry() {
    let channel = channel(1).await;
    let stream = unique("gap");
    channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let batch: Vec<_> = (0..6u32)
        .map(|i| {
            let mut m = sample(&stream);
            m.headers.insert("n".into(), i.to_string());
            m
        })
        .collect();
    channel.append_many(&stream, &batch).await.unwrap();
    let read = read_n(&channel, &stream, "first", 6).await;
    // Everything but entry 2 finished.
    let done: Vec<_> = read
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, d)| d.entry.id.clone())
        .collect();
    channel.ack(&stream, "g", &done).await.unwrap();
    let info = channel.info(&stream).await.unwrap();
    assert_eq!(info.group("g").unwrap().pending, 1);
    channel.leave_group(&stream, "g", "first").await.unwrap();

    let again = channel
        .read_group(&stream, "g", "second", 100, Duration::from_secs(2))
        .await
        .unwrap();
    let ns: Vec<String> = again
        .iter()
        .map(|d| d.entry.body.as_ref().unwrap().headers["n"].clone())
        .collect();
    assert_eq!(
        ns.first().map(String::as_str),
        Some("2"),
        "redelivery must start at the unfinished entry: {ns:?}"
    );
}

/// A member that keeps running commits what it acknowledged every commit
/// interval, so that a crash costs at most that much redelivery: another
/// client sees the group's lag fall without the member leaving.
#[tokio::test]
async fn acknowledgements_are_committed_while_the_member_runs() {
    let every = Duration::from_millis(300);
    let (channel, stream) = ten_in_group_g(every, "commit-interval", 6, 6).await;

    // A second client, with no member of its own, sees only what the
    // broker has: the committed offset.
    let observer = support::channel(config()).await;
    observer
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let mut lag = None;
    for _ in 0..50 {
        lag = observer
            .info(&stream)
            .await
            .unwrap()
            .group("g")
            .unwrap()
            .lag;
        if lag == Some(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lag, Some(4), "6 of 10 acknowledged: the broker's lag");
    channel.leave_group(&stream, "g", "worker").await.unwrap();
}

/// A client with no member of a group finds it by name, from the offsets
/// it committed; a group that committed nothing is unknown.
#[tokio::test]
async fn a_group_is_found_by_name_from_another_client() {
    let (channel, stream) = ten_in_group_g(Duration::from_millis(100), "group-info", 7, 3).await;

    let observer = support::channel(config()).await;
    let mut found = None;
    for _ in 0..50 {
        found = observer.group_info(&stream, "g").await.unwrap();
        if found.as_ref().and_then(|g| g.lag) == Some(7) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = found.expect("the group committed: it is found by name");
    assert_eq!(
        (found.name.as_str(), found.lag, found.pending),
        ("g", Some(7), 0),
        "3 of 10 committed: the rest is lag as the broker sees it"
    );
    assert_eq!(observer.group_info(&stream, "other").await.unwrap(), None);
    // The member's own client knows its pending entries.
    let own = channel.group_info(&stream, "g").await.unwrap().unwrap();
    assert_eq!((own.pending, own.lag), (4, Some(3)), "{own:?}");
    channel.leave_group(&stream, "g", "worker").await.unwrap();
}

/// When one member of a group leaves, the other takes over its partitions
/// and nothing is lost.
#[tokio::test]
async fn members_share_partitions_and_take_over_when_one_leaves() {
    let (channel, store) = (channel(2).await, Arc::new(MemoryStore::new()));
    let uri = unique("takeover");
    let producer = producer(&channel, &store, &uri);
    let keys = ["a", "b", "c", "d"];
    let (by_first, by_second) = (Ledger::default(), Ledger::default());
    let first = consumer(&channel, &store, &uri, "first")
        .subscribe_fn(recording(&by_first))
        .unwrap();
    let second = consumer(&channel, &store, &uri, "second")
        .subscribe_fn(recording(&by_second))
        .unwrap();
    // Joining takes a rebalance: keep sending until both members have
    // handled messages (each owns a partition), then a few rounds more.
    let mut step = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let shared = |first: &Ledger, second: &Ledger| {
        !first.lock().unwrap().is_empty() && !second.lock().unwrap().is_empty()
    };
    while step < 25 || !shared(&by_first, &by_second) {
        assert!(
            std::time::Instant::now() < deadline,
            "after {step} rounds, first handled {} and second {}: the partitions are not shared",
            by_first.lock().unwrap().len(),
            by_second.lock().unwrap().len()
        );
        send_keyed(&producer, &keys, step..step + 1).await;
        step += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = step;
    support::eventually("every message so far handled by the two members", || {
        let n = by_first.lock().unwrap().len() + by_second.lock().unwrap().len();
        async move { n >= 4 * before as usize }
    })
    .await;
    first.shutdown().await.unwrap();

    send_keyed(&producer, &keys, before..before + 25).await;
    support::eventually("the second member to handle the rest", || {
        let n = by_first.lock().unwrap().len() + by_second.lock().unwrap().len();
        async move { n >= 4 * (before as usize + 25) }
    })
    .await;
    second.shutdown().await.unwrap();
    let later: BTreeSet<(String, u32)> = keys
        .iter()
        .flat_map(|k| (before..before + 25).map(move |i| (k.to_string(), i)))
        .collect();
    let second_handled: BTreeSet<(String, u32)> =
        by_second.lock().unwrap().iter().cloned().collect();
    assert!(
        later.is_subset(&second_handled),
        "after the first left, the second handled only {} of the {} later messages",
        later.intersection(&second_handled).count(),
        later.len()
    );
    let handled: BTreeSet<(String, u32)> = by_first
        .lock()
        .unwrap()
        .iter()
        .chain(by_second.lock().unwrap().iter())
        .cloned()
        .collect();
    let sent: BTreeSet<(String, u32)> = keys
        .iter()
        .flat_map(|k| (0..before + 25).map(move |i| (k.to_string(), i)))
        .collect();
    assert_eq!(handled, sent, "every message handled after the takeover");
}

/// A member whose partitions are taken away waits (up to the rebalance
/// drain) for the entries in progress on them. librdkafka calls that wait
/// from the member's poll, on the runtime's thread: on a current-thread
/// runtime it used to stop every task for the whole drain (the handlers it
/// waited for among them). Other tasks now keep running through the
/// rebalance.
#[tokio::test(flavor = "current_thread")]
async fn a_rebalance_does_not_stall_the_runtime() {
    let (channel, store) = (channel(2).await, Arc::new(MemoryStore::new()));
    let uri = unique("rebalance-stall");
    let producer = producer(&channel, &store, &uri);
    let slow = |ledger: &Ledger| {
        let ledger = ledger.clone();
        move |ctx: ConsumerContext| {
            let ledger = ledger.clone();
            async move {
                // In progress when the second member joins.
                tokio::time::sleep(Duration::from_millis(600)).await;
                let key: String = ctx.segment("key")?;
                let i: u32 = ctx.segment("i")?;
                ledger.lock().unwrap().push((key, i));
                Ok::<(), HandlerError>(())
            }
        }
    };
    let (by_first, by_second) = (Ledger::default(), Ledger::default());
    let first = consumer(&channel, &store, &uri, "first")
        .concurrency(8)
        .subscribe_fn(slow(&by_first))
        .unwrap();
    send_keyed(&producer, &["a", "b", "c", "d"], 0..4).await;
    support::eventually("the first member to handle messages", || {
        let n = by_first.lock().unwrap().len();
        async move { n > 0 }
    })
    .await;
    // A ticker on the same runtime, through the rebalance the second member
    // causes, while the first has handlers in progress.
    let ticks: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                ticks.lock().unwrap().push(std::time::Instant::now());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    send_keyed(&producer, &["a", "b", "c", "d"], 4..40).await;
    let second = consumer(&channel, &store, &uri, "second")
        .concurrency(8)
        .subscribe_fn(slow(&by_second))
        .unwrap();
    support::eventually("the second member to take a partition and handle", || {
        let n = by_second.lock().unwrap().len();
        async move { n > 0 }
    })
    .await;
    ticker.abort();
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    let ticks = ticks.lock().unwrap().clone();
    let longest = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest < Duration::from_millis(1_000),
        "the runtime stood still for {longest:?} during the rebalance ({} ticks)",
        ticks.len()
    );
}

/// A channel committing every `every`, and a stream of 10 entries of
/// which group `g`'s member `worker` read `read` and acknowledged the
/// first `acked`.
async fn ten_in_group_g(
    every: Duration,
    name: &str,
    read: usize,
    acked: usize,
) -> (Arc<KafkaStreamChannel>, String) {
    let channel = support::channel(config().commit_interval(every)).await;
    let stream = unique(name);
    channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let batch: Vec<_> = (0..10).map(|_| sample(&stream)).collect();
    channel.append_many(&stream, &batch).await.unwrap();
    let delivered = read_n(&channel, &stream, "worker", read).await;
    let ids: Vec<_> = delivered.iter().map(|d| d.entry.id.clone()).collect();
    channel.ack(&stream, "g", &ids[..acked]).await.unwrap();
    (channel, stream)
}

/// Reads exactly `n` entries in group "g" as `consumer`, in as many reads
/// as it takes.
async fn read_n(
    channel: &KafkaStreamChannel,
    stream: &str,
    consumer: &str,
    n: usize,
) -> Vec<event_backbone_core::Delivery> {
    let mut read = Vec::new();
    while read.len() < n {
        let more = channel
            .read_group(
                stream,
                "g",
                consumer,
                n - read.len(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(
            !more.is_empty(),
            "{consumer} read nothing, {} of {n} so far",
            read.len()
        );
        read.extend(more);
    }
    read
}

fn sample(stream: &str) -> event_backbone_core::Metadata {
    event_backbone_core::Metadata {
        message_id: event_backbone_core::MessageId::new(),
        operation: "sample".into(),
        version: 0,
        uri: stream.into(),
        environment: None,
        produced_at_ms: 0,
        origin: Default::default(),
        content_type: "application/postcard".into(),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
        headers: Default::default(),
        segments: Vec::new(),
        subject: None,
    }
}

/// A record librdkafka refuses to enqueue (over `message.max.bytes`) fails
/// with the records after it, none of which is sent: sent again later, by
/// the producer's retry, they keep their order.
#[tokio::test]
async fn a_record_refused_at_enqueue_fails_the_rest_of_its_batch_unsent() {
    let channel = support::channel(config()).await;
    let stream = unique("refused");
    let mut big = sample(&stream);
    big.headers
        .insert("blob".into(), "x".repeat(2 * 1024 * 1024));
    let batch = [sample(&stream), big, sample(&stream), sample(&stream)];
    let appended = match channel.append_many(&stream, &batch).await {
        Err(Error::PartlyAppended { appended, .. }) => appended,
        other => panic!("expected a partly appended batch, got {other:?}"),
    };
    assert!(appended[0].is_some(), "the record before was not appended");
    assert!(
        appended[1..].iter().all(Option::is_none),
        "records after the refused one were appended: {appended:?}"
    );
    let read = channel
        .read_range(
            &stream,
            &event_backbone_core::StreamPosition::Start,
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(read.len(), 1, "only the first record is in the topic");
    assert_eq!(
        read[0].body.as_ref().unwrap().message_id,
        batch[0].message_id
    );
}

/// A message is found by its id in any partition, even when an earlier
/// partition holds entries produced long after it: pages go partition after
/// partition, so the search does not stop at the first later entry.
#[tokio::test]
async fn a_message_is_found_by_id_across_partitions() {
    let channel = channel(4).await;
    let stream = unique("find-across");
    let now = event_backbone_core::clock::now_ms();
    // Appends one entry with this partition key and production time.
    let append = |key: String, produced_at_ms: u64| {
        let channel = channel.clone();
        let stream = stream.clone();
        async move {
            let mut metadata = sample(&stream);
            metadata.produced_at_ms = produced_at_ms;
            metadata.headers.insert(PARTITION_KEY.into(), key);
            let id = channel.append(&stream, &metadata).await.unwrap();
            (id, metadata.message_id)
        }
    };
    // Partition 0 holds an entry produced ten minutes from now ...
    let mut blocker = None;
    for k in 0..64 {
        let (id, _) = append(format!("late-{k}"), now + 600_000).await;
        if id.as_str().starts_with("0:") {
            blocker = Some(id);
            break;
        }
    }
    assert!(blocker.is_some(), "no key went to partition 0");
    // ... and a later partition the message looked for, produced now.
    let mut wanted = None;
    for k in 0..64 {
        let (id, message) = append(format!("now-{k}"), now).await;
        if !id.as_str().starts_with("0:") {
            wanted = Some((id, message));
            break;
        }
    }
    let (id, message) = wanted.expect("a key outside partition 0");
    let receiver = event_backbone_core::Receiver::builder()
        .channel(channel.clone())
        .store(Arc::new(MemoryStore::new()))
        .uri(&stream)
        .build()
        .unwrap();
    let found = receiver.find(message).await.unwrap();
    assert_eq!(found.map(|m| m.entry_id().clone()), Some(id));
}
