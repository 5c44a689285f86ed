//! A message read back from a stream: its entry id, metadata and payload.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::channel::EntryId;
use crate::codec::Codec;
use crate::envelope::{MessageId, Metadata, Segments};
use crate::{Error, Result};

/// A message read back: its entry id, metadata and payload.
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) entry_id: EntryId,
    pub(crate) metadata: Metadata,
    pub(crate) segments: Segments,
}

impl Message {
    /// Assembles a message (used by backends and tests).
    pub fn new(entry_id: EntryId, metadata: Metadata, segments: Segments) -> Self {
        Self {
            entry_id,
            metadata,
            segments,
        }
    }

    /// The entry id in the stream.
    pub fn entry_id(&self) -> &EntryId {
        &self.entry_id
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The message id.
    pub fn message_id(&self) -> MessageId {
        self.metadata.message_id
    }

    /// The operation name.
    pub fn operation(&self) -> &str {
        &self.metadata.operation
    }

    /// The operation version.
    pub fn version(&self) -> u32 {
        self.metadata.version
    }

    /// The payload segments.
    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    /// The raw bytes of one segment.
    pub fn raw_segment(&self, name: &str) -> Option<&Bytes> {
        self.segments.bytes(name)
    }

    /// Segments the index names but the message does not carry: data of
    /// its own class (e.g. `personal`) whose key was erased or expired.
    pub fn erased_segments(&self) -> Vec<&str> {
        self.metadata
            .segments
            .iter()
            .filter(|s| self.segments.get(&s.name).is_none())
            .map(|s| s.name.as_str())
            .collect()
    }

    /// The codec the message was written with.
    pub fn codec(&self) -> Result<Codec> {
        Codec::from_content_type(&self.metadata.content_type)
    }

    /// Decodes one segment; a missing segment is an error naming the
    /// message and the segments it has.
    pub fn segment<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.optional_segment(name)?
            .ok_or_else(|| Error::MissingSegment {
                segment: name.to_owned(),
                operation: self.metadata.operation.clone(),
                message_id: self.metadata.message_id.to_string(),
                available: self.segments.names().map(str::to_owned).collect(),
            })
    }

    /// Decodes one segment, `None` if the message has no segment of that
    /// name.
    pub fn optional_segment<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(bytes) = self.segments.bytes(name) else {
            return Ok(None);
        };
        self.codec()?
            .decode_segment(
                name,
                &self.metadata.operation,
                &self.metadata.message_id.to_string(),
                bytes,
            )
            .map(Some)
    }
}
