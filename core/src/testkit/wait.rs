//! Helpers for a backend's own tests, beside the conformance suites: names
//! that no other test uses, and waiting for something that happens in the
//! background.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`eventually`] waits before it fails the test.
pub const EVENTUALLY: Duration = Duration::from_secs(60);

/// A stream uri no other test uses: `test.{prefix}.{uuid}` (time-ordered).
///
/// ```
/// let a = event_backbone_core::testkit::unique_uri("orders");
/// let b = event_backbone_core::testkit::unique_uri("orders");
/// assert!(a.starts_with("test.orders.") && a != b);
/// ```
pub fn unique_uri(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

/// Polls `check` every 50 ms until it returns true; panics, naming `what`,
/// after [`EVENTUALLY`] (60 s).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let calls = AtomicU32::new(0);
/// event_backbone_core::testkit::eventually("the third call", || {
///     let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
///     async move { n >= 3 }
/// })
/// .await;
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # });
/// ```
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < EVENTUALLY,
            "timed out after {EVENTUALLY:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
