//! How an entry looks in Kafka: the record value is the encoded metadata,
//! the record key the optional partition key, and headers carry the ids
//! and trace context in plain text. An entry id is `{partition}:{offset}`.

use bytes::Bytes;
use event_backbone_core::envelope::{decode_metadata, encode_metadata};
use event_backbone_core::{Entry, EntryId, Error, MalformedEntry, Metadata, Result};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use crate::BACKEND;

/// Header with the message id, in plain text.
pub const HEADER_MESSAGE_ID: &str = "message_id";
/// Header with the operation name, in plain text.
pub const HEADER_OPERATION: &str = "operation";
/// Header with the W3C `traceparent`, when the message has one.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header with the correlation id, when the message has one.
pub const HEADER_CORRELATION_ID: &str = "correlation_id";
/// The message header whose value becomes the Kafka record key: messages
/// with the same key go to the same partition, in order (the core's
/// [`PARTITION_KEY_HEADER`](event_backbone_core::envelope::PARTITION_KEY_HEADER),
/// set by the producer's `.partition_key(..)`).
pub const PARTITION_KEY: &str = event_backbone_core::envelope::PARTITION_KEY_HEADER;

/// The parts of one record to produce.
pub(crate) struct Record {
    pub(crate) key: Option<String>,
    pub(crate) value: Vec<u8>,
    pub(crate) headers: OwnedHeaders,
}

pub(crate) fn record(metadata: &Metadata) -> Record {
    let mut buf = uuid::Uuid::encode_buffer();
    let id: &str = metadata
        .message_id
        .as_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    let mut headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: HEADER_MESSAGE_ID,
            value: Some(id),
        })
        .insert(Header {
            key: HEADER_OPERATION,
            value: Some(&metadata.operation),
        });
    if let Some(tp) = &metadata.traceparent {
        headers = headers.insert(Header {
            key: HEADER_TRACEPARENT,
            value: Some(tp),
        });
    }
    if let Some(c) = &metadata.correlation_id {
        headers = headers.insert(Header {
            key: HEADER_CORRELATION_ID,
            value: Some(c),
        });
    }
    Record {
        key: metadata.partition_key().map(str::to_owned),
        value: encode_metadata(metadata),
        headers,
    }
}

/// The id of the record at `offset` of `partition`.
pub(crate) fn entry_id(partition: i32, offset: i64) -> EntryId {
    EntryId::new(format!("{partition}:{offset}"))
}

/// The partition and offset of an entry id.
pub(crate) fn position(id: &EntryId) -> Result<(i32, i64)> {
    let invalid = || Error::InvalidEntryId {
        id: id.as_str().to_owned(),
        backend: BACKEND,
        expected: "partition:offset, such as 0:42",
    };
    let (p, o) = id.as_str().split_once(':').ok_or_else(invalid)?;
    let p: i32 = p.parse().map_err(|_| invalid())?;
    let o: i64 = o.parse().map_err(|_| invalid())?;
    if p < 0 || o < 0 {
        return Err(invalid());
    }
    Ok((p, o))
}

/// A consumed record as an entry; bytes that are not metadata become a
/// [`MalformedEntry`] carrying them.
pub(crate) fn entry<M: Message>(m: &M) -> Entry {
    let id = entry_id(m.partition(), m.offset());
    let body = match m.payload() {
        Some(bytes) => decode_metadata(bytes)
            .map_err(|e| MalformedEntry::undecodable(&e, Bytes::copy_from_slice(bytes))),
        None => Err(MalformedEntry::new("the record has no value", Bytes::new())),
    };
    Entry { id, body }
}

/// A header's text, if the record has it.
pub fn header<M: Message>(m: &M, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ones_say_what_is_expected() {
        assert_eq!(position(&entry_id(3, 42)).unwrap(), (3, 42));
        for bad in ["", "3", "3:", "x:1", "1:-2", "1-2"] {
            let err = position(&EntryId::new(bad)).unwrap_err().to_string();
            assert!(err.contains("partition:offset"), "{bad:?}: {err}");
        }
    }
}
