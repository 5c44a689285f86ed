//! The plumbing of a group that is not a member's: its Kafka group id, a
//! client that reads and sets its offsets without joining, the offsets it
//! committed, and the start of a new group at the end of every partition.

use std::collections::HashMap;

use event_backbone_core::Result;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::backend;
use crate::reader::{partitions, watermarks};

/// The Kafka group id of a group of a stream: `{topic}/{group}`. A Kafka
/// group spans the whole cluster; naming it after the topic too makes it a
/// group of one stream, as everywhere else, so that members of the same
/// group name on other streams never take part in its rebalances.
pub fn group_id(topic: &str, group: &str) -> String {
    format!("{topic}/{group}")
}

/// The list of (partition, offset) of a topic, for storing or committing.
pub(crate) fn offsets(
    topic: &str,
    commits: &[(i32, i64)],
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for &(partition, offset) in commits {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}

/// A client of a group (not a member: it never joins), to read and set the
/// group's offsets.
fn group_client(config: &KafkaConfig, topic: &str, group: &str) -> Result<BaseConsumer> {
    let mut c = config.client_config(&[]);
    c.set("group.id", group_id(topic, group))
        .set("enable.auto.commit", "false");
    c.create().map_err(|e| {
        backend(
            format!("reading the offsets of group {group:?} on {topic:?}"),
            e,
        )
    })
}

/// The committed offset of a group on each partition that has one.
pub(crate) fn committed_offsets(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    marks: &[(i32, i64, i64)],
) -> Result<HashMap<i32, i64>> {
    let client = group_client(config, topic, group)?;
    committed_in(&client, config, topic, group, marks)
}

fn committed_in(
    client: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    marks: &[(i32, i64, i64)],
) -> Result<HashMap<i32, i64>> {
    let mut query = TopicPartitionList::new();
    for &(p, _, _) in marks {
        query.add_partition(topic, p);
    }
    let committed = client
        .committed_offsets(query, config.timeout)
        .map_err(|e| {
            backend(
                format!("reading the offsets of group {group:?} on {topic:?}"),
                e,
            )
        })?;
    Ok(committed_map(&committed, topic))
}

/// The partitions of `topic` in a list that have an offset, with it.
pub(crate) fn committed_map(list: &TopicPartitionList, topic: &str) -> HashMap<i32, i64> {
    list.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Starts a new group at the end of every partition (a group from
/// `Latest`): commits each partition's high watermark, unless the group has
/// offsets already (then it exists and is left alone). Blocks.
pub(crate) fn start_at_end(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    group: &str,
) -> Result<()> {
    let action = || format!("starting group {group:?} at the end of topic {topic:?}");
    let Some(ps) = partitions(reader, config, topic)? else {
        return Ok(());
    };
    let marks = watermarks(reader, config, topic, &ps)?;
    let committer = group_client(config, topic, group)?;
    if !committed_in(&committer, config, topic, group, &marks)?.is_empty() {
        return Ok(());
    }
    let ends: Vec<(i32, i64)> = marks.iter().map(|&(p, _, high)| (p, high)).collect();
    let tpl = offsets(topic, &ends).map_err(|e| backend(action(), e))?;
    committer
        .commit(&tpl, CommitMode::Sync)
        .map_err(|e| backend(action(), e))
}
