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
//! * `paired` (printed after criterion's report, when no filter or a
//!   filter matching `paired` is given): the same end-to-end run with and
//!   without a subject, alternated in pairs (the order swapped every pair)
//!   so that the machine's drift between two groups' measurement windows,
//!   which moves these timings by ±30 % here, hits both alike; each pair's
//!   ratio and their median.

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
use event_backbone::{MessageId, Producer};
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

fn producer_with(redis: &Redis, stream: &str, personal: &PersonalData) -> Producer {
    Producer::builder()
        .redis(redis)
        .personal_data(personal.clone())
        .uri(stream)
        .build()
        .unwrap()
}

/// One end-to-end run (10,000 events produced and consumed on a fresh
/// stream): its time.
async fn end_to_end_once(
    redis: &Redis,
    raw: &mut redis::aio::MultiplexedConnection,
    personal: &PersonalData,
    with_subject: bool,
) -> Duration {
    let stream = unique("personal-e2e");
    let producer = producer_with(redis, &stream, personal);
    let start = Instant::now();
    let consuming = consume_personal(redis, &stream, personal);
    let ((), ()) = tokio::join!(produce(&producer, with_subject), consuming);
    let took = start.elapsed();
    cleanup(raw, &stream).await;
    took
}

/// Pairs of end-to-end runs with and without a subject (see the module
/// docs): prints each pair's ratio and the median.
fn paired(pairs: usize) {
    let rt = runtime();
    let (redis, mut raw) = rt.block_on(connect());
    let personal = personal(&redis);
    let mut ratios: Vec<f64> = rt.block_on(async {
        let mut ratios = Vec::with_capacity(pairs);
        // The first pair warms up (makes the subjects' keys): not counted.
        for pair in 0..=pairs {
            let order = if pair % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            let mut took = [Duration::ZERO; 2];
            for with_subject in order {
                took[usize::from(!with_subject)] =
                    end_to_end_once(&redis, &mut raw, &personal, with_subject).await;
            }
            if pair > 0 {
                let ratio = took[0].as_secs_f64() / took[1].as_secs_f64();
                println!(
                    "paired/end-to-end/{EVENTS}: with subject {:.1} ms, without {:.1} ms, ratio {ratio:.3}",
                    took[0].as_secs_f64() * 1e3,
                    took[1].as_secs_f64() * 1e3,
                );
                ratios.push(ratio);
            }
        }
        cleanup(&mut raw, event_backbone::privacy::DEFAULT_VAULT_PREFIX).await;
        ratios
    });
    ratios.sort_by(f64::total_cmp);
    println!(
        "paired/end-to-end/{EVENTS}: median ratio {:.3} over {pairs} pairs (lowest {:.3}, highest {:.3})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
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
                        total += end_to_end_once(&redis, &mut raw, &personal, with_subject).await;
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
    // Only under `cargo bench` (which passes --bench), and when the filter
    // asks for it or there is none.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let filter = args.iter().find(|a| !a.starts_with("--"));
    if benching && filter.is_none_or(|f| "paired".contains(f.as_str()) || f.contains("paired")) {
        paired(15);
    }
}
