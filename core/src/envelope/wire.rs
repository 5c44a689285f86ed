//! The versioned binary form of [`Metadata`] in a stream entry.
//!
//! Layout: the two magic bytes `E` `B`, one format-version byte, then the
//! postcard encoding of the metadata. A reader refuses any other magic, any
//! version it does not know and any trailing byte, with an error and never a
//! panic.
//!
//! Format 2 adds the data subject's hash as the last field
//! ([`Metadata::subject`]); format 1, which carried it in the header
//! [`SUBJECT_HEADER`], is still read.

use super::{Metadata, SegmentClass};
use super::{SubjectHash, SUBJECT_HEADER};
use crate::{Error, Result};

const MAGIC: [u8; 2] = *b"EB";

/// The metadata format version written by this build.
pub const WIRE_VERSION: u8 = 2;

/// The first format, still read: no subject field.
const WIRE_VERSION_1: u8 = 1;

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
///     subject: None,
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
    match bytes[2] {
        WIRE_VERSION => decode_fields(&bytes[3..]),
        WIRE_VERSION_1 => decode_version_1(&bytes[3..]),
        other => Err(malformed(format!(
            "format version {other} is not supported (this build reads versions \
             {WIRE_VERSION_1} to {WIRE_VERSION})"
        ))),
    }
}

fn decode_fields(bytes: &[u8]) -> Result<Metadata> {
    let malformed = |reason: String| Error::MalformedMetadata { reason };
    let (metadata, rest) = postcard::take_from_bytes::<Metadata>(bytes)
        .map_err(|e| malformed(format!("postcard: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} unexpected trailing bytes",
            rest.len()
        )));
    }
    Ok(metadata)
}

/// Format 1 is format 2 without its last field, the subject (`None` is
/// one 0 byte in postcard), which was in a header.
fn decode_version_1(bytes: &[u8]) -> Result<Metadata> {
    let mut fields = Vec::with_capacity(bytes.len() + 1);
    fields.extend_from_slice(bytes);
    fields.push(0);
    let mut metadata = decode_fields(&fields)?;
    if metadata.subject.is_some() {
        // Bytes after the last field of format 1 that read as a subject.
        return Err(Error::MalformedMetadata {
            reason: "unexpected trailing bytes".to_owned(),
        });
    }
    let Some(header) = metadata.headers.get(SUBJECT_HEADER) else {
        return Ok(metadata);
    };
    match header.parse::<SubjectHash>() {
        Ok(subject) => {
            metadata.headers.remove(SUBJECT_HEADER);
            metadata.subject = Some(subject);
        }
        // Sealed segments need their subject: a header that holds none is
        // an error (which does not quote it).
        Err(e)
            if metadata
                .segments
                .iter()
                .any(|s| s.class != SegmentClass::NORMAL) =>
        {
            return Err(e)
        }
        // Without them, a header of that name written before it was
        // reserved stays an ordinary header.
        Err(_) => {}
    }
    Ok(metadata)
}
