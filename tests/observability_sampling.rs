//! Sampling: under an OpenTelemetry layer whose sampler drops some traces,
//! a span it drops pays for none of its attributes (a layer beside it,
//! capturing every recorded field, sees no message id on a dropped span),
//! while a span it keeps carries them all; every message carries its trace
//! context, sampled or not, and a consumer's `process` span follows its
//! producer's decision. On the memory backend; a process of its own, for
//! its own global subscriber.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::telemetry::names;
use event_backbone::{event_contract, Consumer, ConsumerContext, HandlerError, Producer};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const MESSAGES: u64 = 60;

/// Orders, one parameter.
#[event_contract]
pub trait Orders {
    /// Placed.
    async fn order_placed(&self, product_id: u64);
}

/// Keeps the trace context and the id of every message it handles.
struct Keep(Arc<Mutex<Vec<(String, String)>>>);

impl OrdersConsumer for Keep {
    async fn order_placed(&self, ctx: &ConsumerContext, _: u64) -> Result<(), HandlerError> {
        let metadata = ctx.message().metadata();
        let traceparent = metadata.traceparent.clone().unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push((metadata.message_id.to_string(), traceparent));
        Ok(())
    }
}

/// The message ids recorded as a field of any span, by any means.
struct MessageIds(Arc<Mutex<Vec<String>>>);

struct Collect<'a>(&'a mut Vec<String>);

impl tracing::field::Visit for Collect<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == names::MESSAGE_ID {
            self.0.push(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for MessageIds {
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
}

fn text(span: &SpanData, key: &str) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_the_sampler_drops_records_no_attributes() {
    let exported = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            0.5,
        ))))
        .with_simple_exporter(exported.clone())
        .build();
    let ids = Arc::new(Mutex::new(Vec::new()));
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tests")))
        .with(MessageIds(ids.clone()))
        .init();

    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(MemoryStore::new());
    let uri = "sampling.orders";
    let producer: OrdersProducer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .build_as()
        .unwrap();
    // Outside any span: each send is the root of its trace, half sampled.
    for product in 0..MESSAGES {
        producer.order_placed(&product).await.unwrap();
    }
    let handled = Arc::new(Mutex::new(Vec::new()));
    let consumer = Consumer::builder()
        .channel(channel)
        .store(store)
        .uri(uri)
        .group("sampling")
        .block(Duration::from_millis(50))
        .stop_after(MESSAGES)
        .subscribe(OrdersHandler::new(Keep(handled.clone())))
        .unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(30), consumer.completion())
        .await
        .expect("every message handled within 30 s")
        .unwrap();
    assert_eq!(stats.handled, MESSAGES);
    drop(producer);
    // Every message carries its context; its flags say the sampler's word.
    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled.len(), MESSAGES as usize);
    let mut sampled = BTreeSet::new();
    for (id, traceparent) in &handled {
        assert_eq!(traceparent.len(), 55, "{id} carries no trace context");
        if traceparent.ends_with("-01") {
            sampled.insert(id.clone());
        } else {
            assert!(traceparent.ends_with("-00"), "{traceparent}");
        }
    }

    // A process span ends as its delivery's last handle drops, which may
    // be a moment after the consumer completes.
    let process_span = format!("process {uri}");
    event_backbone::testkit::eventually("every sampled process span ends", || {
        let ended = exported
            .get_finished_spans()
            .unwrap()
            .iter()
            .filter(|s| s.name == process_span)
            .count();
        let sampled = sampled.len();
        async move { ended >= sampled }
    })
    .await;
    let spans = exported.get_finished_spans().unwrap();
    let named = |name: &str| -> Vec<&SpanData> {
        let name = format!("{name} {uri}");
        spans.iter().filter(|s| s.name == name).collect()
    };
    let (sends, processes) = (named("send"), named("process"));
    assert!(
        !sends.is_empty() && sends.len() < MESSAGES as usize,
        "half the sends sampled, not {} of {MESSAGES}",
        sends.len()
    );

    // The kept sends and processes carry their attributes and are exactly
    // the sampled messages'; a process is its send's child.
    let ids_of = |spans: &[&SpanData]| -> BTreeSet<String> {
        spans.iter().map(|s| text(s, names::MESSAGE_ID)).collect()
    };
    assert_eq!(ids_of(&sends), sampled);
    assert_eq!(ids_of(&processes), sampled);
    for send in &sends {
        assert_eq!(send.span_kind, SpanKind::Producer);
        assert_eq!(text(send, names::SYSTEM), "memory");
        assert_eq!(text(send, names::EVENT_OPERATION), "order_placed");
    }
    for process in &processes {
        let id = text(process, names::MESSAGE_ID);
        let send = sends
            .iter()
            .find(|s| text(s, names::MESSAGE_ID) == id)
            .unwrap();
        assert_eq!(process.parent_span_id, send.span_context.span_id());
        assert_eq!(text(process, names::CONSUMER_GROUP), "sampling");
    }

    // A kept fetch links only to the kept sends (a link to a span never
    // exported would lead nowhere).
    let send_ids: Vec<_> = sends.iter().map(|s| s.span_context.span_id()).collect();
    for fetch in named("fetch") {
        for link in fetch.links.iter() {
            assert!(
                send_ids.contains(&link.span_context.span_id()),
                "a fetch links to a send the sampler dropped"
            );
        }
    }

    // No span the sampler dropped recorded a message id: the only ones
    // recorded are the kept sends' and processes'.
    let recorded: Vec<String> = ids.lock().unwrap().clone();
    assert_eq!(
        recorded.len(),
        2 * sampled.len(),
        "message ids recorded on {} spans, for {} sampled messages",
        recorded.len(),
        sampled.len()
    );
    let recorded: BTreeSet<String> = recorded.into_iter().collect();
    assert_eq!(recorded, sampled);
}
