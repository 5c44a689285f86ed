//! Order per key with concurrency: a lane per partition key that is busy,
//! holding the messages of that key that wait for the one in progress.
//! Messages of different keys run concurrently; those of one key run one
//! at a time, in the order they were read, a failed one (waiting for its
//! redelivery) holding back the later ones of its key only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

use crate::capabilities::Ordering;
use crate::message::Message;

/// A message read and not yet settled, with the window slot it takes.
pub(crate) struct Queued {
    pub(crate) message: Message,
    pub(crate) delivery_count: u32,
    pub(crate) slot: OwnedSemaphorePermit,
}

/// The busy keys and what waits behind each.
#[derive(Clone, Default)]
pub(crate) struct Lanes {
    busy: Arc<Mutex<HashMap<String, VecDeque<Queued>>>>,
}

/// The key whose order a message keeps, under an ordering: its partition
/// key (per key), one key for all (stream), or none (unordered, and
/// messages without a partition key under per-key ordering).
pub(crate) fn lane_of(ordering: Ordering, message: &Message) -> Option<String> {
    match ordering {
        Ordering::None => None,
        Ordering::Stream => Some(String::new()),
        Ordering::PerKey => message.metadata().partition_key().map(str::to_owned),
    }
}

impl Lanes {
    /// Queues a message behind its key. Returns it back when the key was
    /// idle: the caller then runs the lane, starting with it.
    pub(crate) fn enter(&self, key: &str, queued: Queued) -> Option<Queued> {
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
    pub(crate) fn next(&self, key: &str) -> Option<Queued> {
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
    use crate::channel::EntryId;
    use crate::envelope::{MessageId, Origin, Segments};
    use crate::envelope::{Metadata, PARTITION_KEY_HEADER};
    use tokio::sync::Semaphore;

    fn message(key: Option<&str>) -> Message {
        let mut headers = std::collections::BTreeMap::new();
        if let Some(k) = key {
            headers.insert(PARTITION_KEY_HEADER.to_owned(), k.to_owned());
        }
        let metadata = Metadata {
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
        };
        Message::new(EntryId::new("1"), metadata, Segments::new())
    }

    #[test]
    fn lane_keys_follow_the_ordering() {
        let keyed = message(Some("k1"));
        let plain = message(None);
        assert_eq!(lane_of(Ordering::None, &keyed), None);
        assert_eq!(lane_of(Ordering::PerKey, &keyed).as_deref(), Some("k1"));
        assert_eq!(lane_of(Ordering::PerKey, &plain), None);
        assert_eq!(lane_of(Ordering::Stream, &plain).as_deref(), Some(""));
    }

    #[test]
    fn a_busy_key_queues_and_frees_in_order() {
        let window = Arc::new(Semaphore::new(8));
        let queued = |n: u32| Queued {
            message: message(Some("k")),
            delivery_count: n,
            slot: window.clone().try_acquire_owned().unwrap(),
        };
        let lanes = Lanes::default();
        let first = lanes
            .enter("k", queued(1))
            .expect("an idle key runs at once");
        assert_eq!(first.delivery_count, 1);
        assert!(lanes.enter("k", queued(2)).is_none(), "a busy key queues");
        assert!(lanes.enter("k", queued(3)).is_none());
        assert!(
            lanes.enter("other", queued(9)).is_some(),
            "keys are independent"
        );
        assert_eq!(lanes.next("k").map(|q| q.delivery_count), Some(2));
        assert_eq!(lanes.next("k").map(|q| q.delivery_count), Some(3));
        assert!(lanes.next("k").is_none());
        assert!(
            lanes.enter("k", queued(4)).is_some(),
            "a drained key is idle again"
        );
    }
}
