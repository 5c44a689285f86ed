use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A time-ordered message id (UUIDv7): ids sort by creation time, so they
/// make good keys and good log lines.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(uuid::Uuid);

impl MessageId {
    /// A new id for now: UUIDv7 with the Unix time in milliseconds, a
    /// 12-bit counter that keeps ids made in the same millisecond in order
    /// within the process, and 62 random bits (from a fast thread-local
    /// generator, not a system call per id) mixed with the process id, so
    /// that two processes forked from one (which share the generator's
    /// state and the counter) never make the same id.
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        // Packed (millis << 12 | counter) of the last id made.
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = crate::clock::now_ms();
        let mut last = LAST.load(Ordering::Relaxed);
        let packed = loop {
            let next = (now << 12).max(last + 1);
            match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        let (millis, counter) = (packed >> 12, (packed & 0xfff) as u16);
        let mut bytes = [0u8; 10];
        bytes[..2].copy_from_slice(&counter.to_be_bytes());
        let random = fastrand::u64(..) ^ (u64::from(std::process::id()) << 24);
        bytes[2..].copy_from_slice(&random.to_be_bytes());
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn timestamp_ms(&self) -> Option<u64> {
        self.0.get_timestamp().map(|ts| {
            let (secs, nanos) = ts.to_unix();
            secs * 1000 + u64::from(nanos) / 1_000_000
        })
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<uuid::Uuid> for MessageId {
    fn from(value: uuid::Uuid) -> Self {
        Self(value)
    }
}

impl MessageId {
    /// Appends the id as [`Display`](fmt::Display) shows it (hyphenated,
    /// lower case), without the formatter.
    pub(crate) fn push_to(&self, out: &mut String) {
        let mut buf = uuid::Uuid::encode_buffer();
        out.push_str(self.0.hyphenated().encode_lower(&mut buf));
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.0.hyphenated())
    }
}

impl FromStr for MessageId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| Error::InvalidName {
                what: "message id",
                value: s.to_owned(),
                reason: "expected a UUID such as 0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_together_stay_ordered_and_distinct() {
        let ids: Vec<MessageId> = (0..10_000).map(|_| MessageId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[0].as_uuid().get_version_num(), 7);
        let now = crate::clock::now_ms();
        assert!(ids[0].timestamp_ms().unwrap().abs_diff(now) < 5_000);
    }

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
        assert!(a.timestamp_ms().unwrap() > 1_600_000_000_000);
        assert!("nope".parse::<MessageId>().is_err());
    }
}
