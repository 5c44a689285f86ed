//! Traces: a message produced inside a span and handled by a consumer gives
//! a `process` span in the same trace, a child of the `send` span, and the
//! handler's own send (through `caused_by`) continues the trace; the spans
//! carry the messaging attributes, and nothing recorded (span, event,
//! field) holds a segment's value or a `#[personal]` one. On the memory
//! backend, on Redis and on Kafka (payloads in Redis), against the real
//! servers (`scripts/start-redis`, `scripts/start-kafka`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
use event_backbone::telemetry::names;
use event_backbone::{
    event_contract, Consumer, ConsumerContext, HandlerError, KeyValueStore, Producer, Replay,
    RetryPolicy, StreamChannel,
};
use opentelemetry::trace::{SpanId, SpanKind, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A personal value and a normal one that must never be recorded.
const EMAIL: &str = "ann.secret-4711@example.com";
const NOTE: &str = "fragile-lamp-note-0815";

/// An order and what follows it.
#[event_contract]
pub trait Orders {
    /// Placed: a personal email and a normal note.
    async fn order_placed(&self, #[personal] email: String, note: String, product_id: u64);
    /// Received, caused by the order.
    async fn on_received(&self, #[personal] email: String, product_id: u64);
}

/// Turns each order into its reception; fails each reception once.
struct Transit {
    next: OrdersProducer,
}

impl OrdersConsumer for Transit {
    async fn order_placed(
        &self,
        ctx: &ConsumerContext,
        email: String,
        _note: String,
        product_id: u64,
    ) -> Result<(), HandlerError> {
        self.next
            .caused_by(ctx)
            .on_received(&email, &product_id)
            .await?;
        Ok(())
    }

    async fn on_received(
        &self,
        ctx: &ConsumerContext,
        _email: String,
        _product_id: u64,
    ) -> Result<(), HandlerError> {
        if ctx.delivery_count() == 1 {
            return Err("the warehouse is busy".into());
        }
        Ok(())
    }
}

/// What the process recorded: the finished OpenTelemetry spans, and every
/// field of every `tracing` span and event, as text.
struct Recorded {
    spans: InMemorySpanExporter,
    fields: Arc<Mutex<Vec<String>>>,
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let fields = Arc::new(Mutex::new(Vec::new()));
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tests")))
            .with(FieldCapture(fields.clone()))
            .init();
        Recorded { spans, fields }
    })
}

/// Records every field value of spans and events.
struct FieldCapture(Arc<Mutex<Vec<String>>>);

struct Collect<'a>(&'a mut Vec<String>);

impl tracing::field::Visit for Collect<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FieldCapture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        attrs.record(&mut Collect(&mut self.0.lock().unwrap()));
    }

    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut Collect(&mut self.0.lock().unwrap()));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        event.record(&mut Collect(&mut self.0.lock().unwrap()));
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

/// Spans by (`messaging.operation.name`, event operation), in end order.
type ByKind = BTreeMap<(String, String), Vec<SpanData>>;

/// The run's spans, and the same by kind.
fn spans_of(stream: &str) -> (Vec<SpanData>, ByKind) {
    let all = recorded().spans.get_finished_spans().unwrap();
    let mut by_kind = ByKind::new();
    let mine: Vec<SpanData> = all
        .into_iter()
        .filter(|s| text(s, names::DESTINATION) == stream || s.name.ends_with(stream))
        .collect();
    for span in &mine {
        let what = text(span, names::OPERATION_NAME);
        let operation = text(span, names::EVENT_OPERATION);
        by_kind
            .entry((what, operation))
            .or_default()
            .push(span.clone());
    }
    (mine, by_kind)
}

fn one<'a>(spans: &'a ByKind, what: &str, operation: &str) -> &'a [SpanData] {
    spans
        .get(&(what.to_owned(), operation.to_owned()))
        .map(Vec::as_slice)
        .unwrap_or_else(|| {
            panic!(
                "no {what:?} span of {operation:?}; recorded: {:?}",
                spans.keys()
            )
        })
}

/// The flow on one channel and store; then the trace is checked.
async fn traced_flow(system: &str, channel: Arc<dyn StreamChannel>, store: Arc<dyn KeyValueStore>) {
    let recorded = recorded();
    let run = event_backbone::MessageId::new().to_string();
    let uri = format!("traces.{system}.{}", &run[run.len() - 12..]);
    let producer = || -> OrdersProducer {
        Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(&uri)
            .build_as()
            .unwrap()
    };
    let transit = Consumer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .group("transit")
        .block(Duration::from_millis(100))
        .retry(RetryPolicy::none())
        .redelivery_backoff(RetryPolicy::exponential(10).initial_delay(Duration::from_millis(20)))
        .stop_after(2)
        .subscribe(OrdersHandler::new(Transit { next: producer() }))
        .unwrap();

    let checkout = tracing::info_span!("checkout", otel.name = format!("checkout {uri}"));
    producer()
        .order_placed(EMAIL, NOTE, &7)
        .instrument(checkout)
        .await
        .unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(60), transit.completion())
        .await
        .expect("the consumer handles both events within a minute")
        .unwrap();
    assert_eq!((stats.handled, stats.failed, stats.redelivered), (2, 1, 1));

    // The spans end as their last handle drops: the ack task may still
    // hold the last one for a moment.
    let stream = uri.clone();
    event_backbone::testkit::eventually("the ack span ends", || {
        let (_, spans) = spans_of(&stream);
        async move { spans.contains_key(&("ack".to_owned(), String::new())) }
    })
    .await;
    let (mine, spans) = spans_of(&uri);

    let checkout = mine
        .iter()
        .find(|s| s.name.starts_with("checkout"))
        .expect("the caller's span");
    let trace = checkout.span_context.trace_id();

    let send = &one(&spans, "send", "order_placed")[0];
    assert_eq!(send.name, format!("send {uri}"));
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(send.span_context.trace_id(), trace);
    assert_eq!(send.parent_span_id, checkout.span_context.span_id());
    assert_eq!(text(send, names::SYSTEM), system);
    assert_eq!(text(send, names::OPERATION_TYPE), "send");
    assert!(!text(send, names::MESSAGE_ID).is_empty());

    let process = &one(&spans, "process", "order_placed")[0];
    assert_eq!(process.name, format!("process {uri}"));
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.span_context.trace_id(), trace, "one trace");
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert!(process.parent_span_is_remote, "parented through the stream");
    assert_eq!(text(process, names::SYSTEM), system);
    assert_eq!(text(process, names::CONSUMER_GROUP), "transit");
    assert_eq!(text(process, names::OPERATION_TYPE), "process");
    assert_eq!(
        text(process, names::MESSAGE_ID),
        text(send, names::MESSAGE_ID)
    );
    assert_eq!(
        attr(process, names::DELIVERY_COUNT),
        Some(&Value::I64(1)),
        "{process:?}"
    );
    assert_eq!(attr(process, names::EVENT_VERSION), Some(&Value::I64(0)));

    // The handler's own send continues the trace, under its process span.
    let next = &one(&spans, "send", "on_received")[0];
    assert_eq!(next.span_context.trace_id(), trace);
    assert_eq!(next.parent_span_id, process.span_context.span_id());
    let received = one(&spans, "process", "on_received");
    assert_eq!(received.len(), 2, "failed once, then handled");
    for delivery in received {
        assert_eq!(delivery.span_context.trace_id(), trace);
        assert_eq!(delivery.parent_span_id, next.span_context.span_id());
    }
    let (failed, handled): (Vec<_>, Vec<_>) = received
        .iter()
        .partition(|s| attr(s, names::ERROR_TYPE).is_some());
    assert_eq!(failed.len(), 1);
    assert_eq!(text(failed[0], names::ERROR_TYPE), "handler");
    assert!(matches!(failed[0].status, Status::Error { .. }));
    assert_eq!(attr(failed[0], names::DELIVERY_COUNT), Some(&Value::I64(1)));
    assert_eq!(
        attr(handled[0], names::DELIVERY_COUNT),
        Some(&Value::I64(2))
    );
    assert_eq!(handled[0].status, Status::Unset);

    // The batch spans link to the messages they carried.
    let linked = |what: &str, to: SpanId| {
        spans
            .get(&(what.to_owned(), String::new()))
            .into_iter()
            .flatten()
            .any(|s| s.links.iter().any(|l| l.span_context.span_id() == to))
    };
    assert!(linked("send_batch", send.span_context.span_id()));
    assert!(linked("fetch", send.span_context.span_id()));
    assert!(linked("fetch", next.span_context.span_id()));
    let ack = &one(&spans, "ack", "")[0];
    assert_eq!(text(ack, names::OPERATION_TYPE), "settle");
    assert_eq!(text(ack, names::CONSUMER_GROUP), "transit");

    // Nothing recorded holds a segment's value.
    let mut everything: Vec<String> = recorded.fields.lock().unwrap().clone();
    for span in &mine {
        everything.push(span.name.to_string());
        everything.extend(span.attributes.iter().map(|kv| kv.value.to_string()));
        for event in span.events.iter() {
            everything.push(event.name.to_string());
            everything.extend(event.attributes.iter().map(|kv| kv.value.to_string()));
        }
    }
    assert!(
        everything.iter().any(|v| v.contains(&uri)),
        "the check sees what was recorded"
    );
    for secret in [EMAIL, NOTE] {
        let leaks: Vec<&String> = everything.iter().filter(|v| v.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret:?} was recorded: {leaks:?}");
    }
}

fn var_or(name: &str, local: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| local.to_owned())
}

async fn redis() -> Redis {
    let config = RedisConfig::from_endpoint(
        &var_or("REDIS_EVENT_SOURCE_ENDPOINT", "127.0.0.1:6379"),
        None,
    )
    .unwrap();
    Redis::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-redis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_producer_to_handler_on_memory() {
    traced_flow(
        "memory",
        Arc::new(MemoryChannel::new()),
        Arc::new(MemoryStore::new()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_producer_to_handler_on_redis() {
    let redis = redis().await;
    traced_flow(
        "redis",
        Arc::new(RedisStreamChannel::new(&redis)),
        Arc::new(RedisHashStore::new(&redis)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_producer_to_handler_on_kafka() {
    let config =
        KafkaConfig::from_brokers(&var_or("KAFKA_EVENT_SOURCE_BROKERS", "127.0.0.1:9092")).unwrap();
    let kafka = Kafka::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-kafka"));
    let redis = redis().await;
    traced_flow(
        "kafka",
        Arc::new(KafkaStreamChannel::new(&kafka)),
        Arc::new(RedisHashStore::new(&redis)),
    )
    .await;
}

/// `caused_by` outside any span (a replay tool re-sending what it read):
/// the new message's send continues the trace of the message it follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caused_by_outside_any_span_continues_the_cause() {
    recorded();
    let channel: Arc<dyn StreamChannel> = Arc::new(MemoryChannel::new());
    let store: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new());
    let uri = "traces.replayed";
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .build()
        .unwrap();
    let first = tracing::info_span!("first");
    producer
        .message("order_placed")
        .send()
        .instrument(first)
        .await
        .unwrap();
    let mut replay = Replay::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .messages()
        .unwrap();
    let original = futures_util::StreamExt::next(&mut replay)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tracing::Span::current().is_none(),
        "no span is current here"
    );
    producer
        .caused_by(&original)
        .message("order_replayed")
        .send()
        .await
        .unwrap();

    let (_, spans) = spans_of(uri);
    let first = &one(&spans, "send", "order_placed")[0];
    let again = &one(&spans, "send", "order_replayed")[0];
    assert_eq!(again.span_context.trace_id(), first.span_context.trace_id());
    assert_eq!(again.parent_span_id, first.span_context.span_id());
    assert!(again.parent_span_is_remote);
    let traceparent = original.metadata().traceparent.clone().unwrap();
    assert!(traceparent.contains(&first.span_context.span_id().to_string()));
}

/// A context that arrived with a `tracestate` (an upstream vendor's
/// entry) travels with the message, in the `tracestate` header, and comes
/// back out of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracestate_travels_with_the_message() {
    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};
    use std::str::FromStr;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    recorded();
    let channel: Arc<dyn StreamChannel> = Arc::new(MemoryChannel::new());
    let store: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new());
    let uri = "traces.tracestate";
    let upstream = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_str("vendor=blue").unwrap(),
    );
    let incoming = tracing::info_span!("incoming");
    incoming
        .set_parent(opentelemetry::Context::new().with_remote_span_context(upstream.clone()))
        .unwrap();
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .build()
        .unwrap();
    producer
        .message("order_placed")
        .send()
        .instrument(incoming)
        .await
        .unwrap();
    let mut replay = Replay::builder()
        .channel(channel)
        .store(store)
        .uri(uri)
        .messages()
        .unwrap();
    let message = futures_util::StreamExt::next(&mut replay)
        .await
        .unwrap()
        .unwrap();
    let metadata = message.metadata();
    assert_eq!(
        metadata
            .headers
            .get(event_backbone::telemetry::trace_context::TRACESTATE_HEADER),
        Some(&"vendor=blue".to_owned())
    );
    let carried = event_backbone::telemetry::trace_context::remote_context(metadata).unwrap();
    assert_eq!(carried.trace_id(), upstream.trace_id());
    assert_ne!(carried.span_id(), upstream.span_id(), "the send's own span");
    assert_eq!(carried.trace_state().get("vendor"), Some("blue"));
    assert!(carried.is_sampled());
}
