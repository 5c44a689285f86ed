//! Retry with exponential backoff and jitter.

use std::future::Future;
use std::time::Duration;

use crate::Result;

/// How often, and how patiently, to retry.
///
/// Delays grow from `initial_delay` by `multiplier` up to `max_delay`; with
/// jitter each delay is drawn uniformly from its upper half, so that many
/// clients that failed together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_core::RetryPolicy;
/// let policy = RetryPolicy::exponential(5)
///     .initial_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(2));
/// assert_eq!(policy.max_attempts(), 5);
/// assert!(policy.delay_before(2) <= Duration::from_millis(100));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: bool,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self::exponential(1)
    }

    /// Up to `max_attempts` attempts (at least 1), from 100 ms doubling up to
    /// 5 s, with jitter.
    pub fn exponential(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: true,
        }
    }

    /// The first delay.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest delay.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Growth factor of the delay (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier.max(1.0);
        self
    }

    /// Whether to randomise delays.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Attempts in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before attempt `attempt` (2 is the first retry).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(2).min(64) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        let capped = base.min(self.max_delay.as_secs_f64());
        let secs = if self.jitter {
            capped * (0.5 + fastrand::f64() * 0.5)
        } else {
            capped
        };
        Duration::from_secs_f64(secs)
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts are
    /// used up. Only transient errors ([`crate::Error::is_transient`]) are
    /// retried.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.max_attempts => {
                    attempt += 1;
                    let delay = self.delay_before(attempt);
                    tracing::warn!(error = %e, attempt, ?delay, "{what}: transient failure, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Default for RetryPolicy {
    /// Eight attempts, 100 ms doubling up to 5 s, with jitter: about 6 to
    /// 11 s in all, enough to ride out a server restart or a failover.
    fn default() -> Self {
        Self::exponential(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::exponential(10)
            .initial_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(50))
            .jitter(false);
        assert_eq!(p.delay_before(2), Duration::from_millis(10));
        assert_eq!(p.delay_before(3), Duration::from_millis(20));
        assert_eq!(p.delay_before(9), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn retries_transient_only() {
        let p = RetryPolicy::exponential(3).initial_delay(Duration::from_millis(1));
        let calls = AtomicU32::new(0);
        let r: Result<u32> = p
            .run("test", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err(Error::transient("memory", "testing", "flaky"))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 3);

        let calls = AtomicU32::new(0);
        let r: Result<()> = p
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::permanent("memory", "testing", "broken"))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a permanent error is not retried"
        );
    }
}
