//! The conformance kit itself: cases a backend's capabilities exclude are
//! reported as not applicable (never as passed), and a broken backend fails.

#[path = "../core/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use event_backbone::testkit::{
    channel_cases, run_channel_cases, run_channel_suite, CaseOutcome, ChannelCase,
};
use event_backbone::{ChannelCapabilities, StreamChannel};
use support::WatchedChannel;

fn channel() -> WatchedChannel {
    WatchedChannel::new(None, Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_cases_are_not_applicable_not_passed() {
    let factory = || async {
        let caps = ChannelCapabilities::all()
            .with_claim(false)
            .with_get_by_id(false);
        Ok(Arc::new(channel().declaring(caps)) as Arc<dyn StreamChannel>)
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
        // Redelivery needs no claiming: those cases run.
        ["unacked_entry_is_claimed_after_min_idle", "get_by_id"]
    );
    assert_eq!(report.passed() + na.len(), report.cases.len());
    assert!(report.cases.len() >= 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_loses_acks_fails_the_suite() {
    let factory = || async {
        let caps = ChannelCapabilities::all().with_claim(false);
        Ok(Arc::new(channel().declaring(caps).forgetting_acks()) as Arc<dyn StreamChannel>)
    };
    // The cases about acknowledgements; the others would each wait out
    // their time limit for a pending list that never empties.
    let about_acks: Vec<ChannelCase> = channel_cases()
        .into_iter()
        .filter(|c| {
            [
                "ack_removes_from_pending",
                "info_reports_length_and_pending",
            ]
            .contains(&c.name)
        })
        .collect();
    assert_eq!(about_acks.len(), 2);
    let report = run_channel_cases(&factory, None, about_acks).await;
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
