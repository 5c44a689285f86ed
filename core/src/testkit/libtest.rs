use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

use super::harness::{ChannelFactory, RawEntryWriter, StoreFactory, StoreHarness};
use super::report::{channel_harness, guarded, CaseOutcome};
use super::{channel_cases, store_cases};

/// Runs the conformance suites under the standard test output, one test
/// per case, for a test target with `harness = false`.
///
/// Cases that load the server heavily
/// ([`ChannelCase::alone`](super::ChannelCase::alone)) run first, one at a
/// time, then the others. Cases the backend's capabilities exclude are
/// listed as ignored, with the kind `not applicable`; running them anyway
/// (`--include-ignored`) fails them with the reason. A factory that fails (a server that is not there)
/// fails every case: the kit never skips silently.
#[must_use = "call .run()"]
pub struct Conformance {
    backend: String,
    channel: Option<Arc<dyn ChannelFactory>>,
    store: Option<Arc<dyn StoreFactory>>,
    payloads: Option<Arc<dyn StoreFactory>>,
    raw: Option<Arc<dyn RawEntryWriter>>,
}

impl std::fmt::Debug for Conformance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conformance")
            .field("backend", &self.backend)
            .field("channel", &self.channel.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl Conformance {
    /// Suites for `backend` (the prefix of every test name).
    pub fn new(backend: impl Into<String>) -> Self {
        Self {
            backend: backend.into(),
            channel: None,
            store: None,
            payloads: None,
            raw: None,
        }
    }

    /// Runs the channel suite on channels from this factory.
    pub fn channel(mut self, factory: impl ChannelFactory) -> Self {
        self.channel = Some(Arc::new(factory));
        self
    }

    /// Runs the store suite on stores from this factory.
    pub fn store(mut self, factory: impl StoreFactory) -> Self {
        self.store = Some(Arc::new(factory));
        self
    }

    /// Keeps the channel cases' payloads in stores from this factory
    /// (default: in-memory).
    pub fn channel_payloads_in(mut self, factory: impl StoreFactory) -> Self {
        self.payloads = Some(Arc::new(factory));
        self
    }

    /// Writes the raw entries of the cases about unreadable entries with
    /// `writer` (the in-memory channel needs none).
    pub fn raw_entries(mut self, writer: impl RawEntryWriter) -> Self {
        self.raw = Some(Arc::new(writer));
        self
    }

    /// The trials, one per case.
    pub fn trials(&self) -> Vec<Trial> {
        let (mut trials, alone) = self.split_trials();
        trials.extend(alone);
        trials
    }

    /// The trials: those that may run beside others, and those that run
    /// alone.
    fn split_trials(&self) -> (Vec<Trial>, Vec<Trial>) {
        let probe = runtime();
        let mut trials = Vec::new();
        let mut alone = Vec::new();
        if let Some(factory) = &self.channel {
            let caps = probe.block_on(factory.channel()).map(|c| c.capabilities());
            for case in channel_cases() {
                let name = format!("{}::channel::{}", self.backend, case.name);
                let applies = match &caps {
                    Ok(caps) => (case.applies)(caps).map_err(str::to_owned),
                    Err(_) => Ok(()),
                };
                if let Err(why) = applies {
                    trials.push(not_applicable(name, why));
                    continue;
                }
                let factory = factory.clone();
                let payloads = self.payloads.clone();
                let raw = self.raw.clone();
                let to = if case.alone { &mut alone } else { &mut trials };
                to.push(Trial::test(name, move || {
                    runtime().block_on(async move {
                        let harness = channel_harness(factory.as_ref(), payloads.as_deref(), raw)
                            .await
                            .map_err(|e| Failed::from(format!("the factory failed: {e}")))?;
                        outcome(guarded((case.run)(harness)).await)
                    })
                }));
            }
        }
        if let Some(factory) = &self.store {
            let caps = probe.block_on(factory.store()).map(|s| s.capabilities());
            for case in store_cases() {
                let name = format!("{}::store::{}", self.backend, case.name);
                let applies = match &caps {
                    Ok(caps) => (case.applies)(caps).map_err(str::to_owned),
                    Err(_) => Ok(()),
                };
                if let Err(why) = applies {
                    trials.push(not_applicable(name, why));
                    continue;
                }
                let factory = factory.clone();
                trials.push(Trial::test(name, move || {
                    runtime().block_on(async move {
                        let store = factory
                            .store()
                            .await
                            .map_err(|e| Failed::from(format!("the factory failed: {e}")))?;
                        outcome(guarded((case.run)(StoreHarness::new(store))).await)
                    })
                }));
            }
        }
        (trials, alone)
    }

    /// Runs several sets of suites in one test binary: a backend in more
    /// than one configuration (one and several partitions, say), each with
    /// a name of its own.
    pub fn run_all(suites: impl IntoIterator<Item = Conformance>) -> ExitCode {
        let (mut trials, mut alone) = (Vec::new(), Vec::new());
        for suite in suites {
            let (t, a) = suite.split_trials();
            trials.extend(t);
            alone.extend(a);
        }
        run_trials(trials, alone)
    }

    /// Parses the test arguments, runs the trials and returns the exit code.
    pub fn run(self) -> ExitCode {
        let (trials, alone) = self.split_trials();
        run_trials(trials, alone)
    }
}

/// Runs `alone` one at a time, then `trials` as the arguments say. The
/// heavy cases go first, while the server is fresh: a broker such as tansu
/// slows down as the other cases fill it with topics and groups.
fn run_trials(trials: Vec<Trial>, alone: Vec<Trial>) -> ExitCode {
    let args = Arguments::from_args();
    let first = if alone.is_empty() {
        None
    } else {
        let one_at_a_time = Arguments {
            test_threads: Some(1),
            ..args.clone()
        };
        Some(libtest_mimic::run(&one_at_a_time, alone))
    };
    let rest = libtest_mimic::run(&args, trials);
    match first {
        Some(first) if first.has_failed() => first.exit_code(),
        _ => rest.exit_code(),
    }
}

fn not_applicable(name: String, why: String) -> Trial {
    Trial::test(name, move || {
        Err(Failed::from(format!("not applicable: {why}")))
    })
    .with_kind("not applicable")
    .with_ignored_flag(true)
}

fn outcome(outcome: CaseOutcome) -> Result<(), Failed> {
    match outcome {
        CaseOutcome::Passed => Ok(()),
        CaseOutcome::Failed(why) => Err(Failed::from(why)),
        CaseOutcome::NotApplicable(why) => Err(Failed::from(format!("not applicable: {why}"))),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}
