use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    fn packed(&self, order: u64);
}

fn main() {}
