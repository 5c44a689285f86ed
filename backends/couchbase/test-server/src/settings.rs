//! What the server serves: its users, and its buckets with their scopes
//! and collections.

/// The first id of a collection of the user's (ids 1 to 7 are reserved).
const FIRST_COLLECTION_ID: u32 = 8;

/// One bucket and its named collections, `(scope, collection)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub collections: Vec<(String, String)>,
}

/// Users (name and password) and buckets. Every user may use every bucket.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub users: Vec<(String, String)>,
    pub buckets: Vec<Bucket>,
}

impl Settings {
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    pub fn bucket(mut self, name: &str) -> Self {
        self.buckets.push(Bucket {
            name: name.to_owned(),
            collections: Vec::new(),
        });
        self
    }

    /// A named collection in the bucket added last.
    pub fn collection(mut self, scope: &str, collection: &str) -> Self {
        if let Some(b) = self.buckets.last_mut() {
            b.collections
                .push((scope.to_owned(), collection.to_owned()));
        }
        self
    }

    pub fn password_of(&self, user: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.clone())
    }

    pub fn has_bucket(&self, name: &str) -> bool {
        self.buckets.iter().any(|b| b.name == name)
    }

    /// The id of `scope.collection` in `bucket`: `Err(true)` when the scope
    /// is unknown, `Err(false)` when only the collection is.
    pub fn collection_id(&self, bucket: &str, scope: &str, collection: &str) -> Result<u32, bool> {
        let scope = if scope.is_empty() { "_default" } else { scope };
        let collection = if collection.is_empty() {
            "_default"
        } else {
            collection
        };
        if scope == "_default" && collection == "_default" {
            return Ok(0);
        }
        let b = self.buckets.iter().find(|b| b.name == bucket).ok_or(true)?;
        if let Some(at) = b
            .collections
            .iter()
            .position(|(s, c)| s == scope && c == collection)
        {
            return Ok(FIRST_COLLECTION_ID + at as u32);
        }
        Err(scope != "_default" && !b.collections.iter().any(|(s, _)| s == scope))
    }

    /// Whether `cid` is a collection of `bucket`.
    pub fn knows_collection(&self, bucket: &str, cid: u32) -> bool {
        cid == 0
            || self.buckets.iter().any(|b| {
                b.name == bucket
                    && cid >= FIRST_COLLECTION_ID
                    && ((cid - FIRST_COLLECTION_ID) as usize) < b.collections.len()
            })
    }

    /// The collections manifest's uid: it changes only with the settings.
    pub fn manifest_uid(&self) -> u64 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_have_ids_and_unknown_ones_say_which_part() {
        let s = Settings::default()
            .bucket("b")
            .collection("app", "payloads")
            .collection("app", "personal");
        assert_eq!(s.collection_id("b", "", ""), Ok(0));
        assert_eq!(s.collection_id("b", "_default", "_default"), Ok(0));
        assert_eq!(s.collection_id("b", "app", "payloads"), Ok(8));
        assert_eq!(s.collection_id("b", "app", "personal"), Ok(9));
        assert_eq!(s.collection_id("b", "app", "nope"), Err(false));
        assert_eq!(s.collection_id("b", "nope", "payloads"), Err(true));
        assert!(s.knows_collection("b", 0) && s.knows_collection("b", 9));
        assert!(!s.knows_collection("b", 10) && !s.knows_collection("other", 8));
    }
}
