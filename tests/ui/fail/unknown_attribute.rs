use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    #[event(verison = 2)]
    async fn packed(&self, order: u64);
}

fn main() {}
