//! A crate that denies missing docs can hold a contract: every generated
//! item is documented.
#![deny(missing_docs)]

use event_backbone::event_contract;

/// Shipments.
#[event_contract]
pub trait Shipments {
    /// Packed.
    async fn packed(&self, order: u64, #[personal] email: String);
    #[event(version = 2, deprecated)]
    async fn packed_v2(&self, order: u64);
    async fn ping(&self);
}

fn main() {
    let _ = Shipments::OPERATIONS;
}
