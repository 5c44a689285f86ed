//! The data subject of a message: the person its personal data belongs to,
//! and the keyed hash of their id that the stream carries instead of it.

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::secret::Key32;
pub use crate::envelope::{SubjectHash, SUBJECT_HEADER};
use crate::Result;

/// Hashes a [`SubjectHash`] for a `HashMap` by taking 8 of its bytes: it is
/// already the output of a keyed hash, so a second one (SipHash) buys
/// nothing.
#[derive(Default)]
pub(crate) struct SubjectHasher(u64);

impl std::hash::Hasher for SubjectHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// A `HashMap` keyed by subject hash.
pub(crate) type BySubject<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<SubjectHasher>>;

/// The secret that subject ids are hashed with (HMAC-SHA-256): the same on
/// every producer and wherever subjects are erased or exported, and kept for
/// as long as the streams are (a new key would not find the old messages).
///
/// `Debug` shows `***`.
///
/// ```
/// use event_backbone_core::privacy::SubjectKey;
/// let key = SubjectKey::from_hex(&"2a".repeat(32))?;
/// assert_eq!(key.hash("user-42"), key.hash("user-42"));
/// assert_ne!(key.hash("user-42"), key.hash("user-43"));
/// assert_eq!(key.hash("user-42").to_string().len(), 32);
/// assert_eq!(format!("{key:?}"), "SubjectKey(***)");
/// # Ok::<(), event_backbone_core::Error>(())
/// ```
#[derive(Clone)]
pub struct SubjectKey {
    key: Key32,
    /// The MAC keyed and fed the domain prefix once: each hash clones it.
    keyed: Hmac<Sha256>,
}

impl SubjectKey {
    /// The environment variable [`SubjectKey::from_env`] reads.
    pub const ENV: &'static str = "EVENT_BACKBONE_SUBJECT_KEY";

    fn new(key: Key32) -> Self {
        let mut keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
            .expect("HMAC takes a key of any length");
        keyed.update(b"event-backbone subject v1\0");
        Self { key, keyed }
    }

    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::new(Key32::new(bytes))
    }

    /// A key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        Key32::from_hex("subject key", text).map(Self::new)
    }

    /// The key in [`SubjectKey::ENV`] (64 hex digits).
    pub fn from_env() -> Result<Self> {
        Self::from_env_var(Self::ENV)
    }

    /// The key in another environment variable (64 hex digits).
    pub fn from_env_var(variable: &str) -> Result<Self> {
        Key32::from_env("subject key", variable).map(Self::new)
    }

    /// A new random key (for tests and examples: a real deployment keeps
    /// one key for the life of its streams).
    pub fn generate() -> Self {
        Self::new(Key32::random())
    }

    /// The hash of a subject id.
    pub fn hash(&self, subject: &str) -> SubjectHash {
        let mut mac = self.keyed.clone();
        mac.update(subject.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        SubjectHash::from_bytes(out)
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectKey({:?})", self.key)
    }
}

/// A value that names a data subject: strings, integers, UUIDs, and
/// `Option`s of them (`None`: the message has no subject).
///
/// `#[subject]` on a contract parameter needs its type (or the type of the
/// field it names) to implement this.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name a data subject",
    note = "a subject id is a string, an integer, a UUID or an `Option` of one (implement \
            `AsSubject` for your own id type); for a field of a struct parameter, use \
            `#[subject(field = \"id\")]`"
)]
pub trait AsSubject {
    /// The subject id, `None` for no subject.
    fn subject_id(&self) -> Option<Cow<'_, str>>;
}

impl AsSubject for str {
    fn subject_id(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl AsSubject for String {
    fn subject_id(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl AsSubject for uuid::Uuid {
    fn subject_id(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.to_string()))
    }
}

impl<T: AsSubject + ?Sized> AsSubject for &T {
    fn subject_id(&self) -> Option<Cow<'_, str>> {
        (**self).subject_id()
    }
}

impl<T: AsSubject> AsSubject for Option<T> {
    fn subject_id(&self) -> Option<Cow<'_, str>> {
        self.as_ref().and_then(AsSubject::subject_id)
    }
}

macro_rules! integer_subjects {
    ($($t:ty),*) => {$(
        impl AsSubject for $t {
            fn subject_id(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Owned(self.to_string()))
            }
        }
    )*};
}
integer_subjects!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_the_key_and_reads_back_from_text() {
        let a = SubjectKey::generate();
        let b = SubjectKey::generate();
        assert_ne!(a.hash("ann"), b.hash("ann"));
        let h = a.hash("ann");
        assert_eq!(h.to_string().parse::<SubjectHash>().unwrap(), h);
        let err = "not-hex".parse::<SubjectHash>().unwrap_err().to_string();
        assert!(
            err.contains("7 characters") && err.contains("32 hex digits"),
            "{err}"
        );
        let err = "ann@example.com"
            .parse::<SubjectHash>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ann"), "the text is quoted: {err}");
    }

    #[test]
    fn the_hash_is_pinned() {
        // Computed independently (Python's hmac module). A change here would
        // make every stream's old messages unfindable by subject.
        let key = SubjectKey::from_bytes([7; 32]);
        assert_eq!(
            key.hash("user-42").to_string(),
            "2d15b85507ed63f568066ebc42048416"
        );
    }

    #[test]
    fn subjects_of_every_kind() {
        assert_eq!(42u64.subject_id().as_deref(), Some("42"));
        assert_eq!("ann".subject_id().as_deref(), Some("ann"));
        assert_eq!(None::<u64>.subject_id(), None);
        assert_eq!(Some(String::from("x")).subject_id().as_deref(), Some("x"));
    }
}
