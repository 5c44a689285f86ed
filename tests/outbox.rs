//! The transactional outbox on PostgreSQL: an event and the state change
//! that caused it commit together or not at all, on the PostgreSQL channel
//! (typed producer, `in_transaction`) and through the outbox to Redis with
//! an `OutboxRelay`; a relay killed with SIGKILL between appending a batch
//! to Redis and acknowledging it in the outbox loses nothing and keeps each
//! key's outbox order (a ledger: every committed message in Redis, no
//! rolled-back one, first deliveries in the order sent per key).
//!
//! The program is also the relay: with `EB_OUTBOX_RELAY` set it relays
//! until it is killed.
//!
//! Needs PostgreSQL (`POSTGRES_EVENT_SOURCE_URL`, else
//! postgres://postgres@127.0.0.1:5432/test) and Redis
//! (`REDIS_EVENT_SOURCE_ENDPOINT`, else 127.0.0.1:6379), as `scripts/test`
//! starts them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_backbone::outbox::OutboxRelay;
use event_backbone::postgres::{Postgres, PostgresConfig, PostgresStore, PostgresStreamChannel};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
use event_backbone::{
    event_contract, ChannelCapabilities, Delivery, Entry, EntryId, GroupInfo, GroupStart, Message,
    MessageId, Metadata, Producer, Replay, StreamChannel, StreamInfo, StreamPosition,
};
use futures_util::{StreamExt, TryStreamExt};

/// A shop.
#[event_contract]
pub trait Shop {
    /// An order was placed.
    async fn order_placed(&self, item: String, quantity: u32);
}

const RELAY_VAR: &str = "EB_OUTBOX_RELAY";
/// Written by the relay process while it waits between appending a batch
/// and acknowledging it.
const MARK_VAR: &str = "EB_OUTBOX_MARK";

fn postgres_url() -> String {
    std::env::var("POSTGRES_EVENT_SOURCE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "eb_{prefix}_{}_{}",
        nanos % 1_000_000_000_000,
        std::process::id()
    )
}

async fn postgres(schema: &str) -> Postgres {
    let config = PostgresConfig::from_url(&postgres_url())
        .unwrap()
        .schema(schema)
        .unwrap();
    Postgres::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-postgres"))
}

async fn redis() -> Redis {
    let endpoint = std::env::var("REDIS_EVENT_SOURCE_ENDPOINT")
        .unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
    let password = std::env::var("REDIS_EVENT_SOURCE_PASS").ok();
    let config = RedisConfig::from_endpoint(&endpoint, password.as_deref()).unwrap();
    Redis::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-redis"))
}

async fn drop_schema(pg: &Postgres, schema: &str) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(pg.pool())
        .await
        .unwrap();
}

/// A stock table in the test's schema, with `tea` at 10.
async fn stock(pg: &Postgres, schema: &str) {
    for sql in [
        format!("CREATE TABLE \"{schema}\".stock (item text PRIMARY KEY, count integer NOT NULL)"),
        format!("INSERT INTO \"{schema}\".stock VALUES ('tea', 10)"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pg.pool())
            .await
            .unwrap();
    }
}

async fn take_tea(schema: &str, tx: &mut sqlx::PgConnection) {
    let sql = format!("UPDATE \"{schema}\".stock SET count = count - 1 WHERE item = 'tea'");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(tx)
        .await
        .unwrap();
}

async fn tea_left(pg: &Postgres, schema: &str) -> i32 {
    let sql = format!("SELECT count FROM \"{schema}\".stock WHERE item = 'tea'");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pg.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_event_on_postgres_commits_with_the_state_change_or_not_at_all() {
    let schema = unique("outbox_pg");
    let pg = postgres(&schema).await;
    stock(&pg, &schema).await;
    let channel = Arc::new(PostgresStreamChannel::new(&pg));
    let store = Arc::new(PostgresStore::new(&pg));
    let shop: ShopProducer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("shop")
        .build_as()
        .unwrap();

    // Rolled back: neither the stock change nor the event.
    let mut tx = pg.pool().begin().await.unwrap();
    take_tea(&schema, &mut tx).await;
    shop.in_transaction(&mut pg.within(&mut tx))
        .order_placed("tea", &1)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(tea_left(&pg, &schema).await, 10);
    assert_eq!(channel.info("shop").await.unwrap().length, 0);
    let payload_rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".payloads"
    )))
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(payload_rows, 0, "a rolled-back event left its payload");

    // Committed: both, and the event reads back with its payload.
    let mut tx = pg.pool().begin().await.unwrap();
    take_tea(&schema, &mut tx).await;
    let mut in_tx = pg.within(&mut tx);
    let mut shop_in = shop.in_transaction(&mut in_tx);
    shop_in.order_placed("tea", &2).await.unwrap();
    shop_in.order_placed("tea", &3).await.unwrap();
    // Not visible before the commit.
    assert_eq!(channel.info("shop").await.unwrap().length, 0);
    tx.commit().await.unwrap();
    assert_eq!(tea_left(&pg, &schema).await, 9);
    // Another test's transaction still open holds readers back a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let quantities = loop {
        let quantities: Vec<u32> = Replay::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri("shop")
            .events::<ShopEvent>()
            .unwrap()
            .map(|r| match r.unwrap().event {
                ShopEvent::OrderPlaced { item, quantity } => {
                    assert_eq!(item, "tea");
                    quantity
                }
            })
            .collect()
            .await;
        if quantities.len() >= 2 || Instant::now() > deadline {
            break quantities;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(quantities, [2, 3]);
    drop_schema(&pg, &schema).await;
}

#[tokio::test]
async fn an_event_for_redis_goes_through_the_outbox_and_the_relay() {
    let schema = unique("outbox_redis");
    let pg = postgres(&schema).await;
    stock(&pg, &schema).await;
    let redis = redis().await;
    let uri = format!("test.outbox.{schema}");
    let (channel, store) = (
        Arc::new(RedisStreamChannel::new(&redis)),
        Arc::new(RedisHashStore::new(&redis)),
    );
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();

    let mut sent = Vec::new();
    for n in 0..4u32 {
        let mut tx = pg.pool().begin().await.unwrap();
        take_tea(&schema, &mut tx).await;
        let receipt = producer
            .message("order_placed")
            .segment("n", &n)
            .unwrap()
            .send_in(&mut pg.within(&mut tx))
            .await
            .unwrap();
        if n == 2 {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
            sent.push(receipt.message_id);
        }
    }
    assert_eq!(tea_left(&pg, &schema).await, 7);
    assert_eq!(
        channel.info(&uri).await.unwrap().length,
        0,
        "nothing before the relay"
    );

    let relay = OutboxRelay::builder()
        .channel(Arc::new(PostgresStreamChannel::new(&pg)))
        .store(Arc::new(PostgresStore::new(&pg)))
        .to(&producer)
        .build()
        .unwrap();
    // Another test's transaction still open may hold the relay back a
    // moment: pass until all three are through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut relayed = 0;
    while relayed < 3 && Instant::now() < deadline {
        let report = relay.relay_once().await.unwrap();
        assert!(report.dead_lettered.is_empty(), "{report:?}");
        relayed += report.relayed;
    }
    assert_eq!(relayed, 3);
    let messages: Vec<Message> = Replay::builder()
        .channel(channel)
        .store(store)
        .uri(&uri)
        .messages()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<MessageId> = messages.iter().map(|m| m.metadata().message_id).collect();
    assert_eq!(ids, sent, "the committed messages, as sent, in order");
    let ns: Vec<u32> = messages
        .iter()
        .map(|m| {
            m.segments()
                .decode("n", &event_backbone::Codec::Postcard)
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(ns, [0, 1, 3]);
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".payloads"
    )))
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(left, 0, "relayed payloads are deleted from the outbox");
    // Nothing of the outbox under the stream's own name in PostgreSQL.
    let outbox = PostgresStreamChannel::new(&pg);
    assert_eq!(outbox.info(&uri).await.unwrap().length, 0);
    let kept = format!("{uri}:outbox");
    assert_eq!(outbox.info(&kept).await.unwrap().length, 3);
    assert_eq!(outbox.delete_acknowledged(&kept).await.unwrap(), 3);
    assert_eq!(outbox.info(&kept).await.unwrap().length, 0);
    drop_schema(&pg, &schema).await;
}

/// The outbox channel, with each acknowledgement made to wait: the relay
/// process then spends its time between appending a batch to Redis and
/// acknowledging it in the outbox, where the test kills it. A mark file
/// says when it is there.
#[derive(Debug)]
struct SlowAcks {
    inner: Arc<dyn StreamChannel>,
    mark: std::path::PathBuf,
}

#[async_trait]
impl StreamChannel for SlowAcks {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn capabilities(&self) -> ChannelCapabilities {
        self.inner.capabilities()
    }
    async fn append_many(
        &self,
        stream: &str,
        batch: &[Metadata],
    ) -> event_backbone::Result<Vec<EntryId>> {
        self.inner.append_many(stream, batch).await
    }
    async fn ensure_group(
        &self,
        stream: &str,
        group: &str,
        start: GroupStart,
    ) -> event_backbone::Result<()> {
        self.inner.ensure_group(stream, group, start).await
    }
    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> event_backbone::Result<Vec<Delivery>> {
        self.inner
            .read_group(stream, group, consumer, count, block)
            .await
    }
    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> event_backbone::Result<Vec<Delivery>> {
        self.inner
            .read_pending(stream, group, consumer, count)
            .await
    }
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> event_backbone::Result<()> {
        std::fs::write(&self.mark, ids.len().to_string()).unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = std::fs::remove_file(&self.mark);
        self.inner.ack(stream, group, ids).await
    }
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> event_backbone::Result<Vec<Delivery>> {
        self.inner
            .claim_stale(stream, group, consumer, min_idle, count)
            .await
    }
    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> event_backbone::Result<Vec<Entry>> {
        self.inner.read_range(stream, from, to, count).await
    }
    async fn get(&self, stream: &str, id: &EntryId) -> event_backbone::Result<Option<Entry>> {
        self.inner.get(stream, id).await
    }
    async fn info(&self, stream: &str) -> event_backbone::Result<StreamInfo> {
        self.inner.info(stream).await
    }
    async fn group_info(
        &self,
        stream: &str,
        group: &str,
    ) -> event_backbone::Result<Option<GroupInfo>> {
        self.inner.group_info(stream, group).await
    }
}

/// The relay process: relays `EB_OUTBOX_RELAY` (`schema uri`) until killed.
#[tokio::test]
async fn relay_process() {
    let Ok(what) = std::env::var(RELAY_VAR) else {
        return;
    };
    let (schema, uri) = what.split_once(' ').unwrap();
    let pg = postgres(schema).await;
    let redis = redis().await;
    let producer = Producer::builder()
        .channel(Arc::new(RedisStreamChannel::new(&redis)))
        .store(Arc::new(RedisHashStore::new(&redis)))
        .uri(uri)
        .build()
        .unwrap();
    let outbox = Arc::new(SlowAcks {
        inner: Arc::new(PostgresStreamChannel::new(&pg)),
        mark: std::env::var(MARK_VAR).unwrap().into(),
    });
    let relay = OutboxRelay::builder()
        .channel(outbox)
        .store(Arc::new(PostgresStore::new(&pg)))
        .to(&producer)
        .batch_size(50)
        .block(Duration::from_millis(200))
        .build()
        .unwrap();
    relay
        .run(tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
}

/// A relay process, killed when dropped.
struct RelayProcess(Child);

impl RelayProcess {
    fn start(schema: &str, uri: &str, mark: &std::path::Path) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "relay_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RELAY_VAR, format!("{schema} {uri}"))
            .env(MARK_VAR, mark)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Redis stream's messages, in order: (message id, key, n).
async fn relayed(channel: &RedisStreamChannel, uri: &str) -> Vec<(MessageId, String)> {
    let mut out = Vec::new();
    let mut from = StreamPosition::Start;
    loop {
        let page = channel.read_range(uri, &from, None, 1000).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        from = StreamPosition::After(last.id.clone());
        for entry in page {
            let metadata = entry.body.unwrap();
            let key = metadata.partition_key().unwrap().to_owned();
            out.push((metadata.message_id, key));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_append_and_acknowledgement_loses_nothing() {
    const MESSAGES: usize = 600;
    const KEYS: usize = 8;
    let bound = Instant::now() + Duration::from_secs(120);
    let schema = unique("outbox_kill");
    let pg = postgres(&schema).await;
    let redis = redis().await;
    let uri = format!("test.outbox.{schema}");
    let channel = RedisStreamChannel::new(&redis);
    let producer = Producer::builder()
        .channel(Arc::new(RedisStreamChannel::new(&redis)))
        .store(Arc::new(RedisHashStore::new(&redis)))
        .uri(&uri)
        .build()
        .unwrap();

    // The ledger: what was committed, per key in order; what rolled back.
    let mut committed: BTreeMap<String, Vec<MessageId>> = BTreeMap::new();
    let mut rolled_back = HashSet::new();
    let send = |n: usize| {
        let (pg, producer) = (pg.clone(), producer.clone());
        async move {
            let key = format!("k{}", n % KEYS);
            let mut tx = pg.pool().begin().await.unwrap();
            let id = producer
                .message("placed")
                .segment("n", &(n as u64))
                .unwrap()
                .partition_key(key.clone())
                .send_in(&mut pg.within(&mut tx))
                .await
                .unwrap()
                .message_id;
            let commit = n % 10 != 7;
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            (key, id, commit)
        }
    };
    for n in 0..MESSAGES {
        let (key, id, commit) = send(n).await;
        if commit {
            committed.entry(key).or_default().push(id);
        } else {
            rolled_back.insert(id);
        }
    }
    let total: usize = committed.values().map(Vec::len).sum();

    let mark = std::env::temp_dir().join(format!("{schema}.mark"));
    let mut kills = 0;
    let mut relay = RelayProcess::start(&schema, &uri, &mark);
    // Killed twice while it waits between a batch's append and its
    // acknowledgement, after some batches went through.
    while kills < 2 {
        assert!(
            Instant::now() < bound,
            "the relay never reached a batch's acknowledgement"
        );
        let landed = channel.info(&uri).await.unwrap().length as usize;
        if landed >= (kills + 1) * 100 && mark.exists() {
            relay.kill();
            kills += 1;
            let _ = std::fs::remove_file(&mark);
            relay = RelayProcess::start(&schema, &uri, &mark);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Then it finishes: everything in Redis, nothing left in the outbox
    // (acknowledged, payload rows deleted).
    let outbox = PostgresStreamChannel::new(&pg);
    loop {
        let got = relayed(&channel, &uri).await;
        let distinct: HashSet<MessageId> = got.iter().map(|(id, _)| *id).collect();
        let pending = outbox
            .group_info(
                &event_backbone::outbox::outbox_stream(&uri),
                event_backbone::outbox::RELAY_GROUP,
            )
            .await
            .unwrap()
            .map_or(u64::MAX, |g| g.pending);
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".payloads"
        )))
        .fetch_one(pg.pool())
        .await
        .unwrap();
        if distinct.len() >= total && pending == 0 && rows == 0 {
            break;
        }
        assert!(
            Instant::now() < bound,
            "after 120 s: {} of {total} relayed, {pending} pending in the outbox, {rows} payload rows left",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay.kill();

    let got = relayed(&channel, &uri).await;
    let mut firsts: HashMap<String, Vec<MessageId>> = HashMap::new();
    let mut seen = HashSet::new();
    for (id, key) in &got {
        assert!(
            !rolled_back.contains(id),
            "a rolled-back message was relayed"
        );
        if seen.insert(*id) {
            firsts.entry(key.clone()).or_default().push(*id);
        }
    }
    assert_eq!(seen.len(), total, "every committed message relayed");
    for (key, ids) in &committed {
        assert_eq!(
            firsts.get(key),
            Some(ids),
            "key {key}: not in the order sent"
        );
    }
    let again = got.len() - total;
    assert!(
        again > 0,
        "no batch was relayed twice: the kills did not land between append and acknowledgement"
    );
    println!(
        "{total} committed, relayed {} times in all ({again} again after {kills} kills)",
        got.len()
    );
    drop_schema(&pg, &schema).await;
}
