//! The producer's side: hash the subject into the header and seal every
//! segment that is not `normal` with the subject's key.

use super::seal::{seal, SealedFor};
use super::subject::SUBJECT_HEADER;
use super::{PersonalData, Subject};
use crate::envelope::{Metadata, SegmentClass, Segments};
use crate::{Error, Result};

/// Seals a message on its way out (after the interceptors, before its
/// payload is placed).
pub(crate) async fn seal_message(
    personal: Option<&PersonalData>,
    subject: Option<&Subject>,
    metadata: &mut Metadata,
    segments: &mut Segments,
) -> Result<()> {
    if metadata.headers.contains_key(SUBJECT_HEADER) {
        return Err(Error::ReservedHeader {
            header: SUBJECT_HEADER,
            operation: metadata.operation.clone(),
        });
    }
    let sealed_class = |class: &SegmentClass| *class != SegmentClass::NORMAL;
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
        return Ok(());
    };
    let Some(personal) = personal else {
        return Err(Error::SubjectWithoutVault {
            operation: metadata.operation.clone(),
        });
    };
    let hash = personal.subject_hash(subject.expose());
    metadata
        .headers
        .insert(SUBJECT_HEADER.to_owned(), hash.to_string());
    if !segments.iter().any(|(_, s)| sealed_class(&s.class)) {
        return Ok(());
    }
    let key = personal.vault().sealing_key(&hash).await?;
    let message = metadata.original_id();
    for (name, segment) in segments.iter_mut() {
        if !sealed_class(&segment.class) {
            continue;
        }
        let to = SealedFor {
            subject: &hash,
            message: &message,
            segment: name,
        };
        segment.data = seal(&key, to, &segment.data);
    }
    Ok(())
}
