use event_backbone::event_contract;

#[event_contract]
pub trait Shipments {
    async fn packed(&self, #[secret] email: String);
}

fn main() {}
