//! Encoding of segment values: any `serde` type.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::DecodeError;
use crate::{Error, Result};

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
            Codec::Postcard => {
                postcard::to_extend(value, Vec::with_capacity(32)).map_err(|e| fail(e.to_string()))
            }
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
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| fail(e.to_string())),
        }
    }
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

    #[test]
    fn unknown_content_type_is_refused() {
        assert!(Codec::from_content_type("text/x-unknown").is_err());
    }
}
