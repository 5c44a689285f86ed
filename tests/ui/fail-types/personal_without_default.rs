use event_backbone::event_contract;

#[derive(Debug)]
pub struct Email(pub String);

impl serde::Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Email)
    }
}

#[event_contract]
pub trait Users {
    async fn registered(&self, #[subject] user: u64, #[personal] email: Email);
}

fn main() {}
