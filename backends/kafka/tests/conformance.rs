//! The channel suite against a real Kafka-protocol broker, every case by
//! name, twice: topics of one partition (`kafka::...`, the stream is
//! ordered, one member of a group reads at a time) and of four
//! (`kafka-4p::...`, ordered per key, members share the work).
//!
//! The brokers are `KAFKA_EVENT_SOURCE_BROKERS`, or 127.0.0.1:9092;
//! `scripts/test` starts tansu there if nothing answers. A broker that
//! cannot be reached fails every case. Payloads go to the in-memory store:
//! any store goes with any channel.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use event_backbone_core::testkit::Conformance;
use event_backbone_core::StreamChannel;
use event_backbone_kafka::{Kafka, KafkaStreamChannel, BACKEND};

fn suite(name: &str, partitions: u16) -> Conformance {
    Conformance::new(name).channel(move || async move {
        let kafka = Kafka::connect(support::config().partitions(partitions)).await?;
        Ok(Arc::new(KafkaStreamChannel::new(&kafka)) as Arc<dyn StreamChannel>)
    })
}

fn main() -> ExitCode {
    Conformance::run_all([suite(BACKEND, 1), suite(&format!("{BACKEND}-4p"), 4)])
}
