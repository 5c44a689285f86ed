//! What a case is: a name, the capabilities it needs, and an async function
//! over a harness that passes or fails with a message.

use std::fmt;

use futures_util::future::BoxFuture;

use super::harness::{ChannelHarness, StoreHarness};
use crate::capabilities::{ChannelCapabilities, StoreCapabilities};

/// Why a case failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFailure(String);

impl CaseFailure {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<crate::Error> for CaseFailure {
    fn from(e: crate::Error) -> Self {
        Self(format!("unexpected error: {e}"))
    }
}

/// What a case returns.
pub type CaseResult = Result<(), CaseFailure>;

/// One case of the channel suite.
#[derive(Clone, Copy)]
pub struct ChannelCase {
    /// Its name.
    pub name: &'static str,
    /// `Err(reason)` when the capabilities exclude it.
    pub applies: fn(&ChannelCapabilities) -> Result<(), &'static str>,
    /// Runs it.
    pub run: fn(ChannelHarness) -> BoxFuture<'static, CaseResult>,
    /// It loads the server so much (10,000 messages) that it runs by
    /// itself: [`Conformance`] runs such cases first, one at a time, then
    /// the others, so that neither slows the other down and what the case
    /// measures (how many handlers ran at once) is the backend's.
    ///
    /// [`Conformance`]: crate::testkit::Conformance
    pub alone: bool,
}

impl fmt::Debug for ChannelCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelCase({})", self.name)
    }
}

/// One case of the store suite.
#[derive(Clone, Copy)]
pub struct StoreCase {
    /// Its name.
    pub name: &'static str,
    /// `Err(reason)` when the capabilities exclude it.
    pub applies: fn(&StoreCapabilities) -> Result<(), &'static str>,
    /// Runs it.
    pub run: fn(StoreHarness) -> BoxFuture<'static, CaseResult>,
}

impl fmt::Debug for StoreCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreCase({})", self.name)
    }
}

/// Fails the case with a message unless the condition holds.
#[macro_export]
#[doc(hidden)]
macro_rules! __testkit_ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::testkit::CaseFailure::new(format!($($msg)+)));
        }
    };
}
pub use crate::__testkit_ensure as ensure;
