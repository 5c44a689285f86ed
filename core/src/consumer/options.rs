//! How a consumer settles messages: when it acknowledges them
//! ([`AckMode`]), when it claims entries other members left behind
//! ([`ClaimPolicy`]) and what it does with operations no handler knows
//! ([`Fallback`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::handler::Handler;

/// When a message is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// After the handler succeeds (the default). A failure leaves it pending
    /// for another delivery, up to the maximum deliveries.
    #[default]
    OnSuccess,
    /// After the handler returns, whatever it returned.
    Always,
    /// Only when the handler calls `ctx.ack()`.
    Manual,
}

/// Claiming entries that another member (perhaps a crashed one) left
/// pending too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// How often to look for stale entries.
    pub interval: Duration,
    /// How long an entry must have been pending to be claimed.
    pub min_idle: Duration,
}

impl Default for ClaimPolicy {
    /// Every 5 s, entries idle for 30 s.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            min_idle: Duration::from_secs(30),
        }
    }
}

/// What to do with a message no handler knows.
#[derive(Clone, Default)]
pub enum Fallback {
    /// Send it to the dead-letter stream with reason `unknown operation`,
    /// then acknowledge it (the default).
    #[default]
    DeadLetter,
    /// Acknowledge it and move on.
    Ack,
    /// Give it to this handler; if it does not know it either, dead-letter.
    Handler(Arc<dyn Handler>),
}

impl fmt::Debug for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::DeadLetter => f.write_str("DeadLetter"),
            Fallback::Ack => f.write_str("Ack"),
            Fallback::Handler(_) => f.write_str("Handler(..)"),
        }
    }
}
