use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    async fn packed(&self, order: u64);
    #[event(name = "packed")]
    async fn packed_again(&self, order: u64);
}

fn main() {}
