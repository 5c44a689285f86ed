//! The conformance suites against the in-memory backend: every case, by
//! name, in `cargo test`; and the store suite once more against an
//! in-memory store with a value limit (`memory-limited::store::...`), so
//! that the cases about limits run without a server too.

use std::process::ExitCode;
use std::sync::Arc;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::testkit::Conformance;
use event_backbone::{KeyValueStore, StreamChannel};

/// A limit in the range of DynamoDB's (400 KB items).
const LIMIT: usize = 400 * 1024;

fn main() -> ExitCode {
    Conformance::run_all([
        Conformance::new("memory")
            .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
            .store(|| async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn KeyValueStore>) }),
        Conformance::new("memory-limited").store(|| async {
            Ok(Arc::new(MemoryStore::new().with_max_value_bytes(LIMIT)) as Arc<dyn KeyValueStore>)
        }),
    ])
}
