use event_backbone::event_contract;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Customer {
    pub id: u64,
    pub tags: Vec<String>,
}

#[event_contract]
pub trait Users {
    async fn registered(&self, #[subject] customer: Customer);
    async fn tagged(&self, #[subject(field = "tags")] customer: Customer);
}

fn main() {}
