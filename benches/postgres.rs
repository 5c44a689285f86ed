//! PostgreSQL: the producer, end to end, and the outbox relay, against raw
//! sqlx doing the same writes in the same run.
//!
//! Run with `cargo bench --features postgres --bench postgres`. The server
//! is `POSTGRES_EVENT_SOURCE_URL` or postgres://postgres@127.0.0.1:5432/test
//! (`scripts/start-postgres`); the run keeps its tables in a schema of its
//! own, dropped at the end.
//!
//! * `produce/event-backbone`: 2,000 events of ~200 bytes in 3 parameters,
//!   sent concurrently (512 in flight) through one `Producer` on
//!   `PostgresStreamChannel` + `PostgresStore`: batches of up to 256, each
//!   one statement that inserts the payload rows and the entries.
//! * `produce/raw-sqlx`: the same rows (3 payload rows and 1 entry per
//!   event, same sizes) in batches of 256, each one statement of two
//!   `unnest` inserts, two batches in flight: what one writes by hand.
//! * `end-to-end/*`: produce 2,000, then consume them in a group until all
//!   are acknowledged; raw: a reader that selects the next 256 entries past
//!   its position, their payload rows, and moves its position (no pending
//!   list, no redelivery).
//! * `outbox/*`: 2,000 messages in the outbox, each written in its own
//!   transaction beforehand (not timed), moved to an in-memory channel and
//!   store; event-backbone's `OutboxRelay` (batches of 100: read, payloads
//!   read, written, entries appended, acknowledged, payload rows deleted)
//!   against a hand-written relay on a table `(id, stream, metadata,
//!   payload)` that locks the 100 oldest rows, writes and appends them, and
//!   deletes them (it keeps no order between rows of concurrent
//!   transactions and no record of a half-done batch: what event-backbone's
//!   relay adds).

mod sql_workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::outbox::OutboxRelay;
use event_backbone::postgres::sqlx::{self, AssertSqlSafe, PgPool, Row};
use event_backbone::postgres::{Postgres, PostgresConfig, PostgresStore, PostgresStreamChannel};
use event_backbone::{KeyValueStore, StreamChannel};
use sql_workload::*;

const EVENTS: usize = 2_000;
const BATCH: usize = 256;

fn url() -> String {
    std::env::var("POSTGRES_EVENT_SOURCE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

struct Bench {
    pg: Postgres,
    schema: String,
}

impl Bench {
    fn parts(&self) -> (Arc<dyn StreamChannel>, Arc<dyn KeyValueStore>) {
        (
            Arc::new(PostgresStreamChannel::new(&self.pg)),
            Arc::new(PostgresStore::new(&self.pg)),
        )
    }

    fn pool(&self) -> &PgPool {
        self.pg.pool()
    }

    async fn sql(&self, text: String) {
        sqlx::query(AssertSqlSafe(text))
            .execute(self.pool())
            .await
            .unwrap();
    }

    /// The raw baseline's tables, empty.
    async fn raw_tables(&self) {
        let s = &self.schema;
        self.sql(format!(
            "DROP TABLE IF EXISTS {s}.raw_entries, {s}.raw_payloads, {s}.raw_position"
        ))
        .await;
        self.sql(format!("CREATE TABLE {s}.raw_entries (id bigserial PRIMARY KEY, stream text NOT NULL, metadata bytea NOT NULL)")).await;
        self.sql(format!("CREATE INDEX ON {s}.raw_entries (stream, id)"))
            .await;
        self.sql(format!("CREATE TABLE {s}.raw_payloads (key text, field text, value bytea, PRIMARY KEY (key, field))")).await;
        self.sql(format!(
            "CREATE TABLE {s}.raw_position (reader text PRIMARY KEY, last bigint NOT NULL)"
        ))
        .await;
    }

    /// The raw producer: batches of 256 events, each one statement, two in
    /// flight.
    async fn produce_raw(&self, stream: &str) {
        let s = &self.schema;
        let sql = format!(
            "WITH p AS (INSERT INTO {s}.raw_payloads (key, field, value)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]))
             INSERT INTO {s}.raw_entries (stream, metadata) SELECT $4, m FROM unnest($5::bytea[]) AS t(m)"
        );
        let metadata = vec![7u8; 160];
        let batches: Vec<Vec<usize>> = (0..EVENTS)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(<[usize]>::to_vec)
            .collect();
        let write = |batch: Vec<usize>| {
            let (sql, metadata) = (sql.clone(), metadata.clone());
            async move {
                let (mut keys, mut fields, mut values) = (Vec::new(), Vec::new(), Vec::new());
                for i in &batch {
                    let p = payload(*i);
                    let key = format!("{stream}:order_placed:v0:normal:{i}");
                    for (field, value) in [
                        ("customer", p.customer.into_bytes()),
                        ("product", p.product.into_bytes()),
                        ("quantity", p.quantity.to_le_bytes().to_vec()),
                    ] {
                        keys.push(key.clone());
                        fields.push(field);
                        values.push(value);
                    }
                }
                let entries = vec![metadata; batch.len()];
                sqlx::query(AssertSqlSafe(sql))
                    .bind(&keys)
                    .bind(&fields)
                    .bind(&values)
                    .bind(stream)
                    .bind(&entries)
                    .execute(self.pool())
                    .await
                    .unwrap();
            }
        };
        let writes = futures_util::StreamExt::buffer_unordered(
            futures_util::stream::iter(batches.into_iter().map(write)),
            2,
        );
        futures_util::StreamExt::collect::<Vec<()>>(writes).await;
    }

    /// The raw reader: the next 256 entries past its position, their
    /// payload rows, then the position moved; until `EVENTS` are read.
    async fn consume_raw(&self, stream: &str) {
        let s = &self.schema;
        self.sql(format!(
            "INSERT INTO {s}.raw_position VALUES ('{stream}', 0) ON CONFLICT DO NOTHING"
        ))
        .await;
        let next = format!(
            "SELECT id, metadata FROM {s}.raw_entries WHERE stream = $1
             AND id > (SELECT last FROM {s}.raw_position WHERE reader = $1) ORDER BY id LIMIT {BATCH}"
        );
        let fetch = format!("SELECT key, field, value FROM {s}.raw_payloads WHERE key = ANY($1)");
        let moved = format!("UPDATE {s}.raw_position SET last = $2 WHERE reader = $1");
        let mut read = 0;
        while read < EVENTS {
            let rows = sqlx::query(AssertSqlSafe(next.clone()))
                .bind(stream)
                .fetch_all(self.pool())
                .await
                .unwrap();
            let Some(last) = rows.last().map(|r| r.get::<i64, _>(0)) else {
                continue;
            };
            let keys: Vec<String> = rows
                .iter()
                .enumerate()
                .map(|(n, _)| format!("{stream}:order_placed:v0:normal:{}", read + n))
                .collect();
            let payloads = sqlx::query(AssertSqlSafe(fetch.clone()))
                .bind(&keys)
                .fetch_all(self.pool())
                .await
                .unwrap();
            assert_eq!(payloads.len(), rows.len() * 3);
            sqlx::query(AssertSqlSafe(moved.clone()))
                .bind(stream)
                .bind(last)
                .execute(self.pool())
                .await
                .unwrap();
            read += rows.len();
        }
    }

    /// `EVENTS` messages in the outbox of `stream`, each sent in its own
    /// transaction; the producer whose channel (memory) they go to.
    async fn fill_outbox(&self, stream: &str) -> (event_backbone::Producer, Arc<MemoryChannel>) {
        let target = Arc::new(MemoryChannel::new());
        let producer = producer(target.clone(), Arc::new(MemoryStore::new()), stream);
        for i in 0..EVENTS {
            let p = payload(i);
            let mut tx = self.pool().begin().await.unwrap();
            producer
                .message("order_placed")
                .segment("customer", &p.customer)
                .unwrap()
                .segment("product", &p.product)
                .unwrap()
                .segment("quantity", &p.quantity)
                .unwrap()
                .send_in(&mut self.pg.within(&mut tx))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        (producer, target)
    }

    /// `EVENTS` rows in a hand-made outbox table (id, stream, metadata,
    /// payload), each inserted in its own transaction.
    async fn fill_raw_outbox(&self, stream: &str) {
        let s = &self.schema;
        self.sql(format!("CREATE TABLE IF NOT EXISTS {s}.raw_outbox (id bigserial PRIMARY KEY, stream text NOT NULL, metadata bytea NOT NULL, payload bytea NOT NULL)")).await;
        let insert =
            format!("INSERT INTO {s}.raw_outbox (stream, metadata, payload) VALUES ($1, $2, $3)");
        for i in 0..EVENTS {
            let p = payload(i);
            let mut body = p.customer.into_bytes();
            body.extend(p.product.as_bytes());
            body.extend(p.quantity.to_le_bytes());
            let mut tx = self.pool().begin().await.unwrap();
            sqlx::query(AssertSqlSafe(insert.clone()))
                .bind(stream)
                .bind(vec![7u8; 160])
                .bind(body)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }

    /// A hand-written relay: the 100 oldest outbox rows (locked), their
    /// payloads put in `store` and entries appended to `target`, then the
    /// rows deleted; until the outbox is empty.
    async fn relay_raw(&self, stream: &str, target: &MemoryChannel, store: &MemoryStore) {
        let s = &self.schema;
        let oldest = format!(
            "SELECT id, metadata, payload FROM {s}.raw_outbox WHERE stream = $1
             ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED"
        );
        let gone = format!("DELETE FROM {s}.raw_outbox WHERE id = ANY($1)");
        loop {
            let mut tx = self.pool().begin().await.unwrap();
            let rows = sqlx::query(AssertSqlSafe(oldest.clone()))
                .bind(stream)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
            if rows.is_empty() {
                return;
            }
            let puts: Vec<event_backbone::PutItem> = rows
                .iter()
                .map(|row| event_backbone::PutItem {
                    key: format!("{stream}:{}", row.get::<i64, _>(0)),
                    fields: [("payload".to_owned(), row.get::<Vec<u8>, _>(2).into())].into(),
                    ttl: None,
                })
                .collect();
            store.put_many(&puts).await.unwrap();
            for row in &rows {
                target.append_raw(stream, row.get::<Vec<u8>, _>(1));
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            sqlx::query(AssertSqlSafe(gone.clone()))
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let schema = format!("eb_bench_{}", std::process::id());
    let bench = rt.block_on(async {
        let config = PostgresConfig::from_url(&url())
            .unwrap()
            .schema(&schema)
            .unwrap()
            .max_connections(8);
        let pg = Postgres::connect(config)
            .await
            .expect("PostgreSQL (scripts/start-postgres)");
        let bench = Bench {
            pg,
            schema: schema.clone(),
        };
        bench.raw_tables().await;
        bench
    });

    let mut group = c.benchmark_group("produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (channel, store) = bench.parts();
                    let producer = producer(channel, store, &unique("produce"));
                    let start = Instant::now();
                    produce(&producer, EVENTS).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-sqlx", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("raw-produce");
                    let start = Instant::now();
                    bench.produce_raw(&stream).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("end-to-end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("e2e");
                    let (channel, store) = bench.parts();
                    let producer = producer(channel.clone(), store.clone(), &stream);
                    let start = Instant::now();
                    produce(&producer, EVENTS).await;
                    consume(channel, store, &stream, EVENTS).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-sqlx", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("raw-e2e");
                    let start = Instant::now();
                    bench.produce_raw(&stream).await;
                    bench.consume_raw(&stream).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("outbox");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone-relay", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("outbox");
                    let (producer, target) = bench.fill_outbox(&stream).await;
                    let (channel, store) = bench.parts();
                    let relay = OutboxRelay::builder()
                        .channel(channel)
                        .store(store)
                        .to(&producer)
                        .build()
                        .unwrap();
                    let start = Instant::now();
                    let mut relayed = 0;
                    while relayed < EVENTS as u64 {
                        relayed += relay.relay_once().await.unwrap().relayed;
                    }
                    total += start.elapsed();
                    assert_eq!(target.info(&stream).await.unwrap().length, EVENTS as u64);
                }
                total
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-sqlx-relay", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("raw-outbox");
                    bench.fill_raw_outbox(&stream).await;
                    let (target, store) = (MemoryChannel::new(), MemoryStore::new());
                    let start = Instant::now();
                    bench.relay_raw(&stream, &target, &store).await;
                    total += start.elapsed();
                    assert_eq!(target.info(&stream).await.unwrap().length, EVENTS as u64);
                }
                total
            })
        })
    });
    group.finish();

    rt.block_on(bench.sql(format!("DROP SCHEMA {schema} CASCADE")));
}

criterion_group!(postgres_benches, benches);

fn main() {
    postgres_benches();
    Criterion::default().configure_from_args().final_summary();
}
