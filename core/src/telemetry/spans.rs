//! The spans of the producer and the consumer. Disabled spans (no
//! subscriber, or one that filters them out) cost a level check: their
//! fields are not even computed. Integers are recorded as `i64`, which
//! OpenTelemetry layers export as integer attributes.
//!
//! A span is made with its name and kind only; its attributes (and the
//! links of a batch span) are recorded once its trace context is set, and
//! only when the span is [kept](kept): behind the `opentelemetry` feature,
//! a span an OpenTelemetry sampler drops is never exported, so building
//! its attributes would be work for nothing.

use std::fmt;

use tracing::field::{Empty, Field, Value};
use tracing::Span;

use crate::channel::EntryId;
use crate::envelope::Metadata;

/// The OpenTelemetry span name: `{operation} {stream}`.
struct SpanName<'a>(&'static str, &'a str);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// The OpenTelemetry name of a stream's spans of one kind, made once per
/// producer or consumer for the spans made per message.
pub(crate) fn name(operation: &'static str, stream: &str) -> Box<str> {
    SpanName(operation, stream).to_string().into_boxed_str()
}

/// Whether a span's attributes are worth their cost: a subscriber listens
/// to it and, behind the `opentelemetry` feature, an OpenTelemetry layer's
/// sampler (where one decides) keeps it recording. Asking makes the sampler
/// decide, so a span's parent must be set before; the sampler sees the
/// span's name and kind, not its attributes.
pub(crate) fn kept(span: &Span) -> bool {
    if span.is_disabled() {
        return false;
    }
    #[cfg(feature = "opentelemetry")]
    {
        super::trace_context::recording_or_untraced(span)
    }
    #[cfg(not(feature = "opentelemetry"))]
    true
}

/// Records fields of `span` in one call to its subscriber: `values` name
/// fields declared (as [`Empty`]) one after another, in their order.
fn record_all<const N: usize>(span: &Span, values: [(&str, &dyn Value); N]) {
    let Some(metadata) = span.metadata() else {
        return;
    };
    let fields = metadata.fields();
    let mut declared = fields.iter().skip_while(|f| f.name() != values[0].0);
    let found: [Option<Field>; N] =
        std::array::from_fn(|i| declared.next().filter(|field| field.name() == values[i].0));
    if found.iter().any(Option::is_none) {
        debug_assert!(
            false,
            "fields recorded on {} out of their order",
            metadata.name()
        );
        return;
    }
    let pairs: [(&Field, Option<&dyn Value>); N] =
        std::array::from_fn(|i| (found[i].as_ref().expect("checked above"), Some(values[i].1)));
    span.record_all(&fields.value_set(&pairs));
}

/// One message sent (kind producer), under its [`name`]; its attributes
/// come with [`describe_send`].
pub(crate) fn send(name: &str) -> Span {
    tracing::info_span!(
        "send",
        otel.name = name,
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = Empty,
        messaging.destination.name = Empty,
        messaging.operation.type = Empty,
        messaging.operation.name = Empty,
        messaging.message.id = Empty,
        messaging.message.conversation_id = Empty,
        event_backbone.operation = Empty,
        event_backbone.version = Empty,
        "error.type" = Empty,
    )
}

/// Records the attributes of a [`send`] span from its message's metadata,
/// once its trace context is set and it is known to be [kept](kept).
pub(crate) fn describe_send(span: &Span, system: &'static str, stream: &str, metadata: &Metadata) {
    let id = tracing::field::display(&metadata.message_id);
    record_all(
        span,
        [
            ("messaging.system", &system),
            ("messaging.destination.name", &stream),
            ("messaging.operation.type", &"send"),
            ("messaging.operation.name", &"send"),
            ("messaging.message.id", &id),
            (
                "messaging.message.conversation_id",
                &metadata.correlation_id.as_deref(),
            ),
            ("event_backbone.operation", &metadata.operation.as_str()),
            ("event_backbone.version", &i64::from(metadata.version)),
        ],
    );
}

/// One backend round trip of a producer's batching task (kind client),
/// linked to the kept `send` spans of its messages.
pub(crate) fn send_batch<'a>(
    system: &'static str,
    stream: &str,
    sends: impl ExactSizeIterator<Item = &'a Span>,
) -> Span {
    let span = tracing::info_span!(
        "send_batch",
        otel.name = %SpanName("send_batch", stream),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = Empty,
        messaging.destination.name = Empty,
        messaging.operation.type = Empty,
        messaging.operation.name = Empty,
        messaging.batch.message_count = Empty,
        "error.type" = Empty,
    );
    if kept(&span) {
        record_all(
            &span,
            [
                ("messaging.system", &system),
                ("messaging.destination.name", &stream),
                ("messaging.operation.type", &"send"),
                ("messaging.operation.name", &"send_batch"),
                ("messaging.batch.message_count", &(sends.len() as i64)),
            ],
        );
        for send in sends.filter(|send| kept(send)) {
            span.follows_from(send);
        }
    }
    span
}

/// The payloads of a batch of received entries (kind client), linked to
/// the messages' producers.
pub(crate) fn fetch(
    system: &'static str,
    stream: &str,
    group: &str,
    messages: &[(EntryId, Metadata)],
) -> Span {
    let span = tracing::info_span!(
        "fetch",
        otel.name = %SpanName("fetch", stream),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = Empty,
        messaging.destination.name = Empty,
        messaging.consumer.group.name = Empty,
        messaging.operation.type = Empty,
        messaging.operation.name = Empty,
        messaging.batch.message_count = Empty,
        "error.type" = Empty,
    );
    if kept(&span) {
        record_all(
            &span,
            [
                ("messaging.system", &system),
                ("messaging.destination.name", &stream),
                ("messaging.consumer.group.name", &group),
                ("messaging.operation.type", &"receive"),
                ("messaging.operation.name", &"fetch"),
                ("messaging.batch.message_count", &(messages.len() as i64)),
            ],
        );
        #[cfg(feature = "opentelemetry")]
        for (_, metadata) in messages {
            super::trace_context::link(&span, metadata);
        }
    }
    span
}

/// One delivery of a message to its handler (kind consumer), under its
/// [`name`]; behind the `opentelemetry` feature a child of the producer's
/// span.
pub(crate) fn process(
    name: &str,
    system: &'static str,
    stream: &str,
    group: &str,
    metadata: &Metadata,
    delivery_count: u32,
) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "process",
        otel.name = name,
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = Empty,
        messaging.destination.name = Empty,
        messaging.consumer.group.name = Empty,
        messaging.operation.type = Empty,
        messaging.operation.name = Empty,
        messaging.message.id = Empty,
        messaging.message.conversation_id = Empty,
        event_backbone.operation = Empty,
        event_backbone.version = Empty,
        event_backbone.delivery_count = Empty,
        "error.type" = Empty,
    );
    #[cfg(feature = "opentelemetry")]
    if !span.is_disabled() {
        super::trace_context::adopt(&span, metadata);
    }
    if kept(&span) {
        let id = tracing::field::display(&metadata.message_id);
        record_all(
            &span,
            [
                ("messaging.system", &system),
                ("messaging.destination.name", &stream),
                ("messaging.consumer.group.name", &group),
                ("messaging.operation.type", &"process"),
                ("messaging.operation.name", &"process"),
                ("messaging.message.id", &id),
                (
                    "messaging.message.conversation_id",
                    &metadata.correlation_id.as_deref(),
                ),
                ("event_backbone.operation", &metadata.operation.as_str()),
                ("event_backbone.version", &i64::from(metadata.version)),
                ("event_backbone.delivery_count", &i64::from(delivery_count)),
            ],
        );
    }
    span
}

/// One acknowledgement round trip (kind client).
pub(crate) fn ack(system: &'static str, stream: &str, group: &str, entries: usize) -> Span {
    let span = tracing::info_span!(
        "ack",
        otel.name = %SpanName("ack", stream),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = Empty,
        messaging.destination.name = Empty,
        messaging.consumer.group.name = Empty,
        messaging.operation.type = Empty,
        messaging.operation.name = Empty,
        messaging.batch.message_count = Empty,
        "error.type" = Empty,
    );
    if kept(&span) {
        record_all(
            &span,
            [
                ("messaging.system", &system),
                ("messaging.destination.name", &stream),
                ("messaging.consumer.group.name", &group),
                ("messaging.operation.type", &"settle"),
                ("messaging.operation.name", &"ack"),
                ("messaging.batch.message_count", &(entries as i64)),
            ],
        );
    }
    span
}

/// One dead-letter append (kind producer), under `parent` (the `process`
/// or `fetch` span, or none).
pub(crate) fn dead_letter(
    parent: &Span,
    system: &'static str,
    stream: &str,
    group: &str,
    message_id: Option<&dyn fmt::Display>,
    delivery_count: u32,
) -> Span {
    let span = tracing::info_span!(
        parent: parent,
        "dead_letter",
        otel.name = %SpanName("dead_letter", stream),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = Empty,
        messaging.destination.name = Empty,
        messaging.consumer.group.name = Empty,
        messaging.operation.type = Empty,
        messaging.operation.name = Empty,
        messaging.message.id = Empty,
        event_backbone.delivery_count = Empty,
        "error.type" = Empty,
    );
    if kept(&span) {
        record_all(
            &span,
            [
                ("messaging.system", &system),
                ("messaging.destination.name", &stream),
                ("messaging.consumer.group.name", &group),
                ("messaging.operation.type", &"settle"),
                ("messaging.operation.name", &"dead_letter"),
                (
                    "messaging.message.id",
                    &message_id.map(tracing::field::display),
                ),
                ("event_backbone.delivery_count", &i64::from(delivery_count)),
            ],
        );
    }
    span
}

/// Marks a span failed, with what failed.
pub(crate) fn fail(span: &Span, error_type: &'static str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
}
