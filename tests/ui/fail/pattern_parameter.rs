use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    async fn packed(&self, (order, line): (u64, u32));
}

fn main() {}
