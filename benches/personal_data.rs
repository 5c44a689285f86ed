//! Personal data: the cost of sealing (crypto-shredding) per segment and
//! end to end on Redis, against the same workload without a data subject,
//! in the same run.
//!
//! Run with `scripts/bench` (or `cargo bench --features redis --bench
//! personal_data`). The server is `REDIS_EVENT_SOURCE_ENDPOINT` or
//! 127.0.0.1:6379.
//!
//! * `seal/*`: one 100-byte segment sealed and opened through
//!   `event_backbone::privacy`, against AES-256-GCM called directly (the
//!   raw-crypto baseline: the same cipher, key schedule made once, the same
//!   sizes).
//! * `produce/*` and `end-to-end/*`: 10,000 events with one personal
//!   segment (~90 bytes) and two normal ones, over 1,000 data subjects;
//!   `with-subject` names the subject (header, sealing, the vault on the
//!   same Redis), `no-subject` sends the same segments unsealed.
//!   `raw-redis-rs` is the same commands as the Redis bench's baseline.

mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::privacy::{
    open_segment, seal_segment, DataKey, MasterKey, PersonalData, SubjectKey,
};
use event_backbone::redis::{Redis, RedisBuilderExt, RedisHashStore};
use event_backbone::{Consumer, ConsumerContext, HandlerError, MessageId, Producer};
use workload::*;

/// Distinct data subjects in the workload.
const SUBJECTS: usize = 1_000;

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    let key = DataKey::generate();
    let subject = SubjectKey::generate().hash("user-42");
    let message = MessageId::new();
    let plain = vec![7u8; 100];
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("event-backbone/seal-100-bytes", |b| {
        b.iter(|| seal_segment(&key, &subject, &message, "users", "email", &plain))
    });
    let sealed = seal_segment(&key, &subject, &message, "users", "email", &plain);
    group.bench_function("event-backbone/open-100-bytes", |b| {
        b.iter(|| open_segment(&key, &subject, &message, "users", "email", &sealed).unwrap())
    });
    let cipher = Aes256Gcm::new_from_slice(key.expose_bytes()).unwrap();
    let ad = [0u8; 61];
    let mut counter = 0u64;
    group.bench_function("raw-aes-256-gcm/encrypt-100-bytes", |b| {
        b.iter(|| {
            counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_le_bytes());
            let payload = AeadPayload {
                msg: &plain,
                aad: &ad,
            };
            cipher.encrypt(&Nonce::from(nonce), payload).unwrap()
        })
    });
    group.finish();
}

fn personal(redis: &Redis) -> PersonalData {
    PersonalData::on_store(
        Arc::new(RedisHashStore::new(redis)),
        MasterKey::generate(),
        SubjectKey::generate(),
    )
}

async fn produce(producer: &Producer, with_subject: bool) {
    let send = |i: usize| {
        let p = payload(i);
        async move {
            let message = producer
                .message("order_placed")
                .personal("customer", &p.customer)?
                .segment("product", &p.product)?
                .segment("quantity", &p.quantity)?;
            let message = if with_subject {
                message.subject(i % SUBJECTS)
            } else {
                message
            };
            message.send().await
        }
    };
    for r in futures_util::future::join_all((0..EVENTS).map(send)).await {
        r.unwrap();
    }
}

async fn consume(redis: &Redis, stream: &str, personal: &PersonalData) {
    let stats = Consumer::builder()
        .redis(redis)
        .personal_data(personal.clone())
        .uri(stream)
        .group("bench")
        .batch_size(256)
        .concurrency(256)
        .stop_after(EVENTS as u64)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let customer: String = ctx.segment("customer")?;
            std::hint::black_box(customer);
            Ok::<(), HandlerError>(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, EVENTS as u64);
}

fn producer_with(redis: &Redis, stream: &str, personal: &PersonalData) -> Producer {
    Producer::builder()
        .redis(redis)
        .personal_data(personal.clone())
        .uri(stream)
        .build()
        .unwrap()
}

fn end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let (redis, mut raw) = rt.block_on(connect());
    let blob = rt.block_on(metadata_blob(&redis, &mut raw));
    let personal = personal(&redis);

    let mut group = c.benchmark_group("produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, with_subject) in [("with-subject", true), ("no-subject", false)] {
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let stream = unique("personal-produce");
                        let producer = producer_with(&redis, &stream, &personal);
                        let start = Instant::now();
                        produce(&producer, with_subject).await;
                        total += start.elapsed();
                        cleanup(&mut raw, &stream).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("end-to-end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, with_subject) in [("with-subject", true), ("no-subject", false)] {
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let stream = unique("personal-e2e");
                        let producer = producer_with(&redis, &stream, &personal);
                        let start = Instant::now();
                        let consuming = consume(&redis, &stream, &personal);
                        let ((), ()) = tokio::join!(produce(&producer, with_subject), consuming);
                        total += start.elapsed();
                        cleanup(&mut raw, &stream).await;
                    }
                    total
                })
            })
        });
    }
    group.bench_function(BenchmarkId::new("raw-redis-rs", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += raw_end_to_end(&mut raw, &blob, "personal-raw-e2e").await;
                }
                total
            })
        })
    });
    group.finish();
    // The vault's records of the run.
    rt.block_on(cleanup(
        &mut raw,
        event_backbone::privacy::DEFAULT_VAULT_PREFIX,
    ));
}

criterion_group!(personal_benches, seal, end_to_end);

fn main() {
    personal_benches();
    Criterion::default().configure_from_args().final_summary();
}
