//! What a consumer counts: each count is kept for [`ConsumerStats`] and
//! reported to the metrics recorder in the same step, so the two agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::lifetime::ConsumerStats;
use crate::telemetry::instruments::ConsumerMetrics;

#[derive(Debug)]
pub(crate) struct Counters {
    received: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    claimed: AtomicU64,
    redelivered: AtomicU64,
    pub(crate) metrics: Arc<ConsumerMetrics>,
}

impl Counters {
    pub(crate) fn new(metrics: Arc<ConsumerMetrics>) -> Self {
        Self {
            received: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            metrics,
        }
    }

    pub(crate) fn received(&self, entries: u64) {
        self.received.fetch_add(entries, Ordering::Relaxed);
        self.metrics.received.increment(entries);
    }

    pub(crate) fn handled(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.metrics.handled.increment(1);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.metrics.failed.increment(1);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.metrics.dead_lettered.increment(1);
    }

    pub(crate) fn claimed(&self, entries: u64) {
        self.claimed.fetch_add(entries, Ordering::Relaxed);
        self.metrics.claimed.increment(entries);
    }

    pub(crate) fn redelivered(&self) {
        self.redelivered.fetch_add(1, Ordering::Relaxed);
        self.metrics.redelivered.increment(1);
    }

    pub(crate) fn snapshot(&self) -> ConsumerStats {
        ConsumerStats {
            received: self.received.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
        }
    }
}
