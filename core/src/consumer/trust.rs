//! What a reader takes from an entry: the stream is not trusted to name
//! store keys. An entry is read only if it was produced to the stream being
//! read (or, in a dead-letter stream, to the stream it belongs to), the
//! names that go into keys (operation, classes) are valid names, and each
//! key it pins is a payload key of that
//! stream, of its own operation, version and class: never a vault record,
//! another stream's payload, or any other key of the store.

use crate::envelope::keys::DEAD_LETTER_SUFFIX;
use crate::envelope::{Metadata, SegmentLocation};
use crate::{Error, Result};

/// Checks an entry read from stream `reading`.
pub(crate) fn check(reading: &str, metadata: &Metadata) -> Result<()> {
    let refuse = |reason: String| Error::UntrustedEntry {
        stream: reading.to_owned(),
        message_id: metadata.message_id.to_string(),
        reason,
    };
    if !may_hold(reading, metadata) {
        return Err(refuse(format!(
            "it names stream {:?}, not this one",
            metadata.stream_key()
        )));
    }
    crate::names::check("operation", &metadata.operation).map_err(|e| refuse(e.to_string()))?;
    for segment in &metadata.segments {
        // Segment names are fields, never parts of a key: any text will do.
        crate::names::check("segment class", segment.class.as_str())
            .map_err(|e| refuse(e.to_string()))?;
        if let SegmentLocation::Stored { store, key } = &segment.location {
            if store != segment.class.as_str()
                || !is_payload_key(metadata, segment.class.as_str(), key)
            {
                return Err(refuse(format!(
                    "segment {:?} names key {key:?} of store {store:?}, which is not a payload \
                     key of its stream, operation, version and class ({:?} in store {:?})",
                    segment.name,
                    format!(
                        "{}:{}:v{}:{}:<message id>",
                        metadata.stream_key(),
                        metadata.operation,
                        metadata.version,
                        segment.class
                    ),
                    segment.class.as_str()
                )));
            }
        }
    }
    Ok(())
}

/// Whether `metadata` was produced to `reading`, or `reading` is a
/// dead-letter stream (of a dead-letter stream, ...) of the stream it was
/// produced to.
fn may_hold(reading: &str, metadata: &Metadata) -> bool {
    let mut stream = reading;
    loop {
        if produced_to(metadata, stream) {
            return true;
        }
        match stream
            .strip_suffix(DEAD_LETTER_SUFFIX)
            .and_then(|base| base.strip_suffix(':'))
        {
            Some(base) => stream = base,
            None => return false,
        }
    }
}

/// Whether the stream key of `metadata` is `stream`, without building it.
fn produced_to(metadata: &Metadata, stream: &str) -> bool {
    match &metadata.environment {
        None => stream == metadata.uri,
        Some(env) => stream
            .strip_prefix(env.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|uri| uri == metadata.uri),
    }
}

/// Whether `key` is `{stream}:{operation}:v{version}:{class}:{message id}`
/// for this message's stream, operation, version and class.
fn is_payload_key(metadata: &Metadata, class: &str, key: &str) -> bool {
    let prefix = format!(
        "{}:{}:v{}:{class}:",
        metadata.stream_key(),
        metadata.operation,
        metadata.version
    );
    key.strip_prefix(&prefix)
        .is_some_and(|id| id.parse::<crate::envelope::MessageId>().is_ok())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::envelope::{MessageId, Origin, SegmentClass, SegmentRef};

    fn entry(environment: Option<&str>, location: SegmentLocation) -> Metadata {
        Metadata {
            message_id: MessageId::new(),
            operation: "opened".into(),
            version: 1,
            uri: "accounts".into(),
            environment: environment.map(str::to_owned),
            produced_at_ms: 1,
            origin: Origin::Original,
            content_type: "application/postcard".into(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            headers: BTreeMap::new(),
            segments: vec![SegmentRef {
                name: "email".into(),
                class: SegmentClass::PERSONAL,
                location,
            }],
            subject: None,
        }
    }

    fn stored(key: &str) -> SegmentLocation {
        SegmentLocation::Stored {
            store: "personal".into(),
            key: key.into(),
        }
    }

    #[test]
    fn an_entry_reads_only_its_own_streams_payload_keys() {
        let id = MessageId::new();
        let own = format!("prod:accounts:opened:v1:personal:{id}");
        for (reading, location) in [
            ("prod:accounts", SegmentLocation::Standard),
            ("prod:accounts", stored(&own)),
            ("prod:accounts:dead-letter", stored(&own)),
            ("prod:accounts:dead-letter", SegmentLocation::Standard),
            ("prod:accounts:dead-letter:dead-letter", stored(&own)),
        ] {
            let metadata = entry(Some("prod"), location);
            check(reading, &metadata).unwrap_or_else(|e| panic!("{reading}: {e}"));
        }
        for (reading, location, why) in [
            ("prod:billing", SegmentLocation::Standard, "names stream"),
            ("prod:accounts.x", SegmentLocation::Standard, "names stream"),
            (
                "prod:accounts",
                stored("event-backbone.vault:0123456789abcdef0123456789abcdef"),
                "not a payload key",
            ),
            (
                "prod:accounts",
                stored(&format!("prod:billing:opened:v1:personal:{id}")),
                "not a payload key",
            ),
            (
                "prod:accounts",
                stored(&format!("prod:accounts:opened:v2:personal:{id}")),
                "not a payload key",
            ),
            (
                "prod:accounts",
                stored(&format!("prod:accounts:opened:v1:normal:{id}")),
                "not a payload key",
            ),
            (
                "prod:accounts",
                stored("prod:accounts:opened:v1:personal:not-an-id"),
                "not a payload key",
            ),
        ] {
            let metadata = entry(Some("prod"), location);
            let err = check(reading, &metadata).unwrap_err().to_string();
            assert!(err.contains(why), "{reading}: {err}");
        }
        let mut forged = entry(None, SegmentLocation::Standard);
        forged.operation = "opened:v1:personal:x".into();
        assert!(check("accounts", &forged).is_err());
        let mut renamed = entry(None, SegmentLocation::Standard);
        renamed.segments[0].class = decoded_class("a:b");
        assert!(check("accounts", &renamed).is_err());
    }

    /// A class as decoded from the stream, unchecked.
    fn decoded_class(name: &str) -> SegmentClass {
        use serde::de::value::{Error as DeError, StrDeserializer};
        use serde::de::IntoDeserializer;
        let d: StrDeserializer<'_, DeError> = name.into_deserializer();
        serde::Deserialize::deserialize(d).unwrap()
    }
}
