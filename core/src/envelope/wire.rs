//! The versioned binary form of [`Metadata`] in a stream entry.
//!
//! Layout: the two magic bytes `E` `B`, one format-version byte, then the
//! postcard encoding of the metadata. A reader refuses any other magic, any
//! version it does not know and any trailing byte, with an error and never a
//! panic.

use super::Metadata;
use crate::{Error, Result};

const MAGIC: [u8; 2] = *b"EB";

/// The metadata format version written by this build.
pub const WIRE_VERSION: u8 = 1;

/// Encodes metadata for a stream entry.
pub fn encode_metadata(metadata: &Metadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_metadata_into(metadata, &mut out);
    out
}

/// Appends the bytes of [`encode_metadata`] to `out`: a backend that encodes
/// many entries can reuse one buffer instead of allocating one per entry.
///
/// ```
/// use event_backbone_core::envelope::{encode_metadata, encode_metadata_into, Metadata, MessageId};
/// let metadata = Metadata {
///     message_id: MessageId::new(),
///     operation: "order_placed".into(),
///     version: 0,
///     uri: "shop.orders".into(),
///     environment: None,
///     produced_at_ms: 1_700_000_000_000,
///     origin: Default::default(),
///     content_type: "application/postcard".into(),
///     correlation_id: None,
///     causation_id: None,
///     traceparent: None,
///     headers: Default::default(),
///     segments: Vec::new(),
/// };
/// let mut buffer = b"kept".to_vec();
/// encode_metadata_into(&metadata, &mut buffer);
/// assert_eq!(&buffer[..4], b"kept");
/// assert_eq!(buffer[4..], encode_metadata(&metadata)[..]);
/// ```
pub fn encode_metadata_into(metadata: &Metadata, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION);
    // Serializing plain data into a Vec cannot fail.
    postcard::serialize_with_flavor(metadata, crate::codec::AppendTo(out))
        .expect("metadata serializes into memory");
}

/// Decodes metadata written by [`encode_metadata`].
pub fn decode_metadata(bytes: &[u8]) -> Result<Metadata> {
    let malformed = |reason: String| Error::MalformedMetadata { reason };
    if bytes.len() < 3 {
        return Err(malformed(format!(
            "{} bytes is shorter than the 3-byte header",
            bytes.len()
        )));
    }
    if bytes[..2] != MAGIC {
        return Err(malformed(format!(
            "expected magic bytes \"EB\", found {:02x} {:02x}",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] > WIRE_VERSION {
        return Err(Error::UnsupportedWireVersion {
            version: bytes[2],
            supported: WIRE_VERSION,
        });
    }
    if bytes[2] != WIRE_VERSION {
        return Err(malformed(format!(
            "format version {} is not supported (this build reads version {WIRE_VERSION})",
            bytes[2]
        )));
    }
    let (metadata, rest) = postcard::take_from_bytes::<Metadata>(&bytes[3..])
        .map_err(|e| malformed(format!("postcard: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} unexpected trailing bytes",
            rest.len()
        )));
    }
    Ok(metadata)
}
