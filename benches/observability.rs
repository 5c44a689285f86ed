//! Observability: the Redis produce and end-to-end workloads with no
//! `tracing` subscriber, then under an OpenTelemetry layer (a batch span
//! processor, as in production, into an in-memory exporter emptied after
//! each run), against the raw redis-rs baseline, in the same run.
//! `EB_BENCH_TRACE` picks the layer's sampling: `tenth` (the default, one
//! trace in ten), `tenth-untimed` (the same, the layer keeping no busy and
//! idle times) or `everything`.
//!
//! Run with `scripts/bench` (or `EB_BENCH_TRACE=everything cargo bench
//! --features redis,opentelemetry --bench observability`). The server is
//! `REDIS_EVENT_SOURCE_ENDPOINT` or 127.0.0.1:6379.
//!
//! The runs without a subscriber come first: once a dispatcher exists
//! anywhere in the process, every span callsite asks it, which is not the
//! "nobody listens" case. Then the layer is the global default subscriber,
//! as a service installs it (a scoped one, per thread, costs more at every
//! span).

mod workload;

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use event_backbone::redis::Redis;
use workload::traced::Traced;
use workload::*;

/// One run, timed: 10,000 sends, or 10,000 sends with a consumer reading
/// them at once.
async fn run(
    redis: &Redis,
    raw: &mut redis::aio::MultiplexedConnection,
    consume: bool,
) -> Duration {
    let stream = unique("observability");
    let producer = producer(redis, &stream);
    let start = Instant::now();
    if consume {
        let ((), ()) = tokio::join!(
            produce_with_backbone(&producer, None),
            consume_with_backbone(redis, &stream)
        );
    } else {
        produce_with_backbone(&producer, None).await;
    }
    let took = start.elapsed();
    cleanup(raw, &stream).await;
    took
}

/// `iters` runs, timed, `after_each` (untimed) after each.
async fn runs(
    redis: &Redis,
    raw: &mut redis::aio::MultiplexedConnection,
    consume: bool,
    iters: u64,
    after_each: impl Fn(),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += run(redis, raw, consume).await;
        after_each();
    }
    total
}

/// A workload's benchmark group: 10 samples of `EVENTS` events.
fn workload_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    seconds: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("observability/{name}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(seconds))
        .throughput(Throughput::Elements(EVENTS as u64));
    group
}

const WORKLOADS: [(&str, bool, u64); 2] = [("produce", false, 20), ("end-to-end", true, 30)];

fn overhead(c: &mut Criterion) {
    let plain = runtime();
    let (redis, mut raw) = plain.block_on(connect());
    let blob = plain.block_on(metadata_blob(&redis, &mut raw));

    // Raw and unobserved first, before any dispatcher exists.
    for (name, consume, seconds) in WORKLOADS {
        let mut group = workload_group(c, name, seconds);
        group.bench_function(BenchmarkId::new("raw-redis-rs", EVENTS), |b| {
            b.iter_custom(|iters| {
                plain.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += if consume {
                            raw_end_to_end(&mut raw, &blob, "observability-raw").await
                        } else {
                            raw_produce(&mut raw, &blob).await
                        };
                    }
                    total
                })
            })
        });
        group.bench_function(BenchmarkId::new("no-subscriber", EVENTS), |b| {
            b.iter_custom(|iters| plain.block_on(runs(&redis, &mut raw, consume, iters, || ())))
        });
        group.finish();
    }

    // Then the pipeline `EB_BENCH_TRACE` names, as a service installs
    // one: the process's global default subscriber from here on.
    let (label, traced) = pipeline_from_env();
    tracing::dispatcher::set_global_default(traced.dispatch.clone())
        .expect("no subscriber before this one");
    for (name, consume, seconds) in WORKLOADS {
        let mut group = workload_group(c, name, seconds);
        group.bench_function(BenchmarkId::new(label, EVENTS), |b| {
            b.iter_custom(|iters| {
                let emptied = || traced.spans.reset();
                plain.block_on(runs(&redis, &mut raw, consume, iters, emptied))
            })
        });
        group.finish();
    }
}

/// The OpenTelemetry pipeline `EB_BENCH_TRACE` names (`tenth` unless
/// set), and its benchmark label.
fn pipeline_from_env() -> (&'static str, Traced) {
    match std::env::var("EB_BENCH_TRACE").as_deref() {
        Err(_) | Ok("" | "tenth") => ("sampled-10%", Traced::tenth()),
        Ok("tenth-untimed") => ("sampled-10%-untimed", Traced::tenth_untimed()),
        Ok("everything") => ("opentelemetry-layer", Traced::everything()),
        Ok(other) => panic!("EB_BENCH_TRACE={other:?}: tenth, tenth-untimed or everything"),
    }
}

/// The raw produce baseline once, on a fresh stream (2 pipelines in
/// flight, as in the Redis bench).
async fn raw_produce(raw: &mut redis::aio::MultiplexedConnection, blob: &[u8]) -> Duration {
    let stream = unique("observability-raw");
    let start = Instant::now();
    produce_raw(raw, &stream, blob, 2).await;
    let took = start.elapsed();
    cleanup(raw, &stream).await;
    took
}

criterion_group!(benches, overhead);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
