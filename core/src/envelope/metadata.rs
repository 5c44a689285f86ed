use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{MessageId, SegmentClass};

/// Whether a message is an original or a copy of another one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Origin {
    /// Produced here.
    #[default]
    Original,
    /// A copy (forwarded, dead-lettered, migrated) of the original message.
    Copy {
        /// The id of the original message.
        original: MessageId,
    },
}

/// Where the bytes of one segment live.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentLocation {
    /// In a key-value store: the logical store name and the payload key.
    Stored {
        /// Logical store name (`default`, or the class it was routed for).
        store: String,
        /// Payload key; the field is the segment name.
        key: String,
    },
    /// In the metadata itself (a producer without a store, or a dead letter
    /// carrying raw bytes).
    Inline(Bytes),
}

impl std::fmt::Debug for SegmentLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentLocation::Stored { store, key } => {
                write!(f, "Stored {{ store: {store:?}, key: {key:?} }}")
            }
            SegmentLocation::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
        }
    }
}

/// One entry of the segment index: a segment's name, class and location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// The segment (parameter) name.
    pub name: String,
    /// Its class.
    pub class: SegmentClass,
    /// Where its bytes are.
    pub location: SegmentLocation,
}

/// What travels in the stream: everything about a message except its payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Time-ordered id of the message.
    pub message_id: MessageId,
    /// The operation (event) name.
    pub operation: String,
    /// The operation version.
    pub version: u32,
    /// The uri of the stream.
    pub uri: String,
    /// The environment of the stream.
    pub environment: Option<String>,
    /// When it was produced, in milliseconds since the Unix epoch.
    pub produced_at_ms: u64,
    /// Original, or a copy of another message.
    pub origin: Origin,
    /// Content type of the segments' encoding (see `Codec`).
    pub content_type: String,
    /// Correlation id (ties a conversation together).
    pub correlation_id: Option<String>,
    /// Causation id (the message that caused this one).
    pub causation_id: Option<String>,
    /// W3C trace context `traceparent`.
    pub traceparent: Option<String>,
    /// Free headers.
    pub headers: BTreeMap<String, String>,
    /// The segment index.
    pub segments: Vec<SegmentRef>,
}

impl Metadata {
    /// The index entry of one segment.
    pub fn segment(&self, name: &str) -> Option<&SegmentRef> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// The distinct (store, key) pairs holding this message's payload.
    pub fn payload_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for s in &self.segments {
            if let SegmentLocation::Stored { store, key } = &s.location {
                if !seen.iter().any(|(st, k)| *st == store && *k == key) {
                    seen.push((store, key));
                }
            }
        }
        seen.into_iter()
    }
}
