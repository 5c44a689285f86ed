//! SQLite: the producer and end to end, against raw sqlx doing the same
//! writes in the same run, on a file in the system's temporary directory.
//!
//! Run with `cargo bench --features sqlite --bench sqlite`.
//!
//! * `produce/event-backbone`: 2,000 events of ~200 bytes in 3 parameters,
//!   sent concurrently (512 in flight) through one `Producer` on
//!   `SqliteStreamChannel` + `SqliteStore` in one file: batches of up to
//!   256, each one `BEGIN IMMEDIATE` transaction with the payload rows and
//!   the entries.
//! * `produce/raw-sqlx`: the same rows (3 payload rows and 1 entry per
//!   event, same sizes) in batches of 256, each one `BEGIN IMMEDIATE`
//!   transaction of single-row inserts: what one writes by hand.
//! * `end-to-end/*`: produce 2,000, then consume them in a group until all
//!   are acknowledged; raw: a reader that selects the next 256 entries past
//!   its position, their payload rows, and moves its position in one
//!   transaction (no pending list, no redelivery).

mod sql_workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::sqlite::sqlx::{self, Row, SqlitePool};
use event_backbone::sqlite::{Sqlite, SqliteConfig, SqliteStore, SqliteStreamChannel};
use event_backbone::{KeyValueStore, StreamChannel};
use sql_workload::*;

const EVENTS: usize = 2_000;
const BATCH: usize = 256;

struct Bench {
    sqlite: Sqlite,
}

impl Bench {
    fn parts(&self) -> (Arc<dyn StreamChannel>, Arc<dyn KeyValueStore>) {
        (
            Arc::new(SqliteStreamChannel::new(&self.sqlite)),
            Arc::new(SqliteStore::new(&self.sqlite)),
        )
    }

    fn pool(&self) -> &SqlitePool {
        self.sqlite.pool()
    }

    async fn raw_tables(&self) {
        for sql in [
            "CREATE TABLE IF NOT EXISTS raw_entries (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, metadata BLOB NOT NULL)",
            "CREATE INDEX IF NOT EXISTS raw_entries_stream ON raw_entries (stream, id)",
            "CREATE TABLE IF NOT EXISTS raw_payloads (key TEXT, field TEXT, value BLOB, PRIMARY KEY (key, field)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS raw_position (reader TEXT PRIMARY KEY, last INTEGER NOT NULL)",
        ] {
            sqlx::query(sql).execute(self.pool()).await.unwrap();
        }
    }

    async fn produce_raw(&self, stream: &str) {
        let metadata = vec![7u8; 160];
        for batch in (0..EVENTS).collect::<Vec<_>>().chunks(BATCH) {
            let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
            for i in batch {
                let p = payload(*i);
                let key = format!("{stream}:order_placed:v0:normal:{i}");
                for (field, value) in [
                    ("customer", p.customer.into_bytes()),
                    ("product", p.product.into_bytes()),
                    ("quantity", p.quantity.to_le_bytes().to_vec()),
                ] {
                    sqlx::query("INSERT INTO raw_payloads (key, field, value) VALUES (?1, ?2, ?3)")
                        .bind(&key)
                        .bind(field)
                        .bind(value)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
            }
            for _ in batch {
                sqlx::query("INSERT INTO raw_entries (stream, metadata) VALUES (?1, ?2)")
                    .bind(stream)
                    .bind(&metadata)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
    }

    async fn consume_raw(&self, stream: &str) {
        sqlx::query("INSERT OR IGNORE INTO raw_position VALUES (?1, 0)")
            .bind(stream)
            .execute(self.pool())
            .await
            .unwrap();
        let mut read = 0;
        while read < EVENTS {
            let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
            let rows = sqlx::query(
                "SELECT id, metadata FROM raw_entries WHERE stream = ?1
                 AND id > (SELECT last FROM raw_position WHERE reader = ?1) ORDER BY id LIMIT 256",
            )
            .bind(stream)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            let Some(last) = rows.last().map(|r| r.get::<i64, _>(0)) else {
                continue;
            };
            for n in 0..rows.len() {
                let key = format!("{stream}:order_placed:v0:normal:{}", read + n);
                let fields = sqlx::query("SELECT field, value FROM raw_payloads WHERE key = ?1")
                    .bind(&key)
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                assert_eq!(fields.len(), 3);
            }
            sqlx::query("UPDATE raw_position SET last = ?2 WHERE reader = ?1")
                .bind(stream)
                .bind(last)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            read += rows.len();
        }
    }
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!(
        "event-backbone-bench-sqlite-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let bench = rt.block_on(async {
        let sqlite = Sqlite::open(SqliteConfig::file(dir.join("bench.db")))
            .await
            .unwrap();
        let bench = Bench { sqlite };
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

    rt.block_on(bench.sqlite.close());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(sqlite_benches, benches);

fn main() {
    sqlite_benches();
    Criterion::default().configure_from_args().final_summary();
}
