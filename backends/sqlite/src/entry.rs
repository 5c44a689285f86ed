//! Entry ids (the sequence number, in decimal) and rows to entries.

use bytes::Bytes;
use event_backbone_core::envelope::decode_metadata;
use event_backbone_core::{Entry, EntryId, Error, MalformedEntry, Result};

use crate::BACKEND;

/// The sequence number of an entry id, or [`Error::InvalidEntryId`].
pub(crate) fn seq_of(id: &EntryId) -> Result<i64> {
    id.as_str()
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| Error::InvalidEntryId {
            id: id.as_str().to_owned(),
            backend: BACKEND,
            expected: "a decimal sequence number such as 42",
        })
}

/// The id of sequence number `seq`.
pub(crate) fn id_of(seq: i64) -> EntryId {
    EntryId::new(seq.to_string())
}

/// An entry from its sequence number and stored bytes; bytes that are not
/// metadata make a [`MalformedEntry`].
pub(crate) fn to_entry(seq: i64, metadata: Vec<u8>) -> Entry {
    let raw = Bytes::from(metadata);
    Entry {
        id: id_of(seq),
        body: decode_metadata(&raw).map_err(|e| MalformedEntry::undecodable(&e, raw.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sequence_numbers() {
        assert_eq!(seq_of(&id_of(42)).unwrap(), 42);
        for bad in ["", "-1", "1-2", "x"] {
            let err = seq_of(&EntryId::new(bad)).unwrap_err().to_string();
            assert!(err.contains("decimal sequence number"), "{bad}: {err}");
        }
    }
}
