use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::names::validate;
use crate::Result;

/// The class of a segment: which store it goes to, under which key.
///
/// `normal` is the default; `personal` marks personal data, which a producer
/// can route to a store of its own and which gets a payload key of its own,
/// so that it can be expired or erased (GDPR) without touching the rest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SegmentClass(Cow<'static, str>);

impl<'de> Deserialize<'de> for SegmentClass {
    /// The built-in classes come back without an allocation.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = SegmentClass;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a segment class name")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(match v {
                    "normal" => SegmentClass::NORMAL,
                    "personal" => SegmentClass::PERSONAL,
                    other => SegmentClass(Cow::Owned(other.to_owned())),
                })
            }
        }
        d.deserialize_str(Name)
    }
}

impl SegmentClass {
    /// The default class.
    pub const NORMAL: SegmentClass = SegmentClass(Cow::Borrowed("normal"));
    /// Personal data.
    pub const PERSONAL: SegmentClass = SegmentClass(Cow::Borrowed("personal"));

    /// The default class, `normal`.
    pub fn normal() -> Self {
        Self::NORMAL
    }

    /// The class of personal data, `personal`.
    pub fn personal() -> Self {
        Self::PERSONAL
    }

    /// A class of your own (validated like any name in a key).
    pub fn custom(name: &str) -> Result<Self> {
        Ok(Self(Cow::Owned(validate("segment class", name)?)))
    }

    /// The class name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SegmentClass {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl fmt::Debug for SegmentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for SegmentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One encoded parameter of a message, with its class.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Segment {
    /// The class (store routing).
    pub class: SegmentClass,
    /// The encoded bytes.
    pub data: Bytes,
}

/// The payload of a message: segment name -> encoded bytes (and class).
///
/// By convention one segment per parameter of the event, named after it.
///
/// ```
/// use event_backbone_core::{Codec, Segments};
/// let segments = Segments::new()
///     .with("product_id", &Codec::Postcard, &42u64)?
///     .with_personal("email", &Codec::Postcard, &"ann@example.com")?;
/// assert_eq!(segments.len(), 2);
/// assert_eq!(segments.decode::<u64>("product_id", &Codec::Postcard)?, Some(42));
/// # Ok::<(), event_backbone_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Segments(BTreeMap<String, Segment>);

impl Segments {
    /// No segments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds already-encoded bytes in the `normal` class.
    pub fn insert(&mut self, name: impl Into<String>, data: impl Into<Bytes>) -> &mut Self {
        self.insert_classed(name, SegmentClass::NORMAL, data)
    }

    /// Adds already-encoded bytes in the given class.
    pub fn insert_classed(
        &mut self,
        name: impl Into<String>,
        class: SegmentClass,
        data: impl Into<Bytes>,
    ) -> &mut Self {
        self.0.insert(
            name.into(),
            Segment {
                class,
                data: data.into(),
            },
        );
        self
    }

    /// Encodes `value` with `codec` as a `normal` segment.
    pub fn with<T: Serialize + ?Sized>(self, name: &str, codec: &Codec, value: &T) -> Result<Self> {
        self.with_class(name, SegmentClass::NORMAL, codec, value)
    }

    /// Encodes `value` with `codec` as a `personal` segment.
    pub fn with_personal<T: Serialize + ?Sized>(
        self,
        name: &str,
        codec: &Codec,
        value: &T,
    ) -> Result<Self> {
        self.with_class(name, SegmentClass::PERSONAL, codec, value)
    }

    /// Encodes `value` with `codec` as a segment of the given class.
    pub fn with_class<T: Serialize + ?Sized>(
        mut self,
        name: &str,
        class: SegmentClass,
        codec: &Codec,
        value: &T,
    ) -> Result<Self> {
        let data = codec.encode(name, value)?;
        self.insert_classed(name, class, data);
        Ok(self)
    }

    /// The segment of that name.
    pub fn get(&self, name: &str) -> Option<&Segment> {
        self.0.get(name)
    }

    /// The bytes of the segment of that name.
    pub fn bytes(&self, name: &str) -> Option<&Bytes> {
        self.0.get(name).map(|s| &s.data)
    }

    /// Mutable access to one segment (interceptors transform bytes in place).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Segment> {
        self.0.get_mut(name)
    }

    /// Removes a segment.
    pub fn remove(&mut self, name: &str) -> Option<Segment> {
        self.0.remove(name)
    }

    /// Decodes the segment of that name; `Ok(None)` when there is none.
    /// On a message, prefer `ConsumerContext::segment`, whose errors name the
    /// message.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        codec: &Codec,
    ) -> Result<Option<T>> {
        self.bytes(name)
            .map(|b| codec.decode_segment(name, "", "", b))
            .transpose()
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The segments, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Segment)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The segments, by name, to change their bytes in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Segment)> {
        self.0.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// Total bytes of all segments.
    pub fn total_bytes(&self) -> usize {
        self.0.values().map(|s| s.data.len()).sum()
    }
}

impl IntoIterator for Segments {
    type Item = (String, Segment);
    type IntoIter = std::collections::btree_map::IntoIter<String, Segment>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(String, Segment)> for Segments {
    fn from_iter<I: IntoIterator<Item = (String, Segment)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Debug for Segments {
    // Payloads may hold personal data: show names, classes and sizes only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, format!("{} ({} bytes)", v.class, v.data.len()))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_and_built_in_ones_are_not_copied() {
        for class in [
            SegmentClass::normal(),
            SegmentClass::personal(),
            SegmentClass::custom("audit").unwrap(),
        ] {
            let bytes = postcard::to_stdvec(&class).unwrap();
            let back: SegmentClass = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, class);
            let borrowed = matches!(back.0, Cow::Borrowed(_));
            assert_eq!(borrowed, class.as_str() != "audit", "{class:?}");
        }
        let err = postcard::from_bytes::<SegmentClass>(&[7]).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
