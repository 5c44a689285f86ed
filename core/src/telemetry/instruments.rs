//! The metric handles of a producer target and of a consumer, registered
//! once with the `metrics` recorder installed when they are built (a no-op
//! when none is): a message costs an increment, not a lookup.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, Unit};

use super::names;

/// The labels every metric of one stream (and group) carries.
#[derive(Clone, Debug)]
pub(crate) struct Labels(Vec<Label>);

impl Labels {
    pub(crate) fn producer(system: &'static str, stream: &str) -> Self {
        Self(vec![
            Label::from_static_parts(names::SYSTEM, system),
            Label::new(names::DESTINATION, stream.to_owned()),
        ])
    }

    pub(crate) fn consumer(system: &'static str, stream: &str, group: &str) -> Self {
        let mut labels = Self::producer(system, stream);
        labels
            .0
            .push(Label::new(names::CONSUMER_GROUP, group.to_owned()));
        labels
    }

    fn with(&self, key: &'static str, value: &'static str) -> Vec<Label> {
        let mut labels = self.0.clone();
        labels.push(Label::from_static_parts(key, value));
        labels
    }
}

/// What a producer target reports.
#[derive(Debug)]
pub(crate) struct ProducerMetrics {
    labels: Labels,
    sent: Counter,
    duration: Histogram,
    batch: Histogram,
}

impl ProducerMetrics {
    pub(crate) fn new(system: &'static str, stream: &str) -> Self {
        describe();
        let labels = Labels::producer(system, stream);
        Self {
            sent: metrics::counter!(names::SENT_MESSAGES, labels.0.clone()),
            duration: metrics::histogram!(
                names::OPERATION_DURATION,
                labels.with(names::OPERATION_NAME, "send")
            ),
            batch: metrics::histogram!(names::BATCH_MESSAGES, labels.0.clone()),
            labels,
        }
    }

    /// One send, and how long it took.
    pub(crate) fn sent(&self, took: Duration, error: Option<&'static str>) {
        match error {
            None => self.sent.increment(1),
            // Rare: registered when it happens, with its error type.
            Some(kind) => {
                metrics::counter!(
                    names::SENT_MESSAGES,
                    self.labels.with(names::ERROR_TYPE, kind)
                )
                .increment(1);
            }
        }
        self.duration.record(took.as_secs_f64());
    }

    /// One backend round trip of `messages` messages.
    pub(crate) fn batch(&self, messages: usize) {
        self.batch.record(messages as f64);
    }
}

/// What a consumer reports.
#[derive(Debug)]
pub(crate) struct ConsumerMetrics {
    labels: Labels,
    pub(crate) received: Counter,
    pub(crate) handled: Counter,
    pub(crate) failed: Counter,
    pub(crate) dead_lettered: Counter,
    pub(crate) claimed: Counter,
    pub(crate) redelivered: Counter,
    process: Histogram,
    end_to_end: Histogram,
}

impl ConsumerMetrics {
    pub(crate) fn new(system: &'static str, stream: &str, group: &str) -> Self {
        describe();
        let labels = Labels::consumer(system, stream, group);
        let counter = |name: &'static str| metrics::counter!(name, labels.0.clone());
        Self {
            received: counter(names::CONSUMED_MESSAGES),
            handled: counter(names::HANDLED_MESSAGES),
            failed: counter(names::FAILED_MESSAGES),
            dead_lettered: counter(names::DEAD_LETTERED_MESSAGES),
            claimed: counter(names::CLAIMED_MESSAGES),
            redelivered: counter(names::REDELIVERED_MESSAGES),
            process: metrics::histogram!(names::PROCESS_DURATION, labels.0.clone()),
            end_to_end: metrics::histogram!(names::END_TO_END_DURATION, labels.0.clone()),
            labels,
        }
    }

    /// One run of the handler (with its in-place retries).
    pub(crate) fn processed(&self, took: Duration, failed: bool) {
        if failed {
            metrics::histogram!(
                names::PROCESS_DURATION,
                self.labels.with(names::ERROR_TYPE, super::HANDLER_ERROR)
            )
            .record(took.as_secs_f64());
        } else {
            self.process.record(took.as_secs_f64());
        }
    }

    /// A message handled `age` after it was produced.
    pub(crate) fn end_to_end(&self, age: Duration) {
        self.end_to_end.record(age.as_secs_f64());
    }
}

/// The lag and pending gauges of a consumer that samples them (registered
/// only then: a gauge never set would read 0).
#[derive(Debug)]
pub(crate) struct LagGauges {
    pub(crate) lag: Gauge,
    pub(crate) pending: Gauge,
}

impl LagGauges {
    pub(crate) fn new(system: &'static str, stream: &str, group: &str) -> Self {
        let labels = Labels::consumer(system, stream, group);
        Self {
            lag: metrics::gauge!(names::CONSUMER_LAG, labels.0.clone()),
            pending: metrics::gauge!(names::CONSUMER_PENDING, labels.0),
        }
    }
}

/// Units and descriptions, for recorders that export them.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::SENT_MESSAGES,
        Unit::Count,
        "Messages sent by producers"
    );
    describe_histogram!(
        names::OPERATION_DURATION,
        Unit::Seconds,
        "Duration of a send, from the call to the stored entry"
    );
    describe_histogram!(
        names::BATCH_MESSAGES,
        Unit::Count,
        "Messages per backend round trip of a producer"
    );
    describe_counter!(
        names::CONSUMED_MESSAGES,
        Unit::Count,
        "Entries received by consumers"
    );
    describe_histogram!(
        names::PROCESS_DURATION,
        Unit::Seconds,
        "Duration of a handler run"
    );
    describe_counter!(names::HANDLED_MESSAGES, Unit::Count, "Messages handled");
    describe_counter!(
        names::FAILED_MESSAGES,
        Unit::Count,
        "Deliveries whose handler failed"
    );
    describe_counter!(
        names::REDELIVERED_MESSAGES,
        Unit::Count,
        "Failed messages delivered again"
    );
    describe_counter!(
        names::DEAD_LETTERED_MESSAGES,
        Unit::Count,
        "Messages sent to the dead-letter stream"
    );
    describe_counter!(
        names::CLAIMED_MESSAGES,
        Unit::Count,
        "Entries claimed from idle members"
    );
    describe_histogram!(
        names::END_TO_END_DURATION,
        Unit::Seconds,
        "From a message's production to its handling"
    );
    describe_gauge!(
        names::CONSUMER_LAG,
        Unit::Count,
        "Entries not yet delivered to the group"
    );
    describe_gauge!(
        names::CONSUMER_PENDING,
        Unit::Count,
        "Entries delivered to the group and not acknowledged"
    );
}
