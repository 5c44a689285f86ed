//! Where the events travel: {{backend_doc}}

use std::sync::Arc;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::{KeyValueStore, StreamChannel};

use crate::Error;

/// The channel (the stream) and the store (the payloads).
#[derive(Clone)]
pub struct Backend {
    /// The stream channel.
    pub channel: Arc<dyn StreamChannel>,
    /// The payload store.
    pub store: Arc<dyn KeyValueStore>,
}

impl Backend {
{{from_env}}
    /// In memory.
    pub fn in_memory() -> Self {
        Self {
            channel: Arc::new(MemoryChannel::new()),
            store: Arc::new(MemoryStore::new()),
        }
    }

    /// Whether it is in memory (one process only).
    pub fn is_in_memory(&self) -> bool {
        self.channel.backend() == "memory"
    }
}
