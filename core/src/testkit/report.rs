//! Running the suites: how each case ended, and the report of a suite.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::case::{CaseResult, ChannelCase};
use super::channel_cases::channel_cases;
use super::harness::{ChannelFactory, ChannelHarness, RawEntryWriter, StoreFactory, StoreHarness};
use super::store_cases::store_cases;

/// Longest a case may run before it is reported as failed.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How one case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseOutcome {
    /// It passed.
    Passed,
    /// It failed, with the reason.
    Failed(String),
    /// The backend's capabilities exclude it.
    NotApplicable(String),
}

/// One line of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseReport {
    /// The case name.
    pub name: &'static str,
    /// How it ended.
    pub outcome: CaseOutcome,
}

/// The outcome of a suite, case by case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteReport {
    /// `channel` or `store`.
    pub suite: &'static str,
    /// Every case, in order.
    pub cases: Vec<CaseReport>,
}

impl SuiteReport {
    fn count(&self, f: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    /// Cases passed.
    pub fn passed(&self) -> usize {
        self.count(|o| *o == CaseOutcome::Passed)
    }

    /// Cases failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Failed(_)))
    }

    /// Cases not applicable.
    pub fn not_applicable(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::NotApplicable(_)))
    }

    /// Panics, listing the failures, unless no case failed.
    pub fn assert_passed(&self) {
        assert!(self.failed() == 0, "conformance failures:\n{self}");
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            match &case.outcome {
                CaseOutcome::Passed => writeln!(f, "{}::{} ... ok", self.suite, case.name)?,
                CaseOutcome::Failed(why) => {
                    writeln!(f, "{}::{} ... FAILED: {why}", self.suite, case.name)?
                }
                CaseOutcome::NotApplicable(why) => {
                    writeln!(f, "{}::{} ... not applicable: {why}", self.suite, case.name)?
                }
            }
        }
        writeln!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.not_applicable()
        )
    }
}

pub(crate) async fn guarded(run: BoxFuture<'static, CaseResult>) -> CaseOutcome {
    let timeout = CASE_TIMEOUT;
    // Run on its own task, so that a panic in the backend is a failure of
    // this case rather than of the suite.
    match tokio::time::timeout(timeout, tokio::spawn(run)).await {
        Err(_) => CaseOutcome::Failed(format!("timed out after {timeout:?}")),
        Ok(Err(join)) => CaseOutcome::Failed(format!("panicked: {join}")),
        Ok(Ok(Err(failure))) => CaseOutcome::Failed(failure.to_string()),
        Ok(Ok(Ok(()))) => CaseOutcome::Passed,
    }
}

/// Runs every channel case against channels from `factory`, with payloads
/// in an in-memory store, one after the other.
pub async fn run_channel_suite(factory: &dyn ChannelFactory) -> SuiteReport {
    run_channel_suite_with(factory, None).await
}

/// Like [`run_channel_suite`], with payloads in stores from `stores`.
pub async fn run_channel_suite_with(
    factory: &dyn ChannelFactory,
    stores: Option<&dyn StoreFactory>,
) -> SuiteReport {
    run_channel_cases(factory, stores, channel_cases()).await
}

/// Runs some channel cases (from [`channel_cases`]), one after the other.
pub async fn run_channel_cases(
    factory: &dyn ChannelFactory,
    stores: Option<&dyn StoreFactory>,
    selected: Vec<ChannelCase>,
) -> SuiteReport {
    let mut cases = Vec::new();
    for case in selected {
        let outcome = match channel_harness(factory, stores, None).await {
            Err(e) => CaseOutcome::Failed(format!("the factory failed: {e}")),
            Ok(h) => match (case.applies)(&h.channel.capabilities()) {
                Err(why) => CaseOutcome::NotApplicable(why.to_owned()),
                Ok(()) => guarded((case.run)(h)).await,
            },
        };
        cases.push(CaseReport {
            name: case.name,
            outcome,
        });
    }
    SuiteReport {
        suite: "channel",
        cases,
    }
}

/// Runs every store case against stores from `factory`.
pub async fn run_store_suite(factory: &dyn StoreFactory) -> SuiteReport {
    let mut cases = Vec::new();
    for case in store_cases() {
        let outcome = match factory.store().await {
            Err(e) => CaseOutcome::Failed(format!("the factory failed: {e}")),
            Ok(store) => match (case.applies)(&store.capabilities()) {
                Err(why) => CaseOutcome::NotApplicable(why.to_owned()),
                Ok(()) => guarded((case.run)(StoreHarness::new(store))).await,
            },
        };
        cases.push(CaseReport {
            name: case.name,
            outcome,
        });
    }
    SuiteReport {
        suite: "store",
        cases,
    }
}

pub(crate) async fn channel_harness(
    factory: &dyn ChannelFactory,
    stores: Option<&dyn StoreFactory>,
    raw: Option<Arc<dyn RawEntryWriter>>,
) -> crate::Result<ChannelHarness> {
    let channel = factory.channel().await?;
    let harness = match stores {
        Some(stores) => ChannelHarness::with_store(channel, stores.store().await?),
        None => ChannelHarness::new(channel),
    };
    Ok(match raw {
        Some(raw) => harness.with_raw_entries(raw),
        None => harness,
    })
}
