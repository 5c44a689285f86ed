//! What a backend promises. The conformance kit runs the cases a backend's
//! capabilities cover and reports the rest as not applicable.

/// Ordering a channel guarantees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// Entries of a stream are read in append order.
    Stream,
    /// Order holds per partition key only (Kafka with several partitions).
    PerKey,
    /// No ordering.
    None,
}

/// What a [`crate::StreamChannel`] promises.
///
/// ```
/// use event_backbone_core::{ChannelCapabilities, Ordering};
/// let caps = ChannelCapabilities::all().with_claim(false);
/// assert!(caps.consumer_groups && !caps.claim);
/// assert_eq!(caps.ordering, Ordering::Stream);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelCapabilities {
    /// Consumer groups that share work, each seeing every entry.
    pub consumer_groups: bool,
    /// Claiming entries another member left pending (`claim_stale`).
    pub claim: bool,
    /// Several members of one group receive entries at the same time (Kafka
    /// only with more than one partition: a partition has one reader per
    /// group).
    pub parallel_members: bool,
    /// Reading a range without a group (`read_range`).
    pub replay: bool,
    /// Reading one entry by id (`get`).
    pub get_by_id: bool,
    /// Delivery counts outlive the consumer: one restarted under the same
    /// name (or a member given the entries in a rebalance) goes on counting
    /// from the deliveries before, so that `max_deliveries` is reached even
    /// when every delivery crashes the process
    /// ([`crate::StreamChannel::redeliver`]).
    pub durable_delivery_counts: bool,
    /// Ordering scope.
    pub ordering: Ordering,
    /// Largest metadata entry it accepts, in bytes, if bounded.
    pub max_entry_bytes: Option<usize>,
    /// Listing the streams it holds
    /// ([`streams`](crate::StreamChannel::streams)).
    pub list_streams: bool,
}

impl ChannelCapabilities {
    /// Everything, with stream-wide order.
    pub const fn all() -> Self {
        Self {
            consumer_groups: true,
            claim: true,
            parallel_members: true,
            replay: true,
            get_by_id: true,
            durable_delivery_counts: true,
            ordering: Ordering::Stream,
            max_entry_bytes: None,
            list_streams: true,
        }
    }

    /// Sets `consumer_groups`.
    pub const fn with_consumer_groups(mut self, yes: bool) -> Self {
        self.consumer_groups = yes;
        self
    }

    /// Sets `claim`.
    pub const fn with_claim(mut self, yes: bool) -> Self {
        self.claim = yes;
        self
    }

    /// Sets `parallel_members`.
    pub const fn with_parallel_members(mut self, yes: bool) -> Self {
        self.parallel_members = yes;
        self
    }

    /// Sets `replay`.
    pub const fn with_replay(mut self, yes: bool) -> Self {
        self.replay = yes;
        self
    }

    /// Sets `get_by_id`.
    pub const fn with_get_by_id(mut self, yes: bool) -> Self {
        self.get_by_id = yes;
        self
    }

    /// Sets `durable_delivery_counts`.
    pub const fn with_durable_delivery_counts(mut self, yes: bool) -> Self {
        self.durable_delivery_counts = yes;
        self
    }

    /// Sets `ordering`.
    pub const fn with_ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    /// Sets `list_streams`.
    pub const fn with_list_streams(mut self, yes: bool) -> Self {
        self.list_streams = yes;
        self
    }

    /// Sets `max_entry_bytes`.
    pub const fn with_max_entry_bytes(mut self, max: Option<usize>) -> Self {
        self.max_entry_bytes = max;
        self
    }
}

/// What a [`crate::KeyValueStore`] promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// Keys expire after their TTL.
    pub ttl: bool,
    /// Largest value (one field) it accepts, in bytes, if bounded. Larger
    /// ones are refused with `Error::ValueTooLarge`. A store whose limit is
    /// per key (a document, an item) declares what one value may hold and
    /// refuses a key whose values add up to more with the same error.
    pub max_value_bytes: Option<usize>,
}

impl StoreCapabilities {
    /// Everything.
    pub const fn all() -> Self {
        Self {
            ttl: true,
            max_value_bytes: None,
        }
    }

    /// Sets `ttl`.
    pub const fn with_ttl(mut self, yes: bool) -> Self {
        self.ttl = yes;
        self
    }

    /// Sets `max_value_bytes`.
    pub const fn with_max_value_bytes(mut self, max: Option<usize>) -> Self {
        self.max_value_bytes = max;
        self
    }
}
