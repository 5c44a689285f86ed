//! The application's master key: it wraps every data key a vault stores,
//! so that the vault's store alone (or a backup of it) opens nothing.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::data_key::{DataKey, KeyId};
use super::secret::{fill_random, Key32};
use super::subject::SubjectHash;
use crate::{Error, Result};

/// Format byte of a wrapped data key of the first version (no master key
/// id, no time): still opened.
const WRAPPED_V1: u8 = 1;
/// Format byte, nonce, key, tag.
const WRAPPED_V1_LEN: usize = 1 + 12 + 32 + 16;
/// Bound into every wrapped key of the first version.
const AD_V1: &[u8] = b"event-backbone vault v1\0";
/// Format byte of a wrapped data key that names its master key and the
/// time it was made.
const WRAPPED_V2: u8 = 2;
/// Format byte, master key id, made at (ms, big-endian), nonce, key, tag.
const WRAPPED_V2_LEN: usize = 1 + 8 + 8 + 12 + 32 + 16;
/// Bound into every wrapped key with the subject, key id, master key id
/// and time.
const AD_V2: &[u8] = b"event-backbone vault v2\0";

/// The id of a [`MasterKey`]: 8 bytes derived from the key (HMAC-SHA-256
/// of a fixed label), shown as 16 hex digits. Every wrapped data key names
/// the master key that wrapped it, so that several can be in use while keys
/// are rewrapped under a new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MasterKeyId([u8; 8]);

impl MasterKeyId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

super::secret::hex_id!(MasterKeyId, "master key id");

/// A data key opened from its wrapped form, with what the form says
/// about it.
pub(crate) struct Unwrapped {
    pub(crate) key: DataKey,
    /// When it was made, in ms since the Unix epoch (0: the first format).
    pub(crate) made_at_ms: u64,
}

/// The master key (256 bits) that wraps data keys with AES-256-GCM (a
/// random 96-bit nonce each) before a vault stores them.
///
/// Supplied by the application from its secret manager: an environment
/// variable ([`MasterKey::from_env`]) or code. `Debug` shows `***`, and no
/// error holds it.
///
/// ```
/// use event_backbone_core::privacy::{DataKey, MasterKey, SubjectKey};
/// let master = MasterKey::generate();
/// let subject = SubjectKey::generate().hash("user-42");
/// let key = DataKey::generate();
/// let wrapped = master.wrap(&subject, &key);
/// let back = master.unwrap(&subject, key.id(), &wrapped)?;
/// assert_eq!(back.expose_bytes(), key.expose_bytes());
/// // Another master key opens nothing.
/// assert!(MasterKey::generate().unwrap(&subject, key.id(), &wrapped).is_err());
/// assert_eq!(format!("{master:?}"), "MasterKey(***)");
/// # Ok::<(), event_backbone_core::Error>(())
/// ```
#[derive(Clone)]
pub struct MasterKey {
    key: Key32,
    id: MasterKeyId,
}

impl MasterKey {
    /// The environment variable [`MasterKey::from_env`] reads.
    pub const ENV: &'static str = "EVENT_BACKBONE_MASTER_KEY";

    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::with(Key32::new(bytes))
    }

    fn with(key: Key32) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key.bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"event-backbone master key id v1\0");
        let full = mac.finalize().into_bytes();
        let id = MasterKeyId(full[..8].try_into().expect("8 bytes"));
        Self { key, id }
    }

    /// A key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        Key32::from_hex("master key", text).map(Self::with)
    }

    /// The key in [`MasterKey::ENV`] (64 hex digits).
    pub fn from_env() -> Result<Self> {
        Self::from_env_var(Self::ENV)
    }

    /// The key in another environment variable (64 hex digits).
    pub fn from_env_var(variable: &str) -> Result<Self> {
        Key32::from_env("master key", variable).map(Self::with)
    }

    /// A new random key (for tests and examples).
    pub fn generate() -> Self {
        Self::with(Key32::random())
    }

    /// The key's id, which every data key it wraps names.
    pub fn id(&self) -> MasterKeyId {
        self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.key.bytes()).expect("a 32-byte key")
    }

    /// The data key, encrypted and bound to its subject and id, made now.
    pub fn wrap(&self, subject: &SubjectHash, key: &DataKey) -> Vec<u8> {
        self.wrap_made_at(subject, key, crate::clock::now_ms())
    }

    /// The data key, encrypted and bound to its subject, id, this master
    /// key and the time it was made (ms since the Unix epoch), which the
    /// wrapped form carries.
    pub fn wrap_made_at(&self, subject: &SubjectHash, key: &DataKey, made_at_ms: u64) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let ad = associated_data_v2(subject, key.id(), &self.id, made_at_ms);
        let sealed = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.expose_bytes(),
                    aad: &ad,
                },
            )
            .expect("encrypting 32 bytes in memory cannot fail");
        let mut out = Vec::with_capacity(WRAPPED_V2_LEN);
        out.push(WRAPPED_V2);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&made_at_ms.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a key made by [`MasterKey::wrap`] for the same subject and id.
    pub fn unwrap(&self, subject: &SubjectHash, id: KeyId, wrapped: &[u8]) -> Result<DataKey> {
        self.unwrap_full(subject, id, wrapped).map(|u| u.key)
    }

    /// The master key that wrapped `wrapped` (`None` for the first format,
    /// which does not say), or why the bytes are not a wrapped key.
    pub fn wrapped_by(wrapped: &[u8]) -> Result<Option<MasterKeyId>> {
        match (wrapped.first(), wrapped.len()) {
            (Some(&WRAPPED_V2), WRAPPED_V2_LEN) => Ok(Some(MasterKeyId(
                wrapped[1..9].try_into().expect("8 bytes"),
            ))),
            (Some(&WRAPPED_V1), WRAPPED_V1_LEN) => Ok(None),
            _ => Err(Error::KeyVault {
                reason: format!(
                    "a wrapped data key is {WRAPPED_V2_LEN} bytes starting with format \
                     {WRAPPED_V2} (or {WRAPPED_V1_LEN} with format {WRAPPED_V1}); found {} bytes",
                    wrapped.len()
                ),
            }),
        }
    }

    pub(crate) fn unwrap_full(
        &self,
        subject: &SubjectHash,
        id: KeyId,
        wrapped: &[u8],
    ) -> Result<Unwrapped> {
        let refuse = |reason: &str| Error::KeyVault {
            reason: format!("data key {id} of subject {subject}: {reason}"),
        };
        let master = Self::wrapped_by(wrapped).map_err(|e| refuse(&e.to_string()))?;
        let (ad, made_at_ms, body) = match master {
            Some(master) => {
                if master != self.id {
                    return Err(refuse(&format!(
                        "it is wrapped by master key {master}, not by {} (give the vault the \
                         master keys it still holds keys of: `.previous_master_key(...)`)",
                        self.id
                    )));
                }
                let made = u64::from_be_bytes(wrapped[9..17].try_into().expect("8 bytes"));
                (
                    associated_data_v2(subject, id, &master, made),
                    made,
                    &wrapped[17..],
                )
            }
            None => (associated_data_v1(subject, id), 0, &wrapped[1..]),
        };
        let nonce: [u8; 12] = body[..12].try_into().expect("12 bytes");
        let bytes = self
            .cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &body[12..],
                    aad: &ad,
                },
            )
            .map_err(|_| {
                refuse(
                    "it does not open with this master key (a different master key, or a \
                     record altered or moved from another subject)",
                )
            })?;
        let bytes = zeroize::Zeroizing::new(bytes);
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes);
        Ok(Unwrapped {
            key: DataKey::new(id, *key),
            made_at_ms,
        })
    }
}

fn associated_data_v1(subject: &SubjectHash, id: KeyId) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_V1.len() + 24);
    ad.extend_from_slice(AD_V1);
    ad.extend_from_slice(subject.as_bytes());
    ad.extend_from_slice(id.as_bytes());
    ad
}

fn associated_data_v2(
    subject: &SubjectHash,
    id: KeyId,
    master: &MasterKeyId,
    made_at_ms: u64,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_V2.len() + 40);
    ad.extend_from_slice(AD_V2);
    ad.extend_from_slice(subject.as_bytes());
    ad.extend_from_slice(id.as_bytes());
    ad.extend_from_slice(&master.0);
    ad.extend_from_slice(&made_at_ms.to_be_bytes());
    ad
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:?})", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::SubjectKey;

    #[test]
    fn a_wrapped_key_is_bound_to_its_subject_and_id() {
        let master = MasterKey::generate();
        let subjects = SubjectKey::generate();
        let (ann, bob) = (subjects.hash("ann"), subjects.hash("bob"));
        let key = DataKey::generate();
        let wrapped = master.wrap(&ann, &key);
        assert_eq!(wrapped.len(), WRAPPED_V2_LEN);
        assert_eq!(MasterKey::wrapped_by(&wrapped).unwrap(), Some(master.id()));
        assert!(master.unwrap(&ann, key.id(), &wrapped).is_ok());
        let moved = master.unwrap(&bob, key.id(), &wrapped).unwrap_err();
        assert!(moved.to_string().contains("does not open"), "{moved}");
        let other_id = DataKey::generate().id();
        assert!(master.unwrap(&ann, other_id, &wrapped).is_err());
        let mut flipped = wrapped.clone();
        flipped[30] ^= 1;
        assert!(master.unwrap(&ann, key.id(), &flipped).is_err());
        let short = master.unwrap(&ann, key.id(), &wrapped[..40]).unwrap_err();
        assert!(short.to_string().contains("found 40 bytes"), "{short}");
        let other = MasterKey::generate();
        let named = other.unwrap(&ann, key.id(), &wrapped).unwrap_err();
        assert!(
            named.to_string().contains(&master.id().to_string()),
            "the error names the master key that wrapped it: {named}"
        );
        // The time is bound: changed, the key does not open.
        let mut later = wrapped.clone();
        later[16] ^= 1;
        assert!(master.unwrap(&ann, key.id(), &later).is_err());
        // The key's bytes are not in the wrapped form.
        assert!(!wrapped
            .windows(32)
            .any(|w| w == key.expose_bytes().as_slice()));
    }

    /// A key wrapped in the first format (no master key id, no time), as
    /// vaults written before it hold.
    fn wrap_v1(master: &MasterKey, subject: &SubjectHash, key: &DataKey) -> Vec<u8> {
        let nonce = [7u8; 12];
        let sealed = master
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.expose_bytes(),
                    aad: &associated_data_v1(subject, key.id()),
                },
            )
            .unwrap();
        [&[WRAPPED_V1][..], &nonce, &sealed].concat()
    }

    #[test]
    fn keys_wrapped_in_the_first_format_still_open() {
        let master = MasterKey::generate();
        let ann = SubjectKey::generate().hash("ann");
        let key = DataKey::generate();
        let old = wrap_v1(&master, &ann, &key);
        assert_eq!(MasterKey::wrapped_by(&old).unwrap(), None);
        let opened = master.unwrap_full(&ann, key.id(), &old).unwrap();
        assert_eq!(opened.key.expose_bytes(), key.expose_bytes());
        assert_eq!(opened.made_at_ms, 0);
        assert!(MasterKey::generate().unwrap(&ann, key.id(), &old).is_err());
    }

    #[test]
    fn the_id_is_derived_from_the_key() {
        let bytes = [9u8; 32];
        assert_eq!(
            MasterKey::from_bytes(bytes).id(),
            MasterKey::from_bytes(bytes).id()
        );
        assert_ne!(MasterKey::generate().id(), MasterKey::generate().id());
        let id = MasterKey::from_bytes(bytes).id();
        assert_eq!(id.to_string().parse::<MasterKeyId>().unwrap(), id);
    }
}
