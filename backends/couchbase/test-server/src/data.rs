//! The documents: per bucket and collection, in memory, with flags, CAS and
//! expiry. Expired documents are removed when they are next touched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Couchbase's document limit: 20 MiB.
pub const MAX_DOCUMENT: usize = 20 * 1024 * 1024;

/// Expiry values up to this many seconds are relative; larger ones are a
/// unix time.
const RELATIVE_EXPIRY_LIMIT: u32 = 30 * 24 * 60 * 60;

/// A stored document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub value: Vec<u8>,
    pub flags: u32,
    pub datatype: u8,
    pub cas: u64,
    /// Unix seconds after which the document is gone.
    pub expires: Option<u64>,
}

/// How a write goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// SET: create or overwrite.
    Upsert,
    /// ADD: only if absent.
    Insert,
    /// REPLACE: only if present.
    Replace,
}

/// Why an operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    /// It exists (ADD), or its CAS is not the one given.
    Exists,
    TooLarge,
}

/// Where a document lives: bucket, collection id, key.
pub type Address<'a> = (&'a str, u32, &'a [u8]);

/// The documents of one collection, by key.
type Collection = HashMap<Vec<u8>, Document>;

#[derive(Default)]
pub struct Data {
    /// By (bucket, collection id).
    documents: Mutex<HashMap<(String, u32), Collection>>,
    cas: std::sync::atomic::AtomicU64,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The unix time an expiry field means, `None` for no expiry.
pub fn expiry_time(expiry: u32, now: u64) -> Option<u64> {
    match expiry {
        0 => None,
        e if e <= RELATIVE_EXPIRY_LIMIT => Some(now + u64::from(e)),
        e => Some(u64::from(e)),
    }
}

fn live(doc: &Document, now: u64) -> bool {
    doc.expires.is_none_or(|t| t > now)
}

impl Data {
    fn next_cas(&self) -> u64 {
        self.cas.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    fn with_collection<T>(
        &self,
        bucket: &str,
        cid: u32,
        f: impl FnOnce(&mut Collection) -> T,
    ) -> T {
        let mut all = self.documents.lock().expect("documents");
        f(all.entry((bucket.to_owned(), cid)).or_default())
    }

    /// The live document at `address`.
    pub fn get(&self, (bucket, cid, key): Address<'_>) -> Option<Document> {
        let now = now_secs();
        self.with_collection(bucket, cid, |docs| match docs.get(key) {
            Some(doc) if live(doc, now) => Some(doc.clone()),
            Some(_) => {
                docs.remove(key);
                None
            }
            None => None,
        })
    }

    /// Writes a document; `cas` other than 0 must be the current one.
    /// Returns the new CAS.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        (bucket, cid, key): Address<'_>,
        how: Write,
        cas: u64,
        value: Vec<u8>,
        flags: u32,
        datatype: u8,
        expiry: u32,
    ) -> Result<u64, Refusal> {
        if value.len() > MAX_DOCUMENT {
            return Err(Refusal::TooLarge);
        }
        let now = now_secs();
        let new_cas = self.next_cas();
        self.with_collection(bucket, cid, |docs| {
            let current = docs.get(key).filter(|d| live(d, now));
            match (how, current) {
                (Write::Insert, Some(_)) => return Err(Refusal::Exists),
                (Write::Replace, None) => return Err(Refusal::NotFound),
                (_, None) if cas != 0 => return Err(Refusal::NotFound),
                (_, Some(d)) if cas != 0 && d.cas != cas => return Err(Refusal::Exists),
                _ => {}
            }
            docs.insert(
                key.to_vec(),
                Document {
                    value,
                    flags,
                    datatype,
                    cas: new_cas,
                    expires: expiry_time(expiry, now),
                },
            );
            Ok(new_cas)
        })
    }

    /// Removes a document; `cas` other than 0 must be the current one.
    pub fn delete(&self, (bucket, cid, key): Address<'_>, cas: u64) -> Result<u64, Refusal> {
        let now = now_secs();
        let new_cas = self.next_cas();
        self.with_collection(bucket, cid, |docs| {
            match docs.get(key).filter(|d| live(d, now)) {
                None => {
                    docs.remove(key);
                    Err(Refusal::NotFound)
                }
                Some(d) if cas != 0 && d.cas != cas => Err(Refusal::Exists),
                Some(_) => {
                    docs.remove(key);
                    Ok(new_cas)
                }
            }
        })
    }

    /// Sets a live document's expiry; returns it as it is now.
    pub fn touch(&self, (bucket, cid, key): Address<'_>, expiry: u32) -> Result<Document, Refusal> {
        let now = now_secs();
        let new_cas = self.next_cas();
        self.with_collection(bucket, cid, |docs| {
            match docs.get_mut(key).filter(|d| live(d, now)) {
                None => Err(Refusal::NotFound),
                Some(d) => {
                    d.expires = expiry_time(expiry, now);
                    d.cas = new_cas;
                    Ok(d.clone())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Address<'static> = ("b", 0, b"k");

    #[test]
    fn writes_follow_their_kind_and_cas() {
        let data = Data::default();
        assert_eq!(
            data.write(A, Write::Replace, 0, b"v".to_vec(), 0, 0, 0),
            Err(Refusal::NotFound)
        );
        let cas = data
            .write(A, Write::Insert, 0, b"v1".to_vec(), 7, 0, 0)
            .unwrap();
        assert_eq!(
            data.write(A, Write::Insert, 0, b"v".to_vec(), 0, 0, 0),
            Err(Refusal::Exists)
        );
        assert_eq!(
            data.write(A, Write::Upsert, cas + 100, b"v".to_vec(), 0, 0, 0),
            Err(Refusal::Exists)
        );
        let cas2 = data
            .write(A, Write::Upsert, cas, b"v2".to_vec(), 9, 1, 0)
            .unwrap();
        assert!(cas2 > cas);
        let doc = data.get(A).unwrap();
        assert_eq!(
            (doc.value.as_slice(), doc.flags, doc.datatype, doc.cas),
            (&b"v2"[..], 9, 1, cas2)
        );
        assert_eq!(data.get(("b", 8, b"k")), None, "collections are apart");
        assert_eq!(data.get(("other", 0, b"k")), None, "buckets are apart");
        assert_eq!(data.delete(A, cas), Err(Refusal::Exists));
        data.delete(A, 0).unwrap();
        assert_eq!(data.delete(A, 0), Err(Refusal::NotFound));
        assert_eq!(data.get(A), None);
    }

    #[test]
    fn expiry_is_relative_up_to_30_days_then_absolute() {
        assert_eq!(expiry_time(0, 1_000), None);
        assert_eq!(expiry_time(5, 1_000), Some(1_005));
        assert_eq!(
            expiry_time(RELATIVE_EXPIRY_LIMIT, 1_000),
            Some(1_000 + u64::from(RELATIVE_EXPIRY_LIMIT))
        );
        assert_eq!(
            expiry_time(RELATIVE_EXPIRY_LIMIT + 1, 1_000),
            Some(u64::from(RELATIVE_EXPIRY_LIMIT) + 1)
        );
    }

    #[test]
    fn expired_documents_are_gone() {
        let data = Data::default();
        // An absolute time in the past.
        let past = (now_secs() - 10) as u32;
        data.write(A, Write::Upsert, 0, b"v".to_vec(), 0, 0, past)
            .unwrap();
        assert_eq!(data.get(A), None);
        assert_eq!(
            data.write(A, Write::Replace, 0, b"v".to_vec(), 0, 0, 0),
            Err(Refusal::NotFound)
        );
        data.write(A, Write::Insert, 0, b"v".to_vec(), 0, 0, 0)
            .unwrap();
        assert_eq!(
            data.touch(A, past).map(|d| d.expires),
            Ok(Some(u64::from(past)))
        );
        assert_eq!(data.get(A), None);
    }

    #[test]
    fn documents_over_20_mib_are_refused() {
        let data = Data::default();
        let big = vec![0u8; MAX_DOCUMENT + 1];
        assert_eq!(
            data.write(A, Write::Upsert, 0, big, 0, 0, 0),
            Err(Refusal::TooLarge)
        );
        data.write(A, Write::Upsert, 0, vec![0u8; MAX_DOCUMENT], 0, 0, 0)
            .unwrap();
    }
}
