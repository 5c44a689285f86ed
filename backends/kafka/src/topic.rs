//! Stream keys as Kafka topic names.
//!
//! Kafka accepts `[a-zA-Z0-9._-]` in a topic name, at most 249 characters.
//! A stream key `{env}:{uri}` becomes a topic with every `:` replaced by `.`
//! and every other refused character by `_`: `prod:shop/orders` is the topic
//! `prod.shop_orders`, and its dead-letter stream `prod:shop/orders:dead-letter`
//! the topic `prod.shop_orders.dead-letter`. Two stream keys that differ only
//! in such characters share a topic; choose uris that stay distinct.

use event_backbone_core::{Error, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::KafkaConfig;
use crate::counts::DELIVERY_COUNTS_SUFFIX;
use crate::error::backend;
use crate::BACKEND;

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// The topic of a stream key.
///
/// ```
/// use event_backbone_kafka::topic_of;
/// assert_eq!(topic_of("prod:shop/orders")?, "prod.shop_orders");
/// assert_eq!(topic_of("hello.event-sourcing")?, "hello.event-sourcing");
/// assert_eq!(topic_of("événements")?, "_v_nements");
/// # Ok::<(), event_backbone_core::Error>(())
/// ```
pub fn topic_of(stream: &str) -> Result<String> {
    let topic: String = stream
        .chars()
        .map(|c| match c {
            ':' => '.',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN || topic == "." || topic == ".." {
        return Err(Error::permanent(
            BACKEND,
            format!("naming the topic of stream {stream:?}"),
            format!(
                "the topic {topic:?} is not a valid Kafka topic name \
                 (1 to {MAX_TOPIC_LEN} characters, not \".\" or \"..\"); use a shorter uri"
            ),
        ));
    }
    Ok(topic)
}

/// Every topic of the cluster but Kafka's own (`__...`) and the delivery
/// counts' (`*.delivery-counts`), sorted.
pub(crate) fn topics(reader: &BaseConsumer, config: &KafkaConfig) -> Result<Vec<String>> {
    let metadata = reader
        .fetch_metadata(None, config.timeout)
        .map_err(|e| backend("listing the topics", e))?;
    let mut topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|name| !name.starts_with("__") && !name.ends_with(DELIVERY_COUNTS_SUFFIX))
        .map(str::to_owned)
        .collect();
    topics.sort_unstable();
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_streams_get_their_own_topic() {
        assert_eq!(
            topic_of("prod:orders:dead-letter").unwrap(),
            "prod.orders.dead-letter"
        );
    }

    #[test]
    fn overlong_names_are_refused_naming_the_stream() {
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        let err = topic_of(&long).unwrap_err().to_string();
        assert!(err.contains("shorter uri"), "{err}");
        assert!(topic_of(&"x".repeat(MAX_TOPIC_LEN)).is_ok());
    }
}
