//! The keyed hash of a data subject's id that a message carries instead of
//! the id ([`Metadata::subject`](super::Metadata::subject)); made by a
//! [`SubjectKey`](crate::privacy::SubjectKey).

use std::fmt;
use std::str::FromStr;

use crate::hex::{decode_hex, encode_hex};
use crate::{Error, Result};

/// The header that carried a message's [`SubjectHash`] in wire format 1
/// (format 2 has [`Metadata::subject`](super::Metadata::subject)): reserved,
/// a producer refuses it, and a reader of a format-1 entry takes it for
/// the subject.
pub const SUBJECT_HEADER: &str = "data-subject";

/// The keyed hash of a data subject's id: HMAC-SHA-256 under the
/// [`SubjectKey`](crate::privacy::SubjectKey), truncated to 128 bits and shown as 32 hex digits.
///
/// The stream and the key vault hold this hash, never the id: whoever reads
/// them can tell two messages of one person apart from those of another,
/// but not who the person is without the subject key.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SubjectHash([u8; 16]);

impl SubjectHash {
    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A hash from its bytes (as a custom [`KeyVault`](crate::privacy::KeyVault) may
    /// store them).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectHash({self})")
    }
}

impl FromStr for SubjectHash {
    type Err = Error;

    /// Reads the 32 hex digits of [`SubjectHash`]'s `Display`.
    fn from_str(text: &str) -> Result<Self> {
        let mut bytes = [0u8; 16];
        decode_hex(text, &mut bytes).ok_or_else(|| Error::MalformedMetadata {
            // The text is not quoted: it may be a subject's id by mistake.
            reason: format!(
                "{} characters are not a subject hash: expected 32 hex digits",
                text.chars().count()
            ),
        })?;
        Ok(Self(bytes))
    }
}
