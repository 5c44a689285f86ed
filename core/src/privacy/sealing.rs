//! The producer's side: hash the subject into the metadata and seal every
//! segment that is not `normal` with the subject's key.

use super::data_key::DataKey;
use super::seal::{seal_with, SealedFor};
use super::secret::Nonces;
use super::subject::{SubjectHash, SUBJECT_HEADER};
use super::{PersonalData, Subject};
use crate::envelope::{Metadata, SegmentClass, Segments};
use crate::{Error, Result};

/// Seals a message on its way out (after the interceptors, before its
/// payload is placed). Without a wait when the subject's key is cached.
pub(crate) async fn seal_message(
    personal: Option<&PersonalData>,
    subject: Option<&Subject>,
    metadata: &mut Metadata,
    segments: &mut Segments,
) -> Result<()> {
    let Some((personal, hash)) = prepare(personal, subject, metadata, segments)? else {
        return Ok(());
    };
    let key = match personal.vault().cached_sealing_key(&hash) {
        Some(key) => key,
        // Boxed: the common case (a cached key) keeps the send's future
        // small.
        None => Box::pin(personal.vault().sealing_key(&hash)).await?,
    };
    seal_segments(&key, &hash, metadata, segments);
    Ok(())
}

/// Checks the message and writes its subject's hash into the metadata; the
/// subject's hash if it has segments to seal.
fn prepare<'p>(
    personal: Option<&'p PersonalData>,
    subject: Option<&Subject>,
    metadata: &mut Metadata,
    segments: &Segments,
) -> Result<Option<(&'p PersonalData, SubjectHash)>> {
    if metadata.headers.contains_key(SUBJECT_HEADER) {
        return Err(Error::ReservedHeader {
            header: SUBJECT_HEADER,
            operation: metadata.operation.clone(),
        });
    }
    let Some(subject) = subject else {
        if personal.is_some_and(PersonalData::requires_subject) {
            if let Some((name, segment)) = segments.iter().find(|(_, s)| sealed_class(&s.class)) {
                return Err(Error::MissingSubject {
                    operation: metadata.operation.clone(),
                    segment: name.to_owned(),
                    class: segment.class.to_string(),
                });
            }
        }
        return Ok(None);
    };
    let Some(personal) = personal else {
        return Err(Error::SubjectWithoutVault {
            operation: metadata.operation.clone(),
        });
    };
    let hash = personal.subject_hash(subject.expose());
    metadata.subject = Some(hash);
    if !segments.iter().any(|(_, s)| sealed_class(&s.class)) {
        return Ok(None);
    }
    Ok(Some((personal, hash)))
}

fn sealed_class(class: &SegmentClass) -> bool {
    *class != SegmentClass::NORMAL
}

fn seal_segments(key: &DataKey, hash: &SubjectHash, metadata: &Metadata, segments: &mut Segments) {
    let message = metadata.original_id();
    let stream = super::seal::StreamKey::of(metadata);
    let mut nonces = Nonces::for_message();
    for (name, segment) in segments.iter_mut() {
        if !sealed_class(&segment.class) {
            continue;
        }
        let to = SealedFor {
            subject: hash,
            message: &message,
            stream,
            segment: name,
        };
        segment.data = seal_with(key, to, &segment.data, &mut nonces);
    }
}
