//! The application's master key: it wraps every data key a vault stores,
//! so that the vault's store alone (or a backup of it) opens nothing.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::data_key::{DataKey, KeyId};
use super::secret::{fill_random, Key32};
use super::subject::SubjectHash;
use crate::{Error, Result};

/// Format byte of a wrapped data key.
const WRAPPED_V1: u8 = 1;
/// Format byte, nonce, key, tag.
const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;
/// Bound into every wrapped key with the subject and the key id.
const AD_PREFIX: &[u8] = b"event-backbone vault v1\0";

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
pub struct MasterKey(Key32);

impl MasterKey {
    /// The environment variable [`MasterKey::from_env`] reads.
    pub const ENV: &'static str = "EVENT_BACKBONE_MASTER_KEY";

    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Key32::new(bytes))
    }

    /// A key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        Key32::from_hex("master key", text).map(Self)
    }

    /// The key in [`MasterKey::ENV`] (64 hex digits).
    pub fn from_env() -> Result<Self> {
        Self::from_env_var(Self::ENV)
    }

    /// The key in another environment variable (64 hex digits).
    pub fn from_env_var(variable: &str) -> Result<Self> {
        Key32::from_env("master key", variable).map(Self)
    }

    /// A new random key (for tests and examples).
    pub fn generate() -> Self {
        Self(Key32::random())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.bytes()).expect("a 32-byte key")
    }

    /// The data key, encrypted and bound to its subject and id.
    pub fn wrap(&self, subject: &SubjectHash, key: &DataKey) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let ad = associated_data(subject, key.id());
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
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAPPED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a key made by [`MasterKey::wrap`] for the same subject and id.
    pub fn unwrap(&self, subject: &SubjectHash, id: KeyId, wrapped: &[u8]) -> Result<DataKey> {
        let refuse = |reason: &str| Error::KeyVault {
            reason: format!("data key {id} of subject {subject}: {reason}"),
        };
        if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAPPED_V1 {
            return Err(refuse(&format!(
                "expected {WRAPPED_LEN} bytes starting with format {WRAPPED_V1}, found {} bytes",
                wrapped.len()
            )));
        }
        let nonce: [u8; 12] = wrapped[1..13].try_into().expect("12 bytes");
        let ad = associated_data(subject, id);
        let bytes = self
            .cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &wrapped[13..],
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
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        let out = DataKey::new(id, key);
        zeroize::Zeroize::zeroize(&mut key);
        Ok(out)
    }
}

fn associated_data(subject: &SubjectHash, id: KeyId) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_PREFIX.len() + 24);
    ad.extend_from_slice(AD_PREFIX);
    ad.extend_from_slice(subject.as_bytes());
    ad.extend_from_slice(id.as_bytes());
    ad
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:?})", self.0)
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
        assert_eq!(wrapped.len(), WRAPPED_LEN);
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
        // The key's bytes are not in the wrapped form.
        assert!(!wrapped
            .windows(32)
            .any(|w| w == key.expose_bytes().as_slice()));
    }
}
