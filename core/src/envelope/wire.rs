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
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION);
    // Serializing plain data into a Vec cannot fail.
    postcard::to_io(metadata, &mut out).expect("metadata serializes into memory");
    out
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
