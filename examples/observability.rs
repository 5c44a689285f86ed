//! Observability: the shipment-tracking flow with OpenTelemetry traces and
//! Prometheus metrics.
//!
//! * a shop places an order inside a `checkout` span;
//! * group `transit` moves it on (`packing`, `on_delivery`, `on_received`),
//!   each step sent with `caused_by` from inside the handler;
//! * group `report` counts the receptions, with its lag sampled.
//!
//! The spans go to an in-memory OpenTelemetry exporter and are printed as
//! one trace tree: producer, stream, consumer, the consumer's own sends.
//! The metrics go to a Prometheus recorder, scraped once at the end.
//!
//! `cargo run --features opentelemetry --example observability` (in
//! memory), or on Redis: `REDIS_EVENT_SOURCE_ENDPOINT=127.0.0.1:6379 cargo
//! run --features opentelemetry,redis --example observability`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::telemetry::names;
use event_backbone::{
    event_contract, Consumer, ConsumerContext, HandlerError, KeyValueStore, Producer, StreamChannel,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The life of a shipment.
#[event_contract]
pub trait ShipmentTracking {
    /// A customer ordered a product.
    async fn order_placed(&self, #[personal] email: String, product_id: u64);
    /// The warehouse is packing it.
    async fn packing(&self, #[personal] email: String, product_id: u64);
    /// It is on its way.
    async fn on_delivery(&self, #[personal] email: String, product_id: u64);
    /// The customer has it.
    async fn on_received(&self, #[personal] email: String, product_id: u64);
}

/// Group `transit`: each stage causes the next.
struct Transit {
    next: ShipmentTrackingProducer,
}

impl ShipmentTrackingConsumer for Transit {
    async fn order_placed(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
    ) -> Result<(), HandlerError> {
        let next = self.next.caused_by(ctx);
        next.packing(&email, &product_id).await?;
        Ok(())
    }

    async fn packing(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
    ) -> Result<(), HandlerError> {
        let next = self.next.caused_by(ctx);
        next.on_delivery(&email, &product_id).await?;
        Ok(())
    }

    async fn on_delivery(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
    ) -> Result<(), HandlerError> {
        let next = self.next.caused_by(ctx);
        next.on_received(&email, &product_id).await?;
        Ok(())
    }

    async fn on_received(
        &self,
        _: &ConsumerContext,
        _: String,
        _: u64,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Group `report`: counts the receptions.
struct Report(Arc<AtomicUsize>);

impl ShipmentTrackingConsumer for Report {
    async fn order_placed(
        &self,
        _: &ConsumerContext,
        _: String,
        _: u64,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn packing(&self, _: &ConsumerContext, _: String, _: u64) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_delivery(
        &self,
        _: &ConsumerContext,
        _: String,
        _: u64,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_received(
        &self,
        _: &ConsumerContext,
        _: String,
        _: u64,
    ) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Metrics first: handles are registered when producers and consumers
    // are built.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("shipment-tracking")))
        .init();

    let (channel, store) = backend().await?;
    // A stream of its own per run (Redis keeps the last run's).
    let run = event_backbone::MessageId::new().to_string();
    let uri = &format!("shipments.{}", &run[run.len() - 6..]);
    let producer = || -> event_backbone::Result<ShipmentTrackingProducer> {
        Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(uri)
            .build_as()
    };
    let consumer = |group: &str| {
        Consumer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(uri)
            .group(group)
            .block(Duration::from_millis(100))
    };
    let transit = consumer("transit")
        .subscribe(ShipmentTrackingHandler::new(Transit { next: producer()? }))?;
    let received = Arc::new(AtomicUsize::new(0));
    let report = consumer("report")
        .sample_lag_every(Duration::from_millis(50))
        .subscribe(ShipmentTrackingHandler::new(Report(received.clone())))?;

    let checkout = tracing::info_span!("checkout", otel.name = "checkout");
    producer()?
        .order_placed("ann@example.com", &1001)
        .instrument(checkout)
        .await?;
    while received.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    transit.shutdown().await?;
    report.shutdown().await?;
    // Let the last spans (acknowledgements) end.
    tokio::time::sleep(Duration::from_millis(100)).await;

    print_trace(&spans.get_finished_spans()?);
    println!("\n# Prometheus scrape (event-backbone metrics)");
    for line in prometheus.render().lines() {
        // Counters, gauges, and the count and sum of each summary.
        let ours = line.contains("messaging_") || line.contains("event_backbone_");
        if ours && !line.starts_with("# ") && !line.contains("quantile=") {
            println!("{line}");
        }
    }
    Ok(())
}

/// Prints the trace of the `checkout` span as a tree: each span under its
/// parent, with its kind and the attributes that place it.
fn print_trace(spans: &[SpanData]) {
    let Some(root) = spans.iter().find(|s| s.name == "checkout") else {
        println!("no checkout span recorded");
        return;
    };
    let trace = root.span_context.trace_id();
    let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
    for span in spans.iter().filter(|s| s.span_context.trace_id() == trace) {
        children.entry(span.parent_span_id).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_time);
    }
    println!("# trace {trace}");
    print_span(root, &children, 0);
}

fn print_span(span: &SpanData, children: &HashMap<SpanId, Vec<&SpanData>>, depth: usize) {
    let attr = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    let mut placed = Vec::new();
    for (label, key) in [
        ("event", names::EVENT_OPERATION),
        ("group", names::CONSUMER_GROUP),
        ("system", names::SYSTEM),
    ] {
        if let Some(value) = attr(key) {
            placed.push(format!("{label}={value}"));
        }
    }
    println!(
        "{:indent$}{} [{:?}] {}",
        "",
        span.name,
        span.span_kind,
        placed.join(" "),
        indent = depth * 2
    );
    for child in children
        .get(&span.span_context.span_id())
        .into_iter()
        .flatten()
    {
        print_span(child, children, depth + 1);
    }
}

/// The in-memory backend, or Redis when `REDIS_EVENT_SOURCE_ENDPOINT` is
/// set (with the `redis` feature).
async fn backend() -> event_backbone::Result<(Arc<dyn StreamChannel>, Arc<dyn KeyValueStore>)> {
    #[cfg(feature = "redis")]
    if let Ok(endpoint) = std::env::var("REDIS_EVENT_SOURCE_ENDPOINT") {
        use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
        let password = std::env::var("REDIS_EVENT_SOURCE_PASS").ok();
        let redis =
            Redis::connect(RedisConfig::from_endpoint(&endpoint, password.as_deref())?).await?;
        return Ok((
            Arc::new(RedisStreamChannel::new(&redis)),
            Arc::new(RedisHashStore::new(&redis)),
        ));
    }
    Ok((Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new())))
}
