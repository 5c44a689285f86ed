use event_backbone::event_contract;

#[event_contract(min_verison = 1)]
pub trait Shipments {
    async fn packed(&self, order: u64);
}

fn main() {}
