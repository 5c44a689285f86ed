//! The channel-agnostic message: [`Metadata`] (what travels in the stream)
//! and [`Segments`] (the payload, which travels in a key-value store).

pub(crate) mod keys;
mod message_id;
mod metadata;
mod segments;
mod subject_hash;
mod wire;

pub use message_id::MessageId;
pub use metadata::{Metadata, Origin, SegmentLocation, SegmentRef, PARTITION_KEY_HEADER};
pub use segments::{Segment, SegmentClass, Segments};
pub use subject_hash::{SubjectHash, SUBJECT_HEADER};
pub use wire::{decode_metadata, encode_metadata, encode_metadata_into, WIRE_VERSION};
