//! Entry ids (`{xid}-{seq}`) and the conversion of rows to entries.

use bytes::Bytes;
use event_backbone_core::envelope::decode_metadata;
use event_backbone_core::{Entry, EntryId, Error, MalformedEntry, Result};

use crate::BACKEND;

/// An entry's place in its stream: the id of the transaction that appended
/// it, then its sequence number. Entries are read in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub xid: i64,
    pub seq: i64,
}

impl Position {
    /// Before every entry.
    pub const ZERO: Position = Position { xid: 0, seq: 0 };
    /// After every entry.
    pub const END: Position = Position {
        xid: i64::MAX,
        seq: i64::MAX,
    };

    /// The entry id: `{xid}-{seq}`.
    pub fn id(self) -> EntryId {
        EntryId::new(format!("{}-{}", self.xid, self.seq))
    }

    /// The position of an entry id, or [`Error::InvalidEntryId`].
    pub fn of(id: &EntryId) -> Result<Self> {
        let parsed = id
            .as_str()
            .split_once('-')
            .and_then(|(xid, seq)| Some((xid.parse().ok()?, seq.parse().ok()?)))
            .filter(|(xid, seq): &(i64, i64)| *xid >= 0 && *seq >= 0);
        match parsed {
            Some((xid, seq)) => Ok(Self { xid, seq }),
            None => Err(Error::InvalidEntryId {
                id: id.as_str().to_owned(),
                backend: BACKEND,
                expected: "{transaction id}-{sequence number}, such as 7391-42",
            }),
        }
    }

    /// The position just after this one.
    pub fn next(self) -> Self {
        Self {
            xid: self.xid,
            seq: self.seq.saturating_add(1),
        }
    }
}

/// The positions of several ids, as the two arrays the statements take.
pub(crate) fn columns(ids: &[EntryId]) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut xids = Vec::with_capacity(ids.len());
    let mut seqs = Vec::with_capacity(ids.len());
    for id in ids {
        let p = Position::of(id)?;
        xids.push(p.xid);
        seqs.push(p.seq);
    }
    Ok((xids, seqs))
}

/// An entry from its position and stored bytes; bytes that are not
/// metadata make a [`MalformedEntry`].
pub(crate) fn to_entry(at: Position, metadata: Vec<u8>) -> Entry {
    let raw = Bytes::from(metadata);
    Entry {
        id: at.id(),
        body: decode_metadata(&raw).map_err(|e| MalformedEntry::undecodable(&e, raw.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ones_say_what_is_expected() {
        let at = Position { xid: 7391, seq: 42 };
        assert_eq!(at.id().as_str(), "7391-42");
        assert_eq!(Position::of(&at.id()).unwrap(), at);
        for bad in ["42", "a-1", "1-", "-1-2", "1-2-3", ""] {
            let err = Position::of(&EntryId::new(bad)).unwrap_err().to_string();
            assert!(err.contains("7391-42"), "{bad}: {err}");
        }
        assert!(Position { xid: 1, seq: 9 } < Position { xid: 2, seq: 1 });
    }
}
