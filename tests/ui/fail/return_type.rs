use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    async fn packed(&self, order: u64) -> bool;
}

fn main() {}
