use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    async fn packed<T: serde::Serialize>(&self, order: T);
}

fn main() {}
