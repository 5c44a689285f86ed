//! The time base of the envelope: milliseconds since the Unix epoch by the
//! system clock. `Metadata::produced_at_ms`, `StreamPosition::Time` and the
//! time inside a `MessageId` are all counted this way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 for a clock set before 1970).
///
/// ```
/// let now = event_backbone_core::clock::now_ms();
/// assert!(now > 1_600_000_000_000);
/// ```
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
