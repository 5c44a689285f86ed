//! `#[subject]` on a parameter or on a field of one, pseudonymous or not
//! (then sealed: the type is an `Option` or has a `Default`); personal
//! parameters that are `Option`s or have a `Default`.
use event_backbone::event_contract;

#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Address {
    pub city: String,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Customer {
    pub account: Account,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Account {
    pub id: uuid::Uuid,
}

#[event_contract]
pub trait Users {
    async fn registered(
        &self,
        #[subject] user: u64,
        #[personal] email: String,
        #[personal] phone: Option<String>,
        #[segment(class = "health")] address: Address,
    );
    async fn moved(
        &self,
        #[subject(field = "account.id", pseudonymous)] customer: Customer,
        #[personal] to: Address,
    );
    async fn renamed(&self, #[subject(pseudonymous)] user: uuid::Uuid, name: String);
    async fn optional(&self, #[subject] user: Option<String>);
    async fn by_email(&self, #[subject] #[personal] email: String);
}

fn main() {}
