//! Observability: what producers and consumers tell about their work.
//!
//! * **Spans**, with [`tracing`], always on (a span no subscriber listens
//!   to costs a level check): `send` per message and `send_batch` per
//!   backend round trip on the producer; `fetch` per batch of payloads,
//!   `process` per delivery, `ack` per acknowledgement round and
//!   `dead_letter` per dead letter on the consumer. Their attributes follow
//!   the OpenTelemetry messaging conventions ([`names`]); none carries
//!   payload bytes or personal data.
//! * **Sampling** decides what spans cost: a span's attributes are
//!   recorded only when no OpenTelemetry sampler decides about it or the
//!   sampler keeps it, so with one trace in ten sampled, nine messages in
//!   ten build no attributes (the span itself, its name and its context
//!   are still made). A `fmt` layer beside an OpenTelemetry one sees the
//!   attributes of sampled spans only.
//! * **Trace context**, behind the `opentelemetry` feature (with a
//!   [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry)
//!   layer): a send writes the context of its span into the message's
//!   `traceparent` (and the `tracestate` header) unless the caller set one,
//!   and a consumer's `process` span takes it as its parent, so a trace
//!   runs from the producer through the stream into the handler and on
//!   into the handler's own sends, across processes and backends.
//! * **Metrics**, through the [`metrics`](https://docs.rs/metrics) facade:
//!   install a recorder (Prometheus, StatsD, OpenTelemetry, ...) before
//!   building producers and consumers; without one, nothing is recorded
//!   and nothing is paid. Consumer lag and pending are gauges sampled from
//!   [`StreamChannel::info`](crate::StreamChannel::info) at the interval
//!   given to
//!   [`ConsumerBuilder::sample_lag_every`](crate::ConsumerBuilder::sample_lag_every).

pub(crate) mod instruments;
pub(crate) mod lag;
pub mod names;
pub(crate) mod spans;
#[cfg(feature = "opentelemetry")]
pub mod trace_context;

/// `error.type` of a handler's failure.
pub(crate) const HANDLER_ERROR: &str = "handler";
