use event_backbone::event_contract;

#[event_contract]
pub trait Users {
    async fn renamed(&self, #[subject(field = "not a path")] user: u64);
}

fn main() {}
