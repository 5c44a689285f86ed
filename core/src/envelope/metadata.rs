use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::SubjectHash;
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
    /// Where producers put payloads: in the store for the segment's class
    /// (the store registered under the class name, else the default store),
    /// under the standard payload key of the message
    /// (`{stream}:{operation}:v{version}:{class}:{message-id}`, see
    /// [`Metadata::standard_payload_key`]). Nothing to repeat per segment.
    Standard,
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
            SegmentLocation::Standard => f.write_str("Standard"),
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
    /// The data subject whose personal data the message holds, as its
    /// keyed hash (never the id): set by the producer from the message's
    /// [`subject`](crate::MessageBuilder::subject), and only by it
    /// ([`crate::privacy`]). Format 1 carried it in the header
    /// [`SUBJECT_HEADER`](crate::privacy::SUBJECT_HEADER); such messages
    /// are read with it here.
    pub subject: Option<SubjectHash>,
}

/// The header holding a message's partition key: messages with the same
/// key keep their order (the Kafka record key, and the lanes of a consumer
/// with [`Ordering::PerKey`](crate::Ordering::PerKey)).
pub const PARTITION_KEY_HEADER: &str = "partition-key";

impl Metadata {
    /// The partition key, if the message has one (header
    /// [`PARTITION_KEY_HEADER`]).
    pub fn partition_key(&self) -> Option<&str> {
        self.headers.get(PARTITION_KEY_HEADER).map(String::as_str)
    }

    /// The id of the original message: this message's own id, or for a
    /// copy (a dead letter, a forwarded message) the id it is a copy of.
    pub fn original_id(&self) -> MessageId {
        match &self.origin {
            Origin::Copy { original } => *original,
            Origin::Original => self.message_id,
        }
    }

    /// The index entry of one segment.
    pub fn segment(&self, name: &str) -> Option<&SegmentRef> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// The stream key of the message: `{env}:{uri}` or `{uri}`.
    pub fn stream_key(&self) -> String {
        super::keys::stream_key(self.environment.as_deref(), &self.uri)
    }

    /// The standard payload key of one class of this message.
    pub fn standard_payload_key(&self, class: &SegmentClass) -> String {
        super::keys::key_of(
            self.environment.as_deref(),
            &self.uri,
            &self.operation,
            self.version,
            class,
            &self.message_id,
        )
    }

    /// Where a segment is: (logical store name, key), or `None` when its
    /// bytes are inline.
    pub fn segment_key(&self, segment: &SegmentRef) -> Option<(String, String)> {
        match &segment.location {
            SegmentLocation::Standard => Some((
                segment.class.as_str().to_owned(),
                self.standard_payload_key(&segment.class),
            )),
            SegmentLocation::Stored { store, key } => Some((store.clone(), key.clone())),
            SegmentLocation::Inline(_) => None,
        }
    }

    /// Turns standard locations into explicit ones, so that the segment
    /// index stays true when the message id, uri or operation change (a
    /// copy, a dead letter).
    pub fn pin_locations(&mut self) {
        let pinned: Vec<Option<(String, String)>> = self
            .segments
            .iter()
            .map(|s| match s.location {
                SegmentLocation::Standard => self.segment_key(s),
                _ => None,
            })
            .collect();
        for (segment, pin) in self.segments.iter_mut().zip(pinned) {
            if let Some((store, key)) = pin {
                segment.location = SegmentLocation::Stored { store, key };
            }
        }
    }
}
