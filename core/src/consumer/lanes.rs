//! Order per key with concurrency: a lane per partition key that is busy,
//! holding the messages of that key that wait for the one in progress.
//! Messages of different keys run concurrently; those of one key run one
//! at a time, in the order they were read, a failed one (waiting for its
//! redelivery) holding back the later ones of its key only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::settle::InHand;
use crate::capabilities::Ordering;
use crate::envelope::Metadata;

/// The busy keys and what waits behind each.
#[derive(Clone, Default)]
pub(crate) struct Lanes {
    busy: Arc<Mutex<HashMap<String, VecDeque<InHand>>>>,
}

/// The key whose order a message keeps, under an ordering: its partition
/// key (per key), one key for all (stream), or none (unordered, and
/// messages without a partition key under per-key ordering).
pub(crate) fn lane_of(ordering: Ordering, metadata: &Metadata) -> Option<&str> {
    match ordering {
        Ordering::None => None,
        Ordering::Stream => Some(""),
        Ordering::PerKey => metadata.partition_key(),
    }
}

impl Lanes {
    /// Queues a message behind its key. Returns it back when the key was
    /// idle: the caller then runs the lane, starting with it.
    pub(crate) fn enter(&self, key: &str, queued: InHand) -> Option<InHand> {
        let mut busy = self.busy.lock().expect("lanes");
        match busy.get_mut(key) {
            Some(waiting) => {
                waiting.push_back(queued);
                None
            }
            None => {
                busy.insert(key.to_owned(), VecDeque::new());
                Some(queued)
            }
        }
    }

    /// The next message of a key, once the one before is settled; `None`
    /// frees the key.
    pub(crate) fn next(&self, key: &str) -> Option<InHand> {
        let mut busy = self.busy.lock().expect("lanes");
        let next = busy.get_mut(key).and_then(VecDeque::pop_front);
        if next.is_none() {
            busy.remove(key);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{MessageId, Origin, PARTITION_KEY_HEADER};

    fn metadata(key: Option<&str>) -> Metadata {
        let mut headers = std::collections::BTreeMap::new();
        if let Some(k) = key {
            headers.insert(PARTITION_KEY_HEADER.to_owned(), k.to_owned());
        }
        Metadata {
            message_id: MessageId::new(),
            operation: "op".into(),
            version: 0,
            uri: "u".into(),
            environment: None,
            produced_at_ms: 0,
            origin: Origin::Original,
            content_type: "application/postcard".into(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            headers,
            segments: Vec::new(),
            subject: None,
        }
    }

    #[test]
    fn lane_keys_follow_the_ordering() {
        let keyed = metadata(Some("k1"));
        let plain = metadata(None);
        assert_eq!(lane_of(Ordering::None, &keyed), None);
        assert_eq!(lane_of(Ordering::PerKey, &keyed), Some("k1"));
        assert_eq!(lane_of(Ordering::PerKey, &plain), None);
        assert_eq!(lane_of(Ordering::Stream, &plain), Some(""));
    }

    #[tokio::test]
    async fn a_busy_key_queues_and_frees_in_order() {
        let window = super::super::window::Window::new(8, 8);
        let lanes = Lanes::default();
        let mut queued = Vec::new();
        for n in 1..=4u32 {
            queued.push(InHand::for_test(n, window.admit(None).await));
        }
        let mut queued = queued.into_iter();
        let first = lanes
            .enter("k", queued.next().unwrap())
            .expect("an idle key runs at once");
        assert_eq!(first.delivery_count, 1);
        assert!(
            lanes.enter("k", queued.next().unwrap()).is_none(),
            "a busy key queues"
        );
        assert!(lanes.enter("k", queued.next().unwrap()).is_none());
        assert!(
            lanes.enter("other", queued.next().unwrap()).is_some(),
            "keys are independent"
        );
        assert_eq!(lanes.next("k").map(|q| q.delivery_count), Some(2));
        assert_eq!(lanes.next("k").map(|q| q.delivery_count), Some(3));
        assert!(lanes.next("k").is_none());
        let again = InHand::for_test(5, window.admit(None).await);
        assert!(
            lanes.enter("k", again).is_some(),
            "a drained key is idle again"
        );
    }
}
