//! The layout of a payload: one binary document per key, holding every
//! field and the key's expiry, in a small versioned encoding.
//!
//! ```text
//! byte 0       format version (1)
//! bytes 1..9   expiry, unix milliseconds, big-endian u64 (0: none)
//! bytes 9..13  number of fields, big-endian u32
//! per field    name length (u32), name (UTF-8), value length (u32), value
//! ```
//!
//! Fields are in name order. The document's flags say "binary" (Couchbase's
//! common flags, [`BINARY_FLAGS`]), so that other SDKs read it as bytes.

use bytes::Bytes;
use event_backbone_core::Fields;

/// The version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Couchbase's common flags for a binary document.
pub const BINARY_FLAGS: u32 = 0x0300_0000;
/// Bytes before the first field.
pub const HEADER_BYTES: usize = 13;
/// Bytes a field takes besides its name and value.
pub const FIELD_OVERHEAD: usize = 8;

/// A payload as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// When the key expires, unix milliseconds.
    pub expires_at_ms: Option<u64>,
    /// The fields, by name.
    pub fields: Fields,
}

impl Payload {
    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|t| t <= now_ms)
    }

    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES
            + self
                .fields
                .iter()
                .map(|(n, v)| FIELD_OVERHEAD + n.len() + v.len())
                .sum::<usize>()
    }

    /// The document's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.expires_at_ms.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&(self.fields.len() as u32).to_be_bytes());
        for (name, value) in &self.fields {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    /// Reads a document; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.take(1, "the format version")?[0];
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version}, expected {FORMAT_VERSION} (written by another version of event-backbone-couchbase?)"
            ));
        }
        let expires = r.u64("the expiry")?;
        let count = r.u32("the number of fields")?;
        let mut fields = Fields::new();
        for i in 0..count {
            let len = r.u32("a field name's length")? as usize;
            let name = std::str::from_utf8(r.take(len, "a field name")?)
                .map_err(|_| format!("field {i}'s name is not UTF-8"))?
                .to_owned();
            let len = r.u32("a field value's length")? as usize;
            let value = Bytes::copy_from_slice(r.take(len, "a field value")?);
            fields.insert(name, value);
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the last field", bytes.len() - r.at));
        }
        Ok(Self {
            expires_at_ms: (expires != 0).then_some(expires),
            fields,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "the document ends at byte {} in {what} (needs {n} more)",
                self.bytes.len()
            ));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        Payload {
            expires_at_ms: Some(1_700_000_000_123),
            fields: Fields::from([
                ("a".to_owned(), Bytes::from_static(b"\x00\xff")),
                ("данные".to_owned(), Bytes::new()),
                (String::new(), Bytes::from_static(b"empty name")),
            ]),
        }
    }

    #[test]
    fn payloads_round_trip_and_know_their_size() {
        let p = payload();
        let bytes = p.encode();
        assert_eq!(bytes.len(), p.encoded_len());
        assert_eq!(Payload::decode(&bytes), Ok(p));
        let none = Payload::default();
        assert_eq!(Payload::decode(&none.encode()), Ok(none));
    }

    #[test]
    fn damaged_documents_say_what_is_wrong() {
        let bytes = payload().encode();
        let e = Payload::decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.contains("in a field value"), "{e}");
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(Payload::decode(&other)
            .unwrap_err()
            .contains("format version 9, expected 1"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Payload::decode(&longer).unwrap_err(),
            "1 bytes after the last field"
        );
        assert!(Payload::decode(b"")
            .unwrap_err()
            .contains("the format version"));
    }

    #[test]
    fn expiry_is_to_the_millisecond() {
        let p = payload();
        assert!(!p.expired(1_700_000_000_122));
        assert!(p.expired(1_700_000_000_123));
        assert!(!Payload::default().expired(u64::MAX));
    }
}
