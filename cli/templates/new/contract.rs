//! The {{name}} contract: the events of stream `{{uri}}` as a Rust trait,
//! and the backend they travel on ([`Backend`]).
#![forbid(unsafe_code)]

mod backend;

pub use backend::Backend;

use event_backbone::event_contract;

/// The stream's uri.
pub const URI: &str = "{{uri}}";
/// The consumer group of the consumer binary.
pub const GROUP: &str = "{{group}}";

/// What happens on `{{uri}}`. `#[event_contract]` makes
/// `{{trait}}Producer` (one method per event), `{{trait}}Consumer` (one
/// handler per event) and `{{trait}}Handler` (to subscribe it). Add an
/// event: add a method.
#[event_contract]
pub trait {{trait}} {
    /// `{{event}}` happened: its number and what it says.
    async fn {{event}}(&self, number: u64, text: String);
}

/// The error of this workspace's functions.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
