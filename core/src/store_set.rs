//! The stores a producer or consumer uses, by logical name.
//!
//! A producer routes each segment by its class: to the store registered for
//! that class, else to the default store, else inline in the metadata. The
//! logical store name (`default`, or the class name) is written into the
//! segment index, and a consumer resolves it the same way: the store
//! registered under that name, else its default store.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::envelope::SegmentClass;
use crate::store::KeyValueStore;

/// Logical name of the default store.
pub const DEFAULT_STORE: &str = "default";

#[derive(Clone, Default)]
pub(crate) struct StoreSet {
    stores: Vec<Arc<dyn KeyValueStore>>,
    by_name: BTreeMap<String, usize>,
}

impl StoreSet {
    pub(crate) fn insert(&mut self, name: &str, store: Arc<dyn KeyValueStore>) {
        let data = Arc::as_ptr(&store) as *const ();
        let idx = match self
            .stores
            .iter()
            .position(|s| Arc::as_ptr(s) as *const () == data)
        {
            Some(i) => i,
            None => {
                self.stores.push(store);
                self.stores.len() - 1
            }
        };
        self.by_name.insert(name.to_owned(), idx);
    }

    /// Where a segment of this class goes: (store index, logical name).
    pub(crate) fn route_class(&self, class: &SegmentClass) -> Option<(usize, &str)> {
        if let Some((name, idx)) = self.by_name.get_key_value(class.as_str()) {
            return Some((*idx, name.as_str()));
        }
        self.by_name
            .get_key_value(DEFAULT_STORE)
            .map(|(name, idx)| (*idx, name.as_str()))
    }

    /// The store for a logical name from a segment index.
    pub(crate) fn resolve(&self, name: &str) -> Option<usize> {
        self.by_name
            .get(name)
            .or_else(|| self.by_name.get(DEFAULT_STORE))
            .copied()
    }

    pub(crate) fn store(&self, idx: usize) -> &Arc<dyn KeyValueStore> {
        &self.stores[idx]
    }

    /// A logical name the store at `idx` is registered under, for errors.
    pub(crate) fn name_of(&self, idx: usize) -> &str {
        self.by_name
            .iter()
            .find(|(_, i)| **i == idx)
            .map_or(DEFAULT_STORE, |(name, _)| name.as_str())
    }

    pub(crate) fn len(&self) -> usize {
        self.stores.len()
    }
}

impl fmt::Debug for StoreSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.by_name
                    .iter()
                    .map(|(name, idx)| (name, self.stores[*idx].backend())),
            )
            .finish()
    }
}
