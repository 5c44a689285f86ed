//! The spans of the producer and the consumer. Disabled spans (no
//! subscriber, or one that filters them out) cost a level check: their
//! fields are not even computed. Integers are recorded as `i64`, which
//! OpenTelemetry layers export as integer attributes.

use std::fmt;

use tracing::field::Empty;
use tracing::Span;

use crate::channel::EntryId;
use crate::envelope::{MessageId, Metadata};

/// The OpenTelemetry span name: `{operation} {stream}`.
struct SpanName<'a>(&'static str, &'a str);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// One message sent (kind producer).
pub(crate) fn send(
    system: &'static str,
    stream: &str,
    message_id: &MessageId,
    (operation, version): (&str, u32),
    correlation_id: Option<&str>,
) -> Span {
    tracing::info_span!(
        "send",
        otel.name = %SpanName("send", stream),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = stream,
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.message.id = %message_id,
        messaging.message.conversation_id = correlation_id,
        event_backbone.operation = operation,
        event_backbone.version = i64::from(version),
        "error.type" = Empty,
    )
}

/// One backend round trip of a producer's batching task (kind client).
pub(crate) fn send_batch(system: &'static str, stream: &str, messages: usize) -> Span {
    tracing::info_span!(
        "send_batch",
        otel.name = %SpanName("send_batch", stream),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = stream,
        messaging.operation.type = "send",
        messaging.operation.name = "send_batch",
        messaging.batch.message_count = messages as i64,
        "error.type" = Empty,
    )
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
        messaging.system = system,
        messaging.destination.name = stream,
        messaging.consumer.group.name = group,
        messaging.operation.type = "receive",
        messaging.operation.name = "fetch",
        messaging.batch.message_count = messages.len() as i64,
        "error.type" = Empty,
    );
    #[cfg(feature = "opentelemetry")]
    if !span.is_disabled() {
        for (_, metadata) in messages {
            super::trace_context::link(&span, metadata);
        }
    }
    span
}

/// One delivery of a message to its handler (kind consumer); behind the
/// `opentelemetry` feature a child of the producer's span.
pub(crate) fn process(
    system: &'static str,
    stream: &str,
    group: &str,
    metadata: &Metadata,
    delivery_count: u32,
) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "process",
        otel.name = %SpanName("process", stream),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = stream,
        messaging.consumer.group.name = group,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.message.id = %metadata.message_id,
        messaging.message.conversation_id = metadata.correlation_id.as_deref(),
        event_backbone.operation = metadata.operation.as_str(),
        event_backbone.version = i64::from(metadata.version),
        event_backbone.delivery_count = i64::from(delivery_count),
        "error.type" = Empty,
    );
    #[cfg(feature = "opentelemetry")]
    if !span.is_disabled() {
        super::trace_context::adopt(&span, metadata);
    }
    span
}

/// One acknowledgement round trip (kind client).
pub(crate) fn ack(system: &'static str, stream: &str, group: &str, entries: usize) -> Span {
    tracing::info_span!(
        "ack",
        otel.name = %SpanName("ack", stream),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = stream,
        messaging.consumer.group.name = group,
        messaging.operation.type = "settle",
        messaging.operation.name = "ack",
        messaging.batch.message_count = entries as i64,
        "error.type" = Empty,
    )
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
    tracing::info_span!(
        parent: parent,
        "dead_letter",
        otel.name = %SpanName("dead_letter", stream),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = stream,
        messaging.consumer.group.name = group,
        messaging.operation.type = "settle",
        messaging.operation.name = "dead_letter",
        messaging.message.id = message_id.map(tracing::field::display),
        event_backbone.delivery_count = i64::from(delivery_count),
        "error.type" = Empty,
    )
}

/// Marks a span failed, with what failed.
pub(crate) fn fail(span: &Span, error_type: &'static str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
}
