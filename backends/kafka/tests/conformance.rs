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
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{Error, StreamChannel};
use event_backbone_kafka::{topic_of, Kafka, KafkaStreamChannel, BACKEND};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn suite(name: &str, partitions: u16) -> Conformance {
    Conformance::new(name)
        .channel(move || async move {
            let kafka = Kafka::connect(support::config().partitions(partitions)).await?;
            Ok(Arc::new(KafkaStreamChannel::new(&kafka)) as Arc<dyn StreamChannel>)
        })
        .raw_entries(append_raw)
}

/// Writes bytes as a record's value, the way the channel keeps an entry's
/// metadata, without the encoding (the stream's topic exists: the cases
/// create their group first).
async fn append_raw(
    _channel: Arc<dyn StreamChannel>,
    stream: String,
    bytes: Bytes,
) -> event_backbone_core::Result<()> {
    static RAW: OnceLock<FutureProducer> = OnceLock::new();
    let raw = RAW.get_or_init(|| {
        ClientConfig::new()
            .set("bootstrap.servers", support::config().brokers())
            .create()
            .expect("a raw producer")
    });
    let topic = topic_of(&stream)?;
    raw.send(
        FutureRecord::<(), [u8]>::to(&topic).payload(bytes.as_ref()),
        Duration::from_secs(10),
    )
    .await
    .map(|_| ())
    .map_err(|(e, _)| Error::transient(BACKEND, "writing a raw record", e))
}

fn main() -> ExitCode {
    Conformance::run_all([suite(BACKEND, 1), suite(&format!("{BACKEND}-4p"), 4)])
}
