//! The names this library reports under: span names, attribute keys and
//! metric names, after the OpenTelemetry messaging semantic conventions
//! where they define one, under `event_backbone.` where they do not.
//!
//! Use them to build dashboards and alerts, or to find spans in tests.

// --- spans (the `tracing` span names; the OpenTelemetry span name is
// `{operation} {stream}`, set through `otel.name`) ---

/// Span: one message sent by a producer (kind producer), from the call to
/// the stored entry. Its context is what the message carries as
/// `traceparent`.
pub const SEND_SPAN: &str = "send";
/// Span: one backend round trip of the producer's batching task (payloads
/// stored, entries appended), linked to the `send` spans of its messages.
pub const SEND_BATCH_SPAN: &str = "send_batch";
/// Span: the payloads (and data keys) of one batch of received entries,
/// fetched in one round per store; linked to the messages' producers.
pub const FETCH_SPAN: &str = "fetch";
/// Span: one delivery of one message to its handler (kind consumer), a
/// child of the producer's `send` span (behind the `opentelemetry`
/// feature; else a root).
pub const PROCESS_SPAN: &str = "process";
/// Span: one acknowledgement round trip.
pub const ACK_SPAN: &str = "ack";
/// Span: one dead-letter append (and the acknowledgement of the original).
pub const DEAD_LETTER_SPAN: &str = "dead_letter";

// --- attributes ---

/// Attribute: the backend of the stream (`redis`, `kafka`, `memory`, ...).
pub const SYSTEM: &str = "messaging.system";
/// Attribute: the stream key.
pub const DESTINATION: &str = "messaging.destination.name";
/// Attribute: `send`, `receive`, `process` or `settle`.
pub const OPERATION_TYPE: &str = "messaging.operation.type";
/// Attribute: what the library did (`send`, `send_batch`, `fetch`,
/// `process`, `ack`, `dead_letter`).
pub const OPERATION_NAME: &str = "messaging.operation.name";
/// Attribute: the consumer group.
pub const CONSUMER_GROUP: &str = "messaging.consumer.group.name";
/// Attribute: the message id.
pub const MESSAGE_ID: &str = "messaging.message.id";
/// Attribute: the correlation id of the message.
pub const CONVERSATION_ID: &str = "messaging.message.conversation_id";
/// Attribute: how many messages a batch operation covers.
pub const BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";
/// Attribute: what failed ([`crate::Error::kind`], or `handler` for a
/// handler's error); absent on success.
pub const ERROR_TYPE: &str = "error.type";
/// Attribute: the event's operation (the contract method).
pub const EVENT_OPERATION: &str = "event_backbone.operation";
/// Attribute: the event's version.
pub const EVENT_VERSION: &str = "event_backbone.version";
/// Attribute: the delivery count of the message in its group.
pub const DELIVERY_COUNT: &str = "event_backbone.delivery_count";

// --- metrics (labels: `messaging.system`, `messaging.destination.name`,
// and for consumers `messaging.consumer.group.name`) ---

/// Counter `{message}`: messages sent; failed sends carry `error.type`.
pub const SENT_MESSAGES: &str = "messaging.client.sent.messages";
/// Histogram `s`: how long a send took, from the call to the stored entry
/// (label `messaging.operation.name` = `send`).
pub const OPERATION_DURATION: &str = "messaging.client.operation.duration";
/// Histogram `{message}`: messages per backend round trip of a producer.
pub const BATCH_MESSAGES: &str = "event_backbone.producer.batch.messages";
/// Counter `{message}`: entries received by a consumer (new, its own
/// pending, claimed); [`ConsumerStats::received`](crate::ConsumerStats::received).
pub const CONSUMED_MESSAGES: &str = "messaging.client.consumed.messages";
/// Histogram `s`: how long the handler took, per delivery (with its
/// in-place retries); failures carry `error.type`.
pub const PROCESS_DURATION: &str = "messaging.process.duration";
/// Counter `{message}`: messages handled; `ConsumerStats::handled`.
pub const HANDLED_MESSAGES: &str = "event_backbone.consumer.handled.messages";
/// Counter `{message}`: deliveries whose handler failed; `ConsumerStats::failed`.
pub const FAILED_MESSAGES: &str = "event_backbone.consumer.failed.messages";
/// Counter `{message}`: failed messages delivered again; `ConsumerStats::redelivered`.
pub const REDELIVERED_MESSAGES: &str = "event_backbone.consumer.redelivered.messages";
/// Counter `{message}`: messages dead-lettered; `ConsumerStats::dead_lettered`.
pub const DEAD_LETTERED_MESSAGES: &str = "event_backbone.consumer.dead_lettered.messages";
/// Counter `{message}`: entries claimed after idling; `ConsumerStats::claimed`.
pub const CLAIMED_MESSAGES: &str = "event_backbone.consumer.claimed.messages";
/// Histogram `s`: from the message's `produced_at` to its handling.
pub const END_TO_END_DURATION: &str = "event_backbone.consumer.end_to_end.duration";
/// Gauge `{message}`: entries not yet delivered to the group, sampled
/// from [`StreamChannel::info`](crate::StreamChannel::info) (see
/// [`ConsumerBuilder::sample_lag_every`](crate::ConsumerBuilder::sample_lag_every)).
pub const CONSUMER_LAG: &str = "event_backbone.consumer.lag";
/// Gauge `{message}`: entries delivered to the group and not acknowledged.
pub const CONSUMER_PENDING: &str = "event_backbone.consumer.pending";
