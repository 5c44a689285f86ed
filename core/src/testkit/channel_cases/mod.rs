//! The channel suite: what every [`crate::StreamChannel`] must do, through
//! the trait and through the producer and consumer runtime, one file per
//! theme, each with its list of cases.

mod append;
mod faults;
mod fixture;
mod groups;
mod hot_keys;
mod ordering;
mod pending;
mod redelivery;
mod replay;
mod runtime;
mod unreadable;

pub use append::*;
pub use faults::*;
pub use groups::*;
pub use hot_keys::*;
pub use ordering::*;
pub use pending::*;
pub use redelivery::*;
pub use replay::*;
pub use runtime::*;
pub use unreadable::*;

use crate::testkit::ChannelCase;

/// Every case of the channel suite, in order.
pub fn channel_cases() -> Vec<ChannelCase> {
    [
        append_cases(),
        groups_cases(),
        pending_cases(),
        replay_cases(),
        runtime_cases(),
        redelivery_cases(),
        ordering_cases(),
        faults_cases(),
        hot_keys_cases(),
        unreadable_cases(),
    ]
    .concat()
}
