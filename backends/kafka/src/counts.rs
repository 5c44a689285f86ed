//! Delivery counts that outlive a member: the topic `{topic}.delivery-counts`.
//!
//! Kafka keeps one committed offset per partition and nothing per record, so
//! a member that counts a redelivery (a handler failed) appends the new count
//! to this topic, on the partition of the same number as the entry's, before
//! the handler runs again. Whoever is given the partition next (the same
//! member after a restart, another after a rebalance) reads that partition of
//! the counts topic first and goes on counting from there: a poison message
//! reaches `max_deliveries` and the dead-letter topic even when every
//! delivery crashes the process. Only failures write here; a first delivery
//! costs nothing.
//!
//! A record's value is `{partition} {offset} {count}` in plain text (the
//! entry's partition and offset) and its header `group` names the consumer
//! group (the stream's groups share the topic).

use std::collections::HashMap;

use event_backbone_core::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::config::KafkaConfig;
use crate::connection::Kafka;
use crate::entry::header;
use crate::error::{backend, protocol};
use crate::reader::{partitions, read_records};

/// The header naming the group of a count.
pub const DELIVERY_COUNT_GROUP_HEADER: &str = "group";

/// The topic holding the delivery counts of a stream's topic.
///
/// ```
/// assert_eq!(
///     event_backbone_kafka::delivery_counts_topic("prod.orders"),
///     "prod.orders.delivery-counts"
/// );
/// ```
pub fn delivery_counts_topic(topic: &str) -> String {
    format!("{topic}.delivery-counts")
}

/// The counts topic's partition for an entry's partition.
fn partition_for(entry_partition: i32, partitions: i32) -> i32 {
    entry_partition % partitions.max(1)
}

/// Appends `count` for the entry at `offset` of `partition`, and waits for
/// the broker to have it.
pub(crate) async fn record(
    kafka: &Kafka,
    counts_topic: &str,
    counts_partitions: i32,
    group: &str,
    (partition, offset): (i32, i64),
    count: u32,
) -> Result<()> {
    let value = format!("{partition} {offset} {count}");
    let headers = OwnedHeaders::new().insert(Header {
        key: DELIVERY_COUNT_GROUP_HEADER,
        value: Some(group),
    });
    let record = FutureRecord::<(), _>::to(counts_topic)
        .partition(partition_for(partition, counts_partitions))
        .payload(&value)
        .headers(headers);
    kafka
        .producer()
        .send(record, kafka.config().timeout)
        .await
        .map(|_| ())
        .map_err(|(e, _)| backend(format!("recording a delivery count in {counts_topic:?}"), e))
}

/// The latest count of each entry of `group` on these partitions of the
/// stream (entry partition -> offset -> count). Blocks.
pub(crate) fn load(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    counts_topic: &str,
    group: &str,
    entry_partitions: &[i32],
) -> Result<HashMap<i32, HashMap<i64, u32>>> {
    let mut out: HashMap<i32, HashMap<i64, u32>> = entry_partitions
        .iter()
        .map(|&p| (p, HashMap::new()))
        .collect();
    let Some(ps) = partitions(reader, config, counts_topic)? else {
        return Ok(out);
    };
    let n = ps.len() as i32;
    let wanted: Vec<i32> = {
        let mut w: Vec<i32> = entry_partitions
            .iter()
            .map(|&p| partition_for(p, n))
            .collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    // The topic exists (it has partitions): a partition the client does not
    // know yet is a transient error here, not an empty partition.
    let bounds: Vec<(i32, i64, i64)> = wanted
        .iter()
        .map(|&p| {
            reader
                .fetch_watermarks(counts_topic, p, config.timeout)
                .map(|(low, high)| (p, low, high))
                .map_err(|e| backend(format!("reading the offsets of {counts_topic:?}/{p}"), e))
        })
        .collect::<Result<_>>()?;
    let records = read_records(reader, config, counts_topic, &bounds, usize::MAX, |m| {
        let mine = header(m, DELIVERY_COUNT_GROUP_HEADER).as_deref() == Some(group);
        mine.then(|| m.payload().map(<[u8]>::to_vec)).flatten()
    })?;
    for (.., value) in records {
        let Some(value) = value else { continue };
        let (partition, offset, count) = parse(&value).ok_or_else(|| {
            protocol(
                format!("reading the delivery counts of group {group:?} in {counts_topic:?}"),
                format!(
                    "a record holds {:?}, expected \"partition offset count\"",
                    String::from_utf8_lossy(&value)
                ),
            )
        })?;
        if let Some(counts) = out.get_mut(&partition) {
            let c = counts.entry(offset).or_insert(0);
            *c = (*c).max(count);
        }
    }
    Ok(out)
}

fn parse(value: &[u8]) -> Option<(i32, i64, u32)> {
    let mut parts = std::str::from_utf8(value).ok()?.split(' ');
    let partition = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    let count = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((partition, offset, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_and_bad_ones_are_none() {
        assert_eq!(parse(b"1 42 3"), Some((1, 42, 3)));
        for bad in [&b""[..], b"1 42", b"1 x 3", b"1 42 -1", b"1 42 3 4"] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(partition_for(5, 4), 1);
        assert_eq!(partition_for(3, 0), 0);
    }
}
