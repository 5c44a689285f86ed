//! The conformance kit: one behaviour suite for [`StreamChannel`]s and one
//! for [`KeyValueStore`]s, which every backend runs against its real server
//! (the in-memory one included), and which a custom backend runs too.
//!
//! Each case is a public async function taking a harness. A runner runs
//! every case against a backend factory and reports each by name; cases that
//! a backend's capabilities exclude are reported as not applicable, never as
//! passed.
//!
//! In a test target with `harness = false`, [`Conformance`] runs the suites
//! under the standard test output (`test memory::channel::ack_removes_from_pending ... ok`):
//!
//! ```no_run
//! use std::sync::Arc;
//! use event_backbone_core::memory::{MemoryChannel, MemoryStore};
//! use event_backbone_core::testkit::Conformance;
//! use event_backbone_core::{KeyValueStore, StreamChannel};
//!
//! fn main() -> std::process::ExitCode {
//!     Conformance::new("memory")
//!         .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
//!         .store(|| async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn KeyValueStore>) })
//!         .run()
//! }
//! ```
//!
//! Or, inside any async test, [`run_channel_suite`] and [`run_store_suite`]
//! return a [`SuiteReport`].

mod case;
mod channel_cases;
mod faults;
mod harness;
mod insert_cases;
mod libtest;
mod report;
mod store_cases;
mod wait;

pub use case::{ensure, CaseFailure, CaseResult, ChannelCase, StoreCase};
pub use channel_cases::*;
pub use faults::{Fault, FaultyChannel, FaultyStore};
pub use harness::{ChannelFactory, ChannelHarness, RawEntryWriter, StoreFactory, StoreHarness};
pub use insert_cases::*;
pub use libtest::Conformance;
pub use report::{
    run_channel_cases, run_channel_suite, run_channel_suite_with, run_store_suite, CaseOutcome,
    CaseReport, SuiteReport, CASE_TIMEOUT,
};
pub use store_cases::*;
pub use wait::{eventually, unique_uri, EVENTUALLY};

use crate::{KeyValueStore, StreamChannel};

#[allow(unused)]
fn _object_safe(_: &dyn StreamChannel, _: &dyn KeyValueStore) {}
