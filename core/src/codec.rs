//! Encoding of segment values: any `serde` type.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::DecodeError;
use crate::{Error, Result};

/// Scratch buffers above this size are not kept for the next encoding.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A postcard output that appends to a `Vec` (bytes and slices copied
/// directly, no per-byte iterator).
pub(crate) struct AppendTo<'a>(pub(crate) &'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Postcard bytes in a `Vec` of exactly their length: one allocation per
/// value (no growth), and a `Bytes` made from it needs no allocation of its
/// own. The value is serialized into a per-thread scratch buffer first.
fn encode_exact<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Vec<u8>> {
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            // A Serialize impl that encodes with this codec itself.
            return postcard::to_stdvec(value);
        };
        scratch.clear();
        let result = postcard::serialize_with_flavor(value, AppendTo(&mut scratch));
        let exact = result.map(|()| scratch.as_slice().to_vec());
        if scratch.capacity() > SCRATCH_KEPT {
            *scratch = Vec::new();
        }
        exact
    })
}

/// How segment values are encoded. The content type travels in the
/// metadata, so a consumer decodes each message with the codec it was
/// written with.
///
/// ```
/// use event_backbone_core::Codec;
/// let bytes = Codec::Postcard.encode("n", &7u32)?;
/// assert_eq!(Codec::Postcard.decode::<u32>(&bytes)?, 7);
/// assert_eq!(Codec::from_content_type("application/postcard")?, Codec::Postcard);
/// # Ok::<(), event_backbone_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Codec {
    /// Compact binary ([postcard](https://docs.rs/postcard)); the default.
    #[default]
    Postcard,
    /// JSON, readable in `redis-cli` (feature `json`).
    #[cfg(feature = "json")]
    Json,
}

impl Codec {
    /// The content type recorded in the metadata.
    pub fn content_type(&self) -> &'static str {
        match self {
            Codec::Postcard => "application/postcard",
            #[cfg(feature = "json")]
            Codec::Json => "application/json",
        }
    }

    /// The codec of a content type.
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        match content_type {
            "application/postcard" => Ok(Codec::Postcard),
            #[cfg(feature = "json")]
            "application/json" => Ok(Codec::Json),
            other => Err(Error::UnknownCodec {
                content_type: other.to_owned(),
            }),
        }
    }

    /// Encodes a value; `segment` names it in the error.
    pub fn encode<T: Serialize + ?Sized>(&self, segment: &str, value: &T) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Encode {
            segment: segment.to_owned(),
            codec: self.content_type(),
            reason,
        };
        match self {
            Codec::Postcard => encode_exact(value).map_err(|e| fail(e.to_string())),
            #[cfg(feature = "json")]
            Codec::Json => serde_json::to_vec(value).map_err(|e| fail(e.to_string())),
        }
    }

    /// Decodes a value, without context for the error message.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        self.decode_segment("", "", "", bytes)
    }

    /// Decodes a segment; the names go into the error message.
    pub(crate) fn decode_segment<T: DeserializeOwned>(
        &self,
        segment: &str,
        operation: &str,
        message_id: &str,
        bytes: &[u8],
    ) -> Result<T> {
        let fail = |reason: String| {
            Error::Decode(Box::new(DecodeError {
                segment: segment.to_owned(),
                operation: operation.to_owned(),
                message_id: message_id.to_owned(),
                expected: std::any::type_name::<T>(),
                codec: self.content_type(),
                reason,
            }))
        };
        match self {
            Codec::Postcard => {
                let (value, rest) =
                    postcard::take_from_bytes::<T>(bytes).map_err(|e| fail(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(fail(format!("{} trailing bytes", rest.len())));
                }
                Ok(value)
            }
            #[cfg(feature = "json")]
            Codec::Json => {
                serde_json::from_slice(bytes).map_err(|e| fail(withhold_values(&e.to_string())))
            }
        }
    }
}

/// A decoder's error text with every quoted value left out (`"…"`,
/// `` `…` ``): serde quotes what it found ("invalid type: string
/// \"ann@example.com\""), and an error outlives the erasure of the data it
/// quotes. What was expected, and where, stays.
#[cfg_attr(not(feature = "json"), allow(dead_code))]
fn withhold_values(text: &str) -> String {
    // serde does not escape a backtick inside a value: with an odd count,
    // where a value ends is unknown, so nothing after the first is kept.
    if text.matches('`').count() % 2 == 1 {
        let cut = text.find('`').unwrap_or(text.len());
        return format!("{}`…` (the rest is withheld)", &text[..cut]);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                let mut escaped = false;
                for inner in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if inner == '\\' {
                        escaped = true;
                    } else if inner == c {
                        break;
                    }
                }
                out.push(c);
                out.push('…');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_error_names_the_type() {
        let bytes = Codec::Postcard.encode("s", "text").unwrap();
        let err = Codec::Postcard
            .decode_segment::<u64>("amount", "paid", "id-1", &bytes)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"amount\""), "{text}");
        assert!(text.contains("u64"), "{text}");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_is_readable_and_round_trips() {
        let bytes = Codec::Json.encode("who", &("ann", 3u8)).unwrap();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), r#"["ann",3]"#);
        let back: (String, u8) = Codec::Json.decode(&bytes).unwrap();
        assert_eq!(back, ("ann".to_owned(), 3));
        assert_eq!(
            Codec::from_content_type("application/json").unwrap(),
            Codec::Json
        );
    }

    /// A decode error says what was expected and where, never the value
    /// it found.
    #[cfg(feature = "json")]
    #[test]
    fn json_decode_errors_quote_no_values() {
        for (json, value) in [
            (r#""ann@example.com""#, "ann@example.com"),
            (r#"{"ann@example.com": 1}"#, "ann@example.com"),
            (r#""ann \"the\" person""#, "person"),
            ("12345678", "12345678"),
        ] {
            let err = Codec::Json
                .decode_segment::<Vec<bool>>("email", "opened", "id-1", json.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(!err.contains(value), "the error quotes the value: {err}");
            assert!(err.contains("\"email\"") && err.contains("bool"), "{err}");
        }
        assert_eq!(
            withhold_values(r#"invalid type: string "a\"b", expected `x` at line 1"#),
            r#"invalid type: string "…", expected `…` at line 1"#
        );
        let odd = withhold_values("unknown variant `a`b@example.com`, expected `x`");
        assert!(!odd.contains("example"), "{odd}");
    }

    #[test]
    fn encoding_returns_exact_buffers_whatever_came_before() {
        let big = vec![7u8; 100_000];
        let encoded = Codec::Postcard.encode("big", &big).unwrap();
        assert_eq!(encoded, postcard::to_stdvec(&big).unwrap());
        assert_eq!(encoded.capacity(), encoded.len());
        // The scratch buffer of the big value must not leak into the next.
        let small = Codec::Postcard.encode("small", &3u16).unwrap();
        assert_eq!(small, postcard::to_stdvec(&3u16).unwrap());
        assert_eq!(small.capacity(), small.len());
    }

    /// A value whose serialization encodes another value with the codec.
    struct Nested(u32);

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let inner = Codec::Postcard
                .encode("inner", &self.0)
                .map_err(serde::ser::Error::custom)?;
            s.serialize_bytes(&inner)
        }
    }

    #[test]
    fn a_value_may_encode_with_the_codec_while_being_encoded() {
        let bytes = Codec::Postcard.encode("outer", &Nested(300)).unwrap();
        let inner: Vec<u8> = Codec::Postcard.decode(&bytes).unwrap();
        assert_eq!(Codec::Postcard.decode::<u32>(&inner).unwrap(), 300);
    }

    #[test]
    fn unknown_content_type_is_refused() {
        assert!(Codec::from_content_type("text/x-unknown").is_err());
    }
}
