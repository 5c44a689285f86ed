//! The group-less reader: a topic's partitions and watermarks, offsets at
//! a time, and reads of partition ranges, for replay and lookups by id.
//! Every function here blocks; the channel calls them through
//! `Kafka::with_reader`, on the blocking pool.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use event_backbone_core::{Entry, Result, StreamPosition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::entry::{self, position};
use crate::error::backend;

/// Where a replay starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ReplayStart {
    /// The first entry of every partition.
    Start,
    /// The first entry at or after this time (ms) in every partition.
    Time(u64),
    /// An entry (partition, offset), itself included or not.
    Entry { at: (i32, i64), after: bool },
}

impl ReplayStart {
    /// The start of a replay from a stream position.
    pub(crate) fn of(from: &StreamPosition) -> Result<Self> {
        Ok(match from {
            StreamPosition::Start => Self::Start,
            StreamPosition::Time(ms) => Self::Time(*ms),
            StreamPosition::From(id) => Self::Entry {
                at: position(id)?,
                after: false,
            },
            StreamPosition::After(id) => Self::Entry {
                at: position(id)?,
                after: true,
            },
        })
    }
}

/// Up to `count` entries from `from` up to and including `to`, in replay
/// order: partition after partition, each in offset order, so that pages
/// that go on `After` the last entry are exact without the broker's time
/// index.
pub(crate) fn replay(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    from: ReplayStart,
    to: Option<(i32, i64)>,
    count: usize,
) -> Result<Vec<Entry>> {
    let Some(ps) = partitions(reader, config, topic)? else {
        return Ok(Vec::new());
    };
    let marks = watermarks(reader, config, topic, &ps)?;
    let starts: HashMap<i32, i64> = match from {
        ReplayStart::Start => marks.iter().map(|&(p, low, _)| (p, low)).collect(),
        ReplayStart::Time(ms) => offsets_at(reader, config, topic, &marks, ms)?,
        ReplayStart::Entry { at: (p, o), after } => {
            // Earlier partitions are done, later ones start from their
            // beginning.
            let first = if after { o + 1 } else { o };
            marks
                .iter()
                .map(|&(q, low, high)| {
                    let start = match q.cmp(&p) {
                        std::cmp::Ordering::Less => high,
                        std::cmp::Ordering::Greater => low,
                        std::cmp::Ordering::Equal => first,
                    };
                    (q, start)
                })
                .collect()
        }
    };
    let bounds: Vec<(i32, i64, i64)> = marks
        .iter()
        .filter_map(|&(p, low, high)| {
            let start = starts.get(&p)?.max(&low);
            let end = match to {
                Some((tp, to_o)) if tp == p => high.min(to_o + 1),
                Some((tp, _)) if p > tp => *start,
                _ => high,
            };
            Some((p, *start, end))
        })
        .collect();
    let mut read = read_partitions(reader, config, topic, &bounds, count)?;
    if let ReplayStart::Time(ms) = from {
        // Whatever the broker's time index says, nothing earlier.
        read.retain(|(ts, ..)| *ts >= ms as i64);
    }
    read.sort_by_key(|(_, p, o, _)| (*p, *o));
    read.truncate(count);
    Ok(read.into_iter().map(|(.., e)| e).collect())
}

/// The entry at `offset` of `partition`, if the topic holds it.
pub(crate) fn lookup(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    (p, o): (i32, i64),
) -> Result<Option<Entry>> {
    let Some(ps) = partitions(reader, config, topic)? else {
        return Ok(None);
    };
    if !ps.contains(&p) {
        return Ok(None);
    }
    let marks = watermarks(reader, config, topic, &[p])?;
    let (_, low, high) = marks[0];
    if o < low || o >= high {
        return Ok(None);
    }
    let found = read_partitions(reader, config, topic, &[(p, o, o + 1)], 1)?;
    Ok(found
        .into_iter()
        .find(|(_, fp, fo, _)| *fp == p && *fo == o)
        .map(|(.., e)| e))
}

/// Partitions of a topic, `None` if it does not exist.
pub(crate) fn partitions(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
) -> Result<Option<Vec<i32>>> {
    let metadata = reader
        .fetch_metadata(Some(topic), config.timeout)
        .map_err(|e| backend(format!("reading the metadata of topic {topic:?}"), e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None => {}
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(None),
        Some(e) => {
            return Err(backend(
                format!("reading the metadata of topic {topic:?}"),
                KafkaError::MetadataFetch(e.into()),
            ))
        }
    }
    if t.partitions().is_empty() {
        return Ok(None);
    }
    let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ps.sort_unstable();
    Ok(Some(ps))
}

/// (low, high) watermarks of each partition.
pub(crate) fn watermarks(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64, i64)>> {
    partitions
        .iter()
        .map(
            |&p| match reader.fetch_watermarks(topic, p, config.timeout) {
                Ok((low, high)) => Ok((p, low, high)),
                // A topic created a moment ago, not yet known to every client:
                // it is empty.
                Err(e)
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::UnknownPartition
                                | RDKafkaErrorCode::UnknownTopicOrPartition
                        )
                    ) =>
                {
                    Ok((p, 0, 0))
                }
                Err(e) => Err(backend(format!("reading the offsets of {topic:?}/{p}"), e)),
            },
        )
        .collect()
}

/// The first offset at or after `ms` in each partition (the high watermark
/// where there is none).
fn offsets_at(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    marks: &[(i32, i64, i64)],
    ms: u64,
) -> Result<HashMap<i32, i64>> {
    let mut query = TopicPartitionList::new();
    for &(p, _, _) in marks {
        query
            .add_partition_offset(topic, p, Offset::Offset(ms as i64))
            .map_err(|e| backend("preparing a time lookup", e))?;
    }
    let found = reader
        .offsets_for_times(query, config.timeout)
        .map_err(|e| backend(format!("finding offsets by time in {topic:?}"), e))?;
    let mut out = HashMap::new();
    for &(p, _, high) in marks {
        let offset = found
            .find_partition(topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(high);
        out.insert(p, offset);
    }
    Ok(out)
}

/// Reads, without a group, the records of each partition from its start
/// offset up to (excluding) its end offset; at most `limit` per partition.
fn read_partitions(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    bounds: &[(i32, i64, i64)],
    limit: usize,
) -> Result<Vec<(i64, i32, i64, Entry)>> {
    read_records(reader, config, topic, bounds, limit, |m| entry::entry(m))
}

/// Like `read_partitions`, each record made into a `T` by `read`: (time,
/// partition, offset, T).
pub(crate) fn read_records<T>(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    bounds: &[(i32, i64, i64)],
    limit: usize,
    read: impl Fn(&BorrowedMessage<'_>) -> T,
) -> Result<Vec<(i64, i32, i64, T)>> {
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<i32, (i64, usize)> = HashMap::new();
    for &(p, start, end) in bounds {
        if start < end && limit > 0 {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| backend("preparing a replay", e))?;
            remaining.insert(p, (end, limit));
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    let action = || format!("replaying topic {topic:?}");
    reader
        .assign(&assignment)
        .map_err(|e| backend(action(), e))?;
    let deadline = Instant::now() + config.timeout;
    let result = (|| {
        while !remaining.is_empty() {
            if Instant::now() > deadline {
                // A slow broker: the same read may succeed later.
                return Err(event_backbone_core::Error::transient(
                    crate::BACKEND,
                    action(),
                    format!(
                        "timed out after {:?} with partitions unread",
                        config.timeout
                    ),
                ));
            }
            let Some(polled) = reader.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = polled.map_err(|e| backend(action(), e))?;
            let (p, o) = (m.partition(), m.offset());
            let Some((end, left)) = remaining.get_mut(&p) else {
                continue;
            };
            if o < *end {
                let ts = m.timestamp().to_millis().unwrap_or(0);
                out.push((ts, p, o, read(&m)));
                *left -= 1;
            }
            if o + 1 >= *end || *left == 0 {
                remaining.remove(&p);
            }
        }
        Ok(())
    })();
    let _ = reader.unassign();
    result.map(|()| out)
}
