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
//! A record's key is `{group}/{partition}/{offset}` (the entry's), its value
//! `{partition} {offset} {count}` in plain text, and its header `group`
//! names the consumer group (the stream's groups share the topic). Once the
//! group has committed past the entry, the member writes a tombstone (the
//! key without a value), and the topic is created compacted: it holds the
//! counts of entries in flight, not the history of every failure. A record
//! that cannot be read is skipped with a warning; it never stops a
//! consumer.

use std::collections::HashMap;

use event_backbone_core::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::config::KafkaConfig;
use crate::connection::Kafka;
use crate::entry::header;
use crate::error::backend;
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
    format!("{topic}{DELIVERY_COUNTS_SUFFIX}")
}

/// What [`delivery_counts_topic`] appends to a stream's topic.
pub(crate) const DELIVERY_COUNTS_SUFFIX: &str = ".delivery-counts";

/// The counts topic's partition for an entry's partition.
fn partition_for(entry_partition: i32, partitions: i32) -> i32 {
    entry_partition % partitions.max(1)
}

/// The key of an entry's count.
fn key_of(group: &str, (partition, offset): (i32, i64)) -> String {
    format!("{group}/{partition}/{offset}")
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
    let key = key_of(group, (partition, offset));
    let headers = OwnedHeaders::new().insert(Header {
        key: DELIVERY_COUNT_GROUP_HEADER,
        value: Some(group),
    });
    let record = FutureRecord::to(counts_topic)
        .partition(partition_for(partition, counts_partitions))
        .key(&key)
        .payload(&value)
        .headers(headers);
    kafka
        .producer()
        .send(record, kafka.config().timeout)
        .await
        .map(|_| ())
        .map_err(|(e, _)| backend(format!("recording a delivery count in {counts_topic:?}"), e))
}

/// Deletes the counts of entries the group has committed past
/// (tombstones). A failure only leaves an obsolete record behind: it is
/// logged, not returned.
pub(crate) async fn forget(
    kafka: &Kafka,
    counts_topic: &str,
    counts_partitions: i32,
    group: &str,
    entries: &[(i32, i64)],
) {
    let keys: Vec<((i32, i64), String)> = entries
        .iter()
        .map(|&entry| (entry, key_of(group, entry)))
        .collect();
    let sends = keys.iter().map(|&((partition, _), ref key)| {
        let headers = OwnedHeaders::new().insert(Header {
            key: DELIVERY_COUNT_GROUP_HEADER,
            value: Some(group),
        });
        let record = FutureRecord::<String, ()>::to(counts_topic)
            .partition(partition_for(partition, counts_partitions))
            .key(key)
            .headers(headers);
        kafka.producer().send(record, kafka.config().timeout)
    });
    for sent in futures_util::future::join_all(sends).await {
        if let Err((e, _)) = sent {
            tracing::warn!(topic = counts_topic, group, error = %e,
                "deleting an obsolete delivery count failed; the record stays until compacted away");
        }
    }
}

/// One record of the counts topic, as read.
struct Counted {
    key: Option<String>,
    value: Option<Vec<u8>>,
    group: Option<String>,
}

/// The latest count of each entry of `group` on these partitions of the
/// stream (entry partition -> offset -> count), tombstones applied. Blocks.
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
    let mut records = read_records(reader, config, counts_topic, &bounds, usize::MAX, |m| {
        Counted {
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().map(<[u8]>::to_vec),
            group: header(m, DELIVERY_COUNT_GROUP_HEADER),
        }
    })?;
    // In the order written, per partition of the counts topic: a later
    // record (or tombstone) of an entry replaces an earlier one.
    records.sort_unstable_by_key(|&(_, p, o, _)| (p, o));
    for (_, p, o, record) in records {
        // The group is the key's part before its last two `/` (a group name
        // may hold `/` itself); records written before counts were keyed
        // (and keys that cannot be read) name it in their header only.
        let key = record.key.as_deref().and_then(parse_key);
        let of_group = key.map_or(record.group.as_deref(), |(g, ..)| Some(g));
        if of_group != Some(group) {
            continue;
        }
        let parsed = match (&record.value, key) {
            (Some(value), Some((_, partition, offset))) => parse(value)
                .filter(|&(p, o, _)| (p, o) == (partition, offset))
                .map(|(_, _, count)| (partition, offset, Some(count))),
            (Some(value), None) if record.key.is_none() => {
                parse(value).map(|(partition, offset, count)| (partition, offset, Some(count)))
            }
            (None, Some((_, partition, offset))) => Some((partition, offset, None)),
            _ => None,
        };
        let Some((partition, offset, count)) = parsed else {
            tracing::warn!(
                topic = counts_topic,
                partition = p,
                offset = o,
                group,
                "skipping a delivery-count record that cannot be read (expected the value \
                 \"partition offset count\" or a tombstone keyed group/partition/offset)"
            );
            continue;
        };
        if let Some(counts) = out.get_mut(&partition) {
            match count {
                Some(count) => {
                    counts.insert(offset, count);
                }
                None => {
                    counts.remove(&offset);
                }
            }
        }
    }
    Ok(out)
}

/// `{group}/{partition}/{offset}`, a key.
fn parse_key(key: &str) -> Option<(&str, i32, i64)> {
    let mut parts = key.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    Some((parts.next()?, partition, offset))
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
        assert_eq!(key_of("billing", (1, 42)), "billing/1/42");
        assert_eq!(parse_key("billing/1/42"), Some(("billing", 1, 42)));
        assert_eq!(
            parse_key("billing/eu/3/42"),
            Some(("billing/eu", 3, 42)),
            "a group name may hold a slash"
        );
        assert_eq!(parse_key("billing/1/x"), None);
        assert_eq!(parse_key("1/42"), None);
        assert_eq!(parse(b"1 42 3"), Some((1, 42, 3)));
        for bad in [&b""[..], b"1 42", b"1 x 3", b"1 42 -1", b"1 42 3 4"] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(partition_for(5, 4), 1);
        assert_eq!(partition_for(3, 0), 0);
    }
}
