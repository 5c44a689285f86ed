use event_backbone::event_contract;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Customer {
    pub id: u64,
    pub tags: Vec<String>,
}

#[event_contract]
pub trait Users {
    async fn registered(&self, #[subject(pseudonymous)] customer: Customer);
    async fn tagged(&self, #[subject(field = "tags", pseudonymous)] customer: Customer);
}

fn main() {}
