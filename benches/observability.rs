//! Observability: the Redis produce and end-to-end workloads with no
//! `tracing` subscriber, then with an OpenTelemetry layer recording every
//! span (a batch span processor, as in production, into an in-memory
//! exporter emptied after each run), then with one trace in ten sampled,
//! against the raw redis-rs baseline, in the same run.
//!
//! Run with `scripts/bench` (or `cargo bench --features redis,opentelemetry
//! --bench observability`). The server is `REDIS_EVENT_SOURCE_ENDPOINT` or
//! 127.0.0.1:6379.
//!
//! The runs without a subscriber come first: once a dispatcher exists
//! anywhere in the process, every span callsite asks it, which is not the
//! "nobody listens" case. The observed runs use a runtime whose threads
//! (workers and the caller) have the layer as their default subscriber.

mod workload;

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::redis::Redis;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use workload::*;

/// The OpenTelemetry pipeline of the observed runs.
struct Observed {
    dispatch: Dispatch,
    spans: InMemorySpanExporter,
    _provider: SdkTracerProvider,
}

impl Observed {
    fn new(sampler: Sampler) -> Self {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_batch_exporter(spans.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        Self {
            dispatch: Dispatch::new(subscriber),
            spans,
            _provider: provider,
        }
    }

    /// A runtime like `workload::runtime`, every worker traced.
    fn runtime(&self) -> tokio::runtime::Runtime {
        let dispatch = self.dispatch.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                // For the thread's whole life.
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            })
            .build()
            .unwrap()
    }
}

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

const WORKLOADS: [(&str, bool, u64); 2] = [("produce", false, 20), ("end-to-end", true, 30)];

fn overhead(c: &mut Criterion) {
    let plain = runtime();
    let (redis, mut raw) = plain.block_on(connect());
    let blob = plain.block_on(metadata_blob(&redis, &mut raw));

    // Raw and unobserved first, before any dispatcher exists.
    for (name, consume, seconds) in WORKLOADS {
        let mut group = c.benchmark_group(format!("observability/{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(seconds));
        group.throughput(Throughput::Elements(EVENTS as u64));
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
            b.iter_custom(|iters| {
                plain.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += run(&redis, &mut raw, consume).await;
                    }
                    total
                })
            })
        });
        group.finish();
    }

    // Then every message traced, and one trace in ten (each send is the
    // root of its trace here).
    let everything = Sampler::AlwaysOn;
    let tenth = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1)));
    for (label, sampler) in [("opentelemetry-layer", everything), ("sampled-10%", tenth)] {
        let pipeline = Observed::new(sampler);
        let traced = pipeline.runtime();
        let (redis, mut raw) = traced.block_on(connect());
        for (name, consume, seconds) in WORKLOADS {
            let mut group = c.benchmark_group(format!("observability/{name}"));
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(seconds));
            group.throughput(Throughput::Elements(EVENTS as u64));
            group.bench_function(BenchmarkId::new(label, EVENTS), |b| {
                b.iter_custom(|iters| {
                    tracing::dispatcher::with_default(&pipeline.dispatch, || {
                        traced.block_on(async {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                total += run(&redis, &mut raw, consume).await;
                                pipeline.spans.reset();
                            }
                            total
                        })
                    })
                })
            });
            group.finish();
        }
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
