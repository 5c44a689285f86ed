use event_backbone::event_contract;

#[event_contract]
pub trait Users {
    async fn merged(&self, #[subject] kept: u64, #[subject] dropped: u64);
}

fn main() {}
