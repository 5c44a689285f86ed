//! The write of a batch of records: each enqueued in turn (so the batch's
//! order is the order librdkafka sends them in), then their deliveries
//! awaited in that order. No future per record is polled by a combinator:
//! a delivery is a oneshot receiver, and librdkafka's own thread sends.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::time::Instant;

use crate::entry::Record;

/// How long to wait before enqueueing again when librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// Where one record went: (partition, offset), or why it did not.
pub(crate) type Delivered = Result<(i32, i64), KafkaError>;

/// Sends `records` to `topic`, in order. A full local queue is waited out
/// (the record enqueued again every 10 ms) for at most `queue_timeout`.
/// Once a record could not be enqueued, the records after it are not sent
/// (they fail with the same error): sent later, after it, they keep their
/// order.
pub(crate) async fn send_records(
    producer: &FutureProducer,
    topic: &str,
    records: Vec<Record>,
    queue_timeout: Duration,
) -> Vec<Delivered> {
    let deadline = Instant::now() + queue_timeout;
    let mut enqueued: Vec<Result<DeliveryFuture, KafkaError>> = Vec::with_capacity(records.len());
    let mut refused: Option<KafkaError> = None;
    for Record {
        key,
        value,
        headers,
    } in records
    {
        if let Some(e) = &refused {
            enqueued.push(Err(e.clone()));
            continue;
        }
        let mut record = FutureRecord::to(topic).payload(&value).headers(headers);
        if let Some(key) = &key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    enqueued.push(Ok(delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => {
                    refused = Some(e.clone());
                    enqueued.push(Err(e));
                    break;
                }
            }
        }
    }
    let mut delivered = Vec::with_capacity(enqueued.len());
    for e in enqueued {
        delivered.push(match e {
            Ok(delivery) => match delivery.await {
                Ok(Ok(d)) => Ok((d.partition, d.offset)),
                Ok(Err((e, _))) => Err(e),
                // The producer is held by the caller: librdkafka answers
                // every message it took, if only with an error.
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(e) => Err(e),
        });
    }
    delivered
}
