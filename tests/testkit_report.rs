//! The conformance kit itself: cases a backend's capabilities exclude are
//! reported as not applicable (never as passed), and a broken backend fails.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_backbone::memory::MemoryChannel;
use event_backbone::testkit::{run_channel_suite, CaseOutcome};
use event_backbone::{
    ChannelCapabilities, Delivery, Entry, EntryId, GroupStart, Metadata, Result, StreamChannel,
    StreamInfo, StreamPosition,
};

/// The in-memory channel, declaring fewer capabilities, or losing its acks.
#[derive(Debug)]
struct Declared {
    inner: MemoryChannel,
    caps: ChannelCapabilities,
    forget_acks: bool,
}

#[async_trait]
impl StreamChannel for Declared {
    fn backend(&self) -> &'static str {
        "declared"
    }
    fn capabilities(&self) -> ChannelCapabilities {
        self.caps
    }
    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        self.inner.append_many(stream, batch).await
    }
    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        self.inner.ensure_group(stream, group, start).await
    }
    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .read_group(stream, group, consumer, count, block)
            .await
    }
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        if self.forget_acks {
            return Ok(());
        }
        self.inner.ack(stream, group, ids).await
    }
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .claim_stale(stream, group, consumer, min_idle, count)
            .await
    }
    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        self.inner.read_range(stream, from, to, count).await
    }
    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        self.inner.get(stream, id).await
    }
    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        self.inner.info(stream).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_cases_are_not_applicable_not_passed() {
    let factory = || async {
        Ok(Arc::new(Declared {
            inner: MemoryChannel::new(),
            caps: ChannelCapabilities::all()
                .with_claim(false)
                .with_get_by_id(false),
            forget_acks: false,
        }) as Arc<dyn StreamChannel>)
    };
    let report = run_channel_suite(&factory).await;
    println!("{report}");
    report.assert_passed();
    let na: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, CaseOutcome::NotApplicable(_)))
        .map(|c| c.name)
        .collect();
    assert_eq!(
        na,
        [
            "unacked_entry_is_claimed_after_min_idle",
            "get_by_id",
            "failed_handler_is_redelivered",
            "dead_letter_after_max_deliveries",
        ]
    );
    assert_eq!(report.passed() + na.len(), report.cases.len());
    assert!(report.cases.len() >= 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_loses_acks_fails_the_suite() {
    let factory = || async {
        Ok(Arc::new(Declared {
            inner: MemoryChannel::new(),
            caps: ChannelCapabilities::all().with_claim(false),
            forget_acks: true,
        }) as Arc<dyn StreamChannel>)
    };
    let report = run_channel_suite(&factory).await;
    let failed: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, CaseOutcome::Failed(_)))
        .map(|c| c.name)
        .collect();
    assert!(failed.contains(&"ack_removes_from_pending"), "{report}");
    assert!(
        failed.contains(&"info_reports_length_and_pending"),
        "{report}"
    );
    assert!(report.to_string().contains("FAILED"), "{report}");
}
