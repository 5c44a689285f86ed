//! Text about a message that may quote its personal data (a handler's
//! error, a decode error): sealed with the message's data subject's key
//! where it is kept (a dead letter's reason), so that erasing the subject
//! erases it too.

use super::seal::{key_id_for, open, seal, SealedFor};
use super::subject::SubjectHash;
use super::PersonalData;
use crate::envelope::{Metadata, SegmentClass};
use crate::hex::{decode_hex, encode_hex};
use crate::{Error, Result};

/// Header of a dead letter whose message holds personal data: the full
/// reason, sealed with the data subject's key (hex). The clear reason
/// (`dead-letter.reason`) then says only what kind of failure it was.
/// Read it back with [`PersonalData::open_dead_letter_reason`].
pub const SEALED_REASON_HEADER: &str = "dead-letter.sealed-reason";

/// What the sealed reason is bound to, beside the subject and the message
/// (not a segment name: segment names have no `#`).
const LABEL: &str = "#dead-letter.reason";

/// Whether a message has personal data (a segment of a class other than
/// `normal`, sealed or not): text about it must not be kept in clear.
pub(crate) fn holds_personal_data(metadata: &Metadata) -> bool {
    metadata
        .segments
        .iter()
        .any(|s| s.class != SegmentClass::NORMAL)
}

/// The subject of a message that has sealed segments: text about it is
/// sealed with its key.
fn sealed_subject(metadata: &Metadata) -> Option<SubjectHash> {
    let subject = metadata.subject?;
    holds_personal_data(metadata).then_some(subject)
}

/// `text` sealed with a key of the message's subject, as hex; `None` when
/// no key is at hand (erased, lost, the vault unreachable): the text is
/// then not kept at all.
pub(crate) async fn seal_text(
    personal: &PersonalData,
    metadata: &Metadata,
    text: &str,
) -> Option<String> {
    let subject = sealed_subject(metadata)?;
    let keys = personal.vault().opening_keys(&[subject]).await.ok()?;
    let key = keys.first()?.keys().first()?.clone();
    Some(bound_to(&subject, metadata, |to| {
        encode_hex(&seal(&key, to, text.as_bytes()))
    }))
}

/// Calls `f` with what a dead letter's sealed reason is bound to: its
/// subject, the original message, its stream and the label.
fn bound_to<T>(
    subject: &SubjectHash,
    metadata: &Metadata,
    f: impl FnOnce(SealedFor<'_>) -> T,
) -> T {
    let message = metadata.original_id();
    let stream = super::seal::StreamKey::of(metadata);
    f(SealedFor {
        subject,
        message: &message,
        stream,
        segment: LABEL,
    })
}

impl PersonalData {
    /// The full reason of a dead letter whose message holds personal data
    /// (header [`SEALED_REASON_HEADER`]), opened with its subject's key.
    /// `None` when the dead letter has no sealed reason, or its subject was
    /// erased since (the reason is erased with the rest).
    ///
    /// ```
    /// use event_backbone_core::{privacy::PersonalData, Metadata};
    ///
    /// /// Shows why a dead letter (read from `{stream}:dead-letter`) failed.
    /// async fn why(personal: &PersonalData, dead_letter: &Metadata) -> event_backbone_core::Result<()> {
    ///     match personal.open_dead_letter_reason(dead_letter).await? {
    ///         Some(reason) => eprintln!("{reason}"),
    ///         None => eprintln!("no sealed reason, or its subject was erased"),
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn open_dead_letter_reason(&self, metadata: &Metadata) -> Result<Option<String>> {
        let Some(sealed) = metadata.headers.get(SEALED_REASON_HEADER) else {
            return Ok(None);
        };
        let unsealable = |reason: String| Error::Unsealable {
            segment: SEALED_REASON_HEADER.to_owned(),
            message_id: metadata.message_id.to_string(),
            reason,
        };
        let subject = metadata
            .subject
            .ok_or_else(|| unsealable("the message names no data subject".to_owned()))?;
        let mut bytes = vec![0u8; sealed.len() / 2];
        decode_hex(sealed, &mut bytes)
            .ok_or_else(|| unsealable("the header is not hex".to_owned()))?;
        let id = key_id_for(&bytes, &subject).map_err(unsealable)?;
        let keys = self.vault().fresh_opening_keys(&[subject]).await?;
        let keys = keys.into_iter().next().unwrap_or_default();
        let Some(key) = keys.key(id) else {
            if super::opening::erased_for(&keys, metadata.produced_at_ms) {
                return Ok(None);
            }
            return Err(Error::DataKeyMissing {
                segment: SEALED_REASON_HEADER.to_owned(),
                message_id: metadata.message_id.to_string(),
                subject: subject.to_string(),
                key_id: id.to_string(),
                vault: self.vault().backend(),
            });
        };
        let plain = bound_to(&subject, metadata, |to| open(key, to, &bytes)).map_err(unsealable)?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| unsealable("the opened reason is not UTF-8".to_owned()))
    }
}
