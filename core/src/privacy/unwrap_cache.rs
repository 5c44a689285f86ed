//! Data keys unwrapped before, by subject and id, with the wrapped bytes
//! they came from: a record read again opens without the cipher. The record
//! is still read every time, so an erasure counts at once.

use std::sync::Mutex;

use bytes::Bytes;

use super::data_key::{DataKey, KeyId};
use super::master_key::Unwrapped;
use super::subject::{BySubject, SubjectHash};
use crate::Result;

/// A key unwrapped before: the wrapped bytes it came from, the key, and
/// when it was made.
type Entry = (Bytes, DataKey, u64);

pub(crate) struct UnwrapCache {
    keys: Mutex<BySubject<(SubjectHash, KeyId), Entry>>,
    capacity: usize,
}

impl UnwrapCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            keys: Mutex::new(BySubject::default()),
            capacity,
        }
    }

    /// The key `wrapped` holds and when it was made: from the cache when
    /// these very bytes were unwrapped before, else from `unwrap`.
    pub(crate) fn get_or_unwrap(
        &self,
        subject: &SubjectHash,
        id: KeyId,
        wrapped: &Bytes,
        unwrap: impl FnOnce() -> Result<Unwrapped>,
    ) -> Result<(DataKey, u64)> {
        let slot = (*subject, id);
        if let Some((seen, key, made)) = self.keys.lock().expect("unwrap cache lock").get(&slot) {
            if seen == wrapped {
                return Ok((key.clone(), *made));
            }
        }
        let Unwrapped { key, made_at_ms } = unwrap()?;
        let mut keys = self.keys.lock().expect("unwrap cache lock");
        if keys.len() >= self.capacity {
            // Bounded by starting over: simpler than an order, and a
            // record read again costs one unwrap.
            keys.clear();
        }
        if self.capacity > 0 {
            keys.insert(slot, (wrapped.clone(), key.clone(), made_at_ms));
        }
        Ok((key, made_at_ms))
    }

    /// Forgets an erased subject's keys.
    pub(crate) fn erased(&self, subject: &SubjectHash) {
        self.keys
            .lock()
            .expect("unwrap cache lock")
            .retain(|(s, _), _| s != subject);
    }
}
