//! The metadata wire format: round trip for any metadata, and an error
//! (never a panic) for truncated or random bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use event_backbone_core::envelope::{decode_metadata, encode_metadata, WIRE_VERSION};
use event_backbone_core::{
    Error, MessageId, Metadata, Origin, SegmentClass, SegmentLocation, SegmentRef,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_.-]{0,24}",
        "\\PC{0,16}",
        Just(String::new()),
        Just("ünïcödé 名前 🎉".to_owned()),
    ]
}

fn class() -> impl Strategy<Value = SegmentClass> {
    prop_oneof![
        Just(SegmentClass::normal()),
        Just(SegmentClass::personal()),
        "[a-z]{1,10}".prop_map(|c| SegmentClass::custom(&c).unwrap()),
    ]
}

fn location() -> impl Strategy<Value = SegmentLocation> {
    prop_oneof![
        (text(), text()).prop_map(|(store, key)| SegmentLocation::Stored { store, key }),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| SegmentLocation::Inline(Bytes::from(b))),
    ]
}

fn segment_ref() -> impl Strategy<Value = SegmentRef> {
    (text(), class(), location()).prop_map(|(name, class, location)| SegmentRef {
        name,
        class,
        location,
    })
}

prop_compose! {
    fn metadata()(
        id in any::<u128>(),
        operation in text(),
        version in any::<u32>(),
        uri in text(),
        environment in proptest::option::of(text()),
        produced_at_ms in any::<u64>(),
        copy_of in proptest::option::of(any::<u128>()),
        content_type in text(),
        correlation_id in proptest::option::of(text()),
        causation_id in proptest::option::of(text()),
        traceparent in proptest::option::of(text()),
        headers in proptest::collection::btree_map(text(), text(), 0..5),
        segments in proptest::collection::vec(segment_ref(), 0..6),
    ) -> Metadata {
        Metadata {
            message_id: MessageId::from(uuid::Uuid::from_u128(id)),
            operation,
            version,
            uri,
            environment,
            produced_at_ms,
            origin: match copy_of {
                None => Origin::Original,
                Some(o) => Origin::Copy { original: MessageId::from(uuid::Uuid::from_u128(o)) },
            },
            content_type,
            correlation_id,
            causation_id,
            traceparent,
            headers,
            segments,
        }
    }
}

proptest! {
    #[test]
    fn any_metadata_round_trips(m in metadata()) {
        let bytes = encode_metadata(&m);
        prop_assert_eq!(bytes[2], WIRE_VERSION);
        prop_assert_eq!(decode_metadata(&bytes).unwrap(), m);
    }

    #[test]
    fn every_truncation_is_an_error(m in metadata()) {
        let bytes = encode_metadata(&m);
        for len in 0..bytes.len() {
            let result = decode_metadata(&bytes[..len]);
            prop_assert!(
                matches!(result, Err(Error::MalformedMetadata { .. })),
                "a truncation to {} of {} bytes decoded: {:?}", len, bytes.len(), result
            );
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_metadata(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let mut framed = vec![b'E', b'B', WIRE_VERSION];
        framed.extend(bytes);
        let _ = decode_metadata(&framed);
    }
}

fn sample() -> Metadata {
    Metadata {
        message_id: MessageId::new(),
        operation: "order_placed".into(),
        version: 1,
        uri: "orders".into(),
        environment: Some("prod".into()),
        produced_at_ms: 1,
        origin: Origin::Original,
        content_type: "application/postcard".into(),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
        headers: BTreeMap::new(),
        segments: vec![],
    }
}

#[test]
fn unknown_version_is_refused_with_the_version() {
    let mut bytes = encode_metadata(&sample());
    bytes[2] = 99;
    let err = decode_metadata(&bytes).unwrap_err().to_string();
    assert!(err.contains("format version 99"), "{err}");
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = encode_metadata(&sample());
    bytes[0] = b'X';
    let err = decode_metadata(&bytes).unwrap_err().to_string();
    assert!(err.contains("magic"), "{err}");
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode_metadata(&sample());
    bytes.push(0);
    let err = decode_metadata(&bytes).unwrap_err().to_string();
    assert!(err.contains("trailing"), "{err}");
}
