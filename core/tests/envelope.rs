//! The metadata wire format: round trip for any metadata, and an error
//! (never a panic) for truncated or random bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use event_backbone_core::envelope::{decode_metadata, encode_metadata, WIRE_VERSION};
use event_backbone_core::privacy::{SubjectHash, SUBJECT_HEADER};
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
        subject in proptest::option::of(any::<[u8; 16]>()),
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
            subject: subject.map(SubjectHash::from_bytes),
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
        subject: None,
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

/// The bytes format 1 had for `m` (which names no subject): format 2
/// without its last field.
fn format_1(m: &Metadata) -> Vec<u8> {
    assert!(m.subject.is_none());
    let mut bytes = encode_metadata(m);
    assert_eq!(bytes.pop(), Some(0), "the last field is the subject, None");
    bytes[2] = 1;
    bytes
}

#[test]
fn format_1_is_still_read_with_its_subject_header_as_the_subject() {
    let hash = SubjectHash::from_bytes([7; 16]);
    let mut old = sample();
    old.headers
        .insert(SUBJECT_HEADER.to_owned(), hash.to_string());
    old.headers.insert("tenant".to_owned(), "a".to_owned());
    let read = decode_metadata(&format_1(&old)).unwrap();
    assert_eq!(read.subject, Some(hash));
    assert!(!read.headers.contains_key(SUBJECT_HEADER));
    assert_eq!(read.headers["tenant"], "a");
    assert_eq!(read.message_id, old.message_id);
    // Without a subject header, no subject.
    let plain = decode_metadata(&format_1(&sample())).unwrap();
    assert_eq!(plain, sample_with_id(plain.message_id));
}

fn sample_with_id(id: MessageId) -> Metadata {
    Metadata {
        message_id: id,
        ..sample()
    }
}

/// A header of that name that holds no subject hash (written before it was
/// reserved, perhaps with personal data) stays an ordinary header.
#[test]
fn format_1_with_another_subject_header_keeps_it_as_a_header() {
    let mut old = sample();
    old.headers
        .insert(SUBJECT_HEADER.to_owned(), "ann@example.com".to_owned());
    let read = decode_metadata(&format_1(&old)).unwrap();
    assert_eq!(read.subject, None);
    assert_eq!(read.headers[SUBJECT_HEADER], "ann@example.com");
    // With a sealed segment, it must name the subject: an error that does
    // not quote it.
    old.segments.push(SegmentRef {
        name: "email".into(),
        class: SegmentClass::PERSONAL,
        location: SegmentLocation::Inline(Bytes::from_static(b"sealed")),
    });
    let err = decode_metadata(&format_1(&old)).unwrap_err().to_string();
    assert!(
        err.contains("32 hex digits") && !err.contains("ann"),
        "{err}"
    );
}

#[test]
fn format_1_with_bytes_after_its_last_field_is_refused() {
    // 16 bytes that, with the 0 the reader appends for format 1's missing
    // field, read as a subject.
    let mut bytes = format_1(&sample());
    bytes.push(1);
    bytes.extend([9u8; 15]);
    assert!(matches!(
        decode_metadata(&bytes),
        Err(Error::MalformedMetadata { .. })
    ));
}

#[test]
fn the_subject_is_a_field_of_format_2() {
    let mut m = sample();
    m.subject = Some(SubjectHash::from_bytes([3; 16]));
    let bytes = encode_metadata(&m);
    assert_eq!(bytes[2], 2);
    assert_eq!(
        &bytes[bytes.len() - 17..],
        &[&[1u8][..], &[3u8; 16][..]].concat()[..]
    );
    assert_eq!(decode_metadata(&bytes).unwrap(), m);
}

/// An entry written by a build of format 1 (the subject in its header),
/// byte for byte: it still reads, the header as the subject.
#[test]
fn an_entry_written_in_format_1_reads_with_its_subject() {
    let hex = "45420110019200000000700080000000000000010c6f726465725f706c61636564020b73686f702e\
               6f7264657273010470726f6480d095ffbc3100146170706c69636174696f6e2f706f737463617264\
               0106636f72722d310000020c646174612d7375626a65637420303730373037303730373037303730\
               37303730373037303730373037303730370674656e616e7401610105656d61696c08706572736f6e\
               616c0108706572736f6e616c4e70726f643a73686f702e6f72646572733a6f726465725f706c6163\
               65643a76323a706572736f6e616c3a30313932303030302d303030302d373030302d383030302d30\
               3030303030303030303031";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes[2], 1);
    let read = decode_metadata(&bytes).unwrap();
    assert_eq!(read.subject, Some(SubjectHash::from_bytes([0x07; 16])));
    assert_eq!(
        read.headers,
        BTreeMap::from([("tenant".to_owned(), "a".to_owned())])
    );
    assert_eq!(read.operation, "order_placed");
    assert_eq!(read.environment.as_deref(), Some("prod"));
    assert_eq!(read.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(read.segments.len(), 1);
    assert_eq!(read.segments[0].class, SegmentClass::PERSONAL);
}
